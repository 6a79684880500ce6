"""Finite-difference stencils on padded arrays.

Every function here is pure and acts on the trailing ``len(spacing)`` axes of its
input (leading axes, such as channels, broadcast). Inputs named ``*_pad`` carry
``width`` ghost cells on each side of every spatial axis (``BoundaryConditions.pad``
fills them); outputs live on the ``n`` interior cells or, for face quantities, on the
``n + 1`` faces of an axis (both boundary faces included, see ``Grid``).

Central stencils (cell-centred, spacing h):

* first derivative, order 2: ``(u[i+1] - u[i-1]) / 2h``;
  order 4: ``(-u[i+2] + 8 u[i+1] - 8 u[i-1] + u[i-2]) / 12h``
* second derivative, order 2: ``(u[i+1] - 2 u[i] + u[i-1]) / h^2``;
  order 4: ``(-u[i+2] + 16 u[i+1] - 30 u[i] + 16 u[i-1] - u[i-2]) / 12h^2``
* conservative diffusion ``div(k grad u)``: face fluxes
  ``k[i-1/2] (u[i] - u[i-1]) / h`` differenced across each cell (second order).

Reference: R. J. LeVeque, *Finite Difference Methods for Ordinary and Partial
Differential Equations*, SIAM 2007, ch. 1-2.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from jax import lax

FIRST_DERIVATIVE = {2: ((-1, -0.5), (1, 0.5)), 4: ((-2, 1 / 12), (-1, -8 / 12), (1, 8 / 12), (2, -1 / 12))}
SECOND_DERIVATIVE = {
    2: ((-1, 1.0), (0, -2.0), (1, 1.0)),
    4: ((-2, -1 / 12), (-1, 16 / 12), (0, -30 / 12), (1, 16 / 12), (2, -1 / 12)),
}


def stencil_width(order: int) -> int:
    """Ghost cells a central stencil of ``order`` needs on each side."""
    if order not in FIRST_DERIVATIVE:
        raise ValueError(f"order must be 2 or 4, got {order}.")
    return order // 2


def _interior(u_pad, ndim: int, width: int, axis: int | None = None, offset: int = 0, extra: int = 0):
    """Slice the interior, shifted by ``offset`` along ``axis``.

    With ``extra`` the slice along ``axis`` is ``extra`` cells longer (face arrays).
    """
    lead = u_pad.ndim - ndim
    index = [slice(None)] * lead
    for a in range(ndim):
        n = u_pad.shape[lead + a] - 2 * width
        if a == axis:
            start = width + offset
            index.append(slice(start, start + n + extra))
        else:
            index.append(slice(width, width + n))
    return u_pad[tuple(index)]


def derivative(u_pad, h: float, axis: int, *, ndim: int, width: int, order: int = 2):
    """Central first derivative along ``axis`` at cell centres."""
    return sum(c * _interior(u_pad, ndim, width, axis, o) for o, c in FIRST_DERIVATIVE[order]) / h


def second_derivative(u_pad, h: float, axis: int, *, ndim: int, width: int, order: int = 2):
    """Central second derivative along ``axis`` at cell centres."""
    return _second_difference(u_pad, axis, ndim, width, order) * (1.0 / h**2)


def _second_difference(u_pad, axis, ndim, width, order):
    # Symmetric pairs first: one add per pair, then one multiply per coefficient.
    centre = _interior(u_pad, ndim, width)
    pairs = {
        o: _interior(u_pad, ndim, width, axis, -o) + _interior(u_pad, ndim, width, axis, o)
        for o in range(1, order // 2 + 1)
    }
    if order == 2:
        return pairs[1] - 2.0 * centre
    return (16.0 * pairs[1] - pairs[2] - 30.0 * centre) * (1.0 / 12.0)


def gradient(u_pad, spacing: Sequence[float], *, width: int, order: int = 2):
    """Central gradient at cell centres: ``(..., ndim, *spatial)``."""
    ndim = len(spacing)
    parts = [derivative(u_pad, h, a, ndim=ndim, width=width, order=order) for a, h in enumerate(spacing)]
    return jnp.stack(parts, axis=-(ndim + 1))


def divergence(v_pad, spacing: Sequence[float], *, width: int, order: int = 2):
    """Central divergence at cell centres of a vector field ``(..., ndim, *spatial_pad)``."""
    ndim = len(spacing)
    return sum(
        derivative(v_pad[..., a, *([slice(None)] * ndim)], h, a, ndim=ndim, width=width, order=order)
        for a, h in enumerate(spacing)
    )


def laplacian(u_pad, spacing: Sequence[float], *, width: int, order: int = 2):
    """Central Laplacian at cell centres (order 2 or 4).

    Written for few operations per cell (the explicit heat step is compute-bound once
    memory traffic is amortised): neighbour sums first, one scaling per distinct
    spacing, the centre weight folded into one term.
    """
    ndim = len(spacing)
    if order == 2:
        centre = _interior(u_pad, ndim, width)
        scales = [1.0 / h**2 for h in spacing]
        sums = [_interior(u_pad, ndim, width, a, -1) + _interior(u_pad, ndim, width, a, 1) for a in range(ndim)]
        if len(set(scales)) == 1:
            return (sum(sums) - (2.0 * ndim) * centre) * scales[0]
        return sum(s * c for s, c in zip(sums, scales)) - (2.0 * sum(scales)) * centre
    return sum(second_derivative(u_pad, h, a, ndim=ndim, width=width, order=order) for a, h in enumerate(spacing))


def face_gradient(u_pad, h: float, axis: int, *, ndim: int, width: int):
    """``du/dx_axis`` on the ``n + 1`` faces normal to ``axis`` (second order)."""
    return (_interior(u_pad, ndim, width, axis, 0, extra=1) - _interior(u_pad, ndim, width, axis, -1, extra=1)) / h


def face_divergence(fluxes: Sequence, spacing: Sequence[float]):
    """Cell-centred divergence of face fluxes; ``fluxes[a]`` has ``n_a + 1`` faces along ``a``."""
    ndim = len(spacing)
    total = 0.0
    for a, (f, h) in enumerate(zip(fluxes, spacing)):
        ax = f.ndim - ndim + a
        n = f.shape[ax] - 1
        hi = lax.slice_in_dim(f, 1, n + 1, axis=ax)
        lo = lax.slice_in_dim(f, 0, n, axis=ax)
        total = total + (hi - lo) / h
    return total


def face_average(k, axis: int, *, ndim: int, periodic: bool, mean: str = "harmonic"):
    """A cell-centred coefficient on the ``n + 1`` faces normal to ``axis``.

    Interior faces take the ``mean`` of their two cells: ``"harmonic"`` (flux
    continuity across material jumps, Patankar 1980, section 4.2) or ``"arithmetic"``.
    Periodic axes wrap. Boundary faces of a wall take the linear extrapolation
    ``(3 k_0 - k_1) / 2`` (second order), floored at half the boundary cell's
    value so that it stays positive for a positive field.
    """
    ax = k.ndim - ndim + axis
    n = k.shape[ax]
    if mean not in ("harmonic", "arithmetic"):
        raise ValueError(f"mean must be 'harmonic' or 'arithmetic', got {mean!r}.")

    def combine(a, b):
        return 2 * a * b / (a + b) if mean == "harmonic" else 0.5 * (a + b)

    def cells(start, stop):
        return lax.slice_in_dim(k, start, stop, axis=ax)

    if periodic:
        # faces 0 .. n between cells (i - 1, i), cell -1 being cell n - 1
        return combine(jnp.concatenate([cells(n - 1, n), k], axis=ax), jnp.concatenate([k, cells(0, 1)], axis=ax))
    inner = combine(cells(0, n - 1), cells(1, n))
    k0, k1, kn, km = cells(0, 1), cells(1, 2), cells(n - 1, n), cells(n - 2, n - 1)
    lo = jnp.maximum(1.5 * k0 - 0.5 * k1, 0.5 * k0)
    hi = jnp.maximum(1.5 * kn - 0.5 * km, 0.5 * kn)
    return jnp.concatenate([lo, inner, hi], axis=ax)


def diffusion(u_pad, k_faces: Sequence, spacing: Sequence[float], *, width: int):
    """Conservative ``div(k grad u)`` with ``k_faces[a]`` on the faces normal to axis ``a``.

    Second order; conserves ``sum(u) * cell_volume`` up to the boundary fluxes exactly.
    ``k_faces[a]`` may be a scalar.
    """
    ndim = len(spacing)
    fluxes = [k_faces[a] * face_gradient(u_pad, h, a, ndim=ndim, width=width) for a, h in enumerate(spacing)]
    return face_divergence(fluxes, spacing)


def advection_central(c_pad, velocity, spacing: Sequence[float], *, width: int, order: int = 2):
    """Non-conservative ``u . grad c`` with central differences; ``velocity`` is
    ``(ndim, *spatial)`` at cell centres."""
    ndim = len(spacing)
    return sum(
        velocity[a] * derivative(c_pad, h, a, ndim=ndim, width=width, order=order) for a, h in enumerate(spacing)
    )


def advection_upwind(c_pad, velocity, spacing: Sequence[float], *, width: int):
    """Non-conservative ``u . grad c``, first-order upwind; ``velocity`` at cell centres."""
    ndim = len(spacing)
    total = 0.0
    for a, h in enumerate(spacing):
        centre = _interior(c_pad, ndim, width)
        backward = (centre - _interior(c_pad, ndim, width, a, -1)) / h
        forward = (_interior(c_pad, ndim, width, a, 1) - centre) / h
        total = total + jnp.where(velocity[a] > 0, velocity[a] * backward, velocity[a] * forward)
    return total


def van_leer_slope(backward, forward):
    """van Leer's limited slope ``(b |f| + |b| f) / (|b| + |f|)``: the harmonic mean of
    the one-sided differences ``b`` and ``f`` where they agree in sign, else 0.

    Equal to ``phi(r) f`` with ``phi(r) = (r + |r|) / (1 + |r|)``, ``r = b / f`` (van
    Leer, J. Comput. Phys. 14 (1974) 361), but with no division by a vanishing
    difference: where ``f = 0`` exactly (a flat run of cells beside a jump) ``r`` is
    not formed, so no overflow turns into ``inf / inf``; where both vanish the slope
    is 0 and so is its derivative (no NaN in reverse mode either).
    """
    denominator = jnp.abs(backward) + jnp.abs(forward)
    nonzero = denominator > 0
    safe = jnp.where(nonzero, denominator, 1.0)
    return jnp.where(nonzero, (backward * jnp.abs(forward) + jnp.abs(backward) * forward) / safe, 0.0)


def advective_flux(c_pad, face_velocity, axis: int, *, ndim: int, width: int, scheme: str = "central"):
    """Flux ``u c`` on the ``n + 1`` faces normal to ``axis`` (flux form, MAC velocity).

    ``scheme``: ``"central"`` (second order, the face average), ``"upwind"`` (first
    order, the upwind cell) or ``"van_leer"`` (MUSCL reconstruction with the van Leer
    limiter: second order where smooth, total-variation diminishing; needs
    ``width >= 2``). van Leer, J. Comput. Phys. 14 (1974) 361.
    """

    def cells(offset):
        return _interior(c_pad, ndim, width, axis, offset, extra=1)

    left, right = cells(-1), cells(0)  # the two cells beside face i - 1/2
    if scheme == "central":
        face = 0.5 * (left + right)
    elif scheme == "upwind":
        face = jnp.where(face_velocity > 0, left, right)
    elif scheme == "van_leer":
        if width < 2:
            raise ValueError(f"van_leer advection needs width >= 2 ghost cells, got {width}.")
        left2, right2 = cells(-2), cells(1)

        def limited(upwind, centre, downwind):
            return centre + 0.5 * van_leer_slope(centre - upwind, downwind - centre)

        face = jnp.where(face_velocity > 0, limited(left2, left, right), limited(right2, right, left))
    else:
        raise ValueError(f"scheme must be 'central', 'upwind' or 'van_leer', got {scheme!r}.")
    return face_velocity * face
