r"""Incompressible Navier-Stokes in 2-D on a staggered (MAC) grid: periodic axes, no-slip
or moving walls, and inflow/outflow faces (``walls``).

The pressure solves are ``solvers.pressure``'s: FFT (periodic), DCT (walls) and
preconditioned CG (any of these; chosen by ``"auto"`` with an outflow, whose ``p = 0``
face has no fast transform here). Inflow/outflow storage convention: see
``NavierStokes2D``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import nnpde
from nnpde import AbstractProjectedIMEXEquation, State, fd

from . import pressure

ADVECTION_SCHEMES = ("central", "van_leer")
DIFFERENTIATION = ("adjoint", "autodiff")
# The van Leer stencil reaches two cells either side of a face; with fewer than four
# cells per axis a periodic stencil would read one cell twice.
MIN_CELLS = 4


def face_centres(
    grid: nnpde.Grid, bc: nnpde.BoundaryConditions | None = None
) -> tuple[tuple[jnp.ndarray, jnp.ndarray], ...]:
    """Meshes of the staggered positions: ``((x_u, y_u), (x_v, y_v))``, each ``grid.shape``.

    ``u[i, j]`` at ``(x_i, y_{j+1/2})``, ``v[i, j]`` at ``(x_{i+1/2}, y_j)``, with
    ``x_i = lo + i h`` (the lower faces; see ``solvers.pressure``). On an inflow/outflow
    axis of ``bc`` its normal component sits on the upper faces, ``x_{i+1}``.
    """
    out = []
    for a in range(2):
        upper = bc is not None and pressure.axis_layout(bc, a) == "channel"
        start = [1 if (upper and i == a) else 0 for i in range(2)]
        out.append(tuple(c[tuple(slice(s0, s0 + n) for s0, n in zip(start, grid.shape))] for c in grid.face_centres(a)))
    return tuple(out)


def kolmogorov_forcing(grid: nnpde.Grid, *, wavenumber: int = 4, amplitude: float = 1.0):
    """Kolmogorov body force ``f = (A sin(k y), 0)`` on the staggered positions, ``(2, nx, ny)``.

    ``y`` is measured from the domain's lower edge; with an extent of ``2 pi`` and an
    integer ``k`` the force is periodic.
    """
    (_, y_u), _ = face_centres(grid)
    fx = amplitude * jnp.sin(wavenumber * (y_u - grid.extent[1][0]))
    return jnp.stack([fx, jnp.zeros_like(fx)])


def _side(name: str, side: str, spec):
    """One side of a ``walls`` pair as a condition."""
    if isinstance(spec, (pressure.Inflow, pressure.Outflow)):
        return spec
    if isinstance(spec, str) and spec == "outflow":
        return pressure.Outflow()
    if isinstance(spec, (tuple, list)) and len(spec) in (2, 3) and isinstance(spec[0], str) and spec[0] == "inflow":
        return pressure.Inflow(*spec[1:])
    if not isinstance(spec, str) and not (isinstance(spec, (tuple, list)) and spec and isinstance(spec[0], str)):
        return nnpde.Dirichlet(spec)
    raise ValueError(
        f"The {side} side of {name} must be a tangential wall speed U, ('inflow', normal[, tangential]) or "
        f"'outflow', got {spec!r}. Fix: e.g. walls({name}=(('inflow', 1.0), 'outflow'))."
    )


def walls(x="no_slip", y="no_slip") -> nnpde.BoundaryConditions:
    """Velocity boundary conditions for ``NavierStokes2D``, one spec per axis.

    Each of ``x``, ``y`` is ``"periodic"``, ``"no_slip"`` (still walls on both sides)
    or a pair ``(low, high)`` of side specs:

    * a number ``U`` (or ``U(t)``): a wall moving tangentially at ``U`` (along the
      other axis): ``y=(0.0, 1.0)`` is a lid ``y = hi`` moving in ``+x`` at speed 1;
      the lid-driven cavity is ``walls(y=(0.0, 1.0))``;
    * ``("inflow", normal)`` or ``("inflow", normal, tangential)``: a prescribed
      velocity (``solvers.pressure.Inflow``): ``normal`` into the domain, ``tangential``
      along the other axis (default 0); each a scalar, an array on the face (the other
      axis's cell centres) or a function of ``t``;
    * ``"outflow"``: zero normal gradient of the velocity and ``p = 0`` on the face
      (``solvers.pressure.Outflow``).

    An outflow needs the inflow on the low side of its axis: the plane channel is
    ``walls(x=(("inflow", profile), "outflow"), y="no_slip")``.
    """
    specs = []
    for name, spec in (("x", x), ("y", y)):
        if isinstance(spec, str) and spec == "periodic":
            specs.append(nnpde.Periodic())
        elif isinstance(spec, str) and spec == "no_slip":
            specs.append((nnpde.Dirichlet(0.0), nnpde.Dirichlet(0.0)))
        elif (
            isinstance(spec, (tuple, list))
            and len(spec) == 2
            and not (isinstance(spec[0], str) and spec[0] == "inflow")
        ):
            if any(isinstance(v, str) and v in ("periodic", "no_slip") for v in spec):
                raise ValueError(
                    f"{name}={spec!r}: 'periodic' and 'no_slip' describe a whole axis, not one side; a periodic "
                    "axis has no boundary to let flow in or out. Fix: a pair of side specs, e.g. "
                    f"{name}=(('inflow', 1.0), 'outflow'), or {name}='periodic'."
                )
            specs.append(tuple(_side(name, side, v) for side, v in zip(("low", "high"), spec)))
        else:
            raise ValueError(
                f"{name} must be 'periodic', 'no_slip' or a pair (low, high) of side specs (a tangential wall "
                f"speed, ('inflow', normal[, tangential]) or 'outflow'), got {spec!r}. A moving wall (lid), an "
                "inflow or an outflow needs a bounded axis: a periodic axis has no wall to move and no boundary "
                "to let flow in or out. Fix: e.g. walls(x='no_slip', y=(0.0, 1.0)) for the lid-driven cavity, "
                "walls(x=(('inflow', 1.0), 'outflow'), y='no_slip') for a channel."
            )
    return nnpde.BoundaryConditions(*specs)


def _check_walls(bc: nnpde.BoundaryConditions, grid: nnpde.Grid) -> None:
    for a in range(bc.ndim):
        layout = pressure.axis_layout(bc, a)  # refuses unsupported inflow/outflow layouts
        if layout == "periodic":
            continue
        if layout == "channel":
            inflow = bc.sides[a][0]
            face = grid.shape[1 - a]
            value = inflow.value if inflow.function is None else jax.eval_shape(inflow.function, 0.0)
            if jnp.ndim(value) not in (1, 2) or (jnp.ndim(value) == 2 and jnp.shape(value)[1] != face):
                raise ValueError(
                    f"The inflow on axis {a} has (normal, tangential) data of shape {jnp.shape(value)[1:]}; it takes "
                    f"scalars or arrays of the face's {face} cell centres. Fix: give a scalar or shape ({face},)."
                )
            if inflow.function is None:
                nnpde.check_finite(inflow.value, f"The inflow on axis {a}", "give finite inflow velocities.")
            continue
        kinds = bc.kinds(a)
        if kinds != ("dirichlet", "dirichlet"):
            raise ValueError(
                f"Axis {a} has {kinds} boundaries; NavierStokes2D takes periodic axes only, no-slip walls "
                "given as nnpde.Dirichlet(U) on both sides (U the tangential wall speed; free-slip/Neumann "
                "walls are not supported), or an inflow/outflow pair. Fix: solvers.navier_stokes.walls(x=..., y=...)."
            )
        for side, cond in zip(("low", "high"), bc.sides[a]):
            if cond.function is None and jnp.ndim(cond.value) != 0:
                raise ValueError(
                    f"The wall speed on the {side} side of axis {a} has shape {jnp.shape(cond.value)}; "
                    "NavierStokes2D takes a scalar (or a function of t returning one). Fix: give a scalar."
                )


def _face_data(value, q, a: int):
    """A boundary datum (scalar or a profile along the other axis) shaped as one slice of ``q`` along ``a``."""
    face = list(q.shape)
    face[a] = 1
    value = jnp.asarray(value, dtype=q.dtype)
    if value.ndim == 1:
        value = jnp.expand_dims(value, a)
    return jnp.broadcast_to(value, face)


def _pad_component(q, c: int, bc: nnpde.BoundaryConditions, t):
    """Component ``c`` with one ghost layer on each side of both axes.

    Periodic axes wrap. On a wall axis ``a``: for the normal component (``a == c``) the
    high ghost is the unstored wall face ``n`` (0) and the low ghost the face ``-1``,
    ``-q[1]`` (odd about the wall; never used by an interior face); for the tangential
    component the ghost reflects about the wall, ``q_ghost = 2 U_wall - q_inside``, so
    the two-point average on the wall equals the wall speed. On a channel axis (faces
    ``1 .. n`` of the normal component stored): the normal component's low ghost is
    the inflow face 0 (the prescribed normal velocity) and its high ghost the face
    ``n + 1``, a copy of the outflow face ``n`` (zero normal gradient); the tangential
    component reflects about the inflow's tangential velocity at the low side and is
    copied at the outflow (zero normal gradient).
    """
    for a in range(2):
        layout = pressure.axis_layout(bc, a)
        if layout == "periodic":
            q = jnp.pad(q, [(1, 1) if i == a else (0, 0) for i in range(2)], mode="wrap")
            continue
        first = jax.lax.slice_in_dim(q, 0, 1, axis=a)
        second = jax.lax.slice_in_dim(q, 1, 2, axis=a)
        last = jax.lax.slice_in_dim(q, q.shape[a] - 1, q.shape[a], axis=a)
        if layout == "channel":
            inflow = bc.sides[a][0].at(t)
            if a == c:
                low, high = _face_data(inflow[0], first, a), last
            else:
                low, high = 2.0 * _face_data(inflow[1], first, a) - first, last
        elif a == c:
            low, high = -second, jnp.zeros_like(last)
        else:
            u_low, u_high = (cond.at(t) for cond in bc.sides[a])
            low, high = 2.0 * u_low - first, 2.0 * u_high - last
        q = jnp.concatenate([low, q, high], axis=a)
    return q


def _along(q, axis: int, start: int, stop: int | None = None):
    stop = q.shape[axis] if stop is None else (stop if stop >= 0 else q.shape[axis] + stop)
    return jax.lax.slice_in_dim(q, start, stop, axis=axis)


def wall_rate(u, grid: nnpde.Grid, bc: nnpde.BoundaryConditions, viscosity, t=0.0):
    """``nu laplacian_h u - div(u u)`` (central, conservative) with walls; 0 on the wall faces.

    Works for any mix of periodic, wall and channel (inflow/outflow) axes (with
    periodic axes only it equals the periodic central scheme to round-off).
    """
    padded = [_pad_component(u[c], c, bc, t) for c in range(2)]
    # A channel axis stores the normal faces 1 .. n (upper faces), the others 0 .. n - 1.
    upper = [pressure.axis_layout(bc, a) == "channel" for a in range(2)]
    rates = []
    for c in range(2):
        pc = padded[c]
        rate = 0.0
        for a, h in enumerate(grid.spacing):
            core = _along(pc, 1 - a, 1, -1)  # interior along the other axis
            lap = (_along(core, a, 2) - 2.0 * _along(core, a, 1, -1) + _along(core, a, 0, -2)) / h**2
            if a == c:
                # flux at the cell centres between faces i and i + 1: (average u_c)^2
                mean = 0.5 * (_along(core, a, 1) + _along(core, a, 0, -1))
                flux = mean**2
                div = (_along(flux, a, 1) - _along(flux, a, 0, -1)) / h
            else:
                # flux at the corners: (u_a averaged along c) * (u_c averaged along a)
                advected = 0.5 * (_along(core, a, 1) + _along(core, a, 0, -1))  # (n_c, n_a + 1)
                # faces 0 .. n of u_a along a (the n-th: wrap or wall; the 0-th on a channel: the inflow)
                pa = _along(padded[a], a, 0, -1) if upper[a] else _along(padded[a], a, 1)
                # averaged along c onto u_c's faces: cells i - 1, i (face i) or i, i + 1 (face i + 1)
                if upper[c]:
                    advecting = 0.5 * (_along(pa, c, 1, -1) + _along(pa, c, 2))
                else:
                    advecting = 0.5 * (_along(pa, c, 0, -2) + _along(pa, c, 1, -1))
                flux = advecting * advected
                div = (_along(flux, a, 1) - _along(flux, a, 0, -1)) / h
            rate = rate + viscosity * lap - div
        rates.append(rate)
    rate = jnp.stack(rates)
    return pressure.enforce_walls(rate, grid, bc)


def _check_viscosity(nu):
    if isinstance(nu, (bool, str)) or not (isinstance(nu, (int, float)) or jnp.ndim(nu) == 0):
        raise TypeError(f"viscosity must be a real scalar, got {nu!r}. Fix: e.g. viscosity=1e-2.")
    if isinstance(nu, (int, float)):
        nu = float(nu)
        if not (np.isfinite(nu) and nu >= 0):
            raise ValueError(
                f"viscosity must be finite and >= 0, got {nu}. Fix: give the kinematic viscosity (0 for inviscid flow)."
            )
        return nu
    nu = jnp.asarray(nu)
    if nnpde.is_concrete(nu):
        value = float(nu)
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(
                f"viscosity must be finite and >= 0, got {value}. Fix: give the kinematic viscosity "
                "(0 for inviscid flow)."
            )
        return nu
    return eqx.error_if(nu, ~(jnp.isfinite(nu) & (nu >= 0)), "viscosity must be finite and >= 0.")


def _check_forcing(value, shape, name="forcing"):
    if isinstance(value, (int, float)):
        return nnpde.check_finite(float(value), name, "give a finite body force.")
    value = jnp.asarray(value)
    if value.ndim != 0:
        nnpde.check_field_shape(value, shape, name, what="state")
    return nnpde.check_finite(value, name, "give a finite body force on every face.")


def advective_radius(u, grid: nnpde.Grid, bc: nnpde.BoundaryConditions | None = None):
    """``sum_a max|u_a| / h_a``: the advective part of the explicit step limit (any dimension).

    ``bc``: the maxima are taken over all ranks of a split domain (``bc.allreduce``),
    so that every rank takes the same stability decision."""
    reduce = (lambda x, op: x) if bc is None else bc.allreduce
    return sum(reduce(jnp.max(jnp.abs(u[a])), "max") / h for a, h in enumerate(grid.spacing))


def spectral_radius(u, grid: nnpde.Grid, viscosity, advection: str, bc: nnpde.BoundaryConditions | None = None):
    """Real spectral radius of the MAC right-hand side: the viscous ``4 nu sum_a 1/h_a^2``,
    plus twice the advective radius for van Leer fluxes (their upwind dissipation)."""
    radius = 4.0 * viscosity * sum(1.0 / h**2 for h in grid.spacing)
    if advection == "van_leer" and u is not None:
        radius = radius + 2.0 * advective_radius(u, grid, bc)
    return radius


def _flux_divergence(padded, shape, spacing, w: int, scheme: str):
    """``div(u u)`` from the state padded by ``w`` ghost layers (``NavierStokes2D.momentum_flux_divergence``)."""

    def advecting(c, a):
        """Velocity ``u_a`` through the faces normal to ``a`` of component ``c``'s volumes.

        ``u_a`` averaged over its two neighbours along ``c``: at cell centres for
        ``a == c``, at cell corners otherwise; faces ``0 .. n`` along ``a`` (the
        ``n``-th from the ghost layer: the periodic wrap, or the neighbour rank's
        first face on a split domain).
        """

        def window(offset):
            index = []
            for b, n in enumerate(shape):
                start = w + (offset if b == c else 0)
                index.append(slice(start, start + n + (1 if b == a else 0)))
            return padded[a][tuple(index)]

        return 0.5 * (window(-1) + window(0))

    return jnp.stack(
        [
            fd.face_divergence(
                [fd.advective_flux(padded[c], advecting(c, a), a, ndim=2, width=w, scheme=scheme) for a in range(2)],
                spacing,
            )
            for c in range(2)
        ]
    )


# -- the reverse-mode rule of the periodic right-hand side ------------------------------
# JAX's automatic transpose of the padded-window stencils above turns every window
# into a zero-padded array and sums them; on the CPU XLA then fuses those sums with the
# limiter's divisions into one loop that recomputes them per shifted read. The adjoint
# below is the same stencil algebra written as a gather: the limiter's quantities are
# evaluated once on the grid extended by ``_EXTEND`` cells, from ``u`` wrap-padded
# once, and every shifted read is a window of an extended array or of the wrap-padded
# cotangent. Nothing but ``u`` is saved: in a differentiated ``lax.scan`` the limiter is
# recomputed in the reverse loop, which costs less than storing its partials per step
# and reading them back. The two velocity components are assembled separately, then
# stacked: a subtraction on the stacked pair fused around the stack made XLA emit one
# loop several times slower (measured when the cotangent comes from the projection).
# At 256^2, float32 (benchmarks/ns_step.py, three runs, BENCHMARKS.md): a 20-step
# rollout's gradient costs 1.7-3.2 forward passes with van Leer forward Euler and
# 1.5-2.4 with van Leer RK4 (5-6 and 2.9-4.2 with the previous adjoint, which saved
# the limiter's partials).

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
    """``[J^T g]_b`` for ``b = 0, 1``: the adjoint of ``_flux_divergence`` at ``u`` on a
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


def _stencil_rate(padded, viscosity, shape, spacing, w: int, scheme: str):
    """``nu laplacian_h u - div(u u)`` from the state padded by ``w`` ghost layers."""
    return viscosity * fd.laplacian(padded, spacing, width=w) - _flux_divergence(padded, shape, spacing, w, scheme)


def _wrap_pad(u, w: int):
    return jnp.pad(u, [(0, 0)] * (u.ndim - 2) + [(w, w)] * 2, mode="wrap")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _periodic_rate(u, viscosity, spacing, scheme: str):
    """``nu laplacian_h u - div(u u)`` on a periodic, unsplit domain, with a hand-written VJP."""
    w = 2 if scheme == "van_leer" else 1
    return _stencil_rate(_wrap_pad(u, w), viscosity, u.shape[1:], spacing, w, scheme)


def _periodic_rate_fwd(u, viscosity, spacing, scheme):
    return _periodic_rate(u, viscosity, spacing, scheme), (u, viscosity)


def _periodic_rate_bwd(spacing, scheme, residuals, g):
    u, viscosity = residuals
    u_padded, g_padded = _wrap_pad(u, _PAD_U), _wrap_pad(g, _PAD_G)  # each padded once
    laplacian_g = fd.laplacian(g_padded, spacing, width=_PAD_G)  # symmetric: its own transpose
    advection_bar = _flux_divergence_transpose(u_padded, g_padded, spacing, scheme)
    # per component, then stacked (see the comment above _EXTEND)
    u_bar = jnp.stack([viscosity * laplacian_g[b] - advection_bar[b] for b in range(2)])
    viscosity_bar = jnp.sum(g * fd.laplacian(u_padded, spacing, width=_PAD_U))
    return u_bar.astype(g.dtype), viscosity_bar.astype(viscosity.dtype).reshape(viscosity.shape)


_periodic_rate.defvjp(_periodic_rate_fwd, _periodic_rate_bwd)


class NavierStokes2D(AbstractProjectedIMEXEquation):
    r"""Incompressible Navier-Stokes ``du/dt + div(u u) = -grad p + nu laplacian u + f``,
    ``div u = 0``, in 2-D: periodic axes, walls, or an inflow/outflow pair (below).

    State: ONE array ``(2, nx, ny)``: channel 0 is ``u`` on the x-faces at
    ``(x_i, y_{j+1/2})``, channel 1 is ``v`` on the y-faces at ``(x_{i+1/2}, y_j)``
    (lower faces, ``x_i = lo + i h``; ``face_centres(grid)``). The call returns the
    unprojected right-hand side ``-div(u u) + nu laplacian_h u + f``; ``project``
    removes the pressure gradient (``solvers.pressure``). Step with
    ``nnpde.ProjectedRK``, which projects after every stage.

    Discretisation (second order in space):

    * advection in conservative (flux) form on the MAC grid: the momentum flux
      through each face of a velocity's control volume is the advecting velocity
      (the average of the two neighbouring normal velocities) times the advected
      velocity there: the two-point average (``advection="central"``, energy
      conserving for a discretely divergence-free field, Morinishi et al., J. Comput.
      Phys. 143 (1998) 90) or the van Leer limited MUSCL value (``"van_leer"``, TVD,
      second order where smooth; ``nnpde.fd.advective_flux``);
    * viscosity: the 5-point Laplacian of each component at its own positions;
    * ``forcing``: a scalar (the same on both components), an array ``(2, nx, ny)``
      on the staggered positions (e.g. ``kolmogorov_forcing(grid)``), or ``f(t)``
      returning either. Its gradient part is removed by the projection.

    Stability (explicit, ``max_stable_dt``): ``dt <= 1 / (A / R + B / I)`` with the
    viscous radius ``A = 4 nu (1/hx^2 + 1/hy^2)`` (exact for the periodic 5-point
    Laplacian), the advective radius ``B = max|u| / hx + max|v| / hy``, and ``R, I``
    the method's real and imaginary stability extents (RK4: 2.785, 2.828; SSP-RK3:
    2.513, 1.732); see ``nnpde.ProjectedRK``. With ``"van_leer"`` the limiter falls back
    to upwinding at extrema, whose eigenvalues reach ``-2 B`` on the real axis: ``A``
    becomes ``A + 2 B``.

    Implicit viscosity (periodic axes): ``nnpde.ProjectedIMEX`` takes ``-div(u u) + f``
    explicitly (``explicit_rate``) and ``nu laplacian_h u`` implicitly, by an exact FFT
    solve (``solve_implicit``); only the advective part of the limit remains.

    Args:
        grid: a 2-D ``nnpde.Grid`` with at least 4 cells per axis.
        viscosity: kinematic ``nu >= 0`` (a scalar; may be traced, to differentiate).
        forcing: body force ``f`` (see above); default none.
        advection: ``"central"`` or ``"van_leer"``.
        bc: ``nnpde.BoundaryConditions.periodic(2)`` (the default), or walls and
            inflow/outflow faces (``walls(x=..., y=...)``; central advection only).
        pressure_solver: ``"auto"`` (FFT, DCT, or CG with an outflow), ``"fft"``,
            ``"dct"`` or ``"cg"`` (``solvers.pressure.solve_poisson``).
        pressure_preconditioner: of the CG solve, ``"transform"`` or ``"jacobi"``.
        differentiation: ``"adjoint"`` (the default): on a periodic domain in one
            process the right-hand side's reverse-mode derivative is a hand-written
            adjoint of its stencils (equal to JAX's to round-off, and about 5x cheaper
            with van Leer fluxes on the CPU: ``benchmarks/ns_rhs_vjp.py``); reverse
            mode only, so ``jax.jvp`` and ``jax.jacfwd`` through the step raise.
            ``"autodiff"``: JAX differentiates the stencils (forward and reverse
            mode). Walls and split domains always use ``"autodiff"``.

    Walls. An axis with ``nnpde.Dirichlet(U_low), nnpde.Dirichlet(U_high)`` is bounded
    by impermeable no-slip walls moving tangentially at ``U`` (along the other axis;
    ``U = 0``: still). The state keeps its shape ``(2, nx, ny)``: of the ``n + 1`` faces
    normal to a wall axis the first ``n`` are stored, index 0 being the low wall face,
    whose value is held at exactly 0 (the right-hand side and the projection set it),
    and the high wall face ``n`` is implicit (0). The tangential component sits half a
    cell from the wall; its ghost reflects about the wall, ``u_ghost = 2 U - u_inside``
    (second order). The pressure solve is then the DCT (Neumann) one
    (``solvers.pressure``). ``vorticity`` is for periodic axes only.

    Inflow and outflow (``walls(x=(("inflow", normal[, tangential]), "outflow"))``;
    the inflow on the low side, the outflow on the high side of the same axis). The
    inflow face 0 carries the prescribed velocity (a scalar, a profile on the face or
    a function of ``t``); the tangential component's ghost reflects about its
    tangential value as at a wall. The outflow face ``n`` has zero normal gradient of
    both components (ghosts copy the last value) and ``p = 0`` (pressure ghost
    ``-p[n - 1]``), so the pressure problem is not singular and its solution is not
    shifted to zero mean. Storage: the normal component on such an axis keeps the
    ``n`` unknown faces ``1 .. n``, index ``i`` being face ``i + 1`` (the upper faces;
    ``face_centres(grid, bc)``): the inflow face is data, not state, and the outflow
    face is state. The projection needs the inflow at the stage time (``project(u,
    t)``; ``nnpde.ProjectedRK`` passes it); the flux through the outflow face then
    equals the inflow's to the pressure solver's tolerance (``outflow_balance``;
    measured 4e-16 relative in plane Poiseuille flow, tests/test_channel.py). The
    stability limit is the wall one: the outflow's one-sided Laplacian row has a
    smaller radius than ``4 / h^2``. ``kinematic_pressure`` assumes steady inflow data.
    """

    grid: nnpde.Grid = eqx.field(static=True)
    bc: nnpde.BoundaryConditions
    viscosity: object
    forcing: object
    forcing_function: Callable | None = eqx.field(static=True)
    advection: str = eqx.field(static=True)
    pressure_solver: str = eqx.field(static=True)
    pressure_preconditioner: str = eqx.field(static=True)
    differentiation: str = eqx.field(static=True)

    def __init__(
        self,
        grid: nnpde.Grid,
        *,
        viscosity,
        forcing=0.0,
        advection: str = "central",
        bc: nnpde.BoundaryConditions | None = None,
        pressure_solver: str = "auto",
        pressure_preconditioner: str = "transform",
        differentiation: str = "adjoint",
    ):
        if not isinstance(grid, nnpde.Grid):
            raise TypeError(f"grid must be an nnpde.Grid, got {type(grid).__name__}.")
        if grid.ndim != 2:
            raise ValueError(
                f"NavierStokes2D needs a 2-D grid, got shape {grid.shape}. Fix: e.g. nnpde.Grid((64, 64), "
                "extent=((0, 2 * np.pi), (0, 2 * np.pi)))."
            )
        if min(grid.shape) < MIN_CELLS:
            raise ValueError(
                f"NavierStokes2D needs at least {MIN_CELLS} cells per axis, got grid shape {grid.shape}. "
                "Fix: refine the grid."
            )
        if advection not in ADVECTION_SCHEMES:
            raise ValueError(f"advection must be one of {ADVECTION_SCHEMES}, got {advection!r}.")
        bc = nnpde.BoundaryConditions.periodic(2) if bc is None else bc
        kinds = pressure.axis_kinds(grid, bc)
        _check_walls(bc, grid)
        pressure.pick_solver(kinds, pressure_solver)  # refuses a transform that does not fit
        if pressure_preconditioner not in pressure.PRECONDITIONERS:
            raise ValueError(
                f"pressure_preconditioner must be one of {pressure.PRECONDITIONERS}, got {pressure_preconditioner!r}."
            )
        self.pressure_preconditioner = pressure_preconditioner
        if differentiation not in DIFFERENTIATION:
            raise ValueError(
                f"differentiation must be one of {DIFFERENTIATION}, got {differentiation!r}. Fix: 'adjoint' (fast "
                "reverse mode) or 'autodiff' (also forward mode: jax.jvp, jax.jacfwd)."
            )
        self.differentiation = differentiation
        if advection != "central" and not all(bc.global_periodic(a) for a in range(2)):
            raise ValueError(
                f"advection={advection!r} is implemented for periodic axes only; with walls use advection='central'."
            )
        split = bc.distributed and any("halo" in bc.kinds(a) for a in range(2))
        if split and not all(bc.global_periodic(a) for a in range(2)):
            raise ValueError(
                "NavierStokes2D on a domain split across ranks takes periodic axes only (the wall and channel "
                f"momentum fluxes wrap locally), got boundary kinds {[bc.kinds(a) for a in range(2)]}. Fix: a "
                "periodic domain, or run the walled problem in one process."
            )
        self.grid, self.bc, self.advection, self.pressure_solver = grid, bc, advection, pressure_solver
        self.viscosity = _check_viscosity(viscosity)
        if callable(forcing):
            self.forcing, self.forcing_function = None, forcing
        else:
            self.forcing, self.forcing_function = _check_forcing(forcing, self.state_shape), None

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (2, *self.grid.shape)

    @property
    def _width(self) -> int:
        return 2 if self.advection == "van_leer" else 1

    def body_force(self, t):
        """``f(t)`` as given (scalar or ``(2, nx, ny)``)."""
        return self.forcing_function(t) if self.forcing_function is not None else self.forcing

    def momentum_flux_divergence(self, u: State) -> State:
        """``div(u u)`` on the staggered positions (conservative form, ``self.advection``)."""
        w = self._width
        padded = self.bc.pad(u, w, self.grid.spacing)
        return _flux_divergence(padded, self.grid.shape, self.grid.spacing, w, self.advection)

    @property
    def has_walls(self) -> bool:
        return not all(self.bc.global_periodic(a) for a in range(2))

    def __call__(self, t, u: State, args=None) -> State:
        if self.has_walls:
            rate = wall_rate(u, self.grid, self.bc, self.viscosity, t)
            force = self.body_force(t)
            if self.forcing_function is not None or not (isinstance(force, float) and force == 0.0):
                rate = pressure.enforce_walls(rate + force, self.grid, self.bc)
            return rate
        if self.differentiation == "adjoint" and not self.bc.distributed:
            viscosity = jnp.asarray(self.viscosity, dtype=u.dtype)
            rate = _periodic_rate(u, viscosity, self.grid.spacing, self.advection)
        else:  # one pad (one halo exchange on a split domain) serves both terms
            w = self._width
            padded = self.bc.pad(u, w, self.grid.spacing)
            rate = _stencil_rate(padded, self.viscosity, self.grid.shape, self.grid.spacing, w, self.advection)
        force = self.body_force(t)
        if self.forcing_function is not None or not (isinstance(force, float) and force == 0.0):
            rate = rate + force
        return rate

    # -- the IMEX split (nnpde.ProjectedIMEX; periodic axes): viscosity implicit ---------
    def check_implicit(self) -> None:
        if self.bc.distributed and any("halo" in self.bc.kinds(a) for a in range(2)):
            raise ValueError(
                "NavierStokes2D's implicit viscosity (nnpde.ProjectedIMEX) solves by FFT, which needs every axis "
                "whole on one rank; this domain is split across ranks. Fix: use nnpde.ProjectedRK on a split domain."
            )
        if self.has_walls:
            raise ValueError(
                "NavierStokes2D's implicit viscosity (nnpde.ProjectedIMEX) is implemented for periodic axes "
                f"only, got boundary kinds {[self.bc.kinds(a) for a in range(2)]}. Fix: use nnpde.ProjectedRK "
                "(explicit viscosity) with walls."
            )

    def explicit_rate(self, t, u: State, args=None) -> State:
        """``-div(u u) + f`` (periodic axes)."""
        self.check_implicit()
        rate = -self.momentum_flux_divergence(u)
        force = self.body_force(t)
        if self.forcing_function is not None or not (isinstance(force, float) and force == 0.0):
            rate = rate + force
        return rate

    def implicit_rate(self, t, u: State) -> State:
        """``nu laplacian_h u`` (periodic axes)."""
        self.check_implicit()
        return self.viscosity * fd.laplacian(self.bc.pad(u, 1, self.grid.spacing), self.grid.spacing, width=1)

    def solve_implicit(self, rhs: State, alpha, t=0.0) -> State:
        """``(I - alpha nu laplacian_h) x = rhs`` exactly by the FFT (periodic axes)."""
        self.check_implicit()
        return nnpde.solve_shifted(rhs, self.grid, ("fft", "fft"), shift=1.0, scale=alpha * self.viscosity)

    def explicit_spectral_radius(self, t, u):
        return 2.0 * self.advective_radius(t, u) if self.advection == "van_leer" and u is not None else 0.0

    # -- projection and stability ----------------------------------------------------
    def project(self, u: State, t=0.0) -> State:
        return pressure.project(
            u, self.grid, self.bc, t=t, solver=self.pressure_solver, preconditioner=self.pressure_preconditioner
        )

    def divergence(self, u: State, t=0.0):
        """MAC divergence at cell centres, ``grid.shape`` (``t``: the inflow's time)."""
        return pressure.divergence(u, self.grid, self.bc, t)

    def kinematic_pressure(self, t, u: State):
        """The pressure over density ``p`` at cell centres with ``P f = f - G p``, ``f`` the
        right-hand side at ``(t, u)``: ``D G p = D f`` (homogeneous: the inflow data held
        steady). Gauge ``mean(p) = 0``, or ``p = 0`` on an outflow face."""
        return pressure.kinematic_pressure(
            self(t, u), self.grid, self.bc, solver=self.pressure_solver, preconditioner=self.pressure_preconditioner
        )

    def outflow_balance(self, u: State, t=0.0):
        """``(inflow, outflow)`` volume fluxes through the channel axis's two faces
        (per unit depth): equal to the solver tolerance for a projected state."""
        axes = [a for a in range(2) if pressure.axis_layout(self.bc, a) == "channel"]
        if not axes:
            raise ValueError("outflow_balance needs an inflow/outflow axis. Fix: walls(x=(('inflow', U), 'outflow')).")
        a = axes[0]
        h_face = self.grid.spacing[1 - a]
        inflow = pressure.inflow_normal(self.bc, a, u.shape[1:], t, u.dtype)
        outflow = jax.lax.slice_in_dim(u[a], u.shape[1 + a] - 1, u.shape[1 + a], axis=a)
        return jnp.sum(inflow) * h_face, jnp.sum(outflow) * h_face

    def advective_radius(self, t, u):
        return advective_radius(u, self.grid, self.bc)

    def spectral_radius(self, t, u):
        return spectral_radius(u, self.grid, self.viscosity, self.advection, self.bc)

    def forward_euler_rate(self, t, u):
        """With van Leer fluxes ``2 B + A / 2`` (``B`` the advective radius, ``A`` the viscous
        spectral radius; ``nnpde.ProjectedRK`` module docstring): forward Euler and Heun are
        total-variation diminishing for ``dt <= 1 / rate``. None with central fluxes."""
        if self.advection != "van_leer":
            return None
        viscous = spectral_radius(None, self.grid, self.viscosity, self.advection)
        return 0.5 * viscous + (0.0 if u is None else 2.0 * advective_radius(u, self.grid, self.bc))

    # -- diagnostics -------------------------------------------------------------------
    def kinetic_energy(self, u: State):
        """``sum(u^2 + v^2) / 2 * cell_volume``: each component over its own faces (over
        the whole domain when it is split across ranks)."""
        return self.bc.allreduce(0.5 * jnp.sum(u**2) * self.grid.cell_volume, "sum")

    def vorticity(self, u: State):
        """``dv/dx - du/dy`` at the cell corners ``(x_i, y_j)``, ``grid.shape`` (periodic axes)."""
        hx, hy = self.grid.spacing
        return (u[1] - self.bc.shift(u[1], 0, -1)) / hx - (u[0] - self.bc.shift(u[0], 1, -1)) / hy
