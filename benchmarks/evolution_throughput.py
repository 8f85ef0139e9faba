"""ES throughput: `FlipoutES` against ES with explicit per-member weights.

One generation of evolution strategies on an MNIST MLP (784-100-10 and
784-512-512-10, ReLU), every member evaluated on the same minibatch of
`--batch-size` examples, then the ES gradient estimate and a weight update.
Three implementations, each compiled (`tf.function` without XLA on
TensorFlow, `jax.jit` on JAX):

- `flipout`: `ks.evolution.FlipoutES.train_on_batch` (the population as one
  batched flipout pass; centred-rank fitness shaping and Adam included);
- `batched`: explicit per-member weights `W + sigma * eps_p`, a
  `P x in x out` Gaussian per layer, evaluated by an einsum over members
  (what a vectorised ES library does);
- `loop`: a compiled loop over members, each drawing its own weights,
  evaluating the minibatch and adding `F_p eps_p` to the gradient (what a
  pool of ES workers does one member at a time; given its cheapest form:
  raw fitness, each member's noise drawn once).

Reported per population size: member evaluations per second (`P /` the
median generation time), and the peak resident memory of the process above
its size after building the model (each implementation and architecture runs
in its own process, populations in increasing order, so the peak after a
population is that population's). `batched` is skipped where its explicit
weights alone would exceed `--max-explicit-gib`.

    PYTHONPATH=. python -m benchmarks.evolution_throughput
    PYTHONPATH=. python -m benchmarks.evolution_throughput --archs small --populations 64,256
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from benchmarks import _common

ARCHS = {"small": (784, 100, 10), "large": (784, 512, 512, 10)}
METHODS = ("flipout", "batched", "loop")
SIGMA = 0.02


def _compile(fn):
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=False)
    import jax

    return jax.jit(fn)


def _weights(sizes, seed):
    rs = np.random.RandomState(seed)
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights += [
            rs.uniform(-limit, limit, (fan_in, fan_out)).astype("float32"),
            np.zeros(fan_out, "float32"),
        ]
    return weights


def _member_losses(logits, labels):
    """Mean softmax cross-entropy per member, logits `(P, B, K)`."""
    from keras import ops

    log_probs = ops.log_softmax(logits, axis=-1)
    one_hot = ops.one_hot(labels, logits.shape[-1])
    return -ops.mean(ops.sum(log_probs * one_hot[None], axis=-1), axis=1)


def _batched_step(population):
    """Explicit per-member weights, all members in one einsum per layer."""
    from keras import ops

    from keras_stochastic import rng

    def step(weights, x, y, seed_value):
        seed = rng.PredrawnSeed(seed_value)
        eps = [
            rng.normal((population,) + tuple(w.shape), rng.fold_in(seed, i))
            for i, w in enumerate(weights)
        ]
        members = [w[None] + SIGMA * e for w, e in zip(weights, eps)]
        h = ops.einsum("bi,pio->pbo", x, members[0]) + members[1][:, None]
        for k in range(2, len(members), 2):
            h = ops.einsum("pbi,pio->pbo", ops.relu(h), members[k])
            h = h + members[k + 1][:, None]
        fitness = -_member_losses(h, y)
        fitness = fitness - ops.mean(fitness)
        scale = 0.01 / (population * SIGMA)
        return [w + scale * ops.tensordot(fitness, e, 1) for w, e in zip(weights, eps)]

    return step


def _loop_step(population):
    """One member at a time: draw its weights, evaluate, accumulate F_p eps_p."""
    from keras import ops

    from keras_stochastic import rng

    def step(weights, x, y, seed_value):
        seed = rng.PredrawnSeed(seed_value)

        def body(p, gradients):
            member_seed = rng.fold_in(seed, p)
            eps = [
                rng.normal(tuple(w.shape), rng.fold_in(member_seed, i))
                for i, w in enumerate(weights)
            ]
            members = [w + SIGMA * e for w, e in zip(weights, eps)]
            h = x
            for k in range(0, len(members), 2):
                if k:
                    h = ops.relu(h)
                h = ops.matmul(h, members[k]) + members[k + 1]
            fitness = -_member_losses(h[None], y)[0]
            return [g + fitness * e for g, e in zip(gradients, eps)]

        gradients = ops.fori_loop(
            0, population, body, [ops.zeros_like(w) for w in weights]
        )
        scale = 0.01 / (population * SIGMA)
        return [w + scale * g for w, g in zip(weights, gradients)]

    return step


def _flipout_step(sizes, population, seed, x, y):
    import keras

    import keras_stochastic as ks

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((sizes[0],))]
    for units in sizes[1:-1]:
        layers.append(keras.layers.Dense(units, activation="relu"))
    layers.append(keras.layers.Dense(sizes[-1]))
    es = ks.evolution.FlipoutES(
        keras.Sequential(layers),
        population_size=population,
        noise_stddev=SIGMA,
        optimizer=keras.optimizers.Adam(1e-3),
        seed=seed,
    )
    es.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )

    def run():
        es.train_on_batch(x, y)

    return run


def _explicit_gib(sizes, population):
    parameters = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    # eps and the member weights: two P x parameters float32 arrays.
    return 2 * population * parameters * 4 / 2**30


def worker(method, arch, populations, batch_size, repeats, seed, max_explicit_gib):
    """Measures one method on one architecture; prints JSON rows on stdout."""
    from keras import ops

    from tutorials import common

    sizes = ARCHS[arch]
    (x, y), _ = common.load_mnist(flatten=True)
    x, y = x[:batch_size], y[:batch_size].astype("int32")
    weights = [ops.convert_to_tensor(w) for w in _weights(sizes, seed)]
    seed_value = ops.convert_to_tensor(np.array([seed, 0], "uint32"))
    rows = []
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    for population in populations:
        row = {"method": method, "arch": arch, "population": population}
        if method == "batched" and _explicit_gib(sizes, population) > max_explicit_gib:
            row["skipped"] = (
                f"explicit weights need {_explicit_gib(sizes, population):.1f} GiB "
                f"> --max-explicit-gib {max_explicit_gib}"
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        if method == "flipout":
            run = _flipout_step(sizes, population, seed, x, y)
        else:
            build = _batched_step if method == "batched" else _loop_step
            step = _compile(build(population))

            def run(step=step):
                for value in step(weights, x, y, seed_value):
                    ops.convert_to_numpy(value[..., :1])

        run()  # compile
        times = []
        for _ in range(repeats):
            tic = time.perf_counter()
            run()
            times.append(time.perf_counter() - tic)
        median = float(np.median(times))
        row.update(
            {
                "generation_seconds_median": median,
                "generation_seconds": times,
                "member_evaluations_per_second": population / median,
                "examples_per_second": population * batch_size / median,
                "peak_rss_gib_above_start": resource.getrusage(
                    resource.RUSAGE_SELF
                ).ru_maxrss
                / 2**20
                - baseline,
            }
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def report(env, found_versions, rows, batch_size):
    text = _common.header_markdown(
        "ES throughput: FlipoutES vs explicit members", env, found_versions
    )
    text += (
        f"One generation per row: every member on the same {batch_size}-example "
        "minibatch, the ES gradient and an update; member evaluations per "
        "second = population / median generation time; peak RSS above the "
        "process's size after setup.\n\n"
    )
    table = []
    for arch in ARCHS:
        for population in sorted({r["population"] for r in rows if r["arch"] == arch}):
            cells = [arch, population]
            by_method = {
                r["method"]: r
                for r in rows
                if r["arch"] == arch and r["population"] == population
            }
            flipout = by_method.get("flipout", {}).get("member_evaluations_per_second")
            for method in METHODS:
                r = by_method.get(method)
                if r is None:
                    cells += ["-", "-"]
                elif "skipped" in r:
                    cells += ["skipped", r["skipped"].split(" >")[0]]
                else:
                    rate = r["member_evaluations_per_second"]
                    ratio = (
                        ""
                        if not flipout or method == "flipout"
                        else f" ({flipout / rate:.1f}x)"
                    )
                    cells += [
                        f"{rate:,.0f}{ratio}",
                        f"{r['peak_rss_gib_above_start']:.2f}",
                    ]
            table.append(cells)
    if table:
        text += _common.markdown_table(
            [
                "MLP",
                "P",
                "flipout eval/s",
                "flipout GiB",
                "batched eval/s (flipout x)",
                "batched GiB",
                "loop eval/s (flipout x)",
                "loop GiB",
            ],
            table,
        )
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--populations", default="64,256,1024,4096")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-explicit-gib", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "ARCH"))
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    populations = [int(p) for p in args.populations.split(",")]
    if args.worker:
        worker(
            *args.worker,
            populations,
            args.batch_size,
            args.repeats,
            args.seed,
            args.max_explicit_gib,
        )
        return None
    import keras

    env, found_versions = _common.environment(), _common.versions()
    rows = []
    for arch in args.archs.split(","):
        for method in args.methods.split(","):
            command = [
                sys.executable,
                "-m",
                "benchmarks.evolution_throughput",
                "--worker",
                method,
                arch,
                "--populations",
                args.populations,
                "--batch-size",
                str(args.batch_size),
                "--repeats",
                str(args.repeats),
                "--max-explicit-gib",
                str(args.max_explicit_gib),
                "--seed",
                str(args.seed),
            ]
            result = subprocess.run(
                command, capture_output=True, text=True, env=dict(os.environ)
            )
            found = [
                json.loads(line)
                for line in result.stdout.splitlines()
                if line.startswith("{")
            ]
            if result.returncode != 0:
                raise RuntimeError(
                    f"{method} on {arch} failed:\n{result.stderr[-3000:]}"
                )
            measured = {r["population"] for r in found}
            for population in populations:
                if population not in measured:
                    found.append(
                        {
                            "method": method,
                            "arch": arch,
                            "population": population,
                            "skipped": "explicit weights exceed --max-explicit-gib",
                        }
                    )
            rows += found
            print(f"{method} on {arch}: done", flush=True)
    name = args.name or f"evolution_throughput_{keras.backend.backend()}"
    payload = {
        "environment": env,
        "versions": found_versions,
        "batch_size": args.batch_size,
        "results": rows,
    }
    _common.write_json(os.path.join(args.output_dir, name + ".json"), payload)
    text = report(env, found_versions, rows, args.batch_size)
    _common.write_text(os.path.join(args.output_dir, name + ".md"), text)
    print(text)
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
