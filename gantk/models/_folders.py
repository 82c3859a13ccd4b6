"""Which files ``gantk.models.train`` / ``evaluate`` may replace, and replacing only those.

The rule of :mod:`gantk.cli.paths`, for the video-model run folders: ``--overwrite`` replaces a
folder only when everything in it is something these CLIs write, and then deletes those
entries one by one; a folder holding anything else (a user's notes, a foreign sub-folder, a
symbolic link) is refused with one line and nothing is deleted.

Layout recognised (see :mod:`gantk.models.train`)::

    <run>/config.json, metrics.csv, summary.json, loss.png
    <run>/strips/step_<k>.png
    <run>/checkpoints/<step>/...          orbax step folders (digits, or orbax's temporary
                                          ``<step>.orbax-checkpoint-tmp-<n>`` names)
    <run>/eval/metrics.csv, summary.json, *.png
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import stat

from gantk.models._run import UsageError

__all__ = ["check_eval_dir", "check_run_dir", "clear_eval_dir", "clear_run_dir"]

_RUN_FILES = frozenset({"config.json", "metrics.csv", "summary.json", "loss.png"})
_RUN_DIRS = frozenset({"strips", "checkpoints", "eval"})
_STRIP = re.compile(r"step_\d+\.png\Z")
_CHECKPOINT = re.compile(r"\d+(\.orbax-checkpoint-tmp-\d+)?\Z")
_EVAL_FILES = frozenset({"metrics.csv", "summary.json"})
_EVAL_IMAGE = re.compile(r"[A-Za-z0-9_\-]+\.png\Z")


def _entries(folder: pathlib.Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return list(it)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    return entry.is_dir(follow_symlinks=False)


def _is_file(entry: os.DirEntry[str]) -> bool:
    return entry.is_file(follow_symlinks=False)


def _foreign_in_eval(folder: pathlib.Path) -> str | None:
    for e in _entries(folder):
        if not (_is_file(e) and (e.name in _EVAL_FILES or _EVAL_IMAGE.match(e.name))):
            return f"{folder.name}/{e.name}" if folder.name == "eval" else e.name
    return None


def _foreign_in_run(run_dir: pathlib.Path) -> str | None:
    for e in _entries(run_dir):
        if _is_file(e) and e.name in _RUN_FILES:
            continue
        if not (_is_dir(e) and e.name in _RUN_DIRS):
            return e.name
        sub = pathlib.Path(e.path)
        if e.name == "eval":
            bad = _foreign_in_eval(sub)
            if bad is not None:
                return bad
            continue
        for s in _entries(sub):
            ok = (_is_file(s) and _STRIP.match(s.name)) if e.name == "strips" else \
                 (_is_dir(s) and _CHECKPOINT.match(s.name))
            if not ok:
                return f"{e.name}/{s.name}"
    return None


def _check_folder(folder: pathlib.Path, what: str) -> bool:
    """True if ``folder`` exists as a real folder; raises on a link or a file."""
    try:
        st = folder.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(f"{what} {folder} is a symbolic link; gantk does not write through "
                         "links (choose another folder)")
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{what} {folder} exists and is not a folder")
    return True


def check_run_dir(run_dir: pathlib.Path) -> None:
    """Check, modifying nothing, that ``--overwrite`` may replace the run folder ``run_dir``.

    Raises:
        UsageError: ``run_dir`` is a link or a file, has no ``config.json``, or holds an entry
            that ``gantk.models.train`` does not write (named in the message).
    """
    if not _check_folder(run_dir, "run folder"):
        return
    if not (run_dir / "config.json").is_file():
        raise UsageError(f"--overwrite: {run_dir} was not created by gantk.models.train "
                         "(no config.json); nothing was deleted")
    bad = _foreign_in_run(run_dir)
    if bad is not None:
        raise UsageError(f"--overwrite: {run_dir} holds {bad!r}, which gantk.models did not "
                         "write; nothing was deleted")


def clear_run_dir(run_dir: pathlib.Path) -> None:
    """Delete the entries of a run folder accepted by :func:`check_run_dir` (not the folder).

    Call :func:`check_run_dir` first: this re-checks and raises ``UsageError`` rather than
    delete anything it does not recognise.
    """
    if not run_dir.is_dir():
        return
    check_run_dir(run_dir)
    for e in _entries(run_dir):
        if _is_dir(e):
            shutil.rmtree(e.path)  # strips/, checkpoints/, eval/: checked entry by entry
        else:
            os.unlink(e.path)


def check_eval_dir(out_dir: pathlib.Path, *, overwrite: bool) -> None:
    """Check that ``gantk.models.evaluate`` may write into ``out_dir``.

    An absent or empty folder is fine. A folder with files is accepted only with ``overwrite``
    and only if it holds nothing but what ``evaluate`` writes (``metrics.csv``,
    ``summary.json``, PNG figures) including a ``summary.json``.

    Raises:
        UsageError: otherwise, naming the folder and the reason.
    """
    if not _check_folder(out_dir, "evaluation folder") or not _entries(out_dir):
        return
    if not overwrite:
        raise UsageError(f"{out_dir} already exists (use --overwrite to replace it or --out)")
    bad = _foreign_in_eval(out_dir)
    if bad is not None or not (out_dir / "summary.json").is_file():
        why = f"holds {bad!r}, which" if bad is not None else "has no summary.json, so it"
        raise UsageError(f"--overwrite: {out_dir} {why} gantk.models.evaluate did not write; "
                         "nothing was deleted")


def clear_eval_dir(out_dir: pathlib.Path) -> None:
    """Delete the files of an evaluation folder accepted by :func:`check_eval_dir`.

    Stale figures of an earlier evaluation (e.g. one with other panels) do not survive.
    """
    if not out_dir.is_dir():
        return
    check_eval_dir(out_dir, overwrite=True)
    for e in _entries(out_dir):
        os.unlink(e.path)
