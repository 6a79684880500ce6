"""Data for the Kolmogorov accuracy-per-cost benchmark (``problems.kolmogorov_ladder``).

A 32^2 coarse grid trained on 256^2 reference runs and scored against a 512^2 truth,
with a ladder of plain solvers (32^2 .. 256^2) read on the same held-out states. The
reference runs take hours of CPU; every stage is resumable: run the same command again
after an interruption and it continues from the last chunk written under ``--out``.

    .venv/bin/python scripts/kolmogorov_ladder.py --part train   # 32 seeds at 256^2
    .venv/bin/python scripts/kolmogorov_ladder.py --part truth   # 4 seeds at 512^2
    .venv/bin/python scripts/kolmogorov_ladder.py --part all --estimate   # the plan and its cost, no run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
from tqdm import tqdm

import nnpde
from problems import kolmogorov
from problems import kolmogorov_ladder as ladder


def seconds_per_time_unit(resolution: int, steps: int = 20) -> float:
    """Wall time of ``steps`` plain steps at ``resolution``^2, per simulated time unit."""
    step = ladder.stepper(resolution)
    u0 = step.equation.project(kolmogorov.initial_velocity(step.equation.grid, 0, max_velocity=3.0))
    run = jax.jit(lambda u: nnpde.rollout(step, u, steps, trajectory=False))
    run(u0).block_until_ready()
    start = time.perf_counter()
    run(u0).block_until_ready()
    return (time.perf_counter() - start) / steps / step.dt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("train", "truth", "all"), default="all")
    parser.add_argument("--out", type=Path, default=Path("runs/kolmogorov_ladder"))
    parser.add_argument("--estimate", action="store_true", help="print the plan and its expected cost, run nothing")
    args = parser.parse_args(argv)

    rates = {n: seconds_per_time_unit(n) for n in (ladder.SPINUP_RESOLUTION, ladder.TRAIN_RESOLUTION)}
    rates[ladder.TRUTH_RESOLUTION] = rates[ladder.TRAIN_RESOLUTION] * 8  # 4x the cells, 2x the steps
    print(f"backend {jax.default_backend()}; measured s per time unit: {rates}")
    for n, (units, seconds) in ladder.cost_estimate(rates).items():
        print(f"  {n}^2: {units:.0f} time units, about {seconds / 3600:.1f} h")
    if args.estimate:
        return 0

    bar = None

    def progress(done, total, seconds):
        nonlocal bar
        if bar is None or bar.total != total:
            bar = tqdm(total=total, unit="save", file=sys.stdout)
        bar.n = done
        bar.refresh()

    if args.part in ("train", "all"):
        print(f"training data: seeds {ladder.TRAIN_SEEDS[0]}..{ladder.TRAIN_SEEDS[-1]} at {ladder.TRAIN_RESOLUTION}^2")
        data = ladder.training_data(args.out, progress=progress)
        print(f"  done: {data.shape} kept at {ladder.KEEP_RESOLUTION}^2")
    if args.part in ("truth", "all"):
        print(f"truth: seeds {ladder.EVAL_SEEDS} at {ladder.TRUTH_RESOLUTION}^2")
        runs, starts = ladder.truth(args.out, progress=progress)
        print(f"  done: {runs.shape}; held-out windows {ladder.held_out(runs).shape}, starts {starts.shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
