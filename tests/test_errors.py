"""Every bad input fails early with a clear error: the right type (ValueError or
TypeError; a runtime error under ``jit``), a message naming the offending value and a
fix. Each family also checks that a GOOD input at the edge of validity passes, so the
checks are not over-eager.

Note: pytest runs with ``--jaxtyping-packages=nnpde,solvers,problems,beartype.beartype``
(pyproject.toml), so arguments of the wrong *type* for an annotated parameter raise
``jaxtyping.TypeCheckError`` (a ``TypeError``) before the library's own checks run.
The tests below use values of the annotated type so that the library's own messages
are what is checked, except where noted.
"""

import contextlib
import re

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from nnpde import BoundaryConditions, Dirichlet, Neumann, Periodic
from solvers import HeatEquation

# Errors raised inside compiled code: jax.jit re-raises eqx.error_if failures as
# jax.errors.JaxRuntimeError (a RuntimeError) or, on some dispatch paths, ValueError;
# eqx.filter_jit raises eqx.EquinoxRuntimeError (a RuntimeError).
RUNTIME_ERRORS = (RuntimeError, ValueError)


@contextlib.contextmanager
def raises(exc_type, match, *more):
    """``pytest.raises(exc_type, match=match)`` plus further regexes that must all occur
    in the message; a failure prints the whole message."""
    with pytest.raises(exc_type, match=match) as info:
        yield info
    message = str(info.value)
    for pattern in more:
        assert re.search(pattern, message), f"pattern {pattern!r} not in the message:\n{message}"


def esc(value) -> str:
    """A value as it appears in a message, as a regex."""
    return re.escape(str(value))


GRID = nnpde.Grid(8)
WALLS = BoundaryConditions.dirichlet(1)
EQ = HeatEquation(GRID, WALLS)
U0 = jnp.zeros((1, 8)).at[0, 3].set(1.0)


def stepper(dt_fraction=0.5, equation=EQ, method="rk4"):
    return nnpde.ExplicitRK(equation, dt=dt_fraction * float(nnpde.max_stable_dt(equation, method)), method=method)


# ---------------------------------------------------------------------------------------
# Non-finite values
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_rollout_refuses_non_finite_initial_state(bad):
    u = U0.at[0, 5].set(bad)
    with raises(ValueError, "initial state", "non-finite", esc(bad), r"index \(0, 5\)", "Fix"):
        nnpde.rollout(stepper(), u, 5)


def test_rollout_accepts_finite_initial_state_with_extreme_values():
    u = U0.at[0, 5].set(1e150).at[0, 6].set(-1e-300)
    out = nnpde.rollout(stepper(), u, 1)
    assert out.shape == (1, 1, 8), out.shape


