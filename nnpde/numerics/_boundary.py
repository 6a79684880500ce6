"""Boundary conditions as ghost-cell padding.

A boundary condition fills ghost cells outside the domain so that the same interior
stencil applies everywhere. Periodic axes wrap. Dirichlet and Neumann sides fill ghosts
from a polynomial through the condition and the nearest interior cells:

* ``order=2``: one interior cell (a straight line): ``u_ghost = 2 g - u_0`` for
  Dirichlet, ``u_ghost = u_0 + h g`` for Neumann. The discrete Laplacian stays
  symmetric and negative semi-definite, so it is stable, obeys a discrete maximum
  principle and suits conjugate gradients; the solution converges at second order
  (the boundary cell's O(1) truncation error is the classical supraconvergent case).
* ``order=4``: four interior cells (a quartic): the ghost error is O(h^5), which keeps
  the fourth-order Laplacian fourth-order convergent with walls (measured slopes 4.1
  Dirichlet and 4.0 Neumann, tests/test_convergence.py).

Neumann values are the *outward normal* derivative ``du/dn`` on that side, so a
positive value means the field rises towards the wall; heat flows in where
``k du/dn > 0``. Values may be Python scalars, arrays of the boundary-face shape
(``grid.boundary_face_shape(axis)``) or functions ``value(t)`` returning either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite
from ._grid import Grid

# Interior cells the ghost polynomial passes through, per order of the stencil.
INTERIOR_POINTS = {2: 1, 4: 4}


class Periodic(eqx.Module):
    """The field repeats: the ghost cells of one side are the other side's cells."""


class _ValueCondition(eqx.Module):
    value: object = None
    function: Callable | None = eqx.field(static=True, default=None)

    def __init__(self, value=0.0):
        if callable(value):
            self.value = None
            self.function = value
        else:
            if not isinstance(value, (int, float)):
                value = jnp.asarray(value)
            self.value = value
            self.function = None

    def at(self, t):
        return self.function(t) if self.function is not None else self.value


class Dirichlet(_ValueCondition):
    """Prescribed value ``u = g`` on the boundary face (scalar, array or ``g(t)``)."""


class Neumann(_ValueCondition):
    """Prescribed outward normal derivative ``du/dn = g`` (scalar, array or ``g(t)``)."""


Condition = Union[Periodic, Dirichlet, Neumann]


@functools.cache
def ghost_coefficients(kind: str, points: int, width: int) -> np.ndarray:
    """Weights of the ghost values on the interior cells and on the boundary datum.

    Local coordinates in units of h: boundary at 0, interior cells at 1/2, 3/2, ...,
    ghosts at -1/2, -3/2, .... Returns ``(width, points + 1)``: row ``g`` gives ghost
    ``g + 1`` (nearest first) as weights on ``u_0 .. u_{points-1}`` and, last, on the
    datum (the value for Dirichlet, ``h * du/dx`` at the wall for Neumann).
    """
    degree = points
    powers = np.arange(degree + 1)
    rows = [((j + 0.5) ** powers) for j in range(points)]
    if kind == "dirichlet":
        rows.append((powers == 0).astype(float))
    else:  # d/dx at 0 picks the linear coefficient
        rows.append((powers == 1).astype(float))
    inverse = np.linalg.inv(np.array(rows))
    ghosts = np.array([(-(g + 0.5)) ** powers for g in range(width)])
    return ghosts @ inverse


def _as_condition(c, axis: int) -> Condition:
    if isinstance(c, (Periodic, Dirichlet, Neumann)):
        return c
    raise TypeError(
        f"Boundary condition for axis {axis} must be nnpde.Periodic(), "
        f"nnpde.Dirichlet(value) or nnpde.Neumann(value), got {c!r}."
    )


def check_face_value(cond, side: str, axis: int, face: tuple, what: str, fix: str) -> None:
    """Raise ``ValueError`` unless the fixed datum of ``cond`` (a scalar or an array) fits
    the boundary face ``face`` of ``axis`` and is finite; periodic sides, time-dependent
    data and other non-valued conditions pass. ``what`` names the face in the message
    ("boundary", "global boundary"); ``fix`` is the remedy."""
    if not isinstance(cond, _ValueCondition):
        return
    label = f"The {type(cond).__name__} value on the {side} side of axis {axis}"
    if cond.function is not None:
        # The shape of g(t), traced once without computing: a wrong shape fails here, at
        # construction, not as a broadcasting error at the first step.
        label += " (a function of t)"
        shape = jax.eval_shape(cond.function, jax.ShapeDtypeStruct((), jnp.result_type(float))).shape
    else:
        shape = jnp.shape(cond.value)
    try:
        fits = len(shape) == 0 or np.broadcast_shapes(shape, face) == face
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{label} has shape {shape}, which does not fit the {what} face shape {face}. Fix: {fix}")
    if cond.function is None:
        check_finite(jnp.asarray(cond.value), label, "give finite boundary data.")


