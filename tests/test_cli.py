"""The ``nnpde`` command: every subcommand on a tiny problem, and malformed configs
refused before any work with the key and the fix."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from nnpde.runs._config import ConfigError, check_layout, load_config, parse_override
from nnpde.runs._mllog import MLLogger, check_mllog, read_mllog
from tests._mpirun import TEST_XLA_FLAGS

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "problem.module=tests._tiny_task",
    "problem.options={}",
    "data.train_samples=4",
    "data.eval_samples=2",
    "train.steps=4",
    "train.batch_size=2",
    "train.unroll=2",
    "train.eval_every=2",
    "train.checkpoint_every=2",
    "train.log_every=1",
]


# One persistent compilation cache for this module's subprocesses: the runs differ in
# seeds and step counts, not in what they compile, so only the first one compiles.
_COMPILE_CACHE = tempfile.mkdtemp(prefix="nnpde-cli-jit-")


def _nnpde(*args, mpi_ranks=None, timeout=300):
    """Run the console command in a fresh process (as a user would); CPU, one device
    (the test processes' XLA flags without the suite's 4 host devices: a run compiles
    most of its time, 27 -> 18 CPU s with them)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": _COMPILE_CACHE,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2",
        "XLA_FLAGS": TEST_XLA_FLAGS,
    }
    command = [sys.executable, "-m", "nnpde", *args]
    if mpi_ranks:
        command = [str(Path(sys.executable).parent / "mpirun"), "-n", str(mpi_ranks), *command]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _sets(*pairs):
    return [x for p in pairs for x in ("--set", p)]


# ---- configuration: refused before any work ---------------------------------------


def _write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_default_config_and_overrides_resolve(tmp_path):
    config = load_config(ROOT / "scripts/configs/burgers.toml", ["train.steps=7", "model.kind=closure", 'out="x"'])
    assert config.train.steps == 7 and config.model.kind == "closure" and config.out == "x"
    assert config.problem.options == {"hidden": 32, "depth": 4}
    # The saved resolved config reads back to the same configuration.
    again = load_config(_write(tmp_path, config.to_toml()))
    assert again == config


def test_problem_options_override_by_dotted_key():
    config = load_config(None, ["problem.options.hidden=8"])
    assert config.problem.options == {"hidden": 8}
    assert parse_override("model.kind=closure") == ("model.kind", "closure")
    assert parse_override("train.learning_rate=1e-3") == ("train.learning_rate", 1e-3)


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = _write(tmp_path, "[train]\nstesp = 10\n")
    with pytest.raises(ConfigError, match=r"unknown key train\.stesp.*Did you mean train\.steps"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"unknown key trian"):
        load_config(None, ["trian.steps=3"])


def test_wrong_type_names_key_value_and_fix(tmp_path):
    path = _write(tmp_path, '[train]\nsteps = "100"\n')
    with pytest.raises(ConfigError, match=r"train\.steps must be an integer, got '100'.*without quotes"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"train\.stop_at_target must be true or false"):
        load_config(None, ["train.stop_at_target=1"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.learning_rate=-0.1", r"train\.learning_rate must be a positive finite number, got -0\.1"),
        ("train.batch_size=0", r"train\.batch_size must be a positive integer, got 0"),
        ("precision=float16", r"precision must be one of \('float32', 'float64'\)"),
        ("data.eval_seed=0", r"eval_seed equals data\.train_seed"),
        ("distributed.max_staleness=9", r"would deadlock"),
    ],
)
def test_out_of_range_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_layout_that_does_not_split_is_refused():
    config = load_config(None, ["distributed.groups=2", "train.batch_size=6"])
    with pytest.raises(ConfigError, match=r"groups = 2 does not divide the 3 MPI ranks"):
        check_layout(config, 3)
    with pytest.raises(ConfigError, match=r"batch_size = 6 does not split over the 4 replicas"):
        check_layout(config, 8)
    check_layout(config, 6)  # 3 ranks per group, batch 6: fits


