"""Sparse variational dropout on MNIST-5k (Molchanov et al., 2017), as seeded runs.

Runs `tutorials/sparse_variational_dropout.py` (the one implementation of the
experiment) in a subprocess once per seed, then records its numbers with the
machine, the versions, the command and the time:
`benchmarks/results/sparse_variational_dropout.{json,md}`, one
`sparse_variational_dropout_seed<N>.json` per seed (a rerun skips the seeds
already there unless `--force`, so an interrupted run resumes), and the
tutorial's PNG of the first seed.

    python -m benchmarks.sparse_variational_dropout [--seeds 0,1,2] [--nets lenet300,lenet5]
        [--epochs 60] [--lenet5-epochs 15] [--kl-scale 0.07] [--full-mnist] [--force]

The bar (issue 3, DESIGN section 8): LeNet-300-100 with sparse VD prunes at
least 95% of its weights and its (pruned, mean-mode) test accuracy is at most
one point below the same net trained without VD, per seed.

The train-step cost of `DenseVariationalDropout` against `keras.layers.Dense`
is measured by `benchmarks.train_step` (variant `ks_vd`).
"""

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import _common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIAL = os.path.join(ROOT, "tutorials", "sparse_variational_dropout.py")
NAME = "sparse_variational_dropout"
PNG = f"{NAME}.png"
MIN_SPARSITY = 0.95
MAX_ACCURACY_LOSS = 0.01


def meets_bar(result):
    """(ok, sparsity, accuracy loss) of one seed's LeNet-300-100."""
    net = result["nets"]["lenet300"]
    sparsity = net["sparse_vd"]["sparsity"]["global"]["fraction"]
    loss = net["baseline"]["accuracy"] - net["sparse_vd"]["accuracy"]
    return sparsity >= MIN_SPARSITY and loss <= MAX_ACCURACY_LOSS, sparsity, loss


def run_seed(
    seed, tutorial_args=(), output_dir=_common.DEFAULT_OUTPUT_DIR, keep_png=True, smoke=False
):
    """Runs the tutorial with `seed`; returns its results plus run metadata.

    `smoke=True` runs it with `KS_TUTORIAL_SMOKE=1` (tiny data, one epoch: for
    tests of this script, not for results).
    """
    command = [sys.executable, TUTORIAL, "--seed", str(seed), *tutorial_args]
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ)
        env.pop("KS_TUTORIAL_SMOKE", None)
        if smoke:
            env["KS_TUTORIAL_SMOKE"] = "1"
        env.update(
            {
                "KS_OUTPUT_DIR": scratch,
                "TF_CPP_MIN_LOG_LEVEL": "3",
                "MPLBACKEND": "Agg",
                "PYTHONPATH": os.pathsep.join(
                    [ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
                ),
            }
        )
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = os.getloadavg()
        wall_start = time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, check=True)
        wall = time.perf_counter() - wall_start
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(os.path.join(scratch, f"{NAME}.json")) as f:
            result = json.load(f)
        if keep_png:
            shutil.copy(os.path.join(scratch, PNG), os.path.join(output_dir, PNG))
    result["run"] = {
        "tutorial_command": " ".join(
            ["python", os.path.relpath(TUTORIAL, ROOT)]
            + [shlex.quote(a) for a in command[2:]]
        ),
        "tutorial_args": list(tutorial_args),
        "wall_seconds": wall,
        "cpu_seconds": (cpu_after.ru_utime - cpu_before.ru_utime)
        + (cpu_after.ru_stime - cpu_before.ru_stime),
        "load_average_at_start": load_before,
    }
    return result


def _percent(value):
    return f"{100 * value:.1f}"


