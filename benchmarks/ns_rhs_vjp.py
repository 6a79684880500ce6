"""Cost of the Navier-Stokes right-hand side's reverse-mode derivative: JAX's own
transpose of the stencils (``differentiation="autodiff"``) against the hand-written
adjoint (``"adjoint"``, the default), and of the FFT projection's.

For central and van Leer fluxes on a periodic ``n x n`` grid (default 256^2), float32,
one seeded Kolmogorov initial velocity: the right-hand side ``f(u)`` and its VJP
``g -> J^T g`` (the forward is dead code in it and not timed), each jitted, best of
``--repeats`` calls (compilation excluded), and the same for ``project``.

Launch (from the repository root; runs in .venv or .venv-bench):

    .venv/bin/python benchmarks/ns_rhs_vjp.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from problems import kolmogorov
from solvers.navier_stokes import NavierStokes2D


def best(f, *args, repeats):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--repeats", type=int, default=31)
    args = p.parse_args()
    grid = kolmogorov.make_grid(args.n)
    u0 = jnp.asarray(kolmogorov.initial_velocity(grid, 0, max_velocity=3.0), jnp.float32)
    g = jnp.asarray(np.random.default_rng(0).standard_normal(u0.shape), jnp.float32)
    print(f"{args.n}^2 float32, best of {args.repeats}; times in ms")
    print("| advection | differentiation | f(u) | VJP of f | project | VJP of project |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for advection in ("central", "van_leer"):
        for differentiation in ("autodiff", "adjoint"):
            eq = NavierStokes2D(grid, viscosity=1e-3, advection=advection, differentiation=differentiation)
            rate = jax.jit(lambda u, eq=eq: eq(0.0, u))
            rate_vjp = jax.jit(lambda u, g, eq=eq: jax.vjp(lambda v: eq(0.0, v), u)[1](g))
            project = jax.jit(lambda u, eq=eq: eq.project(u))
            project_vjp = jax.jit(lambda u, g, eq=eq: jax.vjp(eq.project, u)[1](g))
            times = [
                1e3 * best(f, *a, repeats=args.repeats)
                for f, a in ((rate, (u0,)), (rate_vjp, (u0, g)), (project, (u0,)), (project_vjp, (u0, g)))
            ]
            print(f"| {advection} | {differentiation} | " + " | ".join(f"{t:.3f}" for t in times) + " |")


if __name__ == "__main__":
    main()
