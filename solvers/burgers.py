r"""Viscous Burgers: ``du/dt + (u . grad) u = nu lap u + s`` in 1-D and 2-D."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

import nnpde
from nnpde import State, fd

SCHEMES = tuple(nnpde.RECONSTRUCTIONS)
# Gershgorin factor of the advective part of the spectral radius, see Burgers.
_ADVECTIVE_FACTOR = 2.0
_DIFFUSIVE_FACTOR = 4.0


def _check_viscosity(nu):
    """``nu`` as a float or 0-d array, finite and >= 0 (at run time when traced)."""
    if isinstance(nu, (bool, str)) or not (isinstance(nu, (int, float)) or jnp.ndim(nu) == 0):
        raise ValueError(
            f"viscosity must be a scalar (float or 0-d array), got {nu!r} with shape {jnp.shape(nu)}. "
            "Fix: pass e.g. viscosity=0.01."
        )
    if isinstance(nu, (int, float)):
        nu = float(nu)
    nu = nnpde.check_finite(nu, "viscosity", "pass a finite viscosity >= 0, e.g. viscosity=0.01.")
    fix = "viscosity is a physical diffusivity: pass nu >= 0 (nu = 0 is inviscid Burgers)."
    if isinstance(nu, float) or nnpde.is_concrete(nu):
        if float(nu) < 0:
            raise ValueError(f"viscosity must be >= 0, got {float(nu)}. Fix: {fix}")
        return nu
    return eqx.error_if(nu, nu < 0, f"viscosity must be >= 0. Fix: {fix}")


def face_states(u_pad, axis: int, *, ndim: int, width: int, scheme="van_leer"):
    """Left and right states on the ``n + 1`` faces normal to ``axis`` of every channel.

    ``scheme``: a name of ``SCHEMES`` or an ``nnpde.AbstractReconstruction``:
    ``"central"`` and ``"upwind"`` give the two cells beside the face (piecewise
    constant); ``"van_leer"`` MUSCL, piecewise linear with van Leer-limited slopes
    (``width >= 2``): second order where smooth, no new extrema. van Leer, J. Comput.
    Phys. 32 (1979) 101.
    """
    return nnpde.reconstruction(scheme).states(u_pad, axis, ndim=ndim, width=width)


class Burgers(nnpde.AbstractEquation):
    r"""Viscous Burgers ``du/dt + (u . grad) u = nu lap u + s`` in 1-D and 2-D.

    1-D: ``u_t + (u^2 / 2)_x = nu u_xx + s``, state ``(1, n)``. 2-D: the vector Burgers
    equation for ``u = (u_x, u_y)``, state ``(2, nx, ny)`` (component ``c`` is the
    velocity along grid axis ``c``). Cell-centred: ``grid.shape`` counts cells,
    boundaries excluded (see ``nnpde.Grid``).

    Discretisation (method of lines, finite volume on the cells). The advective term
    is written as a divergence of face fluxes plus a compression correction,

        ``(u . grad) u_c = sum_a d_a F_ac(u) - u_c sum_{a != c} d_a u_a``,
        ``F_ac = u_a u_c`` (``a != c``), ``F_aa = u_a^2 / 2``,

    so the 1-D equation is in pure conservation form (``sum(u) h`` changes only by the
    boundary fluxes) and in 2-D every diagonal term is the conservative Burgers flux.
    On each face normal to axis ``a`` a left and a right state ``L, R`` are
    reconstructed (``reconstruction``, see below) and joined by the local Lax-Friedrichs (Rusanov)
    flux ``F = (F(L) + F(R)) / 2 - alpha (R - L) / 2``, ``alpha = max(|L_a|, |R_a|)``:
    the Jacobian of ``F_a`` has the double eigenvalue ``u_a``, so ``alpha`` is the
    local wave speed. The correction uses the face velocity ``(L_a + R_a) / 2``, so a
    uniform component is transported exactly. Schemes (``scheme``):

    * ``"central"``: ``L, R`` the two cells, ``alpha = 0``: second order, no numerical
      dissipation (needs ``nu > 0`` and a resolved profile, cell Peclet
      ``|u| h / nu`` of order 1 or less, to stay free of wiggles);
    * ``"upwind"``: ``L, R`` the two cells: first order, monotone (Rusanov 1961);
    * ``"van_leer"``: MUSCL reconstruction with the van Leer limiter: second order
      where smooth, total-variation diminishing (van Leer 1979).

    ``scheme`` may also be any ``nnpde.AbstractReconstruction`` (the pluggable part of
    the flux): ``nnpde.learned_interpolation`` installs a network-chosen stencil on top
    of the scheme, for component ``c`` along axis ``a`` reconstructed quantity
    ``a * ndim + c`` (``reconstruction_targets``: ``ndim^2`` quantities, left and right
    states). The Rusanov dissipation follows the base scheme.

    The viscous term is the second-order central Laplacian (``nnpde.fd.laplacian``).
    Boundary conditions fill ghost cells (``nnpde.BoundaryConditions``, linear ghost
    polynomial): ``Periodic`` or ``Dirichlet`` (prescribed velocity) per side. ``bc``
    is one set of conditions for every component or, in 2-D, a tuple with one per
    component (e.g. different wall velocities for ``u_x`` and ``u_y``). ``source``
    ``s`` is a state-shaped array or a function ``s(t)`` returning one.

    Explicit stability (the CFL limit): ``nnpde.max_stable_dt(eq, method, u=u)`` is
    ``r / rho`` with ``r`` the method's real-axis stability extent and

        ``rho = sum_a (2 max|u_a| / h_a + 4 nu / h_a^2)``,

    a Gershgorin bound on the Jacobian of the upwind (Rusanov) semi-discretisation:
    its eigenvalues lie in the disk centred at ``-rho / 2`` with radius ``rho / 2``
    (in 1-D the symbol is ``-(|u| / h)(1 - e^{-i theta}) - (4 nu / h^2)
    sin^2(theta / 2)``). For forward Euler ``r = 2`` gives exactly the classical
    monotonicity limit ``dt (|u| / h + 2 nu / h^2) <= 1`` (CFL 1 when inviscid);
    the disk of diameter ``r`` also lies in the stability regions of Heun, SSP-RK3 and
    RK4 (their upwind CFL limits 1, 1.257 and 1.393 against the guard's 1, 1.255 and
    1.393), so the guard is sharp for ``"upwind"``. The ``"central"`` spectrum lies on
    ``|Im lambda| <= max|u| / h``: the bound is conservative there by a factor 2, and
    stable for SSP-RK3 and RK4 (imaginary-axis extents 1.73 and 2.83) but not for
    forward Euler or Heun, which contain no part of the imaginary axis: use SSP-RK3 or
    RK4 with ``"central"``. ``"van_leer"`` is Fromm's scheme where smooth (RK4 limit
    1.385 vs 1.393; SSP-RK3 limit 1.18 vs 1.255: take ``safety <= 0.9`` with SSP-RK3);
    it keeps the maximum principle (``min u0 <= u <= max u0``, periodic) for
    ``dt <= 1 / rho``, half the forward-Euler limit, with forward Euler or SSP-RK3
    (Harten 1983; the MUSCL face increments are at most twice the cell increments),
    ``"upwind"`` for ``dt <= 2 / rho``. Without a state (``u=None``, as at stepper
    construction) ``rho`` holds only the viscous part; ``nnpde.ExplicitRK`` checks the
    full bound with the actual state at every step.

    Reference: C. Hirsch, *Numerical Computation of Internal and External Flows*,
    vol. 2, Wiley 1990, ch. 20-21 (Rusanov flux, MUSCL, TVD); E. F. Toro, *Riemann
    Solvers and Numerical Methods for Fluid Dynamics*, 3rd ed., Springer 2009,
    ch. 13.

    Args:
        grid: a 1-D or 2-D ``nnpde.Grid``.
        bc: ``nnpde.BoundaryConditions`` of ``Periodic`` / ``Dirichlet`` sides, or (2-D)
            a tuple with one per velocity component.
        viscosity: ``nu >= 0`` (a scalar; may be traced, e.g. to differentiate it).
        scheme: ``"central"``, ``"upwind"``, ``"van_leer"`` or an ``nnpde.AbstractReconstruction``.
        source: ``s``: 0, a state-shaped array or a function ``s(t)``.
    """

    grid: nnpde.Grid = eqx.field(static=True)
    bc: tuple[nnpde.BoundaryConditions, ...]
    viscosity: object
    reconstruction: nnpde.AbstractReconstruction
    source: object
    source_function: Callable | None = eqx.field(static=True)

    def __init__(
        self,
        grid: nnpde.Grid,
        bc,
        *,
        viscosity=0.01,
        scheme="van_leer",
        source=0.0,
    ):
        if not isinstance(grid, nnpde.Grid):
            raise TypeError(f"grid must be an nnpde.Grid, got {type(grid).__name__}. Fix: e.g. nnpde.Grid((128,)).")
        if grid.ndim not in (1, 2):
            raise ValueError(
                f"Burgers is implemented in 1-D and 2-D, got a {grid.ndim}-D grid of shape {grid.shape}. "
                "Fix: use a grid with one or two axes."
            )
        self.reconstruction = nnpde.reconstruction(scheme)
        width = self.reconstruction.width
        if min(grid.shape) < 2 * width + 1:
            raise ValueError(
                f"The {self.scheme!r} scheme reads {width} cell(s) on each side, so it needs at least "
                f"{2 * width + 1} cells per axis; got grid shape {grid.shape}. Fix: refine the grid."
            )
        self.grid = grid
        self.bc = self._boundary_conditions(bc, grid, width)
        self.viscosity = _check_viscosity(viscosity)
        if callable(source):
            self.source, self.source_function = None, source
        else:
            if isinstance(source, (int, float)) and not isinstance(source, bool):
                source = float(source)
            else:
                source = jnp.asarray(source)
                if source.ndim != 0:
                    nnpde.check_field_shape(source, self.state_shape, "source", what="state")
            self.source = nnpde.check_finite(source, "source", "give the source finite values on every cell.")
            self.source_function = None

    @staticmethod
    def _boundary_conditions(bc, grid, width):
        ndim = grid.ndim
        if isinstance(bc, nnpde.BoundaryConditions):
            bcs = (bc,)
        elif isinstance(bc, (tuple, list)) and len(bc) == ndim and ndim > 1:
            bcs = tuple(bc)
        else:
            raise TypeError(
                f"bc must be nnpde.BoundaryConditions (or, in 2-D, a tuple of {ndim}, one per velocity "
                f"component), got {bc!r}. Fix: e.g. nnpde.BoundaryConditions.periodic({ndim})."
            )
        for c, b in enumerate(bcs):
            if not isinstance(b, nnpde.BoundaryConditions):
                raise TypeError(f"bc[{c}] must be nnpde.BoundaryConditions, got {type(b).__name__}.")
            b.check(grid, order=2, width=width)
            for a in range(ndim):
                for kind in b.kinds(a):
                    if kind not in ("periodic", "dirichlet", "halo"):  # halo: a neighbour rank's cells
                        raise ValueError(
                            f"Burgers supports Periodic and Dirichlet boundaries; axis {a} has {kind!r}"
                            f"{f' (component {c})' if len(bcs) > 1 else ''}. Fix: prescribe the velocity "
                            "with nnpde.Dirichlet(value) or use nnpde.Periodic()."
                        )
        return bcs

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.grid.ndim, *self.grid.shape)

    @property
    def scheme(self) -> str:
        """The advection scheme's name (of the base scheme, for a learned reconstruction)."""
        return self.reconstruction.name

    @property
    def reconstruction_targets(self) -> tuple[int, int]:
        """``(quantities, states per face)`` of the reconstruction: component ``c`` along
        axis ``a`` is quantity ``a * ndim + c``; left and right states (a Riemann flux)."""
        return self.grid.ndim**2, 2

    @property
    def width(self) -> int:
        """Ghost cells per side the advection scheme reads."""
        return self.reconstruction.width

    def with_reconstruction(self, reconstruction: nnpde.AbstractReconstruction):
        """This equation with ``reconstruction`` carrying the advected quantities to the faces."""
        return eqx.tree_at(lambda e: e.reconstruction, self, reconstruction)

    def pad(self, u, t=0.0):
        """``u`` with ``width`` ghost cells per side filled by the boundary conditions."""
        spacing = self.grid.spacing
        if len(self.bc) == 1:
            return self.bc[0].pad(u, self.width, spacing, t=t, order=2)
        return jnp.stack([b.pad(u[c], self.width, spacing, t=t, order=2) for c, b in enumerate(self.bc)])

    def advection(self, u_pad, reconstruction: nnpde.AbstractReconstruction | None = None):
        """``(u . grad) u`` at cell centres from a padded state (flux form, see class).

        ``reconstruction``: the one prepared for this state (``reconstruction.prepare(u)``);
        by default this equation's own, which must then not depend on the state."""
        ndim, width, spacing = self.grid.ndim, self.width, self.grid.spacing
        recon = self.reconstruction if reconstruction is None else reconstruction
        total, compression = 0.0, []
        for a, h in enumerate(spacing):
            pairs = [recon.states(u_pad[c], a, ndim=ndim, width=width, target=a * ndim + c) for c in range(ndim)]
            left, right = jnp.stack([p[0] for p in pairs]), jnp.stack([p[1] for p in pairs])
            # F_ac = u_a u_c, halved on the diagonal (u_a^2 / 2)
            weight = jnp.asarray([0.5 if c == a else 1.0 for c in range(ndim)], dtype=left.dtype)
            weight = weight.reshape((ndim,) + (1,) * ndim)
            flux = 0.5 * weight * (left[a] * left + right[a] * right)
            if self.scheme != "central":
                alpha = jnp.maximum(jnp.abs(left[a]), jnp.abs(right[a]))
                flux = flux - 0.5 * alpha * (right - left)
            total = total + self._difference(flux, a) / h
            if ndim > 1:
                compression.append(self._difference(0.5 * (left[a] + right[a]), a) / h)
        if ndim == 1:
            return total
        interior = u_pad[(Ellipsis, *(slice(width, -width) for _ in range(ndim)))]
        divergence = sum(compression)
        return total - interior * jnp.stack([divergence - compression[c] for c in range(ndim)])

    def _difference(self, faces, axis: int):
        """Face values ``n + 1`` -> cell differences ``f[i + 1/2] - f[i - 1/2]``."""
        ax = faces.ndim - self.grid.ndim + axis
        n = faces.shape[ax] - 1
        return jax.lax.slice_in_dim(faces, 1, n + 1, axis=ax) - jax.lax.slice_in_dim(faces, 0, n, axis=ax)

    def forcing(self, t):
        """``s(t)`` as given (0, an array or the function's value)."""
        return self.source_function(t) if self.source_function is not None else self.source

    def __call__(self, t, u: State, args=None) -> State:
        nnpde.check_field_shape(u, self.state_shape, "Burgers state", what="state")
        u_pad = self.pad(u, t)
        advection = self.advection(u_pad, self.reconstruction.prepare(u))
        rate = self.viscosity * fd.laplacian(u_pad, self.grid.spacing, width=self.width) - advection
        if self.source_function is not None or not (isinstance(self.source, float) and self.source == 0.0):
            rate = rate + self.forcing(t)
        return rate

    def spectral_radius(self, t, u):
        spacing = self.grid.spacing
        radius = _DIFFUSIVE_FACTOR * self.viscosity * sum(1 / h**2 for h in spacing)
        if u is not None:
            speeds = jnp.max(jnp.abs(jnp.reshape(u, (self.grid.ndim, -1))), axis=1)
            speeds = self.bc[0].allreduce(speeds, "max")  # over all ranks of a split domain: one decision
            radius = radius + _ADVECTIVE_FACTOR * sum(speeds[a] / h for a, h in enumerate(spacing))
        return jnp.asarray(radius)

    def total_momentum(self, u):
        """``sum(u) * cell_volume`` per component: conserved to round-off in 1-D with
        periodic boundaries and no source (flux form). In 2-D the equation itself
        conserves it only for curl-free flows, where ``(u . grad) u = grad(|u|^2 / 2)``."""
        return jnp.sum(u, axis=tuple(range(1, u.ndim))) * self.grid.cell_volume
