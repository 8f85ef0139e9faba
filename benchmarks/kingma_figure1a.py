"""Kingma et al. (2015), Figure 1a, on MNIST-5k: test error of dropout variants against width.

The model is the paper's 3-hidden-layer ReLU MLP (784-H-H-H-10) for each
width H of `--widths`, trained with Adam (batch 100) on the MNIST-5k
training digits less a stratified validation split (`--validation`), with
early stopping on the validation accuracy (best epoch restored). Variants:

- `none`: no dropout;
- `binary`: `keras.layers.Dropout`, rate 0.2 on the inputs, 0.5 on hidden units;
- `gaussian_a`: `keras.layers.GaussianDropout` at the same rates
  (noise on the units, `alpha = p / (1 - p)`: 0.25 and 1.0);
- `gaussian_b`: independent weight noise `N(theta, alpha theta^2)` with the
  same fixed `alpha`: `ks.layers.DenseVariationalDropout` (one `alpha` per
  weight, local reparameterization) with its `log alpha` frozen and no KL;
- `variational_a`: `ks.layers.VariationalGaussianDropout` before each Dense
  layer (one learned `alpha` per layer, Kingma's KL, `alpha <= 1`),
  `kl_weight = 1 / num_train`;
- `variational_a2`: the same with `kl_weight = 1 / (3 num_train)`;
- `variational_b`: `ks.layers.DenseVariationalDropout`, learned `alpha` per
  weight, Kingma's KL, `kl_weight = 1 / num_train`.

Results are appended to the JSON file after every run, and runs already
recorded there are skipped (an interrupted sweep resumes).

Usage, from the repository root:

    PYTHONPATH=. python -m benchmarks.kingma_figure1a --widths 100,300 --seeds 0,1,2
"""

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_stochastic as ks  # noqa: E402
from benchmarks import _common  # noqa: E402
from tutorials import common as tutorials_common  # noqa: E402

VARIANTS = (
    "none",
    "binary",
    "gaussian_a",
    "gaussian_b",
    "variational_a",
    "variational_a2",
    "variational_b",
)
LABELS = {
    "none": "No dropout",
    "binary": "Dropout, binary",
    "gaussian_a": "Dropout A (Gaussian, on units)",
    "gaussian_b": "Dropout B (Gaussian, on weights)",
    "variational_a": "Variational (A)",
    "variational_a2": "Variational (A2, KL / 3)",
    "variational_b": "Variational (B)",
}
# Srivastava et al.'s rates, which the paper follows.
RATE_INPUT = 0.2
RATE_HIDDEN = 0.5
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _alpha(rate):
    return rate / (1.0 - rate)


def build_model(variant, width, num_train, seed, depth=3):
    """The 784-H-H-H-10 MLP of `variant`."""
    layers = [keras.Input((784,))]
    widths = [width] * depth + [10]
    for index, units in enumerate(widths):
        activation = "relu" if index < depth else None
        rate = RATE_INPUT if index == 0 else RATE_HIDDEN
        if variant == "binary":
            layers.append(keras.layers.Dropout(rate, seed=seed + index))
        elif variant == "gaussian_a":
            layers.append(keras.layers.GaussianDropout(rate, seed=seed + index))
        elif variant in ("variational_a", "variational_a2"):
            divisor = 3.0 if variant == "variational_a2" else 1.0
            layers.append(
                ks.layers.VariationalGaussianDropout(
                    initial_alpha=_alpha(rate),
                    kl_weight=1.0 / (divisor * num_train),
                    seed=seed + index,
                )
            )
        if variant in ("gaussian_b", "variational_b"):
            fixed = variant == "gaussian_b"
            layer = ks.layers.DenseVariationalDropout(
                units,
                activation=activation,
                parameterization="weight",
                kl_approximation="kingma",
                log_variance_initializer=math.log(_alpha(rate)),
                kl_weight=0.0 if fixed else 1.0 / num_train,
                seed=seed + 100 + index,
            )
        else:
            layer = keras.layers.Dense(units, activation=activation)
        layers.append(layer)
    model = keras.Sequential(layers)
    if variant == "gaussian_b":
        # Fixed-rate Gaussian dropout on the weights: the noise variables stay
        # at their initial alpha.
        for layer in model.layers:
            for variable in layer.trainable_variables:
                if "log" in variable.path:
                    variable.trainable = False
    return model


def train_and_test(variant, width, data, seed, max_epochs, patience):
    """One run: `{"test_error", "val_accuracy", "epochs", "seconds", ...}`."""
    (x, y), (x_val, y_val), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = build_model(variant, width, len(x), seed)
    model.compile(keras.optimizers.Adam(1e-3), LOSS, metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(
        "val_accuracy", patience=patience, mode="max", restore_best_weights=True
    )
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        batch_size=100,
        epochs=max_epochs,
        validation_data=(x_val, y_val),
        callbacks=[stop],
        verbose=0,
    )
    seconds = time.perf_counter() - start
    logits = model.predict(x_test, batch_size=500, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, -1) == y_test))
    val = history.history["val_accuracy"]
    result = {
        "variant": variant,
        "width": width,
        "seed": seed,
        "test_error": 1.0 - accuracy,
        "val_accuracy": float(max(val)),
        "best_epoch": int(np.argmax(val)) + 1,
        "epochs_run": len(val),
        "seconds": seconds,
    }
    alphas = [
        float(np.mean(keras.ops.convert_to_numpy(layer.alpha)))
        for layer in model.layers
        if hasattr(layer, "alpha")
    ]
    if alphas:
        result["mean_alpha_per_layer"] = alphas
    return result


