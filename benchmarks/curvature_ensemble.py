"""Neklyudov et al. (2019), section 6.4: the curvature criterion picks the weights an ensemble needs.

A LeNet (conv `c1`@5x5 - pool - conv `c2`@5x5 - pool - stochastic dense `d`
- BatchNormalization - `--activation` - 10; `--widths`, default 10,20,200, the reduced LeNet-5
of `benchmarks.adversarial_robustness`, trained as there) is trained on
MNIST-5k for each `--models` entry:

- `variance`: the dense layer is `ks.layers.DenseVariance` (zero-mean
  weights), the paper's set-up;
- `flipout`: the dense layer is `ks.layers.DenseFlipout`, a Gaussian layer
  with learned means, as the low-variance contrast.

Then `kappa = ks.diagnostics.curvature_criterion(model, "stochastic_dense",
...)` is estimated on `--curvature-examples` training digits with
`--probes` Hutchinson probes. For each fraction `f` of `--fractions`, the
`f` share of the dense layer's weights with the largest `|kappa|` stays
stochastic and every other weight is replaced by its mean (for the variance
layer the mean is zero: those weights are zeroed, the paper's sparse
ensemble). The test accuracy of the `--eval-samples`-sample ensemble is
measured for that choice and for two controls that keep the same number of
weights: the largest posterior standard deviations (`stddev`) and a uniformly
random choice (`random`, averaged over `--random-draws` draws).

The paper follows the variance layer with a softplus, so that the Taylor
expansion behind the criterion is smooth, and notes that variance layers
work best followed by batch normalization. Both matter here: without the
normalization a softplus variance net stays at chance from this package's
initialization (the mean of `softplus(z)` grows only quadratically in the
small initial standard deviation of `z`), and with `--activation relu` the
criterion is identically zero for the variance layer, whose mean is 0, since
ReLU's derivative at 0 is 0 (no gradient reaches the weights at W = M).

Usage, from the repository root:

    PYTHONPATH=. python -m benchmarks.curvature_ensemble --epochs 10
"""

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_stochastic as ks  # noqa: E402
from benchmarks import _common  # noqa: E402
from benchmarks import adversarial_robustness as robustness  # noqa: E402

MODELS = ("variance", "flipout")
CRITERIA = ("curvature", "stddev", "random")
LAYER = "stochastic_dense"


class Replacer:
    """Keeps a chosen set of the dense layer's weights stochastic, the rest at their means."""

    def __init__(self, layer):
        self.layer = layer
        if isinstance(layer, ks.layers.DenseVariance):
            # w = scale * eps: a zero scale is the mean (0) exactly.
            self.variable = layer.kernel_scale
            self.fill = 0.0
        else:
            # softplus(-1e4) is 0 in float32: only the 1e-7 floor remains.
            self.variable = layer.posterior.rho
            self.fill = -1e4
        self.original = keras.ops.convert_to_numpy(self.variable)

    def keep(self, kept):
        """`kept`: a boolean array of the kernel's shape, True = stays stochastic."""
        self.variable.assign(np.where(kept, self.original, self.fill).astype("float32"))

    def restore(self):
        self.variable.assign(self.original)


def top_fraction(scores, fraction):
    """Boolean mask of the `round(fraction * size)` largest `scores`."""
    count = int(round(fraction * scores.size))
    kept = np.zeros(scores.size, bool)
    if count:
        kept[np.argsort(-scores.ravel(), kind="stable")[:count]] = True
    return kept.reshape(scores.shape)


def accuracy(model, x, y, samples):
    return float(
        np.mean(np.argmax(robustness.predictive([model], x, samples), -1) == y)
    )


def sweep(model, kappa, x, y, fractions, samples, random_draws, seed):
    """`{criterion: [accuracy per fraction]}` and the mean-weights accuracy."""
    layer = model.get_layer(LAYER)
    replacer = Replacer(layer)
    stddev = keras.ops.convert_to_numpy(layer.kernel_stddev)
    rng = np.random.default_rng(seed)
    scores = {"curvature": np.abs(kappa), "stddev": stddev}
    results = {criterion: [] for criterion in CRITERIA}
    for fraction in fractions:
        for criterion in ("curvature", "stddev"):
            replacer.keep(top_fraction(scores[criterion], fraction))
            results[criterion].append(accuracy(model, x, y, samples))
        draws = []
        for _ in range(random_draws):
            replacer.keep(top_fraction(rng.random(kappa.shape), fraction))
            draws.append(accuracy(model, x, y, samples))
        results["random"].append(float(np.mean(draws)))
        replacer.restore()
        print(
            f"[curvature_ensemble] {model.name} keep {fraction:.3f}: "
            + ", ".join(f"{c} {results[c][-1]:.3f}" for c in CRITERIA),
            file=sys.stderr,
            flush=True,
        )
    with warnings.catch_warnings():
        # The variance layer warns that its mean output ignores the input:
        # that collapse is what this number shows.
        warnings.simplefilter("ignore")
        layer.inference = "mean"
        # `predict_mc` samples whatever the mode; `predict` honours it.
        logits = model.predict(x, batch_size=250, verbose=0)
        layer.inference = "sample"
    mean_accuracy = float(np.mean(np.argmax(logits, -1) == y))
    return results, mean_accuracy


