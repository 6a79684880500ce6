"""Incompressible Navier-Stokes on the periodic MAC grid: numerics and bad input.

The Taylor-Green vortex (an exact solution) gives the spatial order and the viscous
decay rate; the projection is checked for round-off divergence, idempotence and
leaving divergence-free fields alone; gradients through a rollout are checked against
central finite differences; the explicit (CFL) limit is shown to be the real one;
Kolmogorov-forced flow stays within a rigorous energy bound.
"""

import contextlib
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from nnpde import ProjectedRK, advection_extents
from problems import taylor_green
from solvers import pressure
from solvers.navier_stokes import NavierStokes2D, kolmogorov_forcing
from tests._fits import fitted_slope, report

TWO_PI = ((0.0, 2 * math.pi), (0.0, 2 * math.pi))
# eqx.error_if failures inside compiled code (see tests/test_errors.py).
RUNTIME_ERRORS = (RuntimeError, ValueError)


@contextlib.contextmanager
def raises(exc_type, match, *more):
    """``pytest.raises`` plus further regexes that must all occur in the message."""
    with pytest.raises(exc_type, match=match) as info:
        yield info
    message = str(info.value)
    for pattern in more:
        assert re.search(pattern, message), f"pattern {pattern!r} not in the message:\n{message}"


def _grid(n):
    return nnpde.Grid((n, n), extent=TWO_PI)


def _random_velocity(grid, seed, *, divergence_free=False, mean_zero=True):
    u = jax.random.normal(jax.random.PRNGKey(seed), (2, *grid.shape))
    if mean_zero:
        u = u - u.mean(axis=(1, 2), keepdims=True)
    if divergence_free:
        u = pressure.project(u, grid, nnpde.BoundaryConditions.periodic(2))
    return u


# ---------------------------------------------------------------------------------------
# Taylor-Green: spatial order and viscous decay
# ---------------------------------------------------------------------------------------
SIZES = (16, 32, 64)


@pytest.fixture(scope="module")
def taylor_green_runs():
    # dt = 0.01 with RK4: the temporal error (~ (4 nu dt)^4 on the resolved mode) is
    # below 1e-12, far under the smallest spatial error (1e-4 at 64^2).
    return {n: taylor_green.solve(n, viscosity=0.1, t_end=1.0, dt=0.01, n_saves=5) for n in SIZES}


def test_taylor_green_converges_at_second_order(taylor_green_runs):
    """Max-norm velocity error at t = 1 against the exact vortex: fitted slope >= 1.9
    (the scheme is second order; 1.9 allows for the higher-order terms at 16^2)."""
    steps = [2 * math.pi / n for n in SIZES]
    errors = [float(taylor_green_runs[n].max_error[-1]) for n in SIZES]
    assert fitted_slope(steps, errors) >= 1.9, report("Taylor-Green max error", steps, errors)
    # and the dataset is what it says: exact at t = 0, error = numerical - analytic
    ds = taylor_green_runs[32]
    assert float(ds.max_error[0]) == 0.0
    assert np.array_equal(ds.u_error.values, ds.u.values - ds.u_analytic.values)
    assert ds.u.dims == ("time", "x_face", "y") and ds.v.dims == ("time", "x", "y_face")


def test_taylor_green_energy_decays_at_four_nu(taylor_green_runs):
    """The fitted decay rate of the kinetic energy is 4 nu up to the discretisation
    error, and that error is the modified wavenumber's: the 5-point Laplacian damps
    the (1, 1) mode at 4 nu (2 sin(h/2) / h)^2, a relative error p = -h^2/12 + O(h^4).
    The advection conserves energy and keeps the discrete vortex's shape, so (a) the
    relative rate error converges at fitted order >= 1.9 and (b) the rate equals the
    prediction 4 nu (1 - p) to 1e-10 relative: RK4 changes the per-step factor by
    (4 nu dt)^5 / 120 ~ 1e-14 (a rate error ~1e-12) and the log of the energies is
    exact to ~1e-16 / 0.25 (measured deviations 1e-13)."""
    nu = 0.1
    steps, rate_errors, deviations = [], [], []
    for n in SIZES:
        ds = taylor_green_runs[n]
        rate = -np.polyfit(ds.time.values, np.log(ds.kinetic_energy.values), 1)[0]
        h = 2 * math.pi / n
        predicted = 4 * nu * (math.sin(h / 2) / (h / 2)) ** 2
        steps.append(h)
        rate_errors.append(abs(rate - 4 * nu) / (4 * nu))
        deviations.append(abs(rate - predicted) / (4 * nu))
        # the initial discrete energy is the continuous one (exact trapezoid sums of sin^2)
        assert abs(ds.kinetic_energy.values[0] - math.pi**2) < 1e-12 * math.pi**2
    figures = report("relative decay-rate error", steps, rate_errors) + f"; deviation from prediction {deviations}"
    assert fitted_slope(steps, rate_errors) >= 1.9, figures
    assert max(deviations) < 1e-10, figures


