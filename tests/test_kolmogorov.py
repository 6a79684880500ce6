"""Kolmogorov flow (problems.kolmogorov): a long forced run stays bounded and
divergence-free, the isotropic spectrum is exact on known fields, and the seeded
initial velocity is divergence-free and reproducible."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from problems import kolmogorov
from solvers.navier_stokes import face_centres


@pytest.fixture(scope="module")
def long_run():
    # 32^2, t = 40 (4 drag times): ~7600 RK4 steps at the CFL-derived dt.
    return kolmogorov.solve(32, t_end=40.0, seed=1, n_saves=5, n_energy=81)


def test_long_run_stays_finite_bounded_and_divergence_free(long_run):
    ds = long_run
    assert ds.attrs["n_steps"] >= 3000
    assert all(np.isfinite(ds[v].values).all() for v in ("u", "v", "vorticity", "kinetic_energy"))
    # Energy budget: dE/dt = <f, u> - 2 alpha E - (viscous) <= |f| sqrt(2E) - 2 alpha E, so E
    # stays below max(E0, |f|^2 / (2 alpha^2)) with |f|^2 = A^2 * area / 2 (f = A sin(4y)).
    area = (2 * math.pi) ** 2
    bound = max(float(ds.kinetic_energy[0]), 1.0**2 * area / 2 / (2 * 0.1**2))
    assert float(ds.kinetic_energy.max()) <= bound
    # ... and the flow is really forced turbulence, not decayed to rest
    assert float(ds.kinetic_energy[-20:].min()) > 1.0
    # divergence-free to round-off (float64): |div u| ~ eps * max|u| / h
    scale = float(np.abs(ds.u).max()) / (2 * math.pi / 32)
    assert float(ds.max_divergence.max()) < 1e-11 * scale


def test_spectrum_of_a_single_mode_sits_in_its_shell():
    grid = kolmogorov.make_grid(32)
    eq = kolmogorov.make_equation(grid)
    (_, y_u), _ = face_centres(grid)
    # u = cos(3 y): shell 3 only
    u = jnp.stack([jnp.cos(3 * y_u), jnp.zeros(grid.shape)])
    k, e = kolmogorov.energy_spectrum(u, grid)
    e = np.asarray(e)
    assert k[3] == pytest.approx(3.0)
    assert e[3] == pytest.approx(float(eq.kinetic_energy(u)), rel=1e-12)
    assert np.abs(np.delete(e, 3)).max() < 1e-12 * e[3]
    # a divergence-free diagonal mode with |k| = 5 (k = (3, 4)) from a stream function
    h = grid.spacing[0]
    # psi = sin(3x + 4y) at the corners; u = dpsi/dy, v = -dpsi/dx by MAC differences
    xc, yc = np.meshgrid(grid.axis_faces(0)[:-1], grid.axis_faces(1)[:-1], indexing="ij")
    psi = np.sin(3 * xc + 4 * yc)
    u = jnp.stack([(np.roll(psi, -1, 1) - psi) / h, -(np.roll(psi, -1, 0) - psi) / h])
    assert float(jnp.abs(eq.divergence(u)).max()) < 1e-12
    _, e = kolmogorov.energy_spectrum(u, grid)
    e = np.asarray(e)
    assert e[5] == pytest.approx(float(eq.kinetic_energy(u)), rel=1e-12)
    assert np.abs(np.delete(e, 5)).max() < 1e-12 * e[5]


def test_spectrum_parseval_on_random_fields():
    """sum_k E(k) equals the kinetic energy, for one field and a batch."""
    grid = kolmogorov.make_grid(24)
    eq = kolmogorov.make_equation(grid)
    fields = jnp.stack([kolmogorov.initial_velocity(grid, s) for s in range(3)])
    fields = fields + 0.3  # a mean flow lands in shell 0
    k, e = kolmogorov.energy_spectrum(fields, grid)
    assert e.shape == (3, len(k))
    assert len(k) == 18  # shells 0 .. rint(12 sqrt 2) = 17
    for i in range(3):
        assert float(e[i].sum()) == pytest.approx(float(eq.kinetic_energy(fields[i])), rel=1e-12)
    assert float(e[0, 0]) == pytest.approx(float(eq.kinetic_energy(jnp.full_like(fields[0], 0.3))), rel=1e-10)


def test_initial_velocity_divergence_free_and_seeded():
    grid = kolmogorov.make_grid(32)
    eq = kolmogorov.make_equation(grid)
    a = kolmogorov.initial_velocity(grid, 7, max_velocity=2.0)
    b = kolmogorov.initial_velocity(grid, 7, max_velocity=2.0)
    c = kolmogorov.initial_velocity(grid, 8, max_velocity=2.0)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert float(jnp.abs(a - c).max()) > 0.1
    assert float(jnp.abs(a).max()) == pytest.approx(2.0)
    assert float(jnp.abs(eq.divergence(a)).max()) < 1e-12 * 2.0 / grid.spacing[0]
    # the energy sits around the peak wavenumber 4, not at the grid scale
    k, e = kolmogorov.energy_spectrum(a, grid)
    e = np.asarray(e)
    assert 2 <= k[np.argmax(e)] <= 7
    assert e[k > 12].sum() < 1e-3 * e.sum()


def test_drag_enters_the_right_hand_side_and_the_stability_radius():
    grid = kolmogorov.make_grid(16)
    damped = kolmogorov.make_equation(grid, drag=0.1)
    free = kolmogorov.make_equation(grid, drag=0.0)
    u = kolmogorov.initial_velocity(grid, 0)
    assert np.allclose(np.asarray(damped(0.0, u) - free(0.0, u)), np.asarray(-0.1 * u), atol=1e-12)
    assert float(damped.spectral_radius(0.0, u)) == pytest.approx(float(free.spectral_radius(0.0, u)) + 0.1)
    with pytest.raises(ValueError, match="drag"):
        kolmogorov.make_equation(grid, drag=-1.0)


def _settled(n: int = 16, steps: int = 30):
    """A divergence-free state a few dozen plain steps into a forced run, and the stepper."""
    import nnpde
    from problems import kolmogorov_ladder as ladder

    step = ladder.stepper(n)
    u = step.equation.project(kolmogorov.initial_velocity(step.equation.grid, 5, max_velocity=2.0))
    return step, nnpde.rollout(step, u, steps)[-1]


def test_symmetries_map_solutions_to_solutions():
    """Each element of ``symmetry``'s group commutes with a step of the forced, damped
    solver (to rounding), keeps the energy and the zero divergence, and the elements
    compose as the group does; a reflection without the half-wavelength shift is not a
    symmetry (it flips the forcing), and is caught by the same check."""
    step, u = _settled()
    stepped = step(u)
    for element in range(kolmogorov.SYMMETRIES):
        mapped = kolmogorov.symmetry(u, element)
        np.testing.assert_allclose(step(mapped), kolmogorov.symmetry(stepped, element), rtol=0, atol=1e-12)
        assert float(jnp.sum(mapped**2)) == pytest.approx(float(jnp.sum(u**2)), rel=1e-14)
        assert float(jnp.max(jnp.abs(step.equation.divergence(mapped)))) < 1e-10
        if element:
            assert float(jnp.max(jnp.abs(mapped - u))) > 0.1 * float(jnp.max(jnp.abs(u)))
    rotate = lambda w: kolmogorov.symmetry(w, 2)  # noqa: E731
    np.testing.assert_array_equal(rotate(rotate(u)), u)
    np.testing.assert_array_equal(kolmogorov.symmetry(rotate(u), 1), kolmogorov.symmetry(u, 3))
    # the shift-reflection twice: a shift by one forcing wavelength (n / k cells in y)
    twice = kolmogorov.symmetry(kolmogorov.symmetry(u, 1), 1)
    np.testing.assert_array_equal(twice, jnp.roll(u, -16 // kolmogorov.WAVENUMBER, axis=-1))
    # the reflection alone (the shift undone) flips the forcing: not a symmetry
    unshifted = jnp.roll(kolmogorov.symmetry(u, 1), 16 // (2 * kolmogorov.WAVENUMBER), axis=-1)
    assert float(jnp.max(jnp.abs(step(unshifted) - jnp.roll(kolmogorov.symmetry(stepped, 1), 2, axis=-1)))) > 1e-4


def test_random_symmetry_maps_each_window_whole_and_refuses_bad_input():
    """``random_symmetry``: one element per batch member, every state of its window mapped
    the same way, all four elements drawn over a batch; bad elements and grids refused."""
    import jax

    _, u = _settled()
    windows = jnp.stack([jnp.stack([u, 2 * u, -u]) * (1 + b) for b in range(32)])  # (32, 3, 2, 16, 16)
    out = kolmogorov.random_symmetry(jax.random.key(0), windows)
    drawn = set()
    for b in range(32):
        (element,) = [e for e in range(4) if np.array_equal(out[b, 0], kolmogorov.symmetry(windows[b, 0], e))]
        np.testing.assert_array_equal(out[b], kolmogorov.symmetry(windows[b], element))
        drawn.add(element)
    assert drawn == {0, 1, 2, 3}
    with pytest.raises(ValueError, match=r"element must be in 0..3, got \[4\]"):
        kolmogorov.symmetry(u, jnp.asarray([4]))
    with pytest.raises(TypeError, match="element must be an integer"):
        kolmogorov.symmetry(u, 1.0)
    with pytest.raises(ValueError, match="Fix: a resolution divisible by 8"):
        kolmogorov.symmetry(jnp.zeros((2, 12, 12)), 1)
    with pytest.raises(ValueError, match=r"square MAC state \(..., 2, n, n\)"):
        kolmogorov.symmetry(jnp.zeros((3, 16, 16)), 1)
