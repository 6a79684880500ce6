"""March a projected flow to a steady state: the driver both cavity problems share."""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp

import nnpde
from problems._xla import EXECUTION_BOUND

# An adaptive run re-chooses dt only when the state allows a step this much larger:
# every new dt costs one compilation of the check interval.
_GROW = 1.25


@dataclasses.dataclass(frozen=True)
class SteadyRun:
    """The final state and how it was reached.

    ``dt`` is the last step used; ``history`` holds ``(t, dt, residual)`` after every
    accepted check; ``n_rejected`` counts the check intervals redone with a smaller
    step (adaptive runs only).
    """

    state: jax.Array
    stepper: nnpde.ProjectedRK
    dt: float
    t_final: float
    n_steps: int
    residual: float
    wall_time_s: float
    history: tuple = ()
    n_rejected: int = 0


def march_to_steady_state(
    eq, state, *, dt_max, check_every, t_end, tol, method, label, safety: float | None = None
) -> SteadyRun:
    """Step ``state`` with projected RK until ``max|u^{n+1} - u^n| / dt < tol`` or ``t_end``.

    ``dt`` is the largest step at most ``dt_max`` that divides ``check_every``. Every
    ``check_every`` time units the residual of the last step is measured, a non-finite
    one stops the run, and the explicit limit is re-checked at the current state (the
    flow may have sped up beyond the speed ``dt_max`` was chosen for).

    With ``safety`` (in ``(0, 1]``) the step adapts instead: ``dt_max`` is only the
    first step; after every check the limit ``L = eq.max_stable_dt`` is evaluated at
    the new state and ``dt`` grows to ``safety * L`` when that is at least 1.25 times
    larger. A check interval that ends non-finite or with ``dt > L`` is rejected and
    redone from the state before it with ``dt = min(dt / 2, safety * L)`` (``L`` at
    the start of the interval when its end is non-finite). Only the steady state is
    wanted, and a steady state of projected RK (``P f(u) = 0``) does not depend on
    ``dt``, so varying ``dt`` costs no accuracy; each new ``dt`` costs a compilation.
    """
    if safety is not None and not 0 < safety <= 1:
        raise ValueError(f"safety must lie in (0, 1] or be None, got {safety}.")

    def build(dt_bound):
        per_check = max(1, math.ceil(check_every / dt_bound))
        dt = check_every / per_check
        stepper = nnpde.ProjectedRK(eq, dt=dt, method=method, check_stability=False)

        @functools.partial(jax.jit, compiler_options=EXECUTION_BOUND)
        def advance(q, t0):
            # one scan carrying the previous state too: the step is traced (and
            # compiled) once, not once in a rollout and again for the residual step
            def step(carry, i):
                return (stepper(carry[0], t0 + i * dt), carry[0]), None

            (new, last), _ = jax.lax.scan(step, (q, q), jnp.arange(per_check))
            return new, jnp.max(jnp.abs(new - last)) / dt

        return dt, per_check, stepper, advance

    dt, per_check, stepper, advance = build(dt_max)
    start = time.perf_counter()
    t, residual, n_checks, n_steps, n_rejected, history = 0.0, math.inf, 0, 0, 0, []
    while t < t_end - 1e-9 and residual > tol:
        new, res = advance(state, t)
        res = float(res)
        limit = nnpde.max_stable_dt(eq, method, u=new) if math.isfinite(res) else 0.0
        if safety is not None and (not math.isfinite(res) or dt > limit):
            n_rejected += 1
            # a non-finite end state has no limit: take the one at the start of the interval
            limit = limit if math.isfinite(res) else nnpde.max_stable_dt(eq, method, u=state)
            bound = min(dt / 2, safety * limit)
            if bound < 1e-6 * dt_max:
                raise FloatingPointError(f"The {label} run keeps blowing up at t = {t:.3f} (dt {dt:.3g}).")
            dt, per_check, stepper, advance = build(bound)
            continue
        if not math.isfinite(res):
            raise FloatingPointError(f"The {label} run blew up at t = {t:.3f}.")
        state, residual = new, res
        n_checks, n_steps = n_checks + 1, n_steps + per_check
        t = n_checks * check_every
        history.append((t, dt, residual))
        if safety is None and dt > limit:
            raise FloatingPointError(
                f"dt = {dt:.3g} exceeds the stability limit {limit:.3g} at t = {t:.3f} ({label}). Fix: lower safety."
            )
        if safety is not None and safety * limit >= _GROW * dt and residual > tol and t < t_end - 1e-9:
            dt, per_check, stepper, advance = build(safety * limit)
    return SteadyRun(state, stepper, dt, t, n_steps, residual, time.perf_counter() - start, tuple(history), n_rejected)
