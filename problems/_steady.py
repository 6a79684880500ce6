"""March a projected flow to a steady state: the driver both cavity problems share."""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp

import nnpde


@dataclasses.dataclass(frozen=True)
class SteadyRun:
    """The final state and how it was reached."""

    state: jax.Array
    stepper: nnpde.ProjectedRK
    dt: float
    t_final: float
    n_steps: int
    residual: float
    wall_time_s: float


def march_to_steady_state(eq, state, *, dt_max, check_every, t_end, tol, method, label) -> SteadyRun:
    """Step ``state`` with projected RK until ``max|u^{n+1} - u^n| / dt < tol`` or ``t_end``.

    ``dt`` is the largest step at most ``dt_max`` that divides ``check_every``. Every
    ``check_every`` time units the residual of the last step is measured, a non-finite
    one stops the run, and the explicit limit is re-checked at the current state (the
    flow may have sped up beyond the speed ``dt_max`` was chosen for).
    """
    per_check = max(1, math.ceil(check_every / dt_max))
    dt = check_every / per_check
    stepper = nnpde.ProjectedRK(eq, dt=dt, method=method, check_stability=False)

    @jax.jit
    def advance(q, t0):
        q = nnpde.rollout(stepper, q, per_check - 1, t0=t0, trajectory=False)
        new = stepper(q, t0 + (per_check - 1) * dt)
        return new, jnp.max(jnp.abs(new - q)) / dt

    start = time.perf_counter()
    t, residual, n_checks = 0.0, math.inf, 0
    while t < t_end - 1e-9 and residual > tol:
        state, res = advance(state, t)
        residual = float(res)
        if not math.isfinite(residual):
            raise FloatingPointError(f"The {label} run blew up at t = {t:.3f}.")
        t, n_checks = (n_checks + 1) * check_every, n_checks + 1
        limit = eq.max_stable_dt(state, method)
        if dt > limit:
            raise FloatingPointError(
                f"dt = {dt:.3g} exceeds the stability limit {limit:.3g} at t = {t:.3f} ({label}). Fix: lower safety."
            )
    return SteadyRun(state, stepper, dt, t, n_checks * per_check, residual, time.perf_counter() - start)
