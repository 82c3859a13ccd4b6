"""``make_layer``: the public ``kernel_fn`` of every :mod:`gantk.stax` layer.

:func:`make_layer` wraps a layer's kernel map (``Kernel -> Kernel``, see
:mod:`gantk.stax.kernel`) into NT's ``kernel_fn(x1, x2=None, get=None, **kwargs)``:
it validates the inputs (rank >= 2, or a tuple of inputs for networks that start with
``parallel``) and NT's keyword arguments, evaluates the map in one jitted call (with the
fused derivative of :func:`gantk.stax.kernel._chain` when the network acts entrywise on
the kernel) and returns an array, an NT-style namedtuple or the :class:`Kernel`, with
spatial axes in NT's layout (:mod:`gantk.stax._layout`). :func:`ntk` / :func:`nngp` turn
a ``kernel_fn`` into a plain jitted ``k(x1, x2) -> (n1, n2)``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from gantk._validate import is_concrete
from gantk.stax._layout import (
    actual_shape,
    batch_diagonal,
    canonical_shape,
    check_finite,
    check_input,
    input_axes,
    nt_layout,
    to_canonical,
)
from gantk.stax._masking import (
    MaskFn,
    check_mask_constant,
    input_mask,
    masked_apply,
    masked_map,
)
from gantk.stax.kernel import (
    _KIND,
    GETS,
    KERNEL_KWARGS,
    Kernel,
    KernelFn,
    KernelMap,
    Layer,
    _canonical_get,
    _Chain,
    _chain,
    _fields,
    _input_moments,
    _namedtuple,
    _needs_ntk,
    _select,
    input_kernel,
    kernel_map,
    points,
)

__all__ = [
    "combine_requirements",
    "layer",
    "make_layer",
    "nngp",
    "ntk",
    "require_axes",
    "requirements_of",
    "tags_of",
    "with_width",
]

#: NT's ``_DEFAULT_INPUT_REQ`` for the layout of the inputs.
DEFAULT_AXES = {"batch_axis": 0, "channel_axis": -1}


def require_axes(k: Kernel, layer: str, **axes: int | None) -> None:
    """NT's ``@requires(batch_axis=..., channel_axis=...)`` check of a layer's input kernel.

    Args:
        k: the kernel reaching the layer (``k.batch_axis``/``k.channel_axis`` say in which
            layout the finite-width activations are at this point of the network).
        layer: layer name for the message.
        **axes: ``batch_axis=``/``channel_axis=`` the layer was built with (None: no
            requirement), taken modulo the rank of the activations as in NT.

    Raises:
        ValueError: naming the argument when the kernel's layout differs (e.g. ``Dense()``
            after ``Dense(batch_axis=1, channel_axis=0)``: the infinite-width limit of a
            layer whose channel axis is the previous layer's batch axis is ill-defined).
    """
    ndim = len(k.shape1)
    for arg, want in axes.items():
        if want is None:
            continue
        have = getattr(k, arg)
        if want % ndim != have:
            raise ValueError(
                f"{layer} requires `{arg} == {want % ndim}` (it was built with {arg}="
                f"{want}), but its input kernel has `{arg} == {have}` (activations of shape "
                f"{actual_shape(k.shape1, k.axes)}, batch_axis={k.batch_axis}, channel_axis="
                f"{k.channel_axis}), making the infinite limit ill-defined. Give every layer "
                "the same batch_axis/channel_axis (Flatten changes them to its output layout)."
            )


def requirements_of(kernel_fn: Any) -> dict:
    """The input-layout requirement ``{'batch_axis': .., 'channel_axis': ..}`` (possibly
    partial or empty) of a gantk.stax ``kernel_fn``, NT's ``get_req``."""
    return dict(getattr(kernel_fn, "_gantk_req", {}))


def combine_requirements(kernel_fns: Sequence[Any], parallel: bool) -> dict:
    """NT's ``_get_input_req_attr`` for ``batch_axis``/``channel_axis``.

    In ``serial`` the first layer that states an axis sets the network's input layout
    (later layers are checked against the layout that reaches them, when the kernel is
    computed). In ``parallel`` the branches must agree; as in NT a mismatch only warns
    here (the branch layers raise when the kernel is computed).
    """
    req: dict = {}
    for fn in kernel_fns:
        for arg, value in requirements_of(fn).items():
            if arg not in req:
                req[arg] = value
            elif parallel and req[arg] != value:
                warnings.warn(
                    f"For `kernel_fn`, `{arg}` parameters must match in all parallel "
                    f"branches, got {req[arg]} and {value}; kernel_fn raises if the "
                    "layouts really differ.",
                    stacklevel=3,
                )
    return req


