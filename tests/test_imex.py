"""Implicit viscosity for incompressible flow: ``nnpde.ProjectedIMEX`` on the periodic MAC grid.

Measured temporal order against the exact (semi-discrete) Taylor-Green decay, and by
self-convergence with advection; stability far past the explicit viscous limit while
the advective (CFL) limit of the explicit part is still enforced; round-off
divergence; gradients against central finite differences; the tableaux' order
conditions; bad input.

Temporal refinement without recompiling: ``dt`` is static, so each value would compile
its own rollout (seconds on 2 shared cores). The equations are instead invariant under
``u -> s u, t -> t / s, nu -> s nu``, and the discrete IMEX step is exactly so (the
advection is quadratic, the viscous solve and the projection linear): the run from
``s u0`` with viscosity ``s nu`` at ``dt`` is ``s`` times the run from ``u0`` with ``nu``
at ``s dt``. One compiled rollout with ``u0`` and ``nu`` as arguments gives every ``dt``.
"""

import contextlib
import functools
import itertools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from nnpde import IMEX_METHODS, ProjectedIMEX, ProjectedRK
from problems import abc_flow, taylor_green
from solvers import Boussinesq2D, pressure
from solvers.navier_stokes import NavierStokes2D, walls
from solvers.navier_stokes3d import NavierStokes3D
from tests._fits import fitted_slope, report

DT, STEPS = 0.1, 80
RUNTIME_ERRORS = (RuntimeError, ValueError)


@contextlib.contextmanager
def raises(exc_type, match, *more):
    """``pytest.raises`` plus further regexes that must all occur in the message."""
    with pytest.raises(exc_type, match=match) as info:
        yield info
    message = str(info.value)
    for pattern in more:
        assert re.search(pattern, message), f"pattern {pattern!r} not in the message:\n{message}"


@functools.cache
def _runner(n, method, dt=DT, steps=STEPS):
    """``(grid, run)``: ``run(u0, nu)`` is the trajectory of ``steps`` IMEX steps of 2-D flow."""
    grid = taylor_green.make_grid(n)

    @jax.jit
    def run(u0, nu):
        return nnpde.rollout(ProjectedIMEX(NavierStokes2D(grid, viscosity=nu), dt=dt, method=method), u0, steps)

    return grid, run


def _at(run, u0, nu, s, t):
    """The state at time ``t`` of the run from ``u0`` with ``nu`` at the step ``s * DT``."""
    k = round(t / (s * DT))
    return run(s * u0, s * nu)[k - 1] / s


def _normal(seed, shape):
    # NumPy, not jax.random: compiling the threefry generator takes seconds on 2 shared cores
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


def _random_velocity(grid, seed):
    u = _normal(seed, (2, *grid.shape))
    return _project(u - u.mean(axis=(1, 2), keepdims=True), grid)


@functools.partial(jax.jit, static_argnums=1)  # one compilation, not one per operation
def _project(u, grid):
    return pressure.project(u, grid, nnpde.BoundaryConditions.periodic(2))


# ---------------------------------------------------------------------------------------
# Temporal order
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, low, high", [("backward_euler", 0.95, 1.2), ("ars232", 1.9, 2.2)])
def test_temporal_order_on_taylor_green(method, low, high):
    """Taylor-Green, nu = 0.1, 16^2, t = 1, dt = 0.1, 0.05, 0.025: the error against the
    exact semi-discrete solution (the sampled vortex times exp(-2 nu lam t),
    lam = (2 sin(h/2) / h)^2: the MAC advection of the vortex is a discrete gradient,
    so only the viscous solve's error is left) has fitted order in [low, high]: 1 for
    backward Euler (measured 0.99), 2 for ARS(2,3,2) (measured 2.00). With a uniform
    flow (1, 0.5) the advection enters: the differences of successive solutions at
    dt = 0.05, 0.025, 0.0125 (self-convergence, no spatial error) fall at the same
    order, >= low - 0.1 (measured 0.98 and 1.98 at nu = 1; at nu = 0.1 the explicit
    part's third-order error partly cancels the second-order one and the ratios
    wander, 1.2 then 1.7, before settling). Every state is divergence-free to round-off."""
    grid, run = _runner(16, method)
    nu, t = 0.1, 1.0
    h = grid.spacing[0]
    exact = taylor_green.initial_velocity(grid) * math.exp(-2 * nu * (2 * math.sin(h / 2) / h) ** 2 * t)
    u0 = taylor_green.initial_velocity(grid)
    dts = [DT * s for s in (1.0, 0.5, 0.25)]
    states = [_at(run, u0, nu, s, t) for s in (1.0, 0.5, 0.25)]
    errors = [float(jnp.max(jnp.abs(u - exact))) for u in states]
    slope = fitted_slope(dts, errors)
    assert low <= slope <= high, report(f"{method}: Taylor-Green error against the exact decay", dts, errors)

    moving = taylor_green.initial_velocity(grid, (1.0, 0.5))
    fine = [_at(run, moving, 1.0, s, t) for s in (0.5, 0.25, 0.125)]
    differences = [float(jnp.max(jnp.abs(a - b))) for a, b in itertools.pairwise(fine)]
    ratio = math.log2(differences[0] / differences[1])
    assert ratio >= low - 0.1, f"{method}: translated vortex self-convergence {differences}: order {ratio:.3f}"
    for u in states + fine:
        assert float(jnp.max(jnp.abs(pressure.divergence(u, grid)))) * h < 1e-12 * float(jnp.max(jnp.abs(u)))


