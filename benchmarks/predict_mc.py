"""`ks.predict_mc` with K samples vs K single sampling passes of `model.predict`.

DESIGN section 8 asks `predict_mc(model, x, num_samples=K)` to cost at most
1.1 K times one `predict`. The reference is one `model.predict` with every
stochastic layer in `"sample"` mode (the same forward work as one Monte Carlo
sample), so the ratio measures what `predict_mc` adds: batching, mode
switching, the probability transform and averaging. One `predict` in the
default `"mean"` mode is timed too (a mean-mode pass draws nothing).

Rounds run the three calls in a fresh random order each time; the ratio is
computed per round (`predict_mc / (K * predict_sample)`) and summarised by the
median over rounds.

    PYTHONPATH=. python -m benchmarks.predict_mc
    PYTHONPATH=. python -m benchmarks.predict_mc --archs mlp --rounds 5 --num-samples 5
"""

import argparse
import os
import sys
import time

import keras
import numpy as np

import keras_stochastic as ks
from benchmarks import _common

ARCHS = ("lenet", "mlp")
BAR = 1.1


def build(arch, seed):
    """The quickstart's flipout LeNet-5, or a flipout 784-1024-1024-10 MLP."""
    layers = keras.layers
    if arch == "lenet":
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                ks.layers.Conv2DFlipout(
                    6, 5, padding="same", activation="relu", seed=seed
                ),
                layers.MaxPooling2D(),
                ks.layers.Conv2DFlipout(16, 5, activation="relu", seed=seed + 1),
                layers.MaxPooling2D(),
                layers.Flatten(),
                ks.layers.DenseFlipout(120, activation="relu", seed=seed + 2),
                ks.layers.DenseFlipout(84, activation="relu", seed=seed + 3),
                ks.layers.DenseFlipout(10, seed=seed + 4),
            ]
        )
    if arch == "mlp":
        return keras.Sequential(
            [
                keras.Input((784,)),
                ks.layers.DenseFlipout(1024, activation="relu", seed=seed),
                ks.layers.DenseFlipout(1024, activation="relu", seed=seed + 1),
                ks.layers.DenseFlipout(10, seed=seed + 2),
            ]
        )
    raise ValueError(f"Unknown arch {arch!r}; expected one of {ARCHS}.")


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(arch, num_examples, batch_size, num_samples, rounds, seed):
    rng = np.random.default_rng(seed)
    shape = (28, 28, 1) if arch == "lenet" else (784,)
    x = rng.random((num_examples,) + shape, dtype=np.float32)
    model = build(arch, seed)

    def predict_mean():
        ks.set_inference(model, "mean")
        model.predict(x, batch_size=batch_size, verbose=0)

    def predict_sample():
        ks.set_inference(model, "sample")
        model.predict(x, batch_size=batch_size, verbose=0)
        ks.set_inference(model, "mean")

    def predict_mc():
        ks.predict_mc(
            model, x, num_samples=num_samples, batch_size=batch_size, from_logits=True
        )

    calls = {
        "predict_mean": predict_mean,
        "predict_sample": predict_sample,
        "predict_mc": predict_mc,
    }
    for fn in calls.values():  # warm-up: tracing and compilation
        fn()
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name in rng.permutation(list(calls)):
            times[name].append(_timed(calls[name]))
    per_round = [
        mc / (num_samples * sample)
        for mc, sample in zip(times["predict_mc"], times["predict_sample"])
    ]
    return {
        "arch": arch,
        "num_examples": num_examples,
        "batch_size": batch_size,
        "num_samples": num_samples,
        "rounds": rounds,
        "median_seconds": {name: float(np.median(t)) for name, t in times.items()},
        "seconds": times,
        "ratio_per_round_quartiles": _common.quantiles(per_round),
        "ratio_of_medians": float(
            np.median(times["predict_mc"])
            / (num_samples * np.median(times["predict_sample"]))
        ),
        "sample_over_mean": float(
            np.median(times["predict_sample"]) / np.median(times["predict_mean"])
        ),
    }


def report(env, found_versions, results):
    text = _common.header_markdown(
        "predict_mc vs single predict passes", env, found_versions
    )
    rows = []
    for r in results:
        q = r["ratio_per_round_quartiles"]
        m = r["median_seconds"]
        ratio = q[1]
        rows.append(
            [
                r["arch"],
                f"{r['num_examples']} / {r['batch_size']}",
                r["num_samples"],
                f"{1000 * m['predict_mean']:.1f}",
                f"{1000 * m['predict_sample']:.1f}",
                f"{1000 * m['predict_mc']:.1f}",
                f"{ratio:.3f} [{q[0]:.3f}, {q[2]:.3f}]",
                f"{r['ratio_of_medians']:.3f}",
                "meets" if ratio <= BAR else "**misses**",
            ]
        )
    text += _common.markdown_table(
        [
            "model",
            "examples / batch",
            "K",
            "predict (mean) ms",
            "predict (sample) ms",
            "predict_mc ms",
            "predict_mc / (K x predict sample): median per round [quartiles]",
            "ratio of medians",
            f"bar <= {BAR}",
        ],
        rows,
    )
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--num-examples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-samples", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    env, found_versions = _common.environment(), _common.versions()
    results = [
        measure(
            arch,
            args.num_examples,
            args.batch_size,
            args.num_samples,
            args.rounds,
            args.seed,
        )
        for arch in args.archs.split(",")
    ]
    name = args.name or f"predict_mc_{keras.backend.backend()}"
    payload = {"environment": env, "versions": found_versions, "results": results}
    _common.write_json(os.path.join(args.output_dir, name + ".json"), payload)
    text = report(env, found_versions, results)
    _common.write_text(os.path.join(args.output_dir, name + ".md"), text)
    print(text)
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
