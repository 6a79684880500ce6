"""``ComputeModel``: the distribution of one rank's compute time per training step
(numpy only), the input of the scale simulation. The class docstring gives the model.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

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
    heavy-tailed noise.

    Build it with ``constant``, ``empirical``, ``lognormal`` or ``fit_lognormal``;
    add effects with ``with_stragglers``, ``with_tail``, ``scaled``. ``sample(rng,
    shape)`` draws independent step times; ``mean()`` is their expectation.

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

    ``scaled(factor)`` multiplies ``base`` (a per-rank batch ``factor`` times as large
    takes ``factor`` times as long: linear in the batch, no fixed per-step overhead); the
    straggler factor and the tail are not scaled.

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
        _positive(self.scale, "scale", "the ratio of per-rank batches, e.g. 0.5.")
        if not 0 <= self.straggler_probability <= 1:
            raise ValueError(f"straggler_probability must be in [0, 1], got {self.straggler_probability!r}.")
        if not self.straggler_slowdown >= 1:
            raise ValueError(f"straggler_slowdown must be >= 1, got {self.straggler_slowdown!r}. Fix: e.g. 2.")
        if not (self.tail_index > 1 and self.tail_scale >= 0):
            raise ValueError(
                f"tail_index must be > 1 and tail_scale >= 0, got {self.tail_index!r}, {self.tail_scale!r}. "
                "Fix: use with_tail(index, scale)."
            )

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
        """The base time multiplied by ``factor`` (a per-rank batch ``factor`` times as large)."""
        factor = _positive(factor, "factor", "the ratio of per-rank batches, e.g. 0.5.")
        return dataclasses.replace(self, scale=self.scale * factor)

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
        samples = out.pop("samples")
        if samples:
            out["samples"] = {"count": len(samples), "mean": float(np.mean(samples)), "std": float(np.std(samples))}
        if math.isinf(out["tail_index"]):
            out["tail_index"] = None
        return out
