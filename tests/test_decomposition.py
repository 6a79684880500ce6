"""Domain decomposition (``nnpde.distributed.Decomposition``): a rollout on blocks with
halo exchange equals the single-process rollout to round-off, in value and in the
gradients with respect to the initial state and the conductivity field.

One-process tests check the degenerate one-rank split and the errors; the others
run a script under the virtualenv's ``mpirun`` (2 ranks, once for all cases) and
compare the gathered result with the single-process solver run on rank 0. Blocks
split on both axes (2 x 2 over 4 ranks) are tested in test_decomposed_solvers.py."""

import jax.numpy as jnp
import numpy as np
import pytest
from mpi4py import MPI

import nnpde
import solvers
from nnpde.distributed import Decomposition
from tests._mpirun import mpirun_rows

# Shared by the one-process tests and the mpirun script (which execs this source).
CASES_SOURCE = r'''
import jax, jax.numpy as jnp, numpy as np
import nnpde, solvers
from nnpde import Dirichlet, Neumann, Periodic


def problem(shape, walls, order=2):
    """A global heat problem: variable k, rho c and source (scalar k at order 4)."""
    grid = nnpde.Grid(shape, extent=tuple((0.0, 1.0 + 0.25 * a) for a in range(len(shape))))
    x = grid.cell_centres()
    if walls:
        specs = [(Dirichlet(1.0), Neumann(-0.5))]
        if len(shape) > 1:
            # face arrays (one of them time-dependent) vary along the wall
            y = grid.boundary_face_centres(0)[0]
            specs[0] = (Dirichlet(lambda t: jnp.cos(3 * y) * (1 + t)), Neumann(-0.5))
            z = grid.boundary_face_centres(1)[0]
            specs.append((Neumann(jnp.sin(4 * z)), Dirichlet(0.3)))
        bc = nnpde.BoundaryConditions(*specs)
    else:
        bc = nnpde.BoundaryConditions.periodic(len(shape))
    k = 0.7 if order == 4 else 1.0 + 0.4 * jnp.sin(2 * np.pi * x[0]) * jnp.cos(2 * np.pi * x[-1] + 0.3)
    rho_c = 1.0 + 0.2 * jnp.cos(2 * np.pi * x[-1])
    q = jnp.exp(-10 * sum((xi - 0.4) ** 2 for xi in x))
    u0 = jnp.asarray(np.random.default_rng(7).normal(size=(1, *shape)))
    return grid, bc, k, rho_c, q, u0


def run(grid, bc, k, rho_c, q, u0, *, dt, order, steps=20, split=lambda f: f, total=jnp.sum):
    """Final state of an RK4 rollout and the gradient of a loss of it w.r.t. (u0, k)."""

    def final(u0, k):
        eq = solvers.HeatEquation(grid, bc, conductivity=k, heat_capacity=split(rho_c), source=split(q), order=order)
        return nnpde.rollout(nnpde.ExplicitRK(eq, dt=dt, method="rk4"), u0, steps, t0=0.1, trajectory=False)

    weight = split(jnp.cos(jnp.arange(u0.size).reshape(u0.shape)))

    def loss(u0, k):
        u = final(u0, k)
        return total(u**2 + weight * u), u

    argnums = (0,) if order == 4 else (0, 1)
    grads, u = jax.jit(jax.grad(loss, argnums=argnums, has_aux=True))(split(u0), split(k))
    return u, grads  # one compilation for the state and its gradients


def stable(grid, bc, k, rho_c, q, order):
    eq = solvers.HeatEquation(grid, bc, conductivity=k, heat_capacity=rho_c, source=q, order=order)
    return nnpde.stable_dt(eq, "rk4")


def relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))
'''
# the same helpers for the one-process tests
_CASES: dict = {}
exec(CASES_SOURCE, _CASES)
problem, run, stable, relative = (_CASES[name] for name in ("problem", "run", "stable", "relative"))

