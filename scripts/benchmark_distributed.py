"""Benchmark of distributed training (issue: distributed): the communication overhead of
asynchronous cross-group averaging, and convergence to a target error for fully
synchronous, hybrid and fully asynchronous layouts at equal total batch, with and
without a straggler. A script, not a timed test.

Launch (driver mode: spawns the ``mpirun`` runs below one after the other, gathers
their results, prints a table and writes ``runs/benchmark_distributed.json``):

    .venv/bin/python scripts/benchmark_distributed.py

The runs it spawns (each can be launched by hand; ``--result`` names its JSON):

    .venv/bin/mpirun -n 2 .venv/bin/python scripts/benchmark_distributed.py --worker overhead
    .venv/bin/mpirun -n 4 .venv/bin/python scripts/benchmark_distributed.py --worker convergence --groups 2 --batch 4
    .venv/bin/mpirun -n 4 .venv/bin/python scripts/benchmark_distributed.py --worker convergence --groups 2 --batch 4 \\
        --straggler 0.05

Model and data: the hybrid Burgers correction of ``scripts/train_distributed.py``
(``problems.hybrid_burgers``, a small ``--hidden 8`` network, unroll 8, 32 training and
8 held-out trajectories, Adam at a constant rate with gradient clipping). ``--seed``
sets the model, the batches and, unless ``--data-seed`` is given, the trajectories
(``--data-seed`` keeps one data set, and so one target, across seeds).

1. Overhead (``mpirun -n 2``: 2 groups of 1 rank). In the SAME processes the worker
   trains several times, alternating (ABCCBA) between ``fit(topology=topo)`` with no
   averager, ``AsyncAverager`` with bounded staleness (every 4, max staleness 4, the
   defaults of ``train_distributed.py``) and wait-free (every 4, max staleness 8). The
   step time is the wall time between consecutive steps, taken by a pass-through
   ``evaluate`` hook run every step in every variant (it blocks on the parameters, so
   the device work is counted); the first step (compilation) and the next
   ``--warmup`` steps are excluded. Target: asynchronous averaging costs <= 5 %.
2. Convergence (``mpirun -n 4``: 1 group of 4 ranks = fully synchronous, 2 groups of
   2 = hybrid, 4 groups of 1 = fully asynchronous), at equal TOTAL batch (per-group
   batch = total / groups), wait-free averaging every 4 steps. Every ``--eval-every``
   steps each group leader computes the relative L2 error at the horizon of its group's
   model rolled out over the held-out trajectories; the target is ``--target-factor``
   times the plain coarse solver's error. Reported: the first step (and the training
   wall time since the end of step 1, evaluation excluded) at which group 0's model
   meets the target. The same again with a straggler: the last rank sleeps
   ``--straggler`` seconds per step (in the synchronous layout it slows every rank; in
   the others, its group). Targets: the hybrid within 1.25x the steps of the fully
   synchronous run, and faster in wall time with the straggler. Beside the measured
   seconds, "steady" seconds (steps x group 0's median seconds per step between
   evaluations) leave out one-off stalls such as a recompilation.

``--reanalyse runs/benchmark_distributed.json`` reprints the tables of a saved report.

4 ranks on a 2-core machine are oversubscribed: the convergence wall times measure
contention as much as communication; the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import nnpde  # noqa: E402
from nnpde import metrics, rollout  # noqa: E402
from problems import hybrid_burgers as problem  # noqa: E402

STEPS_TARGET = 1.25  # hybrid steps to target / fully synchronous steps, at most
OVERHEAD_TARGET = 0.05  # asynchronous averaging step time / no averaging, at most 1 + this


# ---------------------------------------------------------------------------- workers


def _data(topo, args):
    """Training and held-out trajectories; the root generates (or finds) the cache first."""
    seed = args.seed if args.data_seed is None else args.data_seed
    if topo.is_root:
        problem.trajectories(seed, args.train, cache_dir=args.data)
        problem.trajectories(seed + 1, args.test, cache_dir=args.data)
    topo.barrier()
    train, _ = problem.trajectories(seed, args.train, cache_dir=args.data)
    test, _ = problem.trajectories(seed + 1, args.test, cache_dir=args.data)
    return train, jnp.asarray(test)


def _horizon_error(test, static):
    """A jitted ``params -> relative L2 error at the horizon`` averaged over ``test``
    (compiled once; ``nnpde.evaluate_rollouts`` would recompile at every call)."""

    @jax.jit
    def error(params):
        model = nnpde.combine(params, static)
        predicted = jax.vmap(lambda u: rollout(model, u, test.shape[1] - 1))(test[:, 0])
        return jnp.mean(jax.vmap(metrics.rollout_error)(predicted, test[:, 1:]), axis=0)[-1]

    return error


class _Hook:
    """``fit``'s ``evaluate``, called after steps 1 .. steps - 1 (and once more at the end,
    ignored): blocks on the parameters and stamps the
    time; optionally sleeps (straggler) and, every ``eval_every`` steps on the group
    leader, keeps a host copy of the parameters, whose held-out horizon error
    ``evaluate_kept`` computes after training. The evaluations thus take no CPU while
    any rank trains (on oversubscribed cores, 16 leaders evaluating inline slowed every
    rank's steps and stalled their groups), and the copy's time is kept out of the clock."""

    def __init__(self, steps, *, sleep=0.0, error=None, eval_every=0, barrier=None):
        self.steps, self.sleep, self.error, self.eval_every = steps, sleep, error, eval_every
        self.barrier = barrier
        self.stamps, self.evals = [], []
        self.step = 0
        self.eval_seconds = 0.0
        self.started = None

    def __call__(self, model):
        self.step += 1
        if self.step >= self.steps:
            return {}  # fit's final call comes after the averager's finish: not a step
        if self.sleep:
            time.sleep(self.sleep)
        jax.block_until_ready([x for x in jax.tree.leaves(model) if isinstance(x, jax.Array)])
        now = time.perf_counter()
        self.stamps.append(now)
        if self.started is None:
            # End of step 1 on every rank: compilation (which ends at different times on
            # different ranks) is excluded from the clock.
            if self.barrier is not None:
                self.barrier()
                now = time.perf_counter()
                self.stamps[-1] = now
            self.started = now
        if self.error is None or not self.eval_every or self.step % self.eval_every:
            return {}
        kept = jax.device_get(nnpde.partition(model)[0])
        took = time.perf_counter() - now
        self.evals.append({"step": self.step, "seconds": now - self.started - self.eval_seconds, "params": kept})
        self.eval_seconds += took
        return {}

    def evaluate_kept(self):
        """The horizon error of every kept copy (after training), in place of the copy."""
        for e in self.evals:
            e["error"] = float(self.error(e.pop("params")))


def _fit(topo, train, args, *, batch, steps, averager, hook):
    return nnpde.fit(
        problem.model("correction", seed=args.seed, hidden=args.hidden),
        lambda m, b, key: nnpde.unrolled_loss(m, b),
        train,
        steps=steps,
        batch_size=batch,
        window=args.unroll,
        seed=args.seed,
        optimizer=nnpde.make_optimizer(args.learning_rate, clip_norm=1.0),
        log_every=steps,
        evaluate=hook,
        eval_every=1,
        progress=False,
        topology=topo,
        averager=averager,
    )


def _gather(topo, mine):
    return topo.world_comm.gather(mine, root=0) if topo.world_comm is not None else [mine]


def worker_overhead(args):
    from nnpde.distributed import AsyncAverager, GroupTopology

    topo = GroupTopology.create(groups=args.groups, devices=jax.local_devices()[:1])
    train, _ = _data(topo, args)
    variants = {
        "none": None,
        "async_bounded": dict(every=4, max_staleness=4, wait_free=False),
        "async_wait_free": dict(every=4, max_staleness=8, wait_free=True),
    }
    order = ["none", "async_bounded", "async_wait_free", "async_wait_free", "async_bounded", "none"]
    times = {k: [] for k in variants}
    stats = {k: [] for k in variants}
    for name in order:
        topo.barrier()
        averager = None if variants[name] is None else AsyncAverager(topo, progress="thread", **variants[name])
        hook = _Hook(args.steps, barrier=topo.barrier)
        _fit(topo, train, args, batch=args.batch, steps=args.steps, averager=averager, hook=hook)
        times[name].extend(np.diff(hook.stamps)[args.warmup :].tolist())
        if averager is not None:
            s = averager.stats()
            stats[name].append({k: v for k, v in s.items() if k not in ("events", "every", "progress")})
    mine = {
        "rank": topo.world_rank,
        "group": topo.group,
        "mean_step_seconds": {k: float(np.mean(v)) for k, v in times.items()},
        "median_step_seconds": {k: float(np.median(v)) for k, v in times.items()},
        "timed_steps": {k: len(v) for k, v in times.items()},
        "averaging": stats,
    }
    return topo, {"parallel": topo.describe(), "order": order, "variants": variants, "ranks": _gather(topo, mine)}


def worker_convergence(args):
    from nnpde.distributed import AsyncAverager, GroupTopology

    topo = GroupTopology.create(groups=args.groups, devices=jax.local_devices()[:1])
    train, test = _data(topo, args)
    model = problem.model("correction", seed=args.seed, hidden=args.hidden)
    params0, static = nnpde.partition(model)
    error = _horizon_error(test, static)
    initial = float(error(params0))  # also compiles the evaluator before training
    plain = float(nnpde.evaluate_rollouts(problem.coarse_stepper(), test)[-1])
    averager = None
    if topo.n_groups > 1:
        averager = AsyncAverager(
            topo, every=args.every, max_staleness=args.max_staleness, wait_free=True, progress="thread"
        )
    straggler = topo.world_rank == topo.world_size - 1
    hook = _Hook(
        args.steps,
        sleep=args.straggler if straggler else 0.0,
        error=error if topo.is_leader else None,
        eval_every=args.eval_every,
        barrier=topo.barrier,
    )
    topo.barrier()
    began = time.perf_counter()
    result = _fit(topo, train, args, batch=args.batch, steps=args.steps, averager=averager, hook=hook)
    seconds = time.perf_counter() - began
    hook.evaluate_kept()
    final = float(error(nnpde.partition(result.model)[0]))
    mine = {
        "rank": topo.world_rank,
        "group": topo.group,
        "leader": topo.is_leader,
        "straggler": straggler,
        "evals": hook.evals,
        "mean_step_seconds": float(np.mean(np.diff(hook.stamps)[args.warmup :])),
        # steps 2 .. warmup + 1 (after compilation): the first average's one-off costs are in them
        "first_steps_seconds": float(hook.stamps[args.warmup] - hook.stamps[0])
        if len(hook.stamps) > args.warmup
        else None,
        "fit_seconds": seconds,
        "averaging": None
        if averager is None
        else {k: v for k, v in averager.stats().items() if k not in ("events", "every", "progress")},
        "rounds": None if averager is None else averager.rounds(),
    }
    return topo, {
        "parallel": topo.describe(),
        "batch_per_group": args.batch,
        "total_batch": args.batch * topo.n_groups,
        "straggler_seconds": args.straggler,
        "plain_coarse_error": plain,
        "initial_error": initial,
        "final_averaged_error": final,
        "ranks": _gather(topo, mine),
    }


# ---------------------------------------------------------------------------- driver


def _launch(args, n, worker_args, label):
    """Run one worker under ``mpirun -n n``; its result JSON, or an error naming the run."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        command = [
            str(Path(args.mpirun)),
            "-n",
            str(n),
            sys.executable,
            str(Path(__file__).resolve()),
            *worker_args,
            *_shared(args),
            "--result",
            str(result),
        ]
        print(f"[{label}] {' '.join(command)}", flush=True)
        began = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0 or not result.exists():
            tail = (done.stdout + done.stderr)[-4000:]
            raise RuntimeError(f"{label} failed (exit {done.returncode}):\n{tail}")
        out = json.loads(result.read_text())
        out["launch_seconds"] = time.perf_counter() - began
        out["command"] = " ".join(command)
        return out


