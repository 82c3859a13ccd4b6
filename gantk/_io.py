"""Atomic, strictly valid file output: a reader (or a crash) never sees a half-written file.

Every writer writes to a temporary file in the destination folder, flushes it, and renames
it over the destination with :func:`os.replace` (atomic on POSIX and Windows). Files get the
permissions a plain ``open()`` would give them (``0o666`` minus the process umask), not the
``0o600`` of :func:`tempfile.mkstemp`.

JSON is strict RFC 8259: NaN and ±inf (which JSON has no literal for) are written as
``null``, so that every JSON parser (JavaScript's ``JSON.parse``, ``jq``...) reads the files.
CSV cells of missing or non-finite values are left empty.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import pathlib
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "atomic_open",
    "read_json",
    "save_figure",
    "to_json_value",
    "write_csv",
    "write_json",
    "write_npz",
]


def _umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file that replaces ``path`` atomically when the block succeeds.

    The file is created with mode ``0o666 & ~umask``, like :func:`open`. If the block
    raises (including ``KeyboardInterrupt``), the temporary file is removed and ``path`` is
    left as it was.

    Args:
        path: destination path; its folder must exist.
        mode: ``'wb'`` or ``'w'``.

    Raises:
        ValueError: if ``mode`` is not a write mode.
        OSError: if the folder does not exist or is not writable.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"`mode` must be 'wb' or 'w'; got {mode!r}.")
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def to_json_value(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON values: NaN/±inf → None, arrays → lists, tuples → lists.

    Dict keys are converted with ``str``; other unknown objects with ``str`` too.
    """
    if isinstance(obj, dict):
        return {str(k): to_json_value(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json_value(v) for v in obj]
    if isinstance(obj, bool | str) or obj is None:
        return obj
    if isinstance(obj, np.ndarray | np.generic) or hasattr(obj, "tolist"):
        return to_json_value(np.asarray(obj).tolist())
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return str(obj)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, strictly valid JSON (NaN/inf → ``null``), atomically."""
    text = json.dumps(to_json_value(obj), indent=2, allow_nan=False)
    with atomic_open(path, "w") as f:
        f.write(text + "\n")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def read_json(path: str | os.PathLike) -> Any:
    """Read a strictly valid JSON file (``NaN``/``Infinity`` literals are refused).

    Raises:
        OSError: if the file cannot be read.
        ValueError: if it is not valid UTF-8 RFC 8259 JSON (``json.JSONDecodeError`` is a
            ``ValueError``).
    """
    text = pathlib.Path(path).read_bytes().decode("utf-8")
    return json.loads(text, parse_constant=_reject_constant)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return ""
    return value


def write_csv(
    path: str | os.PathLike, rows: Sequence[dict[str, Any]], fields: Sequence[str]
) -> None:
    """Write ``rows`` (dicts keyed by ``fields``) as CSV with a header, atomically.

    Missing, None and non-finite values are written as empty cells.
    """
    with atomic_open(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore", restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(v) for k, v in row.items()})


def write_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """Write arrays to an ``.npz`` file, atomically."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """Save a matplotlib figure (format from the suffix), atomically, and close it."""
    import matplotlib.pyplot as plt  # here: the CLIs' start-up (and restart) skips pyplot

    path = pathlib.Path(path)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=path.suffix.lstrip(".") or "png", **kwargs)
    finally:
        plt.close(fig)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())
