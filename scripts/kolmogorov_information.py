r"""How much of the Kolmogorov flow a coarse state holds: the plain solver against the
reference solver started from the coarse state alone, for any coarse grid.

For a coarse grid of ``--coarse`` cells per side and a reference ``--factor`` times
finer (``problems.hybrid_kolmogorov``'s flow, spin-up and spacing; every solver at the
CFL number of the task's 16^2 step, ``dt = DT * 16 / r``): held-out fine states of seed
``--seed`` are restricted to each resolution ``r`` between the coarse and the reference
grid (MAC face averages) and

* the plain solver of ``r`` cells runs from them to ``--time``;
* the reference solver runs from the ``r^2`` state with the sub-grid detail removed
  (``nnpde.upsample``: no detail below ``r^2``, divergence-free): what exact dynamics
  make of the ``r^2`` information alone.

Each final state is restricted to the coarse grid and compared with the reference run
(relative L2 over ``u`` and ``v``, averaged over the samples: the metric of
``nnpde train``'s Kolmogorov task and ``scripts/kolmogorov_resolution.py``). A hybrid of
the coarse grid sees only the coarse state: to match the plain solver at ``k`` times its
resolution it has to beat the reference solver started from the ``k/2``-times finer
state, i.e. have learned the effect of detail it never sees.

No trained model is needed. Launch (the default: the task's 16^2 set-up, 8 samples,
about 1 minute on one core; ``--coarse 32`` needs a 256^2 reference, about 6 minutes
with 4 samples):

    .venv/bin/python scripts/kolmogorov_information.py --out runs/kolmogorov_information
    .venv/bin/python scripts/kolmogorov_information.py --coarse 32 --samples 4 --out runs/kolmogorov_information_32

Writes ``information.json`` to ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--coarse", type=int, default=16, help="coarse cells per side (a multiple of 8)")
    p.add_argument("--factor", type=int, default=8, help="the reference's refinement (a power of 2)")
    p.add_argument("--samples", type=int, default=8, help="held-out states (one fine run, --seed)")
    p.add_argument("--seed", type=int, default=1000, help="seed of the fine run (the task's eval seed: 1000)")
    p.add_argument("--time", type=float, default=0.64, help="horizon in time units (the task's: 16 x 0.04)")
    p.add_argument("--out", default="runs/kolmogorov_information", help="folder for information.json")
    args = p.parse_args()
    if args.samples < 1 or not (0 < args.time < float("inf")):
        p.error(
            f"--samples must be >= 1 and --time positive, got {args.samples} and {args.time}. Fix: e.g. 8 and 0.64."
        )
    return args


def main() -> int:
    args = parse_args()
    if args.coarse < 8 or args.coarse % 8 or args.factor < 2 or args.factor & (args.factor - 1):
        raise SystemExit(
            f"--coarse must be a multiple of 8 and --factor a power of 2 >= 2, got {args.coarse} and {args.factor}. "
            "Fix: e.g. --coarse 16 --factor 8."
        )
    import nnpde
    from nnpde import environment, metrics
    from problems import hybrid_kolmogorov as hk

    fine_n = args.coarse * args.factor

    def stepper(r):
        return nnpde.ProjectedRK(hk.equation(r), dt=hk.DT * 16 / r, method="rk4")

    def restrict(u, r):
        return nnpde.downsample(u, u.shape[-1] // r, ndim=2, stagger=hk.STAGGER)

    def final(r, u):
        s = stepper(r)
        n = round(args.time / s.dt)
        return restrict(nnpde.generate_trajectories(s, u, n, save_every=n, ndim=2)[:, -1], args.coarse)

    start = time.perf_counter()
    fine = stepper(fine_n)
    u0 = hk.initial_states(args.seed, args.samples, fine, spinup=hk.SPINUP, spacing=hk.SPACING)
    truth = final(fine_n, u0)
    print(f"{args.samples} fine {fine_n}^2 states and their reference runs: {time.perf_counter() - start:.0f} s")

    def error(u):
        return float(jnp.mean(jax.vmap(lambda p, q: metrics.rollout_error(p[None], q[None])[0])(u, truth)))

    rows = []
    r = args.coarse
    while r < fine_n:
        f = fine_n // r
        smooth = nnpde.upsample(restrict(u0, r), f, ndim=2, stagger=hk.STAGGER)
        rows.append(
            {
                "resolution": r,
                "plain": error(final(r, restrict(u0, r))),
                "reference_from_state": error(final(fine_n, smooth)),
                "subgrid_energy_fraction": float(jnp.sum((u0 - smooth) ** 2) / jnp.sum(u0**2)),
            }
        )
        print(
            f"{r:4d}^2: plain solver {rows[-1]['plain']:.4f}, reference solver from the {r}^2 state alone "
            f"{rows[-1]['reference_from_state']:.4f} (sub-grid energy {rows[-1]['subgrid_energy_fraction']:.1%})",
            flush=True,
        )
        r *= 2
    summary = {
        "coarse": args.coarse,
        "reference": fine_n,
        "samples": args.samples,
        "seed": args.seed,
        "time": args.time,
        "metric": f"relative L2 of (u, v) on the {args.coarse}^2 grid at t = {args.time}, mean over the samples",
        "rows": rows,
        "seconds": time.perf_counter() - start,
        "environment": environment(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "information.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'information.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
