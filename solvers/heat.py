r"""Heat conduction: ``rho c dT/dt = div(k grad T) + q``."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

import nnpde
from nnpde import State, fd

# Bound on |eigenvalue| * h^2 per axis of the discrete operator: 4 for the 2nd-order
# Laplacian (Gershgorin); 7 for the 4th-order one with wall ghosts (16/3 periodic;
# measured below 6.8 with walls, tests/test_heat.py::test_spectral_radius_bounds).
_RADIUS_PER_AXIS = {2: 4.0, 4: 7.0}


def _coefficient(value, grid, name: str, *, positive: bool):
    """A scalar or a cell field of ``grid.shape``, checked for shape and values."""
    if isinstance(value, (int, float)):
        value = float(value)
    else:
        value = jnp.asarray(value)
        if value.ndim == 0:
            pass
        else:
            nnpde.check_field_shape(value, grid.shape, name, what="coefficient field")
    value = nnpde.check_finite(value, name, f"give {name} finite values on every cell.")
    if positive:
        value = nnpde.check_positive(value, name, f"{name} is a physical property and must be > 0 on every cell.")
    return value


class HeatEquation(nnpde.AbstractLinearEquation):
    r"""Heat conduction ``rho c dT/dt = div(k grad T) + q`` in 1-3 D.

    Discretisation: cell-centred finite differences on ``grid``; the flux form
    ``div(k grad T)`` with ``k`` on faces (harmonic mean of the two cells by default,
    which keeps the flux continuous across material jumps) at second order, so heat is
    conserved exactly up to the boundary fluxes. With a scalar ``k`` the Laplacian may
    also be fourth order (``order=4``). Boundary conditions are ghost cells
    (``nnpde.BoundaryConditions``): Dirichlet fixes ``T``, Neumann the outward normal
    gradient ``dT/dn`` (the heat inflow through a wall is ``k dT/dn``).

    The state is ``T`` with a channel axis: shape ``(1, *grid.shape)``.

    Args:
        grid: the ``nnpde.Grid``.
        bc: boundary conditions for ``T``.
        conductivity: ``k > 0``, scalar or field of ``grid.shape``.
        source: ``q``: scalar, field of ``grid.shape`` or a function ``q(t)`` returning
            either.
        heat_capacity: volumetric ``rho c > 0``, scalar or field.
        order: 2 or 4 (4 needs a scalar ``k``).
        face_mean: ``"harmonic"`` or ``"arithmetic"`` face average of ``k``.

    Explicit stability: ``dt <= r / rho`` with the spectral radius
    ``rho = C max(k_face) / min(rho c) * sum_a 1/h_a^2``, ``C = 4`` at order 2 (a
    Gershgorin bound) and ``C = 7`` at order 4; ``r`` the method's stability extent.
    Implicit stepping (``nnpde.ThetaMethod``) is unconditionally stable.
    """

    grid: nnpde.Grid = eqx.field(static=True)
    bc: nnpde.BoundaryConditions
    conductivity: object
    source: object
    source_function: Callable | None = eqx.field(static=True)
    heat_capacity: object
    order: int = eqx.field(static=True)
    face_mean: str = eqx.field(static=True)

    def __init__(
        self,
        grid: nnpde.Grid,
        bc: nnpde.BoundaryConditions,
        *,
        conductivity=1.0,
        source=0.0,
        heat_capacity=1.0,
        order: int = 2,
        face_mean: str = "harmonic",
    ):
        if not isinstance(grid, nnpde.Grid):
            raise TypeError(f"grid must be an nnpde.Grid, got {type(grid).__name__}.")
        if not isinstance(bc, nnpde.BoundaryConditions):
            raise TypeError(
                f"bc must be nnpde.BoundaryConditions, got {type(bc).__name__}. "
                "Fix: e.g. nnpde.BoundaryConditions.periodic(grid.ndim)."
            )
        if order not in _RADIUS_PER_AXIS:
            raise ValueError(f"order must be 2 or 4, got {order}.")
        if face_mean not in ("harmonic", "arithmetic"):
            raise ValueError(f"face_mean must be 'harmonic' or 'arithmetic', got {face_mean!r}.")
        bc.check(grid, order=order)
        self.grid, self.bc, self.order, self.face_mean = grid, bc, order, face_mean
        self.conductivity = _coefficient(conductivity, grid, "conductivity", positive=True)
        self.heat_capacity = _coefficient(heat_capacity, grid, "heat_capacity", positive=True)
        if order == 4 and jnp.ndim(self.conductivity) != 0:
            raise ValueError(
                "A conductivity field is discretised in flux form at second order. "
                "Fix: use order=2, or a scalar conductivity for order=4."
            )
        if callable(source):
            self.source, self.source_function = None, source
        else:
            self.source = _coefficient(source, grid, "source", positive=False)
            self.source_function = None

    # -- the discrete operator -------------------------------------------------------
    @property
    def state_shape(self) -> tuple[int, ...]:
        return (1, *self.grid.shape)

    def _face_conductivity(self):
        k = self.conductivity
        if jnp.ndim(k) == 0:
            return (k,) * self.grid.ndim
        # The boundary conditions of one rank's block of a domain decomposition
        # (nnpde.distributed.Decomposition) average across faces shared with a
        # neighbour rank themselves.
        average = getattr(self.bc, "face_average", None)
        if average is not None:
            return tuple(average(k, a, mean=self.face_mean) for a in range(self.grid.ndim))
        return tuple(
            fd.face_average(k, a, ndim=self.grid.ndim, periodic=self.bc.is_periodic(a), mean=self.face_mean)
            for a in range(self.grid.ndim)
        )

    def _global(self, x, op: str):
        """``x`` reduced over the ranks of a domain decomposition (the block's boundary
        conditions carry ``allreduce``), so every rank takes the same stability decision;
        ``x`` itself in one process."""
        reduce = getattr(self.bc, "allreduce", None)
        return x if reduce is None else reduce(x, op)

    def _conduction(self, temperature, bc, t):
        """``div(k grad T)`` with the ghost cells of ``bc`` at time ``t``."""
        width = self.order // 2
        padded = bc.pad(temperature, width, self.grid.spacing, t=t, order=self.order)
        if jnp.ndim(self.conductivity) == 0:
            return self.conductivity * fd.laplacian(padded, self.grid.spacing, width=width, order=self.order)
        return fd.diffusion(padded, self._face_conductivity(), self.grid.spacing, width=width)

    # -- deep-halo stepping (periodic on every axis) ---------------------------------
    def halo_width(self) -> int:
        periodic = all(self.bc.is_periodic(a) for a in range(self.grid.ndim))
        return self.order // 2 if periodic else 0

    def rhs_padded(self, t, u_padded):
        width, ndim = self.halo_width(), self.grid.ndim
        if width == 0:
            return super().rhs_padded(t, u_padded)
        radius = (u_padded.shape[-1] - self.grid.shape[-1]) // 2

        def extend(field, r=radius - width):
            """A cell field (or scalar) periodically extended by r cells per side."""
            if jnp.ndim(field) == 0 or r == 0:
                return field
            return jnp.pad(field, [(r, r)] * ndim, mode="wrap")

        faces = None
        if jnp.ndim(self.conductivity) != 0:
            k = extend(self.conductivity, radius)
            faces = []
            for a in range(ndim):
                lo = jax.lax.slice_in_dim(k, 0, k.shape[a] - 1, axis=a)
                hi = jax.lax.slice_in_dim(k, 1, k.shape[a], axis=a)
                kf = 2 * lo * hi / (lo + hi) if self.face_mean == "harmonic" else 0.5 * (lo + hi)
                # the faces of the output cells: crop the other axes by the stencil width
                faces.append(kf[tuple(slice(width, -width) if b != a else slice(None) for b in range(ndim))])
        return self._rate(t, u_padded, faces, extend)

    def heat_source(self, t):
        """``q(t)`` as given (scalar or field)."""
        return self.source_function(t) if self.source_function is not None else self.source

    def _rate(self, t, padded, faces, extend):
        """``(div(k grad T) + q) / (rho c)`` from a padded temperature.

        ``faces``: the face conductivities (unused for a scalar ``k``); ``extend``: maps
        a cell field to the output's extent (identity, or a periodic halo). Scalar
        ``k`` and ``rho c`` fold into one multiply per cell: the explicit step is
        compute-bound once its memory traffic is amortised
        (docs/benchmarks/solver-throughput.md).
        """
        width = self.order // 2
        source = self.heat_source(t)
        has_source = self.source_function is not None or not (isinstance(source, float) and source == 0.0)
        if jnp.ndim(self.conductivity) == 0:
            lap = fd.laplacian(padded, self.grid.spacing, width=width, order=self.order)
            if jnp.ndim(self.heat_capacity) == 0:
                rate = lap * (self.conductivity / self.heat_capacity)
                return rate + extend(source) / self.heat_capacity if has_source else rate
            conduction = lap * self.conductivity
        else:
            conduction = fd.diffusion(padded, faces, self.grid.spacing, width=width)
        if has_source:
            conduction = conduction + extend(source)
        return conduction / extend(self.heat_capacity)

    def __call__(self, t, u: State, args=None) -> State:
        padded = self.bc.pad(u, self.order // 2, self.grid.spacing, t=t, order=self.order)
        return self._rate(t, padded, self._face_conductivity(), lambda field: field)

    # -- the affine split for implicit steppers ----------------------------------------
    def mass(self):
        return self.heat_capacity

    def apply_operator(self, u: State) -> State:
        return self._conduction(u, self.bc.homogeneous(), 0.0)

    def forcing(self, t):
        zero = jnp.zeros(self.state_shape, dtype=jnp.result_type(float))
        return self._conduction(zero, self.bc, t) + self.heat_source(t)

    def preconditioner_diagonal(self):
        if self.order == 4:
            # Interior value; the wall rows differ slightly (a preconditioner only).
            return -2.5 * self.conductivity * sum(1 / h**2 for h in self.grid.spacing)
        ndim = self.grid.ndim
        faces = self._face_conductivity()
        diagonal = 0.0
        for a, (kf, h) in enumerate(zip(faces, self.grid.spacing)):
            n = self.grid.shape[a]
            kf = jnp.broadcast_to(kf, tuple(n + 1 if b == a else m for b, m in enumerate(self.grid.shape)))
            weight = jnp.ones(n + 1)
            for index, kind in zip((0, n), self.bc.kinds(a)):
                # Ghost weights on the boundary cell: Dirichlet -1 (factor 2), Neumann +1 (factor 0);
                # a periodic face or one shared with a neighbour rank (halo) is an interior face.
                weight = weight.at[index].set({"dirichlet": 2.0, "neumann": 0.0, "periodic": 1.0, "halo": 1.0}[kind])
            kf = kf * weight.reshape([n + 1 if b == a else 1 for b in range(ndim)])
            lo = jax.lax.slice_in_dim(kf, 0, n, axis=a)
            hi = jax.lax.slice_in_dim(kf, 1, n + 1, axis=a)
            diagonal = diagonal - (lo + hi) / h**2
        return diagonal[None]

    def operator_is_symmetric(self) -> bool:
        return self.order == 2 or all(self.bc.global_periodic(a) for a in range(self.grid.ndim))

    def fast_solver(self):
        """The DFT/DCT/DST solve, for scalar ``k`` and ``rho c`` and, per axis, periodic
        or same-type walls (walls at order 2 only)."""
        kinds = nnpde.transform_kinds(self.bc, self.order)
        if jnp.ndim(self.conductivity) != 0 or jnp.ndim(self.heat_capacity) != 0 or kinds is None:
            return None

        def solve(rhs, alpha):
            return nnpde.solve_shifted(
                rhs, self.grid, kinds, shift=self.heat_capacity, scale=alpha * self.conductivity, order=self.order
            )

        return solve

    def spectral_radius(self, t, u):
        faces = self._face_conductivity()
        k_max = self._global(jnp.max(jnp.asarray([jnp.max(kf) for kf in faces])), "max")
        c_min = self._global(jnp.min(jnp.asarray(self.heat_capacity)), "min")
        radius = _RADIUS_PER_AXIS[self.order] * k_max / c_min
        return radius * sum(1 / h**2 for h in self.grid.spacing)

    def total_heat(self, u):
        """``sum(rho c T) * cell_volume``: conserved with periodic or zero-flux walls and no source
        (over the whole domain when it is split across ranks)."""
        return self._global(jnp.sum(self.heat_capacity * u) * self.grid.cell_volume, "sum")
