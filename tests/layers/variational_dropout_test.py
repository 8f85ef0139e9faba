"""Variational dropout layers: the per-layer checklist, parameterizations, KL totals,
sparsification and the local reparameterization moments."""

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from tests.kl_test import exact_kl_dawson
from tests.testing import config_roundtrip
from tests.testing import fit_steps
from tests.testing import save_and_reload
from tests.testing import to_numpy

K1, K2, K3 = 0.63576, 1.87320, 1.48695

# (class, constructor arguments, input shape without batch, Keras twin)
LAYERS = [
    (ks.layers.DenseVariationalDropout, {"units": 3}, (4,), keras.layers.Dense),
    (
        ks.layers.Conv1DVariationalDropout,
        {"filters": 3, "kernel_size": 2},
        (5, 2),
        keras.layers.Conv1D,
    ),
    (
        ks.layers.Conv2DVariationalDropout,
        {"filters": 3, "kernel_size": 2},
        (4, 4, 2),
        keras.layers.Conv2D,
    ),
    (
        ks.layers.Conv3DVariationalDropout,
        {"filters": 2, "kernel_size": 2},
        (3, 3, 3, 2),
        keras.layers.Conv3D,
    ),
]
LAYER_IDS = [cls.__name__ for cls, *_ in LAYERS]


def molchanov(log_alpha):
    """Molchanov et al.'s KL written out in NumPy (float64)."""
    log_alpha = np.asarray(log_alpha, dtype="float64")
    return (
        K1
        - K1 / (1.0 + np.exp(-(K2 + K3 * log_alpha)))
        + 0.5 * np.log1p(np.exp(-log_alpha))
    )


def random_inputs(shape, batch=6, seed=0):
    return np.random.default_rng(seed).normal(size=(batch,) + shape).astype("float32")


