r"""Equivalent resolution and wall-time speed-up of the learned Kolmogorov correction.

The question Kochkov et al. (PNAS 2021) answer for their learned solver: how fine must
the plain solver be to match the hybrid's accuracy, and how much faster is the hybrid
at equal accuracy? (They report 8-10x in resolution and 40-80x in speed, on TPU.)

Set-up (``problems.hybrid_kolmogorov``, the trained run's configuration): the held-out
initial states are the fine (``16 * factor``-cell) turbulent states of the run's
evaluation seed. For every resolution ``r`` of ``--resolutions`` the plain solver (the
same projected RK4 with van Leer fluxes, at the same CFL number: ``dt = DT * 16 / r``)
starts from the fine states restricted to ``r`` (MAC face averages) and runs to the
task's horizon; its final state, restricted to the coarse grid, is compared with the
reference there (relative L2 over ``u`` and ``v``, averaged over the held-out
trajectories: the task's metric). The hybrid (the trained correction on the coarse
grid) is scored the same way.

* **Equivalent resolution**: where the plain solver's error-resolution curve (linear
  in log-log between measured points) crosses the hybrid's error, divided by the
  hybrid's resolution.
* **Speed-up at equal accuracy**: the plain solver's wall time per rollout at the
  equivalent resolution (log-log interpolation of the measured times) over the
  hybrid's (network included). Times: the whole held-out batch rolled out to the
  horizon, one compiled call (``jax.vmap`` over the batch), best of ``--repeats``,
  compilation excluded; all in this process, one after the other.

Launch (after ``nnpde train scripts/configs/kolmogorov.toml``):

    .venv/bin/python scripts/kolmogorov_resolution.py --run runs/kolmogorov

Writes ``resolution.json`` and ``resolution.png`` (error and time against resolution,
the hybrid marked) to the run folder, and prints the table.
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
    p.add_argument("--run", default="runs/kolmogorov", help="the trained run's folder (with config.toml)")
    p.add_argument("--resolutions", type=int, nargs="+", default=[16, 32, 64], help="plain-solver grids")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per solver (best kept)")
    return p.parse_args()


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
    from nnpde import metrics
    from nnpde._config import load_config
    from nnpde._rollout import rollout
    from nnpde._run import environment, load_task, restore_model, set_precision, stage_data
    from problems import hybrid_kolmogorov as hk

    run = Path(args.run)
    config = load_config(run / "config.toml", [f'out="{run}"'])
    set_precision(config)
    task = load_task(config)
    coarse, factor = task.attrs["resolution"], task.attrs["factor"]
    fine_n = coarse * factor
    bad = [r for r in args.resolutions if r % coarse or fine_n % r]
    if bad:
        raise SystemExit(f"resolutions {bad} must be multiples of {coarse} dividing {fine_n}. Fix: e.g. 16 32 64.")
    model, step = restore_model(config, task)
    _, held_out, _ = stage_data(config, task, split=False)
    n_eval, horizon = held_out.shape[0], task.horizon
    reference = jnp.asarray(held_out[:, horizon])
    print(f"{task.name}: model of step {step}, {n_eval} held-out trajectories, horizon {horizon} x dt {task.dt}")

    # the fine held-out initial states (the same run as the data: seed, spin-up, spacing)
    fine = nnpde.ProjectedRK(hk.equation(fine_n), dt=hk.DT / factor, method="rk4")
    u0_fine = hk.initial_states(
        config.data.eval_seed, n_eval, fine, spinup=task.attrs["spinup"], spacing=task.attrs["spacing"]
    )
    start = nnpde.downsample(u0_fine, factor, ndim=2, stagger=hk.STAGGER)
    if not np.allclose(start, held_out[:, 0], rtol=1e-5, atol=1e-5):
        raise SystemExit(
            f"the regenerated fine states do not restrict to the held-out data of {run}: the run's data were made "
            "with other settings. Fix: re-run nnpde generate/train with this configuration."
        )

    def score(final):
        return float(jnp.mean(jax.vmap(lambda p, r: metrics.rollout_error(p[None], r[None])[0])(final, reference)))

    rows = []
    for r in args.resolutions:
        ratio = r // coarse
        stepper = nnpde.ProjectedRK(hk.equation(r), dt=hk.DT / ratio, method="rk4")
        u0 = nnpde.downsample(u0_fine, fine_n // r, ndim=2, stagger=hk.STAGGER)
        run_r = eqx.filter_jit(
            lambda s, u, n=horizon * ratio: jax.vmap(lambda v: rollout(s, v, n, trajectory=False))(u)
        )
        final = nnpde.downsample(run_r(stepper, u0), ratio, ndim=2, stagger=hk.STAGGER)
        seconds = best_time(functools.partial(run_r, stepper, u0), args.repeats)
        rows.append({"solver": "plain", "resolution": r, "error": score(final), "seconds": seconds})
        print(f"plain {r:4d}^2: error {rows[-1]['error']:.4f}, {seconds * 1e3:9.2f} ms per batch rollout")

    run_h = eqx.filter_jit(lambda m, u: jax.vmap(lambda v: rollout(m, v, horizon, trajectory=False))(u))
    hybrid_seconds = best_time(functools.partial(run_h, model, start), args.repeats)
    hybrid_error = score(run_h(model, start))
    print(f"hybrid {coarse:3d}^2: error {hybrid_error:.4f}, {hybrid_seconds * 1e3:9.2f} ms per batch rollout")

    res = [row["resolution"] for row in rows]
    errs = [row["error"] for row in rows]
    secs = [row["seconds"] for row in rows]
    equivalent = crossing(hybrid_error, res, errs)
    summary = {
        "run": str(run),
        "model_step": int(step),
        "held_out": int(n_eval),
        "horizon_steps": int(horizon),
        "horizon_time": horizon * task.dt,
        "plain": rows,
        "hybrid": {"resolution": coarse, "error": hybrid_error, "seconds": hybrid_seconds},
        "equivalent_resolution": equivalent,
        "resolution_factor": None if equivalent is None else equivalent / coarse,
        "speedup": None if equivalent is None else interpolate_loglog(equivalent, res, secs) / hybrid_seconds,
        "timing": f"batch of {n_eval} rolled out to the horizon, best of {args.repeats}, compilation excluded",
        "environment": environment(),
    }
    if equivalent is None:
        print(f"the hybrid's error {hybrid_error:.4f} is not matched between {res[0]}^2 and {res[-1]}^2")
    else:
        print(
            f"equivalent resolution {equivalent:.1f}^2 ({summary['resolution_factor']:.2f}x), "
            f"speed-up at equal accuracy {summary['speedup']:.2f}x"
        )
    (run / "resolution.json").write_text(json.dumps(summary, indent=2))

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.loglog(res, errs, "o-", label="plain solver")
    a.axhline(hybrid_error, color="C1", label=f"hybrid ({coarse}$^2$)")
    if equivalent is not None:
        a.axvline(equivalent, color="C1", ls=":", label=f"equivalent {equivalent:.0f}$^2$")
    a.set(xlabel="resolution (cells per side)", ylabel=f"relative L2 error at t = {horizon * task.dt:g}")
    a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    a.set_xticks(res, [str(r) for r in res])
    a.legend()
    b.loglog(errs, np.asarray(secs) * 1e3, "o-", label="plain solver")
    b.loglog([hybrid_error], [hybrid_seconds * 1e3], "s", color="C1", label="hybrid")
    b.set(xlabel="error", ylabel="ms per batch rollout")
    b.legend()
    fig.tight_layout()
    fig.savefig(run / "resolution.png", dpi=120)
    print(f"wrote {run / 'resolution.json'} and {run / 'resolution.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
