"""``resumable_rollout``: a long, batched rollout that survives being killed.

Reference data for a fine solver can take hours of CPU (a 512^2 truth for tens of time
units). This runs independent rollouts together (``jax.vmap`` over the leading axis of
``u0``), keeps ``transform(state)`` every ``save_every`` steps (a restriction to a
coarse grid, say, so the saved data stay small), and every ``chunk`` saves writes what
it has (the saved states and the full current states) to one ``.npz`` file, atomically
(written beside it, then renamed): a run killed at any moment loses at most one chunk,
and the same call again continues from the file, bitwise as if it had not stopped (the
steps are the same jitted chunks, started from the same stored states). A file written
for other arguments (initial states, step count, save interval, transform's output) is
refused with the fix, never silently mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from ..numerics._rollout import rollout
from ..numerics._stepper import AbstractStepper


def _fingerprint(u0: np.ndarray, **settings) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(u0).tobytes())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def _write_atomic(path: Path, **arrays) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resumable_rollout(
    stepper: AbstractStepper,
    u0,
    n_saves: int,
    *,
    save_every: int,
    path: str | Path,
    transform: Callable | None = None,
    chunk: int = 10,
    t0: float = 0.0,
    progress: Callable[[int, int, float], None] | None = None,
    return_state: bool = False,
):
    """``(B, n_saves + 1, ...)``: ``transform`` of the states at steps ``0, save_every,
    ..., n_saves * save_every`` of ``B`` rollouts of ``stepper`` from ``u0`` (``(B, *state)``);
    with ``return_state`` also the full final states ``(B, *state)`` (to continue from).

    Written to ``path`` (``.npz``) every ``chunk`` saves and continued from it when
    called again with the same arguments (module docstring). ``transform`` maps one state
    to what is kept (default: the state). ``progress(done, total, seconds)`` is called
    after each chunk (a progress bar, a log line). When the file already holds all
    ``n_saves`` the result is read back without stepping.
    """
    if not isinstance(stepper, AbstractStepper):
        raise TypeError(f"resumable_rollout needs an nnpde stepper, got {type(stepper).__name__}.")
    n_saves = check_int(n_saves, "n_saves", fix="keep at least one state after the start.")
    save_every = check_int(save_every, "save_every", fix="steps between kept states, >= 1.")
    chunk = check_int(chunk, "chunk", fix="saves between writes to the file, e.g. 10.")
    u0 = np.asarray(u0)
    if u0.shape[1:] != tuple(stepper.equation.state_shape):
        raise ValueError(
            f"u0 must be (runs, *state) = (B, {', '.join(map(str, stepper.equation.state_shape))}), got {u0.shape}. "
            "Fix: stack the initial states of the independent runs along a leading axis."
        )
    transform = (lambda u: u) if transform is None else transform
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"Cannot write {path}: its folder is not writable. Fix: choose a writable path.")
    kept_shape = jax.eval_shape(transform, jax.ShapeDtypeStruct(u0.shape[1:], u0.dtype))
    key = _fingerprint(u0, n_saves=n_saves, save_every=save_every, dt=stepper.dt, t0=t0, kept=list(kept_shape.shape))

    if path.exists():
        with np.load(path) as stored:
            if str(stored["key"]) != key:
                raise ValueError(
                    f"{path} holds a rollout of other initial states or settings than this call's. Fix: use another "
                    "path, or delete the file to start over."
                )
            saved, state, done = list(stored["saved"]), stored["state"], int(stored["done"])
    else:
        first = np.asarray(jax.vmap(transform)(jnp.asarray(u0)))
        saved, state, done = [first], u0, 0

    def advance(u, start, length):
        def one_save(carry, i):
            times = t0 + (start + i) * save_every * stepper.dt
            u = jax.vmap(lambda v: rollout(stepper, v, save_every, t0=times, trajectory=False))(carry)
            return u, jax.vmap(transform)(u)

        return jax.lax.scan(one_save, u, jnp.arange(length))

    advance = jax.jit(advance, static_argnums=2)  # compiled for `chunk` saves, and once for a shorter last one
    started = time.perf_counter()
    while done < n_saves:
        take = min(chunk, n_saves - done)
        u, kept = advance(jnp.asarray(state), done, take)
        kept = np.asarray(kept)
        if not (np.all(np.isfinite(kept)) and bool(jnp.all(jnp.isfinite(u)))):
            raise FloatingPointError(
                f"resumable_rollout: non-finite states within saves {done + 1}..{done + take} (of {n_saves}); the file "
                f"{path} keeps the last finite chunk. Fix: a smaller dt or a better-resolved grid for these states."
            )
        state = np.asarray(u)
        saved.extend(kept)
        done += take
        _write_atomic(path, key=np.asarray(key), saved=np.stack(saved), state=state, done=np.asarray(done))
        if progress is not None:
            progress(done, n_saves, time.perf_counter() - started)
    kept = np.moveaxis(np.stack(saved), 0, 1)
    return (kept, np.asarray(state)) if return_state else kept