@pytest.mark.parametrize("advection", ["central", "van_leer"])
def test_translated_taylor_green_converges_at_second_order(advection):
    """The vortex carried by a uniform flow (1, 0.5) (Galilean invariance): now the
    advection's dispersion error enters (10x the stationary vortex's error); both flux
    schemes keep second order in the max norm at t = 1 (fitted slope >= 1.9)."""
    steps = [2 * math.pi / n for n in SIZES]
    errors = [
        float(
            taylor_green.solve(n, 0.1, 1.0, dt=0.01, n_saves=2, background=(1.0, 0.5), advection=advection).max_error[
                -1
            ]
        )
        for n in SIZES
    ]
    assert fitted_slope(steps, errors) >= 1.9, report(f"translated Taylor-Green ({advection})", steps, errors)


# ---------------------------------------------------------------------------------------
# The projection
# ---------------------------------------------------------------------------------------
def test_projection_leaves_round_off_divergence():
    """max|D P u| h / max|P u| < 1e-10 for a random field. In float64 the FFT solve
    leaves ~ eps log N relative residual (measured ~1e-15), so 1e-10 is far above
    round-off and far below any discretisation-size divergence (~1 for a random field)."""
    grid = nnpde.Grid((48, 40), extent=((0.0, 3.0), (0.0, 2.0)))  # unequal spacings
    bc = nnpde.BoundaryConditions.periodic(2)
    u = _random_velocity(grid, 0, mean_zero=False)
    h = min(grid.spacing)
    before = float(jnp.max(jnp.abs(pressure.divergence(u, grid)))) * h / float(jnp.max(jnp.abs(u)))
    projected = pressure.project(u, grid, bc)
    after = float(jnp.max(jnp.abs(pressure.divergence(projected, grid)))) * h / float(jnp.max(jnp.abs(projected)))
    assert after < 1e-10, (before, after)
    assert before > 0.1, before  # the random field was far from divergence-free
    # the mean flow (not a gradient on a periodic grid) is untouched
    assert float(jnp.max(jnp.abs(projected.mean(axis=(1, 2)) - u.mean(axis=(1, 2))))) < 1e-14


def test_projection_is_idempotent_and_removes_only_the_gradient():
    """P P u = P u; P w = w for a divergence-free w; u - P u is a discrete gradient
    orthogonal to P u. All to round-off: relative 1e-12 (measured ~1e-15)."""
    grid = _grid(32)
    bc = nnpde.BoundaryConditions.periodic(2)
    u = _random_velocity(grid, 1)
    pu = pressure.project(u, grid, bc)
    scale = float(jnp.max(jnp.abs(u)))
    idempotence = float(jnp.max(jnp.abs(pressure.project(pu, grid, bc) - pu))) / scale
    assert idempotence < 1e-12, idempotence

    # a divergence-free field built from a stream function: u = d psi/dy, v = -d psi/dx
    psi = jax.random.normal(jax.random.PRNGKey(2), grid.shape)
    hx, hy = grid.spacing
    w = jnp.stack([(jnp.roll(psi, -1, 1) - psi) / hy, -(jnp.roll(psi, -1, 0) - psi) / hx])
    assert float(jnp.max(jnp.abs(pressure.divergence(w, grid)))) < 1e-12 * float(jnp.max(jnp.abs(w))) / hx
    unchanged = float(jnp.max(jnp.abs(pressure.project(w, grid, bc) - w))) / float(jnp.max(jnp.abs(w)))
    assert unchanged < 1e-12, unchanged

    # the removed part is G p with the pressure of the solve, and orthogonal to P u
    removed = u - pu
    grad_p = pressure.gradient(pressure.pressure(u, grid, bc), grid)
    assert float(jnp.max(jnp.abs(removed - grad_p))) < 1e-12 * scale
    assert abs(float(jnp.sum(removed * pu))) < 1e-12 * float(jnp.sum(u * u))


