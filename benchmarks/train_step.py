"""Train-step time inside `model.fit`: stochastic layers vs Keras twins and peers.

Two models, each built from every variant's layers:

- `mlp`: 784-1024-1024-10 MLP (ReLU), batch 128 (the DESIGN section 8 bar);
- `lenet`: Conv 6@5x5 - max-pool - Conv 16@5x5 - max-pool - Dense 120 - 84 - 10
  on 28x28x1 inputs (ReLU, valid padding), batch 64; every conv and dense
  layer of a stochastic variant uses that variant's estimator.

Variants (all compiled with Adam, sparse categorical cross-entropy from
logits, otherwise Keras's default `compile` settings, trained on random data
of the real shapes):

- `keras`: `keras.layers.Dense` / `Conv2D` (the twin);
- `ks_flipout`, `ks_lrt`, `ks_reparam`: keras_stochastic's `DenseFlipout` /
  `Conv2DFlipout`, `DenseLocalReparameterization` /
  `Conv2DLocalReparameterization`, `DenseReparameterization` /
  `Conv2DReparameterization`, `kl_weight=1/60000`;
- `ks_vd`: keras_stochastic's `DenseVariationalDropout` /
  `Conv2DVariationalDropout` (sparse variational dropout with its defaults:
  additive parameterization, Molchanov KL, local reparameterization),
  `kl_weight=1/60000`;
- `tf_keras`, `tfp_flipout`, `tfp_lrt`, `tfp_reparam`: `tf_keras.layers.Dense`
  and TensorFlow Probability's `DenseFlipout` / `Convolution2DFlipout`,
  `DenseLocalReparameterization` (dense only: TFP has no conv LRT),
  `DenseReparameterization` / `Convolution2DReparameterization`, built with
  the legacy `tf_keras` (Keras 2), which TFP's layers require, KL scaled by
  1/60000; always run on TensorFlow, whatever `KERAS_BACKEND` is;
- `kp_flipout`, `kp_lrt`, `kp_reparam`: keras-proba's Keras 3 `DenseFlipout` /
  `Conv2DFlipout`, `DenseLocalReparameterization` (dense only),
  `DenseReparameterization` / `Conv2DReparameterization`, `kl_weight=1/60000`.

Peers are skipped (and say so in the results) when their packages are not
installed; see benchmarks/README.md for the venv that has them.

What is timed: the wall time from `on_train_batch_begin` to
`on_train_batch_end` of a callback, i.e. one call of the compiled train
function (fetching the batch, forward, backward, optimizer update) plus the
conversion of its logs to Python numbers that Keras does before calling a
synchronous callback, which also waits for JAX's asynchronous dispatch. The
first step of every `fit` call is dropped. Each round runs every variant's
`fit` for `--steps` steps, in a fresh random order; after `--warmup-rounds`
unrecorded rounds (tracing and compilation), medians pool all recorded steps
and each ratio is `median(variant) / median(reference)` within this one
process. The spread of the per-round ratios is reported too.

Usage, from the repository root:

    PYTHONPATH=. python -m benchmarks.train_step
    PYTHONPATH=. python -m benchmarks.train_step --jit-compile
    KERAS_BACKEND=jax PYTHONPATH=. python -m benchmarks.train_step
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_stochastic as ks  # noqa: E402
from benchmarks import _common  # noqa: E402

KL_WEIGHT = 1.0 / 60000
ESTIMATORS = ("flipout", "lrt", "reparam", "vd")
# DESIGN section 8: time relative to the Keras twin, and relative to the peers'
# layer of the same estimator (measured for the 784-1024-1024-10 MLP).
# Sparse variational dropout (issue 3): its LRT step within 2.3x of Dense.
BAR_VS_TWIN = {"flipout": 3.0, "lrt": 2.0, "reparam": 2.3, "vd": 2.3}
BAR_VS_TFP = 0.8
BAR_VS_KERAS_PROBA = 0.9

ARCHS = {
    "mlp": {"batch_size": 128, "input_shape": (784,)},
    "lenet": {"batch_size": 64, "input_shape": (28, 28, 1)},
}
ALL_VARIANTS = (
    "keras",
    "ks_flipout",
    "ks_lrt",
    "ks_reparam",
    "ks_vd",
    "tf_keras",
    "tfp_flipout",
    "tfp_lrt",
    "tfp_reparam",
    "kp_flipout",
    "kp_lrt",
    "kp_reparam",
)


def _library(variant):
    return {
        "keras": "keras",
        "ks": "keras_stochastic",
        "tf": "tf_keras",
        "tfp": "tensorflow_probability",
        "kp": "keras_proba",
    }[variant.split("_")[0]]


def _estimator(variant):
    parts = variant.split("_")
    return parts[1] if parts[0] in ("ks", "tfp", "kp") else "deterministic"


# ---------------------------------------------------------------------------
# Layer factories: `dense(units, activation)` and `conv(filters, size, activation)`.


def _keras_factories():
    def dense(units, activation):
        return keras.layers.Dense(units, activation=activation)

    def conv(filters, size, activation):
        return keras.layers.Conv2D(filters, size, activation=activation)

    return dense, conv


def _ks_factories(estimator):
    dense_cls, conv_cls = {
        "flipout": (ks.layers.DenseFlipout, ks.layers.Conv2DFlipout),
        "lrt": (
            ks.layers.DenseLocalReparameterization,
            ks.layers.Conv2DLocalReparameterization,
        ),
        "reparam": (
            ks.layers.DenseReparameterization,
            ks.layers.Conv2DReparameterization,
        ),
        "vd": (ks.layers.DenseVariationalDropout, ks.layers.Conv2DVariationalDropout),
    }[estimator]
    seeds = iter(range(1000))

    def dense(units, activation):
        return dense_cls(
            units, activation=activation, kl_weight=KL_WEIGHT, seed=next(seeds)
        )

    def conv(filters, size, activation):
        return conv_cls(
            filters, size, activation=activation, kl_weight=KL_WEIGHT, seed=next(seeds)
        )

    return dense, conv


def _keras_proba_factories(estimator):
    import keras_proba

    layers = keras_proba.layers
    dense_cls, conv_cls = {
        "flipout": (layers.DenseFlipout, layers.Conv2DFlipout),
        "lrt": (layers.DenseLocalReparameterization, None),
        "reparam": (layers.DenseReparameterization, layers.Conv2DReparameterization),
    }[estimator]
    seeds = iter(range(1000))

    def dense(units, activation):
        return dense_cls(
            units, activation=activation, kl_weight=KL_WEIGHT, seed=next(seeds)
        )

    def conv(filters, size, activation):
        if conv_cls is None:
            raise _Unavailable("keras-proba has no convolutional LRT layer")
        return conv_cls(
            filters, size, activation=activation, kl_weight=KL_WEIGHT, seed=next(seeds)
        )

    return dense, conv


def _tf_keras_factories():
    import tf_keras

    def dense(units, activation):
        return tf_keras.layers.Dense(units, activation=activation)

    def conv(filters, size, activation):
        return tf_keras.layers.Conv2D(filters, size, activation=activation)

    return dense, conv


def _tfp_factories(estimator):
    import tensorflow_probability as tfp

    tfp_layers = tfp.layers
    dense_cls, conv_cls = {
        "flipout": (tfp_layers.DenseFlipout, tfp_layers.Convolution2DFlipout),
        "lrt": (tfp_layers.DenseLocalReparameterization, None),
        "reparam": (
            tfp_layers.DenseReparameterization,
            tfp_layers.Convolution2DReparameterization,
        ),
    }[estimator]

    def divergence(q, p, _):
        return tfp.distributions.kl_divergence(q, p) * KL_WEIGHT

    def dense(units, activation):
        return dense_cls(units, activation=activation, kernel_divergence_fn=divergence)

    def conv(filters, size, activation):
        if conv_cls is None:
            raise _Unavailable("TFP has no convolutional LRT layer (TFP issue #726)")
        return conv_cls(
            filters, size, activation=activation, kernel_divergence_fn=divergence
        )

    return dense, conv


class _Unavailable(Exception):
    """A variant that cannot be built here (package missing, layer absent)."""


def _factories(variant):
    library = variant.split("_")[0]
    estimator = _estimator(variant)
    try:
        if library == "keras":
            return _keras_factories()
        if library == "ks":
            return _ks_factories(estimator)
        if library == "kp":
            return _keras_proba_factories(estimator)
        if library == "tf":
            return _tf_keras_factories()
        if library == "tfp":
            return _tfp_factories(estimator)
    except ImportError as error:
        raise _Unavailable(f"not installed: {error}") from error
    raise ValueError(f"Unknown variant. Received: variant={variant!r}")


# ---------------------------------------------------------------------------
# Models.


def _layers(arch, dense, conv, hidden):
    if arch == "mlp":
        return [dense(width, "relu") for width in hidden] + [dense(10, None)]
    return [
        conv(6, 5, "relu"),
        ("pool",),
        conv(16, 5, "relu"),
        ("pool",),
        ("flatten",),
        dense(120, "relu"),
        dense(84, "relu"),
        dense(10, None),
    ]


def _assemble(module, arch, layers):
    """A Sequential of `module` (keras or tf_keras); tuples stand for plain layers."""
    built = [module.Input(ARCHS[arch]["input_shape"])]
    for layer in layers:
        if layer == ("pool",):
            layer = module.layers.MaxPooling2D()
        elif layer == ("flatten",):
            layer = module.layers.Flatten()
        built.append(layer)
    return module.Sequential(built)


def build_model(variant, arch, hidden, jit_compile):
    """The compiled model of `variant`, and the module its callbacks come from."""
    dense, conv = _factories(variant)
    layers = _layers(arch, dense, conv, hidden)
    if variant.startswith("tf"):
        import tf_keras

        model = _assemble(tf_keras, arch, layers)
        model.compile(
            optimizer=tf_keras.optimizers.Adam(),
            loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=True if jit_compile else None,
        )
        return model, tf_keras
    model = _assemble(keras, arch, layers)
    compile_kwargs = {"jit_compile": True} if jit_compile else {}
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **compile_kwargs,
    )
    return model, keras


def _timer(module):
    class StepTimer(module.callbacks.Callback):
        """Per-batch wall times of `fit` (synchronous: Keras waits for the logs)."""

        def __init__(self):
            super().__init__()
            self.times = []
            self._start = None

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return StepTimer()


# ---------------------------------------------------------------------------
# Measurement.


def _data(arch, steps, seed=0):
    rng = np.random.default_rng(seed)
    batch_size = ARCHS[arch]["batch_size"]
    shape = (steps * batch_size,) + ARCHS[arch]["input_shape"]
    x = rng.uniform(size=shape).astype("float32")
    y = rng.integers(0, 10, size=steps * batch_size).astype("int32")
    return x, y


def _resolved_jit(model):
    value = getattr(model, "jit_compile", None)
    return value if isinstance(value, bool) else None


def measure(arch, variants, rounds, steps, warmup_rounds, hidden, jit_compile, seed=0):
    """Interleaved per-step times of every variant; returns a result dict."""
    x, y = _data(arch, steps + 1, seed)
    batch_size = ARCHS[arch]["batch_size"]
    models = {}
    skipped = {}
    for variant in variants:
        try:
            models[variant] = build_model(variant, arch, hidden, jit_compile)
        except _Unavailable as error:
            skipped[variant] = str(error)
    rng = np.random.default_rng(seed)
    step_times = {v: [] for v in models}
    round_medians = {v: [] for v in models}
    fit_wall_per_step = {v: [] for v in models}
    failed = {}
    names = list(models)
    for round_index in range(warmup_rounds + rounds):
        for position in rng.permutation(len(names)):
            variant = names[position]
            if variant in failed:
                continue
            model, module = models[variant]
            timer = _timer(module)
            start = time.perf_counter()
            try:
                model.fit(
                    x,
                    y,
                    batch_size=batch_size,
                    epochs=1,
                    shuffle=False,
                    verbose=0,
                    callbacks=[timer],
                )
            except Exception as error:  # noqa: BLE001 - recorded, not hidden
                failed[variant] = f"{type(error).__name__}: {error}"[:500]
                continue
            wall = time.perf_counter() - start
            if round_index < warmup_rounds:
                continue
            times = timer.times[1:]
            step_times[variant].extend(times)
            round_medians[variant].append(float(np.median(times)))
            fit_wall_per_step[variant].append(wall / len(timer.times))
        print(
            f"[train_step] {arch}: round {round_index + 1}/{warmup_rounds + rounds} done",
            file=sys.stderr,
            flush=True,
        )
    results = {}
    for variant in names:
        if variant in failed:
            continue
        model = models[variant][0]
        p10, p25, median, p75 = _common.quantiles(
            step_times[variant], (0.1, 0.25, 0.5, 0.75)
        )
        results[variant] = {
            "library": _library(variant),
            "estimator": _estimator(variant),
            "layers": sorted({type(layer).__name__ for layer in model.layers}),
            "num_parameters": int(model.count_params()),
            "jit_compile": _resolved_jit(model),
            "median_step_ms": 1e3 * median,
            "p10_step_ms": 1e3 * p10,
            "p25_step_ms": 1e3 * p25,
            "p75_step_ms": 1e3 * p75,
            "num_steps": len(step_times[variant]),
            "round_median_step_ms": [1e3 * t for t in round_medians[variant]],
            "step_times_ms": [round(1e3 * t, 4) for t in step_times[variant]],
            "median_fit_wall_per_step_ms": 1e3
            * float(np.median(fit_wall_per_step[variant])),
        }
    return {
        "arch": arch,
        "batch_size": batch_size,
        "hidden": list(hidden) if arch == "mlp" else None,
        "variants": results,
        "skipped": skipped,
        "failed": failed,
        "ratios": _ratios(results),
    }


def _ratio(results, numerator, denominator):
    if numerator not in results or denominator not in results:
        return None
    a, b = results[numerator], results[denominator]
    per_round = np.asarray(a["round_median_step_ms"]) / np.asarray(
        b["round_median_step_ms"]
    )
    return {
        "numerator": numerator,
        "denominator": denominator,
        "ratio": a["median_step_ms"] / b["median_step_ms"],
        "p10_ratio": a["p10_step_ms"] / b["p10_step_ms"],
        "per_round_min": float(per_round.min()),
        "per_round_median": float(np.median(per_round)),
        "per_round_max": float(per_round.max()),
        "num_rounds": int(per_round.size),
    }


def _ratios(results):
    ratios = []
    for estimator in ESTIMATORS:
        ours = f"ks_{estimator}"
        for reference, bar in (
            ("keras", BAR_VS_TWIN[estimator]),
            (f"tfp_{estimator}", BAR_VS_TFP),
            (f"kp_{estimator}", BAR_VS_KERAS_PROBA),
        ):
            ratio = _ratio(results, ours, reference)
            if ratio is not None:
                ratio["bar"] = bar
                ratio["meets_bar"] = bool(ratio["ratio"] <= bar)
                ratios.append(ratio)
        # Context: the peers against their own framework's twin.
        for peer, twin in (
            (f"tfp_{estimator}", "tf_keras"),
            (f"kp_{estimator}", "keras"),
        ):
            ratio = _ratio(results, peer, twin)
            if ratio is not None:
                ratios.append(ratio)
    ratio = _ratio(results, "tf_keras", "keras")
    if ratio is not None:
        ratios.append(ratio)
    return ratios


# ---------------------------------------------------------------------------
# Reporting.


def _markdown(payload):
    env = payload["environment"]
    text = _common.header_markdown(
        "Train step inside `model.fit`", env, payload["versions"]
    )
    settings = payload["settings"]
    text += (
        f"Compile: Adam, sparse CE from logits, jit_compile="
        f"{'True' if settings['jit_compile'] else 'Keras default'}; "
        f"{settings['rounds']} rounds x {settings['steps']} steps per variant "
        f"(+{settings['warmup_rounds']} warm-up round), interleaved in random order; "
        "time = `on_train_batch_begin` -> `on_train_batch_end`, first step of each "
        "`fit` dropped; ratio = median / median in this process "
        "(per-round ratio range in brackets).\n\n"
    )
    for arch_result in payload["results"]:
        arch = arch_result["arch"]
        text += f"## {arch} (batch {arch_result['batch_size']})\n\n"
        rows = []
        for variant, r in arch_result["variants"].items():
            rows.append(
                [
                    variant,
                    ", ".join(r["layers"]),
                    f"{r['median_step_ms']:.2f}",
                    f"{r['p25_step_ms']:.2f}-{r['p75_step_ms']:.2f}",
                    r["num_steps"],
                    f"{r['median_fit_wall_per_step_ms']:.2f}",
                    r["jit_compile"],
                ]
            )
        text += _common.markdown_table(
            [
                "variant",
                "layers",
                "median step ms",
                "IQR ms",
                "steps",
                "fit wall / step ms",
                "jit",
            ],
            rows,
        )
        for variant, reason in {
            **arch_result["skipped"],
            **arch_result["failed"],
        }.items():
            text += f"\n- `{variant}` not measured: {reason}"
        text += "\n\n"
        rows = []
        for ratio in arch_result["ratios"]:
            bar = ratio.get("bar")
            rows.append(
                [
                    f"{ratio['numerator']} / {ratio['denominator']}",
                    f"{ratio['ratio']:.2f}",
                    f"{ratio['per_round_median']:.2f} "
                    f"[{ratio['per_round_min']:.2f}, {ratio['per_round_max']:.2f}]",
                    f"{ratio['p10_ratio']:.2f}",
                    "" if bar is None else f"<= {bar}",
                    ""
                    if bar is None
                    else ("meets" if ratio["meets_bar"] else "**misses**"),
                ]
            )
        text += _common.markdown_table(
            [
                "ratio",
                "ratio of medians",
                "per-round ratios: median [range]",
                "ratio of 10th percentiles",
                "bar",
                "",
            ],
            rows,
        )
        text += "\n"
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", default="mlp,lenet", help="comma list of mlp, lenet")
    parser.add_argument(
        "--variants",
        default=",".join(ALL_VARIANTS),
        help="comma list of " + ", ".join(ALL_VARIANTS),
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="recorded steps per fit")
    parser.add_argument("--warmup-rounds", type=int, default=1)
    parser.add_argument(
        "--hidden",
        default="1024,1024",
        help="MLP hidden widths (the bar is defined for 1024,1024)",
    )
    parser.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument(
        "--name", default=None, help="file stem (default train_step_<backend>[_xla])"
    )
    args = parser.parse_args(argv)
    archs = [a for a in args.archs.split(",") if a]
    variants = [v for v in args.variants.split(",") if v]
    for arch in archs:
        if arch not in ARCHS:
            parser.error(f"unknown arch {arch!r}")
    for variant in variants:
        if variant not in ALL_VARIANTS:
            parser.error(f"unknown variant {variant!r}")
    hidden = tuple(int(w) for w in args.hidden.split(","))
    env = _common.environment()
    results = [
        measure(
            arch,
            variants,
            rounds=args.rounds,
            steps=args.steps,
            warmup_rounds=args.warmup_rounds,
            hidden=hidden,
            jit_compile=args.jit_compile,
            seed=args.seed,
        )
        for arch in archs
    ]
    payload = {
        "benchmark": "train_step",
        "environment": env,
        "versions": _common.versions(),
        "settings": {
            "rounds": args.rounds,
            "steps": args.steps,
            "warmup_rounds": args.warmup_rounds,
            "jit_compile": args.jit_compile,
            "kl_weight": KL_WEIGHT,
            "timed": "on_train_batch_begin -> on_train_batch_end, first step per fit dropped",
        },
        "results": results,
    }
    payload["environment"]["load_average_at_end"] = os.getloadavg()
    backend = keras.backend.backend()
    name = args.name or f"train_step_{backend}{'_xla' if args.jit_compile else ''}"
    _common.write_json(os.path.join(args.output_dir, name + ".json"), payload)
    markdown = _markdown(payload)
    _common.write_text(os.path.join(args.output_dir, name + ".md"), markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