@pytest.mark.parametrize("name", ["conductivity", "heat_capacity", "source"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_heat_equation_refuses_non_finite_scalar_coefficients(name, bad):
    with raises(ValueError, name, "finite", esc(bad), "Fix"):
        HeatEquation(GRID, WALLS, **{name: float(bad)})


@pytest.mark.parametrize("name", ["conductivity", "heat_capacity", "source"])
@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_heat_equation_refuses_non_finite_fields(name, bad):
    field = jnp.ones(8).at[2].set(bad)
    with raises(ValueError, name, "non-finite", esc(bad), r"index \(2,\)", "Fix"):
        HeatEquation(GRID, WALLS, **{name: field})
    # 0-d arrays are checked too.
    with raises(ValueError, name, "non-finite"):
        HeatEquation(GRID, WALLS, **{name: jnp.asarray(bad)})


def test_non_finite_initial_state_under_jit_raises_at_run_time():
    step = stepper()
    run = jax.jit(lambda u: nnpde.rollout(step, u, 5))
    good = run(U0)
    assert bool(jnp.all(jnp.isfinite(good))), good
    for bad in (jnp.nan, jnp.inf):
        with raises(RUNTIME_ERRORS, "non-finite", "initial state", "Fix"):
            jax.block_until_ready(run(U0.at[0, 2].set(bad)))


def test_non_finite_initial_state_under_filter_jit_raises_equinox_error():
    step = stepper()
    run = eqx.filter_jit(lambda u: nnpde.rollout(step, u, 2))
    with raises(eqx.EquinoxRuntimeError, "non-finite", "initial state"):
        jax.block_until_ready(run(U0.at[0, 0].set(jnp.nan)))


# ---------------------------------------------------------------------------------------
# Shapes of fields
# ---------------------------------------------------------------------------------------
def test_state_of_wrong_spatial_size():
    with raises(ValueError, esc((1, 9)), esc((1, 8)), "Fix", "grid"):
        nnpde.rollout(stepper(), jnp.zeros((1, 9)), 2)


def test_state_missing_channel_axis():
    with raises(ValueError, esc((8,)), esc((1, 8)), "channels first"):
        nnpde.rollout(stepper(), jnp.zeros(8), 2)
    grid = nnpde.Grid((4, 5))
    eq = HeatEquation(grid, BoundaryConditions.periodic(2))
    with raises(ValueError, esc((4, 5)), esc((1, 4, 5)), "channels first"):
        nnpde.rollout(stepper(equation=eq), jnp.zeros((4, 5)), 2)


def test_batched_state_points_to_vmap():
    with raises(ValueError, "jax.vmap", "batch of 4", esc((4, 1, 8)), esc((1, 8))):
        nnpde.rollout(stepper(), jnp.zeros((4, 1, 8)), 2)
    # The advice is right: vmap over the batch works.
    out = jax.vmap(lambda u: nnpde.rollout(stepper(), u, 2, trajectory=False))(jnp.zeros((4, 1, 8)))
    assert out.shape == (4, 1, 8)


@pytest.mark.parametrize("name", ["conductivity", "heat_capacity", "source"])
def test_coefficient_field_of_wrong_shape(name):
    with raises(ValueError, name, esc((7,)), esc((8,)), "Fix"):
        HeatEquation(GRID, WALLS, **{name: jnp.ones(7)})
    with raises(ValueError, name, esc((8, 8))):
        HeatEquation(GRID, WALLS, **{name: jnp.ones((8, 8))})
    HeatEquation(GRID, WALLS, **{name: jnp.ones(8)})  # the right shape passes


def test_coefficient_field_with_channel_axis_gets_channel_advice():
    with raises(ValueError, "conductivity", esc((1, 8)), esc((8,))) as info:
        HeatEquation(GRID, WALLS, conductivity=jnp.ones((1, 8)))
    message = str(info.value)
    assert "vmap" not in message, message
    assert "channel" in message, message


# ---------------------------------------------------------------------------------------
# Positivity of physical coefficients
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["conductivity", "heat_capacity"])
def test_non_positive_coefficients(name):
    for bad in (0.0, -1.5):
        with raises(ValueError, name, "positive", esc(bad), "Fix"):
            HeatEquation(GRID, WALLS, **{name: bad})
    field = jnp.ones(8).at[4].set(-0.25)
    with raises(ValueError, name, "positive", "minimum -0.25", "Fix"):
        HeatEquation(GRID, WALLS, **{name: field})
    with raises(ValueError, name, "positive", "minimum 0.0"):
        HeatEquation(GRID, WALLS, **{name: jnp.ones(8).at[0].set(0.0)})
    # Tiny but positive passes.
    HeatEquation(GRID, WALLS, **{name: 1e-12})
    HeatEquation(GRID, WALLS, **{name: jnp.full(8, 1e-12)})


def test_negative_source_is_allowed():
    HeatEquation(GRID, WALLS, source=-3.0)
    HeatEquation(GRID, WALLS, source=-jnp.ones(8))


# ---------------------------------------------------------------------------------------
# Boundary specifications
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pair, other",
    [((Periodic(), Dirichlet(0.0)), "Dirichlet"), ((Neumann(1.0), Periodic()), "Neumann")],
)
def test_periodic_on_one_side_only(pair, other):
    with raises(ValueError, "Axis 0", "periodic", other, "Fix", r"Periodic\(\)"):
        BoundaryConditions(pair)
    with raises(ValueError, "Axis 1"):
        BoundaryConditions(Periodic(), pair)


@pytest.mark.parametrize("bad", ["periodic", 0.0, 1, None, Periodic, ("dirichlet", "neumann")])
def test_non_condition_objects(bad):
    with raises(
        TypeError,
        "Boundary condition for axis 0",
        esc(repr(bad[0] if isinstance(bad, tuple) else bad)),
        r"nnpde\.Periodic\(\)",
        r"nnpde\.Dirichlet\(value\)",
    ):
        BoundaryConditions(bad)
    # Also as one side of a pair, on a later axis.
    with raises(TypeError, "axis 1", esc(repr("neumann"))):
        BoundaryConditions(Periodic(), (Dirichlet(0.0), "neumann"))


