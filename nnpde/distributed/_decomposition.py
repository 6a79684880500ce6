"""``Decomposition``: a solver's grid split into blocks over MPI ranks, with halos.

A global ``nnpde.Grid`` is cut into a Cartesian process grid of ``dims[0] x dims[1]
x ...`` equal blocks; rank ``r`` at process coordinates ``coords`` owns the cells
``local_slices`` and runs the ordinary solver on its own ``local_grid`` (the block's
cells with their true extent, so cell centres match the global grid's).

The one new idea is in the boundary conditions. A halo (the neighbour rank's cells)
is one more way of filling ghost cells: ``Decomposition.boundary_conditions`` is a
``BoundaryConditions`` whose faces are either physical (the original Periodic,
Dirichlet or Neumann condition, with face data sliced to the local face) or shared
with a neighbour rank (``Halo``), whose ghost cells arrive by ``mpi4jax.sendrecv``
inside ``jit``. Axes are padded in turn, exactly as in one process, and each axis
exchanges the strips *already padded along the earlier axes*, so corner ghost cells
equal the single-process ones too. A periodic axis split over several ranks wraps
through the process grid (the Cartesian communicator is periodic there); a periodic
axis with one rank along it wraps locally.

Because every ghost cell equals its single-process value, a decomposed explicit
rollout equals the single-process rollout to round-off, and so do its reverse-mode
gradients: the adjoint of a halo exchange is the exchange in the opposite direction
(``_exchange_function`` below), so cotangents of ghost cells flow back to the ranks that own
those cells.

Communicators: the one given is never used directly. ``create`` builds a Cartesian
communicator on it and clones it twice: one for mpi4jax (halo exchanges and global
reductions inside ``jit``), one for host-side mpi4py messages (``gather``). With one
rank no message is ever sent and everything reduces to the plain solver.

Scope: explicit steppers (``nnpde.ExplicitRK``, ``nnpde.ProjectedRK``) and anything
else built from the right-hand side, ``pad``, ``shift`` and ``allreduce``; and linear
solves by conjugate gradients whose inner products and norms are sums over the ranks
(``nnpde.numerics._krylov``): ``nnpde.ThetaMethod`` with ``solver="cg"`` for heat, and the
pressure projection of ``solvers.NavierStokes2D`` on a periodic domain. No fast
transform solver runs on a split axis (a ``Halo`` face has kind ``"halo"``, which no
transform diagonalises): the pressure solve becomes CG there.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..numerics._boundary import (
    INTERIOR_POINTS,
    BoundaryConditions,
    Neumann,
    Periodic,
    check_face_value,
    ghost_coefficients,
)
from ..numerics._grid import Grid

_OPS = ("sum", "max", "min")


class _Comm:
    """An mpi4py communicator behind an identity hash (mpi4py communicators are
    unhashable, and JAX's static metadata must hash)."""

    __slots__ = ("comm",)

    def __init__(self, comm):
        self.comm = comm

    @property
    def size(self) -> int:
        return self.comm.Get_size()


def _proc_null() -> int:
    from mpi4py import MPI

    return MPI.PROC_NULL


@functools.cache
def _exchange_function(below: int, above: int, comm: _Comm):
    """``(last, first) -> (low, high)``: the ghost strips of one axis from its two
    neighbour ranks, while sending this rank's ``last`` cells up (they are the low
    ghosts of the rank above) and its ``first`` cells down.

    ``MPI.PROC_NULL`` as a neighbour means no partner on that side: nothing is sent
    and the received strip is zeros (the caller fills wall ghosts itself). A
    ``custom_vjp`` gives the adjoint directly: the cotangent of each received strip
    goes back to the rank it came from, by the same two exchanges with the
    directions swapped. Both messages live in one function so that its backward pass
    runs on every rank whenever any of its outputs carries a cotangent: a rank whose
    received strip is unused (a wall side) must still answer its neighbour's
    messages, or the ranks would deadlock. (mpi4jax's own JVP of ``sendrecv`` is not
    used: it rejects symbolic-zero tangents and reads ``PROC_NULL`` receives as
    uninitialised memory.)
    """
    import mpi4jax

    null = _proc_null()

    def sendrecv(x, source, dest):
        received = mpi4jax.sendrecv(x, x, source, dest, comm=comm.comm)
        if source != null:
            return received
        # A receive from PROC_NULL leaves the buffer uninitialised: return zeros, but
        # through a select on the received buffer, not a fresh constant: a result
        # that no longer depends on the message lets dead-code elimination drop the
        # sendrecv (and with it the send a neighbour is waiting for).
        return jnp.where(True, jnp.zeros_like(x), received)

    def forward_messages(last, first):
        return sendrecv(last, below, above), sendrecv(first, above, below)

    @jax.custom_vjp
    def exchange(last, first):
        return forward_messages(last, first)

    def forward(last, first):
        return forward_messages(last, first), None

    def backward(_, cotangents):
        low, high = cotangents
        return sendrecv(low, above, below), sendrecv(high, below, above)

    exchange.defvjp(forward, backward)
    return exchange


@functools.cache
def _varying_function(comm: _Comm):
    """Identity forward; in the backward pass the cotangent summed over the ranks.

    It marks a replicated value (a global sum) that flows on into rank-local
    computation, where each rank contributes a different cotangent to it (the role
    of ``pbroadcast`` under ``shard_map``, whose transpose is ``psum``).
    """
    import mpi4jax
    from mpi4py import MPI

    @jax.custom_vjp
    def varying(x):
        return x

    def forward(x):
        return x, None

    def backward(_, cotangent):
        return (mpi4jax.allreduce(cotangent, op=MPI.SUM, comm=comm.comm),)

    varying.defvjp(forward, backward)
    return varying


def _keep(value, received):
    """``value``, made to depend on a received halo strip that it does not need.

    A rank next to a wall discards the strip it "receives" from ``MPI.PROC_NULL``
    (zeros), but the sendrecv that produced it also *sends* to the neighbour on the
    other side. Inside ``lax.scan`` JAX eliminates equations whose results are unused,
    messages included, which would leave that neighbour waiting forever. Adding
    ``0 * received`` (exact: the strip is zeros) keeps the message, and gives the
    adjoint exchange a cotangent so that it runs on every rank too.
    """
    return value + 0.0 * received


class Halo(eqx.Module):
    """A face shared with a neighbour rank: its ghost cells are that rank's cells."""


class DecomposedBoundaryConditions(BoundaryConditions):
    """The boundary conditions of one rank's block (see the module docstring).

    ``sides[a]`` holds, per side of axis ``a``, ``Halo()`` for a face shared with a
    neighbour rank, else the original condition (its face data still global: it is
    sliced to the local face when the ghost cells are filled, so that time-dependent
    data ``g(t)`` may return the global face array too). ``neighbours[a]`` are the
    ranks below and above along axis ``a`` (``MPI.PROC_NULL`` where there is none).

    Beyond ``BoundaryConditions`` it offers the two hooks a solver needs on a block:
    ``face_average`` (a cell coefficient on the block's faces, using the neighbour's
    cells across shared faces) and ``allreduce`` (global sums, maxima and minima).
    """

    neighbours: tuple[tuple[int, int], ...] = eqx.field(static=True)
    global_shape: tuple[int, ...] = eqx.field(static=True)
    starts: tuple[int, ...] = eqx.field(static=True)
    comm: _Comm = eqx.field(static=True)
    periodic: tuple[bool, ...] = eqx.field(static=True)

    def __init__(self, sides, neighbours, global_shape, starts, comm, periodic=None):
        self.sides = tuple(tuple(pair) for pair in sides)
        self.neighbours = tuple(tuple(int(r) for r in pair) for pair in neighbours)
        self.global_shape = tuple(global_shape)
        self.starts = tuple(starts)
        self.comm = comm
        # which axes are periodic in the whole domain (a split periodic axis has halo
        # faces on both sides, like an inner block of a walled axis)
        if periodic is None:
            periodic = tuple(isinstance(pair[0], Periodic) for pair in self.sides)
        self.periodic = tuple(bool(p) for p in periodic)

    @property
    def distributed(self) -> bool:
        return True

    def global_periodic(self, axis: int) -> bool:
        return self.periodic[axis]

    def global_size(self, shape=None) -> int:
        return math.prod(self.global_shape)

    def shift(self, u, axis: int, offset: int):
        """``u`` at index ``i + offset`` (+1 or -1) along a periodic ``axis``: across a
        split axis the missing layer comes from the neighbour rank (both strips are
        exchanged, so that every rank answers its neighbours' messages)."""
        if not self.periodic[axis]:
            raise ValueError(f"shift needs a periodic axis; axis {axis} has {self.kinds(axis)} faces.")
        if offset not in (1, -1):
            raise ValueError(f"shift takes offset +1 or -1, got {offset}.")
        if not self.has_halo(axis):
            return super().shift(u, axis, offset)
        ax = u.ndim - self.ndim + axis
        v = jnp.moveaxis(u, ax, 0)
        low, high = self._exchange(v, axis, 1)
        if offset == 1:
            out = _keep(jnp.concatenate([v[1:], high], axis=0), low)
        else:
            out = _keep(jnp.concatenate([low, v[:-1]], axis=0), high)
        return jnp.moveaxis(out, 0, ax)

    def has_halo(self, axis: int) -> bool:
        return any(isinstance(c, Halo) for c in self.sides[axis])

    def homogeneous(self) -> DecomposedBoundaryConditions:
        """The same conditions with zero data (halo faces stay halo faces)."""
        sides = tuple(
            tuple(c if isinstance(c, (Periodic, Halo)) else type(c)(0.0) for c in pair) for pair in self.sides
        )
        return DecomposedBoundaryConditions(
            sides, self.neighbours, self.global_shape, self.starts, self.comm, self.periodic
        )

    def check(self, grid: Grid, *, order: int = 2, width: int | None = None) -> None:
        """Raise ``ValueError`` if the local ``grid`` cannot carry the stencil.

        A block needs ``width`` cells along an axis with halo or periodic faces, and
        as many cells as the wall ghost polynomial uses where a face is a wall. Face
        data must fit the *global* face (it is sliced to the block when used).
        """
        if self.ndim != grid.ndim:
            raise ValueError(
                f"Decomposed boundary conditions are for {self.ndim} axes but the grid has {grid.ndim} "
                f"(shape {grid.shape}). Fix: build the solver on Decomposition.local_grid."
            )
        if order not in INTERIOR_POINTS:
            raise ValueError(f"order must be one of {sorted(INTERIOR_POINTS)}, got {order}.")
        width = order // 2 if width is None else width
        for a, pair in enumerate(self.sides):
            n = grid.shape[a]
            # a wall needs its ghost polynomial's points and two cells for the face average
            need = max(width if isinstance(c, (Periodic, Halo)) else max(INTERIOR_POINTS[order], 2) for c in pair)
            if n < max(need, 1 if self.has_halo(a) else 2):
                raise ValueError(
                    f"Axis {a} of this rank's block has {n} cells, thinner than an order-{order} stencil "
                    f"with {'/'.join(self.kinds(a))} faces needs (at least {need}). Fix: fewer ranks along "
                    f"axis {a} (Decomposition.create(..., dims=...)), a finer grid, or a lower order."
                )
            face = tuple(m for b, m in enumerate(self.global_shape) if b != a)
            for side, c in zip(("low", "high"), pair):
                fix = f"give a scalar or an array of the global grid's boundary_face_shape({a}) (each rank slices it)."
                check_face_value(c, side, a, face, "global boundary", fix)

    # -- ghost cells -----------------------------------------------------------------
    def _exchange(self, v, axis: int, width: int):
        """Ghost strips ``(low, high)`` along axis 0 of ``v`` from the two neighbours."""
        below, above = self.neighbours[axis]
        return _exchange_function(below, above, self.comm)(v[-width:], v[:width])

    def _pad_axis(self, u, axis: int, width: int, h: float, t, order: int):
        if not self.has_halo(axis):
            return super()._pad_axis(u, axis, width, h, t, order)
        ndim = self.ndim
        ax = u.ndim - ndim + axis
        v = jnp.moveaxis(u, ax, 0)
        n = v.shape[0]
        if n < width:
            raise ValueError(
                f"Axis {axis} of this rank's block has {n} cells, fewer than the halo width {width}. "
                "Fix: fewer ranks along that axis, or a finer grid."
            )
        ghosts = list(self._exchange(v, axis, width))
        points = min(INTERIOR_POINTS[order], n)
        for index, (side, interior) in enumerate((("low", v[:points]), ("high", v[::-1][:points]))):
            cond = self.sides[axis][index]
            if isinstance(cond, Halo):
                continue
            # a wall of the global domain: the same ghost polynomial as in one process
            coeffs = jnp.asarray(ghost_coefficients(type(cond).__name__.lower(), points, width), dtype=v.dtype)
            datum = self._datum(cond, axis, h, t, v.shape[1:], width, u.ndim - ndim)
            wall = (
                jnp.tensordot(coeffs[:, :points], interior, axes=(1, 0))
                + coeffs[:, points].reshape((width,) + (1,) * (v.ndim - 1)) * datum
            )
            ghosts[index] = _keep(wall[::-1] if side == "low" else wall, ghosts[index])
        v = jnp.concatenate([ghosts[0], v, ghosts[1]], axis=0)
        return jnp.moveaxis(v, 0, ax)

    def _datum(self, cond, axis, h, t, target_shape, width, lead):
        """The wall datum on this block's face, as the single-process padding has it.

        In one process the face array is edge-padded along the earlier (already
        padded) axes; here the global face array gets the same edge padding and the
        block's part (with ``width`` extra cells each side along the earlier axes) is
        cut out, so corner ghost cells match too.
        """
        value = cond.at(t)
        if isinstance(cond, Neumann):
            value = -h * jnp.asarray(value)
        value = jnp.asarray(value)
        if value.ndim == 0:
            return value
        face_axes = [b for b in range(self.ndim) if b != axis]
        face = tuple(target_shape[:lead]) + tuple(self.global_shape[b] for b in face_axes)
        value = jnp.broadcast_to(value, face)
        pads = [(0, 0)] * lead + [(width, width) if b < axis else (0, 0) for b in face_axes]
        value = jnp.pad(value, pads, mode="edge")
        index = [slice(None)] * lead
        for j, b in enumerate(face_axes):
            n = target_shape[lead + j] - (2 * width if b < axis else 0)
            index.append(slice(self.starts[b], self.starts[b] + n + (2 * width if b < axis else 0)))
        return value[tuple(index)]

    # -- solver hooks ------------------------------------------------------------------
    def face_average(self, k, axis: int, *, mean: str = "harmonic"):
        """A cell coefficient ``k`` (last ``ndim`` axes the block) on the block's
        ``n + 1`` faces normal to ``axis``, as ``nnpde.fd.face_average`` gives it on
        the global grid: faces shared with a neighbour rank average across the two
        ranks' cells; wall faces take the one-sided extrapolation.
        """
        from ..numerics import fd

        if not self.has_halo(axis):
            return fd.face_average(k, axis, ndim=self.ndim, periodic=self.is_periodic(axis), mean=mean)
        if mean not in ("harmonic", "arithmetic"):
            raise ValueError(f"mean must be 'harmonic' or 'arithmetic', got {mean!r}.")
        ax = k.ndim - self.ndim + axis
        v = jnp.moveaxis(k, ax, 0)
        low, high = self._exchange(v, axis, 1)
        extended = jnp.concatenate([low, v, high], axis=0)
        a, b = extended[:-1], extended[1:]
        faces = 2 * a * b / (a + b) if mean == "harmonic" else 0.5 * (a + b)
        if not isinstance(self.sides[axis][0], Halo):
            faces = faces.at[0].set(_keep(jnp.maximum(1.5 * v[0] - 0.5 * v[1], 0.5 * v[0]), low[0]))
        if not isinstance(self.sides[axis][1], Halo):
            faces = faces.at[-1].set(_keep(jnp.maximum(1.5 * v[-1] - 0.5 * v[-2], 0.5 * v[-1]), high[0]))
        return jnp.moveaxis(faces, 0, ax)

    def allreduce(self, x, op: str = "sum", *, varying: bool = False):
        """``x`` reduced over all ranks (``"sum"``, ``"max"`` or ``"min"``), inside
        or outside ``jit``. Maxima and minima are for bounds such as stability limits
        and carry no gradient.

        Sums are differentiable, in one of two ways. By default the result is taken
        to be replicated output (a loss, a diagnostic): every rank receives the same
        cotangent for it, and passes it to its own share unchanged (mpi4jax's rule).
        ``varying=True`` is for a sum that re-enters each rank's own computation
        (a mean subtracted from the local block): the ranks' cotangents then differ,
        and each share's cotangent is their sum over the ranks (one more allreduce
        in the backward pass), as the derivative of the global function requires.
        """
        if op not in _OPS:
            raise ValueError(f"op must be one of {_OPS}, got {op!r}.")
        if self.comm.size == 1:
            return x
        import mpi4jax
        from mpi4py import MPI

        x = jnp.asarray(x)
        if op != "sum":
            x = jax.lax.stop_gradient(x)
        total = mpi4jax.allreduce(x, op={"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op], comm=self.comm.comm)
        return _varying_function(self.comm)(total) if varying and op == "sum" else total


@dataclasses.dataclass(frozen=True, eq=False)
class Decomposition:
    """A Cartesian split of a global grid over the ranks of a communicator.

    Build with ``Decomposition.create``. Fields: ``grid`` (global), ``dims`` (ranks
    per axis), ``coords`` (this rank's process coordinates), ``local_grid``,
    ``local_slices`` (this block's cells in global index space), ``boundary_conditions``
    (``DecomposedBoundaryConditions`` for this block), ``rank``/``size``.

    Typical use (every rank runs the same script under ``mpirun``)::

        d = Decomposition.create(grid, bc, comm=MPI.COMM_WORLD)
        eq = solvers.HeatEquation(d.local_grid, d.boundary_conditions,
                                  conductivity=d.split(k), source=d.split(q))
        stepper = nnpde.ExplicitRK(eq, dt=nnpde.stable_dt(global_equation))
        u = nnpde.rollout(stepper, d.split(u0), 20, trajectory=False)
        u_all = d.gather(u)

    Incompressible flow on a periodic domain works the same way (the pressure solve
    becomes conjugate gradients with global reductions)::

        eq = solvers.NavierStokes2D(d.local_grid, bc=d.boundary_conditions, viscosity=nu,
                                    forcing=d.split(kolmogorov_forcing(grid)))
        u = nnpde.rollout(nnpde.ProjectedRK(eq, dt=dt), d.split(u0), 20, trajectory=False)

    In a differentiated function, losses are ``d.sum(...)`` (replicated on every rank)
    and parameters held whole on every rank go through ``d.replicated(...)``, so that
    each rank's gradient is that of the whole domain.
    """

    grid: Grid
    dims: tuple[int, ...]
    coords: tuple[int, ...]
    local_grid: Grid
    local_slices: tuple[slice, ...]
    boundary_conditions: DecomposedBoundaryConditions
    rank: int
    size: int
    _comm: _Comm
    _host_comm: _Comm

    @classmethod
    def create(
        cls, grid: Grid, boundary_conditions: BoundaryConditions, *, comm=None, dims=None, order: int = 2
    ) -> Decomposition:
        """Split ``grid`` over the ranks of ``comm`` (default ``MPI.COMM_WORLD``).

        ``dims``: ranks per grid axis (product = ranks of ``comm``); default
        ``MPI.Compute_dims``. Process-grid axes are periodic where the boundary
        conditions are. ``order``: the stencil order the solver will use (blocks must
        be at least as thick as its halo, and as its wall ghost polynomial next to a
        wall). Collective: every rank of ``comm`` must call it.
        """
        from mpi4py import MPI

        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be an nnpde.Grid, got {type(grid).__name__}.")
        if not isinstance(boundary_conditions, BoundaryConditions) or isinstance(
            boundary_conditions, DecomposedBoundaryConditions
        ):
            raise TypeError(
                "boundary_conditions must be the global nnpde.BoundaryConditions, got "
                f"{type(boundary_conditions).__name__}."
            )
        boundary_conditions.check(grid, order=order)
        comm = MPI.COMM_WORLD if comm is None else comm
        size, ndim = comm.Get_size(), grid.ndim
        if dims is None:
            dims = MPI.Compute_dims(size, ndim)
        dims = tuple(int(d) for d in dims)
        if len(dims) != ndim or any(d < 1 for d in dims):
            raise ValueError(
                f"dims={dims} must give a positive rank count for each of the grid's {ndim} axes. "
                f"Fix: e.g. dims={tuple(MPI.Compute_dims(size, ndim))}."
            )
        if math.prod(dims) != size:
            raise ValueError(
                f"dims={dims} asks for {math.prod(dims)} ranks but the communicator has {size}. Fix: choose "
                f"dims whose product is {size} (e.g. {tuple(MPI.Compute_dims(size, ndim))}) or launch "
                f"mpirun -n {math.prod(dims)}."
            )
        for a, (n, d) in enumerate(zip(grid.shape, dims)):
            if n % d:
                raise ValueError(
                    f"Grid axis {a} has {n} cells, which do not split evenly over {d} ranks (dims={dims}). "
                    f"Fix: a cell count divisible by {d} along axis {a}, or other dims."
                )
        width = order // 2
        for a, (n, d) in enumerate(zip(grid.shape, dims)):
            m = n // d
            wall = d > 1 and not boundary_conditions.is_periodic(a)
            need = max(width, max(INTERIOR_POINTS[order], 2) if wall else width)
            if d > 1 and m < need:
                raise ValueError(
                    f"Splitting axis {a} ({n} cells) over {d} ranks leaves blocks of {m} cells, thinner than "
                    f"the order-{order} stencil needs ({need}: halo width {width}"
                    f"{', and the wall ghost polynomial' if wall and need > width else ''}). "
                    f"Fix: fewer ranks along axis {a} (dims=...) or a finer grid."
                )
        periods = [boundary_conditions.is_periodic(a) for a in range(ndim)]
        cart = comm.Create_cart(list(dims), periods=periods, reorder=False)
        rank = cart.Get_rank()
        coords = tuple(int(c) for c in cart.Get_coords(rank))
        neighbours = tuple(tuple(int(r) for r in cart.Shift(a, 1)) for a in range(ndim))
        jax_comm, host_comm = _Comm(cart.Clone()), _Comm(cart.Clone())
        cart.Free()

        block = tuple(n // d for n, d in zip(grid.shape, dims))
        starts = tuple(c * m for c, m in zip(coords, block))
        slices = tuple(slice(s, s + m) for s, m in zip(starts, block))
        extent = tuple(
            (lo + s * h, lo + (s + m) * h) if d > 1 else (lo, hi)
            for (lo, hi), s, m, h, d in zip(grid.extent, starts, block, grid.spacing, dims)
        )
        local_grid = Grid(block, extent=extent)

        sides = []
        for a, d in enumerate(dims):
            pair = boundary_conditions.sides[a]
            if d == 1:
                sides.append(pair)  # the whole axis is here: wrap or walls as in one process
            elif boundary_conditions.is_periodic(a):
                sides.append((Halo(), Halo()))  # wraps through the periodic process grid
            else:
                sides.append((pair[0] if coords[a] == 0 else Halo(), pair[1] if coords[a] == d - 1 else Halo()))
        bc = DecomposedBoundaryConditions(sides, neighbours, grid.shape, starts, jax_comm, periods)
        return cls(
            grid=grid,
            dims=dims,
            coords=coords,
            local_grid=local_grid,
            local_slices=slices,
            boundary_conditions=bc,
            rank=rank,
            size=size,
            _comm=jax_comm,
            _host_comm=host_comm,
        )

    def split(self, field):
        """This rank's block of a global field (the last ``grid.ndim`` axes are the
        grid; leading axes, e.g. channels, are kept). Scalars pass through."""
        if jnp.ndim(field) == 0:
            return field
        field = jnp.asarray(field)
        if field.ndim < self.grid.ndim or field.shape[field.ndim - self.grid.ndim :] != self.grid.shape:
            raise ValueError(
                f"split needs a field whose last {self.grid.ndim} axes are the global grid {self.grid.shape}, "
                f"got shape {field.shape}. Fix: pass the global field (split it once, on every rank)."
            )
        return field[(Ellipsis, *self.local_slices)]

    def gather(self, local_field) -> np.ndarray:
        """The global field from every rank's block, on every rank (host-side
        ``allgather``: for outputs and tests, not inside ``jit``)."""
        local = np.asarray(local_field)
        ndim = self.grid.ndim
        if local.shape[local.ndim - ndim :] != self.local_grid.shape:
            raise ValueError(
                f"gather needs a field whose last {ndim} axes are this rank's block {self.local_grid.shape}, "
                f"got shape {local.shape}."
            )
        blocks = self._host_comm.comm.allgather((self.local_slices, local))
        out = np.empty(local.shape[: local.ndim - ndim] + self.grid.shape, dtype=local.dtype)
        for slices, block in blocks:
            out[(Ellipsis, *slices)] = block
        return out

    def generate_trajectories(
        self, step, initial_states, n_steps: int, *, save_every: int = 1, factor: int = 1, ndim: int, stagger=None
    ) -> np.ndarray:
        """``nnpde.generate_trajectories`` with the solver split over the ranks.

        ``step``: one step of the solver built on this rank's block (``local_grid``,
        ``boundary_conditions``, split coefficient fields). ``initial_states``: the
        GLOBAL batch ``(N, C, *grid.shape)``, the same on every rank. Each rank runs its
        block of every trajectory (the batch by ``jax.vmap``, halos exchanged at every
        step), keeps every ``save_every``-th state, and the blocks are gathered and then
        ``downsample``-d by ``factor``: the global ``(N, n_saved, C, *grid.shape //
        factor)`` array on every rank. Collective: every rank must call it."""
        from ..hybrid._data import downsample, generate_trajectories

        local = generate_trajectories(step, self.split(initial_states), n_steps, save_every=save_every, ndim=ndim)
        return np.asarray(downsample(self.gather(local), factor, ndim=ndim, stagger=stagger))

    def allreduce(self, x, op: str = "sum"):
        """``x`` reduced over all ranks by mpi4jax (``"sum"``, ``"max"``, ``"min"``);
        usable inside ``jit``; sums are differentiable."""
        return self.boundary_conditions.allreduce(x, op)

    def replicated(self, tree):
        """Mark parameters held whole on every rank (a viscosity, network weights) as they
        enter this rank's block computation: identity forward; backward, the gradient is
        summed over the ranks, so ``jax.grad`` gives every rank the gradient of the
        whole-domain loss (without it, each rank gets its block's share). Apply it inside
        the differentiated function, to the parameters it takes."""
        if self.size == 1:
            return tree
        varying = _varying_function(self._comm)
        return jax.tree.map(lambda leaf: varying(jnp.asarray(leaf)), tree)

    def sum(self, x):
        """The global sum of a block field (or of per-rank values): norms, dot
        products and losses. Differentiable; the result is replicated on all ranks."""
        return self.allreduce(jnp.sum(x), "sum")
