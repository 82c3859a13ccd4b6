"""Run folders: safe names, recognising a folder gantk wrote, and replacing only that.

A run folder is ``<out>/<name>`` where ``name`` is one plain path component. gantk only
ever deletes files inside a folder it recognises as its own run folder (it holds a
``config.json`` and nothing but the files a run writes, listed in :data:`RUN_FILES`), and
it deletes those files one by one — never a whole tree — so a mistyped ``--name`` or
``--out`` cannot remove anything else.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import stat

from gantk.cli.errors import UsageError

__all__ = [
    "NAME_MAX",
    "RUN_FILES",
    "check_output_file",
    "check_run_dir",
    "check_run_name",
    "clear_run_dir",
    "is_run_file",
    "make_dirs",
    "safe_name",
]

#: Longest run name in bytes (the usual file-name limit of POSIX file systems).
NAME_MAX = 255

#: Regular expressions of the files a run writes: top level and inside ``figures/``.
RUN_FILES = (
    r"config\.json|metrics\.csv|summary\.json|checkpoint\.npz|flow\.gif|particles_\d+\.npz",
    r"step_\d+\.png|metrics\.png|snapshots\.png",
)
_TOP = re.compile(rf"^(?:{RUN_FILES[0]})$|^\..+\.tmp$")
_FIG = re.compile(rf"^(?:{RUN_FILES[1]})$|^\..+\.tmp$")


def is_run_file(name: str, *, in_figures: bool = False) -> bool:
    """True if ``name`` is a file a run writes (or one of its atomic-write temporaries)."""
    return bool((_FIG if in_figures else _TOP).match(name))


def check_run_name(name: str, flag: str = "--name") -> str:
    """Check that ``name`` is one plain path component usable as a folder name.

    Refused: empty names, ``.`` and ``..``, path separators, NUL and other control
    characters, and names longer than :data:`NAME_MAX` bytes.

    Returns:
        ``name`` unchanged.

    Raises:
        UsageError: naming ``flag`` and the problem.
    """
    why = None
    if not name:
        why = "it is empty"
    elif name in (".", ".."):
        why = f"{name!r} is not a folder name"
    elif "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        why = "it contains a path separator (a run name is one folder name; use --out for "\
              "the parent folder)"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        why = "it contains control characters"
    elif len(os.fsencode(name)) > NAME_MAX:
        why = f"it is longer than {NAME_MAX} bytes"
    if why:
        raise UsageError(f"argument {flag}: invalid run name {name!r}: {why}")
    return name


def safe_name(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9._+-]`` replaced by ``_``.

    Used for run names derived from options (e.g. a ``--data points:/a/b.npz`` path).
    """
    out = re.sub(r"[^A-Za-z0-9._+-]", "_", text).strip(".") or "run"
    return out[:NAME_MAX]


def _listing(folder: pathlib.Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return list(it)


def _foreign_entry(run_dir: pathlib.Path) -> str | None:
    """The first entry of ``run_dir`` that a run does not write, or None."""
    for entry in _listing(run_dir):
        if entry.name == "figures" and entry.is_dir(follow_symlinks=False):
            for sub in _listing(run_dir / "figures"):
                if not (sub.is_file(follow_symlinks=False)
                        and is_run_file(sub.name, in_figures=True)):
                    return f"figures/{sub.name}"
        elif not (entry.is_file(follow_symlinks=False) and is_run_file(entry.name)):
            return entry.name
    return None


def check_run_dir(run_dir: pathlib.Path, *, overwrite: bool) -> None:
    """Check, without modifying anything, that a new run may be written to ``run_dir``.

    ``run_dir`` may be absent; an existing folder is accepted only with ``overwrite`` and
    only if it is a gantk run folder: it holds ``config.json`` (or is empty) and only files
    a run writes.

    Raises:
        UsageError: if ``run_dir`` exists and may not be replaced, with the reason.
    """
    try:
        st = run_dir.lstat()
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise UsageError(f"argument --out: a part of {str(run_dir.parent)!r} is a file, not a "
                         "folder") from None
    except OSError as err:
        raise UsageError(f"run folder {str(run_dir)!r}: {err.strerror}") from None
    except ValueError as err:  # embedded NUL byte
        raise UsageError(f"argument --out: invalid path {str(run_dir)!r} ({err})") from None
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(f"run folder {str(run_dir)!r} is a symbolic link; gantk does not "
                         "write through links (choose another --name or --out)")
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"run folder {str(run_dir)!r} exists and is not a folder (choose "
                         "another --name or --out)")
    if not overwrite:
        raise UsageError(f"run folder {str(run_dir)!r} already exists (use --overwrite to "
                         "replace it, --resume to continue it, or --name for another folder)")
    try:
        foreign = _foreign_entry(run_dir)
        empty = not _listing(run_dir)
    except OSError as err:
        raise UsageError(f"run folder {str(run_dir)!r}: cannot read it ({err.strerror})") \
            from None
    if foreign is not None:
        raise UsageError(f"--overwrite: {str(run_dir)!r} is not a gantk run folder (it holds "
                         f"{foreign!r}, which gantk did not write); nothing was deleted")
    if not empty and not (run_dir / "config.json").is_file():
        raise UsageError(f"--overwrite: {str(run_dir)!r} has no config.json, so it is not "
                         "recognised as a gantk run folder; nothing was deleted")


def clear_run_dir(run_dir: pathlib.Path) -> None:
    """Delete the run files of a folder accepted by :func:`check_run_dir` (not the folder).

    Only entries matching :data:`RUN_FILES` are removed, one file at a time; the folder
    itself and anything else stay.
    """
    if not run_dir.is_dir():
        return
    figures = run_dir / "figures"
    if figures.is_dir() and not figures.is_symlink():
        for sub in _listing(figures):
            if sub.is_file(follow_symlinks=False) and is_run_file(sub.name, in_figures=True):
                os.unlink(sub.path)
    for entry in _listing(run_dir):
        if entry.is_file(follow_symlinks=False) and is_run_file(entry.name):
            os.unlink(entry.path)
    with contextlib.suppress(OSError):  # kept if something else is inside
        figures.rmdir()


def make_dirs(folder: pathlib.Path, flag: str) -> None:
    """Create ``folder`` and its parents (like ``mkdir -p``), as a one-line usage error.

    Raises:
        UsageError: naming ``flag`` if the folder cannot be created (a file is in the way,
            no permission, a name too long, a NUL byte...).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"argument {flag}: {str(folder)!r} exists and is not a folder") \
            from None
    except NotADirectoryError:
        raise UsageError(f"argument {flag}: a part of {str(folder)!r} is a file, not a "
                         "folder") from None
    except OSError as err:
        raise UsageError(f"argument {flag}: cannot create folder {str(folder)!r} "
                         f"({err.strerror or err})") from None
    except ValueError as err:  # embedded NUL byte
        raise UsageError(f"argument {flag}: invalid path {str(folder)!r} ({err})") from None


def check_output_file(path: pathlib.Path, flag: str) -> None:
    """Check that a file can be written at ``path``: its folder exists and is writable.

    Raises:
        UsageError: naming ``flag`` if the folder is missing, not a folder, not writable,
            or ``path`` is an existing folder.
    """
    try:
        parent = path.parent
        if path.is_dir():
            raise UsageError(f"argument {flag}: {str(path)!r} is a folder; give a file name")
        if not parent.is_dir():
            raise UsageError(f"argument {flag}: folder {str(parent)!r} does not exist")
    except ValueError as err:
        raise UsageError(f"argument {flag}: invalid path {str(path)!r} ({err})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"argument {flag}: folder {str(parent)!r} is not writable")
