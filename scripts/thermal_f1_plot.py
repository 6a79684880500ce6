"""The monitored board's detectors side by side: range-based F1 with its 90 % bootstrap
interval over the test series, for each set-up measured on the anomaly-detection page;
and each detector's F1 against the amount of normal data it was fitted on.

Reads the reports under ``benchmarks/results/`` (written by ``nnpde detect``, copied
there) and writes ``docs/benchmarks/anomaly-detection/f1_intervals.png`` and
``f1_vs_normal_data.png`` beside it::

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
    "commissioning: the same, linear correction, standardised": "thermal_monitoring_commissioning.json",
}
# the same configuration fitted on less and less normal data (data.train series, each cut
# to problem.options.train_samples), scored with each statistic: the x axis is read from
# each report's config
AMOUNTS = {
    "max": (
        "thermal_monitoring_little300.json",
        "thermal_monitoring_little.json",
        "thermal_monitoring_little3000.json",
        "thermal_monitoring.json",
    ),
    "standardised_max": (
        "thermal_monitoring_little300_smax.json",
        "thermal_monitoring_little_smax.json",
        "thermal_monitoring_little3000_smax.json",
    ),
}
AMOUNT_DETECTORS = {"hybrid": "o-", "hybrid_filter": "o--", "emulator": "s-", "data": "^-", "physics": "v-"}
# the data forecaster at width 16, from the baseline sweeps (scripts/thermal_baseline_sweep.py)
SWEEPS = {
    "max": (
        "thermal_baseline_sweep_300.json",
        "thermal_baseline_sweep_1000.json",
        "thermal_baseline_sweep_3000.json",
        "thermal_baseline_sweep_full.json",
    ),
    "standardised_max": (
        "thermal_baseline_sweep_300_smax.json",
        "thermal_baseline_sweep_1000_smax.json",
        "thermal_baseline_sweep_3000_smax.json",
        "thermal_baseline_sweep_full_smax.json",
    ),
}


def normal_samples(report) -> int:
    """Samples of normal operation every detector of ``report`` was fitted on."""
    config = report["config"]
    options = config["problem"]["options"]
    per_series = options.get("train_samples") or options["n_steps"]
    return int(config["data"]["train"]) * int(min(per_series, options["n_steps"]))


def plot_amounts(results: Path, out: Path) -> list[str]:
    """F1 (flat, 90 % interval) of each detector against the normal samples it was
    fitted on, one panel per statistic, from the reports of ``AMOUNTS`` that exist;
    returns the ones drawn."""
    found = {stat: [n for n in names if (results / n).exists()] for stat, names in AMOUNTS.items()}
    found = {stat: names for stat, names in found.items() if names}
    fig, axes = plt.subplots(1, len(found), figsize=(6.5 * len(found), 4.5), sharex=True, sharey=True, squeeze=False)
    for ax, (stat, names) in zip(axes[0], found.items(), strict=True):
        reports = sorted((json.loads((results / n).read_text()) for n in names), key=normal_samples)
        for name, style in AMOUNT_DETECTORS.items():
            having = [r for r in reports if name in r["detectors"]]  # a run may score some detectors only
            x = np.array([normal_samples(r) for r in having])
            flat = [r["detectors"][name]["flat"] for r in having]
            f1 = np.array([f["f1"] for f in flat])
            lo, hi = (np.array([f["f1_interval"][i] for f in flat]) for i in (0, 1))
            ax.errorbar(x, f1, yerr=[f1 - lo, hi - f1], fmt=style, capsize=3, lw=1, ms=5, label=name)
        sweeps = [json.loads((results / n).read_text()) for n in SWEEPS.get(stat, ()) if (results / n).exists()]
        sweeps = sorted((r for r in sweeps if "data_hidden16" in r["detectors"]), key=normal_samples)
        if sweeps:
            flat = [r["detectors"]["data_hidden16"]["flat"] for r in sweeps]
            f1 = np.array([f["f1"] for f in flat])
            lo, hi = (np.array([f["f1_interval"][i] for f in flat]) for i in (0, 1))
            x = np.array([normal_samples(r) for r in sweeps])
            ax.errorbar(x, f1, yerr=[f1 - lo, hi - f1], fmt="^:", capsize=3, lw=1, ms=5, label="data, width 16")
        ax.axhline(0.8, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("normal samples the detectors were fitted on (log)")
        ax.set_title(f'statistic "{stat}"', fontsize=10)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("range-based F1 (flat, alpha 0), 90 % interval")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.suptitle("F1 against the amount of normal data (bootstrap over the 6 test series)", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    return [n for names in found.values() for n in names]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "anomaly-detection" / "f1_intervals.png"))
    parser.add_argument(
        "--amount-out",
        default=str(ROOT / "docs" / "benchmarks" / "anomaly-detection" / "f1_vs_normal_data.png"),
        help="the F1 against the amount of normal data",
    )
    args = parser.parse_args(argv)
    plot_amounts(Path(args.results), Path(args.amount_out))
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
