"""Solvers on a domain split across ranks whose steps need global reductions: the
incompressible Navier-Stokes rollout (halo-exchanged MAC faces, a pressure solve by
conjugate gradients with inner products summed over the ranks, a global CFL maximum)
and the implicit heat step (``ThetaMethod`` with distributed CG).

Under ``mpirun -n 2`` and ``-n 4`` the gathered states, and the gradients of a loss
of them with respect to the initial state and to a replicated parameter (the
viscosity) or a split field (the conductivity), are compared with the single-process
solver run on every rank. The single-process pressure solve is the FFT one, so the
two agree to the CG tolerance (rtol 1e-12), not bit for bit. One-process tests check
the refusals.
"""

import jax.numpy as jnp
import pytest
from mpi4py import MPI

import nnpde
import solvers
from nnpde.distributed import Decomposition
from nnpde.distributed._decomposition import DecomposedBoundaryConditions, Halo, _Comm
from tests._mpirun import mpirun_rows

SCRIPT = r'''
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, numpy as np
from mpi4py import MPI
import nnpde, solvers
from nnpde.distributed import Decomposition
from solvers.navier_stokes import kolmogorov_forcing


def relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def on_rank0(reference):
    """The single-process reference, computed once (rank 0) and sent to every rank:
    with more ranks than cores, computing it everywhere would double the run time."""
    comm = MPI.COMM_WORLD
    value = jax.tree.map(np.asarray, reference()) if comm.rank == 0 else None
    return comm.bcast(value, root=0)


def flow(shape, dims, advection, method="rk4", steps=10):
    """Kolmogorov-forced flow from a random divergence-free state: projected RK (RK4 unless given)."""
    shape, dims = tuple(shape), tuple(dims)
    grid = nnpde.Grid(shape, extent=((0, 2 * np.pi), (0, 2 * np.pi)))
    bc = nnpde.BoundaryConditions.periodic(2)
    force = kolmogorov_forcing(grid, wavenumber=2)
    whole = solvers.NavierStokes2D(grid, viscosity=0.05, forcing=force, advection=advection)

    def start():  # run op by op: once, on rank 0 (each rank would compile every operation)
        u0 = whole.project(jnp.asarray(np.random.default_rng(3).normal(size=(2, *shape))))
        return u0, 0.5 * float(nnpde.max_stable_dt(whole, method, u=1.5 * u0))

    u0, dt = on_rank0(start)
    u0, dt = jnp.asarray(u0), float(dt)
    weight = jnp.cos(jnp.arange(u0.size).reshape(u0.shape))

    def run(grid, bc, split=lambda f: f, total=jnp.sum, replicated=lambda p: p):
        def loss(u0, nu):
            nu = replicated(nu)  # held whole on every rank: its gradient is summed over them
            eq = solvers.NavierStokes2D(grid, viscosity=nu, forcing=split(force), advection=advection, bc=bc)
            u = nnpde.rollout(nnpde.ProjectedRK(eq, dt=dt, method=method), u0, steps, trajectory=False)
            return total(u**2 + split(weight) * u), (u, eq.kinetic_energy(u), jnp.max(jnp.abs(eq.divergence(u))))

        grads, aux = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(split(u0), 0.05)
        return aux, grads

    (ref_u, ref_energy, _), ref_g = on_rank0(lambda: run(grid, bc))
    d = Decomposition.create(grid, bc, comm=MPI.COMM_WORLD, dims=dims)
    (u, energy, div), g = run(d.local_grid, d.boundary_conditions, d.split, d.sum, d.replicated)
    return {
        "case": f"navier_stokes {advection} {method}", "dims": d.dims, "value": relative(d.gather(u), ref_u),
        "grads": [relative(d.gather(g[0]), ref_g[0]), relative(g[1], ref_g[1])],
        "energy": relative(energy, ref_energy), "divergence": float(d.allreduce(div, "max")),
    }


def heat(shape, dims, steps=10):
    """Crank-Nicolson heat steps with a conductivity field, walls and a source, 5x the explicit limit."""
    shape, dims = tuple(shape), tuple(dims)
    grid = nnpde.Grid(shape, extent=((0.0, 1.0), (0.0, 1.25)))
    walls = (nnpde.Dirichlet(1.0), nnpde.Neumann(-0.5)), (nnpde.Neumann(0.0), nnpde.Dirichlet(0.3))
    bc = nnpde.BoundaryConditions(*walls)
    x = grid.cell_centres()
    k = 1.0 + 0.4 * jnp.sin(2 * np.pi * x[0]) * jnp.cos(2 * np.pi * x[1] + 0.3)
    q = jnp.exp(-10 * ((x[0] - 0.4) ** 2 + (x[1] - 0.6) ** 2))
    u0 = jnp.asarray(np.random.default_rng(7).normal(size=(1, *shape)))
    dt = 5.0 * nnpde.stable_dt(solvers.HeatEquation(grid, bc, conductivity=k, source=q), "rk4")
    weight = jnp.cos(jnp.arange(u0.size).reshape(u0.shape))

    def run(grid, bc, split=lambda f: f, total=jnp.sum):
        def loss(u0, k):
            eq = solvers.HeatEquation(grid, bc, conductivity=k, source=split(q))
            u = nnpde.rollout(nnpde.ThetaMethod(eq, dt=dt, solver="cg"), u0, steps, trajectory=False)
            return total(u**2 + split(weight) * u), u

        grads, u = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(split(u0), split(k))
        return u, grads

    ref_u, ref_g = on_rank0(lambda: run(grid, bc))
    d = Decomposition.create(grid, bc, comm=MPI.COMM_WORLD, dims=dims)
    u, g = run(d.local_grid, d.boundary_conditions, d.split, d.sum)
    return {
        "case": "heat theta cg", "dims": d.dims, "value": relative(d.gather(u), ref_u),
        "grads": [relative(d.gather(gi), ri) for gi, ri in zip(g, ref_g)],
    }


def flagship(problem, dims, options):
    """A flagship task's reference trajectories (``Task.reference``) split over the ranks."""
    from problems import hybrid_heat_board, hybrid_kolmogorov

    task = {"kolmogorov": hybrid_kolmogorov, "heat_board": hybrid_heat_board}[problem].task(**options)
    grid, bc = task.reference_domain
    d = Decomposition.create(grid, bc, comm=MPI.COMM_WORLD, dims=dims)
    split = np.asarray(task.reference(3, 2, 2, decomposition=d))
    whole = on_rank0(lambda: task.reference(3, 2, 2))
    return {"case": f"flagship {problem}", "shape": list(split.shape), "scale": float(np.max(np.abs(whole))),
            "difference": float(np.max(np.abs(split - whole)) / np.max(np.abs(whole)))}


KINDS = {"flow": flow, "heat": heat, "flagship": flagship}
rows = [KINDS[kind](*args) for kind, *args in json.loads(sys.argv[1])]
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps(rows), flush=True)
'''


