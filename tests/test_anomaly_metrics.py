"""nnpde.metrics on anomaly labels: range-based precision and recall (Tatbul et al.
2018) on hand-made cases, the point-wise special case, aeon's values, the NAB score."""

import json
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from nnpde import metrics

AEON = Path(__file__).parent / "data" / "range_metrics_aeon.json"


def series(n, *spans):
    x = np.zeros(n, dtype=int)
    for a, b in spans:
        x[a:b] = 1
    return x


def test_one_range_detected_in_part():
    real, predicted = series(20, (5, 15)), series(20, (10, 20))
    # 5 of the 10 real points; 5 of the 10 predicted points
    assert metrics.range_recall(real, predicted) == pytest.approx(0.5)
    assert metrics.range_precision(real, predicted) == pytest.approx(0.5)
    # alpha = 1: existence only
    assert metrics.range_recall(real, predicted, alpha=1.0) == 1.0
    assert metrics.range_recall(real, predicted, alpha=0.5) == pytest.approx(0.75)
    # positions 6..10 of a 10-long range: front weights 5..1 of 55 total; back 6..10 of 55
    assert metrics.range_recall(real, predicted, bias="front") == pytest.approx(15 / 55)
    assert metrics.range_recall(real, predicted, bias="back") == pytest.approx(40 / 55)
    # middle: weights 1 2 3 4 5 5 4 3 2 1 (sum 30); the back half holds 15
    assert metrics.range_recall(real, predicted, bias="middle") == pytest.approx(15 / 30)
    assert metrics.range_f_score(real, predicted) == pytest.approx(0.5)


def test_a_range_split_by_two_predictions_and_a_prediction_over_two_ranges():
    real, predicted = series(30, (0, 10)), series(30, (1, 3), (6, 9))
    # overlap 5 of 10 points, in two pieces
    assert metrics.range_recall(real, predicted, cardinality="one") == pytest.approx(0.5)
    assert metrics.range_recall(real, predicted, cardinality="reciprocal") == pytest.approx(0.25)
    assert metrics.range_precision(real, predicted, cardinality="reciprocal") == 1.0
    # one prediction spanning two real ranges (and the gap between them)
    real, predicted = series(30, (2, 6), (10, 14)), series(30, (2, 14))
    assert metrics.range_recall(real, predicted, cardinality="reciprocal") == 1.0
    assert metrics.range_precision(real, predicted, cardinality="one") == pytest.approx(8 / 12)
    assert metrics.range_precision(real, predicted, cardinality="reciprocal") == pytest.approx(4 / 12)


def test_empty_predictions_and_perfect_ones():
    real = series(50, (3, 9), (20, 30))
    nothing = np.zeros(50, dtype=int)
    assert metrics.range_recall(real, nothing) == 0.0
    assert metrics.range_precision(real, nothing) == 0.0  # documented: no predicted range, 0
    assert metrics.range_f_score(real, nothing) == 0.0
    for bias in ("flat", "front", "back", "middle"):
        for cardinality in ("one", "reciprocal"):
            assert metrics.range_f_score(real, real, bias=bias, cardinality=cardinality) == 1.0
    assert metrics.nab_score(real, nothing) == 0.0
    onsets = series(50, (3, 4), (20, 21))
    assert metrics.nab_score(real, onsets) == pytest.approx(100.0)


def test_point_wise_precision_and_recall_are_the_special_case():
    rng = np.random.default_rng(0)
    real, predicted = rng.random(500) < 0.3, rng.random(500) < 0.4
    tp = np.sum(real & predicted)
    # alpha = 0 and flat bias, on series where every range is one point: point-wise counts
    lone_real = real & ~np.roll(real, 1) & ~np.roll(real, -1)
    lone_real[[0, -1]] = False
    lone_pred = predicted & ~np.roll(predicted, 1) & ~np.roll(predicted, -1)
    lone_pred[[0, -1]] = False
    tp = np.sum(lone_real & lone_pred)
    assert metrics.range_recall(lone_real, lone_pred) == pytest.approx(tp / lone_real.sum())
    assert metrics.range_precision(lone_real, lone_pred) == pytest.approx(tp / lone_pred.sum())


