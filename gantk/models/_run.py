"""Run-folder helpers shared by ``gantk.models.train`` and ``gantk.models.evaluate``.

Conventions are those of :mod:`gantk.run`: atomic writes (:mod:`gantk._io`), strict JSON
(``null`` for NaN/inf), one-line usage errors with exit status 2, and nothing the user already
has is overwritten unless ``--overwrite`` asks for it.
"""

from __future__ import annotations

import io
import json
import math
import pathlib
from typing import Any

import numpy as np

from gantk import _io
from gantk.cli.errors import Parser, UsageError

__all__ = ["Checkpoints", "Parser", "UsageError", "json_safe", "save_png", "write_json"]


def json_safe(obj: Any) -> Any:
    """``obj`` with NumPy/JAX scalars and arrays converted, and NaN/inf replaced by ``None``."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str):
        return json_safe(np.asarray(obj).tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | pathlib.Path, obj: Any) -> None:
    """Write strict JSON (NaN/inf as ``null``) atomically."""
    with _io.atomic_open(path, "w") as f:
        json.dump(json_safe(obj), f, indent=2, allow_nan=False)
        f.write("\n")


def save_png(path: str | pathlib.Path, image: np.ndarray) -> None:
    """Save an image in [0, 1] (``(H, W)`` grey or ``(H, W, 3)``) as PNG, atomically."""
    import matplotlib.pyplot as plt

    img = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    buf = io.BytesIO()
    plt.imsave(buf, img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0,
               format="png")
    with _io.atomic_open(path, "wb") as f:
        f.write(buf.getvalue())


class Checkpoints:
    """Orbax checkpoints of ``{"params", "model_state", "opt_state", "step", "elapsed"}``.

    One sub-folder per saved step under ``<run>/checkpoints`` (orbax writes each to a
    temporary folder and renames it when complete, so an interrupted save never replaces the
    last good one); the two most recent are kept.
    """

    def __init__(self, directory: pathlib.Path, *, create: bool) -> None:
        import orbax.checkpoint as ocp

        self.dir = pathlib.Path(directory).absolute()
        opts = ocp.CheckpointManagerOptions(max_to_keep=2, create=create,
                                            enable_async_checkpointing=False)
        self._ocp = ocp
        self.manager = ocp.CheckpointManager(self.dir, options=opts)

    def latest_step(self) -> int | None:
        """The last completed checkpoint's step, or ``None``."""
        return self.manager.latest_step()

    def save(self, step: int, tree: dict[str, Any]) -> None:
        """Save ``tree`` as step ``step`` (replacing an existing save of the same step)."""
        if step in self.manager.all_steps():
            self.manager.delete(step)
        self.manager.save(step, args=self._ocp.args.StandardSave(tree))
        self.manager.wait_until_finished()

    def restore(self, template: dict[str, Any]) -> dict[str, Any]:
        """Restore the latest checkpoint into the structure of ``template``.

        Raises:
            UsageError: no checkpoint, or one that cannot be read or does not match.
        """
        step = self.latest_step()
        if step is None:
            raise UsageError(f"no checkpoint found in {self.dir}")
        # orbax restores into 0-d arrays, not NumPy scalars (np.int64 templates are refused)
        template = {k: np.asarray(v) if isinstance(v, np.generic) else v
                    for k, v in template.items()}
        try:
            return self.manager.restore(step, args=self._ocp.args.StandardRestore(template))
        except Exception as err:  # orbax raises many types for corrupt or mismatched files
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(f"checkpoint {self.dir / str(step)} is corrupt or does not match "
                             f"the configuration ({first[:200]})") from None

    def close(self) -> None:
        """Release the manager."""
        self.manager.close()
