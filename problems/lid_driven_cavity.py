r"""The lid-driven cavity: steady flow in the unit square driven by its sliding lid.

Incompressible Navier-Stokes (``solvers.navier_stokes.NavierStokes2D``, central MAC
scheme, second order) in ``[0, 1]^2`` with no-slip walls and the lid ``y = 1``
moving at ``u = 1`` (so ``Re = 1 / nu``), started from rest and marched with
projected RK4 until the steady-state residual ``max |u^{n+1} - u^n| / dt`` falls
below ``tol`` (or ``t_end``). The corners where the lid meets the side walls are
singular (the wall speed jumps); the scheme simply takes the lid speed on the lid's
faces and 0 on the side walls.

Reference data: U. Ghia, K. N. Ghia and C. T. Shin, "High-Re solutions for
incompressible flow using the Navier-Stokes equations and a multigrid method",
J. Comput. Phys. 48 (1982) 387-411, Tables I and II (129 x 129 grid): ``u`` along the
vertical centreline ``x = 0.5`` and ``v`` along the horizontal centreline
``y = 0.5`` at 17 points each (grid points ``k`` of their 129-point grid, ``(k - 1) / 128``).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

import nnpde
from problems._steady import march_to_steady_state
from solvers.navier_stokes import NavierStokes2D, walls

# Ghia et al. (1982), Table I: u on x = 0.5. Grid point k (1..129), y = (k - 1) / 128.
GHIA_U_POINTS = np.array([129, 126, 125, 124, 123, 110, 95, 80, 65, 59, 37, 23, 14, 10, 9, 8, 1])
GHIA_U = {
    100: np.array(
        [
            1.0,
            0.84123,
            0.78871,
            0.73722,
            0.68717,
            0.23151,
            0.00332,
            -0.13641,
            -0.20581,
            -0.21090,
            -0.15662,
            -0.10150,
            -0.06434,
            -0.04775,
            -0.04192,
            -0.03717,
            0.0,
        ]
    ),
    1000: np.array(
        [
            1.0,
            0.65928,
            0.57492,
            0.51117,
            0.46604,
            0.33304,
            0.18719,
            0.05702,
            -0.06080,
            -0.10648,
            -0.27805,
            -0.38289,
            -0.29730,
            -0.22220,
            -0.20196,
            -0.18109,
            0.0,
        ]
    ),
}
# Ghia et al. (1982), Table II: v on y = 0.5. Grid point k, x = (k - 1) / 128.
GHIA_V_POINTS = np.array([129, 125, 124, 123, 122, 117, 111, 104, 65, 31, 30, 21, 13, 11, 10, 9, 1])
GHIA_V = {
    100: np.array(
        [
            0.0,
            -0.05906,
            -0.07391,
            -0.08864,
            -0.10313,
            -0.16914,
            -0.22445,
            -0.24533,
            0.05454,
            0.17527,
            0.17507,
            0.16077,
            0.12317,
            0.10890,
            0.10091,
            0.09233,
            0.0,
        ]
    ),
    1000: np.array(
        [
            0.0,
            -0.21388,
            -0.27669,
            -0.33714,
            -0.39188,
            -0.51550,
            -0.42665,
            -0.31966,
            0.02526,
            0.32235,
            0.33075,
            0.37095,
            0.32627,
            0.30353,
            0.29012,
            0.27485,
            0.0,
        ]
    ),
}
GHIA_U_Y = (GHIA_U_POINTS - 1) / 128.0
GHIA_V_X = (GHIA_V_POINTS - 1) / 128.0


def make_grid(resolution: int) -> nnpde.Grid:
    """``resolution`` cells per axis on the unit square."""
    return nnpde.Grid((resolution, resolution), extent=((0.0, 1.0), (0.0, 1.0)))


def to_nodes(state, lid_velocity: float = 1.0):
    """``(u, v)`` at the cell corners ``(i h, j h)``, ``i, j = 0..n`` (walls included).

    ``u`` lives on the vertical grid lines: at a corner it is the average of its two
    neighbours along ``y`` (with the wall ghosts ``2 U - u``, so on a wall it is the wall
    speed exactly; the lid's two corner nodes take the lid speed). Likewise ``v`` along
    ``x``. Second-order accurate interpolation; on the centrelines ``x = 0.5`` (``u``)
    and ``y = 0.5`` (``v``) of an even grid it is along the line only.
    """
    u, v = np.asarray(state[0]), np.asarray(state[1])
    n0, n1 = u.shape
    u = np.concatenate([u, np.zeros((1, n1))], axis=0)  # the right wall face x = 1
    u = np.concatenate([-u[:, :1], u, 2.0 * lid_velocity - u[:, -1:]], axis=1)
    u_nodes = 0.5 * (u[:, 1:] + u[:, :-1])
    v = np.concatenate([v, np.zeros((n0, 1))], axis=1)  # the lid face y = 1
    v = np.concatenate([-v[:1], v, -v[-1:]], axis=0)
    v_nodes = 0.5 * (v[1:] + v[:-1])
    return u_nodes, v_nodes


def solve(
    reynolds: float = 100.0,
    resolution: int = 64,
    t_end: float = 60.0,
    *,
    tol: float = 1e-6,
    safety: float = 0.8,
    check_every: float = 1.0,
    method: str = "rk4",
):
    """March the cavity from rest to steady state; return an ``xarray.Dataset``.

    ``dt = safety * max_stable_dt`` for a peak speed 1 (the lid's; the interior flow is
    slower). Every ``check_every`` time units the residual ``max |u^{n+1} - u^n| / dt``
    over both components is measured; the run stops when it is below ``tol`` or at
    ``t_end``. Variables: ``u(x, y)`` and ``v(x, y)`` at the cell corners (``x, y =
    i h``, walls included, ``to_nodes``), ``u_centreline(y)`` (``x = 0.5``) and
    ``v_centreline(x)`` (``y = 0.5``), and ``max_divergence`` (max ``|D u|``). Attrs:
    parameters, ``residual``, ``t_final``, ``n_steps``, ``converged``, ``wall_time_s``.
    """
    import xarray as xr

    if not (isinstance(resolution, int) and resolution >= 4 and resolution % 2 == 0):
        raise ValueError(f"resolution must be an even int >= 4 (a node on each centreline), got {resolution!r}.")
    if not (reynolds > 0 and math.isfinite(reynolds)):
        raise ValueError(f"reynolds must be positive and finite, got {reynolds}.")
    grid = make_grid(resolution)
    eq = NavierStokes2D(grid, viscosity=1.0 / reynolds, bc=walls(x="no_slip", y=(0.0, 1.0)))
    u = jnp.zeros(eq.state_shape)
    peak = jnp.ones(eq.state_shape)
    run = march_to_steady_state(
        eq,
        u,
        dt_max=nnpde.stable_dt(eq, method, safety=safety, u=peak),
        check_every=check_every,
        t_end=t_end,
        tol=tol,
        method=method,
        label=f"cavity (Re {reynolds}, {resolution}^2)",
    )
    u, dt, t, stepper, wall_time, residual = run.state, run.dt, run.t_final, run.stepper, run.wall_time_s, run.residual

    u_nodes, v_nodes = to_nodes(u)
    nodes = grid.axis_faces(0)
    mid = resolution // 2
    return xr.Dataset(
        {
            "u": (("x", "y"), u_nodes),
            "v": (("x", "y"), v_nodes),
            "u_centreline": ("y", u_nodes[mid]),
            "v_centreline": ("x", v_nodes[:, mid]),
            "max_divergence": ((), float(jnp.max(jnp.abs(eq.divergence(u))))),
        },
        coords={"x": nodes, "y": np.asarray(grid.axis_faces(1))},
        attrs={
            "problem": "lid_driven_cavity",
            "reynolds": float(reynolds),
            "resolution": resolution,
            "viscosity": 1.0 / reynolds,
            "lid_velocity": 1.0,
            "dt": dt,
            "method": stepper.tableau.name,
            "t_end": t_end,
            "t_final": t,
            "n_steps": run.n_steps,
            "tol": tol,
            "residual": residual,
            "converged": int(residual <= tol),
            "wall_time_s": wall_time,
            "positions": "u, v interpolated to the cell corners (x_i, y_j) = (i h, j h), walls included",
        },
    )


def compare_to_ghia(ds) -> dict:
    """Deviation of the centreline profiles from Ghia et al. (1982) at their points.

    Linear interpolation of ``ds.u_centreline`` / ``ds.v_centreline`` to Ghia's ``y`` /
    ``x`` (exact nodes at resolution 128). Returns ``{"u": (17,), "v": (17,),
    "max_u", "max_v", "max"}`` with deviations ``ours - Ghia``. Re 100 and 1000 only.
    """
    re = round(ds.attrs["reynolds"])
    if re not in GHIA_U:
        raise ValueError(f"Ghia et al. data here are for Re in {sorted(GHIA_U)}, got Re = {ds.attrs['reynolds']}.")
    u = np.interp(GHIA_U_Y, ds.y.values, ds.u_centreline.values) - GHIA_U[re]
    v = np.interp(GHIA_V_X, ds.x.values, ds.v_centreline.values) - GHIA_V[re]
    max_u, max_v = float(np.abs(u).max()), float(np.abs(v).max())
    return {"u": u, "v": v, "max_u": max_u, "max_v": max_v, "max": max(max_u, max_v)}
