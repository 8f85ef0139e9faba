"""ks.regularizers.HoyerSquare: value, scale invariance, sparsifying pull, config."""

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from tests import testing


def test_value_matches_the_closed_form_and_is_scale_invariant():
    w = np.random.default_rng(0).normal(size=(30, 20)).astype("float32")
    regularizer = ks.regularizers.HoyerSquare(0.5)
    expected = 0.5 * np.abs(w).sum() ** 2 / (w**2).sum()
    np.testing.assert_allclose(testing.to_numpy(regularizer(w)), expected, rtol=1e-5)
    np.testing.assert_allclose(
        testing.to_numpy(regularizer(7.0 * w)), expected, rtol=1e-5
    )
    # Bounds: 1 for a single nonzero weight, n for equal magnitudes.
    one_hot = np.zeros(10, "float32")
    one_hot[3] = -2.0
    np.testing.assert_allclose(testing.to_numpy(regularizer(one_hot)), 0.5)
    np.testing.assert_allclose(testing.to_numpy(regularizer(np.ones(10))), 5.0)
    assert float(testing.to_numpy(regularizer(np.zeros(4)))) == 0.0


def test_training_with_it_concentrates_the_weights():
    # Only the regularizer: the kernel's Hoyer ratio falls as small weights shrink.
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(
        16, kernel_regularizer=ks.regularizers.HoyerSquare(1.0), use_bias=False
    )
    model = keras.Sequential([keras.Input((32,)), layer])
    model.compile(keras.optimizers.Adam(0.01), lambda y, p: 0.0 * keras.ops.mean(p))
    ratio = ks.regularizers.HoyerSquare(1.0)
    before = float(testing.to_numpy(ratio(layer.kernel)))
    x = np.zeros((8, 32), "float32")
    model.fit(x, np.zeros((8, 16), "float32"), epochs=50, verbose=0)
    after = float(testing.to_numpy(ratio(layer.kernel)))
    assert after < 0.5 * before, (before, after)


def test_config_and_bad_strength():
    regularizer = ks.regularizers.HoyerSquare(3e-3)
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(regularizer))
    assert isinstance(restored, ks.regularizers.HoyerSquare)
    assert restored.get_config() == {"strength": 3e-3}
    with pytest.raises(ValueError, match="Received: strength=-1"):
        ks.regularizers.HoyerSquare(-1)
