"""``GroupTopology``: the MPI world split into groups, built once per run.

A run of ``W`` ranks with ``G`` groups has ``W / G`` ranks per group. Within a group,
training is synchronous (gradients are averaged every step); across groups, parameters
are averaged asynchronously. Each rank also owns its local JAX devices, over which a
group's share of the batch is split along one named axis.

Communicators (never shared between mpi4py and mpi4jax, so each is a clone):

- ``group_comm``: the ranks of this group, for mpi4jax collectives inside ``jit``;
- ``group_host_comm``: the same ranks, for host-side mpi4py messages (the leader's
  decisions in asynchronous averaging, broadcasts of averaged parameters);
- ``cross_comm``: the group leaders (group rank 0 of every group), for the
  asynchronous cross-group average; ``None`` on ranks that are not leaders.

One process with one device is the degenerate case: no MPI is needed, and every
collective built on the topology is the identity.
"""

from __future__ import annotations

import dataclasses
import os

import jax


def _world():
    """``MPI.COMM_WORLD`` when mpi4py is importable, else ``None`` (one process)."""
    try:
        from mpi4py import MPI
    except ImportError:  # pragma: no cover - mpi4py is a dependency; kept for bare installs
        return None
    return MPI.COMM_WORLD


def launched_by_mpi() -> bool:
    """Whether this process was started by ``mpirun``/``mpiexec`` (Hydra or PMIx)."""
    return any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE"))


@dataclasses.dataclass(frozen=True, eq=False)
class GroupTopology:
    """This rank's place in the run: world, group, leader communicator and devices.

    Build it with ``GroupTopology.create``. Fields (all static after creation):
    ``world_rank``/``world_size``; ``n_groups``, ``group`` (this rank's group index),
    ``group_rank``/``group_size``; ``devices`` (this rank's local devices) and
    ``axis_name`` (the named device axis of the synchronous mean); the communicators
    described in the module docstring (``None`` where they are not needed).
    """

    world_rank: int
    world_size: int
    n_groups: int
    group: int
    group_rank: int
    group_size: int
    devices: tuple
    axis_name: str
    world_comm: object = None
    group_comm: object = None
    group_host_comm: object = None
    cross_comm: object = None

    @classmethod
    def create(
        cls,
        *,
        groups: int | None = None,
        group_size: int | None = None,
        comm=None,
        devices=None,
        axis_name: str = "data",
    ) -> GroupTopology:
        """Split ``comm`` (default ``MPI.COMM_WORLD``) into ``groups`` groups of
        consecutive ranks (or groups of ``group_size`` ranks; default one group).

        ``devices``: this rank's devices for the synchronous mean (default: all local
        devices). Collective: every rank of ``comm`` must call it.
        """
        world = _world() if comm is None else comm
        size = 1 if world is None else world.Get_size()
        rank = 0 if world is None else world.Get_rank()
        if groups is not None and group_size is not None:
            if groups * group_size != size:
                raise ValueError(
                    f"groups={groups} x group_size={group_size} = {groups * group_size} ranks, but the run has "
                    f"{size}. Fix: give one of the two, or launch with mpirun -n {groups * group_size}."
                )
        if group_size is not None:
            if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
                raise ValueError(f"group_size must be a positive int, got {group_size!r}.")
            if size % group_size:
                raise ValueError(
                    f"{size} ranks do not split into groups of {group_size}. Fix: launch a multiple of "
                    f"{group_size} ranks (mpirun -n {group_size * max(1, size // group_size)}) or change group_size."
                )
            groups = size // group_size
        groups = 1 if groups is None else groups
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be a positive int, got {groups!r}.")
        if size % groups:
            raise ValueError(
                f"{size} ranks do not split into {groups} equal groups. Fix: launch a multiple of {groups} ranks "
                f"(mpirun -n {groups * max(1, size // groups)}) or pass --groups dividing {size}."
            )
        per_group = size // groups
        group, group_rank = divmod(rank, per_group)
        devices = tuple(jax.local_devices() if devices is None else devices)
        if not devices:
            raise ValueError("devices is empty. Fix: pass at least one device, or leave it out for all local ones.")
        if per_group > 1 and len(devices) > 1:
            # mpi4jax collectives carry ordered effects, which JAX refuses inside a
            # multi-device shard_map/pmap ("ordered effects are not supported for more
            # than 1 device"). A group therefore spans either several ranks (one device
            # each) or several devices of one rank.
            raise ValueError(
                f"A group of {per_group} ranks with {len(devices)} devices per rank: mpi4jax collectives cannot "
                "run inside a multi-device shard_map. Fix: one device per rank (devices=jax.local_devices()[:1], "
                "or launch one rank per device), or one rank per group with several devices."
            )
        world_comm = group_comm = group_host = cross = None
        if world is not None and size > 1:
            world_comm = world.Clone()
            split = world.Split(color=group, key=group_rank)
            group_comm, group_host = split.Clone(), split.Clone()
            split.Free()
            leaders = world.Split(color=0 if group_rank == 0 else 1, key=group)
            if group_rank == 0 and groups > 1:
                cross = leaders
            else:
                leaders.Free()
        return cls(
            world_rank=rank,
            world_size=size,
            n_groups=groups,
            group=group,
            group_rank=group_rank,
            group_size=per_group,
            devices=devices,
            axis_name=axis_name,
            world_comm=world_comm,
            group_comm=group_comm,
            group_host_comm=group_host,
            cross_comm=cross,
        )

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    @property
    def is_leader(self) -> bool:
        """Group rank 0: takes part in the cross-group average for its group."""
        return self.group_rank == 0

    @property
    def is_root(self) -> bool:
        """World rank 0: writes the run's summary, final checkpoint and progress bar."""
        return self.world_rank == 0

    @property
    def replicas(self) -> int:
        """Data-parallel replicas within the group: ranks x devices per rank."""
        return self.group_size * self.n_devices

    def describe(self) -> dict:
        """The run's parallel layout, for summaries and disclosure files."""
        return {
            "ranks": self.world_size,
            "groups": self.n_groups,
            "ranks_per_group": self.group_size,
            "devices_per_rank": self.n_devices,
            "device_kind": self.devices[0].platform,
            "axis_name": self.axis_name,
        }

    def barrier(self):
        """Wait for every rank (a no-op in one process)."""
        if self.world_comm is not None:
            self.world_comm.Barrier()
