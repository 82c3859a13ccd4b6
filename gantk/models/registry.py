"""How a model plugs into ``python -m gantk.models.train`` and ``python -m gantk.models.evaluate``.

The two CLIs know nothing about any model: they look the ``--model`` name up here and drive
the :class:`Experiment` that the model's ``build`` function returns. To add a model:

1. Write a module (e.g. ``gantk/models/pde.py``) with a ``build(spec: RunSpec) -> Experiment``
   function and a preset table ``PRESETS = {"small": {...}, "paper": {...}}``.
2. Register it in :data:`MODELS` below (one :class:`ModelEntry`, lazily imported through
   ``module`` so that ``--help`` stays fast).

**Presets** are flat dicts of JSON scalars (int, float, str, bool, None). Every preset must
contain ``steps`` (default number of training steps) and ``batch_size``; everything else is the
model's own (sizes, learning rate, loss weights, ...). ``--preset NAME`` picks one (default
``small``, which must train on a 2-core CPU), ``--set key=value`` overrides single entries (the
value is parsed with the type of the preset's value; an unknown key exits 2), ``--steps``
overrides ``steps``. The resolved values reach ``build`` as ``spec.hparams`` and are written to
``config.json``.

**Data** names: ``ModelEntry.data`` lists the accepted ``--data`` values; an entry ending in
``:`` (e.g. ``"moving-mnist:"``) accepts a ``:PATH`` suffix. ``build`` must raise
``ValueError`` (one line naming the value) for data it cannot load: the CLI turns it into
exit status 2 before anything is written.

**The Experiment** (what ``build`` returns) is a plain object with:

- ``description`` (str): one line printed at the start and saved in ``summary.json``; say
  which data source is used (e.g. "scikit-learn 8×8 digits upscaled, not MNIST").
- ``optimizer`` (an ``optax.GradientTransformation``).
- ``init(key) -> (params, model_state)``: flax parameters and the non-trained collections
  (e.g. ``{"batch_stats": ...}``; ``{}`` when there are none).
- ``train_batch(step) -> batch``: the training batch of global step ``step`` (a pytree of
  arrays), a deterministic function of ``(spec.seed, step)`` so that ``--resume`` replays the
  same data.
- ``loss(params, model_state, batch, key) -> (loss, (terms, new_model_state))``: pure and
  jittable; ``terms`` is a dict of scalar arrays (e.g. ``nll``, ``kl_y``...) shown in the
  progress bar and written to ``metrics.csv``. The trainer differentiates ``loss`` w.r.t.
  ``params`` and applies ``optimizer``; one whole step is jitted once.
- ``strip(params, model_state, key) -> np.ndarray``: an image in [0, 1], ``(H, W)`` or
  ``(H, W, 3)``, saved as ``strips/step_<k>.png`` (ground truth rows above sample rows).
- ``evaluate(params, model_state, *, samples, videos, key, progress) -> EvalResult``: the
  test protocol; :mod:`gantk.models.evaluate` has the shared helpers
  (:func:`~gantk.models.evaluate.frame_metrics`, :func:`~gantk.models.evaluate.best_of`,
  :func:`~gantk.models.evaluate.mean_ci`) and writes ``eval/metrics.csv``,
  ``eval/summary.json`` and ``eval/metrics.png`` from the result.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

__all__ = ["MODELS", "EvalResult", "Experiment", "ModelEntry", "RunSpec", "get_model",
           "resolve_hparams"]


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """The resolved configuration handed to a model's ``build``.

    Attributes:
        model: registry name (``--model``).
        data: the ``--data`` value, e.g. ``"moving-digits"`` or ``"moving-mnist:/p/mnist.npz"``.
        preset: preset name.
        seed: the run's seed (initialization, data order, noise).
        hparams: the preset's values with ``--set``/``--steps`` overrides applied.
    """

    model: str
    data: str
    preset: str
    seed: int
    hparams: Mapping[str, Any]


@dataclasses.dataclass
class EvalResult:
    """What a model's ``evaluate`` returns; the evaluation CLI writes it out.

    Attributes:
        rows: one dict per predicted frame, keys ``columns`` (``frame`` is 1-based).
        columns: CSV column order, ``"frame"`` first (e.g. ``frame, psnr, ssim,
            psnr_copy_last, ssim_copy_last``).
        summary: JSON-able dict: means with 95% intervals, the protocol (samples, videos,
            conditioning and predicted frames), the data description.
        panels: figure layout: panel title -> columns drawn in it (e.g.
            ``{"PSNR": ["psnr", "psnr_copy_last"]}``).
        images: extra figures, name -> image in [0, 1] (``(H, W)`` or ``(H, W, 3)``), saved
            as ``eval/<name>.png`` (e.g. the PDE model's content swap).
    """

    rows: list[dict[str, Any]]
    columns: tuple[str, ...]
    summary: dict[str, Any]
    panels: dict[str, list[str]]
    images: dict[str, Any] = dataclasses.field(default_factory=dict)


class Experiment(Protocol):
    """The interface a model's ``build`` returns (see the module docstring)."""

    description: str
    optimizer: Any

    def init(self, key: Any) -> tuple[Any, Any]:
        """Initial ``(params, model_state)``."""

    def train_batch(self, step: int) -> Any:
        """Training batch of global step ``step`` (deterministic in seed and step)."""

    def loss(self, params: Any, model_state: Any, batch: Any,
             key: Any) -> tuple[Any, tuple[dict[str, Any], Any]]:
        """``(loss, (terms, new_model_state))``, pure and jittable."""

    def strip(self, params: Any, model_state: Any, key: Any) -> np.ndarray:
        """Ground truth vs samples image in [0, 1]."""

    def evaluate(self, params: Any, model_state: Any, *, samples: int, videos: int,
                 key: Any, progress: bool) -> EvalResult:
        """Run the test protocol."""


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    Attributes:
        name: the ``--model`` value.
        module: module holding ``build`` and ``PRESETS`` (imported on first use).
        data: accepted ``--data`` values; one ending in ``:`` takes a ``:PATH`` suffix.
        description: one line for ``--help``.
    """

    name: str
    module: str
    data: tuple[str, ...]
    description: str

    @property
    def presets(self) -> Mapping[str, Mapping[str, Any]]:
        """The model's preset table (``PRESETS`` of its module)."""
        return importlib.import_module(self.module).PRESETS

    @property
    def build(self) -> Callable[[RunSpec], Experiment]:
        """The model's ``build(spec) -> Experiment``."""
        return importlib.import_module(self.module).build

    def accepts(self, data: str) -> bool:
        """Whether ``data`` is one of :attr:`data` (a ``name:`` entry matches ``name:PATH``)."""
        for d in self.data:
            if d.endswith(":") and data.startswith(d) and len(data) > len(d):
                return True
            if data == d:
                return True
        return False


MODELS: dict[str, ModelEntry] = {
    "srvp": ModelEntry(
        name="srvp", module="gantk.models.srvp",
        data=("moving-digits", "moving-digits-deterministic", "moving-mnist:"),
        description="SRVP, stochastic latent residual video prediction (Franceschi et al., "
        "ICML 2020)",
    ),
    "pde": ModelEntry(
        name="pde", module="gantk.models.pde",
        data=("waveeq", "waveeq-100", "pendulum", "moving-digits",
              "moving-digits-deterministic", "moving-mnist:"),
        description="PDE-driven spatiotemporal disentanglement (Dona et al., ICLR 2021)",
    ),
}


def get_model(name: str) -> ModelEntry:
    """The registry entry called ``name``.

    Raises:
        ValueError: unknown name (the message lists the registered ones).
    """
    if name not in MODELS:
        raise ValueError(f"argument --model: invalid choice {name!r} (choose from "
                         f"{', '.join(MODELS)})")
    return MODELS[name]


def _parse_like(key: str, text: str, like: Any) -> Any:
    if isinstance(like, bool):
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"argument --set {key}: expected true/false; got {text!r}")
    if like is None:
        if text.lower() in ("none", "null"):
            return None
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        return text
    try:
        return type(like)(text)
    except ValueError:
        raise ValueError(f"argument --set {key}: expected {type(like).__name__}; got "
                         f"{text!r}") from None


def resolve_hparams(entry: ModelEntry, preset: str, sets: list[str] | None,
                    steps: int | None) -> dict[str, Any]:
    """The preset's values with ``--set key=value`` and ``--steps`` applied.

    Raises:
        ValueError: unknown preset or key, malformed ``--set``, or a value of the wrong type
            (one line, naming it).
    """
    presets = entry.presets
    if preset not in presets:
        raise ValueError(f"argument --preset: invalid choice {preset!r} for model "
                         f"{entry.name!r} (choose from {', '.join(presets)})")
    hp = dict(presets[preset])
    for item in sets or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"argument --set: expected KEY=VALUE; got {item!r}")
        if key not in hp:
            raise ValueError(f"argument --set: unknown key {key!r} for model {entry.name!r} "
                             f"(keys: {', '.join(sorted(hp))})")
        hp[key] = _parse_like(key, text.strip(), hp[key])
    if steps is not None:
        hp["steps"] = steps
    for key in ("steps", "batch_size"):
        v = hp.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            name = "--steps" if key == "steps" else "--set batch_size"
            raise ValueError(f"argument {name}: expected a positive integer; got {v!r}")
    return hp
