"""Seconds for the extreme eigenvalues of a small GAN's game Jacobian: dense ``eig`` vs Arnoldi.

The game of :func:`gantk.analysis.game_jacobian.gan_game` (NS-GAN loss, 8 Gaussians, MLP
generator and ReLU discriminator of hidden width ``--width``, batch ``--batch``) at
initialization. ``dense``: the Jacobian built column by column from JVPs, then
``numpy.linalg.eigvals``; ``arnoldi``: matfree's Arnoldi with ``--matvecs`` JVPs, then the
Ritz values. Timings are wall-clock seconds of the second call (first call: compilation),
float64. Also printed: how many Ritz values have a residual estimate below 1e-6·max|λ| and
the largest distance from one of them to the nearest dense eigenvalue.

Usage::

    python benchmarks/game_jacobian.py                      # width 32: 2,402 parameters
    python benchmarks/game_jacobian.py --width 64 --matvecs 120
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import numpy as np

from gantk.analysis import game_jacobian as gj


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--matvecs", type=int, default=80)
    args = p.parse_args()
    jax.config.update("jax_enable_x64", True)
    gl, dl, gp, dp, _ = gj.gan_game(jax.random.key(0), n=args.batch, gen_width=args.width,
                                    disc_width=args.width)
    field, z, _ = gj.game_field(gl, dl, gp, dp)
    n = int(z.shape[0])
    out = {}
    for method in ("dense", "arnoldi"):
        kw = dict(method=method, max_dense=max(n, gj.MAX_DENSE), num_matvecs=args.matvecs)
        gj.extreme_eigenvalues(field, z, **kw)
        t0 = time.perf_counter()
        out[method] = gj.extreme_eigenvalues(field, z, **kw)
        print(f"{method:>8}: {time.perf_counter() - t0:7.2f} s  ({n} parameters)")
    conv = out["arnoldi"].converged(1e-6)
    dist = max(np.abs(out["dense"].eigenvalues - c).min() for c in conv) if len(conv) else np.nan
    print(f"arnoldi: {len(conv)} converged Ritz values, max distance to a dense eigenvalue "
          f"{dist:.2e}; largest |lambda| dense {out['dense'].eigenvalues[0]:.6f}, "
          f"arnoldi {out['arnoldi'].eigenvalues[0]:.6f}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}, jax {jax.__version__} {jax.devices()[0].platform}")
    print(f"reproduce: python benchmarks/game_jacobian.py --width {args.width} "
          f"--batch {args.batch} --matvecs {args.matvecs}")


if __name__ == "__main__":
    main()
