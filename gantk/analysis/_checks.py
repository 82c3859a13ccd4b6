"""Argument checks of :mod:`gantk.analysis` (clear errors naming the argument and the choices)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; else raise a ValueError listing them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; got {value!r}.")
    return value


def real(value: Any, name: str, *, low: float | None = None, strict: bool = False) -> float:
    """Return ``value`` as a finite float, optionally ``>= low`` (``> low`` if ``strict``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a real number; got {value!r}.") from None
    if isinstance(value, bool) or not math.isfinite(x):
        raise ValueError(f"`{name}` must be a finite real number; got {value!r}.")
    if low is not None and (x <= low if strict else x < low):
        op = ">" if strict else ">="
        raise ValueError(f"`{name}` must be {op} {low}; got {value!r}.")
    return x


def positive_int(value: Any, name: str, *, low: int = 1) -> int:
    """Return ``value`` if it is an integer ``>= low``; else raise a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
    return int(value)


def shape(x: Any, name: str, expected: tuple[int | None, ...]) -> np.ndarray:
    """Check the shape of array ``x`` against ``expected`` (None = any size); return it."""
    arr = np.asarray(x) if not hasattr(x, "shape") else x
    got = tuple(arr.shape)
    if len(got) != len(expected) or any(
        e is not None and e != g for e, g in zip(expected, got, strict=True)
    ):
        want = "(" + ", ".join("n" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"`{name}` must have shape {want}; got shape {got}.")
    return arr
