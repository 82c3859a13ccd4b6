"""The shared ODE layer: convergence orders on a linear field, refinement, diffrax agreement."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from gantk.models.ode import MLPField, ODEBlock

A = np.array([[-0.3, 1.2, 0.0], [-1.0, -0.2, 0.5], [0.1, -0.4, -0.6]])
Y0 = np.array([[1.0, -0.5, 0.3], [0.2, 0.7, -1.1]])  # (batch 2, ny 3)


class LinearField(nn.Module):
    """f(y) = A y (plus B·cond when cond is given), A a parameter initialized to ``A``."""

    @nn.compact
    def __call__(self, y, cond=None):
        a = self.param("A", lambda key: jnp.asarray(A, y.dtype))
        out = y @ a.T
        if cond is not None:
            out = out + cond
        return out


def _run(method, n, delta=1.0, y0=Y0, cond=None, **kw):
    block = ODEBlock(field=LinearField, method=method, n_substeps=n, delta=delta, **kw)
    y = jnp.asarray(y0, jnp.float64)
    params = block.init(jax.random.key(0), y, cond)
    return jax.jit(block.apply)(params, y, cond)


def _exact(t, y0=Y0):
    return y0 @ scipy.linalg.expm(A * t).T


@pytest.mark.parametrize("method,order", [("euler", 1), ("rk4", 4)])
def test_convergence_order(method, order):
    ns = np.array([4, 8, 16, 32])
    delta = 1.5
    errs = [float(np.abs(np.asarray(_run(method, int(n), delta).y) - _exact(delta)).max())
            for n in ns]
    slope = np.polyfit(np.log(delta / ns), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.15, (slope, errs)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_more_substeps_refine_the_same_trajectory(method):
    # The states at shared times of a run with 2n sub-steps lie closer to the exact trajectory,
    # and the coarse and fine runs converge to each other.
    coarse = _run(method, 4)
    fine = _run(method, 8)
    sc = np.asarray(coarse.states(jnp.asarray(Y0)))  # times 0, 1/4, ..., 1
    sf = np.asarray(fine.states(jnp.asarray(Y0)))[::2]  # the same times
    exact = np.stack([_exact(t) for t in np.linspace(0, 1, 5)])
    err_c, err_f = np.abs(sc - exact).max(), np.abs(sf - exact).max()
    assert err_f < err_c * (0.6 if method == "euler" else 0.1)
    np.testing.assert_allclose(sc[0], Y0)
    np.testing.assert_allclose(sf[0], Y0)
    # the increments sum to the total change
    np.testing.assert_allclose(np.asarray(fine.increments).sum(0) + Y0, np.asarray(fine.y),
                               atol=1e-12)


def test_diffrax_agrees_with_rk4_and_exact():
    d = _run("diffrax", 4, delta=2.0, rtol=1e-10, atol=1e-10)
    r = _run("rk4", 64, delta=2.0)
    np.testing.assert_allclose(np.asarray(d.y), _exact(2.0), atol=1e-8)
    np.testing.assert_allclose(np.asarray(d.y), np.asarray(r.y), atol=1e-7)
    # diffrax increments are differences between 4 equally spaced save points
    exact_states = np.stack([_exact(t) for t in np.linspace(0, 2.0, 5)])
    np.testing.assert_allclose(np.asarray(d.increments), np.diff(exact_states, axis=0),
                               atol=1e-8)


def test_euler_is_the_residual_step_and_cond_is_held():
    cond = jnp.asarray([[0.1, 0.2, 0.3], [0.0, -0.1, 0.2]], jnp.float64)
    out = _run("euler", 2, cond=cond)
    y, incs = Y0.copy(), []
    for _ in range(2):
        inc = 0.5 * (y @ A.T + np.asarray(cond))
        incs.append(inc)
        y = y + inc
    np.testing.assert_allclose(np.asarray(out.y), y, atol=1e-12)
    np.testing.assert_allclose(np.asarray(out.increments), np.stack(incs), atol=1e-12)


def test_untied_blocks_are_distinct_and_compose():
    field = functools.partial(MLPField, hidden=8, n_layers=2, gain=1.0)
    block = ODEBlock(field=field, n_substeps=3, tied=False, delta=3.0)
    y = jnp.asarray(Y0)
    params = block.init(jax.random.key(1), y)
    names = sorted(params["params"])
    assert names == ["field_0", "field_1", "field_2"]
    k0 = params["params"]["field_0"]["dense_0"]["kernel"]
    k1 = params["params"]["field_1"]["dense_0"]["kernel"]
    assert not np.allclose(k0, k1)
    out = block.apply(params, y)
    v = y
    for name in names:  # T <- T + MLP_k(T), Δt = 1 per block
        v = v + field().apply({"params": params["params"][name]}, v)
    np.testing.assert_allclose(np.asarray(out.y), np.asarray(v), atol=1e-12)
    with pytest.raises(ValueError, match="n_substeps"):
        block.apply(params, y, n_substeps=6)


def test_tied_substeps_change_at_call_time_and_grad():
    field = functools.partial(MLPField, hidden=8, n_layers=3)
    block = ODEBlock(field=field, method="rk4", n_substeps=2)
    y = jnp.asarray(Y0)
    params = block.init(jax.random.key(2), y)
    assert list(params["params"]) == ["field"]
    a = block.apply(params, y)
    b = block.apply(params, y, n_substeps=4)
    assert b.increments.shape == (4, *y.shape)
    np.testing.assert_allclose(np.asarray(a.y), np.asarray(b.y), rtol=0.03, atol=0.01)
    g = jax.grad(lambda p: jnp.sum(block.apply(p, y).y ** 2))(params)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(g))


@pytest.mark.parametrize("kw,match", [
    (dict(n_substeps=0), "n_substeps"), (dict(delta=-1.0), "delta"),
    (dict(delta=float("nan")), "delta"), (dict(method="rk45"), "method"),
    (dict(method="diffrax", solver="Nope"), "solver"),
    (dict(method="diffrax", tied=False), "tied"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        _run(kw.pop("method", "euler"), kw.pop("n_substeps", 2), **kw)
