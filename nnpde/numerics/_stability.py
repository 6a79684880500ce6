"""Explicit time-step limits: the stepper's stability region against the equation's spectrum.

Dissipative spectra. ``dt <= r / rho`` with ``r`` the method's real stability extent
(``_tableau``) and ``rho`` the equation's spectral radius (``spectral_radius``):
``max_stable_dt`` and ``stable_dt``, for any ``AbstractEquation``.

Projected (incompressible) equations, advection-diffusion.

Linearised (frozen coefficients, one Fourier mode) a
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

from .._checks import is_concrete
from ._equation import AbstractEquation, AbstractProjectedEquation
from ._tableau import FORWARD_EULER, HEUN, ButcherTableau, _tableau, advection_extents


def max_stable_dt(equation: AbstractEquation, method="rk4", *, t=0.0, u=None):
    """Largest stable ``dt`` of an explicit method for ``equation`` (no safety factor).

    ``extent / spectral_radius``, with ``extent`` the method's stability extent along
    the negative real axis (forward Euler and Heun 2, SSP-RK3 2.51, RK4 2.785). For a
    projected (incompressible) equation, the advective-viscous limit
    ``max_stable_dt_advective`` (``u``: the state, or a bound on the fastest expected one).
    """
    if isinstance(equation, AbstractProjectedEquation):
        return max_stable_dt_advective(equation, method, t=t, u=u)
    limit = _tableau(method).stability_extent / equation.spectral_radius(t, u)
    return float(limit) if is_concrete(limit) else limit


def stable_dt(equation: AbstractEquation, method="rk4", *, safety: float = 0.9, t=0.0, u=None) -> float:
    """A stable explicit time step: ``safety * max_stable_dt`` as a Python float."""
    if not 0 < safety <= 1:
        raise ValueError(f"safety must lie in (0, 1], got {safety}.")
    return float(safety * max_stable_dt(equation, method, t=t, u=u))


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
