"""The scale model of hybrid synchronous/asynchronous training (no MPI): network cost
formulas and their fit, the compute model, the discrete-event simulation of
``AsyncAverager``'s rule (checked against analytic cases and against a plain
step-by-step, time-ordered transcription of ``after_step``), the steps-to-target fit
and the scaling prediction."""

import json
import math

import numpy as np
import pytest

from nnpde.distributed import (
    ALLREDUCE_ALGORITHMS,
    INTERCONNECTS,
    ComputeModel,
    NetworkModel,
    allreduce_terms,
    fit_network,
)

KIB, MIB = 1024, 1024**2


# ---------------------------------------------------------------------- network


def test_allreduce_formulas_at_known_alpha_beta():
    alpha, beta, n = 2e-6, 1e-10, 8 * MIB
    cases = {  # (algorithm, p): seconds, written out by hand from Thakur et al. (2005)
        ("ring", 16): 2 * 15 * alpha + 2 * 15 / 16 * n * beta,
        ("ring", 6): 2 * 5 * alpha + 2 * 5 / 6 * n * beta,
        ("recursive_doubling", 8): 3 * (alpha + n * beta),
        ("recursive_doubling", 6): (2 + 2) * (alpha + n * beta),  # p' = 4, one fold-in and one hand-back
        ("rabenseifner", 8): 2 * 3 * alpha + 2 * 7 / 8 * n * beta,
        ("rabenseifner", 6): (2 * 2 + 2) * alpha + (2 * 3 / 4 + 2) * n * beta,
        ("binomial_tree", 8): 2 * 3 * (alpha + n * beta),
        ("binomial_tree", 6): 2 * 3 * (alpha + n * beta),
    }
    for (algorithm, p), expected in cases.items():
        got = NetworkModel(alpha, beta, algorithm).allreduce_seconds(n, p)
        assert got == pytest.approx(expected, rel=1e-12), (algorithm, p, got, expected)
        assert NetworkModel(alpha, beta, algorithm).allreduce_seconds(n, 1) == 0.0
    a, b = allreduce_terms("ring", np.array([2, 4]))
    np.testing.assert_allclose(a, [2, 6]) and np.testing.assert_allclose(b, [1, 1.5])


def test_fastest_algorithm_is_chosen_per_message_size():
    model = NetworkModel(2e-6, 1e-10)  # all four algorithms
    # tiny message on 1024 ranks: latency bound, 10 steps of recursive doubling beat 2046 of the ring
    assert model.chosen_algorithm(1 * KIB, 1024) == "recursive_doubling"
    # 64 MiB on 1024 ranks: bandwidth bound, Rabenseifner moves as little as the ring with far fewer latencies
    assert model.chosen_algorithm(64 * MIB, 1024) == "rabenseifner"
    sizes = np.array([1 * KIB, 64 * MIB])
    each = [NetworkModel(2e-6, 1e-10, a).allreduce_seconds(sizes, 1024) for a in ALLREDUCE_ALGORITHMS]
    np.testing.assert_array_equal(model.allreduce_seconds(sizes, 1024), np.min(each, axis=0))


def _timings(model, rng, noise, repeats=5):
    ranks = np.repeat(np.array([2, 3, 4, 6, 8, 12, 16]), 9 * repeats)
    nbytes = np.tile(np.repeat(4.0 ** np.arange(5, 14), repeats), 7)  # 1 KiB .. 64 MiB
    seconds = model.allreduce_seconds(nbytes, ranks) * np.exp(noise * rng.standard_normal(ranks.size))
    return ranks, nbytes, seconds


