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
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array, Float

from gantk._validate import as_points, check_choice, is_concrete

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
    "make_layer",
    "nngp",
    "ntk",
    "points",
]

def points(
    x: Any, name: str, *, dim: int | None = None, dim_name: str | None = None
) -> jax.Array:
    """Validate a point cloud ``(n, d)`` like :func:`gantk._validate.as_points`.

    The finiteness check runs on the host (numpy) whenever ``x`` holds concrete values,
    also when it is a constant closed over inside ``jit`` (where a ``jnp`` reduction
    would be staged out and could not be converted to ``bool``); tracers are not checked.

    Raises:
        ValueError: naming ``name`` on a rank other than 2, no points, a feature dimension
            other than ``dim``, or (when concrete) NaN/inf entries.
    """
    arr = as_points(x, name, dim=dim, dim_name=dim_name, check_finite=False)
    if is_concrete(arr):
        host = np.asarray(arr)
        if not np.isfinite(host).all():
            bad = int(np.sum(~np.isfinite(host)))
            raise ValueError(f"`{name}` must be finite; got {bad} non-finite entries (NaN or inf).")
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
KERNEL_KWARGS = ("diagonal_batch", "diagonal_spatial", "mask_constant")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["nngp", "ntk", "cov1", "cov2"],
    meta_fields=["is_gaussian", "shape1", "shape2"],
)
@dataclasses.dataclass(frozen=True)
class Kernel:
    """Infinite-width covariances of a layer's outputs, NT's ``Kernel`` for rank-2 inputs.

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
            width is only used by ``parameterization='standard'``.
        shape2: same for ``x2``.
    """

    nngp: Float[Array, "n1 n2"]
    ntk: Float[Array, "n1 n2"] | None
    cov1: Float[Array, " n1"]
    cov2: Float[Array, " n2"] | None
    is_gaussian: bool = False
    shape1: tuple[int, ...] = ()
    shape2: tuple[int, ...] = ()

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
        return self.cov2 is None

    @property
    def diagonal_batch(self) -> bool:
        """True when ``cov1``/``cov2`` hold variances only (NT's default)."""
        return self.cov1 is None or jnp.ndim(self.cov1) == 1

    @property
    def diagonal_spatial(self) -> bool:
        """Always False: rank-2 kernels have no spatial axes."""
        return False

    @property
    def batch_axis(self) -> int:
        """Batch axis of the finite-width inputs/outputs (0)."""
        return 0

    @property
    def channel_axis(self) -> int:
        """Channel (feature) axis of the finite-width inputs/outputs (1)."""
        return 1

    @property
    def is_reversed(self) -> bool:
        """NT's flag for reversed spatial axes; always False here."""
        return False

    @property
    def is_input(self) -> bool:
        """NT's flag for an input kernel; False for every layer output."""
        return False

    @property
    def mask1(self) -> None:
        """Input mask of ``x1`` (masking is not supported: always None)."""
        return None

    @property
    def mask2(self) -> None:
        """Input mask of ``x2`` (always None)."""
        return None


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
    """``(x1, x2 or x1, |x1|²/d, |x2|²/d or None, x1 x2ᵀ/d)`` in the common dtype."""
    dtype = x1.dtype if x2 is None else jnp.result_type(x1.dtype, x2.dtype)
    x1 = x1.astype(dtype)
    d = x1.shape[1]
    cov1 = jnp.sum(x1 * x1, axis=1) / d
    other = x1 if x2 is None else x2.astype(dtype)
    cov2 = None if x2 is None else jnp.sum(other * other, axis=1) / d
    nngp = jnp.matmul(x1, other.T, precision=lax.Precision.HIGHEST) / d
    return x1, other, cov1, cov2, nngp


