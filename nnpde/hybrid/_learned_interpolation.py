r"""Learned interpolation: a network chooses the advective flux's face stencil.

Kochkov et al., PNAS 118 (2021) e2101784118 ("learned interpolation"): instead of
correcting the solver's output, a network reads the coarse state and predicts, at every
face, the weights of the stencil that carries each advected quantity to that face. The
flux stays a flux (the scheme stays conservative), a projection stays a projection, and
the network only decides what the coarse grid cannot resolve: where inside the stencil
the face value lies. Bar-Sinai et al., PNAS 116 (2019) 15344 did the same for 1-D
Burgers-type equations.

Here the weights are an affine correction of a base scheme (van Leer by default):
``c_face = base(c) + sum_k dw_k c_k`` over a ``size^ndim`` block of cells around the
face, ``dw = B z`` with ``B`` an orthonormal basis of the weight vectors that sum to
zero and have zero first moments (``nnpde.consistent_corrections``) and ``z`` the
network's ``size^ndim - 1 - ndim`` outputs per face and reconstructed quantity. So the
reconstruction stays exact for fields linear in space whatever the network says, and a
network that outputs zero gives the base scheme exactly. Optionally (``bounded``) each
face value is clipped to the range of the two cells beside the face, the safeguard that
Kochkov et al. add to their learned interpolation (a TVD-type bound).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from ..numerics._equation import AbstractEquation
from ..numerics._reconstruction import AbstractReconstruction, CorrectedReconstruction, correction_size
from ..numerics._stepper import AbstractStepper
from ._coupling import _boundary_conditions, _check_fits, _check_scale, _dtype, _refuse_split_domain


class LearnedInterpolation(AbstractReconstruction):
    r"""A face reconstruction whose stencil weights a network predicts from the state.

    Build it for an equation with ``nnpde.learned_interpolation(equation, network)``,
    which checks the network's shape and installs it as the equation's reconstruction.
    ``network`` maps one state ``(channels, *grid)`` to ``(targets * sides * m, *grid)``:
    for each of the equation's ``targets`` reconstructed quantities and ``sides`` states
    per face, ``m = size^ndim - 1 - ndim`` coefficients per cell (cell ``i`` carries the
    stencil of its face ``i + 1/2``), ``scale`` times that being the correction's
    coefficients on ``nnpde.consistent_corrections``. With ``velocities`` (the
    equation's ``advecting_targets``, else 0) the network gives ``velocities * m``
    more channels after those: the stencils of the fluxes' advecting velocities
    (``nnpde.CorrectedReconstruction``'s ``velocity_weights``).
    """

    network: Callable
    base: AbstractReconstruction
    targets: int = eqx.field(static=True)
    sides: int = eqx.field(static=True)
    size: int = eqx.field(static=True)
    periodic: tuple[bool, ...] = eqx.field(static=True)
    bounded: bool = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    velocities: int = eqx.field(static=True, default=0)

    @property
    def width(self) -> int:
        return max(self.base.width, -(-self.size // 2) + (1 if self.velocities else 0))

    def prepare(self, u) -> CorrectedReconstruction:
        """The reconstruction at state ``u``: the base plus the network's stencil correction."""
        out = self.scale * self.network(u)
        m = correction_size(self.size, len(self.periodic))
        carried = self.targets * self.sides * m
        weights = out[:carried].reshape(self.targets, self.sides, m, *out.shape[1:])
        velocity_weights = out[carried:].reshape(self.velocities, m, *out.shape[1:]) if self.velocities else None
        return CorrectedReconstruction(
            self.base,
            weights,
            size=self.size,
            periodic=self.periodic,
            bounded=self.bounded,
            velocity_weights=velocity_weights,
        )

    def states(self, c_pad, axis: int, *, ndim: int, width: int, target: int = 0):
        raise TypeError(
            "A LearnedInterpolation depends on the whole state: the equation calls prepare(u) once per "
            "right-hand side and reconstructs with the result. Fix: install it with nnpde.learned_interpolation "
            "in a solver that supports pluggable reconstructions (solvers.Burgers, solvers.NavierStokes2D)."
        )


def learned_interpolation(
    equation: AbstractEquation,
    network: Callable,
    *,
    size: int = 4,
    bounded: bool = True,
    scale: float = 1.0,
    sides: int | None = None,
    velocities: bool = False,
):
    r"""``equation`` with its advective face reconstruction chosen by ``network``.

    The coupling of Kochkov et al. (2021): see the module docstring. ``equation`` must
    have a pluggable reconstruction (a ``reconstruction`` field and
    ``reconstruction_targets``, ``(targets, sides)``, and ``with_reconstruction``:
    ``solvers.Burgers``, ``solvers.NavierStokes2D`` and equations that wrap them); its
    current reconstruction becomes the base scheme. A limited base (van Leer) drops to
    first order at every extremum, and the network must cancel that dissipation where
    it is not wanted; a linear one (``advection="central"``: the two-cell mean) leaves
    the network all of the dissipation to choose (``problems.kolmogorov_ladder``'s
    ``base`` option compares the two).
    ``size``: stencil cells per axis (4: Kochkov's 4x4 in 2-D); ``sides``: states per
    face to predict (the equation's default: 2 for a Riemann flux's left and right
    states, 1 for a carried value); ``bounded``: clip each face value to its two
    neighbours; ``scale``: multiplies the network's output; ``velocities``: also learn
    the stencils of the advecting velocities in the momentum fluxes (Kochkov et al.
    interpolate both the advected component and the velocity that carries it;
    ``solvers.NavierStokes2D``: ``advecting_targets`` more quantities, never clipped).

    The result is the same kind of equation (steppers, projections, stability checks and
    ``nnpde.trainable`` see it as before); a zero network reproduces it exactly.
    """
    base = getattr(equation, "reconstruction", None)
    layout = getattr(equation, "reconstruction_targets", None)
    if not isinstance(base, AbstractReconstruction) or layout is None or not hasattr(equation, "with_reconstruction"):
        raise TypeError(
            f"{type(equation).__name__} has no pluggable face reconstruction (`reconstruction`, "
            "`reconstruction_targets` and `with_reconstruction`). Fix: use solvers.Burgers or solvers.NavierStokes2D, "
            "or a closure (nnpde.ClosureEquation) for equations without an advective flux."
        )
    if isinstance(base, LearnedInterpolation):
        raise ValueError(
            "This equation's reconstruction is already learned. Fix: couple the plain equation (rebuild it, or "
            "take the base: equation.with_reconstruction(equation.reconstruction.base))."
        )
    targets, default_sides = layout
    sides = default_sides if sides is None else sides
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2 states per face, got {sides!r}. Fix: leave it unset (the default).")
    if not isinstance(velocities, bool):
        raise TypeError(f"velocities must be True or False, got {velocities!r}.")
    advecting = int(getattr(equation, "advecting_targets", 0)) if velocities else 0
    if velocities and not advecting:
        raise ValueError(
            f"{type(equation).__name__} has no advecting velocity to learn (no `advecting_targets`): its flux joins "
            "the reconstructed states itself. Fix: velocities=False (learn the face states only), or "
            "solvers.NavierStokes2D, whose momentum flux carries each component with an interpolated velocity."
        )
    _refuse_split_domain(equation, "learned interpolation")
    ndim = equation.grid.ndim
    m = correction_size(size, ndim)
    periodic = _periodic_axes(equation)
    shape = equation.state_shape
    out = ((targets * sides + advecting) * m, *shape[1:])
    _check_fits(
        network,
        shape,
        out,
        _dtype(),
        "learned interpolation",
        f"give the network {out[0]} output channels: ({targets} reconstructed quantities x {sides} state(s) per "
        f"face + {advecting} advecting velocities) x {m} stencil coefficients ({size}^{ndim} cells less {1 + ndim} "
        "consistency constraints).",
    )
    learned = LearnedInterpolation(
        network=network,
        base=base,
        targets=targets,
        sides=sides,
        size=size,
        periodic=periodic,
        bounded=bool(bounded),
        scale=_check_scale(scale),
        velocities=advecting,
    )
    if min(equation.grid.shape) < 2 * learned.width + 1:
        raise ValueError(
            f"A {size}-cell stencil reads {learned.width} cells on each side of a face; the grid {equation.grid.shape} "
            "is too small. Fix: a smaller size or a finer grid."
        )
    return equation.with_reconstruction(learned)


def _periodic_axes(equation) -> tuple[bool, ...]:
    bc = _boundary_conditions(equation)
    ndim = equation.grid.ndim
    if not hasattr(bc, "is_periodic"):
        return (True,) * ndim
    return tuple(bool(bc.is_periodic(a)) for a in range(ndim))


class PerStepInterpolation(AbstractStepper):
    r"""A learned-interpolation stepper whose stencils are chosen once per step.

    ``stepper`` advances an equation built by ``nnpde.learned_interpolation``; called
    as it is, the network runs at every stage of the step (four times per RK4 step).
    Here it runs once, on the step's initial state ``u_n``, and the stencil weights it
    picks are held over the stages: ``u_{n+1} = S_w(u_n)`` with ``w = N(u_n)`` and
    ``S_w`` the plain step with the corrected reconstruction. The flux stays
    conservative and the projection unchanged; a zero network still gives the base
    scheme exactly. The network is by far the costliest part of a coarse step (a small
    CNN costs tens of times the plain right-hand side), so this makes the step several
    times cheaper, which is what an accuracy-per-cost comparison measures.

    ``hold``: the weights are held over ``hold`` steps of ``stepper``, so one call
    advances ``hold * stepper.dt`` (its ``dt``) with one network call:
    ``u_{n+hold} = S_w^hold(u_n)``, ``w = N(u_n)``. Each inner step keeps its own
    stability (and runtime check); the network learns weights for the whole block.
    The network, the costliest part, then runs ``hold`` times less often per time
    unit, where one longer inner step would leave the Runge-Kutta method's stability
    region.

    ``expand``: turn the held coefficients into stencil weights once per call
    (``nnpde.CorrectedReconstruction.expand``), not at each of the ``hold x stages``
    right-hand sides. For rollouts: on a 32^2 Kolmogorov model (4 x 4 stencils, a
    32 x 4 network, two held steps) it halves the cost of a whole call, network
    included, but reverse-mode differentiation through it costs about twice as much
    (measured: 87 -> 42 ms forward, 0.96 -> 2.3 s for a training gradient), so train
    without it. Equal to the unexpanded step up to rounding.
    """

    stepper: AbstractStepper
    hold: int = eqx.field(static=True)
    expand: bool = eqx.field(static=True)

    def __init__(self, stepper: AbstractStepper, hold: int = 1, *, expand: bool = False):
        reconstruction = getattr(getattr(stepper, "equation", None), "reconstruction", None)
        if not isinstance(stepper, AbstractStepper) or not isinstance(reconstruction, LearnedInterpolation):
            raise TypeError(
                f"PerStepInterpolation needs a stepper of an equation with a learned interpolation, got "
                f"{type(stepper).__name__} of {type(getattr(stepper, 'equation', None)).__name__}. Fix: "
                "nnpde.PerStepInterpolation(nnpde.ProjectedRK(nnpde.learned_interpolation(equation, network), dt=...))."
            )
        if isinstance(hold, bool) or not isinstance(hold, int) or hold < 1:
            raise ValueError(
                f"hold must be an int >= 1 (steps of the inner stepper per network call), got {hold!r}. "
                "Fix: e.g. hold=1 (the stencils chosen at every step) or hold=2."
            )
        if not isinstance(expand, bool):
            raise TypeError(f"expand must be True or False, got {expand!r}.")
        self.stepper = stepper
        self.hold = hold
        self.expand = expand

    @property
    def equation(self) -> AbstractEquation:
        return self.stepper.equation

    @property
    def dt(self) -> float:
        return self.stepper.dt * self.hold

    def _held(self, u):
        """The inner stepper with the reconstruction that the network picks at ``u``."""
        equation = self.stepper.equation
        prepared = equation.reconstruction.prepare(u)
        held = equation.with_reconstruction(prepared.expand() if self.expand else prepared)
        return eqx.tree_at(lambda s: s.equation, self.stepper, held)

    def __call__(self, u, t=0.0):
        step = self._held(u)
        if self.hold == 1:
            return step(u, t)

        def body(i, v):
            return step(v, t + i * self.stepper.dt)

        return jax.lax.fori_loop(0, self.hold, body, u)

    def substeps(self, u, t=0.0):
        """``(hold, *state)``: the states after each of the ``hold`` inner steps of one
        call (the last is the call's result), so that a trajectory can be kept at the
        inner step's spacing, finer than ``dt``: one network call still serves the
        ``hold`` steps."""
        step = self._held(u)

        def body(v, i):
            v = step(v, t + i * self.stepper.dt)
            return v, v

        return jax.lax.scan(body, u, jnp.arange(self.hold))[1]
