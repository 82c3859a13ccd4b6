"""Monte-Carlo NNGP / NTK estimates from finite networks, NT's ``monte_carlo_kernel_fn``.

The estimate with ``n`` samples is the mean of :func:`gantk.empirical_kernel_fn` over
``n`` independent draws ``params ~ init_fn``: it converges to the infinite-width kernel of
a :mod:`gantk.stax` network as width and ``n`` grow (Neal 1996; Lee et al. 2018; Novak et
al. 2020, "Neural Tangents", Sec. 3). Draws follow NT's key sequence: sample ``s`` uses
``key_s`` from ``key, key_s = split(key)`` (repeated), split again into an init key and an
``rng`` passed to ``apply_fn`` (for ``Dropout``), so a given ``key`` draws the same
networks as NT.

Unlike NT's Python loop over samples, the samples are accumulated on device by a jitted
:func:`jax.lax.scan` over chunks of keys (one compilation; memory of one sample at a time).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gantk.batching import batch
from gantk.empirical import (
    DEFAULT_NTK_IMPLEMENTATION,
    NtkImplementation,
    _canonical_get,
    empirical_kernel_fn,
)

__all__ = ["monte_carlo_kernel_fn"]

#: Largest number of samples per compiled scan step (one compilation per call).
_CHUNK = 8


def _canonical_n_samples(n_samples: Any) -> tuple[list[int], bool]:
    if isinstance(n_samples, (int, np.integer)) and not isinstance(n_samples, bool):
        values, generator = [int(n_samples)], False
    elif isinstance(n_samples, Iterable) and not isinstance(n_samples, (str, bytes)):
        values, generator = list(n_samples), True
        if not values or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in values
        ):
            raise ValueError(f"`n_samples` must contain only integers; got {n_samples!r}.")
    else:
        raise ValueError(
            f"`n_samples` must be a positive int or a sequence of them; got {n_samples!r}."
        )
    if any(n <= 0 for n in values):
        raise ValueError(f"`n_samples` must be positive; got {n_samples!r}.")
    return sorted({int(n) for n in values}), generator


def _accepts_rng(apply_fn: Callable) -> bool:
    try:
        params = inspect.signature(apply_fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or p.name == "rng" for p in params)


@functools.partial(jax.jit, static_argnums=1)
def _sample_keys(key: jax.Array, n: int) -> jax.Array:
    """NT's key chain: ``key, key_s = split(key)`` for ``s = 1..n``; returns the ``key_s``."""

    def body(k: jax.Array, _: Any) -> tuple[jax.Array, jax.Array]:
        k, sub = jax.random.split(k)
        return k, sub

    return jax.lax.scan(body, key, None, length=n)[1]