def _shared(args):
    return [
        "--hidden",
        str(args.hidden),
        "--unroll",
        str(args.unroll),
        "--learning-rate",
        str(args.learning_rate),
        "--train",
        str(args.train),
        "--test",
        str(args.test),
        "--seed",
        str(args.seed),
        *([] if args.data_seed is None else ["--data-seed", str(args.data_seed)]),
        "--warmup",
        str(args.warmup),
        "--data",
        args.data,
    ]


def _to_target(run, target):
    """Group 0 leader's first evaluation at or below ``target``: (step, seconds) or None."""
    leader = next(r for r in run["ranks"] if r["group"] == 0 and r["leader"])
    for e in leader["evals"]:
        if e["error"] <= target:
            return e["step"], e["seconds"]
    return None


def driver(args):
    if args.total_batch % 4:
        raise SystemExit(f"--total-batch must split over 4 groups, got {args.total_batch}.")
    report = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()],
        },
        "date": time.strftime("%Y-%m-%d"),
        "oversubscribed_convergence": 4 > (os.cpu_count() or 1),
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "result")},
    }
    began = time.perf_counter()

    # 1. overhead
    run = _launch(
        args,
        2,
        [
            "--worker",
            "overhead",
            "--groups",
            "2",
            "--batch",
            str(args.overhead_batch),
            "--steps",
            str(args.overhead_steps),
        ],
        "overhead, 2 groups x 1 rank",
    )
    overhead = {"run": run, "ratio": {}}
    for name in ("async_bounded", "async_wait_free"):
        per_group = [r["mean_step_seconds"][name] / r["mean_step_seconds"]["none"] for r in run["ranks"]]
        overhead["ratio"][name] = float(np.mean(per_group))
        overhead["ratio"][name + "_per_group"] = per_group
    report["overhead"] = overhead

    # 2. convergence
    runs = []
    for straggler in (0.0, args.straggler):
        for groups in (1, 2, 4):
            label = f"{groups} group(s) x {4 // groups} rank(s), straggler {straggler} s"
            run = _launch(
                args,
                4,
                [
                    "--worker",
                    "convergence",
                    "--groups",
                    str(groups),
                    "--batch",
                    str(args.total_batch // groups),
                    "--steps",
                    str(args.steps),
                    "--eval-every",
                    str(args.eval_every),
                    "--every",
                    str(args.every),
                    "--max-staleness",
                    str(args.max_staleness),
                    "--straggler",
                    str(straggler),
                ],
                f"{label} (4 ranks on {os.cpu_count()} cores: oversubscribed)",
            )
            run["groups"] = groups
            runs.append(run)
    report["convergence"] = {"runs": runs}
    report["wall_seconds"] = time.perf_counter() - began
    _summarise(report, args)


def _steady_step_seconds(run):
    """Group 0's training seconds per step between evaluations, the median over the
    evaluation intervals: robust to a one-off stall (a recompilation)."""
    leader = next(r for r in run["ranks"] if r["group"] == 0 and r["leader"])
    t = [0.0] + [e["seconds"] for e in leader["evals"]]
    steps = [1] + [e["step"] for e in leader["evals"]]
    return float(np.median(np.diff(t) / np.diff(steps)))


def _summarise(report, args):
    """Rows, ratios and checks from the raw results; prints the tables, writes the JSON."""
    overhead, runs = report["overhead"], report["convergence"]["runs"]
    print("overhead (mean step time / no averaging, 2 groups of 1 rank, same processes):")
    for r in overhead["run"]["ranks"]:
        ms = {k: round(1e3 * v, 2) for k, v in r["mean_step_seconds"].items()}
        print(f"  group {r['group']}: mean step ms {ms}")
    for name in ("async_bounded", "async_wait_free"):
        print(f"  {name}: {overhead['ratio'][name]:.3f}x  (target <= {1 + OVERHEAD_TARGET:.2f}x)")
    target = args.target_factor * runs[0]["plain_coarse_error"]
    rows = []
    for run in runs:
        reached = _to_target(run, target)
        leader0 = next(r for r in run["ranks"] if r["group"] == 0 and r["leader"])
        steady = _steady_step_seconds(run)
        rows.append(
            {
                "groups": run["groups"],
                "ranks_per_group": run["parallel"]["ranks_per_group"],
                "batch_per_group": run["batch_per_group"],
                "straggler_seconds": run["straggler_seconds"],
                "steps_to_target": None if reached is None else reached[0],
                "seconds_to_target": None if reached is None else reached[1],
                "group0_steady_step_seconds": steady,
                "steady_seconds_to_target": None if reached is None else reached[0] * steady,
                "group0_mean_step_seconds": leader0["mean_step_seconds"],
                "group0_final_eval_error": leader0["evals"][-1]["error"] if leader0["evals"] else None,
                "final_averaged_error": run["final_averaged_error"],
            }
        )
    sync = {row["straggler_seconds"]: row for row in rows if row["groups"] == 1}
    for row in rows:
        base = sync[row["straggler_seconds"]]
        if row["groups"] > 1 and row["steps_to_target"] and base["steps_to_target"]:
            row["steps_ratio_to_sync"] = row["steps_to_target"] / base["steps_to_target"]
            row["seconds_ratio_to_sync"] = row["seconds_to_target"] / base["seconds_to_target"]
            row["steady_seconds_ratio_to_sync"] = row["steady_seconds_to_target"] / base["steady_seconds_to_target"]
    hybrid = {row["straggler_seconds"]: row for row in rows if row["groups"] == 2}
    lagging = hybrid[max(hybrid)]
    checks = {
        "hybrid_steps_within_1.25x_sync": hybrid[0.0].get("steps_ratio_to_sync", np.inf) <= STEPS_TARGET,
        "hybrid_faster_than_sync_with_straggler": lagging.get("seconds_ratio_to_sync", np.inf) < 1,
        "hybrid_faster_than_sync_with_straggler_steady": lagging.get("steady_seconds_ratio_to_sync", np.inf) < 1,
        "async_overhead_within_5pct": overhead["ratio"]["async_bounded"] <= 1 + OVERHEAD_TARGET,
    }
    report["convergence"].update(target_error=target, rows=rows)
    report["checks"] = checks

    print(
        f"convergence to horizon error <= {target:.4g} ({args.target_factor} x plain coarse solver "
        f"{runs[0]['plain_coarse_error']:.4g}); total batch {args.total_batch}; 4 ranks on "
        f"{report['machine']['cpus']} cores (OVERSUBSCRIBED). seconds: training wall time of group 0 "
        "(evaluation out); steady: steps x median s/step (one-off stalls out):"
    )
    print("  layout            straggler  steps  steps/sync  seconds  s/sync  steady  steady/sync  ms/step")
    for row in rows:
        layout = f"{row['groups']} x {row['ranks_per_group']} (batch {row['batch_per_group']})"
        steps = row["steps_to_target"] if row["steps_to_target"] is not None else "-"

        def fmt(key, spec, row=row):
            return format(row[key], spec) if row.get(key) is not None else "-"

        print(
            f"  {layout:17s} {row['straggler_seconds']:9.3f}  {steps!s:>5}  {fmt('steps_ratio_to_sync', '.2f'):>10}"
            f"  {fmt('seconds_to_target', '.1f'):>7}  {fmt('seconds_ratio_to_sync', '.2f'):>6}"
            f"  {fmt('steady_seconds_to_target', '.2f'):>6}  {fmt('steady_seconds_ratio_to_sync', '.2f'):>11}"
            f"  {1e3 * row['group0_steady_step_seconds']:7.1f}"
        )
    print("checks:", json.dumps(checks))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out}" + (f" ({report['wall_seconds']:.0f} s)" if "wall_seconds" in report else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=("overhead", "convergence"), default=None, help="(spawned by the driver)")
    parser.add_argument("--result", default=None, help="worker: where the root writes its JSON")
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="worker: batch of ONE group")
    parser.add_argument("--steps", type=int, default=300, help="convergence: steps per run (every group)")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--every", type=int, default=4, help="convergence: steps between cross-group averages")
    parser.add_argument("--max-staleness", type=int, default=8)
    parser.add_argument("--straggler", type=float, default=0.05, help="seconds the last rank sleeps per step")
    parser.add_argument("--total-batch", type=int, default=8, help="driver: total batch over all groups")
    parser.add_argument("--target-factor", type=float, default=0.5, help="target = factor x plain coarse error")
    parser.add_argument("--overhead-steps", type=int, default=300)
    parser.add_argument("--overhead-batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=20, help="timed steps excluded after step 1")
    parser.add_argument("--unroll", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--train", type=int, default=32)
    parser.add_argument("--test", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-seed", type=int, default=None, help="seed of the trajectories (held out: + 1); default --seed"
    )
    parser.add_argument("--data", default="runs/data")
    parser.add_argument("--mpirun", default=str(Path(sys.executable).parent / "mpirun"))
    parser.add_argument("--out", default="runs/benchmark_distributed.json")
    parser.add_argument("--reanalyse", default=None, metavar="JSON", help="recompute the tables of a saved report")
    args = parser.parse_args()
    if args.reanalyse:
        _summarise(json.loads(Path(args.reanalyse).read_text()), args)
        return
    if args.worker is None:
        driver(args)
        return
    from nnpde.distributed import abort_on_error

    with abort_on_error():
        topo, out = (worker_overhead if args.worker == "overhead" else worker_convergence)(args)
        if topo.is_root:
            out["settings"] = vars(args)
            out["date"] = time.strftime("%Y-%m-%d")
            Path(args.result or f"runs/benchmark_distributed_{args.worker}.json").write_text(
                json.dumps(out, indent=2, default=str)
            )


if __name__ == "__main__":
    main()