def _evaluate(
    fn: KernelMap,
    x1: Array,
    x2: Array | None,
    m1: Array | None,
    m2: Array | None,
    get: Any,
    diagonal_spatial: bool = False,
    fast: bool = True,
    same: bool | None = None,
    axes: tuple[int, int] = (0, -1),
) -> Any:
    """Kernel map ``fn`` on inputs ``x1``/``x2``: the jitted core of every ``kernel_fn``.

    ``m1``/``m2`` are NT's input masks (None without ``mask_constant``; the masked entries
    of ``x1``/``x2`` are already zero). ``fast`` selects the fused elementwise derivative
    (:func:`_chain`); it is only valid when every layer acts entrywise on the points
    kernel (no ``Flatten`` of spatial inputs, no ``Index``) and nothing is masked.
    Spatial outputs are returned in NT's layout. ``x1``/``x2`` are in the canonical
    order ``(n, *spatial, d)``; ``axes`` is the user's ``(batch_axis, channel_axis)``
    (metadata of the kernels; the masks are in that layout).
    """
    shape1, shape2 = tuple(x1.shape), tuple((x1 if x2 is None else x2).shape)
    _, _, c1, c2, n0 = _input_moments(x1, x2)
    c2 = c1 if c2 is None else c2
    fields = _fields(get)
    run = _Chain(fn, fields, _needs_ntk(get), x2 is not None, shape1, shape2, same, axes)
    if m1 is not None:  # masked: plain autodiff, masks of the outputs returned as well
        template = jax.eval_shape(run.kernel, n0, c1, c2, m1, m2)
        tree = run.kernel(n0, c1, c2, m1, m2)
        arrays, masks = run.arrays(tree, n0.shape), iter(run.masks(tree))
        result = run.rebuild(template, iter(arrays), get, masks)
        return _spatial_out(result, template, get, diagonal_spatial)
    template = jax.eval_shape(run.kernel, n0, c1, c2)
    run.kinds = tuple(_KIND[f] for f, _ in run.entries(template))
    arrays = _chain(run, n0, c1, c2) if fast else run(n0, c1, c2)
    return _spatial_out(run.rebuild(template, iter(arrays), get), template, get, diagonal_spatial)


def _spatial_out(result: Any, template: Any, get: Any, diagonal_spatial: bool) -> Any:
    """Points-layout results with spatial axes left in NT's layout (see ``_layout``)."""
    if isinstance(template, list):
        pairs = zip(result, template, strict=True)
        return [_spatial_out(r, t, get, diagonal_spatial) for r, t in pairs]
    if len(template.shape1) <= 2:
        return result

    def conv(f: str, v: Any) -> Any:
        if v is None:
            return None
        if f in ("nngp", "ntk"):
            return nt_layout(v, template.shape1, template.shape2, diagonal_spatial)
        shape = template.shape1 if f == "cov1" else template.shape2
        return jnp.reshape(v, shape[:-1])  # diagonal (batch and spatial) variances

    if get is None:
        return result.replace(**{f: conv(f, getattr(result, f)) for f in GETS})
    if isinstance(get, str):
        return conv(get, result)
    return type(result)(*(conv(g, v) for g, v in zip(get, result, strict=True)))


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


def _check_kwargs(kwargs: dict) -> tuple[bool, bool, Any]:
    """Validate NT's ``kernel_fn`` keyword arguments (the axes are checked with the inputs).

    Returns:
        ``(diagonal_batch, diagonal_spatial, mask_constant)``.
    """
    unknown = sorted(set(kwargs) - set(KERNEL_KWARGS))
    if unknown:
        raise TypeError(
            f"kernel_fn got unexpected keyword argument(s) {unknown}; it accepts x1, x2, get "
            f"and {KERNEL_KWARGS}."
        )
    for name in ("diagonal_batch", "diagonal_spatial"):
        if name in kwargs and not isinstance(kwargs[name], (bool, np.bool_)):
            raise ValueError(f"`{name}` must be a bool; got {kwargs[name]!r}.")
    mask_constant = check_mask_constant(kwargs.get("mask_constant"))
    return (
        bool(kwargs.get("diagonal_batch", True)),
        bool(kwargs.get("diagonal_spatial", False)),
        mask_constant,
    )


