"""`VariationalGaussianDropout` (Kingma et al.'s variational dropout, type A).

Exact identities first (inference is the identity, equal seeds give equal
draws, the KL is the kl module's), then moments over >= 20k draws with
five-standard-error tolerances, the direction alpha learns in, a digits MLP,
and serialization.
"""

import math
import warnings

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from tests.kl_test import exact_kl_dawson
from tests.testing import config_roundtrip
from tests.testing import save_and_reload
from tests.testing import to_numpy

KINGMA = (1.16145124, -1.50204118, 0.58629921)
MOLCHANOV_K1 = 0.63576


def kingma_kl(log_alpha):
    """Kingma et al.'s polynomial KL in NumPy (float64), with the constant k1."""
    alpha = np.exp(np.asarray(log_alpha, "float64"))
    c1, c2, c3 = KINGMA
    return MOLCHANOV_K1 - (
        np.log(alpha) / 2 + c1 * alpha + c2 * alpha**2 + c3 * alpha**3
    )


def built(features=4, **kwargs):
    layer = ks.layers.VariationalGaussianDropout(**kwargs)
    layer.build((None, features))
    return layer


@pytest.mark.parametrize("parameterization", ["layer", "neuron"])
def test_noise_moments_match_the_closed_form(parameterization):
    layer = built(parameterization=parameterization, initial_alpha=0.5, seed=3)
    if parameterization == "neuron":
        layer._log_alpha.assign(np.log([0.05, 0.2, 0.5, 1.0]).astype("float32"))
    alpha = to_numpy(layer.alpha) * np.ones(4)
    x = np.array([1.5, -2.0, 0.5, 3.0], "float32")
    draws = 20000
    outputs = to_numpy(layer(np.tile(x, (draws, 1)), training=True)).astype("float64")
    std = np.sqrt(alpha) * np.abs(x)
    np.testing.assert_array_less(np.abs(outputs.mean(0) - x), 5 * std / np.sqrt(draws))
    variance = outputs.var(0, ddof=1)
    np.testing.assert_array_less(
        np.abs(variance - alpha * x**2), 5 * alpha * x**2 * np.sqrt(2 / (draws - 1))
    )
    # Independent noise per element: rows and features are uncorrelated.
    noise = (outputs - x) / std
    correlation = np.corrcoef(noise, rowvar=False)[np.triu_indices(4, 1)]
    assert np.all(np.abs(correlation) < 5 / np.sqrt(draws)), correlation
    lag = np.mean(noise[1:] * noise[:-1], axis=0)
    assert np.all(np.abs(lag) < 5 / np.sqrt(draws)), lag


def test_neuron_alpha_follows_the_last_axis_of_any_rank():
    layer = ks.layers.VariationalGaussianDropout("neuron", seed=0, kl_weight=1.0)
    x = np.ones((2000, 3, 2), "float32")
    layer.build(x.shape)
    layer._log_alpha.assign(np.log([0.01, 1.0]).astype("float32"))
    outputs = to_numpy(layer(x, training=True)).reshape(-1, 2)
    np.testing.assert_allclose(outputs.var(0), [0.01, 1.0], rtol=0.1)
    # One scale variable per feature of the last axis.
    np.testing.assert_allclose(
        to_numpy(layer.kl_divergence()), kingma_kl([np.log(0.01), 0.0]).sum(), rtol=1e-5
    )


def test_identity_at_inference_and_sampling_on_request():
    layer = ks.layers.VariationalGaussianDropout(
        initial_alpha=1.0, kl_weight=0.5, seed=0
    )
    model = keras.Sequential([keras.Input((4,)), layer])
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    np.testing.assert_array_equal(to_numpy(model(x)), x)
    # The KL is added on every call, also at inference.
    assert len(model.losses) == 1
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    ks.set_inference(model, "sample")  # reaches the compiled predict function
    sampled = model.predict(x, verbose=0)
    assert not np.allclose(sampled, x)
    assert not np.allclose(sampled, model.predict(x, verbose=0))
    ks.set_inference(model, "mean")
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    samples = ks.predict_mc(model, x, num_samples=3, return_samples=True)[1]
    assert not np.allclose(samples[0], samples[1])


def test_same_seed_same_output():
    x = np.random.default_rng(1).normal(size=(16, 5)).astype("float32")
    first, second, other = (
        ks.layers.VariationalGaussianDropout(seed=seed, kl_weight=1.0)
        for seed in (7, 7, 8)
    )
    a = to_numpy(first(x, training=True))
    np.testing.assert_array_equal(a, to_numpy(second(x, training=True)))
    assert not np.allclose(a, to_numpy(other(x, training=True)))
    assert not np.allclose(a, to_numpy(first(x, training=True)))  # new draw per call


