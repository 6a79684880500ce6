r"""Incompressible Navier-Stokes in 2-D on a staggered (MAC) grid: periodic axes, no-slip
or moving walls, and inflow/outflow faces (``walls``).

The pressure solves are ``solvers.pressure``'s: FFT (periodic), DCT (walls) and
preconditioned CG (any of these; chosen by ``"auto"`` with an outflow, whose ``p = 0``
face has no fast transform here). Inflow/outflow storage convention: see
``NavierStokes2D``.

The equation is built from three parts, one module each: the conservative momentum
flux (``solvers._momentum_flux``), the wall and inflow/outflow treatment (``walls``,
``wall_rate``: ``solvers._walls``, re-exported here) and the hand-written adjoint of the
periodic right-hand side (``solvers._ns_adjoint``).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import nnpde
from nnpde import AbstractProjectedIMEXEquation, State, fd

from . import pressure
from ._momentum_flux import flux_divergence, stencil_rate
from ._ns_adjoint import periodic_rate
from ._walls import check_walls, wall_rate, walls

__all__ = [
    "ADVECTION_SCHEMES",
    "DIFFERENTIATION",
    "MIN_CELLS",
    "NavierStokes2D",
    "advective_radius",
    "face_centres",
    "kolmogorov_forcing",
    "spectral_radius",
    "wall_rate",
    "walls",
]

ADVECTION_SCHEMES = ("central", "van_leer")
DIFFERENTIATION = ("adjoint", "autodiff")
# The van Leer stencil reaches two cells either side of a face; with fewer than four
# cells per axis a periodic stencil would read one cell twice.
MIN_CELLS = 4


def face_centres(
    grid: nnpde.Grid, bc: nnpde.BoundaryConditions | None = None
) -> tuple[tuple[jnp.ndarray, jnp.ndarray], ...]:
    """Meshes of the staggered positions: ``((x_u, y_u), (x_v, y_v))``, each ``grid.shape``.

    ``u[i, j]`` at ``(x_i, y_{j+1/2})``, ``v[i, j]`` at ``(x_{i+1/2}, y_j)``, with
    ``x_i = lo + i h`` (the lower faces; see ``solvers.pressure``). On an inflow/outflow
    axis of ``bc`` its normal component sits on the upper faces, ``x_{i+1}``.
    """
    out = []
    for a in range(2):
        upper = bc is not None and pressure.axis_layout(bc, a) == "channel"
        start = [1 if (upper and i == a) else 0 for i in range(2)]
        out.append(tuple(c[tuple(slice(s0, s0 + n) for s0, n in zip(start, grid.shape))] for c in grid.face_centres(a)))
    return tuple(out)


def kolmogorov_forcing(grid: nnpde.Grid, *, wavenumber: int = 4, amplitude: float = 1.0):
    """Kolmogorov body force ``f = (A sin(k y), 0)`` on the staggered positions, ``(2, nx, ny)``.

    ``y`` is measured from the domain's lower edge; with an extent of ``2 pi`` and an
    integer ``k`` the force is periodic.
    """
    (_, y_u), _ = face_centres(grid)
    fx = amplitude * jnp.sin(wavenumber * (y_u - grid.extent[1][0]))
    return jnp.stack([fx, jnp.zeros_like(fx)])


def _check_viscosity(nu):
    if isinstance(nu, (bool, str)) or not (isinstance(nu, (int, float)) or jnp.ndim(nu) == 0):
        raise TypeError(f"viscosity must be a real scalar, got {nu!r}. Fix: e.g. viscosity=1e-2.")
    if isinstance(nu, (int, float)):
        nu = float(nu)
        if not (np.isfinite(nu) and nu >= 0):
            raise ValueError(
                f"viscosity must be finite and >= 0, got {nu}. Fix: give the kinematic viscosity (0 for inviscid flow)."
            )
        return nu
    nu = jnp.asarray(nu)
    if nnpde.is_concrete(nu):
        value = float(nu)
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(
                f"viscosity must be finite and >= 0, got {value}. Fix: give the kinematic viscosity "
                "(0 for inviscid flow)."
            )
        return nu
    return eqx.error_if(nu, ~(jnp.isfinite(nu) & (nu >= 0)), "viscosity must be finite and >= 0.")


def _check_forcing(value, shape, name="forcing"):
    if isinstance(value, (int, float)):
        return nnpde.check_finite(float(value), name, "give a finite body force.")
    value = jnp.asarray(value)
    if value.ndim != 0:
        nnpde.check_field_shape(value, shape, name, what="state")
    return nnpde.check_finite(value, name, "give a finite body force on every face.")


def advective_radius(u, grid: nnpde.Grid, bc: nnpde.BoundaryConditions | None = None):
    """``sum_a max|u_a| / h_a``: the advective part of the explicit step limit (any dimension).

    ``bc``: the maxima are taken over all ranks of a split domain (``bc.allreduce``),
    so that every rank takes the same stability decision."""
    reduce = (lambda x, op: x) if bc is None else bc.allreduce
    return sum(reduce(jnp.max(jnp.abs(u[a])), "max") / h for a, h in enumerate(grid.spacing))


def spectral_radius(u, grid: nnpde.Grid, viscosity, advection: str, bc: nnpde.BoundaryConditions | None = None):
    """Real spectral radius of the MAC right-hand side: the viscous ``4 nu sum_a 1/h_a^2``,
    plus twice the advective radius for van Leer fluxes (their upwind dissipation)."""
    radius = 4.0 * viscosity * sum(1.0 / h**2 for h in grid.spacing)
    if advection == "van_leer" and u is not None:
        radius = radius + 2.0 * advective_radius(u, grid, bc)
    return radius


class NavierStokes2D(AbstractProjectedIMEXEquation):
    r"""Incompressible Navier-Stokes ``du/dt + div(u u) = -grad p + nu laplacian u + f``,
    ``div u = 0``, in 2-D: periodic axes, walls, or an inflow/outflow pair (below).

    State: ONE array ``(2, nx, ny)``: channel 0 is ``u`` on the x-faces at
    ``(x_i, y_{j+1/2})``, channel 1 is ``v`` on the y-faces at ``(x_{i+1/2}, y_j)``
    (lower faces, ``x_i = lo + i h``; ``face_centres(grid)``). The call returns the
    unprojected right-hand side ``-div(u u) + nu laplacian_h u + f``; ``project``
    removes the pressure gradient (``solvers.pressure``). Step with
    ``nnpde.ProjectedRK``, which projects after every stage.

    Discretisation (second order in space):

    * advection in conservative (flux) form on the MAC grid: the momentum flux
      through each face of a velocity's control volume is the advecting velocity
      (the average of the two neighbouring normal velocities) times the advected
      velocity there: the two-point average (``advection="central"``, energy
      conserving for a discretely divergence-free field, Morinishi et al., J. Comput.
      Phys. 143 (1998) 90) or the van Leer limited MUSCL value (``"van_leer"``, TVD,
      second order where smooth; ``nnpde.fd.advective_flux``);
    * viscosity: the 5-point Laplacian of each component at its own positions;
    * ``forcing``: a scalar (the same on both components), an array ``(2, nx, ny)``
      on the staggered positions (e.g. ``kolmogorov_forcing(grid)``), or ``f(t)``
      returning either. Its gradient part is removed by the projection.

    Stability (explicit, ``max_stable_dt``): ``dt <= 1 / (A / R + B / I)`` with the
    viscous radius ``A = 4 nu (1/hx^2 + 1/hy^2)`` (exact for the periodic 5-point
    Laplacian), the advective radius ``B = max|u| / hx + max|v| / hy``, and ``R, I``
    the method's real and imaginary stability extents (RK4: 2.785, 2.828; SSP-RK3:
    2.513, 1.732); see ``nnpde.ProjectedRK``. With ``"van_leer"`` the limiter falls back
    to upwinding at extrema, whose eigenvalues reach ``-2 B`` on the real axis: ``A``
    becomes ``A + 2 B``.

    Implicit viscosity (periodic axes): ``nnpde.ProjectedIMEX`` takes ``-div(u u) + f``
    explicitly (``explicit_rate``) and ``nu laplacian_h u`` implicitly, by an exact FFT
    solve (``solve_implicit``); only the advective part of the limit remains.

    Args:
        grid: a 2-D ``nnpde.Grid`` with at least 4 cells per axis.
        viscosity: kinematic ``nu >= 0`` (a scalar; may be traced, to differentiate).
        forcing: body force ``f`` (see above); default none.
        advection: ``"central"`` or ``"van_leer"``, or an ``nnpde.AbstractReconstruction``
            whose base is one of them: the pluggable part of the flux, which
            ``nnpde.learned_interpolation`` replaces by a network-chosen stencil
            (``reconstruction_targets``; periodic axes, automatic differentiation).
        bc: ``nnpde.BoundaryConditions.periodic(2)`` (the default), or walls and
            inflow/outflow faces (``walls(x=..., y=...)``; central advection only).
        pressure_solver: ``"auto"`` (FFT, DCT, or CG with an outflow), ``"fft"``,
            ``"dct"`` or ``"cg"`` (``solvers.pressure.solve_poisson``).
        pressure_preconditioner: of the CG solve, ``"transform"`` or ``"jacobi"``.
        differentiation: ``"adjoint"`` (the default): on a periodic domain in one
            process the right-hand side's reverse-mode derivative is a hand-written
            adjoint of its stencils (equal to JAX's to round-off, and about 5x cheaper
            with van Leer fluxes on the CPU: ``benchmarks/ns_rhs_vjp.py``); reverse
            mode only, so ``jax.jvp`` and ``jax.jacfwd`` through the step raise.
            ``"autodiff"``: JAX differentiates the stencils (forward and reverse
            mode). Walls and split domains always use ``"autodiff"``.

    Walls. An axis with ``nnpde.Dirichlet(U_low), nnpde.Dirichlet(U_high)`` is bounded
    by impermeable no-slip walls moving tangentially at ``U`` (along the other axis;
    ``U = 0``: still). The state keeps its shape ``(2, nx, ny)``: of the ``n + 1`` faces
    normal to a wall axis the first ``n`` are stored, index 0 being the low wall face,
    whose value is held at exactly 0 (the right-hand side and the projection set it),
    and the high wall face ``n`` is implicit (0). The tangential component sits half a
    cell from the wall; its ghost reflects about the wall, ``u_ghost = 2 U - u_inside``
    (second order). The pressure solve is then the DCT (Neumann) one
    (``solvers.pressure``). ``vorticity`` is for periodic axes only.

    Inflow and outflow (``walls(x=(("inflow", normal[, tangential]), "outflow"))``;
    the inflow on the low side, the outflow on the high side of the same axis). The
    inflow face 0 carries the prescribed velocity (a scalar, a profile on the face or
    a function of ``t``); the tangential component's ghost reflects about its
    tangential value as at a wall. The outflow face ``n`` has zero normal gradient of
    both components (ghosts copy the last value) and ``p = 0`` (pressure ghost
    ``-p[n - 1]``), so the pressure problem is not singular and its solution is not
    shifted to zero mean. Storage: the normal component on such an axis keeps the
    ``n`` unknown faces ``1 .. n``, index ``i`` being face ``i + 1`` (the upper faces;
    ``face_centres(grid, bc)``): the inflow face is data, not state, and the outflow
    face is state. The projection needs the inflow at the stage time (``project(u,
    t)``; ``nnpde.ProjectedRK`` passes it); the flux through the outflow face then
    equals the inflow's to the pressure solver's tolerance (``outflow_balance``;
    measured 4e-16 relative in plane Poiseuille flow, tests/test_channel.py). The
    stability limit is the wall one: the outflow's one-sided Laplacian row has a
    smaller radius than ``4 / h^2``. ``kinematic_pressure`` assumes steady inflow data.
    """

    grid: nnpde.Grid = eqx.field(static=True)
    bc: nnpde.BoundaryConditions
    viscosity: object
    forcing: object
    forcing_function: Callable | None = eqx.field(static=True)
    advection: str = eqx.field(static=True)
    reconstruction: nnpde.AbstractReconstruction
    pressure_solver: str = eqx.field(static=True)
    pressure_preconditioner: str = eqx.field(static=True)
    differentiation: str = eqx.field(static=True)

    def __init__(
        self,
        grid: nnpde.Grid,
        *,
        viscosity,
        forcing=0.0,
        advection="central",
        bc: nnpde.BoundaryConditions | None = None,
        pressure_solver: str = "auto",
        pressure_preconditioner: str = "transform",
        differentiation: str = "adjoint",
    ):
        if not isinstance(grid, nnpde.Grid):
            raise TypeError(f"grid must be an nnpde.Grid, got {type(grid).__name__}.")
        if grid.ndim != 2:
            raise ValueError(
                f"NavierStokes2D needs a 2-D grid, got shape {grid.shape}. Fix: e.g. nnpde.Grid((64, 64), "
                "extent=((0, 2 * np.pi), (0, 2 * np.pi)))."
            )
        if min(grid.shape) < MIN_CELLS:
            raise ValueError(
                f"NavierStokes2D needs at least {MIN_CELLS} cells per axis, got grid shape {grid.shape}. "
                "Fix: refine the grid."
            )
        reconstruction = advection if isinstance(advection, nnpde.AbstractReconstruction) else None
        advection = reconstruction.name if reconstruction is not None else advection
        if advection not in ADVECTION_SCHEMES:
            raise ValueError(f"advection must be one of {ADVECTION_SCHEMES}, got {advection!r}.")
        self.reconstruction = nnpde.reconstruction(advection) if reconstruction is None else reconstruction
        self.advection = advection
        bc = nnpde.BoundaryConditions.periodic(2) if bc is None else bc
        kinds = pressure.axis_kinds(grid, bc)
        check_walls(bc, grid)
        pressure.pick_solver(kinds, pressure_solver)  # refuses a transform that does not fit
        if pressure_preconditioner not in pressure.PRECONDITIONERS:
            raise ValueError(
                f"pressure_preconditioner must be one of {pressure.PRECONDITIONERS}, got {pressure_preconditioner!r}."
            )
        self.pressure_preconditioner = pressure_preconditioner
        if differentiation not in DIFFERENTIATION:
            raise ValueError(
                f"differentiation must be one of {DIFFERENTIATION}, got {differentiation!r}. Fix: 'adjoint' (fast "
                "reverse mode) or 'autodiff' (also forward mode: jax.jvp, jax.jacfwd)."
            )
        self.differentiation = differentiation
        if (advection != "central" or not self._plain) and not all(bc.global_periodic(a) for a in range(2)):
            raise ValueError(
                f"advection={advection!r} (and any other than the plain central reconstruction) is implemented for "
                "periodic axes only; with walls use advection='central'."
            )
        split = bc.distributed and any("halo" in bc.kinds(a) for a in range(2))
        if split and not all(bc.global_periodic(a) for a in range(2)):
            raise ValueError(
                "NavierStokes2D on a domain split across ranks takes periodic axes only (the wall and channel "
                f"momentum fluxes wrap locally), got boundary kinds {[bc.kinds(a) for a in range(2)]}. Fix: a "
                "periodic domain, or run the walled problem in one process."
            )
        self.grid, self.bc, self.pressure_solver = grid, bc, pressure_solver
        self.viscosity = _check_viscosity(viscosity)
        if callable(forcing):
            self.forcing, self.forcing_function = None, forcing
        else:
            self.forcing, self.forcing_function = _check_forcing(forcing, self.state_shape), None

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (2, *self.grid.shape)

    @property
    def _width(self) -> int:
        return self.reconstruction.width

    @property
    def _plain(self) -> bool:
        """The built-in reconstruction of ``advection`` (then the fast paths apply: the
        named stencils and, for reverse mode, the hand-written adjoint)."""
        return type(self.reconstruction) is type(nnpde.reconstruction(self.advection))

    @property
    def reconstruction_targets(self) -> tuple[int, int]:
        """``(quantities, states per face)``: component ``c`` carried through the faces
        normal to axis ``a`` is quantity ``2 c + a``; one carried value per face."""
        return 4, 1

    @property
    def advecting_targets(self) -> int:
        """Advecting velocities a learned interpolation may also correct
        (``nnpde.learned_interpolation(..., velocities=True)``): that of component ``c``'s
        flux through the faces normal to axis ``a`` is number ``2 c + a``."""
        return 4

    def with_reconstruction(self, reconstruction: nnpde.AbstractReconstruction):
        """This equation with ``reconstruction`` carrying the advected quantities to the faces."""
        return eqx.tree_at(lambda e: e.reconstruction, self, reconstruction)

    def body_force(self, t):
        """``f(t)`` as given (scalar or ``(2, nx, ny)``)."""
        return self.forcing_function(t) if self.forcing_function is not None else self.forcing

    def momentum_flux_divergence(self, u: State) -> State:
        """``div(u u)`` on the staggered positions (conservative form, ``self.advection``)."""
        w = self._width
        padded = self.bc.pad(u, w, self.grid.spacing)
        scheme = self.advection if self._plain else self.reconstruction.prepare(u)
        return flux_divergence(padded, self.grid.shape, self.grid.spacing, w, scheme)

    @property
    def has_walls(self) -> bool:
        return not all(self.bc.global_periodic(a) for a in range(2))

    def __call__(self, t, u: State, args=None) -> State:
        if self.has_walls:
            rate = wall_rate(u, self.grid, self.bc, self.viscosity, t)
            force = self.body_force(t)
            if self.forcing_function is not None or not (isinstance(force, float) and force == 0.0):
                rate = pressure.enforce_walls(rate + force, self.grid, self.bc)
            return rate
        if self._plain and self.differentiation == "adjoint" and not self.bc.distributed:
            viscosity = jnp.asarray(self.viscosity, dtype=u.dtype)
            rate = periodic_rate(u, viscosity, self.grid.spacing, self.advection)
        else:  # one pad (one halo exchange on a split domain) serves both terms
            w = self._width
            padded = self.bc.pad(u, w, self.grid.spacing)
            scheme = self.advection if self._plain else self.reconstruction.prepare(u)
            rate = stencil_rate(padded, self.viscosity, self.grid.shape, self.grid.spacing, w, scheme)
        force = self.body_force(t)
        if self.forcing_function is not None or not (isinstance(force, float) and force == 0.0):
            rate = rate + force
        return rate

    # -- the IMEX split (nnpde.ProjectedIMEX; periodic axes): viscosity implicit ---------
    def check_implicit(self) -> None:
        if self.bc.distributed and any("halo" in self.bc.kinds(a) for a in range(2)):
            raise ValueError(
                "NavierStokes2D's implicit viscosity (nnpde.ProjectedIMEX) solves by FFT, which needs every axis "
                "whole on one rank; this domain is split across ranks. Fix: use nnpde.ProjectedRK on a split domain."
            )
        if self.has_walls:
            raise ValueError(
                "NavierStokes2D's implicit viscosity (nnpde.ProjectedIMEX) is implemented for periodic axes "
                f"only, got boundary kinds {[self.bc.kinds(a) for a in range(2)]}. Fix: use nnpde.ProjectedRK "
                "(explicit viscosity) with walls."
            )

    def explicit_rate(self, t, u: State, args=None) -> State:
        """``-div(u u) + f`` (periodic axes)."""
        self.check_implicit()
        rate = -self.momentum_flux_divergence(u)
        force = self.body_force(t)
        if self.forcing_function is not None or not (isinstance(force, float) and force == 0.0):
            rate = rate + force
        return rate

    def implicit_rate(self, t, u: State) -> State:
        """``nu laplacian_h u`` (periodic axes)."""
        self.check_implicit()
        return self.viscosity * fd.laplacian(self.bc.pad(u, 1, self.grid.spacing), self.grid.spacing, width=1)

    def solve_implicit(self, rhs: State, alpha, t=0.0) -> State:
        """``(I - alpha nu laplacian_h) x = rhs`` exactly by the FFT (periodic axes)."""
        self.check_implicit()
        return nnpde.solve_shifted(rhs, self.grid, ("fft", "fft"), shift=1.0, scale=alpha * self.viscosity)

    def explicit_spectral_radius(self, t, u):
        return 2.0 * self.advective_radius(t, u) if self.advection == "van_leer" and u is not None else 0.0

    # -- projection and stability ----------------------------------------------------
    def project(self, u: State, t=0.0) -> State:
        return pressure.project(
            u, self.grid, self.bc, t=t, solver=self.pressure_solver, preconditioner=self.pressure_preconditioner
        )

    def divergence(self, u: State, t=0.0):
        """MAC divergence at cell centres, ``grid.shape`` (``t``: the inflow's time)."""
        return pressure.divergence(u, self.grid, self.bc, t)

    def kinematic_pressure(self, t, u: State):
        """The pressure over density ``p`` at cell centres with ``P f = f - G p``, ``f`` the
        right-hand side at ``(t, u)``: ``D G p = D f`` (homogeneous: the inflow data held
        steady). Gauge ``mean(p) = 0``, or ``p = 0`` on an outflow face."""
        return pressure.kinematic_pressure(
            self(t, u), self.grid, self.bc, solver=self.pressure_solver, preconditioner=self.pressure_preconditioner
        )

    def outflow_balance(self, u: State, t=0.0):
        """``(inflow, outflow)`` volume fluxes through the channel axis's two faces
        (per unit depth): equal to the solver tolerance for a projected state."""
        axes = [a for a in range(2) if pressure.axis_layout(self.bc, a) == "channel"]
        if not axes:
            raise ValueError("outflow_balance needs an inflow/outflow axis. Fix: walls(x=(('inflow', U), 'outflow')).")
        a = axes[0]
        h_face = self.grid.spacing[1 - a]
        inflow = pressure.inflow_normal(self.bc, a, u.shape[1:], t, u.dtype)
        outflow = jax.lax.slice_in_dim(u[a], u.shape[1 + a] - 1, u.shape[1 + a], axis=a)
        return jnp.sum(inflow) * h_face, jnp.sum(outflow) * h_face

    def advective_radius(self, t, u):
        return advective_radius(u, self.grid, self.bc)

    def spectral_radius(self, t, u):
        return spectral_radius(u, self.grid, self.viscosity, self.advection, self.bc)

    def forward_euler_rate(self, t, u):
        """With van Leer fluxes ``2 B + A / 2`` (``B`` the advective radius, ``A`` the viscous
        spectral radius; ``nnpde.ProjectedRK`` module docstring): forward Euler and Heun are
        total-variation diminishing for ``dt <= 1 / rate``. None with central fluxes."""
        if self.advection != "van_leer":
            return None
        viscous = spectral_radius(None, self.grid, self.viscosity, self.advection)
        return 0.5 * viscous + (0.0 if u is None else 2.0 * advective_radius(u, self.grid, self.bc))

    # -- diagnostics -------------------------------------------------------------------
    def kinetic_energy(self, u: State):
        """``sum(u^2 + v^2) / 2 * cell_volume``: each component over its own faces (over
        the whole domain when it is split across ranks)."""
        return self.bc.allreduce(0.5 * jnp.sum(u**2) * self.grid.cell_volume, "sum")

    def vorticity(self, u: State):
        """``dv/dx - du/dy`` at the cell corners ``(x_i, y_j)``, ``grid.shape`` (periodic axes)."""
        hx, hy = self.grid.spacing
        return (u[1] - self.bc.shift(u[1], 0, -1)) / hx - (u[0] - self.bc.shift(u[0], 1, -1)) / hy
