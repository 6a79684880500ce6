r"""The decaying Arnold-Beltrami-Childress (ABC) flow on the periodic cube ``[0, 2 pi]^3``.

An exact solution of the 3-D incompressible Navier-Stokes equations (Arnold, C. R.
Acad. Sci. Paris 261 (1965) 17; Dombre et al., J. Fluid Mech. 167 (1986) 353):

    u = (A sin z + C cos y,  B sin x + A cos z,  C sin y + B cos x) exp(-nu t).

It is a Beltrami field, ``curl u = u``, so ``u x omega = 0`` and the advection
``(u . grad) u = grad(|u|^2 / 2)`` is a nonzero gradient that the pressure
``p = -|u|^2 / 2`` balances; ``laplacian u = -u`` gives the decay, and the kinetic energy
``E = (2 pi)^3 (A^2 + B^2 + C^2) / 2 exp(-2 nu t)`` decays at the rate ``2 nu``.

On the MAC grid each component is independent of its own coordinate, so the sampled
field is discretely divergence-free exactly, and each term is an eigenfunction of the
7-point Laplacian with eigenvalue ``-(2 sin(h/2) / h)^2``. Like the 2-D Taylor-Green
vortex, the sampled field's central MAC advection is a discrete gradient (measured:
``max|P div(u u)| ~ 1e-15`` against ``max|div(u u)| ~ 0.8``), so the stationary flow
keeps its shape and decays at the modified rate ``2 nu (2 sin(h/2) / h)^2``: it tests
the projection and the viscosity.

``background=(U, V, W)`` adds a uniform flow: by Galilean invariance the pattern is
carried along, ``u(x, t) = U + u_ABC(x - U t, t)``, and the advection's O(h^2)
dispersion enters the error: the test of all three terms together.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

import nnpde
from nnpde import ProjectedRK
from solvers.navier_stokes3d import NavierStokes3D, face_centres

EXTENT = ((0.0, 2 * math.pi),) * 3
COEFFICIENTS = (1.0, 0.8, 0.6)  # (A, B, C): unequal, so no symmetry hides an axis error


def make_grid(resolution: int) -> nnpde.Grid:
    """``resolution`` cells per axis on ``[0, 2 pi]^3``."""
    return nnpde.Grid((resolution,) * 3, extent=EXTENT)


def analytic_velocity(grid: nnpde.Grid, t: float, nu: float, *, coefficients=COEFFICIENTS, background=(0.0,) * 3):
    """The exact velocity at time ``t`` on the staggered positions, ``(3, n, n, n)``."""
    a, b, c = coefficients
    decay = math.exp(-nu * t)
    (_, y0, z0), (x1, _, z1), (x2, y2, _) = face_centres(grid)
    bx, by, bz = background
    u = bx + (a * jnp.sin(z0 - bz * t) + c * jnp.cos(y0 - by * t)) * decay
    v = by + (b * jnp.sin(x1 - bx * t) + a * jnp.cos(z1 - bz * t)) * decay
    w = bz + (c * jnp.sin(y2 - by * t) + b * jnp.cos(x2 - bx * t)) * decay
    return jnp.stack([u, v, w])


def analytic_energy(t, nu: float, *, coefficients=COEFFICIENTS, background=(0.0,) * 3):
    """``E(t) = (2 pi)^3 (|U|^2 + (A^2 + B^2 + C^2) exp(-2 nu t)) / 2`` (cross terms integrate to 0)."""
    volume = (2 * math.pi) ** 3
    mean = sum(v**2 for v in background)
    return 0.5 * volume * (mean + sum(v**2 for v in coefficients) * np.exp(-2.0 * nu * np.asarray(t)))


def rollout_function(resolution: int, *, dt: float, n_steps: int, method: str = "rk4", advection: str = "central"):
    """``run(u0, viscosity, forcing)``: the trajectory ``(n_steps, 3, n, n, n)`` of
    ``nnpde.ProjectedRK`` steps from ``u0``, jitted once per configuration.

    The state, the viscosity and the force (``(3, n, n, n)``) are traced arguments, so
    one compilation serves every value and the run is differentiable in all three.
    """
    return _rollout_function(int(resolution), float(dt), int(n_steps), method, advection)


@functools.cache  # keyed on the normalised configuration: one compilation each
def _rollout_function(resolution, dt, n_steps, method, advection):
    grid = make_grid(resolution)

    @jax.jit
    def run(u0, viscosity, forcing):
        eq = NavierStokes3D(grid, viscosity=viscosity, forcing=forcing, advection=advection)
        return nnpde.rollout(ProjectedRK(eq, dt=dt, method=method), u0, n_steps)

    return run


def solve(
    resolution: int = 16,
    viscosity: float = 0.1,
    t_end: float = 1.0,
    *,
    dt: float | None = None,
    method: str = "rk4",
    advection: str = "central",
    safety: float = 0.5,
    background=(0.0,) * 3,
    coefficients=COEFFICIENTS,
):
    """Integrate the ABC flow to ``t_end`` with ``nnpde.ProjectedRK``; return a dict.

    ``dt`` must lie within the explicit limit (the stepper refuses it otherwise).

    ``dt`` defaults to ``safety`` times the explicit limit at ``t = 0``, shortened so
    that equal steps end at ``t_end``. Keys: ``velocity`` (final, ``(3, n, n, n)``),
    ``analytic`` (exact at ``t_end``), ``max_error`` (max-norm of the difference),
    ``energy`` (initial and final kinetic energy), ``dt``, ``n_steps``.
    """
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end must be positive and finite, got {t_end}.")
    grid = make_grid(resolution)
    eq = NavierStokes3D(grid, viscosity=viscosity, advection=advection)
    u0 = analytic_velocity(grid, 0.0, viscosity, coefficients=coefficients, background=background)
    step = nnpde.stable_dt(eq, method, safety=safety, u=u0) if dt is None else dt
    n_steps = max(1, math.ceil(t_end / step - 1e-9))
    run = rollout_function(resolution, dt=t_end / n_steps, n_steps=n_steps, method=method, advection=advection)
    final = run(u0, viscosity, jnp.zeros_like(u0))[-1]
    exact = analytic_velocity(grid, t_end, viscosity, coefficients=coefficients, background=background)
    return {
        "velocity": final,
        "analytic": exact,
        "max_error": float(jnp.max(jnp.abs(final - exact))),
        "energy": (float(eq.kinetic_energy(u0)), float(eq.kinetic_energy(final))),
        "dt": t_end / n_steps,
        "n_steps": n_steps,
    }
