"""The scale model of hybrid synchronous/asynchronous training (Kurth et al., "Deep
Learning at 15PF", SC'17: synchronous groups, asynchronous averaging across groups),
measured on this machine, checked against measured runs and extrapolated to 10^4 nodes
(issue 22). A campaign of parts; each part's result is cached in
``runs/scale_model/<part>.json`` and skipped when present (``--force`` redoes it), so an
interrupted campaign resumes; the long parts also cache each run (``<part>/<run>.json``).
Every result records its settings, command, machine and date.

Launch (from the repository root; ``nice -n 19`` on a shared machine). Durations and
peak memory on the 2-core, 23 GiB VM with nothing else running:

    .venv/bin/python scripts/scale_model.py --part collectives   # 64 s; 16 ranks x ~0.2 GB
    .venv/bin/python scripts/scale_model.py --part averager      # 48 s; 2 ranks x ~0.7 GB
    .venv/bin/python scripts/scale_model.py --part compute       # 21 s; ~0.7 GB
    .venv/bin/python scripts/scale_model.py --part sharing       # 17 min; 16 ranks x ~0.7 GB
    .venv/bin/python scripts/scale_model.py --part rounds        # 8 min (4 runs); 16 ranks x ~0.7 GB
    .venv/bin/python scripts/scale_model.py --part convergence   # 54 min (27 runs); 16 ranks x ~0.7 GB
    .venv/bin/python scripts/scale_model.py --part functional    # 30 min (12 runs); 32 ranks x ~0.7 GB
    .venv/bin/python scripts/scale_model.py --part validate      # 4 s (needs the parts above)
    .venv/bin/python scripts/scale_model.py --part report        # ~20 s: benchmarks/results/scale_model.json
    .venv/bin/python scripts/scale_model.py --part tables        # the page's Markdown tables from that JSON
    .venv/bin/python scripts/scale_model.py --part all           # all of them, in this order

(durations of the 2026-12-05 campaign on the idle Intel VM; the code of each part lives in
``scripts/scale/``: ``settings``, ``common``, ``workers``, ``measure``, ``functional``,
``validate``, ``report``, ``tables``)

A run that failed (say, out of memory) is recorded (``finished: false``) and cached like
any other; delete its ``runs/scale_model/<part>/<run>.json`` to redo that run alone.
``--from-report benchmarks/results/scale_model.json`` rebuilds the convergence and
functional caches from a committed report (where absent), so that a fresh machine can
measure the quick parts again and validate against those runs. ``--tiny`` runs a
cut-down version of a part (2 ranks, few sizes and steps, under a minute each) into
``runs/scale_model_tiny/``; ``--set part.key=JSON`` overrides one setting (``--set
convergence.seeds=[0,1]``); ``--out-dir`` moves the cache. Settings: ``FULL`` and
``TINY`` in ``scripts/scale/settings.py``. Every ``mpirun`` gets ``MPIR_CVAR_ENABLE_HEAVY_YIELD=1``
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
4. ``sharing``: ``mpirun -n R`` (R = 2, 4, 8, 16) of this script's sharing worker: every
   rank times the train step at batch 1 on its own (``COMM_SELF``; barriers after
   compilation and warm-up), the steps that fall where all R were stepping pooled: one
   rank's compute when R ranks share the cores, which validation takes in place of the
   sharing factor for the measured runs of R ranks. Then 16 ranks in groups of 16, 8,
   4, 2 that pass a barrier after every step (``grouped``), and that run the
   synchronous training step itself, its mpi4jax allreduces inside (``grouped_in_step``):
   validation takes the latter as a group's whole step where measured.
5. ``convergence``: ``mpirun -n 16`` of benchmark_distributed's convergence worker with
   1, 2, 4, 8, 16 groups (16 / G ranks each), averaging every 2 and 8 steps (wait-free,
   max staleness 2 x every), seeds 0, 1, 2 (one data set: ``--data-seed 0``), equal
   global batch 16; steps to the target (0.5 x the plain coarse solver's held-out
   horizon error), evaluated every 5 steps. ``fit_steps_to_target`` on the runs that
   reach it. 16 ranks on 2 cores: OVERSUBSCRIBED.
6. ``functional``: ``mpirun -n 16`` and ``-n 32`` of ``nnpde train
   scripts/configs/scale_functional.toml`` with 1, 2, 4, 8, 16 groups (one sample per
   rank), each rank under this script's rank wrapper (it writes the rank's peak
   resident memory, ``VmHWM``, at exit): finished (exit 0 and a ``train.json``),
   seconds, MiB per rank, averages completed, staleness, seconds in MPI (the
   averager's; the group allreduce inside the jitted step is not timed by ``nnpde
   train``), steady step time from the leaders' ``metrics.jsonl``. Then failing ranks
   at 16 ranks, 4 groups: rank 5 is killed (SIGKILL), or raises, once a step >= 10 is
   logged; measured: the seconds from the failure until every rank has exited
   (``mpirun`` returns), with a timeout that would record a hang.
7. ``validate``: ``simulate`` / ``time_to_target`` with the fitted network (the
   ``Allreduce`` fit for the group allreduce, the ``Iallreduce`` fit for the average),
   compute and steps models against every measured point of 1-16 ranks (step time,
   staleness, time and steps to target, the averager's exchange): entries ``{ranks,
   groups, what, measured, predicted, relative_error}``, flagged beyond 25 % with a
   reason. Ranks beyond the cores share them: the prediction takes the sharing part's
   compute for that rank count and batch, else scales compute by ``max(1, ranks x
   cores-per-process / cores)`` (``predicted_without_sharing`` leaves it out); a batch
   that was not measured is moved from the nearest measured one by ``t0 + t1 b``, and
   each batch's median is checked against that fit.
8. ``report``: ``benchmarks/results/scale_model.json`` (``validation``,
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
``--worker collectives|exchange|compute|sharing`` and ``--worker rank --settings ... -- ARGS``
(the rank wrapper around ``nnpde ARGS``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.scale.common import _cached, _machine, restore_from_report  # noqa: E402
from scripts.scale.functional import part_functional  # noqa: E402
from scripts.scale.measure import (  # noqa: E402
    part_averager,
    part_collectives,
    part_compute,
    part_convergence,
    part_rounds,
    part_sharing,
)
from scripts.scale.report import part_report  # noqa: E402
from scripts.scale.settings import PARTS, _settings  # noqa: E402
from scripts.scale.tables import part_tables  # noqa: E402
from scripts.scale.validate import part_validate  # noqa: E402
from scripts.scale.workers import worker_collectives, worker_compute, worker_exchange, worker_rank, worker_sharing  # noqa: E402

RUNNERS = {
    "collectives": part_collectives,
    "averager": part_averager,
    "compute": part_compute,
    "sharing": part_sharing,
    "rounds": part_rounds,
    "convergence": part_convergence,
    "functional": part_functional,
    "validate": part_validate,
    "report": part_report,
    "tables": part_tables,
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
        "--from-report",
        default=None,
        metavar="JSON",
        help="rebuild the convergence and functional caches from a report (e.g. benchmarks/results/"
        "scale_model.json) where absent, to validate new measurements of the quick parts against its runs",
    )
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
    if args.from_report:
        restored = restore_from_report(Path(args.from_report), Path(args.out_dir))
        print(f"restored from {args.from_report}: {', '.join(restored) or 'nothing (caches present)'}", flush=True)
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

        if part in ("report", "tables"):  # always rebuilt from the cached parts
            make()
        else:
            result = _cached(Path(args.out_dir) / f"{part}.json", args.force, make)
            print(f"  {part}: done ({result.get('seconds', 0):.1f} s)", flush=True)


if __name__ == "__main__":
    main()
