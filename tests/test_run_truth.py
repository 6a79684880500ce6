"""A run's files and exit code tell the truth: no non-finite checkpoint or result,
verified restores that fall back past a corrupt checkpoint, a refused command that
changes nothing, a resume whose changed settings are recorded, and a run directory
that is the run named on the command line. On a tiny problem, through ``nnpde``."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from nnpde.runs._cli import main

TINY = [
    "problem.module=tests._tiny_task",
    "problem.options={}",
    "data.train_samples=4",
    "data.eval_samples=2",
    "train.steps=4",
    "train.batch_size=2",
    "train.unroll=2",
    "train.eval_every=100",
    "train.checkpoint_every=2",
    "train.log_every=1",
]


def _sets(*pairs):
    return [x for p in pairs for x in ("--set", p)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained for 4 steps (checkpoints 2 and 4), without the report."""
    root = tmp_path_factory.mktemp("truth")
    out = root / "run"
    code = main(
        ["train", *_sets(*TINY, f'out="{out}"', f'data.cache_dir="{root / "data"}"'), "--no-progress", "--no-evaluate"]
    )
    jax.config.update("jax_enable_x64", True)  # the suite's precision (the run set float32)
    assert code == 0
    return out


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of the trained run (its own directory; the data cache is shared)."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    yield copy
    jax.config.update("jax_enable_x64", True)


def _snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _steps(run: Path) -> list[int]:
    return sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


def _arrays(run: Path, step: int) -> dict:
    """The arrays of a checkpoint, read by orbax alone (not through the checksums)."""
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as reader:
        return {k: np.asarray(v) for k, v in reader.restore(run / "checkpoints" / str(step) / "arrays").items()}


def test_divergence_at_an_unlogged_step_keeps_the_last_finite_checkpoint_and_a_lower_rate_resumes(run, capsys):
    """A learning rate that blows the model up between logged steps stops the run (exit
    4) before any of that state is checkpointed, with a message that blames the model,
    not dt; the same run at a lower rate resumes from the newest (finite) checkpoint,
    and the change of rate is printed and recorded."""
    diverging = _sets("train.steps=8", "train.learning_rate=1e6", "train.log_every=100")
    assert main(["train", str(run), *diverging, "--no-progress", "--no-evaluate"]) == 4
    err = capsys.readouterr().err
    assert "Training diverged at step" in err and "checkpoint (step 4) is kept" in err, err
    assert "reduce dt" not in err and "Fix: lower train.learning_rate" in err, err
    for step in _steps(run):
        assert all(np.all(np.isfinite(a)) for a in _arrays(run, step).values() if a.dtype.kind == "f"), step
    assert max(_steps(run)) < 6, _steps(run)

    assert main(["train", str(run), "--set", "train.learning_rate=1e-3", "--no-progress", "--no-evaluate"]) == 0
    out = capsys.readouterr().out
    assert "with changed settings" in out and "train.learning_rate: 1000000.0 -> 0.001" in out, out
    assert json.loads((run / "train.json").read_text())["steps"] == 8
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert history[-1]["changed"] == {"train.learning_rate": [1e6, 1e-3]}, history
    assert history[-2]["changed"]["train.learning_rate"] == [3e-3, 1e6], history


def test_evaluate_of_a_run_whose_result_is_not_finite_fails_and_writes_nothing(run, capsys):
    """A checkpoint whose parameters are finite but whose model blows up: ``evaluate``
    exits 4 and writes no report of a non-finite result."""
    import nnpde
    from nnpde.runs._checkpoint import Checkpointer
    from nnpde.runs._run import make_optimizer

    with Checkpointer(run / "checkpoints") as checkpoints:
        config = nnpde.load_config(run)
        nnpde.set_precision(config)
        task = nnpde.load_task(config)
        state, _ = nnpde.init_train_state(task.model("correction", seed=0), make_optimizer(config), seed=0)
        state = checkpoints.restore(state, 4)
        blown = jax.tree.map(lambda x: x * 1e30 if x.dtype.kind == "f" else x, state.params)
        checkpoints.save(5, nnpde.TrainState(blown, state.opt_state, state.step + 1, state.rng))
    before = _snapshot(run)
    assert main(["evaluate", str(run)]) == 4
    err = capsys.readouterr().err
    assert "diverges on the held-out trajectories" in err and "checkpoint step 5" in err and "Fix:" in err, err
    assert _snapshot(run) == before


