"""Train-step time of FlipOut pruning (GradientNoise + FlipOutPruning) vs plain training.

Model: 784-1024-1024-10 MLP (ReLU), batch 128, `SGD(0.01, momentum=0.9)`,
sparse categorical cross-entropy from logits, otherwise Keras's default
`compile` settings, on random data of the real shapes. Variants, each its
own model with the same architecture:

- `plain`: the inner optimizer alone (the reference);
- `noise`: `GradientNoise(SGD, scale=1.0)`, no callback (gradient noise only);
- `masks`: `GradientNoise(SGD, scale=0.0)` + `FlipOutPruning` (masks and flip
  counting, no noise: the noise-free ablation);
- `flipout`: `GradientNoise(SGD, scale=1.0)` + `FlipOutPruning` (the full
  method; the DESIGN bar is flipout / plain <= 1.15);
- `flipout_rademacher`: the same with `distribution="rademacher"` (one
  random bit per weight instead of 16), whose update TensorFlow compiles
  into one XLA function (`jit_compile="auto"`);
- `flipout_rademacher_unfused`: the same with `jit_compile=False`;
- `flipout_unfused`: the full method with Gaussian noise and
  `jit_compile=False` (`"auto"` fuses the Gaussian update too, since XLA
  draws Gaussian noise from a table).

With `--profile`, two more variants split the cost of the noise (they are
`GradientNoise(SGD, scale=1.0)` with the draw replaced, benchmark-only):

- `noise_no_draw`: the per-layer norms and the addition, with a constant in
  place of the random draw (what the noise costs besides the RNG);
- `noise_bits_only`: the random integer draw of the TensorFlow path (or
  `keras.random.normal` on JAX, which has no cheaper split) cast to float,
  without the Box-Muller transform.

The callback is given `prune_every` larger than the run, so no pruning event
(an epoch-end numpy ranking) falls inside the timed steps; the per-step work
does not depend on the sparsity (masks are dense).

What is timed: the wall time from `on_train_batch_begin` to
`on_train_batch_end` of a callback, i.e. one call of the compiled train
function plus the conversion of its logs to numbers that Keras does before a
synchronous callback (which also waits for JAX's asynchronous dispatch). The
first step of every `fit` call is dropped. Each round runs every variant's
`fit` for `--steps` steps in a fresh random order; after `--warmup-rounds`
unrecorded rounds, medians pool all recorded steps and each ratio is
`median(variant) / median(plain)` within this one process; the spread of the
per-round ratios is reported too.

Usage, from the repository root:

    PYTHONPATH=. python -m benchmarks.pruning_step
    KERAS_BACKEND=jax PYTHONPATH=. python -m benchmarks.pruning_step
"""

import argparse
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_stochastic as ks  # noqa: E402
from benchmarks import _common  # noqa: E402

VARIANTS = (
    "plain",
    "noise",
    "masks",
    "flipout",
    "flipout_rademacher",
    "flipout_rademacher_unfused",
    "flipout_unfused",
)
PROFILE_VARIANTS = ("noise_no_draw", "noise_bits_only")
BAR = 1.15


class _NoDraw(ks.optimizers.GradientNoise):
    """GradientNoise with a constant in place of the draw (profiling only)."""

    def _noise(self, grad, variable, mask, replicas=1):
        flat = ops.reshape(ops.cast(grad, "float32"), (-1,))
        std = self.scale * ops.sqrt(ops.vdot(flat, flat) / math.prod(variable.shape))
        self.seed_generator.next()
        return ops.cast(ops.full(variable.shape, std), grad.dtype)


class _BitsOnly(ks.optimizers.GradientNoise):
    """GradientNoise whose draw skips the Box-Muller transform (profiling only)."""

    def _noise(self, grad, variable, mask, replicas=1):
        flat = ops.reshape(ops.cast(grad, "float32"), (-1,))
        size = math.prod(variable.shape)
        std = self.scale * ops.sqrt(ops.vdot(flat, flat) / size)
        if keras.backend.backend() == "jax":
            values = keras.random.normal((size,), seed=self.seed_generator)
        else:
            half = (size + 1) // 2
            words = keras.random.randint(
                (half,), 0, 2**31 - 1, seed=self.seed_generator, dtype="int32"
            )
            values = ops.cast(words, "float32")
            values = ops.concatenate([values, values])[:size]
        return ops.cast(ops.reshape(values * std, variable.shape), grad.dtype)


