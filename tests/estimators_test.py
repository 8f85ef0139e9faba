"""Statistics of the estimators, against closed forms.

Marginals are checked over independent layer calls (one weight draw per call);
within-call correlations over examples of one call. Tolerances are five
standard errors for the number of draws used.
"""

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from keras_stochastic import estimators
from tests import testing

DENSE = {
    "reparameterization": ks.layers.DenseReparameterization,
    "flipout": ks.layers.DenseFlipout,
    "local_reparameterization": ks.layers.DenseLocalReparameterization,
}
CONV = {
    "reparameterization": ks.layers.Conv2DReparameterization,
    "flipout": ks.layers.Conv2DFlipout,
    "local_reparameterization": ks.layers.Conv2DLocalReparameterization,
}


def dense_layer(cls, seed=0, in_dim=3, units=2):
    rng = np.random.default_rng(seed)
    layer = cls(units, seed=seed, inference="sample")
    layer.build((None, in_dim))
    layer.kernel_mean.assign(rng.normal(size=(in_dim, units)))
    stddev = rng.uniform(0.2, 0.8, size=(in_dim, units))
    layer.posterior.rho.assign(np.log(np.expm1(stddev - 1e-7)))
    layer.bias.assign(rng.normal(size=(units,)))
    return layer, stddev


@pytest.mark.parametrize("name", list(DENSE))
def test_marginal_mean_and_variance_match_closed_form(name):
    layer, stddev = dense_layer(DENSE[name])
    x = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]], "float32")
    model = testing.sequential(layer, (3,))
    draws = 3000
    # Sample mode: every predict batch is one layer call, i.e. one weight draw.
    samples = model.predict(np.tile(x, (draws, 1)), batch_size=2, verbose=0)
    samples = samples.reshape(draws, 2, 2)
    kernel = testing.to_numpy(layer.kernel_mean)
    expected_mean = x @ kernel + testing.to_numpy(layer.bias)
    expected_var = (x**2) @ (stddev**2)
    tolerance = testing.sample_tolerance(np.sqrt(expected_var), draws)
    np.testing.assert_array_less(np.abs(samples.mean(0) - expected_mean), tolerance)
    var_tolerance = 5 * expected_var * np.sqrt(2.0 / (draws - 1))
    np.testing.assert_array_less(
        np.abs(samples.var(0, ddof=1) - expected_var), var_tolerance
    )