def test_wrong_number_of_axes_in_boundary_conditions():
    with raises(ValueError, "1 to 3", "got 0"):
        BoundaryConditions()
    with raises(ValueError, "1 to 3", "got 4"):
        BoundaryConditions(*[Periodic()] * 4)
    with raises(ValueError, "Axis 0", r"\(low, high\) pair"):
        BoundaryConditions((Dirichlet(0.0), Dirichlet(0.0), Dirichlet(0.0)))


def test_boundary_conditions_for_another_number_of_axes_than_the_grid():
    with raises(ValueError, "for 1 axes", "grid has 2", esc((8, 8)), "Fix"):
        HeatEquation(nnpde.Grid((8, 8)), WALLS)
    with raises(ValueError, "for 3 axes", "grid has 1"):
        BoundaryConditions.periodic(3).check(GRID)
    # A list of two conditions is read as one spec per axis (two axes), not a pair.
    with raises(ValueError, "for 2 axes", "grid has 1"):
        HeatEquation(GRID, BoundaryConditions([Dirichlet(0.0), Dirichlet(1.0)]))
    HeatEquation(GRID, BoundaryConditions((Dirichlet(0.0), Dirichlet(1.0))))  # a tuple is a pair


def test_bc_argument_that_is_not_boundary_conditions():
    # Raised by the jaxtyping/beartype hook (annotation) before HeatEquation's own check;
    # either way a TypeError naming 'bc'.
    with raises(TypeError, "bc"):
        HeatEquation(GRID, Periodic())


def test_boundary_value_array_that_does_not_fit_the_face():
    grid = nnpde.Grid((4, 6))
    with raises(ValueError, "Dirichlet", "low side of axis 0", esc((4,)), esc((6,)), "Fix"):
        HeatEquation(grid, BoundaryConditions(Dirichlet(jnp.ones(4)), Periodic()))
    with raises(ValueError, "Neumann", "high side of axis 1", esc((6,)), esc((4,))):
        HeatEquation(grid, BoundaryConditions(Periodic(), (Neumann(0.0), Neumann(jnp.ones(6)))))
    # Fitting arrays (and scalars, and functions of t) pass.
    HeatEquation(grid, BoundaryConditions(Dirichlet(jnp.ones(6)), (Neumann(jnp.ones(4)), Dirichlet(2.0))))
    HeatEquation(grid, BoundaryConditions(Dirichlet(lambda t: t * jnp.ones(6)), Periodic()))


def test_boundary_function_of_t_that_does_not_fit_the_face_fails_at_construction():
    """A ``g(t)`` of the wrong shape is refused when the equation is built (its shape is
    traced once), not with a broadcasting error at the first step."""
    grid = nnpde.Grid((4, 6))
    with raises(ValueError, "Dirichlet", "function of t", "low side of axis 0", esc((4,)), esc((6,)), "Fix"):
        HeatEquation(grid, BoundaryConditions(Dirichlet(lambda t: t * jnp.ones(4)), Periodic()))


@pytest.mark.parametrize(
    "grid, value, face",
    [(nnpde.Grid((4, 6)), jnp.ones((6, 1)), (6,)), (nnpde.Grid(8), jnp.ones(2), ())],
    ids=["2d-(6,1)", "1d-(2,)"],
)
def test_boundary_value_that_broadcasts_but_does_not_fit_the_face(grid, value, face):
    specs = [Dirichlet(value)] + [Periodic()] * (grid.ndim - 1)
    with raises(ValueError, "Dirichlet", esc(tuple(value.shape)), esc(face)):
        HeatEquation(grid, BoundaryConditions(*specs))


@pytest.mark.parametrize("condition", [Dirichlet(float("nan")), Neumann(jnp.array(jnp.inf))])
def test_non_finite_boundary_data(condition):
    with raises(ValueError, type(condition).__name__, "finite"):
        HeatEquation(GRID, BoundaryConditions(condition))


@pytest.mark.parametrize(
    "shape, bc, order, need",
    [
        ((1,), BoundaryConditions.periodic(1), 2, 2),
        ((1,), BoundaryConditions.dirichlet(1), 2, 2),
        ((3,), BoundaryConditions.dirichlet(1), 4, 4),
        ((3,), BoundaryConditions.neumann(1), 4, 4),
        ((8, 1), BoundaryConditions(Periodic(), Neumann(0.0)), 2, 2),
    ],
)
def test_grid_too_small_for_the_stencil(shape, bc, order, need):
    axis = len(shape) - 1
    with raises(ValueError, f"Axis {axis} has {shape[axis]} cells", f"order-{order}", f"at least {need}", "Fix"):
        HeatEquation(nnpde.Grid(shape), bc, order=order)


