"""Differentially heated cavity against de Vahl Davis, Int. J. Numer. Methods Fluids 3 (1983) 249.

Runs ``problems.heated_cavity.solve`` (Pr = 0.71) to steady state at each Rayleigh
number and resolution and prints, and writes to a JSON file
(``runs/validate_heated_cavity.json`` unless ``--json``), the mean hot-wall Nusselt
number and its deviation from de Vahl Davis's Table IV, the peak ``u`` on the vertical
mid-line and the peak ``v`` on the horizontal mid-line (values and positions, same
units ``kappa / L``), the steps, the steady residual reached and the wall time. With
``--continuation`` each resolution after the first starts from the previous
resolution's steady field of the same ``Ra`` (interpolated), which shortens the march;
the steady state reached does not depend on the start.

Launch (from the repository root; on 2 shared CPU cores, 2026-11-30, Nu +1.12 / +0.72 /
+0.50 % at Ra 1e5 in 49 / 43 / 80 s and +4.37 / +1.92 / +1.15 % at Ra 1e6 in 74 / 149 /
664 s; the table is in docs/validation.md):

    .venv/bin/python scripts/validate_heated_cavity.py --rayleigh 1e5 --resolution 64 80 96 --continuation
    .venv/bin/python scripts/validate_heated_cavity.py --rayleigh 1e6 --resolution 64 96 128 --continuation
"""

import argparse
import json
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

from problems import heated_cavity  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rayleigh", type=float, nargs="+", default=[1e5, 1e6])
    parser.add_argument("--resolution", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--t-end", type=float, default=2.0)
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--check-every", type=float, default=0.025)
    parser.add_argument("--fixed-dt", action="store_true", help="no step adaptation (for comparison)")
    parser.add_argument("--continuation", action="store_true", help="start each resolution from the previous one")
    parser.add_argument("--json", default="runs/validate_heated_cavity.json")
    args = parser.parse_args()
    rows = []
    for ra in args.rayleigh:
        previous = None
        for n in args.resolution:
            ds = heated_cavity.solve(
                rayleigh=ra,
                resolution=n,
                t_end=args.t_end,
                tol=args.tol,
                check_every=args.check_every,
                adaptive=not args.fixed_dt,
                initial=previous if args.continuation else None,
            )
            previous = ds
            a = ds.attrs
            row = {
                "rayleigh": ra,
                "resolution": n,
                "initial": a["initial"],
                "nusselt": a["nusselt"],
                "nusselt_reference": a.get("nusselt_reference"),
                "nusselt_deviation": a.get("nusselt_deviation"),
                **heated_cavity.midline_peaks(ds),
                "n_steps": a["n_steps"],
                "n_rejected": a["n_rejected"],
                "dt_final": a["dt"],
                "t_final": a["t_final"],
                "residual": a["residual"],
                "converged": bool(a["converged"]),
                "max_divergence": float(ds.max_divergence),
                "wall_time_s": a["wall_time_s"],
            }
            rows.append(row)
            dev = row["nusselt_deviation"]
            dev_text = "" if dev is None else f" ({100 * dev:+.2f} % vs {row['nusselt_reference']})"
            peaks = f"u_max {row['u_max']:.3f} at y {row['u_max_y']:.3f}, "
            peaks += f"v_max {row['v_max']:.3f} at x {row['v_max_x']:.4f}"
            if "u_max_reference" in row:
                peaks += (
                    f" (ref {row['u_max_reference']} at {row['u_max_y_reference']}, "
                    f"{row['v_max_reference']} at {row['v_max_x_reference']}; "
                    f"{100 * row['u_max_deviation']:+.2f} % / {100 * row['v_max_deviation']:+.2f} %)"
                )
            print(
                f"Ra {ra:g}, {n}^2 from {row['initial']}: Nu {row['nusselt']:.5f}{dev_text}; {peaks}; "
                f"{row['n_steps']} steps ({row['n_rejected']} intervals redone, final dt {row['dt_final']:.3e}), "
                f"residual {row['residual']:.2e} at t {row['t_final']:g} (converged {row['converged']}), "
                f"max|div| {row['max_divergence']:.1e}, {row['wall_time_s']:.0f} s",
                flush=True,
            )
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