def test_poisson_solve_matches_the_five_point_laplacian():
    """The FFT solve inverts D G = 5-point Laplacian on zero-mean data; mean(p) = 0."""
    grid = nnpde.Grid((24, 16), extent=((0.0, 1.0), (0.0, 2.0)))
    bc = nnpde.BoundaryConditions.periodic(2)
    rhs = jax.random.normal(jax.random.PRNGKey(3), grid.shape)
    rhs = rhs - rhs.mean()
    p = pressure.solve_poisson(rhs, grid, bc)
    residual = pressure.divergence(pressure.gradient(p, grid), grid) - rhs
    assert float(jnp.max(jnp.abs(residual))) < 1e-12 * float(jnp.max(jnp.abs(rhs))), float(jnp.max(residual))
    assert abs(float(p.mean())) < 1e-14


def test_central_advection_conserves_energy():
    """<u, div(u u)> = 0 for a discretely divergence-free u (the skew-symmetric MAC
    divergence form, Morinishi et al. 1998), to round-off relative to |u|^2 max|u|/h;
    the van Leer fluxes only dissipate."""
    grid = _grid(32)
    u = _random_velocity(grid, 4, divergence_free=True)
    h = grid.spacing[0]
    scale = float(jnp.sum(u * u)) * float(jnp.max(jnp.abs(u))) / h
    central = float(jnp.sum(u * NavierStokes2D(grid, viscosity=0.0).momentum_flux_divergence(u)))
    van_leer = float(jnp.sum(u * NavierStokes2D(grid, viscosity=0.0, advection="van_leer").momentum_flux_divergence(u)))
    assert abs(central) < 1e-13 * scale, (central, scale)
    assert van_leer > 0.0, van_leer


# ---------------------------------------------------------------------------------------
# Gradients through a rollout
# ---------------------------------------------------------------------------------------
def test_gradients_through_rollout_match_finite_differences():
    """d loss / d u0 (along a fixed random direction) and d loss / d nu through 20
    projected RK4 steps against central differences. With eps = 1e-5 the difference
    quotient's truncation (eps^2 |L'''| / 6) and round-off (1e-16 |L| / eps) errors are
    both ~1e-10 relative; the bar 1e-4 leaves a wide margin (measured 4e-10 for u0,
    1e-8 for nu)."""
    grid = _grid(16)
    u0 = taylor_green.initial_velocity(grid) + 0.3 * _random_velocity(grid, 5, divergence_free=True)
    weights = _random_velocity(grid, 6, mean_zero=False)
    direction = _random_velocity(grid, 7, mean_zero=False)

    @jax.jit
    def loss(u, nu):
        eq = NavierStokes2D(grid, viscosity=nu)
        final = nnpde.rollout(ProjectedRK(eq, dt=0.05), u, 20, trajectory=False)
        return jnp.sum(weights * final) + eq.kinetic_energy(final)

    nu0 = 0.05
    grad_u, grad_nu = jax.jit(jax.grad(loss, argnums=(0, 1)))(u0, nu0)
    eps = 1e-5
    fd_u = (loss(u0 + eps * direction, nu0) - loss(u0 - eps * direction, nu0)) / (2 * eps)
    fd_nu = (loss(u0, nu0 + eps) - loss(u0, nu0 - eps)) / (2 * eps)
    ad_u = float(jnp.sum(grad_u * direction))
    error_u = abs(ad_u - float(fd_u)) / abs(float(fd_u))
    error_nu = abs(float(grad_nu) - float(fd_nu)) / abs(float(fd_nu))
    figures = (
        f"u0: AD {ad_u:.10e} FD {float(fd_u):.10e} ({error_u:.2e}); "
        f"nu: AD {float(grad_nu):.10e} FD {float(fd_nu):.10e} ({error_nu:.2e})"
    )
    assert error_u < 1e-4 and error_nu < 1e-4, figures