def input_kernel(
    x1: Float[Array, "n1 d"], x2: Float[Array, "n2 d"] | None, compute_ntk: bool
) -> Kernel:
    """NT's input kernel: ``nngp = x1 x2^T / d``, ``cov_i = |x_i|^2 / d``, ``ntk = 0``.

    Args:
        x1: ``(n1, d)`` inputs (already validated).
        x2: ``(n2, d)`` inputs, or ``None`` for ``x2 = x1``.
        compute_ntk: when False, ``ntk`` is ``None`` and no NTK work is done downstream.

    Returns:
        The input :class:`Kernel` (not Gaussian), in the common dtype of ``x1``/``x2``.
    """
    x1, other, cov1, cov2, nngp = _input_moments(x1, x2)
    ntk = jnp.zeros((), nngp.dtype) if compute_ntk else None
    return Kernel(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        is_gaussian=False,
        shape1=tuple(x1.shape),
        shape2=tuple(other.shape),
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
        shape1: tuple[int, ...], shape2: tuple[int, ...],
    ) -> None:
        self.fn, self.fields, self.compute_ntk, self.has_x2 = fn, fields, compute_ntk, has_x2
        self.shape1, self.shape2 = shape1, shape2
        self.kinds: tuple[str, ...] = ()

    def kernel(self, n0: Array, c1: Array, c2: Array) -> Any:
        k = Kernel(
            nngp=n0,
            ntk=jnp.zeros((), n0.dtype) if self.compute_ntk else None,
            cov1=c1,
            cov2=c2,
            is_gaussian=False,
            shape1=self.shape1,
            shape2=self.shape2,
        )
        return self.fn(k)

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
        arrays = []
        for f, value in self.entries(self.kernel(n0, c1, c2)):
            if _KIND[f] == "ij" and jnp.ndim(value) == 0:  # ntk of a net without params
                value = jnp.broadcast_to(value, n0.shape)
            arrays.append(value)
        return tuple(arrays)

    def rebuild(self, tree: Any, arrays: Any, get: tuple[str, ...] | str | None) -> Any:
        """Assemble the user-facing result from the template ``tree`` and ``arrays``."""
        if isinstance(tree, list):
            return [self.rebuild(t, arrays, get) for t in tree]
        values = dict.fromkeys(GETS)
        for f in self.fields:  # the order of `entries`
            value = getattr(tree, f)
            if not (value is None or (f == "cov2" and not self.has_x2)):
                values[f] = next(arrays)
        if get is None:
            return tree.replace(**values)
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


def _evaluate(fn: KernelMap, x1: Array, x2: Array | None, get: Any) -> Any:
    x1, other, c1, c2, n0 = _input_moments(x1, x2)
    c2 = c1 if c2 is None else c2
    fields = _fields(get)
    run = _Chain(fn, fields, _needs_ntk(get), x2 is not None, x1.shape, other.shape)
    template = jax.eval_shape(run.kernel, n0, c1, c2)
    run.kinds = tuple(_KIND[f] for f, _ in run.entries(template))
    arrays = _chain(run, n0, c1, c2)
    return run.rebuild(template, iter(arrays), get)


def _is_kernel_tree(x: Any) -> bool:
    if isinstance(x, Kernel):
        return True
    return isinstance(x, list) and len(x) > 0 and all(_is_kernel_tree(v) for v in x)


def _array_fields(get: tuple[str, ...] | str | None) -> tuple[str, ...] | None:
    """The array fields of ``get`` (what the kernel map computes); None for the Kernel."""
    if get is None:
        return None
    return tuple(f for f in _fields(get) if f in GETS)


def _assemble(arrays: Any, template: Any, get: Any, covs: Any) -> Any:
    """User-facing result from computed ``arrays``, static ``template`` and full ``covs``.

    ``arrays`` is what the jitted evaluation returned for :func:`_array_fields` (a Kernel,
    a namedtuple, or None when no array was asked); ``covs`` is ``None`` or the pair of
    full ``(cov1, cov2)`` matrices for ``diagonal_batch=False``.
    """
    if isinstance(template, list):
        return [
            _assemble(
                None if arrays is None else arrays[b],
                template[b],
                get,
                None if covs is None else (covs[0][b], None if covs[1] is None else covs[1][b]),
            )
            for b in range(len(template))
        ]
    if get is None:
        if covs is not None:
            arrays = arrays.replace(cov1=covs[0], cov2=covs[1])
        return arrays
    values = {}
    for f in _fields(get):
        if f in GETS:
            values[f] = getattr(arrays, f)
            if covs is not None and f in ("cov1", "cov2"):
                values[f] = covs[0] if f == "cov1" else covs[1]
        elif f == "diagonal_batch":
            values[f] = covs is None
        else:
            values[f] = getattr(template, f)
    if isinstance(get, str):
        return values[get]
    return _namedtuple(get)(*(values[g] for g in get))


