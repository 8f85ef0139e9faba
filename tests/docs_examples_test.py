"""Every Python block of the README and of `docs/` runs as written.

The blocks of one page run in order in one namespace (like a notebook: a
block may use what an earlier block on its page defined), each page in a
fresh namespace and its own temporary working directory, with the package as
installed and nothing from the repository's `tutorials/` or `benchmarks/` (a
block makes its own data, e.g. `sklearn.datasets.load_digits`). A block that
is deliberately a fragment has `<!-- skip-test: reason -->` on the line
before its opening fence.

All pages run in one subprocess, as importing TensorFlow costs more than
most pages; the blocks are smoke-sized (a few epochs on small data). The run
is on TensorFlow only: the blocks call public API that has its own tests on
both backends.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SKIP = re.compile(r"^<!-- skip-test:(.*)-->$")
# Fences at the start of a line; blocks indented in a list are not run.
FENCE = re.compile(r"^```(\S*)\s*$")

# Runs the pages given as JSON, each in a fresh namespace and working
# directory, and writes `{page: traceback or None}`: one interpreter for all
# pages, as starting one (importing TensorFlow) costs more than most pages.
DRIVER = textwrap.dedent(
    """
    import json
    import os
    import sys
    import time
    import traceback

    import keras

    pages, results = json.load(open(sys.argv[1])), {}
    for page in pages:
        os.chdir(page["directory"])
        namespace = {"__name__": "__main__"}
        start = time.perf_counter()
        try:
            for block in page["blocks"]:
                exec(compile(block["source"], block["where"], "exec"), namespace)
            results[page["page"]] = None
        except BaseException:
            results[page["page"]] = traceback.format_exc()
        finally:
            keras.backend.clear_session()
        print(f"{page['page']}: {time.perf_counter() - start:.1f} s", flush=True)
    json.dump(results, open(sys.argv[2], "w"))
    """
)


def python_blocks(path):
    """`[(line of the opening fence, source, skip reason or None)]` of a page."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```")
        if match.group(1) == "python":
            skip = SKIP.match(lines[i - 1].strip()) if i else None
            reason = skip.group(1).strip() if skip else None
            blocks.append((i + 1, "\n".join(lines[i + 1 : end]) + "\n", reason))
        i = end + 1
    return blocks


def _name(path):
    return path.relative_to(ROOT).as_posix()


def test_blocks_are_found_and_skips_give_a_reason():
    blocks = {_name(path): python_blocks(path) for path in PAGES}
    assert sum(len(found) for found in blocks.values()) >= 8, blocks.keys()
    assert blocks["README.md"], "README.md has no ```python block"
    for page, found in blocks.items():
        for line, source, reason in found:
            assert reason != "", f"{page}:{line}: `skip-test` needs a reason"
            assert not re.search(
                r"^\s*(from|import)\s+(tutorials|benchmarks)\b", source, re.M
            ), f"{page}:{line} imports the repository's tutorials/benchmarks"
    # A skip marker stands right before a python block.
    for path in PAGES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if SKIP.match(line.strip()):
                following = lines[number + 1] if number + 1 < len(lines) else ""
                assert following.startswith("```python"), (
                    f"{_name(path)}:{number + 1}: skip-test marker not followed "
                    "by a ```python block"
                )


def test_blocks_run(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip(
            "the documentation's blocks run on TensorFlow only: they call public "
            "API that has its own tests on both backends"
        )
    pages = []
    for number, path in enumerate(PAGES):
        blocks = [
            {"where": f"{_name(path)}, block at line {line}", "source": source}
            for line, source, reason in python_blocks(path)
            if reason is None
        ]
        if blocks:
            directory = tmp_path / f"page{number}"
            directory.mkdir()
            pages.append(
                {"page": _name(path), "directory": str(directory), "blocks": blocks}
            )
    (tmp_path / "pages.json").write_text(json.dumps(pages))
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {
        key: value
        for key, value in os.environ.items()
        # The package as installed, not the repository root.
        if key != "PYTHONPATH"
    }
    env.update(
        {
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "MPLBACKEND": "Agg",
        }
    )
    result = subprocess.run(
        [
            sys.executable,
            tmp_path / "driver.py",
            tmp_path / "pages.json",
            tmp_path / "results.json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
    assert result.returncode == 0, f"the driver failed:\n{tail}"
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {page["page"] for page in pages}
    failed = {page: error for page, error in results.items() if error is not None}
    assert not failed, (
        "\n".join(f"--- {page} ---\n{error}" for page, error in failed.items())
        + f"\n--- timings ---\n{result.stdout}"
    )
