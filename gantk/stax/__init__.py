"""Closed-form infinite-width NNGP / NTK kernels, compatible with neural-tangents 0.6.5.

Each layer is an NT-style triple ``(init_fn, apply_fn, kernel_fn)``:

- ``init_fn(key, input_shape) -> (output_shape, params)`` and ``apply_fn(params, x)`` give
  the finite-width network on inputs ``x`` of shape ``(n, d)`` or ``(n, *spatial, C)``
  (channels last; a tuple of inputs for networks that start with ``parallel``);
- ``kernel_fn(x1, x2=None, get=None)`` gives its infinite-width kernels (Neal 1996;
  Lee et al. 2018; Jacot et al. 2018): ``get='nngp'`` or ``'ntk'`` returns an ``(n1, n2)``
  array, a tuple such as ``('nngp', 'ntk')`` an NT-style namedtuple (fields in the order
  asked), ``None`` the full :class:`Kernel` pytree (``nngp``, ``ntk``, ``cov1``, ``cov2``).

Spatial outputs come in NT's layouts (``diagonal_spatial=False``:
``(n1, n2, s1, s1', s2, s2', ...)``; True: ``(n1, n2, *spatial)``). Numerical conventions
are NT's (see ``docs/concepts/kernels.md``): inputs enter as
``nngp = x1 x2^T / d``, ``cov = |x|^2 / d``, ``ntk = 0``. The ReLU-family kernels have
NaN-free closed-form gradients, including at ``x1 == x2`` and at ``x = 0``.

Beyond NT, :func:`ntk` / :func:`nngp` turn a ``kernel_fn`` into a plain jitted
``k(x1, x2) -> (n1, n2)``, and :func:`blocked` evaluates such a ``k`` tile by tile.

Example (the GAN(TK)² ReLU discriminator kernel)::

    from gantk import stax
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(512, 1., 1.), stax.Relu(), stax.Dense(512, 1., 1.), stax.Relu(),
        stax.Dense(512, 1., 1.), stax.Relu(), stax.Dense(1, 1., 0.))
    k = stax.ntk(kernel_fn)        # k(x1, x2) -> (n1, n2)
"""

from gantk.stax._masking import MaskedArray, unmask_fn
from gantk.stax.activations import ABRelu, Abs, Erf, Gelu, LeakyRelu, Rbf, Relu, Sin
from gantk.stax.blocked import blocked
from gantk.stax.branching import FanInConcat, FanInProd, FanInSum, FanOut
from gantk.stax.combinators import parallel, repeat, serial
from gantk.stax.core import layer, nngp, ntk
from gantk.stax.elementwise import (
    Cos,
    Elementwise,
    ElementwiseNumerical,
    Exp,
    ExpNormalized,
    Gabor,
    Gaussian,
    Hermite,
    Monomial,
    Polynomial,
    RectifiedMonomial,
    Sigmoid_like,
    Sign,
)
from gantk.stax.kernel import Kernel, input_kernel
from gantk.stax.layers import Dense, Dropout, Flatten, Identity, Index, LayerNorm, Slice

__all__ = [
    "ABRelu",
    "Abs",
    "Cos",
    "Dense",
    "Dropout",
    "Elementwise",
    "ElementwiseNumerical",
    "Erf",
    "Exp",
    "ExpNormalized",
    "Gabor",
    "Gaussian",
    "Hermite",
    "Monomial",
    "Polynomial",
    "RectifiedMonomial",
    "Sigmoid_like",
    "Sign",
    "FanInConcat",
    "FanInProd",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Gelu",
    "Identity",
    "Index",
    "Kernel",
    "LayerNorm",
    "LeakyRelu",
    "MaskedArray",
    "Rbf",
    "Relu",
    "Sin",
    "Slice",
    "blocked",
    "input_kernel",
    "layer",
    "nngp",
    "ntk",
    "parallel",
    "repeat",
    "serial",
    "unmask_fn",
]
