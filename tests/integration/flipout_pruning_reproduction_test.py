"""FlipOut pruning at 99.6% sparsity on MNIST-5k (a reduced `benchmarks/flipout_pruning.py`).

Slow: 9 runs of 200 epochs (about 10 minutes on JAX, 2 CPU cores).
"""

import numpy as np
import pytest

from benchmarks import flipout_pruning
from tutorials import common


@pytest.mark.slow
def test_flipout_at_least_as_accurate_as_global_magnitude_at_99_6_percent():
    data = common.load_mnist(flatten=True)
    sparsity = 1 - 2.0**-8
    accuracy = {
        method: np.array(
            [
                flipout_pruning.train(method, sparsity, seed, data, epochs=200)[
                    "accuracy"
                ]
                for seed in (0, 1, 2)
            ]
        )
        for method in ("flipout", "magnitude", "random")
    }
    flipout, magnitude = accuracy["flipout"], accuracy["magnitude"]
    # The done criterion: FlipOut's mean is at least global magnitude's within
    # one standard deviation (3 seeds), and far above random pruning.
    spread = max(flipout.std(ddof=1), magnitude.std(ddof=1))
    assert flipout.mean() >= magnitude.mean() - spread
    assert accuracy["random"].mean() < 0.3
    assert flipout.mean() > accuracy["random"].mean() + 0.4
