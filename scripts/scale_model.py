"""The scale model of hybrid synchronous/asynchronous training (Kurth et al., "Deep
Learning at 15PF", SC'17: synchronous groups, asynchronous averaging across groups),
measured on this machine, checked against measured runs and extrapolated to 10^4 nodes
(issue 22). A campaign of parts; each part's result is cached in
``runs/scale_model/<part>.json`` and skipped when present (``--force`` redoes it), so an
interrupted campaign resumes; the long parts also cache each run (``<part>/<run>.json``).
Every result records its settings, command, machine and date.

Launch (from the repository root; ``nice -n 19`` on a shared machine). Durations and
peak memory on the 2-core, 23 GiB VM under other jobs' load (measured where stated):

    .venv/bin/python scripts/scale_model.py --part collectives   # 94 s measured; 16 ranks x ~0.2 GB
    .venv/bin/python scripts/scale_model.py --part averager      # ~3 min; 2 ranks x ~0.7 GB
    .venv/bin/python scripts/scale_model.py --part compute       # 44 s measured; ~0.7 GB
    .venv/bin/python scripts/scale_model.py --part convergence   # ~1.5-2 h (39 runs); 16 ranks x ~0.7 GB
    .venv/bin/python scripts/scale_model.py --part functional    # ~45 min (12 runs); 32 ranks x ~0.7 GB
    .venv/bin/python scripts/scale_model.py --part validate      # < 1 min (needs the parts above)
    .venv/bin/python scripts/scale_model.py --part report        # ~5 min: benchmarks/results/scale_model.json
    .venv/bin/python scripts/scale_model.py --part all           # all of them, in this order

A run that failed (say, out of memory) is recorded (``finished: false``) and cached like
any other; delete its ``runs/scale_model/<part>/<run>.json`` to redo that run alone.
``--tiny`` runs a cut-down version of a part (2 ranks, few sizes and steps, under a
minute each) into ``runs/scale_model_tiny/``; ``--set part.key=JSON`` overrides one
setting (``--set convergence.seeds=[0,1]``); ``--out-dir`` moves the cache. Settings:
``FULL`` and ``TINY`` below. Every ``mpirun`` gets ``MPIR_CVAR_ENABLE_HEAVY_YIELD=1``
(ranks beyond the core count yield instead of spinning), and unless set
``JAX_PLATFORMS=cpu`` and one persistent compilation cache,
``runs/scale_model_jax_cache`` (no timed step includes compilation either way).

Parts:

1. ``collectives``: ``mpirun -n R`` (R = 2, 4, 8, 16) of this script's collectives
   worker: mpi4py ``Allreduce`` and ``Iallreduce`` + ``Wait`` of float32 buffers of
   1 KiB to 64 MiB (powers of 4); each repetition starts after a barrier and counts the
   slowest rank; median and spread over repetitions. ``fit_network`` per algorithm of
   ``ALLREDUCE_ALGORITHMS`` and for the library's choice among all, per operation:
   alpha, beta, residuals. On a 2-core machine every rank count above 2 is
   OVERSUBSCRIBED and all ranks share one memory: this measures CPU sharing and shared
   memory copies, not a network.
2. ``averager``: ``AsyncAverager`` as used, on 2 groups of 1 rank (``mpirun -n 2``):
   (a) ``scripts/benchmark_distributed.py --worker overhead`` (step time with no
   averager, bounded staleness and wait-free, ABCCBA in the same processes; staleness
   and seconds in MPI from ``AsyncAverager.stats``); (b) this script's exchange worker:
   one ``after_step`` that starts and completes an average of the task model's
   parameters (``every=1, max_staleness=0``: snapshot, ``Iallreduce``, progress thread,
   wait, mix) against a guard-only ``after_step``, and a raw ``Iallreduce`` + ``Wait``
   of the same message.
3. ``compute``: one process, the task's train step (benchmark_distributed's model, data
   and ``fit``; step time from its pass-through hook) at per-rank batches 1, 2, 4, 8,
   a few hundred steps each; then at batch 8 with an injected straggler (with
   probability 0.05 a step sleeps 2x the median step after it completes). Fitted:
   ``ComputeModel.fit_lognormal`` per batch; ``fit_batch_scaling``, the step's fixed
   and per-sample cost ``t(b) = t0 + t1 b``, to the batches' medians
   (``batch_scaling``; validate and report refit it from the cached runs); the
   straggler run's probability and slowdown; the process's CPU use in cores (for the
   CPU-sharing factor below).
4. ``convergence``: ``mpirun -n 16`` of benchmark_distributed's convergence worker with
   1, 2, 4, 8, 16 groups (16 / G ranks each), averaging every 2, 4, 8 steps (wait-free,
   max staleness 2 x every), seeds 0, 1, 2 (one data set: ``--data-seed 0``), equal
   global batch 16; steps to the target (0.5 x the plain coarse solver's held-out
   horizon error), evaluated every 5 steps. ``fit_steps_to_target`` on the runs that
   reach it. 16 ranks on 2 cores: OVERSUBSCRIBED.
5. ``functional``: ``mpirun -n 16`` and ``-n 32`` of ``nnpde train
   scripts/configs/scale_functional.toml`` with 1, 2, 4, 8, 16 groups (one sample per
   rank), each rank under this script's rank wrapper (it writes the rank's peak
   resident memory, ``VmHWM``, at exit): finished (exit 0 and a ``train.json``),
   seconds, MiB per rank, averages completed, staleness, seconds in MPI (the
   averager's; the group allreduce inside the jitted step is not timed by ``nnpde
   train``), steady step time from the leaders' ``metrics.jsonl``. Then failing ranks
   at 16 ranks, 4 groups: rank 5 is killed (SIGKILL), or raises, once a step >= 10 is
   logged; measured: the seconds from the failure until every rank has exited
   (``mpirun`` returns), with a timeout that would record a hang.
6. ``validate``: ``simulate`` / ``time_to_target`` with the fitted network (the
   ``Allreduce`` fit for the group allreduce, the ``Iallreduce`` fit for the average),
   compute and steps models against every measured point of 1-16 ranks (step time,
   staleness, time and steps to target, the averager's exchange): entries ``{ranks,
   groups, what, measured, predicted, relative_error}``, flagged beyond 25 % with a
   reason. Ranks beyond the cores share them: the prediction scales compute by
   ``max(1, ranks x cores-per-process / cores)`` (``predicted_without_sharing`` leaves
   it out); a batch that was not measured is moved from the nearest measured one by
   ``t0 + t1 b``, and each batch's median is checked against that fit.
7. ``report``: ``benchmarks/results/scale_model.json`` (``validation``,
   ``functional_runs``, ``failure_runs``, ``collectives``, ``compute``, ``averager``,
   ``convergence``, ``predictions``, machine, date, commands) and
   ``docs/benchmarks/figures/scale_model_prediction.png``: ``predict_scaling`` from 1 to
   10^4 nodes at a global batch of 16384 (2^14, a large-batch setting that still gives
   every one of 10^4 nodes a sample; each node computes ``16384 / N`` samples, at the
   measured step moved by ``t0 + t1 b``, so below ``t0 / t1`` samples per node the
   synchronous step floors at ``t0``) with this machine's fit and with
   ``INTERCONNECTS`` (Cray Aries, InfiniBand HDR, NDR), synchronous, hybrid (best G) and
   asynchronous, with and without the measured stragglers.

Workers (launched by the parts; each can be run by hand, ``--settings`` a JSON object):
``--worker collectives|exchange|compute`` and ``--worker rank --settings ... -- ARGS``
(the rank wrapper around ``nnpde ARGS``).
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import json
import math
import os
import platform
import runpy
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCRIPT = Path(__file__).resolve()
BENCH = ROOT / "scripts" / "benchmark_distributed.py"
CONFIG = ROOT / "scripts" / "configs" / "scale_functional.toml"
PARTS = ("collectives", "averager", "compute", "sharing", "convergence", "functional", "validate", "report")
KIB, MIB = 1024, 1024**2

# The task: benchmark_distributed's hybrid Burgers correction (its defaults).
MODEL = {"hidden": 8, "unroll": 8, "learning_rate": 3e-3, "train": 32, "test": 8, "data_seed": 0, "data": "runs/data"}

FULL = {
    "collectives": {
        "ranks": [2, 4, 8, 16],
        "nbytes": [KIB * 4**k for k in range(9)],  # 1 KiB .. 64 MiB
        "repetitions": 20,
        "large_repetitions": 5,  # from large_from bytes on
        "large_from": 4 * MIB,
        "warmup": 2,
        "timeout": 1800,
    },
    "averager": {
        "batch": 8,
        "steps": 300,
        "warmup": 20,
        "exchange_repeats": 50,
        "timeout": 1800,
    },
    "compute": {
        "batches": [1, 2, 4, 8],
        "main_batch": 8,
        "steps": 300,  # at main_batch
        "short_steps": 120,  # at the other batches
        "warmup": 20,
        "straggler_probability": 0.05,
        "straggler_slowdown": 3.0,  # the straggling step takes this x the median step
        "timeout": 1800,
    },
    "sharing": {
        "ranks": [2, 4, 8, 16],  # the rank counts of the measured runs
        "batch": 1,  # one sample per rank: the convergence and functional runs'
        "steps": 400,
        "warmup": 20,
        "timeout": 1800,
    },
    "convergence": {
        "ranks": 16,
        "groups": [1, 2, 4, 8, 16],
        "every": [2, 8],  # averaging periods: (1 + 4 group counts x 2 periods) x 3 seeds = 27 runs, ~80 min
        "staleness_factor": 2,  # max_staleness = this x every (wait-free)
        "seeds": [0, 1, 2],
        "total_batch": 16,
        "steps": 300,
        "eval_every": 5,
        "warmup": 20,
        "target_factor": 0.5,
        "timeout": 3600,
    },
    "functional": {
        "ranks": [16, 32],
        "groups": [1, 2, 4, 8, 16],
        "rank_batch": 1,
        "steps": 60,
        "config_sets": {},  # further --set overrides of the config
        "skip_steps": 5,  # first logged steps left out of the steady step time (compilation)
        "timeout": 1800,
        "failures": [
            {"ranks": 16, "groups": 4, "rank": 5, "mode": "kill", "after_step": 10},
            {"ranks": 16, "groups": 4, "rank": 5, "mode": "raise", "after_step": 10},
        ],
        "failure_timeout": 300,
    },
    "validate": {"flag": 0.25},
    "report": {
        "node_counts": [1, 4, 16, 64, 256, 1024, 4096, 10000],
        # strong scaling of one large-batch setting: 2^14 samples per step, >= 1 per node up to 10^4 nodes;
        # the local batch 16384 / N crosses the measured t0 / t1 (4.8 samples) near 3400 nodes
        "global_batch": 16384,
        "group_counts": [2, 4, 8, 16, 32, 64, 128],
        "every": 4,
        "max_staleness": 8,
        "wait_free": True,
        "interconnects": ["cray_aries_cori", "infiniband_hdr", "infiniband_ndr"],
    },
}

TINY = {
    "collectives": {"ranks": [2], "nbytes": [KIB, 16 * KIB, 256 * KIB], "repetitions": 5, "timeout": 120},
    "averager": {"steps": 20, "warmup": 2, "exchange_repeats": 10, "timeout": 300},
    "compute": {"batches": [1, 2], "main_batch": 2, "steps": 40, "short_steps": 15, "warmup": 3, "timeout": 300},
    "sharing": {"ranks": [2], "batch": 1, "steps": 30, "warmup": 3, "timeout": 300},
    "convergence": {
        "ranks": 2,
        "groups": [1, 2],
        "every": [4],
        "seeds": [0],
        "total_batch": 2,
        "steps": 10,
        "eval_every": 5,
        "warmup": 2,
        "target_factor": 1.5,  # met at the first evaluation
        "timeout": 300,
    },
    "functional": {
        "ranks": [2],
        "groups": [2],
        "steps": 6,
        "config_sets": {"data.train_samples": 4, "data.eval_samples": 2},
        "skip_steps": 1,
        "timeout": 300,
        "failures": [
            {"ranks": 2, "groups": 2, "rank": 1, "mode": "kill", "after_step": 2},
            {"ranks": 2, "groups": 2, "rank": 1, "mode": "raise", "after_step": 2},
        ],
        "failure_timeout": 120,
    },
    "report": {
        "node_counts": [1, 4, 16],
        "global_batch": 64,
        "group_counts": [2, 4],
        "interconnects": ["infiniband_hdr"],
    },
}
TINY_MODEL = {"train": 4, "test": 2}


# ---------------------------------------------------------------------------- plumbing


def _settings(args) -> dict:
    """Per-part settings: FULL, then TINY with --tiny, then --set overrides."""
    settings = {part: dict(FULL.get(part, {})) for part in PARTS}
    settings["model"] = dict(MODEL, **(TINY_MODEL if args.tiny else {}))
    if args.tiny:
        for part, values in TINY.items():
            settings[part].update(values)
    for item in args.set:
        key, _, value = item.partition("=")
        part, _, name = key.partition(".")
        if part not in settings or not name or not value:
            raise SystemExit(f"--set {item!r}: expected part.key=JSON with part one of {sorted(settings)}.")
        try:
            settings[part][name] = json.loads(value)
        except json.JSONDecodeError:
            settings[part][name] = value
    return settings


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default))
    tmp.replace(path)


def _json_default(value):
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _machine() -> dict:
    from importlib import metadata

    versions = {}
    for name in ("jax", "mpi4py", "mpi4jax", "mpich", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": memory,
        "load_average": os.getloadavg(),
        "software": versions,
    }


def _env() -> dict:
    """Every launched run's environment: oversubscribed ranks yield; CPU unless told
    otherwise; one persistent compilation cache (a run that compiles what an earlier
    one did starts sooner; no timed step includes compilation)."""
    env = dict(os.environ, MPIR_CVAR_ENABLE_HEAVY_YIELD="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / "runs" / "scale_model_jax_cache"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    return env


def _mpirun(args) -> str:
    return args.mpirun or str(Path(sys.executable).parent / "mpirun")


def _run(command, *, timeout, env=None) -> dict:
    """Run ``command`` in its own process group; on timeout kill that group (mpirun and
    every rank it started). Returns exit code, seconds, output tail, timed_out."""
    print("  $ " + " ".join(command), flush=True)
    began = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    return {
        "returncode": proc.returncode,
        "seconds": time.perf_counter() - began,
        "timed_out": timed_out,
        "ended": time.time(),
        "output_tail": (output or "")[-3000:],
        "command": " ".join(command),
    }


def _launch_worker(args, n, worker, settings, *, timeout, extra=()):
    """``mpirun -n n`` (or one process for n = 0) of a worker of this script or of
    benchmark_distributed (``worker`` a list of its arguments); its result JSON."""
    result = Path(args.out_dir) / "tmp" / f"{os.getpid()}_{time.monotonic_ns()}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(worker, str):
        command = [sys.executable, str(SCRIPT), "--worker", worker, "--settings", json.dumps(settings)]
    else:
        command = [sys.executable, str(BENCH), *worker]
    command += [*extra, "--result", str(result)]
    if n:
        command = [_mpirun(args), "-n", str(n), *command]
    done = _run(command, timeout=timeout)
    if done["returncode"] != 0 or not result.exists():
        raise RuntimeError(f"worker failed (exit {done['returncode']}): {done['command']}\n{done['output_tail']}")
    out = json.loads(result.read_text())
    result.unlink()
    out["launch"] = {k: done[k] for k in ("command", "seconds")}
    return out


def _cached(path: Path, force: bool, make):
    """``make()``'s result, stored at ``path``; read back when present unless ``force``."""
    if path.exists() and not force:
        print(f"  cached: {path}", flush=True)
        return json.loads(path.read_text())
    began = time.perf_counter()
    result = make()
    result["seconds"] = time.perf_counter() - began
    _write_json(path, result)
    return result