def _markdown(payload):
    settings = payload["settings"]
    lines = [
        _common.header_markdown(
            "Curvature criterion: stochastic weights kept vs ensemble accuracy",
            payload["environment"],
            payload["versions"],
        ),
        f"- Settings: {settings}",
        f"- Run time: {payload['seconds'] / 60:.1f} min",
        "",
    ]
    for kind, entry in payload["results"].items():
        replaced = "zero" if kind == "variance" else "their means"
        lines += [
            f"## {kind} (other weights replaced by {replaced})",
            "",
            f"- Full ensemble: {entry['full']:.4f}; mean weights only "
            f'(`inference="mean"`): {entry["mean_weights"]:.4f}',
            f"- |kappa|: median {entry['kappa_quantiles'][1]:.3g}, "
            f"99th percentile {entry['kappa_quantiles'][2]:.3g}, max "
            f"{entry['kappa_quantiles'][3]:.3g}",
            "",
        ]
        rows = [
            [f"{100 * f:.1f}%"] + [f"{entry[c][i]:.4f}" for c in CRITERIA]
            for i, f in enumerate(settings["fractions"])
        ]
        lines.append(
            _common.markdown_table(
                ["weights kept stochastic"] + [f"keep by {c}" for c in CRITERIA], rows
            )
        )
        lines.append("")
    return "\n".join(lines)


def plot(payload, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = np.asarray(payload["settings"]["fractions"])
    results = payload["results"]
    figure, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6))
    axes = np.atleast_1d(axes)
    for axis, (kind, entry) in zip(axes, results.items()):
        x = np.maximum(fractions, 1e-4)
        for criterion, style in zip(CRITERIA, ("o-", "s--", "^:")):
            axis.plot(100 * x, entry[criterion], style, label=f"keep by {criterion}")
        axis.axhline(entry["mean_weights"], color="grey", lw=0.8, label="mean weights")
        axis.set_xscale("log")
        axis.set_xlabel("stochastic weights kept (%)")
        axis.set_ylabel("ensemble test accuracy")
        axis.set_title(kind)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", default="10,20,200", help="c1,c2,d")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--activation", default="softplus", choices=("softplus", "relu")
    )
    parser.add_argument(
        "--no-batch-norm",
        action="store_true",
        help="no BatchNormalization between the stochastic layer and the activation",
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--fractions", default="1,0.5,0.2,0.1,0.05,0.02,0.01,0.005,0.002,0"
    )
    parser.add_argument("--curvature-examples", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--eval-samples", type=int, default=20)
    parser.add_argument("--random-draws", type=int, default=3)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--num-train", type=int, default=None, help="first K digits")
    parser.add_argument("--validation", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default="curvature_ensemble")
    args = parser.parse_args(argv)
    kinds = args.models.split(",")
    unknown = sorted(set(kinds) - set(MODELS))
    if unknown:
        parser.error(f"--models takes {MODELS}. Received: models={args.models!r}")
    start = time.perf_counter()
    env = _common.environment()
    data, (x_test, y_test) = robustness.load_data(
        args.num_train, args.validation, args.num_test
    )
    widths = [int(v) for v in args.widths.split(",")]
    fractions = robustness._floats(args.fractions)
    (x_train, y_train), _ = data
    curvature_x = x_train[: args.curvature_examples]
    curvature_y = y_train[: args.curvature_examples]
    results = {}
    for kind in kinds:
        model = robustness.build_model(
            kind,
            widths,
            len(x_train),
            args.seed,
            activation=args.activation,
            batch_norm=not args.no_batch_norm,
        )
        validation = robustness.train(
            model, data, args.epochs, args.seed, args.eval_samples
        )
        kappa = ks.diagnostics.curvature_criterion(
            model,
            LAYER,
            curvature_x,
            curvature_y,
            num_probes=args.probes,
            seed=args.seed,
        )
        full = accuracy(model, x_test, y_test, args.eval_samples)
        entry, mean_accuracy = sweep(
            model,
            kappa,
            x_test,
            y_test,
            fractions,
            args.eval_samples,
            args.random_draws,
            args.seed,
        )
        entry.update(
            validation=validation,
            full=full,
            mean_weights=mean_accuracy,
            kappa_quantiles=[
                float(q) for q in np.quantile(np.abs(kappa), [0.01, 0.5, 0.99, 1.0])
            ],
        )
        results[kind] = entry
    payload = {
        "benchmark": "curvature_ensemble",
        "environment": env,
        "versions": _common.versions(),
        "settings": {
            "widths": widths,
            "epochs": args.epochs,
            "activation": args.activation,
            "batch_norm": not args.no_batch_norm,
            "fractions": fractions,
            "curvature_examples": len(curvature_x),
            "probes": args.probes,
            "eval_samples": args.eval_samples,
            "random_draws": args.random_draws,
            "num_test": len(x_test),
            "num_train": len(x_train),
            "seed": args.seed,
        },
        "results": results,
        "seconds": time.perf_counter() - start,
    }
    _common.write_outputs(args.output_dir, args.name, payload, _markdown(payload), plot)
    return payload


if __name__ == "__main__":
    main()
