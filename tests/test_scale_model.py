"""The scale model of hybrid synchronous/asynchronous training (no MPI): network cost
formulas and their fit, the compute model and its batch law, the discrete-event simulation of
``AsyncAverager``'s rule (checked against analytic cases and against a plain
step-by-step, time-ordered transcription of ``after_step``), the steps-to-target fit
and the scaling prediction."""

import heapq
import itertools
import json
import math

import numpy as np
import pytest

from nnpde.distributed import (
    ALLREDUCE_ALGORITHMS,
    INTERCONNECTS,
    BatchScaling,
    ComputeModel,
    NetworkModel,
    StepsToTarget,
    allreduce_terms,
    fit_batch_scaling,
    fit_network,
    fit_steps_to_target,
    information_age,
    predict_scaling,
    simulate,
    time_to_target,
)
from nnpde.distributed._scale_model import _draw_steps

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


def test_stragglers_raise_the_synchronous_step_as_predicted():
    base, p, slowdown, ranks, steps = 0.01, 0.05, 3.0, 8, 20_000
    compute = ComputeModel.constant(base).with_stragglers(p, slowdown)
    run = simulate(1, ranks, steps, compute, NetworkModel(0.0, 0.0), parameter_bytes=8, seed=3)
    q = 1 - (1 - p) ** ranks  # probability that at least one of the ranks straggles
    expected = base * (1 + (slowdown - 1) * q)
    # each step is base or base * slowdown: the mean of 20000 has standard error below
    se = base * (slowdown - 1) * math.sqrt(q * (1 - q) / steps)
    measured = float(run.step_seconds.mean())
    assert abs(measured - expected) < 4 * se, f"mean step {measured:.6g}, expected {expected:.6g} +- {4 * se:.2g}"


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


def test_batch_fit_recovers_fixed_and_per_sample_seconds():
    t0, t1, batches = 2e-3, 5e-4, [1, 2, 4, 8, 16]
    exact = fit_batch_scaling(batches, [t0 + t1 * b for b in batches])
    assert exact.fixed_seconds == pytest.approx(t0, rel=1e-10) and exact.per_sample_seconds == pytest.approx(t1)
    assert exact.relative_rms < 1e-12 and exact.crossover_batch == pytest.approx(4.0)
    # measured-like: lognormal spread 0.15 around the law, 300 steps per batch, medians fitted
    rng = np.random.default_rng(4)
    samples = [(t0 + t1 * b) * np.exp(rng.normal(0.0, 0.15, size=300)) for b in batches]
    model = ComputeModel.fit_batches(batches, samples)
    fit = model.batch_scaling
    # the median of 300 lognormal draws is off by about 1.25 * 0.15 / sqrt(300) ~ 1 %
    assert fit.fixed_seconds == pytest.approx(t0, rel=0.06), fit
    assert fit.per_sample_seconds == pytest.approx(t1, rel=0.03), fit
    assert fit.relative_rms < 0.03 and len(fit.residuals) == len(batches), fit
    # the base is the largest batch's samples as measured: its shape is kept
    assert model.batch == 16 and model.samples == tuple(samples[-1]) and model.scale == 1.0
    # the bounds t0, t1 >= 0: a linear and a constant step are fitted as such
    linear = fit_batch_scaling([1, 4, 16], [1e-3, 4.2e-3, 15.8e-3])
    assert linear.fixed_seconds == 0.0 and linear.per_sample_seconds == pytest.approx(1e-3, rel=0.02)
    flat = fit_batch_scaling([1, 4, 16], [3.1e-3, 3e-3, 2.9e-3])  # a falling step: t1 would be < 0
    assert flat.per_sample_seconds == 0.0 and flat.fixed_seconds == pytest.approx(3e-3, rel=0.02)
    json.dumps(model.to_dict())


