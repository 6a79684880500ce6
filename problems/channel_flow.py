r"""Plane channel flow: inflow at ``x = 0``, outflow at ``x = L``, no-slip walls at ``y = 0, H``.

Incompressible Navier-Stokes (``solvers.navier_stokes.NavierStokes2D``, central MAC
scheme, second order, CG pressure solve) in ``[0, L] x [0, H]`` with
``walls(x=(("inflow", profile), "outflow"), y="no_slip")``. Marched with projected
RK (``march``, ``steady_run``) to a steady state; ``figures`` measures it.

Analytic reference (plane Poiseuille flow): the fully developed profile of mean speed
``U`` is ``u = 6 U y (H - y) / H^2`` (centreline ``1.5 U``), ``v = 0``, driven by the
pressure gradient ``dp/dx = -12 nu U / H^2``. On the MAC grid (``h = H / ny``) the
discrete fully developed state is ``u_j = A (y_j (H - y_j) + h^2 / 4)`` (the
reflection ghost ``-u_0`` is exact for that shifted parabola) with ``dp/dx = -2 nu A``;
for the analytic profile prescribed at the inflow, whose discrete flux is
``U H (1 + h^2 / 2H^2)``, the downstream ``dp/dx`` has the relative error
``1.5 (h/H)^2 / (1 + 2 (h/H)^2)``: second order (measured in tests/test_channel.py and
scripts/validate_channel.py).

``inflow="plug"`` prescribes a uniform ``U`` instead: the flow develops into the
parabola downstream over an entrance length of about ``(0.6 + 0.05 Re) H``,
``Re = U H / nu`` (Durst et al., J. Fluids Eng. 127 (2005) 1154).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

import nnpde
from solvers.navier_stokes import NavierStokes2D, walls


def poiseuille_profile(y, mean_speed: float = 1.0, height: float = 1.0):
    """``6 U y (H - y) / H^2``."""
    return 6.0 * mean_speed * y * (height - y) / height**2


def pressure_gradient(viscosity: float, mean_speed: float = 1.0, height: float = 1.0) -> float:
    """``dp/dx = -12 nu U / H^2`` of plane Poiseuille flow (kinematic pressure)."""
    return -12.0 * viscosity * mean_speed / height**2


def make(
    ny: int,
    *,
    length: float = 2.0,
    height: float = 1.0,
    viscosity: float = 1.0,
    mean_speed: float = 1.0,
    inflow: str = "parabolic",
    preconditioner: str = "transform",
):
    """``(equation, initial state)``: ``nx = round(ny L / H)`` square cells.

    ``inflow``: ``"parabolic"`` (the Poiseuille profile at the cell centres; the
    initial state is that profile everywhere) or ``"plug"`` (uniform ``U``; starts
    from rest). ``preconditioner``: of the CG pressure solve.
    """
    if inflow not in ("parabolic", "plug"):
        raise ValueError(f"inflow must be 'parabolic' or 'plug', got {inflow!r}.")
    nx = round(ny * length / height)
    grid = nnpde.Grid((nx, ny), extent=((0.0, length), (0.0, height)))
    y = (np.arange(ny) + 0.5) * height / ny
    profile = poiseuille_profile(y, mean_speed, height) if inflow == "parabolic" else np.full(ny, mean_speed)
    profile = jnp.asarray(profile)
    bc = walls(x=(("inflow", profile), "outflow"), y="no_slip")
    eq = NavierStokes2D(grid, viscosity=viscosity, bc=bc, pressure_preconditioner=preconditioner)
    u0 = jnp.zeros(eq.state_shape)
    if inflow == "parabolic":
        u0 = u0.at[0].set(jnp.broadcast_to(profile, grid.shape))
    return eq, u0


def stable_dt(eq, *, method: str = "ssprk3", speed: float = 3.0, safety: float = 0.9) -> float:
    """``safety`` times the explicit limit for speeds up to ``speed`` (twice the Poiseuille
    centreline speed of ``U = 1`` by default)."""
    return nnpde.stable_dt(eq, method, safety=safety, u=jnp.full(eq.state_shape, speed))


@functools.partial(jax.jit, static_argnames=("dt", "n_steps", "method"))
def march(eq, u0, *, dt: float, n_steps: int, method: str = "ssprk3"):
    """``n_steps`` projected RK steps of ``dt`` from ``u0`` at ``t = 0``. ``eq`` is an
    argument, not a constant, so channels that differ only in their data (inflow
    profile, viscosity) share one compilation."""
    stepper = nnpde.ProjectedRK(eq, dt=dt, method=method, check_stability=False)
    return nnpde.rollout(stepper, u0, n_steps, trajectory=False)


@jax.jit
def _diagnostics(eq, u, t):
    # At a steady state P f = f - G p = 0, so G p = f: the pressure gradient is the
    # unprojected rate itself, up to the steady residual (measured separately). No
    # pressure solve needed.
    rate = eq(t, u)
    flux_in, flux_out = eq.outflow_balance(u, t)
    return rate[0], flux_in, flux_out, jnp.max(jnp.abs(eq.divergence(u, t)))


def steady_run(eq, u0, *, t_end: float, method: str = "ssprk3"):
    """``(u(t_end), residual)``: two halves of ``t_end / 2`` at the stable step (one
    compilation), the residual ``max|u(t_end) - u(t_end / 2)| / (t_end / 2)`` (a steady
    inflow: ``march`` starts every call at ``t = 0``)."""
    n = math.ceil(0.5 * t_end / stable_dt(eq, method=method))
    dt = 0.5 * t_end / n
    half = march(eq, u0, dt=dt, n_steps=n, method=method)
    full = march(eq, half, dt=dt, n_steps=n, method=method)
    return full, float(jnp.max(jnp.abs(full - half))) / (0.5 * t_end)


def figures(eq, u, t, *, mean_speed: float = 1.0) -> dict:
    """Downstream-half ``dp/dx`` (mean and spread; at a steady state ``G p`` equals the
    rate ``f``), its relative error against ``-12 nu U / H^2``, the fluxes and the
    divergence, and the centreline speed along ``x`` (the mean of the two middle cells
    for even ``ny``)."""
    grid = eq.grid
    fx, flux_in, flux_out, divergence = _diagnostics(eq, u, t)
    # x-faces 1 .. n - 1 (stored 0 .. n - 2) are interior; index n - 1 is the outflow face
    dpdx = np.asarray(fx[:-1])
    downstream = dpdx[dpdx.shape[0] // 2 :]
    height = grid.extent[1][1] - grid.extent[1][0]
    exact = pressure_gradient(float(eq.viscosity), mean_speed, height)
    ny = grid.shape[1]
    centre = np.asarray(u[0, :, ny // 2]) if ny % 2 else np.asarray(u[0, :, ny // 2 - 1 : ny // 2 + 1].mean(axis=1))
    return {
        "dpdx": float(downstream.mean()),
        "dpdx_spread": float(downstream.max() - downstream.min()),
        "dpdx_error": abs(float(downstream.mean()) - exact) / abs(exact),
        "dpdx_faces": dpdx,
        "flux_in": float(flux_in),
        "flux_out": float(flux_out),
        "max_divergence": float(divergence),
        "centreline": centre,
    }
