"""``rollout``: many steps of a stepper as one ``lax.scan``."""

from __future__ import annotations

import math
import operator

import jax
import jax.numpy as jnp

from ._stepper import AbstractStepper, _crop


def rollout(
    stepper: AbstractStepper,
    u0,
    n_steps: int,
    *,
    t0=0.0,
    trajectory: bool = True,
    include_init: bool = False,
    checkpoint: str | int | None = None,
    halo: int | None = None,
):
    """Apply ``stepper`` ``n_steps`` times from ``u0`` at time ``t0``.

    Returns the states after each step, ``(n_steps, *state)`` (with ``include_init``
    the initial state first, ``(n_steps + 1, *state)``), or only the final state when
    ``trajectory=False``. Step ``i`` starts at ``t0 + i * dt`` (no accumulated
    round-off in time).

    ``checkpoint`` trades compute for memory in reverse-mode gradients:

    * ``None``: store every step's intermediates (fastest, memory O(T * stages));
    * ``"step"``: recompute each step's internals (memory O(T) states);
    * an integer ``s`` or ``"sqrt"`` (``s = ceil(sqrt(T))``): two-level
      checkpointing: states are kept only at segment boundaries and each segment of
      ``s`` steps is recomputed in the backward pass (memory O(T / s + s) states,
      O(sqrt T) for ``"sqrt"``; about one extra forward pass).
      Griewank & Walther, *Evaluating Derivatives*, SIAM 2008, ch. 12.

    ``halo=K`` (explicit steppers, equations periodic on every axis): extend the state
    by a periodic halo deep enough for ``K`` steps once, then take ``K`` steps on the
    shrinking padded array without refilling ghost cells. One copy of the field per
    ``K`` steps instead of one per step: the same result to round-off, several times
    the throughput of memory-bound stencils (docs/benchmarks/solver-throughput.md), and
    the pattern that cuts halo exchanges between ranks by ``K``. The cells within the
    halo are recomputed, a fraction ``~ 2 d K s w / n`` of extra work (``s`` stages,
    stencil width ``w``).
    ``checkpoint`` then counts blocks of ``K`` steps.
    """
    try:
        n_steps = operator.index(n_steps)
    except TypeError:
        n_steps = -1
    if n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}.")
    u0 = stepper.equation.check_state(u0, "initial state")
    dt = stepper.dt
    if not jnp.issubdtype(u0.dtype, jnp.floating):
        raise TypeError(
            f"The initial state has dtype {u0.dtype}; states are floating point. "
            "Fix: pass u0.astype(jnp.float32) (or float64)."
        )
    out = jax.eval_shape(lambda u: stepper(u, t0), u0)
    if out.dtype != u0.dtype:
        raise TypeError(
            f"The initial state has dtype {u0.dtype} but a step returns {out.dtype} (the "
            f"equation's coefficients set the precision). Fix: pass u0.astype({out.dtype.name!r}), "
            "or build the coefficients in the state's precision."
        )

    if halo is None:

        def step(u, i):
            u = stepper(u, t0 + i * dt)
            return u, (u if trajectory else None)

        units = n_steps
    else:
        step, units = _halo_block(stepper, halo, t0, trajectory), n_steps // halo
        rest = n_steps - units * halo

    if checkpoint is None or checkpoint == "step":
        body = jax.checkpoint(step) if checkpoint == "step" else step
        final, states = jax.lax.scan(body, u0, jnp.arange(units))
    else:
        segment = max(1, math.ceil(math.sqrt(units))) if checkpoint == "sqrt" else checkpoint
        if not isinstance(segment, int) or segment < 1:
            raise ValueError(f"checkpoint must be None, 'step', 'sqrt' or a positive int, got {checkpoint!r}.")
        final, states = _segmented(step, u0, units, max(1, min(segment, units)))
    if halo is not None:
        if trajectory:
            states = states.reshape((units * halo, *u0.shape))
        if rest:
            # the last n_steps % K steps, one ordinary step at a time
            tail = rollout(stepper, final, rest, t0=t0 + units * halo * dt, trajectory=trajectory)
            final = tail[-1] if trajectory else tail
            states = jnp.concatenate([states, tail]) if trajectory else None
    if not trajectory:
        return final
    if include_init:
        states = jnp.concatenate([u0[None], states], axis=0)
    return states


def _segmented(step, u0, n_steps, segment):
    inner_step = jax.checkpoint(step)

    @jax.checkpoint
    def run_segment(u, indices):
        return jax.lax.scan(inner_step, u, indices)

    full, rest = divmod(n_steps, segment)
    indices = jnp.arange(n_steps)
    u, states = jax.lax.scan(run_segment, u0, indices[: full * segment].reshape(full, segment))
    pieces = [] if states is None else [states.reshape((full * segment, *states.shape[2:]))]
    if rest:
        u, tail = run_segment(u, indices[full * segment :])
        if tail is not None:
            pieces.append(tail)
    return u, (jnp.concatenate(pieces, axis=0) if pieces else None)


def _halo_block(stepper, halo, t0, trajectory):
    """A scan body advancing ``halo`` steps from one deep periodic extension."""
    eq = stepper.equation
    if not isinstance(halo, int) or halo < 1:
        raise ValueError(f"halo must be a positive int (steps per halo fill), got {halo!r}.")
    if not hasattr(stepper, "step_padded") or eq.halo_width() == 0:
        raise ValueError(
            f"halo={halo} needs an explicit stepper (nnpde.ExplicitRK) and an equation that is "
            f"periodic on every axis; got {type(stepper).__name__} with {type(eq).__name__} "
            f"(halo width {eq.halo_width()}). Fix: roll out without halo=."
        )
    depth = stepper.halo_per_step
    ndim = eq.grid.ndim

    def block(u, i):
        padded = jnp.pad(u, [(0, 0)] * (u.ndim - ndim) + [(halo * depth, halo * depth)] * ndim, mode="wrap")
        states = []
        for j in range(halo):
            padded = stepper.step_padded(padded, t0 + (i * halo + j) * stepper.dt)
            if trajectory:
                states.append(_crop(padded, (halo - 1 - j) * depth, ndim))
        return padded, (jnp.stack(states) if trajectory else None)

    return block
