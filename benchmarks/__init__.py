"""gantk benchmarks (run ``python -m benchmarks``; see ``benchmarks/run.py``)."""
