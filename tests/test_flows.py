"""Particle flows: chunked scan runner, divergence guard, determinism, MMD-flow physics."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import flows
from gantk.architectures import MLPSpec


def _decay_state(x):
    return flows.FlowState(
        fake=jnp.asarray(x),
        step=jnp.asarray(0, jnp.int32),
        diverged_at=jnp.asarray(-1, jnp.int32),
        key=jax.random.key(0),
    )


def _decay_step(rate):
    """x <- x - rate * x (gradient flow of |x|^2/2); loss = mean |x|^2 / 2."""

    def step(state, args):
        new = state.fake - rate * state.fake
        fake, div = flows.guard(new, state.fake, state.step, state.diverged_at)
        return state._replace(fake=fake, step=state.step + 1, diverged_at=div), 0.5 * jnp.mean(
            jnp.sum(state.fake**2, 1)
        )

    return step


def test_run_chunked_matches_closed_form_and_is_chunk_invariant():
    x0 = np.linspace(-1, 1, 12).reshape(6, 2)
    res = flows.run_chunked(_decay_step(0.1), _decay_state(x0), None, 37, chunk_size=10,
                            progress=False)
    np.testing.assert_allclose(res.state.fake, x0 * 0.9**37, rtol=1e-12)
    assert res.steps_done == 37 and int(res.state.step) == 37 and res.stopped is None
    assert res.gen_loss.shape == (37,)
    # per-step losses are the exact decay sequence
    expected = 0.5 * np.mean(np.sum(x0**2, 1)) * 0.81 ** np.arange(37)
    np.testing.assert_allclose(res.gen_loss, expected, rtol=1e-12)
    # different chunking, identical trajectory (bit for bit)
    res2 = flows.run_chunked(_decay_step(0.1), _decay_state(x0), None, 37, chunk_size=7,
                             progress=False)
    assert np.array_equal(np.asarray(res.state.fake), np.asarray(res2.state.fake))


def test_on_chunk_sees_every_boundary_and_can_stop():
    seen = []

    def cb(state, done, losses):
        seen.append((done, int(state.step), losses.shape[0]))
        return done >= 20

    res = flows.run_chunked(_decay_step(0.1), _decay_state(np.ones((2, 2))), None, 50,
                            chunk_size=10, on_chunk=cb, progress=False)
    assert seen == [(10, 10, 10), (20, 20, 10)]
    assert res.stopped == "callback" and res.steps_done == 20


def test_divergence_keeps_last_finite_state_and_names_step():
    def step(state, args):
        # blows up to inf at the 5th step (index 4)
        new = jnp.where(state.step == 4, jnp.inf, state.fake + 1.0)
        fake, div = flows.guard(new, state.fake, state.step, state.diverged_at)
        return state._replace(fake=fake, step=state.step + 1, diverged_at=div), jnp.float32(0)

    res = flows.run_chunked(step, _decay_state(np.zeros((3, 2))), None, 30, chunk_size=3,
                            progress=False)
    assert res.stopped == "diverged"
    assert int(res.state.diverged_at) == 4
    np.testing.assert_array_equal(res.state.fake, np.full((3, 2), 4.0))  # last finite
    assert res.steps_done == 6  # stops at the end of the chunk that diverged


def test_interrupt_stops_at_last_completed_chunk():
    def cb(state, done, losses):
        if done == 20:
            raise KeyboardInterrupt

    res = flows.run_chunked(_decay_step(0.5), _decay_state(np.ones((2, 2))), None, 100,
                            chunk_size=10, on_chunk=cb, progress=False)
    assert res.stopped == "interrupted" and res.steps_done == 20
    np.testing.assert_allclose(res.state.fake, 0.5**20, rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_steps": -1}, "n_steps"), ({"n_steps": 3, "chunk_size": 0}, "chunk_size")],
)
def test_run_chunked_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        flows.run_chunked(_decay_step(0.1), _decay_state(np.ones((2, 2))), None, **kwargs)


def test_step_size_from_eta():
    assert flows.step_size_from_eta(1000, 500) == 2.0
    with pytest.raises(ValueError, match="eta"):
        flows.step_size_from_eta(-1.0, 10)
    with pytest.raises(ValueError, match="n_particles"):
        flows.step_size_from_eta(1.0, 0)


def _rbf(x, y):
    d2 = jnp.sum(x**2, 1)[:, None] + jnp.sum(y**2, 1)[None, :] - 2 * x @ y.T
    return jnp.exp(-0.5 * d2)


def test_ipm_flow_step_is_mmd_gradient_step():
    """One IPM step moves particles by h * tau * grad_x (mean_y k - mean_x' k) (MMD flow)."""
    key = jax.random.key(1)
    x = jax.random.normal(key, (7, 2))
    y = jax.random.normal(jax.random.fold_in(key, 1), (5, 2)) + 2.0
    tau, h = 0.7, 0.3
    res = flows.particle_flow(x, y, loss="ipm", kernel=_rbf, time=tau, step_size=h, n_steps=1,
                              progress=False)

    def witness(p):  # train set held fixed
        return tau * (jnp.mean(_rbf(p[None], y)) - jnp.mean(_rbf(p[None], x)))

    v = jax.vmap(jax.grad(witness))(x)
    np.testing.assert_allclose(res.state.fake, x + h * v, rtol=1e-10, atol=1e-12)
    # the recorded generator loss is mean c(f) = -mean f = -tau * (MMD^2 cross terms)
    np.testing.assert_allclose(res.gen_loss[0], -jnp.mean(jax.vmap(witness)(x)), rtol=1e-10)


def test_ipm_flow_decreases_mmd_and_is_deterministic():
    key = jax.random.key(2)
    x = jax.random.normal(key, (40, 2))
    y = jax.random.normal(jax.random.fold_in(key, 1), (40, 2)) * 0.5 + jnp.array([3.0, 0.0])

    def mmd2(a, b):
        return jnp.mean(_rbf(a, a)) + jnp.mean(_rbf(b, b)) - 2 * jnp.mean(_rbf(a, b))

    seen = [float(mmd2(x, y))]

    def record(state, done, losses):
        seen.append(float(mmd2(state.fake, y)))

    kw = dict(loss="ipm", kernel=_rbf, time=1.0, eta=40.0, n_steps=200, chunk_size=25,
              progress=False)
    res = flows.particle_flow(x, y, on_chunk=record, **kw)
    res2 = flows.particle_flow(x, y, **kw)
    assert np.array_equal(np.asarray(res.state.fake), np.asarray(res2.state.fake))
    # MMD^2 is the Lyapunov function of the MMD flow: it decreases at every chunk boundary
    assert np.all(np.diff(seen) < 0), seen
    assert seen[-1] < 0.1 * seen[0], seen
    # first recorded generator loss: mean c(f) = -tau (mean k(x, y) - mean k(x, x'))
    g0 = -(jnp.mean(_rbf(x, y)) - jnp.mean(_rbf(x, x)))
    np.testing.assert_allclose(res.gen_loss[0], g0, rtol=1e-10)
    assert math.isfinite(res.wall_time)


def test_particle_flow_validates():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="exactly one"):
        flows.particle_flow(x, x, kernel=_rbf, n_steps=1, progress=False)
    with pytest.raises(ValueError, match="real"):
        flows.particle_flow(x, np.zeros((4, 3)), kernel=_rbf, eta=1.0, n_steps=1,
                            progress=False)


