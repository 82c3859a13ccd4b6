"""Argument checking shared by every gantk module.

Every public entry point validates its arguments with these helpers so that bad input
fails early with a :class:`ValueError` that names the argument, what was expected and what
was received — instead of producing a NaN many steps later.

Checks that need concrete values (finiteness, sign) are skipped transparently when the
value is a JAX tracer, so that validated functions stay ``jit``/``vmap``/``grad``-friendly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "as_points",
    "check_choice",
    "check_finite_real",
    "check_nonneg",
    "check_positive",
    "check_int",
    "check_positive_int",
    "is_concrete",
]


def is_concrete(x: Any) -> bool:
    """Return True when ``x`` holds concrete values (not a JAX tracer inside jit/grad)."""
    return not isinstance(x, jax.core.Tracer)


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)}"
    return f"{type(x).__name__} {x!r}"


def as_points(
    x: Any,
    name: str,
    *,
    dim: int | None = None,
    dim_name: str | None = None,
    check_finite: bool = True,
) -> jax.Array:
    """Validate and convert a point cloud of shape ``(n, d)``.

    Args:
        x: array-like of shape ``(n, d)``.
        name: the argument's name, used in error messages.
        dim: expected feature dimension ``d``, or None to accept any.
        dim_name: name of the argument ``dim`` comes from (for the error message).
        check_finite: when True and ``x`` is concrete, reject NaN/inf entries.

    Returns:
        ``x`` as a JAX array (float dtype preserved; integer input is cast to the default
        float dtype).

    Raises:
        ValueError: if ``x`` is not rank 2, has the wrong feature dimension, has no
            points, or (when concrete) contains non-finite values.
    """
    if x is None:
        raise ValueError(f"`{name}` must be an array of shape (n, d); got None.")
    if not hasattr(x, "shape"):
        try:
            x = np.asarray(x)
        except Exception as err:  # pragma: no cover - exotic input
            msg = f"`{name}` must be an array of shape (n, d); got {_describe(x)}."
            raise ValueError(msg) from err
    if x.ndim != 2:
        raise ValueError(
            f"`{name}` must have rank 2 with shape (n, d); got {_describe(x)} (rank {x.ndim})."
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` must contain at least one point; got shape {tuple(x.shape)}.")
    if dim is not None and x.shape[1] != dim:
        other = f" to match `{dim_name}`" if dim_name else ""
        raise ValueError(
            f"`{name}` must have feature dimension d={dim}{other}; got shape {tuple(x.shape)}."
        )
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if check_finite and is_concrete(x):
        # NumPy on the concrete values: works even while tracing an enclosing jit (where a
        # jnp reduction would return a tracer)
        finite = np.isfinite(np.asarray(x))
    else:
        finite = None
    if finite is not None and not finite.all():
        bad = int((~finite).sum())
        raise ValueError(f"`{name}` must be finite; got {bad} non-finite entries (NaN or inf).")
    return x


def _as_float(value: Any, name: str) -> float | None:
    if not is_concrete(value):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be a finite real number; got {value!r}.") from err
    if not math.isfinite(v):
        raise ValueError(f"`{name}` must be a finite real number; got {v}.")
    return v


def check_finite_real(value: Any, name: str) -> Any:
    """Check that a scalar is a finite real number (skipped for tracers).

    Raises:
        ValueError: naming ``name`` when the value is not a finite real number.
    """
    _as_float(value, name)
    return value


def check_nonneg(value: Any, name: str) -> Any:
    """Check that a scalar is finite and ``>= 0`` (skipped for tracers).

    Raises:
        ValueError: naming ``name`` when the value is negative or not finite.
    """
    v = _as_float(value, name)
    if v is not None and v < 0:
        raise ValueError(f"`{name}` must be non-negative; got {v}.")
    return value


def check_positive(value: Any, name: str) -> Any:
    """Check that a scalar is finite and ``> 0`` (skipped for tracers).

    Raises:
        ValueError: naming ``name`` when the value is not strictly positive or not finite.
    """
    v = _as_float(value, name)
    if v is not None and v <= 0:
        raise ValueError(f"`{name}` must be positive; got {v}.")
    return value


def check_int(value: Any, name: str, minimum: int = 0) -> int:
    """Check that ``value`` is an integer (not a bool) ``>= minimum``; return it as ``int``.

    The one integer check of gantk: sizes, step counts and budgets all go through it.

    Raises:
        ValueError: naming ``name`` when the value is not an integer or is below ``minimum``.
    """
    what = {0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}"
    )
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{name}` must be {what}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be {what} (>= {minimum}); got {value}.")
    return int(value)


def check_positive_int(value: Any, name: str) -> int:
    """Check that ``value`` is an integer ``>= 1`` and return it as ``int``.

    Raises:
        ValueError: naming ``name`` when the value is not an integer or is below 1.
    """
    return check_int(value, name, 1)


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``choices``.

    Raises:
        ValueError: naming ``name``, the valid choices and the received value.
    """
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {valid}; got {value!r}.")
    return value
