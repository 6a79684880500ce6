"""The 1-D Burgers ladder (``problems.burgers_ladder``, ``scripts/burgers_ladder.py``):
the task's grid options, a ruler that converges at the scheme's order, and the
benchmark's scoring end to end at toy size."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from problems import burgers_ladder as ladder
from problems import hybrid_burgers as hb
from tests._mpirun import TEST_XLA_FLAGS

ROOT = Path(__file__).resolve().parents[1]


def test_task_grid_options_keep_the_default_data_and_refuse_bad_values():
    default = hb.task().dataset_config(0, 8, 32)  # the cache key of the default data is unchanged
    assert (default["substeps"], default["coarse"], default["factor"]) == (16, 64, 4)
    t = hb.task(coarse=32, factor=32, stencils="step")
    limit = nnpde.max_stable_dt(hb.equation(1024), "ssprk3", u=jnp.ones((1, 1024)))
    substeps = t.dataset_config(0, 8, 32)["substeps"]
    assert substeps == hb.substeps(1024) > hb.SUBSTEPS  # the viscous limit sets it
    assert hb.DT / substeps <= 0.5 * limit
    assert isinstance(t.model("interpolation", seed=0), nnpde.PerStepInterpolation)
    assert not isinstance(hb.task(coarse=32, factor=2).model("interpolation", seed=0), nnpde.PerStepInterpolation)
    for bad, match in (
        (dict(coarse=4), "coarse must be at least 8"),
        (dict(factor=0), "factor must be a positive integer"),
        (dict(stencils="stages"), "stencils must be 'stage' or 'step'"),
        (dict(stencil=2), "stencil must be an integer >= 3"),
        (dict(coarse=8, dt=2.0), "exceeds the coarse solver's stable step .* on 8 cells"),
        (dict(target=0.0), r"target must be a positive relative error at the horizon, got 0.0. Fix: e.g. target ="),
        (dict(target=float("inf")), "target must be a positive relative error"),
    ):
        with pytest.raises(ValueError, match=match):
            hb.task(**bad)
    with pytest.raises((ValueError, TypeError)):  # the suite's type checker refuses it first
        hb.task(bounded="no")
    # the declared target: the default set-up's unless an option declares another; the
    # ladder config declares its own (the plain solver's horizon error on 4x the cells)
    assert hb.task().target == hb.TARGET_ERROR and hb.task(coarse=32, factor=32, target=0.0053).target == 0.0053
    from nnpde.runs._config import load_config

    options = load_config(ROOT / "scripts/configs/burgers_ladder.toml").problem.options
    assert options["target"] != hb.TARGET_ERROR and hb.task(**options).target == options["target"]


def test_ladder_rungs_converge_at_the_schemes_order():
    """The ruler: the plain rungs approach the truth at about second order (van Leer on
    these fronts, scored on the coarse grid), so each rung is a distinct accuracy."""
    starts = ladder.starts((2000,), 4, 512)
    truth = ladder.rung(512, starts, horizon=16)
    score = lambda run: ladder.scores(run, truth, times=(0.64,))[ladder.PRIMARY].mean()  # noqa: E731
    errors = [score(ladder.rung(n, starts, horizon=16)) for n in (32, 64, 128)]
    orders = np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))
    assert np.all(orders > 1.5), (errors, orders)
    same = ladder.scores(truth, truth, times=(0.64,))
    assert set(same) == {ladder.PRIMARY, "error_0.64"} and np.all(same[ladder.PRIMARY] == 0.0)
    with pytest.raises(ValueError, match="outside the scored run"):
        ladder.scores(truth, truth, times=(2.56,))
    with pytest.raises(ValueError, match="do not restrict"):
        ladder.restrict(starts, 48)


def test_seconds_per_time_unit_times_a_batched_stepper_and_refuses_bad_input():
    step = ladder.stepper(32)
    seconds = nnpde.metrics.seconds_per_time_unit(step, ladder.restrict(ladder.starts((0,), 2, 64), 32), duration=0.4)
    assert 0 < seconds < 1
    with pytest.raises(ValueError, match="duration must be positive"):
        nnpde.metrics.seconds_per_time_unit(step, jnp.zeros((1, 1, 32)), duration=0.0)
    with pytest.raises(ValueError, match="repeats must be a positive int"):
        nnpde.metrics.seconds_per_time_unit(step, jnp.zeros((1, 1, 32)), duration=0.4, repeats=0)


def test_seconds_per_time_unit_splits_the_batch_over_devices_and_refuses_a_bad_split():
    """``devices=2`` (the suite runs on 4 host devices): the trajectories are placed
    half on each device and the split run computes what the whole batch does."""
    from nnpde.hybrid._ladder import split_batch

    step = ladder.stepper(32)
    states = ladder.restrict(ladder.starts((0, 1), 2, 64), 32)
    split = split_batch(states, 2)
    assert len(split.sharding.device_set) == 2 and split.addressable_shards[0].data.shape[0] == len(states) // 2
    run = jax.jit(jax.vmap(lambda u: nnpde.rollout(step, u, 3, trajectory=False)))
    np.testing.assert_allclose(run(split), run(jnp.asarray(states)), rtol=0, atol=1e-12)
    assert 0 < nnpde.metrics.seconds_per_time_unit(step, states, duration=0.4, devices=2) < 1
    with pytest.raises(ValueError, match="3 trajectories do not split over devices=2"):
        nnpde.metrics.seconds_per_time_unit(step, states[:3], duration=0.4, devices=2)
    with pytest.raises(ValueError, match=f"devices must be an int from 1 to the {jax.local_device_count()}"):
        nnpde.metrics.seconds_per_time_unit(step, states, duration=0.4, devices=jax.local_device_count() + 1)


class _Counted(nnpde.AbstractStepper):
    """A plain stepper that counts its executed steps on the host (any batching)."""

    equation: object
    dt: float
    inner: nnpde.AbstractStepper
    counter: list

    def __call__(self, u, t=0.0):
        jax.debug.callback(lambda: self.counter.append(1))
        return self.inner(u, t)


def _counted(inner, counter: list) -> _Counted:
    return _Counted(inner.equation, inner.dt, inner, counter)


def test_interleaved_costs_time_every_split_in_rounds_and_repeat_cheap_calls():
    """Every stepper is compiled and run once before the rounds and once more to size
    its calls, then once per round (``min_seconds=0``), so executed steps grow with
    ``rounds`` by exactly that count; ``min_seconds`` repeats a cheap call within a
    round. The report: per round the best device split, their median, and each split."""
    states = ladder.restrict(ladder.starts((0, 1), 2, 64), 32)
    runs = {}
    for rounds in (1, 3):
        counter = []
        out = nnpde.metrics.interleaved_costs(
            {"a": (_counted(ladder.stepper(32), counter), states)}, duration=0.1, rounds=rounds, min_seconds=0.0
        )
        runs[rounds] = len(counter)
        entry = out["a"]
        assert set(entry["by_devices"]) == {1, jax.local_device_count()}
        assert len(entry["rounds"]) == rounds and entry["median"] == pytest.approx(np.median(entry["rounds"]))
        best = np.min([entry["by_devices"][d] for d in entry["by_devices"]], axis=0)
        np.testing.assert_array_equal(entry["rounds"], best)
        assert all(0 < c < 1 for c in entry["rounds"])
    assert runs[3] * 3 == runs[1] * 5  # (2 + 3) runs against (2 + 1) runs of each split
    counter = []
    nnpde.metrics.interleaved_costs(
        {"a": (_counted(ladder.stepper(32), counter), states)}, duration=0.1, rounds=1, min_seconds=0.5
    )
    assert len(counter) > 2 * runs[1]
    # a batch that splits over no device count but one is timed as one program
    out = nnpde.metrics.interleaved_costs(
        {"plain": (ladder.stepper(32), states[:3]), "two": (ladder.stepper(64), ladder.starts((0, 1), 2, 64))},
        duration=0.1,
        rounds=2,
        min_seconds=0.0,
    )
    assert set(out["plain"]["by_devices"]) == {1} and set(out["two"]["by_devices"]) == {1, jax.local_device_count()}
    for kwargs, match in (
        (dict(rounds=0), "rounds must be a positive int, got 0"),
        (dict(min_seconds=-1.0), "min_seconds must be >= 0"),
        (dict(devices=(2,), steppers={"odd": (ladder.stepper(32), states[:3])}), "'odd': 3 trajectories split"),
        (dict(steppers={}), "steppers is empty"),
        (dict(devices=(1, 0)), "devices must be an int from 1 to the"),
    ):
        call = dict(steppers={"a": (ladder.stepper(32), states)}, duration=0.1) | kwargs
        with pytest.raises(ValueError, match=match):
            nnpde.metrics.interleaved_costs(**call)


def test_burgers_ladder_scores_a_trained_run_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    env = {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "PATH": str(Path(sys.executable).parent)}
    env["XLA_FLAGS"] = TEST_XLA_FLAGS  # the suite's compile flags: this test is mostly compilation
    sets = [
        f"out={run}",
        f"data.cache_dir={tmp_path / 'data'}",
        "problem.options.factor=4",
        "problem.options.horizon=16",
        "problem.options.hidden=4",
        "problem.options.depth=2",
        "data.train_samples=4",
        "data.eval_samples=2",
        "train.steps=4",
        "train.warmup_steps=1",
        "train.batch_size=2",
        "train.unroll=4",
        "train.eval_every=4",
        "train.checkpoint_every=4",
    ]
    # --no-evaluate: the scoring reads the run's config and checkpoint, not the training's own report
    train = [sys.executable, "-m", "nnpde", "train", str(ROOT / "scripts/configs/burgers_ladder.toml"), "--no-evaluate"]
    for s in sets:
        train += ["--set", s]
    subprocess.run(train, check=True, env=env, cwd=tmp_path, capture_output=True)
    results, figure = tmp_path / "r.json", tmp_path / "f.png"
    score = [sys.executable, str(ROOT / "scripts/burgers_ladder.py"), "--run", str(run), "--truth", "256"]
    score += ["--ladder", "32", "64", "128", "--seeds", "2000", "--per-seed", "3", "--horizon", "16", "--repeats", "1"]
    score += ["--timing-states", "4"]  # the 3 held-out states repeated
    score += ["--results", str(results), "--figure", str(figure)]
    subprocess.run(score, check=True, env=env, cwd=tmp_path, capture_output=True)
    out = json.loads(results.read_text())
    eq = out["equivalent_resolution"]
    assert out["held_out_states"] == 3 and out["coarse"] == 32 and out["truth"] == 256 and out["timing_states"] == 4
    assert out["ladder"] == [32, 64, 128] and out["training_resolution"] == 128
    assert eq["lower_90"] <= eq["estimate"] <= eq["upper_90"] and eq["estimate"] >= 1.0
    assert set(out["seconds_per_time_unit_per_trajectory"]) == {"plain_32", "plain_64", "plain_128", *out["models"]}
    assert out["mean_scores"]["plain_256"]["mean_error"] == 0.0  # the truth scored against itself
    assert figure.stat().st_size > 10_000
    # a folder without a run is refused by the script's argument check (exit 2), here
    # in this process: a third interpreter would only import the same modules again
    import importlib.util

    spec = importlib.util.spec_from_file_location("burgers_ladder_script", ROOT / "scripts" / "burgers_ladder.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    capsys.readouterr()
    with pytest.raises(SystemExit) as bad:
        script.main(["--run", str(tmp_path)])
    assert bad.value.code == 2 and "no config.toml there" in capsys.readouterr().err
