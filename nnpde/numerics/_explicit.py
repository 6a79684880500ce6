"""Explicit Runge-Kutta: ``nnpde.ExplicitRK``, any Butcher tableau, with its stability check."""

from __future__ import annotations

import equinox as eqx

from .._checks import is_concrete
from .._custom_types import State
from ._equation import AbstractEquation
from ._stability import max_stable_dt
from ._stepper import AbstractStepper, _check_dt, _crop
from ._tableau import ButcherTableau, _tableau


def _unstable_message(dt, limit, tableau, equation) -> str:
    return (
        f"dt={dt:.6g} exceeds the stability limit {float(limit):.6g} of explicit "
        f"{tableau.name} for this {type(equation).__name__} (stability extent "
        f"{tableau.stability_extent:.3f} / spectral radius "
        f"{tableau.stability_extent / float(limit):.6g}). Fix: use dt <= {float(limit):.6g} "
        "(nnpde.stable_dt gives a safe value), coarsen the grid, or use an implicit "
        "stepper (nnpde.ThetaMethod)."
    )


class ExplicitRK(AbstractStepper):
    """An explicit Runge-Kutta step of ``du/dt = f(t, u)``.

    ``method``: ``"forward_euler"`` (order 1), ``"heun"`` (2), ``"ssprk3"`` (3),
    ``"rk4"`` (4), or any ``ButcherTableau``. With ``check_stability`` (the default)
    a ``dt`` beyond ``max_stable_dt`` raises at construction when the coefficients are
    concrete, and at run time (``eqx.error_if``) when they are traced.
    """

    equation: AbstractEquation
    dt: float = eqx.field(static=True)
    tableau: ButcherTableau = eqx.field(static=True)
    check_stability: bool = eqx.field(static=True)
    args: object = None

    def __init__(
        self, equation: AbstractEquation, *, dt: float | int, method="rk4", args=None, check_stability: bool = True
    ):
        self.equation = equation
        self.dt = _check_dt(dt)
        self.tableau = _tableau(method)
        self.args = args
        self.check_stability = check_stability
        if check_stability:
            limit = max_stable_dt(equation, self.tableau)
            if is_concrete(limit) and self.dt > float(limit):
                raise ValueError(_unstable_message(self.dt, limit, self.tableau, equation))

    @property
    def halo_per_step(self) -> int:
        """Halo cells one step consumes per side (stages times the equation's width)."""
        return len(self.tableau.b) * self.equation.halo_width()

    def step_padded(self, u_padded, t=0.0):
        """One step of a state carrying a periodic halo; the result's halo is
        ``halo_per_step`` cells thinner per side. See ``rollout(..., halo=K)``."""
        u_padded = self._check_stable(u_padded, t)
        f, dt, tab, ndim = self.equation, self.dt, self.tableau, self.equation.grid.ndim
        width = f.halo_width()
        stages = []
        for i in range(len(tab.b)):
            # stage i sees the state i * width cells thinner than the input
            ui = _crop(u_padded, i * width, ndim)
            for j in range(i):
                if tab.a[i][j] != 0.0:
                    ui = ui + (dt * tab.a[i][j]) * _crop(stages[j], (i - 1 - j) * width, ndim)
            stages.append(f.rhs_padded(t + tab.c[i] * dt, ui))
        s = len(tab.b)
        update = sum(
            bi * _crop(k, (s - 1 - i) * width, ndim) for i, (bi, k) in enumerate(zip(tab.b, stages)) if bi != 0.0
        )
        return _crop(u_padded, s * width, ndim) + dt * update

    def _check_stable(self, u, t):
        """``u``, after refusing an unstable ``dt`` (at once, or at run time when traced)."""
        if not self.check_stability:
            return u
        limit = max_stable_dt(self.equation, self.tableau, t=t, u=u)
        if is_concrete(limit):
            if self.dt > float(limit):
                raise ValueError(_unstable_message(self.dt, limit, self.tableau, self.equation))
            return u
        return eqx.error_if(
            u,
            self.dt > limit,
            f"dt={self.dt:.6g} exceeds the explicit stability limit of {self.tableau.name}. "
            "Fix: reduce dt (nnpde.stable_dt) or use nnpde.ThetaMethod.",
        )

    def __call__(self, u: State, t=0.0) -> State:
        u = self._check_stable(u, t)
        f, dt, tab = self.equation, self.dt, self.tableau
        stages = []
        for i in range(len(tab.b)):
            ui = u
            for j in range(i):
                if tab.a[i][j] != 0.0:
                    ui = ui + (dt * tab.a[i][j]) * stages[j]
            stages.append(f(t + tab.c[i] * dt, ui, self.args))
        return u + dt * sum(bi * k for bi, k in zip(tab.b, stages) if bi != 0.0)