def _mpirun(n: int, cases) -> list[dict]:
    rows = mpirun_rows(n, SCRIPT, cases, timeout=600)
    for row in rows:
        print(row)
    return rows


def _check(row, value, grads):
    assert row["value"] < value, row
    assert all(g < grads for g in row["grads"]), row
    if row["case"].startswith("navier_stokes"):
        # the diagnostics reduce over the ranks too: the whole domain's energy, and a
        # divergence at the CG tolerance on every block
        assert row["energy"] < value and row["divergence"] < 1e-10, row


# The flagship tasks' reference solvers at toy size: Kolmogorov flow split along x, the
# heat board along its walled y axis.
FLAGSHIP_CASES = [
    {
        "problem": "kolmogorov",
        "dims": [2, 1],
        "options": {
            "resolution": 4,
            "factor": 2,
            "horizon": 2,
            "spinup": 0.08,
            "spacing": 0.04,
            "hidden": 2,
            "depth": 1,
        },
    },
    {
        "problem": "heat_board",
        "dims": [1, 2],
        "options": {"resolution": 4, "factor": 2, "horizon": 2, "substeps": 2, "hidden": 2, "depth": 1},
    },
]


@pytest.fixture(scope="module")
def two_ranks():
    """Every 2-rank case of this module in one launch (one start-up of the ranks): the
    solvers' rows, then the flagship references'."""
    cases = [["flow", [16, 16], [1, 2], "van_leer"], ["heat", [16, 12], [2, 1]]]
    cases += [["flagship", c["problem"], c["dims"], c["options"]] for c in FLAGSHIP_CASES]
    return _mpirun(2, cases)


