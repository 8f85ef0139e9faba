"""`total`: the sum of all entries of a weight-sized tensor, fast where XLA's reduction is slow.

TensorFlow's XLA on a CPU (`jit_compile=True`, and `GradientNoise`'s fused
update) emits a reduction whose input is computed in the same fusion as a
scalar loop, several times slower than streaming the same bytes through an
elementwise pass. A matrix-vector product with a vector of ones runs on the
CPU's matrix library instead, vectorized and threaded, at the cost of writing
the input once. JAX's XLA and TensorFlow without XLA reduce at memory speed,
and on a GPU the fused reduction is the cheaper one: there `total` is
`ops.sum`.
"""

import functools
import math

import keras
from keras import ops

from keras_stochastic import _compat

# Below this many entries, or with fewer columns, the plain sum is as fast.
_MIN_SIZE = 2**15
_MIN_COLUMNS = 64


@functools.cache
def _tensorflow_sees_accelerator():
    import tensorflow as tf

    return bool(
        tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
    )


def _sums_as_matvec(x):
    if keras.backend.backend() != "tensorflow" or not _compat.xla_compiles():
        return False
    shape = tuple(x.shape)
    if len(shape) < 2 or None in shape:
        return False
    if shape[-1] < _MIN_COLUMNS or math.prod(shape) < _MIN_SIZE:
        return False
    return not _tensorflow_sees_accelerator()


def total(x):
    """The sum of all entries of `x` (a scalar of `x`'s dtype).

    Equal to `ops.sum(x)` up to float rounding (the summation order
    differs). Under TensorFlow's XLA on a CPU, for tensors of at least
    2**15 entries whose last dimension has at least 64, it is computed as
    `reshape(x, (-1, columns)) @ ones(columns)`, then summed.
    """
    if not _sums_as_matvec(x):
        return ops.sum(x)
    columns = x.shape[-1]
    rows = ops.reshape(x, (-1, columns))
    return ops.sum(ops.matmul(rows, ops.ones((columns,), dtype=x.dtype)))
