"""Transparent huge pages for the large XLA:CPU buffers of the training and evaluation CLIs.

XLA:CPU takes the temporaries of a compiled step from glibc's ``malloc`` as one block
(5.25 GB for the step below, seen with ``strace``). A block that large is mapped fresh
(``mmap``) and handed back to the kernel when freed, so each step faults it all in again,
4 KiB at a time, and the kernel zeroes every page: at
batch 128 the PDE model's Moving MNIST step faults 1.3 million pages (5 GB) per step, 4.5 s of
system CPU time. With glibc's tunable ``glibc.malloc.hugetlb=1`` (glibc ≥ 2.35), ``malloc``
asks for transparent huge pages (``madvise(MADV_HUGEPAGE)``) on those mappings: 2 MiB pages,
~14,000 faults per step, and that step goes from 17.8 to 15.3 s (``python
benchmarks/pde.py --configs mnist-paper --batches 128``, same machine, 2026-12-02).

glibc reads its tunables once, when the process starts, so :func:`reexec_with_huge_pages`
restarts the current command (``os.execve``: same PID, same arguments, same open files) with
the tunable added to ``GLIBC_TUNABLES``. It does nothing, and returns, when:

- the platform is not Linux with glibc ≥ 2.35, or the kernel's transparent huge pages are not
  in ``madvise`` mode (``always`` already gives them; ``never`` cannot);
- ``GLIBC_TUNABLES`` already sets ``glibc.malloc.hugetlb`` (the user's choice is kept, and
  the restarted process does not restart again);
- ``GANTK_HUGE_PAGES=0`` is set (opt out);
- the original command line is unknown (``sys.orig_argv`` missing or empty).

Only the ``python -m gantk.models.train|evaluate`` entry points and the speed benchmarks call
it, before anything heavy is imported; importing gantk never restarts a process. Library
users get the same effect with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python ...``.

The remaining ~14,000 faults and ~3.5 s of system CPU per step are that block, mapped anew
every step. Adding ``glibc.malloc.arena_max=1``, ``glibc.malloc.mmap_max=0`` and
``glibc.malloc.trim_threshold=4611686018427387904`` to ``GLIBC_TUNABLES`` keeps it
(faults ~0, step 3–8% faster) but never returns memory and once fragmented the heap (peak
6.7 → 11.8 GB), so it is left to the user (``docs/concepts/video-models.md``).
"""

from __future__ import annotations

import os
import platform
import sys

__all__ = ["TUNABLE", "reexec_with_huge_pages", "wants_reexec"]

TUNABLE = "glibc.malloc.hugetlb=1"
_THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


def _glibc_at_least(major: int, minor: int) -> bool:
    name, version = platform.libc_ver()
    if name != "glibc":
        return False
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    return parts >= (major, minor)


def _thp_mode(path: str = _THP_MODE) -> str | None:
    """The kernel's transparent-huge-page mode (``always``, ``madvise``, ``never``) or None."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


def wants_reexec(environ: dict[str, str] | None = None) -> bool:
    """Whether :func:`reexec_with_huge_pages` would restart this process (see the module doc).

    Args:
      environ: the environment to judge (default ``os.environ``).

    Returns:
      True on Linux with glibc ≥ 2.35, transparent huge pages in ``madvise`` mode, no
      ``glibc.malloc.hugetlb`` in ``GLIBC_TUNABLES``, ``GANTK_HUGE_PAGES`` not ``0`` and a
      known command line (``sys.orig_argv``).
    """
    env = os.environ if environ is None else environ
    if env.get("GANTK_HUGE_PAGES", "1").strip() == "0":
        return False
    if "glibc.malloc.hugetlb" in env.get("GLIBC_TUNABLES", ""):
        return False
    if not sys.platform.startswith("linux") or not _glibc_at_least(2, 35):
        return False
    if _thp_mode() != "madvise":
        return False
    return bool(getattr(sys, "orig_argv", None))


def reexec_with_huge_pages() -> None:
    """Restart the current command with ``GLIBC_TUNABLES`` asking for huge pages, if useful.

    Call it first thing in a ``__main__`` block, before jax is imported. On success it does not
    return (``os.execve`` replaces the process); otherwise (see :func:`wants_reexec`, or
    ``execve`` failing) it returns and the command runs as it is.

    Raises:
      Nothing: a failed restart is silent, and the run goes on with normal pages.
    """
    if not wants_reexec():
        return
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    env = dict(os.environ, GLIBC_TUNABLES=f"{tunables}:{TUNABLE}" if tunables else TUNABLE)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, list(sys.orig_argv), env)
    except OSError:
        return