def _corrupt(path: Path, *, truncate: bool = False) -> None:
    data = bytearray(path.read_bytes())
    if truncate:
        data = data[: len(data) // 2]
    else:
        for offset in (len(data) // 3, len(data) // 2, 2 * len(data) // 3):
            data[offset] ^= 0b100
    path.write_bytes(bytes(data))


def _data_files(run: Path, step: int) -> list[Path]:
    return sorted((run / "checkpoints" / str(step) / "arrays").rglob("d/*"), key=lambda p: -p.stat().st_size)


def test_a_corrupt_checkpoint_is_named_and_skipped_for_the_newest_intact_one(run, capsys):
    """Flipped bits (same size) in the newest checkpoint's data: the step and file are
    named, ``evaluate`` uses the step before, and ``train`` moves the corrupt step aside
    and trains it again to the same bits. With every step corrupt (one truncated, one
    flipped), ``train`` stops with the fix and changes nothing."""
    intact = _arrays(run, 4)
    for path in _data_files(run, 4):
        _corrupt(path)
    assert main(["evaluate", str(run)]) == 0
    err = capsys.readouterr().err
    assert "checkpoint step 4 is corrupt" in err and str(run / "checkpoints" / "4") in err, err
    assert json.loads((run / "evaluation.json").read_text())["checkpoint_step"] == 2

    assert main(["train", str(run), "--no-progress", "--no-evaluate"]) == 0
    err = capsys.readouterr().err
    assert "restored checkpoint step 2 instead of step 4; moved to" in err, err
    assert (run / "corrupt" / "4").is_dir() and _steps(run) == [2, 4]
    again = _arrays(run, 4)
    assert all(np.array_equal(intact[k], again[k]) for k in intact)  # resumed bitwise

    # every data file of both steps: one file alone may hold no byte that a restore
    # reads (the database can spread a step over several files), and a restore whose
    # arrays match their checksums is, rightly, not refused
    for path in _data_files(run, 2):
        _corrupt(path, truncate=True)
    for path in _data_files(run, 4):
        _corrupt(path)
    before = _snapshot(run)
    assert main(["train", str(run), "--no-progress", "--no-evaluate"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint step 4 is corrupt" in err and "No checkpoint in" in err and "is intact" in err, err
    assert "Fix: move that directory aside" in err, err
    assert _snapshot(run) == before


def test_a_refused_resume_changes_nothing_on_disk(run, capsys):
    before = _snapshot(run)
    assert main(["train", str(run), "--set", "problem.options.target=0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "problem.options.target: None -> 0.5" in err and "Nothing was changed" in err, err
    assert _snapshot(run) == before


def test_a_copied_run_directory_is_the_run_and_a_finished_run_logs_once(trained, run, capsys):
    """``cp -r A B; nnpde evaluate B`` writes into B, not into the ``out`` (A) stored
    in B's config; training B trains B; training a finished run again adds no row."""
    original = _snapshot(trained)
    assert main(["evaluate", str(run)]) == 0
    assert (run / "evaluation.json").is_file() and not (trained / "evaluation.json").exists()
    rows = (run / "metrics.jsonl").read_text()
    assert main(["train", str(run), "--no-progress", "--no-evaluate"]) == 0
    assert (run / "metrics.jsonl").read_text().splitlines() == rows.splitlines()  # no duplicate final row
    out = capsys.readouterr().out
    assert f"out: '{trained}' -> '{run}'" in out, out  # the copy's new home, printed and recorded
    assert _snapshot(trained) == original
    assert main(["train", str(run), "--set", f'out="{trained}"']) == 2
    assert "the run directory named on the command line is the run" in capsys.readouterr().err
