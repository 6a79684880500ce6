"""A/B of the Navier-Stokes adjoint's formulation (issue: fluid solvers).

The custom VJP of the periodic right-hand side (``solvers._ns_adjoint.periodic_rate``)
is installed with ``defvjp`` in two forms, in this one process:

* "library": the current rule (saves ``u`` only; the backward evaluates the limiter
  once on an extended grid and reads every shift as a window of a padded array);
* "saved partials": the previous rule (kept here as the baseline): the forward rule
  saves, per component and axis, the advecting velocity, the face value and the van
  Leer limiter's two partial derivatives; the backward shifts computed products by
  periodic concatenation.

Measured for each: the 20-step rollout's grad/forward ratio for van Leer forward
Euler, van Leer RK4 and central RK4 (256^2, float32, ``dt = 1.75e-3``, best of 7,
compilation excluded), twice round; the two rules' gradients are compared.

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

import solvers._ns_adjoint as ns  # noqa: E402
from nnpde import fd  # noqa: E402
from problems import kolmogorov  # noqa: E402


# --------------------------------------------------------------- the previous rule
def _wrap(q, axis: int, lo: int, hi: int):
    """``q`` extended periodically by ``lo`` cells below and ``hi`` above along ``axis``,
    materialised (``optimization_barrier``), so the shifted windows of it are plain reads."""
    n = q.shape[axis]
    parts = [jax.lax.slice_in_dim(q, n - lo, n, axis=axis)] if lo else []
    parts += [q] + ([jax.lax.slice_in_dim(q, 0, hi, axis=axis)] if hi else [])
    return jax.lax.optimization_barrier(jnp.concatenate(parts, axis=axis))


def _shifts(q, axis: int, offsets):
    """``[q[i + k] for k in offsets]`` along the periodic ``axis``."""
    lo, hi = max(0, -min(offsets)), max(0, max(offsets))
    padded, n = _wrap(q, axis, lo, hi), q.shape[axis]
    return [jax.lax.slice_in_dim(padded, lo + k, lo + k + n, axis=axis) for k in offsets]


def _van_leer_partials(up, centre, down):
    """The limited face value ``centre + a b / (a + b)`` (``a b > 0``, else ``centre``),
    ``a = centre - up``, ``b = down - centre``, and its derivatives ``b^2 / (a + b)^2``
    w.r.t. ``a`` and ``a^2 / (a + b)^2`` w.r.t. ``b`` (the van Leer limiter, ``fd.advective_flux``)."""
    a, b = centre - up, down - centre
    smooth = a * b > 0
    s = jnp.where(smooth, a + b, 1.0)
    zero = jnp.zeros_like(a)
    return (
        centre + jnp.where(smooth, a * b / s, zero),
        jnp.where(smooth, (b / s) ** 2, zero),
        jnp.where(smooth, (a / s) ** 2, zero),
    )


def _transpose_residuals(u, scheme: str):
    """What the adjoint of ``flux_divergence`` needs of the state ``u``, per component
    ``c`` and axis ``a`` (``res[c][a]``): the advecting velocity ``vel_ca`` on the faces,
    the face value ``face_ca`` and, for van Leer, the limiter's partial derivatives.
    Computed by the forward rule and saved: in a differentiated ``lax.scan`` they are
    then stored per step and read back, instead of the limiter being re-evaluated
    (and, on the CPU, fused into every shifted read) in the reverse loop."""
    res = [[None, None], [None, None]]
    for c in range(2):
        q = u[c]
        for a in range(2):
            (below_c,) = _shifts(u[a], c, [-1])
            vel = 0.5 * (below_c + u[a])
            if scheme == "central":
                (m1,) = _shifts(q, a, [-1])
                res[c][a] = (vel, 0.5 * (m1 + q))
            else:
                m2, m1, p1 = _shifts(q, a, [-2, -1, 1])
                positive = vel > 0
                # the upwind side's three cells: (q[i-2], q[i-1], q[i]) or (q[i+1], q[i], q[i-1])
                up, centre, down = (jnp.where(positive, x, y) for x, y in ((m2, p1), (m1, q), (q, m1)))
                res[c][a] = (vel, *_van_leer_partials(up, centre, down))
    return res


def _flux_divergence_transpose(res, g, spacing, scheme: str):
    """``J^T g`` of ``div(u u)`` at ``u`` on a periodic, unsplit domain (the adjoint of
    ``flux_divergence``: ``N_c = sum_a (F_ca[i + 1] - F_ca[i]) / h_a``, ``F_ca = vel_ca
    face_ca``, ``vel_ca = (u_a[i - e_c] + u_a[i]) / 2``, ``face_ca`` the central or van Leer
    value of ``u_c`` on face ``i - 1/2`` along ``a``), from ``_transpose_residuals(u)``."""
    parts = [[None, None], [None, None]]  # parts[b][c]: the cotangent of u_b from N_c
    for c in range(2):
        q_bar = 0.0
        for a, h in enumerate(spacing):
            vel, face, *partials = res[c][a]
            (g_below,) = _shifts(g[c], a, [-1])
            flux_bar = (g_below - g[c]) / h
            face_bar = flux_bar * vel
            if scheme == "central":
                (above,) = _shifts(face_bar, a, [1])
                q_bar = q_bar + 0.5 * (above + face_bar)
            else:
                wa, wb = partials
                positive = vel > 0
                zero = jnp.zeros_like(face_bar)
                # d face / d (q[i-2], q[i-1], q[i+1], q[i]): (up, centre, down) -> -wa, 1 + wa - wb, wb
                on_centre = jnp.where(positive, wb, 1.0 + wa - wb) * face_bar
                # face i reads q[i + k], k = -2, -1, 1: q_bar[j] gathers that part at j - k
                (from_below2,) = _shifts(jnp.where(positive, -wa, zero) * face_bar, a, [2])
                (from_below,) = _shifts(jnp.where(positive, 1.0 + wa - wb, wb) * face_bar, a, [1])
                (from_above,) = _shifts(jnp.where(positive, zero, -wa) * face_bar, a, [-1])
                q_bar = q_bar + from_below2 + from_below + on_centre + from_above
            vel_bar = flux_bar * face
            (vel_above,) = _shifts(vel_bar, c, [1])
            parts[a][c] = jax.lax.optimization_barrier(0.5 * (vel_above + vel_bar))
        parts[c][c] = parts[c][c] + jax.lax.optimization_barrier(q_bar)
    return jnp.stack([parts[b][0] + parts[b][1] for b in range(2)])


def previous_fwd(u, viscosity, spacing, scheme):
    saved = _transpose_residuals(u, scheme) if scheme == "van_leer" else None
    return ns.periodic_rate(u, viscosity, spacing, scheme), (u, saved, viscosity)


def previous_bwd(spacing, scheme, residuals, g):
    u, saved, viscosity = residuals
    res = _transpose_residuals(u, scheme) if saved is None else saved

    def laplacian(x):
        return fd.laplacian(ns._wrap_pad(x, 1), spacing, width=1)

    u_bar = viscosity * laplacian(g) - _flux_divergence_transpose(res, g, spacing, scheme)
    viscosity_bar = jnp.sum(g * laplacian(u))
    return u_bar.astype(g.dtype), viscosity_bar.astype(viscosity.dtype).reshape(viscosity.shape)


# --------------------------------------------------------------------------- A/B
VARIANTS = {
    "saved partials (previous)": (previous_fwd, previous_bwd),
    "library": (ns._periodic_rate_fwd, ns._periodic_rate_bwd),
}
CASES = [("van Leer FE", ("van_leer", "forward_euler")), ("van Leer RK4", ("van_leer",)), ("central RK4", ("central",))]


def main():
    n, steps, dt = 256, 20, 1.75e-3
    u0 = jnp.asarray(kolmogorov.initial_velocity(kolmogorov.make_grid(n), 0, max_velocity=3.0), jnp.float32)
    gradients = {}
    try:
        for _ in range(2):
            for name, (fwd, bwd) in VARIANTS.items():
                ns.periodic_rate.defvjp(fwd, bwd)
                cells = []
                for case, args in CASES:
                    forward, _, _ = make_nnpde(n, dt, steps, *args)
                    f = jax.jit(forward)
                    g = jax.jit(jax.grad(lambda x, forward=forward: jnp.sum(forward(x) ** 2)))
                    gradients[name, case] = g(u0)
                    t_f = best_time(functools.partial(f, u0), 7)
                    t_g = best_time(functools.partial(g, u0), 7)
                    cells.append(f"{case}: {1e3 * t_f / steps:.2f} ms/step, grad/fwd {t_g / t_f:.2f}")
                print(f"{name:<26} | " + " | ".join(cells), flush=True)
    finally:
        ns.periodic_rate.defvjp(ns._periodic_rate_fwd, ns._periodic_rate_bwd)
    for case, _ in CASES:
        a, b = (gradients[name, case] for name in VARIANTS)
        difference = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
        print(f"{case}: max |library - previous| / max |previous| = {difference:.2e}")


if __name__ == "__main__":
    main()
