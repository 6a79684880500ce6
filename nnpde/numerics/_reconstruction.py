r"""Face reconstruction: HOW a cell quantity is carried to the faces of an advective flux.

A finite-volume advection term needs, at every face, the value of the advected quantity
there. A reconstruction gives it from the cell values around the face, and is the one
part of an advective flux that a solver lets you replace (Kochkov et al., PNAS 118
(2021) e2101784118, learn exactly this part; the flux stays conservative and any
projection unchanged). Two forms, on the ``n + 1`` faces ``i - 1/2`` (``i = 0 .. n``)
normal to ``axis`` of a state padded by ``width`` ghost cells per side:

* ``states(c_pad, axis)``: the left and right states at each face (a Riemann solver
  joins them: ``solvers.Burgers``'s local Lax-Friedrichs flux);
* ``upwind(c_pad, face_velocity, axis)``: the value carried by a given face velocity
  (the left state where it is positive, else the right; ``solvers.NavierStokes2D``'s
  flux ``u_a c``).

Built in: ``Central`` (the two neighbours; their mean as the carried value: second
order, no dissipation), ``Upwind`` (first order) and ``VanLeer`` (MUSCL with the van
Leer limiter: second order where smooth, total-variation diminishing; van Leer, J.
Comput. Phys. 32 (1979) 101). ``CorrectedReconstruction`` adds a consistent stencil
correction to any of them: at each face ``sum_k dw_k c_k`` over an ``s^ndim`` block of
cells, with weights ``dw`` per face that sum to zero and have zero first moments about
the face (``consistent_corrections``), so fields linear in space are reconstructed
as by the base scheme (exactly, for the built-in ones) and zero weights give the base
scheme bit for bit. ``nnpde.LearnedInterpolation`` lets a network choose those weights.
"""

from __future__ import annotations

import abc
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import fd


def _window(c_pad, axis: int, offsets: tuple[int, ...], *, ndim: int, width: int):
    """Cells ``i + offsets[axis]`` beside faces ``i - 1/2`` (``n + 1`` of them) along
    ``axis`` and cells ``j + offsets[b]`` along every other axis ``b`` (``n_b`` of them)."""
    lead = c_pad.ndim - ndim
    index = [slice(None)] * lead
    for b in range(ndim):
        n = c_pad.shape[lead + b] - 2 * width
        start = width + offsets[b]
        if start < 0 or start + n + (1 if b == axis else 0) > c_pad.shape[lead + b]:
            raise ValueError(
                f"The reconstruction reads cells {offsets[b]:+d} along axis {b}, beyond the {width} ghost "
                "cells of the padded state. Fix: pad with the width the reconstruction states (its `width`)."
            )
        index.append(slice(start, start + n + (1 if b == axis else 0)))
    return c_pad[tuple(index)]


def _neighbours(c_pad, axis: int, *, ndim: int, width: int, offsets=(-1, 0)):
    zero = [0] * ndim
    out = []
    for o in offsets:
        shift = list(zero)
        shift[axis] = o
        out.append(_window(c_pad, axis, tuple(shift), ndim=ndim, width=width))
    return out


class AbstractReconstruction(eqx.Module):
    """Face values of a cell quantity for an advective flux (module docstring).

    Subclasses give ``width`` (ghost cells per side they read) and ``states``;
    ``upwind`` picks the left state where the face velocity is positive, else the right.
    ``target`` tells which of a solver's reconstructed quantities this call is for
    (``equation.reconstruction_targets`` of them); only learned corrections use it.
    """

    @property
    @abc.abstractmethod
    def width(self) -> int:
        """Ghost cells per side this reconstruction reads."""

    @property
    def name(self) -> str:
        """The base scheme's name (``"central"``, ``"upwind"``, ``"van_leer"``): a solver
        chooses its Riemann flux's dissipation by it."""
        return self.base.name

    def prepare(self, u) -> AbstractReconstruction:
        """The reconstruction to use for one right-hand-side evaluation at the (unpadded)
        state ``u``: itself, unless it depends on the state (``nnpde.LearnedInterpolation``)."""
        return self

    @abc.abstractmethod
    def states(self, c_pad, axis: int, *, ndim: int, width: int, target: int = 0):
        """``(left, right)``: the states on both sides of the ``n + 1`` faces normal to ``axis``."""

    def upwind(self, c_pad, face_velocity, axis: int, *, ndim: int, width: int, target: int = 0):
        """The value carried through each face by ``face_velocity`` (upwind side's state)."""
        left, right = self.states(c_pad, axis, ndim=ndim, width=width, target=target)
        return jnp.where(face_velocity > 0, left, right)

    def advecting_velocity(self, velocity, v_pad, along: int, normal: int, *, ndim: int, width: int, target: int = 0):
        """The advecting velocity of a staggered momentum flux (``solvers._momentum_flux``):
        ``velocity`` is the solver's own value, the two-point mean of ``v_pad`` (the
        velocity component normal to the faces, ``u_normal``, padded by ``width``) along
        axis ``along``; only a learned correction changes it."""
        return velocity


