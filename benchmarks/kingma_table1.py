"""Kingma et al. (2015), Table 1, on MNIST-5k: gradient variance of variational dropout estimators.

The model is the paper's: a 3-hidden-layer ReLU MLP (784-H-H-H-10, `--hidden`,
default H = 256: the paper does not give H for Table 1, and the per-example
estimator's cost grows as `batch * H^2`)
with variational dropout B, independent weight noise `q(w) = N(theta, alpha
theta^2)`, i.e. `ks.layers.DenseVariationalDropout` with one `alpha` per
weight (`parameterization="weight"`), Kingma's KL (`kl_approximation=
"kingma"`, so `alpha <= 1`), `alpha` starting at the dropout rates the paper
follows (0.25 for the inputs, p = 0.2; 1.0 elsewhere, p = 0.5),
`kl_weight = 1 / num_train`. It is trained with local reparameterization
(Adam, its default learning rate, batch `--train-batch-size`) on the 4000
MNIST-5k training digits, and measured after each of `--epochs` (default
10 and 100).

At each of those points the trained weights are copied into four models,
which differ only in how the noise reaches the activations:

- `local_reparameterization` (the paper's estimator);
- `per_example`: a weight sample per data point (the slow baseline);
- `reparameterization`: one weight sample shared by the minibatch;
- `no_noise`: `keras.layers.Dense` layers with kernels `theta` (the floor:
  data subsampling only).

For each, `ks.diagnostics.gradient_variance` draws `--draws` minibatches of
`--batch-size` training digits (the same minibatch seed for every model),
differentiates the batch-mean cross-entropy (the KL term is deterministic
and left out) with respect to `theta` of the bottom (784 x H) and top
(H x 10) layers, and averages the per-entry variance over each kernel: the
paper's "average empirical variance". The paper's gradients are of the sum
over its training set, which scales every variance by the same `N^2`, so
the comparison is of ratios between estimators; its minibatches had 1000
examples (the per-example estimator's memory, `batch * 784 * H` numbers per
layer, makes that size impractical on CPU: see `--batch-size`).

Speed: train steps of the local reparameterization and per-example models
(same architecture and batch), timed inside `fit` in interleaved rounds in
this one process; the ratio of the medians.

Usage, from the repository root:

    PYTHONPATH=. python -m benchmarks.kingma_table1 --epochs 10
    PYTHONPATH=. python -m benchmarks.kingma_table1 --epochs 10,100
"""

import argparse
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

ESTIMATORS = ("local_reparameterization", "per_example", "reparameterization")
NO_NOISE = "no_noise"
KINDS = ESTIMATORS + (NO_NOISE,)
LABELS = {
    "local_reparameterization": "local reparameterization",
    "per_example": "weight sample per data point (`per_example`)",
    "reparameterization": "weight sample per minibatch (`reparameterization`)",
    NO_NOISE: "no dropout noise (`theta` in `keras.layers.Dense`)",
}
LAYERS = ("top", "bottom")
# Kingma et al. (2015), Table 1 (minibatches of 1000 examples, full MNIST).
PAPER = {
    "local_reparameterization": {"top": (7.8e3, 1.2e3), "bottom": (1.9e2, 1.1e2)},
    "per_example": {"top": (1.4e4, 2.6e3), "bottom": (4.3e2, 2.5e2)},
    "reparameterization": {"top": (4.9e4, 4.3e3), "bottom": (8.5e2, 3.3e2)},
    NO_NOISE: {"top": (2.8e3, 5.9e1), "bottom": (1.3e2, 9.0e0)},
}
PAPER_EPOCHS = (10, 100)
# Srivastava et al.'s dropout rates, which the paper follows: p = 0.2 on the
# inputs, 0.5 on hidden units; alpha = p / (1 - p).
INITIAL_ALPHA_INPUT = 0.25
INITIAL_ALPHA_HIDDEN = 1.0
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build_model(kind, hidden, kl_weight, seed):
    layers = [keras.Input((784,))]
    widths = list(hidden) + [10]
    for index, width in enumerate(widths):
        activation = "relu" if index < len(hidden) else None
        if kind == NO_NOISE:
            layers.append(keras.layers.Dense(width, activation=activation))
            continue
        alpha = INITIAL_ALPHA_INPUT if index == 0 else INITIAL_ALPHA_HIDDEN
        layers.append(
            ks.layers.DenseVariationalDropout(
                width,
                activation=activation,
                parameterization="weight",
                kl_approximation="kingma",
                log_variance_initializer=math.log(alpha),
                estimator=kind,
                kl_weight=kl_weight,
                seed=seed + index,
            )
        )
    return keras.Sequential(layers)