def test_step_time_tends_to_the_fixed_cost_as_the_batch_vanishes():
    law = BatchScaling(fixed_seconds=2e-3, per_sample_seconds=5e-4)
    at8 = ComputeModel.constant(law.seconds(8)).with_batch_scaling(law, batch=8)
    means = [at8.at_batch(b).mean() for b in (8, 1, 1e-2, 1e-6)]
    assert means[0] == pytest.approx(6e-3) and means[1] == pytest.approx(2.5e-3)
    assert all(a > b for a, b in itertools.pairwise(means)) and means[-1] == pytest.approx(2e-3, rel=1e-6), means
    assert law.seconds(0) == 2e-3
    # the linear law (no fixed cost), which predict_scaling used to assume, goes to 0 instead
    linear = ComputeModel.constant(4e-3).with_batch_scaling(BatchScaling(0.0, 5e-4), batch=8)
    assert linear.at_batch(1e-6).mean() == pytest.approx(5e-10)
    # the distribution keeps its shape: the relative spread, the stragglers and the tail
    noisy = ComputeModel.lognormal(6e-3, 0.2).with_stragglers(0.05, 3.0).with_tail(3.0, 1e-4)
    small = noisy.with_batch_scaling(law, batch=8).at_batch(1)
    assert (small.log_sigma, small.straggler_probability, small.straggler_slowdown) == (0.2, 0.05, 3.0)
    assert (small.tail_index, small.tail_scale, small.batch) == (3.0, 1e-4, 1.0)
    assert small.scale == pytest.approx(2.5 / 6) and small.at_batch(8).scale == pytest.approx(1.0)
    draws = small.sample(np.random.default_rng(2), (200_000,))
    assert abs(draws.mean() - small.mean()) < 5 * draws.std() / math.sqrt(draws.size), (draws.mean(), small.mean())


# ---------------------------------------------------------------------- simulation, analytic cases


def test_deterministic_synchronous_step_is_compute_plus_allreduce():
    net = NetworkModel(5e-6, 1e-9, "ring")
    run = simulate(1, 8, 50, ComputeModel.constant(0.01), net, parameter_bytes=4e6, gradient_bytes=2e6)
    step = 0.01 + 2 * 7 * 5e-6 + 2 * 7 / 8 * 2e6 * 1e-9
    np.testing.assert_allclose(run.step_seconds, step, rtol=1e-12)
    assert run.wall_seconds == pytest.approx(50 * step) and run.end_seconds == run.wall_seconds
    assert run.started.sum() == 0  # one group: AsyncAverager makes no MPI call
    # one allreduce per leaf (group_mean maps over the tree): each pays the latency terms
    leaves = simulate(1, 8, 5, ComputeModel.constant(0.01), net, parameter_bytes=4e6, gradient_bytes=[2e6, 8, 8])
    np.testing.assert_allclose(leaves.step_seconds, step + 2 * (2 * 7 * 5e-6 + 2 * 7 / 8 * 8 * 1e-9), rtol=1e-12)


def test_deterministic_hybrid_step_series_is_analytic():
    """4 identical groups of 2, every 4, a cross average shorter than a step: each
    average starts at a boundary (plus the snapshot), lands in the next step (staleness
    1; the decision, the broadcast of the average and the mix are charged there)."""
    c, net, nbytes, snapshot, mixing = 0.01, NetworkModel(1e-5, 1e-9, "ring"), 1e6, 2e-4, 3e-4
    run = simulate(
        4, 2, 40, ComputeModel.constant(c), net, parameter_bytes=nbytes, snapshot_seconds=snapshot, mix_seconds=mixing
    )
    plain = c + net.allreduce_seconds(nbytes, 2)
    series = np.full(40, plain)
    series[3::4] += snapshot  # steps 4, 8, ...: starts
    series[4::4] += net.broadcast_seconds(8, 2) + net.broadcast_seconds(nbytes, 2) + mixing  # steps 5, 9, ...
    for g in range(4):
        np.testing.assert_allclose(run.step_seconds[g], series, rtol=1e-12)
    assert list(run.started) == [10] * 4 and list(run.completed) == [9] * 4 and list(run.abandoned_at_finish) == [1] * 4
    assert set(run.staleness) == {1} and run.waits.sum() == 0
    # ages 1..4 in every period (staleness 1 + (every - 1) / 2); exact: 40 steps are 10 whole periods
    assert run.information_age == 2.5
    # finish: the average started at step 40 (the end) lands X later, after the count
    # reconciliation (one integer, X8 < X); then the final blocking average and its broadcast
    x, x8 = net.allreduce_seconds(nbytes, 4), net.allreduce_seconds(8, 4)
    assert x8 < x
    assert run.end_seconds == pytest.approx(run.wall_seconds + 2 * x + net.broadcast_seconds(nbytes, 2), rel=1e-12)


