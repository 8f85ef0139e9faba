"""Each benchmark script runs end to end in a tiny configuration (so they do not rot).

The numbers measured here mean nothing; the tests check that the scripts
build their models, measure, and write consistent JSON and markdown.
"""

import importlib.util
import json
import os

import numpy as np

from benchmarks import gradient_variance
from benchmarks import predict_mc
from benchmarks import profile_step
from benchmarks import rnn_step
from benchmarks import train_step
from benchmarks import variance_matmul
from tests.testing import tensorflow_only


def _installed(*modules):
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _read(tmp_path, name):
    with open(tmp_path / f"{name}.json") as f:
        payload = json.load(f)
    assert os.path.getsize(tmp_path / f"{name}.md") > 0
    return payload


def test_train_step_tiny(tmp_path):
    variants = ["keras", "ks_flipout", "ks_lrt", "ks_reparam"]
    # Peers join when their packages are installed (see benchmarks/README.md).
    if _installed("tensorflow_probability", "tf_keras"):
        variants += ["tf_keras", "tfp_flipout"]
    if _installed("keras_proba"):
        variants += ["kp_flipout"]
    train_step.main(
        [
            "--archs=mlp",
            "--hidden=16,16",
            "--rounds=1",
            "--warmup-rounds=0",
            "--steps=2",
            "--variants=" + ",".join(variants),
            f"--output-dir={tmp_path}",
            "--name=tiny",
        ]
    )
    payload = _read(tmp_path, "tiny")
    (result,) = payload["results"]
    assert result["failed"] == {}
    assert set(result["variants"]) == set(variants)
    for entry in result["variants"].values():
        # 2 recorded steps (each fit runs one more, dropped: it traces).
        assert entry["num_steps"] == 2
        assert entry["median_step_ms"] > 0
    pairs = {(r["numerator"], r["denominator"]): r for r in result["ratios"]}
    for estimator in ("flipout", "lrt", "reparam"):
        ratio = pairs[(f"ks_{estimator}", "keras")]
        assert ratio["bar"] == train_step.BAR_VS_TWIN[estimator]
        expected = (
            result["variants"][f"ks_{estimator}"]["median_step_ms"]
            / result["variants"]["keras"]["median_step_ms"]
        )
        np.testing.assert_allclose(ratio["ratio"], expected)
    if "tfp_flipout" in variants:
        assert pairs[("ks_flipout", "tfp_flipout")]["bar"] == train_step.BAR_VS_TFP


def test_train_step_reports_missing_peer_layers(tmp_path):
    # TFP and keras-proba have no conv LRT layer; neither need be installed.
    train_step.main(
        [
            "--archs=lenet",
            "--rounds=1",
            "--warmup-rounds=0",
            "--steps=2",
            "--variants=keras,tfp_lrt,kp_lrt",
            f"--output-dir={tmp_path}",
            "--name=lenet",
        ]
    )
    (result,) = _read(tmp_path, "lenet")["results"]
    assert set(result["skipped"]) == {"tfp_lrt", "kp_lrt"}
    assert list(result["variants"]) == ["keras"]


@tensorflow_only
def test_profile_step_tiny(tmp_path):
    profile_step.main(
        [
            "--variants=keras,ks_flipout",
            "--steps=2",
            "--hidden=16,16",
            f"--output-dir={tmp_path}",
            "--name=profile",
        ]
    )
    results = _read(tmp_path, "profile")["results"]
    for summary in results.values():
        assert {"forward", "backward", "optimizer"} <= set(summary["by_phase"])
        assert "matmul" in summary["by_kind"]
        assert {"hidden1", "hidden2", "logits"} <= set(summary["by_layer"])
        total = sum(v["ms_per_step"] for v in summary["by_phase"].values())
        np.testing.assert_allclose(total, summary["total_op_ms_per_step"])
    assert "random" in results["ks_flipout"]["by_kind"]
    assert "random" not in results["keras"]["by_kind"]


def test_profile_op_kinds():
    assert profile_step.op_kind("_MklMatMul") == "matmul"
    assert profile_step.op_kind("StatelessRandomUniformV2") == "random"
    assert profile_step.op_kind("Softplus") == "transcendental"
    assert profile_step.op_kind("AssignAddVariableOp") == "variable"
    assert profile_step.op_kind("Mul") == "elementwise/other"


