"""Analytic and invariant checks of the heat solver.

Fourier modes decay as exp(-kappa |k|^2 t) up to the discretisation error; the
discrete maximum principle holds; total heat is conserved to round-off with periodic
and zero-flux walls; the fast transform solve equals the CG solve; the spectral-radius
bound behind the stability guard holds for the real operator.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
import solvers
from tests._fits import fitted_slope, report

KAPPA = 0.3


def _mode_problem(n, ndim, wavenumbers):
    grid = nnpde.Grid((n,) * ndim, extent=tuple((0.0, 2 * np.pi) for _ in range(ndim)))
    eq = solvers.HeatEquation(grid, nnpde.BoundaryConditions.periodic(ndim), conductivity=KAPPA)
    x = grid.cell_centres()
    u0 = jnp.ones(grid.shape)
    for xa, k in zip(x, wavenumbers):
        u0 = u0 * jnp.cos(k * xa + 0.1)
    return eq, u0[None]


@pytest.mark.parametrize("ndim,wavenumbers", [(1, (3,)), (2, (2, 3)), (3, (1, 2, 1))])
def test_fourier_mode_decays_at_the_analytic_rate(ndim, wavenumbers):
    """The measured decay rate converges to kappa |k|^2 at second order in h."""
    t_end = 0.5
    k2 = sum(k * k for k in wavenumbers)
    sizes = (8, 16, 32) if ndim == 3 else (16, 32, 64)
    steps_h, rate_errors = [], []
    for n in sizes:
        eq, u0 = _mode_problem(n, ndim, wavenumbers)
        stepper = nnpde.ThetaMethod(eq, dt=t_end / 200, method="crank_nicolson")
        final = nnpde.rollout(stepper, u0, 200, trajectory=False)
        # The mode keeps its shape: the amplitude ratio gives the rate.
        ratio = float(jnp.sum(final * u0) / jnp.sum(u0 * u0))
        rate = -np.log(ratio) / t_end
        rate_errors.append(abs(rate - KAPPA * k2) / (KAPPA * k2))
        steps_h.append(eq.grid.spacing[0])
        # the field is the initial mode times exp(-rate t) to round-off
        assert float(jnp.max(jnp.abs(final - ratio * u0))) < 1e-10
    # relative rate error of the 3-point stencil is (k h)^2 / 12 per axis; check order
    assert fitted_slope(steps_h, rate_errors) >= 1.9, report("decay rate", steps_h, rate_errors)
    assert rate_errors[-1] < 0.01, rate_errors


def test_fourier_mode_matches_analytic_field_explicit():
    """Explicit RK4 at 64^2: the field equals exp(-kappa |k|^2 t) * mode within the
    discretisation error predicted by the modified wavenumber."""
    eq, u0 = _mode_problem(64, 2, (2, 3))
    dt = nnpde.stable_dt(eq, "rk4")
    steps = int(np.ceil(0.2 / dt))
    final = nnpde.rollout(nnpde.ExplicitRK(eq, dt=0.2 / steps), u0, steps, trajectory=False)
    h = eq.grid.spacing[0]
    analytic = u0 * np.exp(-KAPPA * 13 * 0.2)
    discrete_rate = KAPPA * sum(4 / h**2 * np.sin(k * h / 2) ** 2 for k in (2, 3))
    predicted = abs(np.exp(-discrete_rate * 0.2) - np.exp(-KAPPA * 13 * 0.2))
    error = float(jnp.max(jnp.abs(final - analytic)))
    assert error <= 1.01 * predicted + 1e-12, (error, predicted)


def _random_field(grid, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), (1, *grid.shape))


def _variable_k(grid):
    x, y = grid.cell_centres()
    return 0.5 + 0.4 * jnp.sin(3 * x) ** 2 + 0.3 * (y > 0.5)  # smooth part and a jump


@pytest.mark.parametrize(
    "make",
    [
        lambda eq: nnpde.ThetaMethod(eq, dt=0.05, method="backward_euler", solver="cg"),
        lambda eq: nnpde.ExplicitRK(eq, dt=0.5 * nnpde.max_stable_dt(eq, "forward_euler"), method="forward_euler"),
    ],
    ids=["backward_euler", "forward_euler"],
)
def test_maximum_principle(make):
    """With no source, T stays within [min, max] of its initial and boundary values.

    Backward Euler is monotone for any dt (an M-matrix); forward Euler when
    dt * diag <= 1, which half the stability limit guarantees.
    """
    grid = nnpde.Grid((24, 20))
    bc = nnpde.BoundaryConditions((nnpde.Dirichlet(0.2), nnpde.Dirichlet(0.9)), nnpde.Neumann(0.0))
    eq = solvers.HeatEquation(grid, bc, conductivity=_variable_k(grid))
    u0 = _random_field(grid)
    traj = nnpde.rollout(make(eq), u0, 60)
    lo, hi = min(float(u0.min()), 0.2), max(float(u0.max()), 0.9)
    assert float(traj.min()) >= lo - 1e-12, (float(traj.min()), lo)
    assert float(traj.max()) <= hi + 1e-12, (float(traj.max()), hi)
    # and the principle is not trivially met: the extremes move inwards
    assert float(traj[-1].max() - traj[-1].min()) < float(u0.max() - u0.min())


@pytest.mark.parametrize("walls", ["periodic", "zero_flux", "mixed"])
@pytest.mark.parametrize("stepper", ["rk4", "crank_nicolson_cg", "crank_nicolson_spectral"])
def test_total_heat_is_conserved(walls, stepper):
    grid = nnpde.Grid((20, 16), extent=((0.0, 2.0), (0.0, 1.0)))
    bc = {
        "periodic": nnpde.BoundaryConditions.periodic(2),
        "zero_flux": nnpde.BoundaryConditions.neumann(2, 0.0),
        "mixed": nnpde.BoundaryConditions(nnpde.Periodic(), nnpde.Neumann(0.0)),
    }[walls]
    variable = stepper != "crank_nicolson_spectral"
    eq = solvers.HeatEquation(
        grid,
        bc,
        conductivity=_variable_k(grid) if variable else 0.7,
        heat_capacity=(1.0 + 0.5 * _random_field(grid, 1)[0]) if variable else 2.0,
    )
    if stepper == "rk4":
        make = nnpde.ExplicitRK(eq, dt=nnpde.stable_dt(eq, "rk4"))
    else:
        # An iterative solve conserves to its tolerance: ask for one below the assertion.
        make = nnpde.ThetaMethod(eq, dt=0.01, solver=stepper.rsplit("_", 1)[1], rtol=1e-14)
    u0 = _random_field(grid)
    traj = nnpde.rollout(make, u0, 100)
    total0 = float(eq.total_heat(u0))
    drift = max(abs(float(eq.total_heat(u)) - total0) for u in traj) / abs(total0)
    assert drift < 1e-12, drift
    assert float(jnp.max(jnp.abs(traj[-1] - u0))) > 1e-3  # it did evolve


def test_boundary_heat_flux_balances_total_heat():
    """Neumann data k dT/dn is heat entering: d/dt total = sum over walls of k g * area,
    plus the source; exact for the discrete flux form (forward Euler, one step)."""
    grid = nnpde.Grid((10, 12), extent=((0.0, 1.0), (0.0, 2.0)))
    g_left, g_top = 0.3, -0.7
    bc = nnpde.BoundaryConditions(
        (nnpde.Neumann(g_left), nnpde.Neumann(0.0)), (nnpde.Neumann(0.0), nnpde.Neumann(g_top))
    )
    k, q = 1.7, 0.25
    eq = solvers.HeatEquation(grid, bc, conductivity=k, source=q)
    u0 = _random_field(grid)
    dt = nnpde.stable_dt(eq, "forward_euler")
    u1 = nnpde.ExplicitRK(eq, dt=dt, method="forward_euler")(u0)
    rate = (float(eq.total_heat(u1)) - float(eq.total_heat(u0))) / dt
    expected = k * g_left * 2.0 + k * g_top * 1.0 + q * 2.0
    assert abs(rate - expected) < 1e-10 * max(1.0, abs(expected)), (rate, expected)


@pytest.mark.parametrize(
    "spec",
    [
        (nnpde.Periodic(), nnpde.Periodic()),
        (nnpde.Dirichlet(1.0), nnpde.Dirichlet(0.0)),
        (nnpde.Neumann(0.5), nnpde.Neumann(-0.2)),
        (nnpde.Periodic(), nnpde.Dirichlet(0.3)),
        (nnpde.Neumann(0.0), nnpde.Periodic()),
    ],
    ids=["periodic", "dirichlet", "neumann", "periodic-dirichlet", "neumann-periodic"],
)
def test_spectral_solve_equals_cg(spec):
    grid = nnpde.Grid((18, 14), extent=((0.0, 1.0), (0.0, 0.7)))
    eq = solvers.HeatEquation(grid, nnpde.BoundaryConditions(*spec), conductivity=0.4, source=1.0, heat_capacity=2.0)
    u0 = _random_field(grid)
    spectral = nnpde.ThetaMethod(eq, dt=0.05, solver="spectral")
    cg = nnpde.ThetaMethod(eq, dt=0.05, solver="cg", rtol=1e-13, atol=1e-13)
    assert nnpde.ThetaMethod(eq, dt=0.05).solver == "spectral"  # "auto" picks the fast solve
    a = nnpde.rollout(spectral, u0, 5)
    b = nnpde.rollout(cg, u0, 5)
    assert float(jnp.max(jnp.abs(a - b))) < 1e-10


def _dense_jacobian_eigenvalues(eq):
    size = eq.grid.size
    jac = jax.jit(jax.jacfwd(lambda v: eq(0.0, v.reshape(eq.state_shape)).ravel()))(jnp.zeros(size))
    return np.linalg.eigvals(np.asarray(jac))


@pytest.mark.parametrize("order", [2, 4])
@pytest.mark.parametrize("n", [8, 16, 33, 64])
def test_spectral_radius_bounds(order, n):
    """The bound behind the explicit stability guard holds for the assembled operator,
    and its spectrum is real and non-positive (the operator is dissipative)."""
    grid = nnpde.Grid((n, 6))
    bc = nnpde.BoundaryConditions((nnpde.Dirichlet(0.0), nnpde.Neumann(0.0)), nnpde.Dirichlet(0.0))
    k = 0.8 if order == 4 else _variable_k(grid)
    eq = solvers.HeatEquation(grid, bc, conductivity=k, heat_capacity=1.3, order=order)
    lam = _dense_jacobian_eigenvalues(eq)
    bound = float(eq.spectral_radius(0.0, None))
    assert np.max(np.abs(lam)) <= bound, (np.max(np.abs(lam)), bound)
    assert np.max(lam.real) <= 1e-9 and np.max(np.abs(lam.imag)) <= 1e-6 * bound


def test_explicit_at_the_stability_limit_stays_bounded_and_beyond_it_blows_up():
    """The guard's limit is the real one: RK4 at the limit stays bounded, at 1.3x the
    limit (with the guard off) the highest mode grows."""
    grid = nnpde.Grid((32,))
    eq = solvers.HeatEquation(grid, nnpde.BoundaryConditions.periodic(1), conductivity=1.0)
    (x,) = grid.cell_centres()
    u0 = (jnp.cos(np.pi * 32 * x) + 0.1 * jnp.sin(2 * np.pi * x))[None]  # highest mode present
    limit = float(nnpde.max_stable_dt(eq, "rk4"))
    at_limit = nnpde.rollout(nnpde.ExplicitRK(eq, dt=limit), u0, 400, trajectory=False)
    beyond = nnpde.rollout(nnpde.ExplicitRK(eq, dt=1.3 * limit, check_stability=False), u0, 400, trajectory=False)
    assert float(jnp.max(jnp.abs(at_limit))) <= float(jnp.max(jnp.abs(u0)))
    assert not float(jnp.max(jnp.abs(beyond))) < 1e3


def test_time_dependent_dirichlet_and_source_reach_steady_state():
    """1-D rod, T(0) = 1 (ramped up in time), T(1) = 0, uniform source q: the steady
    state is T = 1 - x + q x (1 - x) / (2 k). The 3-point stencil is exact for this
    quadratic in the interior; the cell-centred wall ghost (2 g - T_0) shifts the whole
    discrete solution by exactly q h^2 / (8 k), a known property we check to round-off."""
    n, k, q = 40, 0.5, 2.0
    grid = nnpde.Grid((n,))
    bc = nnpde.BoundaryConditions((nnpde.Dirichlet(lambda t: 1.0 - jnp.exp(-50 * t)), nnpde.Dirichlet(0.0)))
    eq = solvers.HeatEquation(grid, bc, conductivity=k, source=q)
    stepper = nnpde.ThetaMethod(eq, dt=0.05, method="backward_euler")
    final = nnpde.rollout(stepper, jnp.zeros((1, n)), 400, trajectory=False)
    (x,) = grid.cell_centres()
    steady = 1 - x + q * x * (1 - x) / (2 * k)
    shift = q * grid.spacing[0] ** 2 / (8 * k)
    assert float(jnp.max(jnp.abs(final[0] - steady - shift))) < 1e-9