@pytest.mark.parametrize("name", ["flipout", "local_reparameterization"])
@pytest.mark.parametrize("family", ["dense", "conv"])
def test_identical_rows_are_uncorrelated_within_one_call(name, family):
    batch = 2000
    if family == "dense":
        layer, _ = dense_layer(DENSE[name], units=3)
        x = np.tile(np.array([[1.0, -2.0, 0.5]], "float32"), (batch, 1))
        mean = x[:1] @ testing.to_numpy(layer.kernel_mean) + testing.to_numpy(
            layer.bias
        )
    else:
        layer = CONV[name](2, 2, seed=1, kernel_stddev_initializer=0.5)
        x = np.tile(
            np.random.default_rng(0).normal(size=(1, 3, 3, 2)).astype("float32"),
            (batch, 1, 1, 1),
        )
        layer.build(x.shape)
        mean = testing.to_numpy(layer(x[:1]))
    outputs = testing.to_numpy(layer(x, training=True)).reshape(batch, -1)
    centered = outputs - mean.reshape(1, -1)
    first, second = centered[0::2], centered[1::2]
    # Per output unit, the correlation of the noise of paired identical rows.
    correlation = (first * second).mean(0) / np.sqrt(
        (first**2).mean(0) * (second**2).mean(0)
    )
    assert np.all(np.abs(correlation) < 5 / np.sqrt(batch // 2)), correlation
    assert np.all(centered.std(0) > 0.05)


@pytest.mark.parametrize("family", ["dense", "conv"])
def test_shared_sample_gives_identical_rows(family):
    if family == "dense":
        layer, _ = dense_layer(DENSE["reparameterization"])
        x = np.tile(np.array([[1.0, -2.0, 0.5]], "float32"), (64, 1))
    else:
        layer = CONV["reparameterization"](2, 2, seed=1, kernel_stddev_initializer=0.5)
        x = np.tile(np.ones((1, 3, 3, 2), "float32"), (64, 1, 1, 1))
    outputs = testing.to_numpy(layer(x, training=True)).reshape(64, -1)
    np.testing.assert_array_equal(outputs, np.broadcast_to(outputs[:1], outputs.shape))
    again = testing.to_numpy(layer(x[:1], training=True)).reshape(-1)
    assert not np.allclose(outputs[0], again)


@pytest.mark.parametrize("name", list(DENSE))
def test_tiny_sigma_reproduces_keras_dense(name):
    x = np.random.default_rng(1).normal(size=(16, 6)).astype("float32")
    layer = DENSE[name](4, seed=0, kernel_stddev_initializer=1e-6)
    twin = keras.layers.Dense(4)
    layer(x), twin(x)
    layer.posterior.rho.assign(np.full((6, 4), -100.0))  # stddev = 1e-7 floor
    twin.kernel.assign(layer.kernel_mean)
    expected = testing.to_numpy(twin(x))
    np.testing.assert_allclose(
        testing.to_numpy(layer(x, training=True)), expected, atol=2e-5
    )
    # Mean-mode inference is the Keras layer itself.
    np.testing.assert_allclose(
        testing.to_numpy(layer(x)), expected, rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("name", list(CONV))
def test_tiny_sigma_reproduces_keras_conv(name):
    x = np.random.default_rng(1).normal(size=(4, 6, 6, 3)).astype("float32")
    layer = CONV[name](4, 3, padding="same", seed=0, kernel_stddev_initializer=1e-6)
    twin = keras.layers.Conv2D(4, 3, padding="same")
    layer(x), twin(x)
    layer.posterior.rho.assign(np.full((3, 3, 3, 4), -100.0))
    twin.kernel.assign(layer.kernel_mean)
    expected = testing.to_numpy(twin(x))
    np.testing.assert_allclose(
        testing.to_numpy(layer(x, training=True)), expected, atol=2e-5
    )


@pytest.mark.parametrize("name", list(DENSE))
def test_same_seed_same_output_and_mean_mode_deterministic(name):
    x = np.random.default_rng(2).normal(size=(8, 5)).astype("float32")
    first = DENSE[name](3, seed=11, kernel_stddev_initializer=0.3)
    second = DENSE[name](3, seed=11, kernel_stddev_initializer=0.3)
    other = DENSE[name](3, seed=12, kernel_stddev_initializer=0.3)
    for layer in (first, second, other):
        layer.build(x.shape)
        layer.kernel_mean.assign(np.ones((5, 3)))
    a = testing.to_numpy(first(x, training=True))
    np.testing.assert_array_equal(a, testing.to_numpy(second(x, training=True)))
    assert not np.allclose(a, testing.to_numpy(other(x, training=True)))
    assert not np.allclose(
        a, testing.to_numpy(first(x, training=True))
    )  # new draw per call
    np.testing.assert_array_equal(
        testing.to_numpy(first(x)), testing.to_numpy(first(x))
    )


def test_flipout_signs_shapes_and_balance():
    x = keras.ops.ones((1000, 4, 5, 3))
    sign_in, sign_out = estimators.flipout_signs(
        x, -1, 7, keras.random.SeedGenerator(0)
    )
    assert tuple(sign_in.shape) == (1000, 1, 1, 3) and tuple(sign_out.shape) == (
        1000,
        1,
        1,
        7,
    )
    values = testing.to_numpy(sign_out)
    assert set(np.unique(values)) == {-1.0, 1.0}
    assert abs(values.mean()) < 5 / np.sqrt(values.size)
    sign_in, _ = estimators.flipout_signs(
        keras.ops.ones((10, 3, 4, 4)), 1, 2, keras.random.SeedGenerator(0)
    )
    assert tuple(sign_in.shape) == (10, 3, 1, 1)


# The per-example estimator, on every dense layer that takes it, with the
# weight variance of each posterior in closed form. Its rows are independent,
# so one call gives its marginals.
def _gaussian_per_example():
    layer, stddev = dense_layer(ks.layers.DensePerExample, units=3)
    return layer, stddev**2, testing.to_numpy(layer.kernel_mean)


def _dropout_per_example():
    layer = ks.layers.DenseVariationalDropout(
        3, parameterization="weight", estimator="per_example", seed=0
    )
    layer.build((None, 3))
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(3, 3)).astype("float32")
    log_alpha = rng.uniform(-2.0, 0.5, size=(3, 3)).astype("float32")
    layer.kernel_mean.assign(theta)
    layer.posterior.log_variance.assign(log_alpha)
    return layer, np.exp(log_alpha) * theta**2, theta


def _variance_per_example():
    layer = ks.layers.DenseVariance(
        3, distribution="bernoulli", estimator="per_example", seed=0
    )
    layer.build((None, 3))
    scale = np.random.default_rng(0).uniform(0.3, 1.0, size=(3, 3)).astype("float32")
    layer.kernel_scale.assign(scale)
    return layer, scale**2, np.zeros((3, 3), "float32")


PER_EXAMPLE = {
    "gaussian": _gaussian_per_example,
    "variational_dropout": _dropout_per_example,
    "variance_bernoulli": _variance_per_example,
}


@pytest.mark.parametrize("posterior", list(PER_EXAMPLE))
def test_per_example_rows_have_the_marginals_and_are_independent(posterior):
    layer, weight_variance, mean_kernel = PER_EXAMPLE[posterior]()
    batch = 20000
    x = np.array([[1.0, -2.0, 0.5]], "float32")
    outputs = testing.to_numpy(layer(np.tile(x, (batch, 1)), training=True))
    expected_mean = (x @ mean_kernel + testing.to_numpy(layer.bias))[0]
    expected_var = ((x**2) @ weight_variance)[0]
    np.testing.assert_array_less(
        np.abs(outputs.mean(0) - expected_mean),
        testing.sample_tolerance(np.sqrt(expected_var), batch),
    )
    # Gaussian standard error of the sample variance; the sum of +-scale
    # (Bernoulli) terms has lighter tails, so it bounds theirs too.
    np.testing.assert_array_less(
        np.abs(outputs.var(0, ddof=1) - expected_var),
        5 * expected_var * np.sqrt(2.0 / (batch - 1)),
    )
    # One weight sample per example: identical rows of one call are
    # uncorrelated (neighbours, and each unit with the others).
    noise = (outputs - expected_mean) / np.sqrt(expected_var)
    lag = (noise[1:] * noise[:-1]).mean(0)
    assert np.all(np.abs(lag) < 5 / np.sqrt(batch)), lag
    across = np.corrcoef(noise, rowvar=False)[np.triu_indices(3, 1)]
    assert np.all(np.abs(across) < 5 / np.sqrt(batch)), across


def test_per_example_same_seed_same_output_and_tiny_sigma_is_keras_dense():
    x = np.random.default_rng(3).normal(size=(32, 6)).astype("float32")
    first, second, other = (
        ks.layers.DensePerExample(4, seed=seed, kernel_stddev_initializer=0.3)
        for seed in (5, 5, 6)
    )
    for layer in (first, second, other):
        layer.build(x.shape)
        layer.kernel_mean.assign(np.ones((6, 4)))
    a = testing.to_numpy(first(x, training=True))
    np.testing.assert_array_equal(a, testing.to_numpy(second(x, training=True)))
    assert not np.allclose(a, testing.to_numpy(other(x, training=True)))
    assert not np.allclose(a, testing.to_numpy(first(x, training=True)))
    # sigma -> 0 (the 1e-7 floor): every example's sample is the mean.
    first.posterior.rho.assign(np.full((6, 4), -100.0))
    twin = keras.layers.Dense(4)
    twin.build(x.shape)
    twin.kernel.assign(first.kernel_mean)
    np.testing.assert_allclose(
        testing.to_numpy(first(x, training=True)), testing.to_numpy(twin(x)), atol=2e-5
    )
    # Middle axes, (batch, rows, in): one sample per example for all its rows.
    rows = testing.to_numpy(other(np.ones((4, 5, 6), "float32"), training=True))
    assert rows.shape == (4, 5, 4)
    np.testing.assert_allclose(rows, np.broadcast_to(rows[:, :1], rows.shape))
    assert not np.allclose(rows[0], rows[1])


@pytest.mark.parametrize(
    "make",
    [
        lambda: ks.layers.Conv2DVariationalDropout(2, 3, estimator="per_example"),
        lambda: ks.layers.Conv1DVariance(2, 3, estimator="per_example"),
    ],
    ids=["conv_variational_dropout", "conv_variance"],
)
def test_convolutions_and_recurrent_cells_refuse_per_example(make):
    with pytest.raises(ValueError, match="Argument `estimator` must be one of") as info:
        make()
    assert "Received: estimator='per_example'" in str(info.value)
    from keras_stochastic.layers.rnn.base_recurrent import RECURRENT_ESTIMATORS

    with pytest.raises(ValueError, match="Received: estimator='per_example'"):
        estimators.get("per_example", RECURRENT_ESTIMATORS)


def test_per_example_memory_limit(monkeypatch):
    monkeypatch.setattr(estimators, "PER_EXAMPLE_MAX_ELEMENTS", 1000)
    layer = ks.layers.DensePerExample(10, seed=0, kl_weight=1.0)
    x = np.ones((11, 10), "float32")
    with pytest.raises(ValueError) as info:
        layer(x, training=True)
    message = str(info.value)
    assert "PER_EXAMPLE_MAX_ELEMENTS = 1000" in message
    assert "Received: batch size 11 x kernel size 100 = 1100" in message
    layer(x)  # "mean" inference draws nothing: no limit
    layer.inference = "sample"
    with pytest.raises(ValueError, match="= 1100"):
        layer(x)


@testing.tensorflow_only
def test_per_example_memory_limit_at_run_time(monkeypatch):
    import tensorflow as tf

    # `fit` traces with an unknown batch size on TensorFlow (the last batch
    # is partial): the check runs in the graph.
    monkeypatch.setattr(estimators, "PER_EXAMPLE_MAX_ELEMENTS", 1000)
    model = testing.sequential(ks.layers.DensePerExample(10, kl_weight=1.0), (10,))
    with pytest.raises(tf.errors.InvalidArgumentError, match="PER_EXAMPLE_MAX"):
        testing.fit_steps(
            model, np.ones((15, 10)), np.zeros((15, 10)), steps=2, batch_size=11
        )
