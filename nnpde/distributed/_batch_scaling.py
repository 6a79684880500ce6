"""``BatchScaling``: how one rank's step time depends on its local batch (a fixed cost
per step plus a cost per sample) and ``fit_batch_scaling``, its fit to step times
measured at several batches (numpy only). The class docstring gives the model."""

from __future__ import annotations

import dataclasses
import math

import numpy as np


def check_batch(value, name="batch", *, allow_zero=False):
    """``value`` as a float if it is a finite local batch (> 0, or >= 0 with
    ``allow_zero``), else a ``ValueError`` that names it and the fix."""
    ok = not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)
    ok = ok and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(
            f"{name} must be a finite number of samples {bound}, got {value!r}. Fix: the per-rank (local) batch, "
            "e.g. global_batch / ranks."
        )
    return float(value)


@dataclasses.dataclass(frozen=True)
class BatchScaling:
    """One rank's typical (median) compute seconds per training step at a local batch
    of ``b`` samples, affine in the batch:

        t(b) = t0 + t1 * b

    ``fixed_seconds`` (``t0``) is paid once per step whatever the batch: dispatching
    the jitted step, the optimiser's update of every parameter, reading the loss back,
    the host's share of the step. ``per_sample_seconds`` (``t1``) is the work of one
    sample (its forward and backward pass). ``t0 = 0`` is a step proportional to the
    batch, ``t1 = 0`` a step that does not depend on it.

    Why affine: as the batch goes to 0 the step tends to ``t0``, not to 0, and for
    large batches it grows like ``t1 * b``: the two regimes of a roofline, joined
    smoothly, with two parameters. The point where they are equal,
    ``crossover_batch = t0 / t1``, is what limits strong scaling: a fixed global batch
    ``B`` over ``N`` ranks gives each ``B / N`` samples, and below ``t0 / t1`` samples
    per rank the fixed part dominates: adding ranks barely shortens a step, which
    floors at ``t0``. Compute alone then has the parallel efficiency

        t(B) / (N * t(B / N)) = (t0 + t1 * B) / (N * t0 + t1 * B),

    which is close to 1 while ``B / N >> t0 / t1`` and falls like ``B t1 / (N t0)``
    beyond.

    Measured (``scripts/scale_model.py --part compute``, the task's hybrid Burgers
    model on one CPU process, medians 2.44, 4.15, 4.01, 5.81 ms at batches 1, 2, 4, 8):
    ``t0 = 2.23 ms``, ``t1 = 0.469 ms`` per sample, ``t0 / t1 = 4.8`` samples,
    relative RMS 0.16. A strict roofline ``max(t_min, c * b)`` (a step either overhead-
    or throughput-bound, never both) fitted those points worse, 0.19; a power law
    ``c * b ** p`` a little better, 0.12, but it has no fixed cost: it goes to 0 with
    the batch, the behaviour this law is there to rule out, and its exponent means
    nothing outside the measured range. Not represented: a device that is not yet full
    at small batches and saturates later (several regimes), memory limits at large
    batches.

    ``residuals`` (measured / model - 1 at the fitted points) and ``relative_rms``
    (their root mean square) say how well the form fits; ``fit_batch_scaling`` sets
    them. ``seconds(batch)`` evaluates ``t``.
    """

    fixed_seconds: float | int
    per_sample_seconds: float | int
    residuals: tuple[float, ...] = ()
    relative_rms: float = 0.0

    def __post_init__(self):
        for name in ("fixed_seconds", "per_sample_seconds"):
            value = getattr(self, name)
            ok = not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)
            if not (ok and math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"{name} must be a finite number of seconds >= 0, got {value!r}. Fix: fit it with "
                    "fit_batch_scaling(batches, seconds), or e.g. BatchScaling(fixed_seconds=2e-3, "
                    "per_sample_seconds=5e-4)."
                )
            object.__setattr__(self, name, float(value))
        if self.fixed_seconds == 0 and self.per_sample_seconds == 0:
            raise ValueError(
                "fixed_seconds and per_sample_seconds are both 0: every step would take no time. Fix: at least one "
                "of them > 0."
            )

    @property
    def crossover_batch(self) -> float:
        """``t0 / t1``: the local batch below which the fixed cost is the larger part
        of a step (``inf`` when ``t1 = 0``)."""
        return self.fixed_seconds / self.per_sample_seconds if self.per_sample_seconds > 0 else math.inf

    def seconds(self, batch):
        """``t0 + t1 * batch`` (seconds): a float for a scalar ``batch``, else an array.
        ``batch`` >= 0; ``seconds(0)`` is ``t0``, the limit of a vanishing batch."""
        b = np.asarray(batch, dtype=np.float64)
        if not (np.all(np.isfinite(b)) and (b >= 0).all()):
            raise ValueError(
                f"batch must be finite and >= 0, got {batch!r}. Fix: the per-rank (local) batch in samples."
            )
        t = self.fixed_seconds + self.per_sample_seconds * b
        return float(t) if t.ndim == 0 else t

    def to_dict(self) -> dict:
        """The fit, JSON-serialisable."""
        return {
            "model": "t(b) = t0 + t1 * b",
            "fixed_seconds": self.fixed_seconds,
            "per_sample_seconds": self.per_sample_seconds,
            "crossover_batch": None if math.isinf(self.crossover_batch) else self.crossover_batch,
            "residuals": list(self.residuals),
            "relative_rms": self.relative_rms,
        }