def _input_layout(req: dict, kwargs: dict) -> dict:
    """The layout of the inputs: NT's defaults, overridden by the network's requirement
    (:func:`requirements_of`), overridden by ``batch_axis=``/``channel_axis=`` given to
    ``kernel_fn`` (NT's ``_fuse_requirements``)."""
    layout = {**DEFAULT_AXES, **req}
    layout.update({a: kwargs[a] for a in DEFAULT_AXES if kwargs.get(a) is not None})
    return layout


def _masked_input(
    x: Any, name: str, mask_constant: Any, layout: dict, like: Any = None
) -> tuple:
    """``check_input`` then NT's input mask: ``(x canonical, mask, axes)``.

    ``x`` is validated in the user's layout ``layout`` (``batch_axis``/``channel_axis``)
    and moved to the canonical order ``(n, *spatial, d)``; the mask stays in the user's
    layout (NT's). With a ``mask_constant`` the finiteness check runs after masking, so
    NaN/inf entries are accepted exactly when they are masked (``mask_constant=nan`` /
    ``inf``). ``like`` is ``x1`` (canonical) for ``x2``: same non-batch shape required.
    """
    x = check_input(x, name, None, finite=mask_constant is None)
    axes = input_axes(x.ndim, layout["batch_axis"], layout["channel_axis"], name)
    x, mask = input_mask(x, mask_constant)
    if mask is not None:
        check_finite(x, name)
    canon = to_canonical(x, axes)
    if like is not None and canon.shape[1:] != like.shape[1:]:
        full = actual_shape((-1, *like.shape[1:]), axes)
        rest = full[: axes[0]] + full[axes[0] + 1 :]
        raise ValueError(
            f"`{name}` must have the non-batch shape of `x1`, {rest}; got {tuple(x.shape)} "
            f"(batch axis {axes[0]})."
        )
    return canon, mask, axes


def _public(tree: Any) -> Any:
    """Kernels with ``shape1``/``shape2`` in the activations' layout (NT's ``Kernel``)."""
    if isinstance(tree, list):
        return [_public(t) for t in tree]
    if not isinstance(tree, Kernel) or tree.axes == (0, len(tree.shape1) - 1):
        return tree
    return tree.replace(
        shape1=actual_shape(tree.shape1, tree.axes), shape2=actual_shape(tree.shape2, tree.axes)
    )


def _internal(tree: Any) -> Any:
    """Inverse of :func:`_public`: shapes in the canonical order used by the kernel maps."""
    if isinstance(tree, list):
        return [_internal(t) for t in tree]
    if tree.axes == (0, len(tree.shape1) - 1):
        return tree
    return tree.replace(
        shape1=canonical_shape(tree.shape1, tree.axes),
        shape2=canonical_shape(tree.shape2, tree.axes),
    )


#: Layer tags that break the entrywise structure of the points kernel (see ``_evaluate``).
_NOT_ENTRYWISE = {"index", "opaque", "mixing"}
_NOT_ENTRYWISE_SPATIAL = {"index", "flatten", "opaque", "mixing"}


def _tuple_inputs(
    fn: KernelMap,
    x1: Sequence,
    x2: Sequence | None,
    get: Any,
    diagonal_batch: bool,
    mask_constant: Any = None,
    layout: dict = DEFAULT_AXES,
) -> Any:
    """``kernel_fn`` on a tuple of inputs (networks that start with ``parallel``), all in
    the same ``layout`` (as NT)."""
    if isinstance(x2, (tuple, list)) and all(x is None for x in x2):
        x2 = None  # NT accepts (None, ..., None) for "x2 = x1"
    if x2 is not None and (not isinstance(x2, (tuple, list)) or len(x2) != len(x1)):
        raise ValueError(
            f"`x2` must be None or a tuple of {len(x1)} arrays like `x1`; got {type(x2).__name__}."
        )
    xs1 = [_masked_input(x, f"x1[{i}]", mask_constant, layout) for i, x in enumerate(x1)]
    axes = [a for _, _, a in xs1]
    xs1 = [(x, m) for x, m, _ in xs1]
    xs2 = None
    if x2 is not None:
        xs2 = [
            _masked_input(x, f"x2[{i}]", mask_constant, layout, xs1[i][0])[:2]
            for i, x in enumerate(x2)
        ]
    if any(x.ndim > 2 for x, _ in xs1):
        raise NotImplementedError("tuple inputs of rank > 2 are not implemented in gantk.stax.")

    def inputs(a: list, b: list | None) -> list:
        return [
            input_kernel(
                x, None if b is None else b[i][0], True, m, None if b is None else b[i][1],
                axes=axes[i],
            )
            for i, (x, m) in enumerate(a)
        ]

    full = jax.jit(lambda a, b: fn(inputs(a, b)))(xs1, xs2)
    full = _public(_select(full, None))
    covs = None
    if not diagonal_batch and any(f in ("cov1", "cov2") for f in _fields(get)):
        self1 = _select(jax.jit(lambda a: fn(inputs(a, None)))(xs1), "nngp")
        self2 = None
        if xs2 is not None:
            self2 = _select(jax.jit(lambda a: fn(inputs(a, None)))(xs2), "nngp")
        covs = (self1, self2)
    return full if get is None and covs is None else _assemble(full, full, get, covs)


