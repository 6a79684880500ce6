"""This rank's files in a run directory: checkpoints, the metrics log, resumption.

``fit`` (``_fit.py``, through ``TrainingRun``) trains from the latest checkpoint of its
run directory and logs beside it; ``Roles`` says which rank of a group writes, and
where, so that ranks training the same parameters never write the same file.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np

from ._checkpoint import CheckpointCorrupt, Checkpointer
from ._metrics_log import MetricsLog, read_metrics


@dataclasses.dataclass(frozen=True)
class Roles:
    """What this rank does in a run: a ``leader`` writes its group's files, the ``root``
    (world rank 0) shows the progress bar and writes the average over the groups;
    ``group_dir`` is the group's sub-directory of the run directory (``None``: a single
    group writes into the run directory itself). One process is all three."""

    leader: bool = True
    root: bool = True
    group_dir: str | None = None

    @classmethod
    def of(cls, topology) -> Roles:
        if topology is None:
            return cls()
        group_dir = f"group{topology.group}" if topology.n_groups > 1 else None
        return cls(leader=topology.is_leader, root=topology.is_root, group_dir=group_dir)


class RunFiles:
    """This rank's files in a run directory: orbax checkpoints (atomic) and the metrics
    log (``metrics.jsonl``), kept consistent with each other on resume.

    Only a group leader writes, into ``run_dir/group<g>`` with several groups and into
    ``run_dir`` otherwise; the other ranks of a group read their leader's checkpoints.
    ``config`` is stored beside every checkpoint. Without ``run_dir`` nothing is read or
    written. Use ``open`` to create, ``close`` when done.
    """

    def __init__(self, run_dir: Path | None, roles: Roles, topology, metadata: dict):
        self.run_dir = run_dir
        self.directory = run_dir / roles.group_dir if run_dir is not None and roles.group_dir else run_dir
        self._roles, self._topology, self._metadata = roles, topology, metadata
        self._checkpointer: Checkpointer | None = None
        self._metrics: MetricsLog | None = None
        self._resumed: tuple[int, list[set]] = (-1, [])  # the resumed step, the records kept at it

    @classmethod
    def open(cls, run_dir: str | Path | None, roles: Roles, topology, config: dict | None) -> RunFiles:
        """The files of ``run_dir`` (``None``: none); the leader creates its directory."""
        files = cls(None if run_dir is None else Path(run_dir), roles, topology, config or {})
        if files.directory is not None and roles.leader:
            files.directory.mkdir(parents=True, exist_ok=True)
            files._checkpointer = Checkpointer(files.directory / "checkpoints")
        return files

    def resume(self, state):
        """``state`` (freshly initialised) replaced by the latest checkpoint, if any, on
        every rank of the group; the metrics log opened without the records after it
        (training repeats those steps and logs them again)."""
        if self.directory is None:
            return state
        leader = self._roles.leader
        restored = None
        if leader:
            if self._checkpointer.latest_step() is not None:
                state, restored = restore_intact(self._checkpointer, state, quarantine=self.directory / "corrupt")
            self._metrics = MetricsLog(self.directory / "metrics.jsonl", resume_from_step=int(state.step))
            kept = [set(r) - {"step", "time"} for r in read_metrics(self._metrics.path) if r["step"] == state.step]
            self._resumed = (int(state.step), kept)
        topology = self._topology
        if topology is not None and topology.group_size > 1:
            # The leader alone writes; the other ranks restore the same step read-only.
            latest = topology.group_host_comm.bcast(restored, root=0)
            if not leader and latest is not None:
                with Checkpointer(self.directory / "checkpoints", read_only=True) as reader:
                    state = reader.restore(state, latest)
        return state

    def latest_step(self) -> int | None:
        """The newest checkpointed step of this rank's directory (``None``: none, or not
        a writer)."""
        return None if self._checkpointer is None else self._checkpointer.latest_step()

    def save(self, step: int, state) -> None:
        """Checkpoint ``state`` as ``step`` unless that step is already saved. A state
        with a non-finite value is refused (``FloatingPointError``): the newest
        checkpoint is always one a run can continue from."""
        if self._checkpointer is not None and step not in self._checkpointer.all_steps():
            _check_finite(step, state)
            metadata = {"config": self._metadata, "step": step}
            self._checkpointer.save(step, state, metadata=metadata, force=True)

    def log(self, entry: dict) -> None:
        """Append ``entry`` (``{"step": n, **figures}``) to the metrics log; a record
        the log already holds for the resumed step (a finished run started again, which
        evaluates its result once more) is not written twice."""
        if self._metrics is None:
            return
        figures = {k: v for k, v in entry.items() if k != "step"}
        step, kept = self._resumed
        if entry["step"] == step and set(figures) in kept:
            kept.remove(set(figures))
            return
        self._metrics.log(entry["step"], **figures)

    def save_group_average(self, state) -> None:
        """The average over several groups, written once (by the root) to
        ``run_dir/checkpoints``: the run's result, beside the groups' own directories."""
        if self.run_dir is not None and self._roles.group_dir and self._roles.root:
            _check_finite(int(state.step), state)
            with Checkpointer(self.run_dir / "checkpoints") as final:
                metadata = {"config": self._metadata, "averaged_over_groups": True}
                final.save(int(state.step), state, metadata=metadata)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._metrics is not None:
            self._metrics.close()


def _check_finite(step: int, state) -> None:
    for leaf in jax.tree.leaves(state):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            continue
        a = np.asarray(leaf)
        if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
            raise FloatingPointError(
                f"Refusing to checkpoint step {step}: its state holds non-finite values. The last checkpoint is "
                "kept. Fix: lower the learning rate or clip gradients, and run again (it resumes from there)."
            )


def restore_intact(checkpointer: Checkpointer, template, *, quarantine=None, quiet: bool = False):
    """``(state, step)`` of the newest intact checkpoint. A corrupt newer one is named
    on stderr and skipped; with ``quarantine`` (a directory) it is moved there, out of
    the way of the run's next checkpoints (``quiet``: a check only, nothing said). No
    intact checkpoint at all is ``CheckpointCorrupt`` with the fix."""
    corrupt = []

    def report(error: CheckpointCorrupt) -> None:
        corrupt.append(error)
        if not quiet:
            print(f"nnpde: {error}; falling back to the checkpoint before it.", file=sys.stderr, flush=True)

    try:
        state, step = checkpointer.newest_intact(template, report=report)
    except CheckpointCorrupt as error:
        raise CheckpointCorrupt(
            error.step,
            error.path,
            f"{error.detail}. No checkpoint in {checkpointer.directory} is intact "
            f"(steps {[c.step for c in corrupt]}). Fix: move that directory aside "
            f"(mv {checkpointer.directory} {checkpointer.directory}.corrupt) to train again from step 0, "
            "or put back a copy of it",
        ) from None
    for error in [] if quiet else corrupt:
        moved = f"; moved to {checkpointer.quarantine(error.step, quarantine)}" if quarantine else ""
        print(f"nnpde: restored checkpoint step {step} instead of step {error.step}{moved}.", file=sys.stderr)
    return state, step
