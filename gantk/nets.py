"""Finite-width twins of the infinite-width discriminators, and the empirical NTK.

The infinite-width analysis of Franceschi et al. (*A Neural Tangent Kernel Perspective of
GANs*, ICML 2022) describes a discriminator trained by gradient descent in the NTK regime.
This module provides the finite networks that regime is a limit of, built from the **same**
:class:`~gantk.architectures.MLPSpec` as the kernel, so that the two can be compared:

- :func:`mlp_from_spec` — a scalar-output flax MLP with exactly the layout and
  parameterization of :meth:`MLPSpec.stax` (``'ntk'`` or ``'standard'``);
  ``antisymmetric=True`` gives the wrapper ``f = (f_θ − f_θ′)/√2`` with ``θ′ = θ`` at
  initialization, so that ``f₀ ≡ 0`` while the NTK at initialization is unchanged (the
  paper's setting of a discriminator that starts from zero, Section 4).
- :func:`empirical_ntk` — ``K_θ(x1, x2) = ∂_θ f(x1) · ∂_θ f(x2)`` by Jacobian contraction or
  by NTK-vector products.
- :func:`init_discriminator`, :func:`fit_finite_discriminator` — plain SGD on the
  discriminator loss ``L(f) = mean_fake a(f) + mean_real b(f)`` for ``round(τ/lr)`` steps;
  at continuous time ``t = steps · lr`` the trained net approaches the infinite-width
  ``f_τ`` of :func:`gantk.discriminator` as the width grows.
- :class:`MLPGenerator`, :func:`init_generator`, :func:`check_generator_output` — a
  parametric generator for GAN training with a finite generator.

Why ``flax.linen``: linen keeps parameters in a plain pytree (a nested dict) separate from
the module, so every function here is a pure function of ``(params, x)``. That is what
:func:`jax.jacrev`/:func:`jax.jvp` need for the empirical NTK, what :func:`jax.lax.scan`
needs to run SGD inside ``jit``, and what gantk's pytree-state design (flows carry the
discriminator parameters in their state) expects.

Parameterization (as in neural-tangents' ``stax.Dense``): with ``'ntk'``, weights and
biases are ``N(0, 1)`` and a layer computes ``W_std/√fan_in · x @ W + b_std · b``; with
``'standard'`` the same draws are scaled at initialization, ``W ~ N(0, W_std²/fan_in)``,
``b ~ N(0, b_std²)``, and the layer is ``x @ W + b``. A layer with ``b_std = 0`` has no
bias parameter at all (its gradient would be zero under ``'ntk'``). The NTK of the ``'ntk'``
net converges to :meth:`MLPSpec.k`; the ``'standard'`` net computes the same function at
initialization but has a differently scaled (width-dependent) tangent kernel.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from gantk import losses
from gantk._validate import (
    as_points,
    check_choice,
    check_int,
    check_nonneg,
    check_positive,
    check_positive_int,
)
from gantk.architectures import MLPSpec
from gantk.solution import AbstractDiscriminator

__all__ = [
    "NTK_IMPLEMENTATIONS",
    "MLP",
    "AntisymmetricMLP",
    "FiniteDiscriminator",
    "MLPGenerator",
    "activation_fn",
    "check_generator_output",
    "discriminator_apply",
    "empirical_ntk",
    "fit_finite_discriminator",
    "init_discriminator",
    "init_generator",
    "mlp_from_spec",
]

Params = Any

#: Valid ``implementation`` values of :func:`empirical_ntk`.
NTK_IMPLEMENTATIONS: tuple[str, ...] = ("jacobian", "ntvp")


# --------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------


def activation_fn(spec: MLPSpec) -> Callable[[Array], Array]:
    """The elementwise activation of ``spec``, with the conventions of :mod:`gantk.stax`.

    ``relu``: ``max(x, 0)``; ``leaky_relu``: ``x`` if ``x > 0`` else ``alpha·x``; ``abs``;
    ``abrelu``: ``a·min(x, 0) + b·max(x, 0)``; ``erf``: ``a·erf(b·x) + c``; ``gelu``: exact
    ``x·Φ(x)``; ``sin``: ``a·sin(b·x + c)``; ``rbf``: ``√2·sin(√(2γ)·x + π/4)`` (random
    Fourier features whose NNGP is ``exp(−γ‖x − y‖²)``); ``identity``.

    Args:
        spec: the architecture; parameters come from ``spec.activation_params``.

    Returns:
        A function mapping an array to an array of the same shape.
    """
    p = spec.activation_params
    name = spec.activation
    if name == "relu":
        return jax.nn.relu
    if name == "leaky_relu":
        alpha = p["alpha"]
        return lambda x: jnp.where(x > 0, x, alpha * x)
    if name == "abs":
        return jnp.abs
    if name == "abrelu":
        a, b = p["a"], p["b"]
        return lambda x: a * jnp.minimum(x, 0) + b * jnp.maximum(x, 0)
    if name == "erf":
        a, b, c = p["a"], p["b"], p["c"]
        return lambda x: a * jax.scipy.special.erf(b * x) + c
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    if name == "sin":
        a, b, c = p["a"], p["b"], p["c"]
        return lambda x: a * jnp.sin(b * x + c)
    if name == "rbf":
        freq = math.sqrt(2.0 * p["gamma"])
        return lambda x: math.sqrt(2.0) * jnp.sin(freq * x + math.pi / 4)
    if name == "identity":
        return lambda x: x
    raise ValueError(f"`activation` {name!r} has no finite-width implementation.")  # unreachable


# --------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------


class _Dense(nn.Module):
    """Dense layer with neural-tangents' ``'ntk'``/``'standard'`` parameterization."""

    features: int
    W_std: float
    b_std: float
    parameterization: str

    @nn.compact
    def __call__(self, x: Array) -> Array:
        fan_in = x.shape[-1]
        ntk = self.parameterization == "ntk"
        w_scale = self.W_std / math.sqrt(fan_in)
        w_init = nn.initializers.normal(1.0 if ntk else w_scale)
        kernel = self.param("kernel", w_init, (fan_in, self.features), x.dtype)
        y = w_scale * (x @ kernel) if ntk else x @ kernel
        if self.b_std > 0:
            b_init = nn.initializers.normal(1.0 if ntk else self.b_std)
            bias = self.param("bias", b_init, (self.features,), x.dtype)
            y = y + (self.b_std * bias if ntk else bias)
        return y


