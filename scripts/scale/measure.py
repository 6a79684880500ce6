"""The measuring parts: collectives (fitted to latency-bandwidth models), the
averager, compute (and its batch law), CPU sharing, and convergence (steps to target
against groups and averaging period, fitted by ``fit_steps_to_target``)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from scripts.scale.common import _bench, _bench_shared, _cached, _launch_worker, _options, _staleness_mean


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
    each R: validation puts it in place of the sharing factor for runs of R ranks. Then
    the synchronised compute of groups of r ranks among R (``grouped``: [R, r] pairs; a
    barrier after every step): validation takes it as the group's step compute for
    layouts of R ranks in groups of r; and the same groups running the synchronous
    training step itself (``grouped_in_step``: its mpi4jax allreduces inside the step):
    validation takes that, where measured, as the group's whole synchronous step.
    (``grouped_allreduce``, not in ``FULL``: one mpi4py ``Allreduce`` per gradient leaf
    after the step in place of the barrier, the diagnostic that put the missing cost in
    the allreduces' place inside the step rather than in their number.)"""
    s = dict(settings["sharing"], model=settings["model"])
    runs = []
    for ranks in s["ranks"]:
        run = _launch_worker(args, ranks, "sharing", {**s, "ranks_per_group": None}, timeout=s["timeout"])
        print(f"  {ranks} ranks: median {run['median'] * 1e3:.2f} ms per step", flush=True)
        runs.append(run)
    for key, collective in (("grouped", "barrier"), ("grouped_allreduce", "allreduce"), ("grouped_in_step", "in_step")):
        for ranks, per_group in s.get(key, []):
            options = {**s, "ranks_per_group": per_group, "group_collective": collective}
            run = _launch_worker(args, ranks, "sharing", options, timeout=s["timeout"])
            print(
                f"  {ranks} ranks in groups of {per_group} "
                f"({'the training step itself' if collective == 'in_step' else collective + ' after every step'}): "
                f"median {run['median'] * 1e3:.2f} ms per step",
                flush=True,
            )
            runs.append(run)
    return {
        "note": f"{os.cpu_count()} cores: R processes time the same train step at once, without communication; "
        "each one's steps while all R were stepping, pooled; with ranks_per_group r, groups of r ranks pass a "
        "barrier after every step (group_collective 'barrier'), or run the synchronous training step itself "
        "('in_step'), and each group leader's steps are pooled",
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


def _convergence_worker(s, model, *, groups, every, seed, eval_every) -> list[str]:
    """benchmark_distributed's convergence worker for ``groups`` groups of ``s["ranks"]``
    ranks at the global batch ``s["total_batch"]``, averaging wait-free every ``every``
    steps (max staleness ``s["staleness_factor"] x every``)."""
    options = _options(
        groups=groups,
        batch=s["total_batch"] // groups,
        steps=s["steps"],
        eval_every=eval_every,
        every=every,
        max_staleness=s["staleness_factor"] * every,
        straggler=0,
        seed=seed,
        warmup=s["warmup"],
    )
    return ["--worker", "convergence", *options, *_bench_shared(model)]


def part_convergence(args, settings):
    s, model = settings["convergence"], settings["model"]
    layouts = [(1, None)] + [(g, e) for g in s["groups"] if g > 1 for e in s["every"]]
    runs = []
    for groups, every in layouts:
        if groups not in s["groups"] or s["ranks"] % groups or s["total_batch"] % groups:
            continue
        for seed in s["seeds"]:
            label = f"g{groups}_e{every or 0}_s{seed}"
            worker = _convergence_worker(
                s, model, groups=groups, every=every or s["every"][0], seed=seed, eval_every=s["eval_every"]
            )

            def make(worker=worker, groups=groups, every=every, seed=seed):
                run = _launch_worker(args, s["ranks"], worker, None, timeout=s["timeout"])
                return dict(run, groups=groups, every=every, seed=seed)

            print(f"[convergence] {label}: {s['ranks']} ranks, {groups} group(s)", flush=True)
            runs.append(_cached(Path(args.out_dir) / "convergence" / f"{label}.json", args.force, make))
    return _analyse_convergence(runs, s)


def part_rounds(args, settings):
    """The cross-group average's rounds when the ranks share the cores: ``ranks`` ranks
    in each of ``groups`` groups train the convergence runs' task with the averager
    (wait-free, every ``every`` steps, max staleness ``staleness_factor x every``) but
    without evaluations, for ``steps`` steps (``steps_by_groups``: more for a group count
    whose rounds are too slow for a few hundred steps to time several); each leader times every round
    (``AsyncAverager.rounds``). What the model takes from it, for oversubscribed layouts
    of these rank and group counts: the time from the last leader's start of a round to
    its completion (``round_after_last_start_median``), which the fitted ``Iallreduce``
    (a tight loop in which every rank sits in MPI) does not hold while busy ranks
    share the cores with the leaders' progress threads. ``every`` is none of the
    convergence part's periods, so the validation's layouts are not the measured ones."""
    s, model = settings["rounds"], settings["model"]
    runs = []
    for groups in s["groups"]:
        if s["ranks"] % groups or s["total_batch"] % groups:
            continue
        steps = int(s.get("steps_by_groups", {}).get(str(groups), s["steps"]))
        worker = _convergence_worker(dict(s, steps=steps), model, groups=groups, every=s["every"], seed=0, eval_every=0)

        def make(worker=worker, groups=groups):
            run = _launch_worker(args, s["ranks"], worker, None, timeout=s["timeout"])
            return dict(run, groups=groups)

        label = f"g{groups}_e{s['every']}" + ("" if steps == s["steps"] else f"_s{steps}")
        print(f"[rounds] {label}: {s['ranks']} ranks, {groups} groups", flush=True)
        run = _cached(Path(args.out_dir) / "rounds" / f"{label}.json", args.force, make)
        leaders = sorted((r for r in run["ranks"] if r["leader"]), key=lambda r: r["group"])
        averaging = [r["averaging"] for r in leaders if r["averaging"]]
        runs.append(
            {
                "ranks": run["parallel"]["ranks"],
                "groups": groups,
                "ranks_per_group": run["parallel"]["ranks_per_group"],
                "every": s["every"],
                "steps": steps,
                **_round_times(leaders),
                "rounds_per_leader": [len(r["rounds"]["seconds"]) for r in leaders if r.get("rounds")],
                "mean_staleness": _staleness_mean(averaging),
                "leaders_mean_step_seconds": [r["mean_step_seconds"] for r in leaders],
                "startup_excess_seconds": _first_steps_excess(leaders, s["warmup"]),
                "command": run["launch"]["command"],
            }
        )
    return {
        "note": _cores_note(s["ranks"], "the rounds measure CPU sharing"),
        "runs": runs,
    }


def _cores_note(ranks, what) -> str:
    """``"R ranks on C cores"``, flagged with ``what`` where the ranks oversubscribe the cores."""
    over = ranks > (os.cpu_count() or 1)
    return f"{ranks} ranks on {os.cpu_count()} cores" + (f" (OVERSUBSCRIBED: {what})" if over else "")


def _first_steps_excess(leaders, warmup) -> float | None:
    """The leaders' mean time for steps 2 .. ``warmup + 1`` beyond ``warmup`` steady
    steps: the one-off costs of a run's first steps after compilation (the first
    average compiles its mix and guard), which steps x the steady step leaves out."""
    excess = [
        r["first_steps_seconds"] - warmup * r["mean_step_seconds"]
        for r in leaders
        if r.get("first_steps_seconds") is not None
    ]
    return float(np.mean(excess)) if excess else None


def _mean_training_step(leader, warmup) -> float | None:
    """A leader's mean training seconds per step from its first evaluation at or after
    ``warmup`` steps to its last (evaluations' time excluded): the statistic the model
    predicts (a mean: a run's seconds are its steps times it), where the median over
    evaluation intervals (``group0_steady_step_seconds``) drops the scheduler's long
    time slices that oversubscribed one-rank groups take."""
    evals = [e for e in leader["evals"] if e["step"] >= warmup]
    if len(evals) < 2:
        return None
    first, last = evals[0], evals[-1]
    return (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])


