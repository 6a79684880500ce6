"""The figures of ``nnpde detect``: traces with true and detected ranges, the
precision/recall table, score distributions on normal and anomalous samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..hybrid import metrics

COLOURS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def plot_report(task, test_series, runs: dict, report: dict, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    # 1. the first test series: sensors, true ranges shaded by kind, alarms per detector
    s = test_series[0]
    names = list(runs)
    fig, axes = plt.subplots(2, 1, figsize=(13, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    t = np.arange(len(s["labels"]))
    for m in range(s["readings"].shape[1]):
        axes[0].plot(t, s["readings"][:, m], lw=0.4, label=task.sensors[m])
    for start, end in metrics.label_ranges(s["labels"]):
        k = int(s["kind"][start])
        for ax in axes:
            ax.axvspan(start, end, color=COLOURS[k % len(COLOURS)], alpha=0.2, lw=0)
        axes[0].text(start, axes[0].get_ylim()[1] * 0.97, task.kinds[k], fontsize=7, va="top")
    for row, name in enumerate(names):
        for start, end in metrics.label_ranges(runs[name]["predicted"][0]):
            axes[1].plot([start, end], [row, row], lw=5, color="k")
    axes[1].set_yticks(range(len(names)), names)
    axes[1].set_ylim(-0.7, len(names) - 0.3)
    axes[0].set_ylabel("sensor reading")
    axes[1].set_xlabel("sample")
    axes[0].legend(fontsize=6, ncol=4, loc="upper right")
    axes[0].set_title(f"{task.name}: test series 0, true anomalies shaded, alarms below")
    fig.tight_layout()
    files["traces"] = str(out / "traces.png")
    fig.savefig(files["traces"], dpi=120)
    plt.close(fig)

    # 2. score distributions: normal vs anomalous test samples, with the threshold
    labels = np.concatenate([x["labels"] for x in test_series]).astype(bool)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        score = np.concatenate(runs[name]["scores"]["test"])
        bins = np.geomspace(max(np.quantile(score, 0.001), 1e-3), score.max() + 1e-9, 60)
        ax.hist(score[~labels], bins=bins, density=True, alpha=0.6, label="normal")
        ax.hist(score[labels], bins=bins, density=True, alpha=0.6, label="anomalous")
        ax.axvline(runs[name]["threshold"], color="k", ls="--", label="threshold")
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("score")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    files["scores"] = str(out / "scores.png")
    fig.savefig(files["scores"], dpi=120)
    plt.close(fig)

    # 3. the table: range-based P, R, F1 (flat, front) and per-kind recall
    results = report["detectors"]
    columns = [("flat", "precision"), ("flat", "recall"), ("flat", "f1"), ("front", "f1")]
    kinds = [k for k in task.kinds if k in results[names[0]]["per_kind"]]
    fig, ax = plt.subplots(figsize=(10, 3.5))
    width = 0.8 / len(names)
    labels_x = [f"{a} {b}" for a, b in columns] + [f"recall {k}" for k in kinds]
    for i, name in enumerate(names):
        r = results[name]
        values = [r[a][b] for a, b in columns] + [r["per_kind"][k]["recall_flat"] for k in kinds]
        ax.bar(np.arange(len(values)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(labels_x)) + width * (len(names) - 1) / 2, labels_x, rotation=20, fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("range-based precision, recall and F1 (alpha 0, reciprocal cardinality)")
    fig.tight_layout()
    files["table"] = str(out / "table.png")
    fig.savefig(files["table"], dpi=120)
    plt.close(fig)
    return files
