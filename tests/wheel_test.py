"""The wheel holds the whole package and nothing else, with the right metadata.

Builds the wheel with `pip wheel --no-deps` (an isolated build, as a user's
`pip install` does) from a copy of the working tree, so that the build
leaves nothing in the repository, then checks:

- every module of `keras_stochastic/` is in it, and no other top-level
  package (no `tests/`, `tutorials/`, `benchmarks/`, `docs/`);
- its metadata: the name, the version of `keras_stochastic/version.py`, the
  Python requirement, the dependencies and every extra of `pyproject.toml`,
  the license (Apache-2.0, with the LICENSE file) and the README as a
  markdown long description;
- `twine check --strict` (the `test` extra installs twine) accepts it.

It does not import the package: the backend does not matter, so it runs
once, on the TensorFlow run.
"""

import email.parser
import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import keras
import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there.
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "keras_stochastic"


def _version():
    source = (ROOT / PACKAGE / "version.py").read_text(encoding="utf-8")
    return re.search(r"""__version__ = ["']([^"']+)["']""", source).group(1)


def _requirements(requirements):
    """`{normalized name: (extras, specifier)}` of requirement strings."""
    parsed = [Requirement(requirement) for requirement in requirements]
    return {
        re.sub(r"[-_.]+", "-", r.name).lower(): (sorted(r.extras), str(r.specifier))
        for r in parsed
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the wheel does not depend on the backend: built on TensorFlow")
    source = tmp_path_factory.mktemp("source") / "tree"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "site", "build", "dist", "*.egg-info", "__pycache__"
        ),
    )
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", out],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}{result.stderr}"
    (path,) = out.glob("*.whl")
    return path


def test_wheel_holds_every_module_and_nothing_else(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    dist_info = f"{PACKAGE}-{_version()}.dist-info"
    assert wheel.name == f"{PACKAGE}-{_version()}-py3-none-any.whl"
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {PACKAGE, dist_info}, top_level
    modules = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / PACKAGE).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    packaged = {name for name in names if name.endswith(".py")}
    assert modules - packaged == set(), "modules missing from the wheel"
    assert packaged - modules == set(), "files in the wheel that are not modules"


def test_wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if n.endswith("/METADATA")]
        metadata = email.parser.Parser().parsestr(
            archive.read(metadata_name).decode("utf-8")
        )
        files = archive.namelist()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]
    assert metadata["Name"] == project["name"]
    assert metadata["Version"] == _version()
    assert metadata["Requires-Python"] == project["requires-python"]
    assert metadata["Summary"] == project["description"]
    assert "Apache-2.0" in (
        metadata.get("License-Expression") or metadata.get("License") or ""
    )
    assert any(name.endswith("/LICENSE") for name in files), "LICENSE not packaged"
    assert metadata["Description-Content-Type"] == "text/markdown"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert metadata.get_payload().strip() == readme.strip()

    requires = metadata.get_all("Requires-Dist")
    base = [r for r in requires if "extra ==" not in r]
    assert _requirements(base) == _requirements(project["dependencies"])
    extras = project["optional-dependencies"]
    assert set(metadata.get_all("Provides-Extra")) == set(extras)
    assert "docs" in extras
    for extra, requirements in extras.items():
        marked = [
            r.split(";")[0]
            for r in requires
            if re.search(rf"""extra == ["']{extra}["']""", r)
        ]
        assert _requirements(marked) == _requirements(requirements), extra


def test_twine_check(wheel):
    assert importlib.util.find_spec("twine") is not None, (
        "twine is not installed; install the test extra: pip install -e '.[test]'"
    )
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"twine check failed:\n{result.stdout}{result.stderr}"
    )
