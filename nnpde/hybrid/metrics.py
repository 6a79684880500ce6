"""Evaluation metrics for predicted states and trajectories against a reference.

A state is channels first, ``(C, *spatial)``; a trajectory is ``(T, C, *spatial)``.
Every metric here is a pure function of arrays: jit-able, differentiable where the
formula is, with no I/O. ``relative_l2`` and ``correlation`` take ``ndim`` (the number
of spatial axes) because a 2-D state ``(C, nx, ny)`` and a 1-D trajectory
``(T, C, nx)`` have the same rank: they reduce over the channel and spatial axes (the
last ``ndim + 1``) and keep every leading axis. The trajectory metrics
(``rollout_error``, ``correlation_time``) read the first axis as
time and reduce over the rest. ``equivalent_resolution``, ``cost_at_resolution`` and
``speedup_at_equal_accuracy`` read a model's scores off a ladder of plain solvers at
increasing resolution, with a bootstrap interval over the held-out states;
``paired_ratio`` compares two models on the same states (ratio of means, paired bootstrap);
``seconds_per_time_unit`` measures the cost they divide by, and ``interleaved_costs``
times several steppers in interleaved rounds, whose round-by-round ratios
(``speedup_over_rounds``) show the timing's own spread (timings: the functions here
that are not pure).

Anomaly labels over time (1-D 0/1 series; NumPy, on the host): ``range_recall``,
``range_precision`` and ``range_f_score`` (Tatbul et al., NeurIPS 2018), ``nab_score``
(the Numenta Anomaly Benchmark) and ``label_ranges``.

References: D. Kochkov, J. A. Smith, A. Alieva, Q. Wang, M. P. Brenner, S. Hoyer,
"Machine learning-accelerated computational fluid dynamics", PNAS 118 (2021)
e2101784118 (vorticity correlation, high-correlation duration, energy spectra).
"""

from __future__ import annotations

import functools
import math
import operator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import is_concrete
from ..numerics._grid import Grid
from ._ladder import cost_at_resolution as cost_at_resolution
from ._ladder import equivalent_resolution as equivalent_resolution
from ._ladder import interleaved_costs as interleaved_costs
from ._ladder import paired_ratio as paired_ratio
from ._ladder import seconds_per_time_unit as seconds_per_time_unit
from ._ladder import speedup_at_equal_accuracy as speedup_at_equal_accuracy
from ._ladder import speedup_over_rounds as speedup_over_rounds
from ._range_metrics import label_ranges as label_ranges
from ._range_metrics import nab_score as nab_score
from ._range_metrics import range_f_score as range_f_score
from ._range_metrics import range_precision as range_precision
from ._range_metrics import range_recall as range_recall

__all__ = [
    "conservation_error",
    "correlation",
    "correlation_time",
    "cost_at_resolution",
    "energy_spectrum",
    "equivalent_resolution",
    "interleaved_costs",
    "label_ranges",
    "nab_score",
    "paired_ratio",
    "range_f_score",
    "range_precision",
    "range_recall",
    "relative_l2",
    "rollout_error",
    "seconds_per_time_unit",
    "spectrum_error",
    "speedup_at_equal_accuracy",
    "speedup_over_rounds",
]


def _check_ndim(ndim, what: str) -> int:
    try:
        ndim = operator.index(ndim)
    except TypeError:
        ndim = -1
    if not 1 <= ndim <= 3:
        raise ValueError(
            f"{what}: ndim (the number of spatial axes) must be 1, 2 or 3, got {ndim!r}. Fix: pass ndim=grid.ndim."
        )
    return ndim


def _pair(prediction, reference, what: str, min_rank: int, layout: str):
    p, r = jnp.asarray(prediction), jnp.asarray(reference)
    if p.shape != r.shape:
        raise ValueError(
            f"{what}: prediction and reference must have the same shape, got {p.shape} and {r.shape}. "
            "Fix: compare the same steps, channels and grid (downsample the finer one first)."
        )
    if p.ndim < min_rank:
        raise ValueError(f"{what}: expected arrays shaped {layout} (rank >= {min_rank}), got shape {p.shape}.")
    return p, r


