"""The workers the parts launch (``scripts/scale_model.py --worker NAME``): MPI
collectives, one ``AsyncAverager`` exchange, the train step's compute (alone and with
R ranks sharing the cores), and the rank wrapper that records peak memory."""

from __future__ import annotations

import atexit
import json
import os
import runpy
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from scripts.scale.common import _bench, _bench_args, _spread, _write_json


def worker_collectives(s, result):
    """Under mpirun: Allreduce and Iallreduce + Wait of float32 buffers; rank 0 writes
    one row per (operation, size) with the slowest rank's seconds per repetition."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()
    rows = []
    for nbytes in s["nbytes"]:
        send = np.ones(nbytes // 4, dtype=np.float32)
        recv = np.empty_like(send)
        repetitions = s["repetitions"] if nbytes < s["large_from"] else s["large_repetitions"]
        for op in ("Allreduce", "Iallreduce"):
            slowest, mean = [], []
            for rep in range(s["warmup"] + repetitions):
                comm.Barrier()
                t0 = time.perf_counter()
                if op == "Allreduce":
                    comm.Allreduce(send, recv, op=MPI.SUM)
                else:
                    comm.Iallreduce(send, recv, op=MPI.SUM).Wait()
                dt = time.perf_counter() - t0
                worst, total = comm.allreduce(dt, op=MPI.MAX), comm.allreduce(dt, op=MPI.SUM)
                if rep >= s["warmup"]:
                    slowest.append(worst)
                    mean.append(total / size)
            correct = bool(recv[0] == size and recv[-1] == size)
            rows.append(
                {
                    "op": op,
                    "ranks": size,
                    "nbytes": int(nbytes),
                    "seconds": slowest,
                    "mean_rank_seconds": mean,
                    "correct": correct,
                    **_spread(slowest),
                }
            )
        del send, recv
    if rank == 0:
        _write_json(Path(result), {"rows": rows, "library": MPI.Get_library_version().splitlines()[0]})


def worker_exchange(s, result):
    """Under mpirun (G groups of 1 rank): the cost of one AsyncAverager exchange of the
    task model's parameters, against a guard-only after_step and a raw Iallreduce."""
    import jax
    import jax.numpy as jnp

    import nnpde
    from nnpde.distributed import AsyncAverager, GroupTopology, contribution, flatten, mix

    bench = _bench()
    model_settings = s["model"]
    topo = GroupTopology.create(groups=s["groups"], devices=jax.local_devices()[:1])
    model = bench.problem.model("correction", seed=0, hidden=model_settings["hidden"])
    optimizer = nnpde.make_optimizer(model_settings["learning_rate"], clip_norm=1.0)
    state, _ = nnpde.init_train_state(model, optimizer, seed=0)
    flat, _ = flatten(state.params)
    comm = topo.world_comm
    from mpi4py import MPI

    def timed(call, repeats):
        out = []
        for k in range(1, repeats + 1):
            topo.barrier()
            t0 = time.perf_counter()
            call(k)
            out.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
        return out

    def after(averager):
        def call(k):
            jax.block_until_ready(jax.tree.leaves(averager.after_step(k, state).params))

        return call

    n = s["exchange_repeats"]
    guard = AsyncAverager(topo, every=10**9, max_staleness=0)  # never starts an average: the guard alone
    guard_seconds = timed(after(guard), n)
    guard.finish(state)
    sync = AsyncAverager(topo, every=1, max_staleness=0)  # starts and completes one at every call
    exchange_seconds = timed(after(sync), n)
    stats = sync.stats()
    sync.finish(state)
    send = contribution(flat, 1.0)
    recv = np.empty_like(send)
    cross = topo.cross_comm if topo.cross_comm is not None else comm
    raw_seconds = timed(lambda k: cross.Iallreduce(send, recv, op=MPI.SUM).Wait(), n)

    # the host work around the message, with the public functions after_step uses
    def keep(k):  # the guard keeps the last good parameters and optimiser state at a boundary
        jax.block_until_ready(jax.tree.leaves(jax.tree.map(jnp.copy, (state.params, state.opt_state))))

    def snapshot(k):
        contribution(flatten(state.params)[0], 1.0)

    def mix_in(k):
        current, unflatten = flatten(state.params)
        new = unflatten(mix(current, flat, flat, 1, alpha=1.0, max_staleness=1))
        jax.block_until_ready(jax.tree.leaves(jax.tree.map(jax.device_put, new)))

    host = {name: timed(call, n) for name, call in (("keep", keep), ("snapshot", snapshot), ("mix", mix_in))}
    if topo.is_root:
        _write_json(
            Path(result),
            {
                "parallel": topo.describe(),
                "parameters": int(flat.size),
                "parameter_bytes": int(send.nbytes),
                "guard_seconds": guard_seconds,
                "exchange_seconds": exchange_seconds,
                "raw_iallreduce_seconds": raw_seconds,
                "guard": _spread(guard_seconds),
                "exchange": _spread(exchange_seconds),
                "raw_iallreduce": _spread(raw_seconds),
                "exchange_stats": {k: v for k, v in stats.items() if k != "events"},
                "host_seconds": host,
                "host": {name: _spread(values) for name, values in host.items()},
            },
        )