#: The point validator (``as_points`` checks finiteness on the host, also for concrete
#: arrays closed over inside ``jit``); the name is kept for :func:`empirical_ntk`.
_as_points = as_points


def _as_float_input(x: Array) -> Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


class MLP(nn.Module):
    """Scalar-output MLP with the layout of :meth:`MLPSpec.stax`.

    ``Dense(width) → [act → Dense(width)] × (depth − 1) → act → Dense(1)``, the hidden
    layers with ``(W_std, b_std)`` and the read-out with ``(readout_W_std, out_b_std)``.
    Parameters are named ``hidden_0 … hidden_{depth−1}`` and ``readout``; they are created
    with the dtype of the input (float64 input gives float64 parameters).

    Attributes:
        spec: the architecture.
        width: hidden width (use :func:`mlp_from_spec` to default it to ``spec.width``).

    Call:
        ``x`` of shape ``(n, d)`` → ``f(x)`` of shape ``(n,)``.
    """

    spec: MLPSpec
    width: int

    @nn.compact
    def __call__(self, x: Float[Array, "n d"]) -> Float[Array, " n"]:
        """Evaluate the network on ``x`` of shape ``(n, d)``; returns shape ``(n,)``."""
        x = _as_float_input(x)
        if x.ndim != 2:
            raise ValueError(f"`x` must have shape (n, d); got shape {tuple(x.shape)}.")
        s = self.spec
        act = activation_fn(s)
        dense = dict(W_std=s.W_std, b_std=s.b_std, parameterization=s.parameterization)
        h = _Dense(self.width, **dense, name="hidden_0")(x)
        for i in range(1, s.depth):
            h = _Dense(self.width, **dense, name=f"hidden_{i}")(act(h))
        out = _Dense(
            1,
            W_std=s.readout_W_std,
            b_std=s.out_b_std,
            parameterization=s.parameterization,
            name="readout",
        )(act(h))
        return out[:, 0]