def test_two_ranks_navier_stokes_and_implicit_heat_equal_one_process(two_ranks):
    rows = two_ranks[:2]
    # van Leer only: its limited stencil reaches further into the ghost cells than the
    # central flux's (the exchange, the CG sums and the CFL maximum are the same code)
    assert [row["case"] for row in rows] == ["navier_stokes van_leer rk4", "heat theta cg"]
    # CG (rtol 1e-12) against the FFT pressure solve / lineax CG: agreement at the
    # solver tolerance, for the state and both gradients
    for row in rows:
        _check(row, 1e-10, 1e-9)


def test_four_ranks_split_two_by_two():
    """Both axes split (corner ghost cells of the van Leer stencil come through two
    exchanges; the CG reductions span 4 ranks). The implicit heat step's CG is the same
    code as the pressure solve's: the 2-rank test covers it, on 4 oversubscribed ranks
    it would only add run time. Heun's two stages, not RK4's four: every stage is the
    same halo exchange and projection, and the 2-rank test runs RK4 (each rank's
    compilation is most of this launch: 92 -> 68 CPU s)."""
    (row,) = _mpirun(4, [["flow", [16, 16], [2, 2], "van_leer", "heun"]])
    assert tuple(row["dims"]) == (2, 2) and row["case"] == "navier_stokes van_leer heun"
    _check(row, 1e-10, 1e-9)


# -- one process: refusals -----------------------------------------------------------
def _split_conditions(periodic: bool):
    """One rank's conditions with axis 0 split (halo faces both sides), on COMM_SELF."""
    grid = nnpde.Grid((8, 8))
    bc = nnpde.BoundaryConditions.periodic(2) if periodic else nnpde.BoundaryConditions.dirichlet(2)
    d = Decomposition.create(grid, bc, comm=MPI.COMM_SELF)
    sides = ((Halo(), Halo()), d.boundary_conditions.sides[1])
    neighbours = ((0, 0), d.boundary_conditions.neighbours[1])
    split = DecomposedBoundaryConditions(sides, neighbours, (16, 8), (0, 0), _Comm(MPI.COMM_SELF), (periodic, periodic))
    return d.local_grid, split


def test_split_navier_stokes_refuses_transforms_implicit_viscosity_and_split_walls():
    grid, bc = _split_conditions(periodic=True)
    assert bc.global_periodic(0) and not bc.is_periodic(0) and bc.global_size() == 128
    with pytest.raises(ValueError, match=r"solver='fft' needs the whole of every transformed axis.*Fix: solver='cg'"):
        solvers.NavierStokes2D(grid, viscosity=0.1, bc=bc, pressure_solver="fft")
    eq = solvers.NavierStokes2D(grid, viscosity=0.1, bc=bc)
    assert not eq.has_walls
    with pytest.raises(ValueError, match=r"implicit viscosity.*split across ranks.*ProjectedRK"):
        nnpde.ProjectedIMEX(eq, dt=0.01)
    grid, walls = _split_conditions(periodic=False)
    with pytest.raises(ValueError, match=r"walled axis split over ranks.*Fix: keep the walled axes whole"):
        solvers.NavierStokes2D(grid, viscosity=0.1, bc=walls)
    # split periodic axis 0, whole walled axis 1: the wall fluxes would wrap locally
    d = Decomposition.create(grid, solvers.navier_stokes.walls(x="periodic"), comm=MPI.COMM_SELF)
    side_walls = DecomposedBoundaryConditions(
        ((Halo(), Halo()), d.boundary_conditions.sides[1]),
        ((0, 0), (-1, -1)),
        (16, 8),
        (0, 0),
        _Comm(MPI.COMM_SELF),
        (True, False),
    )
    with pytest.raises(ValueError, match=r"split across ranks takes periodic axes only.*Fix: a periodic domain"):
        solvers.NavierStokes2D(grid, viscosity=0.1, bc=side_walls)


