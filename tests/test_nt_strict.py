"""kernel_fn is strict about its arguments and answers NT's `get` fields (issue #15.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import stax

X1 = jax.random.normal(jax.random.PRNGKey(0), (5, 3), dtype=jnp.float64)
X2 = jax.random.normal(jax.random.PRNGKey(1), (4, 3), dtype=jnp.float64)
NET = stax.serial(stax.Dense(64, 1.5, 0.3), stax.Relu(), stax.Dense(8))


def test_diagonal_batch_false_returns_full_covariances():
    kfn = NET[2]
    full = kfn(X1, X2, diagonal_batch=False)
    assert full.cov1.shape == (5, 5) and full.cov2.shape == (4, 4)
    assert not full.diagonal_batch and kfn(X1, X2).diagonal_batch
    np.testing.assert_allclose(full.cov1, kfn(X1, None, "nngp"), rtol=1e-14)
    np.testing.assert_allclose(full.cov2, kfn(X2, None, "nngp"), rtol=1e-14)
    np.testing.assert_allclose(np.diag(full.cov1), kfn(X1, X2, "cov1"), rtol=1e-12)
    np.testing.assert_allclose(full.ntk, kfn(X1, X2, "ntk"), rtol=1e-14)
    same = kfn(X1, None, ("cov1", "cov2", "x1_is_x2"), diagonal_batch=False)
    assert same.cov1.shape == (5, 5) and same.cov2 is None and same.x1_is_x2
    # diagonal_spatial has no effect on rank-2 inputs (no spatial axes), as in NT.
    np.testing.assert_array_equal(kfn(X1, X2, "nngp", diagonal_spatial=True), kfn(X1, X2, "nngp"))


def test_unknown_or_invalid_keyword_arguments_raise():
    with pytest.raises(TypeError, match="unexpected keyword.*diagonal_batchh"):
        NET[2](X1, X2, diagonal_batchh=False)
    with pytest.raises(ValueError, match="diagonal_batch"):
        NET[2](X1, X2, diagonal_batch="no")
    with pytest.raises(ValueError, match="mask_constant"):
        NET[2](X1, X2, mask_constant="0")
    assert NET[2](X1, X2, "nngp", mask_constant=None).shape == (5, 4)
    with pytest.raises(ValueError, match="get"):
        NET[2](X1, X2, "covariance")


def test_get_accepts_nt_kernel_fields():
    out = NET[2](X1, X2, ("shape1", "shape2", "is_gaussian", "batch_axis", "channel_axis", "ntk"))
    assert out._fields[-1] == "ntk" and out.ntk.shape == (5, 4)
    assert out.shape1 == (5, 8) and out.shape2 == (4, 8) and out.is_gaussian
    assert (out.batch_axis, out.channel_axis) == (0, 1)
    assert NET[2](X1, None, "x1_is_x2") and not NET[2](X1, X2, "x1_is_x2")
    assert NET[2](X1, None, "mask1") is None
    assert stax.serial(stax.Dense(4), stax.Erf())[2](X1, None, "is_gaussian") is False
    # Branching networks: one value per branch.
    branches = stax.serial(stax.Dense(4), stax.FanOut(2), stax.parallel(stax.Relu(), stax.Dense(6)))
    assert branches[2](X1, None, "shape1") == [(5, 4), (5, 6)]