def monte_carlo_kernel_fn(
    init_fn: Callable,
    apply_fn: Callable,
    key: jax.Array,
    n_samples: int | Sequence[int],
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
    trace_axes: int | Sequence[int] = (-1,),
    diagonal_axes: int | Sequence[int] = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = DEFAULT_NTK_IMPLEMENTATION,
) -> Callable:
    """Monte-Carlo estimator of a network's NNGP / NTK, NT's ``monte_carlo_kernel_fn``.

    Args:
        init_fn: ``init_fn(key, input_shape) -> (output_shape, params)``.
        apply_fn: ``apply_fn(params, x, **kwargs)``; receives ``rng=`` (a per-sample key,
            for ``Dropout``) when it accepts that keyword or ``**kwargs``.
        key: PRNG key drawing the networks.
        n_samples: number of networks averaged (int), or a sequence of counts, in which
            case the returned function yields the estimate after each count (a generator,
            as NT), all from one running sum.
        batch_size: tile size over ``x1``/``x2`` for each sample (see :func:`gantk.batch`);
            0 means whole kernels.
        device_count: as :func:`gantk.batch`.
        store_on_device: see ``device_count``.
        trace_axes: as
            :func:`gantk.empirical_kernel_fn`.
        diagonal_axes: see ``trace_axes``.
        vmap_axes: see ``trace_axes``.
        implementation: see ``trace_axes``.

    Returns:
        ``kernel_fn(x1, x2=None, get=None, **apply_fn_kwargs)`` returning the mean of the
        empirical kernels (``get`` as :func:`gantk.empirical_kernel_fn`; ``None`` gives the
        namedtuple ``(nngp, ntk)``), or a generator of such estimates.

    Raises:
        ValueError: on non-positive or non-integer ``n_samples``, non-callable
            ``init_fn``/``apply_fn``, and the errors of :func:`gantk.empirical_kernel_fn`
            and :func:`gantk.batch`.
    """
    for fn, name in ((init_fn, "init_fn"), (apply_fn, "apply_fn")):
        if not callable(fn):
            raise ValueError(f"`{name}` must be callable; got {fn!r}.")
    counts, generator = _canonical_n_samples(n_samples)
    empirical = empirical_kernel_fn(apply_fn, trace_axes, diagonal_axes, vmap_axes, implementation)
    pass_rng = _accepts_rng(apply_fn)
    batch(empirical, batch_size, device_count, store_on_device)  # validates the arguments

    def one_sample(x1: Any, x2: Any, sample_key: jax.Array, get: Any, kwargs: dict) -> Any:
        init_key, rng = jax.random.split(sample_key)
        shape = jax.tree.map(lambda a: a.shape, x1)
        _, params = init_fn(init_key, shape)
        kw = {**kwargs, "rng": rng} if pass_rng else kwargs
        tiled = batch(empirical, batch_size, device_count, True)
        return tiled(x1, x2, get, params, **kw)

    def scan(total: Any, keys: jax.Array, x1: Any, x2: Any, get: Any, kwargs: dict) -> Any:
        def body(acc: Any, k: jax.Array) -> tuple[Any, None]:
            return jax.tree.map(jnp.add, acc, one_sample(x1, x2, k, get, kwargs)), None

        return jax.lax.scan(body, total, keys)[0]

    @functools.partial(jax.jit, static_argnames=("get",))
    def start(keys: jax.Array, x1: Any, x2: Any, get: Any, kwargs: dict) -> Any:
        # The accumulator's zeros are shaped at trace time (no per-call tracing).
        shape = jax.eval_shape(lambda: one_sample(x1, x2, keys[0], get, kwargs))
        zeros = jax.tree.map(lambda sd: jnp.zeros(sd.shape, sd.dtype), shape)
        return scan(zeros, keys, x1, x2, get, kwargs)

    accumulate = jax.jit(scan, static_argnames=("get",))

    def estimates(x1: Any, x2: Any, get: Any, kwargs: dict) -> Generator[Any, None, None]:
        fields, as_tuple = _canonical_get(get)
        get_t = fields if as_tuple else fields[0]
        keys = _sample_keys(key, counts[-1])
        # One compiled chunk size that divides every segment between requested counts:
        # no padded (wasted) samples.
        gcd = functools.reduce(math.gcd, np.diff([0, *counts]).tolist())
        chunk = max(c for c in range(1, _CHUNK + 1) if gcd % c == 0)
        total, done = None, 0
        for n in counts:
            while done < n:
                block = keys[done : done + chunk]
                if total is None:
                    total = start(block, x1, x2, get_t, kwargs)
                else:
                    total = accumulate(total, block, x1, x2, get_t, kwargs)
                done += chunk
            mean = jax.tree.map(lambda a, n=n: a / n, total)
            yield mean if store_on_device else jax.device_get(mean)

    if generator:

        def kernel_fn(x1: Any, x2: Any = None, get: Any = None, **apply_fn_kwargs: Any) -> Any:
            return estimates(x1, x2, get, apply_fn_kwargs)

    else:

        def kernel_fn(x1: Any, x2: Any = None, get: Any = None, **apply_fn_kwargs: Any) -> Any:
            return next(iter(estimates(x1, x2, get, apply_fn_kwargs)))

    kernel_fn.__doc__ = (
        "Monte-Carlo kernel ``kernel_fn(x1, x2=None, get=None, **apply_fn_kwargs)``; see "
        ":func:`gantk.monte_carlo_kernel_fn`."
    )
    return kernel_fn