def _compute_measurer(s, comm=None):
    """The compute part's measurement: ``measure(batch, steps, barrier=None,
    step_barrier=None, **straggler)`` times the task's train step in this process
    (``barrier``: called once all ranks have compiled, so the timed steps of several
    processes overlap; ``step_barrier``: called after every step, so a step ends when the
    slowest rank of the barrier's group has done it), and the parameters' leaves and
    loss parts (for the message sizes)."""
    import jax

    import nnpde
    from nnpde.distributed import GroupTopology

    bench = _bench()

    class Hook(bench._Hook):
        """benchmark_distributed's hook, plus the process's CPU time over the timed steps
        and an optional straggler: with ``probability`` a step sleeps ``extra`` seconds
        after its device work is done (so the sleep cannot overlap it)."""

        def __init__(self, steps, *, probability=0.0, extra=0.0, seed=0, barrier=None, step_barrier=None):
            super().__init__(steps, barrier=barrier)
            self.align = barrier  # again once the warm-up steps are done: the timed steps start together
            self.step_barrier = step_barrier
            self.probability, self.extra = probability, extra
            self.rng = np.random.default_rng(seed)
            self.injected = []
            self.cpu = []

        def __call__(self, model):
            if self.probability and self.step + 1 < self.steps and self.rng.random() < self.probability:
                jax.block_until_ready([x for x in jax.tree.leaves(model) if isinstance(x, jax.Array)])
                time.sleep(self.extra)
                self.injected.append(len(self.stamps))  # index of the stamp this step ends at
            out = super().__call__(model)
            if self.step_barrier is not None and self.step < self.steps:
                self.step_barrier()  # the group's slowest rank is done with this step
                self.stamps[-1] = time.perf_counter()
            if self.align is not None and self.step == s["warmup"] + 1:
                self.align()
                self.stamps[-1] = time.perf_counter()  # the first timed step starts here
            if self.step < self.steps:
                t = os.times()
                self.cpu.append(t.user + t.system)
            return out

    args = _bench_args(s)
    topo = GroupTopology.create(groups=1, comm=comm, devices=jax.local_devices()[:1])
    train, _ = bench._data(topo, args)
    model = bench.problem.model("correction", seed=0, hidden=args.hidden)
    params, _ = nnpde.partition(model)
    leaves = [leaf for leaf in jax.tree.leaves(params) if leaf is not None]
    loss = nnpde.unrolled_loss(model, train[:1, : args.unroll + 1])
    parts = len(loss[1]) if isinstance(loss, tuple) else 0

    def measure(batch, steps, barrier=None, step_barrier=None, **straggler):
        hook = Hook(steps, barrier=barrier, step_barrier=step_barrier, **straggler)
        bench._fit(topo, train, args, batch=batch, steps=steps, averager=None, hook=hook)
        w = s["warmup"]
        times = np.diff(hook.stamps)[w:]
        wall = hook.stamps[-1] - hook.stamps[w]
        return {
            "batch": batch,
            "steps": steps,
            "samples": times.tolist(),
            "stamps": [hook.stamps[w], hook.stamps[-1]],
            "injected": [i - 1 - w for i in hook.injected if i - 1 >= w],
            "cpu_cores": (hook.cpu[-1] - hook.cpu[w]) / wall if wall > 0 else None,
            **_spread(times),
        }

    return measure, leaves, parts


def worker_compute(s, result):
    """One process: per-step compute of the task's train step at several batches, and at
    the main batch with an injected straggler."""
    import jax

    measure, leaves, parts = _compute_measurer(s)
    runs = []
    for batch in s["batches"]:
        runs.append(measure(batch, s["steps"] if batch == s["main_batch"] else s["short_steps"]))
    base = next(r for r in runs if r["batch"] == s["main_batch"])["median"]
    extra = (s["straggler_slowdown"] - 1) * base
    straggling = measure(s["main_batch"], s["steps"], probability=s["straggler_probability"], extra=extra, seed=1)
    straggling.update(injected_probability=s["straggler_probability"], injected_extra_seconds=extra)
    _write_json(
        Path(result),
        {
            "runs": runs,
            "straggler_run": straggling,
            "parameters": int(sum(leaf.size for leaf in leaves)),
            "gradient_bytes": [int(4 * leaf.size) for leaf in leaves] + [4] * (1 + parts),
            "parameter_bytes": int(8 * (sum(leaf.size for leaf in leaves) + 1)),
            "devices": [str(d) for d in jax.devices()],
        },
    )


