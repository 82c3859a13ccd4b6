"""gantk: GAN training dynamics through the Neural Tangent Kernel, in JAX.

Reproduces and extends the infinite-width analysis of Franceschi et al., *A Neural Tangent
Kernel Perspective of GANs* (ICML 2022).

Main entry points:

- :mod:`gantk.stax`: NT-compatible infinite-width layers ``(init_fn, apply_fn, kernel_fn)``.
- :mod:`gantk.losses`: GAN losses as ``(a, b, c)`` triples.
- problem → solver → solution: :class:`gantk.Problem` (kernel, loss, points, τ),
  :mod:`gantk.solvers` (``ClosedForm``, ``Eigh``, ``Krylov``, ``ODE``, ``KernelGD``, or your
  own ``AbstractSolver``), :mod:`gantk.solution` (the discriminator ``f_tau`` and its
  particle velocity); :func:`gantk.discriminator` does all three in one call.
- :mod:`gantk.flows`: particle flows and generator training (one step for every
  discriminator).
- :mod:`gantk.nets`: finite-width flax twins and :func:`gantk.empirical_ntk`.
- :mod:`gantk.data`, :mod:`gantk.metrics`, :mod:`gantk.plot`: datasets, metrics, figures.
- :mod:`gantk.models`: continuous-time latent video models (shared ODE layer, SRVP, PDE model).
- :mod:`gantk.analysis`: game dynamics (Dirac-GAN, bilinear game, pointwise fields, NTK drift,
  game Jacobian).
- NT toolkit: :func:`gantk.monte_carlo_kernel_fn`, :func:`gantk.empirical_kernel_fn`,
  :mod:`gantk.predict`, :func:`gantk.batch`.

Note: ``gantk.discriminator`` is the *function*; once the submodule of the same name has
been imported, Python binds the module there instead, which is callable with the same
signature, so ``gantk.discriminator(...)`` works either way.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "analysis",
    "architectures",
    "data",
    "flows",
    "losses",
    "metrics",
    "models",
    "nets",
    "plot",
    "problem",
    "sharding",
    "solution",
    "solvers",
    "stax",
)
_ATTRS = {
    "discriminator": ("gantk.discriminator", "discriminator"),
    "Discriminator": ("gantk.solution", "Discriminator"),
    "Problem": ("gantk.problem", "Problem"),
    "empirical_ntk": ("gantk.nets", "empirical_ntk"),
    "MLPSpec": ("gantk.architectures", "MLPSpec"),
}

__all__ = [*_SUBMODULES, *_ATTRS, "__version__"]


def __getattr__(name: str) -> Any:
    """Import submodules and top-level names lazily (keeps ``import gantk`` fast)."""
    if name in _ATTRS:
        module, attr = _ATTRS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"gantk.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'gantk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

# neural-tangents toolkit functions (issue #15), exported lazily like the names above.
_ATTRS.update(
    {
        "monte_carlo_kernel_fn": ("gantk.monte_carlo", "monte_carlo_kernel_fn"),
        "empirical_kernel_fn": ("gantk.empirical", "empirical_kernel_fn"),
        "empirical_ntk_fn": ("gantk.empirical", "empirical_ntk_fn"),
        "empirical_nngp_fn": ("gantk.empirical", "empirical_nngp_fn"),
        "NtkImplementation": ("gantk.empirical", "NtkImplementation"),
        "batch": ("gantk.batching", "batch"),
    }
)
_SUBMODULES += ("predict", "empirical", "monte_carlo", "batching")
__all__ += [
    "monte_carlo_kernel_fn",
    "empirical_kernel_fn",
    "empirical_ntk_fn",
    "empirical_nngp_fn",
    "NtkImplementation",
    "batch",
    "predict",
    "empirical",
    "monte_carlo",
    "batching",
]
