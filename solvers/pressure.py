r"""Pressure Poisson solves and the projection of a staggered (MAC) velocity.

Grid convention (``n`` values per axis; periodic unless ``bc`` says otherwise): a cell
field ``p[i, j]`` sits at the cell centre ``(x_{i+1/2}, y_{j+1/2})``; the velocity
component ``u_a`` sits on the *lower* faces normal to axis ``a``, offset 0 along ``a``
and 1/2 along the others, so ``u[i, j]`` is at ``(x_i, y_{j+1/2})`` and ``v[i, j]``
at ``(x_{i+1/2}, y_j)``, with ``x_i = lo + i h``. These are the first ``n`` of the
``n + 1`` positions of ``nnpde.Grid.face_centres(a)`` (the last is the first,
periodically). jax-cfd stores the upper face instead; the two differ by one index.

The discrete operators are the MAC (Harlow & Welch, Phys. Fluids 8 (1965) 2182) pair:

* divergence at cell centres: ``(D u)_ij = sum_a (u_a[i + e_a] - u_a[i]) / h_a``;
* gradient on faces: ``(G p)_a[i] = (p[i] - p[i - e_a]) / h_a``;

and ``D G`` is exactly the 5-point (2-D; 2d+1-point in d dimensions) Laplacian.
Projection: ``P u = u - G p`` with ``D G p = D u``. Then ``D P u = 0`` to round-off,
``P`` is idempotent, ``P`` is an orthogonal projection in the (cell-volume weighted)
discrete L2 inner product since ``G = -D^T``, and ``P`` leaves a divergence-free field
unchanged.

Poisson solves (``solve_poisson``):

* ``"fft"`` (periodic on every axis): ``D G`` is diagonal in the DFT with eigenvalues
  ``-sum_a 4 sin^2(pi m_a / n_a) / h_a^2``. The constant mode ``m = 0`` has
  eigenvalue 0: the problem is singular, solvable only for a right-hand side of zero
  mean (which ``D u`` always has on a periodic grid: its sum telescopes), and its
  solution is fixed up to a constant (the gauge). We set the zero mode of ``p``
  explicitly to 0 (``mean(p) = 0``) rather than divide by the zero eigenvalue;
  ``solve_poisson`` refuses a concrete right-hand side whose mean is not round-off,
  so an incompatible problem is never solved silently. Exact to round-off, O(N log N),
  no iteration, differentiable (linear transforms).
* ``"dct"`` (walls on some or all axes; periodic axes go through the DFT): on a wall
  axis the normal velocity is zero on both wall faces, so the gradient is not taken
  there and ``D G`` is the 5-point Laplacian with the Neumann ghost ``p_{-1} = p_0``
  (``dp/dn = 0``), diagonal in the DCT-II with eigenvalues ``-4 sin^2(pi m / 2n) /
  h^2``. Again only the constant mode has eigenvalue 0, ``sum(D u)`` telescopes to
  the (zero) wall fluxes, and the gauge ``mean(p) = 0`` is set explicitly (the DCT's
  mode 0 is the mean).
* ``"cg"`` (any of the boundary conditions here; ``"auto"`` picks it where no fast
  transform applies): preconditioned conjugate gradients (lineax) on the matrix-free
  operator ``-D G``, built from the very ``divergence`` and ``gradient`` the
  projection applies, so ``D P u`` is the solver's residual: ``max|D P u| <~ rtol
  max|D u|`` (measured 7e-13 relative at ``rtol = 1e-12`` with the Jacobi
  preconditioner, 2e-16 with the transform one on a walled grid;
  tests/test_pressure_cg.py).
  ``-D G`` is symmetric positive semi-definite; where it is singular (no Dirichlet
  pressure face) CG solves ``(-D G + c P_0) p = -rhs`` with ``P_0 p = mean(p)`` and
  ``c = sum_a 1 / h_a^2``: definite, and for a zero-mean ``rhs`` (checked, as above)
  summing its rows gives ``c mean(p) = 0``, so it is the same gauged solution; the
  mean left at the solver tolerance is removed at the end. Preconditioner
  (``preconditioner=``): ``"transform"`` (the default; the FFT/DCT solve of the same
  operator with every non-periodic axis taken as a Neumann wall and the constant
  mode mapped to ``1 / c``: the exact inverse on periodic and walled grids; with an
  outflow that of the nearby all-Neumann problem, differing in the outflow cell
  layer only, the constant mode divided by its Rayleigh quotient ``sum 2 / (n_a
  h_a^2)``) or ``"jacobi"`` (the diagonal of ``-D G``). Stopping test:
  ``max|r| <= rtol max|rhs|`` (default ``rtol`` 1e-12 in float64, 1e-5 in float32);
  a solve that misses it within ``max_steps`` raises (an equinox runtime error under
  ``jit``), never returns a poor pressure silently. Differentiated implicitly
  (``lineax.linear_solve``): the backward pass is one transposed CG solve with the
  same operator, not backpropagation through the iterations, so its memory does not
  grow with their number.

A periodic domain split across ranks (``nnpde.distributed.Decomposition``; the
block's boundary conditions have ``"halo"`` faces on a split axis): no transform spans
a split axis, so ``"auto"`` picks CG, run by ``nnpde.numerics._krylov`` with every inner
product, norm and mean summed over the ranks and the neighbour layers of ``D`` and
``G`` exchanged (``bc.shift``); unpreconditioned (the diagonal is constant), and
differentiated implicitly as above. Walled axes must stay whole on each rank.

Walls (any non-periodic axis of ``bc``: ``nnpde.Dirichlet`` or ``nnpde.Neumann`` on
both sides; the pressure sees only that the normal velocity vanishes there). Of the
``n + 1`` faces normal to a wall axis the state stores the first ``n``: index 0 is the
low wall face, whose value must be 0 (``enforce_walls`` sets it; ``project`` applies
it first), and the high wall face ``n`` is not stored (it is 0). The divergence then
reads ``u[n] = 0``, the gradient is 0 on the wall face 0, and ``P u`` has zero normal
velocity on every wall and discrete divergence at round-off.

Inflow and outflow (``Inflow`` on the low side and ``Outflow`` on the high side of
one axis, a "channel" axis; ``solvers.navier_stokes.walls``). The normal velocity on
the inflow face 0 is prescribed data (enters ``D u`` at time ``t``), and the outflow
face ``n`` is an unknown: of the ``n + 1`` faces the state stores faces ``1 .. n``
(index ``i`` is face ``i + 1``, the upper faces). On the outflow face ``p = 0``
(ghost ``-p[n - 1]``, second order), so ``(G p)_n = -2 p[n - 1] / h``: ``D G`` is the
5-point Laplacian with Neumann rows at the inflow and Dirichlet rows at the outflow,
symmetric negative definite (no gauge, no compatibility condition; ``P`` is a
projection, orthogonal in the inner product that halves the outflow faces' weight).
No fast transform is used for it: ``"auto"`` picks ``"cg"``. Summing ``D P u = 0``
over the domain gives outflow flux = inflow flux to the solver tolerance.

Public functions: ``solve_poisson``, ``divergence``, ``gradient``, ``enforce_walls``,
``pressure`` and ``project`` (above); ``kinematic_pressure`` (the pressure of a
right-hand side, ``P f = f - G p``); and, for the equations built on this layout
(``solvers.navier_stokes``), ``axis_layout`` (how an axis is stored: periodic, wall or
channel), ``axis_kinds`` with ``pick_solver`` (the per-axis operator kinds and the
solver they allow, checked at construction) and ``inflow_normal`` (the inflow datum
on its face).

Reference: Chorin, Math. Comp. 22 (1968) 745 (projection); Schumann & Sweet, J.
Comput. Phys. 20 (1976) 171 (fast transform Poisson solves); Saad, *Iterative Methods
for Sparse Linear Systems*, 2nd ed., SIAM 2003, sec. 9.2 (preconditioned CG).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.scipy.fft as jfft
import lineax as lx
import numpy as np

import nnpde
from nnpde import Field, State, conjugate_gradient, laplacian_eigenvalues

# A compatible right-hand side has a zero mean up to round-off in its sum: N terms of
# size max|rhs|, so |mean| <~ eps sqrt(N) max|rhs|; 1e-10 sits far above that (N <= 1e8
# gives 1e-12 in float64) and far below any genuine source mean.
_COMPATIBILITY_TOLERANCE = 1e-10


class Inflow(nnpde.Dirichlet):
    """An inflow face: the velocity is prescribed there, ``normal`` (into the domain
    for a positive value on the low side) and ``tangential`` (along the other axis).

    Each is a scalar, an array on the face (the other axis's ``n`` cell centres) or a
    function ``g(t)`` returning either. An inflow is a Dirichlet velocity condition;
    ``value`` (or ``function(t)``) holds ``stack([normal, tangential])``.
    """

    def __init__(self, normal=0.0, tangential=0.0):
        if callable(normal) or callable(tangential):

            def value(t):
                parts = (g(t) if callable(g) else g for g in (normal, tangential))
                return jnp.stack(jnp.broadcast_arrays(*(jnp.asarray(x) for x in parts)))

            self.value, self.function = None, value
        else:
            self.value = jnp.stack(jnp.broadcast_arrays(jnp.asarray(normal), jnp.asarray(tangential)))
            self.function = None


class Outflow(nnpde.Neumann):
    """An outflow face: zero normal gradient of both velocity components, ``p = 0``."""

    def __init__(self, value=0.0):
        if not (isinstance(value, (int, float)) and value == 0.0):
            raise ValueError(f"An outflow has zero normal velocity gradient, got {value!r}. Fix: Outflow().")
        self.value, self.function = 0.0, None


def axis_layout(bc: nnpde.BoundaryConditions, a: int) -> str:
    """How the MAC state stores axis ``a`` of ``bc``: ``"periodic"``, ``"wall"`` or ``"channel"``.

    * ``"periodic"``: faces ``0 .. n - 1`` of the normal component stored, face ``n``
      is face 0 (also a periodic axis split over ranks, with ``"halo"`` faces);
    * ``"wall"`` (``nnpde.Dirichlet`` or ``nnpde.Neumann`` on both sides): faces ``0 ..
      n - 1`` stored, index 0 the low wall face (held at 0), the high wall face ``n``
      implicit (0);
    * ``"channel"`` (``Inflow`` on the low side, ``Outflow`` on the high side): faces
      ``1 .. n`` stored (index ``i`` is face ``i + 1``, the upper faces), face 0 the
      inflow data.

    Raises ``ValueError`` for a layout the staggered solvers do not take: a walled axis
    split over ranks, an inflow or outflow without its partner on the other side.
    """
    if bc.global_periodic(a):
        return "periodic"  # also a periodic axis split over ranks (halo faces)
    if bc.distributed and "halo" in bc.kinds(a):
        raise ValueError(
            f"Axis {a} is a walled axis split over ranks (faces {bc.kinds(a)}); the staggered velocity and pressure "
            "solves take split periodic axes only. Fix: keep the walled axes whole (Decomposition.create(..., "
            "dims=...) with 1 rank along them) or make the domain periodic."
        )
    lo, hi = bc.sides[a]
    if isinstance(lo, Inflow) and isinstance(hi, Outflow):
        return "channel"
    if isinstance(lo, (Inflow, Outflow)) or isinstance(hi, (Inflow, Outflow)):
        names = (type(lo).__name__, type(hi).__name__)
        raise ValueError(
            f"Axis {a} has sides {names}; an outflow needs the inflow on the low side and the outflow on the "
            "high side of the same axis (one outflow per axis: with p = 0 there the flux leaving balances the "
            "inflow). An inflow against a wall, two outflows or an outflow alone are not supported. "
            "Fix: e.g. walls(x=(('inflow', profile), 'outflow'), y='no_slip'); flip the axis to put the "
            "inflow at the low side."
        )
    return "wall"


def axis_kinds(grid: nnpde.Grid, bc: nnpde.BoundaryConditions) -> tuple[str, ...]:
    """Per-axis kind of the pressure operator ``D G`` on ``grid`` with ``bc``, after checking the pair.

    ``"fft"`` on a periodic axis (diagonal in the DFT), ``"dct"`` on a wall axis
    (Neumann ``dp/dn = 0``: diagonal in the DCT-II), ``"cg"`` on a channel axis (the
    outflow's Dirichlet face ``p = 0`` has no fast transform here) and ``"halo"`` on a
    periodic axis split over ranks (no transform spans it). ``pick_solver`` turns the
    tuple into a solver. Raises ``TypeError`` / ``ValueError`` for a non-grid, non-bc,
    mismatched dimensions or an unsupported layout (``axis_layout``).
    """
    if not isinstance(grid, nnpde.Grid):
        raise TypeError(f"grid must be an nnpde.Grid, got {type(grid).__name__}.")
    if not isinstance(bc, nnpde.BoundaryConditions):
        raise TypeError(
            f"bc must be nnpde.BoundaryConditions, got {type(bc).__name__}. "
            "Fix: nnpde.BoundaryConditions.periodic(grid.ndim)."
        )
    if bc.ndim != grid.ndim:
        raise ValueError(
            f"Boundary conditions are for {bc.ndim} axes but the grid has {grid.ndim} (shape {grid.shape})."
        )
    kinds = {"periodic": "fft", "wall": "dct", "channel": "cg"}
    # a periodic axis split over ranks: no transform spans it (CG with global reductions)
    return tuple(
        "halo" if bc.distributed and "halo" in bc.kinds(a) else kinds[axis_layout(bc, a)] for a in range(grid.ndim)
    )


def _layouts(bc: nnpde.BoundaryConditions | None, ndim: int) -> tuple[str, ...]:
    return ("periodic",) * ndim if bc is None else tuple(axis_layout(bc, a) for a in range(bc.ndim))


def _wall_axes(bc: nnpde.BoundaryConditions) -> tuple[int, ...]:
    return tuple(a for a in range(bc.ndim) if axis_layout(bc, a) == "wall")


def _singular(kinds: tuple[str, ...]) -> bool:
    """Without a Dirichlet pressure face (an outflow) ``D G`` annihilates constants."""
    return "cg" not in kinds


@functools.cache
def _inverse_eigenvalues(grid: nnpde.Grid) -> np.ndarray:
    """``1 / lambda`` of the periodic 5-point Laplacian on ``rfftn`` modes, 0 for the mean."""
    total = 0.0
    for a, (n, h) in enumerate(zip(grid.shape, grid.spacing)):
        m = np.arange(n // 2 + 1) if a == grid.ndim - 1 else np.arange(n)
        lam = -4.0 * np.sin(np.pi * m / n) ** 2 / h**2
        shape = [1] * grid.ndim
        shape[a] = len(m)
        total = total + lam.reshape(shape)
    inverse = np.zeros_like(total)
    nonzero = total != 0.0
    inverse[nonzero] = 1.0 / total[nonzero]
    # The zero eigenvalue is the mean (gauge) mode alone: every other mode has some
    # 0 < m_a < n_a, where sin(pi m_a / n_a) != 0. Its inverse is set to 0, not 1/0.
    return inverse


def _solve_fft(rhs, grid: nnpde.Grid):
    axes = tuple(range(rhs.ndim - grid.ndim, rhs.ndim))
    modes = jnp.fft.rfftn(rhs, axes=axes)
    modes = modes * jnp.asarray(_inverse_eigenvalues(grid), dtype=rhs.dtype)  # zero mode -> 0
    return jnp.fft.irfftn(modes, s=grid.shape, axes=axes).astype(rhs.dtype)


@functools.cache
def _inverse_eigenvalues_mixed(grid: nnpde.Grid, kinds: tuple[str, ...]) -> np.ndarray:
    """``1 / lambda`` of the 5-point Laplacian, DFT on periodic and DCT-II on wall axes; 0 for the mean."""
    total = laplacian_eigenvalues(grid, kinds, order=2)
    inverse = np.zeros_like(total)
    nonzero = total != 0.0  # only the all-zero mode (the gauge) has eigenvalue 0
    inverse[nonzero] = 1.0 / total[nonzero]
    return inverse


def _solve_dct(rhs, grid: nnpde.Grid, kinds: tuple[str, ...]):
    lead = rhs.ndim - grid.ndim
    x = rhs
    for a, kind in enumerate(kinds):
        if kind == "dct":
            x = jfft.dct(x, type=2, axis=lead + a, norm="ortho")
    fft_axes = tuple(lead + a for a, k in enumerate(kinds) if k == "fft")
    if fft_axes:
        x = jnp.fft.fftn(x, axes=fft_axes)
    x = x * jnp.asarray(_inverse_eigenvalues_mixed(grid, kinds), dtype=rhs.dtype)  # zero mode -> 0
    if fft_axes:
        x = jnp.fft.ifftn(x, axes=fft_axes).real.astype(rhs.dtype)
    for a, kind in reversed(list(enumerate(kinds))):
        if kind == "dct":
            x = jfft.idct(x, type=2, axis=lead + a, norm="ortho")
    return x


_SOLVERS = {"fft": lambda rhs, grid, kinds: _solve_fft(rhs, grid), "dct": _solve_dct}
PRECONDITIONERS = ("transform", "jacobi")


def pick_solver(kinds: tuple[str, ...], solver: str) -> str:
    """The Poisson solver for the per-axis ``kinds`` of ``axis_kinds``: ``"fft"``, ``"dct"`` or ``"cg"``.

    ``solver="auto"`` picks the fast transform the axes allow (FFT on all-periodic,
    DCT with walls) and CG with an outflow or a split axis; a named ``solver`` is
    returned when it fits the axes, else refused with the fix (``ValueError``).
    """
    if "halo" in kinds:
        if solver not in ("auto", "cg"):
            raise ValueError(
                f"solver={solver!r} needs the whole of every transformed axis on one rank, but axes "
                f"{[a for a, k in enumerate(kinds) if k == 'halo']} are split over ranks. Fix: solver='cg' or "
                "'auto' (conjugate gradients with global reductions)."
            )
        return "cg"
    if solver == "auto":
        return "cg" if "cg" in kinds else ("fft" if set(kinds) == {"fft"} else "dct")
    if solver not in (*_SOLVERS, "cg"):
        raise ValueError(f"solver must be 'auto', 'cg' or one of {sorted(_SOLVERS)}, got {solver!r}.")
    if solver != "cg" and "cg" in kinds:
        raise ValueError(
            f"solver={solver!r} has no fast transform for an inflow/outflow axis (per-axis kinds {kinds}: the "
            "Dirichlet pressure face of the outflow). Fix: solver='cg' or 'auto'."
        )
    if solver == "fft" and set(kinds) != {"fft"}:
        raise ValueError(
            f"solver='fft' needs periodic axes only, got per-axis kinds {kinds}. Fix: solver='dct' or 'auto'."
        )
    return solver


def _negative_laplacian(p, grid: nnpde.Grid, bc: nnpde.BoundaryConditions):
    """``-D G p``: the projection's own operator, symmetric positive semi-definite."""
    return -_divergence(gradient(p, grid, bc), grid, _layouts(bc, grid.ndim), None, bc)


def _shift(q, a: int, offset: int, bc: nnpde.BoundaryConditions | None):
    """``q[i + offset]`` along the periodic axis ``a`` (from the neighbour rank across a split)."""
    if bc is None:
        return jnp.roll(q, -offset, axis=a)
    return bc.shift(q, a, offset)


def _jacobi_diagonal(grid: nnpde.Grid, bc: nnpde.BoundaryConditions) -> np.ndarray:
    """Diagonal of ``-D G``: ``2 / h^2`` per axis, ``1 / h^2`` in a cell next to a wall
    or an inflow (no gradient through that face), ``3 / h^2`` next to an outflow (the
    ghost ``-p`` of ``p = 0`` on the face)."""
    total = np.zeros(grid.shape)
    for a, (n, h, layout) in enumerate(zip(grid.shape, grid.spacing, _layouts(bc, grid.ndim))):
        d = np.full(n, 2.0 / h**2)
        if layout != "periodic":
            d[0] -= 1.0 / h**2
            d[-1] += (1.0 if layout == "channel" else -1.0) / h**2
        total = total + d.reshape([n if i == a else 1 for i in range(grid.ndim)])
    return total


def _gauge_eigenvalue(grid: nnpde.Grid) -> float:
    """``c`` of the gauge term ``c mean(p)`` that makes the singular ``-D G`` definite.

    Any ``c > 0`` gives the same (mean-zero) solution; ``sum_a 1 / h_a^2`` sits inside
    the spectrum of ``-D G``, so the regularised operator is no worse conditioned.
    """
    return float(sum(1.0 / h**2 for h in grid.spacing))


def _constant_mode_eigenvalue(grid: nnpde.Grid, kinds: tuple[str, ...]) -> float:
    """What the transform preconditioner divides the mean by: the gauge ``c`` of a
    singular operator, else the Rayleigh quotient of the constant field under ``-D G``,
    ``sum_a 2 / (n_a h_a^2)`` over the outflow axes (the outflow ghost's ``2 / h^2``)."""
    if _singular(kinds):
        return _gauge_eigenvalue(grid)
    return float(sum(2.0 / (n * h**2) for n, h, k in zip(grid.shape, grid.spacing, kinds) if k == "cg"))


def _solve_cg_split(rhs, grid: nnpde.Grid, bc: nnpde.BoundaryConditions, *, rtol, max_steps):
    """CG on one rank's block of a periodic domain split across ranks (module docstring).

    The same regularised operator as ``_solve_cg``, applied with halo exchanges
    (``bc.shift``); inner products, norms and the gauge's mean are sums over the ranks
    (``nnpde.numerics._krylov``), so every rank takes the same steps and the gathered solution
    is the single-process one to the solver tolerance. The diagonal of ``-D G`` is
    constant on a periodic grid: Jacobi would only rescale, so no preconditioner.
    """
    axes = tuple(range(rhs.ndim - grid.ndim, rhs.ndim))
    count = bc.global_size(grid.shape)
    c = _gauge_eigenvalue(grid)

    def mean(p):
        # the global mean re-enters each rank's block: its cotangents add over the ranks
        return bc.allreduce(jnp.sum(p, axis=axes, keepdims=True), "sum", varying=True) / count

    def matvec(p):
        return _negative_laplacian(p, grid, bc) + c * mean(p)

    solution = conjugate_gradient(
        matvec,
        -rhs,
        reduce=bc.allreduce,
        rtol=rtol,
        max_steps=max_steps,
        size=count,
        what="The pressure solve (conjugate gradients over the split domain)",
    )
    return solution - mean(solution)


def _solve_cg(rhs, grid: nnpde.Grid, bc: nnpde.BoundaryConditions, kinds, *, preconditioner: str, rtol, max_steps):
    """Preconditioned CG on ``(-D G [+ c P_0]) p = -rhs``, ``P_0 p = mean(p)`` (module docstring)."""
    if "halo" in kinds:
        return _solve_cg_split(rhs, grid, bc, rtol=rtol, max_steps=max_steps)
    singular = _singular(kinds)
    c = _gauge_eigenvalue(grid) if singular else 0.0
    axes = tuple(range(rhs.ndim - grid.ndim, rhs.ndim))

    def matvec(p):
        # The gauge term acts on the constant mode alone, the null space of -D G: for a
        # zero-mean rhs, summing the equations gives c mean(p) = 0, so the solution is
        # the mean-zero solution of D G p = rhs, exactly as the transform solves fix it.
        out = _negative_laplacian(p, grid, bc)
        return out + c * jnp.mean(p, axis=axes, keepdims=True) if singular else out

    if preconditioner == "transform":
        # The fast solve with every outflow axis taken as a Neumann wall: on periodic
        # and walled grids the exact inverse of the regularised operator (mode 0 ->
        # 1 / c), with an outflow that of a nearby problem (the two differ in one cell
        # layer), the constant mode scaled by its Rayleigh quotient.
        fast = tuple("dct" if k == "cg" else k for k in kinds)
        fast_solver = pick_solver(fast, "auto")
        zero_mode = _constant_mode_eigenvalue(grid, kinds)

        def apply_preconditioner(r):
            mean = jnp.mean(r, axis=axes, keepdims=True)
            return -_SOLVERS[fast_solver](r - mean, grid, fast) + mean / zero_mode

    elif preconditioner == "jacobi":
        inverse_diagonal = jnp.asarray(1.0 / _jacobi_diagonal(grid, bc), dtype=rhs.dtype)

        def apply_preconditioner(r):
            return inverse_diagonal * r

    else:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}.")
    b = -rhs
    rtol = rtol if rtol is not None else (1e-12 if rhs.dtype == jnp.float64 else 1e-5)
    # lineax tests |r_i| <= atol + rtol |b_i| cell by cell; where b_i = 0 that would ask
    # for an absolute residual of atol alone. atol = rtol max|b| makes the test the
    # normwise relative residual max|r| <~ rtol max|b| (as nnpde.ThetaMethod does).
    atol = rtol * jax.lax.stop_gradient(jnp.maximum(jnp.max(jnp.abs(b)), jnp.finfo(rhs.dtype).tiny))
    structure = jax.eval_shape(lambda: b)
    tags = (lx.symmetric_tag, lx.positive_semidefinite_tag)
    operator = lx.FunctionLinearOperator(matvec, structure, tags=tags)
    options = {"preconditioner": lx.FunctionLinearOperator(apply_preconditioner, structure, tags=tags)}
    # throw=True: a solve that misses the tolerance within max_steps raises (under jit
    # too, as an equinox runtime error) instead of returning a poor pressure.
    solution = lx.linear_solve(
        operator, b, lx.CG(rtol=rtol, atol=atol, max_steps=max_steps), options=options, throw=True
    ).value
    if singular:
        # The iteration leaves mean(p) at the solver tolerance; remove it to round-off.
        solution = solution - jnp.mean(solution, axis=axes, keepdims=True)
    return solution


def _solve(rhs, grid, bc, kinds, solver, *, preconditioner="transform", rtol=None, max_steps=None):
    if solver == "cg":
        return _solve_cg(rhs, grid, bc, kinds, preconditioner=preconditioner, rtol=rtol, max_steps=max_steps)
    return _SOLVERS[solver](rhs, grid, kinds)


def solve_poisson(
    rhs: Field,
    grid: nnpde.Grid,
    bc: nnpde.BoundaryConditions,
    *,
    solver: str = "auto",
    preconditioner: str = "transform",
    rtol: float | None = None,
    max_steps: int | None = None,
) -> Field:
    """Solve ``laplacian_h p = rhs`` (5-point stencil, cell centres) with ``mean(p) = 0``.

    ``solver``: ``"auto"`` (the fast transform the boundary conditions allow),
    ``"fft"`` (periodic axes only), ``"dct"`` (Neumann ``dp/dn = 0`` on the wall
    axes, DFT on the periodic ones) or ``"cg"`` (preconditioned conjugate gradients on
    the projection's operator ``D G``; module docstring). A concrete ``rhs`` with a
    mean beyond round-off (relative ``1e-10``) is refused: the singular problem has no
    solution then.

    CG options (ignored by the transforms): ``preconditioner`` ``"transform"`` or
    ``"jacobi"``; ``rtol``, the normwise relative residual ``max|r| <= rtol max|rhs|``
    to reach (default 1e-12 in float64, 1e-5 in float32); ``max_steps`` (default
    ``10 N``). Not converging raises.
    """
    kinds = axis_kinds(grid, bc)
    solver = pick_solver(kinds, solver)
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}.")
    nnpde.check_field_shape(rhs, grid.shape, "rhs", what="field")
    rhs = nnpde.check_finite(rhs, "The Poisson right-hand side", "give finite values.")
    if _singular(kinds) and nnpde.is_concrete(rhs):
        mean = float(bc.allreduce(jnp.sum(rhs), "sum")) / bc.global_size(grid.shape)
        scale = float(bc.allreduce(jnp.max(jnp.abs(rhs)), "max"))
        if abs(mean) > _COMPATIBILITY_TOLERANCE * max(scale, np.finfo(float).tiny):
            raise ValueError(
                f"The periodic/Neumann Poisson problem needs a right-hand side of zero mean, got mean {mean:.3e} "
                f"(max |rhs| {scale:.3e}). Fix: subtract the mean (the constant part has no periodic "
                "solution), or check the source."
            )
    return _solve(rhs, grid, bc, kinds, solver, preconditioner=preconditioner, rtol=rtol, max_steps=max_steps)