def _accuracy(model, x, y):
    logits = model.predict(x, batch_size=500, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def train(x, y, x_test, y_test, hidden, epochs, batch_size, seed):
    """Trains the LRT model: `(model, {epoch: weights, test accuracy, ...})` at each of `epochs`."""
    keras.utils.set_random_seed(seed)
    model = build_model("local_reparameterization", hidden, 1.0 / len(x), seed)
    model.compile(keras.optimizers.Adam(), LOSS)
    snapshots = {}
    done = 0
    start = time.perf_counter()
    for target in sorted(epochs):
        history = model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=target,
            initial_epoch=done,
            shuffle=True,
            verbose=0,
        )
        done = target
        snapshots[target] = {
            "weights": model.get_weights(),
            # alpha <= 1 masks nothing: the mean model's kernels are theta.
            "mean_weights": [
                keras.ops.convert_to_numpy(v)
                for layer in model.layers
                for v in (layer.kernel_mean, layer.bias)
            ],
            "test_accuracy": _accuracy(model, x_test, y_test),
            "train_loss": float(history.history["loss"][-1]),
            "mean_log_alpha": {
                layer.name: float(np.mean(keras.ops.convert_to_numpy(layer.log_alpha)))
                for layer in model.layers
            },
            "seconds": time.perf_counter() - start,
        }
        print(
            f"[kingma_table1] trained {target} epochs: test accuracy "
            f"{snapshots[target]['test_accuracy']:.4f}",
            file=sys.stderr,
            flush=True,
        )
    return model, snapshots


def models_at(snapshot, hidden, kl_weight, seed, kinds):
    """The models of `kinds`, each with the trained weights of `snapshot`."""
    models = {}
    for kind in kinds:
        model = build_model(kind, hidden, kl_weight, seed + 100)
        key = "mean_weights" if kind == NO_NOISE else "weights"
        model.set_weights(snapshot[key])
        models[kind] = model
    return models


def _kernel(layer):
    return layer.kernel_mean if hasattr(layer, "kernel_mean") else layer.kernel


