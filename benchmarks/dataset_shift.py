"""Uncertainty under dataset shift on MNIST-5k (Ovadia et al., 2019), as seeded runs.

Runs `tutorials/dataset_shift.py` (the one implementation of the protocol)
in a subprocess once per seed, then aggregates over seeds:
`benchmarks/results/dataset_shift.{json,md,png}` and one
`dataset_shift_seed<N>.json` per seed (a rerun reuses the seeds already
recorded with the same settings unless `--force`).

    python -m benchmarks.dataset_shift [--seeds 0,1,2] [--epochs 10] [--num-samples 20]
        [--ensemble-size 5] [--methods deterministic,temperature,...] [--fashion-mnist] [--force]

The table gives, per method, the mean and standard deviation over seeds of
accuracy, NLL, ECE and Brier score on the clean test digits and averaged
over all rotation angles, and the OOD AUROC (by predictive entropy and by
mutual information) averaged over the out-of-distribution sets.
"""

import argparse
import os

import numpy as np

from benchmarks import _common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIAL = os.path.join(ROOT, "tutorials", "dataset_shift.py")
NAME = "dataset_shift"
PNG = f"{NAME}.png"
METRICS = ("accuracy", "nll", "ece", "brier")


def aggregate(seeds):
    """`{method: {key: (mean, std)}}` over seeds, plus per-angle arrays for the plot."""
    methods = list(seeds[0]["methods"])
    table, curves = {}, {}
    for method in methods:
        runs = [seed["methods"][method] for seed in seeds]
        rows = {}
        for key in METRICS:
            values = np.array([run["rotation"][key] for run in runs])
            rows[f"{key}_clean"] = values[:, 0]
            rows[f"{key}_shifted"] = values.mean(axis=1)
        for score in ("auroc_entropy", "auroc_mutual_information"):
            per_seed = [[row[score] for row in run["ood"].values()] for run in runs]
            if all(v is not None for values in per_seed for v in values):
                rows[f"ood_{score}"] = np.array(per_seed).mean(axis=1)
        table[method] = {
            key: (float(np.mean(v)), float(np.std(v))) for key, v in rows.items()
        }
        curves[method] = {
            key: np.array([run["rotation"][key] for run in runs])
            for key in METRICS + ("entropy",)
        }
    return table, curves


def markdown(payload, table):
    text = _common.header_markdown(
        "Dataset shift: rotated MNIST-5k digits and OOD inputs",
        payload["environment"],
        payload["versions"],
    )
    first = payload["seeds"][0]
    text += (
        f"Seeds {[s['seed'] for s in payload['seeds']]}; {first['num_train']} training "
        f"digits; {first['config']['epochs']} epochs; {first['config']['num_samples']} "
        f"samples; ensemble of {first['config']['ensemble_size']}; angles "
        f"{first['config']['angles'][0]}-{first['config']['angles'][-1]} step "
        f"{first['config']['angles'][1] - first['config']['angles'][0]}; OOD sets: "
        f"{', '.join(first['config']['ood_sets'])}.\n\n"
        "Mean +- std over seeds; 'shifted' is the mean over all angles (0 included); "
        "AUROC is the mean over OOD sets.\n\n"
    )

    def cell(method, key):
        if key not in table[method]:
            return "-"
        mean, std = table[method][key]
        return f"{mean:.3f} +- {std:.3f}"

    keys = [f"{k}_clean" for k in METRICS] + [f"{k}_shifted" for k in METRICS]
    keys += ["ood_auroc_entropy", "ood_auroc_mutual_information"]
    header = ["method"] + [k.replace("_", " ") for k in keys]
    rows = [[method] + [cell(method, key) for key in keys] for method in table]
    return text + _common.markdown_table(header, rows)


def plot(curves, angles, path):
    import keras_stochastic as ks
    from tutorials import common

    plt = common.pyplot()
    figure, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    for axis, key in zip(axes, METRICS):
        ks.plot.shift_curves(angles, curves, key, ax=axis, xlabel="rotation (degrees)")
        axis.set_title(f"{key} (mean +- std over seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None, smoke=False):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=20)
    parser.add_argument("--ensemble-size", type=int, default=5)
    parser.add_argument("--methods", default="")
    parser.add_argument("--fashion-mnist", action="store_true")
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--force", action="store_true", help="rerun recorded seeds")
    args = parser.parse_args(argv)
    tutorial_args = [
        "--epochs",
        str(args.epochs),
        "--num-samples",
        str(args.num_samples),
        "--ensemble-size",
        str(args.ensemble_size),
    ]
    if args.methods:
        tutorial_args += ["--methods", args.methods]
    if args.fashion_mnist:
        tutorial_args.append("--fashion-mnist")
    env = _common.environment()
    seeds = []
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        path = os.path.join(args.output_dir, f"{NAME}_seed{seed}.json")
        seeds.append(
            _common.recorded_or_run(
                path,
                tutorial_args,
                args.force,
                lambda seed=seed: _common.run_tutorial(
                    TUTORIAL, NAME, seed, tutorial_args, args.output_dir, (), smoke
                ),
            )
        )
    table, curves = aggregate(seeds)
    payload = {
        "benchmark": NAME,
        "environment": env,
        "versions": _common.versions(),
        "table": table,
        "seeds": seeds,
    }
    payload["environment"]["load_average_at_end"] = os.getloadavg()
    _common.write_json(os.path.join(args.output_dir, f"{NAME}.json"), payload)
    text = markdown(payload, table)
    _common.write_text(os.path.join(args.output_dir, f"{NAME}.md"), text)
    plot(curves, seeds[0]["config"]["angles"], os.path.join(args.output_dir, PNG))
    print(text)
    return payload


if __name__ == "__main__":
    main()