# ---------------------------------------------------------------------------------------
# The explicit (CFL) limit
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["rk4", "ssprk3"])
def test_cfl_limit_is_sharp(method):
    """A uniform diagonal flow (1, 1) plus a small divergence-free perturbation: the
    linearised operator is exactly central advection at speed (1, 1) (+ viscosity), so
    the limit 1 / (A/R + B/I) is the real one: 300 steps at the limit keep the
    perturbation bounded and the energy non-increasing (relative 1e-12: round-off of
    the energy sum), 1.5x the limit (guard off) blows up (|R(i 1.5 I)| = 10.4 for RK4,
    2.1 for SSP-RK3)."""
    grid = _grid(32)
    eq = NavierStokes2D(grid, viscosity=1e-3)  # cell Reynolds number ~200: advection-dominated
    perturbation = _random_velocity(grid, 8, divergence_free=True)
    u0 = jnp.ones((2, 32, 32)) + 1e-3 * perturbation / jnp.max(jnp.abs(perturbation))
    limit = nnpde.max_stable_dt(eq, method, u=u0)
    r, i = advection_extents(method)
    assert abs(limit - 1.0 / (eq.spectral_radius(0.0, u0) / r + eq.advective_radius(0.0, u0) / i)) < 1e-15
    energy0 = float(eq.kinetic_energy(u0))
    # the perturbation's speed changes max|u| by round-off from step to step: guard off
    at_limit = nnpde.rollout(ProjectedRK(eq, dt=limit, method=method, check_stability=False), u0, 300, trajectory=False)
    beyond = nnpde.rollout(
        ProjectedRK(eq, dt=1.5 * limit, method=method, check_stability=False), u0, 300, trajectory=False
    )
    growth = float(jnp.max(jnp.abs(at_limit - 1.0))) / 1e-3
    energy_change = float(eq.kinetic_energy(at_limit)) / energy0 - 1.0
    blown = float(jnp.max(jnp.abs(beyond)))
    assert growth <= 1.0 and energy_change <= 1e-12, (growth, energy_change)
    assert not blown < 1e3, blown


