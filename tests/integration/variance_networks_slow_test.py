"""The variance-network reproduction (issue 3's bar), as a slow test: `pytest -m slow`."""

import pytest

from benchmarks import variance_networks


@pytest.mark.slow
def test_variance_lenet5_ensemble_matches_baseline_while_mean_is_chance(tmp_path):
    results = variance_networks.run(seed=0, output_dir=str(tmp_path))
    ok, gap, mean_propagation = variance_networks.meets_bar(results)
    assert mean_propagation <= 0.20, results["variance_network"]
    assert gap <= 0.015, (results["baseline_accuracy"], results["variance_network"])
    assert ok
    pruning = {row["sparsity"]: row["accuracy"] for row in results["pruning"]}
    assert pruning[0.0] >= results["baseline_accuracy"] - 0.02
