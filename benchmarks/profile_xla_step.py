"""Where an XLA-compiled train step's time goes: per-XLA-op timing by kind.

For the 784-1024-1024-10 MLP (batch 128, Adam) of `benchmarks.train_step`:

- JAX: Keras's `train_step` is jitted as `fit` jits it (the state donated),
  run for a few warm-up steps, then traced with `jax.profiler` for
  `--steps` steps;
- TensorFlow: Keras's `train_step` is wrapped in
  `tf.function(jit_compile=True)` (what `fit` compiles with
  `jit_compile=True`), run for a few warm-up steps, then traced with the
  TensorFlow profiler, whose host trace carries one event per XLA CPU thunk.

Every XLA CPU thunk in the trace (a fusion, a matmul, a copy) is matched to
its instruction in the optimized HLO of the same compiled function, whose
`op_name` metadata says which operation it was lowered from, and its time
is summed by kind:

- matmul: `dot` instructions and the matmul fusions XLA hands to its CPU
  library (forward, input gradient and weight gradient);
- optimizer: everything lowered from Adam (`adam/` scopes);
- noise draw: fusions with random-bit work (threefry's counters and
  rounds, sign bits) or the table lookup (a `gather`), including what XLA
  fused into them (e.g. `delta = sigma * eps`);
- softplus / KL / variance: other fusions with a transcendental op
  (`exp`, `log1p`, `log`, `divide`, `sqrt`): softplus, its gradient, the KL
  and the LRT variance's square root;
- copy: buffer copies (XLA's answer to aliasing donated state);
- other: the rest (activations, loss, small elementwise ops).

Thunk times are wall times on XLA's threads: independent thunks can run at
once on the 2 cores, so the kinds can sum to more than the step's wall time;
the shares are what to read (step wall times are in `train_step`).

Usage, from the repository root:

    KERAS_BACKEND=jax PYTHONPATH=. python -m benchmarks.profile_xla_step
    PYTHONPATH=. python -m benchmarks.profile_xla_step
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from benchmarks import _common  # noqa: E402
from benchmarks import cost_analysis  # noqa: E402
from benchmarks import train_step  # noqa: E402

VARIANTS = ("keras", "ks_flipout", "ks_lrt", "ks_reparam")
KINDS = (
    "matmul",
    "optimizer",
    "noise draw",
    "softplus / KL / variance",
    "copy",
    "other",
)
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = \S+ ([\w\-]+)\(")


def _computation_opcodes(hlo_text):
    """`{computation: set of opcodes}` of every computation in the module."""
    opcodes, current = {}, None
    for line in hlo_text.splitlines():
        header = re.match(r"^(?:ENTRY )?%([\w.\-]+) ", line)
        if header and line.rstrip().endswith("{"):
            current = opcodes.setdefault(header.group(1), set())
            continue
        match = _INSTRUCTION.match(line)
        if match and current is not None:
            current.add(match.group(2))
    return opcodes


def instruction_kinds(hlo_text):
    """`{instruction: kind}` for the entry computation of an optimized module.

    A fusion's kind comes from the opcodes inside it: random-bit work
    (`iota`, `xor`, shifts) or the table's `gather` make a noise draw, a
    transcendental (`exponential`, `log`, `log-plus-one`, `divide`, `sqrt`,
    `rsqrt`, `logistic`) posterior work, unless its `op_name` is Adam's.
    """
    opcodes = _computation_opcodes(hlo_text)
    kinds = {}
    for line in cost_analysis._entry_computation(hlo_text).splitlines():
        match = _INSTRUCTION.match(line)
        if not match:
            continue
        name, opcode = match.groups()
        op_name = re.search(r'op_name="([^"]*)"', line)
        op_name = op_name.group(1) if op_name else ""
        called = re.search(r"calls=%([\w.\-]+)", line)
        inside = opcodes.get(called.group(1), set()) if called else {opcode}
        kinds[name] = kind(opcode, op_name, inside, "__ynn_fusion" in line)
    return kinds


def kind(opcode, op_name, inside, library_matmul=False):
    """The kind (see the module docstring) of one instruction."""
    if opcode == "dot" or library_matmul or "dot" in inside:
        return "matmul"
    if opcode == "copy":
        return "copy"
    if "adam" in op_name:
        return "optimizer"
    if inside & {"iota", "xor", "shift-right-logical", "shift-left", "gather"}:
        return "noise draw"
    if inside & {
        "exponential",
        "log",
        "log-plus-one",
        "divide",
        "sqrt",
        "rsqrt",
        "logistic",
    }:
        return "softplus / KL / variance"
    return "other"


def profile_variant(variant, steps, batch_size=128):
    """Milliseconds per step by kind, for one variant."""
    model, _ = train_step.build_model(variant, "mlp", (1024, 1024), jit_compile=True)
    x, y = train_step._data("mlp", 1)
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    data = (x[:batch_size], y[:batch_size])
    if keras.backend.backend() == "tensorflow":
        durations = _tensorflow_thunk_times(model, data, steps)
    else:
        durations = _jax_thunk_times(model, data, steps)
    totals = collections.Counter()
    for kind_name, duration in durations:
        totals[kind_name] += duration / steps
    return {k: round(totals.get(k, 0.0), 3) for k in KINDS}


def _tensorflow_thunk_times(model, data, steps):
    """`[(kind, ms)]` of the XLA thunks of `steps` profiled TensorFlow steps."""
    import tensorflow as tf

    from benchmarks import profile_step

    data = tuple(tf.constant(a) for a in data)
    step = tf.function(model.train_step, jit_compile=True)
    names = instruction_kinds(
        step.experimental_get_compiler_ir(data)(stage="optimized_hlo")
    )
    for _ in range(3):
        step(data)
    with tempfile.TemporaryDirectory() as directory:
        tf.profiler.experimental.start(directory)
        for _ in range(steps):
            step(data)
        tf.profiler.experimental.stop()
        durations = [
            (names[name], duration)
            for _, name, duration in profile_step.host_events(directory)
            if name in names
        ]
    _check_matched(durations, "tensorflow")
    return durations


def _check_matched(durations, library):
    if not durations:
        raise RuntimeError(
            "The profiler trace has no XLA op events to match: this "
            f"{library} does not trace CPU thunks."
        )


def _jax_thunk_times(model, data, steps):
    """`[(kind, ms)]` of the XLA thunks of `steps` profiled JAX steps."""
    import jax

    state = jax.tree.map(lambda a: a.copy(), cost_analysis._state(model))
    # One compilation: the executable that runs is the one whose HLO names
    # the trace's thunks.
    step = jax.jit(model.train_step, donate_argnums=0).lower(state, data).compile()
    names = instruction_kinds(step.as_text())
    for _ in range(3):
        state = step(state, data)[1]
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory() as directory:
        with jax.profiler.trace(directory, create_perfetto_trace=True):
            for _ in range(steps):
                state = step(state, data)[1]
            jax.block_until_ready(state)
        (path,) = glob.glob(f"{directory}/**/*.trace.json.gz", recursive=True)
        with gzip.open(path) as file:
            events = json.load(file)["traceEvents"]
    durations = [
        (names[event["name"]], event["dur"] / 1000.0)
        for event in events
        if event.get("ph") == "X" and event.get("name") in names
    ]
    _check_matched(durations, "jax/jaxlib")
    return durations


def _markdown(payload):
    backend = payload["environment"]["backend"]
    header = _common.header_markdown(
        f"XLA op time by kind, {backend} train step (MLP 784-1024-1024-10, batch 128)",
        payload["environment"],
        payload["versions"],
    )
    rows = [
        [variant] + [f"{entry[k]:.2f}" for k in KINDS] + [f"{sum(entry.values()):.2f}"]
        for variant, entry in payload["results"].items()
    ]
    return header + _common.markdown_table(
        ["variant"] + [f"{k} (ms)" for k in KINDS] + ["sum (ms)"], rows
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        parser.error(
            "profile_xla_step runs on the JAX and TensorFlow backends. "
            f"Received: backend={backend!r}"
        )
    name = args.name or f"profile_xla_step_{backend}"
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(train_step.ALL_VARIANTS))
    if unknown or args.steps < 1:
        parser.error(
            f"--variants takes names from {train_step.ALL_VARIANTS} and --steps a "
            f"positive integer. Received: variants={args.variants!r}, steps={args.steps}"
        )
    results = {}
    for variant in variants:
        results[variant] = profile_variant(variant, args.steps)
        print(f"[profile_xla_step] {variant}: {results[variant]}", file=sys.stderr)
    payload = {
        "benchmark": "profile_xla_step",
        "environment": _common.environment(),
        "versions": _common.versions(),
        "steps": args.steps,
        "results": results,
    }
    _common.write_outputs(args.output_dir, name, payload, _markdown(payload))
    return payload


if __name__ == "__main__":
    main()
