r"""The differentially heated square cavity (natural convection of air, de Vahl Davis 1983).

Boussinesq flow (``solvers.boussinesq.Boussinesq2D``, central MAC scheme, second
order) in ``[0, 1]^2``: no-slip walls, hot wall ``T = +0.5`` at ``x = 0``, cold wall
``T = -0.5`` at ``x = 1`` (``T_hot - T_cold = 1``; de Vahl Davis's 1 / 0 gives the
same flow, shifted ``T``), adiabatic top and bottom. Scaling: length ``L``, time
``L^2 / kappa``, velocity ``kappa / L``, so ``du/dt + (u . grad) u = -grad p +
Pr laplacian u + Ra Pr T e_y`` and ``dT/dt + u . grad T = laplacian T``. Started from
the conduction state (``u = 0``, ``T`` linear in ``x``) or an earlier solution
interpolated, and marched with projected RK4 (step adapted to the explicit limit of
the current flow) until the steady-state residual ``max |q^{n+1} - q^n| / dt`` over
the three channels falls below ``tol`` (or ``t_end``). The steady state, hence every
reported quantity, does not depend on the start or the steps taken.

Reference: G. de Vahl Davis, "Natural convection of air in a square cavity: a bench
mark numerical solution", Int. J. Numer. Methods Fluids 3 (1983) 249-264, Table IV:
the mean Nusselt number over the hot wall (``Nu_0``, equal to the mean over the
whole cavity at steady state), ``Pr = 0.71``, extrapolated benchmark values; and the
peak of ``u`` on the vertical mid-line ``x = 1/2`` (at height ``y``) and of ``v`` on
the horizontal mid-line ``y = 1/2`` (at ``x`` from the hot wall), in the same units
``kappa / L`` as this solver's velocity (so compared without conversion).
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
# de Vahl Davis (1983), Table IV: (u_max, its y on x = 1/2, v_max, its x on y = 1/2).
DE_VAHL_DAVIS_MIDLINE = {
    1e3: (3.649, 0.813, 3.697, 0.178),
    1e4: (16.178, 0.823, 19.617, 0.119),
    1e5: (34.73, 0.855, 68.59, 0.066),
    1e6: (64.63, 0.850, 219.36, 0.0379),
}


def make_grid(resolution: int) -> nnpde.Grid:
    """``resolution`` cells per axis on the unit square."""
    return nnpde.Grid((resolution, resolution), extent=((0.0, 1.0), (0.0, 1.0)))


def to_centres(state):
    """``(u, v)`` at the cell centres: the two-point average of the faces either side (walls: 0)."""
    u, v = np.asarray(state[0]), np.asarray(state[1])
    u = np.concatenate([u, np.zeros((1, u.shape[1]))], axis=0)
    v = np.concatenate([v, np.zeros((v.shape[0], 1))], axis=1)
    return 0.5 * (u[1:] + u[:-1]), 0.5 * (v[:, 1:] + v[:, :-1])


def _linear_weights(points, queries):
    """Matrix ``W`` with ``W @ f = np.interp(queries, points, f)`` (piecewise linear)."""
    return np.stack([np.interp(queries, points, e) for e in np.eye(len(points))], axis=1)


def initial_state(eq: Boussinesq2D, previous) -> jnp.ndarray:
    """A start for ``eq`` from an earlier ``solve`` result (any resolution or ``Ra``).

    The centre values of ``previous`` are extended by the wall values (``u = v = 0``;
    ``T = t_hot, t_cold`` on the x walls, ``dT/dy = 0`` copied on the y walls),
    interpolated bilinearly (second order) onto this grid's MAC faces and centres, and
    the velocity projected to zero divergence. Only a closer start: the steady state
    reached does not depend on it.
    """
    x = np.concatenate([[0.0], previous.x.values, [1.0]])
    y = np.concatenate([[0.0], previous.y.values, [1.0]])
    faces = [eq.grid.axis_faces(a)[:-1] for a in range(2)]
    centres = [eq.grid.axis_centres(a) for a in range(2)]

    def resample(values, xq, yq):
        return _linear_weights(x, xq) @ values @ _linear_weights(y, yq).T

    u = resample(np.pad(previous.u.values, 1), faces[0], centres[1])
    v = resample(np.pad(previous.v.values, 1), centres[0], faces[1])
    t = np.pad(previous.temperature.values, ((0, 0), (1, 1)), mode="edge")
    t = np.pad(t, ((1, 0), (0, 0)), constant_values=eq.t_hot)
    t = np.pad(t, ((0, 1), (0, 0)), constant_values=eq.t_cold)
    state = jnp.asarray(np.stack([u, v, resample(t, centres[0], centres[1])]))
    return eq.project(state)


def _parabolic_peak(positions, values):
    """Peak value and position of the parabola through the largest sample and its neighbours."""
    k = int(np.argmax(values))
    if k == 0 or k == len(values) - 1:
        return float(values[k]), float(positions[k])
    lo, mid, hi = values[k - 1 : k + 2]
    curvature = lo - 2 * mid + hi
    shift = 0.5 * (lo - hi) / curvature if curvature < 0 else 0.0
    h = positions[k + 1] - positions[k]
    return float(mid - 0.25 * (lo - hi) * shift), float(positions[k] + shift * h)


def midline_peaks(ds) -> dict:
    """``u_max`` on ``x = 1/2`` and ``v_max`` on ``y = 1/2`` with their positions (``solve`` output).

    Uses ``u_midline`` / ``v_midline``, then the parabola through the largest sample
    and its two neighbours (de Vahl Davis's values are likewise interpolated).
    """
    u_max, y = _parabolic_peak(ds.y.values, ds.u_midline.values)
    v_max, x = _parabolic_peak(ds.x.values, ds.v_midline.values)
    out = {"u_max": u_max, "u_max_y": y, "v_max": v_max, "v_max_x": x}
    reference = DE_VAHL_DAVIS_MIDLINE.get(ds.attrs["rayleigh"])
    if reference is not None:
        for key, ref in zip(("u_max", "u_max_y", "v_max", "v_max_x"), reference, strict=True):
            out[f"{key}_reference"] = ref
        out["u_max_deviation"] = (u_max - reference[0]) / reference[0]
        out["v_max_deviation"] = (v_max - reference[2]) / reference[2]
    return out


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
    adaptive: bool = True,
    initial=None,
):
    """March to steady state; return an ``xarray.Dataset``.

    The start is the conduction state, or ``initial_state(eq, initial)`` when
    ``initial`` (an earlier ``solve`` result, e.g. the same ``Ra`` on a coarser grid)
    is given. The first step is ``safety * max_stable_dt`` at the speed bound
    ``sqrt(Ra Pr) + 1`` on both components (above the steady peak speed in these
    units: 3.7, 19.6, 68.6, 219 at Ra 1e3 to 1e6) and the initial temperature. With
    ``adaptive`` the step then follows ``safety * max_stable_dt`` at the current state
    (``problems._steady.march_to_steady_state``: grown when the flow allows 1.25 times
    more, a check interval that ends past the limit redone with a smaller step);
    without, it stays fixed and the run stops with an error if it exceeds the limit
    re-evaluated after a check. Every ``check_every`` time units the residual
    ``max |q^{n+1} - q^n| / dt`` over the three channels is measured; the run stops
    when it is below ``tol`` or at ``t_end``.

    Variables (all at the cell centres ``((i + 1/2) h, (j + 1/2) h)``):
    ``temperature(x, y)``, ``u(x, y)``, ``v(x, y)`` (two-point averages of the MAC
    faces), ``local_nusselt(y)`` on the hot wall, ``u_midline(y)`` (``u`` on
    ``x = 1/2``: the MAC face itself for even ``resolution``) and ``v_midline(x)``
    (``v`` on ``y = 1/2``), ``max_divergence``, and per accepted check ``t_history``,
    ``dt_history`` and ``residual_history`` (dimension ``check``). Attrs:
    parameters, ``nusselt`` (mean hot-wall Nusselt number), ``nusselt_reference``
    and ``nusselt_deviation`` (relative, when de Vahl Davis has the ``Ra``),
    ``residual``, ``t_final``, ``n_steps``, ``n_rejected``, ``converged``,
    ``wall_time_s``.
    """
    import xarray as xr

    if not (isinstance(resolution, int) and resolution >= 4):
        raise ValueError(f"resolution must be an int >= 4, got {resolution!r}.")
    if not (rayleigh >= 0 and math.isfinite(rayleigh)):
        raise ValueError(f"rayleigh must be >= 0 and finite, got {rayleigh}.")
    grid = make_grid(resolution)
    eq = Boussinesq2D(grid, rayleigh=rayleigh, prandtl=prandtl)
    if initial is None:
        state, start = eq.conduction_state(), "conduction"
    else:
        state = initial_state(eq, initial)
        start = f"interpolated from Ra {initial.attrs['rayleigh']:g}, {initial.attrs['resolution']}^2"
    speed = math.sqrt(rayleigh * prandtl) + 1.0
    bound = state.at[:2].set(speed)  # peak speed guess; T and hence the buoyancy bound as at the start
    run = march_to_steady_state(
        eq,
        state,
        dt_max=nnpde.stable_dt(eq, method, safety=safety, u=bound),
        check_every=check_every,
        t_end=t_end,
        tol=tol,
        method=method,
        label=f"heated cavity (Ra {rayleigh}, {resolution}^2)",
        safety=safety if adaptive else None,
    )
    state, dt, t, stepper, wall_time = run.state, run.dt, run.t_final, run.stepper, run.wall_time_s
    residual = run.residual

    u_c, v_c = to_centres(state)
    nusselt = float(eq.nusselt(state))
    reference = DE_VAHL_DAVIS_NUSSELT.get(float(rayleigh))
    centres = np.asarray(grid.axis_centres(0))
    mid = resolution // 2
    if resolution % 2 == 0:  # the mid-lines are MAC face lines
        u_midline, v_midline = np.asarray(state[0, mid]), np.asarray(state[1, :, mid])
    else:  # the mid-lines run through the cell centres
        u_midline, v_midline = u_c[mid], v_c[:, mid]
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
        "n_rejected": run.n_rejected,
        "adaptive": int(adaptive),
        "initial": start,
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
            "u_midline": ("y", u_midline),
            "v_midline": ("x", v_midline),
            "residual_history": ("check", np.array([r for _, _, r in run.history])),
            "t_history": ("check", np.array([t for t, _, _ in run.history])),
            "dt_history": ("check", np.array([d for _, d, _ in run.history])),
            "max_divergence": ((), float(jnp.max(jnp.abs(eq.divergence(state))))),
        },
        coords={"x": centres, "y": np.asarray(grid.axis_centres(1))},
        attrs=attrs,
    )
