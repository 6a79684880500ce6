r"""Implicit-explicit (IMEX) projection Runge-Kutta for incompressible flow.

The right-hand side splits into a non-stiff part ``N`` (advection, forcing), taken
explicitly, and a stiff linear part ``L`` (viscosity, ``nu laplacian_h`` per velocity
component), taken implicitly: ``du/dt = P (N(t, u) + L u)``. With an explicit tableau
``(a, b, c)`` and a diagonally implicit one ``(at, bt)`` on the same stages, stage
``i`` solves

    (I - dt at_ii L) U_i = u + dt sum_{j<i} (a_ij N_j + at_ij L U_j),   then U_i <- P U_i,

with ``N_j = N(t + c_j dt, U_j)``, and the step is
``u_next = P(u + dt sum_i (b_i N_i + bt_i L U_i))``. The solves are exact fast
transform solves (``nnpde.solve_shifted``: the periodic Laplacian is diagonal in the
DFT), so the viscosity sets no time-step limit; on a periodic MAC grid ``L`` commutes
with the projection, so solving before projecting loses nothing.

Methods (``IMEX_METHODS``):

* ``"ars232"`` (default): Ascher, Ruuth & Spiteri's (2,3,2) pair, Appl. Numer. Math.
  25 (1997) 151, sec. 2.5: ``gamma = 1 - 1/sqrt 2``, ``delta = -2 sqrt 2 / 3``; second
  order, the implicit part L-stable and stiffly accurate. Its explicit part has the
  stability polynomial of every 3-stage third-order method, ``1 + z + z^2/2 + z^3/6``
  (``b . A c = gamma^2 (1 - delta) = 1/6``), so it holds part of the imaginary axis
  (``I = sqrt 3``) and central advection is stable under a CFL limit.
* ``"backward_euler"``: SSP-RK3 (Shu & Osher 1988) for ``N``, then backward Euler for
  ``L`` (Lie splitting written as a 4-stage pair); first order, L-stable.

Stability. The explicit part alone is limited: ``dt <= 1 / (A / R + B / I)`` with
``A = equation.explicit_spectral_radius`` (0 for central advection, ``2 B`` for van
Leer), ``B = equation.advective_radius`` and ``(R, I)`` the explicit tableau's extents
(``nnpde.advection_extents``); the viscous radius no longer enters. This is the usual
IMEX criterion (the stiff part is L-stable), a linear-stability heuristic for the
coupled pair rather than a proof; tests/test_imex.py shows it at 10x the explicit
viscous limit in 2-D and 3-D.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import numpy as np

from .._checks import is_concrete
from .._custom_types import State
from ._equation import AbstractProjectedEquation, AbstractProjectedIMEXEquation
from ._stepper import AbstractStepper, _check_dt
from ._tableau import SSPRK3, ButcherTableau, advection_extents


@dataclasses.dataclass(frozen=True)
class IMEXTableau:
    """An IMEX Runge-Kutta pair on shared stages: explicit ``(a, b, c)`` strictly lower
    triangular, implicit ``(a_implicit, b_implicit)`` lower triangular; classical ``order``."""

    name: str
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    a_implicit: tuple[tuple[float, ...], ...]
    b_implicit: tuple[float, ...]
    order: int

    @property
    def explicit(self) -> ButcherTableau:
        """The explicit part as a Butcher tableau (its stability region limits ``dt``)."""
        return ButcherTableau(f"{self.name} (explicit part)", self.a, self.b, self.c, self.order)


_G = 1.0 - 1.0 / math.sqrt(2.0)
_D = -2.0 * math.sqrt(2.0) / 3.0
ARS232 = IMEXTableau(
    "ars232",
    a=((0.0, 0.0, 0.0), (_G, 0.0, 0.0), (_D, 1.0 - _D, 0.0)),
    b=(0.0, 1.0 - _G, _G),
    c=(0.0, _G, 1.0),
    a_implicit=((0.0, 0.0, 0.0), (0.0, _G, 0.0), (0.0, 1.0 - _G, _G)),
    b_implicit=(0.0, 1.0 - _G, _G),
    order=2,
)
BACKWARD_EULER = IMEXTableau(
    "backward_euler",
    a=(*((*row, 0.0) for row in SSPRK3.a), (*SSPRK3.b, 0.0)),
    b=(*SSPRK3.b, 0.0),
    c=(*SSPRK3.c, 1.0),
    a_implicit=((0.0,) * 4,) * 3 + ((0.0, 0.0, 0.0, 1.0),),
    b_implicit=(0.0, 0.0, 0.0, 1.0),
    order=1,
)
IMEX_METHODS = {t.name: t for t in (ARS232, BACKWARD_EULER)}


def _imex_tableau(method) -> IMEXTableau:
    if isinstance(method, IMEXTableau):
        a, at = np.asarray(method.a, dtype=float), np.asarray(method.a_implicit, dtype=float)
        s = len(method.b)
        shapes_ok = a.shape == at.shape == (s, s) and len(method.c) == len(method.b_implicit) == s
        if not shapes_ok or np.any(np.triu(a) != 0.0) or np.any(np.triu(at, 1) != 0.0):
            raise ValueError(
                f"IMEX tableau {method.name!r}: a must be strictly lower triangular and a_implicit lower "
                f"triangular, both s x s with b, b_implicit, c of length s; got a {a.shape}, a_implicit "
                f"{at.shape}, b {len(method.b)}, b_implicit {len(method.b_implicit)}, c {len(method.c)}. "
                "Fix: pad the explicit and implicit parts to the same stages (a zero row or column)."
            )
        if abs(sum(method.b) - 1.0) > 1e-12 or abs(sum(method.b_implicit) - 1.0) > 1e-12:
            raise ValueError(
                f"IMEX tableau {method.name!r}: the weights must sum to 1 (consistency), got "
                f"sum(b) = {sum(method.b)}, sum(b_implicit) = {sum(method.b_implicit)}. Fix: check the weights."
            )
        return method
    if method not in IMEX_METHODS:
        raise ValueError(
            f"Unknown IMEX method {method!r}. Fix: use one of {sorted(IMEX_METHODS)} or pass an nnpde.IMEXTableau."
        )
    return IMEX_METHODS[method]


class ProjectedIMEX(AbstractStepper):
    """An IMEX Runge-Kutta step of ``du/dt = P (N(t, u) + L u)``, projecting every stage.

    ``N`` explicit, ``L`` (viscosity) implicit by exact fast-transform solves; see the
    module docstring for the scheme, the methods (``"ars232"``: order 2, the default;
    ``"backward_euler"``: order 1) and the stability limit, which involves only the
    explicit part: a ``dt`` far beyond the explicit viscous limit is fine, one beyond
    the advective (CFL) limit is refused at every step (``check_stability``): at once
    with a concrete state, at run time (``eqx.error_if``) when traced. Start from a
    divergence-free state (``equation.project(u0)``).
    """

    equation: AbstractProjectedIMEXEquation
    dt: float = eqx.field(static=True)
    tableau: IMEXTableau = eqx.field(static=True)
    check_stability: bool = eqx.field(static=True)
    args: object = None

    def __init__(
        self,
        equation: AbstractProjectedEquation,  # wider than needed: the check below says what and the fix
        *,
        dt: float | int,
        method="ars232",
        args=None,
        check_stability: bool = True,
    ):
        if not isinstance(equation, AbstractProjectedIMEXEquation):
            raise TypeError(
                f"ProjectedIMEX needs an equation split into explicit and implicit parts "
                f"(nnpde.AbstractProjectedIMEXEquation), got {type(equation).__name__}. "
                "Fix: use nnpde.ProjectedRK, or solvers.NavierStokes2D / NavierStokes3D."
            )
        equation.check_implicit()
        self.equation = equation
        self.dt = _check_dt(dt)
        self.tableau = _imex_tableau(method)
        self.args = args
        self.check_stability = check_stability
        if check_stability:
            advection_extents(self.tableau.explicit)  # computes (and caches) the extents now

    def max_stable_dt(self, u, t=0.0):
        """The explicit part's limit ``1 / (A / R + B / I)`` at ``u`` (``inf`` for still fluid)."""
        rate = self._rate(u, t)
        if is_concrete(rate):
            return math.inf if float(rate) == 0.0 else float(1.0 / rate)
        return 1.0 / rate

    def _rate(self, u, t):
        r, i = advection_extents(self.tableau.explicit)
        if i == 0.0:
            raise ValueError(
                f"The explicit part of {self.tableau.name} holds no part of the imaginary axis: central "
                "advection is unstable with it at any dt. Fix: use method='ars232'."
            )
        eq = self.equation
        return eq.explicit_spectral_radius(t, u) / r + eq.advective_radius(t, u) / i

    def _check_stable(self, u, t):
        if not self.check_stability:
            return u
        rate = self._rate(u, t)
        name = type(self.equation).__name__
        if is_concrete(rate):
            if self.dt * float(rate) > 1.0:
                limit = 1.0 / float(rate)
                r, i = advection_extents(self.tableau.explicit)
                raise ValueError(
                    f"dt={self.dt:.6g} exceeds the advective (CFL) limit {limit:.6g} = 1 / (A/{r:.3f} + B/{i:.3f}) "
                    f"of the explicit part of IMEX {self.tableau.name} for this {name}, with "
                    f"A = {float(self.equation.explicit_spectral_radius(t, u)):.6g} (explicit dissipation) and "
                    f"B = sum max|u_a|/h_a = {float(self.equation.advective_radius(t, u)):.6g} (advective); the "
                    f"viscosity is implicit and sets no limit. Fix: use dt <= {limit:.6g} "
                    "(ProjectedIMEX.max_stable_dt(u)), or refine dt as the flow speeds up."
                )
            return u
        return eqx.error_if(
            u,
            self.dt * rate > 1.0,
            f"dt={self.dt:.6g} exceeds the advective (CFL) limit of the explicit part of IMEX "
            f"{self.tableau.name} for this {name}. Fix: reduce dt (ProjectedIMEX.max_stable_dt(u) for the "
            "fastest expected state u).",
        )

    def __call__(self, u: State, t=0.0) -> State:
        u = self._check_stable(u, t)
        eq, dt, tab = self.equation, self.dt, self.tableau
        s = len(tab.b)
        # A stage's rates are evaluated only if a later stage or the final sum uses them.
        needs_n = [tab.b[j] != 0.0 or any(tab.a[i][j] != 0.0 for i in range(j + 1, s)) for j in range(s)]
        needs_l = [
            tab.b_implicit[j] != 0.0 or any(tab.a_implicit[i][j] != 0.0 for i in range(j + 1, s)) for j in range(s)
        ]
        # Stiffly accurate pairs (b, bt the last rows of a, at) end on the last stage.
        last_stage = tab.b == tab.a[-1] and tab.b_implicit == tab.a_implicit[-1]
        if last_stage:
            needs_n[-1] = needs_l[-1] = False
        n_rates, l_rates = [None] * s, [None] * s
        for i in range(s):
            terms = [dt * tab.a[i][j] * n_rates[j] for j in range(i) if tab.a[i][j] != 0.0]
            terms += [dt * tab.a_implicit[i][j] * l_rates[j] for j in range(i) if tab.a_implicit[i][j] != 0.0]
            stage = u + sum(terms) if terms else u
            if tab.a_implicit[i][i] != 0.0:
                stage = eq.solve_implicit(stage, dt * tab.a_implicit[i][i], t + tab.c[i] * dt)
            if i > 0 or tab.a_implicit[0][0] != 0.0:
                stage = eq.project(stage)
            if last_stage and i == s - 1:
                return stage
            if needs_n[i]:
                n_rates[i] = eq.explicit_rate(t + tab.c[i] * dt, stage, self.args)
            if needs_l[i]:
                l_rates[i] = eq.implicit_rate(t + tab.c[i] * dt, stage)
        terms = [dt * tab.b[j] * n_rates[j] for j in range(s) if tab.b[j] != 0.0]
        terms += [dt * tab.b_implicit[j] * l_rates[j] for j in range(s) if tab.b_implicit[j] != 0.0]
        return eq.project(u + sum(terms))
