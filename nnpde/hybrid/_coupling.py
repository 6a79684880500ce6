r"""Hybrid couplings: a solver with a learned part, usable wherever the solver was.

Each coupling wraps an equation (WHAT) or a stepper (HOW) of any PDE and is again an
equation or a stepper, so every stepper, ``rollout``, loss and training loop works with
it unchanged:

* ``CorrectedStepper``: ``u_{n+1} = S(u_n) + s N(u_n)``, a post-step correction
  trained with the solver in the loop (Um et al., NeurIPS 2020, "Solver-in-the-Loop");
* ``ClosureEquation``: ``du/dt = f(t, u) + s N(u)``, or the conservative flux form
  ``f(t, u) - s div F(u)``: a learned sub-grid term inside the right-hand side,
  stepped by any stepper (Kochkov et al., PNAS 2021, learn inside the solver too);
* ``NeuralSource``: ``du/dt = f(t, u) + s q(x, t)``, a source learned as a function
  of position and time;
* ``LearnedCoefficient``: a coefficient of the equation (conductivity, viscosity) given
  by a network of position (inverse problems) or of the state (a closure law);
* ``Emulator``: ``u_{n+1} = u_n + s N(u_n)``, the pure-network baseline every hybrid is
  compared with.

What trains is explicit (``nnpde.trainable``): by default the networks' parameters
only; the physics stays fixed unless asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import State
from ..numerics._equation import AbstractEquation, AbstractProjectedEquation
from ..numerics._grid import Grid
from ..numerics._stepper import AbstractStepper, _check_dt

_SAME_CHANNELS = "give the network as many output channels as the state has channels."
_TRANSFORMS: dict[str, Callable] = {
    "identity": lambda x: x,
    "softplus": jax.nn.softplus,
    "exp": jnp.exp,
}


def _output_shape(fn, *inputs) -> tuple[int, ...]:
    try:
        out = jax.eval_shape(lambda *x: fn(*x), *inputs)  # a lambda: see generate_trajectories
    except Exception as error:  # any failure to trace is a shape or type mismatch here
        shapes = [getattr(x, "shape", x) for x in inputs]
        raise ValueError(
            f"The network could not be applied to an input of shape {shapes} (what this coupling feeds it). "
            f"The network said: {error}"
        ) from error
    return tuple(out.shape)


def _check_fits(network, input_shape, expected, dtype, what: str, fix: str) -> None:
    got = _output_shape(network, jax.ShapeDtypeStruct(input_shape, dtype))
    if got != tuple(expected):
        raise ValueError(
            f"The {what} network maps an input of shape {tuple(input_shape)} to {got}, but the coupling needs "
            f"{tuple(expected)}. Fix: {fix}"
        )


def _boundary_conditions(equation):
    """The equation's ``bc`` (the first set where there is one per component), or ``None``."""
    bc = getattr(equation, "bc", None)
    if isinstance(bc, (tuple, list)) and bc:  # one set per component: the first tells the axes
        bc = bc[0]
    return bc


def _refuse_split_domain(equation, what: str) -> None:
    """Refuse an equation that runs on one rank's block of a split domain (halo faces):
    a network that reads the state (a convolution) would see the block alone, without its
    neighbours' cells, and the model would differ from the same model run whole."""
    has_halo = getattr(_boundary_conditions(equation), "has_halo", None)
    if not callable(has_halo):
        return
    split = [a for a in range(equation.grid.ndim) if has_halo(a)]
    if split:
        raise ValueError(
            f"The {what} network reads the state, but {type(equation).__name__} runs on one block of a split domain "
            f"(halo faces on axes {split}, block {tuple(equation.grid.shape)}): the network would see the block "
            "alone and the model would differ from the same model run whole. Fix: couple the network to the "
            "equation on the whole grid (nnpde splits the reference solver's domain for data, "
            "`distributed.domain`; hybrid models train data-parallel)."
        )


def _dtype():
    return jnp.zeros(()).dtype


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not jnp.isfinite(scale):
        raise ValueError(f"scale must be a finite real number, got {scale!r}. Fix: e.g. scale=1.0 or scale=dt.")
    return float(scale)