@pytest.mark.parametrize(
    "n, bc, order",
    [
        (2, BoundaryConditions.dirichlet(1), 2),
        (2, BoundaryConditions.periodic(1), 2),
        (4, BoundaryConditions.neumann(1), 4),
        (2, BoundaryConditions.periodic(1), 4),
    ],
)
def test_smallest_grids_that_fit_the_stencil(n, bc, order):
    eq = HeatEquation(nnpde.Grid(n), bc, order=order)
    out = nnpde.rollout(stepper(equation=eq), jnp.ones((1, n)), 2)
    assert bool(jnp.all(jnp.isfinite(out))), out


# ---------------------------------------------------------------------------------------
# Explicit stability
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["forward_euler", "heun", "ssprk3", "rk4"])
def test_explicit_dt_above_the_limit_is_refused_and_at_the_limit_accepted(method):
    eq = HeatEquation(
        nnpde.Grid((8, 6)),
        BoundaryConditions(Periodic(), Neumann(0.0)),
        conductivity=1.0 + jnp.arange(48.0).reshape(8, 6) / 10,
    )
    limit = float(nnpde.max_stable_dt(eq, method))
    dt = limit * 1.001
    with raises(ValueError, f"dt={dt:.6g}", f"stability limit {limit:.6g}", method, "implicit", "stable_dt"):
        nnpde.ExplicitRK(eq, dt=dt, method=method)
    # Exactly at the limit: construction and a step (the step re-checks) pass.
    out = nnpde.ExplicitRK(eq, dt=limit, method=method)(jnp.ones((1, 8, 6)))
    assert bool(jnp.all(jnp.isfinite(out))), out
    nnpde.ExplicitRK(eq, dt=nnpde.stable_dt(eq, method), method=method)
    nnpde.ExplicitRK(eq, dt=nnpde.stable_dt(eq, method, safety=1.0), method=method)
    assert nnpde.stable_dt(eq, method) == pytest.approx(0.9 * limit, rel=1e-12)
    # Opting out of the check is possible and explicit.
    nnpde.ExplicitRK(eq, dt=dt, method=method, check_stability=False)


def test_explicit_limit_at_order_4():
    eq = HeatEquation(GRID, WALLS, order=4, conductivity=0.5)
    limit = float(nnpde.max_stable_dt(eq))
    with raises(ValueError, f"{limit:.6g}", "implicit"):
        nnpde.ExplicitRK(eq, dt=1.01 * limit)
    nnpde.ExplicitRK(eq, dt=limit)


def test_stable_dt_safety_out_of_range():
    for bad in (0.0, -0.5, 1.5):
        with raises(ValueError, "safety", esc(bad)):
            nnpde.stable_dt(EQ, safety=bad)


def test_too_large_dt_with_traced_conductivity_is_refused_at_run_time():
    """The stepper is a jit argument whose conductivity is replaced by a traced value;
    the stability check then runs inside the compiled code (eqx.error_if)."""
    base = nnpde.ExplicitRK(EQ, dt=0.9 * float(nnpde.max_stable_dt(EQ)))
    run = jax.jit(lambda s, k: nnpde.rollout(eqx.tree_at(lambda s: s.equation.conductivity, s, k), U0, 3))
    for good in (1.0, 1.1):  # dt = 0.9 limit(1) = 0.99 limit(1.1): still stable
        out = jax.block_until_ready(run(base, good))
        assert bool(jnp.all(jnp.isfinite(out))), (good, out)
    with raises(RUNTIME_ERRORS, "exceeds", "stability limit", "stable_dt", "ThetaMethod"):
        jax.block_until_ready(run(base, 1.2))
    # A traced conductivity FIELD, too.
    field_eq = HeatEquation(GRID, WALLS, conductivity=jnp.ones(8))
    base = nnpde.ExplicitRK(field_eq, dt=0.9 * float(nnpde.max_stable_dt(field_eq)))
    run_field = jax.jit(lambda s, k: nnpde.rollout(eqx.tree_at(lambda s: s.equation.conductivity, s, k), U0, 3))
    jax.block_until_ready(run_field(base, jnp.ones(8)))
    with raises(RUNTIME_ERRORS, "exceeds", "stable_dt"):
        jax.block_until_ready(run_field(base, jnp.ones(8).at[3].set(2.0)))


