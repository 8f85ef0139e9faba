"""The repository passes `ruff check` and `ruff format --check` (config in pyproject.toml)."""

import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_ruff(*args):
    # ruff is in the `test` extra: a missing ruff is a broken environment,
    # not a reason to skip.
    assert importlib.util.find_spec("ruff") is not None, (
        "ruff is not installed; install the test extra: pip install -e '.[test]'"
    )
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [("check", "."), ("format", "--check", ".")],
    ids=["check", "format"],
)
def test_ruff(args):
    result = run_ruff(*args, "--no-cache")
    assert result.returncode == 0, (
        f"`ruff {' '.join(args)}` failed:\n{result.stdout}{result.stderr}"
    )
