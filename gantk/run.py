"""The main job: ``python -m gantk.run --loss ipm --arch relu`` (also ``gantk-run``).

Flows fake particles (or trains a generator) against real data along the gradient field of
an infinite-width (NTK/NNGP) or finite-width discriminator, as in GAN(TK)² (Franceschi et
al., ICML 2022), and writes everything a researcher wants to look at::

    <out>/<run-name>/
        config.json           resolved configuration (the run can be resumed from it)
        metrics.csv           step, sinkhorn, energy, mmd, nn_distance, generator_loss, wall_time
        particles_<step>.npz  fake and real points at each log step
        checkpoint.npz        state at the last completed log step (for --resume)
        figures/step_<k>.png  fake/real points, heatmap of f_tau, quiver of the velocity
        figures/metrics.png   log-scale metric curves
        flow.gif              animation of the flow
        summary.json          final metrics, timings and status

Exit status: 0 on success; 1 when the run diverges (the last finite state is saved) or a
write fails mid-run; 2 on a bad argument or unusable input (one line naming it; nothing
written or modified); 130 on Ctrl-C at any moment (one line; ``--resume DIR`` continues
bit for bit).

The implementation lives in :mod:`gantk.cli` (config, build, logger, checkpoint, main).
This module is the stable entry point; it imports :mod:`gantk.cli.main` (and with it JAX,
about 2 s) inside :func:`main`, with Ctrl-C held back, so that an interrupt during that
import is reported in one line too (interrupting a C extension's initialisation aborts the
interpreter). The names of :mod:`gantk.cli.config` are re-exported lazily.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from gantk.cli.errors import EXIT_INTERRUPTED, UsageError
from gantk.cli.interrupts import deferred_interrupts

_CONFIG_NAMES = ("ARCHS", "CSV_FIELDS", "LOSSES", "METRICS", "PRESETS", "RunConfig",
                 "build_parser", "resolve_config")
__all__ = ["UsageError", "main", *_CONFIG_NAMES]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gantk.run``; returns the exit status (see module doc)."""
    with deferred_interrupts() as held:  # a Ctrl-C inside a C extension's import aborts
        cli = importlib.import_module("gantk.cli.main")
    if held.pressed:
        print("gantk.run: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return cli.main(argv)


def __getattr__(name: str) -> Any:
    """Lazy re-export of the configuration names of :mod:`gantk.cli.config`."""
    if name in _CONFIG_NAMES:
        return getattr(importlib.import_module("gantk.cli.config"), name)
    raise AttributeError(f"module 'gantk.run' has no attribute {name!r}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