def test_too_large_dt_with_conductivity_traced_at_construction():
    """The pattern from the spec: equation and stepper built inside the jitted function."""
    dt = 0.9 * float(nnpde.max_stable_dt(EQ))

    @jax.jit
    def run(k):
        eq = HeatEquation(GRID, WALLS, conductivity=k)
        return nnpde.rollout(nnpde.ExplicitRK(eq, dt=dt), U0, 3)

    out = jax.block_until_ready(run(jnp.ones(8)))
    assert bool(jnp.all(jnp.isfinite(out))), out
    with raises(RUNTIME_ERRORS, "exceeds", "stable_dt"):
        jax.block_until_ready(run(2.0 * jnp.ones(8)))

    # Every stepper can be built inside a trace (regression: _check_dt once used
    # jnp.isfinite(dt), a tracer under jit, so construction raised
    # TracerBoolConversionError).
    def theta(eq):
        return nnpde.ThetaMethod(eq, dt=0.1)

    def tsit5(eq):
        return nnpde.DiffraxStepper(eq, dt=1e-3)

    for make in (theta, tsit5):
        shape = jax.eval_shape(lambda k, make=make: make(HeatEquation(GRID, WALLS, conductivity=k))(U0), jnp.ones(8))
        assert shape.shape == U0.shape, (make.__name__, shape)


def test_diffrax_explicit_solver_above_the_limit_is_refused():
    radius = float(EQ.spectral_radius(0.0, None))
    with raises(ValueError, "dt0=", "Tsit5", "stability limit", "Fix", "implicit", "PIDController") as info:
        nnpde.DiffraxStepper(EQ, dt=4.0 / radius)
    limit = float(re.search(r"stability limit ([0-9.e+-]+)", str(info.value)).group(1))
    assert 3.0 / radius < limit < 4.0 / radius, (limit, radius)
    # dt0 alone above the limit (dt itself may be long: sub-steps of dt0).
    with raises(ValueError, "dt0=", "Heun"):
        nnpde.DiffraxStepper(EQ, dt=10.0 / radius, dt0=2.01 / radius, solver=diffrax.Heun())
    # Good inputs: at the limit, adaptive steps, implicit solver.
    nnpde.DiffraxStepper(EQ, dt=10.0 / radius, dt0=2.0 / radius, solver=diffrax.Heun())
    out = nnpde.rollout(nnpde.DiffraxStepper(EQ, dt=0.999 * limit), U0, 2)
    assert bool(jnp.all(jnp.isfinite(out))), out
    nnpde.DiffraxStepper(EQ, dt=4.0 / radius, stepsize_controller=diffrax.PIDController(rtol=1e-4, atol=1e-6))
    nnpde.DiffraxStepper(EQ, dt=4.0 / radius, solver=diffrax.ImplicitEuler())


def test_diffrax_explicit_euler_above_the_limit_is_refused():
    radius = float(EQ.spectral_radius(0.0, None))
    with raises(ValueError, "dt0=", "Euler"):
        nnpde.DiffraxStepper(EQ, dt=2.5 / radius, solver=diffrax.Euler())


def test_diffrax_too_large_dt_with_traced_conductivity_is_refused_at_run_time():
    base = nnpde.DiffraxStepper(EQ, dt=2.0 / float(EQ.spectral_radius(0.0, None)))
    run = jax.jit(lambda s, k: nnpde.rollout(eqx.tree_at(lambda s: s.equation.conductivity, s, k), U0, 3))
    jax.block_until_ready(run(base, 1.0))
    with raises(RUNTIME_ERRORS, "exceeds|stability"):
        jax.block_until_ready(run(base, 10.0))


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan"), float("inf"), float("-inf")])
def test_bad_dt(bad):
    for name, make in (
        ("dt", lambda: nnpde.ExplicitRK(EQ, dt=bad)),
        ("dt", lambda: nnpde.ThetaMethod(EQ, dt=bad)),
        ("dt", lambda: nnpde.DiffraxStepper(EQ, dt=bad)),
        ("dt0", lambda: nnpde.DiffraxStepper(EQ, dt=1e-3, dt0=bad)),
    ):
        with raises(ValueError, f"{name}={esc(bad)}", "positive finite", "Fix"):
            make()
    nnpde.ThetaMethod(EQ, dt=1e-300)  # tiny but positive passes


