"""The shared ODE layer of the continuous-time latent models (SRVP, PDE-driven disentanglement).

One flax module, :class:`ODEBlock`, advances a latent state ``y`` over an interval ``delta``
with a learned vector field ``dy/dt = f_θ(y, cond)`` whose conditioning ``cond`` is held
constant within the interval (SRVP's ``z_t``; ``None`` for the PDE model's ``dT/dt = f_θ(T)``).

Usage::

    import functools
    from gantk.models.ode import ODEBlock, MLPField

    field = functools.partial(MLPField, hidden=512, n_layers=4, out_dim=20, gain=1.41)
    block = ODEBlock(field=field, method="euler", n_substeps=2)       # tied weights
    params = block.init(key, y, z)                                     # y: (..., ny)
    out = block.apply(params, y, z)                                    # ODEOutput
    out.y           # (..., ny)          state at the end of the interval
    out.increments  # (n, ..., ny)       each sub-step's Δt·f (for SRVP's L2 penalty)
    out.states(y)   # (n + 1, ..., ny)   y at every sub-step time, y itself first

- ``field`` is a factory (a flax module class or ``functools.partial`` of one) called with
  ``name=...`` only; each instance is called as ``field(y, cond) -> dy/dt`` with the shape of
  ``y`` (``cond`` is ``None`` when the block is called without it). Any flax module with that
  signature works.
- ``method``: ``"euler"`` (``y ← y + Δt·f(y)``, SRVP's residual step), ``"rk4"`` (classical
  Runge–Kutta) with step ``Δt = delta / n_substeps``, or ``"diffrax"`` (the same field
  integrated by any :mod:`diffrax` solver, ``solver="Tsit5"`` by default, adaptive steps with
  ``rtol``/``atol``; its ``increments`` are the state differences between ``n_substeps``
  equally spaced save points).
- ``tied=True`` (default) shares one field across all sub-steps (and the sub-step count may then
  change at call time: ``block.apply(params, y, z, n_substeps=4)`` generates at another frame
  rate); ``tied=False`` creates ``n_substeps`` distinct fields named ``field_0 … field_{n-1}``
  (the PDE model's residual blocks ``T ← T + MLP_k(T)``, Euler with ``delta = n_substeps``
  gives exactly Δt = 1 per block).
- Everything is jit/vmap/grad friendly; tied Euler and RK4 sub-steps run in a ``lax.scan``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["METHODS", "MLPField", "ODEBlock", "ODEOutput", "validate_steps"]

METHODS = ("euler", "rk4", "diffrax")


class ODEOutput(NamedTuple):
    """Result of one :class:`ODEBlock` interval.

    Attributes:
        y: state at the end of the interval, shape of the input ``y``.
        increments: ``(n_substeps, *y.shape)``: each sub-step's increment ``y_{k+1} − y_k``
            (``Δt·f(y_k)`` for Euler, the RK4 weighted average times ``Δt`` for RK4).
    """

    y: Array
    increments: Array

    def states(self, y0: Array) -> Array:
        """States at every sub-step time ``(n_substeps + 1, *y0.shape)``, ``y0`` first."""
        return jnp.concatenate([y0[None], y0[None] + jnp.cumsum(self.increments, axis=0)])


def validate_steps(delta: Any, n_substeps: Any) -> None:
    """Check ``delta > 0`` (when concrete) and ``n_substeps`` a positive integer.

    Raises:
        ValueError: naming the bad argument and its value.
    """
    if isinstance(n_substeps, bool) or not isinstance(n_substeps, int) or n_substeps < 1:
        raise ValueError(f"`n_substeps` must be a positive integer; got {n_substeps!r}.")
    try:
        d = float(delta)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return  # traced: cannot check
    if not (math.isfinite(d) and d > 0):
        raise ValueError(f"`delta` (the interval Δ) must be a finite positive number; "
                         f"got {delta!r}.")


class MLPField(nn.Module):
    """Vector field ``f(y, cond) = MLP([y, cond])``: SRVP's residual MLP / the PDE model's block.

    ``n_layers`` linear layers (``n_layers − 1`` hidden of width ``hidden``, ReLU between them,
    as ``module/mlp.py`` of the SRVP code), orthogonal weight init with gain ``gain`` and zero
    biases (SRVP: gain 1.41).

    Attributes:
        hidden: hidden width.
        n_layers: number of linear layers (≥ 1).
        out_dim: output size; ``None`` means the size of ``y``.
        gain: orthogonal initialization gain.
    """

    hidden: int = 512
    n_layers: int = 4
    out_dim: int | None = None
    gain: float = 1.41

    @nn.compact
    def __call__(self, y: Float[Array, "... ny"], cond: Array | None = None) -> Array:
        """Evaluate ``f`` on ``y`` (``(..., ny)``) and optional ``cond`` (``(..., nc)``)."""
        h = y if cond is None else jnp.concatenate([y, cond], axis=-1)
        out = self.out_dim or y.shape[-1]
        init = nn.initializers.orthogonal(self.gain)
        for i in range(self.n_layers):
            if i > 0:
                h = nn.relu(h)
            h = nn.Dense(out if i == self.n_layers - 1 else self.hidden, kernel_init=init,
                         dtype=y.dtype, param_dtype=y.dtype, name=f"dense_{i}")(h)
        return h


def _rk4_increment(f: Callable[[Array], Array], y: Array, h: Any) -> Array:
    k1 = f(y)
    k2 = f(y + 0.5 * h * k1)
    k3 = f(y + 0.5 * h * k2)
    k4 = f(y + h * k3)
    return h * (k1 + 2 * k2 + 2 * k3 + k4) / 6


class ODEBlock(nn.Module):
    """Advance ``y`` over ``delta`` with the learned field ``f_θ(y, cond)`` (module docstring).

    Attributes:
        field: factory of the field module (called with ``name=`` only); instances are
            called ``field(y, cond)``.
        method: ``"euler"``, ``"rk4"`` or ``"diffrax"``.
        n_substeps: sub-steps per interval (step ``delta / n_substeps``); for ``diffrax``, the
            number of equally spaced save points whose differences are the increments.
        tied: share the field's weights across sub-steps (default) or use distinct fields.
        delta: default interval length Δ (1 = one frame).
        solver: diffrax solver class name (``method="diffrax"``), e.g. ``"Tsit5"``, ``"Dopri5"``.
        rtol: diffrax adaptive step-size tolerances.
        atol: see ``rtol``.
        max_steps: diffrax step budget per interval.
    """

    field: Callable[[], nn.Module]
    method: str = "euler"
    n_substeps: int = 1
    tied: bool = True
    delta: float = 1.0
    solver: str = "Tsit5"
    rtol: float = 1e-6
    atol: float = 1e-6
    max_steps: int = 4096

    def setup(self) -> None:
        """Validate the attributes and create the field(s)."""
        if self.method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}; got {self.method!r}.")
        validate_steps(self.delta, self.n_substeps)
        if self.tied:
            self.fields = [self.field(name="field")]
        else:
            if self.method == "diffrax":
                raise ValueError("`tied=False` needs method 'euler' or 'rk4' (distinct fields "
                                 "per sub-step have no meaning for an adaptive solver).")
            self.fields = [self.field(name=f"field_{i}") for i in range(self.n_substeps)]

    def __call__(self, y: Float[Array, "..."], cond: Array | None = None, *,
                 delta: Any = None, n_substeps: int | None = None) -> ODEOutput:
        """Integrate over one interval.

        Args:
            y: state, any shape the field accepts (usually ``(batch, ny)``).
            cond: conditioning held constant over the interval, or ``None``.
            delta: interval length (default the attribute ``delta``); may be traced.
            n_substeps: override the sub-step count (tied fields only), e.g. 2× at test
                time to generate at twice the frame rate.

        Returns:
            :class:`ODEOutput` with the final state and the ``(n, *y.shape)`` increments.

        Raises:
            ValueError: non-positive ``delta`` or ``n_substeps``, or a changed sub-step count
                with untied fields.
        """
        delta = self.delta if delta is None else delta
        n = self.n_substeps if n_substeps is None else n_substeps
        validate_steps(delta, n)
        if not self.tied and n != self.n_substeps:
            raise ValueError(f"`n_substeps`={n} differs from the {self.n_substeps} distinct "
                             "fields of an untied block; only tied blocks can change it.")
        h = jnp.asarray(delta, y.dtype) / n

        if not self.tied:
            incs = []
            for fld in self.fields:
                def f(v: Array, fld: nn.Module = fld) -> Array:
                    return fld(v, cond)
                inc = h * f(y) if self.method == "euler" else _rk4_increment(f, y, h)
                y = y + inc
                incs.append(inc)
            return ODEOutput(y, jnp.stack(incs))

        fld = self.fields[0]
        if self.is_initializing():
            fld(y, cond)  # create the parameters
        module, variables = fld.unbind()

        def f(v: Array) -> Array:
            return module.apply(variables, v, cond)

        if self.method == "diffrax":
            return self._diffrax(f, y, jnp.asarray(delta, y.dtype), n)

        def body(v: Array, _: Any) -> tuple[Array, Array]:
            inc = h * f(v) if self.method == "euler" else _rk4_increment(f, v, h)
            return v + inc, inc

        y_end, incs = jax.lax.scan(body, y, None, length=n)
        return ODEOutput(y_end, incs)

    def _diffrax(self, f: Callable[[Array], Array], y: Array, delta: Array, n: int) -> ODEOutput:
        import diffrax

        solver_cls = getattr(diffrax, self.solver, None)
        if solver_cls is None or not isinstance(solver_cls, type):
            raise ValueError(f"`solver` must name a diffrax solver class (e.g. 'Tsit5', "
                             f"'Dopri5', 'Heun'); got {self.solver!r}.")
        solver = solver_cls()
        ts = jnp.linspace(0.0, 1.0, n + 1, dtype=y.dtype) * delta
        adaptive = isinstance(solver, diffrax.AbstractAdaptiveSolver)
        controller = (diffrax.PIDController(rtol=self.rtol, atol=self.atol) if adaptive
                      else diffrax.ConstantStepSize())
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, v, args: f(v)), solver, t0=ts[0], t1=ts[-1],
            dt0=delta / n, y0=y, saveat=diffrax.SaveAt(ts=ts), stepsize_controller=controller,
            max_steps=self.max_steps,
        )
        states = sol.ys
        return ODEOutput(states[-1], states[1:] - states[:-1])
