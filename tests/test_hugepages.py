"""The CLIs' restart with glibc's huge-page tunable (gantk._hugepages)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gantk import _hugepages as hp


@pytest.fixture
def capable(monkeypatch):
    """A Linux/glibc ≥ 2.35 process with THP in madvise mode and a known command line."""
    monkeypatch.setattr(hp, "_glibc_at_least", lambda major, minor: True)
    monkeypatch.setattr(hp, "_thp_mode", lambda path=hp._THP_MODE: "madvise")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "gantk.models.train", "--steps", "3"],
                        raising=False)
    monkeypatch.delenv("GANTK_HUGE_PAGES", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    calls = []

    def fake_execve(path, argv, env):
        calls.append((path, argv, env))
        raise OSError("not really")  # the helper must return after a failed execve

    monkeypatch.setattr(os, "execve", fake_execve)
    return calls


def test_restarts_the_same_command_with_the_tunable(capable, monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    assert hp.wants_reexec()
    hp.reexec_with_huge_pages()  # the fake execve fails: it returns
    [(path, argv, env)] = capable
    assert path == sys.executable
    assert argv == ["python", "-m", "gantk.models.train", "--steps", "3"]
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"  # ours is untouched


@pytest.mark.parametrize("case", ["opt-out", "user-tunable", "always", "never", "unknown-thp",
                                  "old-glibc", "not-linux", "no-argv"])
def test_does_nothing_when_it_should_not(capable, monkeypatch, case):
    if case == "opt-out":
        monkeypatch.setenv("GANTK_HUGE_PAGES", "0")
    elif case == "user-tunable":  # the user's own setting wins, and no restart loop
        monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0")
    elif case in ("always", "never"):
        monkeypatch.setattr(hp, "_thp_mode", lambda path=hp._THP_MODE: case)
    elif case == "unknown-thp":
        monkeypatch.setattr(hp, "_thp_mode", lambda path=hp._THP_MODE: None)
    elif case == "old-glibc":
        monkeypatch.setattr(hp, "_glibc_at_least", lambda major, minor: False)
    elif case == "not-linux":
        monkeypatch.setattr(sys, "platform", "darwin")
    else:
        monkeypatch.setattr(sys, "orig_argv", [], raising=False)
    assert not hp.wants_reexec()
    hp.reexec_with_huge_pages()
    assert capable == []


def test_thp_mode_reads_the_bracketed_mode(tmp_path):
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert hp._thp_mode(str(f)) == "madvise"
    f.write_text("[always] madvise never\n")
    assert hp._thp_mode(str(f)) == "always"
    f.write_text("garbage\n")
    assert hp._thp_mode(str(f)) is None
    assert hp._thp_mode(str(tmp_path / "missing")) is None


_CHILD = ("import os, sys; from gantk._hugepages import reexec_with_huge_pages as r; "
          "print('pid', os.getpid(), flush=True); r(); "
          "print('tunables', os.environ.get('GLIBC_TUNABLES'))")


@pytest.mark.skipif(not hp.wants_reexec({}), reason="needs Linux, glibc >= 2.35 and THP in "
                    "madvise mode")
def test_a_real_restart_keeps_the_pid_and_happens_once():
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "GANTK_HUGE_PAGES")}
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.splitlines()
    # the first line printed twice (before and after the restart), by one PID; then it runs
    assert len(out) == 3 and out[0] == out[1] and out[0].startswith("pid ")
    assert out[2] == "tunables glibc.malloc.hugetlb=1"
    off = subprocess.run([sys.executable, "-c", _CHILD], env=dict(env, GANTK_HUGE_PAGES="0"),
                         capture_output=True, text=True, timeout=60, check=True)
    assert off.stdout.splitlines()[1:] == ["tunables None"]


@pytest.mark.parametrize("module", ["gantk.models.train", "gantk.models.evaluate"])
@pytest.mark.parametrize("huge", ["1", "0"])
def test_the_clis_still_exit_2_with_one_line(module, huge, tmp_path):
    """Restarted or not, a bad argument still gives exit 2 and one line, nothing twice."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    argv = ["--model", "nope"] if module.endswith("train") else [str(tmp_path / "missing")]
    proc = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True,
                          env=dict(env, GANTK_HUGE_PAGES=huge), timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "error" in proc.stderr
    assert list(tmp_path.iterdir()) == []
