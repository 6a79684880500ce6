"""Run under mpirun by tests/test_distributed.py: one group of all ranks trains a small
hybrid Burgers model with ``nnpde.fit(topology=...)``; checks that the group's ranks
hold bitwise-identical parameters after every step and that the result equals a
single-process ``fit`` on the whole batch. Rank 0 prints one JSON line."""

import hashlib
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from mpi4py import MPI

import nnpde
import solvers
from nnpde.distributed import GroupTopology, abort_on_error

jax.config.update("jax_enable_x64", True)


def model():
    grid = nnpde.Grid((16,), extent=((0.0, 2 * np.pi),))
    eq = solvers.Burgers(grid, nnpde.BoundaryConditions.periodic(1), viscosity=0.05)
    net = nnpde.networks.ConvNet(
        1, 1, ndim=1, periodic=(True,), hidden=4, depth=2, kernel_size=3, param_dtype=jnp.float64, rngs=nnx.Rngs(0)
    )
    return nnpde.CorrectedStepper(nnpde.ExplicitRK(eq, dt=0.05, method="heun"), nnpde.Network(net), scale=0.05)


def data():
    m = model()
    x = m.equation.grid.cell_centres()[0]
    keys = jax.random.split(jax.random.key(3), 6)
    u0 = jnp.stack([jnp.sin(x + jax.random.uniform(k) * 6)[None] for k in keys])
    plain = jax.vmap(lambda u: nnpde.rollout(m.stepper, u, 8, include_init=True))(u0)
    return plain * 1.01  # a target the correction can learn toward


class IdentityCheck:
    """Duck-typed averager: after every step, compare parameter hashes across the group."""

    def __init__(self, topology):
        self.topology, self.steps_checked, self.mismatches = topology, 0, 0

    def after_step(self, step, state):
        leaves = [np.asarray(x) for x in jax.tree.leaves(state.params)]
        digest = hashlib.sha256(b"".join(x.tobytes() for x in leaves)).hexdigest()
        digests = self.topology.group_host_comm.allgather(digest)
        self.steps_checked += 1
        self.mismatches += len(set(digests)) - 1
        return state

    def finish(self, state):
        return state


def main():
    steps, batch = int(sys.argv[1]), int(sys.argv[2])
    topo = GroupTopology.create(groups=1, devices=jax.local_devices()[:1])
    check = IdentityCheck(topo)
    opt = nnpde.make_optimizer(1e-2)
    loss = lambda m, b, k: nnpde.unrolled_loss(m, b)  # noqa: E731
    # the data once, on rank 0, sent to the others (the same bits; with more ranks than
    # cores, each rank compiling the rollout that makes them costs run time)
    comm = MPI.COMM_WORLD
    trajectories = jnp.asarray(comm.bcast(np.asarray(data()) if comm.rank == 0 else None, root=0))
    run = nnpde.fit(
        model(),
        loss,
        trajectories,
        steps=steps,
        batch_size=batch,
        window=3,
        optimizer=opt,
        topology=topo,
        averager=check,
        progress=False,
    )
    params = jax.tree.leaves(run.state.params)
    if topo.is_root:
        alone = nnpde.fit(
            model(), loss, trajectories, steps=steps, batch_size=batch, window=3, optimizer=opt, progress=False
        )
        ref = jax.tree.leaves(alone.state.params)
        diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(params, ref))
        scale = max(float(jnp.max(jnp.abs(b))) for b in ref)
        moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(ref, jax.tree.leaves(model().network.params)))
    mismatches = MPI.COMM_WORLD.allreduce(check.mismatches)
    if topo.is_root:
        print(
            json.dumps(
                {
                    "ranks": topo.world_size,
                    "checked": check.steps_checked,
                    "mismatches": mismatches,
                    "max_diff": diff,
                    "scale": scale,
                    "moved": moved,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    with abort_on_error():
        main()