def measure(models, x, y, batch_size, draws, seed):
    """`{kind: {"top": v, "bottom": v, "seconds": s}}`, gradient variances of theta."""
    results = {}
    for kind, model in models.items():
        bottom, top = _kernel(model.layers[0]), _kernel(model.layers[-1])
        start = time.perf_counter()
        variance = ks.diagnostics.gradient_variance(
            model,
            x,
            y,
            batch_size=batch_size,
            num_draws=draws,
            loss=LOSS,
            variables=[bottom, top],
            seed=seed,
        )
        results[kind] = {
            "bottom": variance[bottom.path],
            "top": variance[top.path],
            "seconds": time.perf_counter() - start,
        }
        print(
            f"[kingma_table1] {kind}: top {results[kind]['top']:.3g}, bottom "
            f"{results[kind]['bottom']:.3g} ({results[kind]['seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return results


def time_steps(models, x, y, batch_size, rounds, steps, warmup_rounds, seed):
    """Per-step times (ms) of the LRT and per-example models' train steps, interleaved.

    `models` maps both estimators to compiled models of the same architecture
    (their weights do not matter for the time).
    """
    kinds = ("local_reparameterization", "per_example")
    x, y = x[: (steps + 1) * batch_size], y[: (steps + 1) * batch_size]
    rng = np.random.default_rng(seed)
    times = {kind: [] for kind in kinds}
    round_ratios = []
    for round_index in range(warmup_rounds + rounds):
        medians = {}
        for position in rng.permutation(len(kinds)):
            kind = kinds[position]
            timer = _common.step_timer()
            models[kind].fit(
                x,
                y,
                batch_size=batch_size,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[timer],
            )
            medians[kind] = float(np.median(timer.times[1:]))
            if round_index >= warmup_rounds:
                times[kind].extend(1e3 * t for t in timer.times[1:])
        if round_index >= warmup_rounds:
            round_ratios.append(medians["per_example"] / medians[kinds[0]])
    median = {kind: float(np.median(values)) for kind, values in times.items()}
    return {
        "batch_size": batch_size,
        "rounds": rounds,
        "steps_per_round": steps,
        "warmup_rounds": warmup_rounds,
        "median_step_ms": median,
        "quartiles_step_ms": {k: _common.quantiles(v) for k, v in times.items()},
        "num_steps": {kind: len(values) for kind, values in times.items()},
        "ratio_per_example_to_lrt": median["per_example"]
        / median["local_reparameterization"],
        "round_ratios": round_ratios,
    }


def ordering_holds(results):
    """Whether LRT < per example < shared sample for both layers."""
    return all(
        results["local_reparameterization"][layer]
        < results["per_example"][layer]
        < results["reparameterization"][layer]
        for layer in LAYERS
    )


def _ratio_cell(value, reference):
    return f"{value / reference:.2f}"


def _markdown(payload):
    text = _common.header_markdown(
        "Kingma et al. (2015) Table 1 on MNIST-5k: gradient variance of the "
        "variational dropout estimators",
        payload["environment"],
        payload["versions"],
    )
    s = payload["settings"]
    text += (
        f"MLP 784-{'-'.join(str(h) for h in s['hidden'])}-10 (ReLU) of "
        "`DenseVariationalDropout` (per-weight alpha, Kingma KL, alpha <= 1, "
        f"initial alpha {INITIAL_ALPHA_INPUT} / {INITIAL_ALPHA_HIDDEN}), "
        f"kl_weight 1/{s['num_train']}, trained with local reparameterization "
        f"(Adam 1e-3, batch {s['train_batch_size']}) on {s['num_train']} digits; "
        f"seed {s['seed']}. Gradient variance: {s['draws']} minibatches of "
        f"{s['batch_size']} digits (the same minibatches for every estimator), "
        "gradient of the batch-mean cross-entropy w.r.t. theta, variance per "
        "entry averaged over the kernel. Load average at start "
        f"{payload['environment']['load_average_at_start']}, at end "
        f"{payload['load_average_at_end']}; run time {payload['seconds']:.0f} s.\n\n"
    )
    epochs = sorted(payload["checkpoints"], key=int)
    rows = [
        [f"test accuracy (mean weights) after {e} epochs"]
        + [f"{payload['checkpoints'][e]['test_accuracy']:.4f}"]
        for e in epochs
    ]
    text += _common.markdown_table(["", "value"], rows) + "\n"
    header = ["estimator"] + [
        f"{layer}, {e} epochs" for layer in LAYERS for e in epochs
    ]
    rows = []
    for kind in KINDS:
        if kind not in payload["checkpoints"][epochs[0]]["variance"]:
            continue
        rows.append(
            [LABELS[kind]]
            + [
                f"{payload['checkpoints'][e]['variance'][kind][layer]:.3g}"
                for layer in LAYERS
                for e in epochs
            ]
        )
    text += "Average gradient variance (batch-mean loss):\n\n"
    text += _common.markdown_table(header, rows)
    header = ["estimator"] + [
        f"{layer}, {e} epochs: ours (paper)" for layer in LAYERS for e in epochs
    ]
    rows = []
    for kind in KINDS:
        if kind not in payload["checkpoints"][epochs[0]]["variance"]:
            continue
        row = [LABELS[kind]]
        for layer in LAYERS:
            for e in epochs:
                variance = payload["checkpoints"][e]["variance"]
                ours = _ratio_cell(
                    variance[kind][layer], variance["local_reparameterization"][layer]
                )
                paper = "-"
                if int(e) in PAPER_EPOCHS:
                    i = PAPER_EPOCHS.index(int(e))
                    paper = _ratio_cell(
                        PAPER[kind][layer][i],
                        PAPER["local_reparameterization"][layer][i],
                    )
                row.append(f"{ours} ({paper})")
        rows.append(row)
    text += "\nRelative to local reparameterization (paper's Table 1 in brackets):\n\n"
    text += _common.markdown_table(header, rows)
    for e in epochs:
        holds = payload["checkpoints"][e]["ordering_holds"]
        if holds is None:
            continue
        text += (
            f"\nAfter {e} epochs, LRT < per example < shared sample for both "
            f"layers: {'yes' if holds else 'no'}."
        )
    speed = payload.get("speed")
    if speed:
        median = speed["median_step_ms"]
        text += (
            f"\n\nTrain step (batch {speed['batch_size']}, {speed['rounds']} rounds x "
            f"{speed['steps_per_round']} steps, interleaved): local "
            f"reparameterization {median['local_reparameterization']:.1f} ms, per "
            f"example {median['per_example']:.1f} ms, ratio "
            f"{speed['ratio_per_example_to_lrt']:.1f}x (per-round ratios "
            f"{min(speed['round_ratios']):.1f}-{max(speed['round_ratios']):.1f}x).\n"
        )
    return text


def _parse_ints(text):
    return [int(v) for v in text.split(",") if v]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", default="10,100", help="checkpoints, e.g. 10,100")
    parser.add_argument(
        "--hidden",
        default="256,256,256",
        help="hidden widths (the paper's Table 1 does not give them; at 1000 a "
        "per-example step takes ~4.6 s here)",
    )
    parser.add_argument("--train-batch-size", type=int, default=100)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=100,
        help="minibatch of each gradient draw (the paper: 1000)",
    )
    parser.add_argument("--draws", type=int, default=1000, help="minibatch gradients")
    parser.add_argument(
        "--estimators",
        default=",".join(KINDS),
        help="comma list of " + ", ".join(KINDS),
    )
    parser.add_argument("--num-train", type=int, default=None, help="first K digits")
    parser.add_argument("--speed-rounds", type=int, default=10, help="0: no timing")
    parser.add_argument("--speed-steps", type=int, default=10)
    parser.add_argument("--speed-warmup-rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    epochs = _parse_ints(args.epochs)
    hidden = _parse_ints(args.hidden)
    kinds = [k for k in args.estimators.split(",") if k]
    for kind in kinds:
        if kind not in KINDS:
            parser.error(f"unknown estimator {kind!r}; choose from {list(KINDS)}")
    if "local_reparameterization" not in kinds:
        parser.error("the estimators must include local_reparameterization")
    start = time.perf_counter()
    env = _common.environment()
    (x, y), (x_test, y_test) = tutorials_common.load_mnist(flatten=True)
    if args.num_train:
        x, y = x[: args.num_train], y[: args.num_train]
    trained, snapshots = train(
        x, y, x_test, y_test, hidden, epochs, args.train_batch_size, args.seed
    )
    checkpoints = {}
    for target, snapshot in snapshots.items():
        models = models_at(snapshot, hidden, 1.0 / len(x), args.seed, kinds)
        variance = measure(models, x, y, args.batch_size, args.draws, args.seed + 1)
        checkpoints[str(target)] = {
            "test_accuracy": snapshot["test_accuracy"],
            "train_loss": snapshot["train_loss"],
            "mean_log_alpha": snapshot["mean_log_alpha"],
            "training_seconds": snapshot["seconds"],
            "variance": variance,
            "ordering_holds": (
                ordering_holds(variance) if set(ESTIMATORS) <= set(variance) else None
            ),
        }
    speed = None
    if args.speed_rounds:
        # The trained model (compiled already) and a per-example twin.
        per_example = models.get("per_example") or build_model(
            "per_example", hidden, 1.0 / len(x), args.seed
        )
        per_example.compile(keras.optimizers.Adam(), LOSS)
        speed = time_steps(
            {"local_reparameterization": trained, "per_example": per_example},
            x,
            y,
            args.train_batch_size,
            args.speed_rounds,
            args.speed_steps,
            args.speed_warmup_rounds,
            args.seed,
        )
    name = args.name or f"kingma_table1_{keras.backend.backend()}"
    payload = {
        "benchmark": "kingma_table1",
        "environment": env,
        "versions": _common.versions(),
        "settings": {
            "epochs": epochs,
            "hidden": hidden,
            "train_batch_size": args.train_batch_size,
            "batch_size": args.batch_size,
            "draws": args.draws,
            "estimators": kinds,
            "num_train": len(x),
            "seed": args.seed,
            "variables": "theta of the bottom (784 x H) and top (H x 10) layers",
        },
        "paper_table1": {
            "epochs": list(PAPER_EPOCHS),
            "minibatch_size": 1000,
            "values": {
                kind: {layer: list(v) for layer, v in by_layer.items()}
                for kind, by_layer in PAPER.items()
            },
        },
        "checkpoints": checkpoints,
        "speed": speed,
        "load_average_at_end": list(os.getloadavg()),
        "seconds": time.perf_counter() - start,
    }
    os.makedirs(args.output_dir, exist_ok=True)
    _common.write_json(os.path.join(args.output_dir, name + ".json"), payload)
    markdown = _markdown(payload)
    _common.write_text(os.path.join(args.output_dir, name + ".md"), markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
