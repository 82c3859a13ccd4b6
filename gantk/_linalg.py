"""Private linear-algebra helpers of :mod:`gantk.discriminator`.

- Tiled kernel evaluation: ``k(P, T) @ c``, its gradient in ``P`` and the dense Gram matrix,
  computed over row blocks of ``P`` and column blocks of ``T`` (``lax.map`` / ``lax.scan``)
  so that peak memory is ``O((q + N) d + block^2)`` instead of ``O(q N)``.
- Symmetric matrix functions ``phi(A)`` by eigendecomposition, with a divided-difference
  (Daleckii–Krein) JVP that stays finite for repeated eigenvalues.
- Lanczos with full reorthogonalisation for ``phi(A) b`` and a lineax CG wrapper.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import lineax as lx
from jax import lax

HIGHEST = lax.Precision.HIGHEST


def pad_rows(x: jax.Array, multiple: int, *, fill: str = "edge") -> jax.Array:
    """Pad ``x`` of shape ``(n, ...)`` along axis 0 to the next multiple of ``multiple`` rows.

    The one padder of gantk (tiled kernel evaluations, :func:`gantk.stax.blocked`,
    :func:`gantk.sharding.sharded_value_and_velocity`).

    Args:
        x: array of shape ``(n, ...)``, ``n >= 1``.
        multiple: the row count is rounded up to a multiple of this (``>= 1``).
        fill: ``'edge'`` repeats the last row (padded points stay valid kernel inputs);
            ``'zeros'`` appends zeros (padded coefficients contribute nothing).

    Returns:
        ``(ceil(n / multiple) * multiple, ...)``; ``x`` itself when no padding is needed.
    """
    pad = (-x.shape[0]) % multiple
    if not pad:
        return x
    if fill == "edge":
        extra = jnp.broadcast_to(x[-1:], (pad, *x.shape[1:]))
    else:
        extra = jnp.zeros((pad, *x.shape[1:]), x.dtype)
    return jnp.concatenate([x, extra], axis=0)


def _tiles(x: jax.Array, block: int, fill: str = "edge") -> jax.Array:
    """``x`` padded (:func:`pad_rows`) and reshaped to ``(n_blocks, block, ...)``."""
    return pad_rows(x, block, fill=fill).reshape(-1, block, *x.shape[1:])


def gram(kernel: Callable, x1: jax.Array, x2: jax.Array, block: int) -> jax.Array:
    """``k(x1, x2)`` of shape ``(n1, n2)`` in tiles of at most ``block x block`` entries.

    The one tiled Gram builder of gantk (:func:`gantk.stax.blocked` validates and calls
    it). Tiles are evaluated sequentially with :func:`jax.lax.map`, so one tile of
    intermediates is alive at a time; rows are padded by repeating the last point and the
    result is sliced back.
    """
    n1, n2 = x1.shape[0], x2.shape[0]
    b1, b2 = min(block, n1), min(block, n2)
    if b1 == n1 and b2 == n2:
        return kernel(x1, x2)
    t1, t2 = _tiles(x1, b1), _tiles(x2, b2)
    tiles = lax.map(lambda p: lax.map(lambda t: kernel(p, t), t2), t1)  # (m1, m2, b1, b2)
    return tiles.transpose(0, 2, 1, 3).reshape(t1.shape[0] * b1, -1)[:n1, :n2]


def kernel_apply(
    kernel: Callable, points: jax.Array, train: jax.Array, coef: jax.Array, block: int
) -> jax.Array:
    """``k(points, train) @ coef`` in tiles of at most ``block x block`` kernel entries.

    Args:
        kernel: ``k(x1, x2) -> (n1, n2)``.
        points: ``(q, d)``.
        train: ``(N, d)``.
        coef: ``(N,)``.
        block: tile side.

    Returns:
        ``(q,)``.
    """
    q, n = points.shape[0], train.shape[0]
    br, bc = min(block, q), min(block, n)
    if br == q and bc == n:
        return jnp.dot(kernel(points, train), coef, precision=HIGHEST)
    pb, tb, cb = _tiles(points, br), _tiles(train, bc), _tiles(coef, bc, "zeros")

    def row(p):
        def col(acc, tc):
            t, c = tc
            return acc + jnp.dot(kernel(p, t), c, precision=HIGHEST), None

        acc, _ = lax.scan(col, jnp.zeros(br, jnp.result_type(p, coef)), (tb, cb))
        return acc

    return lax.map(row, pb).reshape(-1)[:q]


def kernel_apply_and_grad(
    kernel: Callable, points: jax.Array, train: jax.Array, coef: jax.Array, block: int
) -> tuple[jax.Array, jax.Array]:
    """``g(x) = sum_j coef_j k(x, t_j)`` and its gradient in ``x``, at each query point, tiled.

    The gradient of each ``(block, block)`` tile is a VJP of the kernel block against
    ``coef``, accumulated over column blocks; ``train`` is not differentiated.

    Returns:
        ``(values (q,), gradients (q, d))``.
    """
    q, n = points.shape[0], train.shape[0]
    br, bc = min(block, q), min(block, n)

    def tile(p, t, c):
        val, vjp = jax.vjp(lambda x: jnp.dot(kernel(x, t), c, precision=HIGHEST), p)
        (g,) = vjp(jnp.ones_like(val))
        return val, g

    if br == q and bc == n:
        return tile(points, train, coef)
    pb, tb, cb = _tiles(points, br), _tiles(train, bc), _tiles(coef, bc, "zeros")
    dtype = jnp.result_type(points, coef)

    def row(p):
        def col(acc, tc):
            val, g = tile(p, *tc)
            return (acc[0] + val, acc[1] + g), None

        init = (jnp.zeros(br, dtype), jnp.zeros(p.shape, dtype))
        acc, _ = lax.scan(col, init, (tb, cb))
        return acc

    vals, grads = lax.map(row, pb)
    return vals.reshape(-1)[:q], grads.reshape(-1, points.shape[1])[:q]


def kernel_matrix(kernel: Callable, train: jax.Array, block: int) -> jax.Array:
    """Dense symmetric Gram matrix ``k(train, train)`` (N, N), evaluated in tiles."""
    n = train.shape[0]
    b = min(block, n)
    if b == n:
        # One tile: return k(train, train) as is. Symmetrizing here would let XLA fuse the
        # whole elementwise kernel chain into `k + k.T`, evaluating it twice with a strided,
        # unvectorized access pattern (measured 17x slower at N = 1000 on CPU). gantk.stax
        # kernels are symmetric by construction up to rounding, which Lanczos/eigh tolerate.
        return kernel(train, train)
    k = gram(kernel, train, train, b)
    return 0.5 * (k + k.T)


def kernel_operator(
    kernel: Callable, train: jax.Array, block: int, dense: jax.Array | None
) -> Callable[[jax.Array], jax.Array]:
    """``v -> k(train, train) @ v`` from the dense matrix if given, else tiled on the fly."""
    if dense is not None:
        return lambda v: jnp.dot(dense, v, precision=HIGHEST)
    return lambda v: kernel_apply(kernel, train, train, v, block)


# --------------------------------------------------------------------------------------
# phi(lambda) = (1 - exp(-2 lambda tau)) / lambda, its tau -> inf limit, and derivatives.
# --------------------------------------------------------------------------------------


def _g(x):
    """``(1 - exp(-x)) / x`` for ``x >= 0`` (``1`` at 0), stable near 0."""
    small = x < 1e-4
    xs = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 - x / 2 + x * x / 6 - x**3 / 24, -jnp.expm1(-xs) / xs)


def _dg(x):
    """Derivative of :func:`_g`: ``(x e^{-x} - 1 + e^{-x}) / x^2``; ``-1/2`` at 0."""
    small = x < 1e-3
    xs = jnp.where(small, 1.0, x)
    e = jnp.exp(-xs)
    return jnp.where(small, -0.5 + x / 3 - x * x / 8 + x**3 / 30, (xs * e + jnp.expm1(-xs)) / xs**2)


def phi(lam: jax.Array, tau: jax.Array, cutoff: jax.Array) -> jax.Array:
    """``(1 - exp(-2 lam tau)) / lam`` with ``lam`` clipped at 0 (value ``2 tau`` at 0).

    For ``tau = inf`` returns the pseudo-inverse ``1/lam`` for ``lam > cutoff`` and 0 below.
    """
    lam = jnp.maximum(lam, 0.0)
    inf = jnp.isinf(tau)
    t = jnp.where(inf, 1.0, tau)
    finite = 2 * t * _g(2 * lam * t)
    big = lam > cutoff
    pinv = jnp.where(big, 1.0 / jnp.where(big, lam, 1.0), 0.0)
    return jnp.where(inf, pinv, finite)


def _dphi_dlam(lam, tau, cutoff):
    pos = lam > 0
    lam = jnp.maximum(lam, 0.0)
    inf = jnp.isinf(tau)
    t = jnp.where(inf, 1.0, tau)
    finite = 4 * t * t * _dg(2 * lam * t)
    big = lam > cutoff
    pinv = jnp.where(big, -1.0 / jnp.where(big, lam, 1.0) ** 2, 0.0)
    return jnp.where(pos, jnp.where(inf, pinv, finite), 0.0)


def _dphi_dtau(lam, tau):
    # d/dtau (1 - e^{-2 lam tau}) / lam = 2 e^{-2 lam tau}; 0 for tau = inf.
    lam = jnp.maximum(lam, 0.0)
    return jnp.where(jnp.isinf(tau), 0.0, 2 * jnp.exp(-2 * lam * jnp.where(jnp.isinf(tau), 1, tau)))


@jax.custom_jvp
def phi_apply(a: jax.Array, b: jax.Array, tau: jax.Array, rcond: jax.Array) -> jax.Array:
    """``phi(A) b`` for a symmetric ``A`` (N, N) and ``b`` (N,) by eigendecomposition.

    ``phi`` is :func:`phi`; ``rcond`` is the relative eigenvalue cutoff used when
    ``tau = inf``. The JVP in ``A`` uses divided differences of ``phi`` (Daleckii–Krein),
    finite for repeated eigenvalues.
    """
    lam, u = jnp.linalg.eigh(a)
    cutoff = rcond * jnp.max(jnp.abs(lam))
    return jnp.dot(u, phi(lam, tau, cutoff) * jnp.dot(u.T, b, precision=HIGHEST),
                   precision=HIGHEST)  # fmt: skip


@phi_apply.defjvp
def _phi_apply_jvp(primals, tangents):
    a, b, tau, rcond = primals
    da, db, dtau, _ = tangents
    lam, u = jnp.linalg.eigh(a)
    cutoff = rcond * jnp.max(jnp.abs(lam))
    p = phi(lam, tau, cutoff)
    c = jnp.dot(u.T, b, precision=HIGHEST)
    out = jnp.dot(u, p * c, precision=HIGHEST)
    # Divided differences Phi_ij = (p_i - p_j) / (l_i - l_j), phi' at the midpoint if close.
    li, lj = lam[:, None], lam[None, :]
    diff = li - lj
    eps = jnp.finfo(lam.dtype).eps
    scale = jnp.max(jnp.abs(lam)) + jnp.finfo(lam.dtype).tiny
    close = jnp.abs(diff) <= jnp.sqrt(eps) * scale
    dd = jnp.where(close, 0.0, (p[:, None] - p[None, :]) / jnp.where(close, 1.0, diff))
    dd = jnp.where(close, _dphi_dlam(0.5 * (li + lj), tau, cutoff), dd)
    da = 0.5 * (da + da.T)
    dc = jnp.dot(dd * (u.T @ da @ u), c, precision=HIGHEST)  # d phi(A) in the eigenbasis
    dc = dc + _dphi_dtau(lam, tau) * dtau * c + p * jnp.dot(u.T, db, precision=HIGHEST)
    return out, jnp.dot(u, dc, precision=HIGHEST)


# --------------------------------------------------------------------------------------
# Krylov solvers.
# --------------------------------------------------------------------------------------


def lanczos_matfun(
    matvec: Callable[[jax.Array], jax.Array],
    b: jax.Array,
    fn: Callable[[jax.Array], jax.Array],
    *,
    max_iter: int,
    rtol: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Approximate ``fn(A) b`` for a symmetric PSD operator ``A`` by Lanczos.

    Builds an orthonormal Krylov basis ``Q_k`` with full reorthogonalisation (two classical
    Gram–Schmidt passes per step) and returns ``|b| Q_k fn(T_k) e_1`` where ``T_k`` is the
    tridiagonal Lanczos matrix. Convergence is checked at iterations growing geometrically
    (8, 10, 12, 15, 18, 22, ...): the estimate is the relative change
    ``|y_k - y_prev| / |y_k|`` of the coefficient vector ``y_k = fn(T_k) e_1`` since the
    previous check (equal to the change of the approximation itself, since ``Q`` is
    orthonormal; with the geometric schedule it bounds the error of ``y_prev``). It stops
    when that change is ``<= rtol``, when the Krylov space is exhausted (``beta ~ 0``: the
    result is then exact), or at ``max_iter``.

    The loop runs in stages of static capacity 32, 64, 128, ... so that each check costs an
    eigendecomposition of the current capacity, not of ``max_iter``.

    Args:
        matvec: ``v -> A v`` for ``v`` of shape (N,).
        b: (N,).
        fn: elementwise spectral function applied to the Ritz values.
        max_iter: Krylov dimension budget (memory ``O(max_iter * N)``).
        rtol: target relative accuracy.

    Returns:
        ``(x, info)`` with ``info = {'iterations', 'residual', 'converged', 'exhausted'}``:
        ``residual`` is the last relative-change estimate (0 if exhausted before the
        first check); ``exhausted`` says the Krylov space became invariant (``beta ~ 0``),
        in which case the result is exact up to rounding and ``converged`` is True.
    """
    n = b.shape[0]
    k = int(min(max_iter, n))
    dtype = b.dtype
    eps = jnp.finfo(dtype).eps
    tiny = jnp.finfo(dtype).tiny
    bnorm = jnp.linalg.norm(b)
    q0 = b / jnp.where(bnorm > 0, bnorm, 1.0)
    basis = jnp.zeros((k + 1, n), dtype).at[0].set(q0)

    def coefficients(alphas, betas, cap):
        a, bt = alphas[:cap], betas[: cap - 1]
        t = jnp.diag(a) + jnp.diag(bt, 1) + jnp.diag(bt, -1)
        lam, u = jnp.linalg.eigh(t)
        return jnp.zeros(k, dtype).at[:cap].set(u @ (fn(lam) * u[0]))

    def step(j, state):
        basis, alphas, betas, done, anorm = state
        q = basis[j]
        w = matvec(q)
        a = jnp.dot(q, w, precision=HIGHEST)
        jm = jnp.maximum(j - 1, 0)
        prev = jnp.where(j > 0, betas[jm], 0.0)
        w = w - a * q - prev * basis[jm]
        for _ in range(2):
            w = w - jnp.dot(jnp.dot(basis, w, precision=HIGHEST), basis, precision=HIGHEST)
        beta = jnp.linalg.norm(w)
        anorm = jnp.maximum(anorm, jnp.abs(a) + prev + beta)
        broke = beta <= 100 * eps * anorm
        stop = done | broke
        alphas = alphas.at[j].set(jnp.where(done, 0.0, a))
        betas = betas.at[j].set(jnp.where(stop, 0.0, beta))
        qn = jnp.where(stop, 0.0, w / jnp.where(stop, 1.0, beta))
        basis = basis.at[j + 1].set(qn)
        return basis, alphas, betas, stop, anorm

    def going(state):
        j, _, _, _, done, _, _, err = state
        return (j < k) & ~done & (err > rtol)

    def stage(cap):
        def cond(state):
            return going(state) & (state[0] < cap)

        def body(state):
            j, basis, alphas, betas, done, anorm, y_prev, _ = state
            nxt = jnp.minimum(jnp.maximum(j + 2, (5 * j) // 4), cap)
            basis, alphas, betas, done, anorm = lax.fori_loop(
                j, nxt, step, (basis, alphas, betas, done, anorm)
            )
            y = coefficients(alphas, betas, cap)
            err = jnp.linalg.norm(y - y_prev) / jnp.maximum(jnp.linalg.norm(y), tiny)
            return nxt, basis, alphas, betas, done, anorm, y, err

        return lambda state: lax.while_loop(cond, body, state)

    first = min(8, k)
    basis, alphas, betas, done, anorm = lax.fori_loop(
        0,
        first,
        step,
        (basis, jnp.zeros(k, dtype), jnp.zeros(k, dtype), jnp.asarray(False), jnp.zeros((), dtype)),
    )
    y = coefficients(alphas, betas, k if k <= 32 else 32)
    err = jnp.asarray(jnp.inf, dtype)
    state = (jnp.asarray(first), basis, alphas, betas, done, anorm, y, err)
    caps, cap = [], 32
    while cap < k:
        caps.append(cap)
        cap *= 2
    caps.append(k)
    for cap in caps:
        state = lax.cond(going(state), stage(cap), lambda s: s, state)
    j, basis, alphas, betas, done, anorm, y, err = state
    x = bnorm * jnp.dot(y, basis[:k], precision=HIGHEST)
    converged = done | (err <= rtol)
    err = jnp.where(done & jnp.isinf(err), 0.0, err)  # exhausted before the first check
    return x, {"iterations": j, "residual": err, "converged": converged, "exhausted": done}


def cg_solve(
    matvec: Callable[[jax.Array], jax.Array],
    b: jax.Array,
    *,
    max_iter: int,
    rtol: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Solve ``A x = b`` for a symmetric PSD ``A`` with lineax's conjugate gradient.

    Returns:
        ``(x, info)`` with ``info = {'iterations', 'residual', 'converged'}``; the residual
        ``|A x - b| / |b|`` is recomputed with one extra matvec.
    """
    struct = jax.ShapeDtypeStruct(b.shape, b.dtype)
    op = lx.FunctionLinearOperator(matvec, struct, tags=lx.positive_semidefinite_tag)
    solver = lx.CG(rtol=rtol, atol=0.0, max_steps=max_iter)
    sol = lx.linear_solve(op, b, solver, throw=False)
    x = sol.value
    bnorm = jnp.linalg.norm(b)
    res = jnp.linalg.norm(matvec(x) - b) / jnp.where(bnorm > 0, bnorm, 1.0)
    ok = (sol.result == lx.RESULTS.successful) & jnp.all(jnp.isfinite(x))
    return x, {
        "iterations": sol.stats["num_steps"],
        "residual": res,
        "converged": ok & (res <= 10 * rtol),
    }
