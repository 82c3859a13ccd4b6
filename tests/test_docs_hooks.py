"""The docs build's own code: generated API pages, api: links, reST → Markdown docstrings."""

import importlib.util
import json
import pathlib
import types

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("griffe")

HOOKS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "hooks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pages = _load("gantk_pages")
rst = _load("griffe_rst")


def _tree(root: pathlib.Path, files: list[str]) -> None:
    for f in files:
        path = root / f
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('"""doc."""\n')


def test_walk_makes_one_page_per_public_module_and_skips_private(tmp_path):
    _tree(tmp_path, ["pkg/__init__.py", "pkg/b.py", "pkg/a.py", "pkg/_private.py",
                     "pkg/__main__.py", "pkg/sub/__init__.py", "pkg/sub/x.py",
                     "pkg/_hidden/__init__.py", "pkg/_hidden/y.py", "pkg/data.txt",
                     "pkg/notpkg/z.py"])
    nav = pages._walk(tmp_path / "pkg", "pkg")
    assert nav == [
        {"pkg": "api/pkg.md"},
        {"pkg.a": "api/pkg.a.md"},
        {"pkg.b": "api/pkg.b.md"},
        {"pkg.sub": [{"pkg.sub": "api/pkg.sub.md"}, {"pkg.sub.x": "api/pkg.sub.x.md"}]},
    ]
    assert [m for m, _ in pages._pages(nav)] == ["pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.x"]


def test_the_real_package_has_pages_for_its_public_modules():
    root = HOOKS.parents[1]
    modules = [m for m, _ in pages._pages(pages._walk(root / "gantk", "gantk"))]
    assert {"gantk", "gantk.stax", "gantk.stax.layers", "gantk.metrics"} <= set(modules)
    assert not any(part.startswith("_") for m in modules for part in m.split("."))


def test_nav_placeholder_is_replaced_in_nested_sections():
    nav = [{"Home": "index.md"}, {"Ref": [{"API": "api/"}]}]
    assert pages._replace(nav, "api/", [{"x": "api/x.md"}])
    assert nav[1]["Ref"][0]["API"] == [{"x": "api/x.md"}]
    assert not pages._replace(nav, "examples/", [])


def test_api_links_resolve_only_when_the_module_has_a_page():
    pages._API_PAGES[:] = [("gantk.stax", "api/gantk.stax.md")]
    page = types.SimpleNamespace(file=types.SimpleNamespace(src_uri="concepts/kernels.md"))
    config = types.SimpleNamespace(config_file_path=str(HOOKS.parents[1] / "mkdocs.yml"))
    md = "See [`gantk.stax`](api:gantk.stax) and [gantk.models](api:gantk.models)."
    out = pages.on_page_markdown(md, page, config, None)
    assert out == "See [`gantk.stax`](../api/gantk.stax.md) and `gantk.models`."


def test_rst_roles_and_inline_math_become_markdown():
    text = "Use :func:`gantk.discriminator`, :class:`~gantk.stax.Kernel` and :math:`\\tau`."
    assert rst.convert(text) == "Use `gantk.discriminator`, `Kernel` and \\(\\tau\\)."


def test_rst_math_block_becomes_a_separate_display_block():
    text = "Intro.\n\n.. math::\n    a = b\n    - c\n\nwith text after."
    assert rst.convert(text).splitlines() == [
        "Intro.", "", "", "$$", "a = b", "- c", "$$", "", "with text after."]


def test_rst_simple_table_becomes_a_markdown_table():
    text = ("====  =====\nname  value\n====  =====\n``a``   1\nb     x|y\n====  =====\nafter")
    assert rst.convert(text).splitlines() == [
        "| name | value |", "|---|---|", "| ``a`` | 1 |", "| b | x\\|y |", "after"]


def test_rst_literal_block_becomes_a_fenced_block():
    text = "Example::\n\n    k = stax.ntk(kernel_fn)\n\nDone."
    assert rst.convert(text).splitlines() == [
        "Example:", "", "```python", "k = stax.ntk(kernel_fn)", "```", "", "Done."]
    tree = "Writes::\n\n    out/\n        config.json\n"
    assert "```text" in rst.convert(tree)


def test_notebook_title_is_its_first_h1_else_its_file_name(tmp_path):
    nb = tmp_path / "dirac_gan.ipynb"
    cell = {"cell_type": "markdown", "source": ["intro\n", "# The `Dirac` GAN\n"]}
    nb.write_text(json.dumps({"cells": [cell]}))
    assert pages._title(nb) == "The Dirac GAN"
    nb.write_text('{"cells": [{"cell_type": "code", "source": "x = 1"}]}')
    assert pages._title(nb) == "dirac gan"