def test_domain_that_does_not_split_the_reference_grid_is_refused():
    import dataclasses

    from nnpde.runs._config import check_domain
    from tests import _tiny_task

    task = _tiny_task.task()
    assert task.reference_domain[0].shape == (256,)
    config = load_config(None, ["distributed.domain=[3]"])
    with pytest.raises(
        ConfigError,
        match=r"domain = \[3\] does not split the reference grid \(256\) over the ranks: "
        r"axis 0 has 256 cells, not a multiple of 3. Fix: .*one of \[1\]",
    ):
        check_domain(config, task, 3)
    check_domain(load_config(None, ["distributed.domain=[4]"]), task, 4)  # 64 cells a rank: fits
    check_domain(load_config(None, []), task, 3)  # no domain: nothing to split
    whole_only = dataclasses.replace(task, reference_domain=None)
    with pytest.raises(ConfigError, match=r"cannot run split over ranks.*Fix: remove distributed.domain"):
        check_domain(load_config(None, ["distributed.domain=[2]"]), whole_only, 2)


@pytest.fixture
def keep_x64():
    """The CLI sets the precision of its configuration; restore the suite's float64."""
    import jax

    yield
    jax.config.update("jax_enable_x64", True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["problem.module=problems.no_such_problem"], "problem.module = 'problems.no_such_problem' cannot be imported"),
        (["problem.module=problems.heat_board"], "problem.module = 'problems.heat_board' has no task(**options)"),
        (["problem.options.dt=-0.1"], "dt must be a positive finite time step, got -0.1"),
        (["problem.options.dt=1.0"], "exceeds the coarse solver's stable step"),
        (["problem.options.widht=3"], "unknown key problem.options.widht"),
        (["model.kind=transformer"], "model.kind = 'transformer' is not a model of hybrid_burgers"),
        (["train.unroll=64"], "train.unroll = 64 exceeds the task's horizon"),
        (["train.augment=true"], "declares no symmetries to augment its data with"),
        (["train.augment=1"], "train.augment"),
        (["distributed.groups=2"], "needs that many MPI ranks"),
        (["distributed.domain=[2]"], "domain = [2] splits the reference grid over 2 ranks, but the run has 1"),
        (["distributed.domain=[1, 1]"], "must give a positive rank count for each of the reference grid's 1 axes"),
        # every numeric option finite and in range, named with the override that gave it
        (["train.noise=inf"], "--set train.noise=inf: train.noise must be zero or more (finite), got inf. Fix"),
        (["train.clip_norm=nan"], "--set train.clip_norm=nan: train.clip_norm must be a positive finite number"),
        (["train.warmup_steps=600"], "train.warmup_steps = 600 is not shorter than the training (train.steps = 600)"),
        (["train.seed=18446744073709551616"], "train.seed must be an integer from 0 to 2**32 - 1"),
        (["model.seed=-1"], "--set model.seed=-1: model.seed must be an integer from 0 to 2**32 - 1"),
        (["benchmark.seeds=[0, 4294967296]"], "every seed of benchmark.seeds must be an integer from 0"),
        (["trian.steps=3"], "--set trian.steps=3: unknown key trian"),
    ],
)
def test_cli_refuses_bad_configs_before_any_work(tmp_path, capsys, keep_x64, overrides, message):
    from nnpde.runs._cli import main

    out = tmp_path / "run"
    code = main(["train", *_sets(*overrides, f'out="{out}"', f'data.cache_dir="{tmp_path / "data"}"')])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert not out.exists() and not (tmp_path / "data").exists(), f"{overrides}: work was started before the refusal"


