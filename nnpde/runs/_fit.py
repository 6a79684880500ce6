"""``fit``: the training driver (progress bar, metrics log, checkpoints, resume).

The only place in the training stack with side effects; the step itself is the pure
``nnpde.make_train_step``. A run directory holds ``checkpoints/`` (orbax, atomic) and
``metrics.jsonl``; a run started again on the same directory resumes from its last
checkpoint and continues bitwise as if it had never stopped: the batch of step ``n`` is
drawn from a key that depends only on the seed and ``n``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import check_int
from ..hybrid._train import TrainState, combine, init_train_state, make_optimizer, make_train_step, sample_windows
from ._checkpoint import Checkpointer
from ._metrics_log import MetricsLog


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
) -> FitResult:
    """Train ``model`` for ``steps`` optimiser steps on windows of ``trajectories``.

    ``trajectories``: ``(n, T, *state)`` reference states at the model's ``dt``. Each
    step draws ``batch_size`` windows of ``window + 1`` consecutive states
    (``nnpde.sample_windows``) and takes one step of ``optimizer`` (default: Adam
    1e-3) on ``loss_fn(model, batch, key)``. ``evaluate(model) -> dict`` runs every
    ``eval_every`` steps and at the end; its figures are logged. With ``run_dir``:
    metrics in ``run_dir/metrics.jsonl``, checkpoints every ``checkpoint_every`` steps
    and at the end (``config`` stored beside them), and resumption from the latest.

    A non-finite loss stops the run with ``FloatingPointError`` naming the step; the
    last checkpoint stays intact. An interrupt (Ctrl-C) writes a checkpoint first.

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
    """
    steps = check_int(steps, "steps", fix="train for at least one step.")
    batch_size, window, log_every = (
        check_int(v, n, fix=f"pass {n} >= 1.")
        for n, v in (("batch_size", batch_size), ("window", window), ("log_every", log_every))
    )
    trajectories = jnp.asarray(trajectories)
    if not bool(jnp.all(jnp.isfinite(trajectories))):
        raise ValueError(
            "The training trajectories contain non-finite values. Fix: regenerate the data "
            "(an unstable reference run, or a corrupt cache file)."
        )
    optimizer = make_optimizer(1e-3) if optimizer is None else optimizer
    state, static = init_train_state(model, optimizer, seed=seed, spec=spec)
    batch_key = jax.random.key(seed + 1_000_003)
    if averager is not None and topology is None:
        topology = averager.topology
    if topology is None:
        train_step = make_train_step(loss_fn, optimizer, static, reduce=reduce, jit=False)
        leader, root, group_dir = True, True, None
    else:
        from ..distributed import make_group_step

        if reduce is not None:
            raise ValueError("Give either reduce= or topology=, not both: the topology defines the group mean.")
        train_step = make_group_step(loss_fn, optimizer, static, topology)
        if topology.group:
            batch_key = jax.random.fold_in(batch_key, topology.group)
        leader, root = topology.is_leader, topology.is_root
        group_dir = f"group{topology.group}" if topology.n_groups > 1 else None

    @jax.jit
    def step_fn(state):
        batch = sample_windows(jax.random.fold_in(batch_key, state.step), trajectories, batch_size, window)
        return train_step(state, batch)

    checkpointer = log = None
    start = 0
    if run_dir is not None:
        run_dir = Path(run_dir)
        own_dir = run_dir / group_dir if group_dir else run_dir
        if leader:
            own_dir.mkdir(parents=True, exist_ok=True)
            checkpointer = Checkpointer(own_dir / "checkpoints")
            latest = checkpointer.latest_step()
            if latest is not None:
                state = checkpointer.restore(state)
                start = int(state.step)
            log = MetricsLog(own_dir / "metrics.jsonl", resume_from_step=start if latest is not None else 0)
        if topology is not None and topology.group_size > 1:
            # The leader alone writes; the other ranks restore the same step read-only.
            latest = topology.group_host_comm.bcast(checkpointer.latest_step() if leader else None, root=0)
            if not leader and latest is not None:
                with Checkpointer(own_dir / "checkpoints", read_only=True) as reader:
                    state = reader.restore(state, latest)
                start = int(state.step)

    history: list[dict] = []
    began = time.perf_counter()
    stopped_early = False

    def save(step):
        if checkpointer is not None and step not in checkpointer.all_steps():
            checkpointer.save(step, state, metadata={"config": config or {}, "step": step}, force=True)

    def record(step, metrics):
        entry = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        history.append(entry)
        if log is not None:
            log.log(step, **{k: v for k, v in entry.items() if k != "step"})
        return entry

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, desc="training", unit="step", dynamic_ncols=True, disable=not root)
    try:
        for n in range(start, steps):
            state, metrics = step_fn(state)
            done = n + 1
            if averager is not None:
                state = averager.after_step(done, state)
            if done % log_every == 0 or done == steps:
                loss = float(metrics["loss"])
                if not math.isfinite(loss) and averager is None:
                    raise FloatingPointError(
                        f"The loss became {loss} at step {done}. The last checkpoint is kept. Fix: lower the "
                        "learning rate, clip gradients (make_optimizer(clip_norm=1.0)) or shorten the unroll."
                    )
                entry = record(done, metrics)
                if bar is not None:
                    bar.set_postfix(loss=f"{entry['loss']:.3e}")
            stop = False
            if evaluate is not None and eval_every and done % eval_every == 0 and done != steps:
                figures = evaluate(combine(state.params, static))
                record(done, {f"eval_{k}": v for k, v in figures.items()})
                if stop_when is not None:
                    stop = _vote(bool(stop_when(figures)), topology)
            if checkpoint_every and done % checkpoint_every == 0:
                save(done)
            if bar is not None:
                bar.update(1)
            if stop:
                stopped_early = True
                break
    except KeyboardInterrupt:
        save(int(state.step))
        raise
    finally:
        if bar is not None:
            bar.close()
    save(int(state.step))
    if checkpointer is not None:
        checkpointer.close()
    if averager is not None:
        state = averager.finish(state)
        if run_dir is not None and group_dir and root:
            with Checkpointer(run_dir / "checkpoints") as final:
                final.save(int(state.step), state, metadata={"config": config or {}, "averaged_over_groups": True})
    trained = combine(state.params, static)
    if evaluate is not None:
        record(int(state.step), {f"eval_{k}": v for k, v in evaluate(trained).items()})
    return FitResult(trained, state, history, time.perf_counter() - began, stopped_early)


def _vote(flag: bool, topology) -> bool:
    """True when ``flag`` is true on every rank (a blocking MPI vote; one process: ``flag``)."""
    if topology is None or topology.world_comm is None:
        return flag
    from mpi4py import MPI

    return bool(topology.world_comm.allreduce(int(flag), op=MPI.MIN))


def evaluate_rollouts(model, trajectories, *, n_steps: int | None = None):
    """Per-step relative L2 error ``(n_steps,)`` of ``model`` rolled out from each
    trajectory's first state, averaged over the trajectories ``(n, T + 1, *state)``."""
    from ..hybrid import metrics
    from ..numerics._rollout import rollout

    n_steps = trajectories.shape[1] - 1 if n_steps is None else n_steps
    predicted = jax.jit(jax.vmap(lambda u: rollout(model, u, n_steps)))(trajectories[:, 0])
    errors = jax.vmap(metrics.rollout_error)(predicted, trajectories[:, 1 : n_steps + 1])
    return np.asarray(jnp.mean(errors, axis=0))
