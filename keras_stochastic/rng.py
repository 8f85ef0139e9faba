"""Every random draw of the package: seeds, uniforms, signs and Gaussians.

Nothing else in `keras_stochastic` calls `keras.random` or a backend's random
functions; layers, posteriors, priors, the KL estimators and the optimizers
all draw here, each from a `keras.random.SeedGenerator` (there is no unseeded
draw).

The choices below are about speed on CPU, where drawing noise is the dominant
cost of a stochastic layer (see `benchmarks/RESULTS.md`):

- On TensorFlow, uniform and integer draws call `tf.random.stateless_uniform`
  with `alg="philox"` instead of going through `keras.random`, which leaves the
  algorithm to `"auto_select"`: under XLA (`jit_compile=True`) on CPU that
  choice is two orders of magnitude slower. Without XLA both are the same
  Philox kernel. The seeds still come from the caller's `SeedGenerator`,
  exactly as `keras.random` would draw them.
- Where XLA compiles the draw (always on JAX; on TensorFlow inside
  `jit_compile=True` functions, Keras's default on a GPU), Gaussian noise is
  a table draw: each 32-bit random word gives two 16-bit indices into
  `normal_table()`, the conditional means of N(0, 1) on 2**16 cells of equal
  probability (the low halves of the words make the first half of the
  values, the high halves the second). That is half the random bits of an
  inverse-CDF or Box-Muller draw and no transcendental function per value
  (XLA's CPU code for `log`, `sin`, `cos` and `erf_inv` costs more than the
  bits). The table has mean 0
  and variance 1 (to float32 rounding), kurtosis 2.9998, its largest value is
  4.39 (the normal tail beyond it has mass 1.1e-5), and its CDF is within
  2**-16 of the normal CDF.
- TensorFlow without XLA keeps the exact draw: Box-Muller of Philox uniforms,
  using both outputs of each pair (cheaper than the table there, whose gather
  is slow on TensorFlow's CPU kernels, and than `keras.random.normal`), with a
  2**-23 resolution and so a |z| <= 5.6 tail truncation. So on TensorFlow the
  same seed gives different Gaussian noise with and without XLA (each draw is
  exact for its own distribution; the uniform and integer draws are equal).
- On JAX the table draw's random words come from XLA's own threefry
  generator (`jax.lax.rng_bit_generator` with `RNG_THREE_FRY`, keyed by the
  caller's seed): the threefry2x32 of `jax.random.bits`, which XLA's CPU
  code runs about three times as fast. Integer draws (Rademacher signs, 16
  from each word) keep `jax.random.bits` (see `random_bits`). JAX marks
  `rng_bit_generator` experimental, and XLA guarantees its output only as a
  deterministic function of the seed, not across XLA releases or backends:
  the same seed can give other noise after a JAX upgrade or on another kind
  of device.
- On other backends Gaussian noise is `keras.random.normal`.

Under `tf.distribute` strategies the replica id is folded into every seed on
TensorFlow (see `keras_stochastic._distribute`): replicas draw independent
noise from their mirrored seed states.

`coarse_normal` spends 16 random bits per value everywhere: on TensorFlow without
XLA it is the Box-Muller transform of 16-bit halves of one 32-bit word, for
noise that needs neither far tails nor fine resolution (gradient noise), and
the table draw elsewhere. Rademacher signs take 16 independent bits from each
integer draw.
"""

import math
import statistics

import keras
import numpy as np
from keras import ops

from keras_stochastic import _compat
from keras_stochastic import _distribute


class PredrawnSeed(keras.random.SeedGenerator):
    """A seed drawn ahead of time, for draws inside `ops.cond` branches.

    JAX cannot advance a generator's state inside a traced branch (the new
    state would leak out of `lax.cond`), so layers draw the seeds a branch needs
    before the branch and hand them over in this wrapper. Every function of
    this module accepts it wherever it accepts a `SeedGenerator`.
    """

    def __init__(self, value):  # noqa: D107 - no state variable on purpose
        self._value = value

    def next(self, ordered=True):
        return self._value


def predraw(seed_generator, count):
    """Draws `count` seeds from `seed_generator` now, for use in a branch."""
    return [PredrawnSeed(seed_generator.next()) for _ in range(count)]


def fold_in(seed, data):
    """A seed derived from a predrawn `seed` and an int32 scalar tensor `data`.

    For draws inside a traced loop body (a `lax.scan` on JAX), where no
    generator may advance: each distinct `data` gives its own stream, and the
    same `(seed, data)` always gives the same one. `data` is added to the
    first of the two seed words (the counter word is what the generator
    advances, so streams drawn later from it are not hit).
    """
    value = seed.next()
    data = ops.cast(data, value.dtype)
    return PredrawnSeed(value + ops.stack([data, ops.zeros_like(data)]))