def summarize(runs):
    """`{variant: {width: (mean, std (ddof 1, 0 for one seed), n)}}` of test error."""
    table = {}
    for run in runs:
        table.setdefault(run["variant"], {}).setdefault(run["width"], []).append(
            run["test_error"]
        )
    return {
        variant: {
            width: (
                float(np.mean(v)),
                float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                len(v),
            )
            for width, v in by_width.items()
        }
        for variant, by_width in table.items()
    }


def _markdown(payload):
    summary = summarize(payload["runs"])
    widths = payload["settings"]["widths"]
    text = _common.header_markdown(
        "Kingma et al. (2015), Figure 1a, on MNIST-5k",
        payload["environment"],
        payload["versions"],
    )
    text += (
        f"Test error (%) on {payload['settings']['num_test']} test digits, mean +- "
        f"std over seeds {payload['settings']['seeds']} (ddof 1), early stopping "
        f"on {payload['settings']['validation']} validation digits:\n\n"
    )
    header = ["variant"] + [f"H = {w}" for w in widths]
    rows = []
    for variant in payload["settings"]["variants"]:
        row = [LABELS[variant]]
        for width in widths:
            cell = summary.get(variant, {}).get(width)
            row.append(
                "-"
                if cell is None
                else f"{100 * cell[0]:.2f} +- {100 * cell[1]:.2f} (n={cell[2]})"
            )
        rows.append(row)
    return text + _common.markdown_table(header, rows)


def plot(payload, path):
    plt = tutorials_common.pyplot()
    summary = summarize(payload["runs"])
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for variant in payload["settings"]["variants"]:
        widths = sorted(summary.get(variant, {}))
        if not widths:
            continue
        mean = [100 * summary[variant][w][0] for w in widths]
        std = [100 * summary[variant][w][1] for w in widths]
        axis.errorbar(
            widths, mean, yerr=std, marker="o", capsize=3, label=LABELS[variant]
        )
    axis.set_xlabel("hidden units per layer (H)")
    axis.set_ylabel("test error (%)")
    axis.set_title("MNIST-5k, 784-H-H-H-10 ReLU MLP")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _parse_ints(text):
    return [int(v) for v in text.split(",") if v]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", default="100,300")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--max-epochs", type=int, default=50)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--validation", type=int, default=500, help="held-out digits")
    parser.add_argument("--num-train", type=int, default=None, help="first K digits")
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default="kingma_figure1a")
    args = parser.parse_args(argv)
    widths, seeds = _parse_ints(args.widths), _parse_ints(args.seeds)
    variants = [v for v in args.variants.split(",") if v]
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(
                f"--variants takes names from {list(VARIANTS)}. "
                f"Received: variants={args.variants!r}"
            )
    (x, y), (x_test, y_test) = tutorials_common.load_mnist(flatten=True)
    if args.num_train:
        x, y = x[: args.num_train], y[: args.num_train]
    (x, y), (x_val, y_val) = tutorials_common.stratified_split(
        x, y, args.validation, seed=1
    )
    data = ((x, y), (x_val, y_val), (x_test, y_test))
    settings = {
        "widths": widths,
        "seeds": seeds,
        "variants": variants,
        "max_epochs": args.max_epochs,
        "patience": args.patience,
        "validation": len(x_val),
        "num_train": len(x),
        "num_test": len(x_test),
        "batch_size": 100,
        "optimizer": "Adam(1e-3)",
    }
    json_path = os.path.join(args.output_dir, args.name + ".json")
    runs = []
    if os.path.exists(json_path):
        with open(json_path) as f:
            previous = json.load(f)
        if previous.get("settings", {}).get("max_epochs") == args.max_epochs:
            runs = previous["runs"]
    payload = {
        "benchmark": "kingma_figure1a",
        "environment": _common.environment(),
        "versions": _common.versions(),
        "settings": settings,
        "runs": runs,
    }
    done = {(r["variant"], r["width"], r["seed"]) for r in runs}
    # Seed-major order: a sweep cut short still has every variant and width.
    for seed in seeds:
        for width in widths:
            for variant in variants:
                if (variant, width, seed) in done:
                    continue
                run = train_and_test(
                    variant, width, data, seed, args.max_epochs, args.patience
                )
                runs.append(run)
                print(
                    f"[kingma_figure1a] {variant} H={width} seed={seed}: test error "
                    f"{100 * run['test_error']:.2f}% ({run['epochs_run']} epochs, "
                    f"{run['seconds']:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                _common.write_json(json_path, payload)
    _common.write_json(json_path, payload)
    markdown = _markdown(payload)
    _common.write_text(os.path.join(args.output_dir, args.name + ".md"), markdown)
    plot(payload, os.path.join(args.output_dir, args.name + ".png"))
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
