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
