r"""Losses for hybrid models: one-step, unrolled, discrete residuals, PINN residuals.

Every loss acts on a batch: the model (a stepper or equation, usually with networks
inside) maps ONE unbatched state, and the loss ``jax.vmap``\ s it over the batch (the
one place batching happens). Errors are normalised mean squares,
``mean |prediction - target|^2 / mean |target|^2`` per sample (so problems of any
scale weigh alike), averaged over the batch and steps, unless ``normalise=False``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from ..numerics._equation import AbstractEquation
from ..numerics._rollout import rollout
from ..numerics._stepper import AbstractStepper
from ._coupling import stop_physics_gradient


def _squared_error(prediction, target, normalise: bool):
    """Mean square error per sample: reduces all but the leading axis."""
    axes = tuple(range(1, prediction.ndim))
    error = jnp.mean((prediction - target) ** 2, axis=axes)
    if normalise:
        error = error / jnp.maximum(jnp.mean(target**2, axis=axes), jnp.finfo(target.dtype).tiny)
    return error


def _check_batch(name: str, x, stepper: AbstractStepper, extra_axes: int):
    shape = tuple(stepper.equation.state_shape)
    if x.ndim != len(shape) + extra_axes or tuple(x.shape[extra_axes:]) != shape:
        lead = ("batch", "time")[:extra_axes]
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; expected ({', '.join(lead)}, *{shape}) for this model. "
            "Fix: stack samples along a leading batch axis (trajectories: batch, time, *state)."
        )


def one_step_loss(model: AbstractStepper, inputs, targets, *, t=0.0, normalise: bool = True):
    """``mean_b e(model(u_b), v_b)``: one step from each input state to its target.

    ``inputs``, ``targets``: ``(batch, *state)``.
    """
    _check_batch("inputs", inputs, model, 1)
    _check_batch("targets", targets, model, 1)
    predictions = jax.vmap(lambda u: model(u, t))(inputs)
    return jnp.mean(_squared_error(predictions, targets, normalise))


def unrolled_loss(
    model: AbstractStepper,
    trajectories,
    *,
    n_steps: int | None = None,
    t0=0.0,
    weights: Sequence[float | int] | None = None,
    stop_physics: bool = False,
    noise: float = 0.0,
    key=None,
    checkpoint: str | int | None = None,
    normalise: bool = True,
    observable: Callable | None = None,
    spectrum: Callable | None = None,
    spectrum_weight: float = 0.0,
):
    r"""The model rolled out ``n_steps`` from each trajectory's first state, compared
    with the following states: ``sum_n w_n mean_b e(u_b^n, v_b^n) / sum_n w_n``.

    ``trajectories``: ``(batch, T + 1, *state)``, the reference states at the model's
    ``dt`` spacing; ``n_steps`` defaults to ``T``. Gradients flow through every step of
    the rollout (the solver in the loop, Um et al. 2020), with ``checkpoint`` as in
    ``nnpde.rollout`` to bound memory (``"sqrt"``: O(sqrt T) states).

    ``weights``: per-step weights (default uniform). ``stop_physics``: gradients do not
    flow through the solver part of corrections and closures
    (``nnpde.stop_physics_gradient``). ``noise``: Gaussian noise of standard deviation
    ``noise * rms(u_0)`` added to the initial states (needs ``key``), which trains the
    model to recover from its own errors (Sanchez-Gonzalez et al., ICML 2020).

    ``observable``: compare ``g(u)`` instead of the state ``u``, a function of one
    unbatched state (e.g. the vorticity of a velocity field, which weighs the error at
    wavenumber ``k`` by ``k^2``: the quantity a vorticity correlation time scores);
    ``e`` is then taken between ``g(u_b^n)`` and ``g(v_b^n)``, normalised by ``g(v_b^n)``.

    ``spectrum``, ``spectrum_weight``: add ``lambda sum_n w_n mean_s (log P_n[s] -
    log V_n[s])^2 / sum_n w_n``, with ``P_n``, ``V_n`` the batch means of ``spectrum(u)``
    over the predicted and the reference states at step ``n`` (``spectrum``: a function
    of one unbatched state returning positive energies per scale, e.g. the shells
    ``1..12`` of ``nnpde.metrics.energy_spectrum``; ``lambda = spectrum_weight``). The
    squared error alone is minimised by damping what the model cannot place: past the
    first steps a mean-square-optimal rollout loses energy at the scales whose phase is
    uncertain, and a long rollout drifts to a too weak spectrum. This term compares the
    energy per scale and not its phase, averaged over the batch, so it charges that
    systematic loss without rewarding noise in a single sample. Both are taken after
    ``observable`` (``None``: on the state).
    """
    _check_batch("trajectories", trajectories, model, 2)
    if spectrum is not None and not callable(spectrum):
        raise TypeError(
            f"spectrum must be a function of one state, got {spectrum!r}. "
            "Fix: e.g. lambda u: nnpde.metrics.energy_spectrum(u, h)[1][1:13], or None."
        )
    if (
        isinstance(spectrum_weight, bool)
        or not isinstance(spectrum_weight, (int, float))
        or not 0 <= spectrum_weight < float("inf")
    ):
        raise ValueError(
            f"spectrum_weight must be a finite number >= 0, got {spectrum_weight!r}. Fix: e.g. 0.1, or 0 for none."
        )
    if spectrum_weight and spectrum is None:
        raise ValueError(
            f"spectrum_weight={spectrum_weight} weighs a spectrum term, but spectrum is None. "
            "Fix: pass spectrum=(a function of one state giving its energy per scale), or spectrum_weight=0."
        )
    if observable is not None and not callable(observable):
        raise TypeError(
            f"observable must be a function of one state, got {observable!r}. "
            "Fix: e.g. observable=equation.vorticity, or None to compare the states."
        )
    available = trajectories.shape[1] - 1
    n_steps = available if n_steps is None else n_steps
    if not (isinstance(n_steps, int) and 1 <= n_steps <= available):
        raise ValueError(
            f"n_steps={n_steps!r} must be an int in [1, {available}] for trajectories of {available + 1} states. "
            "Fix: use longer reference trajectories or fewer steps."
        )
    w = jnp.ones(n_steps) if weights is None else jnp.asarray(weights, trajectories.dtype)
    if w.shape != (n_steps,):
        raise ValueError(f"weights must have one entry per step ({n_steps}), got shape {w.shape}.")
    if stop_physics:
        model = stop_physics_gradient(model)
    u0, targets = trajectories[:, 0], trajectories[:, 1 : n_steps + 1]
    if noise:
        if key is None:
            raise ValueError("noise > 0 needs a PRNG key. Fix: pass key=jax.random.key(seed).")
        rms = jnp.sqrt(jnp.mean(u0**2, axis=tuple(range(1, u0.ndim)), keepdims=True))
        u0 = u0 + noise * rms * jax.random.normal(key, u0.shape, u0.dtype)

    def per_sample(u, target):
        states = rollout(model, u, n_steps, t0=t0, checkpoint=checkpoint)
        if observable is not None:
            states, target = jax.vmap(observable)(states), jax.vmap(observable)(target)
        if not spectrum_weight:
            return _squared_error(states, target, normalise), ()
        return _squared_error(states, target, normalise), (jax.vmap(spectrum)(states), jax.vmap(spectrum)(target))

    errors, spectra = jax.vmap(per_sample)(u0, targets)  # (batch, n_steps), per step and scale
    total = jnp.sum(jnp.mean(errors, axis=0) * w) / jnp.sum(w)
    if not spectrum_weight:
        return total
    predicted, reference = (jnp.mean(e, axis=0) for e in spectra)  # (n_steps, scales)
    tiny = jnp.finfo(predicted.dtype).tiny
    log_ratio = jnp.log(jnp.maximum(predicted, tiny)) - jnp.log(jnp.maximum(reference, tiny))
    return total + spectrum_weight * jnp.sum(jnp.mean(log_ratio**2, axis=-1) * w) / jnp.sum(w)


def residual_loss(stepper: AbstractStepper, trajectories, *, t0=0.0, normalise: bool = True):
    r"""The residual of the solver's own discrete equations along given trajectories:
    ``mean_{b,n} e(S(u_b^n), u_b^{n+1})``, with ``S`` the (plain) stepper.

    Trains a model that PRODUCES the trajectories (an emulator, a field network) to
    satisfy the discrete physics without reference data; ``trajectories`` is
    ``(batch, T + 1, *state)`` and its gradient flows into both sides.
    """
    _check_batch("trajectories", trajectories, stepper, 2)
    n = trajectories.shape[1] - 1
    times = t0 + stepper.dt * jnp.arange(n)

    def per_sample(states):
        stepped = jax.vmap(stepper)(states[:-1], times)
        return _squared_error(stepped, states[1:], normalise)

    return jnp.mean(jax.vmap(per_sample)(trajectories))


def steady_residual_loss(equation: AbstractEquation, states, *, t=0.0, scale: float = 1.0):
    r"""``mean |f(t, u)|^2 * scale^2``: the steady-state residual of the discrete
    equation (its own stencils and boundary conditions) for a batch of states
    ``(batch, *state)``; ``scale`` makes it dimensionless (e.g. ``h^2 / k``)."""
    shape = tuple(equation.state_shape)
    if tuple(states.shape[1:]) != shape:
        raise ValueError(f"states has shape {tuple(states.shape)}; expected (batch, *{shape}).")
    rates = jax.vmap(lambda u: equation(t, u))(states)
    return jnp.mean((scale * rates) ** 2)


def pinn_loss(field: Callable, residual: Callable, points):
    r"""The autodiff (PINN) residual: ``mean_i |R(u, x_i)|^2``.

    ``field`` maps one point (``(n_in,)``: coordinates, and time if any) to the
    solution's value(s); ``residual(u, x)`` returns the PDE residual at ``x`` using
    derivatives of the scalar function ``u`` (``jax.grad``, ``jax.hessian``), e.g.
    ``lambda u, x: jax.grad(u)(x)[1] - k * jnp.trace(jax.hessian(u)(x)[:1, :1])``
    for the 1-D heat equation with ``x = (position, time)``. ``points``:
    ``(n_points, n_in)`` collocation points. Raissi, Perdikaris & Karniadakis, J.
    Comput. Phys. 378 (2019) 686.
    """
    points = jnp.asarray(points)
    if points.ndim != 2:
        raise ValueError(f"points must be (n_points, n_inputs), got shape {points.shape}.")

    def scalar(x):
        out = field(x)
        return jnp.reshape(out, ())

    values = jax.vmap(lambda x: residual(scalar, x))(points)
    return jnp.mean(values**2)


def weighted_sum(terms: Mapping[str, tuple[float, Callable]]) -> Callable:
    """A loss ``L(*args) = sum_k w_k L_k(*args)`` that also returns its parts.

    ``terms``: ``{name: (weight, loss_fn)}``, every ``loss_fn`` taking the same
    arguments. Returns ``fn(*args, **kwargs) -> (total, {name: value})``, the form
    ``nnpde.make_train_step`` logs.
    """
    if not terms:
        raise ValueError("weighted_sum needs at least one term {name: (weight, loss_fn)}.")
    for name, item in terms.items():
        if not (isinstance(item, tuple) and len(item) == 2 and callable(item[1])):
            raise ValueError(f"term {name!r} must be (weight, loss_fn), got {item!r}.")

    def total(*args, **kwargs):
        parts = {name: fn(*args, **kwargs) for name, (_, fn) in terms.items()}
        return sum(w * parts[name] for name, (w, _) in terms.items()), parts

    return total