def build(variant, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    callbacks = []
    if variant != "plain":
        scale = 0.0 if variant == "masks" else 1.0
        wrapper = {"noise_no_draw": _NoDraw, "noise_bits_only": _BitsOnly}.get(
            variant, ks.optimizers.GradientNoise
        )
        kwargs = {"distribution": "rademacher"} if "rademacher" in variant else {}
        if variant.endswith("_unfused"):
            kwargs["jit_compile"] = False
        optimizer = wrapper(optimizer, scale=scale, seed=seed, name=variant, **kwargs)
    if variant == "masks" or variant.startswith("flipout"):
        callbacks.append(ks.callbacks.FlipOutPruning(prune_every=10**6))
    model.compile(
        optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model, callbacks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per fit call")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup-rounds", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--profile", action="store_true", help="add " + ", ".join(PROFILE_VARIANTS)
    )
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    args = parser.parse_args(argv)
    variants = args.variants.split(",") + (
        list(PROFILE_VARIANTS) if args.profile else []
    )
    backend = keras.backend.backend()
    batch = 128
    rng = np.random.default_rng(0)
    x = rng.random((batch * args.steps, 784), dtype="float32")
    y = rng.integers(0, 10, batch * args.steps).astype("int32")
    models = {name: build(name, seed=1) for name in variants}
    times = {name: [] for name in variants}
    round_ratios = {name: [] for name in variants}
    env = _common.environment()
    start = time.time()
    for round_index in range(args.warmup_rounds + args.rounds):
        round_medians = {}
        for name in rng.permutation(variants):
            model, callbacks = models[name]
            timer = _common.step_timer()
            model.fit(
                x,
                y,
                batch_size=batch,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=[timer] + callbacks,
            )
            steps = timer.times[1:]
            round_medians[name] = float(np.median(steps))
            if round_index >= args.warmup_rounds:
                times[name].extend(steps)
        if round_index >= args.warmup_rounds and "plain" in round_medians:
            for name in variants:
                round_ratios[name].append(round_medians[name] / round_medians["plain"])
        print(
            f"round {round_index}: "
            + ", ".join(
                f"{k} {1e3 * v:.2f} ms" for k, v in sorted(round_medians.items())
            ),
            flush=True,
        )
    medians = {name: float(np.median(times[name])) for name in variants}
    results = {
        "benchmark": "pruning_step",
        **env,
        "versions": _common.versions(),
        "wall_seconds": time.time() - start,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "median_step_ms": {k: 1e3 * v for k, v in medians.items()},
        "ratio_to_plain": {k: medians[k] / medians["plain"] for k in variants},
        "round_ratio_quartiles": {
            k: _common.quantiles(v) for k, v in round_ratios.items()
        },
        "bar": BAR,
    }
    stem = os.path.join(args.output_dir, f"pruning_step_{backend}")
    _common.write_json(stem + ".json", results)
    lines = [
        _common.header_markdown(
            f"FlipOut pruning train step ({backend})", env, results["versions"]
        )
        + f"{args.rounds} rounds x {args.steps - 1} timed steps per variant; "
        f"bar: flipout / plain <= {BAR}.",
        "",
        "| variant | median step (ms) | ratio to plain | per-round ratio (q25, median, q75) |",
        "|---|---|---|---|",
    ]
    for name in variants:
        quartiles = ", ".join(
            f"{q:.3f}" for q in results["round_ratio_quartiles"][name]
        )
        lines.append(
            f"| {name} | {1e3 * medians[name]:.2f} | "
            f"{results['ratio_to_plain'][name]:.3f} | {quartiles} |"
        )
    text = "\n".join(lines) + "\n"
    _common.write_text(stem + ".md", text)
    print(text)


if __name__ == "__main__":
    main()
