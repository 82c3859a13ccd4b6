"""The :class:`Kernel` pytree and the machinery shared by every :mod:`gantk.stax` layer.

A layer is a triple ``(init_fn, apply_fn, kernel_fn)`` as in neural-tangents (NT) 0.6.5.
Internally each layer carries a *kernel map* ``Kernel -> Kernel`` (or lists of kernels for
branching layers); :func:`make_layer` wraps that map into the public
``kernel_fn(x1, x2=None, get=None)`` which

1. validates ``x1``/``x2``/``get`` (:mod:`gantk._validate`),
2. builds the input kernel (NT's convention: ``nngp = x1 x2^T / d``, ``cov = |x|^2 / d``,
   ``ntk = 0``), skipping all NTK work when only the NNGP is asked for,
3. runs the kernel map (jitted, ``get`` static) and
4. returns an array, an NT-style namedtuple, or the full :class:`Kernel`.

Every layer acts elementwise on the kernel entries, so the map from the input Gram matrix
to the outputs is wrapped in one :func:`jax.custom_jvp` (:func:`_chain`) whose derivative
is built from Jacobian *diagonals*; reverse mode then costs one fused multiply-and-reduce
pass instead of storing every intermediate of every layer.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array, Bool, Float

from gantk._validate import as_points, check_choice
from gantk.stax._layout import check_finite, to_points

__all__ = [
    "ALL_GETS",
    "GETS",
    "KERNEL_KWARGS",
    "META_GETS",
    "Kernel",
    "KernelFn",
    "Layer",
    "input_kernel",
    "kernel_map",
    "points",
]

def points(
    x: Any, name: str, *, dim: int | None = None, dim_name: str | None = None
) -> jax.Array:
    """Validate a point cloud ``(n, d)`` like :func:`gantk._validate.as_points`.

    The finiteness check is :func:`gantk.stax._layout.check_finite` (also on constants
    closed over inside ``jit``; tracers are not checked).

    Raises:
        ValueError: naming ``name`` on a rank other than 2, no points, a feature dimension
            other than ``dim``, or (when concrete) NaN/inf entries.
    """
    arr = as_points(x, name, dim=dim, dim_name=dim_name, check_finite=False)
    check_finite(arr, name)
    return arr


#: Array fields of a :class:`Kernel` (what the kernel maps compute).
GETS = ("nngp", "ntk", "cov1", "cov2")
#: Metadata fields of NT's ``Kernel`` that ``get`` may also ask for (static values).
META_GETS = (
    "shape1",
    "shape2",
    "is_gaussian",
    "x1_is_x2",
    "diagonal_batch",
    "diagonal_spatial",
    "batch_axis",
    "channel_axis",
    "is_reversed",
    "is_input",
    "mask1",
    "mask2",
)
#: Every field ``get`` accepts (NT's ``Kernel`` fields).
ALL_GETS = GETS + META_GETS
#: Keyword arguments of NT's ``kernel_fn`` that gantk implements (anything else raises).
KERNEL_KWARGS = (
    "diagonal_batch", "diagonal_spatial", "mask_constant", "batch_axis", "channel_axis"
)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["nngp", "ntk", "cov1", "cov2", "mask1", "mask2"],
    meta_fields=["is_gaussian", "shape1", "shape2", "same_inputs", "batch_axis", "channel_axis"],
)
@dataclasses.dataclass(frozen=True)
class Kernel:
    """Infinite-width covariances of a layer's outputs, NT's ``Kernel`` (gantk's layout).

    A pytree: the arrays are leaves, the remaining fields are static metadata.

    Attributes:
        nngp: ``(n1, n2)`` NNGP ``E[f(x1_i) f(x2_j)]`` of one output unit.
        ntk: ``(n1, n2)`` NTK, a scalar ``0`` before the first parameterised layer, or
            ``None`` when only the NNGP is computed.
        cov1: ``(n1,)`` variances ``E[f(x1_i)^2]`` (the diagonal of the NNGP of ``x1``).
        cov2: ``(n2,)`` variances of ``x2``, or ``None`` when ``x2`` is ``x1`` (NT's
            convention for ``kernel_fn(x1, None)``).
        is_gaussian: whether the output units are centred Gaussian (true after a
            ``Dense``), which activations require of their inputs.
        shape1: shape ``(n1, width)`` of the layer's finite-width output on ``x1``; the
            width is only used by ``parameterization='standard'``. Inside kernel maps it is
            in the canonical order ``(n1, *spatial, width)`` whatever ``batch_axis`` and
            ``channel_axis`` say; the Kernel a ``kernel_fn`` returns has it in the
            activations' own order (NT's), see :func:`gantk.stax.core.make_layer`.
        shape2: same for ``x2``.
        same_inputs: whether ``x2`` is ``x1`` (``kernel_fn(x1, None)``); None means
            "``cov2 is None``" (inside a kernel map ``cov2`` may be carried explicitly).
        mask1: NT's mask of the layer's output on ``x1`` (``kernel_fn(...,
            mask_constant=c)``): a boolean array broadcastable to ``shape1`` (same rank,
            1 on the channel axis once a ``Dense`` has reduced it), True where masked;
            None without masking (see :mod:`gantk.stax._masking`).
        mask2: same for ``x2``; None when ``x2`` is ``x1`` (then ``mask1`` applies).
        batch_axis: NT's ``batch_axis``: the batch axis of the finite-width activations
            this kernel describes (0 unless a layer asked for another layout, e.g.
            ``Dense(batch_axis=1, channel_axis=0)``), non-negative.
        channel_axis: NT's ``channel_axis``: their channel (infinite-width) axis,
            non-negative (``-1`` is taken modulo the rank of ``shape1``).

    Masks are always in the activations' own layout (as NT's); the kernel arrays do not
    depend on the layout (batch first, then the spatial axes in order, as NT's).

    Inputs of rank > 2 ``(n, *spatial, C)`` are held in the *points* layout (see
    :mod:`gantk.stax._layout`): ``nngp`` is ``(n1 * P, n2 * P)`` over all positions,
    ``cov1`` ``(n1 * P,)``; ``shape1`` keeps the spatial shape.
    """

    nngp: Float[Array, "n1 n2"]
    ntk: Float[Array, "n1 n2"] | None
    cov1: Float[Array, " n1"]
    cov2: Float[Array, " n2"] | None
    is_gaussian: bool = False
    shape1: tuple[int, ...] = ()
    shape2: tuple[int, ...] = ()
    same_inputs: bool | None = None
    mask1: Bool[Array, "..."] | None = None
    mask2: Bool[Array, "..."] | None = None
    batch_axis: int = 0
    channel_axis: int = -1

    def __post_init__(self) -> None:
        ndim = len(self.shape1)
        if ndim:  # NT stores both axes non-negative
            object.__setattr__(self, "batch_axis", self.batch_axis % ndim)
            object.__setattr__(self, "channel_axis", self.channel_axis % ndim)

    @property
    def axes(self) -> tuple[int, int]:
        """``(batch_axis, channel_axis)``: the layout of the activations."""
        return self.batch_axis, self.channel_axis

    def replace(self, **changes: Any) -> Kernel:
        """Return a copy with some fields replaced."""
        return dataclasses.replace(self, **changes)

    @property
    def var2(self) -> Float[Array, " n2"]:
        """Variances of the second batch (``cov1`` when ``x2`` is ``x1``)."""
        return self.cov1 if self.cov2 is None else self.cov2

    # NT's remaining ``Kernel`` fields, fixed for gantk's rank-2 (fully connected) kernels.
    @property
    def x1_is_x2(self) -> bool:
        """Whether the kernel is of ``x1`` with itself (``kernel_fn(x1, None)``)."""
        return self.cov2 is None if self.same_inputs is None else self.same_inputs

    @property
    def diagonal_batch(self) -> bool:
        """True when ``cov1``/``cov2`` hold variances only (NT's default)."""
        return self.cov1 is None or jnp.ndim(self.cov1) == 1

    @property
    def diagonal_spatial(self) -> bool:
        """Always False: rank-2 kernels have no spatial axes."""
        return False

    @property
    def is_reversed(self) -> bool:
        """NT's flag for reversed spatial axes; always False here."""
        return False

    @property
    def is_input(self) -> bool:
        """NT's flag for an input kernel; False for every layer output."""
        return False


#: What a kernel map consumes and returns: one kernel, or a list for branching layers.
KernelTree = Kernel | list
#: Internal kernel map of a layer.
KernelMap = Callable[[Any], Any]
#: Public ``kernel_fn(x1, x2=None, get=None)``.
KernelFn = Callable[..., Any]
#: ``(init_fn, apply_fn, kernel_fn)``.
Layer = tuple[Callable, Callable, KernelFn]


def _input_moments(
    x1: Array, x2: Array | None
) -> tuple[Array, Array, Array, Array | None, Array]:
    """``(x1, x2 or x1, |x1|²/d, |x2|²/d or None, x1 x2ᵀ/d)`` in the common dtype.

    Inputs of rank > 2 are taken as the points ``x.reshape(-1, C)``.
    """
    dtype = x1.dtype if x2 is None else jnp.result_type(x1.dtype, x2.dtype)
    x1 = to_points(x1.astype(dtype))
    x2 = None if x2 is None else to_points(x2)
    d = x1.shape[1]
    cov1 = jnp.sum(x1 * x1, axis=1) / d
    other = x1 if x2 is None else x2.astype(dtype)
    cov2 = None if x2 is None else jnp.sum(other * other, axis=1) / d
    nngp = jnp.matmul(x1, other.T, precision=lax.Precision.HIGHEST) / d
    return x1, other, cov1, cov2, nngp


def input_kernel(
    x1: Float[Array, "n1 *s d"],
    x2: Float[Array, "n2 *s d"] | None,
    compute_ntk: bool,
    mask1: Bool[Array, "n1 *s d"] | None = None,
    mask2: Bool[Array, "n2 *s d"] | None = None,
    axes: tuple[int, int] = (0, -1),
) -> Kernel:
    """NT's input kernel: ``nngp = x1 x2^T / d``, ``cov_i = |x_i|^2 / d``, ``ntk = 0``.

    Args:
        x1: ``(n1, d)`` inputs (already validated), or ``(n1, *spatial, d)`` (held in the
            points layout, see :class:`Kernel`).
        x2: inputs shaped like ``x1``, or ``None`` for ``x2 = x1``.
        compute_ntk: when False, ``ntk`` is ``None`` and no NTK work is done downstream.
        mask1: NT's input mask of ``x1`` (shape of ``x1``, True where masked; see
            :func:`gantk.stax._masking.input_mask`), or None. As in NT's
            ``_inputs_to_kernel`` the masked entries must already be zero in ``x1`` and
            the input kernel itself is not remasked.
        mask2: same for ``x2`` (None when ``x2`` is None).
        axes: ``(batch_axis, channel_axis)`` of the inputs as the user gave them (``x1``
            and ``x2`` here are already moved to the canonical ``(n, *spatial, d)``
            order; the masks are in the user's layout).

    Returns:
        The input :class:`Kernel` (not Gaussian), in the common dtype of ``x1``/``x2``.
    """
    shape1, shape2 = tuple(x1.shape), tuple((x1 if x2 is None else x2).shape)
    _, _, cov1, cov2, nngp = _input_moments(x1, x2)
    ntk = jnp.zeros((), nngp.dtype) if compute_ntk else None
    return Kernel(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        is_gaussian=False,
        shape1=shape1,
        shape2=shape2,
        same_inputs=x2 is None,
        mask1=mask1,
        mask2=mask2,
        batch_axis=axes[0],
        channel_axis=axes[1],
    )


def kernel_map(kernel_fn: KernelFn) -> KernelMap:
    """Return the internal ``Kernel -> Kernel`` map of a :mod:`gantk.stax` ``kernel_fn``.

    Raises:
        ValueError: if ``kernel_fn`` was not built by :mod:`gantk.stax`.
    """
    fn = getattr(kernel_fn, "_gantk_kernel_map", None)
    if fn is None:
        raise ValueError(
            "`kernel_fn` must be the kernel_fn of a gantk.stax layer (the third element of "
            f"its (init_fn, apply_fn, kernel_fn) triple); got {kernel_fn!r}."
        )
    return fn


@functools.cache
def _namedtuple(fields: tuple[str, ...]) -> type:
    return collections.namedtuple("Kernel", fields)


def _canonical_get(get: Any) -> tuple[str, ...] | str | None:
    if get is None:
        return None
    if isinstance(get, str):
        check_choice(get, "get", ALL_GETS)
        return get
    if isinstance(get, (tuple, list)) and len(get) > 0:
        for g in get:
            if not isinstance(g, str):
                raise ValueError(
                    f"`get` entries must be one of {ALL_GETS}; got {g!r} in {get!r}."
                )
            check_choice(g, "get", ALL_GETS)
        if len(set(get)) != len(get):
            raise ValueError(f"`get` must not repeat a field; got {tuple(get)!r}.")
        return tuple(get)
    raise ValueError(
        f"`get` must be None, one of {ALL_GETS} or a non-empty tuple of them; got {get!r}."
    )


def _select(k: Any, get: tuple[str, ...] | str | None) -> Any:
    if isinstance(k, list):
        return [_select(ki, get) for ki in k]
    if k.ntk is not None and jnp.ndim(k.ntk) == 0:
        k = k.replace(ntk=jnp.broadcast_to(k.ntk, k.nngp.shape))
    if get is None:
        return k
    if isinstance(get, str):
        return getattr(k, get)
    return _namedtuple(get)(*(getattr(k, g) for g in get))


def _needs_ntk(get: tuple[str, ...] | str | None) -> bool:
    return get is None or "ntk" in (get if isinstance(get, tuple) else (get,))


_KIND = {"nngp": "ij", "ntk": "ij", "cov1": "i", "cov2": "j"}


def _fields(get: tuple[str, ...] | str | None) -> tuple[str, ...]:
    if get is None:
        return GETS
    return (get,) if isinstance(get, str) else get


class _Chain:
    """The layers' kernel map as a function ``(nngp0, cov1, cov2) -> flat output arrays``.

    Every gantk.stax layer acts *elementwise* on the kernel: output entry ``(i, j)``
    depends only on the input ``nngp0[i, j]``, ``cov1[i]`` and ``cov2[j]``, and output
    ``cov1[i]`` (``cov2[j]``) only on input ``cov1[i]`` (``cov2[j]``). ``cov2`` is carried
    explicitly even when ``x2 is None`` (then it equals ``cov1``, and is dropped from the
    result) so that this structure holds.
    """

    def __init__(
        self, fn: KernelMap, fields: tuple[str, ...], compute_ntk: bool, has_x2: bool,
        shape1: tuple[int, ...], shape2: tuple[int, ...], same: bool | None = None,
        axes: tuple[int, int] = (0, -1),
    ) -> None:
        self.fn, self.fields, self.compute_ntk, self.has_x2 = fn, fields, compute_ntk, has_x2
        self.axes = axes
        self.shape1, self.shape2 = shape1, shape2
        self.same = (not has_x2) if same is None else same
        self.kinds: tuple[str, ...] = ()

    def kernel(
        self, n0: Array, c1: Array, c2: Array, m1: Array | None = None, m2: Array | None = None
    ) -> Any:
        k = Kernel(
            nngp=n0,
            ntk=jnp.zeros((), n0.dtype) if self.compute_ntk else None,
            cov1=c1,
            cov2=c2,
            is_gaussian=False,
            shape1=self.shape1,
            shape2=self.shape2,
            same_inputs=self.same,
            mask1=m1,
            mask2=m2,
            batch_axis=self.axes[0],
            channel_axis=self.axes[1],
        )
        return self.fn(k)

    @staticmethod
    def masks(tree: Any) -> list[tuple[Any, Any]]:
        """``(mask1, mask2)`` of every output kernel, branches in order."""
        if isinstance(tree, list):
            return [m for t in tree for m in _Chain.masks(t)]
        return [(tree.mask1, tree.mask2)]

    def entries(self, tree: Any) -> list[tuple[str, Any]]:
        """``(field, value)`` pairs of the requested fields, branches in order."""
        if isinstance(tree, list):
            return [e for t in tree for e in self.entries(t)]
        out = []
        for f in self.fields:
            value = getattr(tree, f)
            if value is None or (f == "cov2" and not self.has_x2):
                continue
            out.append((f, value))
        return out

    def __call__(self, n0: Array, c1: Array, c2: Array) -> tuple[Array, ...]:
        return self.arrays(self.kernel(n0, c1, c2), n0.shape)

    def arrays(self, tree: Any, shape: tuple[int, ...]) -> tuple[Array, ...]:
        """The requested arrays of the output ``tree`` (see :meth:`entries`)."""
        arrays = []
        for f, value in self.entries(tree):
            if _KIND[f] == "ij" and jnp.ndim(value) == 0:  # ntk of a net without params
                value = jnp.broadcast_to(value, shape)
            arrays.append(value)
        return tuple(arrays)

    def rebuild(
        self, tree: Any, arrays: Any, get: tuple[str, ...] | str | None, masks: Any = None
    ) -> Any:
        """Assemble the user-facing result from the template ``tree`` and ``arrays``.

        ``masks`` (an iterator over :meth:`masks` of the evaluated tree) fills the masks of
        a full :class:`Kernel` result; without it they are None.
        """
        if isinstance(tree, list):
            return [self.rebuild(t, arrays, get, masks) for t in tree]
        values = dict.fromkeys(GETS)
        for f in self.fields:  # the order of `entries`
            value = getattr(tree, f)
            if not (value is None or (f == "cov2" and not self.has_x2)):
                values[f] = next(arrays)
        m1, m2 = (None, None) if masks is None else next(masks)
        if get is None:
            return tree.replace(**values, mask1=m1, mask2=m2)
        if isinstance(get, str):
            return values[get]
        return _namedtuple(get)(*(values[g] for g in get))


def _spread(tangent: Array, w: int, kind: str) -> Array | None:
    """Input tangent ``w`` (0: nngp0, 1: cov1, 2: cov2) laid out like an output ``kind``."""
    if kind == "ij":
        return tangent if w == 0 else tangent[:, None] if w == 1 else tangent[None, :]
    if (kind, w) in (("i", 1), ("j", 2)):
        return tangent
    return None


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _chain(run: _Chain, n0: Array, c1: Array, c2: Array) -> tuple[Array, ...]:
    return run(n0, c1, c2)


def _chain_jvp(run: _Chain, primals: tuple, tangents: tuple) -> tuple:
    """Forward-mode derivative of the elementwise chain from its Jacobian diagonals.

    Because the chain is elementwise (see :class:`_Chain`), pushing an all-ones tangent
    through it gives, per output entry, its partial derivative in ``nngp0[i, j]``,
    ``cov1[i]`` or ``cov2[j]``. The output tangent is then a few multiply-adds, and its
    transpose (reverse mode) a multiply plus row/column sums: one fused pass with one
    residual array per input direction, instead of a residual per intermediate of every
    layer. Directions whose input tangent is a symbolic zero (e.g. a constant ``x2``) are
    skipped. The directions are pushed together (``vmap`` over a stacked tangent): with one
    ``jvp`` per direction XLA re-fuses the primal chain into every consumer (about twice
    the memory traffic and 4x the time on CPU).
    """
    n0, c1, c2 = primals
    out = run(n0, c1, c2)
    live = [w for w, t in enumerate(tangents) if not isinstance(t, SymbolicZero)]
    if not live:
        return out, tuple(jnp.zeros_like(o) for o in out)

    def units(w: int, p: Array) -> Array:
        one, zero = jnp.ones_like(p), jnp.zeros_like(p)
        return jnp.stack([one if v == w else zero for v in live])

    directions = tuple(units(w, p) for w, p in enumerate(primals))
    jac = jax.vmap(lambda a, b, c: jax.jvp(run, primals, (a, b, c))[1])(*directions)
    tan = []
    for o, kind, partials in zip(out, run.kinds, jac, strict=True):
        total = None
        for slot, w in enumerate(live):
            t = _spread(tangents[w], w, kind)
            if t is None:
                continue
            term = partials[slot] * t
            total = term if total is None else total + term
        tan.append(jnp.zeros_like(o) if total is None else total)
    return out, tuple(tan)


_chain.defjvp(_chain_jvp, symbolic_zeros=True)