def test_agrees_with_aeon():
    data = json.loads(AEON.read_text())
    worst = 0.0
    for case in data["cases"]:
        real, predicted = series(case["length"], *case["real"]), series(case["length"], *case["predicted"])
        for alpha, cardinality, bias, expected in case["recall"]:
            got = metrics.range_recall(real, predicted, alpha=alpha, cardinality=cardinality, bias=bias)
            worst = max(worst, abs(got - expected))
        for cardinality, bias, expected in case["precision"]:
            got = metrics.range_precision(real, predicted, cardinality=cardinality, bias=bias)
            worst = max(worst, abs(got - expected))
    assert worst < 1e-12, f"largest difference from aeon {data['aeon']}: {worst}"


def test_nab_score_by_hand():
    real = series(100, (10, 20), (60, 70))
    # detection at the start of window 1 (position -1: full reward), none in window 2
    # (-A_FN); one false alarm long after window 1 (-A_FP): raw 1 - 1 - 0.11
    predicted = series(100, (10, 11), (45, 46))
    raw = 1.0 - 1.0 - 0.11
    expected = 100 * (raw + 2) / (2 + 2)
    assert metrics.nab_score(real, predicted) == pytest.approx(expected)
    assert metrics.nab_score(real, predicted, profile="reward_low_fp_rate") == pytest.approx(
        100 * (1.0 - 1.0 - 0.22 + 2) / 4
    )
    assert metrics.nab_score(real, predicted, profile="reward_low_fn_rate") == pytest.approx(
        100 * (1.0 - 2.0 - 0.11 + 4) / 6
    )
    # a later first detection earns less; a second one in the window counts nothing
    late = series(100, (15, 16), (60, 61))
    later = series(100, (15, 17), (60, 61))
    y = -(20 - 15) / 10
    sigma = 2 / (1 + np.exp(5 * y)) - 1
    expected = 100 * (sigma / (2 / (1 + np.exp(-5)) - 1) + 1 + 2) / 4
    assert metrics.nab_score(real, late) == pytest.approx(expected)
    assert metrics.nab_score(real, later) == pytest.approx(expected)
    # a false alarm just after a window costs less than one far from it
    near, far = series(100, (10, 11), (60, 61), (20, 21)), series(100, (10, 11), (60, 61), (50, 51))
    assert 100 > metrics.nab_score(real, near) > metrics.nab_score(real, far)


def test_jax_input_and_a_million_points():
    rng = np.random.default_rng(1)
    real = np.repeat(rng.random(20_000) < 0.2, 50)
    predicted = np.repeat(rng.random(25_000) < 0.2, 40)
    start = time.perf_counter()
    scores = [
        metrics.range_recall(real, predicted, alpha=0.2, cardinality="reciprocal", bias="front"),
        metrics.range_precision(real, predicted, cardinality="reciprocal", bias="middle"),
        metrics.nab_score(real, predicted),
    ]
    seconds = time.perf_counter() - start
    assert seconds < 2.0, f"{real.size} points took {seconds:.2f} s"
    again = [
        metrics.range_recall(
            jnp.asarray(real), jnp.asarray(predicted), alpha=0.2, cardinality="reciprocal", bias="front"
        ),
        metrics.range_precision(jnp.asarray(real, dtype=jnp.int32), predicted, cardinality="reciprocal", bias="middle"),
        metrics.nab_score(jnp.asarray(real), jnp.asarray(predicted)),
    ]
    assert np.allclose(scores, again) and all(np.isfinite(scores)), f"{scores} vs {again}"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.range_recall(np.ones(5), np.ones(6)), "same time steps"),
        (lambda: metrics.range_precision(np.array([0, 2, 1]), np.ones(3)), "only 0 and 1"),
        (lambda: metrics.range_recall(np.array([0.5, 1.0]), np.ones(2)), "only 0 and 1"),
        (lambda: metrics.range_recall(np.ones((2, 3)), np.ones((2, 3))), "1-D"),
        (lambda: metrics.range_recall(np.ones(3), np.ones(3), bias="early"), "unknown bias"),
        (lambda: metrics.range_precision(np.ones(3), np.ones(3), cardinality="two"), "unknown cardinality"),
        (lambda: metrics.range_recall(np.ones(3), np.ones(3), alpha=1.5), r"alpha must be a number in \[0, 1\]"),
        (lambda: metrics.range_recall(np.zeros(3), np.ones(3)), "no anomaly range"),
        (lambda: metrics.nab_score(np.zeros(3), np.ones(3)), "no anomaly window"),
        (lambda: metrics.nab_score(np.ones(3), np.ones(3), profile="strict"), "unknown profile"),
        (lambda: metrics.range_f_score(np.ones(3), np.ones(3), beta=0.0), "beta"),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
