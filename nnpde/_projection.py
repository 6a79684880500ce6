"""Projection Runge-Kutta for incompressible flow, and the advective time-step limit.

An incompressible equation ``du/dt = P f(t, u)`` (``P`` the projection onto
divergence-free fields) is stepped with an explicit Runge-Kutta tableau whose every
stage value, and the result, is projected: ``u_i = P(u + dt sum_j a_ij k_j)``,
``k_i = f(t + c_i dt, u_i)``, ``u_next = P(u + dt sum_i b_i k_i)``. For a
divergence-free ``u`` and a linear ``P`` this is the tableau applied to ``P f``, so the
method keeps its classical order for the velocity (the pressure never enters the
state). The projection after each stage is jax-cfd's choice (Dresdner et al. 2022;
Kochkov et al., PNAS 118 (2021) e2101784118); Sanderse & Koren, J. Comput. Phys. 231
(2012) 3041 analyse its order.

Stability of advection-diffusion. Linearised (frozen coefficients, one Fourier mode) a
second-order central advection-diffusion operator has eigenvalues ``-a + i b`` with
``0 <= a <= A`` (``A`` the diffusive spectral radius, ``equation.spectral_radius``)
and ``|b| <= B`` (``B = sum_a max|u_a| / h_a``, ``equation.advective_radius``). Let
``R`` and ``I`` be the extents of the method's stability region along the negative
real and the imaginary axes. When the region holds the "diamond" with vertices
``-R``, ``+iI``, ``-iI`` (checked numerically from the tableau; it holds for RK4 with
``R = 2.785, I = 2 sqrt 2`` and SSP-RK3 with ``R = 2.513, I = sqrt 3``), every scaled
eigenvalue lies in it when

    dt <= 1 / (A / R + B / I),

the viscous limit ``R / A`` for still fluid and the CFL limit ``dt <= I h / max|u|``
(Courant number ``I``) for inviscid flow along one axis. Forward Euler and Heun have
``I = 0`` (``|R(iy)|^2 = 1 + y^4/4`` for Heun): central advection is unconditionally
unstable with them, and they are refused. Reference: Hairer & Wanner, *Solving ODEs
II*, sec. IV.2; Hundsdorfer & Verwer, *Numerical Solution of Time-Dependent
Advection-Diffusion-Reaction Equations*, Springer 2003, sec. I.6.

Upwind-limited advection (van Leer) is the exception: with a limiter ``0 <= phi(r) <=
2``, ``phi(r) / r <= 2`` a forward-Euler step writes each new value as a combination of
its upwind and downwind differences with coefficients at most ``2 c`` (``c`` the Courant
number) plus ``d`` per side from the diffusion (``d = nu dt / h^2``); it is total-variation
diminishing when they sum to at most 1 (Harten, J. Comput. Phys. 49 (1983) 357):
``dt <= 1 / rho`` with ``rho = 2 B + A / 2`` (``equation.forward_euler_rate``; a linear
drag adds its rate). Heun's method is a convex combination of forward-Euler steps
(strong-stability preserving with coefficient 1: Gottlieb, Shu & Tadmor, SIAM Rev. 43
(2001) 89), so it inherits the same limit. The bound is exact for a scalar advected by
a frozen velocity; for the momentum equation it is a frozen-coefficient estimate, like
every limit here.
"""

from __future__ import annotations

import abc
import functools

import equinox as eqx
import numpy as np

from ._checks import is_concrete
from ._custom_types import State
from ._equation import AbstractEquation
from ._explicit import FORWARD_EULER, HEUN, AbstractStepper, ButcherTableau, _check_dt, _tableau
from ._stability import real_axis_extent, stability_polynomial


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

    def max_stable_dt(self, u, method="rk4", *, t=0.0):
        """The explicit limit ``1 / (A / R + B / I)`` at the state ``u`` (no safety factor)."""
        return max_stable_dt_advective(self, method, t=t, u=u)

    def stable_dt(self, u, method="rk4", *, safety: float = 0.9) -> float:
        """``safety * max_stable_dt(u)`` as a Python float (``u``: the fastest expected state)."""
        if not 0 < safety <= 1:
            raise ValueError(f"safety must lie in (0, 1], got {safety}.")
        return float(safety * self.max_stable_dt(u, method))


def _key(tab: ButcherTableau):
    return tuple(tuple(float(v) for v in row) for row in tab.a), tuple(float(v) for v in tab.b)


