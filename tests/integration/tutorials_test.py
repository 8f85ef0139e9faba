"""Runs every tutorial script end to end in smoke mode, under the current backend.

Each script in `tutorials/` (except the shared helpers) runs in its own
subprocess with `KS_TUTORIAL_SMOKE=1` (tiny data, one epoch, few samples) and
`KS_OUTPUT_DIR` pointing to a temporary directory; it must exit cleanly and
write at least one PNG there. New tutorials are picked up automatically.
"""

import os
import pathlib
import subprocess
import sys

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TUTORIALS = sorted(
    path
    for path in (ROOT / "tutorials").glob("*.py")
    if path.name not in ("__init__.py", "common.py")
)


# The slowest smoke runs on JAX (40-120 s each on 2 cores, mostly XLA
# compiles of many small models) run on TensorFlow only: every function they
# call (ks.metrics, ks.calibration, ks.conversion, ks.evolution, the layers)
# has its own tests on both backends.
TENSORFLOW_ONLY = {
    "dataset_shift",
    "bayesian_finetuning",
    "sparse_variational_dropout",
    "evolution_strategies",
}


def _tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.parametrize("script", TUTORIALS, ids=[path.stem for path in TUTORIALS])
def test_tutorial_runs_in_smoke_mode(script, tmp_path):
    if script.stem in TENSORFLOW_ONLY and keras.backend.backend() != "tensorflow":
        pytest.skip("smoke-tested on TensorFlow only (see TENSORFLOW_ONLY)")
    env = dict(os.environ)
    env.update(
        {
            "KS_TUTORIAL_SMOKE": "1",
            "KS_OUTPUT_DIR": str(tmp_path),
            "KERAS_BACKEND": keras.backend.backend(),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "MPLBACKEND": "Agg",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
            ),
        }
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"{script.name} exited with {result.returncode}.\n"
        f"--- stdout ---\n{_tail(result.stdout)}\n"
        f"--- stderr ---\n{_tail(result.stderr)}"
    )
    pngs = sorted(tmp_path.rglob("*.png"))
    assert pngs, f"{script.name} wrote no PNG to KS_OUTPUT_DIR={tmp_path}"