class _AbstractCellStates(AbstractReconstruction):
    """Piecewise constant states: the two cells beside each face (one ghost cell)."""

    @property
    def width(self) -> int:
        return 1

    def states(self, c_pad, axis: int, *, ndim: int, width: int, target: int = 0):
        left, right = _neighbours(c_pad, axis, ndim=ndim, width=width)
        return left, right


class Central(_AbstractCellStates):
    """The two cells beside the face as its states; their mean as the carried value
    (second order, non-dissipative: central advection)."""

    @property
    def name(self) -> str:
        return "central"

    def upwind(self, c_pad, face_velocity, axis: int, *, ndim: int, width: int, target: int = 0):
        left, right = self.states(c_pad, axis, ndim=ndim, width=width)
        return 0.5 * (left + right)


class Upwind(_AbstractCellStates):
    """Piecewise constant: each face's states are the cells beside it (first order)."""

    @property
    def name(self) -> str:
        return "upwind"


class VanLeer(AbstractReconstruction):
    """MUSCL: piecewise linear with van Leer-limited slopes (``nnpde.fd.van_leer_slope``);
    second order where smooth, no new extrema. The states lie between the two cells
    beside the face."""

    @property
    def name(self) -> str:
        return "van_leer"

    @property
    def width(self) -> int:
        return 2

    def states(self, c_pad, axis: int, *, ndim: int, width: int, target: int = 0):
        left2, left, right, right2 = _neighbours(c_pad, axis, ndim=ndim, width=width, offsets=(-2, -1, 0, 1))
        jump = right - left
        return (
            left + 0.5 * fd.van_leer_slope(left - left2, jump),
            right - 0.5 * fd.van_leer_slope(jump, right2 - right),
        )


RECONSTRUCTIONS = {"central": Central, "upwind": Upwind, "van_leer": VanLeer}


def reconstruction(scheme) -> AbstractReconstruction:
    """``scheme`` as a reconstruction: one of ``RECONSTRUCTIONS`` by name, or a reconstruction."""
    if isinstance(scheme, AbstractReconstruction):
        return scheme
    if not isinstance(scheme, str) or scheme not in RECONSTRUCTIONS:
        raise ValueError(
            f"Unknown advection scheme {scheme!r}. Fix: use one of {tuple(RECONSTRUCTIONS)} or pass an "
            "nnpde.AbstractReconstruction (e.g. nnpde.VanLeer())."
        )
    return RECONSTRUCTIONS[scheme]()


