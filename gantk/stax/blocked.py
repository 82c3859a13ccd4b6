"""Memory-bounded evaluation of a Gram matrix in tiles (:func:`blocked`)."""

from __future__ import annotations

from collections.abc import Callable

from jaxtyping import Array, Float

from gantk._linalg import gram
from gantk._validate import as_points, check_positive_int

__all__ = ["blocked"]


def blocked(k: Callable, block_size: int) -> Callable:
    """Evaluate a kernel ``k(x1, x2) -> (n1, n2)`` in tiles of bounded size.

    The Gram matrix is computed tile by tile with :func:`jax.lax.map` (a sequential loop,
    so only one ``block_size x block_size`` tile of intermediates is alive at a time):
    ``x1``/``x2`` are padded (by repeating their last point) to multiples of the tile
    size, every tile is ``k(x1_block, x2_block)``, and the result is sliced back. Tiles
    have ``min(block_size, n1)`` rows and ``min(block_size, n2)`` columns. The result
    equals ``k(x1, x2)`` (up to floating-point reassociation inside ``k``), and is
    jittable and differentiable. The tiling is gantk's one tiled Gram builder
    (``gantk._linalg.gram``), shared with the discriminator solvers.

    Args:
        k: a kernel ``k(x1, x2) -> (n1, n2)`` acting row/column-wise, e.g.
            :func:`gantk.stax.ntk` of a network.
        block_size: maximal number of rows and columns of a tile, ``>= 1``.

    Returns:
        ``k_blocked(x1, x2=None) -> (n1, n2)``; ``x2=None`` means ``x2 = x1``.

    Raises:
        ValueError: if ``block_size`` is not an integer ``>= 1``; ``k_blocked`` raises
            ValueError on bad ``x1``/``x2`` (rank, feature dimension, non-finite values).
    """
    block_size = check_positive_int(block_size, "block_size")
    if not callable(k):
        raise ValueError(f"`k` must be a callable k(x1, x2); got {k!r}.")

    def k_blocked(
        x1: Float[Array, "n1 d"], x2: Float[Array, "n2 d"] | None = None
    ) -> Float[Array, "n1 n2"]:
        x1 = as_points(x1, "x1")
        x2 = x1 if x2 is None else as_points(x2, "x2", dim=x1.shape[1], dim_name="x1")
        return gram(k, x1, x2, block_size)

    k_blocked.__name__ = f"blocked[{getattr(k, '__name__', 'k')}, {block_size}]"
    return k_blocked
