"""Train-step time of the recurrent stochastic layers inside `model.fit`.

Row-by-row MNIST shape: sequences of 28 steps of 28 features, batch 128,
128 units, then `Dense(10)`; Adam and a sparse cross-entropy from logits.
Every stochastic layer is timed against its deterministic Keras twin on the
same non-fused path (`use_cudnn=False`), side by side in one process:

- each round runs one short `fit` epoch (`--steps` batches) of every model,
  in an order that rotates from round to round, and keeps each model's
  median step time (a callback times `on_train_batch_begin` to `_end`);
- a round's ratio is that median over the twin's median of the same round;
  the report gives the median and quartiles of the ratios over `--rounds`.

Besides the six layers (LSTM/GRU x flipout/LRT, SimpleRNN x flipout/LRT),
two ablations show where the time goes:

- `LSTMFlipout(stochastic_recurrent_kernel=False)`: the cost of the input
  side alone (one extra matmul per step on 28 features), so the rest of the
  flipout overhead is the recurrent kernel's second matmul;
- `hoisted LSTM`: a deterministic LSTM whose input projection is computed
  for the whole sequence before the loop, as one matmul. Flipout allows
  that hoisting (its perturbation is fixed per sequence), but on CPU it is
  slower than projecting inside the loop, on both backends: it widens the
  loop's input from 28 to 512 channels, which the loop then moves through
  memory in both passes.

Run from the repository root:

    PYTHONPATH=. python -m benchmarks.rnn_step
    KERAS_BACKEND=jax PYTHONPATH=. python -m benchmarks.rnn_step

Writes `benchmarks/results/rnn_step_<backend>.json` and `.md`.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_stochastic as ks  # noqa: E402
from benchmarks import _common  # noqa: E402
from tutorials import common  # noqa: E402


class SequenceProjection(keras.layers.Layer):
    """`x @ kernel + bias` for every step of `(batch, time, features)`, as one 2-D matmul."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer="glorot_uniform",
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(self.units,), initializer="zeros", name="bias"
        )

    def call(self, inputs):
        shape = ops.shape(inputs)
        outputs = ops.matmul(ops.reshape(inputs, (-1, shape[-1])), self.kernel)
        return ops.reshape(outputs, (shape[0], shape[1], self.units)) + self.bias


