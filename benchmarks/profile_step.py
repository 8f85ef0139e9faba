"""Where a train step's time goes: an op-level profile (TensorFlow backend).

For the 784-1024-1024-10 MLP (batch 128, Adam) built from `keras.layers.Dense`
and from each of keras_stochastic's dense estimators, this runs `fit` for a
few steps under the TensorFlow profiler, parses the XSpace (`*.xplane.pb`)
it writes, and sums the duration of every TensorFlow op executed on the
`tf_Compute` threads, per step. Ops are grouped

- by phase: forward (the layers' scopes, and the loss), backward (ops under
  `gradient_tape/`, and the `AddN` that accumulates gradients), optimizer
  (ops under the optimizer's scope, `adam/`);
- by layer (`hidden1`, `hidden2`, `logits`: the layers are named so their
  name scopes can be matched), forward and backward together;
- by kind of op: matmul, random draws, transcendental functions (softplus,
  log, sqrt, sin/cos of the Box-Muller transform, sigmoid in softplus's
  gradient), elementwise arithmetic, reductions, shape and copy ops,
  variable reads and writes;
- by op type within each layer.

Op durations are wall time on the executor threads: TensorFlow runs up to
two ops at once here, so their sum can exceed the step's wall time, and
under the profiler every op carries a small tracing overhead. The shares,
not the absolute numbers, are what to read; the step wall times measured
without the profiler are in `train_step`.

Usage, from the repository root:

    PYTHONPATH=. python -m benchmarks.profile_step
"""

import argparse
import collections
import glob
import os
import re
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_stochastic as ks  # noqa: E402
from benchmarks import _common  # noqa: E402

VARIANTS = {
    "keras": keras.layers.Dense,
    "ks_flipout": ks.layers.DenseFlipout,
    "ks_lrt": ks.layers.DenseLocalReparameterization,
    "ks_reparam": ks.layers.DenseReparameterization,
    "ks_vd": ks.layers.DenseVariationalDropout,
}
LAYER_NAMES = ("hidden1", "hidden2", "logits")
_LAYER_PATTERN = re.compile(r"(?:^|/)(" + "|".join(LAYER_NAMES) + r")(?:_\d+)*/")
# Keras names the n-th optimizer of a process `adam_<n>`.
_OPTIMIZER_PATTERN = re.compile(r"(?:^|/)adam(?:_\d+)*/")

_KINDS = (
    ("matmul", ("MatMul", "Conv2D", "Einsum")),
    ("random", ("Random",)),
    (
        "transcendental",
        (
            "Softplus",
            "Sigmoid",
            "Log",
            "Exp",
            "Sqrt",
            "Rsqrt",
            "Sin",
            "Cos",
            "Tanh",
            "Pow",
            "Reciprocal",
            "UnaryOpsComposition",
        ),
    ),
    ("variable", ("VariableOp",)),
    ("reduction", ("Sum", "Mean", "Max", "Min", "BiasAddGrad", "Prod")),
    (
        "shape/copy",
        (
            "Concat",
            "StridedSlice",
            "Slice",
            "Reshape",
            "Tile",
            "Pack",
            "Transpose",
            "Identity",
            "Shape",
            "BroadcastTo",
            "Fill",
        ),
    ),
)


def op_kind(op_type):
    """A coarse kind for an op type (`_MklMatMul` -> `matmul`, ...)."""
    for kind, fragments in _KINDS:
        if any(fragment in op_type for fragment in fragments):
            return kind
    return "elementwise/other"


