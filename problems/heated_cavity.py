r"""The differentially heated square cavity (natural convection of air, de Vahl Davis 1983).

Boussinesq flow (``solvers.boussinesq.Boussinesq2D``, central MAC scheme, second
order) in ``[0, 1]^2``: no-slip walls, hot wall ``T = +0.5`` at ``x = 0``, cold wall
``T = -0.5`` at ``x = 1`` (``T_hot - T_cold = 1``; de Vahl Davis's 1 / 0 gives the
same flow, shifted ``T``), adiabatic top and bottom. Scaling: length ``L``, time
``L^2 / kappa``, velocity ``kappa / L``, so ``du/dt + (u . grad) u = -grad p +
Pr laplacian u + Ra Pr T e_y`` and ``dT/dt + u . grad T = laplacian T``. Started from
the conduction state (``u = 0``, ``T`` linear in ``x``) and marched with projected
RK4 until the steady-state residual ``max |q^{n+1} - q^n| / dt`` over the three
channels falls below ``tol`` (or ``t_end``).

Reference: G. de Vahl Davis, "Natural convection of air in a square cavity: a bench
mark numerical solution", Int. J. Numer. Methods Fluids 3 (1983) 249-264, Table IV:
the mean Nusselt number over the hot wall (``Nu_0``, equal to the mean over the
whole cavity at steady state), ``Pr = 0.71``, extrapolated benchmark values.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

import nnpde
from problems._steady import march_to_steady_state
from solvers.boussinesq import Boussinesq2D

# de Vahl Davis (1983), Table IV: mean hot-wall Nusselt number, Pr = 0.71.
DE_VAHL_DAVIS_NUSSELT = {1e3: 1.118, 1e4: 2.243, 1e5: 4.519, 1e6: 8.800}


def make_grid(resolution: int) -> nnpde.Grid:
    """``resolution`` cells per axis on the unit square."""
    return nnpde.Grid((resolution, resolution), extent=((0.0, 1.0), (0.0, 1.0)))


def to_centres(state):
    """``(u, v)`` at the cell centres: the two-point average of the faces either side (walls: 0)."""
    u, v = np.asarray(state[0]), np.asarray(state[1])
    u = np.concatenate([u, np.zeros((1, u.shape[1]))], axis=0)
    v = np.concatenate([v, np.zeros((v.shape[0], 1))], axis=1)
    return 0.5 * (u[1:] + u[:-1]), 0.5 * (v[:, 1:] + v[:, :-1])


def solve(
    rayleigh: float = 1e3,
    resolution: int = 32,
    prandtl: float = 0.71,
    t_end: float = 5.0,
    *,
    tol: float = 1e-6,
    safety: float = 0.8,
    check_every: float = 0.05,
    method: str = "rk4",
):
    """March from the conduction state to steady state; return an ``xarray.Dataset``.

    ``dt = safety * max_stable_dt`` at the speed bound ``sqrt(Ra Pr) + 1`` on both
    components (above the steady peak speed in these units: 3.6 at Ra 1e3, 16.2 at
    Ra 1e4) and the initial temperature; after every check the limit is re-evaluated
    at the current state and the run stops with an error if ``dt`` exceeds it. Every
    ``check_every`` time units the residual ``max |q^{n+1} - q^n| / dt`` over the three
    channels is measured; the run stops when it is below ``tol`` or at ``t_end``.

    Variables (all at the cell centres ``((i + 1/2) h, (j + 1/2) h)``):
    ``temperature(x, y)``, ``u(x, y)``, ``v(x, y)`` (two-point averages of the MAC
    faces), ``local_nusselt(y)`` on the hot wall, ``max_divergence``. Attrs:
    parameters, ``nusselt`` (mean hot-wall Nusselt number), ``nusselt_reference``
    and ``nusselt_deviation`` (relative, when de Vahl Davis has the ``Ra``),
    ``residual``, ``t_final``, ``n_steps``, ``converged``, ``wall_time_s``.
    """
    import xarray as xr

    if not (isinstance(resolution, int) and resolution >= 4):
        raise ValueError(f"resolution must be an int >= 4, got {resolution!r}.")
    if not (rayleigh >= 0 and math.isfinite(rayleigh)):
        raise ValueError(f"rayleigh must be >= 0 and finite, got {rayleigh}.")
    grid = make_grid(resolution)
    eq = Boussinesq2D(grid, rayleigh=rayleigh, prandtl=prandtl)
    state = eq.conduction_state()
    speed = math.sqrt(rayleigh * prandtl) + 1.0
    bound = state.at[:2].set(speed)  # peak speed guess; T and hence the buoyancy bound as at the start
    run = march_to_steady_state(
        eq,
        state,
        dt_max=eq.stable_dt(bound, method, safety=safety),
        check_every=check_every,
        t_end=t_end,
        tol=tol,
        method=method,
        label=f"heated cavity (Ra {rayleigh}, {resolution}^2)",
    )
    state, dt, t, stepper, wall_time = run.state, run.dt, run.t_final, run.stepper, run.wall_time_s
    residual = run.residual

    u_c, v_c = to_centres(state)
    nusselt = float(eq.nusselt(state))
    reference = DE_VAHL_DAVIS_NUSSELT.get(float(rayleigh))
    centres = np.asarray(grid.axis_centres(0))
    attrs = {
        "problem": "heated_cavity",
        "rayleigh": float(rayleigh),
        "prandtl": float(prandtl),
        "resolution": resolution,
        "t_hot": eq.t_hot,
        "t_cold": eq.t_cold,
        "nusselt": nusselt,
        "dt": dt,
        "method": stepper.tableau.name,
        "t_end": t_end,
        "t_final": t,
        "n_steps": run.n_steps,
        "tol": tol,
        "residual": residual,
        "converged": int(residual <= tol),
        "wall_time_s": wall_time,
        "positions": "all fields at the cell centres ((i + 1/2) h, (j + 1/2) h); u, v averaged from the MAC faces",
        "reference": "G. de Vahl Davis, Int. J. Numer. Methods Fluids 3 (1983) 249-264, Table IV",
    }
    if reference is not None:
        attrs["nusselt_reference"] = reference
        attrs["nusselt_deviation"] = (nusselt - reference) / reference
    return xr.Dataset(
        {
            "temperature": (("x", "y"), np.asarray(state[2])),
            "u": (("x", "y"), u_c),
            "v": (("x", "y"), v_c),
            "local_nusselt": ("y", np.asarray(eq.local_nusselt(state))),
            "max_divergence": ((), float(jnp.max(jnp.abs(eq.divergence(state))))),
        },
        coords={"x": centres, "y": np.asarray(grid.axis_centres(1))},
        attrs=attrs,
    )
