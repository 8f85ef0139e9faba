"""Variance networks on MNIST-5k (Neklyudov et al., 2019), as a seeded run.

Runs `tutorials/variance_networks.py` (the one implementation of the
experiment) in a subprocess with a fixed seed, then records its numbers with
the machine, the versions, the command and the time:
`benchmarks/results/variance_networks.{json,md}` and the tutorial's two PNGs.

    python -m benchmarks.variance_networks [--seed 0] [--epochs 20] [--full-mnist]

The bar (DESIGN section 8): the variance LeNet-5's 20-sample ensemble within
1.5 points of the deterministic LeNet-5, while its mean-propagation accuracy
is at most 20%.
"""

import argparse
import json
import os
import platform
import shlex
import sys

from benchmarks import _common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIAL = os.path.join(ROOT, "tutorials", "variance_networks.py")
DEFAULT_OUTPUT_DIR = os.path.join(ROOT, "benchmarks", "results")
PNGS = ("variance_networks_phase_transition.png", "variance_networks_pruning.png")
MAX_GAP = 0.015
MAX_MEAN_PROPAGATION = 0.20


def _versions():
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in ("keras", "tensorflow-cpu", "tensorflow", "jax", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    return f"{model}, {os.cpu_count()} cores visible, no GPU"


def meets_bar(results):
    """(ok, gap, mean_propagation) for the issue-3 bar."""
    accuracies = results["variance_network"]
    gap = results["baseline_accuracy"] - accuracies["val_ensemble_accuracy"]
    mean_propagation = accuracies["val_mean_propagation_accuracy"]
    return (
        gap <= MAX_GAP and mean_propagation <= MAX_MEAN_PROPAGATION,
        gap,
        mean_propagation,
    )


def run(seed=0, epochs=None, full_mnist=False, output_dir=DEFAULT_OUTPUT_DIR):
    """Runs the tutorial with `seed`; returns its results plus run metadata."""
    tutorial_args = []
    if epochs is not None:
        tutorial_args += ["--epochs", str(epochs)]
    if full_mnist:
        tutorial_args.append("--full-mnist")
    results = _common.run_tutorial(
        TUTORIAL, "variance_networks", seed, tutorial_args, output_dir, PNGS
    )
    results["run"].update(
        {
            "command": " ".join(
                ["python -m benchmarks.variance_networks"]
                + [shlex.quote(a) for a in sys.argv[1:]]
            ),
            "machine": _cpu(),
            "versions": _versions(),
        }
    )
    return results


def markdown(results):
    ok, gap, mean_propagation = meets_bar(results)
    accuracies = results["variance_network"]
    run_info = results["run"]
    lines = [
        f"Command: `{run_info['command']}` (runs `{run_info['tutorial_command']}`), "
        f"backend {results['backend']}, {results['data']}, {results['epochs']} epochs, "
        f"seed {results['seed']}.",
        f"Machine: {run_info['machine']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in run_info["versions"].items())
        + ".",
        f"Time: {run_info['wall_seconds']:.0f} s wall, {run_info['cpu_seconds']:.0f} s CPU "
        "(user + system; the cores are shared with other jobs, so wall time is an upper bound).",
        "",
        "| predictor (1000 test digits) | accuracy |",
        "|---|---|",
        f"| deterministic LeNet-5 | {results['baseline_accuracy']:.4f} |",
    ]
    for key, value in accuracies.items():
        name = key[len("val_") : -len("_accuracy")].replace("_", " ")
        samples = (
            f" ({results['num_samples']} samples)"
            if key
            in (
                "val_ensemble_accuracy",
                "val_zero_mean_accuracy",
            )
            else ""
        )
        lines.append(f"| variance LeNet-5, {name}{samples} | {value:.4f} |")
    lines += [
        "",
        f"Bar: baseline minus ensemble = {100 * gap:+.2f} points (at most "
        f"{100 * MAX_GAP:.1f}), mean propagation {100 * mean_propagation:.1f}% (at most "
        f"{100 * MAX_MEAN_PROPAGATION:.0f}%): **{'met' if ok else 'NOT met'}**.",
        "",
        "| sparsity of the variance layer (smallest stddev zeroed) | ensemble accuracy |",
        "|---|---|",
    ]
    lines += [
        f"| {100 * row['sparsity']:.1f}% | {row['accuracy']:.4f} |"
        for row in results["pruning"]
    ]
    lines += [
        "",
        f"Curves: `{PNGS[0]}`, pruning: `{PNGS[1]}` (in `benchmarks/results/`).",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--full-mnist", action="store_true")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR)
    args = parser.parse_args()
    results = run(args.seed, args.epochs, args.full_mnist, args.output_dir)
    with open(os.path.join(args.output_dir, "variance_networks.json"), "w") as f:
        json.dump(results, f, indent=2)
    text = markdown(results)
    with open(os.path.join(args.output_dir, "variance_networks.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
