import keras
import numpy as np
import pytest
from keras import ops

from keras_stochastic import _reductions
from tests import testing


@pytest.mark.parametrize(
    "shape",
    [(300, 200), (3, 3, 32, 128), (40000, 10), (7,), (64, 64)],
    ids=["matrix", "conv_kernel", "few_columns", "vector", "small"],
)
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "xla"])
def test_total_is_the_sum_of_all_entries(shape, compiled):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, size=shape).astype("float32")

    def total(x):
        # Squared inside the function: XLA sees a producer, as in the KL.
        return _reductions.total(ops.square(x))

    fn = testing.xla_compiled(total) if compiled else total
    got = float(testing.to_numpy(fn(ops.convert_to_tensor(x))))
    expected = float(np.sum(x.astype("float64") ** 2))
    # float32 sums of n positive terms: relative error well under n * 2**-24.
    assert abs(got - expected) <= 1e-5 * expected


def test_matvec_only_under_tensorflow_xla_on_cpu():
    big = np.ones((300, 200), "float32")
    seen = []

    def probe(x):
        seen.append(_reductions._sums_as_matvec(x))
        return ops.sum(x)

    probe(ops.convert_to_tensor(big))
    testing.xla_compiled(probe)(ops.convert_to_tensor(big))
    # Eagerly never; under XLA on TensorFlow's CPU only (JAX's XLA reduces
    # at memory speed, and so does a GPU).
    assert seen[0] is False
    assert seen[1] is (keras.backend.backend() == "tensorflow")
    assert _reductions._sums_as_matvec(ops.ones((5, 5))) is False
