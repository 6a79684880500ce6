r"""Incompressible Navier-Stokes in 3-D on a periodic staggered (MAC) grid.

The same operators as ``solvers.navier_stokes`` (``NavierStokes2D``), one dimension up:
the MAC divergence, gradient and FFT pressure solve of ``solvers.pressure`` and the
conservative momentum flux of ``solvers._momentum_flux`` are dimension-generic.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp

import nnpde
from nnpde import AbstractProjectedIMEXEquation, State, fd

from . import pressure
from ._momentum_flux import flux_divergence
from .navier_stokes import (
    ADVECTION_SCHEMES,
    MIN_CELLS,
    _check_forcing,
    _check_viscosity,
    advective_radius,
    spectral_radius,
)


def face_centres(grid: nnpde.Grid) -> tuple[tuple[jnp.ndarray, ...], ...]:
    """Meshes of the staggered positions, one triple ``(x, y, z)`` per component, each ``grid.shape``.

    ``u_a[i, j, k]`` sits on the lower face normal to axis ``a`` of cell ``(i, j, k)``:
    offset 0 along ``a``, 1/2 along the others (``x_i = lo + i h``; see ``solvers.pressure``).
    """
    first = tuple(slice(0, n) for n in grid.shape)
    return tuple(tuple(c[first] for c in grid.face_centres(a)) for a in range(grid.ndim))


def momentum_flux_divergence(u: State, grid: nnpde.Grid, *, advection: str = "central") -> State:
    """``div(u u)`` of a periodic MAC velocity ``(ndim, *grid.shape)`` on its staggered positions.

    Conservative form: the momentum flux of component ``c`` through the faces normal to
    axis ``a`` of its control volumes is the advecting velocity (``u_a`` averaged over
    its two neighbours along ``c``: at cell centres for ``a == c``, at edges otherwise)
    times the advected ``u_c`` there, the two-point average (``"central"``) or the van
    Leer limited MUSCL value (``"van_leer"``; ``nnpde.fd.advective_flux``).
    """
    width = 2 if advection == "van_leer" else 1
    padded = nnpde.BoundaryConditions.periodic(grid.ndim).pad(u, width, grid.spacing)
    return flux_divergence(padded, grid.shape, grid.spacing, width, advection)


class NavierStokes3D(AbstractProjectedIMEXEquation):
    r"""Incompressible Navier-Stokes ``du/dt + div(u u) = -grad p + nu laplacian u + f``,
    ``div u = 0``, in 3-D, periodic on every axis.

    State: ONE array ``(3, nx, ny, nz)``; channel ``a`` is the velocity component
    ``u_a`` on the lower faces normal to axis ``a`` (offset 0 along ``a``, 1/2 along
    the others; ``face_centres(grid)``), the MAC layout of ``solvers.pressure``. The
    call returns the unprojected right-hand side ``-div(u u) + nu laplacian_h u + f``;
    ``project`` removes the pressure gradient with the FFT Poisson solve (exact to
    round-off). Step with ``nnpde.ProjectedRK``, which projects after every stage.

    Discretisation (second order in space), as in ``NavierStokes2D``:

    * advection in conservative form (``momentum_flux_divergence``): ``"central"``
      (energy conserving for a discretely divergence-free field, Morinishi et al., J.
      Comput. Phys. 143 (1998) 90) or ``"van_leer"`` (TVD MUSCL fluxes, dissipative);
    * viscosity: the 7-point Laplacian of each component at its own positions;
    * ``forcing``: a scalar (the same on every component), an array ``(3, nx, ny, nz)``
      on the staggered positions, or ``f(t)`` returning either. Its gradient part is
      removed by the projection; its mean accelerates the mean flow.

    Stability (explicit, ``max_stable_dt``): ``dt <= 1 / (A / R + B / I)`` with the
    viscous radius ``A = 4 nu (1/hx^2 + 1/hy^2 + 1/hz^2)`` (exact for the periodic
    7-point Laplacian), the advective radius ``B = sum_a max|u_a| / h_a``, and ``R, I``
    the method's real and imaginary stability extents (RK4: 2.785, 2.828); with
    ``"van_leer"`` ``A`` becomes ``A + 2 B``. ``nnpde.ProjectedRK`` refuses a larger
    ``dt`` with the limit and the fix. ``nnpde.ProjectedIMEX`` instead takes the
    viscosity implicitly (exact FFT solves of ``(I - alpha nu laplacian_h) x = rhs``):
    then only the advective part ``B / I`` limits ``dt``.

    Args:
        grid: a 3-D ``nnpde.Grid`` with at least 4 cells per axis.
        viscosity: kinematic ``nu >= 0`` (a scalar; may be traced, to differentiate).
        forcing: body force ``f`` (see above); default none.
        advection: ``"central"`` or ``"van_leer"``.
    """

    grid: nnpde.Grid = eqx.field(static=True)
    viscosity: object
    forcing: object
    forcing_function: Callable | None = eqx.field(static=True)
    advection: str = eqx.field(static=True)

    def __init__(self, grid: nnpde.Grid, *, viscosity, forcing=0.0, advection: str = "central"):
        if not isinstance(grid, nnpde.Grid):
            raise TypeError(f"grid must be an nnpde.Grid, got {type(grid).__name__}.")
        if grid.ndim != 3:
            raise ValueError(
                f"NavierStokes3D needs a 3-D grid, got shape {grid.shape}. Fix: e.g. nnpde.Grid((32, 32, 32), "
                "extent=((0, 2 * np.pi),) * 3); for 2-D flow use solvers.NavierStokes2D."
            )
        if min(grid.shape) < MIN_CELLS:
            raise ValueError(
                f"NavierStokes3D needs at least {MIN_CELLS} cells per axis, got grid shape {grid.shape}. "
                "Fix: refine the grid."
            )
        if advection not in ADVECTION_SCHEMES:
            raise ValueError(f"advection must be one of {ADVECTION_SCHEMES}, got {advection!r}.")
        self.grid, self.advection = grid, advection
        self.viscosity = _check_viscosity(viscosity)
        if callable(forcing):
            self.forcing, self.forcing_function = None, forcing
        else:
            self.forcing, self.forcing_function = _check_forcing(forcing, self.state_shape), None

    @property
    def bc(self) -> nnpde.BoundaryConditions:
        return nnpde.BoundaryConditions.periodic(3)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (3, *self.grid.shape)

    def body_force(self, t):
        """``f(t)`` as given (scalar or ``(3, nx, ny, nz)``)."""
        return self.forcing_function(t) if self.forcing_function is not None else self.forcing

    def _has_force(self) -> bool:
        return self.forcing_function is not None or not (isinstance(self.forcing, float) and self.forcing == 0.0)

    def momentum_flux_divergence(self, u: State) -> State:
        """``div(u u)`` on the staggered positions (conservative form, ``self.advection``)."""
        return momentum_flux_divergence(u, self.grid, advection=self.advection)

    def viscous_rate(self, u: State) -> State:
        """``nu laplacian_h u``, the 7-point Laplacian of each component."""
        return self.viscosity * fd.laplacian(self.bc.pad(u, 1, self.grid.spacing), self.grid.spacing, width=1)

    def __call__(self, t, u: State, args=None) -> State:
        rate = self.viscous_rate(u) - self.momentum_flux_divergence(u)
        return rate + self.body_force(t) if self._has_force() else rate

    # -- the IMEX split (nnpde.ProjectedIMEX): advection and force explicit, viscosity implicit
    def explicit_rate(self, t, u: State, args=None) -> State:
        """``-div(u u) + f``."""
        rate = -self.momentum_flux_divergence(u)
        return rate + self.body_force(t) if self._has_force() else rate

    def implicit_rate(self, t, u: State) -> State:
        return self.viscous_rate(u)

    def solve_implicit(self, rhs: State, alpha, t=0.0) -> State:
        """``(I - alpha nu laplacian_h) x = rhs``, exactly, by the FFT (the periodic 7-point
        Laplacian is diagonal in the DFT)."""
        return nnpde.solve_shifted(rhs, self.grid, ("fft",) * 3, shift=1.0, scale=alpha * self.viscosity)

    def explicit_spectral_radius(self, t, u):
        return 2.0 * self.advective_radius(t, u) if self.advection == "van_leer" and u is not None else 0.0

    # -- projection and stability ----------------------------------------------------
    def project(self, u: State, t=0.0) -> State:
        return pressure.project(u, self.grid, self.bc)

    def divergence(self, u: State):
        """MAC divergence at cell centres, ``grid.shape``."""
        return pressure.divergence(u, self.grid, self.bc)

    def advective_radius(self, t, u):
        return advective_radius(u, self.grid)

    def spectral_radius(self, t, u):
        return spectral_radius(u, self.grid, self.viscosity, self.advection)

    # -- diagnostics -------------------------------------------------------------------
    def kinetic_energy(self, u: State):
        """``sum |u|^2 / 2 * cell_volume``: each component over its own faces."""
        return 0.5 * jnp.sum(u**2) * self.grid.cell_volume

    def vorticity(self, u: State):
        """``curl u`` on the cell edges, ``(3, nx, ny, nz)``: ``omega_a`` at offset 1/2 along
        ``a`` and 0 along the other two axes (``omega_x = d u_z/dy - d u_y/dz``, ...)."""
        h = self.grid.spacing

        def d(q, axis):  # backward difference: from the lower faces to the edges
            return (q - jnp.roll(q, 1, axis=axis)) / h[axis]

        return jnp.stack([d(u[(a + 2) % 3], (a + 1) % 3) - d(u[(a + 1) % 3], (a + 2) % 3) for a in range(3)])
