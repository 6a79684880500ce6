"""Steppers: HOW an equation advances, one unbatched state at a time.

An ``AbstractStepper`` maps the state at ``t`` to the state at ``t + dt``; it owns its
method and its stability limit, the equation (``_equation``) says what is integrated.
Batching is ``jax.vmap`` over a stepper; a sequence of steps is ``nnpde.rollout``.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import numpy as np

from ._equation import AbstractEquation


class AbstractStepper(eqx.Module):
    """Maps one unbatched state at time ``t`` to the state at ``t + dt``."""

    equation: eqx.AbstractVar[AbstractEquation]
    dt: eqx.AbstractVar[float]

    @abc.abstractmethod
    def __call__(self, u, t=0.0):
        """Advance ``u`` from ``t`` to ``t + dt``."""


def _check_dt(dt, name: str = "dt") -> float:
    if isinstance(dt, (bool, str)) or not isinstance(dt, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a Python or NumPy real number, got {dt!r}. Fix: e.g. {name}=1e-3.")
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"{name}={dt!r} must be a positive finite number. Fix: e.g. nnpde.stable_dt(equation).")
    return float(dt)


def _crop(x, r: int, ndim: int):
    """Remove ``r`` cells from both ends of the last ``ndim`` axes."""
    if r == 0:
        return x
    return x[(Ellipsis, *(slice(r, -r) for _ in range(ndim)))]
