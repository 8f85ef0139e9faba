"""The Gaussian (Box-Muller on TensorFlow) and bit-packed Rademacher draws."""

import keras
import numpy as np
import pytest
from scipy import stats

from keras_stochastic import rng
from tests import testing


@pytest.mark.parametrize("shape", [(100_001,), (317, 251)])
def test_normal_is_standard_normal(shape):
    values = testing.to_numpy(rng.normal(shape, keras.random.SeedGenerator(5))).ravel()
    assert values.shape == (np.prod(shape),)
    n = values.size
    assert abs(values.mean()) < 5 / np.sqrt(n)
    assert abs(values.var() - 1.0) < 5 * np.sqrt(2.0 / n)
    assert abs(stats.kurtosis(values, fisher=False) - 3.0) < 5 * np.sqrt(24.0 / n)
    assert stats.kstest(values, "norm").pvalue > 1e-4
    # The two halves of each Box-Muller pair are independent.
    half = (n + 1) // 2
    pairs = np.corrcoef(values[: n - half], values[half:])[0, 1]
    assert abs(pairs) < 5 / np.sqrt(n // 2)


def test_normal_seeding_and_dtype():
    a = rng.normal((5, 3), keras.random.SeedGenerator(1), "float16")
    b = rng.normal((5, 3), keras.random.SeedGenerator(1), "float16")
    assert a.dtype == "float16"
    np.testing.assert_array_equal(testing.to_numpy(a), testing.to_numpy(b))
    generator = keras.random.SeedGenerator(1)
    assert not np.allclose(
        testing.to_numpy(rng.normal((4,), generator)),
        testing.to_numpy(rng.normal((4,), generator)),
    )


@pytest.mark.parametrize("shape", [(1,), (17,), (64, 33)])
def test_rademacher_signs(shape):
    values = testing.to_numpy(rng.rademacher(shape, keras.random.SeedGenerator(2)))
    assert values.shape == shape
    assert set(np.unique(values)) <= {-1.0, 1.0}


def test_rademacher_balance_and_independence():
    values = testing.to_numpy(rng.rademacher((200_000,), keras.random.SeedGenerator(3)))
    n = values.size
    assert abs(values.mean()) < 5 / np.sqrt(n)
    # Neighbouring bits of one integer draw, and bits 16 apart, are independent.
    for lag in (1, 15, 16):
        assert abs(np.mean(values[:-lag] * values[lag:])) < 5 / np.sqrt(n)


def test_draws_work_with_dynamic_batch_dimension():
    layer_input = keras.Input((3,))
    outputs = keras.layers.Lambda(
        lambda x: rng.normal(keras.ops.shape(x), keras.random.SeedGenerator(0))
    )(layer_input)
    assert tuple(outputs.shape) == (None, 3)
