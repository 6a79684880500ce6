"""Reference values of range-based precision and recall from aeon, for the tests.

aeon (aeon.benchmarking.metrics.anomaly_detection) implements Tatbul et al.'s
range-based precision and recall; it is not a dependency of nnpde (it pins numba,
scikit-learn and a numpy below ours), so its values on random label series are stored
in tests/data/range_metrics_aeon.json and tests/test_anomaly_metrics.py compares
nnpde.metrics against them. Run in an environment that has aeon:

    python -m venv /tmp/aeon-venv && /tmp/aeon-venv/bin/pip install aeon
    /tmp/aeon-venv/bin/python scripts/aeon_range_reference.py
"""

import json
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
from aeon.benchmarking.metrics.anomaly_detection import range_precision, range_recall

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "range_metrics_aeon.json"


def random_labels(rng, n, n_ranges):
    labels = np.zeros(n, dtype=int)
    for _ in range(n_ranges):
        start = int(rng.integers(0, n))
        labels[start : start + int(rng.integers(1, max(2, n // 6)))] = 1
    return labels


def as_ranges(labels):
    edges = np.diff(np.concatenate([[0], labels, [0]]))
    return [[int(a), int(b)] for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


def main():
    warnings.simplefilter("ignore")  # aeon warns on an all-zero prediction (its value, 0, is kept)
    rng = np.random.default_rng(2018)
    cases = []
    for _ in range(40):
        n = int(rng.integers(20, 300))
        real, predicted = random_labels(rng, n, int(rng.integers(1, 6))), random_labels(rng, n, int(rng.integers(0, 8)))
        case = {"length": n, "real": as_ranges(real), "predicted": as_ranges(predicted), "recall": [], "precision": []}
        for cardinality in ("one", "reciprocal"):
            for bias in ("flat", "front", "back", "middle"):
                for alpha in (0.0, 0.3, 1.0):
                    value = range_recall(real, predicted, alpha=alpha, cardinality=cardinality, bias=bias)
                    case["recall"].append([alpha, cardinality, bias, float(value)])
                if predicted.any():
                    value = range_precision(real, predicted, alpha=0.0, cardinality=cardinality, bias=bias)
                    case["precision"].append([cardinality, bias, float(value)])
        cases.append(case)
    OUT.write_text(json.dumps({"aeon": version("aeon"), "cases": cases}) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