def _bench():
    """scripts/benchmark_distributed.py as a module (its workers, hook and fit)."""
    from scripts import benchmark_distributed

    return benchmark_distributed


def _bench_args(settings, **extra):
    """The argument namespace benchmark_distributed's helpers read."""
    model = settings["model"]
    return argparse.Namespace(
        seed=extra.pop("seed", 0),
        data_seed=model["data_seed"],
        train=model["train"],
        test=model["test"],
        data=model["data"],
        hidden=model["hidden"],
        unroll=model["unroll"],
        learning_rate=model["learning_rate"],
        **extra,
    )


def _options(**options) -> list[str]:
    """Command-line options: ``_options(eval_every=5)`` is ``["--eval-every", "5"]``."""
    return [x for key, value in options.items() for x in (f"--{key.replace('_', '-')}", str(value))]


def _bench_shared(model) -> list[str]:
    """benchmark_distributed's model and data options."""
    return _options(
        **{k: model[k] for k in ("hidden", "unroll", "learning_rate", "train", "test", "data_seed", "data")}
    )


def _staleness_mean(stats) -> float | None:
    """The mean staleness over several ``AsyncAverager.stats`` (weighted by their counts)."""
    counted = [a for a in stats if a and a.get("staleness_count")]
    if not counted:
        return None
    return sum(a["staleness_mean"] * a["staleness_count"] for a in counted) / sum(a["staleness_count"] for a in counted)