def test_tableaux_satisfy_their_order_conditions():
    """b.1 = 1 for both parts; for order 2 also b.c = bt.c = b.ct = bt.ct = 1/2 (ct the
    implicit row sums); the explicit part of ARS(2,3,2) has the stability polynomial
    1 + z + z^2/2 + z^3/6, so its extents are SSP-RK3's (R = 2.513, I = sqrt 3)."""
    for name, tab in IMEX_METHODS.items():
        b, bt, c = np.array(tab.b), np.array(tab.b_implicit), np.array(tab.c)
        ct = np.array(tab.a_implicit).sum(axis=1)
        assert np.allclose(np.array(tab.a).sum(axis=1), c, atol=1e-15), name
        assert abs(b.sum() - 1) < 1e-15 and abs(bt.sum() - 1) < 1e-15, name
        if tab.order >= 2:
            assert np.allclose([b @ c, bt @ c, b @ ct, bt @ ct], 0.5, atol=1e-15), (name, b @ c, bt @ ct)
        else:
            assert abs(b @ ct - 0.5) > 0.1, name  # backward Euler: the coupling condition fails, order 1
    a = np.array(IMEX_METHODS["ars232"].a)
    assert abs(np.array(IMEX_METHODS["ars232"].b) @ a @ np.array(IMEX_METHODS["ars232"].c) - 1 / 6) < 1e-15
    r, i = nnpde.advection_extents(IMEX_METHODS["ars232"].explicit)
    assert abs(i - math.sqrt(3)) < 1e-4 and abs(r - nnpde.advection_extents("ssprk3")[0]) < 1e-4, (r, i)


