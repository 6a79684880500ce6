"""Equations: WHAT is integrated, a right-hand side ``f(t, u, args)``.

An equation knows its grid, its state shape and how stiff it is; a stepper (HOW)
advances it. ``AbstractLinearEquation`` adds the affine split that implicit steppers
need: ``M du/dt = D u + b(t)`` with ``M`` a positive (diagonal) mass and ``D``
symmetric negative semi-definite. ``AbstractProjectedEquation`` constrains its states
by a projection (incompressible flow) and bounds the imaginary part of its spectrum
too; ``AbstractProjectedIMEXEquation`` splits it into a stiff linear part and the rest.
The time-step limits that these bounds give belong to the steppers (``_stability``).
"""

from __future__ import annotations

import abc

import equinox as eqx

from .._checks import check_field_shape, check_finite
from ._grid import Grid


class AbstractEquation(eqx.Module):
    """A method-of-lines right-hand side ``du/dt = f(t, u, args)`` on a grid.

    Usable directly as a diffrax vector field: ``diffrax.ODETerm(equation)``.
    """

    grid: eqx.AbstractVar[Grid]

    @abc.abstractmethod
    def __call__(self, t, u, args=None):
        """The right-hand side at time ``t`` for one unbatched state ``u``."""

    @property
    @abc.abstractmethod
    def state_shape(self) -> tuple[int, ...]:
        """Shape of one state: ``(channels, *grid.shape)``."""

    @abc.abstractmethod
    def spectral_radius(self, t, u):
        """An upper bound on the magnitude of the real (dissipative) eigenvalues of
        the Jacobian ``df/du``: sets the explicit time-step limit."""

    def halo_width(self) -> int:
        """Cells of periodic halo one right-hand-side evaluation consumes per side, or 0
        if this equation does not support deep-halo stepping (``rhs_padded``)."""
        return 0

    def rhs_padded(self, t, u_padded):
        """The right-hand side on a state extended by ``r`` periodic halo cells per side
        (every axis), returned on the state extended by ``r - halo_width()``.

        Lets a rollout exchange ghost cells once every several steps (``rollout(...,
        halo=K)``): fewer memory passes on one device, fewer messages across ranks.
        """
        raise TypeError(
            f"{type(self).__name__} does not support deep-halo stepping (halo_width() is 0). "
            "Fix: roll out without halo=."
        )

    def check_state(self, u, name: str = "state"):
        """Return ``u`` after checking its shape (always) and finiteness."""
        check_field_shape(u, self.state_shape, name, what="state")
        return check_finite(
            u,
            name,
            "start from finite values; a NaN here usually comes from an unstable earlier run or bad initial data.",
        )


class AbstractLinearEquation(AbstractEquation):
    """``M du/dt = D u + b(t)``: ``D`` linear, symmetric negative semi-definite
    (homogeneous boundary conditions), ``b`` the affine part (boundary data and
    sources), ``M`` a positive scalar or cell field."""

    @abc.abstractmethod
    def mass(self):
        """``M``: a positive scalar or a field broadcastable to the state."""

    @abc.abstractmethod
    def apply_operator(self, u):
        """``D u`` with homogeneous boundary conditions (the linear part)."""

    @abc.abstractmethod
    def forcing(self, t):
        """``b(t)``: the affine part (boundary data, sources), shaped like the state."""

    @abc.abstractmethod
    def preconditioner_diagonal(self):
        """The diagonal of ``D``, or a close approximation (a state-shaped array or a
        scalar), for Jacobi preconditioning of implicit solves."""

    def operator_is_symmetric(self) -> bool:
        """Whether ``D`` is symmetric (then implicit solves use conjugate gradients;
        otherwise BiCGStab)."""
        return True

    def fast_solver(self):
        """A function ``solve(rhs, alpha)`` giving the exact solution of
        ``(M - alpha D) x = rhs`` by a fast transform (``nnpde.solve_shifted``), or
        ``None`` where no transform diagonalises ``D`` (then Krylov solves are used)."""
        return None

    def __call__(self, t, u, args=None):
        return (self.apply_operator(u) + self.forcing(t)) / self.mass()


class AbstractProjectedEquation(AbstractEquation):
    """An equation whose states are constrained (divergence-free) by a projection.

    ``__call__`` is the unconstrained right-hand side (advection, diffusion, forcing);
    ``project`` the linear, idempotent projection onto admissible states;
    ``spectral_radius`` bounds the real (dissipative) part of the Jacobian's spectrum
    and ``advective_radius`` its imaginary part.
    """

    @abc.abstractmethod
    def project(self, u, t=0.0):
        """The nearest admissible state: ``u - grad p`` with ``div(u - grad p) = 0``.

        ``t`` is the time of ``u``: boundary data that change in time (an inflow) enter
        the constraint; equations without such data ignore it.
        """

    @abc.abstractmethod
    def advective_radius(self, t, u):
        """An upper bound on ``|Im lambda|`` of the Jacobian at ``u``: ``sum_a max|u_a| / h_a``."""

    def forward_euler_rate(self, t, u):
        """``rho`` such that a forward-Euler step is total-variation diminishing for
        ``dt <= 1 / rho`` (with frozen advecting velocity), or None when forward Euler is
        unstable at every ``dt`` (central advection: the default). Upwind-limited
        (van Leer) advection defines it; it admits forward Euler and Heun (module docstring)."""
        return None


class AbstractProjectedIMEXEquation(AbstractProjectedEquation):
    """A projected equation split as ``f(t, u) = N(t, u) + L u`` for ``nnpde.ProjectedIMEX``.

    ``explicit_rate`` is ``N`` (non-stiff: advection, forcing), ``implicit_rate`` the
    linear ``L`` (stiff: viscosity) and ``solve_implicit(rhs, alpha)`` solves
    ``(I - alpha L) x = rhs`` exactly. ``__call__`` stays the whole ``N + L u`` (for
    ``nnpde.ProjectedRK``). ``check_implicit`` raises ``ValueError`` where the
    implicit solve is unavailable (e.g. walls without a fast transform).
    """

    @abc.abstractmethod
    def explicit_rate(self, t, u, args=None):
        """``N(t, u)``: the part of the right-hand side taken explicitly."""

    @abc.abstractmethod
    def implicit_rate(self, t, u):
        """``L u``: the linear part taken implicitly."""

    @abc.abstractmethod
    def solve_implicit(self, rhs, alpha, t=0.0):
        """``x`` with ``(I - alpha L) x = rhs``, ``alpha >= 0``."""

    @abc.abstractmethod
    def explicit_spectral_radius(self, t, u):
        """An upper bound on ``|Re lambda|`` of ``dN/du`` (0 for central advection)."""

    def check_implicit(self) -> None:
        """Raise ``ValueError`` (what, why, the fix) if ``solve_implicit`` is unavailable."""
