"""XLA's cost analysis of the compiled train step: bytes accessed and flops per estimator.

A backend-independent proxy for what a step costs on an accelerator, where
the elementwise work of the stochastic layers is memory bound: for the
784-1024-1024-10 MLP at batch 128 (the `benchmarks.train_step` models, Adam,
sparse categorical cross-entropy), Keras's own JAX `train_step` is jitted
and lowered on one batch, compiled for this machine's CPU, and XLA's
`cost_analysis()` of the optimized module gives bytes accessed, flops and
transcendental operations. Each figure is reported against the Keras Dense
step's.

Beside the totals, the optimized HLO is scanned for the ops that make
weight-sized passes: random-bit generation (`rng-bit-generator` and the
threefry expansion's fusions on JAX), and the count of instructions whose
result has at least as many elements as the largest kernel (1024 x 1024).

On TensorFlow the same train step is compiled with `tf.function(...,
jit_compile=True)` and its optimized HLO read with
`experimental_get_compiler_ir`: TensorFlow has no public cost analysis of
its XLA clusters, so only the weight-sized passes are counted there.

Usage, from the repository root:

    KERAS_BACKEND=jax PYTHONPATH=. python -m benchmarks.cost_analysis
    KERAS_BACKEND=tensorflow PYTHONPATH=. python -m benchmarks.cost_analysis
"""

import argparse
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402
from benchmarks import train_step  # noqa: E402

VARIANTS = ("keras", "ks_flipout", "ks_lrt", "ks_reparam", "ks_vd")
PEERS = ("kp_flipout", "kp_lrt", "kp_reparam")
COSTS = ("bytes accessed", "flops", "transcendentals")
# Instructions that name or forward a buffer without touching its elements.
_NOT_PASSES = ("parameter", "get-tuple-element", "tuple", "bitcast", "constant")
_SHAPE = re.compile(r"^\s*(?:ROOT )?%?[\w.\-]+ = (\w+)\[([\d,]*)\]")


def _state(model):
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )


def weight_sized_passes(hlo_text, threshold):
    """Instructions of the optimized HLO whose result has >= `threshold` elements.

    Returns a list of `(opcode, op_name)` in program order: the opcode
    (`fusion`, `dot`, ...; parameters, tuples and bitcasts, which move no
    elements, are left out; a fusion is one pass over its output) and the
    JAX operation it was lowered from (its `op_name` metadata, e.g.
    `jit(train_step)/jvp(dense_flipout_1)/log1p`), which says where the pass
    comes from.
    """
    passes = []
    for line in hlo_text.splitlines():
        match = _SHAPE.match(line)
        if not match or not match.group(2):
            continue
        size = int(np.prod([int(d) for d in match.group(2).split(",")]))
        if size < threshold:
            continue
        opcode = re.search(r"\](?:\{[^}]*\})? ([\w\-]+)\(", line)
        name = opcode.group(1) if opcode else "?"
        if name in _NOT_PASSES:
            continue
        op_name = re.search(r'op_name="([^"]*)"', line)
        passes.append((name, op_name.group(1) if op_name else ""))
    return passes


def large_instructions(hlo_text, threshold):
    """`{opcode: count}` of `weight_sized_passes(hlo_text, threshold)`."""
    counts = {}
    for name, _ in weight_sized_passes(hlo_text, threshold):
        counts[name] = counts.get(name, 0) + 1
    return counts


def _entry_computation(hlo_text):
    """The ENTRY computation's lines (nested fusion bodies are not passes)."""
    lines, inside = [], False
    for line in hlo_text.splitlines():
        if line.startswith("ENTRY"):
            inside = True
            continue
        if inside:
            if line.startswith("}"):
                break
            lines.append(line)
    return "\n".join(lines)


def _short(op_name):
    """`jit(train_step)/jvp(dense_flipout_1)/jit(_normal)/erf_inv` -> `dense_flipout_1 normal erf_inv`.

    TensorFlow's `sequential_1/dense_flipout_1_2/Log1p` loses the model's scope.
    """
    parts = [
        p
        for p in op_name.split("/")
        if p and p != "jit(train_step)" and not p.startswith("sequential")
    ]
    words = []
    for part in parts:
        inner = re.sub(r"^(?:jvp|transpose|jit)\((.*)\)$", r"\1", part)
        inner = re.sub(r"^(?:jvp|transpose|jit)\((.*)\)$", r"\1", inner)
        words.append(
            ("grad " if part.startswith("transpose") else "") + inner.strip("_")
        )
    return " / ".join(words)