@pytest.mark.parametrize("cls, kwargs, input_shape, twin", LAYERS, ids=LAYER_IDS)
def test_layer_checklist(cls, kwargs, input_shape, twin, tmp_path):
    layer = cls(**kwargs, activation="relu", kl_weight=0.01, seed=3)
    # Config round trip, before and after building.
    assert config_roundtrip(layer).get_config() == layer.get_config()
    model = keras.Sequential([keras.Input(input_shape), layer])  # symbolic build
    assert config_roundtrip(layer).get_config() == layer.get_config()
    assert [w.name for w in layer.trainable_weights] == [
        "kernel_mean",
        "kernel_log_sigma2",
        "bias",
    ]
    assert len(layer.non_trainable_weights) == 2  # kl_weight, inference mode
    assert layer.kernel_mean is layer.posterior.mean
    assert layer._prunable_variables() == [layer.kernel_mean]
    assert tuple(layer.log_alpha.shape) == tuple(layer.kernel_mean.shape)

    # A kernel bounded away from zero: log alpha = -10 - log theta^2 < 3.
    rng = np.random.default_rng(0)
    shape = tuple(layer.kernel_mean.shape)
    layer.kernel_mean.assign(
        (rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)).astype(
            "float32"
        )
    )
    x = random_inputs(input_shape)
    # Same seed, same weights: same training draws (first calls of both).
    twin_layer = cls(**kwargs, activation="relu", kl_weight=0.01, seed=3)
    twin_model = keras.Sequential([keras.Input(input_shape), twin_layer])
    twin_model.set_weights(model.get_weights())
    first = to_numpy(model(x, training=True))
    np.testing.assert_array_equal(first, to_numpy(twin_model(x, training=True)))
    assert not np.array_equal(first, to_numpy(model(x, training=True)))

    outputs = to_numpy(model(x))  # eager call, mean mode
    assert len(model.losses) == 1
    np.testing.assert_allclose(
        to_numpy(model.losses[0]), 0.01 * to_numpy(layer.kl_divergence()), rtol=1e-5
    )
    # With every log alpha below the threshold, mean mode is the Keras twin
    # with kernel theta.
    assert np.all(to_numpy(layer.log_alpha) < 3.0)
    reference = twin(**kwargs, activation="relu")
    reference.build((None,) + input_shape)
    reference.set_weights([to_numpy(layer.kernel_mean), to_numpy(layer.bias)])
    np.testing.assert_allclose(outputs, to_numpy(reference(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(to_numpy(model(x)), outputs)  # deterministic

    # One compiled fit step.
    y = np.zeros_like(outputs)
    assert np.isfinite(fit_steps(model, x, y))

    # .keras round trip with safe_mode=True.
    reloaded = save_and_reload(model, tmp_path)
    np.testing.assert_allclose(to_numpy(reloaded(x)), to_numpy(model(x)), rtol=1e-6)
    assert reloaded.layers[0].get_config() == layer.get_config()


@pytest.mark.parametrize("cls, kwargs, input_shape, twin", LAYERS, ids=LAYER_IDS)
def test_mixed_float16(cls, kwargs, input_shape, twin):
    keras.config.set_dtype_policy("mixed_float16")
    layer = cls(**kwargs, seed=1)
    model = keras.Sequential([keras.Input(input_shape), layer])
    x = random_inputs(input_shape)
    assert keras.backend.standardize_dtype(layer.kernel_mean.dtype) == "float32"
    for training in (True, False):
        outputs = model(x, training=training)
        assert keras.backend.standardize_dtype(outputs.dtype) == "float16"
        assert np.all(np.isfinite(to_numpy(outputs)))
    kl = model.losses[-1]
    assert keras.backend.standardize_dtype(kl.dtype) == "float32"
    assert np.isfinite(to_numpy(kl))
    if cls is ks.layers.DenseVariationalDropout:  # one compiled step suffices
        targets = np.zeros(to_numpy(outputs).shape, "float32")
        assert np.isfinite(fit_steps(model, x, targets))


@pytest.mark.parametrize(
    "parameterization, variable, shape",
    [
        ("additive", "kernel_log_sigma2", (4, 3)),
        ("weight", "kernel_log_alpha", (4, 3)),
        ("neuron", "kernel_log_alpha", (3,)),
        ("layer", "kernel_log_alpha", ()),
    ],
)
def test_parameterization_shapes_and_kl(parameterization, variable, shape):
    layer = ks.layers.DenseVariationalDropout(3, parameterization=parameterization)
    layer.build((None, 4))
    noise_variable = layer.trainable_weights[1]
    assert noise_variable.name == variable
    assert tuple(noise_variable.shape) == shape
    assert tuple(layer.log_alpha.shape) == shape

    rng = np.random.default_rng(0)
    theta = rng.normal(scale=0.5, size=(4, 3)).astype("float32")
    values = rng.uniform(-10.0, 10.0, size=shape).astype("float32")
    layer.kernel_mean.assign(theta)
    noise_variable.assign(values)
    if parameterization == "additive":
        log_alpha = values - np.log(theta.astype("float64") ** 2 + 1e-8)
    else:
        log_alpha = values
    log_alpha = np.clip(log_alpha, -8.0, 8.0)
    np.testing.assert_allclose(
        to_numpy(layer.log_alpha), log_alpha, rtol=1e-5, atol=1e-5
    )
    # A shared log alpha counts once per weight it covers.
    expected = np.sum(np.broadcast_to(molchanov(log_alpha), (4, 3)))
    np.testing.assert_allclose(to_numpy(layer.kl_divergence()), expected, rtol=1e-5)
    if parameterization == "layer":
        np.testing.assert_allclose(
            to_numpy(layer.kl_divergence()), 12 * molchanov(log_alpha), rtol=1e-5
        )


def test_ard_kl_is_the_normal_kl_at_the_optimal_prior_variance():
    layer = ks.layers.DenseVariationalDropout(3, parameterization="weight", prior="ard")
    layer.build((None, 4))
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(4, 3))
    log_alpha = rng.uniform(-6.0, 6.0, size=(4, 3))
    layer.kernel_mean.assign(theta.astype("float32"))
    layer.trainable_weights[1].assign(log_alpha.astype("float32"))

    def normal_kl(prior_variance):
        variance = np.exp(log_alpha) * theta**2
        return 0.5 * (
            np.log(prior_variance / variance)
            + (variance + theta**2) / prior_variance
            - 1.0
        )

    optimal = (1.0 + np.exp(log_alpha)) * theta**2
    # The optimum over the prior variance, and its closed form.
    assert np.all(normal_kl(optimal) <= normal_kl(optimal * 1.01))
    assert np.all(normal_kl(optimal) <= normal_kl(optimal * 0.99))
    np.testing.assert_allclose(normal_kl(optimal), 0.5 * np.log1p(np.exp(-log_alpha)))
    np.testing.assert_allclose(
        to_numpy(layer.kl_divergence()), np.sum(normal_kl(optimal)), rtol=1e-5
    )


def test_kingma_clips_alpha_to_one():
    layer = ks.layers.DenseVariationalDropout(3, kl_approximation="kingma")
    layer.build((None, 4))
    theta = np.full((4, 3), 0.5, dtype="float32")
    log_sigma2 = np.log(0.25) + np.linspace(-3.0, 3.0, 12).reshape(4, 3)
    layer.kernel_mean.assign(theta)
    layer.trainable_weights[1].assign(log_sigma2.astype("float32"))
    log_alpha = to_numpy(layer.log_alpha)
    assert log_alpha.max() == 0.0
    expected_log_alpha = np.minimum(np.linspace(-3.0, 3.0, 12).reshape(4, 3), 0.0)
    np.testing.assert_allclose(log_alpha, expected_log_alpha, atol=1e-5)
    alpha = np.exp(expected_log_alpha)
    expected = K1 - (
        0.5 * expected_log_alpha
        + 1.16145124 * alpha
        - 1.50204118 * alpha**2
        + 0.58629921 * alpha**3
    )
    np.testing.assert_allclose(
        to_numpy(layer.kl_divergence()), expected.sum(), rtol=1e-5
    )
    # alpha <= 1: nothing reaches the default threshold.
    np.testing.assert_array_equal(
        to_numpy(layer.posterior("float32").inference_kernel), theta
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kl_approximation": "monte_carlo"},
        {"prior": "student_t"},
        {"kl_approximation": "monte_carlo", "parameterization": "layer"},
    ],
    ids=["monte_carlo", "student_t", "monte_carlo_layer"],
)
def test_monte_carlo_kls_are_unbiased(kwargs):
    layer = ks.layers.DenseVariationalDropout(20, seed=5, **kwargs)
    layer.build((None, 30))
    rng = np.random.default_rng(2)
    theta = rng.normal(scale=0.3, size=(30, 20)).astype("float32")
    layer.kernel_mean.assign(theta)
    shape = tuple(layer.trainable_weights[1].shape)
    if layer.parameterization == "additive":
        log_alpha = rng.uniform(-4.0, 4.0, size=shape)
        layer.trainable_weights[1].assign(
            (log_alpha + np.log(theta.astype("float64") ** 2 + 1e-8)).astype("float32")
        )
    else:
        log_alpha = np.full(shape, 1.5)
        layer.trainable_weights[1].assign(log_alpha.astype("float32"))
    log_alpha = np.broadcast_to(to_numpy(layer.log_alpha), (30, 20))
    exact = np.sum([exact_kl_dawson(value) for value in log_alpha.ravel()])
    draws = np.array([float(to_numpy(layer.kl_divergence())) for _ in range(60)])
    tolerance = 5.0 * draws.std(ddof=1) / np.sqrt(len(draws))
    assert abs(draws.mean() - exact) < tolerance


def test_sparsification_masks_exactly_log_alpha_at_or_above_threshold():
    layer = ks.layers.DenseVariationalDropout(4, parameterization="weight")
    layer.build((None, 5))
    rng = np.random.default_rng(3)
    theta = rng.normal(size=(5, 4)).astype("float32")
    log_alpha = np.linspace(-8.0, 8.0, 20).astype("float32").reshape(5, 4)
    log_alpha[0, 0] = 3.0  # exactly at the threshold: pruned
    log_alpha[0, 1] = np.nextafter(np.float32(3.0), np.float32(0.0))  # just below: kept
    layer.kernel_mean.assign(theta)
    layer.trainable_weights[1].assign(log_alpha)
    expected_kernel = np.where(log_alpha < 3.0, theta, 0.0)
    kernel = to_numpy(layer.posterior("float32").inference_kernel)
    np.testing.assert_array_equal(kernel, expected_kernel)
    assert kernel[0, 0] == 0.0 and kernel[0, 1] == theta[0, 1]

    x = rng.normal(size=(7, 5)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(layer(x)), x @ expected_kernel, rtol=1e-5, atol=1e-6
    )
    report = ks.sparsity(layer)
    assert report[layer.name]["zeros"] == int(np.sum(log_alpha >= 3.0))

    # The threshold argument moves the cut.
    lower = ks.layers.DenseVariationalDropout(
        4, parameterization="weight", threshold=-1.0
    )
    lower.build((None, 5))
    lower.set_weights(layer.get_weights())
    np.testing.assert_array_equal(
        to_numpy(lower.posterior("float32").inference_kernel),
        np.where(log_alpha < -1.0, theta, 0.0),
    )


def test_neuron_parameterization_prunes_whole_units():
    layer = ks.layers.DenseVariationalDropout(3, parameterization="neuron")
    layer.build((None, 4))
    layer.trainable_weights[1].assign(np.array([-2.0, 5.0, 2.0], "float32"))
    kernel = to_numpy(layer.posterior("float32").inference_kernel)
    theta = to_numpy(layer.kernel_mean)
    np.testing.assert_array_equal(kernel[:, [0, 2]], theta[:, [0, 2]])
    np.testing.assert_array_equal(kernel[:, 1], 0.0)


@pytest.mark.parametrize("parameterization", ["additive", "weight"])
def test_local_reparameterization_moments(parameterization):
    # n identical input rows: each output is an independent draw of
    # N(x theta + b, x^2 (alpha theta^2)); compare sample moments within 5
    # standard errors.
    n = 20_000
    layer = ks.layers.DenseVariationalDropout(
        2, parameterization=parameterization, seed=11
    )
    layer.build((None, 3))
    theta = np.array([[0.5, -1.0], [2.0, 0.3], [-0.7, 1.2]], "float32")
    log_alpha = np.array([[-1.0, 0.5], [-2.0, 1.0], [0.0, -0.5]], "float32")
    layer.kernel_mean.assign(theta)
    if parameterization == "additive":
        layer.trainable_weights[1].assign(log_alpha + np.log(theta**2 + 1e-8))
    else:
        layer.trainable_weights[1].assign(log_alpha)
    layer.bias.assign(np.array([0.1, -0.2], "float32"))
    x = np.array([[1.0, -0.5, 2.0]], "float32")
    outputs = to_numpy(layer(np.repeat(x, n, axis=0), training=True)).astype("float64")
    mean = (x @ theta)[0] + np.array([0.1, -0.2])
    variance = ((x**2) @ (np.exp(log_alpha) * theta**2))[0]
    np.testing.assert_array_less(
        np.abs(outputs.mean(0) - mean), 5 * np.sqrt(variance / n)
    )
    np.testing.assert_array_less(
        np.abs(outputs.var(0, ddof=1) - variance), 5 * variance * np.sqrt(2.0 / (n - 1))
    )


@pytest.mark.parametrize("parameterization", ["additive", "neuron"])
def test_weight_noise_has_the_posterior_variance(parameterization):
    # The draws flipout and reparameterization use: w - theta ~ N(0, alpha theta^2).
    layer = ks.layers.DenseVariationalDropout(
        50, parameterization=parameterization, log_variance_initializer=-2.0, seed=4
    )
    layer.build((None, 40))
    weights = layer.posterior("float32")
    if parameterization == "additive":
        # q's own variance sigma^2 (= alpha theta^2 for an unclipped alpha).
        variance = np.exp(to_numpy(layer.trainable_weights[1]))
    else:
        variance = np.broadcast_to(
            np.exp(to_numpy(layer.log_alpha)) * to_numpy(layer.kernel_mean) ** 2,
            (40, 50),
        )
    np.testing.assert_allclose(to_numpy(weights.variance), variance, rtol=1e-5)
    z = np.concatenate(
        [
            to_numpy(weights.noise(layer.seed_generator)) / np.sqrt(variance)
            for _ in range(5)
        ]
    ).ravel()
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1.0) < 5 * np.sqrt(2.0 / n)


