"""mkdocs hook: generated pages, so that new modules and notebooks need no docs edit.

- ``api/``: one page per public module of the ``gantk`` package tree (every ``.py`` file and
  sub-package whose name has no leading underscore), each holding ``::: module.path`` for
  mkdocstrings. A sub-package becomes a nav section: its own page, then its modules.
- ``examples/``: one page per ``examples/*.ipynb``, rendered by mkdocs-jupyter from the
  outputs stored in the notebook (never executed by the site build).
- ``<!-- gantk:benchmark-results -->`` in a page: replaced by one section per
  ``benchmarks/results/*.json`` (machine, setting, a table of its ``results``) with the PNG of
  the same name, so committed benchmark results show up without a docs edit.

Pages may link to a module's API page as ``[text](api:gantk.models)``: the link is made when
that module has a page, and the text is left as inline code otherwise, so concepts pages can
name modules that another branch is still adding without breaking the strict build.

In ``mkdocs.yml`` the nav entries ``API reference: api/`` and ``Examples: examples/`` are the
placeholders that this hook replaces with the generated lists. The package is walked on disk
(no import, so no JAX start-up) from the repository root, which is what an editable install
points at.
"""

from __future__ import annotations

import json
import os
import pathlib
import re

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

PACKAGE = "gantk"
API_DIR = "api"
EXAMPLES_DIR = "examples"
RESULTS_DIR = "benchmarks/results"
RESULTS_MARKER = "<!-- gantk:benchmark-results -->"
_API_PAGES: list[tuple[str, str]] = []  # (module, page), filled by on_config


def _root(config) -> pathlib.Path:
    return pathlib.Path(config.config_file_path).resolve().parent


def _public(name: str) -> bool:
    return not name.startswith("_")


def _walk(pkg_dir: pathlib.Path, dotted: str) -> list:
    """Nav entries for one package: its own page, its modules, then its sub-packages."""
    entries: list = [{dotted: f"{API_DIR}/{dotted}.md"}]
    subpackages = []
    for path in sorted(pkg_dir.iterdir()):
        if not _public(path.name):
            continue
        if path.is_dir() and (path / "__init__.py").is_file():
            subpackages.append(path)
        elif path.suffix == ".py":
            name = f"{dotted}.{path.stem}"
            entries.append({name: f"{API_DIR}/{name}.md"})
    for path in subpackages:
        name = f"{dotted}.{path.name}"
        entries.append({name: _walk(path, name)})
    return entries


def _pages(entries: list) -> list[tuple[str, str]]:
    """(module path, page path) for every page in a nav tree made by ``_walk``."""
    out = []
    for entry in entries:
        ((title, value),) = entry.items()
        if isinstance(value, list):
            out.extend(_pages(value))
        else:
            out.append((title, value))
    return out


def _notebooks(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted((root / EXAMPLES_DIR).glob("*.ipynb"))


def _title(path: pathlib.Path) -> str:
    """The notebook's first Markdown H1 (its title), else its file name."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        cells = []
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else source
            for line in text.splitlines():
                if line.startswith("# "):
                    return line[2:].strip().replace("`", "")
            break
    return path.stem.replace("_", " ")


def _replace(nav: list, placeholder: str, entries: list) -> bool:
    """Replace the nav value ``placeholder`` (e.g. ``'api/'``) by ``entries``, in place."""
    for item in nav:
        if isinstance(item, dict):
            for key, value in item.items():
                if value == placeholder:
                    item[key] = entries
                    return True
                if isinstance(value, list) and _replace(value, placeholder, entries):
                    return True
    return False


def on_config(config):
    """Expand the ``api/`` and ``examples/`` nav placeholders."""
    root = _root(config)
    api = _walk(root / PACKAGE, PACKAGE)
    notebooks = [{_title(p): f"{EXAMPLES_DIR}/{p.name}"} for p in _notebooks(root)]
    if config.nav is not None:
        _replace(config.nav, f"{API_DIR}/", api)
        _replace(config.nav, f"{EXAMPLES_DIR}/", notebooks)
    _API_PAGES[:] = _pages(api)
    return config


@event_priority(100)  # before mkdocs-jupyter's on_files, which wraps the notebooks
def on_files(files, config):
    """Add the API pages (generated Markdown) and the notebooks (copied from examples/)."""
    root = _root(config)
    for module, page in _API_PAGES:
        content = f"# `{module}`\n\n::: {module}\n    options:\n      show_root_heading: false\n"
        files.append(File.generated(config, page, content=content))
    for path in _notebooks(root):
        # a plain File rooted at the repository (not File.generated): mkdocs-jupyter's wrapper
        # finds the notebook through src_dir
        src_uri = path.relative_to(root).as_posix()
        files.append(File(src_uri, str(root), config.site_dir, config.use_directory_urls))
    for path in sorted((root / RESULTS_DIR).glob("*.png")):
        src_uri = path.relative_to(root).as_posix()
        files.append(File(src_uri, str(root), config.site_dir, config.use_directory_urls))
    return files


_API_LINK = re.compile(r"\[([^\]]+)\]\(api:([A-Za-z_][\w.]*)\)")


def on_page_markdown(markdown, page, config, files):
    """Resolve ``[text](api:module.path)`` links (see the module docstring)."""
    pages = dict(_API_PAGES)
    here = os.path.dirname(page.file.src_uri)

    def link(match: re.Match) -> str:
        text, module = match.groups()
        if module not in pages:
            return text if text.startswith("`") else f"`{text}`"
        return f"[{text}]({os.path.relpath(pages[module], here or '.')})"

    markdown = _API_LINK.sub(link, markdown)
    if RESULTS_MARKER in markdown:
        markdown = markdown.replace(RESULTS_MARKER, _results(_root(config), here))
    return markdown


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return f"`{json.dumps(value)}`"
    return str(value).replace("|", "\\|")


def _results(root: pathlib.Path, here: str) -> str:
    """Markdown for every ``benchmarks/results/*.json``: header, table, plot."""
    out = []
    for path in sorted((root / RESULTS_DIR).glob("*.json")):
        data = json.loads(path.read_text())
        rel = path.relative_to(root).as_posix()
        out += [f"### `{rel}`", ""]
        if isinstance(data, dict):
            for key, value in data.items():
                if key != "results":
                    out.append(f"- **{key}**: {_cell(value)}")
            out.append("")
            rows = data.get("results", [])
        else:
            rows = data
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            cols = list(dict.fromkeys(k for r in rows for k in r))
            out += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            out += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
            out.append("")
        png = path.with_suffix(".png")
        if png.is_file():
            target = os.path.relpath(png.relative_to(root).as_posix(), here or ".")
            out += [f"![{path.stem}]({target})", ""]
    return "\n".join(out) if out else "*No stored results yet.*"
