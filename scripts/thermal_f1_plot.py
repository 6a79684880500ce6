"""The monitored board's detectors side by side: range-based F1 with its 90 % bootstrap
interval over the test series, for each set-up measured on the anomaly-detection page.

Reads the reports under ``benchmarks/results/`` (written by ``nnpde detect``, copied
there) and writes ``docs/benchmarks/anomaly-detection/f1_intervals.png``::

    .venv/bin/python scripts/thermal_f1_plot.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {
    "largest sensor (configured)": "thermal_monitoring.json",
    "Hotelling's T^2": "thermal_monitoring_hotelling.json",
    "busy period (largest sensor)": "thermal_monitoring_busy.json",
    "little normal data: 1000 samples": "thermal_monitoring_little.json",
    "little normal data, busy period": "thermal_monitoring_little_busy.json",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "anomaly-detection" / "f1_intervals.png"))
    args = parser.parse_args(argv)
    reports = {label: json.loads((Path(args.results) / name).read_text()) for label, name in SETUPS.items()}
    names = list(next(iter(reports.values()))["detectors"])
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / len(reports)
    for k, (label, report) in enumerate(reports.items()):
        flat = [report["detectors"][n]["flat"] for n in names]
        f1 = np.array([f["f1"] for f in flat])
        lo, hi = (np.array([f["f1_interval"][i] for f in flat]) for i in (0, 1))
        x = np.arange(len(names)) + (k - (len(reports) - 1) / 2) * width
        ax.bar(x, f1, width, label=label, alpha=0.85)
        ax.errorbar(x, f1, yerr=[f1 - lo, hi - f1], fmt="none", ecolor="black", capsize=2, lw=0.8)
    ax.axhline(0.8, color="grey", ls=":", lw=0.8)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("range-based F1 (flat, alpha 0)")
    ax.set_title("detectors of the monitored board: F1 with 90 % bootstrap intervals over the 6 test series")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
