"""The LRT variance path's matmuls in float32 against bfloat16 (TensorFlow, no XLA).

Local reparameterization computes a second matmul per layer, the output
variance `x^2 @ sigma^2`, and two more in its gradient. This times the three
matmuls of the 784-1024-1024-10 MLP's largest layer at batch 128 (forward
`(128, 1024) @ (1024, 1024)`, weight gradient `(1024, 128) @ (128, 1024)`,
input gradient `(128, 1024) @ (1024, 1024)^T`) in float32 and in bfloat16,
with and without the casts a bfloat16 variance path would add, interleaved
in random order per round; and it measures what bfloat16 does to the
variance itself (relative error of `x^2 @ sigma^2` against float64, on
inputs of the layer's scale).

Usage, from the repository root:

    PYTHONPATH=. python -m benchmarks.variance_matmul
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402

BATCH, FAN_IN, UNITS = 128, 1024, 1024


def _cases(tf, x_squared, variance, upstream):
    def cast(t):
        return tf.cast(t, tf.bfloat16)

    bf_x, bf_var, bf_up = cast(x_squared), cast(variance), cast(upstream)
    return {
        "forward float32": lambda: tf.matmul(x_squared, variance),
        "forward bfloat16": lambda: tf.matmul(bf_x, bf_var),
        "forward bfloat16 with casts": lambda: tf.cast(
            tf.matmul(cast(x_squared), cast(variance)), tf.float32
        ),
        "weight gradient float32": lambda: tf.matmul(
            x_squared, upstream, transpose_a=True
        ),
        "weight gradient bfloat16": lambda: tf.matmul(bf_x, bf_up, transpose_a=True),
        "input gradient float32": lambda: tf.matmul(
            upstream, variance, transpose_b=True
        ),
        "input gradient bfloat16": lambda: tf.matmul(bf_up, bf_var, transpose_b=True),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=20, help="calls per round")
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default="variance_matmul_tensorflow")
    args = parser.parse_args(argv)
    import tensorflow as tf

    env = _common.environment()
    rng = np.random.default_rng(0)
    # The layer's scale: inputs after a ReLU, trained stddevs around 0.05.
    x = np.maximum(rng.normal(size=(BATCH, FAN_IN)), 0.0)
    stddev = rng.uniform(0.01, 0.1, size=(FAN_IN, UNITS))
    upstream = rng.normal(size=(BATCH, UNITS))
    x_squared = tf.constant(x**2, tf.float32)
    variance = tf.constant(stddev**2, tf.float32)
    cases = {
        name: tf.function(fn)
        for name, fn in _cases(
            tf, x_squared, variance, tf.constant(upstream, tf.float32)
        ).items()
    }
    for fn in cases.values():
        fn()
    times = {name: [] for name in cases}
    order = list(cases)
    for _ in range(args.rounds):
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            for _ in range(args.calls):
                cases[name]()
            times[name].append((time.perf_counter() - start) / args.calls)
    median = {name: float(np.median(t)) * 1e3 for name, t in times.items()}

    exact = (x**2) @ (stddev**2)
    low = cases["forward bfloat16 with casts"]().numpy().astype("float64")
    single = cases["forward float32"]().numpy().astype("float64")
    relative = {
        "bfloat16": np.abs(low - exact) / exact,
        "float32": np.abs(single - exact) / exact,
    }
    errors = {
        precision: {
            "median": float(np.median(r)),
            "max": float(r.max()),
        }
        for precision, r in relative.items()
    }
    payload = {
        "environment": env,
        "versions": _common.versions(),
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "median_ms": median,
        "variance_relative_error": errors,
    }
    rows = []
    for name, ms in median.items():
        reference = name.replace("bfloat16 with casts", "float32").replace(
            "bfloat16", "float32"
        )
        rows.append([name, f"{ms:.3f}", f"{ms / median[reference]:.2f}"])
    markdown = _common.header_markdown(
        "LRT variance matmuls: float32 vs bfloat16", env, payload["versions"]
    )
    markdown += (
        f"{args.rounds} rounds x {args.calls} calls, random order per round.\n\n"
    )
    markdown += _common.markdown_table(["matmul", "median ms", "vs float32"], rows)
    markdown += "\nRelative error of `x^2 @ sigma^2` against float64:\n\n"
    markdown += _common.markdown_table(
        ["precision", "median", "max"],
        [[p, f"{e['median']:.2e}", f"{e['max']:.2e}"] for p, e in errors.items()],
    )
    _common.write_outputs(args.output_dir, args.name, payload, markdown)


if __name__ == "__main__":
    main()
