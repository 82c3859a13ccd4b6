"""glibc's ``malloc`` for XLA:CPU's large step buffers: huge pages, and a heap kept between steps.

**Huge pages** (:func:`reexec_with_huge_pages`, the training and evaluation CLIs).

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
it, before anything heavy is imported; importing gantk never restarts a process or changes
``malloc``. Library users get the same effect with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1
python ...``.

**Keeping the heap** (:class:`HeapKeeper`). The remaining ~14,000 faults per step are that
block, mapped anew every step; on a virtual machine whose balloon driver reports free pages
to the host (``virtio_balloon`` free page reporting, as on the 2-core machines this project is
measured on), a block freed for more than ~2 s is handed back to the host, and faulting it in
again costs ~1.8 ms per 2 MiB page: 4.4–5.5 s of system CPU per step at batch 128, against
0.05 s at batch 16 whose 1-s steps reuse the pages before they are reported. glibc keeps a
freed block only if it never maps large blocks (``M_MMAP_MAX = 0``), serves every thread from
one arena (``M_ARENA_MAX = 1``: other arenas would map it anyway) and never trims the heap
(``M_TRIM_THRESHOLD = -1``, documented in ``mallopt(3)``). The training CLI and the speed
benchmarks therefore

1. call :func:`one_arena` first thing (before jax starts its threads), and
2. once the step is compiled, build ``HeapKeeper(temp_bytes)`` from XLA's
   ``memory_analysis().temp_size_in_bytes``: it keeps the heap only when the block is large
   (≥ 1 GiB; smaller steps gain nothing) and the machine can hold up to two copies of it
   (available memory, cgroup limit included, ≥ 3 × the block);
3. call :meth:`HeapKeeper.after_step` after every step: it waits (≤ 0.2 s) until XLA has
   freed the step's block, so that the next step reuses it instead of growing the heap (XLA
   frees it just after the outputs are ready; dispatching the next step at once made a
   second copy in 7 of 7 runs of 7–10 steps, peak 11.4–16.4 GB), and gives everything back
   (:meth:`HeapKeeper.release`) if the heap ever grows past 2.1 blocks beyond its size when
   the keeper started;
4. call :meth:`HeapKeeper.release` when the loop ends: trimming and mapping return to glibc's
   defaults and ``malloc_trim(0)`` hands the free memory back.

The PDE model's Moving MNIST step at batch 128: 4.4–5.5 s of system CPU per step → 0.1 s,
and 10.11, 11.64 s → 8.94, 8.19 s per step (2026-12-03, alternated processes of ``python
benchmarks/pde.py --configs mnist-paper --batches 128``, ``GANTK_KEEP_HEAP=0`` against the
default); the training CLI's peak memory stays at 6.6 GB.
``GANTK_KEEP_HEAP=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import time
from typing import Any

__all__ = ["TUNABLE", "HeapKeeper", "available_memory", "one_arena", "reexec_with_huge_pages",
           "temp_bytes", "wants_reexec"]

TUNABLE = "glibc.malloc.hugetlb=1"
_THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


def _turned_off(name: str, environ: dict[str, str] | None = None) -> bool:
    """Whether the opt-out variable ``name`` (``GANTK_HUGE_PAGES``, ``GANTK_KEEP_HEAP``) is 0."""
    env = os.environ if environ is None else environ
    return env.get(name, "1").strip() == "0"


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
    if _turned_off("GANTK_HUGE_PAGES", env):
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


# ---------------------------------------------------------------- keeping the heap
# mallopt(3) parameters and glibc's defaults (malloc/malloc.c)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
MIN_BLOCK = 1 << 30  # steps whose temporaries are smaller gain nothing (measured at 0.66 GB)
HEADROOM = 3.0  # keep the heap only if available memory >= HEADROOM x the block
GROWTH = 2.1  # give it back if the heap grows past GROWTH x the block (2 copies + 10%)
WAIT_S = 0.2  # after_step waits at most this long for XLA to free the block
_ONE_ARENA = False  # set by one_arena(): HeapKeeper does nothing without it


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _libc() -> Any:
    """glibc ≥ 2.33 (``mallopt``, ``mallinfo2``, ``malloc_trim``) via ctypes, or None."""
    if not sys.platform.startswith("linux") or not _glibc_at_least(2, 33):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def one_arena() -> bool:
    """Serve every thread's ``malloc`` from glibc's main arena (``mallopt(M_ARENA_MAX, 1)``).

    Call it first thing, before jax (XLA's threads) starts: a thread that already has its own
    arena keeps it. Needed by :class:`HeapKeeper`, since XLA allocates a step's temporaries
    from a worker thread and glibc's other arenas map large blocks whatever ``M_MMAP_MAX``
    says. It changes nothing else (2-core steps: within noise).

    Returns:
      True if set; False on another platform/libc or with ``GANTK_KEEP_HEAP=0``.

    Raises:
      Nothing.
    """
    global _ONE_ARENA
    libc = _libc()
    if libc is None or _turned_off("GANTK_KEEP_HEAP"):
        return False
    _ONE_ARENA = _ONE_ARENA or bool(libc.mallopt(_M_ARENA_MAX, 1))
    return _ONE_ARENA


def temp_bytes(compiled: Any) -> int:
    """Bytes of a compiled jax function's temporaries (XLA's ``memory_analysis()``; 0 when the
    backend does not say)."""
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # a backend without memory analysis: nothing to keep
        return 0
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) and analysis else analysis
    return int(getattr(analysis, "temp_size_in_bytes", 0) or 0)


def available_memory(meminfo: str = "/proc/meminfo",
                     cgroup: str = "/sys/fs/cgroup") -> int | None:
    """Bytes this process may still take: ``MemAvailable`` (``/proc/meminfo``), lowered to the
    cgroup's room (v2 ``memory.max − memory.current``, v1 ``memory/memory.limit_in_bytes −
    memory/memory.usage_in_bytes``) when one is set; None when nothing can be read.

    Args:
      meminfo, cgroup: where to read them (tests point these at fake files).

    Raises:
      Nothing: unreadable or malformed files are skipped.
    """
    known: list[int] = []
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    known.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit, usage in (("memory.max", "memory.current"),
                         ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            with open(os.path.join(cgroup, limit)) as f:
                text = f.read().strip()
            if text == "max":
                continue
            with open(os.path.join(cgroup, usage)) as f:
                known.append(max(0, int(text) - int(f.read().strip())))
        except (OSError, ValueError):
            continue
    return min(known) if known else None


class HeapKeeper:
    """Keep a training loop's large XLA:CPU block mapped between steps (see the module doc).

    Args:
      temp_bytes: the size of one step's temporaries, bytes (``compiled.memory_analysis()
        .temp_size_in_bytes``); 0 or negative: nothing to keep.
      min_bytes: keep the heap only for a block at least this large (default 1 GiB).
      headroom: ... and only if :func:`available_memory` ≥ ``headroom × temp_bytes``.

    Attributes:
      active: whether glibc is currently told to keep the heap.
      reason: one line saying why it is (not) active, for logs.

    The object is inert (every method returns at once) when it is not active: on another
    platform or libc, with ``GANTK_KEEP_HEAP=0``, when :func:`one_arena` was not called first
    (so importing and calling gantk from your own code never changes ``malloc``), for a small
    block or too little memory.

    Raises:
      Nothing.
    """

    def __init__(self, temp_bytes: int, *, min_bytes: int = MIN_BLOCK,
                 headroom: float = HEADROOM) -> None:
        self.temp_bytes = int(temp_bytes)
        self.active = False
        self._libc = _libc()
        gib = self.temp_bytes / 2**30
        if self._libc is None:
            self.reason = "not glibc >= 2.33 on Linux"
        elif _turned_off("GANTK_KEEP_HEAP"):
            self.reason = "GANTK_KEEP_HEAP=0"
        elif not _ONE_ARENA:
            self.reason = "one_arena() was not called at start-up"
        elif self.temp_bytes < max(1, min_bytes):
            self.reason = f"step temporaries {gib:.2f} GiB < {min_bytes / 2**30:.2f} GiB"
        else:
            avail = available_memory()
            if avail is None or avail < headroom * self.temp_bytes:
                have = "unknown" if avail is None else f"{avail / 2**30:.1f} GiB"
                self.reason = f"available memory {have} < {headroom:g} x {gib:.2f} GiB"
            else:
                self._libc.mallopt(_M_MMAP_MAX, 0)
                self._libc.mallopt(_M_TRIM_THRESHOLD, -1)
                info = self._libc.mallinfo2()
                self._base, self._in_use = info.arena, info.uordblks
                self.active = True
                self.reason = f"keeping the heap for {gib:.2f} GiB of step temporaries"

    def after_step(self) -> None:
        """Call after each step, once its outputs are ready: wait (≤ 0.2 s) for XLA to free
        the step's block, then :meth:`release` if the heap has grown by more than 2.1 blocks
        since the keeper started."""
        if not self.active:
            return
        deadline = time.perf_counter() + WAIT_S
        while True:
            info = self._libc.mallinfo2()  # walks the free lists: ~20 ms
            freed = info.uordblks < self._in_use + self.temp_bytes // 2  # the block is back
            if freed or time.perf_counter() > deadline:
                break
            time.sleep(0.002)
        grown = info.arena - self._base
        if grown > GROWTH * self.temp_bytes:
            self.release()
            self.reason = (f"gave the heap back: it grew by {grown / 2**30:.2f} GiB "
                           f"(> {GROWTH:g} x {self.temp_bytes / 2**30:.2f} GiB)")

    def release(self) -> None:
        """Back to glibc's defaults (map large blocks, trim the heap) and hand the free memory
        back (``malloc_trim(0)``). Idempotent."""
        if not self.active:
            return
        self._libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        self._libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        self._libc.malloc_trim(0)
        self.active = False
