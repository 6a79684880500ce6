r"""Pressure Poisson solves and the projection of a staggered (MAC) velocity.

Grid convention (every array here is periodic, with ``n`` values per axis): a cell
field ``p[i, j]`` sits at the cell centre ``(x_{i+1/2}, y_{j+1/2})``; the velocity
component ``u_a`` sits on the *lower* faces normal to axis ``a``, offset 0 along ``a``
and 1/2 along the others, so ``u[i, j]`` is at ``(x_i, y_{j+1/2})`` and ``v[i, j]``
at ``(x_{i+1/2}, y_j)``, with ``x_i = lo + i h``. These are the first ``n`` of the
``n + 1`` positions of ``nnpde.Grid.face_centres(a)`` (the last is the first,
periodically). jax-cfd stores the upper face instead; the two differ by one index.

The discrete operators are the MAC (Harlow & Welch, Phys. Fluids 8 (1965) 2182) pair:

* divergence at cell centres: ``(D u)_ij = sum_a (u_a[i + e_a] - u_a[i]) / h_a``;
* gradient on faces: ``(G p)_a[i] = (p[i] - p[i - e_a]) / h_a``;

and ``D G`` is exactly the 5-point (2-D; 2d+1-point in d dimensions) Laplacian.
Projection: ``P u = u - G p`` with ``D G p = D u``. Then ``D P u = 0`` to round-off,
``P`` is idempotent, ``P`` is an orthogonal projection in the (cell-volume weighted)
discrete L2 inner product since ``G = -D^T``, and ``P`` leaves a divergence-free field
unchanged.

Poisson solves (``solve_poisson``):

* ``"fft"`` (periodic on every axis): ``D G`` is diagonal in the DFT with eigenvalues
  ``-sum_a 4 sin^2(pi m_a / n_a) / h_a^2``. The constant mode ``m = 0`` has
  eigenvalue 0: the problem is singular, solvable only for a right-hand side of zero
  mean (which ``D u`` always has on a periodic grid: its sum telescopes), and its
  solution is fixed up to a constant (the gauge). We set the zero mode of ``p``
  explicitly to 0 (``mean(p) = 0``) rather than divide by the zero eigenvalue;
  ``solve_poisson`` refuses a concrete right-hand side whose mean is not round-off,
  so an incompatible problem is never solved silently. Exact to round-off, O(N log N),
  no iteration, differentiable (linear transforms).
* walls (``"dct"``: Neumann ``dp/dn = 0`` with the normal velocity prescribed; ``"cg"``
  for anything else) slot into ``_SOLVERS`` later; asking for them now raises.

Reference: Chorin, Math. Comp. 22 (1968) 745 (projection); Schumann & Sweet, J.
Comput. Phys. 20 (1976) 171 (fast transform Poisson solves).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

import nnpde
from nnpde import Field, State

# A compatible right-hand side has a zero mean up to round-off in its sum: N terms of
# size max|rhs|, so |mean| <~ eps sqrt(N) max|rhs|; 1e-10 sits far above that (N <= 1e8
# gives 1e-12 in float64) and far below any genuine source mean.
_COMPATIBILITY_TOLERANCE = 1e-10


def _check_grid(grid: nnpde.Grid, bc: nnpde.BoundaryConditions) -> tuple[str, ...]:
    """Per-axis transform of the pressure operator, or a clear refusal."""
    if not isinstance(grid, nnpde.Grid):
        raise TypeError(f"grid must be an nnpde.Grid, got {type(grid).__name__}.")
    if not isinstance(bc, nnpde.BoundaryConditions):
        raise TypeError(
            f"bc must be nnpde.BoundaryConditions, got {type(bc).__name__}. "
            "Fix: nnpde.BoundaryConditions.periodic(grid.ndim)."
        )
    if bc.ndim != grid.ndim:
        raise ValueError(
            f"Boundary conditions are for {bc.ndim} axes but the grid has {grid.ndim} (shape {grid.shape})."
        )
    kinds = []
    for a in range(grid.ndim):
        if not bc.is_periodic(a):
            raise ValueError(
                f"Axis {a} has {bc.kinds(a)} boundaries; the pressure solve supports periodic axes only "
                "(walls need the DCT/Neumann or CG solve, not implemented yet). Fix: use "
                "nnpde.BoundaryConditions.periodic(grid.ndim)."
            )
        kinds.append("fft")
    return tuple(kinds)


@functools.cache
def _inverse_eigenvalues(grid: nnpde.Grid) -> np.ndarray:
    """``1 / lambda`` of the periodic 5-point Laplacian on ``rfftn`` modes, 0 for the mean."""
    total = 0.0
    for a, (n, h) in enumerate(zip(grid.shape, grid.spacing)):
        m = np.arange(n // 2 + 1) if a == grid.ndim - 1 else np.arange(n)
        lam = -4.0 * np.sin(np.pi * m / n) ** 2 / h**2
        shape = [1] * grid.ndim
        shape[a] = len(m)
        total = total + lam.reshape(shape)
    inverse = np.zeros_like(total)
    nonzero = total != 0.0
    inverse[nonzero] = 1.0 / total[nonzero]
    # The zero eigenvalue is the mean (gauge) mode alone: every other mode has some
    # 0 < m_a < n_a, where sin(pi m_a / n_a) != 0. Its inverse is set to 0, not 1/0.
    return inverse


def _solve_fft(rhs, grid: nnpde.Grid):
    axes = tuple(range(rhs.ndim - grid.ndim, rhs.ndim))
    modes = jnp.fft.rfftn(rhs, axes=axes)
    modes = modes * jnp.asarray(_inverse_eigenvalues(grid), dtype=rhs.dtype)  # zero mode -> 0
    return jnp.fft.irfftn(modes, s=grid.shape, axes=axes).astype(rhs.dtype)


_SOLVERS = {"fft": _solve_fft}


def solve_poisson(rhs: Field, grid: nnpde.Grid, bc: nnpde.BoundaryConditions, *, solver: str = "auto") -> Field:
    """Solve ``laplacian_h p = rhs`` (5-point stencil, cell centres) with ``mean(p) = 0``.

    ``solver``: ``"auto"`` (the fast transform the boundary conditions allow) or
    ``"fft"``. A concrete ``rhs`` with a mean beyond round-off (relative
    ``1e-10``) is refused: the periodic problem has no solution then.
    """
    kinds = _check_grid(grid, bc)
    solver = "fft" if solver == "auto" and set(kinds) == {"fft"} else solver
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be 'auto' or one of {sorted(_SOLVERS)}, got {solver!r}.")
    nnpde.check_field_shape(rhs, grid.shape, "rhs", what="field")
    rhs = nnpde.check_finite(rhs, "The Poisson right-hand side", "give finite values.")
    if nnpde.is_concrete(rhs):
        mean, scale = float(jnp.mean(rhs)), float(jnp.max(jnp.abs(rhs)))
        if abs(mean) > _COMPATIBILITY_TOLERANCE * max(scale, np.finfo(float).tiny):
            raise ValueError(
                f"The periodic Poisson problem needs a right-hand side of zero mean, got mean {mean:.3e} "
                f"(max |rhs| {scale:.3e}). Fix: subtract the mean (the constant part has no periodic "
                "solution), or check the source."
            )
    return _SOLVERS[solver](rhs, grid)


def divergence(velocity, grid: nnpde.Grid):
    """MAC divergence at cell centres of a periodic face velocity ``(ndim, *grid.shape)``."""
    ndim = grid.ndim
    return sum((jnp.roll(velocity[a], -1, axis=a) - velocity[a]) / h for a, h in zip(range(ndim), grid.spacing))


def gradient(p, grid: nnpde.Grid):
    """MAC gradient on the lower faces of a periodic cell field: ``(ndim, *grid.shape)``."""
    return jnp.stack([(p - jnp.roll(p, 1, axis=a)) / h for a, h in enumerate(grid.spacing)])


def pressure(velocity: State, grid: nnpde.Grid, bc: nnpde.BoundaryConditions) -> Field:
    """The ``p`` of the projection: ``laplacian_h p = D u``, ``mean(p) = 0``.

    For a velocity increment ``dt * f`` this is ``dt`` times the kinematic pressure
    (pressure over density) that keeps the flow divergence-free.
    """
    kinds = _check_grid(grid, bc)
    solver = "fft" if set(kinds) == {"fft"} else None
    return _SOLVERS[solver](divergence(velocity, grid), grid)


def project(velocity: State, grid: nnpde.Grid, bc: nnpde.BoundaryConditions) -> State:
    """``u - G p`` with ``D G p = D u``: the divergence-free part of a MAC velocity."""
    return velocity - gradient(pressure(velocity, grid, bc), grid)