def test_wait_free_with_a_slow_network_skips_starts_and_discards():
    """Cross average 4.5 steps long, every 2, max_staleness 3: each average is seen done
    5 steps after its start (staleness 5 > 3: discarded); the two boundaries in between
    start nothing (one is in flight), so starts come every 6 steps: 2, 8, ..., 56; the
    one started at 56 is still in flight at step 60."""
    c = 0.01
    slow = NetworkModel(4.5 * c / 2, 0.0, "ring")  # two leaders: 2 alpha = 4.5 steps
    run = simulate(
        2, 1, 60, ComputeModel.constant(c), slow, parameter_bytes=8, every=2, max_staleness=3, wait_free=True
    )
    assert list(run.started) == [10, 10] and list(run.discarded_stale) == [9, 9] and list(run.completed) == [0, 0]
    assert list(run.abandoned_at_finish) == [1, 1] and run.waits.sum() == 0 and set(run.staleness) == {5}
    np.testing.assert_allclose(run.step_seconds, c)  # a wait-free group never waits
    # the same network with bounded staleness 2: every average waited for, 0.025 s each time
    bounded = simulate(2, 1, 60, ComputeModel.constant(c), slow, parameter_bytes=8, every=2, max_staleness=2)
    assert list(bounded.started) == [30, 30] and bounded.discarded_stale.sum() == 0
    assert bounded.waits.sum() == 2 * 29 and bounded.wait_seconds[0] == pytest.approx(29 * 2.5 * c)


