"""Projection Runge-Kutta for incompressible flow: ``nnpde.ProjectedRK``.

An incompressible equation ``du/dt = P f(t, u)`` (``P`` the projection onto
divergence-free fields) is stepped with an explicit Runge-Kutta tableau whose every
stage value, and the result, is projected: ``u_i = P(u + dt sum_j a_ij k_j)``,
``k_i = f(t + c_i dt, u_i)``, ``u_next = P(u + dt sum_i b_i k_i)``. For a
divergence-free ``u`` and a linear ``P`` this is the tableau applied to ``P f``, so the
method keeps its classical order for the velocity (the pressure never enters the
state). The projection after each stage is jax-cfd's choice (Dresdner et al. 2022;
Kochkov et al., PNAS 118 (2021) e2101784118); Sanderse & Koren, J. Comput. Phys. 231
(2012) 3041 analyse its order.

Its time-step limit (``nnpde.max_stable_dt_advective``) is derived in ``_stability``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from .._checks import is_concrete
from .._custom_types import State
from ._equation import AbstractProjectedEquation
from ._stability import max_stable_dt_advective
from ._stepper import AbstractStepper, _check_dt
from ._tableau import ButcherTableau, _tableau, advection_extents


class ProjectedRK(AbstractStepper):
    """An explicit Runge-Kutta step of ``du/dt = P f(t, u)``, projecting every stage.

    ``u_i = P(u + dt sum_j a_ij k_j)``, ``k_i = f(t + c_i dt, u_i)``, and
    ``u_next = P(u + dt sum_i b_i k_i)``, each ``P`` at its stage time (the first stage
    uses ``u`` as given: start from a divergence-free state, ``equation.project(u0)``). ``method``: ``"rk4"``
    (order 4, the default), ``"ssprk3"`` (order 3) or a ``ButcherTableau`` whose
    stability region holds part of the imaginary axis; ``"forward_euler"`` and
    ``"heun"`` (one and two right-hand sides and projections per step) only for an
    equation with upwind-limited advection (``equation.forward_euler_rate`` not None,
    e.g. van Leer fluxes), below their total-variation-diminishing limit.

    With ``check_stability`` a ``dt`` beyond ``max_stable_dt_advective`` is refused:
    the viscous part at construction, the whole (CFL) limit at every step; at once
    with a concrete state, at run time (``eqx.error_if``) when traced.
    """

    equation: AbstractProjectedEquation
    dt: float = eqx.field(static=True)
    tableau: ButcherTableau = eqx.field(static=True)
    check_stability: bool = eqx.field(static=True)
    args: object = None

    def __init__(
        self,
        equation: AbstractProjectedEquation,
        *,
        dt: float | int,
        method="rk4",
        args=None,
        check_stability: bool = True,
    ):
        if not isinstance(equation, AbstractProjectedEquation):
            raise TypeError(
                f"ProjectedRK needs an equation with a projection (nnpde AbstractProjectedEquation), got "
                f"{type(equation).__name__}. Fix: use nnpde.ExplicitRK for unconstrained equations."
            )
        self.equation = equation
        self.dt = _check_dt(dt)
        self.tableau = _tableau(method)
        self.args = args
        self.check_stability = check_stability
        if check_stability:
            limit = max_stable_dt_advective(equation, self.tableau)  # viscous part; raises for I = 0
            if is_concrete(limit) and self.dt > limit:
                raise ValueError(self._message(limit, None))

    def _message(self, limit, u, t=0.0) -> str:
        r, i = advection_extents(self.tableau)
        name = type(self.equation).__name__
        if i == 0.0:
            detail = (
                f"the total-variation-diminishing limit {float(limit):.6g} (SSP coefficient / "
                f"{name}.forward_euler_rate{'' if u is None else ' at this state'})"
            )
        elif u is None:
            detail = f"the viscous limit {float(limit):.6g} (real stability extent {r:.3f} / spectral radius)"
        else:
            detail = (
                f"the advective-viscous (CFL) limit {float(limit):.6g} = 1 / (A/{r:.3f} + B/{i:.3f}) with "
                f"A = {float(self.equation.spectral_radius(t, u)):.6g} (viscous) and "
                f"B = sum max|u_a|/h_a = {float(self.equation.advective_radius(t, u)):.6g} (advective)"
            )
        return (
            f"dt={self.dt:.6g} exceeds {detail} of explicit {self.tableau.name} for this {name}. "
            f"Fix: use dt <= {float(limit):.6g} (nnpde.stable_dt(equation, u=u) gives a safe value for a state u), "
            "or refine dt as the flow speeds up."
        )

    def _check_stable(self, u, t):
        if not self.check_stability:
            return u
        limit = max_stable_dt_advective(self.equation, self.tableau, t=t, u=u)
        if is_concrete(limit):
            if self.dt > limit:
                raise ValueError(self._message(limit, u, t))
            return u
        r, i = advection_extents(self.tableau)
        # Under jit only a static message is possible: give the largest advective radius
        # this dt admits (when the viscous part is concrete).
        viscous = self.equation.spectral_radius(t, None) / r
        admissible = ""
        if i == 0.0:
            name = type(self.equation).__name__
            admissible = f" (the total-variation-diminishing limit 1 / {name}.forward_euler_rate)"
        elif is_concrete(viscous):
            bound = self._admissible_advective_radius(t, float(viscous) * r, r, i)
            if bound is not None:
                admissible = f" (at this dt the state must have sum_a max|u_a|/h_a <= {bound:.6g})"
        return eqx.error_if(
            u,
            self.dt > limit,
            f"dt={self.dt:.6g} exceeds the advective-viscous (CFL) stability limit of explicit "
            f"{self.tableau.name} for this {type(self.equation).__name__}{admissible}. Fix: reduce dt "
            f"(nnpde.stable_dt(equation, u=u) for the fastest expected state u).",
        )

    def _admissible_advective_radius(self, t, viscous: float, r: float, i: float):
        """The largest ``B = sum_a max|u_a|/h_a`` this ``dt`` admits, for the message of
        the run-time check: ``dt (A(u) / R + B / I) <= 1`` with ``A(u) = A_0 + s B``
        (upwind-limited fluxes add their dissipation, ``s = 2`` for van Leer), ``s``
        read off a probe state; None where the equation's radii cannot be evaluated
        outside the trace."""
        try:
            with jax.ensure_compile_time_eval():  # concrete values inside the trace
                probe = np.ones(self.equation.state_shape)
                b = float(self.equation.advective_radius(t, probe))
                slope = (float(self.equation.spectral_radius(t, probe)) - viscous) / b
        except Exception:  # a traced time or a radius that needs the traced state
            return None
        return (1.0 / self.dt - viscous / r) / (slope / r + 1.0 / i)

    def __call__(self, u: State, t=0.0) -> State:
        u = self._check_stable(u, t)
        f, dt, tab = self.equation, self.dt, self.tableau
        stages = []
        for i in range(len(tab.b)):
            ui = u
            if i > 0:
                increment = sum(tab.a[i][j] * stages[j] for j in range(i) if tab.a[i][j] != 0.0)
                ui = f.project(u + dt * increment, t + tab.c[i] * dt) if not isinstance(increment, int) else u
            stages.append(f(t + tab.c[i] * dt, ui, self.args))
        return f.project(u + dt * sum(bi * k for bi, k in zip(tab.b, stages) if bi != 0.0), t + dt)