def stencil_offsets(size: int, ndim: int, axis: int) -> tuple[tuple[int, ...], ...]:
    """The cell offsets of a ``size^ndim`` block around the face ``i - 1/2`` normal to
    ``axis``: ``size`` cells across the face along ``axis`` (``-size/2 .. size/2 - 1``),
    ``size`` cells around the face's own row along every other axis."""
    along = range(-(size // 2), size - size // 2)
    across = range(-((size - 1) // 2), size - (size - 1) // 2)
    ranges = [along if b == axis else across for b in range(ndim)]
    return tuple(
        tuple(int(o) for o in offset) for offset in np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, ndim)
    )


@functools.cache
def consistent_corrections(size: int, ndim: int, axis: int) -> np.ndarray:
    """An orthonormal basis ``(size^ndim, size^ndim - 1 - ndim)`` of the stencil weight
    corrections that keep a reconstruction consistent to first order: weights summing to
    zero with zero first moment along every axis about the face (cell ``i + o`` lies at
    ``o + 1/2`` from the face along ``axis``, at ``o`` along the others)."""
    offsets = np.asarray(stencil_offsets(size, ndim, axis), dtype=float)
    positions = offsets + 0.5 * (np.arange(ndim) == axis)
    constraints = np.concatenate([np.ones((1, len(offsets))), positions.T], axis=0)
    _, singular, vt = np.linalg.svd(constraints)
    rank = int(np.sum(singular > 1e-10 * singular[0]))
    return vt[rank:].T.copy()


def correction_size(size: int, ndim: int) -> int:
    """Free weights per face and target of a consistent ``size^ndim`` stencil correction."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"stencil size must be an int >= 2, got {size!r}. Fix: e.g. 4 (Kochkov et al. 2021).")
    return size**ndim - 1 - ndim


def _apply_correction(basis, coefficients, stencil):
    """``sum_k dw_k c_k`` per face: ``dw = basis @ coefficients`` (``coefficients``: ``(m,
    *faces)``) applied to the stencil's cells (``stencil``: ``(*faces, size^ndim)``)."""
    dw = jnp.moveaxis(jnp.tensordot(basis, coefficients, axes=(1, 0)), 0, -1)
    return jnp.sum(dw * stencil, axis=-1)


def _apply_expanded(dw, windows):
    """``sum_k dw_k c_k`` per face with the weights already expanded (``dw``: ``(size^ndim,
    *faces)``; ``windows``: the stencil's ``size^ndim`` cell arrays, each ``faces``), as
    one running sum that XLA fuses into a single pass (no stacked stencil array)."""
    total = dw[0] * windows[0]
    for k in range(1, len(windows)):
        total = total + dw[k] * windows[k]
    return total


def _expand(basis, coefficients, axis: int):
    """``basis @ coefficients`` along ``axis`` of ``coefficients`` (the ``m`` axis), kept there."""
    return jnp.moveaxis(jnp.tensordot(basis, coefficients, axes=(1, axis)), 0, axis)


class CorrectedReconstruction(AbstractReconstruction):
    r"""``base`` plus a consistent stencil correction ``sum_k dw_k c_{i + o_k}`` per face.

    ``weights``: ``(targets, sides, m, *grid.shape)``, ``m = correction_size(size, ndim)``
    coefficients per cell on the basis ``consistent_corrections(size, ndim, axis)``; cell
    ``i`` carries the weights of its face ``i + 1/2`` along each axis (the same
    coefficients for every axis: a target is one quantity on one axis). ``sides`` is 1
    (one correction added to both states, as for a carried value) or 2 (left and right
    states corrected separately). On a periodic axis face ``-1/2`` takes the last cell's
    weights (it is face ``n - 1/2``); with ``periodic[axis]`` False the correction is zero
    on both boundary faces (the wall's flux is the boundary condition's).

    ``bounded``: clip each corrected state to the range of the two cells beside the face
    (no new extrema at faces; the built-in bases already satisfy it, so zero weights
    still give the base exactly).

    ``velocity_weights`` (optional): ``(targets, m, *grid.shape)``, a consistent
    correction of the advecting velocity of a staggered momentum flux as well
    (``advecting_velocity``): Kochkov et al. interpolate both the advected component
    and the velocity that advects it with learned stencils. Target ``t`` is the face
    velocity of the flux with the same target number; the stencil is the ``size^ndim``
    block around that face (``size`` cells across it along the interpolation axis), on
    the basis of ``consistent_corrections``, so a linear velocity is still interpolated
    exactly; never clipped. It reads one more ghost layer across the face
    (``width``).

    ``expand``: turn the coefficients into the stencil weights ``dw`` (for every axis)
    once, here, instead of at every use. Each use then costs ``size^ndim``
    multiply-adds per face instead of ``(m + 1) size^ndim``, for the price of
    expanding for every axis (``expand()`` gives the expanded copy): worth it where
    one reconstruction serves many right-hand sides (``nnpde.PerStepInterpolation``
    holds one over all the stages of its steps). Equal to the unexpanded one up to
    rounding.
    """

    base: AbstractReconstruction
    weights: jax.Array
    velocity_weights: jax.Array | None
    expanded: tuple[jax.Array, ...] | None
    expanded_velocity: tuple[jax.Array, ...] | None
    size: int = eqx.field(static=True)
    periodic: tuple[bool, ...] = eqx.field(static=True)
    bounded: bool = eqx.field(static=True)

    def __init__(
        self,
        base: AbstractReconstruction | str,
        weights,
        *,
        size: int = 4,
        periodic,
        bounded: bool = True,
        velocity_weights=None,
        expand: bool = False,
    ):
        self.base = reconstruction(base)
        self.periodic = tuple(bool(p) for p in periodic)
        ndim = len(self.periodic)
        m = correction_size(size, ndim)
        weights = jnp.asarray(weights)
        if weights.ndim != 3 + ndim or weights.shape[1] not in (1, 2) or weights.shape[2] != m:
            raise ValueError(
                f"weights must be (targets, sides in (1, 2), {m}, *grid) for a {size}^{ndim} stencil, got "
                f"{weights.shape}. Fix: m = size^ndim - 1 - ndim free weights per face (nnpde.correction_size)."
            )
        if velocity_weights is not None:
            velocity_weights = jnp.asarray(velocity_weights)
            if velocity_weights.shape[1:] != (m, *weights.shape[3:]) or velocity_weights.ndim != 2 + ndim:
                raise ValueError(
                    f"velocity_weights must be (targets, {m}, *grid) with the grid of weights {weights.shape[3:]}, "
                    f"got {velocity_weights.shape}. Fix: one set of {m} coefficients per cell and advecting velocity."
                )
        self.weights, self.velocity_weights, self.size, self.bounded = weights, velocity_weights, size, bool(bounded)
        if not isinstance(expand, bool):
            raise TypeError(f"expand must be True or False, got {expand!r}.")
        self.expanded = self.expanded_velocity = None
        if expand:
            bases = [jnp.asarray(consistent_corrections(size, ndim, a), dtype=weights.dtype) for a in range(ndim)]
            self.expanded = tuple(_expand(b, weights, 2) for b in bases)
            if velocity_weights is not None:
                self.expanded_velocity = tuple(_expand(b, velocity_weights, 1) for b in bases)

    def expand(self) -> CorrectedReconstruction:
        """This reconstruction with its stencil weights expanded once (``expand`` above)."""
        if self.expanded is not None:
            return self
        return CorrectedReconstruction(
            self.base,
            self.weights,
            size=self.size,
            periodic=self.periodic,
            bounded=self.bounded,
            velocity_weights=self.velocity_weights,
            expand=True,
        )

    @property
    def width(self) -> int:
        across = 1 if self.velocity_weights is not None else 0  # the advecting velocity's rows reach one further
        return max(self.base.width, -(-self.size // 2) + across)

    def _face_weights(self, axis: int, target: int, side: int, ndim: int):
        """``(m, *faces)``: cell ``i``'s coefficients on face ``i + 1/2``, as the face array
        (``(size^ndim, *faces)``: the stencil weights themselves, where ``expanded``)."""
        source = self.weights if self.expanded is None else self.expanded[axis]
        w = source[target, min(side, source.shape[1] - 1)]
        ax = 1 + axis
        first = jax.lax.slice_in_dim(w, w.shape[ax] - 1, w.shape[ax], axis=ax)
        if not self.periodic[axis]:
            first = jnp.zeros_like(first)
            last = jnp.zeros_like(first)
            w = jnp.concatenate([jax.lax.slice_in_dim(w, 0, w.shape[ax] - 1, axis=ax), last], axis=ax)
        return jnp.concatenate([first, w], axis=ax)

    def _correction(self, c_pad, axis: int, *, ndim: int, width: int, target: int, side: int):
        coefficients = self._face_weights(axis, target, side, ndim)
        windows = [_window(c_pad, axis, o, ndim=ndim, width=width) for o in stencil_offsets(self.size, ndim, axis)]
        if self.expanded is not None:
            return _apply_expanded(coefficients, windows)
        basis = jnp.asarray(consistent_corrections(self.size, ndim, axis), dtype=c_pad.dtype)
        return _apply_correction(basis, coefficients, jnp.stack(windows, axis=-1))

    def advecting_velocity(self, velocity, v_pad, along: int, normal: int, *, ndim: int, width: int, target: int = 0):
        """``velocity`` (the mean of ``u_normal`` over its two neighbours along ``along``, at
        the ``normal`` faces of the control volumes staggered along ``along``) plus the
        consistent stencil correction of ``velocity_weights[target]``.

        The faces: ``i - 1/2`` along ``along`` (``n + 1`` of them if ``along ==
        normal``, else ``n``: ``i = 0 .. n - 1``) and the ``n + 1`` rows ``0 .. n`` of
        ``u_normal`` along ``normal`` (row ``n`` from the ghost layer); each takes the
        coefficients of the cell that carries it (cell ``i - 1`` along ``along``, row ``j
        mod n`` along ``normal`` on a periodic axis; zero on the boundary faces of an
        axis that is not periodic).
        """
        if self.velocity_weights is None:
            return velocity
        shape = tuple(v_pad.shape[b] - 2 * width for b in range(ndim))
        lengths = [n + (1 if b == normal else 0) for b, n in enumerate(shape)]

        def window(offset):
            index = []
            for b in range(ndim):
                start = width + offset[b]
                if start < 0 or start + lengths[b] > v_pad.shape[b]:
                    raise ValueError(
                        f"The advecting velocity's stencil reads cells {offset[b]:+d} along axis {b}, beyond the "
                        f"{width} ghost cells of the padded state. Fix: pad with the reconstruction's `width`."
                    )
                index.append(slice(start, start + lengths[b]))
            return v_pad[tuple(index)]

        w = self.velocity_weights[target] if self.expanded_velocity is None else self.expanded_velocity[along][target]
        for b in range(ndim):  # coefficients on the face array: cell i - 1 along `along`, row j mod n along `normal`
            ax = 1 + b
            n = w.shape[ax]
            if b == along:
                last = jax.lax.slice_in_dim(w, n - 1, n, axis=ax)
                if not self.periodic[b]:
                    last = jnp.zeros_like(last)
                end = n if b == normal else n - 1
                w = jnp.concatenate([last, jax.lax.slice_in_dim(w, 0, end, axis=ax)], axis=ax)
                if b == normal and not self.periodic[b]:
                    w = w.at[(slice(None),) * ax + (n,)].set(0.0)
            elif b == normal:
                first = jax.lax.slice_in_dim(w, 0, 1, axis=ax)
                w = jnp.concatenate([w, first], axis=ax)
                if not self.periodic[b]:
                    w = w.at[(slice(None),) * ax + (0,)].set(0.0).at[(slice(None),) * ax + (n,)].set(0.0)
        windows = [window(o) for o in stencil_offsets(self.size, ndim, along)]
        if self.expanded_velocity is not None:
            return velocity + _apply_expanded(w, windows)
        basis = jnp.asarray(consistent_corrections(self.size, ndim, along), dtype=v_pad.dtype)
        return velocity + _apply_correction(basis, w, jnp.stack(windows, axis=-1))

    def _bound(self, value, c_pad, axis, *, ndim, width):
        if not self.bounded:
            return value
        left, right = _neighbours(c_pad, axis, ndim=ndim, width=width)
        return jnp.clip(value, jnp.minimum(left, right), jnp.maximum(left, right))

    def states(self, c_pad, axis: int, *, ndim: int, width: int, target: int = 0):
        left, right = self.base.states(c_pad, axis, ndim=ndim, width=width, target=target)
        common = dict(ndim=ndim, width=width, target=target)
        left = left + self._correction(c_pad, axis, side=0, **common)
        right = right + self._correction(c_pad, axis, side=1, **common)
        return self._bound(left, c_pad, axis, ndim=ndim, width=width), self._bound(
            right, c_pad, axis, ndim=ndim, width=width
        )

    def upwind(self, c_pad, face_velocity, axis: int, *, ndim: int, width: int, target: int = 0):
        common = dict(ndim=ndim, width=width, target=target)
        value = self.base.upwind(c_pad, face_velocity, axis, **common)
        correction = self._correction(c_pad, axis, side=0, **common)
        if self.weights.shape[1] == 2:  # the upwind side's correction
            correction = jnp.where(face_velocity > 0, correction, self._correction(c_pad, axis, side=1, **common))
        return self._bound(value + correction, c_pad, axis, ndim=ndim, width=width)
