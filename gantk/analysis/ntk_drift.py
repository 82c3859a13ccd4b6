"""NTK drift: how far a finite discriminator's tangent kernel moves while it trains.

The empirical NTK ``K_θ(x, y) = Σ_j ∂D(x)/∂θ_j · ∂D(y)/∂θ_j`` of a finite-width network
(:func:`gantk.empirical_ntk`) is constant in the infinite-width limit (Jacot et al., 2018;
Lee et al., 2019) — the regime in which Franceschi et al. (ICML 2022) analyse GANs. At finite
width it moves ("parametric kernel"); under the NTK parameterization the relative motion
``‖K_θ(t) − K_θ(0)‖_F / ‖K_θ(0)‖_F`` falls like ``1/√width`` (Lee et al., 2019, Thm. 2.1 and
their Fig. 1). This module measures it:

- :class:`NTKDriftLogger` — a small stateful logger to call between training chunks (this is
  what a ``--log-ntk-drift`` CLI flag plugs in): ``logger.log(params)`` returns the relative
  drift from initialization and, when an infinite-width kernel is given, the relative
  distance to it.
- :func:`relative_distance` — the Frobenius ratio itself (pure, jit-able).
- :func:`drift_vs_width` — the experiment: for each width, the discriminator of a
  ``gantk.run --width W`` particle flow (persistent discriminator, SGD, 8 Gaussians by
  default) is logged every chunk; :func:`fit_power_law` reads off the exponent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from gantk.analysis import _checks

__all__ = ["NTKDriftLogger", "drift_vs_width", "fit_power_law", "relative_distance"]

Params = Any


def relative_distance(K: Float[Array, "n n"], K_ref: Float[Array, "n n"]) -> Array:
    """``‖K − K_ref‖_F / ‖K_ref‖_F`` (a scalar array; pure, jit-able).

    Args:
        K: kernel matrix, shape ``(n, n)``.
        K_ref: reference kernel matrix of the same shape, not identically zero.

    Returns:
        The relative Frobenius distance (dimensionless).
    """
    return jnp.linalg.norm(K - K_ref) / jnp.linalg.norm(K_ref)


class NTKDriftLogger:
    """Log the motion of a finite network's empirical NTK on fixed probe points.

    Usage (e.g. from a :func:`gantk.flows.run_chunked` ``on_chunk`` callback)::

        logger = NTKDriftLogger(apply_fn, params0, probe_points, kernel_fn=spec.k())
        ...
        row = logger.log(state.disc_params)   # {'ntk_drift': ..., 'ntk_inf_distance': ...}

    Args:
        apply_fn: ``apply_fn(params, x) -> (n,)`` scalar-output network, e.g.
            ``gantk.nets.discriminator_apply(spec, antisymmetric=True)``.
        params0: parameters at initialization (the drift reference ``K_θ(0)``).
        probe_points: points ``(n, d)`` on which the kernel is compared (a few dozen to a few
            hundred; the cost is one ``(n, P)`` Jacobian per :meth:`log`).
        kernel_fn: optional infinite-width kernel ``k(x1, x2) -> (n1, n2)`` (e.g.
            ``MLPSpec.k()``); when given, :meth:`log` also reports the distance to it.
        implementation: forwarded to :func:`gantk.empirical_ntk` (``'jacobian'`` or
            ``'ntvp'``).

    Attributes:
        K0: the empirical NTK at ``params0`` on the probe points, ``(n, n)``.
        K_inf: the infinite-width kernel on the probe points, or None.
        history: the list of dicts returned by :meth:`log`, in call order.

    Raises:
        ValueError: if ``probe_points`` is not a finite ``(n, d)`` array with ``n >= 2``,
            ``apply_fn`` is not callable or ``kernel_fn`` is neither None nor callable,
            or ``K0`` (or ``K_inf``) is identically zero.
    """

    def __init__(
        self,
        apply_fn: Callable[[Params, Array], Array],
        params0: Params,
        probe_points: Float[Array, "n d"],
        kernel_fn: Callable[[Array, Array], Array] | None = None,
        *,
        implementation: str = "jacobian",
    ) -> None:
        from gantk.nets import empirical_ntk

        if not callable(apply_fn):
            raise ValueError(f"`apply_fn` must be callable; got {type(apply_fn).__name__}.")
        if kernel_fn is not None and not callable(kernel_fn):
            raise ValueError(f"`kernel_fn` must be None or callable; got {kernel_fn!r}.")
        probe = jnp.asarray(_checks.shape(probe_points, "probe_points", (None, None)))
        if probe.shape[0] < 2 or not bool(jnp.all(jnp.isfinite(probe))):
            raise ValueError(
                "`probe_points` must be a finite (n, d) array with n >= 2; got shape "
                f"{tuple(probe.shape)}."
            )
        self.probe_points = probe
        self._ntk = empirical_ntk(apply_fn, implementation)
        self.K0 = self.kernel(params0)
        if float(jnp.linalg.norm(self.K0)) == 0.0:
            raise ValueError("the empirical NTK at `params0` is identically zero on the probes.")
        self.K_inf = None
        if kernel_fn is not None:
            self.K_inf = jnp.asarray(kernel_fn(probe, probe), self.K0.dtype)
            if self.K_inf.shape != self.K0.shape:
                raise ValueError(
                    f"`kernel_fn(probe, probe)` must have shape {self.K0.shape}; got "
                    f"{self.K_inf.shape}."
                )
            if float(jnp.linalg.norm(self.K_inf)) == 0.0:
                raise ValueError("`kernel_fn` is identically zero on the probe points.")
        self.history: list[dict[str, float]] = []

    def kernel(self, params: Params) -> Float[Array, "n n"]:
        """The empirical NTK ``K_θ`` on the probe points, ``(n, n)``."""
        return self._ntk(self.probe_points, None, params)

    def log(self, params: Params) -> dict[str, float]:
        """Measure the kernel at ``params``; append the result to :attr:`history`.

        Returns:
            ``{'ntk_drift': ‖K_θ − K_θ(0)‖_F/‖K_θ(0)‖_F}``, plus
            ``'ntk_inf_distance': ‖K_θ − K_∞‖_F/‖K_∞‖_F`` when ``kernel_fn`` was given.
        """
        K = self.kernel(params)
        row = {"ntk_drift": float(relative_distance(K, self.K0))}
        if self.K_inf is not None:
            row["ntk_inf_distance"] = float(relative_distance(K, self.K_inf))
        self.history.append(row)
        return row


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of ``y ≈ c · x^p`` in log-log space; returns ``(p, c)``.

    Raises:
        ValueError: unless ``x`` and ``y`` are equally long (>= 2) positive sequences.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2 or np.any(x <= 0) or np.any(y <= 0):
        raise ValueError(
            f"`x` and `y` must be positive 1-D sequences of equal length >= 2; got shapes "
            f"{x.shape} and {y.shape}."
        )
    p, logc = np.polyfit(np.log(x), np.log(y), 1)
    return float(p), float(math.exp(logc))


def drift_vs_width(
    widths: Sequence[int],
    *,
    kernel: str = "relu",
    loss: str = "ipm",
    n_particles: int = 64,
    n_probe: int = 32,
    n_steps: int = 100,
    chunk_size: int = 20,
    eta: float = 100.0,
    time: float = 0.1,
    discr_lr: float = 0.01,
    depth: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[int, dict[str, np.ndarray]]:
    """NTK drift of the discriminator of ``gantk.run --width W`` particle flows, per width.

    For each width, runs :func:`gantk.flows.finite_width_step` exactly as ``gantk.run`` does
    (persistent antisymmetric discriminator, ``round(time/discr_lr)`` SGD steps per generator
    step, per-particle step ``eta/n``) on the 8-Gaussians data, and logs an
    :class:`NTKDriftLogger` (probe points: the initial fake and real points) after every
    chunk. The defaults are those of the ``ipm`` preset of ``gantk.run``.

    Args:
        widths: hidden widths, each >= 1.
        kernel: architecture name of :data:`gantk.architectures.KERNELS`.
        loss: loss name.
        n_particles: fake (= real) points.
        n_probe: probe points (half fake, half real initial points).
        n_steps: generator steps; ``chunk_size`` steps between two logs.
        eta: as the CLI flags ``--eta``, ``--time``, ``--discr-lr``.
        time: see ``eta``.
        discr_lr: see ``eta``.
        depth: hidden layers (None: the preset's).
        seed: data and initialization seed.
        progress: show the chunk progress bars.

    Returns:
        ``{width: {'step': (k,), 'ntk_drift': (k,), 'ntk_inf_distance': (k,)}}`` with the
        logs at steps ``0, chunk_size, 2·chunk_size, ...``.

    Raises:
        ValueError: on a width, ``n_particles``, ``n_probe``, ``n_steps`` or ``chunk_size``
            that is not a positive integer, or an unknown ``kernel``/``loss``.
    """
    from gantk import data, flows, nets
    from gantk.architectures import get_spec

    widths = [_checks.positive_int(w, "widths[i]") for w in widths]
    n_particles = _checks.positive_int(n_particles, "n_particles", low=2)
    n_probe = _checks.positive_int(n_probe, "n_probe", low=2)
    n_steps = _checks.positive_int(n_steps, "n_steps")
    chunk_size = _checks.positive_int(chunk_size, "chunk_size")
    fake0, real = data.load("eight_gaussians", n_fake=n_particles, n_real=n_particles, seed=seed,
                            dtype=jnp.result_type(float))
    half = n_probe // 2
    probe = jnp.concatenate([fake0[:half], real[: n_probe - half]])
    out: dict[int, dict[str, np.ndarray]] = {}
    key = jax.random.key(seed)
    for width in widths:
        spec = get_spec(kernel, depth=depth, width=width)
        params0 = nets.init_discriminator(jax.random.fold_in(key, 1), spec, fake0.shape[1])
        apply = nets.discriminator_apply(spec, antisymmetric=True)
        logger = NTKDriftLogger(apply, params0, probe, kernel_fn=spec.k())
        steps = [0]
        logger.log(params0)
        step = flows.finite_width_step(loss, spec, time, eta / n_particles, discr_lr)
        state = flows.FlowState(
            fake=fake0,
            step=jnp.asarray(0, jnp.int32),
            diverged_at=jnp.asarray(-1, jnp.int32),
            key=jax.random.fold_in(key, 2),
            disc_params=params0,
        )

        def on_chunk(st: Any, done: int, _: Array, logger=logger, steps=steps) -> None:
            logger.log(st.disc_params)
            steps.append(done)

        flows.run_chunked(step, state, real, n_steps, chunk_size=chunk_size,
                          on_chunk=on_chunk, progress=progress, desc=f"width {width}")
        out[width] = {
            "step": np.asarray(steps),
            **{k: np.asarray([r[k] for r in logger.history]) for k in logger.history[0]},
        }
    return out
