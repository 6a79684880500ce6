r"""The 1-D Burgers ladder: a learned 32-cell solver read off plain solvers up to 1024 cells.

Bar-Sinai et al. (PNAS 116 (2019) 15344) learned the face interpolation of 1-D Burgers
and matched, on grids 4-8x coarser, the accuracy of a classical scheme. This module is
the same measurement on the physics of ``problems.hybrid_burgers`` (``nu = 0.02``,
decaying fronts from random five-mode states, ``max |u| = 1``), with the library's
ladder tools (``nnpde.metrics.equivalent_resolution``, ``speedup_at_equal_accuracy``):

- the model: ``problems.hybrid_burgers.task(coarse=COARSE, factor=TRAIN_FACTOR)``
  trained with ``nnpde train`` (``scripts/configs/burgers_ladder.toml``: learned
  interpolation on ``COARSE`` cells, reference data from the same scheme on
  ``COARSE * TRAIN_FACTOR`` cells);
- the truth: the plain solver on ``TRUTH`` cells from held-out initial states
  (``EVAL_SEEDS``, never used in training), ``STATES_PER_SEED`` per seed;
- the rungs: the plain solver on each of ``LADDER``, each started from the truth's
  initial state restricted to its grid, stepped at half its stable step
  (``hybrid_burgers.substeps``);
- the scores: every run restricted to ``COARSE`` cells every ``DT`` and compared with the
  truth there: relative L2 error at ``TIMES`` and its mean over ``(0, HORIZON * DT]``
  (the primary score, the analogue of Bar-Sinai et al.'s error averaged over the run).

The vorticity-correlation time of the Kolmogorov ladder has no counterpart here: on
these decaying fronts every rung keeps a correlation above 0.99 with the truth.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nnpde
from problems import hybrid_burgers as hb

COARSE = 32
TRAIN_FACTOR = 32  # training reference: 1024 cells
TRUTH = 2048
LADDER = (32, 64, 128, 256, 512, 1024)
EVAL_SEEDS = (2000, 2001, 2002, 2003)
STATES_PER_SEED = 8
DT = hb.DT  # the model's step and the scores' interval
HORIZON = 64  # scored steps: t = 2.56
TIMES = (0.64, 1.28, 2.56)
PRIMARY = "mean_error"


def stepper(resolution: int) -> nnpde.ExplicitRK:
    """The plain solver on ``resolution`` cells, one step of ``DT / substeps(resolution)``."""
    return hb.coarse_stepper(DT / hb.substeps(resolution, DT), resolution)


def starts(seeds=EVAL_SEEDS, per_seed: int = STATES_PER_SEED, resolution: int = TRUTH):
    """The held-out initial states ``(len(seeds) * per_seed, 1, resolution)``, seed-major."""
    return jnp.concatenate([hb.initial_states(jax.random.key(s), per_seed, resolution) for s in seeds])


def restrict(states, resolution: int):
    """Fine states ``(..., 1, n)`` block-averaged to ``resolution`` cells."""
    n = states.shape[-1]
    if n % resolution:
        raise ValueError(f"{n} cells do not restrict to {resolution}. Fix: use power-of-two resolutions.")
    return nnpde.downsample(states, n // resolution, ndim=1)


def run(step, u0, *, inner: int = 1, horizon: int = HORIZON, score: int = COARSE):
    """``(states, horizon + 1, 1, score)``: ``step`` from each of ``u0``, kept every
    ``inner`` steps (one ``DT``) and restricted to ``score`` cells."""
    factor = u0.shape[-1] // score
    return np.asarray(nnpde.generate_trajectories(step, u0, horizon * inner, save_every=inner, factor=factor, ndim=1))


def rung(resolution: int, fine_starts, *, horizon: int = HORIZON, score: int = COARSE):
    """The plain solver on ``resolution`` cells from ``fine_starts`` restricted there."""
    return run(
        stepper(resolution),
        restrict(jnp.asarray(fine_starts), resolution),
        inner=hb.substeps(resolution, DT),
        horizon=horizon,
        score=score,
    )


def scores(predicted, truth, *, dt: float = DT, times=TIMES) -> dict:
    """Per state: relative L2 error against ``truth`` at each of ``times`` and averaged
    over every kept step after the first (``predicted``, ``truth``: ``(states, T + 1, 1,
    n)``, ``dt`` apart)."""
    errors = np.stack([np.asarray(nnpde.metrics.rollout_error(p, r)) for p, r in zip(predicted, truth)])
    out = {PRIMARY: errors[:, 1:].mean(axis=1)}
    for t in times:
        k = round(t / dt)
        if not 0 < k < errors.shape[1]:
            raise ValueError(f"time {t} lies outside the scored run (0, {(errors.shape[1] - 1) * dt:g}].")
        out[f"error_{t:g}"] = errors[:, k]
    return out
