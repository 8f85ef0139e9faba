"""MkDocs hooks: the pages that are made from the repository at build time.

Only `docs/*.md` are pages as written. This hook adds, without copying any
file into `docs/`:

- `index.md`, the home page: `README.md`;
- `tutorials/<name>.md` for every `tutorials/*.py` (keras.io-style scripts:
  a top-level triple-quoted string is markdown, the code between two of them
  a Python block; the first string holds `Title:`, `Description:`, ...), with
  the measured figure in `benchmarks/results/` of each figure the script
  saves, and `tutorials/index.md` listing them;
- `benchmarks/RESULTS.md` with its figures, `benchmarks/README.md`,
  `contributing.md` and `changelog.md`;
- the API reference: `api/<module>.md` for every public module (the walk of
  `tests/public_api_test.py`: `keras_stochastic.__all__`, then the
  `__all__` of each public module named there; a module without `__all__`
  contributes the classes and functions defined in it whose names do not
  start with an underscore), each public name rendered by mkdocstrings from
  its docstring, and `api/index.md` listing the modules.

The files link to each other by their paths in the repository, so that the
links work on GitHub; `on_page_markdown` rewrites each link to a published
file into its path on the site.

The nav entries `tutorials/index.md` and `api/index.md` of `mkdocs.yml`
become sections: the index, then one page per tutorial or module.
"""

import ast
import os
import posixpath
import re
import textwrap

import griffe
from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "keras_stochastic"
FIGURES = "benchmarks/results"

# Files published as they are: repository path -> site path.
VERBATIM = {
    "README.md": "index.md",
    "benchmarks/RESULTS.md": "benchmarks/RESULTS.md",
    "benchmarks/README.md": "benchmarks/README.md",
    "CONTRIBUTING.md": "contributing.md",
    "CHANGELOG.md": "changelog.md",
}

_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
_FIGURE_NAME = re.compile(r"""["']([\w-]+)\.png["']""")


def _read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as file:
        return file.read()


# -- the public API ---------------------------------------------------------


def _public_names(module):
    if module.exports is not None:
        return [str(name) for name in module.exports]
    return sorted(
        name
        for name, member in module.members.items()
        if not name.startswith("_")
        and not member.is_alias
        and (member.is_class or member.is_function)
    )


def public_modules():
    """`[(module path, griffe module, public names)]`, the package first."""
    package = griffe.load(PACKAGE, search_paths=[ROOT], resolve_aliases=True)
    found = {}
    queue = [package]
    while queue:
        module = queue.pop(0)
        if module.path in found:
            continue
        names = _public_names(module)
        found[module.path] = (module, names)
        for name in names:
            target = _member(module, name)[1]
            if target.is_module and target.path.startswith(PACKAGE):
                queue.append(target)
    return [(path, module, names) for path, (module, names) in found.items()]


def _member(module, name):
    """`(identifier for mkdocstrings, object)` of what `module.name` is at run time."""
    member = module.get_member(name)
    imported = module.imports.get(name)
    # `from package.name import name` rebinds the attribute that the import
    # of the submodule `package.name` had set (`keras_stochastic.sparsity`).
    if member.is_module and imported is not None and imported != member.path:
        target = module.modules_collection.get_member(imported)
        return imported, target.final_target if target.is_alias else target
    return f"{module.path}.{name}", member.final_target if member.is_alias else member


def _summary(obj):
    target = obj.final_target if obj.is_alias else obj
    if target.docstring is None:
        return ""
    return target.docstring.value.strip().splitlines()[0]


def _api_page(path, module, names):
    """The module's docstring, links to its public submodules, then each object."""
    head = [
        f"# `{path}`",
        "",
        f"::: {path}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "      show_root_toc_entry: false",
        "",
    ]
    submodules, objects = [], []
    for name in names:
        identifier, target = _member(module, name)
        if target.is_module:
            submodules.append(
                f"- [`{target.path}`]({target.path}.md): {_summary(target)}"
            )
        else:
            objects += [f"::: {identifier}", ""]
    if submodules:
        head += ["Public modules:", "", *submodules, ""]
    return "\n".join(head + objects)


def _api_index(modules):
    lines = [
        "# API reference",
        "",
        "Every public class and function, rendered from its docstring: the names",
        f"in `{PACKAGE}.__all__` and in the `__all__` of each public module.",
        "",
        "| module | |",
        "|---|---|",
    ]
    for path, module, _ in modules:
        lines.append(f"| [`{path}`]({path}.md) | {_summary(module)} |")
    return "\n".join(lines) + "\n"


# -- tutorials --------------------------------------------------------------


def _cells(source):
    """`[("markdown" | "python", text)]` of a keras.io-style script."""
    lines = source.splitlines()
    strings = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    cells = []
    start = 0
    for node in strings:
        code = "\n".join(lines[start : node.lineno - 1]).strip("\n")
        if code.strip():
            cells.append(("python", code))
        cells.append(("markdown", textwrap.dedent(node.value.value).strip("\n")))
        start = node.end_lineno
    code = "\n".join(lines[start:]).strip("\n")
    if code.strip():
        cells.append(("python", code))
    return cells


def _header(text):
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if value:
            fields[key.strip()] = value.strip()
    return fields


