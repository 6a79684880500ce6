"""Synchronous data parallelism within a group: gradients averaged every step.

A group's batch is split over its ranks (each rank takes a contiguous share) and, on
each rank, over its local devices along the topology's named axis. The gradients, loss
and loss parts are averaged over both, so every member of the group applies the same
update and holds identical parameters after every step.

The choice of mechanism lives in ``group_mean`` and ``data_parallel`` only:

- over a rank's devices: ``jax.shard_map`` with ``lax.pmean`` over the named axis (the
  maintained form of ``pmap``-style SPMD);
- over the group's ranks: mpi4jax ``allreduce`` inside ``jit`` on one device per rank.
  We use mpi4jax rather than JAX's own multi-process runtime because the same MPI
  launch then serves the groups, the asynchronous cross-group averages (mpi4py) and
  the domain decomposition (mpi4jax ``sendrecv``) with one set of communicators, and
  needs no coordinator address; the cost is that mpi4jax's ordered effects cannot run
  inside a multi-device ``shard_map``, so a group spans several ranks OR several
  devices of one rank (``GroupTopology.create`` refuses the mixture).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec

from ..hybrid._train import make_train_step
from ._topology import GroupTopology


def group_mean(tree, topology: GroupTopology):
    """The mean of ``tree`` over the group's devices and ranks; call inside the step
    wrapped by ``data_parallel``. The identity for one rank with one device."""
    if topology.n_devices > 1:
        tree = jax.lax.pmean(tree, topology.axis_name)
    if topology.group_size > 1:
        import mpi4jax
        from mpi4py import MPI

        n = topology.group_size

        def mean(x):
            x = jnp.asarray(x)
            return mpi4jax.allreduce(x, op=MPI.SUM, comm=topology.group_comm) / jnp.asarray(n, x.dtype)

        tree = jax.tree.map(mean, tree)
    return tree


def data_parallel(step: Callable, topology: GroupTopology) -> Callable:
    """Wrap ``step(state, batch) -> (state, metrics)`` for the group's local devices:
    ``state`` replicated, ``batch`` split along its first axis over the named axis.
    With one device the step is returned unchanged (it runs on that device)."""
    if topology.n_devices == 1:
        return step
    mesh = Mesh(list(topology.devices), (topology.axis_name,))
    replicated, split = PartitionSpec(), PartitionSpec(topology.axis_name)
    # check_vma=False gives pmap's semantics: each device differentiates its own
    # loss and group_mean's pmean averages the gradients. (With the varying-axis
    # checks on, the gradient of a replicated input arrives already summed over the
    # axis, and the pmean would then leave an n-fold sum.)
    return jax.shard_map(
        step, mesh=mesh, in_specs=(replicated, split), out_specs=(replicated, replicated), check_vma=False
    )


def rank_share(batch, topology: GroupTopology):
    """This rank's contiguous share of the group's batch (first axis)."""
    n = batch.shape[0]
    if n % topology.replicas:
        raise ValueError(
            f"A group batch of {n} does not split over {topology.group_size} rank(s) x {topology.n_devices} "
            f"device(s). Fix: make the batch size a multiple of {topology.replicas}."
        )
    share = n // topology.group_size
    return jax.lax.dynamic_slice_in_dim(batch, topology.group_rank * share, share, axis=0)


def make_group_step(
    loss_fn: Callable, optimizer: optax.GradientTransformation, static, topology: GroupTopology
) -> Callable:
    """``step(state, group_batch) -> (state, metrics)``, synchronous over the group.

    Every rank of the group calls it with the SAME group batch (drawn from the same
    key); each takes its share, computes gradients on it, and the shares' gradients are
    averaged (``group_mean``) before the optax update. The loss is a mean over samples,
    so the group's update equals one process's update on the whole batch (to the
    rounding of the different summation order). Not jitted: jit the caller.
    """
    step = make_train_step(loss_fn, optimizer, static, reduce=lambda tree: group_mean(tree, topology), jit=False)
    parallel = data_parallel(step, topology)

    def group_step(state, group_batch):
        return parallel(state, rank_share(group_batch, topology))

    return group_step
