"""DenseVariance and Conv{1,2,3}DVariance: the per-layer checklist, moments, warnings."""

import math
import warnings

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from tests import testing

# (class, positional args, input shape, output shape) with tiny shapes.
LAYERS = [
    (ks.layers.DenseVariance, (3,), (4,), (3,)),
    (ks.layers.Conv1DVariance, (3, 2), (5, 2), (4, 3)),
    (ks.layers.Conv2DVariance, (3, 2), (4, 4, 2), (3, 3, 3)),
    (ks.layers.Conv3DVariance, (3, 2), (3, 3, 3, 2), (2, 2, 2, 3)),
]
LAYER_IDS = [spec[0].__name__ for spec in LAYERS]

# Fourth moment of the unit noise eps in w = scale * eps, and its variance.
NOISE_MOMENTS = {
    "gaussian": (3.0, 1.0),
    "bernoulli": (1.0, 1.0),
    "uniform": (0.2, 1 / 3),
}

MEAN_WARNING = "predictions will not depend on the input"


def _inputs(shape, batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch,) + shape).astype("float32")


@pytest.mark.parametrize("cls, args, input_shape, output_shape", LAYERS, ids=LAYER_IDS)
def test_config_roundtrip(cls, args, input_shape, output_shape):
    layer = cls(*args, distribution="uniform", estimator="reparameterization", seed=3)
    clone = testing.config_roundtrip(layer)
    assert type(clone) is cls
    assert clone.get_config() == layer.get_config()
    config = layer.get_config()
    assert config["distribution"] == "uniform"
    assert config["estimator"] == "reparameterization"
    assert config["inference"] == "sample"
    # The default estimator is stored resolved.
    assert cls(*args).get_config()["estimator"] == "local_reparameterization"
    assert cls(*args, distribution="bernoulli").get_config()["estimator"] == "flipout"