class CorrectedStepper(AbstractStepper):
    r"""A post-step correction: ``u_{n+1} = S(u_n) + s N(u_n)``.

    ``S`` is any stepper (explicit, implicit, projected, diffrax), ``N`` a network
    mapping a state to a state-shaped increment, ``s`` a fixed ``scale`` (``dt`` is a
    natural choice: then ``N`` learns a rate). With a zero-initialised network the
    corrected stepper is exactly the solver. ``physics_gradient=False`` stops gradients
    through ``S`` (the correction still sees the solver's output; Um et al. 2020
    compare both): set it with ``nnpde.stop_physics_gradient``.

    ``project=True`` (incompressible flow: ``S`` a ``ProjectedRK``): the correction is
    projected, ``u_{n+1} = S(u_n) + s P N(u_n)``, so the corrected state stays
    divergence-free (and satisfies no-penetration). This is "correct, then project":
    ``P`` is linear and ``S(u_n)`` is already divergence-free, so it equals
    ``P(S(u_n) + s N(u_n))``, while a zero network still gives exactly ``S``.
    """

    stepper: AbstractStepper
    network: Callable
    scale: float = eqx.field(static=True)
    physics_gradient: bool = eqx.field(static=True)
    project: bool = eqx.field(static=True)

    def __init__(
        self,
        stepper: AbstractStepper,
        network: Callable,
        *,
        scale: float = 1.0,
        physics_gradient=True,
        project: bool = False,
    ):
        if not isinstance(stepper, AbstractStepper):
            raise TypeError(
                f"CorrectedStepper needs an nnpde stepper, got {type(stepper).__name__}. "
                "Fix: wrap the equation first, e.g. nnpde.ExplicitRK(equation, dt=...)."
            )
        if project and not callable(getattr(stepper.equation, "project", None)):
            raise ValueError(
                f"project=True needs an equation with a projection, got {type(stepper.equation).__name__}. "
                "Fix: use project=True only with a projected equation (nnpde.AbstractProjectedEquation)."
            )
        _refuse_split_domain(stepper.equation, "correction")
        shape = stepper.equation.state_shape
        _check_fits(
            network,
            shape,
            shape,
            _dtype(),
            "correction",
            "give the network as many output channels as the state has channels.",
        )
        self.stepper, self.network = stepper, network
        self.scale, self.physics_gradient = _check_scale(scale), bool(physics_gradient)
        self.project = bool(project)

    @property
    def equation(self) -> AbstractEquation:
        return self.stepper.equation

    @property
    def dt(self) -> float:
        return self.stepper.dt

    def __call__(self, u: State, t=0.0) -> State:
        solved = self.stepper(u, t)
        if not self.physics_gradient:
            solved = jax.lax.stop_gradient(solved)
        correction = self.network(u)
        if self.project:
            correction = self.equation.project(correction)
        return solved + self.scale * correction


class Emulator(AbstractStepper):
    r"""The pure-network baseline: ``u_{n+1} = u_n + s N(u_n)``.

    ``equation`` only supplies the state's shape and checks (and, for comparisons,
    the physics the data came from); its right-hand side is never evaluated.
    """

    equation: AbstractEquation
    network: Callable
    dt: float = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __init__(self, network: Callable, *, equation: AbstractEquation, dt: float, scale: float = 1.0):
        _refuse_split_domain(equation, "emulator")
        shape = equation.state_shape
        _check_fits(
            network,
            shape,
            shape,
            _dtype(),
            "emulator",
            "give the network as many output channels as the state has channels.",
        )
        self.network, self.equation = network, equation
        self.dt, self.scale = _check_dt(dt), _check_scale(scale)

    def __call__(self, u: State, t=0.0) -> State:
        return u + self.scale * self.network(u)


