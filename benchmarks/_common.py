"""What every benchmark records: machine, versions, command, and its outputs.

Timings on this project's machines are noisy (2 shared CPU cores), so the
benchmarks report paired ratios measured side by side in one process; the
helpers here only describe the run and write JSON and markdown files.
"""

import datetime
import json
import os
import platform
import shlex
import sys

import numpy as np

DEFAULT_OUTPUT_DIR = os.path.join(os.path.dirname(__file__), "results")

# (report key, distribution names to try): versions come from package
# metadata, so nothing is imported just to report it.
_DISTRIBUTIONS = (
    ("keras", ("keras",)),
    ("tensorflow", ("tensorflow", "tensorflow-cpu")),
    ("jax", ("jax",)),
    ("jaxlib", ("jaxlib",)),
    ("numpy", ("numpy",)),
    ("tensorflow_probability", ("tensorflow-probability",)),
    ("tf_keras", ("tf-keras", "tf_keras")),
    ("keras_proba", ("keras-proba",)),
)


def cpu_model():
    """The `Model name` line of `lscpu` (or /proc/cpuinfo), e.g. "AMD EPYC"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions():
    """Installed versions of the packages a benchmark may use (None: absent)."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for key, distributions in _DISTRIBUTIONS:
        found[key] = None
        for distribution in distributions:
            try:
                found[key] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    import keras_stochastic

    found["keras_stochastic"] = keras_stochastic.__version__
    return found


def environment():
    """Machine, backend and load, for the header of every result file."""
    import keras

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "backend": keras.backend.backend(),
        "load_average_at_start": load,
        "command": command_line(),
    }


def command_line():
    """The command that reproduces this run (module form, from the repo root)."""
    argv = sys.argv[1:]
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    module = spec.name if spec is not None else os.path.basename(sys.argv[0])
    prefix = []
    backend = os.environ.get("KERAS_BACKEND")
    if backend:
        prefix.append(f"KERAS_BACKEND={backend}")
    return " ".join(
        prefix
        + ["PYTHONPATH=.", "python", "-m", module]
        + [shlex.quote(a) for a in argv]
    )


def step_timer():
    """A Keras callback recording each `fit` step's wall time in `.times` (seconds).

    A step runs from `on_train_batch_begin` to `on_train_batch_end`: one
    call of the compiled train function, plus the conversion of its logs
    that Keras makes before a synchronous callback (which also waits for
    JAX's asynchronous dispatch).
    """
    import time

    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []
            self._start = None

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return StepTimer()


def quantiles(values, qs=(0.25, 0.5, 0.75)):
    values = np.asarray(values, dtype="float64")
    return [float(np.quantile(values, q)) for q in qs]


def write_json(path, payload):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=False)
        f.write("\n")


def write_text(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_outputs(output_dir, name, payload, markdown, plot=None):
    """Writes `name`.json and `name`.md (and `name`.png with `plot(payload, path)`), prints the markdown."""
    stem = os.path.join(output_dir, name)
    write_json(stem + ".json", payload)
    write_text(stem + ".md", markdown)
    if plot is not None:
        plot(payload, stem + ".png")
    print(markdown)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def header_markdown(title, env, found_versions):
    versions_text = ", ".join(
        f"{name} {version}" for name, version in found_versions.items() if version
    )
    return (
        f"# {title}\n\n"
        f"- Command: `{env['command']}`\n"
        f"- Machine: {env['cpu_count']} CPU cores ({env['cpu_model']}), no GPU; "
        f"load average at start {env['load_average_at_start']}\n"
        f"- Backend: {env['backend']}; versions: {versions_text}\n"
        f"- Date: {env['date']}\n\n"
    )


def run_tutorial(
    tutorial,
    name,
    seed,
    tutorial_args=(),
    output_dir=DEFAULT_OUTPUT_DIR,
    pngs=(),
    smoke=False,
):
    """Runs a tutorial script with `--seed seed`; returns its `<name>.json` plus run metadata.

    The tutorial writes its outputs into a scratch `KS_OUTPUT_DIR`; `pngs`
    (file names there) are copied to `output_dir`. `smoke=True` sets
    `KS_TUTORIAL_SMOKE=1` (tiny data, one epoch: for tests of the
    benchmark script, not for results).
    """
    import resource
    import shutil
    import subprocess
    import tempfile
    import time

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, tutorial, "--seed", str(seed), *tutorial_args]
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ)
        env.pop("KS_TUTORIAL_SMOKE", None)
        if smoke:
            env["KS_TUTORIAL_SMOKE"] = "1"
        env.update(
            {
                "KS_OUTPUT_DIR": scratch,
                "TF_CPP_MIN_LOG_LEVEL": "3",
                "MPLBACKEND": "Agg",
                "PYTHONPATH": os.pathsep.join(
                    [root] + [p for p in [env.get("PYTHONPATH")] if p]
                ),
            }
        )
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = os.getloadavg()
        wall_start = time.perf_counter()
        subprocess.run(command, env=env, cwd=root, check=True)
        wall = time.perf_counter() - wall_start
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(os.path.join(scratch, f"{name}.json")) as f:
            result = json.load(f)
        for png in pngs:
            shutil.copy(os.path.join(scratch, png), os.path.join(output_dir, png))
    result["run"] = {
        "tutorial_command": " ".join(
            ["python", os.path.relpath(tutorial, root)]
            + [shlex.quote(a) for a in command[2:]]
        ),
        "tutorial_args": list(tutorial_args),
        "wall_seconds": wall,
        "cpu_seconds": (cpu_after.ru_utime - cpu_before.ru_utime)
        + (cpu_after.ru_stime - cpu_before.ru_stime),
        "load_average_at_start": load_before,
    }
    return result


def recorded_or_run(path, tutorial_args, force, run):
    """The result recorded at `path` for these tutorial arguments, else `run()` recorded there.

    This is what makes an interrupted run resume; `force` reruns anyway.
    """
    if os.path.exists(path) and not force:
        with open(path) as f:
            result = json.load(f)
        if result["run"].get("tutorial_args") == list(tutorial_args):
            print(f"reusing {path}", file=sys.stderr)
            return result
    result = run()
    write_json(path, result)
    return result
