"""Implicit theta-method steppers for linear (diffusion-type) equations."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from .._custom_types import State
from . import _krylov
from ._equation import AbstractLinearEquation
from ._stepper import AbstractStepper, _check_dt

THETAS = {"backward_euler": 1.0, "crank_nicolson": 0.5}


class ThetaMethod(AbstractStepper):
    """Implicit theta-method for ``M du/dt = D u + b(t)``::

        (M - theta dt D) u1 = M u0 + (1 - theta) dt (D u0 + b(t0)) + theta dt b(t0 + dt)

    ``method="backward_euler"`` (theta = 1, first order, L-stable) or
    ``"crank_nicolson"`` (theta = 1/2, second order, A-stable); unconditionally stable
    for symmetric negative semi-definite ``D``.

    ``solver``: ``"spectral"`` (a fast transform solve, exact, O(N log N); needs a
    constant coefficient and periodic or same-type wall conditions per axis),
    ``"cg"`` (Jacobi-preconditioned conjugate gradients via lineax, BiCGStab when the
    operator is not symmetric) or ``"auto"`` (spectral where possible). Either solve is
    differentiated implicitly: the backward pass is one more (adjoint) linear solve,
    and no iterate of the forward solve is stored. A solve that does not reach
    ``rtol``/``atol`` within ``max_steps`` raises instead of returning a poor answer;
    the test is normwise, ``max|r| <= atol + rtol * max|b|`` for the system ``A x = b``
    (defaults: ``rtol`` 1e-12 in float64, 1e-5 in float32; ``atol`` 0). Invariants of
    the discretisation, such as total heat with zero-flux walls, hold to that tolerance
    under CG and to round-off under the spectral solve.
    """

    equation: AbstractLinearEquation
    dt: float = eqx.field(static=True)
    theta: float = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    rtol: float | None = eqx.field(static=True)
    atol: float | None = eqx.field(static=True)
    max_steps: int | None = eqx.field(static=True)

    def __init__(
        self,
        equation: AbstractLinearEquation,
        *,
        dt: float | int,
        method: str = "crank_nicolson",
        solver: str = "auto",
        rtol: float | None = None,
        atol: float | None = None,
        max_steps: int | None = None,
    ):
        if not isinstance(equation, AbstractLinearEquation):
            raise TypeError(
                f"ThetaMethod needs a linear equation (nnpde.AbstractLinearEquation), got "
                f"{type(equation).__name__}. Fix: use an explicit stepper or nnpde.DiffraxStepper "
                "with an implicit diffrax solver."
            )
        if method not in THETAS:
            raise ValueError(f"Unknown implicit method {method!r}. Fix: use one of {sorted(THETAS)}.")
        if solver not in ("auto", "spectral", "cg"):
            raise ValueError(f"solver must be 'auto', 'spectral' or 'cg', got {solver!r}.")
        spectral_ok = equation.fast_solver() is not None
        if solver == "spectral" and not spectral_ok:
            raise ValueError(
                f"solver='spectral' is not available for this {type(equation).__name__}: a fast "
                "transform needs a scalar coefficient and mass and, per axis, periodic or "
                "same-type wall conditions (Dirichlet-Dirichlet or Neumann-Neumann at order 2). "
                "Fix: use solver='cg'."
            )
        self.equation = equation
        self.dt = _check_dt(dt)
        self.theta = THETAS[method]
        self.solver = "spectral" if solver == "auto" and spectral_ok else ("cg" if solver == "auto" else solver)
        self.rtol, self.atol, self.max_steps = rtol, atol, max_steps

    def __call__(self, u: State, t=0.0) -> State:
        eq, dt, theta = self.equation, self.dt, self.theta
        mass = eq.mass()
        rhs = mass * u + theta * dt * eq.forcing(t + dt)
        if theta != 1.0:
            rhs = rhs + (1.0 - theta) * dt * (eq.apply_operator(u) + eq.forcing(t))
        if self.solver == "spectral":
            return eq.fast_solver()(rhs, theta * dt)
        return self._krylov(u, rhs, mass)

    def _krylov(self, u, rhs, mass):
        eq, alpha = self.equation, self.theta * self.dt
        rtol = self.rtol if self.rtol is not None else (1e-12 if rhs.dtype == jnp.float64 else 1e-5)
        bc = getattr(eq, "bc", None)
        if bc is not None and bc.distributed:
            return self._split_krylov(u, rhs, mass, bc, rtol)
        # lineax stops when |r_i| <= atol + rtol |b_i| in every cell. Where b_i = 0 (a
        # source-free region) that would demand an absolute residual of atol alone, which
        # may be unreachable at the field's scale; adding rtol * max|b| makes the test
        # the usual normwise relative residual.
        scale = jnp.maximum(jnp.max(jnp.abs(rhs)), jnp.finfo(rhs.dtype).tiny)
        atol = (self.atol or 0.0) + rtol * jax.lax.stop_gradient(scale)

        def matvec(x):
            return mass * x - alpha * eq.apply_operator(x)

        structure = jax.eval_shape(lambda: rhs)
        # The preconditioner and the initial guess change the iterations, not the
        # solution: no gradient flows through them (lineax refuses tangents there).
        inverse_diagonal = jax.lax.stop_gradient(
            jnp.broadcast_to(1.0 / (mass - alpha * eq.preconditioner_diagonal()), rhs.shape)
        )
        u = jax.lax.stop_gradient(u)
        if eq.operator_is_symmetric():
            operator = lx.FunctionLinearOperator(
                matvec, structure, tags=(lx.symmetric_tag, lx.positive_semidefinite_tag)
            )
            solver = lx.CG(rtol=rtol, atol=atol, max_steps=self.max_steps)
            preconditioner = lx.TaggedLinearOperator(
                lx.DiagonalLinearOperator(inverse_diagonal), (lx.symmetric_tag, lx.positive_semidefinite_tag)
            )
            options = {"preconditioner": preconditioner, "y0": u}
        else:
            operator = lx.FunctionLinearOperator(matvec, structure)
            solver = lx.BiCGStab(rtol=rtol, atol=atol, max_steps=self.max_steps)
            options = {"y0": u}
        return lx.linear_solve(operator, rhs, solver, options=options, throw=True).value

    def _split_krylov(self, u, rhs, mass, bc, rtol):
        """CG on one rank's block of a domain split across ranks: inner products and
        norms summed over the ranks (``nnpde.numerics._krylov``), ghost cells by halo exchange
        in ``apply_operator``; the same stopping test and implicit gradients as lineax."""
        eq, alpha = self.equation, self.theta * self.dt
        if not eq.operator_is_symmetric():
            raise ValueError(
                f"{type(eq).__name__}'s operator is not symmetric here, and a domain split across ranks has "
                "conjugate gradients only (no distributed BiCGStab). Fix: a symmetric discretisation (order 2 "
                "conduction with a scalar or face-averaged conductivity), or an explicit stepper."
            )

        def matvec(x):
            return mass * x - alpha * eq.apply_operator(x)

        inverse_diagonal = jax.lax.stop_gradient(
            jnp.broadcast_to(1.0 / (mass - alpha * eq.preconditioner_diagonal()), rhs.shape)
        )
        return _krylov.conjugate_gradient(
            matvec,
            rhs,
            reduce=bc.allreduce,
            preconditioner=lambda r: inverse_diagonal * r,
            x0=u,
            rtol=rtol,
            atol=self.atol or 0.0,
            max_steps=self.max_steps,
            size=bc.global_size(eq.grid.shape) * (rhs.size // max(1, int(np.prod(eq.grid.shape)))),
            what=f"{type(self).__name__}'s linear solve (conjugate gradients over the split domain)",
        )
