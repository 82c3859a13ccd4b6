"""Entry point of ``python -m benchmarks``: the benchmark suite of ``benchmarks/run.py``."""

from benchmarks.run import main

main()