@pytest.mark.parametrize("every, max_staleness", [(4, 4), (4, 2), (3, 0), (1, 1)])
def test_bounded_staleness_completes_every_average_within_the_bound(every, max_staleness):
    compute = ComputeModel.lognormal(0.01, 0.3).with_stragglers(0.05, 4.0)
    slowdown = np.ones((5, 2))
    slowdown[2] = 2.5  # one slow group
    net = NetworkModel(2e-4, 1e-9)
    run = simulate(
        5, 2, 121, compute, net, parameter_bytes=1e6, every=every, max_staleness=max_staleness, rank_slowdown=slowdown
    )
    assert (run.started == 121 // every).all(), run.started  # a start at every boundary, every group
    assert run.discarded_stale.sum() == 0 and run.matched_at_finish.sum() == 0
    assert (run.completed + run.abandoned_at_finish == run.started).all() and (run.abandoned_at_finish <= 1).all()
    assert run.staleness.max() <= max_staleness and run.applied_staleness.size == run.completed.sum()


def test_a_slow_group_slows_the_others_only_when_they_wait_for_it():
    c, net = 0.01, NetworkModel(1e-6, 1e-10)
    compute = ComputeModel.constant(c)
    slow = np.ones((4, 2))
    slow[3] = 3.0  # every rank of group 3 three times slower
    args = dict(parameter_bytes=1e5, every=4, max_staleness=4)
    fair = simulate(4, 2, 200, compute, net, wait_free=True, **args)
    free = simulate(4, 2, 200, compute, net, wait_free=True, rank_slowdown=slow, **args)
    bounded = simulate(4, 2, 200, compute, net, rank_slowdown=slow, **args)
    per_step = free.end_of_steps / 200
    # wait-free: the fast groups keep their pace (within the decision broadcasts), the slow one is 3x slower
    np.testing.assert_allclose(per_step[:3], fair.end_of_steps[:3] / 200, rtol=0.01)
    assert per_step[3] == pytest.approx(3 * per_step[0], rel=0.02)
    assert free.discarded_stale[:3].sum() > 0  # their averages wait for the slow leader's start and go stale
    # bounded staleness: each fast leader waits for the slow leader's start of every average
    assert (bounded.end_of_steps[:3] > 2.5 * fair.end_of_steps[:3]).all() and bounded.waits[:3].min() > 0
    # synchronous (one group of the same 8 ranks, two of them slow): every step is a slow one
    sync = simulate(1, 8, 200, compute, net, parameter_bytes=1e5, rank_slowdown=slow.reshape(1, 8))
    assert sync.wall_seconds / 200 == pytest.approx(3 * c + net.allreduce_seconds(1e5, 8), rel=1e-12)


def test_a_late_group_holds_up_the_first_round_by_its_start():
    """Two groups of one rank, every 4, wait-free, a cross average of half a step:
    group 1 starts 10.5 steps late. The first round completes at group 1's first start
    (its step 4, at 14.5 steps of group 0's clock) plus X, which group 0 sees at its
    step 15: staleness 11 (> 8: discarded); group 1 sees it in its next step
    (staleness 1). Later rounds pair group 0's newer starts with group 1's at its own
    pace. Without the skew every average lands one step after its start."""
    c = 0.01
    net = NetworkModel(0.25 * c, 0.0, "ring")  # two leaders: X = 2 alpha = half a step
    args = dict(parameter_bytes=8, every=4, max_staleness=8, wait_free=True)
    together = simulate(2, 1, 40, ComputeModel.constant(c), net, **args)
    assert set(together.staleness) == {1}
    late = simulate(2, 1, 40, ComputeModel.constant(c), net, start_seconds=[0.0, 10.5 * c], **args)
    assert late.staleness[0] == 11 and late.staleness[1] == 1  # round 1: group 0, then group 1
    assert late.discarded_stale[0] >= 1 and late.discarded_stale[1] == 0
    assert late.end_of_steps[1] == pytest.approx(late.end_of_steps[0] + 10.5 * c, abs=2 * c)
    np.testing.assert_allclose(together.step_seconds, c)  # wait-free: the skew changes staleness, not steps
    np.testing.assert_allclose(late.step_seconds.sum(axis=1) + np.array([0.0, 10.5 * c]), late.end_of_steps, rtol=1e-12)
    assert late.mean_staleness > together.mean_staleness
    with pytest.raises(ValueError, match="start_seconds must be 2 finite times >= 0"):
        simulate(2, 1, 40, ComputeModel.constant(c), net, start_seconds=[0.0, -1.0], **args)


def test_group_compute_is_one_draw_per_group_not_the_slowest_of_its_ranks():
    """``compute_per="group"``: the compute is the group's synchronised step (measured
    with its ranks in step), so a group of R ranks takes its mean, where the slowest of
    R independent draws of the same distribution takes more; a slow rank slows its group."""
    samples = np.array([0.01, 0.01, 0.01, 0.05])  # a heavy tail: one step in 4 is 5x slower
    compute, net = ComputeModel.empirical(samples), NetworkModel(1e-6, 1e-10)
    args = dict(parameter_bytes=1e5, seed=3)
    allreduce = net.allreduce_seconds(1e5, 8)
    group = simulate(1, 8, 4000, compute, net, compute_per="group", **args)
    ranks = simulate(1, 8, 4000, compute, net, **args)
    assert group.wall_seconds / 4000 == pytest.approx(samples.mean() + allreduce, rel=0.03)
    # the slowest of 8 independent draws: 0.05 unless all 8 are fast (probability 0.75^8)
    slowest = 0.05 - 0.04 * 0.75**8
    assert ranks.wall_seconds / 4000 == pytest.approx(slowest + allreduce, rel=0.03)
    slow = np.ones((1, 8))
    slow[0, 5] = 2.0
    slowed = simulate(1, 8, 4000, compute, net, compute_per="group", rank_slowdown=slow, **args)
    assert slowed.wall_seconds / 4000 == pytest.approx(2 * samples.mean() + allreduce, rel=0.03)
    # one rank per group: both readings agree exactly (same draws)
    one = [
        simulate(4, 1, 300, compute, net, compute_per=c, every=2, max_staleness=4, wait_free=True, **args)
        for c in ("rank", "group")
    ]
    np.testing.assert_array_equal(one[0].end_of_steps, one[1].end_of_steps)
    with pytest.raises(ValueError, match="compute_per must be 'rank' or 'group'"):
        simulate(1, 2, 10, compute, net, compute_per="node", parameter_bytes=1e5)


# ---------------------------------------------------------------------- simulation against a plain reference


def _reference(G, R, S, compute, net, *, every, m, wait_free, nbytes, snapshot, mix, overhead, slowdown, seed):
    """``AsyncAverager.after_step`` transcribed step by step, each group a coroutine,
    resumed in time order (a heap); a test of an average some leader has not started
    yet sees it pending because that leader's start lies in the future."""
    rng = np.random.default_rng(seed)
    allreduce = net.allreduce_seconds(nbytes, R) if R > 1 else 0.0
    idle, busy = _draw_steps(compute, G, R, S, allreduce, overhead, np.broadcast_to(slowdown, (G, R)), rng)
    X = net.allreduce_seconds(nbytes, G)
    decision = net.broadcast_seconds(8, R) if R > 1 else 0.0
    share = net.broadcast_seconds(nbytes, R) if R > 1 else 0.0
    starts, complete = {}, {}
    out = {k: np.zeros(G) for k in ("started", "completed", "discarded", "abandoned", "waits", "wait_seconds", "end")}
    staleness = []

    def group(g):
        t, inflight = 0.0, None
        for k in range(1, S + 1):
            t += (busy if inflight else idle)[g, k - 1]
            if inflight:
                t = yield t  # the test, at time t
                n, b = inflight
                done = n in complete and complete[n] <= t
                if not done and not wait_free and k - b >= m:
                    c = yield ("need", n)
                    out["waits"][g] += 1
                    out["wait_seconds"][g] += max(c - t, 0.0)
                    t, done = max(t, c), True
                t += decision
                if done:
                    staleness.append(k - b)
                    inflight = None
                    if k - b > m:
                        out["discarded"][g] += 1
                    else:
                        out["completed"][g] += 1
                        t += share + mix
            if k % every == 0 and inflight is None:
                t = yield t + snapshot  # the start, at its time
                n = int(out["started"][g]) + 1
                out["started"][g] += 1
                starts.setdefault(n, []).append(t)
                if len(starts[n]) == G:
                    complete[n] = max(starts[n]) + X
                    for waiter in waiting.pop(n, []):
                        heapq.heappush(heap, (max(waiter[0], complete[n]), next(order), waiter[1], complete[n]))
                inflight = (n, k)
                if not wait_free and m == 0:
                    done = n in complete and complete[n] <= t
                    if not done:
                        c = yield ("need", n)
                        out["waits"][g] += 1
                        out["wait_seconds"][g] += max(c - t, 0.0)
                        t = max(t, c)
                    staleness.append(0)
                    out["completed"][g] += 1
                    t += decision + share + mix
                    inflight = None
        out["abandoned"][g] += inflight is not None
        out["end"][g] = t

    order, heap, waiting = itertools.count(), [], {}
    coroutines = [group(g) for g in range(G)]

    def advance(g, value):
        try:
            request = coroutines[g].send(value)
        except StopIteration:
            return
        if isinstance(request, tuple):  # waits for average n
            n = request[1]
            if n in complete:
                heapq.heappush(heap, (complete[n], next(order), g, complete[n]))
            else:
                waiting.setdefault(n, []).append((0.0, g))
        else:
            heapq.heappush(heap, (request, next(order), g, request))

    for g in range(G):
        advance(g, None)
    while heap:
        _, _, g, value = heapq.heappop(heap)
        advance(g, value)
    assert not waiting, "the reference deadlocked"
    return out, np.sort(staleness)


@pytest.mark.parametrize(
    "G, R, every, m, wait_free, latency",
    [
        (4, 2, 4, 4, False, 3e-3),
        (3, 3, 5, 2, False, 1e-2),
        (4, 1, 3, 0, False, 2e-3),
        (4, 2, 2, 3, True, 1e-2),
        (5, 2, 3, 9, True, 4e-3),
        (6, 1, 1, 1, True, 5e-3),
    ],
)
def test_simulation_matches_a_step_by_step_reference(G, R, every, m, wait_free, latency):
    compute = ComputeModel.lognormal(0.01, 0.4).with_stragglers(0.05, 3.0).with_tail(2.5, 1e-3)
    net = NetworkModel(latency, 1e-9, "ring")
    slowdown = np.ones((G, R))
    slowdown[1] = 1.7  # one group slower, so the leaders drift apart
    kw = dict(every=every, max_staleness=m, wait_free=wait_free, snapshot_seconds=3e-4, mix_seconds=5e-4)
    kw.update(progress_overhead=0.2, rank_slowdown=slowdown, seed=7)
    run = simulate(G, R, 157, compute, net, parameter_bytes=5e5, **kw)
    ref, staleness = _reference(
        G,
        R,
        157,
        compute,
        net,
        every=every,
        m=m,
        wait_free=wait_free,
        nbytes=5e5,
        snapshot=3e-4,
        mix=5e-4,
        overhead=0.2,
        slowdown=slowdown,
        seed=7,
    )
    np.testing.assert_allclose(run.end_of_steps, ref["end"], rtol=1e-12)
    for name, ours in (
        ("started", run.started),
        ("completed", run.completed),
        ("discarded", run.discarded_stale),
        ("abandoned", run.abandoned_at_finish),
        ("waits", run.waits),
    ):
        np.testing.assert_array_equal(ours, ref[name], err_msg=name)
    np.testing.assert_allclose(run.wait_seconds, ref["wait_seconds"], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(np.sort(run.staleness), staleness)
    np.testing.assert_allclose(run.step_seconds.sum(axis=1), run.end_of_steps, rtol=1e-12)  # the series adds up
    if wait_free:
        assert run.started.max() - run.started.min() <= 1  # leaders never more than one start apart


# ---------------------------------------------------------------------- steps to target, time to target


def test_fit_steps_to_target_recovers_a_known_model():
    true = StepsToTarget(200.0, 0.05)
    groups = np.repeat([1, 2, 4, 8, 16], 4)  # 4 seeds each
    every = np.tile([1, 4, 4, 8], 5)
    staleness = np.tile([0.0, 1.0, 3.0, 2.0], 5)
    rng = np.random.default_rng(0)
    steps = true.steps(groups, information_age(every, staleness)) * np.exp(0.03 * rng.standard_normal(20))
    fit = fit_steps_to_target(groups, every, staleness, steps)
    assert fit.single_group_steps == pytest.approx(200, rel=0.05) and fit.penalty == pytest.approx(0.05, rel=0.25)
    assert len(fit.residuals) == 20 and fit.relative_rms == pytest.approx(0.03, rel=0.4)
    # staleness that helps is not extrapolated: the penalty is bounded below by 0
    helped = fit_steps_to_target([1, 1, 4, 4], [4] * 4, [0, 0, 2, 2], [100, 102, 90, 92])
    assert helped.penalty == 0.0 and helped.single_group_steps == pytest.approx(96, rel=0.05)
    assert fit.steps(1, 50.0) == fit.single_group_steps


def test_time_to_target_runs_the_model_steps():
    model = StepsToTarget(120.0, 0.1)
    net = NetworkModel(1e-5, 1e-9, "ring")
    sync = time_to_target(model, 1, 4, ComputeModel.constant(0.01), net, parameter_bytes=1e6)
    assert sync["steps"] == 120 and sync["converged"]
    assert sync["seconds"] == pytest.approx(120 * (0.01 + net.allreduce_seconds(1e6, 4)))
    hybrid = time_to_target(model, 4, 2, ComputeModel.lognormal(0.01, 0.2), net, parameter_bytes=1e6, every=4)
    assert hybrid["converged"] and hybrid["steps"] == math.ceil(model.steps(4, hybrid["information_age"]))
    assert hybrid["steps"] > 120 and hybrid["simulation"]["steps"] == hybrid["steps"]


def test_predict_scaling_structure():
    model = StepsToTarget(40.0, 0.05)
    compute = ComputeModel.lognormal(0.05, 0.1).with_batch_scaling(BatchScaling(0.01, 0.04 / 16), batch=16)
    out = predict_scaling(
        [1, 4, 16, 64],
        steps_model=model,
        compute=compute,
        network=INTERCONNECTS["infiniband_hdr"].network(),
        parameter_bytes=8e6,
        gradient_bytes=4e6,
        global_batch=1024,
        group_counts=(2, 4, 8),
        stragglers=(0.02, 3.0),
    )
    json.dumps(out)  # plain data
    points = {(p["nodes"], p["stragglers"]): p for p in out["points"]}
    assert set(points) == {(n, s) for n in (1, 4, 16, 64) for s in (False, True)}
    for (nodes, _), p in points.items():
        assert p["synchronous"]["groups"] == 1 and p["asynchronous"]["groups"] == nodes
        if nodes == 1:
            assert p["hybrid"] is None and p["synchronous"]["parallel_efficiency"] == pytest.approx(1.0)
            continue
        hybrid = p["hybrid"]
        assert all(nodes % c["groups"] == 0 and 1 < c["groups"] < nodes for c in hybrid["candidates"])
        assert hybrid["seconds"] == min(c["seconds"] for c in hybrid["candidates"])
    for stragglers in (False, True):
        sync = [points[n, stragglers]["synchronous"] for n in (1, 4, 16, 64)]
        efficiency = [s["parallel_efficiency"] for s in sync]
        assert all(a > b for a, b in itertools.pairwise(efficiency)), efficiency
    # stragglers: the synchronous step grows relative to a rank's mean compute as the group grows
    amplification = [
        points[n, True]["synchronous"]["seconds_per_step"] / compute.at_batch(1024 / n).mean() for n in (1, 4, 16, 64)
    ]
    assert all(a < b for a, b in itertools.pairwise(amplification)), amplification
    for n in (4, 16, 64):
        assert points[n, True]["synchronous"]["seconds"] > points[n, False]["synchronous"]["seconds"]
        assert points[n, False]["compute_seconds"] == pytest.approx(compute.at_batch(1024 / n).mean())


def test_synchronous_efficiency_falls_once_the_local_batch_is_below_t0_over_t1():
    t0, t1, batch = 1e-3, 1e-4, 320  # crossover t0 / t1 = 10 samples per node
    nodes = [1, 4, 16, 64, 320]  # local batches 320, 80, 20, 5, 1
    args = dict(
        steps_model=StepsToTarget(50.0, 0.0),
        network=NetworkModel(0.0, 0.0),  # free communication: compute alone sets the efficiency
        parameter_bytes=8,
        global_batch=batch,
        group_counts=(2,),
    )

    def efficiency(law):
        compute = ComputeModel.constant(law.seconds(8)).with_batch_scaling(law, batch=8)
        out = predict_scaling(nodes, compute=compute, **args)
        return [p["synchronous"]["parallel_efficiency"] for p in out["points"]]

    affine = efficiency(BatchScaling(t0, t1))
    expected = [(t0 + t1 * batch) / (n * t0 + t1 * batch) for n in nodes]
    np.testing.assert_allclose(affine, expected, rtol=1e-9)
    assert affine[1] > 0.9, affine  # 80 samples per node, 8x the crossover: the fixed cost is a small part
    assert all(e < 0.5 for e in affine[3:]), affine  # 5 and 1 samples per node: the step floors at t0
    assert all(a > b for a, b in itertools.pairwise(affine)), affine
    # a step linear in the batch (the old assumption) would scale perfectly however small the batch
    np.testing.assert_allclose(efficiency(BatchScaling(0.0, t1)), 1.0, rtol=1e-9)


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: NetworkModel(-1e-6, 1e-9), "alpha must be a finite number >= 0"),
        (lambda: NetworkModel(1e-6, 1e-9, "butterfly"), "algorithm must be one of"),
        (lambda: NetworkModel(1e-6, 1e-9).allreduce_seconds(1e6, 0), "ranks must be integers >= 1"),
        (lambda: fit_network([2, 4], [1e3, 1e3], [1e-5, 2e-5]), "two or more message sizes"),
        (lambda: fit_network([2, 4], [1e3, 1e6], [1e-5, 0.0]), "seconds must be finite and > 0"),
        (lambda: fit_network([1, 4], [1e3, 1e6], [1e-5, 2e-5]), "2 or more ranks"),
        (lambda: ComputeModel("constant", seconds=-1.0), "seconds must be a finite number > 0"),
        (lambda: ComputeModel.constant(0.0), "seconds must be a finite number > 0"),
        (lambda: ComputeModel.constant(1.0).with_stragglers(1.5, 2.0), "probability must be in"),
        (lambda: ComputeModel.constant(1.0).with_stragglers(0.1, 0.5), "slowdown must be >= 1"),
        (lambda: ComputeModel.constant(1.0).with_tail(1.0, 1e-3), "index must be > 1"),
        (lambda: ComputeModel.empirical([0.1]), "at least 2"),
        (lambda: fit_batch_scaling([1, 2], [1e-3]), r"one length, got shapes \(2,\) and \(1,\)"),
        (lambda: fit_batch_scaling([-1, 2], [1e-3, 2e-3]), r"batches must be finite local batches > 0, got \[-1.0"),
        (lambda: fit_batch_scaling([4, 4], [1e-3, 2e-3]), "two or more distinct batches"),
        (lambda: fit_batch_scaling([1, 2], [1e-3, -2e-3]), "seconds must be finite step times > 0"),
        (lambda: ComputeModel.fit_batches([1, 2], [[1e-3, 2e-3]]), "got 2 batches and 1 sample sets"),
        (lambda: ComputeModel.fit_batches([-1, 2], [[1e-3] * 2] * 2), "batches entry must be .* > 0, got -1"),
        (lambda: ComputeModel.fit_batches([1, 1], [[1e-3] * 2] * 2), "batches must be distinct"),
        (lambda: ComputeModel.fit_batches([1, 2], [[1e-3] * 2] * 2, reference=4), "reference=4.0 is not one"),
        (lambda: ComputeModel.constant(1.0).at_batch(4), "has no batch dependence"),
        (lambda: _batched().at_batch(-2), "batch must be a finite number of samples > 0, got -2"),
        (lambda: _batched().at_batch(0), "batch must be a finite number of samples > 0, got 0"),
        (lambda: ComputeModel.constant(1.0).with_batch_scaling(0.5, batch=1), "scaling must be a BatchScaling"),
        (lambda: BatchScaling(-1e-3, 1e-4), "fixed_seconds must be a finite number of seconds >= 0, got -0.001"),
        (lambda: BatchScaling(0, 0.0), "both 0"),
        (lambda: BatchScaling(1e-3, 1e-4).seconds(-1), "batch must be finite and >= 0, got -1"),
        (lambda: _sim(groups=0), "groups must be a positive integer, got 0"),
        (lambda: _sim(every=4, max_staleness=5), "max_staleness=5 > every=4"),
        (lambda: _sim(wait_free=True, max_staleness=0), "would discard every average"),
        (lambda: _sim(rank_slowdown=np.ones((3, 2))), "rank_slowdown must broadcast to"),
        (lambda: _sim(steps=10**7), "exceeds"),
        (lambda: _sim(compute=0.01), "compute must be a ComputeModel"),
        (lambda: _sim(gradient_bytes=[]), "gradient_bytes must be a size in bytes"),
        (lambda: _sim(network=object()), "network must have"),
        (lambda: fit_steps_to_target([2, 4], [4, 4], [1, 1], [10, 12]), "one group and with several"),
        (lambda: predict_scaling([1, 2048], **_predict_args()), "global_batch=1024 is smaller than 2048"),
        (lambda: predict_scaling([4], stragglers=0.1, **_predict_args()), "stragglers must be"),
        (lambda: predict_scaling([4], **_predict_args(compute_batch=16)), "compute_batch=16 is no longer taken"),
        (lambda: predict_scaling([4], **_predict_args(compute=ComputeModel.constant(0.01))), "no batch dependence"),
    ],
)
def test_bad_input_says_what_and_how_to_fix(call, match):
    with pytest.raises(ValueError, match=match) as error:
        call()
    assert "Fix:" in str(error.value) or "must be" in str(error.value)


def _sim(groups=4, steps=10, compute=None, network=None, **kw):
    compute = ComputeModel.constant(0.01) if compute is None else compute
    network = NetworkModel(1e-6, 1e-9) if network is None else network
    return simulate(groups, 2, steps, compute, network, parameter_bytes=8, **kw)


def _batched():
    return ComputeModel.constant(0.01).with_batch_scaling(BatchScaling(5e-3, 5e-3), batch=1)


def _predict_args(**changes):
    return dict(
        dict(
            steps_model=StepsToTarget(10.0, 0.1),
            compute=_batched(),
            network=NetworkModel(1e-6, 1e-9),
            parameter_bytes=8,
            global_batch=1024,
        ),
        **changes,
    )