def _check_kwargs(kwargs: dict) -> bool:
    """Validate NT's ``kernel_fn`` keyword arguments; return ``diagonal_batch``."""
    unknown = sorted(set(kwargs) - set(KERNEL_KWARGS))
    if unknown:
        raise TypeError(
            f"kernel_fn got unexpected keyword argument(s) {unknown}; it accepts x1, x2, get "
            f"and {KERNEL_KWARGS}."
        )
    for name in ("diagonal_batch", "diagonal_spatial"):
        if name in kwargs and not isinstance(kwargs[name], (bool, np.bool_)):
            raise ValueError(f"`{name}` must be a bool; got {kwargs[name]!r}.")
    if kwargs.get("mask_constant") is not None:
        raise NotImplementedError(
            "`mask_constant` (masked inputs) is not implemented in gantk.stax; pass None."
        )
    return bool(kwargs.get("diagonal_batch", True))


def make_layer(init_fn: Callable, apply_fn: Callable, fn: KernelMap, name: str) -> Layer:
    """Wrap a kernel map into an NT-style ``(init_fn, apply_fn, kernel_fn)`` triple.

    The returned ``kernel_fn(x1, x2=None, get=None, **kwargs)`` accepts:

    - ``x1`` of shape ``(n1, d)`` and ``x2`` of shape ``(n2, d)`` or ``None`` (``x2 = x1``);
      or a :class:`Kernel` (or list of kernels) as ``x1``, which is mapped directly;
    - ``get``: ``None`` (the full :class:`Kernel`), one of :data:`ALL_GETS` (NT's
      ``Kernel`` fields: the arrays ``nngp``, ``ntk``, ``cov1``, ``cov2`` or metadata such
      as ``shape1``, ``is_gaussian``, ``x1_is_x2``), or a tuple of them (an NT-style
      namedtuple, fields in the order asked);
    - NT's keyword arguments: ``diagonal_batch`` (default True; False makes ``cov1`` the
      full ``(n1, n1)`` NNGP of ``x1`` with itself and ``cov2`` that of ``x2``, or None
      when ``x2`` is None), ``diagonal_spatial`` (no effect: there are no spatial axes)
      and ``mask_constant`` (only None).

    It is jittable with ``get`` static (``jax.jit(kernel_fn, static_argnames='get')``)
    when only array fields are asked, and ``vmap``/``grad`` friendly; it is jitted
    internally as well. The three functions are named after the layer, as in NT
    (``kernel_fn.__name__ == 'Sin'``); the full description is ``kernel_fn._gantk_name``.

    Raises (from the returned ``kernel_fn``):
        ValueError: when ``x1``/``x2`` are not rank 2, have different feature dimensions or
            (when concrete) non-finite entries, ``get`` is unknown, or a flag is not bool.
        TypeError: on any other keyword argument.
        NotImplementedError: on a ``mask_constant`` other than None.
    """
    core = jax.jit(functools.partial(_evaluate, fn), static_argnames=("get",))
    on_kernels = jax.jit(lambda k, get: _select(fn(k), get), static_argnames=("get",))

    def kernel_fn(x1: Any, x2: Any = None, get: Any = None, **kwargs: Any) -> Any:
        diagonal_batch = _check_kwargs(kwargs)
        get = _canonical_get(get)
        if _is_kernel_tree(x1):
            full = on_kernels(x1, get=None)
            return full if get is None else _assemble(full, full, get, None)
        x1 = points(x1, "x1")
        if x2 is not None:
            x2 = points(x2, "x2", dim=x1.shape[1], dim_name="x1")
        arr, fields = _array_fields(get), _fields(get)
        covs = None
        if not diagonal_batch and ("cov1" in fields or "cov2" in fields):
            covs = (core(x1, None, get="nngp"), None if x2 is None else core(x2, None, get="nngp"))
        if arr is None:
            arrays = template = core(x1, x2, get=None)
        elif covs is None and len(arr) == len(fields):
            return core(x1, x2, get=get)  # the common case: arrays only, as asked
        else:
            arrays = core(x1, x2, get=arr) if arr else None
            # Metadata: from shapes only (nothing is computed).
            template = jax.eval_shape(functools.partial(core, get=None), x1, x2)
        return _assemble(arrays, template, get, covs)

    short = name.split("(")[0]
    for f in (init_fn, apply_fn, kernel_fn):
        try:
            f.__name__ = f.__qualname__ = short
        except (AttributeError, TypeError):  # e.g. a functools.partial
            pass
    kernel_fn.__doc__ = (
        f"Infinite-width kernel of ``{name}``: ``kernel_fn(x1, x2=None, get=None, "
        "**kwargs)``; see :func:`gantk.stax.kernel.make_layer`."
    )
    kernel_fn._gantk_kernel_map = fn  # type: ignore[attr-defined]
    kernel_fn._gantk_name = name  # type: ignore[attr-defined]
    return init_fn, apply_fn, kernel_fn