def _check_nonzero(x, message: str):
    """Return ``x``, or raise ``message`` where any entry is zero (at run time when traced)."""
    if is_concrete(x):
        zero = np.asarray(x) == 0
        if zero.any():
            first = tuple(int(i) for i in np.argwhere(zero)[0]) if zero.ndim else ()
            raise ValueError(f"{message} (first at leading index {first}, {int(zero.sum())} in all).")
        return x
    return eqx.error_if(x, jnp.any(x == 0), message)


def relative_l2(prediction, reference, *, ndim: int):
    """Relative L2 error ``||p - r|| / ||r||`` per sample.

    The norms are Euclidean over the channel and spatial axes, the last ``ndim + 1``
    axes; leading axes are kept. A state ``(C, *spatial)`` gives a scalar, a trajectory
    ``(T, C, *spatial)`` gives ``(T,)``, a batch of trajectories ``(N, T, ...)`` gives
    ``(N, T)``. The cell volume cancels on a uniform grid. A zero reference norm makes
    the ratio undefined and raises (under ``jit``, when the compiled function runs).
    """
    ndim = _check_ndim(ndim, "relative_l2")
    p, r = _pair(prediction, reference, "relative_l2", ndim + 1, "(..., C, *spatial)")
    axes = tuple(range(p.ndim - ndim - 1, p.ndim))
    norm_err, norm_ref = _l2_norms(p, r, axes)
    norm_ref = _check_nonzero(
        norm_ref,
        "relative_l2: the reference has zero norm, so the relative error is undefined. "
        "Fix: compare absolute errors, or drop the all-zero samples",
    )
    return norm_err / norm_ref


@functools.partial(jax.jit, static_argnames="axes")
def _l2_norms(p, r, axes):
    return jnp.sqrt(jnp.sum((p - r) ** 2, axis=axes)), jnp.sqrt(jnp.sum(r**2, axis=axes))


def rollout_error(predicted_trajectory, reference_trajectory):
    """Per-step relative L2 error of a rollout: ``(T, C, *spatial) -> (T,)``.

    ``e[t] = ||p[t] - r[t]|| / ||r[t]||`` over channels and space (``relative_l2``
    with the first axis as time).
    """
    p, r = _pair(predicted_trajectory, reference_trajectory, "rollout_error", 3, "(T, C, *spatial)")
    return relative_l2(p, r, ndim=p.ndim - 2)


def correlation(prediction, reference, *, ndim: int):
    """Pearson correlation of the fields, per sample.

    ``rho = sum(p' r') / sqrt(sum(p'^2) sum(r'^2))`` with ``p' = p - mean(p)``, the mean
    and sums taken jointly over the channel and spatial axes (the last ``ndim + 1``);
    leading axes are kept, so a trajectory ``(T, C, *spatial)`` gives ``(T,)``. A field
    equal to its mean (zero variance) has no correlation and raises.
    """
    ndim = _check_ndim(ndim, "correlation")
    p, r = _pair(prediction, reference, "correlation", ndim + 1, "(..., C, *spatial)")
    covariance, norm = _covariance(p, r, tuple(range(p.ndim - ndim - 1, p.ndim)))
    norm = _check_nonzero(
        norm,
        "correlation: a field is constant (zero variance), so its correlation is undefined. "
        "Fix: correlate fields that vary, or drop those samples",
    )
    return covariance / norm


@functools.partial(jax.jit, static_argnames="axes")
def _covariance(p, r, axes):
    p = p - jnp.mean(p, axis=axes, keepdims=True)
    r = r - jnp.mean(r, axis=axes, keepdims=True)
    return jnp.sum(p * r, axis=axes), jnp.sqrt(jnp.sum(p**2, axis=axes) * jnp.sum(r**2, axis=axes))


