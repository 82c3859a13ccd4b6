"""The run configuration of ``python -m gantk.run``: names, presets, validation, JSON.

One source for every name and choice: the losses are :data:`gantk.losses.LOSSES`, the
architectures :data:`gantk.architectures.KERNELS`, the datasets :data:`gantk.data.NAMES`.
:class:`RunConfig` holds the resolved settings; the discriminator architecture is an
:class:`~gantk.architectures.MLPSpec` (not a copy of its fields), the width is ``None`` for
the infinite-width limit. ``config.json`` is strict JSON (RFC 8259): an infinite ``time`` is
written as the string ``"inf"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any, NoReturn

from gantk import losses as _losses
from gantk.architectures import KERNELS, MLPSpec, get_spec
from gantk.cli.errors import Parser, UsageError, one_line
from gantk.cli.paths import check_run_name, safe_name
from gantk.data import NAMES as DATA_NAMES
from gantk.data import SEED_MAX, SEED_MIN

__all__ = [
    "ARCHS",
    "CSV_FIELDS",
    "LOSSES",
    "MAX_DISCR_STEPS",
    "METRICS",
    "NTK_DRIFT_FIELDS",
    "PRESETS",
    "RunConfig",
    "build_parser",
    "config_from_json",
    "config_to_json",
    "discr_steps",
    "resolve_config",
    "validate_config",
]

LOSSES: tuple[str, ...] = tuple(_losses.LOSSES)
#: Discriminator architectures by name (GAN(TK)²'s ``arch_config`` entries).
ARCHS: tuple[str, ...] = tuple(KERNELS)
METRICS: tuple[str, ...] = ("sinkhorn", "energy", "mmd", "nn_distance")
CSV_FIELDS: tuple[str, ...] = ("step", *METRICS, "generator_loss", "wall_time")
#: Extra ``metrics.csv`` columns of ``--log-ntk-drift`` (:mod:`gantk.analysis.ntk_drift`).
NTK_DRIFT_FIELDS: tuple[str, ...] = ("ntk_drift", "ntk_inf_distance")
GENERATORS: tuple[str, ...] = ("none", "mlp")
#: Most SGD steps a finite-width discriminator may take per generator step.
MAX_DISCR_STEPS = 1_000_000
#: Datasets whose points are 8×8 images (drawn as image grids).
IMAGE_DATA: dict[str, tuple[int, int]] = {"digits": (8, 8)}

# --------------------------------------------------------------------------- presets
# GAN(TK)²'s `args/exp_configs.py`, as `<loss config>-<architecture>-<data>`.
_LOSS_PRESETS: dict[str, dict[str, Any]] = {
    "inf_ipm": dict(loss="ipm", eta=1000.0, time=1.0, width=None),
    "inf_lsgan": dict(loss="lsgan", eta=1000.0, time=1.0, width=None),
    "inf_vanilla": dict(loss="vanilla", eta=1000.0, time=1.0, width=None),
    "ipm": dict(loss="ipm", eta=100.0, discr_lr=0.01, time=0.1, antisymmetric=True),
    "ipm_reset": dict(loss="ipm", eta=1000.0, discr_lr=0.1, time=1.0, reset=True,
                      antisymmetric=True),
    "lsgan": dict(loss="lsgan", eta=1.0, discr_lr=0.1, time=1.0),
}
_ARCH_PRESETS: dict[str, dict[str, Any]] = {
    name: dict(arch=name, width=128) for name in ("relu", "relu-highbias", "relu-nobias", "rbf")
}
_DATA_PRESETS: dict[str, dict[str, Any]] = {
    "eight_gaussians": dict(data="eight_gaussians", n_particles=500),
    "density": dict(data="density", n_particles=500),
    "ab": dict(data="ab", n_particles=500),
    "digits": dict(data="digits", n_particles=1024, eta=100.0, time=1000.0),
}
PRESETS: tuple[str, ...] = tuple(
    f"{lo}-{ar}-{da}" for lo in _LOSS_PRESETS for ar in _ARCH_PRESETS for da in _DATA_PRESETS
)


def _preset_values(name: str) -> dict[str, Any]:
    """Resolve a preset name ``<loss config>-<architecture>-<data>`` into option values."""
    norm = name.replace("relu_nobias", "relu-nobias").replace("relu_highbias", "relu-highbias")
    if norm.endswith("-mnist"):  # GAN(TK)²'s name for the digits configuration
        norm = norm[: -len("mnist")] + "digits"
    parts = norm.split("-")
    lo, ar, da = parts[0], "-".join(parts[1:-1]), parts[-1]
    if len(parts) < 3 or lo not in _LOSS_PRESETS or ar not in _ARCH_PRESETS \
            or da not in _DATA_PRESETS:
        raise UsageError(
            f"argument --preset: invalid choice {name!r} (expected <loss>-<arch>-<data> with "
            f"loss in {sorted(_LOSS_PRESETS)}, arch in {sorted(_ARCH_PRESETS)}, data in "
            f"{sorted(_DATA_PRESETS)}; e.g. 'inf_lsgan-relu-eight_gaussians')"
        )
    values = {**_DATA_PRESETS[da], **_ARCH_PRESETS[ar], **_LOSS_PRESETS[lo]}
    if da == "digits":  # the data config overrides eta/time (GAN(TK)²)
        values.update(eta=_DATA_PRESETS[da]["eta"], time=_DATA_PRESETS[da]["time"])
    return values


# --------------------------------------------------------------------------- config
@dataclasses.dataclass
class RunConfig:
    """Fully resolved run configuration (written to ``config.json``).

    Attributes mirror the command-line options (``python -m gantk.run --help``), except:

    Attributes:
        spec: the discriminator architecture, :data:`gantk.architectures.KERNELS` ``[arch]``
            with ``--depth``/``--w-std``/``--b-std`` applied (its ``width`` is ``width`` for
            a finite network and unused at infinite width).
        width: ``None`` for the infinite-width (NTK/NNGP) discriminator, else the width of
            the finite flax network.
        n_particles: ``None`` = the dataset's own size (a ``points:`` file's).
        n_real: see ``n_particles``.
    """

    loss: str = "ipm"
    arch: str = "relu"
    spec: MLPSpec = dataclasses.field(default_factory=lambda: KERNELS["relu"])
    data: str = "eight_gaussians"
    n_particles: int | None = 500
    n_real: int | None = None
    steps: int = 2000
    eta: float = 1000.0
    time: float = 1.0
    seed: int = 0
    log_every: int = 100
    plot_every: int | None = None
    x64: bool = False
    width: int | None = None
    discr_lr: float = 0.1
    reset: bool = False
    antisymmetric: bool = True
    single_step: bool = False
    generator: str = "none"
    gen_lr: float = 1e-3
    latent_dim: int | None = None
    sinkhorn_blur: float = 1e-3
    sinkhorn_every: int | None = None
    metrics: tuple[str, ...] = METRICS
    devices: int | None = None
    log_ntk_drift: bool = False
    preset: str | None = None
    name: str | None = None

    @property
    def csv_fields(self) -> tuple[str, ...]:
        """Columns of ``metrics.csv``."""
        return (*CSV_FIELDS, *NTK_DRIFT_FIELDS) if self.log_ntk_drift else CSV_FIELDS

    @property
    def run_name(self) -> str:
        """Folder name of the run inside ``--out`` (one path component)."""
        if self.name:
            return self.name
        w = "" if self.width is None else f"-w{self.width}"
        g = "" if self.generator == "none" else f"-gen{self.generator}"
        return safe_name(f"{self.loss}-{self.arch}{w}{g}-{self.data}-s{self.seed}")

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """``(h, w)`` when the data points are flattened images, else None."""
        return IMAGE_DATA.get(self.data)


_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
_INTS = {"n_particles", "n_real", "steps", "log_every", "plot_every", "latent_dim", "devices",
         "sinkhorn_every", "width"}
_OPTIONAL = {"n_particles", "n_real", "plot_every", "latent_dim", "devices", "sinkhorn_every",
             "width", "preset", "name"}
_BOOLS = {"x64", "reset", "antisymmetric", "single_step", "log_ntk_drift"}
_STRS = {"loss", "arch", "data", "generator", "preset", "name"}
_FLOATS = {"eta": 0.0, "time": 0.0, "discr_lr": 0.0, "gen_lr": 0.0, "sinkhorn_blur": 0.0}


def _flag(field: str) -> str:
    return "--" + {"w_std": "w-std", "b_std": "b-std"}.get(field, field.replace("_", "-"))


def _bad_choice(field: str, value: Any, choices: tuple[str, ...]) -> NoReturn:
    raise UsageError(f"argument {_flag(field)}: invalid choice {value!r} (choose from "
                     f"{', '.join(choices)})")


def _check_types(cfg: RunConfig) -> None:
    for name in _FIELDS:
        v = getattr(cfg, name)
        if v is None and name in _OPTIONAL:
            continue
        flag = _flag(name)
        if name in _INTS and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise UsageError(f"argument {flag}: expected a positive integer; got {v!r}")
        if name in _BOOLS and not isinstance(v, bool):
            raise UsageError(f"argument {flag}: expected true or false; got {v!r}")
        if name in _STRS and not isinstance(v, str):
            raise UsageError(f"argument {flag}: expected a string; got {v!r}")
        if name in _FLOATS:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise UsageError(f"argument {flag}: expected a number; got {v!r}")
            setattr(cfg, name, float(v))


def _check_float(name: str, v: float, *, positive: bool, allow_inf: bool = False) -> None:
    flag = _flag(name)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise UsageError(f"argument {flag}: expected a finite number; got {v!r}")
    if v < 0 or (positive and v == 0):
        raise UsageError(f"argument {flag}: expected a number {'>' if positive else '>='} 0; "
                         f"got {v!r}")


def discr_steps(cfg: RunConfig) -> int:
    """SGD steps of the finite-width discriminator per generator step (1 in single-step)."""
    if cfg.width is None:
        return 0
    return 1 if cfg.single_step else int(round(cfg.time / cfg.discr_lr))


def validate_config(cfg: RunConfig) -> RunConfig:
    """Check every setting of ``cfg`` (types, ranges, choices, combinations).

    Returns:
        ``cfg`` (floats normalised to ``float``).

    Raises:
        UsageError: one line naming the flag(s), what was expected and what was given.
    """
    _check_types(cfg)
    if cfg.loss not in LOSSES:
        _bad_choice("loss", cfg.loss, LOSSES)
    if cfg.arch not in ARCHS:
        _bad_choice("arch", cfg.arch, ARCHS)
    if cfg.generator not in GENERATORS:
        _bad_choice("generator", cfg.generator, GENERATORS)
    bad = [m for m in cfg.metrics if m not in METRICS] if isinstance(cfg.metrics, tuple) \
        else [cfg.metrics]
    if bad or not cfg.metrics:
        _bad_choice("metrics", bad[0] if bad else "", METRICS)
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) \
            or not SEED_MIN <= cfg.seed <= SEED_MAX:
        raise UsageError(f"argument --seed: expected an integer in [{SEED_MIN}, {SEED_MAX}]; "
                         f"got {cfg.seed!r}")
    for name in ("eta",):
        _check_float(name, cfg.eta, positive=False)
    _check_float("time", cfg.time, positive=True, allow_inf=cfg.loss == "lsgan")
    for name in ("discr_lr", "gen_lr", "sinkhorn_blur"):
        _check_float(name, getattr(cfg, name), positive=True)
    if not isinstance(cfg.spec, MLPSpec):
        raise UsageError(f"argument --arch: expected an architecture; got {cfg.spec!r}")
    if cfg.name is not None:
        check_run_name(cfg.name)
    if cfg.width is not None:
        _check_discr_steps(cfg)
    elif cfg.log_ntk_drift:
        raise UsageError("argument --log-ntk-drift: needs a finite discriminator (--width N)")
    return cfg


def _check_discr_steps(cfg: RunConfig) -> None:
    if math.isinf(cfg.time):
        raise UsageError("argument --time: a finite-width discriminator needs a finite time")
    if cfg.single_step:
        return
    ratio = cfg.time / cfg.discr_lr
    steps = round(ratio) if math.isfinite(ratio) else math.inf
    if not 1 <= steps <= MAX_DISCR_STEPS:
        raise UsageError(
            f"arguments --time/--discr-lr: the width-{cfg.width} discriminator would train "
            f"for round({cfg.time:g} / {cfg.discr_lr:g}) = {steps:g} SGD steps per generator "
            f"step; need 1 to {MAX_DISCR_STEPS} (or --single-step)")


def _spec(arch: str, depth: int | None, w_std: float | None, b_std: float | None,
          width: int | None) -> MLPSpec:
    for name, v in (("w_std", w_std), ("b_std", b_std)):
        if v is not None:
            _check_float(name, v, positive=False)
    if depth is not None and depth < 1:
        raise UsageError(f"argument --depth: expected a positive integer; got {depth!r}")
    try:
        return get_spec(arch, depth=depth, W_std=w_std, b_std=b_std, width=width)
    except ValueError as err:
        raise UsageError(f"argument --arch: {one_line(err)}") from None


def _parse_width(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "inf"):
        return None
    try:
        w = int(value)
    except (TypeError, ValueError):
        w = 0
    if w < 1:
        raise UsageError(f"argument --width: expected 'inf' or a positive integer; got {value!r}")
    return w


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Merge explicit options over the preset over the defaults, and validate.

    Raises:
        UsageError: with a one-line message naming the bad option and the valid values.
    """
    values: dict[str, Any] = {}
    if args.preset:
        values.update(_preset_values(args.preset))
    explicit = {k: v for k, v in vars(args).items() if v is not None and k in _FIELDS}
    values.update(explicit)
    if "width" in vars(args) and args.width is not None:
        values["width"] = _parse_width(args.width)
    if isinstance(values.get("metrics"), str):
        values["metrics"] = tuple(m for m in values["metrics"].split(",") if m)
    if "n_particles" not in values and str(values.get("data", "")).startswith("points:"):
        values["n_particles"] = None  # a points: file: all of its points by default
    arch = values.get("arch", RunConfig.arch)
    if arch not in ARCHS:
        _bad_choice("arch", arch, ARCHS)
    values["spec"] = _spec(arch, args.depth, args.w_std, args.b_std, values.get("width"))
    return validate_config(RunConfig(**values))


