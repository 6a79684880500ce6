r"""Training: what trains, the train state, the optimiser, one pure train step.

``train_step`` = gradient of the loss -> mean over the group (``reduce``; the identity
on one device) -> optax update. It is a pure function of ``(TrainState, batch)``, so a
run is reproducible from its seed and a resumed run continues bitwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._network import Network


class TrainState(eqx.Module):
    """Everything that changes while training: trainable ``params`` (the model's
    trainable leaves, ``None`` elsewhere), the optimiser state, the step count and the
    PRNG key. The rest of the model (``static``) never changes and is not stored."""

    params: object
    opt_state: object
    step: jax.Array
    rng: jax.Array


def trainable(model, *, physics: Sequence[Callable] = ()):
    """The filter spec of what trains: every floating array inside a ``Network``'s
    parameters, and the physical coefficients selected by ``physics`` (accessors such
    as ``lambda m: m.stepper.equation.viscosity``) only when asked.

    Returns a pytree of bools shaped like ``model`` for ``eqx.partition``.
    """

    def network_spec(node):
        if isinstance(node, Network):
            return _network_spec(node)
        return jax.tree.map(lambda _: False, node)

    spec = jax.tree.map(network_spec, model, is_leaf=lambda x: isinstance(x, Network))
    for where in physics:
        try:
            selected = where(model)
        except Exception as error:
            raise ValueError(f"A physics accessor failed on {type(model).__name__}: {error}.") from error
        for leaf in jax.tree.leaves(selected):
            if not eqx.is_inexact_array(leaf):
                raise ValueError(
                    f"A physics coefficient to train must be a floating JAX array, got {leaf!r} "
                    f"({type(leaf).__name__}). Fix: build the equation with jnp.asarray(value) for that coefficient."
                )
        spec = eqx.tree_at(where, spec, replace_fn=lambda s: jax.tree.map(lambda _: True, s))
    if not any(jax.tree.leaves(spec)):
        raise ValueError(
            f"Nothing to train in {type(model).__name__}: it holds no nnpde.Network and no physics coefficient "
            "was selected. Fix: wrap the flax module with nnpde.Network, or pass physics=[accessor]."
        )
    return spec


def _network_spec(net: Network):
    return eqx.tree_at(
        lambda n: (n.params, n.rest),
        net,
        (jax.tree.map(eqx.is_inexact_array, net.params), jax.tree.map(lambda _: False, net.rest)),
    )


def partition(model, spec=None):
    """``(params, static)``: the trainable leaves of ``model`` and the rest
    (``eqx.partition`` with ``spec``, by default ``trainable(model)``)."""
    return eqx.partition(model, trainable(model) if spec is None else spec)


def combine(params, static):
    """The model from its trainable and static parts."""
    return eqx.combine(params, static)


_SCHEDULES = ("constant", "cosine", "exponential")


def make_optimizer(
    learning_rate: float = 1e-3,
    *,
    optimizer: str = "adam",
    schedule: str = "constant",
    total_steps: int | None = None,
    warmup_steps: int = 0,
    decay_rate: float = 0.1,
    clip_norm: float | None = None,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """An optax optimiser: ``"adam"`` or ``"adamw"`` (``weight_decay``), optional
    global-norm gradient clipping, and a learning-rate schedule: ``"constant"``,
    ``"cosine"`` (decays to 0 at ``total_steps``) or ``"exponential"`` (to
    ``decay_rate`` times the initial rate at ``total_steps``), each after a linear
    warm-up of ``warmup_steps``."""
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}. Fix: e.g. learning_rate=1e-3.")
    if schedule not in _SCHEDULES:
        raise ValueError(f"schedule must be one of {_SCHEDULES}, got {schedule!r}.")
    if schedule != "constant" and not (isinstance(total_steps, int) and total_steps > warmup_steps):
        raise ValueError(
            f"schedule={schedule!r} needs total_steps > warmup_steps ({warmup_steps}), got {total_steps!r}."
        )
    if schedule == "constant":
        rate = optax.constant_schedule(learning_rate)
    elif schedule == "cosine":
        rate = optax.cosine_decay_schedule(learning_rate, total_steps - warmup_steps)
    else:
        rate = optax.exponential_decay(learning_rate, total_steps - warmup_steps, decay_rate)
    if warmup_steps:
        rate = optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup_steps), rate], [warmup_steps])
    if optimizer == "adam":
        base = optax.adam(rate)
    elif optimizer == "adamw":
        base = optax.adamw(rate, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'adamw', got {optimizer!r}.")
    if clip_norm is not None:
        if not clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {clip_norm!r}.")
        return optax.chain(optax.clip_by_global_norm(clip_norm), base)
    return base


def init_train_state(model, optimizer: optax.GradientTransformation, *, seed: int, spec=None):
    """``(TrainState, static)`` for ``model``: its trainable leaves, a fresh optimiser
    state, step 0 and the key of ``seed``."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}.")
    params, static = partition(model, spec)
    state = TrainState(params, optimizer.init(params), jnp.asarray(0, jnp.int32), jax.random.key(seed))
    return state, static


def make_train_step(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    static,
    *,
    reduce: Callable | None = None,
    jit: bool = True,
) -> Callable:
    """``step(state, batch) -> (state, metrics)``.

    ``loss_fn(model, batch, key)`` returns a scalar loss, or ``(loss, parts)`` with a
    dict of named parts (``nnpde.weighted_sum``). The key is split from the state's key
    each step (noise injection, dropout), so training is deterministic given the seed.
    ``reduce`` maps ``(grads, loss)`` to their mean over a data-parallel group (see
    ``nnpde.distributed``); the identity by default. ``metrics`` holds ``loss``, the
    parts, and the global gradient norm; a non-finite loss is reported, not hidden.
    """

    def value(params, batch, key):
        out = loss_fn(combine(params, static), batch, key)
        return out if isinstance(out, tuple) else (out, {})

    def step(state: TrainState, batch):
        key, sub = jax.random.split(state.rng)
        (loss, parts), grads = jax.value_and_grad(value, has_aux=True)(state.params, batch, sub)
        if reduce is not None:
            grads, loss, parts = reduce((grads, loss, parts))
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **parts}
        return TrainState(params, opt_state, state.step + 1, key), metrics

    return jax.jit(step) if jit else step


def sample_windows(key, trajectories, batch_size: int, window: int):
    """A random batch of windows ``(batch, window + 1, *state)`` cut from
    ``trajectories`` ``(n_trajectories, T, *state)``: uniform over trajectories and
    start times (with replacement). Pure and jit-able."""
    n, length = trajectories.shape[:2]
    if not 1 <= window < length:
        raise ValueError(f"window={window} must be in [1, {length - 1}] for trajectories of {length} states.")
    k1, k2 = jax.random.split(key)
    which = jax.random.randint(k1, (batch_size,), 0, n)
    start = jax.random.randint(k2, (batch_size,), 0, length - window)

    def cut(i, s):
        return jax.lax.dynamic_slice_in_dim(trajectories[i], s, window + 1, axis=0)

    return jax.vmap(cut)(which, start)
