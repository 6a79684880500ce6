"""The ``nnpde`` console command.

```
nnpde train     CONFIG [--set key=value ...]   train (resumes), then evaluate and write the report
nnpde evaluate  CONFIG [--set ...]             evaluate the trained model: plots + evaluation.json
nnpde generate  CONFIG [--set ...]             stage the reference data into data.cache_dir
nnpde benchmark CONFIG [--ranks N] [--set ...] time-to-train over several seeds (MLPerf logs)
nnpde validate  [--suite MODULE] [--only NAME] the validation suite against published references
nnpde simulate  [--problem MODULE] [--set ...] run a problem's plain simulation
nnpde detect    CONFIG [--set ...]             fit, threshold and score anomaly detectors
```

``CONFIG`` is a TOML file (``nnpde.runs._config``; ``scripts/configs/`` has ours) or a run
directory holding one. It names its problem by import path, so a user's own problem
module works like ours. Each command needs one entry point of the problem module:
``task`` (train, evaluate, generate, benchmark), ``simulation`` (simulate),
``monitoring`` (detect) or ``CASES`` (validate), as ``problems/__init__.py`` describes (``nnpde.runs._problem``). The
resolved configuration is printed first and saved with the results. ``train`` and
``evaluate`` run under ``mpirun`` too (``distributed.groups``). A configuration that
cannot run is refused before any work, with the key and the fix.

Exit codes: 0 done; 2 configuration refused (nothing written); 3 trained, but the
target was not reached (``train.stop_at_target``) or a benchmark is incomplete; 4 the
model diverged (a non-finite loss, gradient, parameter or result; nothing non-finite
is written or reported); 5 training stopped by ``SIGTERM`` or ``SIGUSR1`` (a batch
system's time limit or preemption), a checkpoint written: the same command resumes;
1 any other error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from ._config import parse_overrides

DEFAULT_PROBLEM = "problems.heat_board"
DEFAULT_CONFIG = "scripts/configs/burgers.toml"
DEFAULT_SUITE = "problems.validation"


def _simulate(args) -> int:
    import jax

    # Simulations run in float64 unless asked otherwise: implicit solves of stiff,
    # high-contrast problems need it (float32 CG stagnates near eps * condition number).
    jax.config.update("jax_enable_x64", not args.float32)
    from ._problem import build, import_problem
    from ._simulation import Simulation, run_simulation

    module = import_problem(args.problem, "simulation", key="--problem")
    sim = build(module, "simulation", parse_overrides(args.set), key="--set", returns=Simulation)
    out = args.out or f"runs/{sim.name}"
    print(f"nnpde simulate: {args.problem}\n{sim.description}")
    print("settings: " + json.dumps(sim.attrs, sort_keys=True))
    summary = run_simulation(sim, out, progress=not args.no_progress)
    print(f"{summary['status']}: {summary['steps']} steps in {summary['wall_seconds']:.1f} s")
    for channel, stats in summary["final"].items():
        print(f"final {channel}: min {stats['min']:.6g}, max {stats['max']:.6g}")
    print(f"wrote {summary['files']['netcdf']}, {summary['files']['plot']} and {out}/summary.json")
    return 0 if summary["status"] == "completed" else 1


def _config(args, *, ranks: int | None = None, writes_run: bool = False):
    """The validated configuration, the task built from it (both before any work).
    ``ranks``: the MPI ranks the run will have, to check ``distributed.domain``
    against (``None``: not checked, the run does not split the reference).
    ``writes_run``: the command writes into the run directory (``out``), so it must be
    writable too (``data.cache_dir`` always must)."""
    from ._config import check_domain, check_writable, load_config
    from ._run import load_task, set_precision

    config = load_config(args.config, args.set)
    check_writable(config, out=writes_run)
    set_precision(config)
    task = load_task(config)
    if ranks is not None:
        check_domain(config, task, ranks)
    return config, task


def _is_root() -> bool:
    from ..distributed import launched_by_mpi

    if not launched_by_mpi():
        return True
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank() == 0


def _print_config(config, command: str) -> None:
    if _is_root():
        print(f"nnpde {command}: resolved configuration\n{config.to_toml()}", flush=True)


def _generate(args) -> int:
    """Stage the reference data into the cache. Under ``mpirun`` with
    ``distributed.domain`` the ranks run the reference solver together, its grid split
    over them; without it, world rank 0 generates and the others read the cache."""
    from ..distributed import abort_on_error
    from ._run import stage_data, world_size

    config, task = _config(args, ranks=world_size())  # the same refusal on every rank: no abort needed
    _print_config(config, "generate")
    if not config.data.cache_dir:
        raise SystemExit("nnpde: data.cache_dir is empty, so generated data would not be kept. Fix: set one.")
    with abort_on_error():
        topology = _world_topology() if world_size() > 1 else None
        train, held_out, seconds = stage_data(config, task, topology=topology)
    split = f", reference split over ranks {config.distributed.domain}" if config.distributed.domain else ""
    _echo(
        f"{task.name}: {train.shape[0]} training and {held_out.shape[0]} held-out trajectories of "
        f"{train.shape[1] - 1} steps, state {train.shape[2:]}, in {config.data.cache_dir} ({seconds:.1f} s{split})"
    )
    return 0


def _world_topology():
    """One group of all the ranks (for staging data under ``mpirun``)."""
    import jax

    from ..distributed import GroupTopology

    return GroupTopology.create(groups=1, devices=jax.devices()[:1])


def _train(args) -> int:
    from ..distributed import abort_on_error
    from ._run import check_launch, evaluate, train, world_size
    from ._signals import StopSignals
    from ._training_run import Preempted

    # SIGTERM / SIGUSR1 (a batch system's "stop soon"): checkpoint, exit 5, resume on a rerun.
    with StopSignals() as signals:
        check_launch()
        config, _ = _config(args, ranks=world_size(), writes_run=True)  # the same refusal on every rank
        _print_config(config, "train")
        _print_rank(world_size())
        with abort_on_error():
            try:
                summary = train(config, progress=not args.no_progress, mllog=args.mllog, echo=_echo, preempted=signals)
            except Preempted as stop:  # on every rank at the same step: not a failure to abort on
                _echo(f"nnpde train: {stop}")
                return 5
    with abort_on_error():
        if args.evaluate and _is_root():
            evaluate(config)
    if _is_root():
        print(f"wrote {config.run_dir / 'train.json'}")
    return 0 if (summary["reached_target"] or not config.train.stop_at_target) else 3


def _print_rank(ranks: int) -> None:
    """Under MPI, one line from every rank: where it runs and on what (its own log file
    on a cluster, where a job script gives each rank one)."""
    if ranks > 1:
        import jax
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
        print(f"rank {rank} of {ranks} on {platform.node()} (pid {os.getpid()}), devices {jax.devices()}", flush=True)


def _echo(*text):
    if _is_root():
        print(*text, flush=True)


def _evaluate(args) -> int:
    from ._run import evaluate

    config, _ = _config(args, writes_run=True)
    _print_config(config, "evaluate")
    evaluate(config)
    return 0


def _benchmark(args) -> int:
    from ._benchmark import time_to_train

    config, task = _config(args, ranks=args.ranks)
    _print_config(config, "benchmark")
    report = time_to_train(args.config, config, task, ranks=args.ranks, overrides=args.set, out=args.out)
    return 0 if report["complete"] else 3


def _validate(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    from ._problem import import_problem
    from ._validation import run_suite

    suite = import_problem(args.suite, "CASES", key="--suite")
    report = run_suite(suite, out=args.out, only=args.only, full=args.full)
    return 0 if report["passed"] else 1


def _detect(args) -> int:
    import jax

    from ._config import ConfigError, _unwritable
    from ._detect import MonitoringTask, load_detect_config, run_detection
    from ._problem import build, import_problem

    config = load_detect_config(args.config, parse_overrides(args.set))
    problem = _unwritable(Path(config["out"]))
    if problem:  # before any series is simulated or any detector fitted
        raise ConfigError(
            f"out = {config['out']!r} cannot be written: {problem}. Fix: set out to a directory you can write "
            "(--set out=...)."
        )
    jax.config.update("jax_enable_x64", config["precision"] == "float64")
    module = import_problem(config["problem"]["module"], "monitoring", key="problem.module")
    task = build(module, "monitoring", config["problem"]["options"], key="problem.options", returns=MonitoringTask)
    print(f"nnpde detect: {task.name}\n{task.description}\nconfiguration: {json.dumps(config)}", flush=True)
    run_detection(task, config)
    return 0


def _add_config_args(parser, *, config_default: str | None = DEFAULT_CONFIG):
    parser.add_argument(
        "config",
        nargs="?" if config_default else None,
        default=config_default,
        help=f"TOML configuration, or a run directory holding config.toml (default {config_default})",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a key, value read as TOML (e.g. --set train.steps=200)",
    )


def main(argv: list[str] | None = None) -> int:
    from .._version import __version__
    from ._checkpoint import CheckpointCorrupt
    from ._config import ConfigError

    parser = argparse.ArgumentParser(prog="nnpde", description="Hybrid neural-network + PDE modelling in JAX.")
    parser.add_argument("--version", action="version", version=f"nnpde {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a configured hybrid model (resumes), evaluate, write the report")
    _add_config_args(train)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--no-evaluate", dest="evaluate", action="store_false", help="skip the final report")
    train.add_argument("--mllog", default=None, help="write an MLPerf log (mlperf-logging) to this path")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a trained run: plots and evaluation.json")
    _add_config_args(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    generate = commands.add_parser("generate", help="generate (or check) the reference data of a configuration")
    _add_config_args(generate)
    generate.set_defaults(handler=_generate)

    bench = commands.add_parser("benchmark", help="time-to-train to the task's target over several seeds")
    _add_config_args(bench)
    bench.add_argument("--ranks", type=int, default=1, help="MPI ranks per run (mpirun -n RANKS); 1: no MPI")
    bench.add_argument("--out", default=None, help="benchmark folder (default runs/benchmark/<name>-<ranks>r)")
    bench.set_defaults(handler=_benchmark)

    validate = commands.add_parser("validate", help="run the validation suite against published references")
    validate.add_argument(
        "--suite", default=DEFAULT_SUITE, help=f"module of validation cases (default {DEFAULT_SUITE})"
    )
    validate.add_argument("--only", action="append", default=None, metavar="NAME", help="run only these cases")
    validate.add_argument("--full", action="store_true", help="the published resolutions (slow) instead of quick ones")
    validate.add_argument("--out", default="runs/validation", help="report folder (default runs/validation)")
    validate.set_defaults(handler=_validate)

    sim = commands.add_parser("simulate", help="run a problem's simulation; write netCDF, a plot and a summary")
    sim.add_argument(
        "--problem", default=DEFAULT_PROBLEM, help=f"import path of the problem (default {DEFAULT_PROBLEM})"
    )
    sim.add_argument("--out", default=None, help="output folder (default runs/<name>)")
    sim.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a simulation option")
    sim.add_argument("--no-progress", action="store_true", help="no progress bar")
    sim.add_argument("--float32", action="store_true", help="single precision (default: float64)")
    sim.set_defaults(handler=_simulate)

    detect = commands.add_parser("detect", help="fit, threshold and score anomaly detectors; report and plots")
    detect.add_argument("config", help="TOML configuration (e.g. scripts/configs/thermal_monitoring.toml)")
    detect.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a key (value read as TOML)"
    )
    detect.set_defaults(handler=_detect)

    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as err:
        print(f"nnpde {args.command}: configuration refused: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # training or the model diverged (Diverged), or no healthy group
        print(f"nnpde {args.command}: {err}", file=sys.stderr)
        return 4
    except CheckpointCorrupt as err:  # no intact checkpoint to fall back to: the message has the fix
        print(f"nnpde {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