def test_split_theta_method_refuses_a_nonsymmetric_operator():
    grid, bc = _split_conditions(periodic=False)
    eq = solvers.HeatEquation(grid, bc, conductivity=1.0, order=4)
    stepper = nnpde.ThetaMethod(eq, dt=1e-3, solver="cg")
    with pytest.raises(ValueError, match=r"not symmetric here.*conjugate gradients only"):
        stepper(jnp.zeros(eq.state_shape))


def test_flagship_references_split_over_two_ranks_equal_one_process(two_ranks):
    """The reference solvers that ``distributed.domain`` splits (``Task.reference`` with
    a ``Decomposition``): Kolmogorov flow (projected RK4, van Leer, periodic; the
    pressure by CG over the ranks instead of the FFT) split along x, and the heat board
    (Crank-Nicolson, CG; Dirichlet and Neumann walls) split along the walled y axis,
    each against the same reference run whole, float64. The problem-specific parts are
    what is tested here: the block's forcing, conductivity and source, and the spun-up
    initial states."""
    rows = two_ranks[2:]
    assert [row["case"] for row in rows] == [f"flagship {case['problem']}" for case in FLAGSHIP_CASES]
    for case, row in zip(FLAGSHIP_CASES, rows):
        assert row["shape"] == [2, 3, *(([2] if case["problem"] == "kolmogorov" else [1]) + [4, 4])], row
        assert row["scale"] > 0.1, row  # a non-trivial state
        assert row["difference"] < 1e-10, (case["problem"], row)


def test_couplings_refuse_a_split_domain_and_accept_a_whole_one():
    """A network that reads the state sees only its rank's block on a split domain (its
    convolution pads the block's own cells where the neighbour's belong): every coupling
    of such a network refuses the block's equation, naming the split axes, and accepts
    the same equation on a one-rank decomposition (no halo faces)."""
    from flax import nnx

    grid, bc = _split_conditions(periodic=True)
    eq = solvers.NavierStokes2D(grid, viscosity=0.1, bc=bc)

    def net(out):
        conv = nnpde.networks.ConvNet(2, out, ndim=2, hidden=4, depth=1, periodic=(True, True), rngs=nnx.Rngs(0))
        return nnpde.Network(conv)

    m = nnpde.correction_size(4, 2)
    split = r"network reads the state, but NavierStokes2D runs on one block of a split domain "
    split += r"\(halo faces on axes \[0\]"
    with pytest.raises(ValueError, match=split + r".*Fix: couple the network to the equation on the whole grid"):
        nnpde.learned_interpolation(eq, net(4 * m))
    with pytest.raises(ValueError, match=r"The closure \(term form\) " + split):
        nnpde.ClosureEquation(eq, net(2))
    with pytest.raises(ValueError, match=r"The correction " + split):
        nnpde.CorrectedStepper(nnpde.ProjectedRK(eq, dt=0.01), net(2))
    with pytest.raises(ValueError, match=r"The emulator " + split):
        nnpde.Emulator(net(2), equation=eq, dt=0.01)
    # one rank holding the whole periodic domain: no halo faces, the couplings build
    d = Decomposition.create(nnpde.Grid((8, 8)), nnpde.BoundaryConditions.periodic(2), comm=MPI.COMM_SELF)
    whole = solvers.NavierStokes2D(d.local_grid, viscosity=0.1, bc=d.boundary_conditions)
    assert not any(d.boundary_conditions.has_halo(a) for a in range(2))
    learned = nnpde.learned_interpolation(whole, net(4 * m))
    assert learned.reconstruction.periodic == (True, True)
    nnpde.ClosureEquation(whole, net(2))
