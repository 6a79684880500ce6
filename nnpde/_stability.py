"""Explicit time-step limits from a method's stability region.

For ``du/dt = lambda u`` a Runge-Kutta step multiplies ``u`` by the stability
polynomial ``R(z)``, ``z = lambda dt``. For dissipative (real negative) spectra the
step is stable while ``|z| <= r`` with ``r`` the extent of the stability region along
the negative real axis: 2 for forward Euler and Heun, 2.51 for SSP-RK3, 2.785 for
classical RK4. The limit is ``dt <= r / rho`` with ``rho`` the equation's spectral
radius. We compute ``r`` from the Butcher tableau, so any explicit tableau (ours or
diffrax's) is covered by the same code.
"""

from __future__ import annotations

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