def inflow_normal(bc: nnpde.BoundaryConditions, a: int, shape, t, dtype):
    """The normal inflow velocity on face 0 of the channel axis ``a`` at time ``t``.

    Shaped like one slice of a component of ``shape`` along ``a`` (``shape[a]``
    replaced by 1), in ``dtype``: a scalar inflow is broadcast, a profile (2-D: the
    other axis's cell centres) is laid along the face.
    """
    face = list(shape)
    face[a] = 1
    value = jnp.asarray(bc.sides[a][0].at(t), dtype=dtype)[0]
    if value.ndim == 1:  # a profile along the other axis (2-D)
        value = jnp.expand_dims(value, a)
    return jnp.broadcast_to(value, face)


def _divergence(velocity, grid: nnpde.Grid, layouts: tuple[str, ...], inflow, bc=None):
    """``D u``; ``inflow[a]`` the low-face normal velocity of a channel axis, or None (0:
    the homogeneous operator)."""
    total = 0.0
    for a, (h, layout) in enumerate(zip(grid.spacing, layouts)):
        q = velocity[a]
        if layout == "periodic":
            total = total + (_shift(q, a, 1, bc) - q) / h
        elif layout == "wall":  # faces 0..n-1 stored, the high wall face n is 0
            zero = jnp.zeros_like(jax.lax.slice_in_dim(q, 0, 1, axis=a))
            total = total + (jnp.concatenate([jax.lax.slice_in_dim(q, 1, q.shape[a], axis=a), zero], axis=a) - q) / h
        else:  # channel: faces 1..n stored, face 0 the inflow
            first = jnp.zeros_like(jax.lax.slice_in_dim(q, 0, 1, axis=a)) if inflow is None else inflow[a]
            below = jnp.concatenate([first, jax.lax.slice_in_dim(q, 0, q.shape[a] - 1, axis=a)], axis=a)
            total = total + (q - below) / h
    return total


