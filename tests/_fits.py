"""Fitting helpers shared by the numerical tests."""

import numpy as np


def fitted_slope(steps, errors) -> float:
    """Least-squares slope of log(error) against log(step)."""
    return float(np.polyfit(np.log(np.asarray(steps, float)), np.log(np.asarray(errors, float)), 1)[0])


def report(label, steps, errors) -> str:
    rows = ", ".join(f"{s:.4g}: {e:.3e}" for s, e in zip(steps, errors))
    return f"{label}: slope {fitted_slope(steps, errors):.3f} from [{rows}]"