def make_layer(
    init_fn: Callable,
    apply_fn: Callable,
    fn: KernelMap,
    name: str,
    tags: frozenset[str] = frozenset(),
    *,
    mask_fn: MaskFn | None = None,
    remask: bool = False,
    composite: bool = False,
    req: dict | None = None,
) -> Layer:
    """Wrap a kernel map into an NT-style ``(init_fn, apply_fn, kernel_fn)`` triple.

    The returned ``kernel_fn(x1, x2=None, get=None, **kwargs)`` accepts:

    - ``x1`` of shape ``(n1, d)`` or ``(n1, *spatial, d)`` (batch axis 0, channel axis
      -1) and ``x2`` shaped like it except the batch size, or ``None`` (``x2 = x1``); a
      tuple of such arrays for networks that start with ``parallel``; or a
      :class:`Kernel` (or list of kernels) as ``x1``, which is mapped directly;
    - ``get``: ``None`` (the full :class:`Kernel`), one of :data:`ALL_GETS` (NT's
      ``Kernel`` fields: the arrays ``nngp``, ``ntk``, ``cov1``, ``cov2`` or metadata such
      as ``shape1``, ``is_gaussian``, ``x1_is_x2``), or a tuple of them (an NT-style
      namedtuple, fields in the order asked);
    - NT's keyword arguments: ``diagonal_batch`` (default True; False makes ``cov1`` the
      full ``(n1, n1, ...)`` NNGP of ``x1`` with itself and ``cov2`` that of ``x2``, or
      None when ``x2`` is None), ``diagonal_spatial`` (default False; for outputs with
      spatial axes, True keeps equal positions only: ``nngp`` ``(n1, n2, *spatial)``
      instead of ``(n1, n2, s1, s1', s2, s2', ...)``) and ``mask_constant`` (default
      None; a real scalar, NaN allowed: input entries equal to it are masked, with NT's
      semantics, see :mod:`gantk.stax._masking`; ``mask1``/``mask2`` of the result
      carry the masks), ``batch_axis``/``channel_axis`` (NT's: the layout of ``x1``/``x2``;
      they override the network's own requirement, see below).

    Layout (NT's layer requirements): layers built with ``batch_axis``/``channel_axis``
    (``Dense``, ``Index``, ``Flatten``, ``LayerNorm``) state which layout their input
    activations have; ``serial`` takes its input layout from the first layer that states
    one, ``parallel`` from its branches. ``kernel_fn`` reads ``x1``/``x2`` in that layout
    (e.g. ``(d, n)`` for ``Dense(batch_axis=1, channel_axis=0)``), moves them to the
    canonical ``(n, *spatial, d)`` order and computes there: the kernels equal those of
    the transposed inputs in the default layout. The returned :class:`Kernel` has
    ``batch_axis``/``channel_axis`` and ``shape1``/``shape2``/masks of the output
    activations' layout (``Flatten(batch_axis_out=1)`` makes it ``(width, n)``).

    Unless ``composite``, the layer supports masking as NT's ``supports_masking``: its
    ``apply_fn`` takes ``mask_constant=`` (and :class:`~gantk.stax._masking.MaskedArray`
    inputs) and returns a ``MaskedArray`` when something is masked, and its kernel map
    propagates ``Kernel.mask1``/``mask2`` with ``mask_fn`` (then remasks when
    ``remask``).

    It is jittable with ``get`` static (``jax.jit(kernel_fn, static_argnames='get')``)
    when only array fields are asked, and ``vmap``/``grad`` friendly; it is jitted
    internally as well. The three functions are named after the layer, as in NT
    (``kernel_fn.__name__ == 'Sin'``); the full description is ``kernel_fn._gantk_name``.

    Args:
        init_fn: the layer's ``init_fn(key, input_shape)``.
        apply_fn: the layer's ``apply_fn(params, x, **kwargs)``.
        fn: the kernel map ``Kernel -> Kernel`` (or on lists, for branching layers).
        name: description; the part before ``(`` names the three functions.
        tags: structural tags of the layer and its sublayers (``'flatten'``,
            ``'index'``), which disable the fused entrywise derivative where needed.
        mask_fn: NT's ``mask_fn(mask, input_shape) -> mask`` of the layer (None: the
            mask is unchanged); lists of masks and shapes for fan-in layers.
        remask: NT's ``remask_kernel``: zero the kernel entries of masked positions
            after the layer.
        composite: the layer is made of layers that handle masks themselves
            (``serial``, ``parallel``, ``repeat``, ``FanOut``, user layers): masks and
            ``mask_constant`` pass through untouched.
        req: NT's input requirement of the layer, ``{'batch_axis': b, 'channel_axis':
            c}`` (either may be missing; ``channel_axis: None`` for ``Flatten``); the
            kernel map itself checks it with :func:`require_axes`.

    Raises (from the returned ``kernel_fn``):
        ValueError: when ``x1``/``x2`` have rank < 2, different non-batch shapes or
            (when concrete) non-finite entries that are not masked, ``get`` is unknown, a
            flag is not bool or ``mask_constant`` is not None or a real scalar; when
            ``batch_axis``/``channel_axis`` are not distinct in-range ints, or a layer's
            layout requirement contradicts the layout reaching it (naming the argument).
        TypeError: on any other keyword argument.
        NotImplementedError: (as NT) when a ``remask`` layer or ``LayerNorm`` gets masks
            that vary along the channel axis (e.g. ``Erf`` applied to a partially masked
            input; put a ``Dense`` first).
    """
    if not composite:
        fn = masked_map(fn, mask_fn, remask)
        apply_fn = masked_apply(apply_fn, mask_fn)
    core = jax.jit(
        functools.partial(_evaluate, fn),
        static_argnames=("get", "fast", "diagonal_spatial", "same", "axes"),
    )
    on_kernels = jax.jit(lambda k, get: _select(fn(k), get), static_argnames=("get",))
    req = dict(req or {})

    def kernel_fn(x1: Any, x2: Any = None, get: Any = None, **kwargs: Any) -> Any:
        diagonal_batch, ds, mask_constant = _check_kwargs(kwargs)
        layout = _input_layout(req, kwargs)
        get = _canonical_get(get)
        if _is_kernel_tree(x1):
            full = _public(on_kernels(_internal(x1), get=None))
            return full if get is None else _assemble(full, full, get, None)
        if isinstance(x1, (tuple, list)):
            return _tuple_inputs(fn, x1, x2, get, diagonal_batch, mask_constant, layout)
        x1, m1, axes = _masked_input(x1, "x1", mask_constant, layout)
        m2 = None
        if x2 is not None:
            x2, m2, _ = _masked_input(x2, "x2", mask_constant, layout, x1)
        spatial = x1.ndim > 2
        fast = not (tags & (_NOT_ENTRYWISE_SPATIAL if spatial else _NOT_ENTRYWISE))
        same = None
        if "dropout" in tags and x2 is not None:  # NT's x1_is_x2: equal values count
            same = x1 is x2 or (
                x1.shape == x2.shape and is_concrete(x1) and is_concrete(x2)
                and bool(np.array_equal(np.asarray(x1), np.asarray(x2)))
            )
        run = functools.partial(core, fast=fast, diagonal_spatial=ds, same=same, axes=axes)
        both, only1, only2 = (x1, x2, m1, m2), (x1, None, m1, None), (x2, None, m2, None)
        arr, fields = _array_fields(get), _fields(get)
        covs = None
        wants_cov = "cov1" in fields or "cov2" in fields
        if spatial and wants_cov:
            shape = jax.eval_shape(functools.partial(run, get=None), *only1)
            out_spatial = len(_first(shape).shape1) > 2
            if out_spatial and (ds and diagonal_batch):
                wants_cov = False  # the variances come out of the main evaluation
        else:
            out_spatial = False
        if wants_cov and (not diagonal_batch or out_spatial):
            covs = tuple(
                None if a[0] is None else _self_cov(run(*a, get="nngp"), diagonal_batch)
                for a in (only1, only2)
            )
        wants_mask = m1 is not None and ("mask1" in fields or "mask2" in fields)
        if arr is None or wants_mask:
            arrays = template = _public(run(*both, get=None))
        elif covs is None and len(arr) == len(fields):
            return run(*both, get=get)  # the common case: arrays only, as asked
        else:
            arrays = run(*both, get=arr) if arr else None
            # Metadata: from shapes only (nothing is computed).
            template = _public(jax.eval_shape(functools.partial(run, get=None), *both))
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
    kernel_fn._gantk_tags = frozenset(tags)  # type: ignore[attr-defined]
    kernel_fn._gantk_req = req  # type: ignore[attr-defined]
    return init_fn, apply_fn, kernel_fn