def enforce_walls(velocity, grid: nnpde.Grid, bc: nnpde.BoundaryConditions | None = None):
    """Set the normal velocity on the stored (low) wall faces, index 0 of each wall axis, to 0.

    A channel (inflow/outflow) axis stores no prescribed face: nothing to set there."""
    if bc is None:
        return velocity
    for a in _wall_axes(bc):
        velocity = velocity.at[(a,) + (slice(None),) * a + (0,)].set(0.0)
    return velocity


def divergence(velocity, grid: nnpde.Grid, bc: nnpde.BoundaryConditions | None = None, t=0.0):
    """MAC divergence at cell centres of a face velocity ``(ndim, *grid.shape)``.

    ``bc=None`` means periodic on every axis. On a wall axis the unstored high wall
    face is 0 and the stored low one (index 0) is used as given (0 for a valid state).
    On a channel axis the stored faces are ``1 .. n`` and the inflow face 0 carries the
    inflow's normal velocity at time ``t``.
    """
    layouts = _layouts(bc, grid.ndim)
    inflow = {
        a: inflow_normal(bc, a, velocity.shape[1:], t, velocity.dtype) for a, k in enumerate(layouts) if k == "channel"
    }
    return _divergence(velocity, grid, layouts, inflow, bc)


def gradient(p, grid: nnpde.Grid, bc: nnpde.BoundaryConditions | None = None):
    """MAC gradient on the stored faces of a cell field: ``(ndim, *grid.shape)``.

    ``bc=None`` means periodic on every axis; on a wall axis the gradient on the wall
    face (index 0) is 0, since the normal velocity there is prescribed. On a channel
    axis index ``i`` is face ``i + 1``: ``(p[i + 1] - p[i]) / h``, and on the outflow
    face ``n`` ``(0 - p[n - 1]) / (h / 2)`` (``p = 0`` on the face; ghost ``-p[n - 1]``).
    """
    parts = []
    for a, (h, layout) in enumerate(zip(grid.spacing, _layouts(bc, grid.ndim))):
        if layout == "channel":
            last = jax.lax.slice_in_dim(p, p.shape[a] - 1, p.shape[a], axis=a)
            above = jnp.concatenate([jax.lax.slice_in_dim(p, 1, p.shape[a], axis=a), -last], axis=a)
            parts.append((above - p) / h)
            continue
        # on a wall axis the wrapped value lands on the wall face 0, overwritten below
        below = _shift(p, a, -1, bc) if layout == "periodic" else jnp.roll(p, 1, axis=a)
        g = (p - below) / h
        if layout == "wall":
            g = g.at[(slice(None),) * a + (0,)].set(0.0)
        parts.append(g)
    return jnp.stack(parts)


