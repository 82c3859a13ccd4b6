"""One description of a discriminator MLP, shared by the infinite-width kernel and the flax net.

An :class:`MLPSpec` says *what* network is meant (activation, depth, ``W_std``, ``b_std``,
parameterization, width). :meth:`MLPSpec.stax` turns it into the NT-compatible
``(init_fn, apply_fn, kernel_fn)`` triple of :mod:`gantk.stax`, and
:func:`gantk.nets.mlp_from_spec` turns the very same spec into a finite-width flax module,
so a user never describes a network twice.

The layout follows GAN(TK)² (Franceschi et al., ICML 2022, ``models/mlp.py``)::

    Dense(width, W_std, b_std) -> [act -> Dense(width, W_std, b_std)] * (depth - 1)
                               -> act -> Dense(1, out_W_std, out_b_std)

i.e. ``depth`` activations; the read-out layer has no bias by default. The named kernels of
:data:`KERNELS` are the GAN(TK)² ``arch_config`` entries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from gantk import stax
from gantk._validate import check_choice, check_nonneg, check_positive_int

__all__ = ["ACTIVATIONS", "KERNELS", "MLPSpec", "get_spec", "kernel_from_name"]

#: The one activation table: name -> (the :mod:`gantk.stax` layer, its default parameters
#: (NT's defaults)). The stax layer gives the infinite-width kernel *and*, through its
#: ``apply_fn``, the elementwise function of the finite flax twin (:mod:`gantk.nets`).
_ACTIVATION_TABLE: dict[str, tuple[Callable[..., Any], dict[str, float]]] = {
    "relu": (stax.Relu, {}),
    "leaky_relu": (stax.LeakyRelu, {"alpha": 0.2}),
    "abs": (stax.Abs, {}),
    "abrelu": (stax.ABRelu, {"a": 0.0, "b": 1.0}),
    "erf": (stax.Erf, {"a": 1.0, "b": 1.0, "c": 0.0}),
    "gelu": (stax.Gelu, {}),
    "sin": (stax.Sin, {"a": 1.0, "b": 1.0, "c": 0.0}),
    "rbf": (stax.Rbf, {"gamma": 1.0}),
    "identity": (stax.Identity, {}),
}

#: Activations an :class:`MLPSpec` may use, with their default parameters (NT's defaults).
ACTIVATIONS: dict[str, dict[str, float]] = {
    name: defaults for name, (_, defaults) in _ACTIVATION_TABLE.items()
}


#: Depth above which :meth:`MLPSpec.stax` scans its hidden blocks (compile time flat in
#: depth); shallower networks are unrolled.
SCAN_MIN_DEPTH = 4


@dataclasses.dataclass(frozen=True)
class MLPSpec:
    """Architecture of a scalar-output MLP discriminator, shared by stax and flax.

    Attributes:
        activation: one of :data:`ACTIVATIONS`.
        depth: number of hidden (activation) layers, >= 1.
        width: hidden width of the finite network (ignored by the infinite-width kernel).
        W_std: weight standard deviation of the hidden Dense layers.
        b_std: bias standard deviation of the hidden Dense layers (0 means bias-free).
        out_W_std: weight std of the read-out layer (defaults to ``W_std``).
        out_b_std: bias std of the read-out layer (GAN(TK)² uses 0).
        act_params: activation parameters overriding :data:`ACTIVATIONS` defaults, as a
            tuple of ``(name, value)`` pairs (hashable, so the spec can be a static arg).
        parameterization: ``'ntk'`` (weights ``W_std/sqrt(fan_in) * N(0, 1)``) or
            ``'standard'``.
        kernel: which infinite-width kernel the discriminator follows: ``'ntk'`` (trained
            discriminator) or ``'nngp'`` (GAN(TK)²'s ``--nngp`` flag, used for ``rbf``).

    Raises:
        ValueError: on an unknown activation, parameterization or kernel, a depth or width
            below 1, or a negative ``W_std``/``b_std``.
    """

    activation: str = "relu"
    depth: int = 3
    width: int = 512
    W_std: float = 1.0
    b_std: float = 1.0
    out_W_std: float | None = None
    out_b_std: float = 0.0
    act_params: tuple[tuple[str, float], ...] = ()
    parameterization: str = "ntk"
    kernel: str = "ntk"

    def __post_init__(self) -> None:
        check_choice(self.activation, "activation", ACTIVATIONS)
        check_positive_int(self.depth, "depth")
        check_positive_int(self.width, "width")
        check_nonneg(self.W_std, "W_std")
        check_nonneg(self.b_std, "b_std")
        if self.out_W_std is not None:
            check_nonneg(self.out_W_std, "out_W_std")
        check_nonneg(self.out_b_std, "out_b_std")
        check_choice(self.parameterization, "parameterization", ("ntk", "standard"))
        check_choice(self.kernel, "kernel", ("ntk", "nngp"))
        unknown = set(dict(self.act_params)) - set(ACTIVATIONS[self.activation])
        if unknown:
            raise ValueError(
                f"`act_params` for activation {self.activation!r} accepts "
                f"{sorted(ACTIVATIONS[self.activation])}; got unknown {sorted(unknown)}."
            )

    @property
    def activation_params(self) -> dict[str, float]:
        """Activation parameters: NT defaults updated with :attr:`act_params`."""
        return {**ACTIVATIONS[self.activation], **dict(self.act_params)}

    @property
    def readout_W_std(self) -> float:
        """Weight std of the read-out layer."""
        return self.W_std if self.out_W_std is None else self.out_W_std

    def replace(self, **changes: Any) -> MLPSpec:
        """Return a copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def stax_activation(self) -> tuple[Callable, Callable, Callable]:
        """The :mod:`gantk.stax` layer of this spec's activation (its ``apply_fn`` is the
        elementwise function the finite-width twin uses)."""
        layer, _ = _ACTIVATION_TABLE[self.activation]
        return layer(**self.activation_params)

    def stax(self) -> tuple[Callable, Callable, Callable]:
        """Build the NT-compatible ``(init_fn, apply_fn, kernel_fn)`` triple of this MLP.

        For ``depth > SCAN_MIN_DEPTH`` the ``depth - 1`` identical hidden blocks
        ``act -> Dense(width)`` form one :func:`gantk.stax.repeat` (a
        :func:`jax.lax.scan`), so the kernel compiles once whatever the depth: compile
        time is flat in ``depth`` (tested up to 100; any depth whose kernel stays finite
        in the working dtype is supported). Shallower networks are unrolled (``serial``):
        there, forward-over-reverse second derivatives (``jax.hessian``) stay finite at
        the ReLU kink and the origin, which the scanned form does not guarantee.
        ``init_fn``'s parameters are one entry per layer
        (``[dense, (), dense, ..., (), readout]``) unrolled and
        ``[dense_in, stacked_hidden, (), readout]`` scanned (the hidden ``[(), dense]``
        blocks stacked along a leading axis of length ``depth - 1``).
        """
        from gantk import stax

        dense = dict(W_std=self.W_std, b_std=self.b_std, parameterization=self.parameterization)
        hidden = self.depth - 1
        if self.depth > SCAN_MIN_DEPTH:
            block = stax.serial(self.stax_activation(), stax.Dense(self.width, **dense))
            blocks = [stax.repeat(block, hidden)]
        else:
            blocks = []
            for _ in range(hidden):
                blocks += [self.stax_activation(), stax.Dense(self.width, **dense)]
        return stax.serial(
            stax.Dense(self.width, **dense),
            *blocks,
            self.stax_activation(),
            stax.Dense(
                1,
                W_std=self.readout_W_std,
                b_std=self.out_b_std,
                parameterization=self.parameterization,
            ),
        )

    def kernel_fn(self) -> Callable:
        """The infinite-width ``kernel_fn(x1, x2=None, get=None)`` of this MLP."""
        return self.stax()[2]

    def discriminator_kernel(self) -> Callable:
        """The kernel the trained discriminator follows, ``k(x1 (n1, d), x2 (n2, d)) -> (n1, n2)``.

        The NTK of this MLP (Jacot et al., NeurIPS 2018), or its NNGP if ``kernel='nngp'``
        (only the read-out layer is trained); the ``k`` of Franceschi et al. (ICML 2022),
        eq. (6), to pass to :func:`gantk.discriminator`.
        """
        kfn = self.kernel_fn()
        return stax.ntk(kfn) if self.kernel == "ntk" else stax.nngp(kfn)

    def k(self) -> Callable:
        """Deprecated name of :meth:`discriminator_kernel` (kept for existing callers)."""
        return self.discriminator_kernel()


#: GAN(TK)²'s named discriminator architectures (``args/exp_configs.py``), by CLI name.
KERNELS: dict[str, MLPSpec] = {
    "relu": MLPSpec("relu", depth=3, b_std=1.0),
    "relu-nobias": MLPSpec("relu", depth=3, b_std=0.0),
    "relu-highbias": MLPSpec("relu", depth=3, b_std=4.0),
    "erf": MLPSpec("erf", depth=3, b_std=1.0),
    "gelu": MLPSpec("gelu", depth=3, b_std=1.0),
    "leaky-relu": MLPSpec("leaky_relu", depth=3, b_std=1.0),
    "abs": MLPSpec("abs", depth=3, b_std=1.0),
    # GAN(TK)² 'rbf': one hidden layer, Rbf(gamma=0.5), no bias, NNGP. For d-dimensional
    # input this is k(x, y) = exp(-||x - y||^2 / (2 d)) times W_std^2.
    "rbf": MLPSpec("rbf", depth=1, b_std=0.0, act_params=(("gamma", 0.5),), kernel="nngp"),
}


def get_spec(
    name: str,
    *,
    depth: int | None = None,
    W_std: float | None = None,
    b_std: float | None = None,
    width: int | None = None,
) -> MLPSpec:
    """Return the named architecture of :data:`KERNELS`, with optional overrides.

    Args:
        name: one of :data:`KERNELS` (``'relu'``, ``'relu-nobias'``, ``'rbf'``, ...).
        depth: replaces the preset's value when not None.
        W_std: replaces the preset's value when not None.
        b_std: replaces the preset's value when not None.
        width: replaces the preset's value when not None.

    Raises:
        ValueError: on an unknown name or an invalid override.
    """
    check_choice(name, "kernel", KERNELS)
    changes = {
        k: v
        for k, v in dict(depth=depth, W_std=W_std, b_std=b_std, width=width).items()
        if v is not None
    }
    return KERNELS[name].replace(**changes)


def kernel_from_name(name: str, **overrides: Any) -> Callable:
    """Plain ``k(x1, x2) -> (n1, n2)`` of the named architecture (see :func:`get_spec`)."""
    return get_spec(name, **overrides).discriminator_kernel()
