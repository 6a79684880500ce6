r"""Periodic viscous Burgers with a closed-form (Cole-Hopf) solution.

``u_t + (u^2 / 2)_x = nu u_xx`` on ``[0, 2 pi)``, periodic. The Cole-Hopf transform
``u = -2 nu phi_x / phi`` turns Burgers into the heat equation ``phi_t = nu phi_xx``
(Hopf 1950, Cole 1951), so any positive periodic heat solution gives an exact Burgers
solution. Here

    ``phi(x, t) = 1 + sum_j b_j exp(-nu k_j^2 t) cos(k_j x + c_j)``

with the modes ``MODES`` (``1 - sum_j |b_j| = 0.15 > 0`` keeps ``phi`` positive), so

    ``u(x, t) = 2 nu sum_j b_j k_j exp(-nu k_j^2 t) sin(k_j x + c_j) / phi(x, t)``,

a steepening, decaying wave of zero mean. A Galilean shift adds a uniform ``drift``
``U``: ``U + u(x - U t, t)`` solves the same equation and moves the profile through
the periodic boundary. The amplitude scales with ``nu`` while the shape (and the
Reynolds number ``max|u| L / nu``, about 20) does not.

``solve`` integrates it with ``solvers.burgers.Burgers`` and returns an
``xarray.Dataset`` with the numerical and exact solutions over time.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import nnpde
from solvers.burgers import Burgers

LENGTH = 2 * math.pi
# (wavenumber k_j, amplitude b_j, phase c_j) of the heat solution phi
MODES = ((1, 0.6, 0.0), (2, 0.25, 0.7))


def _check_viscosity(nu) -> float:
    if not (isinstance(nu, (int, float)) and math.isfinite(nu) and nu > 0):
        raise ValueError(
            f"The Cole-Hopf solution needs a viscosity nu > 0 (u = -2 nu phi_x / phi), got {nu!r}. "
            "Fix: pass e.g. viscosity=0.1."
        )
    return float(nu)


def heat_potential(x, t, nu):
    """``phi(x, t)``: the heat solution behind the Cole-Hopf transform (positive)."""
    return 1.0 + sum(b * jnp.exp(-nu * k**2 * t) * jnp.cos(k * x + c) for k, b, c in MODES)


def analytic(x, t, nu, *, drift=0.0):
    """The exact velocity ``u(x, t)`` for viscosity ``nu > 0`` (closed form, any ``t``).

    ``x`` any array of positions (periodic with period ``2 pi``); ``drift`` a uniform
    velocity added by a Galilean shift.
    """
    nu = _check_viscosity(nu)
    xi = jnp.asarray(x) - drift * t
    numerator = sum(b * k * jnp.exp(-nu * k**2 * t) * jnp.sin(k * xi + c) for k, b, c in MODES)
    return drift + 2 * nu * numerator / heat_potential(xi, t, nu)


def grid(resolution: int) -> nnpde.Grid:
    """``resolution`` cells on ``[0, 2 pi)``."""
    return nnpde.Grid((resolution,), extent=((0.0, LENGTH),))


def equation(resolution: int = 128, *, viscosity: float = 0.1, scheme: str = "van_leer") -> Burgers:
    """The periodic 1-D Burgers equation of this problem."""
    return Burgers(
        grid(resolution), nnpde.BoundaryConditions.periodic(1), viscosity=_check_viscosity(viscosity), scheme=scheme
    )


def initial_state(resolution: int = 128, *, viscosity: float = 0.1, drift: float = 0.0):
    """``u(x, 0)`` on the cell centres, shape ``(1, resolution)``."""
    (x,) = grid(resolution).cell_centres()
    return analytic(x, 0.0, viscosity, drift=drift)[None]


def solve(
    *,
    resolution: int = 128,
    viscosity: float = 0.1,
    t_end: float = 2.0,
    scheme: str = "van_leer",
    method: str = "ssprk3",
    safety: float = 0.8,
    n_frames: int = 11,
    drift: float = 0.0,
):
    """Integrate to ``t_end`` and compare with the exact solution.

    ``dt`` is the largest step of at most ``safety * nnpde.max_stable_dt`` (the CFL
    limit for the initial state, which bounds later ones: maximum principle) that
    divides ``t_end`` into a whole number of steps, itself a multiple of
    ``n_frames - 1``. Returns an ``xarray.Dataset`` with coordinates ``time``
    (``n_frames`` values from 0 to ``t_end``) and ``x`` (cell centres), variables
    ``u`` and ``u_exact`` (``time, x``), ``error_max`` and ``error_l1`` (``time``: max
    norm and mean absolute error), and the parameters in ``attrs``.
    """
    import xarray as xr

    if not (isinstance(t_end, (int, float)) and math.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end must be a positive finite time, got {t_end!r}. Fix: e.g. t_end=1.0.")
    if not (isinstance(n_frames, int) and n_frames >= 2):
        raise ValueError(f"n_frames must be an int >= 2 (the initial and final states at least), got {n_frames!r}.")
    eq = equation(resolution, viscosity=viscosity, scheme=scheme)
    u0 = initial_state(resolution, viscosity=viscosity, drift=drift)
    per_frame = max(1, math.ceil(t_end / (n_frames - 1) / nnpde.stable_dt(eq, method, safety=safety, u=u0)))
    n_steps = per_frame * (n_frames - 1)
    stepper = nnpde.ExplicitRK(eq, dt=t_end / n_steps, method=method)
    states = jax.jit(lambda u: nnpde.rollout(stepper, u, n_steps, include_init=True))(u0)
    frames = np.asarray(states[::per_frame, 0])
    times = np.arange(n_frames) * per_frame * stepper.dt
    (x,) = eq.grid.cell_centres()
    exact = np.stack([np.asarray(analytic(x, t, viscosity, drift=drift)) for t in times])
    error = np.abs(frames - exact)
    return xr.Dataset(
        {
            "u": (("time", "x"), frames),
            "u_exact": (("time", "x"), exact),
            "error_max": ("time", error.max(axis=1)),
            "error_l1": ("time", error.mean(axis=1)),
        },
        coords={"time": times, "x": np.asarray(x)},
        attrs={
            "problem": "periodic viscous Burgers, Cole-Hopf solution",
            "resolution": resolution,
            "viscosity": float(viscosity),
            "t_end": float(t_end),
            "scheme": scheme,
            "method": method,
            "dt": stepper.dt,
            "n_steps": n_steps,
            "drift": float(drift),
            "max_stable_dt": float(nnpde.max_stable_dt(eq, method, u=u0)),
        },
    )
