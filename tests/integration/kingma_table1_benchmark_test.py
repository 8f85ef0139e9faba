"""`benchmarks.kingma_table1`: a tiny end-to-end run, and (slow) the paper's ordering."""

import json
import os

import numpy as np
import pytest

from benchmarks import kingma_table1
from tests.testing import tensorflow_only


def _run(tmp_path, *args):
    kingma_table1.main([*args, f"--output-dir={tmp_path}", "--name=table1"])
    with open(tmp_path / "table1.json") as f:
        payload = json.load(f)
    assert os.path.getsize(tmp_path / "table1.md") > 0
    return payload


# TensorFlow only: on JAX the run compiles some 25 XLA programs (about 20 s
# here); the estimators' JAX paths are tested in tests/estimators_test.py and
# tests/layers/.
@tensorflow_only
def test_kingma_table1_tiny(tmp_path):
    payload = _run(
        tmp_path,
        "--epochs=1",
        "--hidden=4",
        "--num-train=64",
        "--train-batch-size=32",
        "--batch-size=8",
        "--draws=3",
        "--speed-rounds=1",
        "--speed-steps=2",
        "--speed-warmup-rounds=0",
    )
    (checkpoint,) = payload["checkpoints"].values()
    assert set(checkpoint["variance"]) == set(kingma_table1.KINDS)
    for entry in checkpoint["variance"].values():
        assert entry["top"] > 0 and entry["bottom"] > 0
    assert isinstance(checkpoint["ordering_holds"], bool)
    speed = payload["speed"]
    assert speed["num_steps"] == {"local_reparameterization": 1, "per_example": 1}
    np.testing.assert_allclose(
        speed["ratio_per_example_to_lrt"],
        speed["median_step_ms"]["per_example"]
        / speed["median_step_ms"]["local_reparameterization"],
    )


@pytest.mark.slow
def test_kingma_table1_ordering(tmp_path):
    # The default model after 10 epochs, 300 gradients per estimator (~2 min).
    payload = _run(tmp_path, "--epochs=10", "--draws=300", "--speed-rounds=0")
    (checkpoint,) = payload["checkpoints"].values()
    variance = checkpoint["variance"]
    assert checkpoint["test_accuracy"] > 0.9
    for layer in ("top", "bottom"):
        ordered = [
            variance[kind][layer] for kind in ("no_noise",) + kingma_table1.ESTIMATORS
        ]
        # no noise < local reparameterization < per example < shared sample.
        assert ordered == sorted(ordered), (layer, ordered)
