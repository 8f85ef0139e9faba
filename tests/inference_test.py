"""predict_mc, set_inference, set_kl_weight and kl_divergence on whole models."""

import keras
import numpy as np
import pytest

import keras_stochastic as ks


def small_model(stddev=0.2, units=3):
    return keras.Sequential(
        [
            keras.Input((4,)),
            ks.layers.DenseFlipout(
                8, activation="relu", kernel_stddev_initializer=stddev, seed=1
            ),
            ks.layers.DenseLocalReparameterization(
                units, kernel_stddev_initializer=stddev, seed=2
            ),
        ]
    )


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, n)


def test_set_inference_reaches_a_compiled_predict_function():
    model = small_model()
    x, _ = data()
    mean = model.predict(x, verbose=0)
    function = model.predict_function
    ks.set_inference(model, "sample")
    first, second = model.predict(x, verbose=0), model.predict(x, verbose=0)
    assert model.predict_function is function  # not retraced
    assert not np.allclose(first, second) and not np.allclose(first, mean)
    assert all(layer.inference == "sample" for layer in model.layers)
    ks.set_inference(model, "mean")
    np.testing.assert_array_equal(model.predict(x, verbose=0), mean)
    with pytest.raises(ValueError, match="Received: inference='median'"):
        ks.set_inference(model, "median")


def test_set_kl_weight_reaches_a_compiled_train_step():
    # Zero learning rate and tiny sigma: the loss is NLL + kl_weight * KL.
    model = small_model(stddev=1e-6)
    x, y = data()
    model.compile(
        keras.optimizers.SGD(0.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    kl = float(ks.kl_divergence(model))
    first = model.train_on_batch(x, y)
    function = model.train_function
    ks.set_kl_weight(model, 3.0)
    second = model.train_on_batch(x, y)
    assert model.train_function is function
    np.testing.assert_allclose(second - first, 2.0 * kl, rtol=1e-4)
    assert [layer.kl_weight for layer in model.layers] == [3.0, 3.0]
    with pytest.raises(ValueError, match="Received: kl_weight=-2"):
        ks.set_kl_weight(model, -2)


def test_predict_mc_averages_probabilities_and_restores_modes():
    model = small_model(stddev=0.5)
    x, _ = data(n=5)
    model.layers[0].inference = "mean"
    model.layers[1].inference = "sample"
    samples = 100
    mean, std = ks.predict_mc(
        model, x, num_samples=samples, from_logits=True, return_std=True
    )
    assert mean.shape == (5, 3) and std.shape == (5, 3)
    np.testing.assert_allclose(mean.sum(-1), 1.0, rtol=1e-6)
    assert np.all(std > 0)
    assert [layer.inference for layer in model.layers] == ["mean", "sample"]
    # Against a direct Monte Carlo average of softmax(sampled logits): one
    # predict over `samples` copies of x, one layer call (weight draw) per copy.
    ks.set_inference(model, "sample")
    logits = model.predict(np.tile(x, (samples, 1)), batch_size=5, verbose=0)
    direct = keras.ops.convert_to_numpy(
        keras.ops.softmax(logits.reshape(samples, 5, 3))
    ).mean(0)
    tolerance = 5 * np.sqrt(2) * std / np.sqrt(samples) + 1e-6
    np.testing.assert_array_less(np.abs(mean - direct), tolerance)
    logits = ks.predict_mc(model, x, num_samples=3)
    assert not np.allclose(logits.sum(-1), 1.0)


def test_predict_mc_sigmoid_for_one_unit_and_errors():
    model = small_model(units=1)
    x, _ = data(n=4)
    probs = ks.predict_mc(model, x, num_samples=2, from_logits=True)
    assert np.all((probs > 0) & (probs < 1))
    with pytest.raises(ValueError, match="Received: num_samples=0"):
        ks.predict_mc(model, x, num_samples=0)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="contains no keras_stochastic layer"):
        ks.predict_mc(plain, x)


def test_kl_divergence_sums_layers_and_needs_a_built_model():
    model = small_model()
    expected = sum(float(layer.kl_divergence()) for layer in model.layers)
    np.testing.assert_allclose(float(ks.kl_divergence(model)), expected, rtol=1e-6)
    unbuilt = keras.Sequential([ks.layers.DenseFlipout(2)])
    with pytest.raises(ValueError):
        ks.kl_divergence(unbuilt)


def test_nested_models_are_reached():
    inner = small_model()
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)])
    ks.set_inference(outer, "sample")
    ks.set_kl_weight(outer, 0.5)
    assert all(
        layer.inference == "sample" and layer.kl_weight == 0.5 for layer in inner.layers
    )