def layer(layer_fn: Callable[..., tuple]) -> Callable[..., Layer]:
    """Decorator turning a user layer into a gantk.stax layer, NT's ``stax.layer``.

    Args:
        layer_fn: ``layer_fn(*args, **kwargs) -> (init_fn, apply_fn, kernel_fn)`` where
            this ``kernel_fn(k, **kwargs)`` maps a :class:`Kernel` (points layout, see
            :mod:`gantk.stax._layout`) to a :class:`Kernel`, e.g. with ``k.replace(...)``.

    Returns:
        A function with ``layer_fn``'s signature returning a gantk.stax triple whose
        ``kernel_fn`` takes arrays, ``get`` and NT's keyword arguments (see
        :func:`make_layer`). The custom kernel map is not assumed to act entrywise, so
        gradients in the inputs use plain autodiff through it.
    """

    @functools.wraps(layer_fn)
    def new_layer(*args: Any, **kwargs: Any) -> Layer:
        init_fn, apply_fn, kernel_fn = layer_fn(*args, **kwargs)
        return make_layer(
            init_fn,
            apply_fn,
            lambda k: kernel_fn(k),
            layer_fn.__name__,
            frozenset({"opaque"}),
            composite=True,  # as an NT layer without supports_masking
        )

    return new_layer