def _figures(code):
    """The figures in `benchmarks/results/` of the PNGs `code` saves: `[path]`."""
    available = sorted(
        file
        for file in os.listdir(os.path.join(ROOT, FIGURES))
        if file.endswith(".png")
    )
    found = []
    for stem in _FIGURE_NAME.findall(code):
        # A benchmark run may record the backend: `<stem>_<backend>.png`.
        for file in available:
            if file in (f"{stem}.png", f"{stem}_tensorflow.png", f"{stem}_jax.png"):
                found.append(f"{FIGURES}/{file}")
    return found


def tutorial_page(path):
    """The markdown page of the tutorial script at `path` (repository-relative)."""
    name = posixpath.splitext(posixpath.basename(path))[0]
    cells = _cells(_read(path))
    header = _header(cells[0][1]) if cells and cells[0][0] == "markdown" else {}
    if "Title" in header:
        cells = cells[1:]
    else:
        header = {}
    title = header.get("Title", name)
    out = [f"# {title}", ""]
    details = [
        f"**{key}:** {header[key]}"
        for key in ("Description", "Author")
        if key in header
    ]
    out += [
        *(f"{line}  " for line in details),
        f"**Source:** [`{path}`]({posixpath.basename(path)}); run it from the "
        f"repository root: `python {path}`.",
        "",
    ]
    for kind, text in cells:
        if kind == "markdown":
            out += [text, ""]
            continue
        out += ["```python", text, "```", ""]
        for figure in _figures(text):
            out += [
                f"![{posixpath.basename(figure)}](../{figure})",
                "",
                f"*Measured: `{figure}`; the run that made it is in "
                "[Benchmark results](../benchmarks/RESULTS.md).*",
                "",
            ]
    return "\n".join(out), title, header.get("Description", "")


def tutorials():
    """`[repository path]` of the tutorial scripts (not the shared helpers)."""
    return sorted(
        f"tutorials/{file}"
        for file in os.listdir(os.path.join(ROOT, "tutorials"))
        if file.endswith(".py") and file not in ("__init__.py", "common.py")
    )


# -- hooks ------------------------------------------------------------------

# Filled by on_files: site path -> repository path of the pages whose links
# are rewritten, and repository path -> site path of every published file.
_SOURCES = {}
_SITE = {}


def on_config(config):
    """Expands the nav placeholders `tutorials/index.md` and `api/index.md`."""
    pages = {
        "tutorials/index.md": [
            {tutorial_page(path)[1]: f"tutorials/{posixpath.basename(path)[:-3]}.md"}
            for path in tutorials()
        ],
        "api/index.md": [{path: f"api/{path}.md"} for path, _, _ in public_modules()],
    }

    def expand(items):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                ((title, value),) = item.items()
                if isinstance(value, list):
                    expand(value)
                elif value in pages:
                    items[i] = {title: [value, *pages[value]]}

    expand(config["nav"])
    return config


def _add(files, config, site_path, repo_path=None, content=None, rewrite=True):
    if repo_path is not None:
        _SITE[repo_path] = site_path
        if rewrite:
            _SOURCES[site_path] = repo_path
    files.append(
        File.generated(
            config,
            site_path,
            content=content,
            abs_src_path=None if content is not None else os.path.join(ROOT, repo_path),
        )
    )


def on_files(files, config):
    _SOURCES.clear()
    _SITE.clear()
    for file in files:
        if file.src_uri.endswith(".md"):
            _SOURCES[file.src_uri] = f"docs/{file.src_uri}"
            _SITE[f"docs/{file.src_uri}"] = file.src_uri
    for repo_path, site_path in VERBATIM.items():
        _add(files, config, site_path, repo_path, content=_read(repo_path))
    for file in sorted(os.listdir(os.path.join(ROOT, FIGURES))):
        if file.endswith(".png"):
            path = f"{FIGURES}/{file}"
            _add(files, config, path, path)

    index = ["# Tutorials", ""]
    index += [
        "keras.io-style scripts in `tutorials/`, runnable top to bottom from the",
        'repository root (`pip install -e ".[cpu,tutorials]"`, then',
        "`python tutorials/<name>.py`); `KS_TUTORIAL_SMOKE=1` runs any of them in",
        "seconds on tiny data. Each page is made from its script.",
        "",
        "| tutorial | |",
        "|---|---|",
    ]
    for path in tutorials():
        page, title, description = tutorial_page(path)
        site_path = f"tutorials/{posixpath.basename(path)[:-3]}.md"
        # The page's links are written for the site already.
        _add(files, config, site_path, path, content=page, rewrite=False)
        _add(files, config, path, content=_read(path))
        index.append(f"| [{title}]({posixpath.basename(site_path)}) | {description} |")
    _add(files, config, "tutorials/index.md", content="\n".join(index) + "\n")
    _SITE["tutorials"] = "tutorials/index.md"

    modules = public_modules()
    _add(files, config, "api/index.md", content=_api_index(modules))
    for path, module, names in modules:
        _add(files, config, f"api/{path}.md", content=_api_page(path, module, names))
    return files


def on_page_markdown(markdown, page, config, files):
    """Rewrites links to repository files into links to their site pages."""
    source = _SOURCES.get(page.file.src_uri)
    if source is None:
        return markdown
    here = posixpath.dirname(source)
    site_here = posixpath.dirname(page.file.src_uri)

    def rewrite(match):
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match.group(0)
        path, hash_, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(here, path))
        site_path = _SITE.get(repo_path)
        if site_path is None:
            return match.group(0)
        new = posixpath.relpath(site_path, site_here or ".")
        return f"{match.group(1)}{new}{hash_}{anchor}{match.group(3)}"

    return _LINK.sub(rewrite, markdown)
