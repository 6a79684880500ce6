"""Measured convergence orders.

Spatial: manufactured solutions of the heat equation (exact sources from autodiff of
the chosen solution, boundary data from the same), integrated in time with RK4 at a
step small enough that the temporal error is negligible; plus operator-level errors of
the periodic stencils. Temporal: each stepper against the exact solution of the
semi-discrete system (a discrete Fourier eigenmode), so only the time error remains.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
import solvers
from nnpde import fd
from tests._fits import fitted_slope, report

# ---------------------------------------------------------------------------------------
# Manufactured solutions
# ---------------------------------------------------------------------------------------
T_END = 0.02


def _pairs(kinds):
    """Per-axis (low, high) kinds from entries that are a kind or a pair."""
    return [tuple(k) if isinstance(k, tuple) else (k, k) for k in kinds]


def manufactured_case(n, kinds, *, variable_k, order):
    """A heat equation whose exact solution is known, on ``n`` cells per axis.

    Periodic axes span [0, 2 pi] and the solution has wavenumber 1 there; wall axes
    span [0, 1] with a solution that no boundary condition favours. The source is
    ``dT/dt - div(k grad T)`` of the exact solution by autodiff, and the boundary data
    (values, outward normal derivatives) are taken from it, all time-dependent.
    """
    pairs = _pairs(kinds)
    ndim = len(pairs)
    periodic = [lo == "periodic" for lo, _ in pairs]
    grid = nnpde.Grid((n,) * ndim, extent=tuple((0.0, 2 * np.pi if p else 1.0) for p in periodic))

    def solution(x, t):
        value = jnp.exp(-0.5 * t)
        for a in range(ndim):
            if periodic[a]:
                value = value * (1.5 + jnp.sin(x[a] + 0.3 * a + t))
            else:
                value = value * (jnp.cos(1.3 * x[a] + 0.4 + 0.3 * a + 0.5 * t) + 0.5 * x[a])
        return value

    def k_of(x):
        value = 1.0
        for a in range(ndim):
            value = value * (1.0 + 0.3 * jnp.sin((1.0 if periodic[a] else 2.0) * x[a] + 0.5))
        return value if variable_k else 0.7

    def source(x, t):
        flux = jax.grad(lambda y: solution(y, t))
        div = sum(jax.grad(lambda y, a=a: k_of(y) * flux(y)[a])(x)[a] for a in range(ndim))
        return jax.grad(solution, argnums=1)(x, t) - div

    def on_cells(fn):
        centres = grid.cell_centres()
        flat = jnp.stack([c.ravel() for c in centres], axis=-1)
        # one compiled program: op by op, every grid would compile each small operation
        # of the autodiff anew (most of a small grid's time)
        return jax.jit(lambda p: jax.vmap(fn)(p).reshape(grid.shape))(flat)

    def wall_condition(a, side, kind):
        wall = grid.extent[a][side]
        face = grid.boundary_face_centres(a)
        flat = jnp.stack([f.ravel() for f in face], axis=-1) if face else jnp.zeros((1, 0))
        shape = face[0].shape if face else ()
        sign = 1.0 if side == 1 else -1.0

        def point(yy):
            return jnp.concatenate([yy[:a], jnp.array([wall]), yy[a:]])

        def data(t):
            if kind == "dirichlet":
                values = jax.vmap(lambda yy: solution(point(yy), t))(flat)
            else:
                values = jax.vmap(lambda yy: sign * jax.grad(solution)(point(yy), t)[a])(flat)
            return values.reshape(shape)

        data = jax.jit(data)  # traced once, not again in every RK stage
        return nnpde.Dirichlet(data) if kind == "dirichlet" else nnpde.Neumann(data)

    conditions = [
        nnpde.Periodic() if periodic[a] else tuple(wall_condition(a, side, pairs[a][side]) for side in (0, 1))
        for a in range(ndim)
    ]
    bc = nnpde.BoundaryConditions(*conditions)
    k = on_cells(k_of) if variable_k else 0.7
    source_on_cells = jax.jit(lambda t: on_cells(lambda x: source(x, t)))  # traced once, as the wall data
    eq = solvers.HeatEquation(grid, bc, conductivity=k, source=source_on_cells, order=order)
    return eq, on_cells(lambda x: solution(x, 0.0))[None], on_cells(lambda x: solution(x, T_END))[None]


def solution_error(n, kinds, *, variable_k, order):
    """Max-norm error at T_END, RK4 with a step small enough to leave only space error."""
    eq, u0, u_end = manufactured_case(n, kinds, variable_k=variable_k, order=order)
    # nnpde.stable_dt(eq, "rk4", safety=0.8), compiled as one program (as on_cells)
    steps = int(np.ceil(T_END / (0.8 * float(jax.jit(lambda: nnpde.max_stable_dt(eq, "rk4"))()))))
    stepper = nnpde.ExplicitRK(eq, dt=T_END / steps, method="rk4")
    final = jax.jit(lambda u: nnpde.rollout(stepper, u, steps, trajectory=False))(u0)
    return float(jnp.max(jnp.abs(final - u_end))), eq.grid.spacing[0]


def _measure(kinds, sizes, *, variable_k, order):
    steps, errors = [], []
    for n in sizes:
        e, h = solution_error(n, kinds, variable_k=variable_k, order=order)
        errors.append(e)
        steps.append(h)
    return steps, errors


KINDS_1D = {
    "periodic": ("periodic",),
    "dirichlet": ("dirichlet",),
    "neumann": ("neumann",),
    "mixed": (("dirichlet", "neumann"),),
}


@pytest.mark.parametrize("order,variable_k", [(2, True), (2, False), (4, False)])
@pytest.mark.parametrize("kind", list(KINDS_1D))
def test_spatial_order_1d(kind, order, variable_k):
    sizes = [32, 64, 128, 256] if order == 2 else [24, 48, 96, 192]
    steps, errors = _measure(KINDS_1D[kind], sizes, variable_k=variable_k, order=order)
    target = 1.9 if order == 2 else 3.8
    assert fitted_slope(steps, errors) >= target, report(
        f"1-D {kind}, order {order}, variable k {variable_k}", steps, errors
    )


# Measured slopes, on [16, 32, 64] -> on [16, 24, 32]: Dirichlet-Neumann 1.966 -> 1.952,
# periodic-Dirichlet 1.991 -> 1.986, mixed-periodic 1.983 -> 1.974, fourth-order
# periodic 3.979 -> 3.965. The fourth-order walls reach their asymptotic range only
# past 16 -> 32 (3.822 on [16, 32, 64], 3.759 on [16, 24, 32]): they keep the long ladder.
@pytest.mark.parametrize(
    "kinds,variable_k,order,sizes",
    [
        (("dirichlet", "neumann"), True, 2, [16, 24, 32]),
        (("periodic", "dirichlet"), True, 2, [16, 24, 32]),
        ((("dirichlet", "neumann"), "periodic"), True, 2, [16, 24, 32]),
        (("neumann", "dirichlet"), False, 4, [16, 32, 64]),
        (("periodic", "periodic"), False, 4, [16, 24, 32]),
    ],
)
def test_spatial_order_2d(kinds, variable_k, order, sizes):
    steps, errors = _measure(kinds, sizes, variable_k=variable_k, order=order)
    target = 1.9 if order == 2 else 3.8
    assert fitted_slope(steps, errors) >= target, report(f"2-D {kinds} order {order}", steps, errors)


def test_spatial_order_3d_mixed_walls():
    # slope 1.968 on [8, 12, 16] (1.972 on [8, 16, 24], whose 24^3 run alone took 10 s)
    steps, errors = _measure(("dirichlet", "neumann", "periodic"), [8, 12, 16], variable_k=True, order=2)
    assert fitted_slope(steps, errors) >= 1.9, report("3-D walls, variable k", steps, errors)


# ---------------------------------------------------------------------------------------
# Operator-level orders of the periodic stencils
# ---------------------------------------------------------------------------------------
def _periodic_operator_errors(apply, exact_fn, order, sizes=(16, 32, 64, 128)):
    errors, steps = [], []
    for n in sizes:
        grid = nnpde.Grid((n, n), extent=((0.0, 2 * np.pi), (0.0, 2 * np.pi)))
        bc = nnpde.BoundaryConditions.periodic(2)
        x, y = grid.cell_centres()
        width = order // 2 if order else 2
        result, reference = apply(grid, bc, x, y, width), exact_fn(x, y)
        errors.append(float(jnp.max(jnp.abs(result - reference))))
        steps.append(grid.spacing[0])
    return steps, errors


def u_field(x, y):
    return jnp.sin(x + 0.3) * jnp.cos(2 * y) + 0.5 * jnp.cos(x - y)


@pytest.mark.parametrize("order", [2, 4])
def test_periodic_laplacian_gradient_divergence_orders(order):
    def lap(grid, bc, x, y, w):
        return fd.laplacian(bc.pad(u_field(x, y), w, grid.spacing, order=order), grid.spacing, width=w, order=order)

    def lap_exact(x, y):
        return -5 * jnp.sin(x + 0.3) * jnp.cos(2 * y) - jnp.cos(x - y)

    def grad_x(grid, bc, x, y, w):
        return fd.gradient(bc.pad(u_field(x, y), w, grid.spacing, order=order), grid.spacing, width=w, order=order)[0]

    def grad_x_exact(x, y):
        return jnp.cos(x + 0.3) * jnp.cos(2 * y) - 0.5 * jnp.sin(x - y)

    def div(grid, bc, x, y, w):
        v = jnp.stack([jnp.sin(x) * jnp.sin(y), jnp.cos(x + 2 * y)])
        return fd.divergence(bc.pad(v, w, grid.spacing, order=order), grid.spacing, width=w, order=order)

    def div_exact(x, y):
        return jnp.cos(x) * jnp.sin(y) - 2 * jnp.sin(x + 2 * y)

    target = 1.9 if order == 2 else 3.8
    for name, apply, reference in [
        ("laplacian", lap, lap_exact),
        ("gradient", grad_x, grad_x_exact),
        ("divergence", div, div_exact),
    ]:
        steps, errors = _periodic_operator_errors(apply, reference, order)
        assert fitted_slope(steps, errors) >= target, report(f"{name} order {order}", steps, errors)


@pytest.mark.parametrize("scheme,target", [("central", 1.9), ("upwind", 0.9)])
def test_advection_orders(scheme, target):
    def apply(grid, bc, x, y, w):
        velocity = jnp.stack([1.0 + 0.5 * jnp.sin(y), 0.7 * jnp.cos(x)])
        c_pad = bc.pad(u_field(x, y), 1, grid.spacing)
        if scheme == "central":
            return fd.advection_central(c_pad, velocity, grid.spacing, width=1)
        return fd.advection_upwind(c_pad, velocity, grid.spacing, width=1)

    def reference(x, y):
        ux, uy = 1.0 + 0.5 * jnp.sin(y), 0.7 * jnp.cos(x)
        dx = jnp.cos(x + 0.3) * jnp.cos(2 * y) - 0.5 * jnp.sin(x - y)
        dy = -2 * jnp.sin(x + 0.3) * jnp.sin(2 * y) + 0.5 * jnp.sin(x - y)
        return ux * dx + uy * dy

    steps, errors = _periodic_operator_errors(apply, reference, 2)
    assert fitted_slope(steps, errors) >= target, report(f"advection {scheme}", steps, errors)


@pytest.mark.parametrize("scheme,target", [("central", 1.9), ("upwind", 0.9), ("van_leer", 1.5)])
def test_flux_form_advection_orders(scheme, target):
    """div(u c) from face fluxes; van Leer in the L1 norm (limiters clip extrema)."""
    errors, steps = [], []
    for n in (32, 64, 128, 256):
        grid = nnpde.Grid((n,), extent=((0.0, 2 * np.pi),))
        bc = nnpde.BoundaryConditions.periodic(1)
        (faces,) = grid.face_centres(0)
        (x,) = grid.cell_centres()
        c = jnp.sin(x) + 0.3 * jnp.cos(2 * x)
        u_face = 1.0 + 0.5 * jnp.cos(faces)
        flux = fd.advective_flux(bc.pad(c, 2, grid.spacing), u_face, 0, ndim=1, width=2, scheme=scheme)
        result = fd.face_divergence([flux], grid.spacing)
        u = 1.0 + 0.5 * jnp.cos(x)
        reference = -0.5 * jnp.sin(x) * (jnp.sin(x) + 0.3 * jnp.cos(2 * x)) + u * (jnp.cos(x) - 0.6 * jnp.sin(2 * x))
        errors.append(float(jnp.mean(jnp.abs(result - reference))))
        steps.append(grid.spacing[0])
    assert fitted_slope(steps, errors) >= target, report(f"flux-form {scheme}", steps, errors)


# ---------------------------------------------------------------------------------------
# Temporal orders against the exact semi-discrete solution
# ---------------------------------------------------------------------------------------
N_T, MODE, T_FINAL = 16, 4, 0.01


def _fourier_problem():
    grid = nnpde.Grid((N_T,), extent=((0.0, 1.0),))
    eq = solvers.HeatEquation(grid, nnpde.BoundaryConditions.periodic(1), conductivity=1.0)
    (x,) = grid.cell_centres()
    u0 = jnp.cos(2 * np.pi * MODE * x + 0.2)[None]
    h = grid.spacing[0]
    lam = -4.0 / h**2 * np.sin(np.pi * MODE / N_T) ** 2  # exact eigenvalue of the 3-point Laplacian
    return eq, u0, lam


def _temporal_errors(make_stepper, factors, duration):
    eq, u0, lam = _fourier_problem()
    exact_end = u0 * np.exp(lam * duration)
    dts, errors = [], []
    for f in factors:
        steps = round(duration * abs(lam) / f)
        dt = duration / steps
        stepper = make_stepper(eq, dt)
        final = jax.jit(lambda u, stepper=stepper, steps=steps: nnpde.rollout(stepper, u, steps, trajectory=False))(u0)
        errors.append(float(jnp.max(jnp.abs(final - exact_end)) / jnp.max(jnp.abs(exact_end))))
        dts.append(dt)
    return dts, errors


LOW = (0.2, 0.1, 0.05, 0.025)  # |lambda dt| values
# Dopri5's leading error |z|^6/3600 has a relatively large next term |z|^7/5040 (an
# effective order 5 + 0.7 |z|): it needs smaller steps. Its errors then near round-off,
# so the horizon is |lambda| T = 1, which maximises the final error L exp(-L).
FINE = (0.1, 0.05, 0.025)

STEPPERS = {
    "forward_euler": (1, LOW, lambda eq, dt: nnpde.ExplicitRK(eq, dt=dt, method="forward_euler")),
    "heun": (2, LOW, lambda eq, dt: nnpde.ExplicitRK(eq, dt=dt, method="heun")),
    "ssprk3": (3, LOW, lambda eq, dt: nnpde.ExplicitRK(eq, dt=dt, method="ssprk3")),
    "rk4": (4, LOW, lambda eq, dt: nnpde.ExplicitRK(eq, dt=dt, method="rk4")),
    "backward_euler_spectral": (
        1,
        LOW,
        lambda eq, dt: nnpde.ThetaMethod(eq, dt=dt, method="backward_euler", solver="spectral"),
    ),
    "backward_euler_cg": (1, LOW, lambda eq, dt: nnpde.ThetaMethod(eq, dt=dt, method="backward_euler", solver="cg")),
    "crank_nicolson_spectral": (
        2,
        LOW,
        lambda eq, dt: nnpde.ThetaMethod(eq, dt=dt, method="crank_nicolson", solver="spectral"),
    ),
    "crank_nicolson_cg": (2, LOW, lambda eq, dt: nnpde.ThetaMethod(eq, dt=dt, method="crank_nicolson", solver="cg")),
    "diffrax_heun": (2, LOW, lambda eq, dt: nnpde.DiffraxStepper(eq, dt=dt, solver=diffrax.Heun())),
    "diffrax_bosh3": (3, LOW, lambda eq, dt: nnpde.DiffraxStepper(eq, dt=dt, solver=diffrax.Bosh3())),
    "diffrax_dopri5": (5, FINE, lambda eq, dt: nnpde.DiffraxStepper(eq, dt=dt, solver=diffrax.Dopri5())),
    "diffrax_kvaerno3": (
        3,
        LOW,
        lambda eq, dt: nnpde.DiffraxStepper(
            eq, dt=dt, solver=diffrax.Kvaerno3(root_finder=diffrax.VeryChord(rtol=1e-13, atol=1e-13))
        ),
    ),
}


@pytest.mark.parametrize("name", list(STEPPERS))
def test_temporal_order(name):
    nominal, factors, make = STEPPERS[name]
    lam = _fourier_problem()[2]
    dts, errors = _temporal_errors(make, factors, 1 / abs(lam) if factors is FINE else T_FINAL)
    slope = fitted_slope(dts, errors)
    assert abs(slope - nominal) <= 0.1, report(f"{name} (nominal {nominal})", dts, errors)