def _is_tensorflow():
    return keras.backend.backend() == "tensorflow"


# Multiplies a replica id before it is XOR-ed into a seed's first word (the
# golden-ratio constant of Fibonacci hashing, so that replica streams do not
# land on the small offsets `fold_in` uses for time steps).
_REPLICA_MIX = 2654435769


def _tensorflow_seed(seed):
    import tensorflow as tf

    value = seed.next()
    found = _distribute.replica()
    if found is not None:
        # Mirrored seed states are equal on every replica: make each
        # replica's draws its own. Replica 0 keeps the seed unchanged.
        replica_id = tf.cast(found[0], "int64")
        mix = tf.math.floormod(replica_id * _REPLICA_MIX, 2**32)
        value = tf.bitwise.bitwise_xor(
            tf.cast(value, "int64"), tf.stack([mix, tf.zeros_like(mix)])
        )
    # As keras.random's TensorFlow backend does: uint32 seed state -> int32.
    return tf.cast(value, "int32")


def _num_elements(shape):
    if all(isinstance(dim, int) for dim in shape):
        return math.prod(shape)
    size = 1
    for dim in shape:
        size = size * dim
    return size


def _philox(shape, seed, minval, maxval, dtype):
    """TensorFlow's stateless Philox draw in [minval, maxval), seeded from `seed`."""
    import tensorflow as tf

    return tf.random.stateless_uniform(
        shape,
        seed=_tensorflow_seed(seed),
        minval=minval,
        maxval=maxval,
        dtype=dtype,
        alg="philox",
    )


def uniform(shape, seed, dtype="float32", minval=0.0, maxval=1.0):
    """Uniform draws in [minval, maxval)."""
    if _is_tensorflow():
        return _philox(shape, seed, minval, maxval, dtype)
    return keras.random.uniform(shape, minval, maxval, seed=seed, dtype=dtype)


def random_bits(shape, seed, bits):
    """Uniform int32 integers in [0, 2**bits): `bits` independent random bits each.

    `bits` is at most 31; with 31 on TensorFlow the range stops one short, at
    2**31 - 2 (int32's largest exclusive bound), which leaves the low 16 bits
    uniform to within 2**-31. On JAX these are the top `bits` bits of one
    `jax.random.bits` threefry word.
    """
    maxval = min(2**bits, 2**31 - 1)
    if _is_tensorflow():
        return _philox(shape, seed, 0, maxval, "int32")
    if keras.backend.backend() == "jax":
        import jax

        # One threefry word each (`jax.random.randint` spends two on every
        # bounded integer), from `jax.random.bits` rather than `_words`:
        # callers split each integer into many values (16 Rademacher signs),
        # and XLA fuses `_words`' generator into such consumers, which then
        # hash each word once per value they read from it.
        words = jax.random.bits(seed.next(), shape, "uint32")
        return ops.cast(ops.right_shift(words, 32 - bits), "int32")
    return keras.random.randint(shape, 0, maxval, seed=seed, dtype="int32")


def _words(shape, seed):
    """32 random bits per element (JAX: uint32 from threefry; TensorFlow: int32 from Philox).

    On JAX the words come from XLA's own threefry generator
    (`RngBitGenerator`), the threefry2x32 of `jax.random.bits`, which XLA's
    CPU code runs about three times as fast.
    """
    if _is_tensorflow():
        # No bounds: every int32 value, all 32 bits random.
        return _philox(shape, seed, None, None, "int32")
    import jax

    key = ops.cast(seed.next(), "uint32")
    state = ops.concatenate([key, ops.zeros((2,), "uint32")])
    return jax.lax.rng_bit_generator(
        state, shape, "uint32", algorithm=jax.lax.RandomAlgorithm.RNG_THREE_FRY
    )[1]


_TABLE_BITS = 16
_TABLE = []


def normal_table():
    """The 2**16 float32 values of the table draw of `normal` (see the module docstring).

    Entry `i` is `E[Z | Z in cell i]`, Z ~ N(0, 1), the cells cut at the
    normal quantiles `i / 2**16`; the table is then made exactly symmetric
    and scaled to variance 1 (a change of about 1e-6). Built once, in
    float64, from the standard library's normal quantile function.
    """
    if not _TABLE:
        size = 2**_TABLE_BITS
        unit = statistics.NormalDist()
        edges = np.array([unit.inv_cdf(i / size) for i in range(1, size)])
        density = np.concatenate([[0.0], np.exp(-0.5 * edges**2), [0.0]])
        density = density / math.sqrt(2.0 * math.pi)
        values = size * (density[:-1] - density[1:])
        values = 0.5 * (values - values[::-1])
        values = values / math.sqrt(np.mean(values**2))
        _TABLE.append(values.astype("float32"))
    return _TABLE[0]