def _plain(kernel_fn: KernelFn, get: str) -> Callable:
    if isinstance(kernel_fn, (tuple, list)) and len(kernel_fn) == 3:
        kernel_fn = kernel_fn[2]
    fn = kernel_map(kernel_fn)
    name = getattr(kernel_fn, "_gantk_name", "layer")
    core = jax.jit(functools.partial(_evaluate, fn, get=get))

    def k(x1: Float[Array, "n1 d"], x2: Float[Array, "n2 d"] | None = None) -> Array:
        x1 = points(x1, "x1")
        if x2 is not None:
            x2 = points(x2, "x2", dim=x1.shape[1], dim_name="x1")
        out = core(x1, x2)
        if isinstance(out, list):
            raise ValueError(
                f"`kernel_fn` must have a single output to give a plain kernel; {name} "
                f"returns {len(out)} branches (end the network with FanInSum)."
            )
        return out

    k.__name__ = k.__qualname__ = f"{get}[{name}]"
    k.__doc__ = f"The {get.upper()} ``k(x1, x2) -> (n1, n2)`` of ``{name}``."
    return k


def ntk(kernel_fn: KernelFn | Sequence) -> Callable:
    """Plain NTK ``k(x1, x2=None) -> (n1, n2)`` of a :mod:`gantk.stax` network.

    Args:
        kernel_fn: a stax ``kernel_fn`` (or the whole ``(init_fn, apply_fn, kernel_fn)``).

    Returns:
        ``k(x1, x2)`` with ``x1`` ``(n1, d)``, ``x2`` ``(n2, d)`` or ``None`` (``x2 = x1``),
        returning the infinite-width NTK as an ``(n1, n2)`` array (jitted; differentiable
        in ``x1`` and ``x2``).

    Raises:
        ValueError: if ``kernel_fn`` is not a gantk.stax kernel_fn; the returned ``k``
            raises ValueError on bad ``x1``/``x2`` (see :func:`make_layer`).
    """
    return _plain(kernel_fn, "ntk")


def nngp(kernel_fn: KernelFn | Sequence) -> Callable:
    """Plain NNGP ``k(x1, x2=None) -> (n1, n2)`` of a network; no NTK work is done.

    Args:
        kernel_fn: a stax ``kernel_fn`` (or the whole ``(init_fn, apply_fn, kernel_fn)``).

    Returns:
        ``k(x1, x2)`` returning the ``(n1, n2)`` NNGP kernel (jitted, differentiable).

    Raises:
        ValueError: as :func:`ntk`.
    """
    return _plain(kernel_fn, "nngp")
