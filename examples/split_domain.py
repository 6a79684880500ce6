"""Split domain: one heat-equation run with its grid split over MPI ranks.

Heat conduction ``dT/dt = div(k(x, y) grad T) + q(x, y)`` on the unit square: the
left wall held at ``T = 1``, the right wall at ``T = 0``, periodic top to bottom, a
variable conductivity ``k`` and a heat source ``q``; explicit RK4 on a cell-centred
grid (``solvers.HeatEquation``). ``nnpde.distributed.Decomposition`` cuts the grid
into one block per rank; every rank runs the ordinary solver on its own block, and
the ghost cells along each cut are filled from the neighbour rank by a halo exchange
(``mpi4jax.sendrecv`` inside ``jit``) where one process would fill them from its own
cells. Every ghost cell then equals its single-process value, so the gathered result
equals the single-process run to round-off: this script checks that by also running
the whole grid on every rank.

Launch (from the repository root; ``mpirun`` is the one beside the virtualenv's
Python)::

    mpirun -n 2 python examples/split_domain.py                  # 64^2 cells, 200 steps
    mpirun -n 2 python examples/split_domain.py --tiny           # 16^2 cells, 20 steps
    mpirun -n 4 python examples/split_domain.py --resolution 128 # 2 x 2 blocks

Rank 0 prints the split, the heat content and the largest difference between the
split and the single-process temperatures (0 on 2 ranks here: the same arithmetic in
the same order).
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from mpi4py import MPI

import nnpde
import solvers
from nnpde.distributed import Decomposition


def main(argv=None):
    jax.config.update("jax_enable_x64", True)  # float64, so that round-off is round-off

    # Parameters
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, help="cells per axis (default 64; --tiny: 16)")
    parser.add_argument("--steps", type=int, help="RK4 steps (default 200; --tiny: 20)")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: 16^2 cells, 20 steps")
    args = parser.parse_args(argv)
    n = args.resolution if args.resolution is not None else 16 if args.tiny else 64
    steps = args.steps if args.steps is not None else 20 if args.tiny else 200

    # Problem: a plate heated from the left wall and from within, periodic in y
    grid = nnpde.Grid((n, n), extent=((0.0, 1.0), (0.0, 1.0)))
    bc = nnpde.BoundaryConditions((nnpde.Dirichlet(1.0), nnpde.Dirichlet(0.0)), nnpde.Periodic())
    x, y = grid.cell_centres()
    k = 1.0 + 0.5 * jnp.sin(2 * jnp.pi * x) * jnp.cos(2 * jnp.pi * y)
    q = 5.0 * jnp.exp(-((x - 0.6) ** 2 + (y - 0.3) ** 2) / 0.01)
    u0 = jnp.zeros((1, n, n))

    # Solver: the whole grid in one process, and this rank's block of it
    whole = solvers.HeatEquation(grid, bc, conductivity=k, source=q)
    dt = nnpde.stable_dt(whole, "rk4")
    d = Decomposition.create(grid, bc, comm=MPI.COMM_WORLD)
    block = solvers.HeatEquation(d.local_grid, d.boundary_conditions, conductivity=d.split(k), source=d.split(q))

    def run(equation, u):
        stepper = nnpde.ExplicitRK(equation, dt=dt, method="rk4", check_stability=False)
        return nnpde.rollout(stepper, u, steps, trajectory=False)

    # Main loop: the split run (halo exchanges every stage), then the check against one process
    local = jax.jit(lambda u: run(block, u))(d.split(u0))
    heat = float(d.sum(local) * grid.spacing[0] * grid.spacing[1])  # a global sum over the ranks
    split = d.gather(local)  # the whole field, on every rank
    single = np.asarray(jax.jit(lambda u: run(whole, u))(u0))
    difference = float(np.max(np.abs(split - single)))
    if d.rank == 0:
        print(
            f"{n}x{n} cells over {d.size} rank(s) as {' x '.join(map(str, d.dims))} blocks of "
            f"{' x '.join(map(str, d.local_grid.shape))}; {steps} RK4 steps of dt = {dt:.3e}"
        )
        print(
            f"heat content at t = {steps * dt:.4f}: {heat:.6f} (split), "
            f"{float(single.sum() * grid.spacing[0] * grid.spacing[1]):.6f} (one process)"
        )
        print(f"max |T_split - T_single| = {difference:.2e} (max T = {float(np.max(single)):.4f})")


if __name__ == "__main__":
    main()
