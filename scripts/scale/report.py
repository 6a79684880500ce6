"""The report part: ``benchmarks/results/scale_model.json`` from the cached parts, the
predictions from 1 to 10^4 nodes and their figure."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from scripts.scale.common import _machine, _write_json
from scripts.scale.measure import _batch_scaling, _batch_scaling_record
from scripts.scale.settings import MEASURED, ROOT
from scripts.scale.validate import CampaignModel, _describe, _load, _networks


def results_path(args) -> Path:
    """The report's JSON: ``--results``, else the tiny cache's or the committed one."""
    if args.results:
        return Path(args.results)
    if args.tiny:
        return Path(args.out_dir) / "scale_model.json"
    return ROOT / "benchmarks" / "results" / "scale_model.json"


def part_report(args, settings):
    s = settings["report"]
    parts = {p: _load(args, p) for p in MEASURED}
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
        "rounds": parts["rounds"],
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
    results = results_path(args)
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
    host = CampaignModel(parts["collectives"], compute, parts["averager"]).host
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
