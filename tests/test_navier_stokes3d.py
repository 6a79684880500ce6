"""Incompressible Navier-Stokes in 3-D (periodic MAC grid): numerics and bad input.

The translated Arnold-Beltrami-Childress flow (an exact solution with a nonzero
advection) gives the spatial order; the stationary one the viscous decay rate; the
projection leaves round-off divergence; the inviscid central scheme conserves energy
up to the time-stepping error, whose order is measured; a uniform body force
accelerates the mean flow exactly; gradients through a rollout match central finite
differences; the CFL guard refuses a step past the limit.

Compiling a 3-D step is the expensive part (several seconds on 2 shared cores), so one
jitted rollout per grid size, with the initial state, viscosity and force as traced
arguments, serves every test.
"""

import contextlib
import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from nnpde import ProjectedRK
from problems import abc_flow
from solvers import pressure
from solvers.navier_stokes3d import NavierStokes3D
from tests._fits import fitted_slope, report

# SSP-RK3 at dt = 0.05 to t = 1: its temporal error on the translated ABC flow is
# ~1e-6 (measured: halving dt changes the 16^3 error by 1.2e-6), far below the
# smallest spatial error (2.5e-2 at 16^3).
DT, STEPS, METHOD = 0.05, 20, "ssprk3"
# Two sizes: each compiles its own rollout (~10 s on 2 loaded cores). At 16^3 the
# slopes measured with (8, 12, 16) are 1.97 (error) and 1.98 (decay rate).
SIZES = (8, 12)
BACKGROUND = (1.0, 0.5, 0.25)


@contextlib.contextmanager
def raises(exc_type, match, *more):
    """``pytest.raises`` plus further regexes that must all occur in the message."""
    with pytest.raises(exc_type, match=match) as info:
        yield info
    message = str(info.value)
    for pattern in more:
        assert re.search(pattern, message), f"pattern {pattern!r} not in the message:\n{message}"


def _runner(n):
    """``(grid, run)``: ``run(u0, nu, force)`` is the trajectory of ``STEPS`` projected steps
    (``problems.abc_flow``'s compiled rollout, shared with ``abc_flow.solve``)."""
    return abc_flow.make_grid(n), abc_flow.rollout_function(n, dt=DT, n_steps=STEPS, method=METHOD)


def _normal(seed, shape):
    # NumPy, not jax.random: compiling the threefry generator takes seconds on 2 shared cores
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


def _random_velocity(grid, seed, *, divergence_free=True):
    u = _normal(seed, (3, *grid.shape))
    u = u - u.mean(axis=(1, 2, 3), keepdims=True)
    return _project(u, grid) if divergence_free else u


@functools.partial(jax.jit, static_argnums=1)
def _project(u, grid):
    return pressure.project(u, grid, nnpde.BoundaryConditions.periodic(3))


def _zero_force(grid):
    return jnp.zeros((3, *grid.shape))


# ---------------------------------------------------------------------------------------
# The ABC flow: spatial order and viscous decay
# ---------------------------------------------------------------------------------------
def test_translated_abc_flow_converges_at_second_order():
    """The ABC flow carried by a uniform flow (1, 0.5, 0.25), nu = 0.1, to t = 1: the
    advection of the pattern is now resolved by the discrete fluxes, and the max-norm
    error against the exact solution has fitted slope >= 1.9 (measured 1.99 from
    9.8e-2 at 8^3 and 4.4e-2 at 12^3)."""
    steps, errors = [], []
    for n in SIZES:
        result = abc_flow.solve(n, 0.1, DT * STEPS, dt=DT, method=METHOD, background=BACKGROUND)
        assert result["n_steps"] == STEPS and result["energy"][1] < result["energy"][0], result["energy"]
        steps.append(2 * math.pi / n)
        errors.append(result["max_error"])
    assert fitted_slope(steps, errors) >= 1.9, report("translated ABC max error", steps, errors)