def worker_sharing(s, result):
    """``mpirun -n R``: every rank times the compute part's train step at batch
    ``s["batch"]`` on its own (no communication but one barrier once all have compiled):
    the per-step compute when R processes share this machine's cores. Rank 0 keeps each
    rank's steps that fall where all R were stepping.

    With ``s["ranks_per_group"] = r``: the ranks form groups of r consecutive ranks that
    synchronise after every step, so a group's step is its slowest rank's compute as the
    scheduler really interleaves the group's ranks, plus the synchronisation; each group
    leader's steps are kept (one sample per group and step). ``s["group_collective"]``:
    ``"barrier"`` (one ``Barrier``, the default) or ``"allreduce"`` (one ``Allreduce``
    per gradient leaf and loss part, of their sizes, as the synchronous training step
    makes them: each waits again for every rank of the group to be scheduled)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    per_group = s.get("ranks_per_group")
    collective = s.get("group_collective") or "barrier"
    if collective not in ("barrier", "allreduce", "in_step"):
        raise ValueError(f"group_collective must be 'barrier', 'allreduce' or 'in_step', got {collective!r}.")
    group = comm.Split(comm.Get_rank() // per_group, comm.Get_rank()) if per_group else None
    if group is not None and collective == "in_step":
        # the group is one synchronous group of the training: its step's mpi4jax allreduces inside jit
        measure, leaves, parts = _compute_measurer(s, comm=group)
    else:
        measure, leaves, parts = _compute_measurer(s, comm=MPI.COMM_SELF)  # each rank a world of its own
    step_sync = group.Barrier if group is not None and collective == "barrier" else None
    if group is not None and collective == "allreduce":
        buffers = [np.zeros(leaf.size, np.float32) for leaf in leaves] + [np.zeros(1, np.float32)] * (1 + parts)

        def step_sync():
            for buffer in buffers:
                group.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)

    in_step = group is not None and collective == "in_step"
    batch = s["batch"] * per_group if in_step else s["batch"]  # fit's batch is the group's: s["batch"] per rank
    run = measure(batch, s["steps"], barrier=comm.Barrier, step_barrier=step_sync)
    run["leader"] = group is None or group.Get_rank() == 0
    runs = comm.gather(run, root=0)
    if comm.Get_rank() == 0:
        start = max(r["stamps"][0] for r in runs)  # CLOCK_MONOTONIC: one clock for the node
        end = min(r["stamps"][1] for r in runs)
        overlapping = []
        for run in (r for r in runs if r["leader"]):
            ends = run["stamps"][0] + np.cumsum(run["samples"])
            overlapping.append([t for t, e in zip(run["samples"], ends, strict=True) if start < e <= end])
        pooled = [t for o in overlapping for t in o]
        _write_json(
            Path(result),
            {
                "ranks": comm.Get_size(),
                "ranks_per_group": per_group or None,
                **({"group_collective": collective} if per_group else {}),
                "batch": s["batch"],
                "samples": pooled,
                "steps_in_overlap_per_rank": [len(o) for o in overlapping],  # per group leader when grouped
                "overlap_seconds": end - start,
                "cpu_cores_per_rank": [r["cpu_cores"] for r in runs],
                **_spread(pooled),
            },
        )


def worker_rank(s, argv):
    """One rank of ``nnpde ARGV`` under mpirun: writes its peak resident memory at exit
    to ``s["dir"]/rank<r>.json``; optionally fails (SIGKILL or an exception) once a step
    >= ``after_step`` is logged in a ``metrics.jsonl`` under ``s["watch"]``."""
    out = Path(s["dir"])
    out.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("PMI_RANK", os.environ.get("PMIX_RANK", "0")))

    def record():
        status = {}
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    status[key] = int(value.split()[0])
        except OSError:
            pass
        import resource

        _write_json(
            out / f"rank{rank}.json",
            {
                "rank": rank,
                "vm_hwm_kib": status.get("VmHWM"),
                "vm_rss_kib": status.get("VmRSS"),
                "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "exited": time.time(),
            },
        )

    atexit.register(record)
    failure = s.get("failure")
    if failure and failure["rank"] == rank:

        def injected(signum, frame):
            raise RuntimeError(f"injected failure on rank {rank} (scripts/scale_model.py --part functional)")

        # SIGUSR2: ``nnpde train`` takes SIGTERM and SIGUSR1 as a batch system's "stop soon"
        # (checkpoint, exit 5), which would turn the injected failure into a clean stop.
        signal.signal(signal.SIGUSR2, injected)

        def watch():
            while True:
                for path in Path(s["watch"]).rglob("metrics.jsonl"):
                    try:
                        steps = [json.loads(line).get("step", 0) for line in path.read_text().splitlines() if line]
                    except (OSError, json.JSONDecodeError):
                        continue
                    if steps and max(steps) >= failure["after_step"]:
                        _write_json(out / "failure.json", {"rank": rank, "step_seen": max(steps), "time": time.time()})
                        os.kill(os.getpid(), signal.SIGKILL if failure["mode"] == "kill" else signal.SIGUSR2)
                        return
                time.sleep(0.05)

        threading.Thread(target=watch, daemon=True).start()
    sys.argv = ["nnpde", *argv]
    runpy.run_module("nnpde", run_name="__main__", alter_sys=True)