@pytest.mark.parametrize("advection", ["central", "van_leer"])
def test_kolmogorov_flow_stays_bounded(advection):
    """Kolmogorov forcing f = (sin 4y, 0), nu = 0.05, 32^2, 300 RK4 steps (t = 12)
    from a small zero-mean perturbation: the run stays finite, below the CFL guard
    (on), and within the semi-discrete energy bound
    |u|^2 <= max(|u0|^2, |f|^2 / (nu^2 lam_k min(lam_k, 2 lam_1))), lam_m = (2 sin(m h/2)/h)^2
    (advection conserves or dissipates energy; the forced modes are damped at lam_k,
    the others at >= lam_1), while the forcing drives the energy up."""
    grid = _grid(32)
    k, nu = 4, 0.05
    force = kolmogorov_forcing(grid, wavenumber=k)
    eq = NavierStokes2D(grid, viscosity=nu, forcing=force, advection=advection)
    u0 = 0.1 * _random_velocity(grid, 9, divergence_free=True)
    states = nnpde.rollout(ProjectedRK(eq, dt=0.04), u0, 300)
    energies = np.array([float(eq.kinetic_energy(s)) for s in states])
    h = grid.spacing[0]
    lam1, lamk = (2 * math.sin(h / 2) / h) ** 2, (2 * math.sin(k * h / 2) / h) ** 2
    norm_f2 = 2 * float(eq.kinetic_energy(force))
    bound = 0.5 * max(2 * float(eq.kinetic_energy(u0)), norm_f2 / (nu**2 * lamk * min(lamk, 2 * lam1)))
    assert bool(jnp.all(jnp.isfinite(states)))
    assert energies.max() <= bound, (energies.max(), bound)
    assert energies[-1] > 10 * float(eq.kinetic_energy(u0)), (energies[-1], float(eq.kinetic_energy(u0)))
    assert float(jnp.max(jnp.abs(eq.divergence(states[-1])))) * h < 1e-10 * float(jnp.max(jnp.abs(states[-1])))


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------
def test_cfl_violation_is_refused_with_the_limit_and_the_fix():
    grid = _grid(16)
    eq = NavierStokes2D(grid, viscosity=0.01)
    u = taylor_green.initial_velocity(grid) * 10.0
    limit = nnpde.max_stable_dt(eq, u=u)
    stepper = ProjectedRK(eq, dt=2 * limit)
    with raises(ValueError, "exceeds", re.escape(f"{limit:.6g}"), "CFL", "Fix", "stable_dt"):
        stepper(u)
    # inside a rollout (traced): refused at run time, with the admissible velocity
    with raises(RUNTIME_ERRORS, "CFL", "Fix"):
        jax.block_until_ready(nnpde.rollout(stepper, u, 3))
    # the admissible velocity it names is the check's own boundary, also with van Leer
    # fluxes (their upwind dissipation adds 2 B to the real spectral radius; the
    # message once left it out and named about 3x the admissible value)
    for advection in ("central", "van_leer"):
        flow = NavierStokes2D(grid, viscosity=0.01, advection=advection)
        checked = ProjectedRK(flow, dt=0.2)
        with raises(RUNTIME_ERRORS, "must have") as error:
            jax.block_until_ready(jax.jit(lambda v, s=checked: s(v))(u))
        bound = float(re.search(r"max\|u_a\|/h_a <= ([0-9.e+]+)", str(error.value)).group(1))
        scale = bound / float(flow.advective_radius(0.0, u))
        jax.block_until_ready(jax.jit(lambda v, s=checked: s(v))(0.999 * scale * u))  # admitted
        with raises(RUNTIME_ERRORS, "must have"):
            jax.block_until_ready(jax.jit(lambda v, s=checked: s(v))(1.001 * scale * u))
    # the viscous part alone at construction
    viscous = NavierStokes2D(grid, viscosity=10.0)
    with raises(ValueError, "viscous limit", "Fix"):
        ProjectedRK(viscous, dt=1.0)
    # methods with no imaginary-axis stability
    with raises(ValueError, "unstable for central advection", "rk4"):
        ProjectedRK(eq, dt=1e-3, method="heun")


def test_bad_velocity_input():
    grid = _grid(8)
    eq = NavierStokes2D(grid, viscosity=0.1)
    stepper = ProjectedRK(eq, dt=0.01)
    u = jnp.zeros((2, 8, 8))
    with raises(ValueError, "non-finite", "Fix"):
        nnpde.rollout(stepper, u.at[1, 2, 3].set(jnp.nan), 2)
    with raises(ValueError, re.escape("(3, 8, 8)"), re.escape("(2, 8, 8)")):
        nnpde.rollout(stepper, jnp.zeros((3, 8, 8)), 2)
    with raises(ValueError, "jax.vmap"):
        nnpde.rollout(stepper, jnp.zeros((4, 2, 8, 8)), 2)
    with raises(ValueError, "forcing", re.escape("(2, 8, 8)")):
        NavierStokes2D(grid, viscosity=0.1, forcing=jnp.zeros((8, 8)))


def test_bad_configuration():
    with raises(ValueError, "viscosity", ">= 0", "-0.1", "Fix"):
        NavierStokes2D(_grid(8), viscosity=-0.1)
    with raises(ValueError, "viscosity", "nan"):
        NavierStokes2D(_grid(8), viscosity=float("nan"))
    with raises(ValueError, "at least 4 cells", re.escape("(3, 8)"), "Fix"):
        NavierStokes2D(nnpde.Grid((3, 8)), viscosity=0.1)
    with raises(ValueError, "2-D grid", "Fix"):
        NavierStokes2D(nnpde.Grid((8, 8, 8)), viscosity=0.1)
    with raises(ValueError, "advection"):
        NavierStokes2D(_grid(8), viscosity=0.1, advection="quick")
    walls = nnpde.BoundaryConditions(nnpde.Periodic(), nnpde.Neumann(0.0))
    with raises(ValueError, "periodic axes only", "Fix"):
        NavierStokes2D(_grid(8), viscosity=0.1, bc=walls)
    # the singular periodic Poisson problem is never solved silently
    grid = _grid(8)
    with raises(ValueError, "zero mean", "Fix"):
        pressure.solve_poisson(jnp.ones(grid.shape), grid, nnpde.BoundaryConditions.periodic(2))
    # a traced negative viscosity is caught at run time
    with raises(RUNTIME_ERRORS, "viscosity"):
        jax.block_until_ready(jax.jit(lambda nu: NavierStokes2D(grid, viscosity=nu).spectral_radius(0.0, None))(-1.0))


