"""A circuit board cooled through one edge: heat sources on a board whose copper
traces conduct far better than the laminate around them.

``rho c dT/dt = div(k grad T) + q`` on a 10 cm x 10 cm board (SI units), temperature
rise above ambient. The bottom edge is clamped to a heat sink (``T = 0``), the other
edges are insulated (``dT/dn = 0``). ``k`` is 0.3 W/(m K) (FR-4 laminate) with copper
traces at 40 W/(m K) (an effective value for a thin copper layer), ``rho c`` 1.9e6
J/(m^3 K); four chips dissipate 10 to 40 mW each into the 1.6 mm-thick board.
Stepped implicitly (Crank-Nicolson, conjugate gradients): the traces make the
explicit limit ~130 times smaller than the step used here.
"""

from __future__ import annotations

import jax.numpy as jnp

import nnpde
import solvers

SIZE = 0.1  # m
THICKNESS = 1.6e-3  # m, turns chip power (W) into a volumetric source (W/m^3)
LAMINATE, COPPER = 0.3, 40.0  # W/(m K)
HEAT_CAPACITY = 1.9e6  # J/(m^3 K)
# (x, y, half-width, power in W)
CHIPS = (
    (0.03, 0.07, 0.008, 0.04),
    (0.07, 0.065, 0.006, 0.02),
    (0.05, 0.035, 0.005, 0.01),
    (0.075, 0.025, 0.004, 0.015),
)


def conductivity_field(grid: nnpde.Grid):
    """Laminate with horizontal traces feeding a vertical bus to the heat sink."""
    x, y = grid.cell_centres()
    traces = jnp.zeros(grid.shape, bool)
    for yc in (0.025, 0.035, 0.065, 0.07):
        traces |= (jnp.abs(y - yc) < 0.0015) & (x > 0.015) & (x < 0.085)
    traces |= (jnp.abs(x - 0.05) < 0.002) & (y < 0.075)
    return jnp.where(traces, COPPER, LAMINATE)


def heat_source(grid: nnpde.Grid):
    """Chip footprints: smoothed squares, each integrating to its power (W/m^3)."""
    x, y = grid.cell_centres()
    q = jnp.zeros(grid.shape)
    for xc, yc, half, power in CHIPS:
        footprint = (1 / (1 + jnp.exp((jnp.abs(x - xc) - half) / 5e-4))) * (
            1 / (1 + jnp.exp((jnp.abs(y - yc) - half) / 5e-4))
        )
        q += power * footprint / (jnp.sum(footprint) * grid.cell_volume * THICKNESS)
    return q


def equation(resolution: int = 96) -> solvers.HeatEquation:
    grid = nnpde.Grid((resolution, resolution), extent=((0.0, SIZE), (0.0, SIZE)))
    bc = nnpde.BoundaryConditions(nnpde.Neumann(0.0), (nnpde.Dirichlet(0.0), nnpde.Neumann(0.0)))
    return solvers.HeatEquation(
        grid, bc, conductivity=conductivity_field(grid), source=heat_source(grid), heat_capacity=HEAT_CAPACITY
    )


def simulation(resolution: int = 96, hours: float = 4.0, dt: float = 30.0, save_every: int = 15) -> nnpde.Simulation:
    """The board warming up from ambient for ``hours``, Crank-Nicolson steps of ``dt`` s."""
    eq = equation(resolution)
    n_steps = max(1, round(hours * 3600 / dt))
    stepper = nnpde.ThetaMethod(eq, dt=dt, method="crank_nicolson", solver="cg")
    return nnpde.Simulation(
        name="heat_board",
        description=__doc__.strip().split("\n\n")[0].replace("\n", " "),
        stepper=stepper,
        initial_state=jnp.zeros(eq.state_shape),
        n_steps=n_steps,
        save_every=save_every,
        channels=("temperature",),
        static_fields={"conductivity": eq.conductivity, "heat_source": eq.source},
        attrs={
            "resolution": resolution,
            "hours": hours,
            "dt_seconds": dt,
            "explicit_limit_seconds": nnpde.max_stable_dt(eq, "rk4"),
        },
        units={
            "temperature": "K above ambient",
            "conductivity": "W/(m K)",
            "heat_source": "W/m^3",
            "time": "s",
            "x": "m",
            "y": "m",
        },
    )
