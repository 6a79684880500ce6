"""Uniform Cartesian grids in 1-3 dimensions."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Grid:
    """A uniform, cell-centred Cartesian grid in 1, 2 or 3 dimensions.

    ``shape[a]`` counts the cells along axis ``a`` (boundaries excluded). Cell ``i``
    spans ``[lo + i h, lo + (i + 1) h]`` with ``h = (hi - lo) / shape[a]``; its centre
    is ``lo + (i + 1/2) h``. Faces sit at ``lo + i h`` for ``i = 0 .. shape[a]``, so an
    axis has ``shape[a] + 1`` faces, the first and last on the domain boundary.
    Staggered (MAC) quantities live on faces: offset ``0`` along their own axis and
    ``1/2`` along the others, in units of the spacing.

    The grid is static metadata: hashable, built once, never traced.

    Args:
        shape: cells per axis, e.g. ``(128, 64)``.
        extent: ``((lo, hi), ...)`` per axis; defaults to the unit interval on every
            axis.
    """

    shape: tuple[int, ...]
    extent: tuple[tuple[float, float], ...]

    def __init__(
        self,
        shape: tuple[int, ...] | list[int] | int,
        extent: tuple[tuple[float, float], ...] | list | None = None,
    ):
        if isinstance(shape, int):
            shape = (shape,)
        shape = tuple(shape)
        if not 1 <= len(shape) <= 3:
            raise ValueError(
                f"Grid shape must have 1 to 3 axes, got shape={shape}. "
                "Fix: pass one cell count per spatial axis, e.g. Grid((64, 64))."
            )
        if not all(isinstance(n, (int, np.integer)) and n >= 1 for n in shape):
            raise ValueError(
                f"Grid shape must hold positive integers, got shape={shape}. Fix: pass cell counts such as (64, 64)."
            )
        if extent is None:
            extent = tuple((0.0, 1.0) for _ in shape)
        extent = tuple(tuple(float(v) for v in e) for e in extent)
        if len(extent) != len(shape) or any(len(e) != 2 for e in extent):
            raise ValueError(f"Grid extent must hold one (lo, hi) pair per axis of shape={shape}, got extent={extent}.")
        for lo, hi in extent:
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError(
                    f"Grid extent needs finite lo < hi on every axis, got {extent}. "
                    "Fix: e.g. extent=((0.0, 1.0), (0.0, 2.0))."
                )
        object.__setattr__(self, "shape", tuple(int(n) for n in shape))
        object.__setattr__(self, "extent", extent)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def lengths(self) -> tuple[float, ...]:
        return tuple(hi - lo for lo, hi in self.extent)

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(length / n for length, n in zip(self.lengths, self.shape))

    @property
    def cell_volume(self) -> float:
        return math.prod(self.spacing)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def axis_centres(self, axis: int) -> np.ndarray:
        """1-D cell-centre positions along ``axis`` (``shape[axis]`` values)."""
        lo, _ = self.extent[axis]
        return lo + (np.arange(self.shape[axis]) + 0.5) * self.spacing[axis]

    def axis_faces(self, axis: int) -> np.ndarray:
        """1-D face positions along ``axis`` (``shape[axis] + 1`` values, both ends)."""
        lo, _ = self.extent[axis]
        return lo + np.arange(self.shape[axis] + 1) * self.spacing[axis]

    def cell_centres(self) -> tuple[jnp.ndarray, ...]:
        """Mesh of cell centres: one array of ``shape`` per axis (``indexing='ij'``)."""
        return tuple(
            jnp.asarray(c) for c in np.meshgrid(*(self.axis_centres(a) for a in range(self.ndim)), indexing="ij")
        )

    def face_centres(self, axis: int) -> tuple[jnp.ndarray, ...]:
        """Mesh of the centres of the faces normal to ``axis`` (staggered positions).

        Along ``axis`` it has ``shape[axis] + 1`` points (boundary faces included);
        along the other axes it sits at cell centres.
        """
        axes = [self.axis_faces(a) if a == axis else self.axis_centres(a) for a in range(self.ndim)]
        return tuple(jnp.asarray(c) for c in np.meshgrid(*axes, indexing="ij"))

    def boundary_face_shape(self, axis: int) -> tuple[int, ...]:
        """Shape of the boundary values on the two faces normal to ``axis``."""
        return tuple(n for a, n in enumerate(self.shape) if a != axis)

    def boundary_face_centres(self, axis: int) -> tuple[jnp.ndarray, ...]:
        """Coordinates (all axes but ``axis``) of the boundary faces normal to ``axis``.

        Useful to build Dirichlet or Neumann values that vary along a wall.
        """
        axes = [self.axis_centres(a) for a in range(self.ndim) if a != axis]
        if not axes:
            return ()
        return tuple(jnp.asarray(c) for c in np.meshgrid(*axes, indexing="ij"))
