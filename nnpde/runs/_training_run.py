"""The pieces of ``fit``'s training loop, one concern each.

``fit`` (``_fit.py``) reads as the loop; what each of its lines does lives here:

- ``make_batch_step``: one optimiser step on the batch of step ``n``, local or over the
  ranks of a group (pure: the batch depends only on the seed, the step and the group);
- ``Schedule``: which steps are logged, evaluated and checkpointed;
- ``TrainingRun``: the side effects of one ``fit`` call, in the order the loop calls
  them: the cross-group averaging hook, the health guard, logging, evaluation, the stop
  vote, checkpoints, and the end of the run. Its files (checkpoints, metrics log,
  resumption) are ``RunFiles`` (``_run_files.py``).

Side effects (files, clock, progress bar, MPI) stay here and in ``nnpde.distributed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import re
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..hybrid._train import combine, make_train_step, sample_windows
from ._run_files import Roles, RunFiles


class Diverged(FloatingPointError):
    """Training (or a trained model) diverged: a non-finite loss, gradient, parameter or
    evaluation, or a runtime check of the solver failed on the model's state. The
    message names the step, what was not finite, the checkpoint kept and the fix."""


class Preempted(Exception):
    """Training stopped early because ``fit``'s ``preempted()`` asked it to (a batch
    system's stop signal, ``StopSignals``): ``step`` is checkpointed, and the same call
    on the same run directory resumes from it and continues as if it had not stopped.
    Not an error of the run; ``nnpde train`` exits with code 5."""

    def __init__(self, step: int, run_dir):
        self.step, self.run_dir = step, run_dir
        where = f"checkpoint of step {step} written in {run_dir}" if run_dir is not None else "no run_dir to write to"
        super().__init__(
            f"Training stopped at step {step} on request (a stop signal; {where}). Run the same command again to "
            "resume from there."
        )


_FIX = (
    "Fix: lower train.learning_rate (a run started again on the same directory resumes from the last "
    "checkpoint), keep gradients clipped (train.clip_norm; make_optimizer(clip_norm=1.0)) or shorten the unroll."
)


@jax.jit
def _health(params, metrics):
    """``[loss finite, gradient norm finite, every parameter finite]``, reduced on the
    device (three booleans come to the host, not the parameters)."""
    leaves = [x for x in jax.tree.leaves(params) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    params_ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.asarray(True)
    grad_norm = metrics.get("grad_norm", jnp.asarray(0.0))
    return jnp.stack([jnp.isfinite(metrics["loss"]), jnp.isfinite(grad_norm), params_ok])


def solver_check(error: BaseException) -> str | None:
    """The message of the failed runtime check (``eqx.error_if``) inside ``error``, a
    JAX runtime error; ``None`` when ``error`` is something else."""
    if not isinstance(error, jax.errors.JaxRuntimeError | ValueError):
        return None
    found = re.search(r"EquinoxRuntimeError: (.+)", str(error))
    return found.group(1).strip() if found else None


def _drop_failed_check(record: logging.LogRecord) -> bool:
    """Drops JAX's log of a failed runtime check: ``diagnose`` reports it, in words."""
    return "pure_callback failed" not in str(record.msg)