SCRIPT = (
    r"""
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
from mpi4py import MPI
from nnpde.distributed import Decomposition
"""
    + CASES_SOURCE
    + r"""
rows = []
for shape, dims, walls, order in json.loads(sys.argv[1]):
    shape, dims = tuple(shape), tuple(dims)
    grid, bc, k, rho_c, q, u0 = problem(shape, walls, order)
    dt = stable(grid, bc, k, rho_c, q, order)  # the global equation's step, used on every rank
    # the reference once, on rank 0 (with more ranks than cores every copy costs time)
    reference = (lambda: jax.tree.map(np.asarray, run(grid, bc, k, rho_c, q, u0, dt=dt, order=order)))
    ref_u, ref_g = MPI.COMM_WORLD.bcast(reference() if MPI.COMM_WORLD.rank == 0 else None, root=0)
    d = Decomposition.create(grid, bc, comm=MPI.COMM_WORLD, dims=dims, order=order)
    u, g = run(d.local_grid, d.boundary_conditions, k, rho_c, q, u0, dt=dt, order=order, split=d.split, total=d.sum)
    row = {"shape": shape, "dims": d.dims, "walls": walls, "order": order, "value": relative(d.gather(u), ref_u)}
    row["grads"] = [relative(d.gather(gi), ri) for gi, ri in zip(g, ref_g)]
    rows.append(row)
# gather first, print from rank 0 only: stdout lines of several processes interleave
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps(rows), flush=True)
"""
)


# (shape, dims, walls, order) of the cases split over two ranks, all in one launch
TWO_RANK_CASES = [
    [[32], [2], False, 2],
    [[32], [2], True, 4],
    [[16, 12], [2, 1], True, 2],
    [[16, 12], [1, 2], False, 2],
    [[16, 12], [1, 2], True, 2],
]


@pytest.fixture(scope="module")
def two_ranks():
    return mpirun_rows(2, SCRIPT, TWO_RANK_CASES, timeout=240)


def _check(rows):
    for row in rows:
        print(row)
        assert row["value"] < 1e-12, row
        assert all(g < 1e-10 for g in row["grads"]), row


def test_two_ranks_split_1d_and_2d_problems(two_ranks):
    _check(two_ranks[:4])


def test_two_ranks_split_the_second_walled_axis(two_ranks):
    """Axis 1 split with walls on both axes: a block keeps one wall of axis 1 and its
    slice of axis 0's face arrays (the time-dependent Dirichlet values vary along axis
    1). This case ran on 2 x 2 blocks over 4 ranks before; the 2 x 2 split itself (both
    axes' halos, corner cells, reductions over 4 ranks) is tested on the Navier-Stokes
    solver in test_decomposed_solvers.py, and the periodic heat problem split along axis
    1 is the fourth case above."""
    (row,) = two_ranks[4:]
    assert tuple(row["dims"]) == (1, 2) and row["walls"]
    _check([row])


# -- one process -------------------------------------------------------------------
@pytest.mark.parametrize("shape,walls,order", [((24,), True, 2), ((16, 12), False, 2), ((12, 8), True, 4)])
def test_one_rank_decomposition_is_the_plain_solver(shape, walls, order):
    grid, bc, k, rho_c, q, u0 = problem(shape, walls, order)
    dt = stable(grid, bc, k, rho_c, q, order)
    ref_u, ref_g = run(grid, bc, k, rho_c, q, u0, dt=dt, order=order)
    d = Decomposition.create(grid, bc, comm=MPI.COMM_SELF, order=order)
    assert d.dims == (1,) * len(shape) and d.local_grid == grid and d.size == 1
    u, g = run(d.local_grid, d.boundary_conditions, k, rho_c, q, u0, dt=dt, order=order, split=d.split, total=d.sum)
    assert relative(d.gather(u), ref_u) < 1e-14
    for gi, ri in zip(g, ref_g):
        assert relative(d.gather(gi), ri) < 1e-13