class AntisymmetricMLP(nn.Module):
    """Antisymmetric twin ``f = (f_θ − f_θ′)/√2`` of :class:`MLP`, with ``θ′ = θ`` at init.

    Both copies are trained. Because ``θ′ = θ`` at initialization, ``f₀ ≡ 0`` exactly, and
    the tangent kernel at initialization is ``(K_θ + K_θ′)/2 = K_θ``: the wrapper removes
    the random initial function without changing the NTK (Franceschi et al., Section 4,
    discriminators initialized at zero). Parameters: ``{'a': θ, 'b': θ′}``.

    Attributes:
        spec: the architecture.
        width: hidden width.

    Call:
        ``x`` of shape ``(n, d)`` → ``f(x)`` of shape ``(n,)``.
    """

    spec: MLPSpec
    width: int

    @nn.compact
    def __call__(self, x: Float[Array, "n d"]) -> Float[Array, " n"]:
        """Evaluate ``(f_θ(x) − f_θ′(x))/√2``; ``x`` of shape ``(n, d)`` → ``(n,)``."""
        x = _as_float_input(x)
        net_a = MLP(self.spec, self.width, name="a")
        f_a = net_a(x)
        theta = net_a.variables["params"]
        theta_b = self.param("b", lambda _key: jax.tree.map(jnp.array, theta))
        f_b = MLP(self.spec, self.width, parent=None).apply({"params": theta_b}, x)
        return (f_a - f_b) / math.sqrt(2.0)


def mlp_from_spec(
    spec: MLPSpec, width: int | None = None, *, antisymmetric: bool = False
) -> nn.Module:
    """Finite-width flax twin of ``spec.stax()``.

    Args:
        spec: the architecture (activation, depth, ``W_std``, ``b_std``, read-out,
            parameterization).
        width: hidden width; defaults to ``spec.width``.
        antisymmetric: return the :class:`AntisymmetricMLP` wrapper (``f₀ ≡ 0``) instead of
            the plain :class:`MLP`.

    Returns:
        A linen module; ``module.init(key, x)`` / ``module.apply(variables, x)`` map
        ``x`` of shape ``(n, d)`` to ``(n,)``.

    Raises:
        ValueError: if ``spec`` is not an :class:`MLPSpec` or ``width`` is not an integer
            ``>= 1``.
    """
    if not isinstance(spec, MLPSpec):
        raise ValueError(f"`spec` must be an MLPSpec; got {type(spec).__name__}.")
    width = spec.width if width is None else check_positive_int(width, "width")
    cls = AntisymmetricMLP if antisymmetric else MLP
    return cls(spec, width)


def discriminator_apply(
    spec: MLPSpec, *, antisymmetric: bool = False, width: int | None = None
) -> Callable[[Params, Array], Array]:
    """Pure ``apply_fn(params, x) -> (n,)`` of the net :func:`mlp_from_spec` builds.

    ``params`` is the ``'params'`` collection (what :func:`init_discriminator` returns); the
    result plugs directly into :func:`empirical_ntk`.

    Raises:
        ValueError: as :func:`mlp_from_spec`.
    """
    module = mlp_from_spec(spec, width, antisymmetric=antisymmetric)
    return functools.partial(_apply_module, module)


def _apply_module(module: nn.Module, params: Params, x: Array) -> Array:
    return module.apply({"params": params}, x)


# --------------------------------------------------------------------------------------
# Empirical NTK
# --------------------------------------------------------------------------------------


