"""Griffe extension: render the reStructuredText bits of gantk's docstrings as Markdown.

gantk's docstrings are Google style (sections ``Args:``, ``Returns:``, ``Raises:``) but the
prose uses a few reST constructs. They are rewritten at docs-build time only (the source is
untouched), so API pages read naturally:

- roles ``:func:`x```, ``:class:`~a.b.C```, ``:mod:`x``` ... → inline code ``x`` / ``C``;
- ``:math:`...``` → inline math ``\\(...\\)``; a ``.. math::`` block → display math;
- simple tables (``====  ====`` borders) → Markdown tables;
- a paragraph ending in ``::`` followed by an indented block → a fenced code block.
"""

from __future__ import annotations

import re
import textwrap

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|obj|exc|const|ref):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_CODE = re.compile(r"^\s*(from|import)\s|\w\(|\w = ")
_BORDER = re.compile(r"^\s*=+(\s+=+)+\s*$")


def _role(match: re.Match) -> str:
    target = match.group(1)
    if match.group(0).split("`")[1].startswith("~"):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _table(lines: list[str], start: int) -> tuple[list[str], int] | None:
    """Convert the simple table whose top border is ``lines[start]``; None if it is not one."""
    border = lines[start]
    spans = [m.span() for m in re.finditer(r"=+", border)]
    rows: list[list[str]] = []
    borders = 1
    i = start + 1
    while i < len(lines) and borders < 3:
        line = lines[i]
        if _BORDER.match(line):
            borders += 1
        elif line.strip():
            cells = []
            for k, (a, _) in enumerate(spans):
                b = spans[k + 1][0] if k + 1 < len(spans) else len(line)
                cells.append(line[a:b].strip())
            rows.append(cells)
        i += 1
    if borders < 3 or len(rows) < 2:
        return None
    pad = border[: _indent(border)]
    out = [pad + "| " + " | ".join(rows[0]) + " |", pad + "|" + "---|" * len(spans)]
    out += [pad + "| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    return out, i


def _block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """The indented block after line ``start - 1`` (indent > ``base``), dedented."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    body = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
        body.append(lines[i])
        i += 1
    while body and not body[-1].strip():
        body.pop()
    return textwrap.dedent("\n".join(body)).splitlines(), i


def convert(text: str) -> str:
    """Rewrite the reST constructs of one docstring as Markdown (see module docstring)."""
    text = _MATH_ROLE.sub(lambda m: f"\\({m.group(1)}\\)", text)
    text = _ROLE.sub(_role, text)
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        pad = line[: _indent(line)]
        if _BORDER.match(line):
            table = _table(lines, i)
            if table is not None:
                out += table[0]
                i = table[1]
                continue
        if stripped.startswith(".. math::"):
            body, i = _block(lines, i + 1, _indent(line))
            inline = stripped[len(".. math::"):].strip()
            body = [inline, *body] if inline else body
            out += ["", pad + "$$", *(pad + b for b in body), pad + "$$", ""]
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            body, j = _block(lines, i + 1, _indent(line))
            if body:
                text_part = stripped[:-2].rstrip()
                if text_part:
                    out.append(pad + text_part + ":")
                lang = "python" if any(_CODE.search(b) for b in body) else "text"
                out += ["", pad + "```" + lang, *(pad + b for b in body), pad + "```", ""]
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RstToMarkdown(griffe.Extension):
    """Apply :func:`convert` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:  # noqa: D102
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
