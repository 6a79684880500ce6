"""The validation part: the scale model (``CampaignModel``: the fitted network,
compute, CPU sharing and averager costs) against every measured point, each entry
flagged beyond 25 % with the reasons that apply."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from pathlib import Path

import numpy as np

from scripts.scale.common import _staleness_mean, machines_of
from scripts.scale.measure import _batch_scaling


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


class _FixedLatency:
    """A cross-group "network" whose every allreduce takes ``seconds`` (a measured round
    time), for the diagnostic that replays the staleness rule with it."""

    def __init__(self, seconds):
        self.seconds = float(seconds)
        self.name = f"measured round, {seconds * 1e3:.3g} ms after the last start"

    def allreduce_seconds(self, nbytes, ranks):
        return self.seconds + 0.0 * np.asarray(nbytes, dtype=float)

    def broadcast_seconds(self, nbytes, ranks):
        return 0.0 * np.asarray(nbytes, dtype=float)


class CampaignModel:
    """The scale model as this campaign fits it: the collectives' fits (``Allreduce``
    for the group allreduce, ``Iallreduce`` for the average), the measured compute
    per rank and batch, and the averager's host costs. ``simulate`` runs
    ``nnpde.distributed.simulate`` for one measured layout, with the compute of ranks
    sharing the cores (``compute_source`` says which measurement) and without it;
    ``reasons`` says which known limit applies."""

    def __init__(self, collectives, compute, averager, sharing=None, rounds=None):
        self.network, self.cross = _networks(collectives)
        # the cross-group rounds' time after the last leader's start, measured with the
        # ranks sharing the cores (--part rounds), by (ranks, groups)
        self.rounds = {
            (r["ranks"], r["groups"]): r["round_after_last_start_median"]
            for r in (rounds or {}).get("runs", [])
            if r.get("round_after_last_start_median") is not None
        }
        # ... and the one-off seconds of a run's first steps beyond the steady step
        self.startup = {
            (r["ranks"], r["groups"]): r["startup_excess_seconds"]
            for r in (rounds or {}).get("runs", [])
            if r.get("startup_excess_seconds") is not None
        }
        self.compute = compute
        # measured compute of one rank among R sharing the cores, by (R, batch), and the
        # synchronised compute of groups of r ranks among R, by (R, r, batch)
        runs = (sharing or {}).get("runs", [])
        self.shared = {(r["ranks"], r["batch"]): r for r in runs if not r.get("ranks_per_group")}
        grouped = [r for r in runs if (r.get("ranks_per_group") or 1) > 1]
        self.grouped = {
            (r["ranks"], r["ranks_per_group"], r["batch"]): r
            for r in grouped
            if r.get("group_collective", "barrier") == "barrier"
        }
        # ... and the group's own synchronous training step (its mpi4jax allreduces inside the step)
        self.grouped_step = {
            (r["ranks"], r["ranks_per_group"], r["batch"]): r for r in grouped if r.get("group_collective") == "in_step"
        }
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

    def compute_source(self, ranks, batch, ranks_per_group=1) -> str:
        """Which compute a layout of ``ranks`` ranks in groups of ``ranks_per_group`` at
        ``batch`` is predicted with: ``"measured_group_step"`` (the sharing part's
        groups running the synchronous training step itself, its allreduces inside: the
        whole step), ``"measured_group"`` (its groups passing a barrier: the group's compute),
        ``"measured"`` (its independent ranks), ``"factor"`` (the compute alone times the
        sharing factor, also where the cores are not oversubscribed)."""
        if ranks * self.per_process <= self.cores:
            return "factor"
        if ranks_per_group > 1 and (ranks, ranks_per_group, batch) in self.grouped_step:
            return "measured_group_step"
        if ranks_per_group > 1 and (ranks, ranks_per_group, batch) in self.grouped:
            return "measured_group"
        return "measured" if self.measured_sharing(ranks, batch) else "factor"

    def shared_compute(self, ranks, batch, *, averaging, ranks_per_group=1):
        """The ComputeModel when ``ranks`` ranks share the cores, the measured source
        (``compute_source``) and ``compute_per`` for ``simulate``: one group's
        synchronised compute (``"group"``) where the sharing part measured groups of
        ``ranks_per_group`` among ``ranks``; else one rank's (``"rank"``), as measured
        with ``ranks`` ranks sharing the cores or the compute alone scaled by the
        sharing factor."""
        from nnpde.distributed import ComputeModel

        how = self.compute_source(ranks, batch, ranks_per_group)
        guard = self.guard if averaging else 0.0
        if how in ("measured_group_step", "measured_group"):
            runs = self.grouped_step if how == "measured_group_step" else self.grouped
            samples = np.asarray(runs[ranks, ranks_per_group, batch]["samples"]) + guard
            return ComputeModel.empirical(samples), how, "group"
        if how == "measured":
            samples = np.asarray(self.shared[ranks, batch]["samples"]) + guard
            return ComputeModel.empirical(samples), how, "rank"
        model, _ = self.compute_at(batch, averaging=averaging)
        return model.scaled(self.sharing(ranks)), how, "rank"

    def cross_network(self, ranks, groups):
        """The cross-group average's network and its source: the rounds measured with
        ``ranks`` ranks in ``groups`` groups sharing the cores (``"measured_rounds"``)
        where they oversubscribe them and the rounds part measured that layout, else the
        ``Iallreduce`` fit (``"fit"``)."""
        if ranks * self.per_process > self.cores and (ranks, groups) in self.rounds:
            return _FixedLatency(self.rounds[ranks, groups]), "measured_rounds"
        return self.cross, "fit"

    def startup_seconds(self, ranks, groups) -> float:
        """The one-off seconds of a run's first steps beyond its steady steps, where the
        rounds part measured the layout with the cores oversubscribed (else 0)."""
        if ranks * self.per_process > self.cores:
            return max(0.0, self.startup.get((ranks, groups), 0.0))
        return 0.0

    def group_network(self, how):
        """The group allreduce's network for a layout predicted with ``how``: the fit,
        or none (zero cost) where the measured group step already holds the allreduces."""
        if how == "measured_group_step":
            return dataclasses.replace(
                self.network, alpha=0.0, beta=0.0, name="in the measured group step (--part sharing)"
            )
        return self.network

    def options(self, averaging):
        return dict(self.common, **(dict(averaging, **self.host) if averaging else {}))

    def simulate(
        self,
        groups,
        ranks_per_group,
        steps,
        batch,
        averaging=None,
        *,
        sharing_ranks=None,
        round_seconds=None,
        start_seconds=None,
    ):
        """``round_seconds``: the cross-group average's time from the last leader's start
        to completion as measured (a diagnostic), in place of the fitted network's;
        ``start_seconds``: each group's measured start (``simulate``'s)."""
        from nnpde.distributed import simulate

        ranks = sharing_ranks or groups * ranks_per_group
        model, near = self.compute_at(batch, averaging=bool(averaging))
        factor = self.sharing(ranks)
        per_group = ranks_per_group if sharing_ranks is None else 1
        contended, how, per = self.shared_compute(ranks, batch, averaging=bool(averaging), ranks_per_group=per_group)
        options = self.options(averaging)
        cross, cross_how = self.cross_network(ranks, groups)
        if round_seconds is not None:
            cross, cross_how = _FixedLatency(round_seconds), "replayed"
        network = self.group_network(how)
        if start_seconds is not None:
            options = dict(options, start_seconds=start_seconds)
        shared = simulate(
            groups, ranks_per_group, steps, contended, network, compute_per=per, **dict(options, cross_network=cross)
        )
        alone = simulate(groups, ranks_per_group, steps, model, self.network, **options)
        reasons = self.reasons(ranks, factor, batch, near, steps, how, ranks_per_group)
        if averaging and cross_how == "measured_rounds":
            reasons.append(
                f"the cross-group rounds take {self.rounds[ranks, groups] * 1e3:.3g} ms after the last leader's start, "
                f"as measured with {ranks} ranks in {groups} groups sharing the cores (--part rounds), in place of "
                "the Iallreduce fit"
            )
        return shared, alone, reasons

    def time_to_target(self, steps_model, groups, ranks_per_group, batch, averaging=None):
        from nnpde.distributed import time_to_target

        model, _ = self.compute_at(batch, averaging=bool(averaging))
        contended, how, per = self.shared_compute(
            groups * ranks_per_group, batch, averaging=bool(averaging), ranks_per_group=ranks_per_group
        )
        options = self.options(averaging)
        cross, _ = self.cross_network(groups * ranks_per_group, groups)
        network = self.group_network(how)
        shared = time_to_target(
            steps_model,
            groups,
            ranks_per_group,
            contended,
            network,
            compute_per=per,
            **dict(options, cross_network=cross),
        )
        alone = time_to_target(steps_model, groups, ranks_per_group, model, self.network, **options)
        return shared, alone

    def reasons(self, ranks, factor, batch, near, steps, how="factor", ranks_per_group=1) -> list[str]:
        out = []
        if how == "measured_group_step":
            out.append(
                f"{ranks} ranks on {self.cores} cores: each group's synchronous step as measured with {ranks} ranks "
                f"sharing the cores in groups of {ranks_per_group} running the training step itself, its "
                "allreduces inside (--part sharing), without the averager and the evaluations"
            )
        elif how == "measured_group":
            out.append(
                f"{ranks} ranks on {self.cores} cores: each group's compute as measured with {ranks} ranks sharing "
                f"the cores in groups of {ranks_per_group} that pass a barrier after every step (--part sharing); "
                "the training step's allreduces (one per gradient leaf) each wait again for every rank of the group "
                "to be scheduled, while the fitted allreduce comes from a tight loop in which all ranks sit in MPI"
            )
        elif ranks * self.per_process > self.cores and how == "measured":
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


def _staleness_reasons(measured, predicted, oversubscribed=False, rounds_measured=False) -> list[str]:
    if abs(measured - predicted) <= 1:
        return [
            f"staleness is counted in whole steps: measured {measured:.2f} and predicted {predicted:.2f} are less "
            "than one step apart"
        ]
    if oversubscribed and measured > predicted and rounds_measured:
        return [
            "the rounds' time after the last start is taken as measured (--part rounds); what the simulation also "
            "leaves out is the groups' uneven progress: the scheduler runs some groups persistently faster than "
            "others, while every group's steps are drawn from one distribution, so the leaders' starts of a round "
            "lie closer together than measured"
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
    sharing, rounds = _load(args, "sharing"), _load(args, "rounds")
    loaded = dict(
        rounds=rounds,
        collectives=collectives,
        compute=compute,
        averager=averager,
        sharing=sharing,
        convergence=convergence,
        functional=functional,
    )
    machines = machines_of(loaded)
    unknown = sorted(name for name, m in machines.items() if m is None)
    if unknown and len(unknown) < len(machines):
        print(
            f"  warning: {', '.join(unknown)} recorded no processor model; the others ran on "
            f"{next(m for m in machines.values() if m)}: check they were measured on the same machine",
            flush=True,
        )
    model = CampaignModel(collectives, compute, averager, sharing, rounds)
    flag = settings["validate"]["flag"]
    entries, unpredicted = [], []

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
        ranks,
        groups,
        measured_step,
        measured_staleness,
        sim,
        *,
        rank_batch=None,
        staleness_reasons=(),
        step_extra=None,
        staleness_extra=None,
        **tag,
    ):
        shared, alone, reasons = sim
        predicted_step = float(shared.step_seconds[0].mean())  # group 0's steps, its start (if late) left out
        how = model.compute_source(ranks, rank_batch, ranks // groups)
        entry(
            ranks,
            groups,
            "step_seconds",
            measured_step,
            predicted_step,
            unshared=float(alone.step_seconds[0].mean()),
            reasons=_step_reasons(measured_step or 0.0, predicted_step, how, ranks // groups) + reasons,
            compute_source=how,
            **(step_extra or {}),
            **tag,
        )
        if groups > 1 and measured_staleness is not None:
            predicted = shared.summary()["staleness_mean"]
            if predicted is None:  # no average completes in the simulated run
                unpredicted.append(
                    dict(ranks=ranks, groups=groups, what="staleness", measured=measured_staleness, **tag)
                )
                return
            oversubscribed = ranks * model.per_process > model.cores
            rounds_measured = model.cross_network(ranks, groups)[1] == "measured_rounds"
            why = [
                *_staleness_reasons(measured_staleness, predicted, oversubscribed, rounds_measured),
                *staleness_reasons,
                *reasons,
            ]
            entry(
                ranks, groups, "staleness", measured_staleness, predicted, reasons=why, **(staleness_extra or {}), **tag
            )

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
            # the mean step (what the model predicts) where the run recorded it; older
            # caches hold only the median over evaluation intervals
            statistic = "group0_mean_step_seconds" if rows[0].get("group0_mean_step_seconds") else None
            step, per_seed = mean_of(rows, statistic or "group0_steady_step_seconds")
            median_step, _ = mean_of(rows, "group0_steady_step_seconds")
            leaders = [x for r in rows for x in r.get("leaders_mean_step_seconds") or [] if x is not None]
            staleness, per_seed_staleness = mean_of(rows, "mean_staleness")
            tag = dict(source="convergence", every=every, seeds=seeds)
            # diagnostic: the staleness rule replayed with the rounds' measured time after the
            # last leader's start (what the model charges to the network), not a prediction
            measured_rounds, _ = (
                mean_of(rows, "round_after_last_start_median")
                if "round_after_last_start_median" in rows[0]
                else (None, None)
            )
            replay = None
            if G > 1 and measured_rounds is not None:
                replayed = model.simulate(G, R, steps, batch, averaging, round_seconds=measured_rounds)[0]
                cross, _ = model.cross_network(G * R, G)
                replay = dict(
                    round_after_last_start_seconds=measured_rounds,
                    round_after_last_start_predicted=float(cross.allreduce_seconds(model.common["parameter_bytes"], G)),
                    staleness_with_measured_rounds=replayed.summary()["staleness_mean"],
                )
            step_and_staleness(
                G * R,
                G,
                step,
                staleness,
                sim,
                rank_batch=batch,
                per_seed=dict(step_seconds=per_seed, staleness=per_seed_staleness),
                staleness_extra=replay,
                staleness_reasons=[
                    f"the leaders' mean training steps in these runs span {1e3 * min(leaders):.3g} to "
                    f"{1e3 * max(leaders):.3g} ms"
                ]
                if leaders and G > 1
                else [],
                step_extra=dict(
                    step_statistic=statistic or "group0_steady_step_seconds",
                    median_step_seconds=median_step,
                    leaders_mean_step_range=[min(leaders), max(leaders)] if leaders else None,
                ),
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
            # steps x the steady step, plus the first steps' one-off seconds where measured (--part rounds)
            startup_model = model.startup_seconds(G * R, G)
            predicted_seconds = shared["steps"] * shared["seconds_per_step"] + startup_model
            startup, _ = (
                mean_of(rows, "group0_startup_excess_seconds")
                if "group0_startup_excess_seconds" in rows[0]
                else (None, None)
            )
            extra, seconds_why = {}, []
            if startup is not None:
                # diagnostic: the first steps' one-off costs, as these runs measured them
                extra = dict(
                    startup_excess_seconds=startup,
                    predicted_plus_startup=predicted_seconds - startup_model + startup,
                )
                if startup > 0.1 * measured_seconds and not startup_model:
                    seconds_why = [
                        f"the first {convergence['settings']['warmup']} steps took {startup:.2f} s more than the "
                        "steady step (the first average's one-off costs: its mix and guard compile while the ranks "
                        "share the cores); the model's steps x steady step leaves that out (with it: "
                        f"{predicted_seconds + startup:.2f} s)"
                    ]
            entry(
                G * R,
                G,
                "seconds_to_target",
                measured_seconds,
                predicted_seconds,
                unshared=alone["steps"] * alone["seconds_per_step"],
                reasons=seconds_why + why + sim[2],
                per_seed=seconds_per_seed,
                startup_seconds_predicted=startup_model,
                **extra,
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
            starts = run.get("group_start_seconds") if G > 1 else None
            shared, alone, reasons = model.simulate(
                G, R, run["steps"], run["batch_per_group"] // R, averaging, start_seconds=starts
            )
            reasons = [
                *reasons,
                "nnpde train logs every step to metrics.jsonl (host work the compute part does not time)",
            ]
            if starts is not None:
                reasons.append(
                    f"the groups start as measured, up to {max(starts):.2g} s apart (each leader's first logged step: "
                    "the groups compile and stage their data one after another on the shared cores)"
                )
            # the median over the groups' leaders: in a 60-step run the groups start seconds
            # apart (each compiles on the shared cores), so one group's step (group 0 ran much
            # of its run alone at 16 groups) is not the layout's
            steady = run["steady_step_seconds"]
            measured = float(np.median(list(steady.values())))
            step_and_staleness(
                run["ranks"],
                G,
                measured,
                run["staleness_mean"],
                (shared, alone, reasons),
                rank_batch=run["batch_per_group"] // R,
                step_extra=dict(
                    step_statistic="median over the groups' leaders",
                    group_steps_range=[min(steady.values()), max(steady.values())],
                ),
                staleness_reasons=[
                    f"a {run['steps']}-step run: the groups start seconds apart (each compiles on the shared cores) "
                    "and the first round completes only once the last group has posted its part"
                    + (
                        ", which the simulation (all groups starting together) leaves out"
                        if starts is None
                        else "; the simulation starts each group at its measured time"
                    )
                ],
                source="functional",
            )
    flagged = [e for e in entries if e["flagged"]]
    return {
        "flag_beyond": flag,
        "sharing": "predicted with the synchronous training step of groups of r ranks among R sharing the cores "
        f"as measured by --part sharing ((R, r) = {sorted({(R, r) for R, r, _ in model.grouped_step}) or 'none'}; "
        "compute_source 'measured_group_step': the group allreduce is in the measurement, not added again), "
        "else with their synchronised compute passing a barrier "
        f"((R, r) = {sorted({(R, r) for R, r, _ in model.grouped}) or 'none'}; "
        "compute_source 'measured_group'), else with the compute of one rank among R sharing the cores as measured "
        f"there (R = {sorted({r for r, _ in model.shared}) or 'none'}); other oversubscribed layouts: compute x max(1, "
        f"ranks x cores-per-process / cores), cores-per-process {model.per_process:.2f} measured by --part compute; "
        "predicted_without_sharing: the compute of one process alone",
        "cross_rounds": "the cross-group average's time after the last leader's start, where the ranks "
        "oversubscribe the cores: as measured by --part rounds ((R, G) = "
        f"{sorted(model.rounds) or 'none'}, compute of those runs without evaluations, every "
        f"{(rounds or {}).get('settings', {}).get('every', '-')}); elsewhere the Iallreduce fit. The convergence "
        "staleness entries also carry staleness_with_measured_rounds: the rule replayed with their own runs' "
        "measured rounds (a diagnostic, not a prediction)",
        "machines": machines,
        "networks": {"group_allreduce": _describe(model.network), "cross_average": _describe(model.cross)},
        "host_seconds": dict(model.host, guard_per_step=model.guard),
        "entries": entries,
        # measured points the model has no value for (e.g. no simulated average completes)
        "unpredicted": unpredicted,
        "flagged": len(flagged),
        "within": len(entries) - len(flagged),
    }


def _describe(network) -> dict:
    return {"name": network.name, "alpha": network.alpha, "beta": network.beta, "algorithm": network.algorithm}