def _check_scalar_output(out: Any, n: int) -> None:
    shape = getattr(out, "shape", None)
    if shape is None or tuple(shape) != (n,):
        raise ValueError(
            "`apply_fn` must map (params, x of shape (n, d)) to a scalar output per point of "
            f"shape (n,) = ({n},); got {shape if shape is not None else type(out).__name__}."
        )


def empirical_ntk(
    apply_fn: Callable[[Params, Array], Array], implementation: str = "jacobian"
) -> Callable[..., Float[Array, "n1 n2"]]:
    """Empirical (finite-width) neural tangent kernel of a scalar-output network.

    ``K_θ(x1, x2)[i, j] = Σ_p ∂f(x1_i)/∂θ_p · ∂f(x2_j)/∂θ_p`` — the finite-width quantity
    whose infinite-width limit is the NTK of Jacot et al. (2018) that drives the
    discriminator dynamics of Franceschi et al. (ICML 2022, Eq. 7).

    Args:
        apply_fn: ``apply_fn(params, x) -> f`` with ``x`` of shape ``(n, d)`` and ``f`` of
            shape ``(n,)`` (e.g. :func:`discriminator_apply`).
        implementation: ``'jacobian'`` contracts the two Jacobians ``∂f/∂θ`` (one
            gradient per example, ``vmap`` of ``grad``; this assumes the network treats
            examples independently — no batch statistics) over every parameter leaf —
            memory ``O(n · P)``;
            ``'ntvp'`` computes NTK-vector products ``J1 (J2ᵀ e_j)`` (a VJP through the
            ``x2`` network followed by a JVP through the ``x1`` network) one column at a
            time — memory ``O(P)``, suited to wide nets.

    Returns:
        ``ntk_fn(x1, x2, params) -> K`` with ``x1`` of shape ``(n1, d)``, ``x2`` of shape
        ``(n2, d)`` or None (meaning ``x1``), and ``K`` of shape ``(n1, n2)``. Pure, so it
        can be jitted (with ``params`` a traced argument).

    Raises:
        ValueError: on an unknown ``implementation`` (listing the valid ones); and, when
            ``ntk_fn`` is called, on ``x1``/``x2`` that are not ``(n, d)`` arrays, whose
            feature dimensions differ, or on an ``apply_fn`` whose output is not ``(n,)``.
    """
    check_choice(implementation, "implementation", NTK_IMPLEMENTATIONS)
    if not callable(apply_fn):
        raise ValueError(f"`apply_fn` must be callable; got {type(apply_fn).__name__}.")

    def contract(x1: Array, x2: Array | None, params: Params) -> Array:
        same = x2 is None
        x2 = x1 if same else x2
        n1, n2 = x1.shape[0], x2.shape[0]
        if implementation == "jacobian":
            j1 = _per_example_jacobian(apply_fn, params, x1)
            j2 = j1 if same else _per_example_jacobian(apply_fn, params, x2)
            blocks = jax.tree.map(lambda a, b: a.reshape(n1, -1) @ b.reshape(n2, -1).T, j1, j2)
            return sum(jax.tree.leaves(blocks))
        # 'ntvp': column j = J1 (J2ᵀ e_j), one VJP and one JVP per column
        out2, vjp2 = jax.vjp(lambda p: apply_fn(p, x2), params)

        def column(e: Array) -> Array:
            (cotangent,) = vjp2(e)
            return jax.jvp(lambda p: apply_fn(p, x1), (params,), (cotangent,))[1]

        return jax.lax.map(column, jnp.eye(n2, dtype=out2.dtype)).T

    contract_jit = jax.jit(contract)

    def ntk_fn(x1: Array, x2: Array | None, params: Params) -> Array:
        x1 = _as_points(x1, "x1")
        if x2 is not None:
            x2 = _as_points(x2, "x2", dim=x1.shape[1], dim_name="x1")
        _check_scalar_output(jax.eval_shape(apply_fn, params, x1), x1.shape[0])
        return contract_jit(x1, x2, params)

    return ntk_fn


# --------------------------------------------------------------------------------------
# Finite-width discriminator training
# --------------------------------------------------------------------------------------


