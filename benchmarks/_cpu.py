"""The kind of CPU a benchmark runs on, to pick the PyTorch numbers measured on the same kind."""

from __future__ import annotations

import platform


def cpu_kind() -> str:
    """``"avx512"`` or ``"avx2"``: the CPU's widest float vector ISA, from the ``flags`` line of
    ``/proc/cpuinfo``; ``platform.machine()`` where neither applies (no Linux, no x86).

    The key of ``TORCH_HERE`` in ``benchmarks/pde.py`` and ``benchmarks/srvp.py``: both codes
    run ~2x faster on the AVX-512 EPYC than on the AVX2 one, and not by the same factor, so a
    ratio against PyTorch only holds against PyTorch timed on the same kind of CPU.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else platform.machine()
