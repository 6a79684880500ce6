r"""The hand-written reverse-mode rule (custom VJP) of ``NavierStokes2D``'s periodic
right-hand side ``R(u, nu) = nu laplacian_h u - div(u u)`` (``differentiation="adjoint"``).

``periodic_rate(u, viscosity, spacing, scheme)`` is ``solvers._momentum_flux.stencil_rate``
on ``u`` wrap-padded (a periodic, unsplit 2-D MAC grid; ``"central"`` or ``"van_leer"``
fluxes) with this VJP, for a cotangent ``g``::

    u_bar  = nu laplacian_h g - J^T g,    nu_bar = sum(g laplacian_h u),

``J`` the Jacobian of ``div(u u)`` at ``u`` (``_flux_divergence_transpose``; the
5-point Laplacian is symmetric: its own transpose). It equals JAX's derivative of the
stencils to round-off (tests/test_navier_stokes.py::test_adjoint_equals_autodiff).
Reverse mode only: ``jax.jvp`` through it raises.

Why by hand: JAX's automatic transpose of the padded-window stencils turns every
window into a zero-padded array and sums them; on the CPU XLA then fuses those sums
with the limiter's divisions into one loop that recomputes them per shifted read. The
adjoint below is the same stencil algebra written as a gather: the limiter's
quantities are evaluated once on the grid extended by ``_EXTEND`` cells, from ``u``
wrap-padded once, and every shifted read is a window of an extended array or of the
wrap-padded cotangent. Nothing but ``u`` is saved: in a differentiated ``lax.scan`` the
limiter is recomputed in the reverse loop, which costs less than storing its partials
per step and reading them back. The two velocity components are assembled separately,
then stacked: a subtraction on the stacked pair fused around the stack made XLA emit
one loop several times slower (measured when the cotangent comes from the projection).
At 256^2, float32 (benchmarks/ns_step.py, three runs, BENCHMARKS.md): a 20-step
rollout's gradient costs 1.7-3.2 forward passes with van Leer forward Euler and 1.5-2.4
with van Leer RK4 (5-6 and 2.9-4.2 with the previous adjoint, which saved the
limiter's partials; benchmarks/ns_adjoint_ab.py).

Reference: Griewank & Walther, *Evaluating Derivatives*, 2nd ed., SIAM 2008 (reverse
mode, hand-written adjoints).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from nnpde import fd

from ._momentum_flux import stencil_rate

_EXTEND = 2  # the extended grid: faces j in [-_EXTEND, n + _EXTEND) along both axes
_PAD_U = _EXTEND + 2  # the limiter reads two cells beyond a face
_PAD_G = _EXTEND + 1  # flux_bar reads one cell below a face


def _unit(axis: int, k: int) -> tuple[int, int]:
    return (k, 0) if axis == 0 else (0, k)


def _window(padded, pad: int, offset=(0, 0), extend: int = 0):
    """``x[j + offset]`` for ``j`` on the grid extended by ``extend`` cells (the last two
    axes), from ``x`` wrap-padded by ``pad >= extend + max|offset|``."""
    n0, n1 = (padded.shape[-2 + b] - 2 * pad + 2 * extend for b in range(2))
    s0, s1 = (pad - extend + offset[b] for b in range(2))
    return padded[..., s0 : s0 + n0, s1 : s1 + n1]


def _faces(padded, pad: int, c: int, a: int, scheme: str):
    """On the faces normal to ``a`` of component ``c``'s volumes (face ``j`` between cells
    ``j - e_a`` and ``j``), over the extended grid: the advecting velocity
    ``vel = (u_a[j - e_c] + u_a[j]) / 2``, the face value of ``q = u_c`` and its partial
    derivatives w.r.t. ``q[j - 2 e_a], q[j - e_a], q[j], q[j + e_a]`` (``None``: zero).
    Van Leer: the limited value ``centre + r s / (r + s)`` (``r s > 0``, else ``centre``),
    ``r = centre - up``, ``s = down - centre`` on the upwind side (``fd.advective_flux``),
    whose derivatives w.r.t. ``r`` and ``s`` are ``s^2 / (r + s)^2`` and ``r^2 / (r + s)^2``."""

    def at(comp, offset):
        return _window(padded[comp], pad, offset, _EXTEND)

    vel = 0.5 * (at(a, _unit(c, -1)) + at(a, (0, 0)))
    if scheme == "central":
        return vel, 0.5 * (at(c, _unit(a, -1)) + at(c, (0, 0))), (None, 0.5, 0.5, None)
    m2, m1, q, p1 = (at(c, _unit(a, k)) for k in (-2, -1, 0, 1))
    positive = vel > 0
    up, centre, down = (jnp.where(positive, x, y) for x, y in ((m2, p1), (m1, q), (q, m1)))
    r, s = centre - up, down - centre
    smooth = r * s > 0
    total = jnp.where(smooth, r + s, 1.0)
    zero = jnp.zeros_like(r)
    face = centre + jnp.where(smooth, r * s / total, zero)
    d_r = jnp.where(smooth, (s / total) ** 2, zero)  # d face / d r
    d_s = jnp.where(smooth, (r / total) ** 2, zero)  # d face / d s
    mid = 1.0 + d_r - d_s  # d face / d centre
    # (up, centre, down) = (q[j-2], q[j-1], q[j]) where vel > 0, else (q[j+1], q[j], q[j-1])
    partials = (
        jnp.where(positive, -d_r, zero),
        jnp.where(positive, mid, d_s),
        jnp.where(positive, d_s, mid),
        jnp.where(positive, zero, -d_r),
    )
    return vel, face, partials


def _flux_divergence_transpose(u_padded, g_padded, spacing, scheme: str):
    """``[J^T g]_b`` for ``b = 0, 1``: the adjoint of ``flux_divergence`` at ``u`` on a
    periodic, unsplit domain (``N_c = sum_a (F_ca[j + e_a] - F_ca[j]) / h_a``, ``F_ca =
    vel_ca face_ca``), as two arrays, from ``u`` and ``g`` wrap-padded by ``_PAD_U`` and
    ``_PAD_G``. With ``flux_bar = (g_c[j - e_a] - g_c[j]) / h_a``: ``u_c`` gets
    ``sum_k (flux_bar vel d face / d q[j + k e_a])[j - k e_a]`` and ``u_a`` gets
    ``(flux_bar face / 2)[j] + (flux_bar face / 2)[j + e_c]``."""
    out = [0.0, 0.0]
    for c in range(2):
        for a, h in enumerate(spacing):
            vel, face, partials = _faces(u_padded, _PAD_U, c, a, scheme)
            g_ext = [_window(g_padded[c], _PAD_G, offset, _EXTEND) for offset in (_unit(a, -1), (0, 0))]
            flux_bar = (g_ext[0] - g_ext[1]) / h
            face_bar = flux_bar * vel
            for k, partial in zip((-2, -1, 0, 1), partials):
                if partial is not None:
                    out[c] = out[c] + _window(face_bar * partial, _EXTEND, _unit(a, -k))
            vel_bar = 0.5 * flux_bar * face
            out[a] = out[a] + _window(vel_bar, _EXTEND) + _window(vel_bar, _EXTEND, _unit(c, 1))
    return out


def _wrap_pad(u, w: int):
    return jnp.pad(u, [(0, 0)] * (u.ndim - 2) + [(w, w)] * 2, mode="wrap")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def periodic_rate(u, viscosity, spacing, scheme: str):
    """``nu laplacian_h u - div(u u)`` on a periodic, unsplit domain, with a hand-written VJP."""
    w = 2 if scheme == "van_leer" else 1
    return stencil_rate(_wrap_pad(u, w), viscosity, u.shape[1:], spacing, w, scheme)


def _periodic_rate_fwd(u, viscosity, spacing, scheme):
    return periodic_rate(u, viscosity, spacing, scheme), (u, viscosity)


def _periodic_rate_bwd(spacing, scheme, residuals, g):
    u, viscosity = residuals
    u_padded, g_padded = _wrap_pad(u, _PAD_U), _wrap_pad(g, _PAD_G)  # each padded once
    laplacian_g = fd.laplacian(g_padded, spacing, width=_PAD_G)  # symmetric: its own transpose
    advection_bar = _flux_divergence_transpose(u_padded, g_padded, spacing, scheme)
    # per component, then stacked (module docstring)
    u_bar = jnp.stack([viscosity * laplacian_g[b] - advection_bar[b] for b in range(2)])
    viscosity_bar = jnp.sum(g * fd.laplacian(u_padded, spacing, width=_PAD_U))
    return u_bar.astype(g.dtype), viscosity_bar.astype(viscosity.dtype).reshape(viscosity.shape)


periodic_rate.defvjp(_periodic_rate_fwd, _periodic_rate_bwd)