class _WrappedEquation(AbstractEquation):
    """An equation that adds a learned term to another one (delegates the rest)."""

    equation: eqx.AbstractVar[AbstractEquation]

    @property
    def grid(self) -> Grid:
        return self.equation.grid

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.equation.state_shape

    def spectral_radius(self, t, u):
        """The physics' bound: the learned term is not part of the stability check."""
        return self.equation.spectral_radius(t, u)

    def __getattr__(self, name):
        # project / advective_radius of a projected equation and the like: the wrapped
        # equation answers (only reached when normal lookup fails)
        if name.startswith("__") or name == "equation":
            raise AttributeError(name)
        return getattr(self.equation, name)


class ClosureEquation(_WrappedEquation):
    r"""A learned closure inside the right-hand side: ``du/dt = f(t, u) + C(u)``.

    ``form="term"``: ``C = s N(u)``, ``N`` maps the state to a state-shaped rate.

    ``form="flux"``: ``C = -s div F(u)``, ``N`` gives a cell-centred flux vector
    ``F`` (``channels * ndim`` outputs, axis-major: channel ``c`` of axis ``a`` is
    output ``a * channels + c``), averaged to the faces (arithmetic mean, second order)
    and differenced: the closure moves the conserved quantity between cells but never
    creates it, and no closure flux crosses a wall (periodic axes wrap). A learned
    sub-grid heat flux or momentum flux (eddy viscosity) takes this form.

    Stepped by any stepper; the stability check covers the physics ``f`` only.
    """

    equation: AbstractEquation
    network: Callable
    form: str = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    periodic: tuple[bool, ...] = eqx.field(static=True)
    physics_gradient: bool = eqx.field(static=True)

    def __init__(
        self,
        equation: AbstractEquation,
        network: Callable,
        *,
        form: str = "term",
        scale: float = 1.0,
        periodic: tuple[bool, ...] | None = None,
        physics_gradient: bool = True,
    ):
        if not isinstance(equation, AbstractEquation):
            raise TypeError(f"ClosureEquation wraps an nnpde equation, got {type(equation).__name__}.")
        if form not in ("term", "flux"):
            raise ValueError(f"form must be 'term' or 'flux', got {form!r}.")
        _refuse_split_domain(equation, f"closure ({form} form)")
        shape, ndim = equation.state_shape, equation.grid.ndim
        if periodic is None:
            bc = _boundary_conditions(equation)
            if not hasattr(bc, "is_periodic"):
                bc = None
            if bc is None and form == "flux":
                raise ValueError(
                    f"{type(equation).__name__} has no `bc` attribute to tell which axes are periodic. "
                    "Fix: pass periodic=(True, False, ...) for the flux form."
                )
            periodic = tuple(bc.is_periodic(a) for a in range(ndim)) if bc is not None else (True,) * ndim
        periodic = tuple(bool(p) for p in periodic)
        if len(periodic) != ndim:
            raise ValueError(f"periodic needs one flag per grid axis ({ndim}), got {periodic}.")
        out = shape if form == "term" else (shape[0] * ndim, *shape[1:])
        _check_fits(
            network,
            shape,
            out,
            _dtype(),
            f"closure ({form} form)",
            f"give the network {out[0]} output channels "
            f"({'the state channels' if form == 'term' else 'channels x ndim fluxes'}).",
        )
        self.equation, self.network, self.form = equation, network, form
        self.scale, self.periodic, self.physics_gradient = _check_scale(scale), periodic, bool(physics_gradient)

    def closure(self, u):
        """The learned rate ``C(u)`` alone."""
        out = self.network(u)
        if self.form == "term":
            return self.scale * out
        channels = u.shape[0]
        total = 0.0
        for a, h in enumerate(self.grid.spacing):
            flux = out[a * channels : (a + 1) * channels]
            ax = 1 + a
            if self.periodic[a]:
                faces_hi = 0.5 * (flux + jnp.roll(flux, -1, axis=ax))  # face i + 1/2
                faces_lo = jnp.roll(faces_hi, 1, axis=ax)
            else:
                inner = 0.5 * (
                    jax.lax.slice_in_dim(flux, 0, flux.shape[ax] - 1, axis=ax)
                    + jax.lax.slice_in_dim(flux, 1, flux.shape[ax], axis=ax)
                )
                zero = jnp.zeros_like(jax.lax.slice_in_dim(flux, 0, 1, axis=ax))
                faces_hi = jnp.concatenate([inner, zero], axis=ax)
                faces_lo = jnp.concatenate([zero, inner], axis=ax)
            total = total - (faces_hi - faces_lo) / h
        return self.scale * total

    def __call__(self, t, u, args=None):
        physics = self.equation(t, u, args)
        if not self.physics_gradient:
            physics = jax.lax.stop_gradient(physics)
        return physics + self.closure(u)


