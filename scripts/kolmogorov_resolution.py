r"""Equivalent resolution and wall-time speed-up of the learned Kolmogorov correction.

The question Kochkov et al. (PNAS 2021) answer for their learned solver: how fine must
the plain solver be to match the hybrid's accuracy, and how much faster is the hybrid
at equal accuracy? (They report 8-10x in resolution and 40-80x in speed, on TPU.)

Set-up (``problems.hybrid_kolmogorov``, the trained run's configuration): the held-out
initial states are the fine (``resolution * factor``-cell) turbulent states of the run's
evaluation seed. For every resolution ``r`` of ``--resolutions`` the plain solver (the
same projected RK4 with van Leer fluxes, at the same CFL number: the task's ``dt``
times ``resolution / r``) starts from the fine states restricted to ``r`` (MAC face
averages) and runs to the task's horizon; its final state, restricted to the coarse
grid, is compared with the reference there (relative L2 over ``u`` and ``v``, averaged
over the held-out trajectories: the task's metric). The hybrid (the trained correction
on the coarse grid) is scored the same way.

What the ``r^2`` state alone says: the reference solver itself, started from the
``r^2`` state with no sub-grid detail (``nnpde.upsample``: linear along the faces,
divergence-free), scored the same way. Its error is what exact dynamics make of that
information; a model of the coarse state that beats it has learned the missing detail's
effect from data, and the 4x target asks a ``16^2`` model to match the plain ``64^2``
solver, below this curve at ``32^2``.

* **Equivalent resolution**: where the plain solver's error-resolution curve (linear
  in log-log between measured points) crosses the hybrid's error, divided by the
  hybrid's resolution.
* **Speed-up at equal accuracy**: the plain solver's wall time per rollout at the
  equivalent resolution (log-log interpolation of the measured times) over the
  hybrid's (network included). Times: the whole held-out batch rolled out to the
  horizon, one compiled call (``jax.vmap`` over the batch), best of ``--repeats``,
  compilation excluded; all in this process, one after the other.
* **Against the horizon**: the errors and the equivalent resolution also at each of
  ``--horizons`` coarse steps (the states along the same runs), so the figure at the
  task's horizon can be seen in context. Times are for the task's horizon only.

Several trained runs of the same data (e.g. networks of different sizes) can be
compared in one call: the plain solver is measured once, each hybrid against it.

Launch (after ``nnpde train scripts/configs/kolmogorov.toml``):

    .venv/bin/python scripts/kolmogorov_resolution.py --run runs/kolmogorov [runs/other ...]

Writes ``resolution.json`` and ``resolution.png`` (left: error against resolution, each
hybrid's error and equivalent resolution marked, and the reference solver from each
resolution's state alone; middle: cost against error, the plain solver's curve and each
hybrid; right: the equivalent resolution against the horizon, ``--horizons``) to
``--out`` (default the first run's folder), and prints the tables.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from heat_throughput import best_time  # noqa: E402  (best of n, after a compiling call)


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--run", nargs="+", default=["runs/kolmogorov"], help="trained runs' folders (with config.toml), one data set"
    )
    p.add_argument("--out", default=None, help="folder for resolution.json and .png (default: the first run's)")
    p.add_argument("--resolutions", type=int, nargs="+", default=[16, 32, 64], help="plain-solver grids")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per solver (best kept)")
    p.add_argument(
        "--horizons",
        type=int,
        nargs="+",
        default=[4, 8, 16, 32, 64],
        help="coarse steps at which the errors and the equivalent resolution are also reported (the task's horizon "
        "is always one)",
    )
    args = p.parse_args()
    if min(args.horizons) < 1 or args.repeats < 1:
        p.error(
            f"--horizons and --repeats must be >= 1, got {args.horizons} and {args.repeats}. Fix: e.g. 4 8 16 and 5."
        )
    return args


def interpolate_loglog(x, xs, ys):
    """``y(x)`` on the piecewise-linear log-log curve through ``(xs, ys)``."""
    return float(np.exp(np.interp(np.log(x), np.log(xs), np.log(ys))))


def crossing(target, resolutions, errors):
    """The resolution where the (log-log, piecewise-linear) error curve first falls to
    ``target``; ``None`` if no measured resolution reaches it."""
    for (r0, e0), (r1, e1) in zip(zip(resolutions, errors), zip(resolutions[1:], errors[1:])):
        if e0 >= target >= e1:
            w = (np.log(target) - np.log(e0)) / (np.log(e1) - np.log(e0)) if e1 != e0 else 0.0
            return float(np.exp(np.log(r0) + w * (np.log(r1) - np.log(r0))))
    return None


def main() -> int:
    args = parse_args()
    import nnpde
    from nnpde import environment, load_config, load_task, metrics, restore_model, rollout, set_precision, stage_data
    from problems import hybrid_kolmogorov as hk

    runs = [Path(r) for r in args.run]
    configs = [load_config(r / "config.toml", [f'out="{r}"']) for r in runs]
    config = configs[0]
    set_precision(config)
    task = load_task(config)
    coarse, factor = task.attrs["resolution"], task.attrs["factor"]
    fine_n = coarse * factor
    bad = [r for r in args.resolutions if r % coarse or fine_n % r]
    if bad:
        raise SystemExit(f"resolutions {bad} must be multiples of {coarse} dividing {fine_n}. Fix: e.g. 16 32 64.")
    _, held_out, _ = stage_data(config, task, split=False)
    n_eval, horizon = held_out.shape[0], task.horizon
    print(f"{task.name}: {n_eval} held-out trajectories, horizon {horizon} x dt {task.dt}")

    # the fine held-out initial states (the same run as the data: seed, spin-up, spacing)
    fine = nnpde.ProjectedRK(hk.equation(fine_n), dt=task.dt / factor, method="rk4")
    u0_fine = hk.initial_states(
        config.data.eval_seed, n_eval, fine, spinup=task.attrs["spinup"], spacing=task.attrs["spacing"]
    )
    start = nnpde.downsample(u0_fine, factor, ndim=2, stagger=hk.STAGGER)
    if not np.allclose(start, held_out[:, 0], rtol=1e-5, atol=1e-5):
        raise SystemExit(
            f"the regenerated fine states do not restrict to the held-out data of {runs[0]}: the run's data were "
            "made with other settings. Fix: re-run nnpde generate/train with this configuration."
        )

    # every solver's trajectory, restricted to the coarse grid at every coarse step, to the
    # longest horizon asked for; the errors at the task's horizon make the main table
    horizons = sorted(set(args.horizons) | {horizon})
    longest = horizons[-1]

    def trajectory(step, u, every, restrict):
        return nnpde.generate_trajectories(
            step, u, longest * every, save_every=every, factor=restrict, ndim=2, stagger=hk.STAGGER
        )

    truth = trajectory(fine, u0_fine, factor, factor)  # (n_eval, longest + 1, 2, coarse, coarse)
    if not np.allclose(truth[:, horizon], held_out[:, horizon], rtol=1e-4, atol=1e-4):
        raise SystemExit(
            f"the regenerated reference does not match the held-out data of {runs[0]} at the horizon. "
            "Fix: re-run nnpde generate/train with this configuration."
        )

    def errors(traj):
        """Mean relative L2 error at each of ``horizons``."""
        return [
            float(jnp.mean(jax.vmap(lambda p, r: metrics.rollout_error(p[None], r[None])[0])(traj[:, h], truth[:, h])))
            for h in horizons
        ]

    at = horizons.index(horizon)
    rows, plain_by_h = [], []
    for r in args.resolutions:
        ratio = r // coarse
        stepper = nnpde.ProjectedRK(hk.equation(r), dt=task.dt / ratio, method="rk4")
        u0 = nnpde.downsample(u0_fine, fine_n // r, ndim=2, stagger=hk.STAGGER)
        plain_by_h.append(errors(trajectory(stepper, u0, ratio, ratio)))
        run_r = eqx.filter_jit(
            lambda s, u, n=horizon * ratio: jax.vmap(lambda v: rollout(s, v, n, trajectory=False))(u)
        )
        seconds = best_time(functools.partial(run_r, stepper, u0), args.repeats)
        rows.append({"solver": "plain", "resolution": r, "error": plain_by_h[-1][at], "seconds": seconds})
        print(f"plain {r:4d}^2: error {rows[-1]['error']:.4f}, {seconds * 1e3:9.2f} ms per batch rollout")
    # How much does the r^2 state itself say? The reference (fine) solver, started from the
    # r^2 state with its sub-grid detail removed (nnpde.upsample: no detail below r^2),
    # scored the same way: what the exact dynamics make of the r^2 information alone.
    information, information_by_h = [], []
    for r in args.resolutions:
        f = fine_n // r
        smooth = nnpde.upsample(nnpde.downsample(u0_fine, f, ndim=2, stagger=hk.STAGGER), f, ndim=2, stagger=hk.STAGGER)
        information_by_h.append(errors(trajectory(fine, smooth, factor, factor)))
        information.append({"resolution": r, "error": information_by_h[-1][at]})
        print(f"reference solver from the {r}^2 state alone: error {information[-1]['error']:.4f}")
    res = [row["resolution"] for row in rows]
    errs = [row["error"] for row in rows]
    secs = [row["seconds"] for row in rows]

    run_h = eqx.filter_jit(lambda m, u: jax.vmap(lambda v: rollout(m, v, horizon, trajectory=False))(u))
    hybrids = []
    for run, cfg in zip(runs, configs):
        own = load_task(cfg)
        if (
            own.attrs["resolution"] != coarse
            or own.attrs["factor"] != factor
            or cfg.data.eval_seed != config.data.eval_seed
        ):
            raise SystemExit(
                f"{run} was trained on other data than {runs[0]} (resolution, factor or eval seed differ). "
                "Fix: compare runs of one data set."
            )
        model, step = restore_model(cfg, own)
        seconds = best_time(functools.partial(run_h, model, start), args.repeats)
        by_h = errors(trajectory(model, start, 1, 1))
        error = by_h[at]
        equivalent = crossing(error, res, errs)
        h = {
            "run": str(run),
            "model_step": int(step),
            "network": {k: own.attrs[k] for k in ("hidden", "depth")},
            "resolution": coarse,
            "error": error,
            "seconds": seconds,
            "equivalent_resolution": equivalent,
            "resolution_factor": None if equivalent is None else equivalent / coarse,
            "speedup": None if equivalent is None else interpolate_loglog(equivalent, res, secs) / seconds,
            "by_horizon": by_h,
        }
        hybrids.append(h)
        print(
            f"hybrid {coarse:3d}^2 ({run}, step {step}): error {error:.4f}, {seconds * 1e3:9.2f} ms per batch rollout"
        )
        if equivalent is None:
            print(f"  its error {error:.4f} is not matched between {res[0]}^2 and {res[-1]}^2")
        else:
            print(
                f"  equivalent resolution {equivalent:.1f}^2 ({h['resolution_factor']:.2f}x), "
                f"speed-up at equal accuracy {h['speedup']:.2f}x"
            )
    by_horizon = []
    for k, n in enumerate(horizons):
        plain_k = [e[k] for e in plain_by_h]
        factors = []
        for h in hybrids:
            x = crossing(h["by_horizon"][k], res, plain_k)
            factors.append(None if x is None else x / coarse)
        by_horizon.append(
            {
                "steps": n,
                "time": n * task.dt,
                "plain": dict(zip(map(str, res), plain_k)),
                "reference_from_coarse_state": dict(zip(map(str, res), [e[k] for e in information_by_h])),
                "hybrids": [h["by_horizon"][k] for h in hybrids],
                "resolution_factors": factors,
            }
        )
        shown = ", ".join("-" if f is None else f"{f:.2f}x" for f in factors)
        print(
            f"t = {n * task.dt:5.2f}: plain "
            + " ".join(f"{e:.4f}" for e in plain_k)
            + ", hybrids "
            + " ".join(f"{h['by_horizon'][k]:.4f}" for h in hybrids)
            + f", equivalent resolution {shown}"
        )
    summary = {
        "runs": [str(r) for r in runs],
        "held_out": int(n_eval),
        "horizon_steps": int(horizon),
        "horizon_time": horizon * task.dt,
        "plain": rows,
        "reference_from_coarse_state": {
            "what": f"the reference ({fine_n}^2) solver from each resolution's state with the sub-grid detail "
            "removed (nnpde.upsample), scored like the solvers",
            "rows": information,
        },
        "hybrids": hybrids,
        "by_horizon": by_horizon,
        "timing": f"batch of {n_eval} rolled out to the horizon, best of {args.repeats}, compilation excluded",
        "environment": environment(),
    }
    out = Path(args.out) if args.out else runs[0]
    out.mkdir(parents=True, exist_ok=True)
    (out / "resolution.json").write_text(json.dumps(summary, indent=2))

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4.2))
    a.loglog(res, errs, "o-", color="k", label="plain solver")
    a.loglog(
        res,
        [row["error"] for row in information],
        "^--",
        color="0.5",
        label=f"reference ({fine_n}$^2$) solver from the $r^2$ state alone",
    )
    b.loglog(errs, np.asarray(secs) * 1e3, "o-", color="k", label="plain solver")
    for r, e, t in zip(res, errs, secs):
        b.annotate(f"{r}$^2$", (e, t * 1e3), textcoords="offset points", xytext=(4, 4))
    for i, h in enumerate(hybrids):
        label = (
            f"hybrid {coarse}$^2$, hidden {h['network']['hidden']}, depth {h['network']['depth']}, "
            f"step {h['model_step']}"
        )
        a.axhline(h["error"], color=f"C{i}", label=label)
        if h["equivalent_resolution"] is not None:
            a.axvline(h["equivalent_resolution"], color=f"C{i}", ls=":")
        b.loglog([h["error"]], [h["seconds"] * 1e3], "s", color=f"C{i}", label=label)
    a.set(xlabel="resolution (cells per side)", ylabel=f"relative L2 error at t = {horizon * task.dt:g}")
    a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    a.set_xticks(res, [str(r) for r in res])
    a.legend(fontsize=8)
    b.set(xlabel="error (lower is better)", ylabel="ms per batch rollout (lower is better)")
    b.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # the minor labels overlap
    b.set_xticks(errs, [f"{e:.3g}" for e in errs])  # labelled at the plain solver's errors
    b.legend(fontsize=8)
    times = [row["time"] for row in by_horizon]
    for i, h in enumerate(hybrids):
        factors = [row["resolution_factors"][i] for row in by_horizon]
        c.plot(times, [np.nan if f is None else f for f in factors], "s-", color=f"C{i}", label=h["run"])
    c.axvline(horizon * task.dt, color="0.6", ls=":", label="the task's horizon")
    c.set(xlabel="horizon (time units)", ylabel=f"equivalent resolution / {coarse}", ylim=(1, None))
    c.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "resolution.png", dpi=120)
    print(f"wrote {out / 'resolution.json'} and {out / 'resolution.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
