"""Range-based precision and recall of anomaly labels, and the NAB score.

A label series is 1-D, 0/1 (or boolean) over time; every maximal run of ones is one
anomaly range. ``real`` holds the true ranges ``R_1 .. R_Nr``, ``predicted`` the
detected ones ``P_1 .. P_Np``.

Range-based recall and precision (N. Tatbul, T. J. Lee, S. Zdonik, M. Alam,
J. Gottschlich, "Precision and Recall for Time Series", NeurIPS 2018, section 3):

``Recall_T = mean_i [alpha * Existence(R_i) + (1 - alpha) * gamma(R_i) * omega(R_i)]``,
``Precision_T = mean_j [gamma(P_j) * omega(P_j)]``, where for a range ``X`` of length
``l`` and the ranges ``Y`` of the other series:

* ``Existence(X) = 1`` when ``X`` overlaps any ``Y``, else 0;
* ``omega(X) = sum over positions i of X inside some Y of delta(i, l) / sum_{i=1..l}
  delta(i, l)``, the positional weight of the overlap, with the bias ``delta``:
  ``"flat"`` 1, ``"front"`` ``l - i + 1``, ``"back"`` ``i``, ``"middle"`` ``i`` for
  ``i <= l / 2`` else ``l - i + 1`` (positions ``i = 1 .. l`` from the range's start);
* ``gamma(X)`` the cardinality factor: 1 when ``X`` overlaps at most one ``Y``; else 1
  (``cardinality="one"``) or ``1 / x`` for ``x`` overlapped ranges
  (``"reciprocal"``).

With every range one point long (``alpha = 0``), or with ``bias="flat"``,
``cardinality="one"`` and each series a set of single points, these are the classical
point-wise precision and recall. The computation is vectorised: run labels, a
per-position weight and ``np.bincount`` per range; 10^6 points take milliseconds.
Inputs may be NumPy or JAX arrays (read on the host; the results are Python floats).

The NAB score (A. Lavin, S. Ahmad, "Evaluating Real-time Anomaly Detection
Algorithms: the Numenta Anomaly Benchmark", ICMLA 2015; the scorer of
github.com/numenta/NAB): each true range is a window; every 1 in ``predicted`` is a
detection. The first detection in a window scores ``A_TP * sigma(y) / sigma(-1)`` with
``y = -(end - t + 1) / length`` its relative position (``-1`` at the start, near 0 at
the end) and ``sigma(y) = 2 / (1 + exp(5 y)) - 1``; later detections in the same window
count nothing. A window with no detection costs ``A_FN``. A detection outside every
window scores ``A_FP * sigma(d / (length_prev - 1))``, ``d`` its distance after the end
of the preceding window (so one just after a window costs little), and ``-A_FP`` before
the first window. The raw score is scaled so that no detection at all scores 0 and one
detection at the start of every window scores 100.
"""

from __future__ import annotations

import math

import numpy as np

BIASES = ("flat", "front", "back", "middle")
CARDINALITIES = ("one", "reciprocal")
# (A_TP, A_FP, A_FN): NAB's config/profiles.json
NAB_PROFILES = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_fp_rate": (1.0, 0.22, 1.0),
    "reward_low_fn_rate": (1.0, 0.11, 2.0),
}