class ProjectedClosureEquation(ClosureEquation, AbstractProjectedEquation):
    r"""``ClosureEquation`` of a projected (incompressible) equation, for
    ``nnpde.ProjectedRK``: the learned rate joins the unconstrained right-hand side and
    every stage is projected as before, so the step stays divergence-free; ``project``,
    ``advective_radius`` and the stability bounds are the physics'. With
    ``form="flux"`` the closure is a learned momentum flux (a sub-grid stress),
    conservative by construction. Arguments as ``ClosureEquation``'s.
    """

    def __init__(self, equation: AbstractProjectedEquation, network: Callable, **options):
        if not isinstance(equation, AbstractProjectedEquation):
            raise TypeError(
                f"ProjectedClosureEquation wraps a projected equation, got {type(equation).__name__}. Fix: "
                "nnpde.ClosureEquation for equations without a projection."
            )
        super().__init__(equation, network, **options)

    def project(self, u, t=0.0):
        return self.equation.project(u, t)

    def advective_radius(self, t, u):
        return self.equation.advective_radius(t, u)

    def forward_euler_rate(self, t, u):
        return self.equation.forward_euler_rate(t, u)


class NeuralSource(_WrappedEquation):
    r"""A learned source: ``du/dt = f(t, u) + s q(x, t)``.

    ``q`` is a pointwise network of the cell-centre coordinates (``ndim`` inputs, and
    time as one more when ``time_dependent``), with ``channels`` outputs: e.g.
    ``nnpde.networks.MLP(ndim, channels)``. Unresolved heat sources, forcing.
    """

    equation: AbstractEquation
    network: Callable
    scale: float = eqx.field(static=True)
    time_dependent: bool = eqx.field(static=True)

    def __init__(
        self, equation: AbstractEquation, network: Callable, *, scale: float = 1.0, time_dependent: bool = False
    ):
        ndim, channels = equation.grid.ndim, equation.state_shape[0]
        n_in = ndim + int(time_dependent)
        _check_fits(
            network,
            (7, n_in),
            (7, channels),
            _dtype(),
            "source",
            f"use a pointwise network with {n_in} inputs (coordinates"
            f"{' and time' if time_dependent else ''}) and {channels} outputs.",
        )
        self.equation, self.network = equation, network
        self.scale, self.time_dependent = _check_scale(scale), bool(time_dependent)

    def source(self, t=0.0):
        """``s q(x, t)`` on the cells, shaped like the state."""
        coords = jnp.stack(self.grid.cell_centres(), axis=-1)
        if self.time_dependent:
            coords = jnp.concatenate([coords, jnp.full((*coords.shape[:-1], 1), t, coords.dtype)], axis=-1)
        points = coords.reshape(-1, coords.shape[-1])
        q = self.network(points).reshape(*self.grid.shape, -1)
        return self.scale * jnp.moveaxis(q, -1, 0)

    def __call__(self, t, u, args=None):
        return self.equation(t, u, args) + self.source(t)