def _startup_excess(leader, warmup) -> float | None:
    """A leader's training seconds up to its first evaluation at or after ``warmup``
    steps beyond what its mean step from there on (``_mean_training_step``) would take:
    the one-off costs of the first steps (the averager's first average compiles its mix
    and guard while 16 ranks share the cores), which a steady step time leaves out."""
    mean = _mean_training_step(leader, warmup)
    first = next((e for e in leader["evals"] if e["step"] >= warmup), None)
    if mean is None or first is None:
        return None
    return first["seconds"] - (first["step"] - 1) * mean


def _round_times(leaders) -> dict:
    """The rounds of the cross-group average as the leaders timed them (``rounds``):
    ``round_seconds_median``, each leader's start of a round to its seeing it complete;
    ``round_after_last_start_median``, from the last leader's start of that round (the
    n-th start of every leader: one collective) to each leader's seeing it complete, the
    part of a round that the model charges to the network (``C_n = max_g s(g, n) + X``)."""
    timed = [r["rounds"] for r in leaders if r.get("rounds")]
    if not timed or not any(t["seconds"] for t in timed):
        return {"round_seconds_median": None, "round_after_last_start_median": None}
    seconds = [x for t in timed for x in t["seconds"]]
    after = []
    for n in range(min(len(t["starts"]) for t in timed)):
        last = max(t["starts"][n] for t in timed)
        after += [t["starts"][n] + t["seconds"][n] - last for t in timed if n < len(t["seconds"])]
    return {
        "round_seconds_median": float(np.median(seconds)),
        "round_after_last_start_median": float(np.median(after)) if after else None,
    }


def _analyse_convergence(runs, s) -> dict:
    from nnpde.distributed import fit_steps_to_target

    bench = _bench()
    target = s["target_factor"] * runs[0]["plain_coarse_error"]
    rows = []
    for run in runs:
        reached = bench._to_target(run, target)
        leaders = sorted((r for r in run["ranks"] if r["leader"]), key=lambda r: r["group"])
        leader0 = leaders[0]
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
                "group0_mean_step_seconds": _mean_training_step(leader0, s["warmup"]),
                "leaders_mean_step_seconds": [_mean_training_step(r, s["warmup"]) for r in leaders],
                "group0_startup_excess_seconds": _startup_excess(leader0, s["warmup"]),
                "mean_step_seconds": float(np.mean([r["mean_step_seconds"] for r in run["ranks"]])),
                "mean_staleness": staleness,
                "averages_completed": int(sum(a["completed"] for a in averaging)),
                "averages_discarded": int(sum(a["discarded_stale"] for a in averaging)),
                "mpi_seconds": [a["mpi_seconds"] for a in averaging],
                **_round_times(leaders),
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
        "note": _cores_note(s["ranks"], "wall times measure CPU sharing"),
        "target_error": target,
        "plain_coarse_error": runs[0]["plain_coarse_error"],
        "rows": rows,
        "steps_to_target_fit": fit,
        "fit_refused": reason,
        "unreached": [{k: r[k] for k in ("groups", "every", "seed")} for r in rows if r["steps_to_target"] is None],
    }