# ---------------------------------------------------------------------------------------
# Methods, solvers and equation types
# ---------------------------------------------------------------------------------------
def test_unknown_explicit_method():
    with raises(ValueError, "'euler'", "Fix", "forward_euler", "rk4", "ButcherTableau"):
        nnpde.ExplicitRK(EQ, dt=1e-4, method="euler")
    with raises(ValueError, "'RK4'"):
        nnpde.max_stable_dt(EQ, "RK4")
    # Every listed name and a custom tableau work.
    for name in ("forward_euler", "heun", "ssprk3", "rk4"):
        nnpde.ExplicitRK(EQ, dt=1e-4, method=name)
    midpoint = nnpde.ButcherTableau("midpoint", ((0.0, 0.0), (0.5, 0.0)), (0.0, 1.0), (0.0, 0.5), 2)
    nnpde.ExplicitRK(EQ, dt=float(nnpde.max_stable_dt(EQ, midpoint)), method=midpoint)


def test_unknown_implicit_method_and_solver():
    with raises(ValueError, "'trapezoid'", "Fix", "crank_nicolson", "backward_euler"):
        nnpde.ThetaMethod(EQ, dt=1e-2, method="trapezoid")
    with raises(ValueError, "'gmres'", "cg", "spectral", "auto"):
        nnpde.ThetaMethod(EQ, dt=1e-2, solver="gmres")


def test_spectral_solver_where_impossible():
    variable = HeatEquation(GRID, WALLS, conductivity=1.0 + jnp.arange(8.0))
    with raises(ValueError, "solver='spectral'", "scalar coefficient", "Fix", "solver='cg'"):
        nnpde.ThetaMethod(variable, dt=1e-2, solver="spectral")
    mixed = HeatEquation(GRID, BoundaryConditions((Dirichlet(0.0), Neumann(0.0))))
    with raises(ValueError, "solver='spectral'", "same-type wall", "solver='cg'"):
        nnpde.ThetaMethod(mixed, dt=1e-2, solver="spectral")
    fourth = HeatEquation(GRID, WALLS, order=4)
    with raises(ValueError, "solver='spectral'"):
        nnpde.ThetaMethod(fourth, dt=1e-2, solver="spectral")
    # Where it is possible it is used; "auto" falls back to CG otherwise.
    assert nnpde.ThetaMethod(EQ, dt=1e-2, solver="spectral").solver == "spectral"
    assert nnpde.ThetaMethod(variable, dt=1e-2).solver == "cg"
    assert nnpde.ThetaMethod(HeatEquation(GRID, BoundaryConditions.periodic(1), order=4), dt=1e-2).solver == "spectral"


class CubicDecay(nnpde.AbstractEquation):
    """A non-linear equation: du/dt = -u^3."""

    grid: nnpde.Grid

    def __call__(self, t, u, args=None):
        return -(u**3)

    @property
    def state_shape(self):
        return (1, *self.grid.shape)

    def spectral_radius(self, t, u):
        return 1.0


def test_theta_method_refuses_a_non_linear_equation():
    # With the test suite's jaxtyping hook the annotation check raises first
    # (jaxtyping.TypeCheckError, a TypeError); without it ThetaMethod's own TypeError
    # says the same ("needs a linear equation (nnpde.AbstractLinearEquation), got ...").
    with raises(TypeError, "AbstractLinearEquation", "CubicDecay"):
        nnpde.ThetaMethod(CubicDecay(GRID), dt=1e-2)
    # The advised alternative works.
    out = nnpde.rollout(nnpde.ExplicitRK(CubicDecay(GRID), dt=0.1), jnp.ones((1, 8)), 2)
    assert bool(jnp.all(jnp.isfinite(out))), out


def test_order_4_with_a_conductivity_field():
    with raises(ValueError, "conductivity field", "Fix", "order=2", "scalar conductivity"):
        HeatEquation(GRID, WALLS, order=4, conductivity=jnp.ones(8))
    HeatEquation(GRID, WALLS, order=4, conductivity=jnp.asarray(2.0))  # a 0-d array is a scalar


