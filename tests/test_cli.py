"""The ``nnpde`` command: every subcommand on a tiny problem, and malformed configs
refused before any work with the key and the fix."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnpde._config import ConfigError, check_layout, load_config, parse_override
from nnpde._mllog import read_mllog

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


def _nnpde(*args, mpi_ranks=None, timeout=300):
    """Run the console command in a fresh process (as a user would); CPU, one device."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    command = [sys.executable, "-m", "nnpde._cli", *args]
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
        (["problem.options.dt=-0.1"], "dt must be a positive finite time step, got -0.1"),
        (["problem.options.dt=1.0"], "exceeds the coarse solver's stable step"),
        (["problem.options.widht=3"], "unknown key problem.options.widht"),
        (["model.kind=transformer"], "model.kind = 'transformer' is not a model of hybrid_burgers"),
        (["train.unroll=64"], "train.unroll = 64 exceeds the task's horizon"),
        (["distributed.groups=2"], "needs that many MPI ranks"),
    ],
)
def test_cli_refuses_bad_configs_before_any_work(tmp_path, capsys, keep_x64, overrides, message):
    from nnpde._cli import main

    out = tmp_path / "run"
    code = main(["train", *_sets(*overrides, f'out="{out}"', f'data.cache_dir="{tmp_path / "data"}"')])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert not out.exists() and not (tmp_path / "data").exists(), f"{overrides}: work was started before the refusal"


# ---- subcommands on a tiny problem ----------------------------------------------


def test_generate_train_evaluate_resume(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "data"
    common = _sets(*TINY, f'out="{out}"', f'data.cache_dir="{cache}"')
    generated = _nnpde("generate", *common)
    assert generated.returncode == 0, generated.stderr
    assert "4 training and 2 held-out trajectories of 4 steps" in generated.stdout
    assert len(list(cache.glob("*.nc"))) == 2

    trained = _nnpde("train", *common, "--no-progress")
    assert trained.returncode == 0, trained.stderr
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
    resumed = _nnpde("train", str(out), "--set", "train.steps=6", "--no-progress", "--no-evaluate")
    assert resumed.returncode == 0, resumed.stderr
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6 and steps.count(1) == 1

    again = _nnpde("evaluate", str(out))
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "evaluation.json").read_text())["checkpoint_step"] == 6


def test_benchmark_time_to_train_single_process(tmp_path):
    out = tmp_path / "bench"
    result = _nnpde(
        "benchmark",
        "--out",
        str(out),
        *_sets(*TINY, "benchmark.seeds=[0, 1, 2]", "benchmark.max_steps=4", "benchmark.eval_every=2"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and len(report["runs"]) == 3
    times = sorted(r["time_to_train_seconds"] for r in report["runs"])
    assert report["time_to_train_seconds"]["trimmed_mean"] == pytest.approx(times[1])
    assert all(r["steps"] == 2 for r in report["runs"])  # the target is met at the first evaluation
    events = read_mllog(out / "seed1" / "mllog.txt")
    keys = [e["key"] for e in events]
    for key in ("run_start", "data_staging", "eval_accuracy", "run_stop", "target_accuracy", "seed"):
        assert key in keys, keys
    assert keys.index("run_start") < keys.index("data_staging") < keys.index("eval_accuracy") < keys.index("run_stop")
    assert events[keys.index("run_stop")]["metadata"]["status"] == "success"
    disclosure = (out / "disclosure.md").read_text()
    for needle in ("cores:", "software:", "precision: float32", "ranks: 1; groups: 1", "seeds: [0, 1, 2]", "derived"):
        assert needle in disclosure, needle


def test_benchmark_seed_that_misses_the_target_is_reported(tmp_path):
    out = tmp_path / "bench"
    result = _nnpde(
        "benchmark",
        "--out",
        str(out),
        *_sets(
            *TINY,
            "problem.options.target=1e-6",
            "benchmark.seeds=[0, 1, 2]",
            "benchmark.max_steps=2",
            "benchmark.eval_every=1",
        ),
    )
    assert result.returncode == 3, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert not report["complete"] and report["time_to_train_seconds"]["trimmed_mean"] is None
    assert {r["status"] for r in report["runs"]} == {"aborted"}


def test_benchmark_under_mpirun_with_two_groups(tmp_path):
    out = tmp_path / "bench"
    result = _nnpde(
        "benchmark",
        "--ranks",
        "2",
        "--out",
        str(out),
        *_sets(
            *TINY,
            "distributed.groups=2",
            "distributed.every=1",
            "distributed.max_staleness=1",
            "benchmark.seeds=[0, 1, 2]",
            "benchmark.max_steps=4",
            "benchmark.eval_every=2",
        ),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["ranks"] == 2 and report["groups"] == 2
    run = report["runs"][0]
    assert run["environment"]["parallel"]["groups"] == 2 and run["environment"]["parallel"]["ranks"] == 2
    assert {g["group"] for g in run["averaging"]["groups"]} == {0, 1}
    assert "ranks: 2; groups: 2; ranks per group: 1" in (out / "disclosure.md").read_text()


def test_validate_runs_a_case_and_writes_the_report(tmp_path):
    result = _nnpde("validate", "--only", "taylor_green", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "validation.json").read_text())
    (case,) = report["cases"]
    assert case["passed"] and case["measured"]["order"] >= 1.9
    assert "| taylor_green | yes |" in (tmp_path / "validation.md").read_text()
    unknown = _nnpde("validate", "--only", "no_such_case", "--out", str(tmp_path))
    assert unknown.returncode != 0 and "unknown case(s) ['no_such_case']" in unknown.stderr