def _table_normal(shape, seed, dtype, stddev=None):
    """Normal draws of `shape` from 16-bit indices into `normal_table()`."""
    size = _num_elements(shape)
    words = _words(((size + 1) // 2,), seed)
    low = ops.bitwise_and(words, 2**_TABLE_BITS - 1)
    high = ops.bitwise_and(ops.right_shift(words, _TABLE_BITS), 2**_TABLE_BITS - 1)
    table = ops.convert_to_tensor(normal_table())
    if stddev is not None:
        # A scalar scale goes into the 2**16 table, not the draw.
        table = table * stddev
    # The first half of the values from the low 16 bits, the second from the
    # high: XLA computes each half's indices inside its gather's loop, where
    # interleaving them made it write the indices out first.
    values = ops.concatenate(
        [
            ops.take(table, ops.cast(low, "int32"), axis=0),
            ops.take(table, ops.cast(high, "int32"), axis=0),
        ]
    )
    return _first(values, size, shape, dtype)


def _box_muller(log_uniform, angle_uniform, scale=None):
    """Two independent N(0, 1) halves from `log(u)`, u in (0, 1], and an angle uniform in [0, 1)."""
    radius = ops.sqrt(-2.0 * log_uniform)
    if scale is not None:
        # The scale goes into the radius, half the size of the output.
        radius = radius * scale
    angle = (2.0 * np.pi) * angle_uniform
    return ops.concatenate([radius * ops.cos(angle), radius * ops.sin(angle)], axis=0)


def _first(values, size, shape, dtype):
    if not (isinstance(size, int) and size == values.shape[0]):
        values = values[:size]
    return ops.cast(ops.reshape(values, shape), dtype)


def normal(shape, seed, dtype="float32"):
    """Standard normal draws of `shape` (static or dynamic).

    Compiled by XLA (JAX; TensorFlow under `jit_compile=True`) this is the
    16-bit table draw, otherwise exact Box-Muller (TensorFlow) or
    `keras.random.normal` (see the module docstring).
    """
    if _compat.xla_compiles():
        return _table_normal(shape, seed, dtype)
    if not _is_tensorflow():
        return keras.random.normal(shape, seed=seed, dtype=dtype)
    size = _num_elements(shape)
    half = (size + 1) // 2
    draws = uniform((2, half), seed)
    # 1 - u lies in (0, 1], so the log is finite.
    return _first(_box_muller(ops.log1p(-draws[0]), draws[1]), size, shape, dtype)


def coarse_normal(shape, seed, dtype="float32", stddev=1.0):
    """N(0, stddev**2) draws from 16 random bits each (a static `shape`).

    Each 31-bit random word gives two values: 16 bits for the radius (cell
    midpoints, so |z| <= 4.85, which drops a tail mass of 1.2e-6 and changes the
    variance by less than 1e-5) and 15 for the angle, on TensorFlow without
    XLA. Half the random bits of `normal` there; for noise that needs neither
    far tails nor fine resolution. Compiled by XLA (JAX, TensorFlow under
    `jit_compile=True`) it is `normal`'s table draw, scaled; on other backends
    `keras.random.normal`, scaled.
    """
    stddev = ops.cast(stddev, "float32")
    if _compat.xla_compiles():
        return _table_normal(shape, seed, dtype, stddev=stddev)
    if not _is_tensorflow():
        return keras.random.normal(shape, seed=seed, dtype=dtype) * ops.cast(
            stddev, dtype
        )
    size = math.prod(shape)
    half = (size + 1) // 2
    words = random_bits((half,), seed, 31)
    low = ops.cast(ops.bitwise_and(words, 65535), "float32")
    high = ops.cast(ops.right_shift(words, 16), "float32")
    values = _box_muller(
        ops.log((65535.5 - low) * (1.0 / 65536.0)), high * (1.0 / 32768.0), scale=stddev
    )
    return _first(values, size, shape, dtype)


def rademacher(shape, seed, dtype="float32"):
    """Independent +-1 signs of `shape`, drawn as integers (never floats)."""
    size = _num_elements(shape)
    words = random_bits(((size + 15) // 16, 1), seed, 16)
    bits = ops.bitwise_and(ops.right_shift(words, ops.arange(16, dtype="int32")), 1)
    bits = ops.reshape(bits, (-1,))[:size]
    return ops.reshape(ops.cast(2 * bits - 1, dtype), shape)