class LearnedCoefficient(_WrappedEquation):
    r"""An equation whose coefficient ``where(equation)`` is a network's output.

    ``inputs="coordinates"``: the field is ``transform(N(x))`` on the cell centres, a
    pointwise network of position (``nnpde.networks.MLP(ndim, 1)``): an inverse
    problem's unknown conductivity or viscosity. ``inputs="state"``: the field is
    ``transform(N(u))`` recomputed at every right-hand-side evaluation, a learned
    constitutive law (``N`` maps the state to one channel). ``transform``
    (``"softplus"`` by default, or ``"exp"``, ``"identity"``) keeps a physical
    coefficient positive; ``scale`` multiplies the result.

    ``resolve(u)`` gives the plain equation with the field in place: hand it to an
    implicit stepper (``nnpde.ThetaMethod(model.resolve(), dt=...)``) inside the loss.
    """

    equation: AbstractEquation
    network: Callable
    where: Callable = eqx.field(static=True)
    inputs: str = eqx.field(static=True)
    transform: str = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __init__(
        self,
        equation: AbstractEquation,
        network: Callable,
        *,
        where: Callable,
        inputs: str = "coordinates",
        transform: str = "softplus",
        scale: float = 1.0,
    ):
        if inputs not in ("coordinates", "state"):
            raise ValueError(f"inputs must be 'coordinates' or 'state', got {inputs!r}.")
        if transform not in _TRANSFORMS:
            raise ValueError(f"transform must be one of {sorted(_TRANSFORMS)}, got {transform!r}.")
        try:
            where(equation)
        except Exception as error:
            raise ValueError(
                f"where(equation) failed on {type(equation).__name__}: {error}. "
                "Fix: pass the coefficient's accessor, e.g. where=lambda eq: eq.conductivity."
            ) from error
        grid = equation.grid
        if inputs == "coordinates":
            _check_fits(
                network,
                (7, grid.ndim),
                (7, 1),
                _dtype(),
                "coefficient",
                f"use a pointwise network with {grid.ndim} inputs (the coordinates) and 1 output.",
            )
        else:
            _refuse_split_domain(equation, "coefficient (inputs='state')")
            shape = equation.state_shape
            _check_fits(
                network,
                shape,
                (1, *grid.shape),
                _dtype(),
                "coefficient",
                "give the network one output channel (the coefficient field).",
            )
        self.equation, self.network, self.where = equation, network, where
        self.inputs, self.transform, self.scale = inputs, transform, _check_scale(scale)

    def field(self, u=None):
        """The coefficient field on the cells, shape ``grid.shape``."""
        grid = self.grid
        if self.inputs == "coordinates":
            points = jnp.stack(grid.cell_centres(), axis=-1).reshape(-1, grid.ndim)
            raw = self.network(points).reshape(grid.shape)
        else:
            if u is None:
                raise ValueError("A state-dependent coefficient needs the state. Fix: call field(u) / resolve(u).")
            raw = self.network(u)[0]
        return self.scale * _TRANSFORMS[self.transform](raw)

    def resolve(self, u=None) -> AbstractEquation:
        """The wrapped equation with the learned field in place of its coefficient."""
        return eqx.tree_at(self.where, self.equation, self.field(u), is_leaf=lambda x: x is None)

    def spectral_radius(self, t, u):
        return self.resolve(u if self.inputs == "state" else None).spectral_radius(t, u)

    def __call__(self, t, u, args=None):
        return self.resolve(u if self.inputs == "state" else None)(t, u, args)


_COUPLINGS_WITH_PHYSICS = (CorrectedStepper, ClosureEquation)


def stop_physics_gradient(model):
    """``model`` with gradients stopped through the physics of every correction and
    closure in it (``physics_gradient=False``): the network is trained on the solver's
    output without differentiating the solver."""
    found = []

    def flip(node):
        if isinstance(node, _COUPLINGS_WITH_PHYSICS):
            found.append(node)
            inner = jax.tree.map(flip, node, is_leaf=lambda x: x is not node and isinstance(x, _COUPLINGS_WITH_PHYSICS))
            return _replace_static(inner, physics_gradient=False)
        return node

    out = jax.tree.map(flip, model, is_leaf=lambda x: isinstance(x, _COUPLINGS_WITH_PHYSICS))
    if not found:
        raise ValueError(
            f"stop_physics_gradient found no CorrectedStepper or ClosureEquation in {type(model).__name__}. "
            "Fix: only these couplings have a physics part whose gradient can be stopped."
        )
    return out


def _replace_static(module, **changes):
    new = object.__new__(type(module))
    for field in dataclasses.fields(module):
        if isinstance(getattr(type(module), field.name, None), property):
            continue  # an abstract variable implemented as a property
        object.__setattr__(new, field.name, changes.get(field.name, getattr(module, field.name)))
    return new
