"""The documentation site builds with `mkdocs build --strict` and shows what it must.

One build (`mkdocs.yml`, pages made by `docs/hooks.py`) into a temporary
directory, then checks of its HTML:

- every public name (the walk of `tests/public_api_test.py`) is rendered on
  its module's API page: an object with its id, and the first line of its
  docstring; every public module has its page, linked from its parent's;
- every tutorial has its page, with the measured figure of each PNG it
  saves that `benchmarks/results/` holds;
- the home page (the README), the guide pages, the design and the benchmark
  results are there, and every image a page shows exists.

The site does not depend on the backend: it is built on the TensorFlow run
only. One test, so that `pytest -n 2` builds it once.
"""

import html
import importlib.util
import inspect
import os
import pathlib
import re
import subprocess
import sys
import types

import keras
import pytest

from tests import public_api_test

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TUTORIALS = sorted(
    path
    for path in (ROOT / "tutorials").glob("*.py")
    if path.name not in ("__init__.py", "common.py")
)


def _text(page):
    """The visible text of an HTML page, without whitespace (tags split words)."""
    text = re.sub(r"<script.*?</script>|<[^>]+>", "", page, flags=re.S)
    return "".join(html.unescape(text).split())


def _markdown_text(line):
    """The text of a markdown line once rendered, without whitespace."""
    parts = line.split("`")
    # Outside code spans (the even parts): links and bold marks.
    for i in range(0, len(parts), 2):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", parts[i])
        parts[i] = text.replace("**", "")
    return "".join("".join(parts).split())


def _article(page):
    """The page's content, without the navigation (which links every page)."""
    return page[page.index("<article") : page.rindex("</article>")]


def _ids(page):
    return set(re.findall(r'\bid="([^"]+)"', page))


def _build(site):
    assert importlib.util.find_spec("mkdocs") is not None, (
        "mkdocs is not installed; install the docs extra: pip install -e '.[docs]'"
    )
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", site],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"`mkdocs build --strict` failed:\n{result.stdout}{result.stderr}"
    )


def _check_api(site):
    missing = []
    for module_name, module in public_api_test.PUBLIC_MODULES:
        page_path = site / "api" / f"{module_name}.html"
        if not page_path.exists():
            missing.append(f"{module_name}: no page api/{module_name}.html")
            continue
        page = _article(page_path.read_text(encoding="utf-8"))
        ids, text = _ids(page), _text(page)
        for name in public_api_test._public_names(module):
            value = getattr(module, name)
            where = f"{module_name}.{name}"
            if isinstance(value, types.ModuleType):
                if not (site / "api" / f"{value.__name__}.html").exists():
                    missing.append(f"{where}: no page api/{value.__name__}.html")
                elif f'href="{value.__name__}.html"' not in page:
                    missing.append(f"{where}: not linked from {module_name}'s page")
                continue
            # A re-exported object is rendered under the name it is exported
            # as, or (when that name is also a submodule's) its own path.
            own = getattr(value, "__qualname__", None)
            anchors = {where, f"{getattr(value, '__module__', '')}.{own}"}
            if not anchors & ids:
                missing.append(f"{where}: no object with id {sorted(anchors)}")
                continue
            if inspect.isclass(value) or inspect.isfunction(value):
                docstring = inspect.getdoc(value)
                if not docstring:
                    missing.append(f"{where}: no docstring")
                    continue
                summary = _markdown_text(docstring.splitlines()[0])
                if summary not in text:
                    missing.append(
                        f"{where}: docstring summary not rendered: {summary}"
                    )
    assert not missing, "The API reference is incomplete:\n" + "\n".join(missing)


def _check_tutorials(site):
    shown = 0
    for script in TUTORIALS:
        page_path = site / "tutorials" / f"{script.stem}.html"
        assert page_path.exists(), f"no page for {script.relative_to(ROOT)}"
        page = page_path.read_text(encoding="utf-8")
        source = script.read_text(encoding="utf-8")
        title = re.search(r"^Title: (.+)$", source, re.M).group(1)
        assert html.escape(title, quote=False) in page, (script.name, title)
        images = {
            src.rsplit("/", 1)[-1]
            for src in re.findall(r'<img [^>]*src="([^"]+)"', page)
        }
        for stem in re.findall(r"""["']([\w-]+)\.png["']""", source):
            for name in (f"{stem}.png", f"{stem}_tensorflow.png", f"{stem}_jax.png"):
                if (RESULTS / name).exists():
                    assert name in images, f"{script.name}: figure {name} not shown"
                    shown += 1
    assert shown, "no tutorial page shows a figure of benchmarks/results/"


def _check_pages(site):
    readme_title = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[0]
    index = (site / "index.html").read_text(encoding="utf-8")
    assert _markdown_text(readme_title.lstrip("# ")) in _text(index)
    assert "pytest-n2" in _text(index), (
        "the README's test command is not on the home page"
    )
    for path in sorted((ROOT / "docs").rglob("*.md")):
        relative = path.relative_to(ROOT / "docs").with_suffix(".html")
        assert (site / relative).exists(), f"docs/{relative} was not built"
    assert "design contract" in (site / "design.html").read_text(encoding="utf-8")
    results = (site / "benchmarks" / "RESULTS.html").read_text(encoding="utf-8")
    assert "<img" in results, "benchmarks/RESULTS.md's figures are not shown"
    broken = []
    for page_path in site.rglob("*.html"):
        page = page_path.read_text(encoding="utf-8")
        for src in re.findall(r'<img [^>]*src="([^"]+)"', page):
            if "://" not in src and not (page_path.parent / src).resolve().exists():
                broken.append(f"{page_path.relative_to(site)}: {src}")
    assert not broken, "images not in the site:\n" + "\n".join(broken)


def test_site_builds_and_shows_everything(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip(
            "the site does not depend on the backend: it is built on the "
            "TensorFlow run only"
        )
    site = tmp_path / "site"
    _build(str(site))
    _check_api(site)
    _check_tutorials(site)
    _check_pages(site)
