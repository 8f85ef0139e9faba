"""The FlipOut pruning benchmarks run end to end in a tiny configuration.

The numbers mean nothing; the tests check that the scripts run, write
consistent JSON and markdown, and that the reproduction resumes.
"""

import json

from benchmarks import flipout_pruning
from benchmarks import pruning_step


def test_flipout_pruning_sweep_writes_and_resumes(tmp_path, monkeypatch):
    (x_train, y_train), (x_test, y_test) = flipout_pruning.common.load_mnist(
        flatten=True
    )
    small = ((x_train[:256], y_train[:256]), (x_test[:100], y_test[:100]))
    monkeypatch.setattr(flipout_pruning.common, "load_mnist", lambda **kwargs: small)
    argv = [
        "--epochs=3",
        "--compressions=2",
        "--seeds=0",
        "--methods=magnitude",
        f"--output-dir={tmp_path}",
        "--name=tiny",
    ]
    flipout_pruning.main(argv)
    with open(tmp_path / "tiny.json") as f:
        first = json.load(f)
    (run,) = first["runs"]
    assert (run["method"], run["m"], run["seed"]) == ("magnitude", 2, 0)
    assert abs(run["sparsity"] - 0.75) < 1e-5
    assert "PARTIAL" in (tmp_path / "tiny.md").read_text()
    assert (tmp_path / "tiny.png").stat().st_size > 0
    # Same settings: the finished run is kept, not trained again.
    flipout_pruning.main(argv)
    with open(tmp_path / "tiny.json") as f:
        assert json.load(f)["runs"] == first["runs"]


def test_flipout_pruning_lenet5_new_methods(tmp_path, monkeypatch):
    (x_train, y_train), (x_test, y_test) = flipout_pruning.common.load_mnist(
        flatten=True
    )
    small = ((x_train[:256], y_train[:256]), (x_test[:100], y_test[:100]))
    monkeypatch.setattr(flipout_pruning.common, "load_mnist", lambda **kwargs: small)
    methods = ["flipout_no_noise", "snip", "hoyer_square", "flipout_rademacher"]
    flipout_pruning.main(
        [
            "--arch=lenet5",
            "--epochs=3",
            "--compressions=2",
            "--seeds=0",
            f"--methods={','.join(methods)}",
            f"--output-dir={tmp_path}",
            "--name=tiny5",
        ]
    )
    with open(tmp_path / "tiny5.json") as f:
        payload = json.load(f)
    assert payload["arch"] == "lenet5"
    assert [run["method"] for run in payload["runs"]] == methods
    for run in payload["runs"]:
        assert abs(run["sparsity"] - 0.75) < 1e-3, run
    assert "LeNet-5" in (tmp_path / "tiny5.md").read_text()


def test_pruning_step_tiny(tmp_path):
    pruning_step.main(
        [
            "--steps=3",
            "--rounds=1",
            "--warmup-rounds=0",
            "--variants=plain,flipout",
            f"--output-dir={tmp_path}",
        ]
    )
    (path,) = tmp_path.glob("pruning_step_*.json")
    with open(path) as f:
        payload = json.load(f)
    assert set(payload["ratio_to_plain"]) == {"plain", "flipout"}
    assert payload["median_step_ms"]["flipout"] > 0
    assert payload["bar"] == pruning_step.BAR
