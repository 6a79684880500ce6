"""Viscous Burgers (solvers/burgers.py, problems/burgers.py): the numerics.

* Convergence against the Cole-Hopf solution (1-D periodic, and 1-D Dirichlet walls
  with the exact wall values), fitted slopes: max norm for 'central' (>= 1.9) and
  'upwind' (>= 0.9); L1 for 'van_leer' (>= 1.5; the limiter clips smooth extrema to
  first order at O(1) points, which the L1 norm weighs by h).
* 2-D vector Burgers against manufactured solutions (exact source by autodiff):
  periodic and Dirichlet walls with different data per component.
* Invariants: mean of u conserved to round-off (1-D periodic, flux form); a square
  wave stays within its initial bounds with a non-increasing total variation under
  the CFL-limited step ('upwind', 'van_leer'); 2-D transpose symmetry is exact.
* The CFL guard: at ``nnpde.max_stable_dt`` a steep, nearly inviscid front stays
  bounded; at 1.5 times it (guard off) it blows up; the guard refuses dt beyond it.
* Gradients through a 20-step rollout with respect to the initial field and nu
  agree with central finite differences.
* Bad input fails early with what, the value and the fix.

Time stepping in the convergence tests is RK4 (or SSP-RK3) at <= 0.8 of the CFL
limit: the time error, O(dt^4) (O(dt^3)) with dt = O(h^2) once the viscous part of
the bound dominates, is far below the O(h^2) space error measured.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from problems import burgers as cole_hopf
from solvers.burgers import Burgers
from tests._fits import fitted_slope, report

NU = 0.1
# jax.jit re-raises eqx.error_if failures as a RuntimeError or ValueError (tests/test_errors.py)
RUNTIME_ERRORS = (RuntimeError, ValueError)
T_END = 2.0
DRIFT = 0.5  # Galilean drift: the profile crosses the periodic boundary


def _rollout_final(stepper, u0, n_steps):
    return jax.jit(lambda u: nnpde.rollout(stepper, u, n_steps, trajectory=False))(u0)


# ---------------------------------------------------------------------------------------
# Convergence against Cole-Hopf
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scheme,method,sizes,norm,target",
    [
        ("central", "rk4", (32, 64, 128, 256), "max", 1.9),
        # first order carries an O(h^2) part that flattens the slope on coarse grids
        ("upwind", "ssprk3", (64, 128, 256, 512), "max", 0.9),
        ("van_leer", "ssprk3", (32, 64, 128, 256), "l1", 1.5),
    ],
)
def test_cole_hopf_periodic_convergence(scheme, method, sizes, norm, target):
    steps, errors = [], []
    for n in sizes:
        ds = cole_hopf.solve(
            resolution=n, viscosity=NU, t_end=T_END, scheme=scheme, method=method, n_frames=2, drift=DRIFT
        )
        errors.append(float(ds[f"error_{norm}"][-1]))
        steps.append(2 * np.pi / n)
    slope = fitted_slope(steps, errors)
    print(report(f"Cole-Hopf periodic, {scheme} ({norm})", steps, errors))
    assert slope >= target, report(f"Cole-Hopf periodic, {scheme} ({norm})", steps, errors)


def _dirichlet_cole_hopf_error(n, scheme):
    """Cole-Hopf on [0.3, 4.0] with the exact (time-dependent) wall values."""
    lo, hi = 0.3, 4.0
    grid = nnpde.Grid((n,), extent=((lo, hi),))
    bc = nnpde.BoundaryConditions(
        (
            nnpde.Dirichlet(lambda t: cole_hopf.analytic(lo, t, NU, drift=DRIFT)),
            nnpde.Dirichlet(lambda t: cole_hopf.analytic(hi, t, NU, drift=DRIFT)),
        )
    )
    eq = Burgers(grid, bc, viscosity=NU, scheme=scheme)
    (x,) = grid.cell_centres()
    u0 = cole_hopf.analytic(x, 0.0, NU, drift=DRIFT)[None]
    n_steps = int(np.ceil(T_END / nnpde.stable_dt(eq, "rk4", safety=0.8, u=u0)))
    final = _rollout_final(nnpde.ExplicitRK(eq, dt=T_END / n_steps, method="rk4"), u0, n_steps)
    return float(jnp.max(jnp.abs(final[0] - cole_hopf.analytic(x, T_END, NU, drift=DRIFT)))), grid.spacing[0]


@pytest.mark.parametrize("scheme,target", [("central", 1.9), ("van_leer", 1.5)])
def test_cole_hopf_dirichlet_convergence(scheme, target):
    """Walls: the linear ghost cell keeps the boundary face states second order.
    van Leer in the max norm: the limiter's first-order clipping at the smooth
    extremum is the O(h) error near which the slope falls to between 1 and 2."""
    results = [_dirichlet_cole_hopf_error(n, scheme) for n in (32, 64, 128, 256)]
    errors, steps = [r[0] for r in results], [r[1] for r in results]
    print(report(f"Cole-Hopf Dirichlet, {scheme} (max)", steps, errors))
    assert fitted_slope(steps, errors) >= target, report(f"Cole-Hopf Dirichlet, {scheme}", steps, errors)


def test_diffrax_stepper_matches_explicit_rk():
    """The equation is a diffrax vector field. On the smooth 'central' right-hand side
    Tsit5 (order 5) lands closer to a 4x-refined RK4 reference than RK4 (order 4) at
    the same step, and both time errors are under 1e-3 of the 64-cell space error
    (measured 9e-11 and 3e-8 against 1e-3)."""
    n, t_end = 64, 0.5
    eq = cole_hopf.equation(n, viscosity=NU, scheme="central")
    u0 = cole_hopf.initial_state(n, viscosity=NU, drift=DRIFT)
    n_steps = int(np.ceil(t_end / nnpde.stable_dt(eq, "rk4", safety=0.8, u=u0)))
    dt = t_end / n_steps
    rk4 = _rollout_final(nnpde.ExplicitRK(eq, dt=dt, method="rk4"), u0, n_steps)
    reference = _rollout_final(nnpde.ExplicitRK(eq, dt=dt / 4, method="rk4"), u0, 4 * n_steps)
    tsit5 = _rollout_final(nnpde.DiffraxStepper(eq, dt=dt, solver=diffrax.Tsit5()), u0, n_steps)
    (x,) = eq.grid.cell_centres()
    space_error = float(jnp.max(jnp.abs(reference[0] - cole_hopf.analytic(x, t_end, NU, drift=DRIFT))))
    rk4_error = float(jnp.max(jnp.abs(rk4 - reference)))
    tsit5_error = float(jnp.max(jnp.abs(tsit5 - reference)))
    label = f"time errors: Tsit5 {tsit5_error:.3e}, RK4 {rk4_error:.3e}; space error {space_error:.3e}"
    assert tsit5_error <= rk4_error < 1e-3 * space_error, label


# ---------------------------------------------------------------------------------------
# 2-D vector Burgers, manufactured solutions
# ---------------------------------------------------------------------------------------
T_2D = 0.25


def _velocity(p, t):
    x, y = p[0], p[1]
    return jnp.stack(
        [
            0.6 + 0.5 * jnp.sin(x + 0.3 + t) * jnp.cos(y),
            -0.4 + 0.5 * jnp.cos(x - 0.5) * jnp.sin(y + 0.5 * t) + 0.2 * jnp.sin(x + y),
        ]
    )


def _manufactured_source(p, t):
    """``u_t + (u . grad) u - nu lap u`` of the exact velocity, by autodiff."""
    u = _velocity(p, t)
    jac = jax.jacfwd(_velocity)(p, t)  # jac[c, a] = d u_c / d x_a
    hess = jax.jacfwd(jax.jacfwd(_velocity))(p, t)
    lap = jnp.trace(hess, axis1=1, axis2=2)
    return jax.jacfwd(_velocity, argnums=1)(p, t) + jac @ u - NU * lap


def _on_points(fn, coords, t):
    flat = jnp.stack([c.ravel() for c in coords], axis=-1)
    values = jax.vmap(lambda p: fn(p, t))(flat)  # (points, 2)
    return values.T.reshape((2, *coords[0].shape))


def _manufactured_error(n, kind, scheme, norm):
    if kind == "periodic":
        grid = nnpde.Grid((n, n), extent=((0.0, 2 * np.pi), (0.0, 2 * np.pi)))
        bc = nnpde.BoundaryConditions.periodic(2)
    else:
        grid = nnpde.Grid((n, n), extent=((0.0, 1.5), (0.2, 1.4)))

        def wall(axis, side, component):
            face = grid.boundary_face_centres(axis)[0]
            position = grid.extent[axis][side]

            def value(t):
                points = (jnp.full_like(face, position), face) if axis == 0 else (face, jnp.full_like(face, position))
                return _on_points(_velocity, points, t)[component]

            return nnpde.Dirichlet(value)

        bc = tuple(nnpde.BoundaryConditions(*((wall(a, 0, c), wall(a, 1, c)) for a in range(2))) for c in range(2))
    centres = grid.cell_centres()
    # jitted once: the stages of a step share one traced source
    source = jax.jit(lambda t: _on_points(_manufactured_source, centres, t))
    eq = Burgers(grid, bc, viscosity=NU, scheme=scheme, source=source)
    u0 = _on_points(_velocity, centres, 0.0)
    # SSP-RK3 (fewer stages to compile than RK4): time error O(dt^3), dt = O(h)
    n_steps = int(np.ceil(T_2D / nnpde.stable_dt(eq, "ssprk3", safety=0.8, u=u0)))
    final = _rollout_final(nnpde.ExplicitRK(eq, dt=T_2D / n_steps, method="ssprk3"), u0, n_steps)
    error = jnp.abs(final - _on_points(_velocity, centres, T_2D))
    return float(jnp.max(error) if norm == "max" else jnp.mean(error)), grid.spacing[0]


@pytest.mark.parametrize(
    "kind,scheme,norm,target,sizes",
    [
        # 16 cells per axis are pre-asymptotic here (slope 1.90 from 16-64)
        ("periodic", "central", "max", 1.9, (24, 48, 96)),
        ("periodic", "van_leer", "l1", 1.5, (16, 32, 64)),
        ("dirichlet", "central", "max", 1.9, (16, 32, 64)),
    ],
)
def test_manufactured_2d_convergence(kind, scheme, norm, target, sizes):
    results = [_manufactured_error(n, kind, scheme, norm) for n in sizes]
    errors, steps = [r[0] for r in results], [r[1] for r in results]
    print(report(f"2-D {kind}, {scheme} ({norm})", steps, errors))
    assert fitted_slope(steps, errors) >= target, report(f"2-D {kind}, {scheme} ({norm})", steps, errors)


@pytest.mark.parametrize("scheme", ["central", "upwind", "van_leer"])
def test_1d_mirror_symmetry_is_exact(scheme):
    """Burgers is invariant under x -> -x, u -> -u: so must the scheme be, to round-off
    (a check that left and right face states are reconstructed alike; the Cole-Hopf
    runs with drift have u > 0 everywhere and would not see an asymmetry)."""
    grid = nnpde.Grid((32,), extent=((0.0, 2 * np.pi),))
    (x,) = grid.cell_centres()
    u0 = (0.3 * jnp.sin(x) + 0.2 * jnp.cos(3 * x + 0.4) + 0.1 * jnp.tanh(4 * jnp.sin(2 * x)))[None]
    eq = Burgers(grid, nnpde.BoundaryConditions.periodic(1), viscosity=0.02, scheme=scheme)
    asymmetry = float(jnp.max(jnp.abs(eq(0.0, u0) + eq(0.0, -u0[:, ::-1])[:, ::-1])))
    # one evaluation of O(1) arithmetic on O(1) values divided by h^2 ~ 0.04: ~1e-13
    assert asymmetry < 1e-12, f"{scheme}: mirror asymmetry of the right-hand side {asymmetry:.3e}"


def test_2d_transpose_symmetry_is_exact():
    """Swapping x and y (and the two components) commutes with the 2-D scheme: a
    transpose-symmetric state stays so to round-off (a check that every component
    is advected along the right axis with the right velocity)."""
    grid = nnpde.Grid((24, 24), extent=((0.0, 2 * np.pi), (0.0, 2 * np.pi)))
    x, y = grid.cell_centres()
    f = jnp.sin(x) * jnp.cos(2 * y) + 0.7 + 0.3 * jnp.tanh(5 * jnp.cos(x + y))
    u0 = jnp.stack([f, f.T])
    eq = Burgers(grid, nnpde.BoundaryConditions.periodic(2), viscosity=0.01, scheme="van_leer")
    stepper = nnpde.ExplicitRK(eq, dt=nnpde.stable_dt(eq, "ssprk3", u=u0), method="ssprk3")
    final = _rollout_final(stepper, u0, 40)
    asymmetry = float(jnp.max(jnp.abs(final[0] - final[1].T)))
    # 40 steps x 3 stages of O(1) arithmetic: ~1e-13 worst case
    assert asymmetry < 1e-12, f"transpose asymmetry {asymmetry:.3e}"


# ---------------------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------------------
def _square_wave(n):
    grid = nnpde.Grid((n,), extent=((0.0, 2 * np.pi),))
    (x,) = grid.cell_centres()
    return grid, jnp.where(jnp.abs(x - np.pi) < np.pi / 2, 1.0, 0.0)[None]


@pytest.mark.parametrize("scheme", ["central", "upwind", "van_leer"])
def test_mean_is_conserved(scheme):
    n, n_steps = 128, 100
    grid = nnpde.Grid((n,), extent=((0.0, 2 * np.pi),))
    (x,) = grid.cell_centres()
    u0 = (0.4 + 0.5 * jnp.sin(x) + 0.2 * jnp.cos(3 * x + 1.0))[None]
    eq = Burgers(grid, nnpde.BoundaryConditions.periodic(1), viscosity=0.05, scheme=scheme)
    stepper = nnpde.ExplicitRK(eq, dt=nnpde.stable_dt(eq, "ssprk3", u=u0), method="ssprk3")
    final = _rollout_final(stepper, u0, n_steps)
    drift = float(jnp.abs(eq.total_momentum(final)[0] - eq.total_momentum(u0)[0]))
    # Round-off bound: each step sums n face-flux differences of O(max|u|) values
    # (3 stages): n_steps * 3 * n * eps * max|u| * h ~ 2e-11 (worst case, no cancellation).
    bound = n_steps * 3 * n * np.finfo(float).eps * float(jnp.max(jnp.abs(u0))) * grid.spacing[0]
    assert drift <= bound, f"{scheme}: total momentum changed by {drift:.3e} (round-off bound {bound:.3e})"


@pytest.mark.parametrize("scheme,fraction", [("upwind", 1.0), ("van_leer", 0.5)])
def test_square_wave_stays_within_bounds(scheme, fraction):
    """Maximum principle and TVD: upwind up to the forward-Euler CFL limit 2 / rho,
    van Leer (MUSCL face increments up to twice the cell increments) up to half of it;
    SSP-RK3 is a convex combination of forward-Euler steps, so it inherits both."""
    n, n_steps = 128, 150
    grid, u0 = _square_wave(n)
    eq = Burgers(grid, nnpde.BoundaryConditions.periodic(1), viscosity=1e-3, scheme=scheme)
    dt = fraction * nnpde.max_stable_dt(eq, "forward_euler", u=u0)
    states = jax.jit(lambda u: nnpde.rollout(nnpde.ExplicitRK(eq, dt=dt, method="ssprk3"), u, n_steps))(u0)
    # round-off: a convex combination can leave [0, 1] by ~eps per stage; 1e-12 covers
    # 150 steps x 3 stages x a few eps
    lowest, highest = float(jnp.min(states)), float(jnp.max(states))
    assert lowest >= -1e-12 and highest <= 1 + 1e-12, f"{scheme}: range [{lowest:.3e}, {1 - highest:.3e} below 1]"
    variation = jnp.sum(jnp.abs(jnp.diff(states[..., 0, :], axis=-1, append=states[..., 0, :1])), axis=-1)
    increases = float(jnp.max(jnp.diff(jnp.concatenate([jnp.array([2.0]), variation]))))
    assert increases <= 1e-12, f"{scheme}: total variation rose by {increases:.3e} in one step (from 2)"


# ---------------------------------------------------------------------------------------
# The CFL guard
# ---------------------------------------------------------------------------------------
def _steep_front():
    """A nearly inviscid steep front: cell Peclet |u| h / nu ~ 60, advection dominates
    the bound (2 max|u| / h = 32 against 4 nu / h^2 = 1)."""
    grid = nnpde.Grid((100,), extent=((0.0, 2 * np.pi),))
    (x,) = grid.cell_centres()
    eq = Burgers(grid, nnpde.BoundaryConditions.periodic(1), viscosity=1e-3, scheme="upwind")
    return eq, (0.5 + 0.5 * jnp.tanh(10 * jnp.cos(x)))[None]


@pytest.mark.parametrize("scheme", ["upwind", "van_leer"])
@pytest.mark.parametrize("method", ["forward_euler", "ssprk3", "rk4"])
def test_cfl_limit_is_sharp(scheme, method):
    """At the limit the run stays bounded; at 1.5 times it, it blows up.

    The grid-scale mode of the upwind (and limited) scheme sits at z = -rho dt: at the
    limit |R(z)| = 1; at 1.5 times it |R(z)| is 2 (forward Euler), 4.6 (SSP-RK3) and
    6.1 (RK4) per step, so 40 steps amplify the front's grid-scale content past any
    bound. Bounded means within 0.25 of [0, 1]: beyond their SSP limits SSP-RK3 and
    RK4 may overshoot a front by a fraction of its jump (measured <= 0.13) without
    growth.
    """
    eq, u0 = _steep_front()
    eq = Burgers(eq.grid, eq.bc[0], viscosity=eq.viscosity, scheme=scheme)
    limit = nnpde.max_stable_dt(eq, method, u=u0)
    ranges = []
    for factor in (1.0, 1.5):
        stepper = nnpde.ExplicitRK(eq, dt=factor * limit, method=method, check_stability=False)
        states = jax.jit(lambda u, s=stepper: nnpde.rollout(s, u, 40))(u0)
        finite = bool(jnp.all(jnp.isfinite(states)))
        ranges.append((float(jnp.min(states)), float(jnp.max(states))) if finite else (np.nan, np.nan))
    (lo, hi), (lo_fast, hi_fast) = ranges
    label = f"{scheme}/{method}: range at the limit [{lo:.4g}, {hi:.4g}], at 1.5x [{lo_fast:.4g}, {hi_fast:.4g}]"
    assert -0.25 <= lo and hi <= 1.25, label
    assert not (-10 <= lo_fast and hi_fast <= 10), label  # NaN fails both comparisons
    if scheme == "upwind" and method == "forward_euler":
        # exactly at the monotonicity limit: the maximum principle holds
        assert lo >= -1e-12 and hi <= 1 + 1e-12, label


def test_guard_refuses_steps_beyond_the_cfl_limit():
    eq, u0 = _steep_front()
    limit = nnpde.max_stable_dt(eq, "ssprk3", u=u0)
    h = eq.grid.spacing[0]
    expected = nnpde.SSPRK3.stability_extent / (2 * float(jnp.max(u0)) / h + 4 * 1e-3 / h**2)
    assert abs(limit - expected) <= 1e-12 * expected, f"CFL limit {limit}, expected {expected}"
    nnpde.ExplicitRK(eq, dt=limit, method="ssprk3")(u0)  # at the limit: accepted
    stepper = nnpde.ExplicitRK(eq, dt=1.01 * limit, method="ssprk3")  # no state yet: viscous part only
    with pytest.raises(ValueError, match="exceeds the stability limit"):
        stepper(u0)
    with pytest.raises(RUNTIME_ERRORS, match="exceeds the explicit stability limit"):
        jax.block_until_ready(jax.jit(lambda u: nnpde.rollout(stepper, u, 3))(u0))


# ---------------------------------------------------------------------------------------
# Gradients through a rollout
# ---------------------------------------------------------------------------------------
N_STEPS = 20
REL_EPS = 1e-6  # finite-difference step relative to the input's norm
TOLERANCE = 1e-4  # central differences: O(eps^2) truncation, O(1e-16 / eps) round-off


def _gradient_case(scheme, ndim):
    """Generic smooth data. The limiter and Rusanov's max / abs are piecewise smooth,
    with kinks where a cell difference vanishes or |L| = |R|; a symmetric sample of an
    extremum (e.g. sin(y) on cells placed symmetrically about pi / 2) puts a difference
    exactly on a kink, and so does data linear up to a wall (the MUSCL states of the
    wall face then both equal the wall value), where no derivative exists (measured:
    AD and FD differ by 5e-4 for every FD step). The phases and the curved profiles
    keep every kink far from the data, beyond the finite-difference step."""
    if ndim == 1:
        grid = nnpde.Grid((24,), extent=((0.0, 2 * np.pi),))
        (x,) = grid.cell_centres()
        u0 = (0.5 + 0.4 * jnp.sin(x) + 0.2 * jnp.cos(2 * x + 0.3))[None]
        target = (0.5 + 0.3 * jnp.cos(x))[None]
        bc = nnpde.BoundaryConditions.periodic(1)
    else:
        grid = nnpde.Grid((10, 12), extent=((0.0, 1.0), (0.0, 2 * np.pi)))
        x, y = grid.cell_centres()
        bump = x * (1 - x)  # vanishes on both walls: the data meet the wall values
        u0 = jnp.stack(
            [0.6 - 0.2 * x + 0.8 * jnp.sin(y + 0.37) * bump, -0.3 + 0.2 * x + 0.6 * jnp.cos(y + x + 0.21) * bump]
        )
        target = jnp.stack([0.5 + 0.0 * x, 0.1 * jnp.sin(y)])
        bc = (
            nnpde.BoundaryConditions((nnpde.Dirichlet(0.6), nnpde.Dirichlet(0.4)), nnpde.Periodic()),
            nnpde.BoundaryConditions((nnpde.Dirichlet(-0.3), nnpde.Dirichlet(-0.1)), nnpde.Periodic()),
        )
    return grid, bc, u0, target


@pytest.mark.parametrize("scheme,ndim", [("central", 1), ("upwind", 1), ("van_leer", 1), ("van_leer", 2)])
def test_gradients_match_finite_differences(scheme, ndim):
    grid, bc, u0, target = _gradient_case(scheme, ndim)
    nu0 = 0.05
    dt = nnpde.stable_dt(Burgers(grid, bc, viscosity=nu0, scheme=scheme), "ssprk3", safety=0.5, u=u0)

    def loss(u, nu):
        eq = Burgers(grid, bc, viscosity=nu, scheme=scheme)
        states = nnpde.rollout(nnpde.ExplicitRK(eq, dt=dt, method="ssprk3"), u, N_STEPS)
        return jnp.mean((states[9] - target) ** 2) + jnp.mean((states[-1] - target) ** 2)

    loss_only = jax.jit(loss)
    grad_u, grad_nu = jax.jit(jax.grad(loss, argnums=(0, 1)))(u0, nu0)
    direction = jax.random.normal(jax.random.PRNGKey(0), u0.shape)
    eps = REL_EPS * float(jnp.linalg.norm(u0)) / float(jnp.linalg.norm(direction))
    fd_u = (loss_only(u0 + eps * direction, nu0) - loss_only(u0 - eps * direction, nu0)) / (2 * eps)
    ad_u = jnp.vdot(grad_u, direction)
    eps_nu = REL_EPS * nu0
    fd_nu = (loss_only(u0, nu0 + eps_nu) - loss_only(u0, nu0 - eps_nu)) / (2 * eps_nu)
    errors = {
        "u0": float(jnp.abs(ad_u - fd_u) / jnp.abs(fd_u)),
        "nu": float(jnp.abs(grad_nu - fd_nu) / jnp.abs(fd_nu)),
    }
    print(f"{scheme} {ndim}-D gradient relative errors: {errors}")
    assert max(errors.values()) < TOLERANCE, f"{scheme} {ndim}-D: AD vs FD relative errors {errors}"


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------
GRID_1D = nnpde.Grid((16,), extent=((0.0, 1.0),))
PERIODIC_1D = nnpde.BoundaryConditions.periodic(1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"viscosity": -0.1}, r"viscosity must be >= 0, got -0.1"),
        ({"viscosity": float("nan")}, r"viscosity must be finite"),
        ({"viscosity": jnp.ones(3)}, r"viscosity must be a scalar"),
        ({"scheme": "weno"}, r"Unknown advection scheme 'weno'"),
        ({"source": jnp.ones((16,))}, r"add the channel axis"),
        ({"source": jnp.full((1, 16), jnp.inf)}, r"source has 16 non-finite"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Burgers(GRID_1D, PERIODIC_1D, **kwargs)


def test_bad_grids_and_boundaries():
    with pytest.raises(ValueError, match=r"at least 5 cells per axis; got grid shape \(4,\)"):
        Burgers(nnpde.Grid((4,)), PERIODIC_1D, scheme="van_leer")
    with pytest.raises(ValueError, match="1-D and 2-D"):
        Burgers(nnpde.Grid((8, 8, 8)), nnpde.BoundaryConditions.periodic(3))
    with pytest.raises(ValueError, match="'neumann'"):
        Burgers(GRID_1D, nnpde.BoundaryConditions.neumann(1))
    with pytest.raises(TypeError, match=r"bc must be nnpde\.BoundaryConditions"):
        Burgers(GRID_1D, "periodic")
    with pytest.raises(ValueError, match="for 2 axes but the grid has 1"):
        Burgers(GRID_1D, nnpde.BoundaryConditions.periodic(2))


def test_bad_states():
    eq = Burgers(GRID_1D, PERIODIC_1D, viscosity=0.01)
    stepper = nnpde.ExplicitRK(eq, dt=1e-3, method="ssprk3")
    good = jnp.sin(2 * np.pi * GRID_1D.cell_centres()[0])[None]
    with pytest.raises(ValueError, match="non-finite"):
        nnpde.rollout(stepper, good.at[0, 3].set(jnp.nan), 2)
    with pytest.raises(ValueError, match=r"add the channel axis"):
        nnpde.rollout(stepper, good[0], 2)
    with pytest.raises(ValueError, match=r"shape \(1, 17\).*expects state shape \(1, 16\)"):
        eq(0.0, jnp.zeros((1, 17)))
    with pytest.raises(ValueError, match="batch of 3"):
        eq(0.0, jnp.zeros((3, 1, 16)))


def test_traced_negative_viscosity_fails_at_run_time():
    def run(nu):
        eq = Burgers(GRID_1D, PERIODIC_1D, viscosity=nu)
        return eq(0.0, jnp.ones((1, 16)))

    assert bool(jnp.all(jnp.isfinite(jax.jit(run)(0.01))))
    with pytest.raises(RUNTIME_ERRORS, match="viscosity must be >= 0"):
        jax.block_until_ready(jax.jit(run)(-0.01))


def test_problem_rejects_bad_parameters():
    with pytest.raises(ValueError, match=r"viscosity nu > 0.*got 0.0"):
        cole_hopf.analytic(jnp.zeros(3), 0.0, 0.0)
    with pytest.raises(ValueError, match="t_end must be a positive"):
        cole_hopf.solve(resolution=16, t_end=-1.0)


def test_problem_dataset():
    ds = cole_hopf.solve(resolution=32, viscosity=NU, t_end=0.5, n_frames=3)
    assert set(ds.data_vars) == {"u", "u_exact", "error_max", "error_l1"}
    assert ds.u.dims == ("time", "x") and ds.sizes == {"time": 3, "x": 32}
    assert ds.attrs["viscosity"] == NU and ds.attrs["scheme"] == "van_leer"
    assert float(ds.time[-1]) == pytest.approx(0.5, rel=1e-12)
    # the exact solution solves the PDE: its initial frame matches the numerical one
    assert float(ds.error_max[0]) == 0.0
    # the mean is conserved (flux form): round-off only (see test_mean_is_conserved)
    change = abs(float(ds.u[-1].mean() - ds.u[0].mean()))
    assert change < 1e-14, f"mean changed by {change:.3e}"