def pressure(
    velocity: State, grid: nnpde.Grid, bc: nnpde.BoundaryConditions, *, t=0.0, solver: str = "auto", **options
) -> Field:
    """The ``p`` of the projection: ``laplacian_h p = D u``, ``mean(p) = 0`` (``p = 0``
    on the outflow face instead, where there is one; ``t``: the inflow's time).

    For a velocity increment ``dt * f`` this is ``dt`` times the kinematic pressure
    (pressure over density) that keeps the flow divergence-free.
    With walls the normal velocity on the wall faces is taken as 0 (``enforce_walls``).
    ``solver`` and the CG ``options`` (``preconditioner``, ``rtol``, ``max_steps``)
    are those of ``solve_poisson``.
    """
    kinds = axis_kinds(grid, bc)
    solver = pick_solver(kinds, solver)
    velocity = enforce_walls(velocity, grid, bc)
    return _solve(divergence(velocity, grid, bc, t), grid, bc, kinds, solver, **options)


def kinematic_pressure(
    rate: State, grid: nnpde.Grid, bc: nnpde.BoundaryConditions, *, solver: str = "auto", **options
) -> Field:
    """The kinematic pressure ``p`` of a right-hand side ``f``: ``P f = f - G p``.

    ``D G p = D_0 f``, ``D_0`` the homogeneous divergence (the inflow face's datum
    taken as 0: the inflow data are held steady, so a rate adds nothing there), gauge
    ``mean(p) = 0``, or ``p = 0`` on an outflow face. With walls the rate's normal
    component on the wall faces is taken as 0 (``enforce_walls``). ``solver`` and the
    CG ``options`` are those of ``solve_poisson``.
    """
    kinds = axis_kinds(grid, bc)
    solver = pick_solver(kinds, solver)
    rate = enforce_walls(rate, grid, bc)
    rhs = _divergence(rate, grid, _layouts(bc, grid.ndim), None, bc)
    return _solve(rhs, grid, bc, kinds, solver, **options)


def project(
    velocity: State, grid: nnpde.Grid, bc: nnpde.BoundaryConditions, *, t=0.0, solver: str = "auto", **options
) -> State:
    """``u - G p`` with ``D G p = D u``: the divergence-free part of a MAC velocity.

    With walls the wall faces' normal velocity is first set to 0 (``enforce_walls``),
    so ``P u`` satisfies the no-penetration condition and is idempotent. ``solver``
    and ``options`` as in ``pressure``; with ``"cg"`` the divergence left is the
    solver's residual, ``max|D P u| <~ rtol max|D u|``. ``t``: the time of the
    inflow data (an inflow enters ``D u``).
    """
    kinds = axis_kinds(grid, bc)
    velocity = enforce_walls(velocity, grid, bc)
    solver = pick_solver(kinds, solver)
    p = _solve(divergence(velocity, grid, bc, t), grid, bc, kinds, solver, **options)
    return velocity - gradient(p, grid, bc)
