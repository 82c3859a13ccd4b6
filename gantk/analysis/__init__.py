"""Game dynamics of GAN training, next to the NTK lens of the rest of gantk.

Submodules (imported lazily, ``gantk.analysis.dirac`` etc.):

- :mod:`~gantk.analysis.dirac` — the Dirac-GAN of Mescheder et al. (ICML 2018) and its
  regularized variants: vector fields, trajectories, Jacobians, discrete-time stability.
- :mod:`~gantk.analysis.bilinear` — the bilinear game ``V(x, y) = xy`` (Goodfellow, 2017)
  under the continuous flow and simultaneous, alternating, extragradient and optimistic GD.
- :mod:`~gantk.analysis.pointwise` — the pointwise (functional) dynamics of ``(D, p_g)`` at
  one point for GAN losses, with rest points, Jacobians and a Lyapunov function.
- :mod:`~gantk.analysis.ntk_drift` — motion of a finite discriminator's empirical NTK.
- :mod:`~gantk.analysis.game_jacobian` — the Jacobian of a whole game's simultaneous
  gradient field by JVPs, and its extreme eigenvalues (dense or Arnoldi).
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = ("bilinear", "dirac", "game_jacobian", "ntk_drift", "pointwise")

__all__ = list(_SUBMODULES)


def __getattr__(name: str) -> Any:
    """Import submodules lazily."""
    if name in _SUBMODULES:
        module = importlib.import_module(f"gantk.analysis.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'gantk.analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