def _labels(x, name: str, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(
            f"{what}: {name} must be a 1-D label series over time, got shape {a.shape}. "
            "Fix: pass one series; for several, score each or join them with a 0 between."
        )
    if a.dtype == bool:
        return a
    if not (np.issubdtype(a.dtype, np.number) and np.isin(a, (0, 1)).all()):
        bad = a[~np.isin(a, (0, 1))][:3] if np.issubdtype(a.dtype, np.number) else a.dtype
        raise ValueError(
            f"{what}: {name} must hold only 0 and 1 (or booleans), got {bad}. "
            "Fix: threshold the anomaly scores first (score > threshold)."
        )
    return a.astype(bool)


def _pair(real, predicted, what: str) -> tuple[np.ndarray, np.ndarray]:
    r, p = _labels(real, "real", what), _labels(predicted, "predicted", what)
    if r.shape != p.shape:
        raise ValueError(
            f"{what}: real and predicted must label the same time steps, got lengths {r.size} and {p.size}. "
            "Fix: align the two series (same start, same sampling) before scoring."
        )
    return r, p


def _check_options(cardinality: str, bias: str, what: str) -> None:
    if cardinality not in CARDINALITIES:
        raise ValueError(f"{what}: unknown cardinality {cardinality!r}. Fix: use one of {CARDINALITIES}.")
    if bias not in BIASES:
        raise ValueError(f"{what}: unknown bias {bias!r}. Fix: use one of {BIASES}.")


def label_ranges(labels) -> np.ndarray:
    """The maximal runs of ones of a 1-D 0/1 series as ``(n, 2)`` ``[start, end)`` indices."""
    a = _labels(labels, "labels", "label_ranges").astype(np.int8)
    edges = np.diff(np.concatenate([[0], a, [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def _per_range(x: np.ndarray, y: np.ndarray, *, alpha: float, cardinality: str, bias: str) -> np.ndarray:
    """The score of every range of ``x`` against the ranges of ``y`` (recall: x real)."""
    is_start = x & ~np.concatenate([[False], x[:-1]])
    starts_x = np.flatnonzero(is_start)
    n = starts_x.size
    inside = np.flatnonzero(x)
    rid = (np.cumsum(is_start) - 1)[inside]  # the range of every position inside one
    length = np.bincount(rid, minlength=n)
    i = inside - starts_x[rid] + 1  # position 1 .. l in the range
    ell = length[rid]
    if bias == "flat":
        weight = np.ones(i.size)
    elif bias == "front":
        weight = (ell - i + 1).astype(float)
    elif bias == "back":
        weight = i.astype(float)
    else:
        weight = np.where(i <= ell / 2, i, ell - i + 1).astype(float)
    hit = y[inside]
    omega = np.bincount(rid[hit], weight[hit], minlength=n) / np.bincount(rid, weight, minlength=n)
    # each run of (x & y) is the overlap of exactly one x range with one y range
    overlap = x & y
    run_starts = overlap & ~np.concatenate([[False], overlap[:-1]])
    count = np.bincount(rid[run_starts[inside]], minlength=n)
    gamma = 1.0 / np.maximum(count, 1) if cardinality == "reciprocal" else np.ones(n)
    return alpha * (count > 0) + (1 - alpha) * gamma * omega


def range_recall(real, predicted, *, alpha: float = 0.0, cardinality: str = "one", bias: str = "flat") -> float:
    """Range-based recall (Tatbul et al. 2018): the mean over the true ranges of
    ``alpha * Existence + (1 - alpha) * gamma * omega`` (module docstring).

    ``alpha`` in [0, 1] weighs the reward for detecting a range at all against the
    share of it detected; ``cardinality``: ``"one"`` or ``"reciprocal"`` (a range
    detected in ``x`` pieces earns ``1 / x`` of its overlap reward); ``bias``:
    ``"flat"``, ``"front"`` (early detection counts more), ``"back"`` or ``"middle"``.
    A series with no true range has nothing to recall: ``ValueError``.
    """
    r, p = _pair(real, predicted, "range_recall")
    _check_options(cardinality, bias, "range_recall")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"range_recall: alpha must be a number in [0, 1], got {alpha!r}. Fix: e.g. alpha=0.0.")
    if not r.any():
        raise ValueError(
            "range_recall: real holds no anomaly range, so recall is undefined. Fix: score series that "
            "contain anomalies (or join several series), and judge normal data by their false alarms."
        )
    return float(np.mean(_per_range(r, p, alpha=float(alpha), cardinality=cardinality, bias=bias)))


def range_precision(real, predicted, *, cardinality: str = "one", bias: str = "flat") -> float:
    """Range-based precision (Tatbul et al. 2018): the mean over the predicted ranges
    of ``gamma * omega`` (no existence reward). No predicted range: 0.0 (nothing
    predicted earns no credit; scikit-learn's ``zero_division=0`` convention)."""
    r, p = _pair(real, predicted, "range_precision")
    _check_options(cardinality, bias, "range_precision")
    if not p.any():
        return 0.0
    return float(np.mean(_per_range(p, r, alpha=0.0, cardinality=cardinality, bias=bias)))


def range_f_score(
    real, predicted, *, beta: float = 1.0, alpha: float = 0.0, cardinality: str = "one", bias: str = "flat"
) -> float:
    """``F_beta = (1 + beta^2) P R / (beta^2 P + R)`` of ``range_precision`` and
    ``range_recall`` with the same ``cardinality`` and ``bias`` (``alpha`` enters the
    recall only); 0.0 when both are 0."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (beta > 0 and math.isfinite(beta)):
        raise ValueError(f"range_f_score: beta must be a positive number, got {beta!r}. Fix: beta=1 for F1.")
    recall = range_recall(real, predicted, alpha=alpha, cardinality=cardinality, bias=bias)
    precision = range_precision(real, predicted, cardinality=cardinality, bias=bias)
    if precision + recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (beta**2 * precision + recall)


def _nab_sigmoid(y):
    """NAB's scaled sigmoid; -1 beyond 3 window lengths after a window."""
    y = np.asarray(y, dtype=float)
    return np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)


def nab_score(real, predicted, *, profile: str = "standard") -> float:
    """The scaled NAB score of the detections ``predicted`` (every 1 is one detection)
    against the windows ``real`` (every true range is one window), module docstring.

    ``profile``: ``"standard"`` (``A_TP, A_FP, A_FN = 1, 0.11, 1``),
    ``"reward_low_fp_rate"`` (``1, 0.22, 1``) or ``"reward_low_fn_rate"`` (``1, 0.11,
    2``). 100 for a detection at the start of every window and no other, 0 for no
    detection; false alarms can take it below 0. A series with no window has no
    scale: ``ValueError``.
    """
    r, p = _pair(real, predicted, "nab_score")
    if profile not in NAB_PROFILES:
        raise ValueError(f"nab_score: unknown profile {profile!r}. Fix: use one of {tuple(NAB_PROFILES)}.")
    a_tp, a_fp, a_fn = NAB_PROFILES[profile]
    windows = label_ranges(r)
    if windows.size == 0:
        raise ValueError(
            "nab_score: real holds no anomaly window, so the score has no scale. Fix: score series "
            "that contain anomalies (or join several series)."
        )
    detections = np.flatnonzero(p)
    # the window each detection falls in (-1: none), via the last window starting at or before it
    k = np.searchsorted(windows[:, 0], detections, side="right") - 1
    in_window = (k >= 0) & (detections < windows[np.maximum(k, 0), 1])
    start, end = windows[:, 0], windows[:, 1]
    length = end - start
    first = np.full(len(windows), -1)
    hit_window, earliest = np.unique(k[in_window], return_index=True)  # detections are sorted
    first[hit_window] = detections[in_window][earliest]
    found = first >= 0
    y = -(end[found] - first[found]) / length[found]  # NAB: -(right - t + 1) / width with right inclusive
    tp = np.sum(a_tp * _nab_sigmoid(y) / _nab_sigmoid(-1.0))
    outside, before = detections[~in_window], k[~in_window]
    previous = before >= 0
    distance = outside[previous] - (end[before[previous]] - 1)
    fp_after = a_fp * _nab_sigmoid(distance / np.maximum(length[before[previous]] - 1, 1))
    fp = np.sum(fp_after) - a_fp * np.sum(~previous)
    raw = tp + fp - a_fn * np.sum(~found)
    null, perfect = -a_fn * len(windows), a_tp * len(windows)
    return float(100.0 * (raw - null) / (perfect - null))