def _per_example_jacobian(apply_fn: Callable, params: Params, x: Array) -> Params:
    """``∂f(x_i)/∂θ`` for every row ``x_i``, leaves of shape ``(n, *leaf.shape)``.

    One gradient per example (``vmap`` of ``grad`` on a batch of one): ``O(n·P)`` work,
    where ``jacrev`` of the batched network would back-propagate every one-hot cotangent
    through the whole batch (``O(n²·P)``). Exact for networks that treat examples
    independently, as every network in :mod:`gantk.nets` does.
    """
    return jax.vmap(jax.grad(lambda p, xi: apply_fn(p, xi[None])[0]), in_axes=(None, 0))(
        params, x)


def _is_antisymmetric_params(params: Params) -> bool:
    return isinstance(params, dict) and set(params) == {"a", "b"}


def _param_dtype(dtype: Any) -> Any:
    return jnp.result_type(float) if dtype is None else jnp.dtype(dtype)


def init_discriminator(
    key: Array,
    spec: MLPSpec,
    d: int,
    *,
    antisymmetric: bool = True,
    dtype: Any = None,
) -> Params:
    """Initialize the parameters of the finite-width discriminator described by ``spec``.

    Args:
        key: a JAX PRNG key.
        spec: the architecture; the hidden width is ``spec.width``.
        d: input (data) dimension.
        antisymmetric: initialize the :class:`AntisymmetricMLP` (``f₀ ≡ 0``, parameters
            ``{'a': θ, 'b': θ}``) instead of the plain :class:`MLP`; ``θ`` is the plain
            net's initialization with the same ``key``.
        dtype: parameter dtype; defaults to JAX's default float (float64 under x64).

    Returns:
        The ``'params'`` pytree (a nested dict).

    Raises:
        ValueError: if ``spec`` is not an :class:`MLPSpec` or ``d`` is not an integer >= 1.
    """
    d = check_positive_int(d, "d")
    module = mlp_from_spec(spec)
    x = jnp.zeros((1, d), _param_dtype(dtype))
    theta = module.init(key, x)["params"]
    if antisymmetric:
        return {"a": theta, "b": jax.tree.map(jnp.array, theta)}
    return theta


def _input_dim(params: Params, antisymmetric: bool) -> int:
    inner = params["a"] if antisymmetric else params
    return int(inner["hidden_0"]["kernel"].shape[0])


def _check_params(params: Params, spec: MLPSpec, antisymmetric: bool | None) -> bool:
    """Validate ``params`` against ``spec``; return whether they are antisymmetric."""
    inferred = _is_antisymmetric_params(params)
    if antisymmetric is not None and bool(antisymmetric) != inferred:
        kind = "an antisymmetric ({'a', 'b'})" if inferred else "a plain MLP"
        raise ValueError(
            f"`antisymmetric={antisymmetric}` does not match `params`, which hold {kind} "
            "discriminator's parameters."
        )
    try:
        d = _input_dim(params, inferred)
    except (KeyError, TypeError, IndexError, AttributeError) as err:
        raise ValueError(
            "`params` must be the parameter pytree returned by `init_discriminator`; "
            f"got {type(params).__name__} without a 'hidden_0' layer."
        ) from err
    module = mlp_from_spec(spec, antisymmetric=inferred)
    leaf = jax.tree.leaves(params)[0]
    expected = jax.eval_shape(
        lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, d), leaf.dtype))["params"]
    )
    exp_shapes = jax.tree.map(lambda t: tuple(t.shape), expected)
    got_shapes = jax.tree.map(lambda t: tuple(jnp.shape(t)), params)
    if exp_shapes != got_shapes:
        raise ValueError(
            f"`params` do not match `spec` (width={spec.width}, depth={spec.depth}, "
            f"b_std={spec.b_std}, out_b_std={spec.out_b_std}); expected parameter shapes "
            f"{exp_shapes}, got {got_shapes}."
        )
    return inferred


