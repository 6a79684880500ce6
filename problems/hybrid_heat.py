r"""Heat conduction with heat sources finer than the coarse grid: a 2-D hybrid task.

``dT/dt = k lap T + q`` on the unit square (non-dimensional, ``k = 1``), the bottom
edge held at ``T = 0`` (a heat sink), the other edges insulated. ``q`` is a fixed
layout of ``N_SOURCES`` Gaussian hot spots of width ``SPOT_WIDTH = 0.004``, eight
times smaller than a coarse cell, with total power ``POWER``: an electronics board
whose components the coarse grid cannot resolve. Initial temperatures are random
smooth fields (the first 4 x 4 cosine modes compatible with the walls).

The reference is ``solvers.HeatEquation`` on 128 x 128 cells with explicit RK4 at 0.9
of its stability limit, block-averaged to 32 x 32 (``nnpde.downsample``). The coarse
solver is the same equation on 32 x 32 cells with the block-averaged source (the exact
coarse heat input), stepped by Crank-Nicolson (conjugate gradients) with ``DT``. Its
error at the horizon (``HORIZON`` steps, ``t = 0.16``) is about 0.8% (relative L2):
the temperature response to a sub-grid source is not the response to its cell
average. A network given the state, the coarse source map and the coordinates
(``nnpde.FieldConditioned``) corrects it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import nnpde
import solvers
from problems._hybrid import cnn

COARSE = 32
FACTOR = 4
DT = 0.005
HORIZON = 32
N_SOURCES = 24
SPOT_WIDTH = 0.004
POWER = 20.0
LAYOUT_SEED = 7
MODES = 4
TARGET = 0.2  # the hybrid must cut the plain coarse solver's horizon error by this factor or more (5x)
# The network's output is a temperature change per coarse step in units of DT * POWER
# (what the sources add per unit area in one step). With DT alone as the unit the
# corrections the coarse solver needs are O(10)-O(100) network outputs (sub-grid hot
# spots), which a zero-initialised last layer reaches only after very long training.
SCALE = DT * POWER


def grid(resolution: int = COARSE) -> nnpde.Grid:
    return nnpde.Grid((resolution, resolution), extent=((0.0, 1.0), (0.0, 1.0)))


def boundary_conditions() -> nnpde.BoundaryConditions:
    return nnpde.BoundaryConditions(nnpde.Neumann(0.0), (nnpde.Dirichlet(0.0), nnpde.Neumann(0.0)))


def layout():
    """``(x, y, relative power)`` of each hot spot (fixed by ``LAYOUT_SEED``)."""
    rng = np.random.default_rng(LAYOUT_SEED)
    return [(rng.uniform(0.1, 0.9), rng.uniform(0.2, 0.9), rng.uniform(0.5, 1.5)) for _ in range(N_SOURCES)]


def source(resolution: int = COARSE):
    """``q`` on ``resolution`` cells per side: evaluated on the fine grid and
    block-averaged (so every resolution receives the same heat per coarse cell)."""
    fine = grid(COARSE * FACTOR)
    x, y = fine.cell_centres()
    q = sum(p * jnp.exp(-((x - a) ** 2 + (y - b) ** 2) / (2 * SPOT_WIDTH**2)) for a, b, p in layout())
    q = POWER * q / (jnp.sum(q) * fine.cell_volume)
    factor = COARSE * FACTOR // resolution
    return nnpde.downsample(q, factor, ndim=2) if factor > 1 else q


def equation(resolution: int = COARSE) -> solvers.HeatEquation:
    return solvers.HeatEquation(grid(resolution), boundary_conditions(), conductivity=1.0, source=source(resolution))


def coarse_stepper() -> nnpde.ThetaMethod:
    """The plain coarse solver: Crank-Nicolson steps of ``DT``."""
    return nnpde.ThetaMethod(equation(COARSE), dt=DT, method="crank_nicolson", solver="cg")


def substeps() -> int:
    """Fine explicit RK4 steps per coarse step (0.9 of the stability limit)."""
    return math.ceil(DT / nnpde.stable_dt(equation(COARSE * FACTOR), "rk4", safety=0.9))


def reference_stepper(n_substeps: int | None = None) -> nnpde.ExplicitRK:
    """The fine-grid RK4 stepper, ``n_substeps`` (default ``substeps()``) per coarse step."""
    return nnpde.ExplicitRK(equation(COARSE * FACTOR), dt=DT / (n_substeps or substeps()), method="rk4")


def initial_states(key, n_samples: int, resolution: int = COARSE * FACTOR):
    """``(n_samples, 1, n, n)``: random sums of ``cos(i pi x) sin((j + 1/2) pi y)``,
    ``i, j < MODES``, which satisfy the wall conditions (insulated at x = 0 and 1 and at
    y = 1, T = 0 at y = 0), so no boundary layer forms at t = 0."""
    x, y = grid(resolution).cell_centres()
    a = 0.5 * jax.random.normal(key, (n_samples, MODES, MODES))
    basis = jnp.stack(
        [jnp.cos(i * jnp.pi * x) * jnp.sin((j + 0.5) * jnp.pi * y) for i in range(MODES) for j in range(MODES)]
    )
    return jnp.einsum("nk,kxy->nxy", a.reshape(n_samples, -1), basis)[:, None]


def reference_trajectories(seed: int, n_samples: int, n_steps: int = HORIZON):
    """``(n_samples, n_steps + 1, 1, COARSE, COARSE)`` block-averaged fine runs."""
    k = substeps()
    u0 = initial_states(jax.random.key(seed), n_samples)
    return nnpde.generate_trajectories(reference_stepper(k), u0, n_steps * k, save_every=k, factor=FACTOR, ndim=2)


def dataset_config(seed: int, n_samples: int, n_steps: int = HORIZON) -> dict:
    return {
        "problem": "hybrid_heat",
        "coarse": COARSE,
        "factor": FACTOR,
        "dt": DT,
        "n_sources": N_SOURCES,
        "spot_width": SPOT_WIDTH,
        "power": POWER,
        "layout_seed": LAYOUT_SEED,
        "modes": MODES,
        "initial_basis": "cos(i pi x) sin((j + 1/2) pi y)",
        "seed": seed,
        "n_samples": n_samples,
        "n_steps": n_steps,
        "dtype": jnp.zeros(()).dtype.name,
    }


def conditioning_fields():
    """The fixed inputs the network sees beside ``T``: the coarse source map (scaled to
    order one) and the cell-centre coordinates."""
    x, y = grid(COARSE).cell_centres()
    q = source(COARSE)
    return jnp.stack([q / jnp.max(q), x, y])


def trajectories(seed: int, n_samples: int, n_steps: int = HORIZON, *, cache_dir=None):
    """``(reference trajectories, reused)``: ``reference_trajectories`` cached as netCDF
    under ``cache_dir`` (keyed by ``dataset_config``; ``None``: no cache)."""
    return nnpde.cached_trajectories(
        cache_dir,
        dataset_config(seed, n_samples, n_steps),
        lambda: reference_trajectories(seed, n_samples, n_steps),
        dt=DT,
        grid=grid(COARSE),
        channels=("temperature",),
    )


def network(*, seed: int, hidden: int = 16, depth: int = 3, kernel_size: int = 3, zero_init: bool = True):
    net = cnn(
        seed, 4, 1, periodic=(False, False), hidden=hidden, depth=depth, kernel_size=kernel_size, zero_init=zero_init
    )
    return nnpde.FieldConditioned(net, conditioning_fields())


KINDS = ("correction", "emulator")


def model(kind: str = "correction", *, seed: int = 0, hidden: int = 16, depth: int = 3, kernel_size: int = 3):
    """``"correction"``: the coarse Crank-Nicolson solver plus a learned post-step
    correction; ``"emulator"``: the same network alone."""
    net = network(seed=seed, hidden=hidden, depth=depth, kernel_size=kernel_size)
    if kind == "correction":
        return nnpde.CorrectedStepper(coarse_stepper(), net, scale=SCALE)
    if kind == "emulator":
        return nnpde.Emulator(net, equation=equation(COARSE), dt=DT, scale=SCALE)
    raise ValueError(f"Unknown model kind {kind!r}. Fix: use one of {KINDS}.")
