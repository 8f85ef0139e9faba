"""Random draws shared by every estimator.

Two choices here are about speed on CPU, where drawing noise is the dominant
cost of a stochastic layer (see `benchmarks/RESULTS.md`):

- On TensorFlow, Gaussian noise is a Box-Muller transform of Philox uniform
  draws that uses both outputs of each pair. On the TensorFlow CPU kernels this
  costs ~60% of `keras.random.normal` for the same number of values and has the
  same 2**-23 resolution (and so the same |z| <= 5.6 tail truncation) as the
  TensorFlow kernel, which is itself a Box-Muller transform of 23-bit uniforms.
  On other backends it is `keras.random.normal`: under XLA on CPU (JAX), the
  transform's log/sin/cos make Box-Muller about twice as slow as JAX's own
  inverse-CDF normal.
- Rademacher signs take 16 independent bits from each integer draw.

Every draw takes a `keras.random.SeedGenerator`; there is no unseeded draw.

On the TensorFlow backend the uniform and integer draws call
`tf.random.stateless_uniform` with `alg="philox"` instead of going through
`keras.random`, which leaves the algorithm to `"auto_select"`: under XLA
(`jit_compile=True`) on CPU that choice makes 1M uniforms take ~1 s instead of
~9 ms. Without XLA both are the same Philox kernel. The seeds still come from
the layer's `SeedGenerator`, exactly as `keras.random` would draw them.
"""

import math

import keras
import numpy as np
from keras import ops


class PredrawnSeed(keras.random.SeedGenerator):
    """A seed drawn ahead of time, for draws inside `ops.cond` branches.

    JAX cannot advance a generator's state inside a traced branch (the new
    state would leak out of `lax.cond`), so layers draw the seeds a branch needs
    before the branch and hand them over in this wrapper. `keras.random`
    functions accept it wherever they accept a `SeedGenerator`.
    """

    def __init__(self, value):  # noqa: D107 - no state variable on purpose
        self._value = value

    def next(self, ordered=True):
        return self._value


def predraw(seed_generator, count):
    """Draws `count` seeds from `seed_generator` now, for use in a branch."""
    return [PredrawnSeed(seed_generator.next()) for _ in range(count)]


def _tensorflow_seed(seed):
    import tensorflow as tf

    # As keras.random's TensorFlow backend does: uint32 seed state -> int32.
    return tf.cast(seed.next(), "int32")


def uniform(shape, seed, dtype="float32"):
    """Uniform draws in [0, 1)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_uniform(
            shape, seed=_tensorflow_seed(seed), dtype=dtype, alg="philox"
        )
    return keras.random.uniform(shape, seed=seed, dtype=dtype)


def _random_bits16(shape, seed):
    """Uniform integers in [0, 65536): 16 independent random bits each."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_uniform(
            shape,
            seed=_tensorflow_seed(seed),
            minval=0,
            maxval=65536,
            dtype="int32",
            alg="philox",
        )
    return keras.random.randint(shape, 0, 65536, seed=seed, dtype="int32")


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


def _num_elements(shape):
    if all(isinstance(dim, int) for dim in shape):
        return math.prod(shape)
    size = 1
    for dim in shape:
        size = size * dim
    return size


def normal(shape, seed, dtype="float32"):
    """Standard normal draws of `shape` (static or dynamic)."""
    if keras.backend.backend() != "tensorflow":
        # XLA's CPU code for log/sin/cos makes Box-Muller ~2x slower than
        # jax.random.normal's erfinv (17 vs 8 ms per 1M values, jitted).
        return keras.random.normal(shape, seed=seed, dtype=dtype)
    size = _num_elements(shape)
    half = (size + 1) // 2
    draws = uniform((2, half), seed)
    # 1 - u lies in (0, 1], so the log is finite.
    radius = ops.sqrt(-2.0 * ops.log1p(-draws[0]))
    angle = (2.0 * np.pi) * draws[1]
    values = ops.concatenate(
        [radius * ops.cos(angle), radius * ops.sin(angle)], axis=0
    )
    if isinstance(size, int) and size == 2 * half:
        flat = values
    else:
        flat = values[:size]
    return ops.cast(ops.reshape(flat, shape), dtype)


def rademacher(shape, seed, dtype="float32"):
    """Independent +-1 signs of `shape`, drawn as integers (never floats)."""
    size = _num_elements(shape)
    words = _random_bits16(((size + 15) // 16, 1), seed)
    bits = ops.bitwise_and(
        ops.right_shift(words, ops.arange(16, dtype="int32")), 1
    )
    bits = ops.reshape(bits, (-1,))[:size]
    return ops.reshape(ops.cast(2 * bits - 1, dtype), shape)
