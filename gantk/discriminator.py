r"""The discriminator of an infinite-width (NTK-regime) GAN, in function space.

Franceschi et al., *A Neural Tangent Kernel Perspective of GANs* (ICML 2022), Section 4:
trained by gradient flow in the NTK regime, the discriminator ``f`` evolves on the train set
``T = X ∪ Y`` (fake particles first, then real points) as

.. math:: \partial_t f_t(z) = -\sum_{z' \in T} k(z, z')\, \partial L / \partial f(z'),
          \qquad L(f) = \tfrac1n \sum_{x} a(f(x)) + \tfrac1m \sum_y b(f(y)),

and everywhere else as ``f_t(x) = f_0(x) + k(x, T) alpha_t`` with
``alpha_t = -\int_0^t \nabla_f L(f_s(T)) ds`` (eq. (6) of the paper). :func:`discriminator`
solves for ``alpha = alpha_tau`` and returns a :class:`Discriminator`: a pytree that evaluates
``f_tau`` and the generator's particle velocity ``v(x) = -\nabla_x c(f_tau(x))``.

Solvers (``solver=``):

- ``'closed_form'`` (IPM): ``alpha = tau * (-1/n on fake, +1/m on real)``: ``f_tau`` is
  ``tau`` times the (unnormalised) MMD witness function.
- ``'eigh'`` (LSGAN-type ``a = (f - u)^2``, ``b = (f - v)^2``): with
  ``W = diag(1/n on fake, 1/m on real)`` and ``A = W^{1/2} K W^{1/2}``,
  ``alpha = -W^{1/2} phi(A) W^{1/2} (f_0(T) - y_T)``, ``phi(l) = (1 - e^{-2 l tau}) / l``,
  ``y_T = u`` on fake, ``v`` on real. ``tau = inf`` uses ``phi(l) = 1/l`` (pseudo-inverse).
- ``'krylov'``: the same ``alpha`` by Lanczos (finite ``tau``) or conjugate gradient
  (``tau = inf``), with matrix-vector products through the kernel; for large train sets.
- ``'ode'``: any loss; integrates ``d alpha / dt = -\nabla_f L(f_0(T) + K alpha)`` with
  diffrax.

``'auto'`` picks ``closed_form`` for IPM losses, ``eigh`` for linear losses with
``n + m <= EIGH_MAX`` (512) and ``krylov`` above (falling back to ``eigh`` on the dense Gram
matrix if Krylov misses its tolerance), and ``ode`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from gantk import _linalg
from gantk import losses as _losses
from gantk._validate import (
    as_points,
    check_choice,
    check_nonneg,
    check_positive,
    is_concrete,
)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "EIGH_MAX",
    "MATERIALIZE_MAX",
    "SOLVERS",
    "ConvergenceError",
    "Discriminator",
    "discriminator",
]

#: Valid values of ``solver``.
SOLVERS = ("auto", "closed_form", "eigh", "krylov", "ode")
#: ``solver='auto'`` uses ``eigh`` for linear (LSGAN) losses up to this many train points
#: ``N = n + m`` and ``krylov`` above (measured on CPU, float32, ReLU NTK, tau = 1: krylov
#: is 3-20x faster from N = 500 on; see ``benchmarks/krylov.py``).
EIGH_MAX = 512
#: Krylov/ODE solvers store the dense ``(N, N)`` train Gram matrix up to this ``N = n + m``
#: (``materialize=None``); above it, each matrix-vector product re-evaluates kernel tiles.
MATERIALIZE_MAX = 16384
#: Default tile side for kernel evaluations against the train set.
DEFAULT_BLOCK_SIZE = 1024


class ConvergenceError(RuntimeError):
    """An iterative discriminator solver (ODE, Lanczos, CG) did not reach its tolerance."""


class Discriminator(eqx.Module):
    """A trained infinite-width discriminator ``f_tau(x) = f_0(x) + k(x, T) @ alpha``.

    Build it with :func:`discriminator`. It is a pytree (an :class:`equinox.Module`): the
    arrays ``fake``, ``real``, ``alpha``, ``time`` and ``info`` are leaves; ``loss``,
    ``kernel``, ``f0``, ``solver``, ``block_size`` and ``differentiate_train`` are static.
    It can be passed to and returned from ``jax.jit``-ed functions.

    Attributes:
        fake: fake particles ``X``, shape ``(n, d)``.
        real: real points ``Y``, shape ``(m, d)``.
        alpha: coefficients over the train set ``T = [fake; real]``, shape ``(n + m,)``.
        time: the discriminator's training time ``tau`` (scalar; may be ``inf``).
        info: solver diagnostics, a dict of arrays: empty for ``closed_form``/``eigh``;
            ``num_steps``, ``converged`` for ``ode``; ``iterations``, ``residual`` (relative
            error estimate), ``converged`` (and ``exhausted`` for Lanczos, ``fallback``
            under ``solver='auto'``) for ``krylov``.
        loss: the :class:`gantk.losses.Loss`.
        kernel: ``k(x1, x2) -> (n1, n2)``.
        f0: initial discriminator ``f0(points) -> (q,)``, or None for ``f_0 = 0``.
        solver: the solver actually used (``'closed_form'``, ``'eigh'``, ``'krylov'``,
            ``'ode'``).
        block_size: tile side of kernel evaluations against the train set.
        differentiate_train: whether gradients flow through the train set (see
            :func:`discriminator`).
    """

    fake: Float[Array, "n d"]
    real: Float[Array, "m d"]
    alpha: Float[Array, " N"]
    time: Float[Array, ""]
    info: dict[str, Array]
    loss: _losses.Loss = eqx.field(static=True)
    kernel: Callable = eqx.field(static=True)
    f0: Callable | None = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    block_size: int = eqx.field(static=True)
    differentiate_train: bool = eqx.field(static=True)

    @property
    def train(self) -> Float[Array, "N d"]:
        """The train set ``T = [fake; real]``, shape ``(n + m, d)``."""
        return jnp.concatenate([self.fake, self.real], axis=0)

    def _coef(self) -> tuple[jax.Array, jax.Array]:
        train, alpha = self.train, self.alpha
        if not self.differentiate_train:
            train, alpha = jax.lax.stop_gradient(train), jax.lax.stop_gradient(alpha)
        return train, alpha

    def _points(self, points: Any) -> jax.Array:
        with jax.ensure_compile_time_eval():
            return as_points(points, "points", dim=self.fake.shape[1], dim_name="fake")

    def __call__(self, points: Float[Array, "q d"]) -> Float[Array, " q"]:
        """Evaluate ``f_tau(points) = f_0(points) + k(points, T) @ alpha``, shape ``(q,)``.

        The kernel is evaluated in ``block_size x block_size`` tiles. Unless
        ``differentiate_train``, the train set and ``alpha`` are constants for autodiff.

        Raises:
            ValueError: if ``points`` is not ``(q, d)`` with the train set's ``d`` or has
                non-finite entries.
        """
        points = self._points(points)
        train, alpha = self._coef()
        out = _tiled(_linalg.kernel_apply, self.kernel, points, train, alpha, self.block_size)
        if self.f0 is not None:
            out = out + self.f0(points)
        return out

    def value_and_gradient(
        self, points: Float[Array, "q d"]
    ) -> tuple[Float[Array, " q"], Float[Array, "q d"]]:
        """``f_tau(points)`` and ``grad_x f_tau(x)`` at ``points`` (train set held fixed).

        Only the first argument of ``k(x, T)`` and of ``f_0`` is differentiated, tile by
        tile (a VJP of each kernel block against ``alpha``).

        Returns:
            ``(values (q,), gradients (q, d))``.

        Raises:
            ValueError: on invalid ``points`` (see :meth:`__call__`).
        """
        points = self._points(points)
        train = jax.lax.stop_gradient(self.train)
        alpha = jax.lax.stop_gradient(self.alpha)
        val, grad = _tiled(
            _linalg.kernel_apply_and_grad, self.kernel, points, train, alpha, self.block_size
        )
        if self.f0 is not None:
            v0, vjp = jax.vjp(self.f0, points)
            (g0,) = vjp(jnp.ones_like(v0))
            val, grad = val + v0, grad + g0
        return val, grad

    def generator_loss(self, points: Float[Array, "q d"]) -> Float[Array, " q"]:
        """Per-particle generator loss ``c(f_tau(points))``, shape ``(q,)``.

        Raises:
            ValueError: on invalid ``points`` (see :meth:`__call__`).
        """
        return self.loss.c(self(points))

    def value_and_velocity(
        self, points: Float[Array, "q d"]
    ) -> tuple[Float[Array, " q"], Float[Array, "q d"]]:
        """Generator loss ``c(f_tau(points))`` (q,) and velocity (q, d), in one kernel pass.

        Raises:
            ValueError: on invalid ``points`` (see :meth:`__call__`).
        """
        val, grad = self.value_and_gradient(points)
        c, vjp = jax.vjp(self.loss.c, val)
        (dc,) = vjp(jnp.ones_like(val))
        return c, -dc[:, None] * grad

    def velocity(self, points: Float[Array, "q d"]) -> Float[Array, "q d"]:
        """Particle velocity ``v(x) = -grad_x c(f_tau(x)) = -c'(f_tau(x)) grad_x f_tau(x)``.

        The train set is held fixed (GAN(TK)²'s stop-gradient convention): particles move
        by ``x <- x + step * v(x)``. GAN(TK)²'s ``eta`` is a step on the *mean* generator
        loss, so its per-particle step is ``eta / n``.

        Returns:
            ``(q, d)``.

        Raises:
            ValueError: on invalid ``points`` (see :meth:`__call__`).
        """
        return self.value_and_velocity(points)[1]


_TILED_JIT = {
    fn: jax.jit(fn, static_argnums=(0, 4))
    for fn in (_linalg.kernel_apply, _linalg.kernel_apply_and_grad)
}


def _tiled(fn, kernel, points, train, alpha, block):
    """Run a tiled kernel evaluation jitted (static kernel), op by op if it is unhashable."""
    try:
        hash(kernel)
    except TypeError:
        return fn(kernel, points, train, alpha, block)
    return _TILED_JIT[fn](kernel, points, train, alpha, block)


# --------------------------------------------------------------------------------------
# Construction.
# --------------------------------------------------------------------------------------


def _check_time(time: Any, kind: str) -> tuple[jax.Array | float, bool]:
    """Validate ``time``; return it and whether it is (concretely) infinite."""
    if not is_concrete(time):
        return time, False
    try:
        arr = time if isinstance(time, jax.Array) else np.asarray(time, dtype=float)
        if arr.shape != ():
            raise ValueError
        v = float(arr)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`time` must be a positive real scalar; got {time!r}.") from err
    if math.isnan(v) or v <= 0:
        raise ValueError(f"`time` must be positive (tau > 0); got {v}.")
    if math.isinf(v) and kind != "linear":
        raise ValueError(
            "`time` = inf is only allowed for linear (LSGAN-type) losses, whose discriminator "
            f"converges; got inf with a {kind!r} loss."
        )
    return time, math.isinf(v)


def _resolve_solver(
    solver: str, loss: _losses.Loss, n_train: int, infinite: bool, differentiate: bool
) -> str:
    check_choice(solver, "solver", SOLVERS)
    if solver == "auto":
        if loss.kind == "ipm":
            return "closed_form"
        if loss.kind == "linear":
            return "eigh" if n_train <= EIGH_MAX or differentiate else "krylov"
        return "ode"
    valid = {
        "closed_form": ("ipm",),
        "eigh": ("linear",),
        "krylov": ("linear",),
        "ode": ("ipm", "linear", "nonlinear"),
    }[solver]
    if loss.kind not in valid:
        raise ValueError(
            f"`solver`={solver!r} needs a loss of kind {' or '.join(valid)}; loss "
            f"{loss.name!r} has kind {loss.kind!r}. Use solver='auto' or 'ode'."
        )
    if infinite and solver == "ode":
        raise ValueError("`time` = inf needs solver 'eigh' or 'krylov', not 'ode'.")
    return solver


def _raise_if_failed(x: jax.Array, info: dict, message: str) -> jax.Array:
    """Raise :class:`ConvergenceError` (eagerly) or an equinox runtime error (under jit)."""
    converged = info["converged"]
    if is_concrete(converged):
        if not bool(jnp.all(converged)):
            details = ", ".join(
                f"{k}={float(jnp.max(v)):.3g}" for k, v in info.items() if k != "converged"
            )
            raise ConvergenceError(f"{message} ({details}).")
        return x
    return eqx.error_if(x, ~converged, message)


def discriminator(
    loss: str | _losses.Loss,
    kernel: Callable[[Array, Array], Array],
    fake: Float[Array, "n d"],
    real: Float[Array, "m d"],
    time: float | Array,
    *,
    f0: Callable[[Array], Array] | None = None,
    solver: str = "auto",
    diag_reg: float = 0.0,
    rcond: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int | None = None,
    ode_solver: Any = None,
    dt0: float | None = None,
    block_size: int | str = "auto",
    materialize: bool | None = None,
    differentiate_train: bool = False,
    throw: bool = True,
) -> Discriminator:
    r"""Train the infinite-width discriminator for time ``tau`` on fake vs real points.

    Solves the NTK-regime discriminator dynamics of Franceschi et al. (ICML 2022, eq. (6))
    with ``f_0`` the initial discriminator: on ``T = [fake; real]``,
    ``d f_t(T)/dt = -K \nabla_f L(f_t(T))``, ``L(f) = mean a(f(fake)) + mean b(f(real))``,
    and ``f_tau(x) = f_0(x) + k(x, T) alpha`` with ``alpha = -\int_0^tau \nabla_f L dt``.
    See the module docstring and ``docs/concepts/solvers.md`` for the solvers' formulas.

    Args:
        loss: a loss name of :mod:`gantk.losses`, a :class:`gantk.losses.Loss` or a triple
            ``(a, b, c)`` of elementwise functions.
        kernel: ``k(x1, x2) -> (n1, n2)``, e.g. ``gantk.stax.ntk(kernel_fn)``, an NNGP or
            an RBF. Must be symmetric (``k(x, y) = k(y, x)``) and positive semi-definite.
        fake: fake particles ``X``, shape ``(n, d)``.
        real: real points ``Y``, shape ``(m, d)``.
        time: training time ``tau > 0``; ``float('inf')`` is allowed for linear losses
            (``eigh``/``krylov``) and gives the converged discriminator.
        f0: initial discriminator ``f0(points (q, d)) -> (q,)``, or None for ``f_0 = 0``.
        solver: ``'auto'``, ``'closed_form'`` (IPM), ``'eigh'`` / ``'krylov'`` (linear
            losses) or ``'ode'`` (any loss). ``'auto'``: closed form for IPM, ``eigh`` for
            linear losses with ``n + m <= EIGH_MAX`` (512) or ``differentiate_train``,
            ``krylov`` above (falling back to ``eigh`` if it misses ``rtol`` while the
            Gram matrix is materialized; ``D.info['fallback']`` tells), else ``ode``.
        diag_reg: ``eigh``/``krylov`` only: trains with ``K + diag_reg * (tr K / N) I``
            (neural-tangents' convention) instead of ``K``.
        rcond: ``eigh`` with ``tau = inf``: eigenvalues of ``A`` below
            ``rcond * max|eig|`` are treated as 0 (default ``N * eps``).
        rtol: relative tolerance of ``krylov`` (default ``1e-8`` in float64, ``1e-5`` in
            float32) and ``ode`` (default ``1e-8`` in float64, ``1e-6`` for non-smooth
            losses such as hinge, ``1e-5`` in float32).
        atol: absolute tolerance of ``ode`` on the rescaled state ``alpha / (tau w)``, which
            is ``O(1)`` (default: ``rtol``).
        max_steps: iteration budget: ODE steps (default 16384, ``2**18`` for non-smooth
            losses) or Krylov dimension / CG iterations (default ``min(N, 512)`` / ``10 N``).
        ode_solver: a diffrax solver for ``'ode'`` (default ``diffrax.Tsit5()`` with a PID
            step-size controller). A non-adaptive solver (e.g. ``diffrax.Euler()``) runs
            with the constant step ``dt0``.
        dt0: ``ode``: initial step (adaptive solvers; default: automatic) or constant step
            (non-adaptive solvers; required), in units of ``t`` (``0 <= t <= tau``).
        block_size: tile side of kernel evaluations against the train set, an int ``>= 1``
            or ``'auto'`` (``DEFAULT_BLOCK_SIZE`` = 1024).
        materialize: ``krylov``/``ode``: store the dense ``(N, N)`` Gram matrix (True) or
            re-evaluate kernel tiles at every matrix-vector product (False, memory
            ``O(N d + block^2)``). None: dense iff ``N <= MATERIALIZE_MAX`` (16384).
        differentiate_train: if False (default, GAN(TK)²'s convention), ``fake``, ``real``
            and ``alpha`` are constants for autodiff: gradients of ``D(x)`` flow only
            through ``x``. If True, gradients also flow through the solve (``closed_form``,
            ``eigh`` via a divided-difference JVP, ``ode`` via diffrax); not for ``krylov``.
        throw: raise :class:`ConvergenceError` (eagerly; an equinox runtime error under
            ``jit``) when an iterative solver misses its tolerance. If False, check
            ``D.info['converged']`` yourself.

    Returns:
        The :class:`Discriminator` ``D``: ``D(x)`` gives ``f_tau(x)``, ``D.velocity(x)``
        the particle velocity ``-grad_x c(f_tau(x))``.

    Raises:
        ValueError: on an unknown loss or solver, a solver that does not fit the loss,
            ``fake``/``real`` not of rank 2 or with different ``d`` or non-finite entries,
            ``time`` not positive (or infinite for a non-linear loss), a non-callable
            ``kernel``/``f0``, ``block_size < 1``, a negative ``diag_reg`` (or a nonzero one
            outside ``eigh``/``krylov``), or ``differentiate_train`` with ``krylov``.
        ConvergenceError: (``throw=True``) if the ODE hits ``max_steps`` or Krylov/CG does
            not reach ``rtol``.
    """
    loss = _losses.get(loss)
    if not callable(kernel):
        raise ValueError(f"`kernel` must be a callable k(x1, x2) -> (n1, n2); got {kernel!r}.")
    if f0 is not None and not callable(f0):
        raise ValueError(f"`f0` must be None or a callable f0(points) -> (q,); got {f0!r}.")
    with jax.ensure_compile_time_eval():  # check concrete closed-over arrays under jit too
        fake = as_points(fake, "fake")
        real = as_points(real, "real", dim=fake.shape[1], dim_name="fake")
    dtype = jnp.result_type(fake, real)
    fake, real = fake.astype(dtype), real.astype(dtype)
    n, m = fake.shape[0], real.shape[0]
    time, infinite = _check_time(time, loss.kind)
    auto = solver == "auto"
    solver = _resolve_solver(solver, loss, n + m, infinite, bool(differentiate_train))
    if block_size == "auto":
        block_size = DEFAULT_BLOCK_SIZE
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"`block_size` must be an integer >= 1 or 'auto'; got {block_size!r}.")
    check_nonneg(diag_reg, "diag_reg")
    if solver not in ("eigh", "krylov") and is_concrete(diag_reg) and float(diag_reg) != 0.0:
        raise ValueError(f"`diag_reg` is only used by solvers 'eigh'/'krylov'; got {solver!r}.")
    if differentiate_train and solver == "krylov":
        raise ValueError("`differentiate_train=True` is not supported with solver='krylov'.")
    if max_steps is not None and (isinstance(max_steps, bool) or int(max_steps) < 1):
        raise ValueError(f"`max_steps` must be a positive integer; got {max_steps!r}.")
    for name, tol in (("rtol", rtol), ("atol", atol), ("rcond", rcond)):
        if tol is not None:
            check_nonneg(tol, name)
    f32 = jnp.finfo(dtype).bits <= 32
    if rtol is None:
        rtol = 1e-5 if f32 else (1e-6 if solver == "ode" and not loss.smooth else 1e-8)
    if dt0 is not None:
        dt0 = float(check_positive(dt0, "dt0"))
    if atol is None:
        atol = rtol
    if materialize is None:
        materialize = n + m <= MATERIALIZE_MAX

    if not differentiate_train:
        fake, real = jax.lax.stop_gradient(fake), jax.lax.stop_gradient(real)
    time = jnp.asarray(time, dtype)
    if rcond is None:
        rcond = (n + m) * float(jnp.finfo(dtype).eps)
    static = dict(
        loss=loss, kernel=kernel, f0=f0, solver=solver, infinite=infinite, rtol=float(rtol),
        atol=float(atol), max_steps=None if max_steps is None else int(max_steps),
        ode_solver=ode_solver, dt0=dt0, block=block_size, materialize=bool(materialize),
        differentiate_train=bool(differentiate_train),
        fallback=auto and solver == "krylov" and bool(materialize),
    )  # fmt: skip
    try:
        hash(tuple(static.values()))
        fit = _fit_jit
    except TypeError:  # e.g. an unhashable kernel object: run op by op
        fit = _fit
    alpha, info = fit(fake, real, time, jnp.asarray(diag_reg, dtype), rcond, **static)
    alpha = alpha.astype(dtype)
    if throw and "converged" in info:
        alpha = _raise_if_failed(alpha, info, _failure_message(**static))
    return Discriminator(
        fake=fake,
        real=real,
        alpha=alpha,
        time=time,
        info=info,
        loss=loss,
        kernel=kernel,
        f0=f0,
        solver=solver,
        block_size=block_size,
        differentiate_train=bool(differentiate_train),
    )


def _fit(
    fake, real, time, diag_reg, rcond, *, loss, kernel, f0, solver, infinite, rtol, atol,
    max_steps, ode_solver, dt0, block, materialize, differentiate_train, fallback,
):  # fmt: skip
    """Solve for ``alpha`` (jitted with the keyword arguments static). Returns (alpha, info)."""
    n, m = fake.shape[0], real.shape[0]
    dtype = fake.dtype
    train = jnp.concatenate([fake, real], axis=0)
    weights = jnp.concatenate([jnp.full(n, 1.0 / n, dtype), jnp.full(m, 1.0 / m, dtype)])
    if solver == "closed_form":
        # ipm-type: a' and b' are constants, alpha = -tau * (a'/n on fake, b'/m on real).
        da = jax.grad(loss.a)(jnp.asarray(0.0, dtype))
        db = jax.grad(loss.b)(jnp.asarray(0.0, dtype))
        alpha = -time * weights * jnp.concatenate([jnp.full(n, da), jnp.full(m, db)])
        return alpha, {}
    f0_train = jnp.zeros(n + m, dtype) if f0 is None else f0(train).astype(dtype)
    if not differentiate_train:
        f0_train = jax.lax.stop_gradient(f0_train)
    if solver in ("eigh", "krylov"):
        u, v = loss.targets
        y = jnp.concatenate([jnp.full(n, u, dtype), jnp.full(m, v, dtype)])
        return _solve_linear(
            solver, kernel, train, weights, y - f0_train, time, infinite, diag_reg=diag_reg,
            rcond=rcond, rtol=rtol, max_steps=max_steps, block=block, materialize=materialize,
            fallback=fallback,
        )  # fmt: skip
    return _solve_ode(
        loss, kernel, train, weights, f0_train, time, n, rtol=rtol, atol=atol,
        max_steps=max_steps, ode_solver=ode_solver, dt0=dt0, block=block,
        materialize=materialize,
    )  # fmt: skip


_FIT_STATIC = (
    "loss", "kernel", "f0", "solver", "infinite", "rtol", "atol", "max_steps", "ode_solver",
    "dt0", "block", "materialize", "differentiate_train", "fallback",
)  # fmt: skip
_fit_jit = jax.jit(_fit, static_argnames=_FIT_STATIC)


def _failure_message(*, loss, solver, infinite, rtol, atol, max_steps, **_):
    if solver == "ode":
        steps = max_steps if max_steps is not None else (16384 if loss.smooth else 2**18)
        return (
            f"ode discriminator solver did not reach t = tau within max_steps={steps} steps "
            f"(rtol={rtol:g}, atol={atol:g}); increase `max_steps`, loosen `rtol`/`atol`, "
            "or pass a stiff `ode_solver` such as diffrax.Kvaerno5()"
        )
    if infinite:
        what = "CG (time=inf)"
        hint = "increase `max_steps`, set a positive `diag_reg`, or use solver='eigh'"
    else:
        what = "Lanczos"
        hint = "increase `max_steps` or `rtol`, or use solver='eigh'"
    return f"krylov discriminator solver: {what} did not reach rtol={rtol:g}; {hint}"


def _solve_linear(
    solver, kernel, train, weights, target, time, infinite, *, diag_reg, rcond, rtol,
    max_steps, block, materialize, fallback,
):  # fmt: skip
    """alpha = W^1/2 phi(A) W^1/2 (y - f0(T)), A = W^1/2 (K + r I) W^1/2."""
    n_train = train.shape[0]
    dtype = train.dtype
    s = jnp.sqrt(weights)
    b = s * target
    if solver == "eigh" or materialize:
        k = _linalg.kernel_matrix(kernel, train, block)
        reg = diag_reg * jnp.trace(k) / n_train
        k_mv = None
    else:
        k = None
        # tr K from the diagonal, one kernel row-block at a time.
        diag = jax.vmap(lambda x: kernel(x[None], x[None])[0, 0])(train)
        reg = diag_reg * jnp.sum(diag) / n_train
        k_mv = _linalg.kernel_operator(kernel, train, block, None)
    def eigh_alpha():
        a = s[:, None] * (k + reg * jnp.eye(n_train, dtype=dtype)) * s[None, :]
        return s * _linalg.phi_apply(a, b, time, jnp.asarray(rcond, dtype))

    if solver == "eigh":
        return eigh_alpha(), {}

    def matvec(x):
        kx = jnp.dot(k, s * x, precision=_linalg.HIGHEST) if k is not None else k_mv(s * x)
        return s * kx + reg * s * s * x

    if infinite:
        budget = 10 * n_train if max_steps is None else int(max_steps)
        z, info = _linalg.cg_solve(matvec, b, max_iter=budget, rtol=rtol)
    else:
        budget = min(n_train, 512) if max_steps is None else int(max_steps)
        z, info = _linalg.lanczos_matfun(
            matvec, b, lambda lam: _linalg.phi(lam, time, 0.0), max_iter=budget, rtol=rtol
        )
    if fallback:
        # solver='auto': if Krylov missed rtol, use eigh on the dense K (run only if needed).
        ok = info["converged"]
        alpha = jax.lax.cond(ok, lambda: s * z, eigh_alpha)
        return alpha, {**info, "converged": jnp.asarray(True), "fallback": ~ok}
    return s * z, info


class _VectorField(eqx.Module):
    """``d gamma / ds = -(a'(f_fake), b'(f_real))`` with ``f = f0 + tau K (w * gamma)``.

    A module (not a closure) so that diffrax's compilation cache is reused across calls.
    ``args = (tau, f0_train, weights, operand)`` where ``operand`` is the dense Gram matrix
    (``kernel`` None) or the train set (tiled matrix-vector products with ``kernel``).
    """

    loss: _losses.Loss = eqx.field(static=True)
    n: int = eqx.field(static=True)
    kernel: Callable | None = eqx.field(static=True)
    block: int = eqx.field(static=True)

    def __call__(self, s, gamma, args):
        tau, f0_train, weights, operand = args
        v = weights * gamma
        if self.kernel is None:
            kv = jnp.dot(operand, v, precision=_linalg.HIGHEST)
        else:
            kv = _linalg.kernel_apply(self.kernel, operand, operand, v, self.block)
        f = f0_train + tau * kv
        n = self.n
        # Unweighted elementwise derivatives (a'(f_x), b'(f_y)).
        _, vjp_a = jax.vjp(self.loss.a, f[:n])
        _, vjp_b = jax.vjp(self.loss.b, f[n:])
        da = vjp_a(jnp.ones_like(f[:n]))[0]
        db = vjp_b(jnp.ones_like(f[n:]))[0]
        return -jnp.concatenate([da, db])


def _solve_ode(
    loss, kernel, train, weights, f0_train, time, n, *, rtol, atol, max_steps, ode_solver,
    dt0, block, materialize,
):  # fmt: skip
    """Integrate gamma' = -(a'(f_fake), b'(f_real)), f = f0 + tau K (w gamma), s in [0, 1].

    With the rescaled time ``s = t / tau`` and ``alpha = tau * w * gamma``, the state
    ``gamma`` is O(1) whatever ``tau``, so one absolute tolerance fits all.
    """
    solver = diffrax.Tsit5() if ode_solver is None else ode_solver
    if not isinstance(solver, diffrax.AbstractSolver):
        raise ValueError(f"`ode_solver` must be a diffrax solver instance; got {solver!r}.")
    adaptive = isinstance(solver, diffrax.AbstractAdaptiveSolver)
    if not adaptive and dt0 is None:
        raise ValueError(
            f"`dt0` is required with the non-adaptive ode_solver {type(solver).__name__}."
        )
    if max_steps is None:
        max_steps = 16384 if loss.smooth else 2**18
    max_steps = int(max_steps)
    if materialize:
        field = _VectorField(loss, n, None, block)
        operand = _linalg.kernel_matrix(kernel, train, block)
    else:
        field = _VectorField(loss, n, kernel, block)
        operand = train
    # Rescaled time s = t / tau in [0, 1].
    ds0 = None if dt0 is None else dt0 / time
    if adaptive:
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
    else:
        controller = diffrax.ConstantStepSize()
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver,
        t0=jnp.zeros((), f0_train.dtype),
        t1=jnp.ones((), f0_train.dtype),
        dt0=ds0,
        y0=jnp.zeros_like(f0_train),
        args=(time, f0_train, weights, operand),
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=False,
    )
    gamma = sol.ys[-1]
    ok = (sol.result == diffrax.RESULTS.successful) & jnp.all(jnp.isfinite(gamma))
    info = {"num_steps": sol.stats["num_steps"], "converged": ok}
    return time * weights * gamma, info
