"""The tables part: the distributed benchmark page's tables (Markdown) rendered from
the report JSON, so that the page shows a campaign's numbers as the report holds them
(``--part tables``; writes ``<out-dir>/tables.md`` and prints it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scripts.scale.report import results_path
from scripts.scale.settings import KIB, MIB


def _ms(seconds, digits=3) -> str:
    """Milliseconds to ``digits`` significant digits, never in e-notation."""
    if seconds is None:
        return "-"
    ms = 1e3 * seconds
    return f"{ms:.0f}" if abs(ms) >= 10 ** (digits - 1) else f"{ms:.{digits}g}"


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---:" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _size(nbytes) -> str:
    return f"{nbytes // MIB} MiB" if nbytes >= MIB else f"{nbytes // KIB} KiB"


def collectives(report) -> str:
    c = report["collectives"]
    sizes = sorted({r["nbytes"] for r in c["rows"]})
    shown = [s for s in sizes if s in (KIB, 64 * KIB, MIB, 16 * MIB, 64 * MIB)] or sizes
    rows = {(r["op"], r["ranks"], r["nbytes"]): r for r in c["rows"]}
    body = []
    for op in sorted({r["op"] for r in c["rows"]}):
        for ranks in sorted({r["ranks"] for r in c["rows"] if r["op"] == op}):
            cells = []
            for k, s in enumerate(shown):
                r = rows.get((op, ranks, s))
                cell = "-" if r is None else _ms(r["median"], 2)
                if r is not None and k == 0:
                    cell += f" ({_ms(r['p10'], 2)}-{_ms(r['p90'], 2)})"
                cells.append(cell)
            body.append([op, ranks, *cells])
    out = [_table(["op", "ranks", *(_size(s) for s in shown)], body), ""]
    fits = []
    for op, fit in c["fits"].items():
        for name, f in fit["by_algorithm"].items():
            best = " (best)" if name == fit["best"] else ""
            fits.append(
                [
                    op,
                    name.replace("_", " ") + best,
                    f"{f['alpha'] * 1e6:.0f} us",
                    f"{f['bandwidth_bytes_per_second'] / 1e9:.2f} GB/s",
                    f"{f['relative_rms']:.2f}",
                ]
            )
    out.append(_table(["op", "algorithm", "alpha", "bandwidth 1 / beta", "relative RMS"], fits))
    return "\n".join(out)


def compute(report) -> str:
    c = report["compute"]
    rows = [
        [r["batch"], r["count"], _ms(r["median"]), _ms(r["mean"]), _ms(r["p99"]), f"{np.mean(r['cpu_cores']):.2f}"]
        for r in sorted(c["runs"], key=lambda r: r["batch"])
    ]
    s = c["straggler_run"]
    rows.append([f"{s['batch']}, straggler injected", s["count"], _ms(s["median"]), _ms(s["mean"]), _ms(s["p99"]), ""])
    law = c["batch_scaling"]
    fit = s["fit"]
    return "\n".join(
        [
            _table(["batch", "steps", "median ms", "mean ms", "p99 ms", "CPU cores used"], rows),
            "",
            f"t0 = {_ms(law['fixed_seconds'])} ms, t1 = {_ms(law['per_sample_seconds'])} ms per sample "
            f"(t0 / t1 = {law['crossover_batch']:.2g}), relative RMS {law['relative_rms']:.2f}, residuals "
            + ", ".join(f"{x:+.0%}" for x in law["residuals"])
            + f"; stragglers recovered: probability {fit.get('probability', float('nan')):.3f}, slowdown "
            f"{fit.get('slowdown', float('nan')):.2f}; mean step predicted {_ms(fit['predicted_mean'])} against "
            f"{_ms(fit['measured_mean'])} ms",
        ]
    )


def sharing(report) -> str:
    rows = []
    for r in report["sharing"]["runs"]:
        per = r.get("ranks_per_group")
        what = "independent" if not per else f"groups of {per}, {r.get('group_collective', 'barrier')}"
        steps = r["steps_in_overlap_per_rank"]
        rows.append(
            [
                r["ranks"],
                what,
                _ms(r["median"]),
                _ms(r["mean"]),
                _ms(r["p90"]),
                _ms(r["p99"]),
                f"{min(steps)}-{max(steps)}",
            ]
        )
    header = ["R", "ranks", "median ms", "mean ms", "p90 ms", "p99 ms", "steps in the overlap (per rank / group)"]
    return _table(header, rows)


def averager(report) -> str:
    a = report["averager"]
    ratio = a["step_time_ratio_to_none"]
    ex = a["exchange"]
    return (
        f"step with the averager against none: bounded {ratio['async_bounded']['mean']:.2f}x, wait-free "
        f"{ratio['async_wait_free']['mean']:.2f}x (mean; medians {ratio['async_bounded']['median']:.2f}x and "
        f"{ratio['async_wait_free']['median']:.2f}x); one exchange of {ex['parameters']} parameters "
        f"({ex['parameter_bytes']} bytes): {_ms(ex['exchange']['median'])} ms (median) against "
        f"{_ms(ex['guard']['median'])} ms guard-only, raw Iallreduce {_ms(ex['raw_iallreduce']['median'])} ms"
    )


def rounds(report) -> str:
    rows = [
        [
            r["ranks"],
            r["groups"],
            r["every"],
            _ms(r["round_seconds_median"]),
            _ms(r["round_after_last_start_median"]),
            f"{min(r['rounds_per_leader'])}-{max(r['rounds_per_leader'])}" if r["rounds_per_leader"] else "-",
            "-" if r["mean_staleness"] is None else f"{r['mean_staleness']:.1f}",
            _ms(float(np.mean(r["leaders_mean_step_seconds"]))),
            "-" if r.get("startup_excess_seconds") is None else f"{r['startup_excess_seconds']:.2f}",
        ]
        for r in report["rounds"]["runs"]
    ]
    header = [
        "ranks",
        "groups",
        "every",
        "round ms (median)",
        "after the last start ms (median)",
        "rounds per leader",
        "mean staleness",
        "leaders' mean step ms",
        "first steps' excess s",
    ]
    return _table(header, rows)


def convergence(report) -> str:
    c = report["convergence"]
    layouts = {}
    for r in c["rows"]:
        layouts.setdefault((r["groups"], r["every"] or 0), []).append(r)
    rows = []
    for (groups, every), rs in sorted(layouts.items()):
        steps = [r["steps_to_target"] for r in rs]
        reached = [s for s in steps if s is not None]
        seconds = [r["seconds_to_target"] for r in rs if r["seconds_to_target"] is not None]
        stale = [r["mean_staleness"] for r in rs if r["mean_staleness"] is not None]
        step = [r.get("group0_mean_step_seconds") or r["group0_steady_step_seconds"] for r in rs]
        rounds = [r.get("round_seconds_median") for r in rs if r.get("round_seconds_median") is not None]
        rows.append(
            [
                groups,
                every or "-",
                ", ".join("-" if s is None else str(s) for s in steps),
                f"{np.mean(reached):.0f}" if reached else "-",
                f"{np.mean(seconds):.1f}" if seconds else "-",
                _ms(float(np.mean(step))),
                f"{np.mean(stale):.1f}" if stale else "-",
                _ms(float(np.mean(rounds))) if rounds else "-",
                f"{np.mean([r['averages_completed'] for r in rs]):.0f} / "
                f"{np.mean([r['averages_discarded'] for r in rs]):.0f}"
                if groups > 1
                else "-",
                f"{np.mean([r['final_averaged_error'] for r in rs]):.4f}",
            ]
        )
    header = [
        "groups",
        "every",
        "steps to target (per seed)",
        "mean",
        "seconds to target (mean)",
        "group 0 step ms",
        "mean staleness",
        "round ms (median)",
        "averages completed / discarded",
        "final averaged error",
    ]
    fit = c["steps_to_target_fit"]
    tail = (
        f"\n\n{fit['model']}: S1 = {fit['single_group_steps']:.0f} steps, a = {fit['penalty']:.3f}, relative RMS "
        f"{fit['relative_rms']:.2f}"
        if fit
        else ""
    )
    return _table(header, rows) + tail


def functional(report) -> str:
    rows = []
    for r in report["functional_runs"]:
        steady = r.get("steady_step_seconds") or {}
        rows.append(
            [
                r["ranks"],
                r["groups"],
                "yes" if r["finished"] else "no",
                f"{r['seconds']:.0f}",
                f"{r['train_seconds']['fit']:.0f}" if (r.get("train_seconds") or {}).get("fit") else "-",
                f"{r['resident_mib_max']:.0f}" if r.get("resident_mib_max") else "-",
                f"{r['resident_mib_total'] / 1024:.1f}" if r.get("resident_mib_total") else "-",
                f"{r['averages_started']} / {r['averages_completed']} / {r['averages_discarded']}"
                if r["groups"] > 1 and r.get("averages_started") is not None
                else "-",
                f"{r['staleness_mean']:.1f} / {r['staleness_max']}" if r.get("staleness_mean") is not None else "-",
                _ms(float(np.median(list(steady.values())))) if steady else "-",
                f"{r['horizon_error']['model']:.4f}" if (r.get("horizon_error") or {}).get("model") else "-",
            ]
        )
    header = [
        "ranks",
        "groups",
        "finished",
        "wall s",
        "fit s",
        "peak MiB per rank (max)",
        "all ranks GiB",
        "averages started / completed / discarded",
        "staleness mean / max",
        "step ms",
        "averaged model's error",
    ]
    failures = [
        f"{f['mode']} rank {f['rank']} of {f['ranks']}: every rank exited {f['seconds_from_failure_to_exit']:.2f} s "
        f"later (exit {f['returncode']})"
        for f in report.get("failure_runs", [])
        if f.get("seconds_from_failure_to_exit") is not None
    ]
    return _table(header, rows) + ("\n\n" + "; ".join(failures) if failures else "")


def validation(report) -> str:
    groups = {}
    for e in report["validation"]:
        groups.setdefault((e.get("source", "-"), e["what"]), []).append(e)
    rows = []
    for (source, what), es in groups.items():
        errors = [e["relative_error"] for e in es]
        within = sum(not e["flagged"] for e in es)
        rows.append(
            [
                source,
                what,
                sorted({e["ranks"] for e in es}),
                len(es),
                within,
                f"{min(errors):+.2f} .. {max(errors):+.2f}",
            ]
        )
    summary = report["validation_summary"]
    head = f"{summary.get('within', 0)} of {len(report['validation'])} points within 25 %\n\n"
    points = [
        [
            e.get("source", "-"),
            e["what"],
            e["ranks"],
            e["groups"],
            e.get("every") or "-",
            f"{e['measured']:.4g}",
            f"{e['predicted']:.4g}",
            f"{e['relative_error']:+.0%}",
        ]
        for e in report["validation"]
        if e.get("source") in ("convergence", "functional")
    ]
    return (
        head
        + _table(["source", "measured", "ranks", "points", "within 25 %", "prediction / measurement - 1"], rows)
        + "\n\n"
        + _table(["source", "what", "ranks", "groups", "every", "measured", "predicted", "error"], points)
    )


def predictions(report) -> str:
    """One table per network of the predictions (the interconnects and this machine's fit)."""
    return "\n\n".join(
        f"{network['network']['name']}:\n\n{_prediction_table(network['points'])}"
        for network in report["predictions"]["networks"].values()
    )


def _prediction_table(points) -> str:
    by = {}
    for p in points:
        by.setdefault(p["nodes"], {})[p["stragglers"]] = p

    def cell(layout):
        if layout is None:
            return "-"
        eff = layout.get("parallel_efficiency")
        return f"{layout['seconds']:.3g} s" + (f" ({eff:.2f})" if eff is not None else "")

    rows = []
    for nodes, p in sorted(by.items()):
        clean, slow = p.get(False), p.get(True)
        batch = clean["local_batch"]
        row = [nodes, f"{batch:.0f}" if batch >= 10 else f"{batch:.3g}"]
        for q in (clean, slow):
            hybrid = q["hybrid"]
            row += [
                cell(q["synchronous"]),
                "-" if hybrid is None else f"{hybrid['seconds']:.3g} s ({hybrid['groups']})",
                cell(q["asynchronous"]),
            ]
        fastest = min(
            (x for x in (slow["synchronous"], slow["hybrid"], slow["asynchronous"]) if x), key=lambda x: x["seconds"]
        )
        row.append(f"{fastest['node_hours']:.2f}")
        rows.append(row)
    header = [
        "nodes",
        "local batch",
        "synchronous",
        "hybrid (best G)",
        "asynchronous",
        "with stragglers: sync",
        "hybrid (G)",
        "async",
        "node-hours, fastest with stragglers",
    ]
    return _table(header, rows)


SECTIONS = {  # name: (the report's key it needs, renderer)
    "collectives": ("collectives", collectives),
    "compute": ("compute", compute),
    "sharing": ("sharing", sharing),
    "averager": ("averager", averager),
    "rounds": ("rounds", rounds),
    "convergence": ("convergence", convergence),
    "functional": ("functional_runs", functional),
    "validation": ("validation", validation),
    "predictions": ("predictions", predictions),
}


def markdown(report) -> str:
    """Every section whose part the report holds, each under a heading."""
    machine = report.get("machine", {}).get("cpu_model", "an unrecorded processor")
    out = [f"Scale-model report of {report.get('date')} ({machine})"]
    for name, (key, render) in SECTIONS.items():
        if report.get(key):
            out += [f"\n### {name}\n", render(report)]
    return "\n".join(out) + "\n"


def part_tables(args, settings):
    results = results_path(args)
    text = markdown(json.loads(results.read_text()))
    out = Path(args.out_dir) / "tables.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return {"tables": str(out), "from": str(results)}
