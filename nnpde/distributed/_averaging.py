"""Pure arithmetic of the cross-group parameter average (no MPI; numpy and JAX only).

Across groups, every ``every`` steps each group leader contributes a snapshot of its
group's parameters to a sum over groups (``MPI_Iallreduce``); the sum arrives some
steps later, while the group keeps training. This module holds the maths of that
exchange, so it can be tested without MPI:

- ``flatten``: parameters as one float64 vector (the message), and the way back;
- ``healthy``: whether a parameter vector may take part (finite, not exploded);
- ``contribution`` / ``average_from``: the weighted sum that a plain ``SUM`` reduction
  turns into a weighted mean, with weight 0 for a group that must not count;
- ``mix``: how a group folds a (possibly stale) average into parameters that have moved
  on since the snapshot.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def flatten(params):
    """``(flat, unflatten)``: the floating leaves of ``params`` as one 1-D float64 numpy
    vector, and the function mapping such a vector back to the pytree.

    ``None`` leaves (untrained parts of a model) are skipped. ``unflatten`` restores
    every leaf's shape and dtype (float32 leaves come back as float32 even though the
    message is float64: the round trip float32 -> float64 -> float32 is exact).
    """
    leaves = jax.tree.leaves(params)
    for leaf in leaves:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"Cross-group averaging needs real floating parameters, got a leaf of dtype {dtype}. "
                "Fix: average only the trainable floating leaves (None elsewhere, as nnpde.TrainState.params holds)."
            )
    raveled, unravel = ravel_pytree(params)
    raveled_dtype = raveled.dtype
    flat = np.asarray(jax.device_get(raveled), dtype=np.float64)

    def unflatten(vector):
        vector = np.asarray(vector)
        if vector.shape != flat.shape:
            raise ValueError(
                f"unflatten got a vector of shape {vector.shape}, but the parameters flatten to {flat.shape}. "
                "Fix: pass a vector built from the same parameter structure."
            )
        # ``unravel`` is dtype-polymorphic when all leaves share one dtype, so cast to the
        # raveled dtype first: leaves keep their dtype whatever the message's precision.
        return unravel(jnp.asarray(vector.astype(raveled_dtype)))

    return flat, unflatten


def _verdict(finite, norm, reference_norm, max_growth):
    """``None`` when parameters with this finiteness and norm are healthy, else the reason.

    Shared by ``healthy`` (host vectors) and the guard of ``AsyncAverager`` (which
    reduces on the device and only brings two scalars to the host).
    """
    if not finite:
        return "non-finite parameters"
    if not math.isfinite(norm):
        return "parameter norm overflows"
    if reference_norm is not None and reference_norm > 0 and norm > max_growth * reference_norm:
        return f"parameter norm {norm:.4g} exceeds max_growth={max_growth:g} x the last good norm {reference_norm:.4g}"
    return None


def healthy(flat, reference_norm=None, max_growth=1e3) -> bool:
    """Whether the parameter vector ``flat`` may be trusted: every entry is finite and,
    when ``reference_norm`` (the norm at the last good state) is given and positive,
    ``||flat||_2 <= max_growth * reference_norm`` (a larger norm means training
    "exploded"). A reference norm of 0 (all-zero parameters) bounds nothing.
    """
    flat = np.asarray(flat, dtype=np.float64)
    finite = bool(np.all(np.isfinite(flat)))
    norm = float(np.linalg.norm(flat)) if finite else math.inf
    return _verdict(finite, norm, reference_norm, max_growth) is None


def contribution(flat, weight) -> np.ndarray:
    """The message a group adds to the sum over groups: ``[weight * flat..., weight]``.

    Summing the messages of all groups gives ``[sum_g w_g x_g, sum_g w_g]``, from which
    ``average_from`` recovers the weighted mean ``sum_g w_g x_g / sum_g w_g``. Weight 0
    excludes a group (unhealthy, just rolled back): its entries are exact zeros, even
    when ``flat`` holds NaN or inf (``0 * nan`` would be NaN and poison every group).
    """
    weight = float(weight)
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight must be finite and >= 0, got {weight!r}. Fix: 1 to count a group, 0 to exclude it.")
    flat = np.asarray(flat, dtype=np.float64)
    if flat.ndim != 1:
        raise ValueError(f"flat must be a 1-D vector, got shape {flat.shape}. Fix: build it with flatten(params).")
    buffer = np.zeros(flat.size + 1, dtype=np.float64)
    if weight > 0:
        buffer[:-1] = weight * flat
        buffer[-1] = weight
    return buffer


def average_from(buffer):
    """The weighted mean encoded in a summed ``contribution`` buffer, or ``None`` when
    the total weight is 0 (no group was healthy: there is nothing to average)."""
    buffer = np.asarray(buffer, dtype=np.float64)
    if buffer.ndim != 1 or buffer.size < 1:
        raise ValueError(f"buffer must be a non-empty 1-D vector, got shape {buffer.shape}.")
    total = float(buffer[-1])
    if not total > 0:
        return None
    return buffer[:-1] / total


def mix_weight(staleness, *, alpha=1.0, max_staleness) -> float:
    """The weight ``w`` of ``mix``: ``alpha`` while ``staleness <= max_staleness``, else 0."""
    if staleness < 0:
        raise ValueError(f"staleness must be >= 0 (steps since the snapshot), got {staleness}.")
    return float(alpha) if staleness <= max_staleness else 0.0


def mix(current, snapshot, average, staleness, *, alpha=1.0, max_staleness):
    """Fold a cross-group ``average`` into the group's ``current`` parameters.

    The average was computed from ``snapshot``, this group's parameters ``staleness``
    steps ago; since then the group has moved on by ``d = current - snapshot``. The rule

        new = current + w * (average - snapshot),   w = alpha if staleness <= max_staleness else 0,

    applies the correction the average asked of the snapshot (``average - snapshot``,
    the pull towards the other groups) on top of the local progress ``d``. It does not
    replace ``current`` by ``average``: that would throw away the ``staleness`` steps
    the group trained while the average was in flight, and a late average would drag
    the group back in time. With ``alpha = 1`` the result is exactly ``average + d``.

    Beyond ``max_staleness`` the average is too old to trust (the other groups have
    moved too) and is ignored (``w = 0``): ``current`` comes back unchanged. A hard
    cut-off, rather than a weight decaying with staleness, keeps the rule a
    single-parameter bound that matches the bounded-staleness wait of
    ``AsyncAverager``: every average applied has full weight ``alpha``.

    Arithmetic is ``w * average + (1 - w) * snapshot + d`` (the same value), so that
    ``alpha = 1`` and ``staleness = 0`` return ``average`` bit for bit.
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}. Fix: 1 adopts the average fully.")
    if max_staleness < 0:
        raise ValueError(f"max_staleness must be >= 0, got {max_staleness!r}.")
    current = np.asarray(current, dtype=np.float64)
    w = mix_weight(staleness, alpha=alpha, max_staleness=max_staleness)
    if w == 0:
        return current.copy()
    snapshot = np.asarray(snapshot, dtype=np.float64)
    average = np.asarray(average, dtype=np.float64)
    if not current.shape == snapshot.shape == average.shape:
        raise ValueError(
            f"current {current.shape}, snapshot {snapshot.shape} and average {average.shape} must have one shape."
        )
    moved = current - snapshot
    if w == 1:
        return average + moved
    return w * average + (1 - w) * snapshot + moved
