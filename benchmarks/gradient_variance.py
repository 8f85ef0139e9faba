"""Gradient variance vs batch size for each estimator (784-512-512-10 MLP, MNIST-5k).

The quantity: for a minibatch of `N` training examples drawn at random, the
gradient of the batch-mean cross-entropy (KL terms left out) with respect to
the kernel means of the three layers (the kernels, for the deterministic
model); its variance per weight across `--draws` minibatches, summed over all
weights. `ks.diagnostics.gradient_variance` measures it (with
`training=True`, so every stochastic layer draws fresh noise per call).

Every model is evaluated at the same weights, chosen as follows: a
`DenseFlipout` model with `kernel_stddev_initializer=--stddev` (default
0.05, TFP's ~0.049 starting scale; the layers' own default is 0.01) is
trained for `--train-epochs` (default 1) epochs on the 4000 MNIST-5k
training digits (Adam 1e-3, batch 64, `kl_weight=1/4000`); its means,
standard deviations and biases are then copied into the
`DenseLocalReparameterization` and `DenseReparameterization` models, and its
means and biases into the `keras.layers.Dense` model, whose variance is data
noise only (the floor). The trained standard deviations are reported.

Data subsampling noise falls as `1/N` for every estimator; the weight-noise
part does too when examples see independent perturbations (local
reparameterization) or pseudo-independent ones (flipout), but not with one
weight sample shared by the batch (reparameterization). So
`var(N) * N / var(1)` stays near 1 for the former and grows with `N` for the
latter (DESIGN section 8 bar: <= 2 up to N = 256 for flipout and LRT).
Each (model, N) cell is measured `--repeats` times with different minibatch
seeds; the table gives the mean and its standard error.

Usage, from the repository root:

    PYTHONPATH=. python -m benchmarks.gradient_variance
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_stochastic as ks  # noqa: E402
from benchmarks import _common  # noqa: E402
from tutorials import common as tutorials_common  # noqa: E402

ESTIMATORS = {
    "flipout": ks.layers.DenseFlipout,
    "local_reparameterization": ks.layers.DenseLocalReparameterization,
    "reparameterization": ks.layers.DenseReparameterization,
}
DETERMINISTIC = "deterministic"
BAR = 2.0
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build_model(kind, hidden, stddev, kl_weight, seed):
    layers = [keras.Input((784,))]
    widths = list(hidden) + [10]
    for index, width in enumerate(widths):
        activation = "relu" if index < len(hidden) else None
        if kind == DETERMINISTIC:
            layers.append(keras.layers.Dense(width, activation=activation))
        else:
            layers.append(
                ESTIMATORS[kind](
                    width,
                    activation=activation,
                    kernel_stddev_initializer=stddev,
                    kl_weight=kl_weight,
                    seed=seed + index,
                )
            )
    return keras.Sequential(layers)


def _dense_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Layer)]


def prepare_models(x, y, hidden, stddev, train_epochs, seed, kinds=None):
    """The models of `kinds` (default: all four) at shared weights (see the module docstring)."""
    kinds = kinds or list(ESTIMATORS) + [DETERMINISTIC]
    kl_weight = 1.0 / len(x)
    source = build_model("flipout", hidden, stddev, kl_weight, seed)
    source.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS)
    history = {}
    if train_epochs:
        history = source.fit(
            x, y, batch_size=64, epochs=train_epochs, verbose=0, shuffle=True
        ).history
    models = {}
    for kind in kinds:
        model = (
            source
            if kind == "flipout"
            else build_model(kind, hidden, stddev, kl_weight, seed + 100)
        )
        for target, layer in zip(_dense_layers(model), _dense_layers(source)):
            if kind == DETERMINISTIC:
                target.set_weights(
                    [
                        keras.ops.convert_to_numpy(layer.kernel_mean),
                        keras.ops.convert_to_numpy(layer.bias),
                    ]
                )
            elif target is not layer:
                target.set_weights(layer.get_weights())
        model.compile(loss=LOSS)
        models[kind] = model
    stddevs = {
        layer.name: {
            "mean": float(np.mean(keras.ops.convert_to_numpy(layer.kernel_stddev))),
            "min": float(np.min(keras.ops.convert_to_numpy(layer.kernel_stddev))),
            "max": float(np.max(keras.ops.convert_to_numpy(layer.kernel_stddev))),
            "kernel_mean_rms": float(
                np.sqrt(np.mean(keras.ops.convert_to_numpy(layer.kernel_mean) ** 2))
            ),
        }
        for layer in _dense_layers(source)
    }
    return models, stddevs, {k: [float(v) for v in vs] for k, vs in history.items()}


def _kernels(model):
    return [
        layer.kernel_mean if hasattr(layer, "kernel_mean") else layer.kernel
        for layer in _dense_layers(model)
    ]


def measure(models, x, y, sizes, draws, repeats, seed):
    """`{kind: {N: [total variance per repeat]}}` and per-layer means."""
    totals = {}
    per_layer = {}
    for kind, model in models.items():
        kernels = _kernels(model)
        sizes_of = [int(np.prod(k.shape)) for k in kernels]
        totals[kind] = {}
        per_layer[kind] = {}
        for n in sizes:
            values = []
            layer_values = []
            for repeat in range(repeats):
                result = ks.diagnostics.gradient_variance(
                    model,
                    x,
                    y,
                    batch_size=n,
                    num_draws=draws,
                    variables=kernels,
                    seed=seed + 1000 * repeat + n,
                )
                means = [result[k.path] for k in kernels]
                values.append(float(sum(m * s for m, s in zip(means, sizes_of))))
                layer_values.append([m * s for m, s in zip(means, sizes_of)])
            totals[kind][n] = values
            per_layer[kind][n] = [float(v) for v in np.mean(layer_values, axis=0)]
    return totals, per_layer


def _mean_se(values):
    values = np.asarray(values, dtype="float64")
    se = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else float("nan")
    return float(values.mean()), float(se)


def normalized(totals, sizes):
    """`var(N) * N / var(1)` with a standard error from the repeats (delta method)."""
    table = {}
    base_size = sizes[0]
    for kind, by_size in totals.items():
        base, base_se = _mean_se(by_size[base_size])
        table[kind] = {}
        for n in sizes:
            value, se = _mean_se(by_size[n])
            ratio = value * n / (base * base_size)
            rel = np.sqrt((se / value) ** 2 + (base_se / base) ** 2)
            table[kind][n] = {
                "variance": value,
                "variance_se": se,
                "normalized": float(ratio),
                "normalized_se": float(ratio * rel),
            }
    return table


def plot(table, sizes, path):
    plt = tutorials_common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    sizes_arr = np.asarray(sizes, dtype="float64")
    for kind, by_size in table.items():
        values = np.asarray([by_size[n]["variance"] for n in sizes])
        errors = np.asarray([by_size[n]["variance_se"] for n in sizes])
        ax.errorbar(sizes_arr, values, yerr=errors, marker="o", capsize=3, label=kind)
    stochastic = [k for k in table if k != DETERMINISTIC] or list(table)
    anchor = np.mean([table[k][sizes[0]]["variance"] for k in stochastic])
    ax.plot(
        sizes_arr,
        anchor * sizes[0] / sizes_arr,
        "k--",
        linewidth=1,
        label="1/N reference",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size N")
    ax.set_ylabel("gradient variance (sum over kernel-mean entries)")
    ax.set_title("Gradient variance vs batch size, MLP 784-512-512-10")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _markdown(payload):
    text = _common.header_markdown(
        "Gradient variance vs batch size (MLP 784-512-512-10, MNIST-5k)",
        payload["environment"],
        payload["versions"],
    )
    s = payload["settings"]
    text += (
        f"Weights: a DenseFlipout model with kernel_stddev_initializer={s['stddev']} "
        f"trained {s['train_epochs']} epoch(s) on {s['num_train']} digits "
        "(Adam 1e-3, batch 64, kl_weight 1/num_train); every model uses these weights "
        "(deterministic: the means). "
        f"{s['draws']} minibatch draws per cell, {s['repeats']} repeats; "
        "variance summed over the kernel-mean entries of all layers. "
        f"Run time {payload['seconds']:.0f} s.\n\n"
    )
    text += (
        "Trained posterior stddev per layer: "
        + "; ".join(
            f"{name}: mean {v['mean']:.4f} (min {v['min']:.4f}, max {v['max']:.4f}), "
            f"rms of means {v['kernel_mean_rms']:.4f}"
            for name, v in payload["posterior_stddev"].items()
        )
        + "\n\n"
    )
    sizes = s["sizes"]
    rows = []
    for kind, by_size in payload["table"].items():
        row = [kind]
        for n in sizes:
            entry = by_size[str(n)] if str(n) in by_size else by_size[n]
            row.append(f"{entry['normalized']:.2f} ± {entry['normalized_se']:.2f}")
        if kind in ("flipout", "local_reparameterization"):
            worst = max(
                (by_size[str(n)] if str(n) in by_size else by_size[n])["normalized"]
                for n in sizes
            )
            row.append(f"<= {BAR}: " + ("meets" if worst <= BAR else "**misses**"))
        elif kind == "reparameterization":
            row.append("should grow with N")
        else:
            row.append("floor (data noise)")
        rows.append(row)
    text += "`var(N) * N / var(1)` (mean ± standard error over repeats):\n\n"
    text += _common.markdown_table(
        ["estimator"] + [f"N={n}" for n in sizes] + ["bar"], rows
    )
    rows = []
    for kind, by_size in payload["table"].items():
        row = [kind]
        for n in sizes:
            entry = by_size[str(n)] if str(n) in by_size else by_size[n]
            row.append(f"{entry['variance']:.3g}")
        rows.append(row)
    text += "\nRaw variance (sum over entries):\n\n"
    text += _common.markdown_table(["estimator"] + [f"N={n}" for n in sizes], rows)
    text += f"\nPlot: `{os.path.basename(payload['plot'])}`\n"
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,4,16,64,256")
    parser.add_argument("--draws", type=int, default=100, help="minibatches per cell")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stddev", type=float, default=0.05)
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--hidden", default="512,512")
    parser.add_argument(
        "--num-train", type=int, default=None, help="use the first K digits"
    )
    parser.add_argument(
        "--estimators",
        default=",".join(list(ESTIMATORS) + [DETERMINISTIC]),
        help="comma list of models to measure",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")]
    hidden = tuple(int(w) for w in args.hidden.split(","))
    kinds = [k for k in args.estimators.split(",") if k]
    for kind in kinds:
        if kind not in list(ESTIMATORS) + [DETERMINISTIC]:
            parser.error(f"unknown estimator {kind!r}")
    start = time.perf_counter()
    env = _common.environment()
    keras.utils.set_random_seed(args.seed)
    (x, y), _ = tutorials_common.load_mnist(flatten=True)
    if args.num_train:
        x, y = x[: args.num_train], y[: args.num_train]
    models, stddevs, history = prepare_models(
        x, y, hidden, args.stddev, args.train_epochs, args.seed, kinds
    )
    totals, per_layer = measure(
        models, x, y, sizes, args.draws, args.repeats, args.seed
    )
    table = normalized(totals, sizes)
    name = args.name or f"gradient_variance_{keras.backend.backend()}"
    plot_path = os.path.join(args.output_dir, name + ".png")
    os.makedirs(args.output_dir, exist_ok=True)
    plot(table, sizes, plot_path)
    payload = {
        "benchmark": "gradient_variance",
        "environment": env,
        "versions": _common.versions(),
        "settings": {
            "sizes": sizes,
            "draws": args.draws,
            "repeats": args.repeats,
            "stddev": args.stddev,
            "train_epochs": args.train_epochs,
            "hidden": list(hidden),
            "num_train": len(x),
            "seed": args.seed,
            "variables": "kernel means (kernels for the deterministic model)",
        },
        "posterior_stddev": stddevs,
        "training_history": history,
        "table": table,
        "raw_totals": totals,
        "per_layer_variance": per_layer,
        "plot": plot_path,
        "seconds": time.perf_counter() - start,
    }
    _common.write_json(os.path.join(args.output_dir, name + ".json"), payload)
    markdown = _markdown(payload)
    _common.write_text(os.path.join(args.output_dir, name + ".md"), markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
