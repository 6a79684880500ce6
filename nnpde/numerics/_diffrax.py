"""Any diffrax solver as an nnpde stepper."""

from __future__ import annotations

import diffrax
import equinox as eqx
import numpy as np

from .._checks import is_concrete
from .._custom_types import State
from ._equation import AbstractEquation
from ._stepper import AbstractStepper, _check_dt
from ._tableau import real_axis_extent


def _diffrax_extent(solver) -> float | None:
    """Stability extent of an explicit diffrax Runge-Kutta solver, else ``None``."""
    if isinstance(solver, diffrax.Euler):
        return 2.0
    if not isinstance(solver, diffrax.AbstractERK):
        return None
    tableau = solver.tableau
    s = len(tableau.b_sol)
    a = np.zeros((s, s))
    for i, row in enumerate(tableau.a_lower):
        a[i + 1, : len(row)] = row
    return real_axis_extent(a, tableau.b_sol)


class DiffraxStepper(AbstractStepper):
    """Advance a method-of-lines equation by ``dt`` with a diffrax solver.

    Each call integrates ``diffrax.ODETerm(equation)`` from ``t`` to ``t + dt`` with
    ``solver`` (default ``Tsit5``), sub-steps of ``dt0`` (default ``dt``) and the given
    ``stepsize_controller`` (e.g. ``diffrax.PIDController(rtol=1e-6, atol=1e-8)`` for
    adaptive steps; then ``dt0`` is the first trial step). With a constant step size
    and an explicit Runge-Kutta solver, a ``dt0`` beyond the solver's stability limit
    is refused as for ``ExplicitRK``. Gradients use ``adjoint`` (diffrax's recursive
    checkpointing by default).
    """

    equation: AbstractEquation
    dt: float = eqx.field(static=True)
    solver: diffrax.AbstractSolver
    dt0: float = eqx.field(static=True)
    stepsize_controller: diffrax.AbstractStepSizeController
    max_steps: int = eqx.field(static=True)
    adjoint: diffrax.AbstractAdjoint
    args: object = None

    def __init__(
        self,
        equation: AbstractEquation,
        *,
        dt: float | int,
        solver: diffrax.AbstractSolver | None = None,
        dt0: float | None = None,
        stepsize_controller: diffrax.AbstractStepSizeController | None = None,
        max_steps: int = 4096,
        adjoint: diffrax.AbstractAdjoint | None = None,
        args=None,
    ):
        self.equation = equation
        self.dt = _check_dt(dt)
        self.solver = diffrax.Tsit5() if solver is None else solver
        self.dt0 = self.dt if dt0 is None else _check_dt(dt0, "dt0")
        self.stepsize_controller = diffrax.ConstantStepSize() if stepsize_controller is None else stepsize_controller
        self.max_steps = max_steps
        self.adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
        self.args = args
        limit = self._stability_limit(0.0, None)
        if limit is not None and is_concrete(limit) and self.dt0 > float(limit):
            raise ValueError(self._unstable_message(float(limit)))

    def _stability_limit(self, t, u):
        """The constant-step limit of an explicit solver, else ``None``."""
        extent = _diffrax_extent(self.solver)
        if extent is None or not isinstance(self.stepsize_controller, diffrax.ConstantStepSize):
            return None
        return extent / self.equation.spectral_radius(t, u)

    def _unstable_message(self, limit) -> str:
        bound = f" {limit:.6g}" if limit is not None else ""
        return (
            f"dt0={self.dt0:.6g} (defaults to dt) exceeds the stability limit{bound} of "
            f"{type(self.solver).__name__} with constant steps for this "
            f"{type(self.equation).__name__}. Fix: pass a smaller dt0 (nnpde.stable_dt), an adaptive "
            "stepsize_controller (diffrax.PIDController) or an implicit solver."
        )

    def __call__(self, u: State, t=0.0) -> State:
        limit = self._stability_limit(t, u)
        if limit is not None and not is_concrete(limit):
            u = eqx.error_if(u, self.dt0 > limit, self._unstable_message(None))
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(self.equation),
            self.solver,
            t0=t,
            t1=t + self.dt,
            dt0=self.dt0,
            y0=u,
            args=self.args,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=self.stepsize_controller,
            max_steps=self.max_steps,
            adjoint=self.adjoint,
        )
        return solution.ys[0]