def correlation_time(prediction, reference, *, dt, threshold: float = 0.8):
    """High-correlation duration: the time until the per-step correlation first
    falls below ``threshold`` (Kochkov et al. 2021).

    Trajectories are ``(T, C, *spatial)``; step ``i`` is at time ``i * dt`` (index 0 is
    the initial state; ``dt`` is the time between stored states). With ``rho[i]``
    from ``correlation`` and ``i`` the first index where ``rho[i] < threshold``, the
    crossing is interpolated linearly between steps ``i - 1`` and ``i``:
    ``t = (i - 1 + (rho[i-1] - threshold) / (rho[i-1] - rho[i])) * dt``, so it is accurate to
    a fraction of a step. It is ``0`` when ``rho[0] < threshold``, and the whole horizon
    ``(T - 1) * dt`` when the correlation never falls below the threshold. A step whose
    correlation is not finite (a prediction that blew up to inf or NaN) counts as below
    the threshold, and a crossing at such a step is put at the last finite step before
    it, ``(i - 1) * dt``: a diverged run never scores the whole horizon.
    """
    p, r = _pair(prediction, reference, "correlation_time", 3, "(T, C, *spatial)")
    if isinstance(dt, (int, float)) and not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"correlation_time: dt must be a positive time step, got dt={dt}.")
    if not -1.0 < threshold <= 1.0:
        raise ValueError(
            f"correlation_time: threshold must lie in (-1, 1], got {threshold}. Fix: e.g. threshold=0.8 or 0.95."
        )
    rho = correlation(p, r, ndim=p.ndim - 2)
    return _first_crossing(rho, threshold, dt)


@jax.jit
def _first_crossing(rho, threshold, dt):
    finite = jnp.isfinite(rho)
    below = ~(finite & (rho >= threshold))  # NaN or inf: the prediction blew up
    i = jnp.argmax(below)
    previous = rho[jnp.maximum(i - 1, 0)]
    drop = jnp.where((i == 0) | ~finite[i], 1.0, previous - rho[i])
    fraction = jnp.where(finite[i], (previous - threshold) / drop, 0.0)
    t_cross = jnp.where(i == 0, 0.0, (i - 1 + fraction) * dt)
    return jnp.where(jnp.any(below), t_cross, (rho.shape[0] - 1) * dt)


def _spacing(u, grid_or_spacing, what: str) -> tuple[float, ...]:
    if isinstance(grid_or_spacing, Grid):
        grid = grid_or_spacing
        if u.shape[1:] != grid.shape:
            raise ValueError(
                f"{what}: expected a state (C, {', '.join(map(str, grid.shape))}) on this grid, got shape {u.shape}. "
                "Fix: pass one state, channels first (for a trajectory use jax.vmap)."
            )
        return grid.spacing
    nd = u.ndim - 1
    if not 1 <= nd <= 3:
        raise ValueError(f"{what}: expected a state (C, *spatial) with 1-3 spatial axes, got shape {u.shape}.")
    spacing = np.broadcast_to(np.asarray(grid_or_spacing, dtype=float), (nd,)) if np.ndim(grid_or_spacing) < 2 else None
    if spacing is None or not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(
            f"{what}: grid_or_spacing must be a Grid or positive spacing(s) (one per spatial axis, {nd} here), "
            f"got {grid_or_spacing!r}."
        )
    return tuple(float(h) for h in spacing)


def _shells(shape, spacing):
    """Shell index of every FFT mode and the shell wavenumbers ``s * dk``."""
    ks = [2 * np.pi * np.fft.fftfreq(n, d=h) for n, h in zip(shape, spacing)]
    dk = min(2 * np.pi / (n * h) for n, h in zip(shape, spacing))
    magnitude = np.sqrt(sum(k**2 for k in np.meshgrid(*ks, indexing="ij")))
    shell = np.rint(magnitude / dk).astype(int)
    n_shells = int(shell.max()) + 1
    return shell, np.arange(n_shells) * dk


def energy_spectrum(u, grid_or_spacing):
    """Shell-averaged kinetic-energy spectrum ``(k, E)`` of a periodic field.

    ``u``: one state ``(C, *spatial)``, 1-3 spatial axes, cell-centred and periodic
    (for a staggered velocity the half-cell offsets change only phases, not ``E``).
    ``grid_or_spacing``: the ``Grid``, or the spacing (a number or one per axis).

    With ``u_hat = fftn(u)`` over the spatial axes and ``N`` cells,
    ``E[s] = sum over modes with round(|k| / dk) == s of sum_c |u_hat_c|^2 / (2 N^2)``.
    ``dk = 2 pi / L`` is the fundamental wavenumber (the smallest over the axes when
    the domain is not a cube), the shells are ``dk`` wide, ``k = s * dk`` and they run
    from 0 (the mean) to the corner of the spectrum. By Parseval
    ``sum(E) == 0.5 * mean(sum_c u_c^2)``: the kinetic energy per unit volume. This is
    ``problems.kolmogorov.energy_spectrum`` (same shells) divided by the domain volume.
    Jit-able and differentiable.
    """
    u = jnp.asarray(u)
    spacing = _spacing(u, grid_or_spacing, "energy_spectrum")
    return _shell_spectrum(u, spacing)


