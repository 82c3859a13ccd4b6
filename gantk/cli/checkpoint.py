"""Checkpoints of a run's state that are checked against the configuration on resume.

``checkpoint.npz`` holds the leaves of the state pytree (typed PRNG keys as their raw key
data), the step, the per-step generator losses so far, the elapsed wall time, and a hash of
the configuration (every setting except ``steps``, the only one a resume may change). A
resume refuses, with one line and nothing modified, a checkpoint that is unreadable or
truncated, was written for another configuration, or whose arrays do not have the shapes
and dtypes the configuration implies.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gantk import _io
from gantk.cli.errors import UsageError

__all__ = ["FORMAT", "config_hash", "is_key", "load_checkpoint", "save_checkpoint"]

#: Version of the checkpoint layout.
FORMAT = 2


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 (hex) of the configuration without ``steps``, in canonical JSON."""
    body = {k: v for k, v in config.items() if k != "steps"}
    text = json.dumps(_io.to_json_value(body), sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def is_key(a: Any) -> bool:
    """True for a typed JAX PRNG key array."""
    return hasattr(a, "dtype") and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)


def _leaves(state: Any) -> list[Any]:
    return [jax.random.key_data(a) if is_key(a) else a
            for a in jax.tree_util.tree_leaves(state)]


def save_checkpoint(path: str | os.PathLike, state: Any, *, step: int,
                    gen_loss: Any, elapsed: float, config_hash: str) -> None:
    """Write ``state`` (any pytree of arrays and PRNG keys) and its bookkeeping, atomically.

    Args:
        path: the ``checkpoint.npz`` path.
        state: the flow or generator state after ``step`` steps.
        step: number of completed steps.
        gen_loss: the ``step`` per-step mean generator losses, shape ``(step,)``.
        elapsed: wall time so far, in seconds.
        config_hash: :func:`config_hash` of the run's configuration.
    """
    leaves = _leaves(state)
    _io.write_npz(
        path, format=FORMAT, step=step, n_leaves=len(leaves),
        gen_loss=np.asarray(gen_loss, dtype=np.float64).reshape(-1), elapsed=float(elapsed),
        config_hash=np.asarray(config_hash),
        **{f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)},
    )


def _read_all(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read eagerly (a truncated member fails here)."""
    with np.load(path, allow_pickle=False) as z:
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        return {k: np.asarray(z[k]) for k in z.files}


def load_checkpoint(path: str | os.PathLike, template: Any, *,
                    config_hash: str) -> tuple[Any, int, np.ndarray, float]:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the ``checkpoint.npz`` path.
        template: a state pytree built from the configuration (its leaves' shapes and
            dtypes are what the checkpoint must hold).
        config_hash: :func:`config_hash` of the configuration being resumed.

    Returns:
        ``(state, step, gen_loss (step,), elapsed seconds)``.

    Raises:
        UsageError: one line, if the file is unreadable, truncated, from another
            configuration or gantk version, or its arrays do not match ``template``.
    """
    path = pathlib.Path(path)
    where = f"argument --resume: {str(path)!r}"
    try:
        ck = _read_all(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise UsageError(f"{where} is unreadable or truncated ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'empty'})") from None
    need = ("format", "step", "n_leaves", "gen_loss", "elapsed", "config_hash")
    missing = [k for k in need if k not in ck]
    if missing:
        raise UsageError(f"{where} lacks {missing[0]!r} (written by another gantk version "
                         "or not a checkpoint)")
    if ck["config_hash"].shape != () or str(ck["config_hash"]) != config_hash:
        raise UsageError(f"{where} was written for another configuration (config.json was "
                         "edited after the run started?); refusing to resume")
    t_leaves, treedef = jax.tree_util.tree_flatten(template)
    try:
        step, n = int(ck["step"]), int(ck["n_leaves"])
        elapsed = float(ck["elapsed"])
    except (TypeError, ValueError):
        raise UsageError(f"{where}: malformed step/leaf count") from None
    gen_loss = ck["gen_loss"]
    if n != len(t_leaves) or step < 0 or gen_loss.shape != (step,) or not math.isfinite(elapsed):
        raise UsageError(f"{where} does not match the configuration (state structure, step "
                         "or loss history)")
    leaves = []
    for i, t in enumerate(t_leaves):
        arr = ck.get(f"leaf_{i}")
        want = jax.random.key_data(t) if is_key(t) else t
        if arr is None or arr.shape != tuple(want.shape) or arr.dtype != np.dtype(want.dtype):
            got = "missing" if arr is None else f"{arr.dtype}{list(arr.shape)}"
            raise UsageError(f"{where}: array {i} is {got}, the configuration needs "
                             f"{np.dtype(want.dtype)}{list(want.shape)}")
        leaves.append(jax.random.wrap_key_data(jnp.asarray(arr)) if is_key(t)
                      else jnp.asarray(arr, dtype=t.dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves), step, gen_loss, elapsed