def make_batch_step(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    static,
    trajectories,
    batch_size: int,
    window: int,
    *,
    seed: int,
    topology=None,
    reduce: Callable | None = None,
) -> Callable:
    """``step(state) -> (state, metrics)``, jitted: one optimiser step on the batch of
    step ``state.step``.

    The batch (``batch_size`` windows of ``window + 1`` states) is drawn from a key that
    depends only on ``seed``, the step number and the group, so a resumed run draws the
    batches it would have drawn without stopping, group 0 draws what one process draws,
    and other groups see other data. Without ``topology`` the step is local (``reduce``
    may average the gradients); with one, gradients are averaged over the group's ranks
    and devices every step (``make_group_step``).
    """
    batch_key = jax.random.key(seed + 1_000_003)
    if topology is None:
        train_step = make_train_step(loss_fn, optimizer, static, reduce=reduce, jit=False)
    else:
        from ..distributed import make_group_step

        if reduce is not None:
            raise ValueError("Give either reduce= or topology=, not both: the topology defines the group mean.")
        train_step = make_group_step(loss_fn, optimizer, static, topology)
        if topology.group:
            batch_key = jax.random.fold_in(batch_key, topology.group)

    @jax.jit
    def step(state):
        batch = sample_windows(jax.random.fold_in(batch_key, state.step), trajectories, batch_size, window)
        return train_step(state, batch)

    return step


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Which of the ``steps`` optimiser steps are logged (every ``log_every`` and the
    last), evaluated (every ``eval_every`` but the last, which the final evaluation
    covers) and checkpointed (every ``checkpoint_every``; the end always is). A period
    of ``None`` or 0 means never."""

    steps: int
    log_every: int
    eval_every: int | None = None
    checkpoint_every: int | None = None

    def logs_at(self, step: int) -> bool:
        return step % self.log_every == 0 or step == self.steps

    def evaluates_at(self, step: int) -> bool:
        return bool(self.eval_every) and step % self.eval_every == 0 and step != self.steps

    def checkpoints_at(self, step: int) -> bool:
        return bool(self.checkpoint_every) and step % self.checkpoint_every == 0

    def writes_at(self, step: int) -> bool:
        """Whether anything of ``step`` is logged, evaluated or checkpointed."""
        return self.logs_at(step) or self.evaluates_at(step) or self.checkpoints_at(step)


class TrainingRun:
    """The side effects of one ``fit`` call, one concern per method.

    For each step the loop in ``fit`` calls ``average`` (cross-group hook), ``guard``
    (health), ``log``, ``evaluate`` and ``should_stop``, ``checkpoint`` and ``advance``
    (progress bar), in this order; ``resume`` before the loop, ``finish`` and
    ``evaluate_model`` after it. ``history`` keeps every record (one dict per logged
    step or evaluation). A context manager: leaving it closes the files.
    """

    def __init__(
        self,
        schedule: Schedule,
        static,
        topology,
        *,
        run_dir: str | Path | None,
        config: dict | None,
        averager,
        evaluate: Callable | None,
        stop_when: Callable[[dict], bool] | None,
        progress: bool,
        preempted: Callable[[], bool] | None = None,
        on_evaluation: Callable[[int, dict], None] | None = None,
    ):
        self.schedule, self._static = schedule, static
        self._topology, self._averager = topology, averager
        self._evaluate, self._stop_when = evaluate, stop_when
        self._preempted, self._on_evaluation = preempted, on_evaluation
        self._roles = Roles.of(topology)
        self._progress = progress
        self._bar = None
        self.history: list[dict] = []
        self._pending: list = []  # (step, health verdict on the device, loss) not yet checked
        self._own_final = None
        self.files = RunFiles.open(run_dir, self._roles, topology, config)

    def __enter__(self) -> TrainingRun:
        return self

    def __exit__(self, *exc) -> None:
        self.files.close()

    # -- before the loop ---------------------------------------------------------------

    def resume(self, state):
        """The state to start from: the latest checkpoint, else ``state`` itself."""
        return self.files.resume(state)

    def open_progress_bar(self, start: int) -> None:
        """A tqdm bar from step ``start``, shown on world rank 0 only (with ``progress``)."""
        if self._progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.schedule.steps,
                initial=start,
                desc="training",
                unit="step",
                dynamic_ncols=True,
                disable=not self._roles.root,
            )

    # -- each step ---------------------------------------------------------------------

    def average(self, step: int, state):
        """The cross-group hook: the averager folds in a completed average (and starts
        the next at its steps); it also rolls a diverged group back. Without one: ``state``."""
        return state if self._averager is None else self._averager.after_step(step, state)

    def guard(self, step: int, state, metrics: dict):
        """The health check between a step and anything that logs or writes it: the one
        place that decides whether training goes on, and from which state.

        Every step is checked (not only logged ones): a non-finite loss, gradient norm
        or parameter stops a run without an averager with ``Diverged`` (a
        ``FloatingPointError``) naming the first bad step, before anything of that step
        or a later one is logged, evaluated or checkpointed, so the newest checkpoint is
        finite. The verdicts stay on the device until the next step that writes
        (logging, evaluation, checkpoint, the end), so the check does not stall the
        device in between. With an averager, its own guard has already rolled a
        diverged group back. Returns the state to continue from.
        """
        if self._averager is None:
            self._pending.append((step, _health(state.params, metrics), metrics["loss"]))
            if self.schedule.writes_at(step):
                self.settle()
        return state

    def settle(self) -> None:
        """Bring the pending health verdicts to the host; raise ``Diverged`` at the first
        unhealthy step."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        with self.diagnose(pending[0][0]):
            verdicts = np.asarray(jax.device_get([v for _, v, _ in pending]))
        for (step, _, loss), (loss_ok, grad_ok, params_ok) in zip(pending, verdicts):
            if loss_ok and grad_ok and params_ok:
                continue
            what = [
                *([] if loss_ok else [f"the loss is {float(loss)}"]),
                *([] if grad_ok else ["the gradient is not finite"]),
                *([] if params_ok else ["the parameters are not finite"]),
            ]
            raise Diverged(
                f"Training diverged at step {step}: {', '.join(what)}. Nothing of step {step} or later was "
                f"written; {self._kept()}. {_FIX}"
            )

    @contextlib.contextmanager
    def diagnose(self, step: int):
        """Turns a runtime check of the solver that fails during training step ``step``
        (or an evaluation) into ``Diverged``: the learned model drove the state out of
        the range the solver was checked for, which is the model diverging, not a
        ``dt`` too large for the solver."""
        logger = logging.getLogger("jax._src.callback")  # JAX logs the failed check's traceback first
        logger.addFilter(_drop_failed_check)
        try:
            yield
        except Exception as error:
            check = solver_check(error)
            if check is None:
                raise
            raise Diverged(
                f"Training diverged at step {step}: the model drove the solver's state out of its stable range, "
                f"and the solver's runtime check failed ({check.split(' Fix:')[0]}). The solver passed this "
                "check on the reference data: it is the learned model that diverged, so reducing dt is not the "
                f"fix. {self._kept()[0].upper()}{self._kept()[1:]}. {_FIX}"
            ) from None
        finally:
            logger.removeFilter(_drop_failed_check)

    def _kept(self) -> str:
        latest = self.files.latest_step()
        return "no checkpoint was written yet" if latest is None else f"the last checkpoint (step {latest}) is kept"

    def log(self, step: int, metrics: dict) -> None:
        """At logged steps: the step's metrics into the history and the metrics log, its
        loss onto the progress bar."""
        if self.schedule.logs_at(step):
            entry = self._record(step, metrics)
            if self._bar is not None:
                self._bar.set_postfix(loss=f"{entry['loss']:.3e}")

    def evaluate(self, step: int, state):
        """At evaluation steps: the figures of ``evaluate`` on the current model
        (recorded); ``None`` at the other steps or without ``evaluate``."""
        if self._evaluate is None or not self.schedule.evaluates_at(step):
            return None
        return self.evaluate_model(step, combine(state.params, self._static))

    def should_stop(self, figures) -> bool:
        """Whether ``stop_when(figures)`` holds on every rank (a blocking vote over the
        world, so that all ranks stop at the same step); ``False`` between evaluations."""
        if figures is None or self._stop_when is None:
            return False
        return _vote(bool(self._stop_when(figures)), self._topology)

    def checkpoint(self, step: int, state) -> None:
        """A checkpoint at the scheduled steps."""
        if self.schedule.checkpoints_at(step):
            self.save(state)

    def stop_requested(self, step: int, state) -> bool:
        """Whether ``preempted()`` asks the run to stop after ``step``. One process: at
        once. Several MPI ranks: at checkpoint steps only, by a blocking vote over the
        world (true when any rank was asked), so that every rank stops at the same step
        even though the signal reaches them at different moments. When it stops,
        ``state`` is checkpointed and an averager's collectives are completed
        (``finish``, its average discarded), so that the ranks leave MPI cleanly."""
        if self._preempted is None:
            return False
        topology = self._topology
        if topology is None or topology.world_comm is None or topology.world_size == 1:
            asked = bool(self._preempted())
        elif self.schedule.checkpoints_at(step):
            # After ``checkpoint``: every leader has committed this step before any rank
            # leaves the vote, so none exits (and a launcher kills none) before that.
            asked = not _vote(not self._preempted(), topology)
        else:
            return False
        if asked:
            self.save(state)
            if self._averager is not None:
                self._averager.finish(state)
        return asked

    def advance(self) -> None:
        """One step more on the progress bar."""
        if self._bar is not None:
            self._bar.update(1)

    def save(self, state) -> None:
        """A checkpoint of ``state`` at its step (at the end, and on an interrupt), after
        the pending health checks: a non-finite state is never written."""
        self.settle()
        self.files.save(int(state.step), state)

    # -- after the loop ----------------------------------------------------------------

    def close_progress_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def finish(self, state):
        """The end of the run: the pending health checks, then with an averager the
        average over the groups (identical on every rank). Returns the run's result;
        ``evaluate_result`` evaluates and checkpoints it."""
        self.settle()
        self._own_final = state
        return state if self._averager is None else self._averager.finish(state)

    def evaluate_result(self, state):
        """The trained model of ``state`` (the run's result), evaluated (recorded; a
        non-finite figure is ``Diverged``) and only then checkpointed, with the group's
        own final state beside the average: the newest checkpoint is never a result
        whose evaluation is not finite, and a run started again resumes before it.
        Returns the model."""
        model = combine(state.params, self._static)
        self.evaluate_model(int(state.step), model)
        self.save(self._own_final)
        if self._averager is not None:
            self.files.save_group_average(state)
        return model

    def evaluate_model(self, step: int, model):
        """``evaluate(model)``'s figures, recorded as ``eval_<name>`` at ``step``. A
        figure that is not finite (or a solver check that fails on the model's rollout)
        is ``Diverged``: a non-finite result is never recorded as one."""
        if self._evaluate is None:
            return None
        with self.diagnose(step):
            figures = self._evaluate(model)
        bad = {k: v for k, v in figures.items() if not math.isfinite(float(v))}
        if bad:
            raise Diverged(
                f"Training diverged by step {step}: the trained model's evaluation is not finite "
                f"({', '.join(f'{k} = {v}' for k, v in bad.items())}): its rollout blows up, so it is not "
                f"checkpointed; {self._kept()}. {_FIX}"
            )
        self._record(step, {f"eval_{k}": v for k, v in figures.items()})
        if self._on_evaluation is not None:
            self._on_evaluation(step, figures)
        return figures

    def _record(self, step: int, metrics: dict) -> dict:
        entry = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        self.history.append(entry)
        self.files.log(entry)
        return entry


def _vote(flag: bool, topology) -> bool:
    """True when ``flag`` is true on every rank (a blocking MPI vote; one process: ``flag``)."""
    if topology is None or topology.world_comm is None:
        return flag
    from mpi4py import MPI

    return bool(topology.world_comm.allreduce(int(flag), op=MPI.MIN))
