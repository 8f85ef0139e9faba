"""The Gaussian draws (Box-Muller on TensorFlow, the 16-bit table under XLA) and bit-packed Rademacher signs."""

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


def test_normal_table_is_a_unit_normal_quantization():
    table = rng.normal_table().astype("float64")
    assert table.shape == (2**16,) and rng.normal_table().dtype == "float32"
    np.testing.assert_array_equal(table, -table[::-1])
    assert np.all(np.diff(table) > 0)
    assert abs(np.mean(table**2) - 1.0) < 1e-6
    # Kurtosis of N(0, 1) less the cut tails (a few 1e-4), and the largest value.
    assert 2.999 < np.mean(table**4) < 3.0
    assert 4.3 < table[-1] < 4.5
    # Entry i is the normal's conditional mean on the cell of CDF [i, i + 1] / 2**16.
    cells = np.arange(2**16)
    cdf = stats.norm.cdf(table)
    assert np.all(cdf > cells / 2**16) and np.all(cdf < (cells + 1) / 2**16)


def _compiled_normal(shape, seed, **kwargs):
    """`rng.normal` (or `coarse_normal`, with `stddev`) as XLA compiles it."""
    draw = rng.coarse_normal if "stddev" in kwargs else rng.normal
    return _compiled(draw, shape, seed, **kwargs)


def _compiled(draw, shape, seed, **kwargs):
    """`draw(shape, seed, **kwargs)` as XLA compiles it."""
    if testing.BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda: draw(shape, seed, **kwargs), jit_compile=True)()
    if testing.BACKEND == "jax":
        import jax

        return jax.jit(lambda state: draw(shape, rng.PredrawnSeed(state), **kwargs))(
            seed.next()
        )
    pytest.skip("XLA-compiled draws are JAX and TensorFlow's")


def test_table_draw_statistics_at_a_million():
    n = 1_000_000
    values = testing.to_numpy(
        _compiled_normal((n,), keras.random.SeedGenerator(11))
    ).astype("float64")
    table = rng.normal_table()
    assert np.isin(values[:1000], table).all()
    assert abs(values.mean()) < 5 / np.sqrt(n)
    assert abs(values.var() - 1.0) < 5 * np.sqrt(2.0 / n)
    assert abs(stats.kurtosis(values, fisher=False) - 3.0) < 5 * np.sqrt(24.0 / n)
    assert stats.kstest(values, "norm").pvalue > 1e-4
    # Tail counts against the normal's (binomial tolerances, 5 sigma).
    for cut in (2.0, 3.0, 4.0):
        p = 2 * stats.norm.sf(cut)
        count = np.sum(np.abs(values) > cut)
        assert abs(count - n * p) < 5 * np.sqrt(n * p * (1 - p)) + 1, (cut, count)
    # Neighbouring words are independent, and so are the two 16-bit halves
    # of each word (the first and second halves of the output).
    half = n // 2
    for lag in (1, 2, half):
        assert abs(np.corrcoef(values[:-lag], values[lag:])[0, 1]) < 5 / np.sqrt(
            n - lag
        )
    # Each index is uniform over the 2**16 cells: a chi-square over 64 bins of
    # equal probability (1024 cells each).
    bins = np.searchsorted(table, values) // 1024
    counts = np.bincount(bins, minlength=64)
    assert stats.chisquare(counts).pvalue > 1e-4


def test_table_draw_seeding_shapes_and_scale():
    first = _compiled_normal((317, 251), keras.random.SeedGenerator(3))
    again = _compiled_normal((317, 251), keras.random.SeedGenerator(3))
    other = _compiled_normal((317, 251), keras.random.SeedGenerator(4))
    assert tuple(first.shape) == (317, 251)
    np.testing.assert_array_equal(testing.to_numpy(first), testing.to_numpy(again))
    assert not np.allclose(testing.to_numpy(first), testing.to_numpy(other))
    # An odd size uses half of the last word; the scale goes into the table.
    scaled = _compiled_normal((7,), keras.random.SeedGenerator(3), stddev=0.5)
    unit = _compiled_normal((7,), keras.random.SeedGenerator(3))
    np.testing.assert_allclose(testing.to_numpy(scaled), 0.5 * testing.to_numpy(unit))


def test_random_words_are_uniform_bits_and_fresh_per_draw():
    n = 500_000
    generator = keras.random.SeedGenerator(21)
    first = testing.to_numpy(_compiled(rng._words, (n,), generator)).astype("uint32")
    second = testing.to_numpy(_compiled(rng._words, (n,), generator)).astype("uint32")
    bits = (first[:, None] >> np.arange(32, dtype="uint32")) & 1
    # Every one of the 32 bits is balanced (5 binomial standard errors).
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 5 * 0.5 / np.sqrt(n))
    # The top byte is uniform over its 256 values.
    assert stats.chisquare(np.bincount(first >> 24, minlength=256)).pvalue > 1e-4
    # Successive draws from one generator are new words, unrelated to the last.
    assert np.mean(first == second) < 1e-3
    signed = [w.astype("float64") - 2.0**31 for w in (first, second)]
    assert abs(np.corrcoef(*signed)[0, 1]) < 5 / np.sqrt(n)
    assert abs(np.corrcoef(signed[0][:-1], signed[0][1:])[0, 1]) < 5 / np.sqrt(n)