@pytest.mark.parametrize("estimator", ["flipout", "reparameterization"])
def test_other_estimators_train_and_sample(estimator):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            ks.layers.DenseVariationalDropout(3, estimator=estimator, seed=2),
        ]
    )
    layer = model.layers[0]
    assert layer.estimator == estimator
    assert layer.get_config()["estimator"] == estimator
    x = random_inputs((4,))
    assert np.isfinite(fit_steps(model, x, np.zeros((6, 3), "float32")))
    ks.set_inference(model, "sample")
    first, second = (
        to_numpy(model.predict(x, verbose=0)),
        to_numpy(model.predict(x, verbose=0)),
    )
    assert not np.array_equal(first, second)
    ks.set_inference(model, "mean")
    np.testing.assert_array_equal(
        to_numpy(model.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0))
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"parameterization": "unit"},
            ValueError,
            "Argument `parameterization` must be one of",
        ),
        (
            {"kl_approximation": "exact"},
            ValueError,
            "Argument `kl_approximation` must be one of",
        ),
        (
            {"prior": "normal"},
            ValueError,
            "Argument `prior` must be a .*DropoutPrior.* one of \\['ard', 'log_uniform', 'student_t'\\]",
        ),
        ({"estimator": "lrt"}, ValueError, "Argument `estimator` must be one of"),
        (
            {"threshold": 9.0},
            ValueError,
            "Argument `threshold` must be a finite float in \\[-8, 8\\]. Received: threshold=9.0",
        ),
        (
            {"threshold": "3"},
            TypeError,
            "Argument `threshold` must be a finite float in \\[-8, 8\\]. Received: threshold='3'",
        ),
        (
            {"log_variance_initializer": float("nan")},
            ValueError,
            "log_variance_initializer",
        ),
        ({"log_variance_initializer": "nope"}, ValueError, "log_variance_initializer"),
        (
            {"prior": "ard", "kl_approximation": "kingma"},
            ValueError,
            "applies to the log-uniform prior only",
        ),
        ({"kl_weight": -1.0}, ValueError, "Argument `kl_weight`"),
    ],
)
@pytest.mark.parametrize(
    "cls, required",
    [
        (ks.layers.DenseVariationalDropout, {"units": 2}),
        (ks.layers.Conv2DVariationalDropout, {"filters": 2, "kernel_size": 3}),
    ],
    ids=["dense", "conv2d"],
)
def test_bad_arguments(cls, required, kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        cls(**required, **kwargs)
    assert "Received:" in str(info.value)


def test_config_keeps_the_variational_dropout_arguments():
    layer = ks.layers.Conv1DVariationalDropout(
        4,
        3,
        parameterization="neuron",
        kl_approximation="monte_carlo",
        estimator="flipout",
        threshold=2.5,
        log_variance_initializer=-4.0,
        kl_weight=0.5,
        inference="sample",
        seed=9,
    )
    config = config_roundtrip(layer).get_config()
    for key, value in {
        "parameterization": "neuron",
        "kl_approximation": "monte_carlo",
        "prior": "log_uniform",
        "estimator": "flipout",
        "threshold": 2.5,
        "log_variance_initializer": -4.0,
        "kl_weight": 0.5,
        "inference": "sample",
        "seed": 9,
    }.items():
        assert config[key] == value