# ---------------------------------------------------------------------------------------
# Stability and the advective limit
# ---------------------------------------------------------------------------------------
def test_stable_far_beyond_the_explicit_viscous_limit():
    """nu = 6 on 16^2 at dt = 0.1: the explicit RK4 limit is viscous, 0.00895, so dt is
    11x past it and the explicit stepper is refused at construction, while ARS(2,3,2)
    runs (20 steps, t = 2) from the vortex plus a random field (every mode, up to the
    grid scale where nu lam dt = 15.6): the energy never grows (relative 1e-12), ends
    below the bound set by the slowest mode's implicit factor
    R(-z) = (1 - (1 - 2 gamma) z) / (1 + gamma z)^2 (|R| <= R(-z_min) on the whole
    spectrum; L-stable: R -> 0 for the grid-scale modes), and the divergence stays at
    round-off. A state 10x faster exceeds the explicit part's advective limit and is
    refused, with the limit and the fix, at once and inside a rollout."""
    grid, run = _runner(16, "ars232")  # the order test's compiled rollout
    nu, steps, dt = 6.0, 20, DT
    eq = NavierStokes2D(grid, viscosity=nu)
    viscous_limit = nnpde.max_stable_dt_advective(eq, "rk4")
    assert dt > 10 * viscous_limit, (dt, viscous_limit)
    with raises(ValueError, "viscous limit", "Fix"):
        ProjectedRK(eq, dt=dt)
    u0 = taylor_green.initial_velocity(grid) + 0.3 * _random_velocity(grid, 0)
    states = run(u0, nu)[:steps]
    energies = np.array([float(eq.kinetic_energy(s)) for s in [u0, *states]])
    growth = float(np.max(np.diff(energies) / energies[:-1]))
    h = grid.spacing[0]
    z_min = nu * (2 * math.sin(h / 2) / h) ** 2 * dt  # the slowest modes, wavenumber (1, 0)
    gamma = 1 - 1 / math.sqrt(2)
    bound = energies[0] * ((1 - (1 - 2 * gamma) * z_min) / (1 + gamma * z_min) ** 2) ** (2 * steps)
    divergence = float(jnp.max(jnp.abs(pressure.divergence(states[-1], grid)))) * h / float(jnp.max(states[-1]))
    figures = f"growth {growth:.3e}, final energy {energies[-1]:.6e} (bound {bound:.6e}), divergence {divergence:.3e}"
    assert bool(jnp.all(jnp.isfinite(states))), figures
    assert growth <= 1e-12 and energies[-1] <= bound and divergence < 1e-10, figures
    assert energies[-1] > 1e-3 * bound, figures  # the bound is not vacuous: the slow modes are there

    stepper = ProjectedIMEX(eq, dt=dt)
    fast = 10.0 * u0  # B grows 10x: past I / dt
    limit = stepper.max_stable_dt(fast)
    assert dt > limit > viscous_limit, (dt, limit, viscous_limit)
    with raises(ValueError, "advective", re.escape(f"{limit:.6g}"), "implicit", "Fix"):
        stepper(fast)
    with raises(RUNTIME_ERRORS, "CFL", "Fix"):
        jax.block_until_ready(run(fast, nu))


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------
def test_gradients_match_finite_differences():
    """d loss / d u0 (along a random direction) and d loss / d nu through 80 ARS(2,3,2)
    steps (16^2, dt = 0.1) against central differences, eps = 1e-5: truncation and
    round-off ~1e-10-1e-8 relative; the bar 1e-6 (measured 4.2e-10 for u0, 1.4e-8 for nu)."""
    grid, run = _runner(16, "ars232")
    u0 = taylor_green.initial_velocity(grid, (1.0, 0.5)) + 0.3 * _random_velocity(grid, 1)
    weights = _normal(2, u0.shape)
    direction = _random_velocity(grid, 3)

    def loss(u, nu):
        final = run(u, nu)[-1]
        return jnp.sum(weights * final) + 0.5 * jnp.sum(final**2)

    nu0, eps = 0.05, 1e-5
    grad_u, grad_nu = jax.jit(jax.grad(loss, argnums=(0, 1)))(u0, nu0)
    fd_u = (loss(u0 + eps * direction, nu0) - loss(u0 - eps * direction, nu0)) / (2 * eps)
    fd_nu = (loss(u0, nu0 + eps) - loss(u0, nu0 - eps)) / (2 * eps)
    ad_u = float(jnp.sum(grad_u * direction))
    error_u = abs(ad_u - float(fd_u)) / abs(float(fd_u))
    error_nu = abs(float(grad_nu) - float(fd_nu)) / abs(float(fd_nu))
    figures = (
        f"u0: AD {ad_u:.10e} FD {float(fd_u):.10e} ({error_u:.2e}); "
        f"nu: AD {float(grad_nu):.10e} FD {float(fd_nu):.10e} ({error_nu:.2e})"
    )
    assert error_u < 1e-6 and error_nu < 1e-6, figures


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------
def test_bad_input():
    grid = taylor_green.make_grid(8)
    eq = NavierStokes2D(grid, viscosity=0.1)
    with raises(ValueError, "Unknown IMEX method", "crank", "Fix", "ars232"):
        ProjectedIMEX(eq, dt=0.1, method="crank")
    lopsided = nnpde.IMEXTableau("lopsided", ((0.0,),), (1.0,), (0.0,), ((0.0, 0.0), (0.0, 1.0)), (0.0, 1.0), 1)
    with raises(ValueError, "lower", re.escape("a (1, 1), a_implicit (2, 2)"), "Fix"):
        ProjectedIMEX(eq, dt=0.1, method=lopsided)
    inconsistent = nnpde.IMEXTableau("heavy", ((0.0,),), (2.0,), (0.0,), ((1.0,),), (1.0,), 1)
    with raises(ValueError, "sum to 1", "2.0", "Fix"):
        ProjectedIMEX(eq, dt=0.1, method=inconsistent)
    with raises(TypeError, "AbstractProjectedIMEXEquation", "Fix", "ProjectedRK"):
        ProjectedIMEX(Boussinesq2D(grid, rayleigh=1e3), dt=0.1)  # projected, but not split
    with raises(ValueError, "periodic axes only", "dirichlet", "Fix", "ProjectedRK"):
        ProjectedIMEX(NavierStokes2D(grid, viscosity=0.1, bc=walls()), dt=0.1)
    with raises(ValueError, "dt"):
        ProjectedIMEX(eq, dt=-0.1)
    # van Leer's upwind dissipation is explicit: it enters the explicit limit
    u = taylor_green.initial_velocity(grid)
    central = ProjectedIMEX(eq, dt=0.1).max_stable_dt(u)
    van_leer = ProjectedIMEX(NavierStokes2D(grid, viscosity=0.1, advection="van_leer"), dt=0.1).max_stable_dt(u)
    r, i = nnpde.advection_extents(IMEX_METHODS["ars232"].explicit)
    b = float(eq.advective_radius(0.0, u))
    assert abs(central - i / b) < 1e-12 and abs(van_leer - 1 / (2 * b / r + b / i)) < 1e-12, (central, van_leer)
    assert ProjectedIMEX(eq, dt=0.1).max_stable_dt(jnp.zeros_like(u)) == math.inf