def build_model(variant, hidden=(1024, 1024)):
    layer_cls = VARIANTS[variant]
    kwargs = {} if variant == "keras" else {"kl_weight": 1.0 / 60000, "seed": 0}
    layers = [keras.Input((784,))]
    for index, width in enumerate(hidden):
        layers.append(
            layer_cls(width, activation="relu", name=LAYER_NAMES[index], **kwargs)
        )
    layers.append(layer_cls(10, name=LAYER_NAMES[-1], **kwargs))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def host_events(log_dir):
    """`[(thread line, event name, duration_ms)]` of the host CPU trace the TF profiler wrote."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise RuntimeError(f"The profiler wrote no *.xplane.pb under {log_dir}")
    space = xplane_pb2.XSpace()
    with open(sorted(paths)[-1], "rb") as f:
        space.ParseFromString(f.read())
    return [
        (
            line.name,
            plane.event_metadata[event.metadata_id].name,
            event.duration_ps / 1e9,
        )
        for plane in space.planes
        if plane.name == "/host:CPU"
        for line in plane.lines
        for event in line.events
    ]


def read_op_events(log_dir):
    """`[(op_name, op_type, duration_ms)]` of TF ops on the executor threads."""
    events = []
    for line, name, duration in host_events(log_dir):
        # TF op events are named "<op name>:<op type>".
        if not line.startswith("tf_Compute") or ":" not in name or "::" in name:
            continue
        op_name, op_type = name.rsplit(":", 1)
        events.append((op_name, op_type, duration))
    return events


def _phase(op_name, op_type):
    if _OPTIMIZER_PATTERN.search(op_name):
        return "optimizer"
    if "gradient_tape/" in op_name or op_type == "AddN":
        return "backward"
    return "forward"


def _layer(op_name):
    match = _LAYER_PATTERN.search(op_name)
    if match:
        return match.group(1)
    if _OPTIMIZER_PATTERN.search(op_name):
        return "(optimizer)"
    return "(loss, other)"


def _short_name(op_name):
    return op_name.removeprefix("StatefulPartitionedCall/")


def summarize(events, steps):
    """Per-step sums (ms) and op counts, grouped several ways."""

    def group(key):
        totals = collections.defaultdict(float)
        counts = collections.Counter()
        for op_name, op_type, duration in events:
            k = key(op_name, op_type)
            totals[k] += duration
            counts[k] += 1
        return {
            k: {"ms_per_step": totals[k] / steps, "ops_per_step": counts[k] / steps}
            for k in sorted(totals, key=totals.get, reverse=True)
        }

    total = sum(duration for _, _, duration in events) / steps
    return {
        "total_op_ms_per_step": total,
        "ops_per_step": len(events) / steps,
        "by_phase": group(lambda n, t: _phase(n, t)),
        "by_layer": group(lambda n, t: _layer(n)),
        "by_kind": group(lambda n, t: op_kind(t)),
        "by_phase_and_kind": group(lambda n, t: f"{_phase(n, t)} / {op_kind(t)}"),
        "by_layer_and_op_type": group(lambda n, t: f"{_layer(n)} / {t}"),
        "by_op": group(lambda n, t: f"{_short_name(n)}:{t}"),
    }


def _step_timer():
    return _common.step_timer()


def profile_variant(variant, steps, hidden, batch_size=128, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(steps * batch_size, 784)).astype("float32")
    y = rng.integers(0, 10, size=steps * batch_size).astype("int32")
    model = build_model(variant, hidden)
    fit_kwargs = {"batch_size": batch_size, "epochs": 1, "shuffle": False, "verbose": 0}
    model.fit(x, y, **fit_kwargs)
    log_dir = tempfile.mkdtemp(prefix="ks_profile_")
    try:
        timer = _step_timer()
        tf.profiler.experimental.start(log_dir)
        try:
            model.fit(x, y, callbacks=[timer], **fit_kwargs)
        finally:
            tf.profiler.experimental.stop()
        events = read_op_events(log_dir)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    summary = summarize(events, steps)
    summary["median_profiled_step_ms"] = 1e3 * float(
        np.median(timer.times[1:] or timer.times)
    )
    summary["steps"] = steps
    return summary


def _markdown(payload, top_ops=12):
    text = _common.header_markdown(
        "Op-level profile of one train step (MLP 784-1024-1024-10, batch 128, Adam)",
        payload["environment"],
        payload["versions"],
    )
    text += (
        "Sum of TensorFlow op durations on the executor threads per step "
        f"(mean over {payload['settings']['steps']} profiled `fit` steps). "
        "Two ops can run at once, so the sum can exceed the step's wall time; "
        "read the shares.\n\n"
    )
    variants = payload["results"]
    names = list(variants)

    def cell(summary, group, key):
        entry = summary[group].get(key)
        if entry is None:
            return "-"
        share = 100 * entry["ms_per_step"] / summary["total_op_ms_per_step"]
        return f"{entry['ms_per_step']:.1f} ({share:.0f}%)"

    rows = [
        ["profiled step wall ms (median)"]
        + [f"{variants[n]['median_profiled_step_ms']:.1f}" for n in names],
        ["sum of op ms per step"]
        + [f"{variants[n]['total_op_ms_per_step']:.1f}" for n in names],
        ["ops per step"] + [f"{variants[n]['ops_per_step']:.0f}" for n in names],
    ]
    for group in ("by_phase", "by_kind", "by_layer"):
        keys = []
        for n in names:
            for key in variants[n][group]:
                if key not in keys:
                    keys.append(key)
        for key in keys:
            rows.append(
                [f"{group[3:]}: {key}"] + [cell(variants[n], group, key) for n in names]
            )
    text += _common.markdown_table(["ms per step (share)"] + names, rows)
    for n in names:
        text += f"\n### {n}: top {top_ops} (layer / op type)\n\n"
        items = list(variants[n]["by_layer_and_op_type"].items())[:top_ops]
        text += _common.markdown_table(
            ["layer / op type", "ms per step", "share", "ops per step"],
            [
                [
                    key,
                    f"{v['ms_per_step']:.2f}",
                    f"{100 * v['ms_per_step'] / variants[n]['total_op_ms_per_step']:.0f}%",
                    f"{v['ops_per_step']:.0f}",
                ]
                for key, v in items
            ],
        )
        text += f"\n### {n}: top {top_ops} ops by name\n\n"
        items = list(variants[n]["by_op"].items())[:top_ops]
        text += _common.markdown_table(
            ["op name:type", "ms per step", "share"],
            [
                [
                    f"`{key}`",
                    f"{v['ms_per_step']:.2f}",
                    f"{100 * v['ms_per_step'] / variants[n]['total_op_ms_per_step']:.0f}%",
                ]
                for key, v in items
            ],
        )
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--hidden", default="1024,1024")
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default="profile_step_tensorflow")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        parser.error(
            "profile_step parses the TensorFlow profiler: use KERAS_BACKEND=tensorflow"
        )
    variants = [v for v in args.variants.split(",") if v]
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant!r}; choose from {list(VARIANTS)}")
    hidden = tuple(int(w) for w in args.hidden.split(","))
    if len(hidden) != len(LAYER_NAMES) - 1:
        parser.error("--hidden takes two widths")
    env = _common.environment()
    results = {v: profile_variant(v, args.steps, hidden) for v in variants}
    payload = {
        "benchmark": "profile_step",
        "environment": env,
        "versions": _common.versions(),
        "settings": {"steps": args.steps, "hidden": list(hidden), "batch_size": 128},
        "results": results,
    }
    _common.write_outputs(args.output_dir, args.name, payload, _markdown(payload))
    return payload


if __name__ == "__main__":
    main()
