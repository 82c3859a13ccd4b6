"""Function-space predictions of wide networks trained by gradient descent, NT's ``predict``.

Linearised (infinite-width) training in function space (Jacot et al. 2018; Lee et al. 2019,
"Wide neural networks of any depth evolve as linear models", Eqs. 9-16): with the NTK
``Θ`` on the training set, loss ``L(f, y)`` and learning rate ``η`` (time ``t`` in units
of steps, ``absolute time = η t``),

    d f_train / dt = -η Θ_train,train ∇_f L(f_train),
    d f_test  / dt = -η Θ_test,train  ∇_f L(f_train).

For the MSE loss ``L = ||f - y||² / (2 |y|)`` (NT's normalisation, ``|y| = y_train.size``)
the solution is closed form, in the eigenbasis ``Θ = V diag(λ) Vᵀ``:

    f_train(t) = y + V e^{-η λ t / |y|} Vᵀ (f_train(0) - y),
    f_test(t)  = f_test(0) + Θ_test,train V [(e^{-η λ t/|y|} - 1) / λ] Vᵀ (f_train(0) - y),

so ``t = ∞`` (``t=None``) is kernel regression ``f_test(0) + Θ_*Θ⁻¹ (y - f_train(0))``.
:func:`gradient_descent_mse_ensemble` gives the mean and covariance of that output over
random initialisations (``f(0) ~ GP(0, NNGP)``), Lee et al. 2019, Eqs. 13-16.

Kernels here are 2-D ``(n, n)`` (NT's ``trace_axes=(-1,)`` kernels, targets ``(n, k)``,
one kernel shared by the ``k`` outputs); with ``trace_axes=()`` and 1-D targets ``(n,)``
the kernel is also ``(n, n)``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

__all__ = [
    "Gaussian",
    "ODEState",
    "gradient_descent",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "max_learning_rate",
]

#: ``(mean, covariance)`` of the ensemble predictions, NT's ``predict.Gaussian``.
Gaussian = collections.namedtuple("Gaussian", ["mean", "covariance"])


@dataclasses.dataclass
class ODEState:
    """State of the :func:`gradient_descent` ODE, NT's ``predict.ODEState``.

    Attributes:
        fx_train: training-set outputs.
        fx_test: test-set outputs (or None).
        qx_train: training-set momentum (None without momentum).
        qx_test: test-set momentum.
    """

    fx_train: Any = None
    fx_test: Any = None
    qx_train: Any = None
    qx_test: Any = None


jax.tree_util.register_dataclass(
    ODEState, data_fields=["fx_train", "fx_test", "qx_train", "qx_test"], meta_fields=[]
)


def _kernel_2d(k: Any, name: str, n: int | None = None) -> jax.Array:
    k = jnp.asarray(k)
    if k.ndim != 2 or (n is not None and k.shape[1] != n):
        want = f"(m, {n})" if n is not None else "(n, n)"
        raise ValueError(f"`{name}` must be a 2-D kernel of shape {want}; got {k.shape}.")
    return k


def _targets(y_train: Any, k_train_train: jax.Array, trace_axes: Any) -> jax.Array:
    y = jnp.asarray(y_train)
    n = k_train_train.shape[0]
    if k_train_train.shape != (n, n):
        raise ValueError(f"`k_train_train` must be square (n, n); got {k_train_train.shape}.")
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(
            f"`y_train` must have shape ({n},) or ({n}, k) to match `k_train_train`; got {y.shape}."
        )
    axes = tuple(trace_axes) if isinstance(trace_axes, (tuple, list)) else (trace_axes,)
    if y.ndim == 2 and tuple(a % 2 for a in axes) != (1,):
        raise ValueError(
            "gantk.predict supports 2-D kernels only: `trace_axes` must be (-1,) for "
            f"targets of shape (n, k); got {trace_axes!r}."
        )
    return y


def _regularise(k: jax.Array, diag_reg: float, absolute: bool) -> jax.Array:
    scale = diag_reg if absolute else diag_reg * jnp.trace(k) / k.shape[0]
    return k + scale * jnp.eye(k.shape[0], dtype=k.dtype)


def _check_inputs(fx_train_0: Any, fx_test_0: Any, k_test_train: Any) -> None:
    if fx_train_0 is None and fx_test_0 is None:
        raise ValueError(
            "Both `fx_train_0` and `fx_test_0` are None: no predictions would be computed."
        )
    if fx_test_0 is not None and k_test_train is None:
        raise ValueError("`k_test_train` is required for predictions on the test set.")


def _eig(k: jax.Array, diag_reg: float, absolute: bool) -> tuple[jax.Array, jax.Array]:
    evals, evecs = jnp.linalg.eigh(_regularise(k, diag_reg, absolute))
    return jnp.maximum(evals, 0.0), evecs


def _in_eigenbasis(evecs: jax.Array, weights: jax.Array, v: jax.Array) -> jax.Array:
    """``V diag(w_t) Vᵀ v`` for every time: ``weights`` ``(T, n)``, ``v`` ``(n, ...)``."""
    coeffs = jnp.tensordot(evecs.T, v, axes=1)  # (n, ...)
    scaled = weights.reshape(weights.shape + (1,) * (v.ndim - 1)) * coeffs[None]
    return jnp.einsum("ij,tj...->ti...", evecs, scaled)


def gradient_descent_mse(
    k_train_train: Any,
    y_train: Any,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: Any = (-1,),
) -> Callable:
    """Closed-form gradient-descent dynamics on MSE, NT's ``predict.gradient_descent_mse``.

    Args:
        k_train_train: ``(n, n)`` NTK (or NNGP) on the training inputs.
        y_train: targets ``(n, k)`` (or ``(n,)``).
        learning_rate: ``η``; times are in units of steps (``absolute time = η t``).
        diag_reg: ridge added to ``k_train_train`` (relative to its mean diagonal unless
            ``diag_reg_absolute_scale``).
        diag_reg_absolute_scale: whether ``diag_reg`` is absolute.
        trace_axes: NT's argument; only ``(-1,)`` (2-D kernels) is supported.

    Returns:
        ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)`` returning
        ``fx_train_t``, ``fx_test_t`` (when ``fx_train_0`` is None) or both, with leading
        axes ``t.shape`` for an array ``t``; ``t=None`` means ``t = ∞`` (linear solve).

    Raises:
        ValueError: on shape mismatches or unsupported ``trace_axes``; ``predict_fn``
            raises ValueError when both initial outputs are None or ``k_test_train`` is
            missing for test predictions.
    """
    k = _kernel_2d(k_train_train, "k_train_train")
    y = _targets(y_train, k, trace_axes)
    size = y.size

    @functools.cache
    def eig() -> tuple[jax.Array, jax.Array]:
        return _eig(k, diag_reg, diag_reg_absolute_scale)

    @functools.cache
    def cho() -> Any:
        return jsl.cho_factor(_regularise(k, diag_reg, diag_reg_absolute_scale))

    def predict_fn(
        t: Any = None, fx_train_0: Any = 0.0, fx_test_0: Any = None, k_test_train: Any = None
    ) -> Any:
        _check_inputs(fx_train_0, fx_test_0, k_test_train)
        if k_test_train is not None:
            k_test_train = _kernel_2d(k_test_train, "k_test_train", k.shape[0])
        dtype = k.dtype
        if t is None:
            fx_train = None if fx_train_0 is None else jnp.broadcast_to(y.astype(dtype), y.shape)
            fx_test = None
            if fx_test_0 is not None:
                rhs = y if fx_train_0 is None else y - fx_train_0
                fx_test = fx_test_0 + k_test_train @ jsl.cho_solve(cho(), rhs.astype(dtype))
        else:
            t = jnp.asarray(t, dtype) * learning_rate
            shape = t.shape
            evals, evecs = eig()
            decay = jnp.expm1(-evals[None, :] * t.reshape(-1, 1) / size)  # (T, n)
            rhs = (-y if fx_train_0 is None else fx_train_0 - y).astype(dtype)
            rhs = jnp.broadcast_to(rhs, y.shape)
            fx_train = fx_test = None
            if fx_train_0 is not None:
                d_train = _in_eigenbasis(evecs, decay, rhs)
                fx_train = (fx_train_0 + d_train).reshape(shape + y.shape)
            if fx_test_0 is not None:
                inv = jnp.where(
                    evals > 0, decay / jnp.where(evals > 0, evals, 1.0), -t.reshape(-1, 1) / size
                )
                d_test = jnp.einsum(
                    "mi,ti...->tm...", k_test_train, _in_eigenbasis(evecs, inv, rhs)
                )
                fx_test = (fx_test_0 + d_test).reshape(shape + d_test.shape[1:])
        if fx_test_0 is None:
            return fx_train
        if fx_train_0 is None:
            return fx_test
        return fx_train, fx_test

    return predict_fn


def gradient_descent(
    loss: Callable,
    k_train_train: Any,
    y_train: Any,
    learning_rate: float = 1.0,
    momentum: float | None = None,
    trace_axes: Any = (-1,),
) -> Callable:
    """Function-space (momentum) gradient descent on any loss, NT's ``predict.gradient_descent``.

    Integrates the ODE of the module docstring with diffrax (``Tsit5``, adaptive steps,
    ``rtol = atol = 1e-9`` in float64 / ``1e-6`` in float32). With ``momentum`` ``m``, the
    continuous-time heavy-ball ODE of NT: time in units of ``sqrt(η)``,
    ``df/dt = q``, ``dq/dt = -Θ ∇L(f) + (m - 1)/sqrt(η) q``.

    Args:
        loss: ``loss(fx_train, y_train) -> scalar``, e.g. ``0.5 * mean((f - y)**2)``.
        k_train_train: ``(n, n)`` NTK on the training inputs.
        y_train: targets ``(n, k)`` or ``(n,)``.
        learning_rate: ``η`` (``absolute time = η t``, or ``sqrt(η) t`` with momentum).
        momentum: heavy-ball momentum, or None for plain gradient flow.
        trace_axes: only ``(-1,)`` (2-D kernels) is supported.

    Returns:
        ``predict_fn(t=None, fx_train_or_state_0=0., fx_test_0=None, k_test_train=None)``
        with ``t`` a scalar or an increasing array (leading output axes ``t.shape``);
        given an :class:`ODEState` it returns an :class:`ODEState`. Unlike NT, ``t``
        must be finite (use :func:`gradient_descent_mse` for ``t = ∞`` on MSE).

    Raises:
        ValueError: as :func:`gradient_descent_mse`.
    """
    k = _kernel_2d(k_train_train, "k_train_train")
    y = _targets(y_train, k, trace_axes)
    grad_loss = jax.grad(lambda fx: loss(fx, y))
    lr = learning_rate if momentum is None else learning_rate**0.5
    friction = None if momentum is None else (momentum - 1.0) / lr

    def rhs(t: Any, state: ODEState, k_test_train: Any) -> ODEState:
        g = grad_loss(state.fx_train)
        df_train = -k @ g
        df_test = None if state.fx_test is None else -k_test_train @ g
        if friction is None:
            return ODEState(df_train, df_test)
        dq_train = df_train + friction * state.qx_train
        dq_test = None if state.qx_test is None else df_test + friction * state.qx_test
        return ODEState(state.qx_train, state.qx_test, dq_train, dq_test)

    def predict_fn(
        t: Any = None,
        fx_train_or_state_0: Any = 0.0,
        fx_test_0: Any = None,
        k_test_train: Any = None,
    ) -> Any:
        is_state = isinstance(fx_train_or_state_0, ODEState)
        if is_state:
            if fx_test_0 is not None:
                raise ValueError("`fx_test_0` is part of the ODEState and must be None.")
            s0 = fx_train_or_state_0
            fx_train_0, fx_test_0, q_train, q_test = (
                s0.fx_train,
                s0.fx_test,
                s0.qx_train,
                s0.qx_test,
            )
        else:
            fx_train_0, q_train, q_test = fx_train_or_state_0, None, None
        _check_inputs(fx_train_0, fx_test_0, k_test_train)
        dtype = k.dtype
        if k_test_train is not None:
            k_test_train = _kernel_2d(k_test_train, "k_test_train", k.shape[0]).astype(dtype)
        f_train = jnp.broadcast_to(
            jnp.zeros(y.shape, dtype) if fx_train_0 is None else jnp.asarray(fx_train_0, dtype),
            y.shape,
        )
        test_shape = None if k_test_train is None else (k_test_train.shape[0], *y.shape[1:])
        f_test = (
            None
            if fx_test_0 is None
            else jnp.broadcast_to(jnp.asarray(fx_test_0, dtype), test_shape)
        )
        if friction is None:
            if q_train is not None or q_test is not None:
                raise ValueError("Momentum state variables given while `momentum` is None.")
        else:
            q_train = (
                jnp.zeros(y.shape, dtype) if q_train is None else jnp.broadcast_to(q_train, y.shape)
            )
            if f_test is not None:
                q_test = (
                    jnp.zeros(test_shape, dtype)
                    if q_test is None
                    else jnp.broadcast_to(q_test, test_shape)
                )
        state0 = ODEState(f_train, f_test, q_train, q_test)
        if t is None or not np.all(np.isfinite(np.asarray(t))):
            raise ValueError(
                "`t` must be finite for the ODE solver (t=None/inf may never converge); for "
                "the MSE loss use gradient_descent_mse, which solves t=inf exactly."
            )
        times = jnp.asarray(t, dtype).reshape(-1) * lr
        shape = jnp.shape(t)
        if times.size > 1 and not bool(jnp.all(jnp.diff(times) >= 0)):
            raise ValueError(f"`t` must be non-decreasing; got {t!r}.")
        if bool(jnp.any(times < 0)):
            raise ValueError(f"`t` must be >= 0; got {t!r}.")
        tol = 1e-9 if dtype == jnp.float64 else 1e-6
        t_end = float(times[-1])
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(rhs),
            diffrax.Tsit5(),
            t0=0.0,
            t1=max(t_end, 1e-12),
            dt0=None,
            y0=state0,
            args=k_test_train,
            saveat=diffrax.SaveAt(ts=times),
            stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol),
            max_steps=1_000_000,
        )
        out = jax.tree.map(lambda a: a.reshape(shape + a.shape[1:]), sol.ys)
        if is_state:
            return out
        if fx_test_0 is None:
            return out.fx_train
        if fx_train_or_state_0 is None:
            return out.fx_test
        return out.fx_train, out.fx_test

    return predict_fn


def max_learning_rate(
    ntk_train_train: Any,
    y_train_size: int | None = None,
    momentum: float = 0.0,
    eps: float = 1e-12,
) -> float:
    """Largest stable learning rate of full-batch GD on MSE, NT's ``max_learning_rate``.

    For the loss ``||f - y||² / (2 |y|)`` a step is a contraction iff
    ``η < 2 |y| / λ_max(Θ)``; with momentum ``m`` the bound is ``2 (1 + m) |y| / λ_max``
    (Goh 2017, "Why momentum really works").

    Args:
        ntk_train_train: ``(n, n)`` NTK on the training set.
        y_train_size: ``|y|`` (number of target entries); defaults to ``n``.
        momentum: heavy-ball momentum ``m >= 0``.
        eps: added to ``λ_max`` against division by zero.

    Returns:
        ``2 (1 + m) |y| / (λ_max + eps)`` as a Python float.

    Raises:
        ValueError: if the kernel is not square 2-D.
    """
    k = np.asarray(_kernel_2d(ntk_train_train, "ntk_train_train"), np.float64)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"`ntk_train_train` must be square; got {k.shape}.")
    factor = k.shape[0] if y_train_size is None else y_train_size
    lam = float(np.linalg.eigvalsh(k)[-1])
    return 2.0 * (1.0 + momentum) * factor / (lam + eps)


def gradient_descent_mse_ensemble(
    kernel_fn: Callable,
    x_train: Any,
    y_train: Any,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: Any = (-1,),
    **kernel_fn_train_train_kwargs: Any,
) -> Callable:
    """Mean and covariance over initialisations of MSE-trained wide networks.

    NT's ``predict.gradient_descent_mse_ensemble`` (Lee et al. 2019, Eqs. 13-16): outputs
    at time ``t`` of an infinitely wide network trained by gradient flow on MSE from
    random initialisation, a Gaussian whose mean and covariance follow from the NNGP
    ``K`` and NTK ``Θ``. With ``E_t = I - e^{-η Θ t/|y|}`` (on the training set):

    - ``'nngp'`` (only the read-out trained, Bayesian posterior at ``t = ∞``):
      ``mean = K_*  K⁻¹ E_t y``, ``cov = K_** - K_* K⁻¹ E_{2t} K_*ᵀ`` (``E`` built from
      ``K``);
    - ``'ntk'``: ``mean = Θ_* Θ⁻¹ E_t y``, ``cov = K_** + Θ_*Θ⁻¹E_t K E_tΘ⁻¹Θ_*ᵀ -
      (Θ_*Θ⁻¹E_t K_*ᵀ + transpose)``.

    Args:
        kernel_fn: a :mod:`gantk.stax` ``kernel_fn(x1, x2, get, **kwargs)``.
        x_train: ``(n, d)`` training inputs.
        y_train: ``(n, k)`` targets.
        learning_rate: as
            :func:`gradient_descent_mse`.
        diag_reg: see ``learning_rate``.
        diag_reg_absolute_scale: see ``learning_rate``.
        trace_axes: see ``learning_rate``.
        **kernel_fn_train_train_kwargs: passed to ``kernel_fn`` on the training set.

    Returns:
        ``predict_fn(t=None, x_test=None, get=None, compute_cov=False,
        **kernel_fn_test_test_kwargs)`` returning, per ``get`` (``'nngp'``, ``'ntk'``, a
        tuple of them, or None for both), the mean (or a :class:`Gaussian` ``(mean,
        covariance)`` when ``compute_cov``), in a namedtuple when ``get`` is a tuple or
        None. ``x_test=None`` predicts on the training set; ``t`` a scalar, an array
        (leading axes) or None (``t = ∞``).

    Raises:
        ValueError: on bad shapes or ``get``.
    """
    k_dd_cache: dict[str, jax.Array] = {}

    def k_dd(g: str) -> jax.Array:
        if g not in k_dd_cache:
            k_dd_cache[g] = _kernel_2d(
                kernel_fn(x_train, None, g, **kernel_fn_train_train_kwargs), "kernel_fn(x_train)"
            )
        return k_dd_cache[g]

    y = jnp.asarray(y_train)
    _targets(y, jnp.zeros((y.shape[0], y.shape[0])), trace_axes)
    size = y.size

    @functools.lru_cache(2)
    def eig(g: str) -> tuple[jax.Array, jax.Array]:
        return _eig(k_dd(g), diag_reg, diag_reg_absolute_scale)

    def predict_fn(
        t: Any = None,
        x_test: Any = None,
        get: Any = None,
        compute_cov: bool = False,
        **kernel_fn_test_test_kwargs: Any,
    ) -> Any:
        if get is None:
            fields, as_tuple = ("nngp", "ntk"), True
        elif isinstance(get, str):
            fields, as_tuple = (get,), False
        else:
            fields, as_tuple = tuple(get), True
        for g in fields:
            if g not in ("nngp", "ntk"):
                raise ValueError(f"`get` entries must be 'nngp' or 'ntk'; got {g!r}.")
        ts = jnp.asarray(jnp.inf if t is None else t, k_dd(fields[0]).dtype) * learning_rate
        shape = ts.shape
        ts = ts.reshape(-1, 1)
        out = {}
        for g in fields:
            evals, evecs = eig(g)
            pos = evals > 0
            safe = jnp.where(pos, evals, 1.0)
            e_t = -jnp.expm1(-evals[None] * ts / size)  # (T, n): eigenvalues of E_t
            inv_e = jnp.where(pos, e_t / safe, ts / size)  # Θ⁻¹ E_t
            if x_test is None:
                mean = _in_eigenbasis(evecs, e_t, y)
            else:
                k_td = _kernel_2d(
                    kernel_fn(x_test, x_train, g, **kernel_fn_test_test_kwargs),
                    "kernel_fn(x_test, x_train)",
                    y.shape[0],
                )
                mean = jnp.einsum("mi,ti...->tm...", k_td, _in_eigenbasis(evecs, inv_e, y))
            mean = mean.reshape(shape + mean.shape[1:])
            if not compute_cov:
                out[g] = mean
                continue
            nngp_dd = k_dd("nngp")
            if x_test is None:
                decay = jnp.exp(-evals[None] * ts / size)  # (T, n)
                if g == "nngp":
                    cov = jnp.einsum("ij,tj,kj->tik", evecs, evals[None] * decay**2, evecs)
                else:
                    m = jnp.einsum("ij,tj,kj->tik", evecs, decay, evecs)
                    cov = jnp.einsum("tij,jk,tlk->til", m, nngp_dd, m)
            else:
                nngp_tt = kernel_fn(x_test, None, "nngp", **kernel_fn_test_test_kwargs)
                if g == "nngp":
                    e_2t = -jnp.expm1(-2 * evals[None] * ts / size)
                    inv_e2 = jnp.where(pos, e_2t / safe, 2 * ts / size)
                    a = jnp.einsum("mi,ij->mj", k_td, evecs)
                    cov = nngp_tt[None] - jnp.einsum("mj,tj,lj->tml", a, inv_e2, a)
                else:
                    nngp_td = kernel_fn(x_test, x_train, "nngp", **kernel_fn_test_test_kwargs)
                    a = jnp.einsum("mi,ij->mj", k_td, evecs)
                    term1 = jnp.einsum("mj,tj,kj->tmk", a, inv_e, evecs)  # Θ_*Θ⁻¹E_t
                    cross = jnp.einsum("tmk,lk->tml", term1, nngp_td)
                    cov = (
                        nngp_tt[None]
                        + jnp.einsum("tmk,kj,tlj->tml", term1, nngp_dd, term1)
                        - cross
                        - jnp.swapaxes(cross, 1, 2)
                    )
            out[g] = Gaussian(mean, cov.reshape(shape + cov.shape[1:]))
        if not as_tuple:
            return out[fields[0]]
        return collections.namedtuple("Gaussians", fields)(*(out[g] for g in fields))

    return predict_fn