def _match_rows(got, expected, atol):
    """Index of the row of `expected` each row of `got` equals (within `atol`), or -1."""
    distance = np.abs(got[:, None, :] - expected[None, :, :]).max(axis=-1)
    return np.where(distance.min(axis=1) <= atol, distance.argmin(axis=1), -1)


def test_predict_mc_on_a_reshuffled_dataset_keeps_rows_together():
    # sigma ~ 0: every sample equals the mean-mode output, so each averaged
    # row must be one example's output. Averaging rows of different examples
    # (the dataset reshuffled on every pass) matches none.
    import tensorflow as tf

    model = small_model(stddev=1e-6)
    x, _ = data(64)
    expected = model.predict(x, verbose=0)
    dataset = (
        tf.data.Dataset.from_tensor_slices(x)
        .shuffle(64, seed=3, reshuffle_each_iteration=True)
        .batch(16)
    )
    mean, samples = ks.predict_mc(model, dataset, num_samples=5, return_samples=True)
    rows = _match_rows(mean, expected, atol=1e-4)
    assert (rows >= 0).all() and sorted(rows) == list(range(64))
    assert samples.shape == (5, 64, 3)
    np.testing.assert_allclose(samples.mean(0), mean, rtol=1e-6)


def test_predict_mc_on_a_dataset_of_pairs_and_a_generator():
    import tensorflow as tf

    model = small_model(stddev=1e-6)
    x, y = data(40)
    expected = model.predict(x, verbose=0)
    pairs = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    np.testing.assert_allclose(
        ks.predict_mc(model, pairs, num_samples=3), expected, atol=1e-4
    )

    def batches():
        for start in range(0, 40, 16):
            yield x[start : start + 16], y[start : start + 16]

    np.testing.assert_allclose(
        ks.predict_mc(model, batches(), num_samples=4), expected, atol=1e-4
    )


def test_predict_mc_return_samples_holds_each_sample():
    model = small_model(stddev=0.3)
    x, _ = data(20)
    mean, std, samples = ks.predict_mc(
        model,
        x,
        num_samples=6,
        batch_size=8,
        from_logits=True,
        return_std=True,
        return_samples=True,
    )
    assert samples.shape == (6, 20, 3)
    np.testing.assert_allclose(samples.sum(-1), 1.0, rtol=1e-6)  # probabilities
    np.testing.assert_allclose(samples.mean(0), mean, rtol=1e-6)
    np.testing.assert_allclose(samples.std(0), std, rtol=1e-6)
    assert not np.allclose(samples[0], samples[1])


def test_predict_mc_sigmoid_of_extreme_logits_neither_overflows_nor_rounds_to_zero():
    model = keras.Sequential(
        [
            keras.Input((1,)),
            ks.layers.DenseFlipout(
                1,
                kernel_initializer="ones",
                kernel_stddev_initializer=keras.initializers.Constant(1e-6),
                seed=0,
            ),
        ]
    )
    x = np.array([[-800.0], [-50.0], [0.0], [50.0]], "float32")
    with np.errstate(over="raise"):
        probs = ks.predict_mc(model, x, num_samples=2, from_logits=True)
    expected = np.exp(-np.logaddexp(0.0, -x[:, 0].astype("float64")))
    np.testing.assert_allclose(probs[:, 0], expected, rtol=1e-4)
    assert probs[1, 0] > 0
