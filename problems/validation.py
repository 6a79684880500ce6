"""The validation suite behind ``nnpde validate``: each case against a published or
analytic reference, with a stated tolerance.

Each case is ``case(full: bool) -> dict`` with ``quantity``, ``measured``, ``expected``
(the reference value or bound), ``passed`` and ``reference`` (where the reference comes
from). ``full=False`` runs resolutions the CPU affords in a minute or two (the default
test suite's settings); ``full=True`` runs the resolutions the published comparison
asks for (minutes to an hour on 2 cores). ``CASES`` lists them in order.
"""

from __future__ import annotations

import math

import numpy as np

from problems import burgers, heated_cavity, lid_driven_cavity, taylor_green


def _slope(resolutions, errors) -> float:
    return float(-np.polyfit(np.log(resolutions), np.log(errors), 1)[0])


def taylor_green_order(full: bool) -> dict:
    """Spatial convergence order of the 2-D Taylor-Green vortex (exact solution), and
    the kinetic-energy decay rate against the analytic ``exp(-4 nu t)``."""
    resolutions = [16, 32, 64, 128] if full else [8, 16, 32]
    errors, decay = [], None
    for n in resolutions:
        ds = taylor_green.solve(n, viscosity=0.1, t_end=0.5, n_saves=2)
        errors.append(float(ds.max_error[-1]))
        e = ds.kinetic_energy.values
        decay = float(np.log(e[0] / e[-1]) / ds.time.values[-1])
    order = _slope(resolutions, errors)
    return {
        "quantity": "fitted spatial order (max error at t = 0.5); energy decay rate on the finest grid",
        "measured": {"order": order, "decay_rate": decay, "errors": errors, "resolutions": resolutions},
        "expected": {"order": ">= 1.9", "decay_rate": 4 * 0.1},
        "passed": order >= 1.9 and abs(decay - 0.4) / 0.4 < 1e-2,
        "reference": "Taylor & Green (1937): u = (sin x cos y, -cos x sin y) exp(-2 nu t)",
    }


def burgers_cole_hopf(full: bool) -> dict:
    """Viscous Burgers against the Cole-Hopf solution: error falls at the scheme's order."""
    resolutions = [64, 128, 256, 512] if full else [64, 128, 256]
    errors = [float(burgers.solve(resolution=n, scheme="central", t_end=1.0).error_l1[-1]) for n in resolutions]
    order = _slope(resolutions, errors)
    return {
        "quantity": "fitted order of the mean absolute error at t = 1 (central fluxes, SSP-RK3)",
        "measured": {"order": order, "errors": errors, "resolutions": resolutions},
        "expected": {"order": ">= 1.9"},
        "passed": order >= 1.9,
        "reference": "Cole (1951), Hopf (1950): the exact solution through the heat equation",
    }


def lid_driven_cavity_ghia(full: bool) -> dict:
    """Centreline velocities of the lid-driven cavity against Ghia, Ghia & Shin (1982)."""
    cases = [(100.0, 128), (1000.0, 128)] if full else [(100.0, 64)]
    measured = {}
    for re, n in cases:
        ds = lid_driven_cavity.solve(re, n, t_end=120.0 if full else 60.0, tol=1e-5)
        measured[f"Re {re:g}, {n}^2"] = lid_driven_cavity.compare_to_ghia(ds)["max"]
    return {
        "quantity": "max |centreline velocity - Ghia| (lid speed 1)",
        "measured": measured,
        "expected": "< 0.02",
        "passed": all(v < 0.02 for v in measured.values()),
        "reference": "Ghia, Ghia & Shin, J. Comput. Phys. 48 (1982) 387, Tables I and II",
    }


def heated_cavity_nusselt(full: bool) -> dict:
    """Mean hot-wall Nusselt number of the differentially heated cavity against de
    Vahl Davis (1983): within 1% for Ra 1e3-1e5, 2% at Ra 1e6."""
    cases = [(1e3, 32), (1e4, 48)]
    if full:
        # The grids of scripts/validate_heated_cavity.py; the finest starts from the
        # 64^2 steady field (continuation), as measured in docs/validation.md.
        cases = [(1e3, 32), (1e4, 48), (1e5, 80), (1e6, 128)]
    measured, passed = {}, True
    for ra, n in cases:
        start = heated_cavity.solve(rayleigh=ra, resolution=64) if ra >= 1e5 else None
        ds = heated_cavity.solve(rayleigh=ra, resolution=n, initial=start)
        deviation = float(ds.attrs["nusselt_deviation"])
        measured[f"Ra {ra:g}, {n}^2"] = {"nusselt": float(ds.attrs["nusselt"]), "deviation": deviation}
        passed &= abs(deviation) < (0.02 if ra >= 1e6 else 0.01)
    return {
        "quantity": "mean Nusselt number on the hot wall, relative deviation",
        "measured": measured,
        "expected": {f"Ra {k:g}": v for k, v in heated_cavity.DE_VAHL_DAVIS_NUSSELT.items()},
        "passed": bool(passed) and all(math.isfinite(m["nusselt"]) for m in measured.values()),
        "reference": "de Vahl Davis, Int. J. Numer. Meth. Fluids 3 (1983) 249, Table IV",
    }


CASES = {
    "taylor_green": taylor_green_order,
    "burgers_cole_hopf": burgers_cole_hopf,
    "lid_driven_cavity": lid_driven_cavity_ghia,
    "heated_cavity": heated_cavity_nusselt,
}