# --------------------------------------------------------------------------- JSON
def config_to_json(cfg: RunConfig) -> dict[str, Any]:
    """``cfg`` as strict-JSON values (``time`` ``inf`` → ``"inf"``, spec → a dict)."""
    out = dataclasses.asdict(cfg)
    out["spec"] = {k: v for k, v in dataclasses.asdict(cfg.spec).items() if k != "width"}
    out["spec"]["act_params"] = [list(p) for p in cfg.spec.act_params]
    out["metrics"] = list(cfg.metrics)
    if math.isinf(cfg.time):
        out["time"] = "inf"
    return out


def config_from_json(obj: Any, where: str) -> RunConfig:
    """Rebuild and validate a :class:`RunConfig` from :func:`config_to_json` output.

    Args:
        obj: the parsed ``config.json``.
        where: the file, for error messages.

    Raises:
        UsageError: one line if a setting is missing, unknown, of the wrong type or invalid.
    """
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: expected a JSON object of settings")
    unknown = sorted(set(obj) - set(_FIELDS))
    missing = sorted(set(_FIELDS) - set(obj))
    if unknown or missing:
        what = f"unknown setting {unknown[0]!r}" if unknown else f"missing {missing[0]!r}"
        raise UsageError(f"{where}: {what} (written by another gantk version or edited?)")
    values = dict(obj)
    if values["time"] == "inf":
        values["time"] = math.inf
    if isinstance(values["metrics"], list):
        values["metrics"] = tuple(values["metrics"])
    spec = values["spec"]
    try:
        spec = dict(spec, width=values["width"] or 512,
                    act_params=tuple(tuple(p) for p in spec.get("act_params", ())))
        values["spec"] = MLPSpec(**spec)
    except (TypeError, ValueError, AttributeError) as err:
        raise UsageError(f"{where}: invalid 'spec' ({one_line(err)})") from None
    try:
        return validate_config(RunConfig(**values))
    except UsageError as err:
        raise UsageError(f"{where}: {err}") from None


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The ``gantk.run`` argument parser (options left out default to None = preset/default)."""
    p = Parser(
        prog="python -m gantk.run",
        description="Flow particles along the gradient field of an NTK discriminator "
        "(GAN(TK)², Franceschi et al. ICML 2022) and write metrics, figures and a GIF. "
        "Exit status: 0 done, 1 diverged or failed mid-run, 2 bad argument, 130 interrupted.",
    )
    d = RunConfig()
    g = p.add_argument_group("problem")
    g.add_argument("--loss", choices=LOSSES, help=f"GAN loss (default {d.loss})")
    g.add_argument("--arch", "--kernel", dest="arch", choices=ARCHS,
                   help=f"discriminator architecture (default {d.arch}); its infinite-width "
                   "NTK (NNGP for rbf, as GAN(TK)²) is the kernel. --kernel is an alias")
    g.add_argument("--depth", type=int, help="number of hidden layers (default: the arch's)")
    g.add_argument("--w-std", type=float, dest="w_std", help="weight std W_std (default 1)")
    g.add_argument("--b-std", type=float, dest="b_std",
                   help="hidden bias std b_std (default: the arch's)")
    g.add_argument("--data", help=f"dataset: {', '.join(DATA_NAMES)}, image:PATH, "
                   f"image:P1,P2 or points:FILE.npz (arrays fake, real) (default {d.data})")
    g.add_argument("--preset", help="a GAN(TK)² config <loss>-<arch>-<data>, e.g. "
                   "inf_lsgan-relu-eight_gaussians; explicit options override it")
    s = p.add_argument_group("size and schedule")
    s.add_argument("--n-particles", type=int, dest="n_particles",
                   help=f"number of fake particles (default {d.n_particles}; all of a "
                   "points: file)")
    s.add_argument("--n-real", type=int, dest="n_real", help="number of real points "
                   "(default: as --n-particles, at most the dataset's)")
    s.add_argument("--steps", type=int, help=f"generator steps (default {d.steps})")
    s.add_argument("--eta", type=float, help="GAN(TK)² step on the mean generator loss; the "
                   f"per-particle step is eta/n (default {d.eta:g})")
    s.add_argument("--time", type=float, help="discriminator integration time tau (inf "
                   f"allowed for lsgan) (default {d.time:g})")
    f = p.add_argument_group("finite width and generators")
    f.add_argument("--width", help="'inf' (infinite-width NTK, default) or a finite width")
    f.add_argument("--discr-lr", type=float, dest="discr_lr",
                   help="finite discriminator SGD learning rate; it trains round(time / "
                   f"discr-lr) steps per generator step (default {d.discr_lr:g})")
    f.add_argument("--reset", action="store_const", const=True,
                   help="re-initialize the finite discriminator at every generator step")
    f.add_argument("--no-antisymmetric", action="store_const", const=False,
                   dest="antisymmetric", help="disable the antisymmetric wrapper (f_0 = 0)")
    f.add_argument("--single-step", action="store_const", const=True, dest="single_step",
                   help="GAN(TK)²'s single-step mode: one SGD step per generator step")
    f.add_argument("--generator", choices=GENERATORS,
                   help="train a parametric MLP generator instead of free particles")
    f.add_argument("--gen-lr", type=float, dest="gen_lr",
                   help=f"generator Adam learning rate (default {d.gen_lr:g})")
    f.add_argument("--latent-dim", type=int, dest="latent_dim",
                   help="generator latent size (default 2 for d <= 2, else 16)")
    f.add_argument("--log-ntk-drift", action="store_const", const=True, dest="log_ntk_drift",
                   help="with --width: log the relative motion of the discriminator's "
                   "empirical NTK since initialization, and its distance to the infinite-"
                   "width NTK, on 64 probe points (metrics.csv columns ntk_drift, "
                   "ntk_inf_distance)")
    o = p.add_argument_group("output and control")
    o.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    o.add_argument("--out", default="runs", help="output folder (default runs)")
    o.add_argument("--name", help="run folder name, one folder name (default derived from "
                   "the options)")
    o.add_argument("--log-every", type=int, dest="log_every",
                   help=f"steps between metrics/snapshots (default {d.log_every})")
    o.add_argument("--plot-every", type=int, dest="plot_every",
                   help="steps between step figures (default steps/4)")
    o.add_argument("--metrics", help=f"comma-separated subset of {','.join(METRICS)}")
    o.add_argument("--sinkhorn-every", type=int, dest="sinkhorn_every",
                   help="steps between (costly, converged) Sinkhorn evaluations "
                   "(default: as --plot-every)")
    o.add_argument("--sinkhorn-blur", type=float, dest="sinkhorn_blur",
                   help=f"Sinkhorn blur (eps = blur^2) (default {d.sinkhorn_blur:g})")
    o.add_argument("--x64", action="store_const", const=True, help="compute in float64")
    o.add_argument("--devices", type=int, help="shard particles over this many devices "
                   "(default: all local devices)")
    o.add_argument("--overwrite", action="store_true",
                   help="replace an existing run folder (only one gantk wrote)")
    o.add_argument("--resume", metavar="DIR", help="continue an interrupted run from DIR "
                   "(only --steps may change)")
    o.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    o.add_argument("--no-figures", action="store_true", help="skip figures and the GIF")
    return p