# ---------------------------------------------------------------------------------------
# The hand-written reverse-mode rule (differentiation="adjoint") and forward Euler / Heun
# with upwind-limited fluxes
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(16, 16), (16, 12)])
@pytest.mark.parametrize("advection", ["central", "van_leer"])
def test_adjoint_equals_autodiff(advection, shape):
    """The periodic right-hand side's hand-written VJP (the default) against JAX's own
    differentiation of the same stencils (float64): the VJPs w.r.t. the velocity and the
    viscosity agree to round-off (measured 3e-16 relative), as do the forward values
    (the same stencil code, compiled on its own). Forward mode through the autodiff
    variant agrees with the adjoint's reverse mode. The rest of a step is the same code
    in both, so rollout gradients follow; ``test_gradients_through_rollout_match_finite_differences``
    checks them (through the adjoint) against finite differences. The 16 x 12 grid has
    unequal spacings, so an axis swapped in the adjoint shows."""
    grid = nnpde.Grid(shape, extent=((0.0, 2 * math.pi), (0.0, 3 * math.pi)))
    u0 = taylor_green.initial_velocity(grid) + 0.5 * _random_velocity(grid, 11, divergence_free=True)
    cotangent = _random_velocity(grid, 12, mean_zero=False)
    direction = _random_velocity(grid, 13, mean_zero=False)
    forcing = kolmogorov_forcing(grid)

    def rate(u, nu, differentiation):
        eq = NavierStokes2D(grid, viscosity=nu, forcing=forcing, advection=advection, differentiation=differentiation)
        return eq(0.0, u)

    results = {}
    for differentiation in ("adjoint", "autodiff"):
        results[differentiation] = jax.jit(
            lambda u, nu, g, d=differentiation: (lambda value, vjp: (value, *vjp(g)))(
                *jax.vjp(lambda u, nu: rate(u, nu, d), u, nu)
            )
        )(u0, 0.02, cotangent)
    adjoint, autodiff = results["adjoint"], results["autodiff"]
    for a, b in zip(adjoint, autodiff):
        assert float(jnp.max(jnp.abs(a - b))) <= 1e-12 * float(jnp.max(jnp.abs(b))), (a, b)
    forward = jax.jit(lambda u, du: jax.jvp(lambda v: rate(v, 0.02, "autodiff"), (u,), (du,))[1])(u0, direction)
    assert abs(float(jnp.sum(forward * cotangent)) - float(jnp.sum(adjoint[1] * direction))) < 1e-10 * float(
        jnp.sum(jnp.abs(forward * cotangent))
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_van_leer_is_finite_beside_flat_runs(dtype):
    """A flat run of cells beside a jump: the downwind difference is exactly 0 while the
    upwind one is not. Forming the slope ratio ``r = b / f`` there overflowed for a jump
    above about 2 (``r + |r|`` became inf and the flux ``inf / inf = NaN``), in float32
    and float64 alike. A band of ``u = 3`` in still fluid is such a field. The limited
    slope is 0 where either difference is 0, so the face value is the upwind cell's:
    the band's flux is exact, the right-hand side, a step and its gradient finite, and
    elsewhere the slope equals the textbook ``phi(r) f``."""
    from nnpde import fd

    for height in (1.0, 3.0, 1e3):
        c = jnp.zeros(20, dtype).at[8:12].set(height)  # ghost width 2: cells 2..17 are interior
        flux = fd.advective_flux(c, jnp.ones(17, dtype), 0, ndim=1, width=2, scheme="van_leer")
        # face i lies between interior cells i-1 and i: velocity 1, so the upwind value
        np.testing.assert_array_equal(np.asarray(flux), np.asarray(c[1:18]))
    b, f = jax.random.normal(jax.random.PRNGKey(0), (2, 1000), dtype)
    r = b / f
    textbook = (r + jnp.abs(r)) / (1 + jnp.abs(r)) * f
    np.testing.assert_allclose(fd.van_leer_slope(b, f), textbook, rtol=1e-5, atol=1e-6)

    grid = _grid(16)
    u = jnp.zeros((2, 16, 16), dtype).at[0, :, 4:8].set(3.0)  # divergence-free: u(y) only
    eq = NavierStokes2D(grid, viscosity=1e-3, advection="van_leer")
    assert bool(jnp.isfinite(eq(0.0, u)).all())
    step = ProjectedRK(eq, dt=0.01, method="rk4")
    loss = jax.jit(lambda u: jnp.sum(step(step(u)) ** 2))
    value, grad = jax.value_and_grad(loss)(u)
    assert math.isfinite(float(value)) and bool(jnp.isfinite(grad).all())


def test_unknown_differentiation_is_refused():
    with pytest.raises(ValueError, match="differentiation must be one of"):
        NavierStokes2D(_grid(8), viscosity=0.1, differentiation="forward")


def test_forward_euler_and_heun_with_van_leer_converge_at_their_orders():
    """Forward Euler and Heun are admitted with van Leer fluxes (total-variation
    diminishing below ``1 / forward_euler_rate``); against an RK4 run at 1/8 the step
    their errors at t = 0.5 fall at orders 1 and 2 (measured 1.03, 1.01 and 2.07,
    2.03 on a Kolmogorov-forced 32^2 flow)."""
    from problems import kolmogorov

    grid = kolmogorov.make_grid(32)
    u0 = jnp.asarray(kolmogorov.initial_velocity(grid, 0, max_velocity=3.0))
    eq = kolmogorov.make_equation(grid, advection="van_leer")
    t_end, steps = 0.5, (50, 100, 200)
    assert t_end / steps[0] < nnpde.max_stable_dt(eq, "forward_euler", u=u0)
    reference = nnpde.rollout(ProjectedRK(eq, dt=t_end / 400, method="rk4"), u0, 400, trajectory=False)
    for method, order in (("forward_euler", 1.0), ("heun", 2.0)):
        errors = [
            float(
                jnp.max(
                    jnp.abs(
                        nnpde.rollout(ProjectedRK(eq, dt=t_end / k, method=method), u0, k, trajectory=False) - reference
                    )
                )
            )
            for k in steps
        ]
        orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
        print(f"{method} van Leer: errors {errors}, orders {orders}")
        assert np.all(np.abs(orders - order) < 0.15), (method, errors, orders)


def test_forward_euler_limit_and_refusals():
    """The forward-Euler limit is ``1 / (2 B + A / 2 + drag)``; a step beyond it is refused
    with the limit and the fix, and forward Euler with central fluxes is refused at any dt."""
    from problems import kolmogorov

    grid = kolmogorov.make_grid(32)
    u0 = jnp.asarray(kolmogorov.initial_velocity(grid, 0, max_velocity=3.0))
    eq = kolmogorov.make_equation(grid, advection="van_leer")
    viscous = 4.0 * eq.flow.viscosity * sum(1.0 / h**2 for h in grid.spacing)
    expected = 1.0 / (2.0 * eq.advective_radius(0.0, u0) + viscous / 2 + eq.drag)
    limit = nnpde.max_stable_dt(eq, "forward_euler", u=u0)
    assert abs(limit - float(expected)) < 1e-12 * limit
    assert nnpde.max_stable_dt(eq, "heun", u=u0) == limit  # SSP coefficient 1
    with pytest.raises(ValueError, match=r"total-variation-diminishing limit .*Fix: use dt <="):
        ProjectedRK(eq, dt=1.2 * limit, method="forward_euler")(u0)
    with pytest.raises(ValueError, match="unstable for central advection at any dt"):
        ProjectedRK(kolmogorov.make_equation(grid, advection="central"), dt=1e-4, method="forward_euler")
