"""`ks.sparsity` with hand-set weights."""

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from keras_stochastic.sparsity import SparsityReport
from tests.testing import to_numpy


def _zero_some(variable, count):
    values = to_numpy(variable).copy()
    values.reshape(-1)[:count] = 0.0
    variable.assign(values)


def test_counts_per_layer_and_global():
    inputs = keras.Input((4, 4, 1))
    h = keras.layers.Conv2D(2, 3, name="conv")(inputs)  # kernel 3x3x1x2 = 18
    h = keras.layers.Reshape((2, 4))(h)
    h = keras.layers.LSTM(3, name="lstm")(h)  # kernel 4x12, recurrent 3x12
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = ks.layers.DenseVariationalDropout(5, parameterization="weight", name="vd")(h)
    h = ks.layers.DenseFlipout(4, name="flipout")(h)  # kernel 5x4 = 20
    outputs = keras.layers.Dense(2, name="dense")(h)  # kernel 4x2 = 8
    model = keras.Model(inputs, outputs)

    conv, lstm, vd, flipout, dense = (
        model.get_layer(name) for name in ("conv", "lstm", "vd", "flipout", "dense")
    )
    _zero_some(conv.kernel, 5)
    conv.bias.assign(np.zeros(2, "float32"))  # biases never count
    _zero_some(lstm.cell.kernel, 10)
    _zero_some(lstm.cell.recurrent_kernel, 4)
    # VD (3 x 5): a row with log alpha = 3 (pruned at the threshold) and two
    # exact zeros of theta elsewhere.
    log_alpha = np.full((3, 5), -2.0, "float32")
    log_alpha[0] = 3.0
    theta = np.ones((3, 5), "float32")
    theta[2, :2] = 0.0
    vd.kernel_mean.assign(theta)
    vd.trainable_weights[1].assign(log_alpha)
    _zero_some(flipout.kernel_mean, 7)
    dense.kernel.assign(np.zeros((4, 2), "float32"))

    report = ks.sparsity(model)
    assert isinstance(report, SparsityReport) and isinstance(report, dict)
    expected = {
        "conv": (5, 18),
        "lstm_cell": (14, 4 * 12 + 3 * 12),
        "vd": (5 + 2, 15),
        "flipout": (7, 20),
        "dense": (8, 8),
    }
    assert set(report.layers) == set(expected)
    assert "bn" not in report
    for name, (zeros, total) in expected.items():
        assert report[name] == {
            "zeros": zeros,
            "total": total,
            "fraction": zeros / total,
        }
    zeros = sum(z for z, _ in expected.values())
    total = sum(t for _, t in expected.values())
    assert report["global"] == {
        "zeros": zeros,
        "total": total,
        "fraction": zeros / total,
    }

    table = str(report)
    lines = table.splitlines()
    assert lines[0].split() == ["layer", "zeros", "total", "sparsity"]
    assert lines[-1].split() == [
        "global",
        str(zeros),
        str(total),
        f"{zeros / total:.2%}",
    ]
    assert any(line.split()[:3] == ["vd", "7", "15"] for line in lines)


def test_threshold_of_the_layer_is_used():
    layer = ks.layers.DenseVariationalDropout(
        2, parameterization="layer", threshold=-4.0
    )
    layer.build((None, 3))
    layer.trainable_weights[1].assign(-4.0)  # exactly at the threshold: all pruned
    assert ks.sparsity(layer)[layer.name]["zeros"] == 6
    layer.trainable_weights[1].assign(-4.5)
    assert ks.sparsity(layer)[layer.name]["zeros"] == 0


def test_unbuilt_and_empty_models_raise():
    with pytest.raises(ValueError, match="not built yet"):
        ks.sparsity(keras.Sequential([keras.layers.Dense(2)]))
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="has no kernel that `sparsity` counts"):
        ks.sparsity(model)