def test_abc_flow_energy_decays_at_two_nu():
    """The stationary ABC flow: its discrete advection is a discrete gradient (measured
    max|P div(u u)| ~ 1e-15 against max|div(u u)| ~ 0.8), so the discrete flow keeps
    its shape and each step multiplies it by the SSP-RK3 polynomial
    R(-z) = 1 - z + z^2/2 - z^3/6 at z = nu dt (2 sin(h/2) / h)^2 (the 7-point
    Laplacian's eigenvalue): (a) the relative error of the fitted energy decay rate
    against the exact 2 nu converges at fitted order >= 1.9 and (b) the rate equals
    the discrete prediction -2 log R(-z) / dt to 1e-11 relative (the log of the
    energies is exact to ~1e-16 / (2 nu dt); measured 2e-14; leaving out R's
    error z^4 / 24 would miss by 5e-9)."""
    nu = 0.1
    steps, rate_errors, deviations = [], [], []
    for n in SIZES:
        grid, run = _runner(n)
        eq = NavierStokes3D(grid, viscosity=nu)
        u0 = abc_flow.analytic_velocity(grid, 0.0, nu)
        energies = [float(eq.kinetic_energy(s)) for s in [u0, *run(u0, nu, _zero_force(grid))]]
        times = DT * np.arange(STEPS + 1)
        rate = -np.polyfit(times, np.log(energies), 1)[0]
        h = 2 * math.pi / n
        steps.append(h)
        rate_errors.append(abs(rate - 2 * nu) / (2 * nu))
        z = nu * DT * (math.sin(h / 2) / (h / 2)) ** 2
        predicted = -2.0 * math.log(1.0 - z + z**2 / 2 - z**3 / 6) / DT
        deviations.append(abs(rate - predicted) / (2 * nu))
        # the sampled field's discrete energy is the continuous one (exact trapezoid sums)
        assert abs(energies[0] - float(abc_flow.analytic_energy(0.0, nu))) < 1e-12 * energies[0]
    figures = report("relative decay-rate error", steps, rate_errors) + f"; deviation from prediction {deviations}"
    assert fitted_slope(steps, rate_errors) >= 1.9, figures
    assert max(deviations) < 1e-11, figures


# ---------------------------------------------------------------------------------------
# Projection, energy, momentum
# ---------------------------------------------------------------------------------------
def test_projection_leaves_round_off_divergence():
    """max|D P u| h / max|P u| < 1e-10 for a random field on a 12 x 10 x 8 grid with
    unequal spacings (measured ~1e-15); P is idempotent and keeps the mean flow."""
    grid = nnpde.Grid((12, 10, 8), extent=((0.0, 3.0), (0.0, 2.0), (0.0, 1.5)))
    eq = NavierStokes3D(grid, viscosity=0.0)
    h = min(grid.spacing)

    @jax.jit  # one compilation instead of one per operation
    def figures(u):
        projected = eq.project(u)
        return (
            jnp.max(jnp.abs(eq.divergence(u))) * h / jnp.max(jnp.abs(u)),
            jnp.max(jnp.abs(eq.divergence(projected))) * h / jnp.max(jnp.abs(projected)),
            jnp.max(jnp.abs(eq.project(projected) - projected)) / jnp.max(jnp.abs(u)),
            jnp.max(jnp.abs(projected.mean(axis=(1, 2, 3)) - u.mean(axis=(1, 2, 3)))),
        )

    before, after, idempotence, mean_change = (float(v) for v in figures(_normal(0, (3, *grid.shape))))
    assert after < 1e-10 and before > 0.1, (before, after)
    assert idempotence < 1e-12 and mean_change < 1e-14, (idempotence, mean_change)