# ---------------------------------------------------------------------------------------
# Three dimensions
# ---------------------------------------------------------------------------------------
@functools.cache
def _runner3d():
    """``(grid, run)``: ``run(u0, nu)`` is the trajectory of 20 ARS(2,3,2) steps of 3-D flow on 8^3."""
    grid = abc_flow.make_grid(8)

    @jax.jit
    def forced(u0, nu, force):
        return nnpde.rollout(ProjectedIMEX(NavierStokes3D(grid, viscosity=nu, forcing=force), dt=DT), u0, 20)

    def run(u0, nu, force=None):  # one compilation, with or without a force
        return forced(u0, nu, jnp.zeros_like(u0) if force is None else force)

    return grid, run


def test_imex_in_three_dimensions():
    """NavierStokes3D with ARS(2,3,2) on 8^3, dt = 0.1.

    (a) Temporal order with advection: the ABC flow translated by (1, 0.5, 0.25),
    nu = 1, t = 0.25; differences of successive solutions at dt = 0.05, 0.025, 0.0125
    fall at order >= 1.8 (measured ~1.9). (b) Stiff: nu = 15, so dt is 10.5x the
    explicit RK4 viscous limit. The stationary ABC flow is a discrete eigenfunction
    (its advection projects to zero), so each step multiplies it by ARS(2,3,2)'s
    R(-z) = (1 - (1 - 2 gamma) z) / (1 + gamma z)^2 at z = nu dt (2 sin(h/2) / h)^2
    = 1.43: the energy after k <= 5 steps is E0 R^2k to 1e-10 relative (round-off). (c)
    With a random field added (modes up to nu lam dt = 18) the energy never grows
    (relative 1e-12) and the divergence stays at round-off. (d) A uniform body force
    (explicit) raises the mean flow by f t exactly (1e-13; the mean is not viscous)."""
    grid, run = _runner3d()
    h = grid.spacing[0]
    moving = abc_flow.analytic_velocity(grid, 0.0, 0.0, background=(1.0, 0.5, 0.25))
    fine = [_at(run, moving, 1.0, s, 0.25) for s in (0.5, 0.25, 0.125)]
    differences = [float(jnp.max(jnp.abs(a - b))) for a, b in itertools.pairwise(fine)]
    ratio = math.log2(differences[0] / differences[1])
    assert ratio >= 1.8, f"3-D translated ABC self-convergence {differences}: order {ratio:.3f}"

    nu = 15.0
    eq = NavierStokes3D(grid, viscosity=nu)
    assert DT > 10 * nnpde.max_stable_dt_advective(eq, "rk4")
    u0 = abc_flow.analytic_velocity(grid, 0.0, 0.0)
    z = nu * DT * (2 * math.sin(h / 2) / h) ** 2
    gamma = 1 - 1 / math.sqrt(2)
    factor = (1 - (1 - 2 * gamma) * z) / (1 + gamma * z) ** 2
    # 5 steps: the energy falls 24x per step, and beyond ~1e-8 of E0 the round-off in the
    # mean (which never decays) would show
    energies = np.array([float(eq.kinetic_energy(s)) for s in run(u0, nu)[:5]])
    predicted = float(eq.kinetic_energy(u0)) * factor ** (2 * np.arange(1, 6))
    deviation = float(np.max(np.abs(energies / predicted - 1.0)))
    assert deviation < 1e-10, (deviation, energies[:3], predicted[:3])

    noisy = u0 + 0.5 * _project3d(_normal(4, u0.shape), grid)
    states = run(noisy, nu)
    energies = np.array([float(eq.kinetic_energy(s)) for s in [noisy, *states]])
    growth = float(np.max(np.diff(energies) / energies[:-1]))
    divergence = float(jnp.max(jnp.abs(eq.divergence(states[-1])))) * h / float(jnp.max(jnp.abs(states[-1])))
    assert growth <= 1e-12 and divergence < 1e-10 and bool(jnp.all(jnp.isfinite(states))), (growth, divergence)

    # (d) the force is explicit: a uniform one accelerates the mean flow by f t exactly
    f = jnp.array([0.3, -0.2, 0.1])
    forced = run(noisy, nu, jnp.broadcast_to(f[:, None, None, None], u0.shape))[-1]
    drift = float(jnp.max(jnp.abs(forced.mean(axis=(1, 2, 3)) - (noisy.mean(axis=(1, 2, 3)) + 20 * DT * f))))
    assert drift < 1e-13, drift


def _project3d(u, grid):
    u = u - u.mean(axis=(1, 2, 3), keepdims=True)
    return jax.jit(NavierStokes3D(grid, viscosity=0.0).project)(u)