def test_paths_that_cannot_be_written_are_refused_before_any_work(tmp_path, capsys, keep_x64):
    """An ``out`` or ``data.cache_dir`` through a file (or without write permission) is
    refused with exit 2, the key, the value and the fix; nothing is created."""
    from nnpde.runs._cli import main

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    cases = [
        ("out", f'out="{blocker}"', f'data.cache_dir="{tmp_path / "data"}"'),
        ("data.cache_dir", f'out="{tmp_path / "run"}"', f'data.cache_dir="{blocker / "data"}"'),
    ]
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        cases.append(("data.cache_dir", f'out="{tmp_path / "run"}"', f'data.cache_dir="{locked / "data"}"'))
    for key, *overrides in cases:
        for command in ("train", "generate"):
            if command == "generate" and key == "out":
                continue
            code = main([command, *_sets(*TINY, *overrides)])
            err = capsys.readouterr().err
            assert code == 2, err
            assert f"configuration refused: {key} = " in err and "cannot be written" in err and "Fix:" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a_file", *(["locked"] if len(cases) > 2 else [])])


def test_problem_entry_points_are_checked_by_name(monkeypatch):
    """The entry point a command needs: a module without it is refused with what it
    offers instead, and a factory that returns another type is refused by name."""
    import types

    from nnpde.runs._problem import build, import_problem
    from nnpde.runs._simulation import Simulation

    module = types.ModuleType("user_problem")
    module.simulation = lambda resolution=8: (resolution,)  # not a Simulation
    module.CASES = {}
    monkeypatch.setitem(sys.modules, "user_problem", module)
    with pytest.raises(
        ConfigError, match=r"'user_problem' has no task\(\*\*options\).*offers simulation .*CASES .*Fix"
    ):
        import_problem("user_problem", "task", key="problem.module")
    found = import_problem("user_problem", "simulation", key="--problem")
    with pytest.raises(ConfigError, match=r"user_problem.simulation\(...\) returned tuple, not an nnpde.Simulation"):
        build(found, "simulation", {}, key="--set", returns=Simulation)
    with pytest.raises(ConfigError, match=r"unknown option size \(--set\) for user_problem.simulation"):
        build(found, "simulation", {"size": 3}, key="--set", returns=Simulation)


# ---- subcommands on a tiny problem ----------------------------------------------


