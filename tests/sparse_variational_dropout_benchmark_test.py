"""The sparse VD reproduction (issue 3's bar) as a slow test, and its script in smoke mode."""

import json

import pytest

from benchmarks import sparse_variational_dropout as benchmark


def test_benchmark_script_runs_and_reports(tmp_path):
    # Smoke mode: 512 digits, one epoch; the numbers mean nothing.
    payload = benchmark.main(
        ["--seeds=0", "--nets=lenet300", f"--output-dir={tmp_path}"], smoke=True
    )
    (result,) = payload["seeds"]
    net = result["nets"]["lenet300"]
    assert set(net["sparse_vd"]["sparsity"]) == {
        "dense_variational_dropout",
        "dense_variational_dropout_1",
        "dense_variational_dropout_2",
        "global",
    }
    assert net["sparse_vd"]["sparsity"]["global"]["total"] == 266200
    assert (tmp_path / "sparse_variational_dropout.png").stat().st_size > 0
    assert "LeNet-300-100" in (tmp_path / "sparse_variational_dropout.md").read_text()
    with open(tmp_path / "sparse_variational_dropout_seed0.json") as f:
        assert json.load(f)["run"]["tutorial_args"][:2] == ["--nets", "lenet300"]


@pytest.mark.slow
def test_lenet300_prunes_95_percent_within_one_point(tmp_path):
    payload = benchmark.main(
        ["--seeds=0", "--nets=lenet300", f"--output-dir={tmp_path}"]
    )
    (result,) = payload["seeds"]
    ok, sparsity, accuracy_loss = benchmark.meets_bar(result)
    assert sparsity >= 0.95, result["nets"]["lenet300"]["sparse_vd"]["sparsity"]
    assert accuracy_loss <= 0.01, result["nets"]["lenet300"]
    assert ok