@pytest.mark.parametrize("cls, args, input_shape, output_shape", LAYERS, ids=LAYER_IDS)
def test_build_call_counts_fit_and_save(cls, args, input_shape, output_shape, tmp_path):
    layer = cls(*args, activation="relu", seed=5)
    inputs = keras.Input(input_shape)
    symbolic = layer(inputs)
    assert tuple(symbolic.shape) == (None,) + output_shape
    model = keras.Model(inputs, keras.layers.Flatten()(symbolic))
    # Weights: the kernel scale and the bias (trainable), the kl_weight and
    # inference-mode variables; one loss, the zero KL.
    assert [v.name for v in layer.trainable_weights] == ["kernel_scale", "bias"]
    assert [v.name for v in layer.non_trainable_weights] == [
        "kl_weight",
        "sample_at_inference",
    ]
    x = _inputs(input_shape, batch=4)
    outputs = testing.to_numpy(layer(x))
    assert outputs.shape == (4,) + output_shape
    assert len(layer.losses) == 1
    assert float(testing.to_numpy(layer.losses[0])) == 0.0
    assert float(testing.to_numpy(ks.kl_divergence(model))) == 0.0
    assert layer._prunable_variables() == [layer.kernel_scale]

    before = testing.to_numpy(layer.kernel_scale).copy()
    y = np.ones((4, math.prod(output_shape)), "float32")
    loss = testing.fit_steps(model, x, y)
    assert np.isfinite(loss)
    assert not np.allclose(testing.to_numpy(layer.kernel_scale), before)

    reloaded = testing.save_and_reload(model, tmp_path)
    (reloaded_layer,) = ks.inference.stochastic_layers(reloaded)
    assert type(reloaded_layer) is cls
    np.testing.assert_array_equal(
        testing.to_numpy(reloaded_layer.kernel_scale),
        testing.to_numpy(layer.kernel_scale),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ks.set_inference(model, "mean")
        ks.set_inference(reloaded, "mean")
    np.testing.assert_array_equal(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


@pytest.mark.parametrize(
    "cls, args, input_shape, output_shape, distribution",
    [
        spec + (d,)
        for spec, d in zip(LAYERS, ["gaussian", "bernoulli", "uniform", "gaussian"])
    ],
    ids=LAYER_IDS,
)
def test_mixed_float16(cls, args, input_shape, output_shape, distribution):
    keras.config.set_dtype_policy("mixed_float16")
    layer = cls(*args, distribution=distribution, seed=1)
    model = testing.sequential(layer, input_shape)
    x = _inputs(input_shape, batch=4)
    outputs = layer(x, training=True)
    assert outputs.dtype == "float16"
    assert np.all(np.isfinite(testing.to_numpy(outputs)))
    assert layer.kernel_scale.dtype == "float32"
    assert layer.kernel_stddev.dtype == "float32"
    assert layer.losses[0].dtype == "float32"
    loss = testing.fit_steps(model, x, np.zeros((4,) + output_shape, "float32"))
    assert np.isfinite(loss)


@pytest.mark.parametrize("cls, args, input_shape, output_shape", LAYERS, ids=LAYER_IDS)
def test_bad_arguments(cls, args, input_shape, output_shape):
    with pytest.raises(
        ValueError,
        match=r"`distribution` must be one of .*Received: distribution='cauchy'",
    ):
        cls(*args, distribution="cauchy")
    with pytest.raises(
        ValueError, match=r"`estimator` must be one of .*Received: estimator='lrt'"
    ):
        cls(*args, estimator="lrt")
    for distribution in ("bernoulli", "uniform"):
        with pytest.raises(
            ValueError,
            match=r"cannot be 'local_reparameterization'.*Received: estimator="
            f"'local_reparameterization', distribution='{distribution}'",
        ):
            cls(*args, distribution=distribution, estimator="local_reparameterization")
    with pytest.raises(ValueError, match=r"Received: inference='median'"):
        cls(*args, inference="median")
    with pytest.raises(ValueError, match=r"Received: kl_weight=-1"):
        cls(*args, kl_weight=-1.0)
    with pytest.raises(TypeError, match=r"Received: seed=1.5"):
        cls(*args, seed=1.5)
    with pytest.raises(ValueError, match=r"Received: (units|filters)=0"):
        cls(0, *args[1:])
    layer = cls(*args)
    with pytest.raises(ValueError, match=r"Received: inference='median'"):
        layer.inference = "median"


@pytest.mark.parametrize("cls, args, input_shape, output_shape", LAYERS, ids=LAYER_IDS)
def test_mean_inference_warns_and_ignores_the_input(
    cls, args, input_shape, output_shape
):
    with pytest.warns(UserWarning, match=MEAN_WARNING):
        layer = cls(*args, inference="mean", bias_initializer="ones")
    x = _inputs(input_shape, batch=3)
    np.testing.assert_array_equal(
        testing.to_numpy(layer(x)), np.ones((3,) + output_shape, "float32")
    )
    np.testing.assert_array_equal(
        testing.to_numpy(layer(2.0 * x)), np.ones((3,) + output_shape, "float32")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        layer.inference = "sample"
    first, second = testing.to_numpy(layer(x)), testing.to_numpy(layer(x))
    assert not np.allclose(first, second)
    with pytest.warns(UserWarning, match=MEAN_WARNING):
        layer.inference = "mean"
    model = testing.sequential(cls(*args), input_shape)
    with pytest.warns(UserWarning, match=MEAN_WARNING):
        ks.set_inference(model, "mean")
    # predict_mc samples and puts the mean mode back without warning again.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ks.predict_mc(model, x, num_samples=2)
    assert model.layers[-1].inference == "mean"


def test_kernel_stddev_and_variance_per_distribution():
    scale = np.array([[-2.0, 0.5], [0.0, 3.0]], "float32")
    for distribution, factor in (
        ("gaussian", 1.0),
        ("bernoulli", 1.0),
        ("uniform", 1 / 3),
    ):
        layer = ks.layers.DenseVariance(2, distribution=distribution)
        layer.build((None, 2))
        layer.kernel_scale.assign(scale)
        stddev = testing.to_numpy(layer.kernel_stddev)
        np.testing.assert_allclose(stddev, np.abs(scale) * math.sqrt(factor), rtol=1e-6)
        np.testing.assert_allclose(
            testing.to_numpy(layer.posterior("float32").variance),
            factor * scale**2,
            rtol=1e-6,
        )
        assert layer.posterior("float32").mean is None
        np.testing.assert_array_equal(
            testing.to_numpy(layer.posterior("float32").inference_kernel), 0.0
        )


def test_noise_support_bernoulli_and_uniform():
    scale = np.random.default_rng(0).normal(size=(30, 40)).astype("float32")
    for distribution in ("bernoulli", "uniform"):
        layer = ks.layers.DenseVariance(40, distribution=distribution, seed=2)
        layer.build((None, 30))
        layer.kernel_scale.assign(scale)
        noise = testing.to_numpy(layer.posterior("float32").noise(layer.seed_generator))
        if distribution == "bernoulli":
            np.testing.assert_array_equal(np.abs(noise), np.abs(scale))
            # Both signs occur: 1200 fair coins.
            assert 0.4 < np.mean(noise * scale > 0) < 0.6
        else:
            assert np.all(np.abs(noise) <= np.abs(scale))


@pytest.mark.parametrize(
    "estimator", ["local_reparameterization", "flipout", "reparameterization"]
)
def test_zero_scale_equals_keras_dense_with_zero_kernel(estimator):
    x = _inputs((4,), batch=5)
    layer = ks.layers.DenseVariance(
        3, activation="tanh", estimator=estimator, bias_initializer="ones", seed=1
    )
    layer.build((None, 4))
    layer.kernel_scale.assign(np.zeros((4, 3), "float32"))
    twin = keras.layers.Dense(
        3, activation="tanh", kernel_initializer="zeros", bias_initializer="ones"
    )
    # LRT keeps sqrt(eps0) = 1e-6 of noise.
    np.testing.assert_allclose(
        testing.to_numpy(layer(x, training=True)), testing.to_numpy(twin(x)), atol=1e-5
    )


@pytest.mark.parametrize("distribution", ["gaussian", "bernoulli", "uniform"])
def test_same_seed_same_output(distribution):
    x = _inputs((4,), batch=5)
    layers = [
        ks.layers.DenseVariance(3, distribution=distribution, seed=s) for s in (7, 7, 8)
    ]
    for layer in layers:
        layer.build((None, 4))
        layer.set_weights(layers[0].get_weights())
    outputs = [testing.to_numpy(layer(x, training=True)) for layer in layers]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not np.allclose(outputs[0], outputs[2])


def _replicated_dense(distribution, estimator, x, column_scale, bias, num_columns):
    """A DenseVariance layer whose `num_columns` output units are i.i.d. copies."""
    layer = ks.layers.DenseVariance(
        num_columns,
        distribution=distribution,
        estimator=estimator,
        bias_initializer=keras.initializers.Constant(bias),
        seed=11,
    )
    layer.build((None, x.shape[-1]))
    layer.kernel_scale.assign(np.tile(column_scale[:, None], (1, num_columns)))
    return layer


def _check_moments(samples, x, column_scale, bias, distribution):
    """Mean `bias` and variance `sum x^2 var(w)`, within 5 standard errors."""
    fourth, unit_variance = NOISE_MOMENTS[distribution]
    a2 = (x * column_scale) ** 2
    variance = unit_variance * a2.sum()
    # E y^4 of a sum of independent symmetric terms a_i eps_i.
    fourth_moment = fourth * np.sum(a2**2) + 3 * unit_variance**2 * (
        a2.sum() ** 2 - np.sum(a2**2)
    )
    n = samples.size
    assert abs(samples.mean() - bias) < testing.sample_tolerance(math.sqrt(variance), n)
    centered = (samples - bias) ** 2
    assert abs(centered.mean() - variance) < testing.sample_tolerance(
        math.sqrt(fourth_moment - variance**2), n
    )


@pytest.mark.parametrize(
    "distribution, estimator",
    [
        ("gaussian", "local_reparameterization"),
        ("gaussian", "flipout"),
        ("gaussian", "reparameterization"),
        ("bernoulli", "flipout"),
        ("bernoulli", "reparameterization"),
        ("uniform", "flipout"),
        ("uniform", "reparameterization"),
    ],
)
def test_dense_output_moments(distribution, estimator):
    x = np.array([[1.0, -2.0, 0.5]], "float32")
    column_scale = np.array([0.7, -0.3, 1.5], "float32")
    layer = _replicated_dense(distribution, estimator, x, column_scale, 0.25, 20000)
    samples = testing.to_numpy(layer(x, training=True))[0]
    _check_moments(samples, x[0], column_scale, 0.25, distribution)


@pytest.mark.parametrize(
    "distribution, estimator",
    [("gaussian", "local_reparameterization"), ("uniform", "flipout")],
)
def test_conv2d_output_moments(distribution, estimator):
    num_filters = 20000
    patch = np.array([[1.0, -2.0], [0.5, 1.5]], "float32")
    column_scale = np.array([0.7, -0.3, 1.5, 0.2], "float32")
    layer = ks.layers.Conv2DVariance(
        num_filters,
        2,
        distribution=distribution,
        estimator=estimator,
        use_bias=False,
        seed=4,
    )
    layer.build((None, 2, 2, 1))
    layer.kernel_scale.assign(
        np.tile(column_scale.reshape(2, 2, 1, 1), (1, 1, 1, num_filters))
    )
    samples = testing.to_numpy(layer(patch.reshape(1, 2, 2, 1), training=True))
    assert samples.shape == (1, 1, 1, num_filters)
    _check_moments(samples.ravel(), patch.ravel(), column_scale, 0.0, distribution)


@pytest.mark.parametrize("distribution", ["bernoulli", "uniform"])
def test_flipout_decorrelates_examples(distribution):
    # Two identical examples share one weight draw per call. With flipout
    # their outputs are uncorrelated; with the shared sample they are equal.
    num_columns = 20000
    x = np.array([[1.0, -2.0, 0.5]] * 2, "float32")
    column_scale = np.array([0.7, -0.3, 1.5], "float32")
    flipout = _replicated_dense(
        distribution, "flipout", x, column_scale, 0.0, num_columns
    )
    outputs = testing.to_numpy(flipout(x, training=True))
    product = outputs[0] * outputs[1]
    assert abs(product.mean()) < testing.sample_tolerance(product.std(), num_columns)
    # ... while each example keeps the full variance.
    variance = NOISE_MOMENTS[distribution][1] * np.sum((x[0] * column_scale) ** 2)
    assert product.std() > 0.5 * variance
    shared = _replicated_dense(
        distribution, "reparameterization", x, column_scale, 0.0, num_columns
    )
    outputs = testing.to_numpy(shared(x, training=True))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_variance_layer_gradients_are_finite_at_zero_scale():
    x = _inputs((4,), batch=8)
    layer = ks.layers.DenseVariance(3, seed=0)
    model = testing.sequential(layer, (4,))
    layer.kernel_scale.assign(np.zeros((4, 3), "float32"))
    loss = testing.fit_steps(model, x, np.ones((8, 3), "float32"))
    assert np.isfinite(loss)
    assert np.all(np.isfinite(testing.to_numpy(layer.kernel_scale)))


def test_drop_mean_term_samples_around_zero():
    # The core hook used by PhaseTransitionMonitor: a Gaussian layer with a
    # tiny stddev outputs its mean when sampling, and ~0 with the mean dropped.
    x = _inputs((4,), batch=6)
    layer = ks.layers.DenseFlipout(
        3, kernel_stddev_initializer=1e-6, use_bias=False, inference="sample", seed=0
    )
    layer.build((None, 4))
    mean_output = x @ testing.to_numpy(layer.kernel_mean)
    np.testing.assert_allclose(testing.to_numpy(layer(x)), mean_output, atol=1e-5)
    layer._drop_mean_term = True
    np.testing.assert_allclose(testing.to_numpy(layer(x)), 0.0, atol=1e-4)
    assert np.abs(mean_output).max() > 0.1
    layer._drop_mean_term = False
    np.testing.assert_allclose(testing.to_numpy(layer(x)), mean_output, atol=1e-5)
