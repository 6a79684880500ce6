"""A/B of the residuals the Navier-Stokes adjoint saves (issue: fluid solvers).

The custom VJP of the periodic right-hand side (``solvers.navier_stokes._periodic_rate``)
can save ``u`` only and recompute the limiter in the backward, save the limiter's
partials only, or save both (the library's choice). Each variant is installed with
``defvjp`` in turn, in this one process, and the 20-step rollout's grad/forward ratio
is measured for central RK4, van Leer RK4 and van Leer forward Euler (256^2, float32,
``dt = 1.75e-3``, best of 7, compilation excluded), twice round.

Launch: ``.venv/bin/python benchmarks/ns_adjoint_ab.py``
"""

import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from heat_throughput import best_time  # noqa: E402
from ns_step import make_nnpde  # noqa: E402

import solvers.navier_stokes as ns  # noqa: E402
from nnpde import fd  # noqa: E402
from problems import kolmogorov  # noqa: E402


def lap(x, spacing):
    return fd.laplacian(ns._wrap_pad(x, 1), spacing, width=1)


def recompute_fwd(u, nu, spacing, scheme):
    return ns._periodic_rate(u, nu, spacing, scheme), (u, nu)


def recompute_bwd(spacing, scheme, residuals, g):
    u, nu = residuals
    res = ns._transpose_residuals(u, scheme)
    u_bar = nu * lap(g, spacing) - ns._flux_divergence_transpose(res, g, spacing, scheme)
    return u_bar, jnp.sum(g * lap(u, spacing)).astype(nu.dtype).reshape(nu.shape)


def partials_fwd(u, nu, spacing, scheme):
    return ns._periodic_rate(u, nu, spacing, scheme), (ns._transpose_residuals(u, scheme), lap(u, spacing), nu)


def partials_bwd(spacing, scheme, residuals, g):
    res, laplacian_u, nu = residuals
    u_bar = nu * lap(g, spacing) - ns._flux_divergence_transpose(res, g, spacing, scheme)
    return u_bar, jnp.sum(g * laplacian_u).astype(nu.dtype).reshape(nu.shape)


VARIANTS = {
    "u only (recompute)": (recompute_fwd, recompute_bwd),
    "partials, not u": (partials_fwd, partials_bwd),
    "partials and u (library)": (ns._periodic_rate_fwd, ns._periodic_rate_bwd),
}
CASES = [("central RK4", ("central",)), ("van Leer RK4", ("van_leer",)), ("van Leer FE", ("van_leer", "forward_euler"))]


def main():
    n, steps, dt = 256, 20, 1.75e-3
    u0 = jnp.asarray(kolmogorov.initial_velocity(kolmogorov.make_grid(n), 0, max_velocity=3.0), jnp.float32)
    try:
        for _ in range(2):
            for name, (fwd, bwd) in VARIANTS.items():
                ns._periodic_rate.defvjp(fwd, bwd)
                cells = []
                for case, args in CASES:
                    forward, _, _ = make_nnpde(n, dt, steps, *args)
                    f = jax.jit(forward)
                    g = jax.jit(jax.grad(lambda x, forward=forward: jnp.sum(forward(x) ** 2)))
                    t_f = best_time(functools.partial(f, u0), 7)
                    t_g = best_time(functools.partial(g, u0), 7)
                    cells.append(f"{case}: {1e3 * t_f / steps:.2f} ms/step, grad/fwd {t_g / t_f:.2f}")
                print(f"{name:<26} | " + " | ".join(cells), flush=True)
    finally:
        ns._periodic_rate.defvjp(ns._periodic_rate_fwd, ns._periodic_rate_bwd)


if __name__ == "__main__":
    main()
