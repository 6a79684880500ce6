"""What the thermal monitoring's open-loop detectors cost to train at full size.

The hybrid and the emulator of ``problems.thermal_detectors`` train ``hybrid_steps``
steps (1 500) on the normal training series of ``nnpde detect``'s run (three of 20 000
samples), each step a gradient through ``batch`` open-loop windows of ``WINDOW`` solver
steps, and every ``REFRESH`` steps a refresh: the open-loop states of every training
series, from which the windows start. This trains each detector for a few steps with a
refresh every other step (the refresh costs the same whatever its period) and reports
the wall and CPU seconds of the first step (compilation included), of a step, and of a
refresh, and the full training's estimated duration. Nothing is written.

Launch (after ``nnpde detect scripts/configs/thermal_monitoring.toml`` has generated the
series, or with ``--data`` another run's ``data`` folder):

    nice -n 19 env PYTHONPATH=. .venv/bin/python scripts/thermal_training_cost.py

Prints one JSON object per detector.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from problems import thermal_detectors


class _Enough(Exception):
    pass


def cost(fit, train, steps: int, full_steps: int) -> dict:
    """Time ``steps`` steps of ``fit`` (a refresh before every odd one)."""
    marks = [(time.perf_counter(), time.process_time())]

    def on_step(done, loss):
        marks.append((time.perf_counter(), time.process_time()))
        if done == steps:
            raise _Enough

    stopped = None
    try:
        fit(train, None, steps=full_steps, refresh=2, progress=False, on_step=on_step)
    except _Enough:
        pass
    except FloatingPointError as error:  # the emulator, refreshed from a barely trained network, diverges
        stopped = str(error)
    marks = np.asarray(marks)
    wall, cpu = np.diff(marks[:, 0]), np.diff(marks[:, 1])
    # step i (from 0) refreshes when i is even; the first one also compiles
    plain, refreshed = slice(1, None, 2), slice(2, None, 2)
    step = {"wall": float(np.mean(wall[plain])), "cpu": float(np.mean(cpu[plain]))}
    refresh = {k: float(np.mean(v[refreshed])) - step[k] for k, v in (("wall", wall), ("cpu", cpu))}
    n_refresh = -(-full_steps // thermal_detectors.REFRESH)
    estimate = {k: full_steps * step[k] + n_refresh * refresh[k] for k in step}
    return {
        "first_step": {"wall": float(wall[0]), "cpu": float(cpu[0])},
        "step": step,
        "refresh": refresh,
        "steps_timed": len(wall),
        "estimate_hours": {k: v / 3600 for k, v in estimate.items()},
        "full_steps": full_steps,
        "refreshes": n_refresh,
        "stopped": stopped,
        "load_average": os.getloadavg()[0],  # other work on the machine slows the wall clock
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="runs/thermal_monitoring/data", help="the detect run's series")
    parser.add_argument("--train", type=int, default=3, help="training series (the configuration's data.train)")
    parser.add_argument("--steps", type=int, default=5, help="steps timed per detector (odd: as many of each kind)")
    parser.add_argument("--full-steps", type=int, default=1500, help="the configuration's hybrid_steps")
    parser.add_argument("--detectors", nargs="+", default=["hybrid", "emulator"])
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)  # the configuration's precision
    train = []
    for i in range(args.train):
        with np.load(Path(args.data) / f"train-{i}.npz") as f:
            train.append({key: f[key] for key in ("workload", "readings")})
    for name in args.detectors:
        fit = getattr(thermal_detectors, name)
        print(json.dumps({"detector": name, **cost(fit, train, args.steps, args.full_steps)}), flush=True)


if __name__ == "__main__":
    main()