@functools.cache
def _imaginary_extent(a_key, b_key) -> float:
    poly = stability_polynomial(np.array(a_key), np.array(b_key))
    # |R(iy)|^2 - 1 is a polynomial in y^2; if its lowest nonzero coefficient is
    # positive the method amplifies every small imaginary eigenvalue: extent 0.
    square = np.polynomial.polynomial.polymul(
        poly * (1j) ** np.arange(len(poly)), np.conj(poly * (1j) ** np.arange(len(poly)))
    )
    excess = np.real(square)
    excess[0] -= 1.0
    nonzero = np.nonzero(np.abs(excess) > 1e-12)[0]
    if len(nonzero) == 0 or excess[nonzero[0]] > 0:
        return 0.0
    y = np.linspace(0.0, 10.0, 200001)
    values = np.abs(np.polynomial.polynomial.polyval(1j * y, poly))
    unstable = np.nonzero(values > 1.0 + 1e-12)[0]
    return float(y[unstable[0] - 1]) if len(unstable) else float(y[-1])


@functools.cache
def _diamond_scale(a_key, b_key) -> float:
    """Largest ``s <= 1`` with the diamond ``s * conv{-R, iI, -iI}`` in the stability region."""
    poly = stability_polynomial(np.array(a_key), np.array(b_key))
    r, i = real_axis_extent(np.array(a_key), np.array(b_key)), _imaginary_extent(a_key, b_key)
    t = np.linspace(0.0, 1.0, 20001)
    edge = -r * (1 - t) + 1j * i * t  # by symmetry of R (real coefficients), one edge suffices

    def inside(s):
        return bool(np.all(np.abs(np.polynomial.polynomial.polyval(s * edge, poly)) <= 1.0 + 1e-12))

    if inside(1.0):
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if inside(mid) else (lo, mid)
    return lo


def advection_extents(method="rk4") -> tuple[float, float]:
    """``(R, I)``: the usable real and imaginary stability extents of ``method``.

    Both are scaled down together if the method's region does not hold the whole
    diamond ``conv{-R, iI, -iI}`` (never for the built-in tableaux).
    """
    tab = _tableau(method)
    key = _key(tab)
    s = _diamond_scale(*key)
    return s * real_axis_extent(tab.a, tab.b), s * _imaginary_extent(*key)


# Strong-stability-preserving coefficients (Gottlieb, Shu & Tadmor, SIAM Rev. 43 (2001)
# 89): a convex combination of forward-Euler steps, TVD for dt <= C / rho.
SSP_COEFFICIENTS = {FORWARD_EULER: 1.0, HEUN: 1.0}


def _forward_euler_rate(equation, tab: ButcherTableau, t, u):
    """``rho / C`` of an SSP method on an upwind-limited equation, or None."""
    coefficient = SSP_COEFFICIENTS.get(tab)
    rate = equation.forward_euler_rate(t, u) if coefficient is not None else None
    return None if rate is None else rate / coefficient


def max_stable_dt_advective(equation: AbstractProjectedEquation, method="rk4", *, t=0.0, u=None):
    """Largest stable explicit ``dt``: ``1 / (A / R + B / I)`` (module docstring).

    ``A = equation.spectral_radius(t, u)``, ``B = equation.advective_radius(t, u)``
    (zero when ``u`` is None: the viscous limit alone). No safety factor. Methods with
    no imaginary-axis stability (forward Euler, Heun) are admitted only for upwind-limited
    advection, with the TVD limit ``C / equation.forward_euler_rate(t, u)``; otherwise they
    raise.
    """
    tab = _tableau(method)
    r, i = advection_extents(tab)
    if i == 0.0:
        rate = _forward_euler_rate(equation, tab, t, u)
        if rate is None:
            raise ValueError(
                f"Explicit {tab.name} is unstable for central advection at any dt: its stability region "
                "holds no part of the imaginary axis. Fix: use method='rk4' or 'ssprk3', or an upwind-limited "
                "advection (advection='van_leer'), which makes forward Euler and Heun total-variation diminishing."
            )
    else:
        rate = equation.spectral_radius(t, u) / r
        if u is not None:
            rate = rate + equation.advective_radius(t, u) / i
    if is_concrete(rate) and float(rate) == 0.0:
        return float("inf")  # inviscid fluid at rest (or no state given): nothing limits dt
    limit = 1.0 / rate
    return float(limit) if is_concrete(limit) else limit


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
            f"Fix: use dt <= {float(limit):.6g} ({name}.stable_dt(u) gives a safe value for a state u), "
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
            admissible = (
                f" (at this dt the state must have sum_a max|u_a|/h_a <= {i * (1.0 / self.dt - float(viscous)):.6g})"
            )
        return eqx.error_if(
            u,
            self.dt > limit,
            f"dt={self.dt:.6g} exceeds the advective-viscous (CFL) stability limit of explicit "
            f"{self.tableau.name} for this {type(self.equation).__name__}{admissible}. Fix: reduce dt "
            f"({type(self.equation).__name__}.stable_dt(u) for the fastest expected state u).",
        )

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
