"""Input checks that fail early and say what, the value and the fix.

A concrete array is checked in Python and raises ``ValueError`` at once; a traced one
(inside ``jit`` or ``grad``) is checked with ``eqx.error_if``, which raises when the
compiled function runs. Either way no silent NaN travels on.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x`` holds values now (not a tracer under jit/grad/vmap)."""
    return not isinstance(x, jax.core.Tracer)


def check_finite(x, name: str, fix: str):
    """Return ``x`` unchanged, or raise if any entry is NaN or infinite."""
    if isinstance(x, (int, float)):
        if not np.isfinite(x):
            raise ValueError(f"{name} must be finite, got {x}. Fix: {fix}")
        return x
    x = jnp.asarray(x)
    if is_concrete(x):
        bad = ~np.isfinite(np.asarray(x))
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} has {int(bad.sum())} non-finite value(s) of {bad.size} "
                f"(first at index {first}: {np.asarray(x)[first]}). Fix: {fix}"
            )
        return x
    return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"{name} has non-finite values. Fix: {fix}")


def check_int(value, name: str, *, minimum: int = 1, fix: str) -> int:
    """``value`` as an ``int``, or raise unless it is an integer (Python or NumPy, not a
    bool) at least ``minimum``: the one check for counts, sizes and periods."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}. Fix: {fix}")
    return int(value)


def check_positive(x, name: str, fix: str):
    """Return ``x``, or raise if any entry is <= 0 (at run time when traced: use the result)."""
    if isinstance(x, (int, float)):
        if not x > 0:
            raise ValueError(f"{name} must be positive, got {x}. Fix: {fix}")
        return x
    if is_concrete(x):
        v = np.asarray(x)
        if not (v > 0).all():
            raise ValueError(f"{name} must be positive everywhere, got minimum {v.min()}. Fix: {fix}")
        return x
    return eqx.error_if(x, ~jnp.all(x > 0), f"{name} must be positive everywhere. Fix: {fix}")


def check_field_shape(x, expected: tuple[int, ...], name: str, *, what: str = "field"):
    """Raise unless ``jnp.shape(x) == expected``; a batch axis gets its own advice."""
    shape, expected = tuple(jnp.shape(x)), tuple(expected)
    if shape == expected:
        return
    if what != "state" and shape == (1, *expected):
        raise ValueError(
            f"{name} has shape {shape}; a {what} has no channel axis: expected {expected}. Fix: pass {name}[0]."
        )
    if what == "state" and shape == expected[1:] and expected[0] == 1:
        raise ValueError(
            f"{name} has shape {shape} but states are channels first, with a leading channel axis: expected "
            f"{expected}. Fix: add the channel axis, u[None]."
        )
    if len(shape) == len(expected) + 1 and shape[1:] == expected:
        raise ValueError(
            f"{name} has shape {shape}, which looks like a batch of {shape[0]} of the "
            f"expected {what} shape {tuple(expected)}. nnpde acts on one unbatched "
            "sample; for batched operation use jax.vmap."
        )
    raise ValueError(
        f"{name} has shape {shape}, but this grid expects {what} shape {expected}. "
        "Fix: build it on the grid's cells (e.g. from grid.cell_centres())"
        + (", channels first." if what == "state" else ".")
    )