@pytest.mark.parametrize(
    "approximation, parameterization", [("kingma", "neuron"), ("molchanov", "layer")]
)
def test_kl_is_the_kl_module_per_feature(approximation, parameterization):
    layer = built(
        features=3,
        parameterization=parameterization,
        initial_alpha=0.3,
        kl_approximation=approximation,
        kl_weight=0.25,
    )
    if parameterization == "neuron":
        layer._log_alpha.assign(np.array([-6.0, -1.0, -0.1], "float32"))
    log_alpha = to_numpy(layer.log_alpha) * np.ones(3)
    expected = float(
        ks.kl.log_uniform_kl(log_alpha.astype("float32"), approximation=approximation)
    )
    np.testing.assert_allclose(to_numpy(layer.kl_divergence()), expected, rtol=1e-5)
    if approximation == "kingma":
        np.testing.assert_allclose(expected, kingma_kl(log_alpha).sum(), rtol=1e-5)
    layer(np.ones((2, 3), "float32"))
    (loss,) = layer.losses
    np.testing.assert_allclose(to_numpy(loss), 0.25 * expected, rtol=1e-5)


def test_monte_carlo_kl_is_unbiased():
    features = 4000
    layer = built(
        features=features,
        initial_alpha=0.5,
        kl_approximation="monte_carlo",
        seed=0,
    )
    per_feature = float(to_numpy(layer.kl_divergence())) / features
    # One draw per feature, each with a standard deviation below 1.11 nats.
    assert abs(per_feature - exact_kl_dawson(np.log(0.5))) < 5 * 1.11 / np.sqrt(
        features
    )


def test_kingma_keeps_alpha_at_most_one():
    layer = built(initial_alpha=1.0)
    assert float(to_numpy(layer.alpha)) == 1.0
    layer._log_alpha.assign(2.0)  # e.g. set by hand: clipped where used
    assert float(to_numpy(layer.log_alpha)) == 0.0
    np.testing.assert_allclose(
        to_numpy(layer.kl_divergence()), 4 * kingma_kl(0.0), rtol=1e-6
    )
    molchanov = built(kl_approximation="molchanov", initial_alpha=5.0)
    molchanov._log_alpha.assign(10.0)
    assert float(to_numpy(molchanov.log_alpha)) == 8.0


def _alpha_after_training(kl_weight, x_scale, initial_alpha):
    """Trains the noise of a fixed linear map; returns the learned alpha."""
    rng = np.random.default_rng(0)
    x = (x_scale * rng.normal(size=(256, 8))).astype("float32")
    weights = rng.choice([-1.0, 1.0], size=(8, 1)).astype("float32")
    dense = keras.layers.Dense(1, use_bias=False, trainable=False)
    layer = ks.layers.VariationalGaussianDropout(
        "neuron", initial_alpha=initial_alpha, kl_weight=kl_weight, seed=0
    )
    model = keras.Sequential([keras.Input((8,)), layer, dense])
    dense.kernel.assign(weights)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(x, x @ weights, batch_size=64, epochs=15, verbose=0)
    return to_numpy(layer.alpha)


def test_alpha_falls_when_noise_hurts_and_rises_to_one_under_the_kl():
    # The data loss is alpha * sum_i x_i^2 w_i^2: less noise fits better.
    hurt = _alpha_after_training(kl_weight=1e-4, x_scale=1.0, initial_alpha=0.5)
    assert np.all(hurt < 0.25), hurt
    # With inputs near zero only the KL (decreasing in alpha) matters: alpha
    # grows to the constraint alpha <= 1 and stays there.
    free = _alpha_after_training(kl_weight=1.0, x_scale=1e-3, initial_alpha=0.5)
    np.testing.assert_allclose(free, 1.0, atol=1e-6)


def test_digits_mlp_with_type_a_dropout_trains():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    (x_train, y_train), (x_test, y_test) = (x[:1400], y[:1400]), (x[1400:], y[1400:])
    kl_weight = 1.0 / len(x_train)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            ks.layers.VariationalGaussianDropout(kl_weight=kl_weight, seed=0),
            keras.layers.Dense(128, activation="relu"),
            ks.layers.VariationalGaussianDropout(
                "neuron", initial_alpha=1.0, kl_weight=kl_weight, seed=1
            ),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train, y_train, batch_size=32, epochs=8, verbose=0)
    logits = model.predict(x_test, batch_size=len(x_test), verbose=0)
    accuracy = np.mean(np.argmax(logits, axis=-1) == y_test)
    assert accuracy >= 0.95, accuracy
    hidden = to_numpy(model.layers[2].alpha)
    assert np.all(hidden <= 1.0) and hidden.std() > 0  # learned per unit


