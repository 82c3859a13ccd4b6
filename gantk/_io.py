"""Atomic file output: a reader (or a crash) never sees a half-written file.

Every writer writes to a temporary file in the destination folder, flushes it, and renames
it over the destination with :func:`os.replace` (atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pathlib
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["atomic_open", "write_csv", "write_json", "write_npz", "save_figure"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file that replaces ``path`` atomically when the block succeeds.

    Args:
        path: destination path; its folder must exist.
        mode: ``'wb'`` or ``'w'``.

    Raises:
        ValueError: if ``mode`` is not a write mode.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"`mode` must be 'wb' or 'w'; got {mode!r}.")
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.write("\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic | np.ndarray):
        return o.tolist()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def write_csv(
    path: str | os.PathLike, rows: Sequence[dict[str, Any]], fields: Sequence[str]
) -> None:
    """Write ``rows`` (dicts keyed by ``fields``) as CSV with a header, atomically."""
    with atomic_open(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


def write_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """Write arrays to an ``.npz`` file, atomically."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """Save a matplotlib figure (format from the suffix), atomically, and close it."""
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", **kwargs)
    plt.close(fig)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())
