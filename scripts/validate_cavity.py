"""Lid-driven cavity against Ghia, Ghia & Shin, J. Comput. Phys. 48 (1982) 387.

Runs ``problems.lid_driven_cavity.solve`` to steady state at each Reynolds number and
resolution and prints the max deviation of the centreline velocities (``u`` on
``x = 0.5``, ``v`` on ``y = 0.5``) from Ghia et al.'s tables.

Launch (from the repository root; on 2 CPU cores Re = 100 at 128^2 took ~100 s and
Re = 1000 at 128^2 49 s, steady at t = 79; max deviations u / v 0.0048 / 0.0091 and
0.0030 / 0.0122 on 2026-11-26):

    .venv/bin/python scripts/validate_cavity.py --reynolds 100 1000 --resolution 128
"""

import argparse

import jax

jax.config.update("jax_enable_x64", True)

from problems import lid_driven_cavity  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reynolds", type=float, nargs="+", default=[100.0, 1000.0])
    parser.add_argument("--resolution", type=int, nargs="+", default=[128])
    parser.add_argument("--t-end", type=float, default=120.0)
    parser.add_argument("--tol", type=float, default=1e-5)
    args = parser.parse_args()
    for re in args.reynolds:
        for n in args.resolution:
            ds = lid_driven_cavity.solve(re, n, t_end=args.t_end, tol=args.tol)
            dev = lid_driven_cavity.compare_to_ghia(ds)
            print(
                f"Re {re:g}, {n}^2: max |u - Ghia| {dev['max_u']:.4f}, max |v - Ghia| {dev['max_v']:.4f}, "
                f"max {dev['max']:.4f}; residual {ds.attrs['residual']:.2e} at t {ds.attrs['t_final']:g} "
                f"(converged {bool(ds.attrs['converged'])}), max|div| {float(ds.max_divergence):.1e}, "
                f"{ds.attrs['wall_time_s']:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