def _compiled_jax(model, x, y):
    import jax

    compiled = jax.jit(model.train_step).lower(_state(model), (x, y)).compile()
    costs = compiled.cost_analysis()
    if isinstance(costs, (list, tuple)):
        costs = costs[0]
    return compiled.as_text(), {key: float(costs.get(key, 0.0)) for key in COSTS}


def _compiled_tensorflow(model, x, y):
    import tensorflow as tf

    step = tf.function(model.train_step, jit_compile=True)
    data = (tf.constant(x), tf.constant(y))
    return step.experimental_get_compiler_ir(data)(stage="optimized_hlo"), {}


def analyse(variant, batch_size=128, hidden=(1024, 1024)):
    """Cost analysis (JAX) and pass counts of `variant`'s XLA-compiled train step."""
    model, _ = train_step.build_model(variant, "mlp", hidden, jit_compile=True)
    x, y = train_step._data("mlp", 1)
    # One real step builds the optimizer and metric variables.
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    x, y = x[:batch_size], y[:batch_size]
    if keras.backend.backend() == "jax":
        text, costs = _compiled_jax(model, x, y)
    else:
        text, costs = _compiled_tensorflow(model, x, y)
    entry = _entry_computation(text)
    threshold = hidden[0] * hidden[1]
    return {
        **costs,
        "weight_sized_instructions": large_instructions(entry, threshold),
        "weight_sized_passes": [
            f"{opcode} {_short(op_name)}"
            for opcode, op_name in weight_sized_passes(entry, threshold)
        ],
        "rng_bit_generator_ops": text.count("rng-bit-generator("),
        "threefry_calls": len(re.findall(r"threefry2x32", text)),
        "parameters": int(model.count_params()),
    }


def _markdown(payload):
    rows = []
    reference = payload["results"]["keras"]
    for variant, entry in payload["results"].items():
        if "skipped" in entry:
            rows.append([variant, "skipped: " + entry["skipped"]] + [""] * 6)
            continue
        passes = entry["weight_sized_instructions"]
        costs = ["n/a"] * 5
        if "bytes accessed" in entry:
            costs = [
                f"{entry['bytes accessed'] / 2**20:.1f}",
                f"{entry['bytes accessed'] / reference['bytes accessed']:.2f}x",
                f"{entry['flops'] / 1e9:.3f}",
                f"{entry['flops'] / reference['flops']:.2f}x",
                f"{entry['transcendentals'] / 1e6:.2f}",
            ]
        rows.append(
            [
                variant,
                *costs,
                sum(passes.values()),
                ", ".join(f"{k} {v}" for k, v in sorted(passes.items())),
            ]
        )
    details = [
        f"- `{variant}`: " + "; ".join(entry["weight_sized_passes"])
        for variant, entry in payload["results"].items()
        if "weight_sized_passes" in entry
    ]
    header = _common.header_markdown(
        "XLA cost analysis of the compiled train step (MLP 784-1024-1024-10, batch 128)",
        payload["environment"],
        payload["versions"],
    )
    return (
        header
        + _common.markdown_table(
            [
                "variant",
                "MiB accessed",
                "bytes vs Keras",
                "GFLOP",
                "flops vs Keras",
                "M transcendentals",
                "weight-sized instructions",
                "by opcode",
            ],
            rows,
        )
        + (
            "\nWeight-sized passes over the 1024 x 1024 kernel, in program order "
            "(opcode, then the operation it comes from):\n\n"
            + "\n".join(details)
            + "\n"
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS + PEERS))
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        parser.error(
            "cost_analysis runs on the JAX and TensorFlow backends (XLA). "
            f"Received: backend={backend!r}"
        )
    name = args.name or f"cost_analysis_{backend}"
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS + PEERS))
    if unknown or "keras" not in variants:
        parser.error(
            f"--variants takes names from {VARIANTS + PEERS}, including 'keras' "
            f"(the reference). Received: variants={args.variants!r}"
        )
    results = {}
    for variant in variants:
        try:
            results[variant] = analyse(variant)
        except ImportError as error:
            results[variant] = {"skipped": f"not installed ({error.name})"}
        print(f"[cost_analysis] {variant}: {results[variant]}", file=sys.stderr)
    payload = {
        "benchmark": "cost_analysis",
        "environment": _common.environment(),
        "versions": _common.versions(),
        "results": results,
    }
    _common.write_outputs(args.output_dir, name, payload, _markdown(payload))
    return payload


if __name__ == "__main__":
    main()
