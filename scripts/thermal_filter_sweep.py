"""The Kalman-filter detectors of the monitored board against their process noise.

``nnpde detect scripts/configs/thermal_monitoring.toml`` scores ``hybrid_filter`` and
``physics_filter`` at one process noise ``q`` (``thermal_detectors.TRACKING``, in units
of the sensor noise's variance); this scores them at several, from ``q`` small (the
model trusted: the open-loop detector) to large (the readings trusted: a one-step-ahead
predictor, as the data-only forecaster is). Thresholds from normal validation data as
in the main run: ``q`` is a design choice, not fitted on the test labels.

It reuses the main run's series (hard links to its ``data/``) and the hybrid's training
(its ``models/hybrid``, trained there if absent) and writes ``report.json`` and
``report.md`` under ``runs/thermal_filter_sweep``::

    PYTHONPATH=. .venv/bin/python scripts/thermal_filter_sweep.py [--q 0.01 1 100 10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from pathlib import Path

import jax

import nnpde
from problems import thermal_detectors, thermal_monitoring


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="scripts/configs/thermal_monitoring.toml", help="the main run's config")
    parser.add_argument("--out", default="runs/thermal_filter_sweep")
    parser.add_argument("--q", type=float, nargs="+", default=[0.01, 1.0, 100.0, 1e4], help="process noises")
    args = parser.parse_args(argv)
    main_config = nnpde.load_detect_config(args.config)
    jax.config.update("jax_enable_x64", main_config["precision"] == "float64")
    options = main_config["problem"]["options"]
    task = thermal_monitoring.monitoring(**options)
    models = Path(main_config["out"]) / "models" / "hybrid"
    steps = options.get("hybrid_steps", 1500)
    detectors = {}
    for q in args.q:
        detectors[f"hybrid_filter_q{q:g}"] = functools.partial(
            thermal_detectors.hybrid_filter, process_noise=q, steps=steps, hybrid_directory=models
        )
        detectors[f"physics_filter_q{q:g}"] = functools.partial(thermal_detectors.physics_filter, process_noise=q)
    task = dataclasses.replace(task, detectors=detectors)
    config = {**main_config, "name": "thermal_filter_sweep", "out": args.out}
    config["detect"] = {**config["detect"], "detectors": list(detectors)}
    nnpde.link_series(Path(main_config["out"]) / "data", args.out)
    report = nnpde.run_detection(task, config)
    print(f"report: {Path(args.out) / 'report.json'}; {len(report['detectors'])} detectors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