def test_has_no_kernel_for_pruning_sparsity_or_conversion():
    from keras_stochastic import kernels

    layer = ks.layers.VariationalGaussianDropout(kl_weight=1.0)
    model = keras.Sequential([keras.Input((4,)), layer, keras.layers.Dense(2)])
    assert not kernels.has_kernels(layer) and layer._prunable_variables() == []
    report = ks.sparsity(model)
    assert list(report.layers) == [model.layers[1].name]
    # A copy in a converted model: the Dense becomes stochastic.
    converted = ks.to_bayesian(model, kl_weight=1.0)
    assert type(converted.layers[0]) is ks.layers.VariationalGaussianDropout
    assert type(converted.layers[1]) is ks.layers.DenseFlipout


def test_mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    layer = ks.layers.VariationalGaussianDropout(kl_weight=1.0, seed=0)
    model = keras.Sequential([keras.Input((4,)), layer])
    outputs = model(np.ones((3, 4), "float32"), training=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float16"
    assert keras.backend.standardize_dtype(layer._log_alpha.dtype) == "float32"
    (loss,) = model.losses
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"


def test_warns_once_when_training_with_kl_weight_unset():
    layer = ks.layers.VariationalGaussianDropout(name="noise")
    x = np.ones((2, 4), "float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer(x)  # inference does not warn
        layer(x, training=True)
        layer(x, training=True)
    messages = [
        str(w.message) for w in caught if "kl_weight` not set" in str(w.message)
    ]
    assert len(messages) == 1 and "'noise'" in messages[0]


def test_serialization(tmp_path):
    layer = ks.layers.VariationalGaussianDropout(
        "neuron",
        initial_alpha=0.4,
        kl_approximation="molchanov",
        kl_weight=0.01,
        inference="sample",
        seed=5,
    )
    model = keras.Sequential([keras.Input((3,)), layer, keras.layers.Dense(2)])
    layer._log_alpha.assign(np.array([-3.0, -1.0, 2.0], "float32"))
    config = layer.get_config()
    assert {k: config[k] for k in ("parameterization", "initial_alpha")} == {
        "parameterization": "neuron",
        "initial_alpha": 0.4,
    }
    assert config["kl_approximation"] == "molchanov" and config["seed"] == 5
    assert config_roundtrip(layer).get_config() == config
    assert [w.name for w in layer.weights] == [
        "log_alpha",
        "kl_weight",
        "sample_at_inference",
    ]
    reloaded = save_and_reload(model, tmp_path)
    reloaded_layer = reloaded.layers[0]
    assert type(reloaded_layer) is ks.layers.VariationalGaussianDropout
    assert reloaded_layer.get_config() == config
    np.testing.assert_array_equal(
        to_numpy(reloaded_layer.log_alpha), to_numpy(layer.log_alpha)
    )
    assert reloaded_layer.inference == "sample"
    np.testing.assert_allclose(reloaded_layer.kl_weight, 0.01, rtol=1e-6)
    x = np.ones((2, 3), "float32")
    ks.set_inference(model, "mean")
    ks.set_inference(reloaded, "mean")
    np.testing.assert_array_equal(to_numpy(reloaded(x)), to_numpy(model(x)))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"parameterization": "unit"},
            ValueError,
            "Argument `parameterization` must be one of \\['layer', 'neuron'\\]. "
            "Received: parameterization='unit'",
        ),
        (
            {"kl_approximation": "exact"},
            ValueError,
            "Argument `kl_approximation` must be one of",
        ),
        (
            {"initial_alpha": 2.0},
            ValueError,
            "Argument `initial_alpha` must be a float in .*1\\] with "
            "kl_approximation='kingma'. Received: initial_alpha=2.0",
        ),
        ({"initial_alpha": 0.0}, ValueError, "Received: initial_alpha=0.0"),
        ({"initial_alpha": "0.5"}, TypeError, "Received: initial_alpha='0.5'"),
        ({"kl_weight": -1.0}, ValueError, "Argument `kl_weight`"),
        ({"inference": "median"}, ValueError, "Argument `inference`"),
        ({"seed": 1.5}, TypeError, "Argument `seed`"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        ks.layers.VariationalGaussianDropout(**kwargs)
    assert "Received:" in str(info.value)


def test_molchanov_allows_alpha_above_one():
    layer = ks.layers.VariationalGaussianDropout(
        initial_alpha=4.0, kl_approximation="molchanov"
    )
    assert layer.initial_alpha == 4.0
    with pytest.raises(ValueError, match=f"{math.exp(8):.4g}"):
        ks.layers.VariationalGaussianDropout(
            initial_alpha=1e4, kl_approximation="molchanov"
        )


def test_unknown_last_axis_fails_at_build():
    layer = ks.layers.VariationalGaussianDropout()
    with pytest.raises(ValueError, match="last axis .* must be defined"):
        layer.build((None, 5, None))
