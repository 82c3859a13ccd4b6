"""The one diffrax call of :mod:`gantk.analysis`: an autonomous ODE saved at given times."""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def check_times(ts: ArrayLike, dtype: jnp.dtype) -> Array:
    """``ts`` as a strictly increasing 1-D array of at least two times, else a ValueError."""
    ts = jnp.asarray(ts, dtype)
    if ts.ndim != 1 or ts.shape[0] < 2 or bool(jnp.any(jnp.diff(ts) <= 0)):
        raise ValueError(f"`ts` must be a strictly increasing 1-D array of >= 2 times; got {ts}.")
    return ts


def max_norm(y: Array) -> Array:
    """``max |y_i|``: the error norm under which each component must meet the tolerances."""
    return jnp.max(jnp.abs(y))


def solve(
    field: Callable[[Array], Array],
    y0: Array,
    ts: ArrayLike,
    *,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    norm: Callable[[Array], Array] | None = None,
) -> Float[Array, "k ..."]:
    """Solve ``ẏ = field(y)`` from ``y(ts[0]) = y0`` with Tsit5 and a PID controller.

    ``norm`` is the controller's error norm (default: diffrax's RMS norm); :func:`max_norm`
    makes every component meet ``rtol``/``atol`` on its own, as needed when ``y`` stacks
    several independent systems solved together (one compilation instead of one each).

    Returns:
        ``y(ts)``, shape ``(len(ts), *y0.shape)``.

    Raises:
        ValueError: if ``ts`` is not strictly increasing with at least two entries.
    """
    ts = check_times(ts, y0.dtype)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: field(y)),
        diffrax.Tsit5(),
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=y0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(
            rtol=rtol, atol=atol, **({} if norm is None else {"norm": norm})
        ),
        max_steps=max_steps,
    )
    return sol.ys
