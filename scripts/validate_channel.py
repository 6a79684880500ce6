"""Plane channel flow (inflow/outflow boundaries) against plane Poiseuille flow.

For each resolution ``ny`` (``nx = 2 ny``, channel ``[0, 2] x [0, 1]``, ``nu = 1``,
``U = 1``) marches the parabolic-inflow channel to ``t = 1`` (from the analytic
parabola) and prints the downstream pressure gradient against ``-12 nu U / H^2``, its
relative error and the fitted order between successive resolutions, the steady
residual, the flux imbalance and the divergence; then a plug inflow at ``Re = 10``
(``nu = 0.1``, channel ``[0, 4] x [0, 1]``, ``ny = 17``) and its centreline speed
along ``x``. See ``problems.channel_flow``.

Measured on 2026-11-30 (2 shared CPU cores, 170 s in all): dp/dx relative error
2.2723e-2 / 5.8125e-3 / 1.4616e-3 at ny = 8 / 16 / 32 (orders 1.967, 1.992; the
predicted 1.5 (h/H)^2 / (1 + 2 (h/H)^2)), steady residual <= 4e-14, outflow - inflow
flux <= 2e-14, max|div| <= 2e-13; plug inflow at Re 10, ny 17: centreline 1.013 at the
first face, 1.4065 at x = 0.5, 1.49485 at the outlet (the discrete developed value
1.49485; 1.5 U as h -> 0).

Launch (from the repository root; PYTHONPATH=. makes a worktree import its own packages):

    PYTHONPATH=. nice -n 10 .venv/bin/python scripts/validate_channel.py --resolution 8 16 32
"""

import argparse
import math
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from problems import channel_flow  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--t-end", type=float, default=1.0)
    parser.add_argument("--plug-ny", type=int, default=17)
    parser.add_argument("--plug-t-end", type=float, default=8.0)
    args = parser.parse_args()
    previous = None
    for ny in args.resolution:
        start = time.perf_counter()
        eq, u0 = channel_flow.make(ny)
        u, residual = channel_flow.steady_run(eq, u0, t_end=args.t_end)
        f = channel_flow.figures(eq, u, args.t_end)
        p = eq.kinematic_pressure(args.t_end, u)  # the pressure solve agrees with G p = f
        dpdx_p = np.asarray((p[1:] - p[:-1]) / eq.grid.spacing[0])[p.shape[0] // 2 :].mean()
        order = "" if previous is None else f"  order {math.log2(previous / f['dpdx_error']):.3f}"
        previous = f["dpdx_error"]
        print(
            f"ny {ny:3d}: dp/dx {f['dpdx']:.10f} (exact -12; from p {dpdx_p:.10f}), rel. error "
            f"{f['dpdx_error']:.4e}{order}; residual {residual:.2e}, flux out - in "
            f"{f['flux_out'] - f['flux_in']:.2e}, max|div| {f['max_divergence']:.2e}; "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
    start = time.perf_counter()
    eq, u0 = channel_flow.make(args.plug_ny, length=4.0, viscosity=0.1, inflow="plug")
    u, residual = channel_flow.steady_run(eq, u0, t_end=args.plug_t_end)
    f = channel_flow.figures(eq, u, args.plug_t_end)
    h = 1.0 / args.plug_ny
    developed = 1.5 * (1 + h**2) / (1 + 2 * h**2)
    print(
        f"plug Re 10, ny {args.plug_ny}: centreline every 8th face {np.round(f['centreline'][::8], 4)}, "
        f"outlet {f['centreline'][-1]:.5f} (discrete developed {developed:.5f}, analytic 1.5); residual "
        f"{residual:.2e}, flux out - in {f['flux_out'] - f['flux_in']:.2e}; {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
