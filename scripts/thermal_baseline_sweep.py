"""The monitored board's data-only baselines at other sizes and training lengths: is
the hybrid's margin with little normal data a property of the baselines' settings?

``nnpde detect`` fits each detector with one setting (``problems.thermal_detectors``:
the data forecaster an MLP of width 72 trained 3000 steps, the emulator the hybrid's
CNN trained as long as the hybrid). With little normal data a smaller or shorter-trained
baseline may generalise better; this scores the variants given on the command line
on the same series, thresholds (from the normal validation series: no test label is
used to choose) and scoring as the main run, and writes ``report.json`` /
``report.md`` under ``--out``. ``--set`` takes the same overrides as ``nnpde detect``
(say, the little-data set-up); the series are hard links to ``--data``::

    PYTHONPATH=. .venv/bin/python scripts/thermal_baseline_sweep.py \\
        --set data.train=1 --set problem.options.train_samples=300 \\
        --data runs/thermal_monitoring_little300/data --out runs/thermal_baseline_sweep_300 \\
        --variant data:hidden=16,steps=1000 --variant emulator:steps=500

A variant is ``DETECTOR:key=value,...`` with keyword arguments of that detector's fit
(``problems.thermal_detectors``); a plain ``DETECTOR`` is its configured setting.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
from pathlib import Path

import jax

import nnpde
from problems import thermal_detectors, thermal_monitoring


def parse_variant(text: str) -> tuple[str, str, dict]:
    """``"data:hidden=16,steps=1000"`` -> (name, detector, options); a clear error otherwise."""
    detector, _, rest = text.partition(":")
    if detector not in thermal_detectors.DETECTORS:
        raise SystemExit(
            f"--variant {text!r}: unknown detector {detector!r}. Fix: one of {sorted(thermal_detectors.DETECTORS)}."
        )
    options = {}
    for pair in filter(None, rest.split(",")):
        key, eq, raw = pair.partition("=")
        if not eq or not key:
            raise SystemExit(f"--variant {text!r}: expected key=value, got {pair!r}. Fix: e.g. data:hidden=16.")
        try:
            options[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise SystemExit(f"--variant {text!r}: {raw!r} is not a number or literal. Fix: e.g. steps=1000.") from None
    name = detector + "".join(f"_{k}{v}" for k, v in options.items())
    return name, detector, options


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="scripts/configs/thermal_monitoring.toml")
    parser.add_argument("--set", action="append", default=[], help="key=value, as nnpde detect takes it")
    parser.add_argument("--data", required=True, help="the data/ folder of a run of the same set-up")
    parser.add_argument("--out", required=True)
    parser.add_argument("--variant", action="append", required=True, help="DETECTOR[:key=value,...]")
    args = parser.parse_args(argv)
    config = nnpde.load_detect_config(args.config, nnpde.parse_overrides(args.set, prog="thermal_baseline_sweep"))
    jax.config.update("jax_enable_x64", config["precision"] == "float64")
    options = config["problem"]["options"]
    task = thermal_monitoring.monitoring(**options)
    keys = ("hybrid_steps", "data_steps", "correction")
    defaults = thermal_monitoring.detector_settings(**{k: options[k] for k in keys if k in options})
    detectors = {}
    for text in args.variant:
        name, detector, variant = parse_variant(text)
        fit = functools.partial(thermal_detectors.DETECTORS[detector], **{**defaults.get(detector, {}), **variant})
        samples = options.get("train_samples", 0)
        detectors[name] = thermal_monitoring.fit_on_first(fit, samples) if samples else fit
    task = dataclasses.replace(task, detectors=detectors)
    config = {**config, "name": "thermal_baseline_sweep", "out": args.out}
    config["detect"] = {**config["detect"], "detectors": list(detectors)}
    try:
        nnpde.link_series(args.data, args.out)
    except ValueError as error:
        raise SystemExit(f"--data {args.data}: {error}") from None
    report = nnpde.run_detection(task, config)
    print(f"report: {Path(args.out) / 'report.json'}; {len(report['detectors'])} detectors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