def test_flow_step_returns_the_fitted_discriminator_for_both_widths():
    """One step builder for both regimes; the step's discriminator is the one that moved
    the particles, so a figure can use it without fitting again."""
    key = jax.random.key(3)
    x = jax.random.normal(key, (6, 2))
    y = jax.random.normal(jax.random.fold_in(key, 1), (5, 2)) + 1.0
    spec = MLPSpec("relu", depth=2, width=16)
    infinite = flows.InfiniteWidthFit("lsgan", _rbf, 0.5)
    finite = flows.FiniteWidthFit("lsgan", spec, 0.5, 0.1)
    for fit in (infinite, finite):
        state = flows.FlowState(x, jnp.asarray(0), jnp.asarray(-1), key,
                                fit.init(jax.random.fold_in(key, 2), 2))
        step = flows.flow_step(fit, 0.3)
        seen = []
        res = flows.run_chunked(step, state, y, 3, chunk_size=1, progress=False,
                                on_chunk=lambda s, done, out, seen=seen: seen.append((s, out)))
        assert len(seen) == 3 and seen[0][1].gen_loss.shape == (1,)
        # chunk 1: D was fitted on x and moved it by h v(x); gen_loss is mean c(f(x))
        D = seen[0][1].discriminator
        gen_loss, v = D.value_and_velocity(x)
        np.testing.assert_allclose(seen[0][0].fake, x + 0.3 * v, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(seen[0][1].gen_loss[0], jnp.mean(gen_loss), rtol=1e-12)
        assert (seen[0][0].disc_params is None) == (fit is infinite)
        # the result holds the last step's discriminator, fitted on the particles of step 2
        np.testing.assert_array_equal(res.discriminator(x), seen[-1][1].discriminator(x))
        last_v = res.discriminator.velocity(seen[1][0].fake)
        np.testing.assert_allclose(res.state.fake, seen[1][0].fake + 0.3 * last_v,
                                   rtol=1e-12, atol=1e-14)
