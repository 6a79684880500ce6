"""``fit``: the training driver (progress bar, metrics log, checkpoints, resume).

``fit`` is the training loop, read top to bottom; each line calls one piece of
``_training_run.py`` (the step, the averaging hook, the health guard, logging,
evaluation, the stop vote, checkpoints) or of ``_run_files.py`` (the run directory).
These are the only places in the training stack with side effects; the step itself is
the pure ``nnpde.make_train_step``. A run directory holds ``checkpoints/`` (orbax,
atomic) and ``metrics.jsonl``; a run started again on the same directory resumes from
its last checkpoint and continues bitwise as if it had never stopped: the batch of step
``n`` is drawn from a key that depends only on the seed and ``n``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import check_int
from ..hybrid._train import TrainState, init_train_state, make_optimizer
from ._training_run import Preempted, Schedule, TrainingRun, make_batch_step


@dataclasses.dataclass
class FitResult:
    """The trained ``model``, its final ``state`` and the logged ``history`` (one dict
    per logged step), and the wall time spent in this call."""

    model: object
    state: TrainState
    history: list[dict]
    seconds: float
    stopped_early: bool = False


def fit(
    model,
    loss_fn: Callable,
    trajectories,
    *,
    steps: int,
    batch_size: int = 16,
    window: int = 1,
    optimizer: optax.GradientTransformation | None = None,
    seed: int = 0,
    spec=None,
    run_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    log_every: int = 10,
    evaluate: Callable | None = None,
    eval_every: int | None = None,
    reduce: Callable | None = None,
    progress: bool = True,
    config: dict | None = None,
    topology=None,
    averager=None,
    stop_when: Callable[[dict], bool] | None = None,
    preempted: Callable[[], bool] | None = None,
    on_evaluation: Callable[[int, dict], None] | None = None,
) -> FitResult:
    """Train ``model`` for ``steps`` optimiser steps on windows of ``trajectories``.

    ``trajectories``: ``(n, T, *state)`` reference states at the model's ``dt``. Each
    step draws ``batch_size`` windows of ``window + 1`` consecutive states
    (``nnpde.sample_windows``) and takes one step of ``optimizer`` (default: Adam
    1e-3) on ``loss_fn(model, batch, key)``. ``evaluate(model) -> dict`` runs every
    ``eval_every`` steps and at the end; its figures are logged. With ``run_dir``:
    metrics in ``run_dir/metrics.jsonl``, checkpoints every ``checkpoint_every`` steps
    and at the end (``config`` stored beside them), and resumption from the latest.

    A non-finite loss, gradient or parameter at any step, a non-finite evaluation, or a
    solver check that fails on the model's state stops the run with ``Diverged`` (a
    ``FloatingPointError``) naming the step, before anything of that step is written:
    the newest checkpoint is always finite, and a run started again (say at a lower
    learning rate) resumes from it. An interrupt (Ctrl-C) writes a checkpoint first.

    Distributed (``nnpde.distributed``): with ``topology`` (a ``GroupTopology``) every
    rank calls ``fit`` with the same arguments; ``batch_size`` is the batch of one GROUP,
    split over its ranks and devices, and gradients are averaged over the group every
    step (``make_group_step``). Groups draw different batches (group 0 the same as a
    single process). With ``averager`` (an ``AsyncAverager``) parameters are averaged
    across groups asynchronously after the steps it chooses, a diverged group is
    rolled back instead of stopping the run, and the returned model and the final
    checkpoint are the average over the groups. Files: the group leader writes
    ``run_dir/group<g>/{checkpoints, metrics.jsonl}`` (``run_dir`` itself when there is
    one group); the final average goes to ``run_dir/checkpoints``; only world rank 0
    shows a progress bar.

    ``stop_when(eval_figures) -> bool``: checked after each periodic evaluation; the run
    stops (checkpoint written, groups averaged) once it is true, on every rank at once
    (with a topology, only when it is true on every group: one blocking vote over the
    world at evaluation steps). ``FitResult.stopped_early`` tells whether it did.
    ``on_evaluation(step, figures)``: called after each evaluation is recorded, the
    final one included (e.g. to log it at once, so that a run that crashes later keeps
    it).

    ``preempted() -> bool``: whether the job must stop soon (``nnpde.StopSignals``: a
    batch system's ``SIGTERM`` or ``SIGUSR1``). Checked after every step in one process,
    and at checkpoint steps under MPI (one blocking vote over the world, true when any
    rank was asked, so that all ranks stop at the same step): when true, the state is
    checkpointed and ``Preempted`` raised; the same call again resumes from there (and,
    without cross-group averaging, ends bit for bit where an uninterrupted run ends).
    Under MPI the stop waits for the next checkpoint step: keep ``checkpoint_every``
    steps shorter than the warning the batch system gives.
    """
    steps = check_int(steps, "steps", fix="train for at least one step.")
    batch_size, window, log_every = (
        check_int(v, n, fix=f"pass {n} >= 1.")
        for n, v in (("batch_size", batch_size), ("window", window), ("log_every", log_every))
    )
    trajectories = _finite(trajectories)
    optimizer = make_optimizer(1e-3) if optimizer is None else optimizer
    state, static = init_train_state(model, optimizer, seed=seed, spec=spec)
    if averager is not None and topology is None:
        topology = averager.topology
    step = make_batch_step(
        loss_fn, optimizer, static, trajectories, batch_size, window, seed=seed, topology=topology, reduce=reduce
    )
    schedule = Schedule(steps, log_every, eval_every, checkpoint_every)
    hooks = dict(
        evaluate=evaluate,
        stop_when=stop_when,
        averager=averager,
        preempted=preempted,
        on_evaluation=on_evaluation,
    )
    with TrainingRun(schedule, static, topology, run_dir=run_dir, config=config, progress=progress, **hooks) as run:
        state = run.resume(state)
        began = time.perf_counter()
        run.open_progress_bar(int(state.step))
        stopped_early = False
        try:
            for done in range(int(state.step) + 1, steps + 1):
                with run.diagnose(done):  # a solver check failing on the model's state: divergence
                    state, metrics = step(state)
                state = run.average(done, state)
                state = run.guard(done, state, metrics)  # before anything logs or writes this step
                run.log(done, metrics)
                stopped_early = run.should_stop(run.evaluate(done, state))
                run.checkpoint(done, state)
                run.advance()
                if stopped_early:
                    break
                if done < steps and run.stop_requested(done, state):  # checkpointed: the same call resumes
                    raise Preempted(done, run_dir)
        except KeyboardInterrupt:
            run.save(state)  # an interrupted run resumes where it was stopped
            raise
        finally:
            run.close_progress_bar()
        state = run.finish(state)
        trained = run.evaluate_result(state)  # evaluated, then checkpointed
    return FitResult(trained, state, run.history, time.perf_counter() - began, stopped_early)


def _finite(trajectories):
    """``trajectories`` as a JAX array, refused when any value is not finite (a NaN in
    the data would only show as a NaN loss, steps later)."""
    trajectories = jnp.asarray(trajectories)
    if not bool(jnp.all(jnp.isfinite(trajectories))):
        raise ValueError(
            "The training trajectories contain non-finite values. Fix: regenerate the data "
            "(an unstable reference run, or a corrupt cache file)."
        )
    return trajectories


def evaluate_rollouts(model, trajectories, *, n_steps: int | None = None):
    """Per-step relative L2 error ``(n_steps,)`` of ``model`` rolled out from each
    trajectory's first state, averaged over the trajectories ``(n, T + 1, *state)``."""
    from ..hybrid import metrics
    from ..numerics._rollout import rollout

    n_steps = trajectories.shape[1] - 1 if n_steps is None else n_steps
    predicted = jax.jit(jax.vmap(lambda u: rollout(model, u, n_steps)))(trajectories[:, 0])
    errors = jax.vmap(metrics.rollout_error)(predicted, trajectories[:, 1 : n_steps + 1])
    return np.asarray(jnp.mean(errors, axis=0))