class ProjectedLSTMCell(keras.layers.Layer):
    """Keras's LSTM step (implementation 2) on inputs already multiplied by the kernel."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 4 * self.units),
            initializer="orthogonal",
            name="recurrent_kernel",
        )

    def call(self, inputs, states):
        state, carry = states
        z = inputs + ops.matmul(state, self.recurrent_kernel)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        carry = ops.sigmoid(z_f) * carry + ops.sigmoid(z_i) * ops.tanh(z_c)
        output = ops.sigmoid(z_o) * ops.tanh(carry)
        return output, [output, carry]


def variants(units, kl_weight, seed=1):
    """(name, twin name, layer factory) of every timed model."""
    lstm = dict(kl_weight=kl_weight, seed=seed)
    return [
        ("LSTM", None, lambda: [keras.layers.LSTM(units, use_cudnn=False)]),
        ("LSTMFlipout", "LSTM", lambda: [ks.layers.LSTMFlipout(units, **lstm)]),
        (
            "LSTMLocalReparameterization",
            "LSTM",
            lambda: [ks.layers.LSTMLocalReparameterization(units, **lstm)],
        ),
        (
            "LSTMFlipout(stochastic_recurrent_kernel=False)",
            "LSTM",
            lambda: [
                ks.layers.LSTMFlipout(units, stochastic_recurrent_kernel=False, **lstm)
            ],
        ),
        (
            "hoisted LSTM (input projection before the loop)",
            "LSTM",
            lambda: [
                SequenceProjection(4 * units),
                keras.layers.RNN(ProjectedLSTMCell(units)),
            ],
        ),
        ("GRU", None, lambda: [keras.layers.GRU(units, use_cudnn=False)]),
        ("GRUFlipout", "GRU", lambda: [ks.layers.GRUFlipout(units, **lstm)]),
        (
            "GRULocalReparameterization",
            "GRU",
            lambda: [ks.layers.GRULocalReparameterization(units, **lstm)],
        ),
        ("SimpleRNN", None, lambda: [keras.layers.SimpleRNN(units)]),
        (
            "SimpleRNNFlipout",
            "SimpleRNN",
            lambda: [ks.layers.SimpleRNNFlipout(units, **lstm)],
        ),
        (
            "SimpleRNNLocalReparameterization",
            "SimpleRNN",
            lambda: [ks.layers.SimpleRNNLocalReparameterization(units, **lstm)],
        ),
    ]


def build_model(layers):
    model = keras.Sequential([keras.Input((28, 28)), *layers, keras.layers.Dense(10)])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def run(rounds, steps, batch_size, units, only=None):
    (x, y), _ = common.load_mnist()
    x = x.reshape(-1, 28, 28)
    n = steps * batch_size
    x, y = np.resize(x, (n, 28, 28)), np.resize(y, (n,))
    entries = [
        v
        for v in variants(units, kl_weight=1.0 / len(x))
        if only is None or v[0] in only
    ]
    models = {}
    for name, _, make in entries:
        keras.utils.set_random_seed(0)
        models[name] = build_model(make())
        # Compiles the train function and warms up.
        models[name].fit(
            x, y, batch_size=batch_size, epochs=1, steps_per_epoch=2, verbose=0
        )
    medians = {name: [] for name in models}
    names = list(models)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            timer = _common.step_timer()
            models[name].fit(
                x,
                y,
                batch_size=batch_size,
                epochs=1,
                verbose=0,
                shuffle=False,
                callbacks=[timer],
            )
            medians[name].append(float(np.median(timer.times)))
    results = []
    for name, twin, _ in entries:
        row = {
            "layer": name,
            "twin": twin,
            "median_step_ms": 1000 * float(np.median(medians[name])),
            "round_medians_ms": [1000 * t for t in medians[name]],
        }
        if twin is not None and twin in medians:
            ratios = np.asarray(medians[name]) / np.asarray(medians[twin])
            q1, median, q3 = _common.quantiles(ratios)
            row["ratio_median"] = median
            row["ratio_quartiles"] = [q1, q3]
        results.append(row)
    return results


def markdown(env, found_versions, results, args):
    text = _common.header_markdown(
        f"Recurrent layers: train step inside `model.fit` ({env['backend']})",
        env,
        found_versions,
    )
    text += (
        f"Shape: 28 steps x 28 features, batch {args.batch_size}, {args.units} units, "
        f"Dense(10); {args.rounds} rounds x {args.steps} steps, ratios per round, "
        "median [quartiles] over rounds.\n\n"
    )
    rows = []
    for row in results:
        ratio = "1 (twin)"
        if "ratio_median" in row:
            q1, q3 = row["ratio_quartiles"]
            ratio = f"{row['ratio_median']:.2f} [{q1:.2f}, {q3:.2f}]"
        rows.append(
            [row["layer"], row["twin"] or "", f"{row['median_step_ms']:.1f}", ratio]
        )
    return text + _common.markdown_table(
        ["layer", "vs", "median step (ms)", "ratio"], rows
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--steps", type=int, default=10, help="timed steps per model and round"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument(
        "--only", nargs="*", help="time only these layers (names as reported)"
    )
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    args = parser.parse_args(argv)
    env, found_versions = _common.environment(), _common.versions()
    results = run(args.rounds, args.steps, args.batch_size, args.units, args.only)
    stem = os.path.join(args.output_dir, f"rnn_step_{env['backend']}")
    _common.write_json(
        stem + ".json",
        {"environment": env, "versions": found_versions, "results": results},
    )
    text = markdown(env, found_versions, results, args)
    _common.write_text(stem + ".md", text)
    print(text)


if __name__ == "__main__":
    main()
