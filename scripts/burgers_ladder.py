"""Score trained 1-D Burgers models on the plain-solver ladder (``problems.burgers_ladder``).

Learned interpolation on 32 cells (Bar-Sinai et al., PNAS 2019) against plain solvers on
32 to 1024 cells and a 2048-cell truth, on held-out states never used in training:
equivalent resolution with its 90 % paired bootstrap interval, and the speed-up at equal
accuracy on this machine (every rung and model timed batched in this process).

    .venv/bin/nnpde train scripts/configs/burgers_ladder.toml           # ~11 min on 2 cores
    .venv/bin/python scripts/burgers_ladder.py --run runs/burgers_ladder

Writes ``benchmarks/results/burgers_equivalent_resolution.json`` (``--results``) and the
figure ``docs/benchmarks/figures/burgers_ladder.png`` (``--figure``). Several trained runs
(of the same task) can be scored together: ``--run A B``; the first is the headline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def parse_args(argv=None):
    from problems import burgers_ladder as ladder

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", nargs="+", type=Path, default=[Path("runs/burgers_ladder")], help="trained runs' folders")
    p.add_argument("--seeds", nargs="+", type=int, default=list(ladder.EVAL_SEEDS), help="held-out seeds")
    p.add_argument("--per-seed", type=_positive, default=ladder.STATES_PER_SEED, help="held-out states per seed")
    p.add_argument("--ladder", nargs="+", type=_positive, default=list(ladder.LADDER), help="plain rungs (cells)")
    p.add_argument("--truth", type=_positive, default=ladder.TRUTH, help="cells of the truth")
    p.add_argument("--horizon", type=_positive, default=ladder.HORIZON, help=f"scored steps of {ladder.DT}")
    p.add_argument("--repeats", type=_positive, default=3, help="timings per solver (best kept)")
    p.add_argument(
        "--timing-states",
        type=_positive,
        default=None,
        help="time every solver batched over this many states (the held-out ones repeated; default: those)",
    )
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/burgers_equivalent_resolution.json")
    p.add_argument("--figure", type=Path, default=ROOT / "docs/benchmarks/figures/burgers_ladder.png")
    args = p.parse_args(argv)
    rungs = sorted(args.ladder)
    if len(rungs) < 2 or len(set(rungs)) != len(rungs):
        p.error(f"--ladder needs at least two distinct resolutions, got {args.ladder}")
    if any(args.truth % n for n in rungs) or args.truth <= rungs[-1]:
        p.error(f"--truth {args.truth} must be finer than every rung and a multiple of each ({rungs})")
    times = [t for t in ladder.TIMES if round(t / ladder.DT) <= args.horizon]
    if not times:
        p.error(f"--horizon {args.horizon} is shorter than the first scored time {ladder.TIMES[0]}")
    for run in args.run:
        if not (run / "config.toml").is_file():
            p.error(
                f"--run {run}: no config.toml there. Fix: train first: nnpde train scripts/configs/burgers_ladder.toml"
            )
    args.ladder, args.times = rungs, times
    return args


def markdown(out: dict, metrics) -> str:
    """The benchmark page's two tables: scores and cost of every solver, then each model's
    equivalent resolution (90 % interval) per metric and its speed-up at equal accuracy."""
    costs, scores = out["seconds_per_time_unit_per_trajectory"], out["mean_scores"]
    lines = ["| solver | " + " | ".join(metrics) + " | s per time unit |", "| --- |" + " ---: |" * (len(metrics) + 1)]
    for name, row in scores.items():
        label = f"plain {name[6:]}" if name.startswith("plain_") else name
        cost = f"{costs[name]:.3g}" if name in costs else "(not timed)"
        lines.append(f"| {label} | " + " | ".join(f"{row[m]:.3g}" for m in metrics) + f" | {cost} |")
    lines += ["", "| model | " + " | ".join(metrics) + " | speed-up (primary) |", "| --- |" + " --- |" * len(metrics)]
    lines[-1] += " ---: |"
    for name, model in out["models"].items():
        cells = [
            f"{e['factor']:.2f}x [{e['factor_lower']:.2f}, {e['factor_upper']:.2f}]" for e in model["metrics"].values()
        ]
        speed = model["metrics"][metrics[0]]["speedup_at_equal_accuracy"]
        shown = "n/a" if speed["estimate"] is None else f"{speed['estimate']:.2f}x"
        if speed["estimate"] is not None and None not in (speed["lower"], speed["upper"]):
            shown += f" [{speed['lower']:.2f}, {speed['upper']:.2f}]"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {shown} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    import jax.numpy as jnp

    import nnpde
    from nnpde import load_config, load_task, restore_model
    from problems import burgers_ladder as ladder

    began = time.perf_counter()
    models, trained_steps, labels, training, coarse = {}, {}, {}, {}, None
    for run in args.run:
        config = load_config(run / "config.toml", [f'out="{run}"'])
        task = load_task(config)
        model, step = restore_model(config, task)
        grid = task.attrs["coarse"]
        if coarse not in (None, grid) or abs(model.dt - ladder.DT) > 1e-12:
            raise SystemExit(f"{run}: a {grid}-cell model with dt {model.dt}; every run must share the ladder's step.")
        coarse = grid
        a = task.attrs
        name = short = f"{config.model.kind} {a['hidden']}x{a['depth']}"
        if config.model.kind == "interpolation":
            clip = "clipped" if a["bounded"] else "unclipped"
            name += f", {a['stencil']}-cell stencil per {a['stencils']}, {clip}"
            short = f"LI {a['hidden']}x{a['depth']}, {a['stencil']} cells, per {a['stencils']}, {clip}"
        name += f" ({run.name}, {step} steps)"
        models[name], trained_steps[name], labels[name] = model, step, f"{short}, {step} steps"
        training[name] = grid * a["factor"]
    if coarse not in args.ladder:
        raise SystemExit(f"the models' grid ({coarse} cells) must be the ladder's first rung; got {args.ladder}.")

    starts = ladder.starts(args.seeds, args.per_seed, args.truth)
    states = len(starts)
    score = lambda runs: ladder.scores(runs, truth, times=args.times)  # noqa: E731
    truth = ladder.rung(args.truth, starts, horizon=args.horizon, score=coarse)
    print(f"truth: {args.truth} cells, {states} held-out states, {args.horizon} steps of {ladder.DT}")
    table, costs, runs = {}, {}, {}
    duration = args.horizon * ladder.DT
    batch = args.timing_states or states
    timed = jnp.concatenate([starts] * -(-batch // states))[:batch]  # the cost is per trajectory of this batch
    for n in [*args.ladder, args.truth]:
        runs[n] = ladder.rung(n, starts, horizon=args.horizon, score=coarse) if n != args.truth else truth
        table[f"plain_{n}"] = score(runs[n])
        if n != args.truth:  # the rungs' costs: what the speed-up reads (the truth's is not needed)
            costs[f"plain_{n}"] = nnpde.metrics.seconds_per_time_unit(
                ladder.stepper(n), ladder.restrict(timed, n), duration=duration, repeats=args.repeats
            )
        print(f"plain {n}: mean error {table[f'plain_{n}'][ladder.PRIMARY].mean():.3g}, {costs.get(f'plain_{n}')} s")
    coarse_starts = ladder.restrict(starts, coarse)
    for name, model in models.items():
        runs[name] = ladder.run(model, coarse_starts, horizon=args.horizon, score=coarse)
        table[name] = score(runs[name])
        costs[name] = nnpde.metrics.seconds_per_time_unit(
            model, ladder.restrict(timed, coarse), duration=duration, repeats=args.repeats
        )
        print(f"{name}: mean error {table[name][ladder.PRIMARY].mean():.3g}, {costs[name]:.3g} s")

    rungs = args.ladder
    plain_costs = [costs[f"plain_{n}"] for n in rungs]
    metrics = [ladder.PRIMARY, *(f"error_{t:g}" for t in args.times)]
    results = {}
    for name in models:
        results[name] = {}
        for metric in metrics:
            eq = nnpde.metrics.equivalent_resolution(
                table[name][metric],
                np.stack([table[f"plain_{n}"][metric] for n in rungs]),
                rungs,
                coarse=coarse,
                higher_is_better=False,
            )
            eq["speedup_at_equal_accuracy"] = nnpde.metrics.speedup_at_equal_accuracy(
                eq, rungs, plain_costs, costs[name]
            )
            results[name][metric] = eq
    head = next(iter(models))
    headline = results[head][ladder.PRIMARY]
    finest = table[f"plain_{rungs[-1]}"][ladder.PRIMARY].mean()
    out = {
        "equivalent_resolution": {
            "estimate": headline["factor"],
            "lower_90": headline["factor_lower"],
            "upper_90": headline["factor_upper"],
            "metric": f"relative L2 error averaged over t in (0, {duration:g}], against the {args.truth}-cell truth",
            "censored": headline["censored"],
            "resolution": headline["estimate"],
        },
        "speedup_at_equal_accuracy": headline["speedup_at_equal_accuracy"],
        "coarse": coarse,
        "truth": args.truth,
        "training_resolution": training[head],
        "held_out_states": states,
        "held_out_seeds": args.seeds,
        "ladder": rungs,
        "headline_model": head,
        "finest_rung_over_model_error": float(finest / table[head][ladder.PRIMARY].mean()),
        "models": {
            name: {
                "label": labels[name],
                "trained_steps": trained_steps[name],
                "training_resolution": training[name],
                "metrics": results[name],
            }
            for name in models
        },
        "mean_scores": {name: {k: float(np.mean(v)) for k, v in t.items()} for name, t in table.items()},
        "per_state_scores": {name: {k: np.asarray(v).tolist() for k, v in t.items()} for name, t in table.items()},
        "seconds_per_time_unit_per_trajectory": costs,
        "timing": f"batched over {batch} states, compiled, best of {args.repeats} runs of {duration:g} time units",
        "timing_states": batch,
        "substeps_per_step": {n: ladder.hb.substeps(n, ladder.DT) for n in [*rungs, args.truth]},
        "machine": nnpde.environment(),
        "date": time.strftime("%Y-%m-%d"),
        "seconds": time.perf_counter() - began,
        "command": "python " + " ".join(sys.argv),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.results.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2, default=str))
    tmp.replace(args.results)
    summary = {k: out[k] for k in ("equivalent_resolution", "speedup_at_equal_accuracy")}
    print(json.dumps(summary, indent=2, default=str))
    print(markdown(out, metrics))

    fig, ax = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1.25, 1, 1]})
    xs = [costs[f"plain_{n}"] for n in rungs]
    ys = [table[f"plain_{n}"][ladder.PRIMARY].mean() for n in rungs]
    ax[0].plot(xs, ys, "o-", color="k", label="plain solver (van Leer, SSP-RK3)")
    for n, x, y in zip(rungs, xs, ys):
        ax[0].annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 4))
    for name in models:
        ax[0].plot(costs[name], table[name][ladder.PRIMARY].mean(), "s", label=f"{coarse} cells: {labels[name]}")
    ax[0].set(xscale="log", yscale="log", xlabel="wall time per time unit per trajectory [s] (this CPU)")
    ax[0].set_ylabel(f"relative L2 error, mean over t <= {duration:g}")
    ax[0].legend(fontsize=6, loc="lower left")
    t = np.arange(args.horizon + 1) * ladder.DT
    reference = jnp.asarray(truth)
    shown = list(models)[:2]  # the headline and the next model; the rest are in the left panel
    for label, r in [*((f"plain {n}", runs[n]) for n in rungs), *((labels[name], runs[name]) for name in shown)]:
        err = np.mean([np.asarray(nnpde.metrics.rollout_error(a, b)) for a, b in zip(r, reference)], axis=0)
        ax[1].plot(t[1:], err[1:], "-" if label.startswith("plain") else "--", label=label)
    ax[1].set(yscale="log", xlabel="time", ylabel=f"relative L2 error against the truth ({coarse} cells)")
    ax[1].legend(fontsize=6, loc="lower right", ncol=2)
    x = np.linspace(0, 2 * np.pi, coarse, endpoint=False) + np.pi / coarse
    xf = np.linspace(0, 2 * np.pi, args.truth, endpoint=False) + np.pi / args.truth
    k = args.horizon // 2
    fine = np.asarray(ladder.rung(args.truth, starts[:1], horizon=k, score=args.truth))[0, k, 0]
    ax[2].plot(xf, fine, color="0.6", lw=3, label=f"truth ({args.truth} cells)")
    ax[2].step(x, runs[args.truth][0, k, 0], where="mid", color="k", label=f"truth on {coarse} cells")
    ax[2].step(x, runs[coarse][0, k, 0], where="mid", label=f"plain {coarse}")
    ax[2].step(x, runs[head][0, k, 0], where="mid", ls="--", label=f"learned {coarse}")
    ax[2].set(xlabel="x", ylabel=f"u at t = {k * ladder.DT:g} (first held-out state)")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=120)
    print(f"wrote {args.results} and {args.figure} in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
