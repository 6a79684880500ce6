"""``ComputeModel``: the distribution of one rank's compute time per training step
and how it moves with the local batch (numpy only), the input of the scale simulation.
The class docstring gives the model.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._batch_scaling import BatchScaling, check_batch, fit_batch_scaling

_KINDS = ("constant", "empirical", "lognormal")


def _positive(value, name, fix, *, allow_zero=False):
    ok = not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)
    ok = ok and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}. Fix: {fix}")
    return float(value)


def _samples(samples) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float64).ravel()
    if samples.size < 2 or not np.all(np.isfinite(samples)) or (samples <= 0).any():
        raise ValueError(
            f"samples must be at least 2 finite step times > 0 (seconds), got {samples.size} value(s) "
            f"{samples[:5]!r}. Fix: pass the measured per-step compute times of one rank."
        )
    return samples


@dataclasses.dataclass(frozen=True)
class ComputeModel:
    """One rank's compute seconds per step: a base distribution, optional stragglers and
    heavy-tailed noise, and how the step moves with the local batch.

    Build it with ``constant``, ``empirical``, ``lognormal`` or ``fit_lognormal`` (one
    batch), or ``fit_batches`` (samples at several batches); add effects with
    ``with_stragglers``, ``with_tail``, ``scaled``, ``with_batch_scaling``; move it to
    another local batch with ``at_batch``. ``sample(rng, shape)`` draws independent step
    times; ``mean()`` is their expectation.

    A rank's compute time for one step is

        t = base * (slowdown if straggling else 1) + tail

    - ``base`` comes from measured samples: drawn from them with replacement (empirical
      resampling, which keeps whatever shape the measurements have) or from a lognormal
      fitted to them (``log t ~ N(mu, sigma)``: positive, right-skewed, fitted by the mean
      and standard deviation of ``log t``, which are its maximum-likelihood estimates);
    - a straggler: with probability ``straggler_probability`` per rank and step,
      independently, the step is ``straggler_slowdown`` times slower (a node that is
      briefly busy: OS jitter, a daemon, thermal throttling);
    - ``tail``: additive heavy-tailed noise, Lomax (Pareto type II) with index ``a`` and
      scale ``s``: ``P(tail > x) = (1 + x / s) ** -a``, mean ``s / (a - 1)``. It starts
      at 0 (unlike a Pareto type I, which would add at least ``s`` to every step) and
      its tail decays as a power law; ``a > 1`` is required so the mean step time exists.

    The batch: ``batch`` is the local batch (samples per rank and step) the base
    distribution stands for and ``batch_scaling`` the ``BatchScaling`` law
    ``t(b) = t0 + t1 * b`` of the typical step against the batch (a fixed cost per step
    plus a cost per sample). ``at_batch(b)`` stretches the base by ``t(b) / t(batch)``:
    the shape of the distribution (its relative spread, the stragglers' probability and
    slowdown) is kept, the additive tail is not stretched. As ``b -> 0`` the base tends
    to ``t0 / t(batch)`` times the measured one, not to 0: that fixed cost is what makes
    strong scaling of a fixed global batch saturate (``BatchScaling`` gives the
    efficiency). ``fit_batches`` fits the law to the medians of samples measured at
    several batches and keeps one batch's samples as the shape.

    ``scaled(factor)`` multiplies ``base`` by ``factor`` whatever the batch: a slower or
    faster node (a shared CPU, another processor), not a change of batch (use
    ``at_batch``); the straggler factor and the tail are not scaled.

    For a deterministic base ``b``, ``p`` and ``s``, the slowest of ``R`` ranks takes
    ``b * s`` with probability ``1 - (1 - p) ** R``, so a synchronous step is on average
    ``b * (1 + (s - 1) * (1 - (1 - p) ** R))``: stragglers cost more the more ranks wait
    for each other.
    """

    kind: str
    seconds: float = 0.0
    samples: tuple[float, ...] = ()
    log_mean: float = 0.0
    log_sigma: float = 0.0
    scale: float = 1.0
    straggler_probability: float = 0.0
    straggler_slowdown: float = 1.0
    tail_index: float = math.inf
    tail_scale: float = 0.0
    batch: float | None = None
    batch_scaling: BatchScaling | None = None

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(
                f"kind must be one of {_KINDS}, got {self.kind!r}. Fix: build it with ComputeModel.constant, "
                ".empirical, .lognormal or .fit_lognormal."
            )
        # Direct construction gets the checks the constructors make.
        if self.kind == "constant":
            _positive(self.seconds, "seconds", "the per-step compute time, e.g. 0.05.")
        if self.kind == "empirical":
            _samples(self.samples)
        if self.kind == "lognormal":
            _positive(self.log_sigma, "log_sigma", "the spread of log(step time), e.g. 0.1.", allow_zero=True)
        _positive(self.scale, "scale", "a multiplier of the base time, e.g. 2.0 for a node half as fast.")
        if not 0 <= self.straggler_probability <= 1:
            raise ValueError(f"straggler_probability must be in [0, 1], got {self.straggler_probability!r}.")
        if not self.straggler_slowdown >= 1:
            raise ValueError(f"straggler_slowdown must be >= 1, got {self.straggler_slowdown!r}. Fix: e.g. 2.")
        if not (self.tail_index > 1 and self.tail_scale >= 0):
            raise ValueError(
                f"tail_index must be > 1 and tail_scale >= 0, got {self.tail_index!r}, {self.tail_scale!r}. "
                "Fix: use with_tail(index, scale)."
            )
        if (self.batch is None) != (self.batch_scaling is None):
            raise ValueError(
                f"batch and batch_scaling go together, got batch={self.batch!r}, batch_scaling={self.batch_scaling!r}. "
                "Fix: use with_batch_scaling(scaling, batch=...) or ComputeModel.fit_batches(batches, samples)."
            )
        if self.batch_scaling is not None:
            if not isinstance(self.batch_scaling, BatchScaling):
                raise ValueError(
                    f"batch_scaling must be a BatchScaling, got {type(self.batch_scaling).__name__}. "
                    "Fix: fit_batch_scaling(batches, seconds) or BatchScaling(t0, t1)."
                )
            object.__setattr__(self, "batch", check_batch(self.batch))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def constant(cls, seconds) -> ComputeModel:
        """Every step takes ``seconds`` (no noise): the analytic reference case."""
        return cls("constant", seconds=_positive(seconds, "seconds", "the per-step compute time, e.g. 0.05."))

    @classmethod
    def empirical(cls, samples) -> ComputeModel:
        """Steps drawn with replacement from the measured ``samples`` (seconds)."""
        return cls("empirical", samples=tuple(float(s) for s in _samples(samples)))

    @classmethod
    def lognormal(cls, median, sigma) -> ComputeModel:
        """Lognormal steps: median ``median`` seconds, ``sigma`` the standard deviation of
        ``log t`` (0.1 is about 10 % spread)."""
        median = _positive(median, "median", "the median step time in seconds.")
        sigma = _positive(sigma, "sigma", "the spread of log(step time), e.g. 0.1.", allow_zero=True)
        return cls("lognormal", log_mean=math.log(median), log_sigma=sigma)

    @classmethod
    def fit_lognormal(cls, samples) -> ComputeModel:
        """The lognormal of maximum likelihood for the measured ``samples`` (seconds)."""
        logs = np.log(_samples(samples))
        return cls("lognormal", log_mean=float(logs.mean()), log_sigma=float(logs.std()))

    @classmethod
    def fit_batches(cls, batches, samples_per_batch, *, reference=None) -> ComputeModel:
        """Step times measured at several local batches: ``samples_per_batch[i]`` the
        step times (seconds) at ``batches[i]`` samples per rank. The ``BatchScaling``
        ``t0 + t1 * b`` is fitted to the median of each batch (``fit_batch_scaling``);
        the base distribution is the empirical one of the ``reference`` batch (default:
        the largest), so its shape is the measured one. ``at_batch`` then moves it to
        any batch."""
        try:
            batches = [check_batch(b, "batches entry") for b in batches]
            samples = [_samples(s) for s in samples_per_batch]
        except TypeError:
            raise ValueError(
                f"batches and samples_per_batch must be sequences, got {batches!r} and a "
                f"{type(samples_per_batch).__name__}. Fix: e.g. fit_batches([1, 8], [samples_at_1, samples_at_8])."
            ) from None
        if len(batches) != len(samples):
            raise ValueError(
                f"batches and samples_per_batch must have one entry per batch, got {len(batches)} batches and "
                f"{len(samples)} sample sets. Fix: samples_per_batch[i] holds the step times measured at batches[i]."
            )
        if len(set(batches)) != len(batches):
            raise ValueError(
                f"batches must be distinct, got {batches!r}. Fix: pool the samples measured at one batch into one "
                "entry."
            )
        scaling = fit_batch_scaling(batches, [float(np.median(s)) for s in samples])
        reference = max(batches) if reference is None else check_batch(reference, "reference")
        if reference not in batches:
            raise ValueError(
                f"reference={reference!r} is not one of the measured batches {batches!r}. Fix: one of them, or None "
                "for the largest."
            )
        base = samples[batches.index(reference)]
        return cls.empirical(base).with_batch_scaling(scaling, batch=reference)

    # ------------------------------------------------------------------ effects

    def with_stragglers(self, probability, slowdown) -> ComputeModel:
        """This model with stragglers: each rank-step is ``slowdown`` times slower with
        probability ``probability``, independently."""
        p = _positive(probability, "probability", "a chance per rank and step in [0, 1].", allow_zero=True)
        if p > 1:
            raise ValueError(f"probability must be in [0, 1], got {probability!r}. Fix: e.g. 0.01.")
        s = _positive(slowdown, "slowdown", "a factor >= 1, e.g. 2 for a step twice as slow.")
        if s < 1:
            raise ValueError(f"slowdown must be >= 1 (a straggler is slower), got {slowdown!r}. Fix: e.g. 2.")
        return dataclasses.replace(self, straggler_probability=p, straggler_slowdown=s)

    def with_tail(self, index, scale) -> ComputeModel:
        """This model plus Lomax noise of tail ``index`` (> 1) and ``scale`` (seconds)."""
        a = _positive(index, "index", "a tail index > 1, e.g. 2.5 (smaller is heavier).")
        if a <= 1:
            raise ValueError(
                f"index must be > 1, got {index!r}: with index <= 1 the noise has no mean, so neither has the "
                "step time. Fix: e.g. index=2.5."
            )
        s = _positive(scale, "scale", "the noise scale in seconds, e.g. 1e-3.")
        return dataclasses.replace(self, tail_index=a, tail_scale=s)

    def scaled(self, factor) -> ComputeModel:
        """The base time multiplied by ``factor`` at every batch: a node ``factor``
        times slower (a shared CPU) or faster. A change of batch is ``at_batch``."""
        factor = _positive(factor, "factor", "a multiplier of the base time, e.g. 2.0 for a node half as fast.")
        return dataclasses.replace(self, scale=self.scale * factor)

    def with_batch_scaling(self, scaling, *, batch) -> ComputeModel:
        """This model as measured at a local batch of ``batch`` samples, with step times
        that follow the ``BatchScaling`` ``scaling`` across batches."""
        if not isinstance(scaling, BatchScaling):
            raise ValueError(
                f"scaling must be a BatchScaling, got {type(scaling).__name__}. Fix: fit_batch_scaling(batches, "
                "median_seconds) or BatchScaling(fixed_seconds, per_sample_seconds)."
            )
        return dataclasses.replace(self, batch=check_batch(batch), batch_scaling=scaling)

    def at_batch(self, batch) -> ComputeModel:
        """This model at a local batch of ``batch`` samples (> 0): the base stretched by
        ``t(batch) / t(self.batch)`` of its ``BatchScaling``; stragglers' probability and
        slowdown and the tail unchanged."""
        if self.batch_scaling is None:
            raise ValueError(
                "this ComputeModel has no batch dependence, so it cannot be moved to another batch. Fix: build it with "
                "ComputeModel.fit_batches(batches, samples_per_batch), or add the law with "
                "with_batch_scaling(BatchScaling(t0, t1), batch=<the batch it was measured at>)."
            )
        batch = check_batch(batch)
        ratio = self.batch_scaling.seconds(batch) / self.batch_scaling.seconds(self.batch)
        return dataclasses.replace(self, scale=self.scale * ratio, batch=batch)

    # ------------------------------------------------------------------ use

    def _base(self, rng, shape):
        if self.kind == "constant":
            return np.full(shape, self.seconds)
        if self.kind == "empirical":
            return rng.choice(np.asarray(self.samples), size=shape)
        return np.exp(rng.normal(self.log_mean, self.log_sigma, size=shape))

    def sample(self, rng, shape) -> np.ndarray:
        """Independent step times (seconds) of the given shape, drawn with the numpy
        ``Generator`` ``rng``."""
        t = self._base(rng, shape) * self.scale
        if self.straggler_probability > 0 and self.straggler_slowdown != 1:
            t = np.where(rng.random(shape) < self.straggler_probability, t * self.straggler_slowdown, t)
        if self.tail_scale > 0:
            t = t + self.tail_scale * rng.pareto(self.tail_index, size=shape)
        return t

    def mean(self) -> float:
        """The expected step time of one rank (seconds)."""
        if self.kind == "constant":
            base = self.seconds
        elif self.kind == "empirical":
            base = float(np.mean(self.samples))
        else:
            base = math.exp(self.log_mean + self.log_sigma**2 / 2)
        straggle = 1 + self.straggler_probability * (self.straggler_slowdown - 1)
        tail = self.tail_scale / (self.tail_index - 1) if self.tail_scale > 0 else 0.0
        return base * self.scale * straggle + tail

    def to_dict(self) -> dict:
        """The model's parameters, JSON-serialisable (samples summarised, not listed)."""
        out = dataclasses.asdict(self)
        if self.batch_scaling is not None:
            out["batch_scaling"] = self.batch_scaling.to_dict()
        samples = out.pop("samples")
        if samples:
            out["samples"] = {"count": len(samples), "mean": float(np.mean(samples)), "std": float(np.std(samples))}
        if math.isinf(out["tail_index"]):
            out["tail_index"] = None
        return out
