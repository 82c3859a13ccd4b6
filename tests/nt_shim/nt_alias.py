"""Pytest plugin that makes ``import neural_tangents`` resolve to :mod:`gantk` (renaming only).

Used by ``tests/test_nt_shim.py`` to run neural-tangents 0.6.5's own test files, unmodified,
against gantk (``python -m pytest -p nt_alias <NT checkout>/tests/stax/...`` with this
folder, the gantk repository and the NT checkout on ``PYTHONPATH``). Each NT module name
is mapped to the gantk module with the same role; nothing else is added. NT modules with no
gantk counterpart are empty packages, so importing from them fails as it should.
"""

from __future__ import annotations

import importlib
import sys
import types

import jax

#: NT module -> gantk module with the same contents (NT 0.6.5 layout).
RENAMES = {
    "neural_tangents": "gantk",
    "neural_tangents.stax": "gantk.stax",
    "neural_tangents.predict": "gantk.predict",
    "neural_tangents._src.empirical": "gantk.empirical",
    "neural_tangents._src.monte_carlo": "gantk.monte_carlo",
    "neural_tangents._src.batching": "gantk.batching",
    "neural_tangents._src.predict": "gantk.predict",
    "neural_tangents._src.stax.linear": "gantk.stax.layers",
    "neural_tangents._src.stax.elementwise": "gantk.stax.elementwise",
    "neural_tangents._src.stax.branching": "gantk.stax.branching",
    "neural_tangents._src.stax.combinators": "gantk.stax.combinators",
    "neural_tangents._src.utils.kernel": "gantk.stax.kernel",
}
#: Intermediate NT packages with no gantk module of their own.
PACKAGES = ("neural_tangents._src", "neural_tangents._src.stax", "neural_tangents._src.utils")


def install() -> None:
    """Register the renames in ``sys.modules`` (idempotent).

    NT 0.6.5's test helpers also call ``jax.tree_map``, which current JAX removed; it is
    restored as ``jax.tree.map`` (the same function) so that NT's test code itself runs.
    """
    if "tree_map" not in vars(jax):
        jax.tree_map = jax.tree.map
    for name in PACKAGES:
        sys.modules.setdefault(name, types.ModuleType(name, "no gantk counterpart"))
    for nt_name, gantk_name in RENAMES.items():
        sys.modules[nt_name] = importlib.import_module(gantk_name)


install()
