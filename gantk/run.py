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
written or modified); 130 on Ctrl-C (one line; ``--resume DIR`` continues bit for bit).

The implementation lives in :mod:`gantk.cli` (config, build, logger, checkpoint, main);
this module is the stable entry point.
"""

from __future__ import annotations

import os
import sys

from gantk.cli.config import (
    ARCHS,
    CSV_FIELDS,
    LOSSES,
    METRICS,
    PRESETS,
    RunConfig,
    build_parser,
    resolve_config,
)
from gantk.cli.errors import UsageError
from gantk.cli.main import main

__all__ = ["ARCHS", "CSV_FIELDS", "LOSSES", "METRICS", "PRESETS", "RunConfig", "UsageError",
           "build_parser", "main", "resolve_config"]

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