class _ByIdentity:
    """Hashable-by-identity holder, to pass an unhashable loss as a static jit argument."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.obj is self.obj


def _static_loss(loss: Any) -> Any:
    try:
        hash(loss)
    except TypeError:
        return _ByIdentity(loss)
    return loss


def _unwrap(loss: Any) -> Any:
    return loss.obj if isinstance(loss, _ByIdentity) else loss


def _resolve_loss(loss: Any) -> Any:
    return losses.get(loss)


def _readout_mask(params: Params) -> Params:
    """Boolean pytree: True on read-out parameters (the NNGP regime trains only those)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: any(getattr(k, "key", None) == "readout" for k in path), params
    )


@functools.partial(
    jax.jit, static_argnames=("spec", "antisymmetric", "loss", "steps", "readout_only")
)
def _train(
    params: Params,
    fake: Array,
    real: Array,
    lr: Array,
    *,
    spec: MLPSpec,
    antisymmetric: bool,
    loss: Any,
    steps: int,
    readout_only: bool,
) -> Params:
    loss_ = _unwrap(loss)
    apply = discriminator_apply(spec, antisymmetric=antisymmetric)

    def objective(p: Params) -> Array:
        return jnp.mean(loss_.a(apply(p, fake))) + jnp.mean(loss_.b(apply(p, real)))

    opt = optax.sgd(lr)
    if readout_only:
        mask = _readout_mask(params)
        opt = optax.chain(optax.masked(opt, mask), optax.masked(optax.set_to_zero(), _not(mask)))
    state = opt.init(params)

    def step(carry: tuple[Params, Any], _: None) -> tuple[tuple[Params, Any], None]:
        p, s = carry
        grads = jax.grad(objective)(p)
        updates, s = opt.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), None

    (params, _), _ = jax.lax.scan(step, (params, state), None, length=steps)
    return params


def _not(mask: Params) -> Params:
    return jax.tree.map(lambda m: not m, mask)


class FiniteDiscriminator(AbstractDiscriminator):
    """A trained finite-width discriminator (a pytree; ``params`` is its only leaf node).

    The finite-width implementation of :class:`gantk.solution.AbstractDiscriminator` (the
    infinite-width one is :class:`gantk.solution.Discriminator`): calling it evaluates
    ``f(x)``; :meth:`velocity` gives the particle velocity ``−∇_x c(f(x))`` of Franceschi
    et al. (ICML 2022, Eq. 5) with the gradient taken through the trained net.

    Attributes:
        params: trained parameters (pytree).
        spec: the architecture (static).
        antisymmetric: whether ``params`` are those of :class:`AntisymmetricMLP` (static).
        trained_with: the loss it was trained with, as a static (hashable) value; read it
            as :attr:`loss`.
        steps: number of SGD steps taken (static).
        lr: SGD learning rate (static).
    """

    params: Params
    spec: MLPSpec = eqx.field(static=True)
    antisymmetric: bool = eqx.field(static=True)
    trained_with: Any = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    lr: float = eqx.field(static=True)

    @property
    def loss(self) -> Any:
        """The :class:`gantk.losses.Loss` it was trained with."""
        return _unwrap(self.trained_with)

    @property
    def carry(self) -> Params:
        """The trained parameters, from which a flow's next fit starts."""
        return self.params

    @property
    def time(self) -> float:
        """Continuous training time ``t = steps · lr``."""
        return self.steps * self.lr

    @property
    def dim(self) -> int:
        """Input dimension ``d``."""
        return _input_dim(self.params, self.antisymmetric)

    def _points(self, points: Array) -> Array:
        return as_points(points, "points", dim=self.dim, dim_name="the training data")

    def _apply(self, x: Array) -> Array:
        return discriminator_apply(self.spec, antisymmetric=self.antisymmetric)(self.params, x)

    def __call__(self, points: Float[Array, "q d"]) -> Float[Array, " q"]:
        """Evaluate ``f(points)``; ``points`` of shape ``(q, d)`` → ``(q,)``.

        Raises:
            ValueError: if ``points`` is not ``(q, d)`` with the training dimension.
        """
        return self._apply(self._points(points))

    def value_and_gradient(
        self, points: Float[Array, "q d"]
    ) -> tuple[Float[Array, " q"], Float[Array, "q d"]]:
        """``(f(points) (q,), ∇_x f(points) (q, d))`` in one forward/backward pass.

        The MLP acts on each point independently, so the input gradient of ``Σ_i f(x_i)``
        has row ``i`` equal to ``∇ f(x_i)``.

        Raises:
            ValueError: if ``points`` is not ``(q, d)`` with the training dimension.
        """
        values, pullback = jax.vjp(self._apply, self._points(points))
        (grad,) = pullback(jnp.ones_like(values))
        return values, grad