@functools.partial(jax.jit, static_argnames="spacing")
def _shell_spectrum(u, spacing):
    spatial = u.shape[1:]
    shell, k = _shells(spatial, spacing)
    axes = tuple(range(1, u.ndim))
    power = jnp.sum(jnp.abs(jnp.fft.fftn(u, axes=axes)) ** 2, axis=0) * (0.5 / math.prod(spatial) ** 2)
    energy = jax.ops.segment_sum(power.ravel(), jnp.asarray(shell.ravel()), num_segments=k.size)
    return jnp.asarray(k), energy


def spectrum_error(prediction, reference, grid_or_spacing, *, floor: float = 1e-10):
    """Mean absolute log-ratio of two energy spectra: a scalar, 0 for equal spectra.

    ``err = mean over shells s >= 1 with E_r[s] > f of |log(max(E_p[s], f) / E_r[s])|``,
    ``f = floor * max(E_r)``, with ``E`` from ``energy_spectrum``. Shells where the
    reference holds (numerically) no energy carry no information on the scales and are
    skipped; clipping the prediction at ``f`` keeps an empty predicted shell finite.
    The mean (shell 0) is left out: it is a conserved quantity, not a scale, and
    ``conservation_error`` measures it. ``exp(err)`` is the typical factor between the
    spectra.
    """
    p, r = _pair(prediction, reference, "spectrum_error", 2, "(C, *spatial)")
    if not 0 < floor < 1:
        raise ValueError(f"spectrum_error: floor is relative to the peak reference energy, in (0, 1); got {floor}.")
    spacing = _spacing(p, grid_or_spacing, "spectrum_error")
    total, n_kept = _log_ratio_sum(p, r, spacing, floor)
    n_kept = _check_nonzero(
        n_kept,
        "spectrum_error: the reference has no energy above the floor outside the mean, so there is no "
        "spectrum to compare. Fix: compare fields that vary in space",
    )
    return total / n_kept


@functools.partial(jax.jit, static_argnames="spacing")
def _log_ratio_sum(p, r, spacing, floor):
    _, e_p = _shell_spectrum(p, spacing)
    _, e_r = _shell_spectrum(r, spacing)
    e_p, e_r = e_p[1:], e_r[1:]
    f = floor * jnp.max(e_r)
    keep = e_r > f
    log_ratio = jnp.abs(jnp.log(jnp.maximum(e_p, f) / jnp.where(keep, e_r, 1.0)))
    return jnp.sum(jnp.where(keep, log_ratio, 0.0)), jnp.sum(keep)


def conservation_error(trajectory, *, cell_volume=1.0):
    """Drift of the integral of each channel over time: ``(T, C, *spatial) -> (T, C)``.

    ``M[t, c] = sum(u[t, c]) * cell_volume`` (the integral over the domain) and
    ``err[t, c] = (M[t, c] - M[0, c]) / S[c]`` with ``S[c] = sum(|u[0, c]|) * cell_volume``
    the initial total of the magnitude. For a sign-definite channel (density,
    concentration, absolute temperature) ``S = |M[0]|``: the relative drift of the
    total. For a channel whose total is zero or near it (a velocity) it is the drift
    relative to the size of the field, which stays meaningful where ``M[0] ~ 0``. A
    channel identically zero at ``t = 0`` gets the absolute drift ``M[t] - M[0]``.
    Signed; ``err[0] == 0``. A conservative scheme on a periodic or closed domain
    keeps it at round-off.
    """
    u = jnp.asarray(trajectory)
    if u.ndim < 3:
        raise ValueError(f"conservation_error: expected a trajectory (T, C, *spatial), got shape {u.shape}.")
    return _drift(u, cell_volume)


@jax.jit
def _drift(u, cell_volume):
    axes = tuple(range(2, u.ndim))
    total = jnp.sum(u, axis=axes) * cell_volume
    scale = jnp.sum(jnp.abs(u[0]), axis=tuple(a - 1 for a in axes)) * cell_volume
    scale = jnp.where(scale > 0, scale, 1.0)
    return (total - total[0]) / scale
