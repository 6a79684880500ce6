"""``ResumableTraining``: a training loop that survives being stopped, and shows itself.

A detector trained for CPU hours (``problems.thermal_detectors``: the hybrid and the
emulator, the solver in the loop) must not lose its work when the session running it
ends. The loop here keeps, in a directory of its own, orbax checkpoints of the whole
training state (``nnpde.Checkpointer``: atomic, checksummed) every few steps and on
Ctrl-C, and one line per step in ``metrics.jsonl`` (``nnpde.MetricsLog``); a run
started again resumes from the newest intact checkpoint. The caller's step is a
function of the step count and the state alone (batches drawn from ``(seed, step)``),
so a resumed training ends bit for bit where an uninterrupted one ends. Each
checkpoint stores the settings the training depends on (sizes, seed, a fingerprint of
the data): a run with other settings is refused, never mixed in. A tqdm bar shows the
steps and the loss.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import nnpde

CHECKPOINT_EVERY = 10


def fingerprint(*arrays) -> str:
    """SHA-256 of arrays' dtypes, shapes and bytes: the identity of the training data."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


class ResumableTraining:
    """The loop of the resumable training ``name`` of ``steps`` steps, its only side
    effects: the checkpoints and the metrics log in ``directory`` (none when ``None``)
    and the progress bar (with ``progress``).

    ``directory/checkpoints`` holds orbax checkpoints (``nnpde.Checkpointer``: atomic,
    checksummed) of the training state every ``checkpoint_every`` steps, at the end and
    when interrupted (Ctrl-C), each with ``settings`` (JSON: what the training depends
    on, e.g. sizes, seed, the data's ``fingerprint``; ``name`` and ``steps`` are added)
    and the training's wall seconds so far;
    ``directory/metrics.jsonl`` one line per step (loss, seconds). A new run resumes
    from the newest intact checkpoint (a corrupt newer one is moved to
    ``directory/corrupt``) and drops the log lines after it; one whose settings differ
    from the checkpoints' is refused, never mixed.
    """

    def __init__(
        self,
        directory,
        *,
        name: str,
        steps: int,
        settings: dict,
        checkpoint_every: int = CHECKPOINT_EVERY,
        progress: bool = True,
    ):
        self.directory = None if directory is None else Path(directory)
        self.name, self.steps = name, nnpde.check_int(steps, "steps", fix="train for at least one step.")
        # as the checkpoints store it (JSON), to compare with theirs
        self.settings = json.loads(json.dumps({"name": name, "steps": self.steps, **settings}))
        self.checkpoint_every = nnpde.check_int(
            checkpoint_every, "checkpoint_every", fix=f"steps between checkpoints, e.g. {CHECKPOINT_EVERY}."
        )
        self.progress = progress

    def run(self, advance, state, *, on_step=None):
        """``advance(i, state) -> (state, loss)`` for the steps ``i`` (from 0) not done
        yet, ``state`` a pytree of arrays (the initial one: the template checkpoints are
        restored into), ``loss`` a float; returns ``(state, the step resumed from, the
        training's wall seconds over all runs)``. ``on_step(step, loss)`` is called
        after each step is logged and checkpointed; a ``KeyboardInterrupt`` raised
        there stops the training as Ctrl-C does."""
        from tqdm.auto import tqdm

        name, steps, checkpoints, metrics = self.name, self.steps, None, None
        start, seconds = 0, 0.0
        if self.directory is not None:
            checkpoints = nnpde.Checkpointer(self.directory / "checkpoints")
        try:
            if checkpoints is not None:
                state, start, seconds = self._resume(checkpoints, state)
                metrics = nnpde.MetricsLog(self.directory / "metrics.jsonl", resume_from_step=start)
            bar = tqdm(
                total=steps, initial=start, desc=name, unit="step", dynamic_ncols=True, disable=not self.progress
            )
            done = start
            try:
                for i in range(start, steps):
                    began = time.perf_counter()
                    new, loss = advance(i, state)
                    if not math.isfinite(loss):
                        raise FloatingPointError(
                            f"{name}: the training loss is {loss} at step {i + 1}, not checkpointed (a model run "
                            "open loop may have diverged). Fix: another seed or a lower learning rate, in a fresh "
                            "directory; or leave this model out."
                        )
                    state, done = new, i + 1
                    elapsed = time.perf_counter() - began
                    seconds += elapsed
                    if metrics is not None:
                        metrics.log(done, loss=loss, seconds=elapsed)
                    if checkpoints is not None and (done % self.checkpoint_every == 0 or done == steps):
                        self._save(checkpoints, done, state, seconds)
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                    bar.update()
                    if on_step is not None:
                        on_step(done, loss)
            except KeyboardInterrupt:
                if checkpoints is not None:  # a new run goes on from here
                    self._save(checkpoints, done, state, seconds)
                    bar.write(f"{name}: interrupted, checkpointed at step {done} in {self.directory}", file=sys.stderr)
                raise
            finally:
                bar.close()
        finally:
            if metrics is not None:
                metrics.close()
            if checkpoints is not None:
                checkpoints.close()
        return state, start, seconds

    def _save(self, checkpoints, step: int, state, seconds: float) -> None:
        if step > 0 and step not in checkpoints.all_steps():
            metadata = {"settings": self.settings, "seconds": seconds}
            checkpoints.save(step, state, metadata=metadata, force=True)

    def _resume(self, checkpoints, template):
        """``(state, step, seconds)`` of the newest intact checkpoint (its metadata and
        arrays verified); ``(template, 0, 0)`` without one. A corrupt newer one is named
        and moved to ``directory/corrupt``; settings other than ours are refused."""
        corrupt = []
        for step in reversed(checkpoints.all_steps()):
            try:
                metadata = checkpoints.metadata(step)
                self._check_settings(checkpoints.directory, metadata.get("settings"))
                state = checkpoints.restore(template, step)
            except nnpde.CheckpointCorrupt as error:
                corrupt.append(error)
                continue
            for error in corrupt:
                moved = checkpoints.quarantine(error.step, self.directory / "corrupt")
                print(f"{error}; resumed from step {step} instead, the corrupt one moved to {moved}", file=sys.stderr)
            return state, step, float(metadata.get("seconds", 0.0))
        if corrupt:
            error = corrupt[0]
            raise nnpde.CheckpointCorrupt(
                error.step,
                error.path,
                f"{error.detail}. No checkpoint in {checkpoints.directory} is intact. Fix: move that folder aside "
                f"(mv {checkpoints.directory} {checkpoints.directory}.corrupt) to train from step 0",
            )
        return template, 0, 0.0

    def _check_settings(self, directory, saved) -> None:
        """Refuse (``nnpde.ConfigError``) checkpoints of a training with other settings
        than ``self.settings``."""
        if saved == self.settings:
            return
        saved = saved if isinstance(saved, dict) else {}
        differ = [
            f"{key} {saved.get(key, 'missing')!r} (here {self.settings.get(key, 'missing')!r})"
            for key in sorted(set(saved) | set(self.settings))
            if saved.get(key) != self.settings.get(key)
        ]
        raise nnpde.ConfigError(  # a ValueError; `nnpde detect` reports it as a refused configuration
            f"{directory} holds the checkpoints of a training with other settings: {', '.join(differ)}. Fix: run "
            f"with the settings it was trained with, or move that folder aside (mv {self.directory} "
            f"{self.directory}.old) to train afresh."
        )
