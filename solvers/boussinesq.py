r"""Boussinesq natural convection in a 2-D box: MAC velocity plus a cell-centred temperature.

Non-dimensional form of de Vahl Davis (1983) (length ``L``, time ``L^2 / kappa``,
velocity ``kappa / L``, temperature ``(T - T_ref) / (T_hot - T_cold)``)::

    du/dt + (u . grad) u = -grad p + Pr laplacian u + Ra Pr T e_y,    div u = 0,
    dT/dt + u . grad T   = laplacian T,

with ``Ra = g beta (T_hot - T_cold) L^3 / (nu kappa)`` and ``Pr = nu / kappa``.

Boundary conditions (the differentially heated cavity): no-slip walls on every side;
``T = t_hot`` on ``x = lo`` and ``T = t_cold`` on ``x = hi`` (defaults ``+0.5`` and
``-0.5``, so ``T_hot - T_cold = 1`` and the reference temperature, about which the
buoyancy is measured, is their mean 0); adiabatic ``dT/dy = 0`` on ``y = lo, hi``.
A constant shift of ``T`` adds a constant to the buoyancy, a pure gradient removed by
the projection, so ``(1, 0)`` gives the same flow as ``(0.5, -0.5)``.

Discretisation (second order in space, explicit in time with ``nnpde.ProjectedRK``):

* velocity: exactly ``solvers.navier_stokes.NavierStokes2D`` with no-slip walls on
  both axes (``wall_rate`` with viscosity ``Pr``: central conservative advection, the
  5-point Laplacian, wall ghosts ``-u_inside``); the buoyancy ``Ra Pr T`` is the
  two-point average of ``T`` onto the v-faces (0 on the wall faces, which stay at 0);
* temperature: conservative flux form ``-div(u T) + laplacian T``: central face values
  (``nnpde.fd.advective_flux``, the MAC face velocities, zero on the walls) and the
  5-point Laplacian on ``T`` padded by ``nnpde.BoundaryConditions`` (Dirichlet on the
  x walls, Neumann 0 on the y walls, second-order ghosts);
* ``project`` projects channels 0-1 (DCT pressure solve, ``solvers.pressure``) and
  leaves the temperature alone.

Reference: G. de Vahl Davis, "Natural convection of air in a square cavity: a bench
mark numerical solution", Int. J. Numer. Methods Fluids 3 (1983) 249-264.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

import nnpde
from nnpde import AbstractProjectedEquation, State, fd

from . import pressure
from ._walls import wall_rate, walls
from .navier_stokes import MIN_CELLS


def temperature_bc(t_hot: float = 0.5, t_cold: float = -0.5) -> nnpde.BoundaryConditions:
    """``T = t_hot`` on ``x = lo``, ``T = t_cold`` on ``x = hi``, ``dT/dy = 0`` on the y walls."""
    return nnpde.BoundaryConditions(
        (nnpde.Dirichlet(float(t_hot)), nnpde.Dirichlet(float(t_cold))),
        (nnpde.Neumann(0.0), nnpde.Neumann(0.0)),
    )


class Boussinesq2D(AbstractProjectedEquation):
    r"""The differentially heated cavity (module docstring); step with ``nnpde.ProjectedRK``.

    State: ONE array ``(3, nx, ny)``: channels 0, 1 the MAC velocity ``(u, v)`` as in
    ``NavierStokes2D`` (lower faces; index 0 along the normal axis is the wall face,
    held at 0; the high wall face is implicit), channel 2 the temperature at the cell
    centres ``(x_{i+1/2}, y_{j+1/2})``.

    Stability (``max_stable_dt``): ``dt <= 1 / (A / R + B / I)`` (``nnpde.ProjectedRK``)
    with ``A = 4 max(Pr, 1) (1/hx^2 + 1/hy^2)`` (the larger of the momentum and the
    temperature diffusive radii: the two diffusions act on separate channels) and
    ``B = max|u| / hx + max|v| / hy + sqrt(Ra Pr max|grad T|)``: the advective radius
    (the same velocity advects momentum and temperature) plus a bound on the
    buoyancy coupling ``v -> T -> v``, whose linearised eigenvalues are
    ``+-sqrt(-Ra Pr dT/dy)`` (the buoyancy frequency in stable stratification).

    Args:
        grid: a 2-D ``nnpde.Grid`` (at least 4 cells per axis).
        rayleigh: ``Ra >= 0``.
        prandtl: ``Pr > 0`` (0.71 for air).
        t_hot: wall temperature on ``x = lo``.
        t_cold: wall temperature on ``x = hi``.
    """

    grid: nnpde.Grid = eqx.field(static=True)
    rayleigh: float = eqx.field(static=True)
    prandtl: float = eqx.field(static=True)
    t_hot: float = eqx.field(static=True)
    t_cold: float = eqx.field(static=True)
    bc: nnpde.BoundaryConditions
    temperature_bc: nnpde.BoundaryConditions

    def __init__(
        self, grid: nnpde.Grid, *, rayleigh: float, prandtl: float = 0.71, t_hot: float = 0.5, t_cold: float = -0.5
    ):
        if not isinstance(grid, nnpde.Grid) or grid.ndim != 2:
            raise ValueError(f"Boussinesq2D needs a 2-D nnpde.Grid, got {grid!r}.")
        if min(grid.shape) < MIN_CELLS:
            raise ValueError(f"Boussinesq2D needs at least {MIN_CELLS} cells per axis, got {grid.shape}.")
        rayleigh, prandtl = float(rayleigh), float(prandtl)
        if not (jnp.isfinite(rayleigh) and rayleigh >= 0):
            raise ValueError(f"rayleigh must be finite and >= 0, got {rayleigh}.")
        if not (jnp.isfinite(prandtl) and prandtl > 0):
            raise ValueError(f"prandtl must be finite and > 0, got {prandtl}.")
        if float(t_hot) == float(t_cold):
            raise ValueError(f"t_hot and t_cold must differ (they set the temperature scale), got {t_hot}.")
        self.grid, self.rayleigh, self.prandtl = grid, rayleigh, prandtl
        self.t_hot, self.t_cold = float(t_hot), float(t_cold)
        self.bc = walls(x="no_slip", y="no_slip")
        self.temperature_bc = temperature_bc(t_hot, t_cold)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (3, *self.grid.shape)

    # -- fields ------------------------------------------------------------------------
    def conduction_state(self) -> State:
        """``u = 0`` and the pure-conduction profile ``T`` linear in ``x`` between the walls."""
        (x0, x1), _ = self.grid.extent
        x = jnp.asarray(self.grid.axis_centres(0))
        profile = self.t_hot + (self.t_cold - self.t_hot) * (x - x0) / (x1 - x0)
        temperature = jnp.broadcast_to(profile[:, None], self.grid.shape)
        return jnp.concatenate([jnp.zeros((2, *self.grid.shape)), temperature[None]])

    def face_velocities(self, state: State):
        """``(u, v)`` on all ``n + 1`` faces along their normal axis (the high wall face, 0, appended)."""
        u = jnp.concatenate([state[0], jnp.zeros((1, self.grid.shape[1]), state.dtype)], axis=0)
        v = jnp.concatenate([state[1], jnp.zeros((self.grid.shape[0], 1), state.dtype)], axis=1)
        return u, v

    def buoyancy(self, temperature):
        """``Ra Pr T`` averaged onto the v-faces, ``(2, nx, ny)`` (0 for ``u`` and on the wall faces)."""
        mean = 0.5 * (temperature[:, 1:] + temperature[:, :-1])  # faces j = 1 .. n - 1
        force_v = jnp.concatenate([jnp.zeros_like(temperature[:, :1]), mean], axis=1)
        return jnp.stack([jnp.zeros_like(temperature), self.rayleigh * self.prandtl * force_v])

    def temperature_rate(self, state: State, t=0.0):
        """``-div(u T) + laplacian T`` at the cell centres (flux form, central)."""
        spacing = self.grid.spacing
        padded = self.temperature_bc.pad(state[2], 1, spacing, t=t)
        faces = self.face_velocities(state)
        fluxes = [fd.advective_flux(padded, faces[a], a, ndim=2, width=1, scheme="central") for a in range(2)]
        return fd.laplacian(padded, spacing, width=1) - fd.face_divergence(fluxes, spacing)

    def __call__(self, t, state: State, args=None) -> State:
        velocity = state[:2]
        rate = wall_rate(velocity, self.grid, self.bc, self.prandtl, t) + self.buoyancy(state[2])
        rate = pressure.enforce_walls(rate, self.grid, self.bc)
        return jnp.concatenate([rate, self.temperature_rate(state, t)[None]])

    # -- projection and stability ----------------------------------------------------
    def project(self, state: State, t=0.0) -> State:
        velocity = pressure.project(state[:2], self.grid, self.bc)
        return jnp.concatenate([velocity, state[2:]])

    def divergence(self, state: State):
        """MAC divergence of the velocity at the cell centres, ``grid.shape``."""
        return pressure.divergence(state[:2], self.grid, self.bc)

    def advective_radius(self, t, state):
        radius = sum(jnp.max(jnp.abs(state[a])) / h for a, h in enumerate(self.grid.spacing))
        if self.rayleigh > 0:
            padded = self.temperature_bc.pad(state[2], 1, self.grid.spacing, t=t)
            # jnp.maximum, not Python's max: the state is traced when a stepper runs under jit
            gradient = jnp.maximum(
                *(
                    jnp.max(jnp.abs(fd.face_gradient(padded, h, a, ndim=2, width=1)))
                    for a, h in enumerate(self.grid.spacing)
                )
            )
            radius = radius + jnp.sqrt(self.rayleigh * self.prandtl * gradient)
        return radius

    def spectral_radius(self, t, state):
        return 4.0 * max(self.prandtl, 1.0) * sum(1.0 / h**2 for h in self.grid.spacing)

    # -- diagnostics -------------------------------------------------------------------
    def local_nusselt(self, state: State):
        """Local Nusselt number on the hot wall ``x = lo``, per cell row ``y_{j+1/2}``, ``(ny,)``.

        ``Nu = -(dT/dx)|_wall * L / (t_hot - t_cold)`` with the one-sided second-order
        difference through the wall value and the first two cell centres,
        ``dT/dx = (-8 T_w + 9 T_0 - T_1) / (3 h)`` (exact for quadratics; conduction
        gives ``Nu = 1``).
        """
        (x0, x1), _ = self.grid.extent
        h = self.grid.spacing[0]
        temperature = state[2]
        slope = (-8.0 * self.t_hot + 9.0 * temperature[0] - temperature[1]) / (3.0 * h)
        return -slope * (x1 - x0) / (self.t_hot - self.t_cold)

    def nusselt(self, state: State):
        """Mean Nusselt number on the hot wall: ``local_nusselt`` averaged over ``y`` (midpoint rule)."""
        return jnp.mean(self.local_nusselt(state))