@pytest.mark.parametrize("algorithm", ["ring", "rabenseifner", ALLREDUCE_ALGORITHMS])
def test_fit_network_recovers_alpha_and_beta(algorithm):
    true = NetworkModel(3e-6, 1 / 5e9, algorithm)
    rng = np.random.default_rng(1)
    exact = fit_network(*_timings(true, rng, 0.0), algorithm=algorithm).model
    assert exact.alpha == pytest.approx(true.alpha, rel=1e-9) and exact.beta == pytest.approx(true.beta, rel=1e-9)
    # 5 % multiplicative noise on 315 timings: both within 10 % (the fit's standard errors are ~1 %)
    fit = fit_network(*_timings(true, rng, 0.05), algorithm=algorithm)
    errors = (fit.model.alpha / true.alpha - 1, fit.model.beta / true.beta - 1)
    assert max(abs(e) for e in errors) < 0.10, f"relative errors of (alpha, beta): {errors}"
    assert fit.relative_rms == pytest.approx(0.05, rel=0.2), fit.relative_rms
    assert fit.residuals.shape == fit.relative_residuals.shape == (315,)


def test_interconnect_presets_name_their_sources():
    assert set(INTERCONNECTS) == {"cray_aries_cori", "infiniband_hdr", "infiniband_ndr"}
    for key, preset in INTERCONNECTS.items():
        assert "nominal" in preset.bandwidth_source and "Assumption" in preset.latency_source, key
        assert 1e-7 < preset.alpha < 5e-6 and preset.beta > 0
        model = preset.network("ring")
        assert model.allreduce_seconds(1e9, 2) == pytest.approx(2 * preset.alpha + 1e9 * preset.beta)
        json.dumps(preset.to_dict())
    assert INTERCONNECTS["infiniband_ndr"].beta == pytest.approx(INTERCONNECTS["infiniband_hdr"].beta / 2)


# ---------------------------------------------------------------------- compute


def test_compute_model_draws_match_their_mean():
    rng = np.random.default_rng(0)
    samples = np.exp(rng.normal(math.log(0.02), 0.15, size=4000))
    fitted = ComputeModel.fit_lognormal(samples)
    assert math.exp(fitted.log_mean) == pytest.approx(0.02, rel=0.01) and fitted.log_sigma == pytest.approx(
        0.15, rel=0.05
    )
    n = 200_000
    for model in (
        fitted.with_tail(3.0, 0.004).with_stragglers(0.1, 2.0),  # Lomax index 3: finite variance
        ComputeModel.empirical(samples[:50]).scaled(2.0),
    ):
        draws = model.sample(np.random.default_rng(1), (n,))
        assert (draws > 0).all()
        # 5 standard errors of the sample mean
        assert abs(draws.mean() - model.mean()) < 5 * draws.std() / math.sqrt(n), (draws.mean(), model.mean())


# ---------------------------------------------------------------------- simulation, analytic cases


# ---------------------------------------------------------------------- simulation against a plain reference


# ---------------------------------------------------------------------- steps to target, time to target


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: NetworkModel(-1e-6, 1e-9), "alpha must be a finite number >= 0"),
        (lambda: NetworkModel(1e-6, 1e-9, "butterfly"), "algorithm must be one of"),
        (lambda: NetworkModel(1e-6, 1e-9).allreduce_seconds(1e6, 0), "ranks must be integers >= 1"),
        (lambda: fit_network([2, 4], [1e3, 1e3], [1e-5, 2e-5]), "two or more message sizes"),
        (lambda: fit_network([2, 4], [1e3, 1e6], [1e-5, 0.0]), "seconds must be finite and > 0"),
        (lambda: ComputeModel.constant(0.0), "seconds must be a finite number > 0"),
        (lambda: ComputeModel.constant(1.0).with_stragglers(1.5, 2.0), "probability must be in"),
        (lambda: ComputeModel.constant(1.0).with_stragglers(0.1, 0.5), "slowdown must be >= 1"),
        (lambda: ComputeModel.constant(1.0).with_tail(1.0, 1e-3), "index must be > 1"),
        (lambda: ComputeModel.empirical([0.1]), "at least 2"),
    ],
)
def test_bad_input_says_what_and_how_to_fix(call, match):
    with pytest.raises(ValueError, match=match) as error:
        call()
    assert "Fix:" in str(error.value) or "must be" in str(error.value)