def fit_finite_discriminator(
    loss: Any,
    spec: MLPSpec,
    params: Params,
    fake: Float[Array, "n d"],
    real: Float[Array, "m d"],
    time: float,
    lr: float,
    *,
    antisymmetric: bool | None = None,
    steps: int | None = None,
) -> FiniteDiscriminator:
    """Train a finite-width discriminator with plain SGD for continuous time ``time``.

    Minimizes ``L(θ) = mean_fake a(f_θ) + mean_real b(f_θ)`` (Franceschi et al., ICML 2022,
    Eq. 3, with the losses of :mod:`gantk.losses`) by full-batch SGD with step ``lr`` for
    ``round(time / lr)`` steps, inside a jitted :func:`jax.lax.scan`. In the NTK regime the
    parameter-space gradient step moves ``f`` by ``−lr · K_θ ∇_f L``, so at ``t = steps · lr``
    the trained net approaches the infinite-width ``f_τ`` (Eq. 7) of
    :func:`gantk.discriminator` as width grows and ``lr → 0``. If ``spec.kernel == 'nngp'``
    only the read-out layer is trained, whose tangent kernel is the NNGP.

    GAN(TK)²'s single-step mode (one SGD step per generator step with a persistent
    discriminator) is ``steps=1`` with the previous ``D.params`` passed back in.

    Args:
        loss: anything :func:`gantk.losses.get` accepts (a name, a ``Loss``, ``(a, b, c)``).
        spec: the architecture the parameters belong to.
        params: initial parameters (from :func:`init_discriminator` or a previous
            :attr:`FiniteDiscriminator.params`).
        fake: generated particles, shape ``(n, d)``.
        real: target samples, shape ``(m, d)``.
        time: continuous training time ``τ >= 0``; ignored when ``steps`` is given.
        lr: SGD learning rate ``> 0``.
        antisymmetric: whether ``params`` are antisymmetric; None infers it from their
            structure (``{'a', 'b'}``).
        steps: number of SGD steps, overriding ``round(time / lr)`` (``>= 0``).

    Returns:
        The trained :class:`FiniteDiscriminator`.

    Raises:
        ValueError: on a bad ``loss``, ``params`` that do not match ``spec`` or
            ``antisymmetric``, ``fake``/``real`` that are not finite ``(n, d)`` arrays of
            the discriminator's input dimension, a negative ``time``, a non-positive
            ``lr`` or a negative ``steps``.
    """
    if not isinstance(spec, MLPSpec):
        raise ValueError(f"`spec` must be an MLPSpec; got {type(spec).__name__}.")
    loss = _resolve_loss(loss)
    anti = _check_params(params, spec, antisymmetric)
    d = _input_dim(params, anti)
    fake = _as_points(fake, "fake", dim=d, dim_name="params (discriminator input)")
    real = _as_points(real, "real", dim=d, dim_name="fake")
    check_positive(lr, "lr")
    if steps is None:
        check_nonneg(time, "time")
        steps = int(round(float(time) / float(lr)))
    else:
        steps = check_int(steps, "steps")
    dtype = jax.tree.leaves(params)[0].dtype
    trained = _train(
        params,
        fake.astype(dtype),
        real.astype(dtype),
        jnp.asarray(lr, dtype),
        spec=spec,
        antisymmetric=anti,
        loss=_static_loss(loss),
        steps=steps,
        readout_only=spec.kernel == "nngp",
    )
    return FiniteDiscriminator(trained, spec, anti, _static_loss(loss), steps, float(lr))


