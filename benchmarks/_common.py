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
