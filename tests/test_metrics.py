"""nnpde.metrics: errors, correlations, spectra and conservation on fields whose
answers are known in closed form."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from nnpde import metrics


def _random(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


def test_relative_l2_of_a_known_perturbation():
    # reference 1 everywhere on (2, 8, 8): ||r|| = sqrt(128); perturb step t by t * 0.1 in one cell
    r = jnp.ones((3, 2, 8, 8))
    p = r.at[:, 0, 3, 4].add(jnp.array([0.0, 0.1, 0.2]))
    err = metrics.relative_l2(p, r, ndim=2)
    expected = np.array([0.0, 0.1, 0.2]) / math.sqrt(128)
    assert err.shape == (3,)
    assert np.allclose(err, expected, rtol=1e-12), f"got {err}, expected {expected}"
    # a single state gives a scalar; a scaled field is off by the scale
    single = metrics.relative_l2(1.05 * r[0], r[0], ndim=2)
    assert single.shape == () and abs(float(single) - 0.05) < 1e-12, f"got {single}"
    assert np.allclose(metrics.rollout_error(p, r), expected, rtol=1e-12)
    # under jit too
    assert np.allclose(jax.jit(lambda a, b: metrics.relative_l2(a, b, ndim=2))(p, r), expected, rtol=1e-12)


def test_relative_l2_and_rollout_error_reject_bad_input():
    r = jnp.ones((3, 1, 8))
    with pytest.raises(ValueError, match="zero norm"):
        metrics.relative_l2(r, r.at[1].set(0.0), ndim=1)
    with pytest.raises(ValueError, match="same shape"):
        metrics.rollout_error(r, r[:2])
    with pytest.raises(ValueError, match="ndim"):
        metrics.relative_l2(r, r, ndim=4)
    with pytest.raises(ValueError, match=r"\(T, C, \*spatial\)"):
        metrics.rollout_error(r[0], r[0])


def test_correlation_with_itself_and_its_negative():
    u = _random((4, 2, 16, 16)) + 3.0  # an offset must not matter: the mean is removed
    same = metrics.correlation(u, u, ndim=2)
    neg = metrics.correlation(-u, u, ndim=2)
    assert same.shape == (4,)
    assert np.allclose(same, 1.0, atol=1e-12), f"self-correlation {same}"
    assert np.allclose(neg, -1.0, atol=1e-12), f"correlation with the negative {neg}"
    # scale- and shift-invariant
    assert np.allclose(metrics.correlation(2.0 * u - 7.0, u, ndim=2), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="constant"):
        metrics.correlation(jnp.ones((2, 16)), u[0, :, 0], ndim=1)


def test_correlation_time_of_a_rotating_mode_matches_the_analytic_crossing():
    # reference sin(2 pi x) for all t; prediction drifts: sin(2 pi (x - c t)).
    # Their correlation is cos(2 pi c t): below 0.8 at t* = arccos(0.8) / (2 pi c).
    n, c, dt, n_t = 64, 0.05, 0.01, 400
    x = (np.arange(n) + 0.5) / n
    t = np.arange(n_t) * dt
    reference = np.broadcast_to(np.sin(2 * np.pi * x), (n_t, 1, n))
    prediction = np.sin(2 * np.pi * (x[None] - c * t[:, None]))[:, None]
    rho = metrics.correlation(prediction, reference, ndim=1)
    assert np.allclose(rho, np.cos(2 * np.pi * c * t), atol=1e-12)
    measured = float(metrics.correlation_time(prediction, reference, dt=dt, threshold=0.8))
    analytic = math.acos(0.8) / (2 * np.pi * c)
    # linear interpolation between steps: far better than one step
    assert abs(measured - analytic) < 0.01 * dt, f"measured {measured}, analytic {analytic}, dt {dt}"
    # never below the threshold: the whole horizon; below from the start: 0
    assert float(metrics.correlation_time(reference, reference, dt=dt)) == pytest.approx((n_t - 1) * dt)
    assert float(metrics.correlation_time(-reference, reference, dt=dt)) == 0.0
    jitted = jax.jit(lambda p, r: metrics.correlation_time(p, r, dt=dt))(prediction, reference)
    assert abs(float(jitted) - analytic) < 0.01 * dt
    # a prediction that blows up (inf, then NaN) at step 30, still well correlated at
    # step 29: decorrelated there, the crossing at the last finite step, not the horizon
    blown = np.array(reference)
    blown[30] = np.inf
    blown[31:] = np.nan
    assert float(metrics.correlation_time(blown, reference, dt=dt)) == pytest.approx(29 * dt)
    assert float(metrics.correlation_time(blown, reference, dt=dt, threshold=0.8)) == pytest.approx(29 * dt)


def test_energy_spectrum_of_a_single_mode_1d_and_2d():
    # 1-D: u = A cos(3 k0 x) on L = 2: energy density A^2 / 4 in shell 3, k = 3 pi
    grid = nnpde.Grid((32,), ((0.0, 2.0),))
    (x,) = grid.cell_centres()
    amplitude = 1.7
    k, e = metrics.energy_spectrum((amplitude * jnp.cos(3 * np.pi * x))[None], grid)
    assert int(np.argmax(e)) == 3 and float(k[3]) == pytest.approx(3 * np.pi)
    assert float(e[3]) == pytest.approx(amplitude**2 / 4, rel=1e-12), f"E = {e}"
    assert float(e.sum() - e[3]) < 1e-20, f"energy outside the mode's shell: {e}"
    # 2-D: wavevector (3, 4) * 2 pi / L has |k| = 5 dk, in one channel of two
    grid = nnpde.Grid((16, 16), ((0.0, 2 * np.pi), (0.0, 2 * np.pi)))
    x, y = grid.cell_centres()
    u = jnp.stack([amplitude * jnp.sin(3 * x + 4 * y), jnp.zeros_like(x)])
    k, e = metrics.energy_spectrum(u, grid)
    assert int(np.argmax(e)) == 5 and float(k[5]) == pytest.approx(5.0)
    assert float(e[5]) == pytest.approx(amplitude**2 / 4, rel=1e-12), f"E = {e}"
    assert float(e.sum() - e[5]) < 1e-20
    # a spacing instead of a grid gives the same spectrum
    k2, e2 = metrics.energy_spectrum(u, grid.spacing)
    assert np.allclose(k2, k) and np.allclose(e2, e)


@pytest.mark.parametrize("shape", [(48,), (16, 12), (8, 6, 10)])
def test_energy_spectrum_obeys_parseval(shape):
    u = _random((2, *shape), seed=len(shape))
    spacing = tuple(0.1 * (a + 1) for a in range(len(shape)))
    _, e = jax.jit(metrics.energy_spectrum, static_argnums=1)(u, spacing)
    expected = 0.5 * float(jnp.mean(jnp.sum(u**2, axis=0)))
    assert float(e.sum()) == pytest.approx(expected, rel=1e-12), f"sum E = {float(e.sum())}, expected {expected}"
    assert bool(jnp.all(e >= 0))


def test_energy_spectrum_rejects_a_wrong_grid():
    with pytest.raises(ValueError, match="on this grid"):
        metrics.energy_spectrum(jnp.zeros((1, 8, 8)), nnpde.Grid((8, 16)))
    with pytest.raises(ValueError, match="positive spacing"):
        metrics.energy_spectrum(jnp.zeros((1, 8, 8)), -1.0)


def test_spectrum_error_zero_for_identical_fields_positive_otherwise():
    grid = nnpde.Grid((32, 32))
    u = _random((2, 32, 32), seed=3)
    same = float(metrics.spectrum_error(u, u, grid))
    assert same == 0.0, f"identical fields: {same}"
    # doubling the amplitude multiplies every shell by 4: error log 4 exactly
    doubled = float(metrics.spectrum_error(2 * u, u, grid))
    assert doubled == pytest.approx(math.log(4.0), rel=1e-12), f"got {doubled}"
    # smoothing removes small-scale energy
    smooth = 0.5 * (u + jnp.roll(u, 1, axis=1))
    assert float(metrics.spectrum_error(smooth, u, grid)) > 0.1


def test_conservation_error_zero_for_periodic_diffusion_and_exact_for_added_mass():
    # conservative periodic diffusion, u += nu (roll(u, 1) - 2u + roll(u, -1)) on each axis
    u0 = 3.0 + 0.5 * _random((2, 16, 16), seed=4)
    cell_volume = (1 / 16) ** 2

    def step(u):
        lap = sum(jnp.roll(u, s, axis=a) for a in (1, 2) for s in (1, -1)) - 4 * u
        return u + 0.2 * lap

    traj = [u0]
    for _ in range(20):
        traj.append(step(traj[-1]))
    traj = jnp.stack(traj)
    drift = metrics.conservation_error(traj, cell_volume=cell_volume)
    assert drift.shape == (21, 2)
    assert float(jnp.max(jnp.abs(drift))) < 1e-14, f"max drift {float(jnp.max(jnp.abs(drift)))}"
    # add mass m per step to channel 0 only (positive field: relative to the initial total)
    m = 0.01
    added = traj.at[:, 0].add(jnp.arange(21)[:, None, None] * m / (256 * cell_volume))
    drift = metrics.conservation_error(added, cell_volume=cell_volume)
    total0 = float(jnp.sum(u0[0]) * cell_volume)
    assert float(jnp.sum(jnp.abs(u0[0]))) == pytest.approx(float(jnp.sum(u0[0])))  # sign-definite here
    expected = np.arange(21) * m / total0
    assert np.allclose(drift[:, 0], expected, rtol=1e-10, atol=1e-15), f"got {drift[:, 0]}, expected {expected}"
    assert float(jnp.max(jnp.abs(drift[:, 1]))) < 1e-14
    # a zero initial field gets the absolute drift
    zero = jnp.zeros((3, 1, 4)).at[2, 0, 1].set(1.0)
    assert np.allclose(metrics.conservation_error(zero, cell_volume=0.5)[:, 0], [0.0, 0.0, 0.5])


def _ladder(n_states, noise, seed=0):
    """Scores ``2 log2 n`` (a correlation time growing by 2 per doubling) with paired noise."""
    rng = np.random.default_rng(seed)
    resolutions = np.array([32.0, 64.0, 128.0, 256.0])
    state_effect = rng.normal(0.0, noise, n_states)  # some states are harder for everyone
    ladder = 2.0 * np.log2(resolutions)[:, None] + state_effect[None] + rng.normal(0, noise / 4, (4, n_states))
    return resolutions, ladder, state_effect


def test_equivalent_resolution_recovers_a_known_resolution_and_its_interval_narrows():
    resolutions, ladder, state_effect = _ladder(64, 0.0)
    model = 2.0 * np.log2(90.0) + state_effect  # scores as a plain 90^2 solver would
    exact = metrics.equivalent_resolution(model, ladder, resolutions, coarse=32)
    assert exact["estimate"] == pytest.approx(90.0, rel=1e-12) and exact["factor"] == pytest.approx(90 / 32)
    assert exact["lower"] == pytest.approx(90.0) and exact["upper"] == pytest.approx(90.0)  # no noise, no spread
    assert exact["censored"] is None and exact["censored_fraction"] == 0.0

    widths = []
    for n_states in (8, 128):
        resolutions, ladder, state_effect = _ladder(n_states, 0.5, seed=n_states)
        rng = np.random.default_rng(n_states + 1)
        model = 2.0 * np.log2(90.0) + state_effect + rng.normal(0, 0.5, n_states)
        result = metrics.equivalent_resolution(model, ladder, resolutions, level=0.9, resamples=1000)
        assert result["lower"] <= result["estimate"] <= result["upper"]
        widths.append(np.log(result["upper"] / result["lower"]))
    assert widths[1] < 0.5 * widths[0], widths  # ~ 1 / sqrt(states): 4x narrower for 16x the states


def test_equivalent_resolution_is_censored_beyond_the_ruler_and_reads_errors_too():
    resolutions, ladder, effect = _ladder(16, 0.0)
    above = metrics.equivalent_resolution(2.0 * np.log2(1024.0) + effect, ladder, resolutions)
    assert above["censored"] == "above" and above["estimate"] == 256.0 and above["censored_fraction"] == 1.0
    below = metrics.equivalent_resolution(2.0 * np.log2(16.0) + effect, ladder, resolutions)
    assert below["censored"] == "below" and below["estimate"] == 32.0
    # an error halving per doubling: lower is better
    errors = 1.0 / resolutions[:, None] * np.ones((4, 16))
    result = metrics.equivalent_resolution(np.full(16, 1 / 128.0), errors, resolutions, higher_is_better=False)
    assert result["estimate"] == pytest.approx(128.0)
    with pytest.raises(ValueError, match=r"\(rungs, states\) = \(4, 16\)"):
        metrics.equivalent_resolution(np.ones(16), np.ones((4, 15)), resolutions)
    with pytest.raises(ValueError, match="increasing"):
        metrics.equivalent_resolution(np.ones(16), np.ones((4, 16)), resolutions[::-1])
    with pytest.raises(ValueError, match="finite"):
        metrics.equivalent_resolution(np.full(16, np.nan), np.ones((4, 16)), resolutions)


def test_speedup_at_equal_accuracy_interpolates_cost_and_refuses_to_extrapolate():
    resolutions = np.array([32.0, 64.0, 128.0, 256.0])
    costs = (resolutions / 32.0) ** 3  # explicit 2-D flow: n^2 cells x n steps
    assert metrics.cost_at_resolution(90.0, resolutions, costs) == pytest.approx((90 / 32) ** 3)
    equivalent = {"estimate": 128.0, "lower": 100.0, "upper": 512.0, "censored": None}
    speedup = metrics.speedup_at_equal_accuracy(equivalent, resolutions, costs, model_cost=4.0)
    assert speedup["estimate"] == pytest.approx(64.0 / 4.0)
    assert speedup["lower"] == pytest.approx((100 / 32) ** 3 / 4.0)
    assert speedup["upper"] is None  # 512 lies beyond the timed rungs: no number invented
    with pytest.raises(ValueError, match="extrapolated"):
        metrics.cost_at_resolution(600.0, resolutions, costs)


def test_speedup_over_rounds_is_the_round_by_round_ratio_and_refuses_mismatched_rounds():
    resolutions = np.array([32.0, 64.0, 128.0, 256.0])
    costs = (resolutions / 32.0) ** 3
    drift = np.array([1.0, 1.5, 0.8])  # a round when the machine ran slower slows both sides
    plain, model = costs[:, None] * drift, 4.0 * drift * np.array([1.0, 1.0, 1.25])
    spread = metrics.speedup_over_rounds({"estimate": 128.0}, resolutions, plain, model)
    assert spread["rounds"] == pytest.approx([16.0, 16.0, 12.8])  # the common drift cancels, the model's own does not
    assert (spread["median"], spread["min"], spread["max"]) == pytest.approx((16.0, 12.8, 16.0))
    beyond = metrics.speedup_over_rounds({"estimate": 512.0}, resolutions, plain, model)
    assert beyond == {"rounds": None, "median": None, "min": None, "max": None}
    with pytest.raises(ValueError, match=r"plain_rounds must be \(rungs, rounds\) = \(4, 2\)"):
        metrics.speedup_over_rounds({"estimate": 128.0}, resolutions, plain, model[:2])


def test_paired_ratio_is_the_ratio_of_means_with_a_paired_interval():
    """Two models on the same states: the ratio of their means; the pairing matters
    (scores that move together state by state give a narrow interval, the same scores
    shuffled a wide one), and the interval holds the estimate."""
    rng = np.random.default_rng(1)
    base = rng.uniform(1.0, 3.0, 16)  # states differ a lot
    better = 1.1 * base * rng.uniform(0.98, 1.02, 16)
    paired = metrics.paired_ratio(better, base)
    assert paired["estimate"] == pytest.approx(better.mean() / base.mean())
    assert paired["lower"] < paired["estimate"] < paired["upper"]
    assert 1.0 < paired["lower"] and paired["upper"] < 1.2 and paired["larger_on"] == 16 and paired["states"] == 16
    unpaired = metrics.paired_ratio(rng.permutation(better), base)
    assert unpaired["upper"] - unpaired["lower"] > 5 * (paired["upper"] - paired["lower"])
    with pytest.raises(ValueError, match="same states"):
        metrics.paired_ratio(better, base[:8])
    with pytest.raises(ValueError, match="finite and positive"):
        metrics.paired_ratio(np.append(better[:-1], np.inf), base)
    with pytest.raises(ValueError, match="level"):
        metrics.paired_ratio(better, base, level=90.0)