# --------------------------------------------------------------------------------------
# Parametric generator
# --------------------------------------------------------------------------------------


class MLPGenerator(nn.Module):
    """Parametric MLP generator ``z ↦ g(z)`` for GAN training with a finite generator.

    ``latent_dim → [Dense(width) → relu] × depth → Dense(out_dim) [→ tanh]`` with flax's
    default (LeCun-normal) initialization. ``tanh_output=True`` maps into ``[−1, 1]`` for
    images scaled to that range.

    Attributes:
        latent_dim: dimension of the latent noise ``z``.
        out_dim: dimension of generated samples (must equal the data dimension).
        width: hidden width.
        depth: number of hidden layers (``>= 0``).
        tanh_output: apply ``tanh`` to the output.

    Call:
        ``z`` of shape ``(n, latent_dim)`` → samples of shape ``(n, out_dim)``.
    """

    latent_dim: int
    out_dim: int
    width: int = 128
    depth: int = 2
    tanh_output: bool = False

    @nn.compact
    def __call__(self, z: Float[Array, "n latent"]) -> Float[Array, "n out"]:
        """Map latent codes ``(n, latent_dim)`` to samples ``(n, out_dim)``."""
        z = _as_float_input(z)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"`z` must have shape (n, latent_dim={self.latent_dim}); "
                f"got shape {tuple(z.shape)}."
            )
        h = z
        for i in range(self.depth):
            h = jax.nn.relu(nn.Dense(self.width, param_dtype=z.dtype, name=f"hidden_{i}")(h))
        out = nn.Dense(self.out_dim, param_dtype=z.dtype, name="out")(h)
        return jnp.tanh(out) if self.tanh_output else out


def init_generator(key: Array, generator: MLPGenerator, *, dtype: Any = None) -> Params:
    """Initialize the parameters of ``generator``.

    Args:
        key: a JAX PRNG key.
        generator: the :class:`MLPGenerator` module.
        dtype: parameter dtype; defaults to JAX's default float.

    Returns:
        The ``'params'`` pytree.

    Raises:
        ValueError: if ``generator`` is not an :class:`MLPGenerator` or its sizes are not
            positive integers (``depth`` may be 0).
    """
    if not isinstance(generator, MLPGenerator):
        raise ValueError(f"`generator` must be an MLPGenerator; got {type(generator).__name__}.")
    check_positive_int(generator.latent_dim, "latent_dim")
    check_positive_int(generator.out_dim, "out_dim")
    check_positive_int(generator.width, "width")
    check_int(generator.depth, "depth")
    z = jnp.zeros((1, generator.latent_dim), _param_dtype(dtype))
    return generator.init(key, z)["params"]


def check_generator_output(
    gen_apply: Callable[[Params, Array], Array], params: Params, z: Array, data_dim: int
) -> tuple[int, ...]:
    """Check (by shape inference, without running it) that a generator emits data points.

    Args:
        gen_apply: ``gen_apply(params, z) -> samples``.
        params: generator parameters.
        z: a latent batch of shape ``(n, latent_dim)``.
        data_dim: the data dimension ``d``.

    Returns:
        The output shape ``(n, d)``.

    Raises:
        ValueError: if the generator output is not of shape ``(n, data_dim)``, naming both
            shapes.
    """
    data_dim = check_positive_int(data_dim, "data_dim")
    z = jnp.asarray(z)
    out = jax.eval_shape(gen_apply, params, z)
    shape = tuple(getattr(out, "shape", ()))
    n = z.shape[0] if z.ndim >= 1 else None
    if shape != (n, data_dim):
        raise ValueError(
            f"generator output must have shape (n, d) = ({n}, {data_dim}) to match the data "
            f"dimension; got {shape} from latent batch of shape {tuple(z.shape)}."
        )
    return shape