def test_bad_order_and_face_mean():
    with raises(ValueError, "order must be 2 or 4", "got 3"):
        HeatEquation(GRID, WALLS, order=3)
    with raises(ValueError, "face_mean", "'geometric'", "harmonic", "arithmetic"):
        HeatEquation(GRID, WALLS, face_mean="geometric")


# ---------------------------------------------------------------------------------------
# Grids
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [0, (4, 0), (-3,), (8, 8, -1)])
def test_grid_needs_positive_cell_counts(shape):
    shown = (shape,) if isinstance(shape, int) else tuple(shape)
    with raises(ValueError, "positive integers", f"shape={esc(shown)}", "Fix"):
        nnpde.Grid(shape)


@pytest.mark.parametrize("shape", [(), (4, 4, 4, 4)])
def test_grid_needs_1_to_3_axes(shape):
    with raises(ValueError, "1 to 3 axes", f"shape={esc(shape)}", "Fix"):
        nnpde.Grid(shape)


@pytest.mark.parametrize("lo, hi", [(1.0, 1.0), (1.0, 0.0), (0.0, float("nan")), (float("-inf"), 0.0)])
def test_grid_needs_finite_increasing_extent(lo, hi):
    with raises(ValueError, "finite lo < hi", esc(((0.0, 1.0), (float(lo), float(hi)))), "Fix"):
        nnpde.Grid((4, 4), extent=((0.0, 1.0), (lo, hi)))


def test_grid_extent_pairs_per_axis():
    with raises(ValueError, "one \\(lo, hi\\) pair per axis", esc((4, 4))):
        nnpde.Grid((4, 4), extent=((0.0, 1.0),))
    with raises(ValueError, "one \\(lo, hi\\) pair per axis"):
        nnpde.Grid(4, extent=[(0.0, 1.0, 2.0)])  # a list passes the annotation


def test_grid_edge_cases_that_are_valid():
    assert nnpde.Grid(1).shape == (1,)
    assert nnpde.Grid((2, 3, 4)).ndim == 3
    assert nnpde.Grid(2, extent=((0.0, 1e-9),)).spacing[0] == pytest.approx(5e-10)
    assert nnpde.Grid(2, extent=((-1e9, 1e9),)).spacing[0] == pytest.approx(1e9)


# ---------------------------------------------------------------------------------------
# rollout arguments
# ---------------------------------------------------------------------------------------
def test_rollout_negative_n_steps():
    with raises(ValueError, "n_steps", "non-negative", "got -1"):
        nnpde.rollout(stepper(), U0, -1)
    assert nnpde.rollout(stepper(), U0, 0).shape == (0, 1, 8)
    assert nnpde.rollout(stepper(), U0, 0, include_init=True).shape == (1, 1, 8)
    np.testing.assert_array_equal(nnpde.rollout(stepper(), U0, 0, trajectory=False), U0)


@pytest.mark.parametrize("bad", ["bogus", "Step", 0, -2])
def test_rollout_invalid_checkpoint(bad):
    with raises(ValueError, "checkpoint", esc(repr(bad)), "'step'", "'sqrt'", "positive int"):
        nnpde.rollout(stepper(), U0, 4, checkpoint=bad)


def test_rollout_valid_checkpoints_agree():
    step = stepper()
    reference = nnpde.rollout(step, U0, 5)
    for checkpoint in ("step", "sqrt", 50):  # sqrt: 3-step segments and a tail of 2; 50 > n_steps
        out = nnpde.rollout(step, U0, 5, checkpoint=checkpoint)
        np.testing.assert_allclose(out, reference, rtol=0, atol=1e-14, err_msg=f"checkpoint={checkpoint!r}")


def test_rollout_zero_steps_with_sqrt_checkpoint():
    assert nnpde.rollout(stepper(), U0, 0, checkpoint="sqrt").shape == (0, 1, 8)


@pytest.mark.parametrize(
    "equation, u0",
    [
        (EQ, jnp.ones((1, 8), dtype=jnp.int32)),
        (HeatEquation(GRID, WALLS, conductivity=jnp.ones(8)), jnp.ones((1, 8), dtype=jnp.float32)),
    ],
    ids=["int32", "float32-vs-float64-field"],
)
def test_rollout_initial_state_dtype(equation, u0):
    try:
        out = nnpde.rollout(stepper(equation=equation), u0, 2)
    except (TypeError, ValueError) as error:
        message = str(error)
        assert "initial state" in message and "dtype" in message, message
    else:
        assert jnp.issubdtype(out.dtype, jnp.floating), out.dtype