def test_split_gather_and_local_grid():
    grid = nnpde.Grid((8, 6), extent=((0.0, 2.0), (-1.0, 1.0)))
    d = Decomposition.create(grid, nnpde.BoundaryConditions.periodic(2), comm=MPI.COMM_SELF)
    field = jnp.arange(2 * 48.0).reshape(2, 8, 6)
    assert d.split(field).shape == (2, 8, 6) and d.split(3.0) == 3.0
    np.testing.assert_array_equal(d.gather(d.split(field)), field)
    assert float(d.sum(field)) == float(jnp.sum(field))
    with pytest.raises(ValueError, match="global grid"):
        d.split(jnp.zeros((4, 6)))


def test_clear_errors_for_bad_splits():
    bc = nnpde.BoundaryConditions.periodic(2)
    with pytest.raises(ValueError, match="asks for 2 ranks but the communicator has 1"):
        Decomposition.create(nnpde.Grid((8, 8)), bc, comm=MPI.COMM_SELF, dims=(2, 1))
    with pytest.raises(ValueError, match="for each of the grid's 2 axes"):
        Decomposition.create(nnpde.Grid((8, 8)), bc, comm=MPI.COMM_SELF, dims=(1,))
    with pytest.raises(TypeError, match=r"global nnpde\.BoundaryConditions"):
        d = Decomposition.create(nnpde.Grid((8, 8)), bc, comm=MPI.COMM_SELF)
        Decomposition.create(nnpde.Grid((8, 8)), d.boundary_conditions, comm=MPI.COMM_SELF)


class _FakeComm:
    """Stands in for a communicator of ``size`` ranks to reach the size checks that
    precede any message (the errors are raised before a Cartesian communicator exists)."""

    def __init__(self, size):
        self.size = size

    def Get_size(self):
        return self.size


def test_clear_errors_for_uneven_and_thin_blocks():
    periodic, walls = nnpde.BoundaryConditions.periodic(2), nnpde.BoundaryConditions.dirichlet(2)
    with pytest.raises(ValueError, match="axis 0 has 10 cells, which do not split evenly over 4 ranks"):
        Decomposition.create(nnpde.Grid((10, 8)), periodic, comm=_FakeComm(4), dims=(4, 1))
    with pytest.raises(ValueError, match="blocks of 1 cells, thinner than the order-4 stencil"):
        Decomposition.create(nnpde.Grid((8, 8)), periodic, comm=_FakeComm(8), dims=(1, 8), order=4)
    with pytest.raises(ValueError, match="wall ghost polynomial"):
        Decomposition.create(nnpde.Grid((8, 8)), walls, comm=_FakeComm(4), dims=(4, 1), order=4)


def test_decomposed_conditions_refuse_deep_halo_and_transform_solves():
    """One rank's block keeps the walls and periodicity it has; a block with halo
    faces (kind ``"halo"``) gets no FFT solver and no deep-halo stepping."""
    grid = nnpde.Grid((8, 8))
    d = Decomposition.create(grid, nnpde.BoundaryConditions.periodic(2), comm=MPI.COMM_SELF)
    eq = solvers.HeatEquation(d.local_grid, d.boundary_conditions)
    assert eq.halo_width() == 1 and eq.fast_solver() is not None  # nothing is split
    from nnpde.distributed._decomposition import DecomposedBoundaryConditions, Halo, _Comm

    bc = d.boundary_conditions
    split = DecomposedBoundaryConditions(
        ((Halo(), Halo()), bc.sides[1]), ((0, 0), bc.neighbours[1]), (16, 8), (0, 0), _Comm(MPI.COMM_SELF)
    )
    eq = solvers.HeatEquation(d.local_grid, split)
    assert split.kinds(0) == ("halo", "halo") and eq.halo_width() == 0 and eq.fast_solver() is None
    assert isinstance(split.homogeneous(), DecomposedBoundaryConditions)
    with pytest.raises(ValueError, match="does not fit the global boundary face"):
        DecomposedBoundaryConditions(
            ((Halo(), Halo()), (nnpde.Dirichlet(jnp.zeros(8)), nnpde.Dirichlet(0.0))),
            ((0, 0), (-1, -1)),
            (16, 8),
            (0, 0),
            _Comm(MPI.COMM_SELF),
        ).check(d.local_grid)