def with_width(k: Kernel, width: int) -> Kernel:
    """``k`` with the channel (last) entry of ``shape1``/``shape2`` set to ``width``."""
    return k.replace(shape1=(*k.shape1[:-1], width), shape2=(*k.shape2[:-1], width))


def tags_of(*kernel_fns: KernelFn) -> frozenset[str]:
    """Union of the structural tags of gantk.stax ``kernel_fn`` s (for combinators)."""
    return frozenset().union(*(getattr(k, "_gantk_tags", frozenset()) for k in kernel_fns))


def _first(tree: Any) -> Any:
    return tree[0] if isinstance(tree, list) else tree


def _self_cov(nngp: Any, diagonal_batch: bool) -> Any:
    """``cov`` from the NNGP of a batch with itself (per branch for lists)."""
    if isinstance(nngp, list):
        return [_self_cov(m, diagonal_batch) for m in nngp]
    return batch_diagonal(nngp) if diagonal_batch else nngp


def _plain(kernel_fn: KernelFn, get: str) -> Callable:
    if isinstance(kernel_fn, (tuple, list)) and len(kernel_fn) == 3:
        kernel_fn = kernel_fn[2]
    fn = kernel_map(kernel_fn)
    name = getattr(kernel_fn, "_gantk_name", "layer")
    fast = not (getattr(kernel_fn, "_gantk_tags", frozenset()) & _NOT_ENTRYWISE)
    layout = _input_layout(requirements_of(kernel_fn), {})
    axes = input_axes(2, layout["batch_axis"], layout["channel_axis"], "x1")
    core = jax.jit(functools.partial(_evaluate, fn, get=get, fast=fast, axes=axes))

    def k(x1: Float[Array, "n1 d"], x2: Float[Array, "n2 d"] | None = None) -> Array:
        if axes != (0, 1):  # the network reads (d, n) inputs: NT's layout requirement
            x1 = jnp.transpose(jnp.asarray(x1)) if jnp.ndim(x1) == 2 else x1
            x2 = jnp.transpose(jnp.asarray(x2)) if x2 is not None and jnp.ndim(x2) == 2 else x2
        x1 = points(x1, "x1")
        if x2 is not None:
            x2 = points(x2, "x2", dim=x1.shape[1], dim_name="x1")
        out = core(x1, x2, None, None)
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
        in ``x1`` and ``x2``). For a network whose layers ask for the transposed layout
        (``Dense(batch_axis=1, channel_axis=0)``) ``x1`` is ``(d, n1)``, as for its
        ``kernel_fn``.

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