def test_generate_train_evaluate_resume(tmp_path, capsys, keep_x64):
    from nnpde.runs._cli import main

    out, cache = tmp_path / "run", tmp_path / "data"
    common = _sets(*TINY, f'out="{out}"', f'data.cache_dir="{cache}"')
    assert main(["generate", *common]) == 0
    assert "4 training and 2 held-out trajectories of 4 steps" in capsys.readouterr().out
    assert len(list(cache.glob("*.nc"))) == 2

    # Training runs as a user runs it: the console command in its own process.
    trained = _nnpde("train", *common, "--no-progress")
    assert trained.returncode == 0, trained.stderr
    # Training then evaluation (a checkpoint restored read-only) prints no library
    # warning a user cannot act on (orbax's notices about its read-only mode).
    assert "WARNING" not in trained.stderr and "read only" not in trained.stderr, trained.stderr
    assert "resolved configuration" in trained.stdout and 'module = "tests._tiny_task"' in trained.stdout
    summary = json.loads((out / "train.json").read_text())
    assert summary["steps"] == 4 and summary["task"] == "tiny_burgers"
    for name in ("config.toml", "evaluation.json", "fields.png", "error.png", "spectra.png", "training.png"):
        assert (out / name).stat().st_size > 0, name
    evaluation = json.loads((out / "evaluation.json").read_text())
    # The report's horizon error is the trained model's, as logged at the end of training.
    assert evaluation["horizon_error"]["model"] == pytest.approx(summary["horizon_error"]["model"], rel=1e-5)
    assert len(evaluation["error_by_step"]["model"]) == 4
    # Training moved the model off the plain solver (zero-initialised correction).
    assert evaluation["horizon_error"]["model"] != evaluation["horizon_error"]["plain coarse solver"]

    # The saved config repeats the run; more steps resume from the checkpoint at step 4.
    assert main(["train", str(out), "--set", "train.steps=6", "--no-progress", "--no-evaluate"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6 and steps.count(1) == 1

    assert main(["evaluate", str(out)]) == 0
    assert json.loads((out / "evaluation.json").read_text())["checkpoint_step"] == 6

    # The same steps, by the public names a study script uses on a trained run.
    import jax

    import nnpde

    config = nnpde.load_config(out / "config.toml")
    nnpde.set_precision(config)
    assert not jax.config.jax_enable_x64  # the run's float32
    task = nnpde.load_task(config)
    train, held_out, _ = nnpde.stage_data(config, task, split=False)
    assert train.shape[:2] == (4, 5) and held_out.shape[:2] == (2, 5)  # cached: 4 + 2 trajectories, 4 steps
    model, step = nnpde.restore_model(config, task)
    assert step == 6 and isinstance(model, nnpde.CorrectedStepper)
    assert set(nnpde.environment()) >= {"devices", "software", "parallel"}


def test_trimmed_mean_drops_fastest_and_slowest():
    from nnpde.runs._benchmark import trimmed_mean

    assert trimmed_mean([5.0, 1.0, 3.0, 100.0, 4.0]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="at least 3"):
        trimmed_mean([1.0, 2.0])


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    """``nnpde benchmark`` on the tiny task, 3 seeds, run once for the tests below."""
    out = tmp_path_factory.mktemp("bench") / "bench"
    result = _nnpde(
        "benchmark",
        "--out",
        str(out),
        *_sets(*TINY, "benchmark.seeds=[0, 1, 2]", "benchmark.max_steps=4", "benchmark.eval_every=2"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_benchmark_time_to_train_single_process(tiny_benchmark):
    out = tiny_benchmark
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and len(report["runs"]) == 3
    times = sorted(r["time_to_train_seconds"] for r in report["runs"])
    assert report["time_to_train_seconds"]["trimmed_mean"] == pytest.approx(times[1])
    assert all(r["steps"] == 2 for r in report["runs"])  # the target is met at the first evaluation
    events = read_mllog(out / "seed1" / "mllog.txt")
    keys = [e["key"] for e in events]
    for key in ("init_stop", "run_start", "staging_stop", "eval_error", "run_stop", "target_eval_error", "seed"):
        assert key in keys, keys
    assert keys.index("init_stop") < keys.index("run_start") < keys.index("staging_start")
    assert keys.index("staging_stop") < keys.index("eval_error") < keys.index("run_stop")
    assert events[keys.index("run_stop")]["metadata"]["status"] == "success"
    assert events[keys.index("eval_error")]["metadata"]["step_num"] == 2
    assert events[keys.index("run_stop")]["metadata"]["file"] == "nnpde/runs/_run.py"  # the call site
    # the time to train is the result summarizer's: run_stop - run_start
    stop, start = events[keys.index("run_stop")]["time_ms"], events[keys.index("run_start")]["time_ms"]
    assert report["runs"][1]["time_to_train_seconds"] == pytest.approx((stop - start) / 1000)
    disclosure = (out / "disclosure.md").read_text()
    for needle in ("cores:", "software:", "precision: float32", "ranks: 1; groups: 1", "seeds: [0, 1, 2]", "derived"):
        assert needle in disclosure, needle


def test_benchmark_mllog_passes_the_mlcommons_checker(tiny_benchmark):
    """Every seed's log passes MLCommons' compliance checker (mlperf-logging, HPC 3.0.0
    rules as adapted in nnpde/runs/mllog_rules), run here as a user would, and the
    benchmark reports the same verdict."""
    report = json.loads((tiny_benchmark / "report.json").read_text())
    assert report["mllog_compliance"]["passed"], report["runs"]
    for seed in (0, 1, 2):
        passed, output = check_mllog(tiny_benchmark / f"seed{seed}" / "mllog.txt")
        assert passed and "SUCCESS" in output, output
    assert "compliance checker" in (tiny_benchmark / "disclosure.md").read_text()


def _drop_or_change(lines: list[str], key: str, change: dict | None) -> list[str]:
    """``lines`` without the event ``key`` (``change=None``) or with its fields changed."""
    kept = []
    for line in lines:
        event = json.loads(line.removeprefix(":::MLLOG "))
        if event["key"] == key:
            if change is None:
                continue
            line = ":::MLLOG " + json.dumps({**event, **change})
        kept.append(line)
    return kept


@pytest.mark.parametrize(
    "key, change, rule",
    [
        ("run_stop", None, "Required EXACTLY_ONE occurrence of 'run_stop' but found 0"),
        ("target_eval_error", {"value": 1e-9}, "Failed checks for eval_error"),  # the target missed
        ("submission_benchmark", {"value": "cosmoflow"}, "startswith('nnpde_')"),
        ("init_stop", None, "s['init_stopped'] == True"),  # run_start before init has ended
    ],
)
def test_mllog_checker_fails_a_broken_log(tiny_benchmark, tmp_path, key, change, rule):
    """The checker is not a formality: seed 1's log with one event dropped or changed fails,
    naming the rule."""
    lines = (tiny_benchmark / "seed1" / "mllog.txt").read_text().splitlines()
    broken = tmp_path / "mllog.txt"
    broken.write_text("\n".join(_drop_or_change(lines, key, change)) + "\n")
    passed, output = check_mllog(broken)
    assert not passed and "FAILED" in output and rule in output, output


def test_mllog_lines_reach_the_disk_at_once_and_other_ranks_write_nothing(tmp_path):
    """A crashed run keeps its log: each line is on disk before the logger is closed; a
    logger on another rank (``enabled=False``) writes nothing."""
    log = MLLogger(tmp_path / "run" / "mllog.txt")
    log.event("seed", 3, model_seed=4)
    events = read_mllog(tmp_path / "run" / "mllog.txt")  # not closed: what a crash leaves
    assert [(e["key"], e["value"], e["metadata"]["model_seed"]) for e in events] == [("seed", 3, 4)]
    assert events[0]["event_type"] == "POINT_IN_TIME"
    log.close()
    MLLogger(tmp_path / "other" / "mllog.txt", enabled=False).event("seed", 3)
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("command", ["train", "generate"])
def test_config_refused_under_mpirun_exits_cleanly_on_every_rank(tmp_path, command):
    """Under mpirun a malformed config (here a reference grid that does not split over
    the 2 ranks) is refused by every rank before any work: exit 2 with the key and the
    fix, no MPI_Abort and no traceback."""
    result = _nnpde(
        command,
        *_sets(*TINY, f'out="{tmp_path / "run"}"', f'data.cache_dir="{tmp_path / "data"}"', "distributed.domain=[3]"),
        mpi_ranks=2,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("configuration refused: distributed.domain = [3]") == 2, result.stderr
    assert "Fix:" in result.stderr
    assert "MPI_Abort" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_train_under_mpirun_with_two_groups(tmp_path):
    """The same command under mpirun: 2 ranks in 2 groups, averaged asynchronously; a
    target no model can reach is reported as missed (exit 3), not as a success. The
    reference data are staged with the fine solver's grid split over the two ranks
    (``distributed.domain``) and equal the one-process reference."""
    import numpy as np
    import xarray as xr

    from tests import _tiny_task

    out, cache = tmp_path / "run", tmp_path / "data"
    result = _nnpde(
        "train",
        *_sets(
            *TINY,
            f'out="{out}"',
            f'data.cache_dir="{cache}"',
            "distributed.domain=[2]",
            'precision="float64"',  # the data are compared with this process's float64 reference
            "distributed.groups=2",
            "distributed.every=1",
            "distributed.max_staleness=1",
            "problem.options.target=1e-9",
            "train.stop_at_target=true",
        ),
        "--no-progress",
        "--no-evaluate",
        "--mllog",
        str(out / "mllog.txt"),
        mpi_ranks=2,
        timeout=600,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.count("resolved configuration") == 1  # printed by rank 0 only
    summary = json.loads((out / "train.json").read_text())
    assert summary["environment"]["parallel"]["groups"] == 2 and summary["environment"]["parallel"]["ranks"] == 2
    assert {g["group"] for g in summary["averaging"]["groups"]} == {0, 1}
    assert summary["steps"] == 4 and not summary["reached_target"]
    assert (out / "checkpoints").is_dir() and (out / "group1" / "metrics.jsonl").is_file()
    stop = [e for e in read_mllog(out / "mllog.txt") if e["key"] == "run_stop"]
    assert len(stop) == 1 and stop[0]["metadata"]["status"] == "aborted"
    passed, output = check_mllog(out / "mllog.txt")  # a missed target is no result
    assert not passed and "Failed checks for eval_error" in output, output
    # the split-domain data against the one-process reference
    files = sorted(cache.glob("*.nc"))
    assert len(files) == 2, files
    task = _tiny_task.task()
    for seed, n in ((0, 4), (1000, 2)):
        datasets = [xr.load_dataset(f) for f in files]
        staged = [ds for ds in datasets if json.loads(ds.attrs["nnpde_cache_config"])["seed"] == seed]
        assert len(staged) == 1
        whole = np.asarray(task.reference(seed, n, task.horizon))[:, :, 0]
        assert staged[0]["u"].shape == whole.shape
        assert np.max(np.abs(staged[0]["u"].values - whole)) < 1e-13 * np.max(np.abs(whole))


def test_a_diverged_run_under_mpirun_exits_non_zero_and_reports_no_result(tmp_path):
    """Two groups trained at an absurd learning rate: the averaged model's evaluation is
    not finite, so the run stops with the reason and exit code 4 on every rank; no
    train.json or evaluation.json reports a NaN as a finished run."""
    out = tmp_path / "run"
    result = _nnpde(
        "train",
        *_sets(
            *TINY,
            f'out="{out}"',
            f'data.cache_dir="{tmp_path / "data"}"',
            "model.kind=emulator",
            "train.learning_rate=1e6",
            "distributed.groups=2",
        ),
        "--no-progress",
        mpi_ranks=2,
        timeout=600,
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert "diverged" in result.stderr and "Fix: lower train.learning_rate" in result.stderr, result.stderr
    assert "trained 4 steps" not in result.stdout
    assert not (out / "train.json").exists() and not (out / "evaluation.json").exists()


def test_validate_runs_a_case_and_writes_the_report(tmp_path):
    import problems.validation
    from nnpde.runs._validation import run_suite

    report = run_suite(problems.validation, out=tmp_path, only=["taylor_green"])
    (case,) = report["cases"]
    assert report["passed"] and case["passed"] and case["measured"]["order"] >= 1.9
    assert json.loads((tmp_path / "validation.json").read_text())["cases"][0]["name"] == "taylor_green"
    assert "| taylor_green | yes |" in (tmp_path / "validation.md").read_text()
    with pytest.raises(SystemExit, match=r"unknown case\(s\) \['no_such_case'\]"):
        run_suite(problems.validation, out=tmp_path, only=["no_such_case"])


def test_set_overrides_read_literals_and_refuse_a_pair_without_a_value():
    import nnpde

    assert nnpde.parse_overrides(["a=1", "b='busy'", "c=hello", "d=[1, 2]", " e = 0.5"]) == {
        "a": 1,
        "b": "busy",
        "c": "hello",
        "d": [1, 2],
        "e": 0.5,
    }
    with pytest.raises(SystemExit, match=r"sweep: --set expects key=value, got 'steps'"):
        nnpde.parse_overrides(["steps"], prog="sweep")