class BoundaryConditions(eqx.Module):
    """Boundary conditions of every face of a grid.

    ``BoundaryConditions(spec_axis0, spec_axis1, ...)`` where each spec is one
    condition for both sides of that axis or a ``(low, high)`` pair, e.g.::

        BoundaryConditions(Periodic(), (Dirichlet(1.0), Neumann(0.0)))

    Periodic must hold on both sides of its axis.
    """

    sides: tuple[tuple[Condition, Condition], ...]

    def __init__(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], list):
            axes = tuple(axes[0])
        if not 1 <= len(axes) <= 3:
            raise ValueError(f"BoundaryConditions needs one spec per spatial axis (1 to 3), got {len(axes)}.")
        sides = []
        for a, spec in enumerate(axes):
            pair = tuple(spec) if isinstance(spec, (tuple, list)) else (spec, spec)
            if len(pair) != 2:
                raise ValueError(f"Axis {a}: give one condition or a (low, high) pair, got {spec!r}.")
            lo, hi = (_as_condition(c, a) for c in pair)
            if isinstance(lo, Periodic) != isinstance(hi, Periodic):
                raise ValueError(
                    f"Axis {a}: periodic on one side and {type(hi if isinstance(lo, Periodic) else lo).__name__} "
                    "on the other is inconsistent; a periodic axis is periodic on both "
                    "sides. Fix: use Periodic() for both sides, or none."
                )
            sides.append((lo, hi))
        self.sides = tuple(sides)

    @classmethod
    def periodic(cls, ndim: int) -> BoundaryConditions:
        return cls(*(Periodic() for _ in range(ndim)))

    @classmethod
    def dirichlet(cls, ndim: int, value=0.0) -> BoundaryConditions:
        return cls(*(Dirichlet(value) for _ in range(ndim)))

    @classmethod
    def neumann(cls, ndim: int, value=0.0) -> BoundaryConditions:
        return cls(*(Neumann(value) for _ in range(ndim)))

    @property
    def ndim(self) -> int:
        return len(self.sides)

    def is_periodic(self, axis: int) -> bool:
        return isinstance(self.sides[axis][0], Periodic)

    def kinds(self, axis: int) -> tuple[str, str]:
        return tuple(type(c).__name__.lower() for c in self.sides[axis])

    # -- hooks a solver uses so that it also runs on one block of a split domain -------
    # (nnpde.distributed.Decomposition's boundary conditions override them with halo
    # exchanges and reductions over the ranks; here, in one process, they are local.)
    @property
    def distributed(self) -> bool:
        """Whether these are one rank's conditions of a domain split across ranks."""
        return False

    def global_periodic(self, axis: int) -> bool:
        """Whether ``axis`` is periodic in the whole domain (not only on this block)."""
        return self.is_periodic(axis)

    def global_size(self, shape: tuple[int, ...]) -> int:
        """Cells in the whole domain of which a block of ``shape`` is this rank's part."""
        return int(np.prod(shape))

    def allreduce(self, x, op: str = "sum", *, varying: bool = False):
        """``x`` reduced over the ranks sharing the domain: ``x`` itself in one process.
        (``varying``: see ``nnpde.distributed``'s decomposed conditions.)"""
        return x

    def shift(self, u, axis: int, offset: int):
        """``u`` at index ``i + offset`` (``offset`` = +1 or -1) along a periodic ``axis``
        of the last ``ndim`` axes: ``jnp.roll(u, -offset)`` in one process."""
        if not self.global_periodic(axis):
            raise ValueError(f"shift needs a periodic axis; axis {axis} has {self.kinds(axis)} boundaries.")
        return jnp.roll(u, -offset, axis=u.ndim - self.ndim + axis)

    def homogeneous(self) -> BoundaryConditions:
        """The same conditions with zero data: the linear part of the padding."""
        return BoundaryConditions(
            *(tuple(c if isinstance(c, Periodic) else type(c)(0.0) for c in pair) for pair in self.sides)
        )

    def check(self, grid: Grid, *, order: int = 2, width: int | None = None) -> None:
        """Raise ``ValueError`` if these conditions do not fit ``grid`` and the stencil."""
        if self.ndim != grid.ndim:
            raise ValueError(
                f"Boundary conditions are for {self.ndim} axes but the grid has {grid.ndim} "
                f"(shape {grid.shape}). Fix: give one spec per grid axis; a (low, high) pair "
                "for one axis is a tuple inside the call, e.g. "
                "BoundaryConditions((Dirichlet(1.0), Neumann(0.0)))."
            )
        if order not in INTERIOR_POINTS:
            raise ValueError(f"order must be one of {sorted(INTERIOR_POINTS)}, got {order}.")
        width = order // 2 if width is None else width
        for a, pair in enumerate(self.sides):
            n = grid.shape[a]
            need = width if self.is_periodic(a) else INTERIOR_POINTS[order]
            if n < max(need, 2):
                raise ValueError(
                    f"Axis {a} has {n} cells, too few for an order-{order} stencil with "
                    f"{self.kinds(a)[0]} boundaries (needs at least {max(need, 2)}). "
                    "Fix: refine the grid or lower the order."
                )
            face = grid.boundary_face_shape(a)
            for side, c in zip(("low", "high"), pair):
                check_face_value(
                    c,
                    side,
                    a,
                    face,
                    "boundary",
                    f"give a scalar or an array of shape {face} (grid.boundary_face_shape({a})).",
                )

    def pad(self, u, width: int, spacing: tuple[float, ...], *, t=0.0, order: int = 2):
        """Pad the last ``ndim`` axes of ``u`` with ``width`` ghost cells each side.

        ``spacing`` is the grid spacing per axis (it scales Neumann data); ``t`` the
        time at which time-dependent data is evaluated; ``order`` picks the ghost
        polynomial (see the module docstring).

        Axes are padded in turn; the corner ghost cells (unused by axis-wise stencils)
        are filled consistently but carry no boundary meaning.
        """
        for axis in range(self.ndim):
            u = self._pad_axis(u, axis, width, spacing[axis], t, order)
        return u

    def _pad_axis(self, u, axis: int, width: int, h: float, t, order: int):
        ndim = self.ndim
        ax = u.ndim - ndim + axis
        if self.is_periodic(axis):
            return jnp.pad(u, [(width, width) if i == ax else (0, 0) for i in range(u.ndim)], mode="wrap")
        v = jnp.moveaxis(u, ax, 0)
        n = v.shape[0]
        points = min(INTERIOR_POINTS[order], n)
        parts = []
        for side, interior in (("low", v[:points]), ("high", v[::-1][:points])):
            cond = self.sides[axis][0 if side == "low" else 1]
            coeffs = jnp.asarray(ghost_coefficients(type(cond).__name__.lower(), points, width), dtype=v.dtype)
            datum = self._datum(cond, axis, h, t, v.shape[1:], width, u.ndim - ndim)
            ghosts = (
                jnp.tensordot(coeffs[:, :points], interior, axes=(1, 0))
                + coeffs[:, points].reshape((width,) + (1,) * (v.ndim - 1)) * datum
            )
            parts.append(ghosts[::-1] if side == "low" else ghosts)
        v = jnp.concatenate([parts[0], v, parts[1]], axis=0)
        return jnp.moveaxis(v, 0, ax)

    def _datum(self, cond, axis, h, t, target_shape, width, lead):
        value = cond.at(t)
        if isinstance(cond, Neumann):
            # The ghost polynomial takes h * du/dx in side-local coordinates, which
            # point into the domain; the outward normal derivative is -du/dx there.
            value = -h * jnp.asarray(value)
        value = jnp.asarray(value)
        if value.ndim == 0:
            return value
        # The face array spans the unpadded face; earlier axes are already padded.
        face_axes = [b for b in range(self.ndim) if b != axis]
        unpadded = list(target_shape)
        for j, b in enumerate(face_axes):
            if b < axis:
                unpadded[lead + j] -= 2 * width
        value = jnp.broadcast_to(value, tuple(unpadded))
        pads = [(0, 0)] * lead + [(width, width) if b < axis else (0, 0) for b in face_axes]
        return jnp.pad(value, pads, mode="edge")