def test_gradient_variance_tiny(tmp_path):
    gradient_variance.main(
        [
            "--sizes=1,4",
            "--draws=3",
            "--repeats=1",
            "--hidden=8",
            "--train-epochs=0",
            "--num-train=64",
            "--estimators=flipout,deterministic",
            f"--output-dir={tmp_path}",
            "--name=gv",
        ]
    )
    payload = _read(tmp_path, "gv")
    assert os.path.getsize(tmp_path / "gv.png") > 0
    table = payload["table"]
    assert set(table) == {"flipout", "deterministic"}
    for by_size in table.values():
        assert by_size["1"]["normalized"] == 1.0
        assert by_size["4"]["variance"] > 0


def test_rnn_step_tiny(tmp_path):
    rnn_step.main(
        [
            "--rounds=1",
            "--steps=2",
            "--batch-size=8",
            "--units=4",
            "--only",
            "SimpleRNN",
            "SimpleRNNFlipout",
            f"--output-dir={tmp_path}",
        ]
    )
    backend = rnn_step.keras.backend.backend()
    payload = _read(tmp_path, f"rnn_step_{backend}")
    rows = {row["layer"]: row for row in payload["results"]}
    assert set(rows) == {"SimpleRNN", "SimpleRNNFlipout"}
    assert rows["SimpleRNNFlipout"]["twin"] == "SimpleRNN"
    assert rows["SimpleRNNFlipout"]["ratio_median"] > 0
    assert len(rows["SimpleRNN"]["round_medians_ms"]) == 1


def test_predict_mc_tiny(tmp_path):
    predict_mc.main(
        [
            "--archs=mlp",
            "--rounds=2",
            "--num-samples=2",
            "--num-examples=16",
            "--batch-size=8",
            f"--output-dir={tmp_path}",
            "--name=pmc",
        ]
    )
    (result,) = _read(tmp_path, "pmc")["results"]
    assert set(result["seconds"]) == {"predict_mean", "predict_sample", "predict_mc"}
    assert all(len(times) == 2 for times in result["seconds"].values())
    low, median, high = result["ratio_per_round_quartiles"]
    assert 0 < low <= median <= high
    assert (tmp_path / "pmc.md").read_text().count("| mlp |") == 1


def test_train_step_versus_an_earlier_commit(tmp_path):
    # In a subprocess: the script adds variants to `benchmarks.train_step`.
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.train_step_versus",
            "--rev=HEAD",
            "--archs=mlp",
            "--hidden=16,16",
            "--rounds=1",
            "--warmup-rounds=0",
            "--steps=2",
            "--variants=ks_flipout,rev_flipout",
            f"--output-dir={tmp_path}",
            "--name=versus",
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
        check=True,
        capture_output=True,
    )
    (result,) = _read(tmp_path, "versus")["results"]
    assert result["failed"] == {}
    assert set(result["variants"]) == {"ks_flipout", "rev_flipout"}
    assert result["variants"]["rev_flipout"]["library"] == "ks_rev"


@tensorflow_only  # its JAX compiles cost 40 s; FlipoutES itself is tested on JAX
def test_evolution_throughput_tiny():
    from benchmarks import _common
    from benchmarks import evolution_throughput

    rows = []
    for method in evolution_throughput.METHODS:
        rows += evolution_throughput.worker(
            method,
            "small",
            [4, 8],
            batch_size=4,
            repeats=1,
            seed=0,
            max_explicit_gib=0.004,
        )
    measured = [r for r in rows if "skipped" not in r]
    assert {(r["method"], r["population"]) for r in measured} == {
        ("flipout", 4),
        ("flipout", 8),
        ("batched", 4),
        ("loop", 4),
        ("loop", 8),
    }
    # The explicit-weight form is skipped past its memory cap, and says why.
    (skipped,) = [r for r in rows if "skipped" in r]
    assert skipped["method"] == "batched" and "GiB" in skipped["skipped"]
    for r in measured:
        assert r["member_evaluations_per_second"] > 0
        assert np.isclose(
            r["member_evaluations_per_second"],
            r["population"] / r["generation_seconds_median"],
        )
    text = evolution_throughput.report(
        _common.environment(), _common.versions(), rows, 4
    )
    assert "| small | 8 |" in text and "skipped" in text


def test_variance_matmul_tiny(tmp_path):
    variance_matmul.main(
        ["--rounds=1", "--calls=1", f"--output-dir={tmp_path}", "--name=vm"]
    )
    payload = _read(tmp_path, "vm")
    assert set(payload["median_ms"]) >= {"forward float32", "forward bfloat16"}
    errors = payload["variance_relative_error"]
    # bfloat16 keeps 8 bits of mantissa, float32 24.
    assert errors["float32"]["max"] < 1e-5 < errors["bfloat16"]["median"] < 1e-2
