import keras
import numpy as np
import pytest

import keras_stochastic as ks


class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([layer.kl_weight for layer in self.model.layers])


def test_linear_warmup_reaches_the_compiled_step_and_restores_targets():
    rng = np.random.default_rng(0)
    x, y = (
        rng.normal(size=(16, 3)).astype("float32"),
        rng.normal(size=(16, 1)).astype("float32"),
    )
    model = keras.Sequential(
        [
            keras.Input((3,)),
            ks.layers.DenseFlipout(
                4, kl_weight=0.2, kernel_stddev_initializer=1e-6, seed=0
            ),
            ks.layers.DenseReparameterization(
                1, kl_weight=0.1, kernel_stddev_initializer=1e-6, seed=1
            ),
        ]
    )
    model.compile(keras.optimizers.SGD(0.0), "mse")
    kl = [float(layer.kl_divergence()) for layer in model.layers]
    record = Record()
    annealing = ks.callbacks.KLAnnealing(warmup_epochs=4, initial_factor=0.0)
    history = model.fit(
        x, y, batch_size=16, epochs=6, verbose=0, callbacks=[annealing, record]
    )
    factors = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert history.history["kl_factor"] == factors
    np.testing.assert_allclose(
        record.weights, [[0.2 * f, 0.1 * f] for f in factors], rtol=1e-6
    )
    # With a zero learning rate the loss moves only through the KL weight.
    losses = np.array(history.history["loss"])
    expected = losses[0] + np.array(factors) * (0.2 * kl[0] + 0.1 * kl[1])
    np.testing.assert_allclose(losses, expected, rtol=1e-4)
    assert [layer.kl_weight for layer in model.layers] == pytest.approx([0.2, 0.1])


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="Received: warmup_epochs=0"):
        ks.callbacks.KLAnnealing(0)
    with pytest.raises(ValueError, match="Received: initial_factor=1.5"):
        ks.callbacks.KLAnnealing(3, initial_factor=1.5)
    assert ks.callbacks.KLAnnealing(5, 0.1).get_config() == {
        "warmup_epochs": 5,
        "initial_factor": 0.1,
    }
