"""Scale features of gantk.discriminator: tiled (bounded-memory) evaluation and the Krylov
(Lanczos / CG) LSGAN solver (float64 unless stated otherwise)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import _linalg
from gantk.discriminator import discriminator


@jax.jit
def rbf(x, y):
    d2 = jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, -1)
    return jnp.exp(-d2 / 2)


def data(n, m, d=2, q=9, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) * 0.5 + 1.0
    p = rng.normal(size=(q, d))
    return jnp.asarray(x), jnp.asarray(y), jnp.asarray(p)


def rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def relu_kernel():
    arch = pytest.importorskip("gantk.architectures")
    try:
        return arch.kernel_from_name("relu")
    except (ImportError, AttributeError) as err:
        pytest.skip(f"gantk.stax unavailable: {err}")


def max_intermediate_size(closed_jaxpr):
    """Largest array produced anywhere in a jaxpr, sub-jaxprs (scan/map bodies) included."""
    biggest = 0

    def walk(jaxpr):
        nonlocal biggest
        for eqn in jaxpr.eqns:
            for v in eqn.outvars:
                shape = getattr(v.aval, "shape", ())
                biggest = max(biggest, math.prod(shape))
            for param in eqn.params.values():
                for p in param if isinstance(param, (tuple, list)) else (param,):
                    if isinstance(p, jax.extend.core.ClosedJaxpr):
                        walk(p.jaxpr)
                    elif isinstance(p, jax.extend.core.Jaxpr):
                        walk(p)

    walk(closed_jaxpr.jaxpr)
    return biggest


# ----------------------------------------------------------------------------------------
# Tiled evaluation.
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["ipm", "lsgan", "vanilla"])
def test_tiles_give_the_same_values_and_velocity(loss):
    x, y, p = data(23, 18, q=31)
    D = discriminator(loss, rbf, x, y, 1.0)
    Db = discriminator(loss, rbf, x, y, 1.0, block_size=7)
    assert Db.block_size == 7 and D.block_size == 1024
    np.testing.assert_allclose(Db.alpha, D.alpha, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(Db(p), D(p), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Db.velocity(p), D.velocity(p), rtol=1e-12, atol=1e-14)
    # Tile sizes that do not divide q or N, and a single query point.
    np.testing.assert_allclose(Db(p[:1]), D(p[:1]), rtol=1e-12)
    np.testing.assert_allclose(Db.velocity(x), D.velocity(x), rtol=1e-11, atol=1e-14)


def test_tiled_evaluation_memory_is_bounded():
    # q = 200 query points against N = 300 train points in 16 x 16 tiles: no array of
    # q * N (or N * N) entries is ever formed, only O(block^2) and O((q + N) d) ones.
    x, y, _ = data(150, 150)
    p = jax.random.normal(jax.random.key(0), (200, 2), jnp.float64)
    D = discriminator("ipm", rbf, x, y, 1.0, block_size=16)
    for fn in (D.__call__, D.velocity):
        biggest = max_intermediate_size(jax.make_jaxpr(fn)(p))
        assert biggest <= 2 * 300 * 2 + 16 * 16 * 2, biggest
    # The untiled evaluation does form the (q, N) kernel block (the check can fail).
    D_big = discriminator("ipm", rbf, x, y, 1.0, block_size=1024)
    assert max_intermediate_size(jax.make_jaxpr(D_big.__call__)(p)) >= 200 * 300


def test_kernel_matrix_tiles():
    x, _, _ = data(37, 1)
    np.testing.assert_allclose(_linalg.kernel_matrix(rbf, x, 8), rbf(x, x), rtol=1e-14)


def test_block_size_validation():
    x, y, _ = data(5, 5)
    for bad in (0, -3, 1.5, True, "big"):
        with pytest.raises(ValueError, match="`block_size`"):
            discriminator("ipm", rbf, x, y, 1.0, block_size=bad)
    assert discriminator("ipm", rbf, x, y, 1.0, block_size="auto").block_size == 1024


# ----------------------------------------------------------------------------------------
# Krylov solver.
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [1.0, 20.0])
def test_krylov_matches_eigh_300_300(tau):
    x, y, p = data(300, 300, seed=1)
    De = discriminator("lsgan", rbf, x, y, tau, solver="eigh")
    Dk = discriminator("lsgan", rbf, x, y, tau, solver="krylov")
    assert Dk.solver == "krylov" and bool(Dk.stats.converged)
    assert float(Dk.stats.residual) <= 1e-8
    assert rel(Dk(x), De(x)) < 1e-4
    assert rel(Dk(p), De(p)) < 1e-4
    assert rel(Dk.velocity(x), De.velocity(x)) < 1e-4


@pytest.mark.slow
def test_krylov_matches_eigh_relu_ntk():
    k = relu_kernel()
    x, y, p = data(300, 300, seed=2)
    De = discriminator("lsgan", k, x, y, 1.0, solver="eigh")
    Dk = discriminator("lsgan", k, x, y, 1.0, solver="krylov")
    assert rel(Dk(x), De(x)) < 1e-4
    assert rel(Dk.velocity(x), De.velocity(x)) < 1e-4
    # tau = inf through CG, with NT's diag_reg convention.
    De = discriminator("lsgan", k, x, y, math.inf, solver="eigh", diag_reg=1e-3)
    Dk = discriminator("lsgan", k, x, y, math.inf, solver="krylov", diag_reg=1e-3)
    assert rel(Dk(x), De(x)) < 1e-4


def test_krylov_infinite_time_cg_and_f0():
    x, y, p = data(120, 80, seed=3)

    def f0(z):
        return 0.2 * jnp.cos(z[:, 0])

    De = discriminator("lsgan", rbf, x, y, math.inf, f0=f0, diag_reg=1e-2)
    Dk = discriminator("lsgan", rbf, x, y, math.inf, f0=f0, diag_reg=1e-2, solver="krylov")
    assert bool(Dk.stats.converged) and float(Dk.stats.residual) < 1e-7
    assert rel(Dk(p), De(p)) < 1e-6
    De = discriminator("lsgan", rbf, x, y, 2.0, f0=f0)
    Dk = discriminator("lsgan", rbf, x, y, 2.0, f0=f0, solver="krylov")
    assert rel(Dk(p), De(p)) < 1e-6


def test_krylov_on_the_fly_matvecs_match_dense():
    # materialize=False: every Lanczos product re-evaluates kernel tiles.
    x, y, p = data(70, 50, seed=4)
    dense = discriminator("lsgan", rbf, x, y, 3.0, solver="krylov", materialize=True)
    tiled = discriminator(
        "lsgan", rbf, x, y, 3.0, solver="krylov", materialize=False, block_size=16
    )
    np.testing.assert_allclose(tiled.alpha, dense.alpha, rtol=1e-9, atol=1e-12)
    tiled_cg = discriminator(
        "lsgan", rbf, x, y, math.inf, solver="krylov", materialize=False, block_size=16,
        diag_reg=1e-2,
    )  # fmt: skip
    dense_cg = discriminator("lsgan", rbf, x, y, math.inf, solver="eigh", diag_reg=1e-2)
    assert rel(tiled_cg(p), dense_cg(p)) < 1e-6
    # The ODE solver's tiled products too.
    ode_t = discriminator("vanilla", rbf, x, y, 1.0, materialize=False, block_size=16)
    ode_d = discriminator("vanilla", rbf, x, y, 1.0)
    np.testing.assert_allclose(ode_t(p), ode_d(p), rtol=1e-9)


def test_krylov_under_jit_and_float32():
    x, y, p = data(100, 100, seed=5)
    build = jax.jit(lambda X, Y: discriminator("lsgan", rbf, X, Y, 1.0, solver="krylov"))
    Dk = build(x, y)
    De = discriminator("lsgan", rbf, x, y, 1.0)
    assert rel(Dk(p), De(p)) < 1e-6
    x32, y32, p32 = (a.astype(jnp.float32) for a in (x, y, p))
    D32 = discriminator("lsgan", rbf, x32, y32, 1.0, solver="krylov")
    assert D32.alpha.dtype == jnp.float32 and bool(D32.stats.converged)
    assert rel(D32(p32), De(p)) < 1e-4


def test_auto_krylov_falls_back_to_eigh(monkeypatch):
    import gantk.solvers as dmod

    x, y, p = data(40, 30, seed=6)
    monkeypatch.setattr(dmod, "EIGH_MAX", 10)
    De = discriminator("lsgan", rbf, x, y, 50.0, solver="eigh")
    ok = discriminator("lsgan", rbf, x, y, 50.0)
    assert ok.solver == "krylov" and not bool(ok.stats.fallback)
    assert rel(ok(p), De(p)) < 1e-6
    # A 3-vector Krylov budget cannot reach rtol: auto uses eigh instead of raising.
    fb = discriminator("lsgan", rbf, x, y, 50.0, max_steps=3)
    assert fb.solver == "krylov" and bool(fb.stats.fallback) and bool(fb.stats.converged)
    np.testing.assert_allclose(fb.alpha, De.alpha, rtol=1e-10)
    # ... while an explicit solver='krylov' raises.
    with pytest.raises(dmod.ConvergenceError, match="Lanczos"):
        discriminator("lsgan", rbf, x, y, 50.0, max_steps=3, solver="krylov")
    # differentiate_train needs eigh, which auto then picks at any size.
    assert discriminator("lsgan", rbf, x, y, 1.0, differentiate_train=True).solver == "eigh"


def test_lanczos_matfun_exact_on_small_spectrum():
    # A with 5 distinct eigenvalues: Lanczos terminates (beta = 0) after 5 steps, exactly.
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    lam = np.repeat([0.0, 0.1, 1.0, 3.0, 10.0], 8)
    a = jnp.asarray((q * lam) @ q.T)
    b = jnp.asarray(rng.normal(size=40))
    fn = lambda ev: _linalg.phi(ev, jnp.asarray(0.5), 0.0)
    x, info = _linalg.lanczos_matfun(lambda v: a @ v, b, fn, max_iter=40, rtol=1e-12)
    exact = (q * np.asarray(fn(jnp.asarray(lam)))) @ q.T @ np.asarray(b)
    np.testing.assert_allclose(x, exact, rtol=1e-10, atol=1e-12)
    assert int(info["iterations"]) <= 10 and bool(info["converged"])


def test_phi_is_stable_near_zero_and_negative():
    lam = jnp.array([-1e-14, 0.0, 1e-300, 1e-12, 1e-5, 1.0, 50.0])
    tau = jnp.asarray(2.0)
    out = _linalg.phi(lam, tau, 0.0)
    assert bool(jnp.all(jnp.isfinite(out)))
    pos = np.array([1e-300, 1e-12, 1e-5, 1.0, 50.0])
    exact = np.r_[4.0, 4.0, -np.expm1(-4.0 * pos) / pos]
    np.testing.assert_allclose(out, exact, rtol=1e-12)
    inf = _linalg.phi(lam, jnp.asarray(jnp.inf), 1e-10)
    np.testing.assert_allclose(inf, [0, 0, 0, 0, 1e5, 1.0, 1 / 50], rtol=1e-12)