def test_inviscid_central_scheme_conserves_energy_to_the_time_stepping_error():
    """Semi-discretely <u, div(u u)> = 0 for a discretely divergence-free u (the
    skew-symmetric MAC form), to round-off relative to |u|^2 max|u|/h; van Leer only
    dissipates. Fully discrete, the inviscid energy changes only by the time-stepping
    error. Its order is measured without a second compilation: the inviscid equations
    are invariant under u -> u / 2, t -> 2 t, and the discrete step is exactly so
    (the right-hand side is quadratic, the projection linear), so the run from u0 / 2
    at dt is the run from u0 at dt / 2. The relative energy change at t = 0.5 of the
    two falls by 2^p with p >= 2.9: the energy error is the global error's, O(dt^3)
    for SSP-RK3 (already in the linear case, |R(iy)|^2 = 1 - y^4 / 12 per step;
    measured p = 3.000, changes 1.2e-7 and 1.5e-8)."""
    grid, run = _runner(8)
    u0 = _random_velocity(grid, 1)
    u0 = u0 / float(jnp.max(jnp.abs(u0)))  # max|u| = 1: dt B = 0.05 * 3 / h ~ 0.2 of the CFL limit's 1.7
    h = grid.spacing[0]
    scale = float(jnp.sum(u0 * u0)) / h
    productions = jax.jit(  # one compilation for both schemes
        lambda u: [
            jnp.sum(u * NavierStokes3D(grid, viscosity=0.0, advection=a).momentum_flux_divergence(u))
            for a in ("central", "van_leer")
        ]
    )(u0)
    central, van_leer = (float(p) for p in productions)
    assert abs(central) < 1e-13 * scale and van_leer > 0.0, (central, van_leer, scale)
    eq = NavierStokes3D(grid, viscosity=0.0)
    energy0 = float(eq.kinetic_energy(u0))
    coarse = run(u0, 0.0, _zero_force(grid))[STEPS // 2 - 1]  # t = 0.5 at dt = 0.05
    fine = 2.0 * run(0.5 * u0, 0.0, _zero_force(grid))[-1]  # t = 0.5 at dt = 0.025
    changes = [abs(float(eq.kinetic_energy(s)) / energy0 - 1.0) for s in (coarse, fine)]
    order = math.log2(changes[0] / changes[1])
    assert order >= 2.9 and changes[0] < 1e-3, f"relative energy changes {changes} (dt 0.05, 0.025): order {order:.3f}"


def test_uniform_body_force_accelerates_the_mean_flow():
    """A uniform force f changes only the mean: d mean(u)/dt = f exactly (advection
    conserves momentum, the projection removes gradients of zero mean), so after
    t = 1 mean(u) = mean(u0) + f to round-off (1e-13; measured ~1e-15)."""
    grid, run = _runner(8)
    u0 = 0.5 * _random_velocity(grid, 2) + jnp.array([0.1, 0.2, -0.3])[:, None, None, None]
    f = jnp.array([0.3, -0.2, 0.1])
    final = run(u0, 0.05, jnp.broadcast_to(f[:, None, None, None], u0.shape))[-1]
    drift = float(jnp.max(jnp.abs(final.mean(axis=(1, 2, 3)) - (u0.mean(axis=(1, 2, 3)) + f * DT * STEPS))))
    assert drift < 1e-13, drift
    assert float(jnp.max(jnp.abs(pressure.divergence(final, grid)))) * grid.spacing[0] < 1e-12


# ---------------------------------------------------------------------------------------
# Gradients through a rollout
# ---------------------------------------------------------------------------------------
def test_derivatives_through_rollout_match_finite_differences():
    """The derivative of a loss through 20 projected SSP-RK3 steps on 8^3 along a random
    direction of u0, and with respect to nu, against central differences with
    eps = 1e-5: truncation and round-off errors ~1e-10-1e-9 relative, the bar 1e-6
    (measured 2.4e-9 for u0, 1.7e-9 for nu). Forward mode (``jax.jvp``) here: compiling the reverse pass of a
    3-D rollout costs ~3x the forward one on 2 shared cores, and reverse mode through
    the same operators is checked in 2-D (``tests/test_navier_stokes.py``) and through
    the 3-D-capable IMEX stepper (``tests/test_imex.py``)."""
    grid, run = _runner(8)
    u0 = abc_flow.analytic_velocity(grid, 0.0, 0.0) + 0.3 * _random_velocity(grid, 3)
    weights = _random_velocity(grid, 4, divergence_free=False)
    direction = _random_velocity(grid, 5)
    force = _zero_force(grid)

    def loss(u, nu):
        final = run(u, nu, force)[-1]
        return jnp.sum(weights * final) + 0.5 * jnp.sum(final**2)

    derivative = jax.jit(lambda du, dnu: jax.jvp(loss, (u0, nu0), (du, dnu))[1])
    nu0, eps = 0.05, 1e-5
    ad_u, ad_nu = float(derivative(direction, 0.0)), float(derivative(jnp.zeros_like(u0), 1.0))
    fd_u = float(loss(u0 + eps * direction, nu0) - loss(u0 - eps * direction, nu0)) / (2 * eps)
    fd_nu = float(loss(u0, nu0 + eps) - loss(u0, nu0 - eps)) / (2 * eps)
    error_u, error_nu = abs(ad_u - fd_u) / abs(fd_u), abs(ad_nu - fd_nu) / abs(fd_nu)
    figures = f"u0: AD {ad_u:.10e} FD {fd_u:.10e} ({error_u:.2e}); nu: AD {ad_nu:.10e} FD {fd_nu:.10e} ({error_nu:.2e})"
    assert error_u < 1e-6 and error_nu < 1e-6, figures


# ---------------------------------------------------------------------------------------
# The CFL guard and bad input
# ---------------------------------------------------------------------------------------
def test_cfl_violation_is_refused_with_the_limit_and_the_fix():
    grid = abc_flow.make_grid(8)
    eq = NavierStokes3D(grid, viscosity=0.01)
    u = 10.0 * abc_flow.analytic_velocity(grid, 0.0, 0.0)
    limit = nnpde.max_stable_dt(eq, u=u)
    r, i = nnpde.advection_extents("rk4")
    expected = 1.0 / (4 * 0.01 * 3 / grid.spacing[0] ** 2 / r + float(eq.advective_radius(0.0, u)) / i)
    assert abs(limit - expected) < 1e-12 * expected, (limit, expected)
    with raises(ValueError, "exceeds", re.escape(f"{limit:.6g}"), "CFL", "Fix", "stable_dt"):
        ProjectedRK(eq, dt=2 * limit)(u)
    with raises(ValueError, "viscous limit", "Fix"):
        ProjectedRK(NavierStokes3D(grid, viscosity=10.0), dt=1.0)
    # inviscid: no viscous limit at construction (once a ZeroDivisionError), the CFL one per step
    inviscid = NavierStokes3D(grid, viscosity=0.0)
    stepper = ProjectedRK(inviscid, dt=1.0)
    assert nnpde.max_stable_dt(inviscid, u=jnp.zeros_like(u)) == math.inf
    with raises(ValueError, "exceeds", "CFL", "Fix"):
        stepper(u)


def test_bad_configuration():
    with raises(ValueError, "3-D grid", re.escape("(8, 8)"), "Fix", "NavierStokes2D"):
        NavierStokes3D(nnpde.Grid((8, 8)), viscosity=0.1)
    with raises(ValueError, "at least 4 cells", re.escape("(8, 3, 8)"), "Fix"):
        NavierStokes3D(nnpde.Grid((8, 3, 8)), viscosity=0.1)
    with raises(ValueError, "viscosity", ">= 0", "-0.1", "Fix"):
        NavierStokes3D(abc_flow.make_grid(4), viscosity=-0.1)
    with raises(ValueError, "advection"):
        NavierStokes3D(abc_flow.make_grid(4), viscosity=0.1, advection="quick")
    with raises(ValueError, "forcing", re.escape("(3, 4, 4, 4)")):
        NavierStokes3D(abc_flow.make_grid(4), viscosity=0.1, forcing=jnp.zeros((4, 4, 4)))


def test_vorticity_of_the_beltrami_field():
    """curl u = u for the ABC flow; the discrete curl (backward differences onto the
    edges) of the sampled field is the ABC formula at the edges times
    2 sin(h/2) / h exactly (differences of sines), to round-off 1e-13."""
    grid = abc_flow.make_grid(8)
    a, b, c = abc_flow.COEFFICIENTS
    omega = jax.jit(NavierStokes3D(grid, viscosity=0.0).vorticity)(abc_flow.analytic_velocity(grid, 0.0, 0.0))
    h = grid.spacing[0]
    centres, faces = grid.axis_centres(0), grid.axis_faces(0)[:-1]
    mesh = [np.meshgrid(*[centres if k == axis else faces for k in range(3)], indexing="ij") for axis in range(3)]
    formula = [
        a * np.sin(mesh[0][2]) + c * np.cos(mesh[0][1]),
        b * np.sin(mesh[1][0]) + a * np.cos(mesh[1][2]),
        c * np.sin(mesh[2][1]) + b * np.cos(mesh[2][0]),
    ]
    expected = np.stack(formula) * (2 * math.sin(h / 2) / h)
    error = float(np.max(np.abs(np.asarray(omega) - expected)))
    assert error < 1e-13, error