def fit_batch_scaling(batches, seconds) -> BatchScaling:
    """Fit ``BatchScaling`` to step times measured at several local batches: one entry
    per batch, ``seconds`` a typical step there (the median of its samples, which
    stragglers and noise move least). ``t0, t1 >= 0`` by non-negative least squares on
    the relative error, so each batch counts alike however long its step (the fits of
    ``fit_network`` and ``fit_steps_to_target`` do the same). At least two distinct
    batches are needed to tell the fixed cost from the cost per sample.
    """
    b = np.asarray(batches, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    if not (b.ndim == 1 and b.shape == t.shape):
        raise ValueError(
            f"batches and seconds must be 1-D of one length, got shapes {b.shape} and {t.shape}. Fix: one typical "
            "step time (e.g. the median) per measured batch."
        )
    if not (np.all(np.isfinite(b)) and (b > 0).all()):
        raise ValueError(
            f"batches must be finite local batches > 0, got {b.tolist()!r}. Fix: the per-rank batch (samples) each "
            "step time was measured at."
        )
    if not (np.all(np.isfinite(t)) and (t > 0).all()):
        raise ValueError(f"seconds must be finite step times > 0, got {t.tolist()!r}. Fix: measured seconds per step.")
    if np.unique(b).size < 2:
        raise ValueError(
            f"fit_batch_scaling needs step times at two or more distinct batches, got batches {b.tolist()!r}. Fix: "
            "measure the step at a second local batch (e.g. 1 and 8): one batch cannot tell t0 from t1."
        )
    design = np.stack([np.ones_like(b), b], axis=1) / t[:, None]
    target = np.ones_like(t)
    candidates = []
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    if (solution >= 0).all():
        candidates.append(solution)
    for column in (0, 1):  # the boundary of t0, t1 >= 0: one parameter alone
        c = design[:, column]
        only = np.zeros(2)
        only[column] = float(c @ target) / float(c @ c)
        candidates.append(only)
    t0, t1 = min(candidates, key=lambda p: float(np.sum((design @ p - target) ** 2)))
    residuals = t / (t0 + t1 * b) - 1
    return BatchScaling(
        fixed_seconds=float(t0),
        per_sample_seconds=float(t1),
        residuals=tuple(float(r) for r in residuals),
        relative_rms=float(np.sqrt(np.mean(residuals**2))),
    )
