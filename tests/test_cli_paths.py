"""Property tests: whatever ``--name``/``--out`` a user types, nothing outside the run folder
changes (issue #14), and the run-folder check accepts exactly gantk's own folders.
"""

import contextlib
import os
import pathlib
import tempfile

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gantk import run as grun
from gantk.cli.errors import UsageError
from gantk.cli.paths import check_run_dir, clear_run_dir, is_run_file

TINY = ["--data", "two_couples_2d", "--steps", "1", "--log-every", "1", "--no-progress",
        "--no-figures", "--metrics", "energy"]
PIECES = ["a", "runs", "old", "victim", ".", "..", "/", "-", " ", "\t", "é", "*",
          "config.json", "x" * 40]


def snapshot(root):
    root = pathlib.Path(root)
    return {str(p.relative_to(root)): (None if p.is_dir() and not p.is_symlink()
                                       else p.read_bytes() if p.is_file() else "link")
            for p in root.rglob("*")}


def _populate(root):
    (root / "outside.txt").write_text("keep")
    old = root / "runs" / "old"
    (old / "figures").mkdir(parents=True)
    (old / "config.json").write_text("{}")
    (old / "metrics.csv").write_text("step\n0\n")
    (old / "figures" / "step_0.png").write_bytes(b"png")
    np.savez(old / "particles_0.npz", fake=np.zeros((1, 2)))
    (root / "runs" / "keep.txt").write_text("keep")
    (root / "victim").mkdir()
    (root / "victim" / "config.json").write_text("{}")
    (root / "victim" / "data.csv").write_text("precious")
    (root / "runs" / "lnk").symlink_to(root / "victim", target_is_directory=True)
    cwd = root / "work" / "deep"
    cwd.mkdir(parents=True)
    (cwd / "local.txt").write_text("keep")
    return cwd


@contextlib.contextmanager
def _chdir(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(name=st.lists(st.sampled_from(PIECES), max_size=3).map("".join),
       out=st.lists(st.sampled_from(PIECES), min_size=1, max_size=4).map("/".join),
       overwrite=st.booleans())
def test_nothing_outside_the_run_folder_changes(name, out, overwrite):
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp).resolve()
        cwd = _populate(root)
        target = pathlib.Path(os.path.normpath(cwd / out))
        assume(not out.startswith("/") and (target == root or root in target.parents))
        before = snapshot(root)
        argv = [*TINY, "--out", out, "--name", name, *(["--overwrite"] if overwrite else [])]
        with _chdir(cwd):
            code = grun.main(argv)
        after = snapshot(root)
        assert code in (0, 2)
        if code == 2:
            assert after == before
            return
        run_dir = str((target / name).relative_to(root))
        for path, content in before.items():
            if path != run_dir and not path.startswith(run_dir + os.sep):
                assert after.get(path) == content, path
        # folders named on the way in --out (as mkdir -p creates them) are allowed
        parts = out.split("/")
        typed = {os.path.normpath(cwd / "/".join(parts[:i])) for i in range(1, len(parts) + 1)}
        for path in set(after) - set(before):
            inside = path == run_dir or path.startswith(run_dir + os.sep)
            on_the_way = after[path] is None and str(root / path) in typed
            assert inside or on_the_way, path


RUN_NAMES = ["config.json", "metrics.csv", "summary.json", "checkpoint.npz", "flow.gif",
             "particles_0.npz", "particles_12.npz", ".metrics.csv.abc.tmp"]
OTHER_NAMES = ["notes.txt", "particles_x.npz", "config.json.bak", "step_1.png", "data"]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(top=st.sets(st.sampled_from(RUN_NAMES + OTHER_NAMES), max_size=5),
       figs=st.sets(st.sampled_from(["step_0.png", "metrics.png", "snapshots.png", "x.png"]),
                    max_size=3))
def test_run_folder_check_accepts_exactly_gantk_folders(top, figs):
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp) / "run"
        (d / "figures").mkdir(parents=True)
        for name in top:
            (d / name).write_text(name)
        for name in figs:
            (d / "figures" / name).write_text(name)
        own = all(is_run_file(n) for n in top) and all(
            is_run_file(n, in_figures=True) for n in figs)
        accepted = own and "config.json" in top
        try:
            check_run_dir(d, overwrite=True)
        except UsageError as err:
            assert not accepted, err
            assert "nothing was deleted" in str(err)
            return
        assert accepted
        clear_run_dir(d)
        assert list(d.iterdir()) == []  # only gantk's files were there, all removed
        try:
            check_run_dir(d, overwrite=False)
        except UsageError as err:
            assert "already exists" in str(err)
