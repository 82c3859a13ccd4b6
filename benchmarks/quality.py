"""Quality table: final Sinkhorn divergence of the main-job flows, loss × kernel × seed.

Runs ``python -m gantk.run --loss L --kernel K --seed S`` (eight_gaussians, 500 + 500,
eta 1000, τ = 1, 2000 steps by default) and scores the final particles with both the
converged debiased Sinkhorn divergence and geomloss's annealed value
(``geomloss_compat=True``), which is what GAN(TK)² reported.

Usage::

    python benchmarks/quality.py                       # the full table (~15 min, 2 cores)
    python benchmarks/quality.py --steps 100 --seeds 1 --kernels relu   # a quick look
    # the same initial samples as GAN(TK)²'s seeds (see --data), for a per-seed comparison:
    python benchmarks/quality.py --data 'points:g2/eight_gaussians_s{seed}.npz'

``--data`` accepts any ``gantk.run --data`` value; ``{seed}`` is replaced by the seed. The
GAN(TK)² comparison summary at the end gives, per (loss, kernel), the mean over seeds of
the geomloss value, beside the mean of GAN(TK)²'s two published values.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

from gantk import metrics

#: GAN(TK)²'s published values (geomloss, blur 1e-3, scaling 0.95), seeds 1 and 2.
GANTK2 = {
    ("ipm", "relu"): (3.7e-4, 9.5e-3),
    ("ipm", "relu-nobias"): (0.10, 0.078),
    ("ipm", "rbf"): (0.039, 0.046),
    ("lsgan", "relu"): (0.35, 0.40),
    ("lsgan", "rbf"): (0.40, 0.36),
    ("lsgan", "relu-nobias"): ("crash", "crash"),
}


def main(argv: list[str] | None = None) -> None:
    """Run the flows and print the table with the reproducing command."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--losses", nargs="+", default=["ipm", "lsgan"])
    p.add_argument("--kernels", nargs="+", default=["relu", "relu-nobias", "rbf"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    p.add_argument("--data", default="eight_gaussians",
                   help="gantk.run --data value; '{seed}' is replaced by the seed")
    args = p.parse_args(argv)
    means: dict[tuple[str, str], list[float]] = {}
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="gantk-quality-"))
    print(f"{'loss':6} {'kernel':12} {'seed':>4} {'status':>10} {'geomloss':>10} "
          f"{'converged':>10} {'GAN(TK)2':>9}", flush=True)
    for loss in args.losses:
        for kernel in args.kernels:
            for seed in args.seeds:
                name = f"{loss}-{kernel}-s{seed}"
                cmd = [sys.executable, "-m", "gantk.run", "--loss", loss, "--kernel", kernel,
                       "--seed", str(seed), "--steps", str(args.steps), "--out", str(out),
                       "--name", name, "--overwrite", "--no-progress", "--no-figures",
                       "--metrics", "energy", "--data", args.data.format(seed=seed)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                run = out / name
                summary = json.loads((run / "summary.json").read_text())
                z = np.load(run / f"particles_{summary['steps_done']}.npz")
                gl = metrics.sinkhorn(z["fake"], z["real"], geomloss_compat=True)
                conv = metrics.sinkhorn(z["fake"], z["real"])
                means.setdefault((loss, kernel), []).append(gl)
                ref = GANTK2.get((loss, kernel), ("-", "-"))
                ref_s = ref[seed - 1] if seed in (1, 2) else "-"
                ref_s = f"{ref_s:.3g}" if isinstance(ref_s, float) else ref_s
                print(f"{loss:6} {kernel:12} {seed:>4} {summary['status']:>10} {gl:>10.4g} "
                      f"{conv:>10.4g} {ref_s:>9}  (exit {proc.returncode})", flush=True)
    print(f"\n{'loss':6} {'kernel':12} {'seeds':>5} {'gantk mean':>10} {'min':>8} {'max':>8} "
          f"{'GAN(TK)2 mean':>13}")
    for (loss, kernel), vals in means.items():
        ref = GANTK2.get((loss, kernel), ("-", "-"))
        ref_m = f"{np.mean(ref):.3g}" if all(isinstance(r, float) for r in ref) else ref[0]
        print(f"{loss:6} {kernel:12} {len(vals):>5} {np.mean(vals):>10.4g} {min(vals):>8.4g} "
              f"{max(vals):>8.4g} {ref_m:>13}")
    print(f"\nreproduce: {sys.executable} benchmarks/quality.py "
          + " ".join(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    main()