def markdown(payload):
    text = _common.header_markdown(
        "Sparse variational dropout on MNIST-5k", payload["environment"], payload["versions"]
    )
    first = payload["seeds"][0]
    text += (
        f"Each seed runs `{first['run']['tutorial_command']}` (seed varied); data "
        f"{first['data']}, {first['num_train']} training digits, KL weight "
        f"{first['kl_scale']} / {first['num_train']} with a linear warm-up over the "
        "first third of the epochs, Adam 1e-3 decaying linearly to 0, batch 100. "
        "Accuracies on the 1000 test digits (standard error about 0.7 points); "
        "'pruned mean' is `\"mean\"` inference (theta with log alpha >= 3 zeroed), "
        "'ensemble' the 20-sample `ks.predict_mc`. Wall time is an upper bound: the "
        "cores are shared with other jobs.\n\n"
    )
    rows = []
    for result in payload["seeds"]:
        for key, net in result["nets"].items():
            sparse = net["sparse_vd"]
            per_layer = ", ".join(
                f"{_percent(entry['fraction'])}"
                for name, entry in sparse["sparsity"].items()
                if name != "global"
            )
            rows.append(
                [
                    result["seed"],
                    key,
                    net["epochs"],
                    _percent(net["baseline"]["accuracy"]),
                    _percent(sparse["accuracy"]),
                    _percent(sparse["ensemble_accuracy"]),
                    f"{100 * (sparse['accuracy'] - net['baseline']['accuracy']):+.1f}",
                    _percent(sparse["sparsity"]["global"]["fraction"]),
                    per_layer,
                    f"{net['baseline']['seconds']:.0f} / {sparse['seconds']:.0f}",
                ]
            )
    text += _common.markdown_table(
        [
            "seed",
            "net",
            "epochs",
            "no VD acc. %",
            "VD pruned mean acc. %",
            "VD ensemble acc. %",
            "change (points)",
            "weights pruned %",
            "pruned % per layer",
            "fit s (no VD / VD)",
        ],
        rows,
    )
    verdicts = []
    for result in payload["seeds"]:
        if "lenet300" not in result["nets"]:
            continue
        ok, sparsity, loss = meets_bar(result)
        verdicts.append(ok)
        text += (
            f"\n- Seed {result['seed']}: LeNet-300-100 pruned {_percent(sparsity)}% "
            f"(bar >= {_percent(MIN_SPARSITY)}%), accuracy loss {100 * loss:+.1f} points "
            f"(bar <= {100 * MAX_ACCURACY_LOSS:.0f}): **{'met' if ok else 'NOT met'}**. "
            f"Run: {result['run']['wall_seconds']:.0f} s wall, "
            f"{result['run']['cpu_seconds']:.0f} s CPU."
        )
    if verdicts:
        losses = [meets_bar(r)[2] for r in payload["seeds"] if "lenet300" in r["nets"]]
        sparsities = [meets_bar(r)[1] for r in payload["seeds"] if "lenet300" in r["nets"]]
        text += (
            f"\n\nLeNet-300-100 over {len(verdicts)} seed(s): accuracy loss mean "
            f"{100 * np.mean(losses):+.2f} points, sparsity mean {_percent(np.mean(sparsities))}%; "
            f"bar met for {sum(verdicts)} of {len(verdicts)}.\n"
        )
    text += f"\nPlot (first seed): `benchmarks/results/{PNG}`.\n"
    return text


def main(argv=None, smoke=False):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--nets", default="lenet300,lenet5")
    # The tutorial's defaults, passed explicitly so that each seed's record
    # (and the resume check) names every setting.
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lenet5-epochs", type=int, default=15)
    parser.add_argument("--kl-scale", type=float, default=0.07)
    parser.add_argument("--full-mnist", action="store_true")
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--force", action="store_true", help="rerun seeds already recorded")
    args = parser.parse_args(argv)
    tutorial_args = [
        "--nets",
        args.nets,
        "--epochs",
        str(args.epochs),
        "--lenet5-epochs",
        str(args.lenet5_epochs),
        "--kl-scale",
        str(args.kl_scale),
    ]
    if args.full_mnist:
        tutorial_args.append("--full-mnist")
    env = _common.environment()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    results = []
    for index, seed in enumerate(seeds):
        path = os.path.join(args.output_dir, f"{NAME}_seed{seed}.json")
        if os.path.exists(path) and not args.force:
            with open(path) as f:
                result = json.load(f)
            if result["run"].get("tutorial_args") == tutorial_args:
                print(f"[{NAME}] seed {seed}: reusing {path}", file=sys.stderr)
                results.append(result)
                continue
        result = run_seed(
            seed, tutorial_args, args.output_dir, keep_png=index == 0, smoke=smoke
        )
        _common.write_json(path, result)
        results.append(result)
    payload = {
        "benchmark": NAME,
        "environment": env,
        "versions": _common.versions(),
        "seeds": results,
    }
    payload["environment"]["load_average_at_end"] = os.getloadavg()
    _common.write_json(os.path.join(args.output_dir, f"{NAME}.json"), payload)
    text = markdown(payload)
    _common.write_text(os.path.join(args.output_dir, f"{NAME}.md"), text)
    print(text)
    return payload


if __name__ == "__main__":
    main()
