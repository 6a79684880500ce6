r"""The wall treatment of the 2-D staggered (MAC) velocity: no-slip or moving walls and
inflow/outflow faces, for ``NavierStokes2D`` and ``Boussinesq2D``.

``walls(x=..., y=...)`` builds the velocity boundary conditions, ``check_walls``
refuses what the solvers do not take, and ``wall_rate`` is the momentum right-hand
side ``nu laplacian_h u - div(u u)`` on a grid with any mix of periodic, wall and
channel (inflow low, outflow high) axes.

Storage (``solvers.pressure``, ``axis_layout``): on a wall axis the normal component
keeps faces ``0 .. n - 1``, index 0 the low wall face (held at 0) and the high wall
face ``n`` implicit (0); on a channel axis it keeps faces ``1 .. n``, face 0 being the
inflow data.

Discretisation (second order): each component is padded by one ghost layer per side
(``_pad_component``) and then takes the 5-point Laplacian and the central conservative
momentum flux of the periodic scheme (Morinishi et al., J. Comput. Phys. 143 (1998)
90). Ghosts: the tangential component reflects about the wall, ``q_ghost = 2 U_wall -
q_inside``, so its two-point average on the wall is the wall speed (also about the
inflow's tangential velocity); the normal component's wall face is 0; at an outflow
both components copy the last value (zero normal gradient). The rate on the wall faces
is set to 0 (``solvers.pressure.enforce_walls``).

Reference: Harlow & Welch, Phys. Fluids 8 (1965) 2182 (the MAC grid and its wall
ghosts).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import nnpde

from . import pressure


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


def check_walls(bc: nnpde.BoundaryConditions, grid: nnpde.Grid) -> None:
    """Refuse, with the fix, velocity boundary conditions ``NavierStokes2D`` does not take.

    Per axis: periodic; an inflow/outflow pair whose data are scalars or profiles of
    the face's cell centres (finite, when given as values); or ``nnpde.Dirichlet(U)``
    on both sides with a scalar tangential wall speed ``U`` (or ``U(t)``).
    """
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
