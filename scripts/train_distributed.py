"""Distributed training of a hybrid model: synchronous within groups, asynchronous
across groups (Kurth et al., "Deep Learning at 15PF", SC'17), on the hybrid Burgers task.

Launch (the pip MPI of the README's set-up; 4 ranks on this 2-core machine are
oversubscribed):

    .venv/bin/mpirun -n 4 .venv/bin/python scripts/train_distributed.py --groups 2

Every rank runs this script. Ranks are split into ``--groups`` groups; within a group
the batch is split over its ranks and gradients are averaged every step (mpi4jax);
every ``--every`` steps the group leaders start an asynchronous average of the groups'
parameters (mpi4py, driven by a progress thread) and mix it in when it lands
(``--max-staleness``, ``--wait-free``). Experiment knobs: ``--straggler G:SECONDS``
slows group G by a sleep per step; ``--inject-nan G:STEP`` poisons group G's
parameters once (it is rolled back and kept out of the average).

Writes ``<out>/summary.json`` (ranks, groups, devices, averaging period, observed
staleness, seconds communicating, per-group step times, held-out error of the averaged
model) and, per group, ``<out>/group<g>/{metrics.jsonl, checkpoints}``; the averaged
model's checkpoint in ``<out>/checkpoints``. A failing rank aborts the whole job.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import nnpde
from nnpde.distributed import AsyncAverager, GroupTopology, abort_on_error
from problems import hybrid_burgers as problem


class _Knobs:
    """Wraps the averager: per-step wall time, an optional sleep (straggler) and an
    optional one-off NaN injection, all before the averager's health guard."""

    def __init__(self, averager, topology, *, sleep=0.0, nan_at=None):
        self.averager, self.topology, self.sleep, self.nan_at = averager, topology, sleep, nan_at
        self.step_seconds, self._last = [], None

    def after_step(self, step, state):
        if self.sleep:
            time.sleep(self.sleep)
        if self.nan_at == step:
            state = eqx.tree_at(lambda s: s.params, state, jax.tree.map(lambda p: p * jnp.nan, state.params))
        now = time.perf_counter()
        if self._last is not None:
            self.step_seconds.append(now - self._last)
        self._last = now
        return self.averager.after_step(step, state)

    def finish(self, state):
        return self.averager.finish(state)


def _pair(text):
    group, value = text.split(":")
    return int(group), value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--every", type=int, default=4, help="steps between cross-group averages")
    parser.add_argument("--max-staleness", type=int, default=4)
    parser.add_argument("--wait-free", action="store_true")
    parser.add_argument("--progress", choices=("thread", "poll"), default="thread")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8, help="batch of ONE group (split over its ranks)")
    parser.add_argument("--unroll", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--train", type=int, default=32)
    parser.add_argument("--test", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--straggler", type=_pair, default=None, metavar="G:SECONDS")
    parser.add_argument("--inject-nan", type=_pair, default=None, metavar="G:STEP")
    parser.add_argument("--data", default="runs/data", help="cache directory of the reference data")
    parser.add_argument("--out", default="runs/train_distributed")
    args = parser.parse_args()

    began = time.perf_counter()
    topo = GroupTopology.create(groups=args.groups, devices=jax.local_devices()[:1])
    # The root generates (or finds) the cached data first; the others then read it.
    if topo.is_root:
        problem.trajectories(args.seed, args.train, cache_dir=args.data)
        problem.trajectories(args.seed + 1, args.test, cache_dir=args.data)
    topo.barrier()
    train, _ = problem.trajectories(args.seed, args.train, cache_dir=args.data)
    test, _ = problem.trajectories(args.seed + 1, args.test, cache_dir=args.data)

    events = []
    averager = AsyncAverager(
        topo,
        every=args.every,
        max_staleness=args.max_staleness,
        wait_free=args.wait_free,
        progress=args.progress,
        log=events.append,
    )
    sleep = float(args.straggler[1]) if args.straggler and args.straggler[0] == topo.group else 0.0
    nan_at = int(args.inject_nan[1]) if args.inject_nan and args.inject_nan[0] == topo.group else None
    knobs = _Knobs(averager, topo, sleep=sleep, nan_at=nan_at)
    result = nnpde.fit(
        problem.model("correction", seed=args.seed, hidden=args.hidden),
        lambda m, batch, key: nnpde.unrolled_loss(m, batch),
        train,
        steps=args.steps,
        batch_size=args.batch,
        window=args.unroll,
        seed=args.seed,
        optimizer=nnpde.make_optimizer(args.learning_rate, schedule="cosine", total_steps=args.steps, clip_norm=1.0),
        run_dir=args.out,
        log_every=10,
        topology=topo,
        averager=knobs,
        config={"script": "train_distributed", **{k: str(v) for k, v in vars(args).items()}},
    )
    finite = bool(all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(result.state.params)))
    mine = {
        "group": topo.group,
        "mean_step_seconds": float(np.mean(knobs.step_seconds[5:])) if len(knobs.step_seconds) > 5 else None,
        "averaging": averager.stats(),
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "finite": finite,
    }
    reports = topo.world_comm.gather(mine, root=0) if topo.world_comm is not None else [mine]
    if not topo.is_root:
        return
    errors = nnpde.evaluate_rollouts(result.model, test)
    plain = nnpde.evaluate_rollouts(problem.coarse_stepper(), test)
    leaders = [r for r, rank in zip(reports, range(len(reports))) if rank % topo.group_size == 0]
    summary = {
        "parallel": {
            **topo.describe(),
            "every": args.every,
            "max_staleness": args.max_staleness,
            "wait_free": args.wait_free,
            "progress": args.progress,
        },
        "settings": vars(args) | {"straggler": args.straggler, "inject_nan": args.inject_nan},
        "machine": {"platform": platform.platform(), "devices": [str(d) for d in jax.devices()]},
        "date": time.strftime("%Y-%m-%d"),
        "groups": leaders,
        "observed_staleness_max": max((r["averaging"].get("staleness_max") or 0) for r in leaders),
        "mpi_seconds": {r["group"]: r["averaging"].get("mpi_seconds") for r in leaders},
        "horizon_error": {"averaged model": float(errors[-1]), "plain coarse solver": float(plain[-1])},
        "all_finite": all(r["finite"] for r in reports),
        "wall_seconds": time.perf_counter() - began,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps({k: summary[k] for k in ("parallel", "horizon_error", "observed_staleness_max", "all_finite")}))
    print(f"wrote {out / 'summary.json'}")


if __name__ == "__main__":
    with abort_on_error():
        main()
