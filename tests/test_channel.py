"""Inflow and outflow boundaries of the incompressible solver (plane channel flow).

* Plane Poiseuille flow (``problems.channel_flow``): the parabolic inflow stays the
  fully developed parabola and the downstream pressure gradient converges to
  ``-12 nu U / H^2`` at second order (measured relative errors 2.272e-2 at ny = 8,
  5.813e-3 at ny = 16: slope 1.97, the predicted ``1.5 (h/H)^2 / (1 + 2 (h/H)^2)``);
  the outflow flux equals the inflow flux to round-off.
* A plug (uniform) inflow develops into the parabola: the centreline speed rises
  monotonically from ~U to the discrete fully developed value (1.4545 U at ny = 8;
  1.5 U as h -> 0).
* The projection with an outflow (CG, ``p = 0`` on the outflow face): divergence at
  the solver tolerance, flux balance at the inflow's time; a projected
  Runge-Kutta step projects each stage at its own time (a time-dependent inflow).
* Clear errors for unsupported layouts, periodic axes and small grids.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from nnpde import AbstractProjectedEquation
from problems import channel_flow
from solvers import pressure
from solvers.navier_stokes import NavierStokes2D, face_centres, walls


@pytest.fixture(scope="module")
def poiseuille():
    """ny = 8 and 16 marched to t = 1 (viscous time H^2 / nu = 1; the start is the
    analytic parabola, the O(h^2) discrete adjustment decays as exp(-pi^2 t)); and a
    plug inflow on the ny = 8 channel with the same step (one compilation). The Jacobi
    preconditioner compiles faster; the transform one is checked on an outflow below."""
    out = {}
    for ny in (8, 16):
        eq, u0 = channel_flow.make(ny, preconditioner="jacobi")
        u, residual = channel_flow.steady_run(eq, u0, t_end=1.0)
        out[ny] = channel_flow.figures(eq, u, 1.0) | {"residual": residual}
        if ny == 8:
            # the pressure solve agrees with the steady momentum balance G p = f
            p = jax.jit(lambda eq, u: eq.kinematic_pressure(1.0, u))(eq, u)
            out["dpdx_from_p"] = np.asarray((p[1:] - p[:-1]) / eq.grid.spacing[0])
            plug, start = channel_flow.make(8, inflow="plug", preconditioner="jacobi")
            u, residual = channel_flow.steady_run(plug, start, t_end=1.0)
            out["plug"] = channel_flow.figures(plug, u, 1.0) | {"residual": residual}
    return out


def test_poiseuille_pressure_gradient_converges_at_second_order(poiseuille):
    errors = [poiseuille[ny]["dpdx_error"] for ny in (8, 16)]
    slope = math.log2(errors[0] / errors[1])
    predicted = [1.5 * h**2 / (1 + 2 * h**2) for h in (1 / 8, 1 / 16)]
    figures = f"dp/dx relative errors {errors} (predicted {predicted}), slope {slope:.3f}"
    assert slope >= 1.9, figures
    assert errors[1] < 0.01, figures
    for ny, want in zip((8, 16), predicted):
        assert abs(poiseuille[ny]["dpdx_error"] - want) < 0.02 * want, figures


def test_poiseuille_is_steady_and_conserves_mass(poiseuille):
    for ny in (8, 16):
        f = poiseuille[ny]
        imbalance = abs(f["flux_out"] - f["flux_in"])
        figures = (
            f"ny {ny}: residual {f['residual']:.3e}, flux in {f['flux_in']:.15f} out {f['flux_out']:.15f}, "
            f"max|div| {f['max_divergence']:.3e}, dp/dx spread {f['dpdx_spread']:.3e}"
        )
        assert f["residual"] < 1e-9, figures
        assert imbalance < 1e-13 * f["flux_in"], figures
        assert f["max_divergence"] < 1e-12, figures
        assert f["dpdx_spread"] < 1e-3 * abs(f["dpdx"]), figures  # uniform downstream
    # on every interior face, to the steady residual (|f - G p| = |P f| = |du/dt|)
    gap = float(np.max(np.abs(poiseuille["dpdx_from_p"] - poiseuille[8]["dpdx_faces"])))
    assert gap < 1e-8, f"dp/dx from the pressure solve vs G p = f: max gap {gap:.3e}"


def test_plug_inflow_develops_into_the_parabola(poiseuille):
    f = poiseuille["plug"]
    centre = f["centreline"]
    h = 1 / 8
    # the discrete fully developed centreline (mean of the two middle cells, y = 1/2 -+ h/2)
    y = np.array([0.5 - h / 2, 0.5 + h / 2])
    developed = float(np.mean(6 * (y * (1 - y) + h**2 / 4) / (1 + 2 * h**2)))
    figures = f"centreline {np.round(centre, 4)}, developed {developed:.4f}, residual {f['residual']:.2e}"
    assert centre[0] < 1.15, figures  # near the plug U = 1 at the first face
    assert np.all(np.diff(centre[:8]) > 0), figures  # accelerates along the entrance region
    assert abs(centre[-1] - developed) < 1e-3, figures
    assert abs(developed - 1.5) < 0.05, figures  # -> 1.5 U as h -> 0
    assert abs(f["flux_out"] - f["flux_in"]) < 1e-12, figures


def test_projection_with_outflow_and_a_time_dependent_inflow():
    grid = nnpde.Grid((10, 6), extent=((0.0, 2.0), (0.0, 1.0)))
    y = (np.arange(6) + 0.5) / 6
    bc = walls(x=(("inflow", lambda t: jnp.asarray(1.0 + y) * (1.0 + t), 0.2), "outflow"), y="no_slip")
    u = jax.random.normal(jax.random.PRNGKey(0), (2, *grid.shape))

    @jax.jit
    def figures(u, t):
        # the default transform preconditioner: the Neumann fast solve of a nearby problem
        pu = pressure.project(u, grid, bc, t=t)
        div = jnp.max(jnp.abs(pressure.divergence(pu, grid, bc, t)))
        inflow = jnp.sum(jnp.asarray(1.0 + y) * (1.0 + t)) * grid.spacing[1]
        before = jnp.max(jnp.abs(pressure.divergence(u, grid, bc, t)))
        return before, div, jnp.sum(pu[0, -1]) * grid.spacing[1] - inflow, jnp.max(jnp.abs(pu[1, :, 0]))

    before, div, imbalance, wall = (float(x) for x in figures(u, 0.7))
    report = f"max|D P u| {div:.3e} (before {before:.3e}), flux imbalance {imbalance:.3e}, wall v {wall:.3e}"
    assert div < 1e-11 * before and abs(imbalance) < 1e-12 and wall == 0.0, report
    # the upper-face storage of the channel axis: u[i] is at x_{i+1}
    (x_u, _), (x_v, _) = face_centres(grid, bc)
    assert float(x_u[0, 0]) == 0.2 and float(x_u[-1, 0]) == 2.0 and float(x_v[0, 0]) == 0.1


class _TimedConstraint(AbstractProjectedEquation):
    """``du/dt = 1`` with the 'projection' u[0] = g(t): a constraint that moves in time."""

    grid: nnpde.Grid = nnpde.Grid((3,))

    @property
    def state_shape(self):
        return (3,)

    def __call__(self, t, u, args=None):
        return jnp.ones_like(u)

    def project(self, u, t=0.0):
        return u.at[0].set(jnp.sin(t))

    def advective_radius(self, t, u):
        return 0.0

    def spectral_radius(self, t, u):
        return 0.0


def test_projected_rk_projects_each_stage_at_its_time():
    u = nnpde.ProjectedRK(_TimedConstraint(), dt=0.3, check_stability=False)(jnp.zeros(3), 1.0)
    assert float(u[0]) == float(jnp.sin(1.3)) and abs(float(u[1]) - 0.3) < 1e-15, u


def test_channel_configuration_errors():
    grid = nnpde.Grid((8, 6), extent=((0.0, 2.0), (0.0, 1.0)))
    with pytest.raises(ValueError, match=r"x=\('periodic', 'outflow'\).*periodic axis has no boundary.*Fix"):
        walls(x=("periodic", "outflow"))
    with pytest.raises(ValueError, match=r"y must be 'periodic'.*got \('inflow', 1.0\).*periodic axis.*Fix"):
        walls(y=("inflow", 1.0))
    for spec in [("outflow", "outflow"), (0.0, "outflow"), ("outflow", ("inflow", 1.0)), (("inflow", 1.0), 0.0)]:
        with pytest.raises(ValueError, match=r"Axis 0 has sides.*Fix"):
            NavierStokes2D(grid, viscosity=0.1, bc=walls(x=spec))
    with pytest.raises(ValueError, match=r"shape \(5,\).*Fix"):
        NavierStokes2D(grid, viscosity=0.1, bc=walls(x=(("inflow", jnp.ones(5)), "outflow")))
    with pytest.raises(ValueError, match="at least 4 cells"):
        NavierStokes2D(nnpde.Grid((3, 6)), viscosity=0.1, bc=walls(x=(("inflow", 1.0), "outflow")))
    channel = walls(x=(("inflow", 1.0), "outflow"))
    with pytest.raises(ValueError, match=r"no fast transform for an inflow/outflow axis.*solver='cg'"):
        NavierStokes2D(grid, viscosity=0.1, bc=channel, pressure_solver="dct")
    with pytest.raises(ValueError, match="central"):
        NavierStokes2D(grid, viscosity=0.1, bc=channel, advection="van_leer")
    with pytest.raises(ValueError, match="outflow has zero normal velocity gradient"):
        pressure.Outflow(1.0)