def _spread(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {
        "count": int(v.size),
        "median": float(np.median(v)),
        "mean": float(v.mean()),
        "min": float(v.min()),
        "max": float(v.max()),
        "p10": float(np.quantile(v, 0.1)),
        "p90": float(np.quantile(v, 0.9)),
        "p99": float(np.quantile(v, 0.99)),
        "std": float(v.std()),
    }


# ---------------------------------------------------------------------------- workers


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
    """The compute part's measurement: ``measure(batch, steps, barrier=None, **straggler)``
    times the task's train step in this process (``barrier``: called once all ranks have
    compiled, so the timed steps of several processes overlap), and the parameters'
    leaves and loss parts (for the message sizes)."""
    import jax

    import nnpde
    from nnpde.distributed import GroupTopology

    bench = _bench()

    class Hook(bench._Hook):
        """benchmark_distributed's hook, plus the process's CPU time over the timed steps
        and an optional straggler: with ``probability`` a step sleeps ``extra`` seconds
        after its device work is done (so the sleep cannot overlap it)."""

        def __init__(self, steps, *, probability=0.0, extra=0.0, seed=0, barrier=None):
            super().__init__(steps, barrier=barrier)
            self.align = barrier  # again once the warm-up steps are done: the timed steps start together
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

    def measure(batch, steps, barrier=None, **straggler):
        hook = Hook(steps, barrier=barrier, **straggler)
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
    rank's steps that fall where all R were stepping."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    measure, _, _ = _compute_measurer(s, comm=MPI.COMM_SELF)  # each rank a world of its own
    run = measure(s["batch"], s["steps"], barrier=comm.Barrier)
    runs = comm.gather(run, root=0)
    if comm.Get_rank() == 0:
        start = max(r["stamps"][0] for r in runs)  # CLOCK_MONOTONIC: one clock for the node
        end = min(r["stamps"][1] for r in runs)
        overlapping = []
        for r in runs:
            ends = r["stamps"][0] + np.cumsum(r["samples"])
            overlapping.append([t for t, e in zip(r["samples"], ends, strict=True) if start < e <= end])
        pooled = [t for o in overlapping for t in o]
        _write_json(
            Path(result),
            {
                "ranks": comm.Get_size(),
                "batch": s["batch"],
                "samples": pooled,
                "steps_in_overlap_per_rank": [len(o) for o in overlapping],
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


# ---------------------------------------------------------------------------- parts


def part_collectives(args, settings):
    s = settings["collectives"]
    runs = [
        _launch_worker(args, r, "collectives", s, timeout=s["timeout"]) for r in s["ranks"]
    ]  # one mpirun per rank count
    rows = [row for run in runs for row in run["rows"]]
    return {
        "note": f"{os.cpu_count()} cores: ranks beyond them are oversubscribed; all ranks share one node's memory, "
        "so this measures CPU sharing and shared-memory copies, not a network.",
        "oversubscribed_ranks": [r for r in s["ranks"] if r > (os.cpu_count() or 1)],
        "library": runs[0]["library"],
        "commands": [run["launch"]["command"] for run in runs],
        "rows": rows,
        "fits": _fit_collectives(rows),
    }


def _fit_collectives(rows) -> dict:
    """fit_network per operation, per algorithm and for the library's choice; the best
    (lowest relative RMS) of each operation is the one later parts use."""
    from nnpde.distributed import ALLREDUCE_ALGORITHMS, fit_network

    fits = {}
    for op in ("Allreduce", "Iallreduce"):
        sel = [r for r in rows if r["op"] == op and r["ranks"] > 1]
        ranks = np.concatenate([np.full(len(r["seconds"]), r["ranks"]) for r in sel])
        nbytes = np.concatenate([np.full(len(r["seconds"]), r["nbytes"]) for r in sel])
        seconds = np.concatenate([r["seconds"] for r in sel])
        points_r = np.array([r["ranks"] for r in sel])
        points_n = np.array([r["nbytes"] for r in sel], dtype=np.float64)
        medians = np.array([r["median"] for r in sel])
        entries = {}
        for name, algorithm in [*((a, a) for a in ALLREDUCE_ALGORITHMS), ("library", ALLREDUCE_ALGORITHMS)]:
            fit = fit_network(ranks, nbytes, seconds, algorithm=algorithm, name=f"{op} {name}")
            model = fit.model
            predicted = np.atleast_1d(model.allreduce_seconds(points_n, points_r))
            entries[name] = {
                "alpha": model.alpha,
                "beta": model.beta,
                "bandwidth_bytes_per_second": 1 / model.beta if model.beta > 0 else None,
                "algorithm": list(model.algorithms) if len(model.algorithms) > 1 else model.algorithms[0],
                "relative_rms": fit.relative_rms,
                "points": [
                    {
                        "ranks": int(r),
                        "nbytes": int(n),
                        "measured_median": float(m),
                        "model": float(p),
                        "relative_residual": float(m / p - 1) if p > 0 else None,
                        "algorithm": str(model.chosen_algorithm(n, int(r))),
                    }
                    for r, n, m, p in zip(points_r, points_n, medians, predicted, strict=True)
                ],
            }
        best = min(entries, key=lambda k: entries[k]["relative_rms"])
        fits[op] = {"best": best, "by_algorithm": entries}
    return fits


def part_averager(args, settings):
    s, model = settings["averager"], settings["model"]
    worker = ["--worker", "overhead", *_options(groups=2, batch=s["batch"], steps=s["steps"], warmup=s["warmup"])]
    overhead = _launch_worker(args, 2, [*worker, *_bench_shared(model)], None, timeout=s["timeout"])
    exchange = _launch_worker(
        args,
        2,
        "exchange",
        {"groups": 2, "exchange_repeats": s["exchange_repeats"], "model": model},
        timeout=s["timeout"],
    )
    ranks = overhead["ranks"]
    ratio = {}
    for name in ("async_bounded", "async_wait_free"):
        ratio[name] = {
            stat: float(np.mean([r[f"{stat}_step_seconds"][name] / r[f"{stat}_step_seconds"]["none"] for r in ranks]))
            for stat in ("mean", "median")
        }
    return {
        "layout": "2 groups x 1 rank (mpirun -n 2)",
        "overhead": overhead,
        "step_time_ratio_to_none": ratio,
        "exchange": exchange,
        "exchange_minus_guard_seconds": exchange["exchange"]["median"] - exchange["guard"]["median"],
    }


def part_compute(args, settings):
    s = dict(settings["compute"], model=settings["model"])
    runs = _launch_worker(args, 0, "compute", s, timeout=s["timeout"], extra=())
    return _fit_compute(runs, settings["compute"])


def part_sharing(args, settings):
    """The compute of one rank when R ranks share the cores (``worker_sharing``), for
    each R: validation puts it in place of the sharing factor for runs of R ranks."""
    s = dict(settings["sharing"], model=settings["model"])
    runs = []
    for ranks in s["ranks"]:
        run = _launch_worker(args, ranks, "sharing", s, timeout=s["timeout"])
        print(f"  {ranks} ranks: median {run['median'] * 1e3:.2f} ms per step", flush=True)
        runs.append(run)
    return {
        "note": f"{os.cpu_count()} cores: R processes time the same train step at once, without communication; "
        "each one's steps while all R were stepping, pooled",
        "runs": runs,
    }


def _fit_compute(measured, s) -> dict:
    from nnpde.distributed import ComputeModel

    out = dict(measured)
    for run in out["runs"]:
        model = ComputeModel.fit_lognormal(run["samples"])
        run["lognormal"] = {"median": math.exp(model.log_mean), "sigma": model.log_sigma, "mean": model.mean()}
    main = next(r for r in out["runs"] if r["batch"] == s["main_batch"])
    out["batch_scaling"] = _batch_scaling_record(out["runs"], main["batch"])
    # stragglers: steps beyond halfway to the injected slowdown count as straggling
    run = out["straggler_run"]
    samples = np.asarray(run["samples"])
    threshold = main["median"] * (1 + (s["straggler_slowdown"] - 1) / 2)
    slow = samples > threshold
    p = float(slow.mean())
    slowdown = float(np.median(samples[slow]) / np.median(samples[~slow])) if slow.any() and (~slow).any() else 1.0
    fitted = ComputeModel.empirical(samples[~slow] if (~slow).sum() >= 2 else main["samples"])
    fitted = fitted.with_stragglers(p, max(slowdown, 1.0))
    run["fit"] = {
        "threshold_seconds": threshold,
        "probability": p,
        "slowdown": max(slowdown, 1.0),
        "injected_probability": s["straggler_probability"],
        "injected_slowdown": s["straggler_slowdown"],
        "predicted_mean": fitted.mean(),
        "measured_mean": float(samples.mean()),
    }
    cores = [r["cpu_cores"] for r in out["runs"] if r.get("cpu_cores")]
    out["cpu_cores_per_process"] = float(np.median(cores)) if cores else 1.0
    return out


def _batch_scaling(runs):
    """``t(b) = t0 + t1 b`` fitted to the compute part's per-batch medians."""
    from nnpde.distributed import fit_batch_scaling

    if len({r["batch"] for r in runs}) < 2:
        raise SystemExit(
            f"the compute part measured batches {[r['batch'] for r in runs]}: one batch cannot tell the fixed cost "
            "of a step from its cost per sample. Fix: --part compute --force with two or more batches (the default)."
        )
    return fit_batch_scaling([r["batch"] for r in runs], [r["median"] for r in runs])


def _batch_scaling_record(runs, main_batch) -> dict:
    """The fit and, per batch, the measured median against it and against a step
    linear in the batch (both relative to ``main_batch``)."""
    fit = _batch_scaling(runs)
    main = fit.seconds(main_batch)
    medians = {r["batch"]: r["median"] for r in runs}
    return dict(
        fit.to_dict(),
        points=[
            {
                "batch": b,
                "median": m,
                "model": fit.seconds(b),
                "relative_residual": m / fit.seconds(b) - 1,
                "median_ratio": m / medians[main_batch],
                "affine_ratio": fit.seconds(b) / main,
                "linear_ratio": b / main_batch,
            }
            for b, m in medians.items()
        ],
    )


def part_convergence(args, settings):
    s, model = settings["convergence"], settings["model"]
    layouts = [(1, None)] + [(g, e) for g in s["groups"] if g > 1 for e in s["every"]]
    runs = []
    for groups, every in layouts:
        if groups not in s["groups"] or s["ranks"] % groups or s["total_batch"] % groups:
            continue
        for seed in s["seeds"]:
            label = f"g{groups}_e{every or 0}_s{seed}"
            every_ = every or s["every"][0]
            options = _options(
                groups=groups,
                batch=s["total_batch"] // groups,
                steps=s["steps"],
                eval_every=s["eval_every"],
                every=every_,
                max_staleness=s["staleness_factor"] * every_,
                straggler=0,
                seed=seed,
                warmup=s["warmup"],
            )
            worker = ["--worker", "convergence", *options, *_bench_shared(model)]

            def make(worker=worker, groups=groups, every=every, seed=seed):
                run = _launch_worker(args, s["ranks"], worker, None, timeout=s["timeout"])
                return dict(run, groups=groups, every=every, seed=seed)

            print(f"[convergence] {label}: {s['ranks']} ranks, {groups} group(s)", flush=True)
            runs.append(_cached(Path(args.out_dir) / "convergence" / f"{label}.json", args.force, make))
    return _analyse_convergence(runs, s)


def _analyse_convergence(runs, s) -> dict:
    from nnpde.distributed import fit_steps_to_target

    bench = _bench()
    target = s["target_factor"] * runs[0]["plain_coarse_error"]
    rows = []
    for run in runs:
        reached = bench._to_target(run, target)
        leaders = [r for r in run["ranks"] if r["leader"]]
        averaging = [r["averaging"] for r in leaders if r["averaging"]]
        staleness = _staleness_mean(averaging)
        rows.append(
            {
                "ranks": run["parallel"]["ranks"],
                "groups": run["groups"],
                "ranks_per_group": run["parallel"]["ranks_per_group"],
                "every": run["every"],
                "max_staleness": None if run["every"] is None else s["staleness_factor"] * run["every"],
                "seed": run["seed"],
                "batch_per_group": run["batch_per_group"],
                "steps": run["settings"]["steps"],
                "steps_to_target": None if reached is None else reached[0],
                "seconds_to_target": None if reached is None else reached[1],
                "group0_steady_step_seconds": bench._steady_step_seconds(run),
                "mean_step_seconds": float(np.mean([r["mean_step_seconds"] for r in run["ranks"]])),
                "mean_staleness": staleness,
                "averages_completed": int(sum(a["completed"] for a in averaging)),
                "averages_discarded": int(sum(a["discarded_stale"] for a in averaging)),
                "mpi_seconds": [a["mpi_seconds"] for a in averaging],
                "final_averaged_error": run["final_averaged_error"],
                "command": run["launch"]["command"],
                "launch_seconds": run["launch"]["seconds"],
            }
        )
    fit_rows = [r for r in rows if r["steps_to_target"] is not None]
    fit, reason = None, None
    if any(r["groups"] == 1 for r in fit_rows) and any(r["groups"] > 1 for r in fit_rows):
        model = fit_steps_to_target(
            [r["groups"] for r in fit_rows],
            [r["every"] or 1 for r in fit_rows],
            [r["mean_staleness"] or 0.0 for r in fit_rows],
            [r["steps_to_target"] for r in fit_rows],
        )
        fit = model.to_dict()
    else:
        reason = "no run with one group, or none with several, reached the target"
    return {
        "note": f"{s['ranks']} ranks on {os.cpu_count()} cores"
        + (" (OVERSUBSCRIBED: wall times measure CPU sharing)" if s["ranks"] > (os.cpu_count() or 1) else ""),
        "target_error": target,
        "plain_coarse_error": runs[0]["plain_coarse_error"],
        "rows": rows,
        "steps_to_target_fit": fit,
        "fit_refused": reason,
        "unreached": [{k: r[k] for k in ("groups", "every", "seed")} for r in rows if r["steps_to_target"] is None],
    }


def part_functional(args, settings):
    s = settings["functional"]
    base = Path(args.out_dir) / "functional"
    runs = []
    for ranks in s["ranks"]:
        for groups in s["groups"]:
            if ranks % groups:
                continue
            label = f"n{ranks}_g{groups}"
            print(f"[functional] {label}", flush=True)
            runs.append(
                _cached(base / f"{label}.json", args.force, lambda r=ranks, g=groups: _functional_run(args, s, r, g))
            )
    failures = []
    for case in s["failures"]:
        label = f"fail_{case['mode']}_n{case['ranks']}_g{case['groups']}"
        print(f"[functional] {label}", flush=True)
        failures.append(_cached(base / f"{label}.json", args.force, lambda c=case: _failure_run(args, s, c)))
    return {
        "config": str(CONFIG.relative_to(ROOT)),
        "note": f"{os.cpu_count()} cores: every run here is oversubscribed; the group allreduce inside the jitted step "
        "(mpi4jax) is not timed by nnpde train: mpi_seconds is the averager's main-thread MPI time, finish_seconds "
        "its final average.",
        "runs": runs,
        "failures": failures,
    }


def _train_command(args, s, ranks, groups, run_dir, rank_dir, failure=None):
    wrapper = {"dir": str(rank_dir), "watch": str(run_dir), "failure": failure}
    sets = {
        "out": f'"{run_dir}"',
        "train.steps": s["steps"],
        "train.batch_size": s["rank_batch"] * ranks // groups,
        "train.eval_every": s["steps"],
        "train.checkpoint_every": s["steps"],
        "distributed.groups": groups,
        **s["config_sets"],
    }
    command = [_mpirun(args), "-n", str(ranks), sys.executable, str(SCRIPT), "--worker", "rank"]
    command += ["--settings", json.dumps(wrapper), "--", "train", str(CONFIG), "--no-progress", "--no-evaluate"]
    return command + [x for key, value in sets.items() for x in ("--set", f"{key}={value}")]


def _functional_run(args, s, ranks, groups) -> dict:
    import shutil

    root = Path(args.out_dir) / "functional" / f"n{ranks}_g{groups}"
    shutil.rmtree(root, ignore_errors=True)
    run_dir, rank_dir = root / "run", root / "ranks"
    done = _run(_train_command(args, s, ranks, groups, run_dir, rank_dir), timeout=s["timeout"])
    summary_path = run_dir / "train.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    resident = _resident(rank_dir, ranks)
    groups_stats = (summary or {}).get("averaging", {}).get("groups", [])
    steady = _steady_from_metrics(run_dir, s["skip_steps"])
    return {
        "ranks": ranks,
        "groups": groups,
        "ranks_per_group": ranks // groups,
        "batch_per_group": s["rank_batch"] * ranks // groups,
        "steps": s["steps"],
        "finished": done["returncode"] == 0 and summary is not None,
        "returncode": done["returncode"],
        "timed_out": done["timed_out"],
        "seconds": done["seconds"],
        "train_seconds": (summary or {}).get("seconds"),
        "resident_mib_per_rank": resident,
        "resident_mib_max": max(resident) if resident and None not in resident else None,
        "resident_mib_total": sum(resident) if resident and None not in resident else None,
        "averaging": {k: v for k, v in (summary or {}).get("averaging", {}).items() if k != "groups"} or None,
        "averages_completed": int(sum(g["completed"] for g in groups_stats)),
        "averages_started": int(sum(g["started"] for g in groups_stats)),
        "averages_discarded": int(sum(g["discarded_stale"] for g in groups_stats)),
        "staleness_mean": _staleness_mean(groups_stats),
        "staleness_max": max(
            (g["staleness_max"] for g in groups_stats if g["staleness_max"] is not None), default=None
        ),
        "mpi_seconds_per_leader": [g["mpi_seconds"] for g in groups_stats],
        "finish_seconds_per_leader": [g["finish_seconds"] for g in groups_stats],
        "mpi_time_coverage": "AsyncAverager (main-thread MPI in after_step, finish); the group allreduce inside the "
        "jitted step (mpi4jax) is not timed by nnpde train",
        "steady_step_seconds": steady,
        "horizon_error": (summary or {}).get("horizon_error"),
        "command": done["command"],
        "output_tail": done["output_tail"] if done["returncode"] else done["output_tail"][-600:],
    }


def _resident(rank_dir: Path, ranks: int) -> list:
    out = []
    for r in range(ranks):
        path = rank_dir / f"rank{r}.json"
        if not path.exists():
            out.append(None)
            continue
        data = json.loads(path.read_text())
        kib = data["vm_hwm_kib"] or data["ru_maxrss_kib"]
        out.append(round(kib / 1024, 1))
    return out


def _steady_from_metrics(run_dir: Path, skip: int) -> dict | None:
    """Median seconds per step of each group leader's metrics.jsonl (logged every step),
    the first ``skip`` logged steps left out."""
    per_group = {}
    for path in sorted(run_dir.rglob("metrics.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        records = [r for r in records if "step" in r and "time" in r and "loss" in r]
        steps = np.array([r["step"] for r in records])[skip:]
        times = np.array([r["time"] for r in records])[skip:]
        if steps.size >= 2:
            group = path.parent.name if path.parent.name.startswith("group") else "group0"
            per_group[group] = float(np.median(np.diff(times) / np.diff(steps)))
    return per_group or None


def _failure_run(args, s, case) -> dict:
    import shutil

    root = Path(args.out_dir) / "functional" / f"fail_{case['mode']}_n{case['ranks']}_g{case['groups']}"
    shutil.rmtree(root, ignore_errors=True)
    run_dir, rank_dir = root / "run", root / "ranks"
    failure = {k: case[k] for k in ("rank", "mode", "after_step")}
    command = _train_command(
        args,
        dict(s, steps=max(s["steps"], 4 * case["after_step"])),
        case["ranks"],
        case["groups"],
        run_dir,
        rank_dir,
        failure,
    )
    done = _run(command, timeout=s["failure_timeout"])
    failed = rank_dir / "failure.json"
    at = json.loads(failed.read_text()) if failed.exists() else None
    after = done["ended"] - at["time"] if at else None
    tail = done["output_tail"]
    return {
        **case,
        "ranks_per_group": case["ranks"] // case["groups"],
        "failure_injected": at is not None,
        "step_seen_at_failure": at and at["step_seen"],
        "returncode": done["returncode"],
        "all_ranks_exited_with_error": done["returncode"] != 0 and not done["timed_out"],
        "timed_out": done["timed_out"],
        "timeout_seconds": s["failure_timeout"],
        "seconds_total": done["seconds"],
        "seconds_from_failure_to_exit": after,
        "bounded": at is not None and not done["timed_out"],
        "aborted_by_mpi_abort": "aborting all" in tail,
        "command": done["command"],
        "output_tail": tail[-1500:],
    }


# ---------------------------------------------------------------------------- validate


def _load(args, part):
    path = Path(args.out_dir) / f"{part}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _network(fit_entry, name):
    from nnpde.distributed import NetworkModel

    algorithm = fit_entry["algorithm"]
    algorithm = tuple(algorithm) if isinstance(algorithm, list) else algorithm
    return NetworkModel(alpha=fit_entry["alpha"], beta=fit_entry["beta"], algorithm=algorithm, name=name)


def _networks(collectives):
    fits = collectives["fits"]
    group = fits["Allreduce"]["by_algorithm"][fits["Allreduce"]["best"]]
    cross = fits["Iallreduce"]["by_algorithm"][fits["Iallreduce"]["best"]]
    return _network(group, "this machine, Allreduce fit"), _network(cross, "this machine, Iallreduce fit")


class _Model:
    """The scale model as this campaign fits it: the collectives' fits (``Allreduce``
    for the group allreduce, ``Iallreduce`` for the average), the measured compute
    per rank and batch, and the averager's host costs. ``simulate`` runs
    ``nnpde.distributed.simulate`` for one measured layout, with compute scaled by the
    CPU-sharing factor and without it; ``reasons`` says which known limit applies."""

    def __init__(self, collectives, compute, averager, sharing=None):
        self.network, self.cross = _networks(collectives)
        self.compute = compute
        # measured compute of one rank among R sharing the cores, by (R, batch)
        self.shared = {(r["ranks"], r["batch"]): r for r in (sharing or {}).get("runs", [])}
        self.batch_scaling = _batch_scaling(compute["runs"])
        self.cores = os.cpu_count() or 1
        self.per_process = compute.get("cpu_cores_per_process") or 1.0
        self.host = {"snapshot_seconds": 0.0, "mix_seconds": 0.0}
        self.guard = 0.0
        if averager is not None and "host" in averager["exchange"]:
            host = {k: v["median"] for k, v in averager["exchange"]["host"].items()}
            self.host = {"snapshot_seconds": host["keep"] + host["snapshot"], "mix_seconds": host["mix"]}
            self.guard = averager["exchange"]["guard"]["median"]
        self.common = dict(
            parameter_bytes=compute["parameter_bytes"],
            gradient_bytes=compute["gradient_bytes"],
            cross_network=self.cross,
        )

    def sharing(self, ranks) -> float:
        """``ranks`` processes, each using ``per_process`` cores alone, on ``cores``."""
        return max(1.0, ranks * self.per_process / self.cores)

    def compute_at(self, batch, *, averaging):
        """One rank's ComputeModel at ``batch`` (measured samples, resampled; otherwise
        the nearest measured batch's, moved by the fitted ``t0 + t1 b``), plus the
        averager's per-step guard."""
        from nnpde.distributed import ComputeModel

        runs = {r["batch"]: r for r in self.compute["runs"]}
        near = min(runs, key=lambda b: (abs(math.log(b / batch)), b))
        samples = np.asarray(runs[near]["samples"]) + (self.guard if averaging else 0.0)
        model = ComputeModel.empirical(samples).with_batch_scaling(self.batch_scaling, batch=near)
        return model.at_batch(batch), near

    def measured_sharing(self, ranks, batch) -> bool:
        """Whether ``ranks`` oversubscribe the cores and the sharing part measured them at ``batch``."""
        return (ranks, batch) in self.shared and ranks * self.per_process > self.cores

    def shared_compute(self, ranks, batch, *, averaging):
        """One rank's ComputeModel when ``ranks`` ranks share the cores: the sharing
        part's measurement at (ranks, batch) where there is one, else the compute alone
        scaled by the sharing factor; and which of the two."""
        from nnpde.distributed import ComputeModel

        if self.measured_sharing(ranks, batch):
            samples = np.asarray(self.shared[ranks, batch]["samples"]) + (self.guard if averaging else 0.0)
            return ComputeModel.empirical(samples), "measured"
        model, _ = self.compute_at(batch, averaging=averaging)
        return model.scaled(self.sharing(ranks)), "factor"

    def options(self, averaging):
        return dict(self.common, **(dict(averaging, **self.host) if averaging else {}))

    def simulate(self, groups, ranks_per_group, steps, batch, averaging=None, *, sharing_ranks=None):
        from nnpde.distributed import simulate

        ranks = sharing_ranks or groups * ranks_per_group
        model, near = self.compute_at(batch, averaging=bool(averaging))
        factor = self.sharing(ranks)
        contended, how = self.shared_compute(ranks, batch, averaging=bool(averaging))
        options = self.options(averaging)
        shared = simulate(groups, ranks_per_group, steps, contended, self.network, **options)
        alone = simulate(groups, ranks_per_group, steps, model, self.network, **options)
        return shared, alone, self.reasons(ranks, factor, batch, near, steps, how)

    def time_to_target(self, steps_model, groups, ranks_per_group, batch, averaging=None):
        from nnpde.distributed import time_to_target

        model, _ = self.compute_at(batch, averaging=bool(averaging))
        contended, _ = self.shared_compute(groups * ranks_per_group, batch, averaging=bool(averaging))
        options = self.options(averaging)
        shared = time_to_target(steps_model, groups, ranks_per_group, contended, self.network, **options)
        alone = time_to_target(steps_model, groups, ranks_per_group, model, self.network, **options)
        return shared, alone

    def reasons(self, ranks, factor, batch, near, steps, how="factor") -> list[str]:
        out = []
        if ranks * self.per_process > self.cores and how == "measured":
            out.append(
                f"{ranks} ranks on {self.cores} cores: compute as measured with {ranks} processes sharing the cores "
                "without communicating (--part sharing); a synchronous step also waits for every rank of the group "
                "to be scheduled, which that measurement does not hold"
            )
        elif ranks * self.per_process > self.cores:
            out.append(
                f"{ranks} ranks on {self.cores} cores: compute scaled by the CPU-sharing factor {factor:.2f}, which "
                "leaves out the scheduler's time slices, the progress threads and MPI's polling between "
                "oversubscribed ranks"
            )
        if near != batch:
            out.append(f"compute at batch {batch} was not measured: moved from batch {near} by the fitted t0 + t1 b")
        if steps < 50:
            out.append(f"only {steps} steps measured (a tiny run): the first steps after compilation weigh heavily")
        return out


def _staleness_reasons(measured, predicted, oversubscribed=False) -> list[str]:
    if abs(measured - predicted) <= 1:
        return [
            f"staleness is counted in whole steps: measured {measured:.2f} and predicted {predicted:.2f} are less "
            "than one step apart"
        ]
    if oversubscribed and measured > predicted:
        return [
            "a round of the cross-group average completes once every leader's progress thread has run; the "
            "Iallreduce fit comes from a tight loop in which every rank sits in MPI, while here the leaders' "
            "threads wait for time slices among busy oversubscribed ranks, so rounds take longer than predicted"
        ]
    return []


def _step_reasons(measured, predicted, how, ranks_per_group) -> list[str]:
    """Why a step time predicted from the measured shared compute misses."""
    if how != "measured" or ranks_per_group < 2 or predicted <= measured:
        return []
    return [
        f"the model draws each of the group's {ranks_per_group} ranks' steps independently from the shared compute "
        "(heavy-tailed: time slices) and waits for the slowest; the ranks of one synchronous group are descheduled "
        "together rather than independently, so the slowest of independent draws overstates the step"
    ]


def _steps_model(fit):
    from nnpde.distributed import StepsToTarget

    return StepsToTarget(fit["single_group_steps"], fit["penalty"], tuple(fit["residuals"]), fit["relative_rms"])


def part_validate(args, settings):
    collectives, compute = _load(args, "collectives"), _load(args, "compute")
    if collectives is None or compute is None:
        raise SystemExit("validate needs the collectives and compute parts. Fix: run --part collectives and compute.")
    averager, convergence, functional = (_load(args, p) for p in ("averager", "convergence", "functional"))
    model = _Model(collectives, compute, averager, _load(args, "sharing"))
    flag = settings["validate"]["flag"]
    entries = []

    def entry(ranks, groups, what, measured, predicted, *, unshared=None, reasons=(), **extra):
        if measured is None or predicted is None:
            return
        rel = (predicted - measured) / measured if measured else math.inf
        e = dict(ranks=ranks, groups=groups, what=what, measured=measured, predicted=predicted, relative_error=rel)
        e.update(extra)
        if unshared is not None:
            e["predicted_without_sharing"] = unshared
        e["flagged"] = bool(abs(rel) > flag)
        if e["flagged"]:
            e["reason"] = "; ".join(reasons) or "not explained by the known limits of the model: an effect it misses"
        entries.append(e)

    def step_and_staleness(
        ranks, groups, measured_step, measured_staleness, sim, *, rank_batch=None, staleness_reasons=(), **tag
    ):
        shared, alone, reasons = sim
        steps = shared.steps
        predicted_step = float(shared.end_of_steps[0]) / steps
        how = "measured" if model.measured_sharing(ranks, rank_batch) else "factor"
        entry(
            ranks,
            groups,
            "step_seconds",
            measured_step,
            predicted_step,
            unshared=float(alone.end_of_steps[0]) / steps,
            reasons=_step_reasons(measured_step or 0.0, predicted_step, how, ranks // groups) + reasons,
            **tag,
        )
        if groups > 1 and measured_staleness is not None:
            predicted = shared.summary()["staleness_mean"]
            oversubscribed = ranks * model.per_process > model.cores
            why = [*_staleness_reasons(measured_staleness, predicted, oversubscribed), *staleness_reasons, *reasons]
            entry(ranks, groups, "staleness", measured_staleness, predicted, reasons=why, **tag)

    # 1. compute alone: one rank, each batch, and the straggler run (the fits' own data)
    for run in compute["runs"]:
        predicted = model.compute_at(run["batch"], averaging=False)[0].mean()
        entry(1, 1, "step_seconds", run["mean"], predicted, batch=run["batch"], source="compute")
    fit = compute["straggler_run"]["fit"]
    entry(1, 1, "step_seconds_with_stragglers", fit["measured_mean"], fit["predicted_mean"], source="compute")
    # the batch law: each batch's median against t0 + t1 b (2 parameters for all of them)
    law = model.batch_scaling
    runs = sorted(compute["runs"], key=lambda r: r["batch"])
    why = [f"t0 + t1 b is one 2-parameter fit to {len(runs)} batch medians (relative RMS {law.relative_rms:.2f})"]
    falls = [(a, b) for a, b in itertools.pairwise(runs) if b["median"] < a["median"]]
    if falls:
        a, b = falls[0]
        why.append(
            f"the measured median falls from batch {a['batch']} to {b['batch']} ({a['median'] * 1e3:.2f} to "
            f"{b['median'] * 1e3:.2f} ms): noise of the loaded machine that no law increasing in the batch follows"
        )
    for run in runs:
        b, median = run["batch"], run["median"]
        entry(1, 1, "step_seconds_median", median, law.seconds(b), batch=b, source="compute_batch_fit", reasons=why)

    # 2. the averager: 2 groups of 1 rank, no averager / bounded / wait-free; the exchange
    if averager is not None:
        over = averager["overhead"]
        timed = int(np.mean([r["timed_steps"]["none"] for r in over["ranks"]]))
        batch = over["settings"]["batch"]
        for name, variant in over["variants"].items():
            measured = float(np.mean([r["mean_step_seconds"][name] for r in over["ranks"]]))
            staleness = _staleness_mean([a for r in over["ranks"] for a in r["averaging"].get(name, [])])
            if variant is None:  # two independent processes, each one group of one rank, sharing the CPU
                sim = model.simulate(1, 1, timed, batch, sharing_ranks=2)
            else:
                sim = model.simulate(2, 1, timed, batch, variant)
            step_and_staleness(2, 2, measured, staleness, sim, variant=name, source="averager")
        ex = averager["exchange"]
        network = model.cross.allreduce_seconds(ex["parameter_bytes"], 2)
        host = model.host["snapshot_seconds"] + model.host["mix_seconds"]
        entry(
            2,
            2,
            "averager_exchange_seconds",
            averager["exchange_minus_guard_seconds"],
            network + host,
            source="averager",
            reasons=[
                "the model charges the snapshot, the network and the mix; the measured "
                "exchange adds the progress thread's start, its 0.5 ms test interval and its join"
            ],
        )
        entry(
            2,
            2,
            "iallreduce_seconds",
            ex["raw_iallreduce"]["median"],
            network,
            source="averager",
            nbytes=ex["parameter_bytes"],
            reasons=["one small message: the fit's latency term is set by every size and rank count together"],
        )

    # 3. convergence runs: step time, staleness, steps and time to target
    if convergence is not None:
        fit = convergence["steps_to_target_fit"]
        steps_model = _steps_model(fit) if fit else None
        eval_every = convergence["settings"]["eval_every"]
        # one entry per layout: the model predicts the expected value, the seeds' mean
        # measures it (every seed's value is kept beside it)
        layouts = {}
        for row in convergence["rows"]:
            key = (row["groups"], row["ranks_per_group"], row["every"], row["batch_per_group"], row["steps"])
            layouts.setdefault(key, []).append(row)

        def mean_of(rows, name):
            values = [r[name] for r in rows if r[name] is not None]
            return (float(np.mean(values)) if values else None), [r[name] for r in rows]

        for (G, R, every, batch_per_group, steps), rows in layouts.items():
            averaging = dict(every=every, max_staleness=rows[0]["max_staleness"], wait_free=True) if G > 1 else None
            batch = batch_per_group // R
            seeds = [r["seed"] for r in rows]
            sim = model.simulate(G, R, steps, batch, averaging)
            step, per_seed = mean_of(rows, "group0_steady_step_seconds")
            staleness, per_seed_staleness = mean_of(rows, "mean_staleness")
            tag = dict(source="convergence", every=every, seeds=seeds)
            step_and_staleness(
                G * R,
                G,
                step,
                staleness,
                sim,
                rank_batch=batch,
                per_seed=dict(step_seconds=per_seed, staleness=per_seed_staleness),
                **tag,
            )
            reached = [r for r in rows if r["steps_to_target"] is not None]
            if steps_model is None or not reached:
                continue
            shared, alone = model.time_to_target(steps_model, G, R, batch, averaging)
            measured_steps, steps_per_seed = mean_of(rows, "steps_to_target")
            spread = [r["steps_to_target"] for r in reached]
            why = [
                f"steps to target are measured every {eval_every} steps; the seeds of this layout reached it in "
                f"{min(spread)} to {max(spread)} steps, and the steps model is one fit over every layout and seed "
                f"(relative RMS {fit['relative_rms']:.2f})"
            ]
            if len(reached) < len(rows):
                why.append(f"only {len(reached)} of {len(rows)} seeds reached the target: their mean is biased low")
            entry(
                G * R,
                G,
                "steps_to_target",
                measured_steps,
                shared["steps"],
                reasons=why,
                per_seed=steps_per_seed,
                **tag,
            )
            measured_seconds, seconds_per_seed = mean_of(rows, "seconds_to_target")
            entry(
                G * R,
                G,
                "seconds_to_target",
                measured_seconds,
                shared["steps"] * shared["seconds_per_step"],
                unshared=alone["steps"] * alone["seconds_per_step"],
                reasons=why + sim[2],
                per_seed=seconds_per_seed,
                **tag,
            )

    # 4. functional runs up to 16 ranks: steady step time and staleness
    if functional is not None:
        for run in functional["runs"]:
            if run["ranks"] > 16 or not run["finished"] or not run["steady_step_seconds"]:
                continue
            if run["groups"] > 1 and not run["averaging"]:
                continue
            G, R = run["groups"], run["ranks_per_group"]
            averaging = run["averaging"] if G > 1 else None
            shared, alone, reasons = model.simulate(G, R, run["steps"], run["batch_per_group"] // R, averaging)
            reasons = [
                *reasons,
                "nnpde train logs every step to metrics.jsonl (host work the compute part does not time)",
            ]
            measured = run["steady_step_seconds"].get("group0")
            step_and_staleness(
                run["ranks"],
                G,
                measured,
                run["staleness_mean"],
                (shared, alone, reasons),
                rank_batch=run["batch_per_group"] // R,
                staleness_reasons=[
                    f"a {run['steps']}-step run: the groups start seconds apart (each compiles on the shared cores) "
                    "and the first round completes only once the last group has posted its part, which the "
                    "simulation (all groups starting together) leaves out"
                ],
                source="functional",
            )
    flagged = [e for e in entries if e["flagged"]]
    return {
        "flag_beyond": flag,
        "sharing": "predicted with the compute of one rank among R sharing the cores as measured by --part sharing "
        f"(R = {sorted({r for r, _ in model.shared}) or 'none'}); other oversubscribed layouts: compute x max(1, "
        f"ranks x cores-per-process / cores), cores-per-process {model.per_process:.2f} measured by --part compute; "
        "predicted_without_sharing: the compute of one process alone",
        "networks": {"group_allreduce": _describe(model.network), "cross_average": _describe(model.cross)},
        "host_seconds": dict(model.host, guard_per_step=model.guard),
        "entries": entries,
        "flagged": len(flagged),
        "within": len(entries) - len(flagged),
    }


def _describe(network) -> dict:
    return {"name": network.name, "alpha": network.alpha, "beta": network.beta, "algorithm": network.algorithm}


# ---------------------------------------------------------------------------- report


def part_report(args, settings):
    s = settings["report"]
    parts = {p: _load(args, p) for p in PARTS[:-1]}
    missing = [p for p, v in parts.items() if v is None]
    report = {
        "issue": "22: scale model of hybrid synchronous/asynchronous training (Kurth et al., SC'17)",
        "machine": _machine(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "part_commands": {p: v.get("command") for p, v in parts.items() if v},
        "settings": {p: v.get("settings") for p, v in parts.items() if v},
        "missing_parts": missing,
        "validation": (parts["validate"] or {}).get("entries", []),
        "validation_summary": {k: v for k, v in (parts["validate"] or {}).items() if k != "entries"},
        "functional_runs": (parts["functional"] or {}).get("runs", []),
        "failure_runs": (parts["functional"] or {}).get("failures", []),
        "collectives": _brief_collectives(parts["collectives"]),
        "compute": _brief_compute(parts["compute"]),
        "averager": _brief_averager(parts["averager"]),
        "sharing": parts["sharing"]
        and {
            "note": parts["sharing"]["note"],
            "runs": [{k: v for k, v in r.items() if k != "samples"} for r in parts["sharing"]["runs"]],
        },
        "convergence": parts["convergence"],
    }
    if (
        parts["collectives"]
        and parts["compute"]
        and parts["convergence"]
        and parts["convergence"]["steps_to_target_fit"]
    ):
        report["predictions"] = _predictions(parts, s)
        figure = Path(
            args.figure
            or (
                Path(args.out_dir) / "scale_model_prediction.png"
                if args.tiny
                else ROOT / "docs" / "benchmarks" / "figures" / "scale_model_prediction.png"
            )
        )
        _plot(report["predictions"], figure)
        report["figure"] = str(figure)
    else:
        report["predictions"] = None
        report["predictions_refused"] = "needs collectives, compute and a steps-to-target fit (convergence)"
    results = Path(
        args.results
        or (
            Path(args.out_dir) / "scale_model.json"
            if args.tiny
            else ROOT / "benchmarks" / "results" / "scale_model.json"
        )
    )
    _write_json(results, report)
    print(f"wrote {results}")
    return {"results": str(results), "figure": report.get("figure"), "missing_parts": missing}


def _brief_collectives(c):
    if c is None:
        return None
    rows = [
        {k: r[k] for k in ("op", "ranks", "nbytes", "median", "p10", "p90", "min", "max", "count", "correct")}
        for r in c["rows"]
    ]
    return {k: c[k] for k in ("note", "library", "commands", "fits", "oversubscribed_ranks", "settings")} | {
        "rows": rows
    }


def _brief_compute(c):
    if c is None:
        return None
    strip = ("samples", "injected")
    return {
        "runs": [{k: v for k, v in r.items() if k not in strip} for r in c["runs"]],
        "straggler_run": {k: v for k, v in c["straggler_run"].items() if k not in strip},
        # refitted: a cache written before the fit was recorded holds ratios only
        "batch_scaling": _batch_scaling_record(c["runs"], c["settings"]["main_batch"]),
        **{
            k: c[k]
            for k in (
                "parameters",
                "gradient_bytes",
                "parameter_bytes",
                "cpu_cores_per_process",
                "settings",
                "command",
            )
        },
    }


def _brief_averager(a):
    if a is None:
        return None
    ex = a["exchange"]
    return {
        "layout": a["layout"],
        "step_time_ratio_to_none": a["step_time_ratio_to_none"],
        "overhead_ranks": a["overhead"]["ranks"],
        "exchange": {k: ex[k] for k in ("parameters", "parameter_bytes", "guard", "exchange", "raw_iallreduce")},
        "exchange_minus_guard_seconds": a["exchange_minus_guard_seconds"],
        "commands": [a["overhead"]["launch"]["command"], ex["launch"]["command"]],
    }


def _predictions(parts, s) -> dict:
    from nnpde.distributed import INTERCONNECTS, ComputeModel, StepsToTarget, predict_scaling

    compute, fit = parts["compute"], parts["convergence"]["steps_to_target_fit"]
    steps_model = StepsToTarget(fit["single_group_steps"], fit["penalty"], tuple(fit["residuals"]), fit["relative_rms"])
    main_batch = parts["compute"]["settings"]["main_batch"]
    main = next(r for r in compute["runs"] if r["batch"] == main_batch)
    scaling = _batch_scaling(compute["runs"])
    model = ComputeModel.lognormal(main["lognormal"]["median"], main["lognormal"]["sigma"])
    model = model.with_batch_scaling(scaling, batch=main_batch)
    straggle = compute["straggler_run"]["fit"]
    stragglers = (straggle["probability"], straggle["slowdown"]) if straggle["probability"] > 0 else None
    group, cross = _networks(parts["collectives"])
    networks = {"this_machine": (group, cross)}
    for key in s["interconnects"]:
        networks[key] = (INTERCONNECTS[key].network(), None)
    host = _Model(parts["collectives"], compute, parts["averager"]).host
    total_batch = parts["convergence"]["settings"]["total_batch"]
    out = {
        "assumptions": [
            "strong scaling at a fixed global batch of "
            f"{s['global_batch']}; the steps-to-target model was fitted at a global batch of {total_batch} and is "
            "used unchanged (at a larger batch fewer steps may do)",
            f"compute: this machine's CPU step (lognormal fit at batch {main_batch}) moved to the local batch "
            f"{s['global_batch']} / N by t(b) = t0 + t1 b fitted to the measured medians (t0 = "
            f"{scaling.fixed_seconds * 1e3:.2f} ms, t1 = {scaling.per_sample_seconds * 1e3:.3f} ms per sample, "
            f"relative RMS {scaling.relative_rms:.2f}): below t0 / t1 = {scaling.crossover_batch:.1f} samples per "
            "node the fixed cost dominates: a synchronous step floors at t0 as nodes are added; batches outside the "
            f"measured {min(r['batch'] for r in compute['runs'])}-{max(r['batch'] for r in compute['runs'])} are "
            "extrapolated along the line",
            f"averaging: every {s['every']}, max staleness {s['max_staleness']}, wait-free {s['wait_free']}; the "
            f"averager's host costs measured here (snapshot {host['snapshot_seconds']:.2e} s, mix "
            f"{host['mix_seconds']:.2e} s) are charged; its per-step guard is not",
            "interconnects: nominal figures (INTERCONNECTS: no contention, no topology); this_machine: the fits of "
            "one node's shared memory under oversubscription, not a network",
        ],
        "global_batch": s["global_batch"],
        "batch_scaling": scaling.to_dict(),
        "stragglers": None if stragglers is None else {"probability": stragglers[0], "slowdown": stragglers[1]},
        "networks": {},
    }
    for name, (network, cross_network) in networks.items():
        began = time.perf_counter()
        options = {"cross_network": cross_network} if cross_network is not None else {}
        prediction = predict_scaling(
            s["node_counts"],
            steps_model=steps_model,
            compute=model,
            network=network,
            parameter_bytes=compute["parameter_bytes"],
            gradient_bytes=compute["gradient_bytes"],
            global_batch=s["global_batch"],
            group_counts=s["group_counts"],
            stragglers=stragglers,
            every=s["every"],
            max_staleness=s["max_staleness"],
            wait_free=s["wait_free"],
            **host,
            **options,
        )
        prediction["network"] = _describe(network)
        prediction["seconds_to_predict"] = time.perf_counter() - began
        out["networks"][name] = prediction
        print(f"  predicted {name} in {prediction['seconds_to_predict']:.1f} s", flush=True)
    return out


def _plot(predictions, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(predictions["networks"])
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7), squeeze=False, sharex=True)
    colours = {"synchronous": "tab:blue", "hybrid": "tab:orange", "asynchronous": "tab:green"}
    for column, name in enumerate(names):
        points = predictions["networks"][name]["points"]
        for straggling, style in ((False, "-"), (True, "--")):
            sel = [p for p in points if p["stragglers"] == straggling]
            if not sel:
                continue
            for layout, colour in colours.items():
                xs = [p["nodes"] for p in sel if p[layout]]
                seconds = [p[layout]["seconds"] for p in sel if p[layout]]
                efficiency = [p[layout]["parallel_efficiency"] for p in sel if p[layout]]
                label = f"{layout}{' + stragglers' if straggling else ''}"
                axes[0, column].loglog(xs, seconds, style, color=colour, marker="o", ms=3, label=label)
                axes[1, column].semilogx(xs, efficiency, style, color=colour, marker="o", ms=3, label=label)
        crossover = predictions["batch_scaling"]["crossover_batch"]
        if crossover:
            nodes = predictions["global_batch"] / crossover
            axes[1, column].axvline(nodes, color="grey", ls=":", lw=1, label=f"local batch = t0 / t1 ({crossover:.1f})")
        axes[0, column].set_title(predictions["networks"][name]["network"]["name"] or name, fontsize=9)
        axes[1, column].set_xlabel("nodes")
        axes[1, column].set_ylim(0, 1.1)
    axes[0, 0].set_ylabel("predicted seconds to target")
    axes[1, 0].set_ylabel("parallel efficiency")
    axes[0, 0].legend(fontsize=7)
    if predictions["batch_scaling"]["crossover_batch"]:  # the dotted line, drawn last in each column
        axes[1, 0].legend(fontsize=7, handles=axes[1, 0].get_lines()[-1:], loc="lower left")
    fig.suptitle(
        "Scale model: time to target at a fixed global batch (scripts/scale_model.py --part report)", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- main

RUNNERS = {
    "collectives": part_collectives,
    "averager": part_averager,
    "compute": part_compute,
    "sharing": part_sharing,
    "convergence": part_convergence,
    "functional": part_functional,
    "validate": part_validate,
    "report": part_report,
}


def main():
    argv = sys.argv[1:]
    rest = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=(*PARTS, "all"), help="the part to run (all: every part, in order)")
    parser.add_argument("--tiny", action="store_true", help="a cut-down part (2 ranks, few sizes and steps)")
    parser.add_argument("--force", action="store_true", help="redo a part (and its runs) even when cached")
    parser.add_argument("--set", action="append", default=[], metavar="PART.KEY=JSON", help="override a setting")
    parser.add_argument("--out-dir", default=None, help="cache (default runs/scale_model, or _tiny with --tiny)")
    parser.add_argument(
        "--results", default=None, help="report: the JSON (default benchmarks/results/scale_model.json)"
    )
    parser.add_argument("--figure", default=None, help="report: the PNG (default docs/benchmarks/figures/...)")
    parser.add_argument("--mpirun", default=None, help="default: the mpirun beside this Python")
    parser.add_argument(
        "--worker", choices=("collectives", "exchange", "compute", "sharing", "rank"), help=argparse.SUPPRESS
    )
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        settings = json.loads(args.settings)
        if args.worker == "rank":
            worker_rank(settings, rest)
            return
        from nnpde.distributed import abort_on_error

        with abort_on_error():
            {
                "collectives": worker_collectives,
                "exchange": worker_exchange,
                "compute": worker_compute,
                "sharing": worker_sharing,
            }[args.worker](settings, args.result)
        return
    if args.part is None:
        parser.error("--part is required (or --worker, for the launched runs)")
    args.out_dir = args.out_dir or str(ROOT / "runs" / ("scale_model_tiny" if args.tiny else "scale_model"))
    settings = _settings(args)
    for part in PARTS if args.part == "all" else (args.part,):
        print(f"[{part}]{' (tiny)' if args.tiny else ''}", flush=True)

        def make(part=part):
            load = os.getloadavg()
            result = RUNNERS[part](args, settings)
            result["load_average_at_start"] = load
            result.update(
                part=part,
                tiny=args.tiny,
                settings=dict(settings.get(part, {}), model=settings["model"]),
                command=" ".join([Path(sys.executable).name, *sys.argv]),
                machine=_machine(),
                date=time.strftime("%Y-%m-%d %H:%M:%S"),
            )
            return result

        if part == "report":  # always rebuilt from the cached parts
            make()
        else:
            result = _cached(Path(args.out_dir) / f"{part}.json", args.force, make)
            print(f"  {part}: done ({result.get('seconds', 0):.1f} s)", flush=True)


if __name__ == "__main__":
    main()
