"""Configured runs: stage data, train, evaluate (the driver behind ``nnpde``).

Each function takes a validated ``RunConfig`` (``nnpde.runs._config``). Side effects (files,
the clock, MPI, progress bars) live here and in ``nnpde.runs._cli``. Under ``mpirun`` every
rank calls the same function: world rank 0 stages the data while the others wait, the
ranks form ``distributed.groups`` groups (``GroupTopology``), groups average
asynchronously (``AsyncAverager``), and world rank 0 alone writes the run's files.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from mlperf_logging.mllog import constants as mlc

from ..hybrid._task import Task
from ._config import ConfigError, RunConfig, check_domain, check_layout
from ._mllog import EVAL_ERROR, TARGET_EVAL_ERROR, MLLogger
from ._problem import build, import_problem


def set_precision(config: RunConfig) -> None:
    """Apply ``config.precision``: ``"float64"`` turns on ``jax_enable_x64``,
    ``"float32"`` turns it off. Call it first, before any array is made (arrays made
    earlier keep their dtype)."""
    jax.config.update("jax_enable_x64", config.precision == "float64")


def load_task(config: RunConfig) -> Task:
    """Import ``problem.module``, check ``problem.options`` against its ``task`` and
    build the task; every refusal is a ``ConfigError`` naming the key and the fix."""
    module = import_problem(config.problem.module, "task", key="problem.module")
    task = build(module, "task", config.problem.options, key="problem.options", returns=Task)
    if config.model.kind and config.model.kind not in task.kinds:
        raise ConfigError(
            f"model.kind = {config.model.kind!r} is not a model of {task.name}. Fix: use one of {task.kinds}."
        )
    if config.train.unroll > task.horizon:
        raise ConfigError(
            f"train.unroll = {config.train.unroll} exceeds the task's horizon ({task.horizon} steps), the length "
            f"of its reference trajectories. Fix: train.unroll <= {task.horizon}."
        )
    if config.train.augment and not task.symmetries:
        raise ConfigError(
            f"train.augment = true, but task {task.name!r} declares no symmetries to augment its data with. "
            "Fix: set train.augment = false (--set train.augment=false), or give the Task its symmetries."
        )
    return task


def make_optimizer(config: RunConfig, total_steps: int | None = None):
    from ..hybrid._train import make_optimizer as build

    t = config.train
    return build(
        t.learning_rate,
        schedule=t.schedule,
        total_steps=total_steps or t.steps,
        warmup_steps=t.warmup_steps,
        clip_norm=t.clip_norm,
    )


def world_size() -> int:
    """MPI ranks of this run (1 when not launched by ``mpirun``)."""
    from ..distributed import launched_by_mpi

    if not launched_by_mpi():
        return 1
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_size()


def check_launch() -> None:
    """Refuse a process that ``srun`` started as one of several tasks without making it
    an MPI rank (``ConfigError`` with the fix): each task would train alone, every one
    into the same run directory. The usual cause on a cluster is an MPI that srun's
    process-management interface does not reach (``srun --mpi=...``, or mpi4py built
    against another MPI than the cluster's)."""
    from ..distributed import launched_by_mpi

    tasks = os.environ.get("SLURM_STEP_NUM_TASKS", "")
    if launched_by_mpi() or not tasks.isdigit() or int(tasks) <= 1:
        return
    raise ConfigError(
        f"srun started {tasks} tasks of this command (SLURM_STEP_NUM_TASKS={tasks}), but this one is not an MPI "
        "rank (no PMI_RANK, PMIX_RANK or OMPI_COMM_WORLD_SIZE in its environment): each task would train alone, all "
        "into the same run directory. Fix: let srun start MPI ranks (srun --mpi=pmix or --mpi=pmi2, one that "
        "`srun --mpi=list` offers and the cluster's MPI supports, with mpi4py and mpi4jax built against that MPI: "
        "docs/distributed.md, 'Running on a Slurm cluster'), or launch with mpirun."
    )


def _reference_decomposition(config: RunConfig, task: Task):
    """The ``Decomposition`` of the task's reference grid over ``distributed.domain``
    (collective over ``MPI.COMM_WORLD``); refusals name the key."""
    from mpi4py import MPI

    from ..distributed import Decomposition

    check_domain(config, task, world_size())
    grid, bc = task.reference_domain
    try:
        return Decomposition.create(grid, bc, comm=MPI.COMM_WORLD, dims=config.distributed.domain)
    except ValueError as err:
        raise ConfigError(f"distributed.domain = {config.distributed.domain} refused: {err}") from None


def stage_data(config: RunConfig, task: Task, *, topology=None, cache: bool = True, split: bool = True):
    """``(train, held_out, seconds)``: the reference trajectories of ``task``
    (``data.train_samples`` from ``data.train_seed``, ``data.eval_samples`` from
    ``data.eval_seed``), NumPy arrays ``(n, horizon + 1, *state)``, generated or read
    from ``data.cache_dir`` (``cache=False``: generated, the cache neither read nor
    written), and the seconds it took. Under MPI (``topology``, the run's
    ``GroupTopology``), world rank 0 stages them first so that the ranks do not all
    generate the same data; with ``distributed.domain`` (and ``split``) every rank
    stages them together instead, the reference solver's grid split over the ranks,
    and every rank gets them whole."""
    began = time.perf_counter()
    d = config.data
    cache_dir = d.cache_dir if (cache and d.cache_dir) else None
    decomposition = _reference_decomposition(config, task) if (split and config.distributed.domain) else None

    def stage():
        kw = dict(cache_dir=cache_dir, decomposition=decomposition)
        train, _ = task.trajectories(d.train_seed, d.train_samples, task.horizon, **kw)
        held_out, _ = task.trajectories(d.eval_seed, d.eval_samples, task.horizon, **kw)
        return np.asarray(train), np.asarray(held_out)

    if decomposition is None and topology is not None and topology.world_size > 1 and cache_dir is not None:
        if topology.is_root:
            data = stage()
        topology.barrier()
        if not topology.is_root:
            data = stage()
    else:
        data = stage()
    return (*data, time.perf_counter() - began)


def make_evaluator(task: Task, held_out):
    """``evaluate(model) -> {"horizon_error": e}``: the relative L2 error at the task's
    horizon, averaged over ``held_out``; compiled once per model structure."""
    from ..hybrid import metrics
    from ..numerics._rollout import rollout

    u0 = jnp.asarray(held_out[:, 0])
    reference = jnp.asarray(held_out[:, 1 : task.horizon + 1])

    @eqx.filter_jit
    def errors(model):
        predicted = jax.vmap(lambda u: rollout(model, u, task.horizon))(u0)
        return jnp.mean(jax.vmap(metrics.rollout_error)(predicted, reference), axis=0)

    def evaluate(model):
        return {"horizon_error": float(errors(model)[-1])}

    evaluate.errors = errors
    return evaluate


def _topology(config: RunConfig):
    from ..distributed import AsyncAverager, GroupTopology, launched_by_mpi

    if not launched_by_mpi():
        if config.distributed.groups != 1:
            raise ConfigError(
                f"distributed.groups = {config.distributed.groups} needs that many MPI ranks or more, but this is "
                "one process. Fix: launch under mpirun (e.g. .venv/bin/mpirun -n 2 .venv/bin/nnpde train ...) or "
                "set distributed.groups = 1."
            )
        return None, None
    from mpi4py import MPI

    check_layout(config, MPI.COMM_WORLD.Get_size(), 1)
    topo = GroupTopology.create(groups=config.distributed.groups, devices=jax.devices()[:1])
    averager = None
    if topo.n_groups > 1:
        dc = config.distributed
        averager = AsyncAverager(
            topo,
            every=dc.every,
            max_staleness=dc.max_staleness,
            wait_free=dc.wait_free,
            progress=dc.progress,
            max_rollbacks=dc.max_rollbacks,
        )
    return topo, averager


def environment(topology=None) -> dict:
    """Hardware and software of this process, for summaries and disclosure files: host,
    platform, Python, CPU model and cores, JAX devices, the versions of the numerical
    packages and of mlperf-logging (``None`` where absent), the JAX compilation cache,
    and the parallel layout (``topology.describe()``; one rank, one group without a
    ``GroupTopology``)."""
    from importlib import metadata

    versions = {}
    numerical = ("jax", "jaxlib", "equinox", "flax", "optax", "diffrax", "mpi4py", "mpi4jax", "mpich", "numpy")
    for package in (*numerical, "mlperf-logging"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    devices = jax.devices()
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind,
        "software": versions,
        "jax_compilation_cache": os.environ.get("JAX_COMPILATION_CACHE_DIR"),
        "parallel": topology.describe() if topology is not None else {"ranks": 1, "groups": 1, "ranks_per_group": 1},
    }


def train(config: RunConfig, *, progress: bool = True, mllog: str | None = None, echo=print, preempted=None) -> dict:
    """Train ``config``'s model; returns (and writes to ``run_dir/train.json``) the summary.

    Resumable: a run directory with checkpoints continues from the latest. With
    ``train.stop_at_target`` the run stops at the first evaluation whose held-out
    horizon error reaches the task's target. ``mllog``: path of an MLPerf log, written
    with MLCommons' ``mlperf-logging`` (what it holds: ``nnpde.runs._mllog``).
    ``preempted``: ``fit``'s stop request (``StopSignals``); when it stops the run,
    ``Preempted`` propagates and no summary is written.
    """
    from ..hybrid._loss import unrolled_loss
    from ._fit import fit
    from ._history import check_resume, describe, record

    clock = time.time()
    began = time.perf_counter()
    changes = check_resume(config)  # before any work: a refused resume changes nothing
    task = load_task(config)
    kind = config.model.kind or task.kinds[0]
    model = task.model(kind, seed=config.model.seed)
    resumed_from = _check_checkpoints_fit(config, model)
    topology, averager = _topology(config)
    root = topology is None or topology.is_root
    log = MLLogger(mllog, enabled=root)
    # MLPerf's untimed init: from the call (task, model and MPI set-up) to the settings
    # logged; the clock (run_start) then covers the rest, data staging and compilation
    # included.
    log.start(mlc.INIT_START, time_ms=int(clock * 1000))
    _log_settings(log, config, task, topology)
    log.end(mlc.INIT_STOP)
    log.start(mlc.RUN_START)
    run_dir = config.run_dir
    if changes and resumed_from is not None:
        echo(f"resuming {run_dir} from step {resumed_from} with changed settings (recorded in history.jsonl):")
        echo(describe(changes))
    if root:
        run_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(run_dir / "config.toml", config.to_toml())
        record(run_dir, {"command": "train", "resumed_from_step": resumed_from, "changed": changes})
    log.start(mlc.STAGING_START)
    train_data, held_out, staging_seconds = stage_data(
        config, task, topology=topology, cache=bool(config.data.cache_dir)
    )
    log.end(mlc.STAGING_STOP, staging_duration=round(staging_seconds, 3))
    if config.train.augment:
        n_raw = train_data.shape[0]
        train_data = task.augment(train_data)
        echo(f"train.augment: {n_raw} training trajectories and their {len(task.symmetries)} symmetry images")
    log.event(mlc.TRAIN_SAMPLES, int(train_data.shape[0]))
    log.event(mlc.EVAL_SAMPLES, int(held_out.shape[0]))
    echo(
        f"{task.name}: {kind} model, {train_data.shape[0]} training / {held_out.shape[0]} held-out trajectories "
        f"({staging_seconds:.1f} s to stage), target horizon error {task.target:g}"
    )
    evaluate = make_evaluator(task, held_out)
    plain = _plain_error(evaluate, task)
    echo(f"plain coarse solver: horizon error {plain:.4g}")

    unroll, noise = config.train.unroll, config.train.noise

    def loss(m, batch, key):
        return unrolled_loss(m, batch, noise=noise, key=key if noise else None)

    evaluations = []

    def evaluate_logged(m):
        figures = evaluate(m)
        evaluations.append(figures["horizon_error"])
        return figures

    global_batch = config.train.batch_size * (topology.n_groups if topology else 1)

    def epochs(step):  # an MLPerf epoch: as many sampled windows as there are training trajectories
        return round(step * global_batch / train_data.shape[0], 6)

    def log_evaluation(step, figures):  # at once: a run that crashes later keeps it
        log.event(EVAL_ERROR, figures["horizon_error"], epoch_num=epochs(step), step_num=step)

    first = resumed_from or 0
    log.start(mlc.BLOCK_START, first_epoch_num=epochs(first), epoch_count=epochs(config.train.steps - first))
    result = fit(
        model,
        loss,
        train_data,
        steps=config.train.steps,
        batch_size=config.train.batch_size,
        window=unroll,
        optimizer=make_optimizer(config),
        seed=config.train.seed,
        run_dir=run_dir,
        checkpoint_every=config.train.checkpoint_every,
        log_every=config.train.log_every,
        evaluate=evaluate_logged,
        eval_every=config.train.eval_every,
        progress=progress,
        config=config.to_dict(),
        topology=topology,
        averager=averager,
        stop_when=(lambda f: f["horizon_error"] <= task.target) if config.train.stop_at_target else None,
        preempted=preempted,
        on_evaluation=log_evaluation,
    )
    final = evaluations[-1]
    reached = final <= task.target
    steps_done = int(result.state.step)
    log.end(mlc.BLOCK_STOP, first_epoch_num=epochs(first), step_num=steps_done)
    log.event(mlc.RUN_STOP, status=mlc.SUCCESS if reached else mlc.ABORTED, step_num=steps_done)
    wall = time.perf_counter() - began
    summary = {
        "name": config.name,
        "task": task.name,
        "kind": kind,
        "steps": int(result.state.step),
        "stopped_at_target": result.stopped_early,
        "horizon_error": {"model": final, "plain coarse solver": plain, "target": task.target},
        "reached_target": bool(reached),
        "improvement_over_plain": plain / final if final > 0 else float("inf"),
        "seconds": {
            "total": round(wall, 3),
            "data_staging": round(staging_seconds, 3),
            "fit": round(result.seconds, 3),
        },
        "environment": environment(topology),
        "run_dir": str(run_dir),
    }
    if averager is not None:
        stats = {"group": topology.group, **averager.stats()}
        gathered = topology.world_comm.gather(stats, root=0)
        if root:
            summary["averaging"] = {
                "every": config.distributed.every,
                "max_staleness": config.distributed.max_staleness,
                "wait_free": config.distributed.wait_free,
                "groups": [g for r, g in enumerate(gathered) if r % topology.group_size == 0],
            }
    if root:
        _atomic_write_text(run_dir / "train.json", json.dumps(summary, indent=2, default=str))
    log.close()
    echo(
        f"trained {summary['steps']} steps in {wall:.1f} s: horizon error {final:.4g} "
        f"({summary['improvement_over_plain']:.2f}x lower than the plain solver; target {task.target:g} "
        f"{'reached' if reached else 'NOT reached'})"
    )
    return summary


def _log_settings(log: MLLogger, config: RunConfig, task: Task, topology) -> None:
    """The MLPerf log's submission keys and settings. The values say what the run is:
    nnpde's own benchmark (division open, status research), not an MLCommons
    submission; the rules they are checked against: ``mllog_rules/nnpde_hpc_3.0.0.yaml``."""
    ranks = topology.world_size if topology is not None else 1
    log.event(mlc.SUBMISSION_BENCHMARK, f"nnpde_{task.name}")
    log.event(mlc.SUBMISSION_ORG, "nnpde (not an MLCommons submission)")
    log.event(mlc.SUBMISSION_DIVISION, mlc.OPEN)
    log.event(mlc.SUBMISSION_STATUS, mlc.RESEARCH)
    log.event(mlc.SUBMISSION_PLATFORM, f"{platform.node()}: {ranks} rank(s) x {jax.devices()[0].device_kind}")
    compilation_cache = jax.config.jax_compilation_cache_dir
    log.event(
        mlc.CACHE_CLEAR,
        not config.data.cache_dir and not compilation_cache,  # nothing on disk from an earlier run is reused
        data_cache=config.data.cache_dir or None,
        compilation_cache=compilation_cache,
        os_file_cache="not dropped",
    )
    log.event(mlc.SEED, config.train.seed, model_seed=config.model.seed)
    log.event(mlc.GLOBAL_BATCH_SIZE, config.train.batch_size * (topology.n_groups if topology else 1))
    log.event(mlc.OPT_NAME, mlc.ADAM)
    log.event(mlc.OPT_BASE_LR, config.train.learning_rate)
    log.event(mlc.OPT_LR_WARMUP_STEPS, config.train.warmup_steps)
    log.event(mlc.OPT_LR_DECAY_SCHEDULE, config.train.schedule)
    log.event(mlc.OPT_GRADIENT_CLIP_NORM, config.train.clip_norm)
    log.event(TARGET_EVAL_ERROR, task.target, metric="relative L2 error at the horizon, held-out mean")


def _check_checkpoints_fit(config: RunConfig, model) -> int | None:
    """The step the run resumes from (``None``: a new run), after checking that its
    checkpoints fit the model and optimiser of ``config`` (a ``ConfigError`` naming the
    first leaf that differs) and that one of them is intact (``CheckpointCorrupt``
    with the fix), before anything is written."""
    from ..hybrid._train import init_train_state
    from ._checkpoint import Checkpointer
    from ._run_files import restore_intact

    directories = [config.run_dir / "checkpoints", *sorted(config.run_dir.glob("group*/checkpoints"))]
    directories = [d for d in directories if d.is_dir()]
    if not directories:
        return None
    state, _ = init_train_state(model, make_optimizer(config), seed=config.train.seed)
    resumed = []
    for directory in directories:
        with Checkpointer(directory, read_only=True) as reader:
            if reader.latest_step() is None:
                continue
            try:  # a corrupt step is named and skipped when the run resumes; none intact stops here
                resumed.append(restore_intact(reader, state, quiet=True)[1])
            except ValueError as err:
                raise ConfigError(f"the run's checkpoints do not fit this configuration: {err}") from None
    return min(resumed, default=None)


def _plain_error(evaluate, task: Task) -> float:
    """The plain coarse solver's horizon error on the held-out data; a solver that is
    itself unstable there (a failed runtime check, or a non-finite error) is a
    ``ConfigError`` about ``dt``, told apart from a diverging model."""
    from ._training_run import solver_check

    try:
        plain = evaluate(task.baseline)["horizon_error"]
    except Exception as error:
        check = solver_check(error)
        if check is None:
            raise
        raise ConfigError(
            f"the plain coarse solver of {task.name} (no model) is unstable on the held-out data: {check} This is "
            "the solver, not a model. Fix: a smaller time step (problem.options.dt) or a finer/stabler scheme."
        ) from None
    if not np.isfinite(plain):
        raise ConfigError(
            f"the plain coarse solver of {task.name} (no model) gives a horizon error of {plain} on the held-out "
            "data: the solver itself blows up. Fix: a smaller time step (problem.options.dt)."
        )
    return plain


def restore_model(config: RunConfig, task: Task):
    """``(model, step)``: the model of ``config`` trained on ``task``, restored from the
    latest checkpoint in ``run_dir/checkpoints`` (read-only), and that step. A run
    directory without checkpoints is a ``ConfigError`` saying to train first."""
    from ..hybrid._train import combine, init_train_state
    from ._checkpoint import Checkpointer
    from ._run_files import restore_intact

    kind = config.model.kind or task.kinds[0]
    template = task.model(kind, seed=config.model.seed)
    state, static = init_train_state(template, make_optimizer(config), seed=config.train.seed)
    directory = config.run_dir / "checkpoints"
    if not directory.is_dir():
        raise ConfigError(
            f"no checkpoints in {directory}. Fix: train first (nnpde train CONFIG), or point out= at a trained run."
        )
    with Checkpointer(directory, read_only=True) as reader:
        if reader.latest_step() is None:
            raise ConfigError(f"no checkpoint in {directory}. Fix: train first (nnpde train CONFIG).")
        try:
            state, step = restore_intact(reader, state)
        except ValueError as err:  # the layout: another model or optimiser than the configuration's
            raise ConfigError(f"the run's checkpoints do not fit this configuration: {err}") from None
    return combine(state.params, static), step


def evaluate(config: RunConfig, *, echo=print) -> dict:
    """Evaluate the trained model of ``config`` on the held-out trajectories against
    the plain coarse solver; write ``evaluation.json`` and the PNG report to the run
    directory (fields beside the reference, error against time, energy spectra,
    training curves)."""
    from ..numerics._rollout import rollout
    from . import _report
    from ._training_run import Diverged, solver_check

    task = load_task(config)
    model, step = restore_model(config, task)
    _, held_out, _ = stage_data(config, task, split=False)  # on one rank: whole, or from the cache
    evaluator = make_evaluator(task, held_out)
    plain_errors = np.asarray(evaluator.errors(task.baseline))
    try:
        model_errors = np.asarray(evaluator.errors(model))
    except Exception as error:
        check = solver_check(error)
        if check is None:
            raise
        model_errors = np.full(task.horizon, np.nan)
    if not np.all(np.isfinite(model_errors)):
        first_bad = int(np.argmin(np.isfinite(model_errors)))
        raise Diverged(
            f"the trained model of {config.run_dir} (checkpoint step {step}) diverges on the held-out trajectories: "
            f"its error is not finite from rollout step {first_bad + 1} on (the plain solver's stays finite, "
            f"{plain_errors[-1]:.4g} at the horizon), so there is no result to report; nothing was written. Fix: "
            "train again at a lower learning rate (nnpde train RUN --set train.learning_rate=...), from a finite "
            "earlier checkpoint or a new run directory."
        )
    first = jnp.asarray(held_out[0, 0])
    model_traj = np.asarray(eqx.filter_jit(lambda m, u: rollout(m, u, task.horizon))(model, first))
    plain_traj = np.asarray(eqx.filter_jit(lambda m, u: rollout(m, u, task.horizon))(task.baseline, first))
    run_dir = config.run_dir
    files = _report.write_report(
        run_dir,
        task=task,
        reference=held_out[0, 1:],
        plain=plain_traj,
        model=model_traj,
        model_errors=model_errors,
        plain_errors=plain_errors,
        metrics_path=run_dir / "metrics.jsonl",
    )
    summary = {
        "task": task.name,
        "checkpoint_step": step,
        "horizon": task.horizon,
        "dt": task.dt,
        "target": task.target,
        "horizon_error": {"model": float(model_errors[-1]), "plain coarse solver": float(plain_errors[-1])},
        "reached_target": bool(model_errors[-1] <= task.target),
        "improvement_over_plain": float(plain_errors[-1] / model_errors[-1]),
        "error_by_step": {"model": model_errors.tolist(), "plain coarse solver": plain_errors.tolist()},
        "held_out_trajectories": int(held_out.shape[0]),
        "files": files,
    }
    _atomic_write_text(run_dir / "evaluation.json", json.dumps(summary, indent=2))
    echo(
        f"{task.name} (checkpoint step {step}): horizon error {model_errors[-1]:.4g} vs plain "
        f"{plain_errors[-1]:.4g} ({summary['improvement_over_plain']:.2f}x lower); target {task.target:g} "
        f"{'reached' if summary['reached_target'] else 'NOT reached'}"
    )
    echo("wrote " + ", ".join([str(run_dir / "evaluation.json"), *files.values()]))
    return summary


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
