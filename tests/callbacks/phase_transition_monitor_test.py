import keras
import numpy as np
import pytest

import keras_stochastic as ks
from keras_stochastic.callbacks import phase_transition_monitor
from tests import testing

KEYS = ks.callbacks.PhaseTransitionMonitor.KEYS


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0).astype("int32")
    return x, y


def _mixed_model():
    return keras.Sequential(
        [
            keras.Input((6,)),
            ks.layers.DenseFlipout(8, activation="relu", kl_weight=1e-3, seed=1),
            ks.layers.DenseVariance(8, activation="relu", use_bias=False, seed=2),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(4),
        ]
    )


def test_writes_the_four_accuracies_and_restores_modes():
    x, y = _data()
    model = _mixed_model()
    flipout, variance = ks.inference.stochastic_layers(model)
    flipout.inference = "sample"
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    monitor = ks.callbacks.PhaseTransitionMonitor(
        (x[:64], y[:64]), num_samples=2, from_logits=True, batch_size=32
    )
    history = model.fit(x, y, epochs=2, batch_size=50, callbacks=[monitor], verbose=0)
    for key in KEYS:
        values = history.history[key]
        assert len(values) == 2
        assert all(0.0 <= value <= 1.0 for value in values)
    # A zero-mean layer followed by a constant: mean propagation predicts
    # one class for every example.
    mean_predictions = history.history["val_mean_propagation_accuracy"]
    counts = np.bincount(y[:64], minlength=4) / 64
    assert all(any(np.isclose(acc, c) for c in counts) for acc in mean_predictions)
    assert flipout.inference == "sample" and variance.inference == "sample"
    assert not flipout._drop_mean_term and not variance._drop_mean_term


def test_restores_modes_on_error():
    x, y = _data(32)
    model = _mixed_model()
    flipout, variance = ks.inference.stochastic_layers(model)
    # Inputs of the wrong width: predict fails inside the mean-mode switch.
    monitor = ks.callbacks.PhaseTransitionMonitor((x[:, :5], y), num_samples=1)
    monitor.set_model(model)
    with pytest.raises(ValueError):
        monitor.evaluate()
    assert flipout.inference == "mean" and variance.inference == "sample"
    assert not flipout._drop_mean_term and not variance._drop_mean_term


def test_zero_mean_approximation_drops_the_mean():
    # A layer that encodes the label in its mean (tiny variance): perfect
    # mean propagation and ensemble, chance once the mean is dropped (flipout
    # flips each example's noise independently, so errors are independent).
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 2)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    layer = ks.layers.DenseFlipout(
        2, use_bias=False, kernel_stddev_initializer=1e-4, seed=3
    )
    model = testing.sequential(layer, (2,))
    layer.kernel_mean.assign(np.array([[-1.0, 1.0], [0.0, 0.0]], "float32"))
    monitor = ks.callbacks.PhaseTransitionMonitor(
        (x, y), num_samples=3, from_logits=True
    )
    monitor.set_model(model)
    for _ in range(2):
        accuracies = monitor.evaluate()
        assert accuracies["val_mean_propagation_accuracy"] == 1.0
        assert accuracies["val_one_sample_accuracy"] == 1.0
        assert accuracies["val_ensemble_accuracy"] == 1.0
        # Chance is 0.5 with a standard error of 0.025 over 400 examples.
        assert abs(accuracies["val_zero_mean_accuracy"] - 0.5) < 0.15
    # The eager zero-mean pass leaves nothing behind in the compiled predict.
    np.testing.assert_allclose(
        model.predict(x, verbose=0), x @ np.array([[-1.0, 1.0], [0.0, 0.0]]), atol=1e-5
    )


def test_accuracy_with_one_hot_labels_and_one_unit():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    accuracy = phase_transition_monitor._accuracy
    assert accuracy(probs, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy(probs, np.eye(2)[[0, 1, 1]]) == pytest.approx(2 / 3)
    assert accuracy(np.array([[0.7], [0.2]]), np.array([1, 1])) == 0.5


def test_bad_arguments():
    x, y = _data(8)
    with pytest.raises(
        ValueError, match=r"`validation_data` must be a tuple `\(x, y\)`"
    ):
        ks.callbacks.PhaseTransitionMonitor(x)
    with pytest.raises(ValueError, match=r"Received: num_samples=0"):
        ks.callbacks.PhaseTransitionMonitor((x, y), num_samples=0)
    with pytest.raises(TypeError, match=r"Received: batch_size=2.5"):
        ks.callbacks.PhaseTransitionMonitor((x, y), batch_size=2.5)
    with pytest.raises(TypeError, match=r"Received: from_logits='yes'"):
        ks.callbacks.PhaseTransitionMonitor((x, y), from_logits="yes")
    config = ks.callbacks.PhaseTransitionMonitor((x, y), num_samples=3).get_config()
    assert config == {"num_samples": 3, "from_logits": False, "batch_size": 256}


def _recurrent_pair(cls, means_scale):
    """Two equal-seeded models, one with random kernel means, one with zeros.

    Biases and posterior stddevs are equal; only the kernel and recurrent
    kernel means differ.
    """
    rng = np.random.default_rng(5)
    models = []
    for scale in (means_scale, 0.0):
        layer = cls(4, return_sequences=True, kernel_stddev_initializer=0.3, seed=11)
        model = testing.sequential(layer, (5, 3))
        for mean in (layer.kernel_mean, layer.recurrent_kernel_mean):
            mean.assign(scale * rng.normal(size=mean.shape).astype("float32"))
        models.append(model)
    return models


@pytest.mark.parametrize(
    "cls", [ks.layers.LSTMFlipout, ks.layers.SimpleRNNLocalReparameterization]
)
def test_zero_mean_approximation_drops_the_recurrent_kernel_means(cls):
    # The zero-mean approximation samples with the mean term dropped from the
    # estimator, so only the noise term remains: with the flag set, a layer
    # whose kernel means are large and random must give exactly what the same
    # layer (same seed, stddevs and bias) with zero kernel means gives.
    x = np.random.default_rng(6).normal(size=(6, 5, 3)).astype("float32")
    y = np.zeros(6, "int32")
    with_means, zero_means = _recurrent_pair(cls, means_scale=3.0)

    def zero_mean_outputs(model):
        layers = ks.inference.stochastic_layers(model)
        # The route of `val_zero_mean_accuracy`: a predict function traced
        # with `_drop_mean_term` set (ensemble of 2 samples, raw outputs)...
        monitor = ks.callbacks.PhaseTransitionMonitor((x, y), num_samples=2)
        monitor.set_model(model)
        ensemble = monitor._zero_mean_ensemble(layers, x)
        assert not any(layer._drop_mean_term for layer in layers)
        # ...and an eager training-mode sample under the same switch.
        with ks.inference._switched_modes(layers, drop_mean_term=True):
            sample = testing.to_numpy(model(x, training=True))
        return ensemble, sample

    # Not trivial: the means do change the ordinary (mean-term) samples...
    ordinary = [testing.to_numpy(m(x, training=True)) for m in (with_means, zero_means)]
    assert np.abs(ordinary[0] - ordinary[1]).max() > 0.1
    got, want = zero_mean_outputs(with_means), zero_mean_outputs(zero_means)
    # ...and the zero-mean outputs vary across examples and steps (the noise
    # term is there).
    assert want[1].std() > 0.05
    for name, a, b in zip(("ensemble", "training sample"), got, want):
        np.testing.assert_allclose(
            a,
            b,
            atol=1e-5,
            err_msg=f"{cls.__name__}: zero-mean {name} depends on the kernel means",
        )
