"""Explicit Runge-Kutta tableaux and the geometry of their stability regions.

For ``du/dt = lambda u`` a Runge-Kutta step multiplies ``u`` by the stability
polynomial ``R(z)``, ``z = lambda dt``. For dissipative (real negative) spectra the
step is stable while ``|z| <= r`` with ``r`` the extent of the stability region along
the negative real axis: 2 for forward Euler and Heun, 2.51 for SSP-RK3, 2.785 for
classical RK4. For advection the extent ``I`` along the imaginary axis matters too
(RK4: ``2 sqrt 2``, SSP-RK3: ``sqrt 3``, forward Euler and Heun: 0). Both are computed
from the Butcher tableau, so any explicit tableau (ours or diffrax's) is covered by the
same code; the time-step limits built on them are in ``_stability``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np


def stability_polynomial(a, b) -> np.ndarray:
    """Coefficients (lowest first) of ``R(z) = 1 + z b^T (I - z A)^-1 1`` for explicit A."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    s = len(b)
    coeffs = [1.0]
    power = np.ones(s)
    for _ in range(s):
        coeffs.append(float(b @ power))
        power = a @ power
    return np.array(coeffs)


@functools.cache
def _extent(a_key, b_key) -> float:
    poly = stability_polynomial(np.array(a_key), np.array(b_key))
    x = np.linspace(0.0, 10.0, 200001)
    values = np.abs(np.polynomial.polynomial.polyval(-x, poly))
    unstable = np.nonzero(values > 1.0 + 1e-12)[0]
    return float(x[unstable[0] - 1]) if len(unstable) else float(x[-1])


def real_axis_extent(a, b) -> float:
    """Extent ``r`` of the stability region along the negative real axis."""
    a_key = tuple(tuple(float(v) for v in row) for row in np.asarray(a, dtype=float))
    return _extent(a_key, tuple(float(v) for v in np.asarray(b, dtype=float)))


@dataclasses.dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method: strictly lower-triangular ``a``, weights ``b``,
    nodes ``c``, classical ``order``."""

    name: str
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    order: int

    @property
    def stability_extent(self) -> float:
        """Extent of the stability region along the negative real axis."""
        return real_axis_extent(self.a, self.b)


FORWARD_EULER = ButcherTableau("forward_euler", ((0.0,),), (1.0,), (0.0,), 1)
HEUN = ButcherTableau("heun", ((0.0, 0.0), (1.0, 0.0)), (0.5, 0.5), (0.0, 1.0), 2)
# Shu & Osher, J. Comput. Phys. 77 (1988) 439: strong-stability-preserving RK3.
SSPRK3 = ButcherTableau(
    "ssprk3", ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.25, 0.25, 0.0)), (1 / 6, 1 / 6, 2 / 3), (0.0, 1.0, 0.5), 3
)
RK4 = ButcherTableau(
    "rk4",
    ((0.0, 0.0, 0.0, 0.0), (0.5, 0.0, 0.0, 0.0), (0.0, 0.5, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0)),
    (1 / 6, 1 / 3, 1 / 3, 1 / 6),
    (0.0, 0.5, 0.5, 1.0),
    4,
)
TABLEAUX = {t.name: t for t in (FORWARD_EULER, HEUN, SSPRK3, RK4)}


def _tableau(method) -> ButcherTableau:
    if isinstance(method, ButcherTableau):
        return method
    if method not in TABLEAUX:
        raise ValueError(
            f"Unknown explicit method {method!r}. Fix: use one of {sorted(TABLEAUX)} or pass an nnpde.ButcherTableau."
        )
    return TABLEAUX[method]


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
