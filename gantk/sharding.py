"""Multi-device particle flows with :mod:`jax.sharding` (replaces GAN(TK)²'s ``pmap``).

The expensive part of a flow step is the velocity ``v(x_i) = −∇ c(f_τ(x_i))`` of every fake
particle: ``n`` independent kernel-gradient sums over the ``n + m`` training points. gantk
shards the *query particles* over a 1-D device mesh with :func:`jax.shard_map` while the
fitted discriminator (:class:`~gantk.solution.AbstractDiscriminator`: training points and
coefficients, or network parameters) is replicated, so each device computes the velocity of
``n / p`` particles and no collective is needed except the final gather. The discriminator
fit itself (closed form, eigh, Krylov or ODE) runs replicated.

Single device: everything works unchanged (the mesh has one device).

Multi-host: call :func:`jax.distributed.initialize` on every host first (see JAX's
"multi-process" guide), then build the mesh from the *global* device list,
``particle_mesh(jax.devices())``; each host holds the same replicated inputs (same seed),
and the per-particle work is spread over all devices of all hosts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Float

from gantk._linalg import pad_rows
from gantk.solution import AbstractDiscriminator

__all__ = ["AXIS", "particle_mesh", "shard_particles", "sharded_value_and_velocity"]

#: Name of the mesh axis over which particles are split.
AXIS = "particles"


def particle_mesh(devices: int | Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` with axis :data:`AXIS`.

    Args:
        devices: None for all devices, an int ``p`` for the first ``p`` devices, or an
            explicit device list.

    Raises:
        ValueError: if more devices are requested than are available, or fewer than 1.
    """
    available = jax.devices()
    if devices is None:
        devs = list(available)
    elif isinstance(devices, int) and not isinstance(devices, bool):
        if devices < 1 or devices > len(available):
            raise ValueError(
                f"`devices` must be between 1 and the {len(available)} available "
                f"{available[0].platform} device(s); got {devices}."
            )
        devs = list(available[:devices])
    else:
        devs = list(devices)
        if not devs:
            raise ValueError("`devices` must name at least one device; got an empty list.")
    return Mesh(devs, (AXIS,))


def shard_particles(x: Float[Array, "n d"], mesh: Mesh) -> Float[Array, "n d"]:
    """Place particles on ``mesh``, split along their first axis (``n`` divisible by p).

    Raises:
        ValueError: if ``n`` is not divisible by the number of devices.
    """
    p = mesh.devices.size
    if x.shape[0] % p:
        raise ValueError(
            f"`x` must have a number of rows divisible by the {p} devices; got {x.shape[0]}."
        )
    return jax.device_put(x, NamedSharding(mesh, PartitionSpec(AXIS)))


def sharded_value_and_velocity(
    D: AbstractDiscriminator, points: Float[Array, "q d"], mesh: Mesh | None
) -> tuple[Float[Array, " q"], Float[Array, "q d"]]:
    """``(c(f(points)) (q,), velocity(points) (q, d))`` with the points split over ``mesh``.

    ``D`` is replicated on every device; ``points`` are padded (by repeating the last row,
    ``gantk._linalg.pad_rows``) to a multiple of the device count, split, evaluated,
    gathered and un-padded. Works under ``jit``; the result equals the single-device
    computation up to floating-point summation order (identical on CPU). With ``mesh``
    None or of one device this is ``D.value_and_velocity(points)``.

    Args:
        D: a fitted :class:`~gantk.solution.AbstractDiscriminator` (infinite or finite
            width).
        points: query points, shape ``(q, d)``.
        mesh: a 1-D mesh from :func:`particle_mesh`, or None.

    Raises:
        ValueError: on invalid ``points`` (from ``D``).
    """
    if mesh is None or mesh.devices.size == 1:
        return D.value_and_velocity(points)
    q = points.shape[0]
    padded = pad_rows(points, mesh.devices.size)
    spec = PartitionSpec(AXIS)
    fn = jax.shard_map(
        lambda D, pts: D.value_and_velocity(pts), mesh=mesh, in_specs=(PartitionSpec(), spec),
        out_specs=(spec, spec), check_vma=False,
    )  # fmt: skip
    values, velocity = fn(D, padded)
    return values[:q], velocity[:q]
