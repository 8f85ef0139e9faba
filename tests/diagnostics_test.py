import keras
import numpy as np
import pytest

import keras_stochastic as ks


def test_gradient_variance_of_a_deterministic_model_matches_sampling_theory():
    rng = np.random.default_rng(0)
    n, batch = 400, 8
    x = rng.normal(size=(n, 1)).astype("float32")
    y = rng.normal(size=(n, 1)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile("sgd", "mse")
    # Per-example gradient of (xw - y)^2 at w = 0 is -2 x y; a batch mean of
    # `batch` examples drawn without replacement has this variance:
    per_example = -2.0 * x[:, 0] * y[:, 0]
    expected = per_example.var(ddof=1) / batch * (n - batch) / (n - 1)
    draws = 600
    variance = ks.diagnostics.gradient_variance(
        model, x, y, batch, num_draws=draws, seed=1
    )
    (value,) = variance.values()
    assert abs(value - expected) < 5 * expected * np.sqrt(2.0 / draws)


def test_flipout_gradient_variance_falls_with_batch_size():
    x = np.ones((512, 8), "float32")  # no data noise: only weight noise
    y = np.zeros((512, 1), "float32")

    def model_for(cls):
        layer = cls(1, kernel_stddev_initializer=0.5, seed=3)
        model = keras.Sequential([keras.Input((8,)), layer])
        model.compile("sgd", "mse")
        return model, layer

    ratios = {}
    for cls in (ks.layers.DenseFlipout, ks.layers.DenseReparameterization):
        model, layer = model_for(cls)
        values = [
            ks.diagnostics.gradient_variance(
                model, x, y, n, num_draws=200, variables=[layer.kernel_mean], seed=0
            )
            for n in (1, 64)
        ]
        ratios[cls.__name__] = (
            list(values[1].values())[0] * 64 / list(values[0].values())[0]
        )
    assert ratios["DenseFlipout"] < 2.0
    assert ratios["DenseReparameterization"] > 20.0


def test_bad_arguments():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    x, y = np.zeros((4, 1)), np.zeros((4, 1))
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        ks.diagnostics.gradient_variance(model, x, y, 0)
    with pytest.raises(ValueError, match="Received: batch_size=5"):
        ks.diagnostics.gradient_variance(model, x, y, 5, loss="mse")
    with pytest.raises(ValueError, match="Pass `loss`"):
        ks.diagnostics.gradient_variance(model, x, y, 2)
