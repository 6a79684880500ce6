"""Solver in the loop: learned corrections of coarse solvers against the plain coarse
solver and a pure-network emulator trained with the same budget.

Two tasks, each on a grid 4x coarser than its reference (fine-grid runs, block-averaged):
1-D viscous Burgers (``problems.hybrid_burgers``) and 2-D heat conduction with sub-grid
heat sources (``problems.hybrid_heat``). Every model is trained by ``nnpde.fit`` on the
same training trajectories, with the same optimiser, steps, batch and unroll; the
errors are the relative L2 errors of rollouts from HELD-OUT initial states (other
seeds), averaged over the test trajectories, at every step up to the horizon.

Launch (this machine, 2 cores): the figures quoted for issue 4 came from

    .venv/bin/python scripts/solver_in_the_loop.py --problems burgers --kinds correction emulator
    .venv/bin/python scripts/solver_in_the_loop.py --problems burgers --kinds closure --steps 400
    .venv/bin/python scripts/solver_in_the_loop.py --problems heat --batch 8 --unroll 8 --steps 2000 \
        --out runs/solver_in_the_loop_heat2000                                     # ~35 min

(Burgers: correction 6.9x lower horizon error than the plain coarse solver, emulator
2.5x, closure after 400 steps 3.4x; heat: correction 6.1x, emulator far worse). A
closure step costs about 3x a correction step here.

Writes ``runs/solver_in_the_loop/{summary.json, <problem>_errors.png}`` and caches the
reference data under ``runs/data``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from pathlib import Path

import jax
import matplotlib
import numpy as np

import nnpde

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TASKS = {
    "burgers": {"module": "problems.hybrid_burgers", "kinds": ("correction", "closure", "emulator")},
    "heat": {"module": "problems.hybrid_heat", "kinds": ("correction", "emulator")},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--kinds", nargs="+", default=None, help="models to train (default: every kind of the task)")
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps per model")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--unroll", type=int, default=16, help="steps unrolled through the solver per sample")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--train", type=int, default=32, help="training trajectories")
    parser.add_argument("--test", type=int, default=8, help="held-out test trajectories")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/solver_in_the_loop")
    args = parser.parse_args()
    known = {k for task in TASKS.values() for k in task["kinds"]}
    if args.kinds and set(args.kinds) - known:
        parser.error(f"unknown model kind(s) {sorted(set(args.kinds) - known)}; known: {sorted(known)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "settings": vars(args),
        "machine": {"platform": platform.platform(), "devices": [str(d) for d in jax.devices()]},
        "date": time.strftime("%Y-%m-%d"),
        "results": {},
    }
    for name in args.problems:
        task = TASKS[name]
        problem = importlib.import_module(task["module"])
        train, reused = problem.trajectories(args.seed, args.train, cache_dir="runs/data")
        test, _ = problem.trajectories(args.seed + 1, args.test, cache_dir="runs/data")
        print(f"[{name}] data: train {train.shape} ({'cached' if reused else 'generated'}), test {test.shape}")
        errors = {"plain coarse solver": nnpde.evaluate_rollouts(problem.coarse_stepper(), test)}
        seconds = {}
        kinds = task["kinds"] if args.kinds is None else [k for k in args.kinds if k in task["kinds"]]
        for kind in kinds:
            model = problem.model(kind, seed=args.seed)
            result = nnpde.fit(
                model,
                lambda m, batch, key: nnpde.unrolled_loss(m, batch),
                train,
                steps=args.steps,
                batch_size=args.batch,
                window=args.unroll,
                seed=args.seed,
                optimizer=nnpde.make_optimizer(
                    args.learning_rate, schedule="cosine", total_steps=args.steps, clip_norm=1.0
                ),
                log_every=50,
                run_dir=out / f"{name}_{kind}",
                config={"problem": name, "kind": kind, **vars(args)},
            )
            errors[kind] = nnpde.evaluate_rollouts(result.model, test)
            seconds[kind] = result.seconds
        plain = errors["plain coarse solver"][-1]
        horizon = test.shape[1] - 1
        print(f"[{name}] relative L2 error at the horizon ({horizon} steps), held-out initial states:")
        for label, e in errors.items():
            print(f"    {label:22s} {e[-1]:.4e}   ({plain / e[-1]:.2f}x lower than plain)")
        summary["results"][name] = {
            "horizon_steps": int(horizon),
            "error_at_horizon": {k: float(v[-1]) for k, v in errors.items()},
            "improvement_over_plain": {k: float(plain / v[-1]) for k, v in errors.items()},
            "error_per_step": {k: v.tolist() for k, v in errors.items()},
            "train_seconds": seconds,
            "target_improvement": float(1 / problem.TARGET),
        }
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, e in errors.items():
            ax.semilogy(np.arange(1, len(e) + 1), e, label=label)
        ax.set_xlabel("coarse step")
        ax.set_ylabel("relative L2 error (held-out)")
        ax.set_title(f"{name}: solver in the loop vs plain and emulator")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"{name}_errors.png", dpi=120)
        plt.close(fig)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
