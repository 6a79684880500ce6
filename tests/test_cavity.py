"""Walls in the incompressible solver and the lid-driven cavity (Ghia et al. 1982).

* The DCT (Neumann) projection with walls on one or both axes: round-off
  divergence, zero normal velocity on the walls, idempotence.
* The wall scheme equals the periodic central scheme on a periodic grid.
* A cavity run: no-slip and lid conditions, mass conservation (zero net flux through
  every grid line), steady state, and the centrelines against Ghia et al. at Re = 100.

Measured max deviation from Ghia et al. at Re = 100 (u on x = 0.5 and v on y = 0.5,
17 points each), u / v: 32^2 0.0054 / 0.0070, 64^2 0.0052 / 0.0086, 128^2 0.0048 /
0.0091 (scripts/validate_cavity.py, ~100 s). It does not shrink with resolution: our centrelines change by < 0.002
between 64^2 and 128^2, so what remains (largest at v near x = 0.86) is the
reference's own error, not ours. The test runs 64^2 (~10 s) with the 0.02 bound the
issue sets for 128^2: the 64^2 profiles are within 0.002 of the 128^2 ones.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from problems import lid_driven_cavity
from solvers import pressure
from solvers.navier_stokes import NavierStokes2D, wall_rate, walls

BOXES = {
    "box": walls(),
    "channel": walls(x="periodic", y=(0.0, 1.0)),
    "moving_x_walls": walls(x=(0.3, -1.0), y="periodic"),
}


def _grid():
    return nnpde.Grid((16, 12), extent=((0.0, 1.0), (0.0, 1.5)))


def _random(grid, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (2, *grid.shape))


@pytest.mark.parametrize("name", sorted(BOXES))
def test_projection_with_walls(name):
    grid, bc = _grid(), BOXES[name]
    u = _random(grid)
    p_u = pressure.project(u, grid, bc)
    div = float(jnp.max(jnp.abs(pressure.divergence(p_u, grid, bc))))
    before = float(jnp.max(jnp.abs(pressure.divergence(pressure.enforce_walls(u, grid, bc), grid, bc))))
    assert div < 1e-12 * before, f"{name}: max|D P u| = {div:.3e} (before: {before:.3e})"
    for a in range(2):
        if not bc.is_periodic(a):
            wall = np.asarray(jnp.take(p_u[a], 0, axis=a))
            assert np.all(wall == 0.0), f"{name}: normal velocity on the wall of axis {a}: {wall}"
    again = float(jnp.max(jnp.abs(pressure.project(p_u, grid, bc) - p_u)))
    assert again < 1e-13, f"{name}: P P u - P u = {again:.3e}"
    # the pressure has the explicit gauge mean(p) = 0
    p = pressure.pressure(u, grid, bc)
    assert abs(float(jnp.mean(p))) < 1e-13, f"{name}: mean(p) = {float(jnp.mean(p)):.3e}"


def test_dct_poisson_matches_neumann_laplacian():
    """``solve_poisson`` with walls inverts the 5-point Laplacian with ``dp/dn = 0``."""
    grid, bc = _grid(), walls()
    rhs = _random(grid)[0]
    rhs = rhs - rhs.mean()
    p = pressure.solve_poisson(rhs, grid, bc)
    padded = jnp.pad(p, 1, mode="edge")  # Neumann ghosts p_-1 = p_0
    hx, hy = grid.spacing
    lap = (padded[2:, 1:-1] - 2 * p + padded[:-2, 1:-1]) / hx**2 + (
        padded[1:-1, 2:] - 2 * p + padded[1:-1, :-2]
    ) / hy**2
    err = float(jnp.max(jnp.abs(lap - rhs)))
    assert err < 1e-10 * float(jnp.max(jnp.abs(rhs))), f"residual {err:.3e}"


def test_wall_scheme_reduces_to_periodic_central():
    grid = nnpde.Grid((16, 12), extent=((0.0, 2 * np.pi), (0.0, 2 * np.pi)))
    u = _random(grid, 1)
    eq = NavierStokes2D(grid, viscosity=0.1)
    diff = float(jnp.max(jnp.abs(eq(0.0, u) - wall_rate(u, grid, nnpde.BoundaryConditions.periodic(2), 0.1))))
    assert diff < 1e-12, f"wall scheme vs periodic scheme: {diff:.3e}"


def test_bad_wall_configurations():
    with pytest.raises(ValueError, match="periodic axis has no wall"):
        walls(x="periodic", y="lid")
    with pytest.raises(ValueError, match="free-slip"):
        NavierStokes2D(_grid(), viscosity=0.1, bc=nnpde.BoundaryConditions(nnpde.Neumann(0.0), nnpde.Periodic()))
    with pytest.raises(ValueError, match="central"):
        NavierStokes2D(_grid(), viscosity=0.1, bc=walls(), advection="van_leer")
    with pytest.raises(ValueError, match="solver='dct'"):
        pressure.solve_poisson(jnp.zeros((16, 12)), _grid(), walls(), solver="fft")


@pytest.fixture(scope="module")
def cavity_64():
    return lid_driven_cavity.solve(100.0, 64, t_end=40.0, tol=1e-5)


def test_cavity_wall_conditions_and_mass(cavity_64):
    ds = cavity_64
    u, v = ds.u.values, ds.v.values
    lid = u[1:-1, -1]
    assert np.max(np.abs(lid - 1.0)) < 1e-14, f"lid speed off 1 by {np.abs(lid - 1).max():.3e}"
    for name, wall in (("bottom u", u[:, 0]), ("left u", u[0, :-1]), ("right u", u[-1, :-1]), ("bottom v", v[:, 0])):
        assert np.max(np.abs(wall)) < 1e-14, f"{name}: max {np.max(np.abs(wall)):.3e}"
    for name, wall in (("top v", v[:, -1]), ("left v", v[0]), ("right v", v[-1])):
        assert np.max(np.abs(wall)) < 1e-14, f"{name}: max {np.max(np.abs(wall)):.3e}"
    assert float(ds.max_divergence) < 1e-12, f"max|div| = {float(ds.max_divergence):.3e}"
    assert ds.attrs["converged"], f"residual {ds.attrs['residual']:.3e} at t = {ds.attrs['t_final']}"


def test_cavity_mass_conservation_on_every_line():
    """Net flux through each vertical and horizontal grid line is zero (walls seal the box)."""
    grid = lid_driven_cavity.make_grid(32)
    eq = NavierStokes2D(grid, viscosity=0.01, bc=walls(y=(0.0, 1.0)))
    stepper = nnpde.ProjectedRK(eq, dt=0.01)
    u = nnpde.rollout(stepper, jnp.zeros(eq.state_shape), 100, trajectory=False)
    hx, hy = grid.spacing
    flux_x = np.abs(np.asarray(u[0]).sum(axis=1) * hy).max()
    flux_y = np.abs(np.asarray(u[1]).sum(axis=0) * hx).max()
    speed = float(jnp.max(jnp.abs(u)))
    assert speed > 0.1, f"the lid set no flow in motion: max speed {speed}"
    assert max(flux_x, flux_y) < 1e-13, f"net flux through a grid line: x {flux_x:.3e}, y {flux_y:.3e}"


def test_cavity_against_ghia_re100(cavity_64):
    dev = lid_driven_cavity.compare_to_ghia(cavity_64)
    assert dev["max"] < 0.02, (
        f"64^2 Re 100: max |u - Ghia| {dev['max_u']:.4f}, max |v - Ghia| {dev['max_v']:.4f}\n"
        f"u deviations {np.round(dev['u'], 4)}\nv deviations {np.round(dev['v'], 4)}"
    )
