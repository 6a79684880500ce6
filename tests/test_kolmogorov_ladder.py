"""The accuracy-per-cost Kolmogorov set-up (``problems.kolmogorov_ladder``) at toy size:
its learned models start as the plain solver, train with the solver in the loop,
resume from their checkpoints, and are scored the way the benchmark scores them."""

import functools
import json
import types
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from problems import kolmogorov
from problems import kolmogorov_ladder as ladder
from problems._hybrid import cnn
from tests._inprocess import exit_status

ROOT = Path(__file__).resolve().parents[1]


def _script():
    """``scripts/kolmogorov_ladder.py`` as a module (it is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kl_script", ROOT / "scripts" / "kolmogorov_ladder.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _runs(resolution, seeds, steps):
    """Plain-solver runs from the given seeds, computed once per arguments for the
    module (several tests start from the same states or train on the same data; each
    call compiles its rollout anew). Read-only: shared between the tests."""
    return _cached_runs(resolution, tuple(seeds), steps)


@functools.cache
def _cached_runs(resolution, seeds, steps):
    step = ladder.stepper(resolution)
    grid = step.equation.grid
    u0 = jnp.stack([step.equation.project(kolmogorov.initial_velocity(grid, s, max_velocity=2.0)) for s in seeds])
    runs = ladder.rollouts(step, u0, steps, 1)
    runs.setflags(write=False)
    return runs


def _weights(model) -> list:
    """The trained weights of ``model`` (its trainable leaves, ``nnpde.partition``)."""
    leaves = jax.tree.leaves(nnpde.partition(model)[0])
    assert leaves  # a model with no weights would make every comparison of them vacuous
    return leaves


@functools.cache
def _plain_rollout(steps):
    """The plain 16^2 solver's rollout from seed 3's state, once for every kind below."""
    rollout = np.asarray(nnpde.rollout(ladder.stepper(16), _runs(16, [3], 1)[0, 0], steps))
    rollout.setflags(write=False)
    return rollout


@pytest.mark.parametrize("kind", ladder.KINDS)
def test_ladder_models_start_as_the_plain_solver(kind):
    model = ladder.model(kind, hidden=4, depth=2, resolution=16)
    plain = ladder.stepper(16)
    u0 = _runs(16, [3], 1)[0, 0]
    if kind == "closure":  # plain rate + 0 from the zero last layer: equal up to how XLA fuses the sum
        np.testing.assert_allclose(nnpde.rollout(model, u0, 3), _plain_rollout(3), rtol=0, atol=1e-12)
    else:
        np.testing.assert_array_equal(nnpde.rollout(model, u0, 3), _plain_rollout(3))
    # the long rollouts' ratio to the CFL limit reads every model (wrapped steppers too)
    np.testing.assert_allclose(ladder.courant_ratio(model, u0[None]), ladder.courant_ratio(plain, u0[None]))
    with pytest.raises(ValueError, match="kind must be one of"):
        ladder.model("emulator")


@pytest.fixture(scope="module")
def correction_run(tmp_path_factory):
    """``(folder, data, result, seen)``: the correction kind trained 2 steps at the
    ladder's step, once for the tests that read it back, resume from it or score a
    blown-up copy of it with the validation function (``seen["evaluate"]``) that
    ``ladder.train`` handed ``nnpde.fit`` (each training compiles its step and its
    validation anew)."""
    folder = tmp_path_factory.mktemp("correction")
    # (6 seeds, 13, 2, 16, 16), the last 4 validating: the 32^2 solver's runs restricted
    # to 16^2 at dt(16) = 2 dt(32), as the benchmark's data come from a finer solver (the
    # plain 16^2 solver's own runs would give an untrained model a loss of exactly 0)
    data = ladder.coarse_trajectories(_runs(32, range(6), 24)[:, ::2], 16)
    with pytest.MonkeyPatch.context() as patch:
        seen = _watch_fit(patch)
        # the correction kind: the same training path, quicker to compile than the learned
        # stencils; validated at the end only (each validation compiles its rollouts anew)
        result = ladder.train(
            folder,
            data,
            kind="correction",
            hidden=4,
            depth=2,
            steps=2,
            window=2,
            batch_size=2,
            eval_every=2,
            validation_steps=4,
            progress=False,
        )
    return folder, data, result, seen


def test_ladder_training_resumes_and_scores_like_the_benchmark(correction_run):
    tmp_path, data, first, _ = correction_run
    assert int(first.state.step) == 2
    assert {"eval_val_correlation_time", "eval_val_error_0.64"} <= set(first.history[-1])
    # read back from the checkpoint, nothing trained
    again, step, settings = ladder.trained(tmp_path, kind="correction", hidden=4, depth=2, resolution=16)
    assert step == 2 and settings["steps"] == 2
    assert all(np.array_equal(a, b) for a, b in zip(_weights(first.model), _weights(again), strict=True))
    untrained = ladder.model("correction", hidden=4, depth=2, resolution=16)
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(untrained), _weights(again), strict=True))
    with pytest.raises(FileNotFoundError, match="Fix: train it first"):
        ladder.trained(tmp_path, kind="interpolation", hidden=4, depth=2, resolution=16)
    # noise on the unrolled starts: another loss from the same seed, recorded in the
    # settings (only when set), a negative value refused (validated at the end only:
    # each validation compiles its rollouts anew)
    common = dict(kind="correction", hidden=4, depth=2, steps=2, window=2, batch_size=2, eval_every=2)
    noisy = ladder.train(tmp_path, data, noise=0.1, tag="noise", validation_steps=4, progress=False, **common)
    losses = [[row["loss"] for row in r.history if "loss" in row] for r in (first, noisy)]
    assert losses[0] and len(losses[0]) == len(losses[1]) and losses[0] != losses[1]
    assert ladder.trained(tmp_path, kind="correction", hidden=4, depth=2, tag="noise", resolution=16)[2]["noise"] == 0.1
    assert "noise" not in settings
    with pytest.raises(ValueError, match=r"noise must be a finite number >= 0, got -0.1"):
        ladder.train(tmp_path, data, noise=-0.1, tag="bad", **common)
    # read back without the runtime CFL check (the evaluation's rollouts): the same weights
    free, _, _ = ladder.trained(tmp_path, kind="correction", hidden=4, depth=2, resolution=16, check_stability=False)
    assert again.stepper.check_stability and not free.stepper.check_stability
    assert all(np.array_equal(a, b) for a, b in zip(_weights(free), _weights(again), strict=True))
    # or derived from the model read once (the evaluation: a run still training cannot
    # hand the second read newer weights): the same weights, the check off, the model unchanged
    derived = ladder.unchecked(again, settings, kind="correction", hidden=4, depth=2, resolution=16)
    assert not derived.stepper.check_stability and again.stepper.check_stability
    assert all(np.array_equal(a, b) for a, b in zip(_weights(derived), _weights(again), strict=True))
    with pytest.raises(ValueError, match="does not match a correction model of hidden=5"):
        ladder.unchecked(again, settings, kind="correction", hidden=5, depth=2, resolution=16)

    # scored as the benchmark scores: the truth against itself never decorrelates
    reference = ladder.coarse_trajectories(_runs(16, [0, 1], 40), 8)  # past t = 2.56 at EVAL_INTERVAL
    table = ladder.score_table(ladder.stepper(8), reference, reference)
    assert table["correlation_time"].shape == (2,)
    np.testing.assert_allclose(table["correlation_time"], (reference.shape[1] - 1) * ladder.EVAL_INTERVAL)
    assert np.all(table["error_0.64"] == 0)
    # a run that blows up at save 10 (inf, then NaN) is decorrelated from its last finite
    # save and unboundedly wrong after it, not scored as the whole horizon
    blown = np.array(reference)
    blown[:, 10] = np.inf
    blown[:, 11:] = np.nan
    table = ladder.score_table(ladder.stepper(8), blown, reference)
    np.testing.assert_allclose(table["correlation_time"], 9 * ladder.EVAL_INTERVAL)
    assert np.all(table["error_0.64"] == 0) and np.all(table["error_2.56"] == np.inf)
    stats = ladder.statistics(reference, 8, k_max=3)
    assert len(stats["spectrum"]) == 3 and stats["kinetic_energy"] > 0


def test_long_rollout_stops_where_the_solver_check_fails():
    step = ladder.stepper(16)
    grid = step.equation.grid
    calm = step.equation.project(kolmogorov.initial_velocity(grid, 0, max_velocity=1.0))
    kept, reached = ladder.long_rollout(step, calm, 0.48, chunk=0.16)
    assert kept.shape == (7, 2, 16, 16) and reached == pytest.approx(0.48)
    np.testing.assert_array_equal(kept[0], calm)
    too_fast = step.equation.project(kolmogorov.initial_velocity(grid, 0, max_velocity=200.0))
    kept, reached = ladder.long_rollout(step, too_fast, 1.0, chunk=0.16)
    assert reached == 0.0 and kept.shape == (1, 2, 16, 16)
    # without the check, a bound on the velocity ends a run that passes it
    unchecked = ladder.stepper(16, check_stability=False)
    kept, reached = ladder.long_rollout(unchecked, calm, 0.48, chunk=0.16, bound=0.5 * float(jnp.max(jnp.abs(calm))))
    assert reached == 0.0 and kept.shape == (1, 2, 16, 16)
    # the ratio the runtime check compares with 1, at the state and at a state 200x faster
    ratio = ladder.courant_ratio(step, np.stack([calm, too_fast]))
    assert ratio[0] < 1 < ratio[1]


def test_long_rollouts_resume_at_the_next_state(tmp_path, monkeypatch):
    """The evaluation's 50-unit rollouts keep each finished state on disk at once: a
    call stopped after the first state resumes at the second, and the result is the
    uninterrupted one."""
    script = _script()
    starts = np.arange(3 * 2 * 32 * 32, dtype=np.float32).reshape(3, 2, 32, 32)
    ran = []

    def fake(step, u, duration, bound):  # a stand-in for ladder.long_rollout: cheap, distinct per state
        ran.append(int(u[0, 0, 0]))
        if len(ran) == 2 and stop:
            raise KeyboardInterrupt
        return np.stack([u, u + 1.0]), duration / (1 + len(ran))

    monkeypatch.setattr(script.ladder, "long_rollout", fake)
    monkeypatch.setattr(script.ladder, "courant_ratio", lambda step, kept: np.array([0.5, 1.5]))
    path = tmp_path / "long_x.npz"
    stop = True
    with pytest.raises(KeyboardInterrupt):
        script._long_rollouts(None, starts, 50.0, "x", path, "key")
    assert ran == [0, 2048] and (tmp_path / "long_x.progress.npz").exists()
    stop = False
    out = script._long_rollouts(None, starts, 50.0, "x", path, "key")
    assert ran == [0, 2048, 2048, 4096]  # the first state was not run again
    assert not (tmp_path / "long_x.progress.npz").exists()
    np.testing.assert_array_equal(out["kept0"], np.stack([starts[0], starts[0] + 1]))
    np.testing.assert_array_equal(out["kept2"], np.stack([starts[2], starts[2] + 1]))
    assert float(out["reached0"]) == 25.0
    assert float(out["courant0"]) == 1.5 and float(out["exceeded0"]) == ladder.EVAL_INTERVAL
    # another key (a model trained further) starts afresh
    script._store(tmp_path / "long_y.progress.npz", "old key", {"kept0": starts[:1], "reached0": np.asarray(1.0)})
    ran.clear()
    script._long_rollouts(None, starts, 50.0, "y", tmp_path / "long_y.npz", "new key")
    assert ran == [0, 2048, 4096]
    # runs made earlier with the runtime check: one that the check never stopped is
    # taken as it is; one it stopped runs again
    earlier = {"kept0": starts[:2], "reached0": np.asarray(50.0), "kept1": starts[:1], "reached1": np.asarray(7.0)}
    ran.clear()
    out = script._long_rollouts(None, starts[:2], 50.0, "z", tmp_path / "long_z.npz", "k", reuse=earlier)
    assert ran == [2048]
    np.testing.assert_array_equal(out["kept0"], starts[:2])
    assert np.isnan(out["courant0"]) and float(out["exceeded0"]) == -1.0 and float(out["courant1"]) == 1.5


def test_projected_closure_keeps_the_step_divergence_free_and_conserves_momentum():
    plain = ladder.stepper(16)
    u0 = jnp.asarray(_runs(16, [3], 1)[0, 0])
    net = cnn(0, 2, 4, periodic=(True, True), hidden=4, depth=2)
    net = jax.tree.map(lambda x: x + 0.05 if eqx.is_inexact_array(x) else x, net)  # a non-zero closure
    closure = nnpde.ProjectedClosureEquation(plain.equation, net, form="flux", periodic=(True, True))
    learned = nnpde.ProjectedRK(closure, dt=plain.dt, method="rk4")
    u1, base = learned(u0), plain(u0)
    assert float(jnp.abs(u1 - base).max()) > 1e-4  # the closure acts
    div = np.asarray(plain.equation.divergence(u1))
    assert np.abs(div).max() < 1e-10 * np.abs(np.asarray(u1)).max() / plain.equation.grid.spacing[0]
    np.testing.assert_allclose(u1.mean(axis=(1, 2)), base.mean(axis=(1, 2)), rtol=0, atol=1e-13)  # a flux
    assert float(closure.advective_radius(0.0, u0)) == float(plain.equation.advective_radius(0.0, u0))
    with pytest.raises(TypeError):  # the suite's type checker refuses it before the class's own check
        nnpde.ProjectedClosureEquation(_unprojected(), net)


def _unprojected():
    from solvers.burgers import Burgers

    return Burgers(nnpde.Grid((16,), extent=((0.0, 1.0),)), nnpde.BoundaryConditions.periodic(1), viscosity=0.1)


def test_a_run_can_start_from_another_runs_weights(tmp_path, monkeypatch, correction_run):
    """``init_from`` (fine-tuning): the new run hands ``nnpde.fit`` the newest weights of
    the run it names, with its own step and settings, and records where it started;
    the run itself, a missing run, or a network of another shape (head) is refused
    before any training, as is a negative seed. ``--init-from``, ``--seed`` and
    ``--stencil`` reach ``ladder.train``."""
    import shutil

    folder, data, first, _ = correction_run
    source = ladder.model_dir(folder, "correction", 4, 2)
    shutil.copytree(source, ladder.model_dir(tmp_path, "correction", 4, 2))  # the shared run stays untouched
    handed = {}

    def fit(net, loss, train_part, **kw):  # what training would start from; nothing trains
        handed["net"] = net

    monkeypatch.setattr(nnpde, "fit", fit)
    common = dict(kind="correction", hidden=4, depth=2, steps=3, window=2, batch_size=2, validation_steps=4)
    ladder.train(tmp_path, data, multiple=2, init_from="", tag="tuned", **common)
    net = handed["net"]
    assert net.dt == pytest.approx(2 * ladder.dt(16))  # this run's step, not the source's
    given = _weights(first.model)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(net), given, strict=True))
    fresh = ladder.model("correction", hidden=4, depth=2, resolution=16, multiple=2)
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(fresh), given, strict=True))
    settings = json.loads((ladder.model_dir(tmp_path, "correction", 4, 2, "tuned") / "settings.json").read_text())
    assert settings["init_from"] == {"tag": "", "step": 2} and settings["multiple"] == 2

    # resumed from its own checkpoints (here a copy of the source's), the run does not
    # read the run it started from again: that may be gone
    tuned = ladder.model_dir(tmp_path, "correction", 4, 2, "tuned")
    shutil.copytree(source / "checkpoints", tuned / "checkpoints")
    shutil.rmtree(ladder.model_dir(tmp_path, "correction", 4, 2))
    ladder.train(tmp_path, data, multiple=2, init_from="", tag="tuned", **common)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(handed["net"]), _weights(fresh), strict=True))
    shutil.copytree(source, ladder.model_dir(tmp_path, "correction", 4, 2))

    # a fresh clone: the run started from is only in the published folder
    clone, shelf = tmp_path / "clone", tmp_path / "shelf"
    assert ladder.publish(tmp_path, shelf, kind="correction", hidden=4, depth=2) == 2
    ladder.train(clone, data, multiple=2, init_from="", tag="tuned", published=shelf, **common)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(handed["net"]), given, strict=True))
    settings = json.loads((ladder.model_dir(clone, "correction", 4, 2, "tuned") / "settings.json").read_text())
    assert settings["init_from"] == {"tag": "", "step": 2}
    assert not ladder.model_dir(clone, "correction", 4, 2).exists()  # read in place, not copied
    with pytest.raises(FileNotFoundError, match=r"init_from='': No trained correction model"):
        ladder.train(clone, data, init_from="", tag="t5", **common)  # without the published folder

    with pytest.raises(ValueError, match=r"init_from='tuned' is the run being trained .* Fix: a new tag"):
        ladder.train(tmp_path, data, init_from="tuned", tag="tuned", **common)
    with pytest.raises(FileNotFoundError, match=r"init_from='nope': No trained correction model .* Fix: train it"):
        ladder.train(tmp_path, data, init_from="nope", tag="t2", **common)
    with pytest.raises(ValueError, match=r"init_from='': its network's weights have shapes .* Fix: the same --head"):
        ladder.train(tmp_path, data, init_from="", head=1, tag="t3", **common)
    with pytest.raises(ValueError, match=r"seed must be an int >= 0, got -1. Fix: e.g. 0, or 1 for a replicate"):
        ladder.train(tmp_path, data, seed=-1, tag="t4", **common)

    script = _script()
    seen = {}
    monkeypatch.setattr(script, "_training_trajectories", lambda folder, extra=0: data)
    done = types.SimpleNamespace(state=types.SimpleNamespace(step=0), history=[])
    monkeypatch.setattr(script.ladder, "train", lambda folder, trajectories, **kw: seen.update(kw) or done)
    argv = ["--part", "model", "--kind", "correction", "--init-from", "base", "--tag", "tuned"]
    assert script.main([*argv, "--out", str(tmp_path)]) == 0
    assert seen["init_from"] == "base" and seen["tag"] == "tuned"
    assert seen["seed"] == 0 and seen["stencil"] == ladder.STENCIL and seen["base"] == "van_leer"
    assert seen["separable"] is False  # the defaults
    argv = ["--part", "model", "--kind", "interpolation", "--seed", "3", "--stencil", "6", "--tag", "r3"]
    assert script.main([*argv, "--out", str(tmp_path), "--base", "central", "--separable"]) == 0
    assert seen["seed"] == 3 and seen["stencil"] == 6 and seen["tag"] == "r3" and seen["base"] == "central"
    assert seen["separable"] is True


def test_a_published_run_is_scored_and_resumed_from_a_fresh_clone(tmp_path, correction_run):
    """``publish`` copies a run's newest checkpoint, settings and metrics log to a folder
    kept under version control; a folder without the run (a fresh clone) reads the
    model from that copy, and a training there resumes from it exactly: continued one
    step from the copy, the weights equal those of the original run continued one step.
    Publishing again replaces the copy; ``--part publish`` needs ``--models``."""
    import shutil

    folder, data, first, _ = correction_run
    published, fresh, original = tmp_path / "published", tmp_path / "clone", tmp_path / "original"
    assert ladder.publish(folder, published, kind="correction", hidden=4, depth=2) == 2
    copy = ladder.model_dir(published, "correction", 4, 2)
    assert sorted(p.name for p in copy.iterdir()) == ["checkpoints", "metrics.jsonl", "settings.json"]
    with nnpde.Checkpointer(copy / "checkpoints", read_only=True) as reader:
        assert reader.all_steps() == [2]
    with pytest.raises(FileNotFoundError, match="Fix: train it first"):
        ladder.trained(fresh, kind="correction", hidden=4, depth=2, resolution=16)
    again, step, settings = ladder.trained(
        fresh, kind="correction", hidden=4, depth=2, resolution=16, published=published
    )
    assert step == 2 and settings["steps"] == 2
    assert all(np.array_equal(a, b) for a, b in zip(_weights(first.model), _weights(again), strict=True))

    # one more step: from the original run's own folder, and from the copy in a clone
    shutil.copytree(ladder.model_dir(folder, "correction", 4, 2), ladder.model_dir(original, "correction", 4, 2))
    common = dict(kind="correction", hidden=4, depth=2, steps=3, window=2, batch_size=2, progress=False)
    common.update(eval_every=100, validation_steps=4)
    continued = ladder.train(original, data, **common)
    resumed = ladder.train(fresh, data, published=published, **common)
    assert int(continued.state.step) == int(resumed.state.step) == 3
    assert all(np.array_equal(a, b) for a, b in zip(_weights(continued.model), _weights(resumed.model), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(first.model), _weights(resumed.model), strict=True))
    assert [r["step"] for r in resumed.history if "loss" in r] == [r["step"] for r in continued.history if "loss" in r]

    # published again from the clone (now at step 3): the copy is replaced, no leftovers
    assert ladder.publish(fresh, published, kind="correction", hidden=4, depth=2) == 3
    assert sorted(p.name for p in published.iterdir()) == [copy.name]
    assert (
        ladder.trained(tmp_path / "empty", kind="correction", hidden=4, depth=2, resolution=16, published=published)[1]
        == 3
    )

    script = _script()
    with pytest.raises(SystemExit):
        script.main(["--part", "publish", "--out", str(folder), "--published", str(published)])
    assert (
        script.main(
            [
                "--part",
                "publish",
                "--models",
                "correction:4:2",
                "--out",
                str(fresh),
                "--published",
                str(tmp_path / "p2"),
            ]
        )
        == 0
    )
    assert ladder.model_dir(tmp_path / "p2", "correction", 4, 2).exists()


def test_predictability_starts_keep_the_resolved_modes_and_swap_the_detail():
    """``spectral_split`` separates the modes a coarser grid resolves from the rest,
    both parts divergence-free; ``predictability_starts`` keeps each state's resolved
    modes and gives it no detail or another state's (refused: its own)."""
    u = _runs(32, range(2), 3)[:, :4]  # (seeds, states per seed, 2, 32, 32): divergence-free
    equation = ladder.stepper(32).equation
    low, high = ladder.spectral_split(u, 4)
    np.testing.assert_allclose(low + high, u, atol=1e-12)
    k = np.abs(np.fft.fftfreq(32, 1 / 32))
    resolved = (k[:, None] < 4) & (k[None, :] < 4)
    np.testing.assert_allclose(np.fft.fft2(high)[..., resolved], 0, atol=1e-9)
    np.testing.assert_allclose(np.fft.fft2(low)[..., ~resolved], 0, atol=1e-9)
    assert np.linalg.norm(high) > 0.05 * np.linalg.norm(u)  # there is detail to swap
    for part in (u, low, high):  # discretely divergence-free to round-off (float64), as the state
        assert np.max(np.abs(jax.vmap(equation.divergence)(jnp.asarray(part.reshape(-1, 2, 32, 32))))) < 1e-12

    rows = ladder.held_out_starts(u, 32)  # the held_out row order: state k of seed s is row 2 k + s
    coarse = ladder.restrict(rows, 8)  # what a model of the 8^2 grid starts from
    smooth = ladder.predictability_starts(u, cutoff=4, resolution=32)
    swapped = ladder.predictability_starts(u, cutoff=4, donor_shift=1, resolution=32)
    assert np.max(np.abs(ladder.restrict(ladder.spectral_split(rows, 4)[0], 8) - coarse)) > 1e-3  # a cut is not it
    for start in (smooth, swapped):  # the coarse state exactly, divergence-free
        np.testing.assert_allclose(ladder.restrict(start, 8), coarse, atol=1e-10)
        assert np.max(np.abs(jax.vmap(equation.divergence)(jnp.asarray(start)))) < 1e-12
    # nothing of the fine states beyond the coarse one: the smooth start has no mode from
    # 8 up (but round-off); the swapped one has there exactly state i + 1's detail
    np.testing.assert_allclose(ladder.spectral_split(smooth, 8)[1], 0, atol=1e-9)
    # a state band-limited below the coarse grid's Nyquist wavenumber is all in its coarse
    # state: recovered exactly (a prolongation low-passed at 8 from the start put a
    # staircase into the modes 4-8: 33 % off)
    band_limited = ladder.spectral_split(u, 3)[0]
    again = ladder.predictability_starts(band_limited, cutoff=4, resolution=32)
    np.testing.assert_allclose(again, ladder.held_out_starts(band_limited, 32), atol=1e-12)
    donor_detail = np.roll(ladder.spectral_split(rows, 8)[1], -1, axis=0)
    np.testing.assert_allclose(ladder.spectral_split(swapped, 8)[1], donor_detail, atol=1e-9)
    assert np.linalg.norm(donor_detail) > 0.01 * np.linalg.norm(rows)
    with pytest.raises(ValueError, match=r"donor_shift=8 gives each of the 8 states its own detail back"):
        ladder.predictability_starts(u, cutoff=4, donor_shift=8, resolution=32)
    with pytest.raises(ValueError, match=r"donor_shift must be an int >= 0, got -1"):
        ladder.predictability_starts(u, cutoff=4, donor_shift=-1, resolution=32)


def test_predictability_part_scores_each_variant_on_the_ladder(tmp_path, monkeypatch):
    """``--part predictability`` scores the no-detail run, each donor run and their mean
    on the ladder like a model: a variant that runs exactly as a rung reads that rung's
    resolution. The truth and the runs are stand-ins here (the plumbing, not the flow)."""
    script = _script()
    reference = _runs(32, range(4), 100)  # (states, 101 saves, 2, 32, 32)
    rng = np.random.default_rng(0)
    noisy = {
        n: reference + rng.normal(0, 32.0 / n, reference.shape) * np.arange(101)[:, None, None, None] / 100
        for n in ladder.LADDER
    }
    monkeypatch.setattr(script.ladder, "truth", lambda folder: (None, None))
    monkeypatch.setattr(script.ladder, "held_out", lambda runs: reference)
    monkeypatch.setattr(script.ladder, "coarse_trajectories", lambda held: held)
    monkeypatch.setattr(script.ladder, "ladder_runs", lambda folder, starts: noisy)
    seen = {}

    def runs(folder, starts, *, cutoff, donor_shifts, resolution, progress):
        seen[cutoff, resolution] = donor_shifts
        return {s: noisy[64] for s in donor_shifts}

    monkeypatch.setattr(script.ladder, "predictability_runs", runs)
    results = tmp_path / "p.json"
    argv = ["--part", "predictability", "--donors", "2", "--out", str(tmp_path), "--results", str(results)]
    assert script.main([*argv, "--fine", "64", "256"]) == 0
    assert seen == {(16, 64): (0, 1, 2), (16, 256): (0, 1, 2)}
    out = json.loads(results.read_text())
    donors = ("detail_of_state_plus1", "detail_of_state_plus2")
    names = [f"plain_{n}_from_32_{v}" for n in (64, 256) for v in ("no_detail", *donors, "mean_of_2_donors")]
    assert list(out["variants"]) == names
    for entry in out["variants"].values():
        assert entry["correlation_time"]["factor"] == pytest.approx(2.0)
        assert entry["error_0.64"]["factor"] == pytest.approx(2.0)
    assert set(out["rungs"]) == {f"plain_{n}" for n in ladder.LADDER}
    assert script.main([*argv[:2], "--donors", "-1", "--out", str(tmp_path)]) == 2
    assert script.main([*argv[:2], "--fine", "48", "--out", str(tmp_path)]) == 2  # not a multiple of 32


def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """``--long`` names what runs the 50-unit rollouts: a name that is neither a model of
    ``--models`` nor a rung of the ladder stops the evaluation at once (no data read:
    ``--out`` is empty), with both lists and the fix. So do a count of timing rounds
    below 1 and an ``--extra-seeds`` count that is negative or reaches the held-out
    seeds (an argparse message, not a traceback). (The script's ``main`` run in this
    process: the refusal comes before any work, so a fresh interpreter would only import
    the same modules again.)"""
    script = _script()
    monkeypatch.chdir(ROOT)
    argv = ["--part", "evaluate", "--models", "interpolation:16:3", "--long", "interpolation:16:3", "plain_48"]
    returncode = exit_status(script.main, [*argv, "--out", str(tmp_path)])
    stderr = capsys.readouterr().err
    assert returncode != 0
    assert "--long plain_48: not a model of --models ['interpolation:16:3'] nor a rung" in stderr
    assert "plain_256" in stderr and "Fix: name models exactly as in --models, or plain_N." in stderr
    assert not any(tmp_path.iterdir())
    returncode = exit_status(script.main, ["--part", "evaluate", "--timing-rounds", "0", "--out", str(tmp_path)])
    assert returncode == 2 and "--timing-rounds must be at least 1, got 0. Fix:" in capsys.readouterr().err
    for count, says in (("-3", "count must be"), ("1000", "would reach the held-out seeds")):
        returncode = exit_status(script.main, ["--part", "model", "--extra-seeds", count, "--out", str(tmp_path)])
        stderr = capsys.readouterr().err
        assert returncode == 2 and f"--extra-seeds {count}: " in stderr and says in stderr and "Fix:" in stderr
    assert not any(tmp_path.iterdir())


def test_earlier_results_add_their_models_to_the_figure(tmp_path, capsys, monkeypatch):
    """``--earlier``: an earlier evaluation's results file (here the one kept for the
    models of 2026-12-06/07, whose weights are gone) gives the figure its plain ladder as
    timed then and its models that the new call does not score; a file that is not such
    a results JSON is refused before any work, with the fix."""
    script = _script()
    path = ROOT / "benchmarks/results/kolmogorov_equivalent_resolution_ft_w16lr1s500.json"
    earlier = script._earlier_results(path)
    again = "interpolation_velocity:64:6:m2h2k1w8lr3s2000augx32"
    ((name, date, plain_costs, plain_times, rows),) = script._earlier_points([(path, earlier)], [again])
    assert name == path.name and date == earlier["date"]
    assert len(plain_costs) == len(plain_times) == len(earlier["ladder"]) and plain_costs == sorted(plain_costs)
    assert plain_times == sorted(plain_times)  # a finer rung stays correlated longer
    models = [spec for spec, _, _ in rows]
    assert again not in models and "interpolation_velocity:64:6:ft_w16lr1s500" in models
    assert len(models) == len(earlier["mean_scores"]) - len(earlier["ladder"]) - 1
    spec, cost, corr = rows[0]
    assert cost == earlier["seconds_per_time_unit_per_trajectory"][spec]
    assert corr == earlier["mean_scores"][spec]["correlation_time"]
    monkeypatch.chdir(ROOT)
    bad = tmp_path / "bad.json"
    for text, says in (("{}", "lacks ['date', 'ladder'"), ("not json", "cannot be read as JSON")):
        bad.write_text(text)
        argv = ["--part", "evaluate", "--earlier", str(bad), "--out", str(tmp_path / "out")]
        assert exit_status(script.main, argv) == 2
        stderr = capsys.readouterr().err
        assert f"--earlier {bad}: " in stderr and says in stderr and "Fix:" in stderr
    assert not (tmp_path / "out").exists()


def test_compare_pairs_models_scored_in_different_calls(tmp_path, capsys, monkeypatch):
    """``--part compare``: per-state scores pooled over two kept results files (the same
    held-out states: their plain rungs agree) pair a model of one with a model of the
    other; a pair within one file reads exactly what that evaluation recorded, and the
    50-unit rollouts' per-run energies pair where both models have them. Files
    that disagree on a rung, an unknown model, or a pair that is not ``A=B`` are refused
    with the fix, before anything is written."""
    script = _script()
    monkeypatch.chdir(ROOT)
    head = "benchmarks/results/kolmogorov_equivalent_resolution.json"
    old = "benchmarks/results/kolmogorov_equivalent_resolution_ft_w16lr1s500.json"
    recorded = json.loads((ROOT / head).read_text())
    headline = recorded["headline_model"]
    other = next(m for m in recorded["models"] if m != headline)
    earlier = "interpolation_velocity:64:6:m2h2k1w8lr3s2000augx32"  # scored only in the older file
    out = tmp_path / "paired.json"
    argv = ["--part", "compare", "--scores", head, old, "--results", str(out)]
    assert exit_status(script.main, [*argv, "--pairs", f"{other}={headline}", f"{headline}={earlier}"]) == 0
    pairs = json.loads(out.read_text())["pairs"]
    assert pairs[0]["correlation_time"] == recorded["models"][other][f"paired_with_{headline}"]["correlation_time"]
    across = pairs[1]["correlation_time"]
    assert across["states"] == 16 and across["lower"] <= across["estimate"] <= across["upper"]
    assert f"{headline} / {earlier}: correlation_time" in capsys.readouterr().out
    long = recorded["long_rollout_50"]
    both = all(long.get(m, {}).get("per_run_kinetic_energy") for m in (other, headline))
    assert ("kinetic_energy_50" in pairs[0]) == bool(both)  # where the file records the per-run energies
    assert "kinetic_energy_50" not in pairs[1]  # the older file does not

    # the long rollouts' per-run energies (one run per held-out state) pair as the scores do
    energies = json.loads((ROOT / head).read_text())
    per_run = {headline: [1.0 + 0.01 * i for i in range(16)], other: [0.9 * (1.0 + 0.01 * i) for i in range(16)]}
    for model, runs in per_run.items():
        energies["long_rollout_50"].setdefault(model, {})["per_run_kinetic_energy"] = runs
    with_energies = tmp_path / "with_energies.json"
    with_energies.write_text(json.dumps(energies))
    argv = ["--part", "compare", "--scores", str(with_energies), "--results", str(out)]
    assert exit_status(script.main, [*argv, "--pairs", f"{other}={headline}"]) == 0
    energy = json.loads(out.read_text())["pairs"][0]["kinetic_energy_50"]
    assert energy["estimate"] == pytest.approx(0.9) and energy["larger_on"] == 0 and energy["states"] == 16
    assert energy["lower"] == pytest.approx(0.9) and energy["upper"] == pytest.approx(0.9)
    energies["long_rollout_50"][other]["per_run_kinetic_energy"][3] = None  # a run that blew up: no pairing
    with_energies.write_text(json.dumps(energies))
    assert exit_status(script.main, [*argv, "--pairs", f"{other}={headline}"]) == 0
    assert "kinetic_energy_50" not in json.loads(out.read_text())["pairs"][0]
    capsys.readouterr()

    shifted = json.loads((ROOT / old).read_text())
    shifted["per_state_scores"]["plain_32"]["correlation_time"][0] += 0.01  # another set of states
    bad = tmp_path / "shifted.json"
    bad.write_text(json.dumps(shifted))
    out.unlink()
    for extra, says in (
        (["--scores", head, str(bad), "--pairs", f"{headline}={earlier}"], "plain_32 reads differently"),
        (["--scores", head, "--pairs", f"{headline}={earlier}"], f"['{earlier}'] not scored"),
        (["--scores", head, "--pairs", headline], "is not A=B"),
        (["--pairs", f"{headline}={headline}"], "needs --scores"),
    ):
        assert exit_status(script.main, ["--part", "compare", "--results", str(out), *extra]) == 2
        stderr = capsys.readouterr().err
        assert says in stderr and "Fix:" in stderr, stderr
    assert not out.exists()


def test_errors_by_time_and_the_equivalent_resolution_along_the_rollout():
    """``errors_by_time``: relative L2 of the velocity and of the vorticity at every save
    (a run 10 % too strong is 10 % off in both; a blown-up run is ``inf`` from there on).
    ``equivalence_by_time``: a model that errs as the 64^2 rung does reads 2x at every
    time, exactly; one halfway between the 32^2 and 64^2 rungs' errors reads 2^0.5 (the
    ladder is interpolated linearly in log n); a blown-up save reads ``None``."""
    reference = ladder.coarse_trajectories(_runs(16, [0, 1], 40), 8)
    step = ladder.stepper(8)
    errors = ladder.errors_by_time(step, 1.1 * reference, reference)
    for quantity in ("velocity", "vorticity"):
        assert errors[quantity].shape == reference.shape[:2]
        np.testing.assert_allclose(errors[quantity], 0.1, rtol=1e-6)
    blown = np.array(reference)
    blown[1, 10:] = np.nan
    errors = ladder.errors_by_time(step, blown, reference)
    assert np.all(errors["vorticity"][1, 10:] == np.inf) and np.all(errors["velocity"][0] == 0)

    rng = np.random.default_rng(0)
    base = rng.uniform(0.01, 0.1, (16, 21)) * np.linspace(1, 5, 21)  # (states, saves): growing errors
    rungs = np.stack([4 * base, 2 * base, base])  # 32, 64, 128
    curve = ladder.equivalence_by_time(rungs[1], rungs, [32, 64, 128], coarse=32, every=4)
    assert curve["time"] == [round(i * ladder.EVAL_INTERVAL, 10) for i in (4, 8, 12, 16, 20)]
    np.testing.assert_allclose(curve["factor"], 2.0)
    np.testing.assert_allclose(curve["lower"], 2.0)
    np.testing.assert_allclose(curve["upper"], 2.0)  # every resample of the states: the same rung
    halfway = ladder.equivalence_by_time(3 * base, rungs, [32, 64, 128], coarse=32, every=4)
    np.testing.assert_allclose(halfway["factor"], 2**0.5)
    assert all(lo <= 2**0.5 <= hi for lo, hi in zip(halfway["lower"], halfway["upper"]))
    worse = np.array(3 * base)
    worse[5, 8:] = np.inf
    curve = ladder.equivalence_by_time(worse, rungs, [32, 64, 128], coarse=32, every=4)
    assert curve["factor"][0] is not None and curve["factor"][1:] == [None] * 4
    with pytest.raises(ValueError, match=r"expected \(rungs, states, saves\) and \(states, saves\)"):
        ladder.equivalence_by_time(base[:8], rungs, [32, 64, 128])


def test_the_by_time_figure_draws_every_model_and_the_ruler(tmp_path):
    """``_by_time_figure`` (``--part evaluate``'s second figure) renders each model's
    velocity and vorticity curves, its correlation-time level where it has one, and the
    information ruler, skipping the saves at which a run had blown up (``None``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    script = _script()
    rng = np.random.default_rng(0)
    base = rng.uniform(0.01, 0.1, (16, 21)) * np.linspace(1, 5, 21)
    rungs = np.stack([4 * base, 2 * base, base])
    worse = np.array(3 * base)
    worse[5, 8:] = np.inf  # blown up: the curve stops
    curves = {
        q: ladder.equivalence_by_time(rungs[1], rungs, [32, 64, 128], coarse=32, every=4)
        for q in ("velocity", "vorticity")
    }
    broken = {
        q: ladder.equivalence_by_time(worse, rungs, [32, 64, 128], coarse=32, every=4)
        for q in ("velocity", "vorticity")
    }
    by_time = {"interpolation:16:3:a": curves, "interpolation:16:3:b": broken, script.PREDICTABILITY: curves}
    results = {
        "interpolation:16:3:a": {"correlation_time": {"factor": 2.0}},
        "interpolation:16:3:b": {"correlation_time": {"factor": None}},
    }
    path = tmp_path / "by_time.png"
    labels = script._by_time_figure(plt, path, by_time, results, lambda spec: spec.split(":")[-1], ["C0", "C1"])
    assert path.stat().st_size > 10_000
    ruler = [x for x in labels if "from the" in x]
    assert len(ruler) == 2 and all("state alone" in x for x in ruler)
    for name in ("a", "b"):
        assert f"{name}: velocity error" in labels and f"{name}: vorticity error" in labels
    assert "a: correlation time" in labels and "b: correlation time" not in labels  # b has no reading
    assert len(labels) == 7


def test_the_spectrum_figure_draws_each_stable_model_against_the_truth(tmp_path):
    """``_spectrum_figure`` (``--part evaluate``'s third figure): one curve per model
    whose long rollouts have a spectrum (not one whose runs all blew up), labelled with
    its energy ratio and worst deviation, and the 15 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    script = _script()
    k = list(range(1, ladder.K_MAX + 1))
    truth = {"k": k, "spectrum": [1.0 / n**3 for n in k], "kinetic_energy": 1.0}
    low = {"spectrum": [0.9 / n**3 for n in k], "kinetic_energy_ratio": 0.9, "max_spectrum_deviation": 0.1}
    stats = {"truth": truth, "interpolation:16:3:a": low, "interpolation:16:3:b": {"stable_runs": 0}}
    path = tmp_path / "spectrum.png"
    labels = script._spectrum_figure(plt, path, stats, lambda spec: spec.split(":")[-1], {"interpolation:16:3:a": "C0"})
    assert path.stat().st_size > 10_000
    assert labels == ["within 15 % of the truth", "a: energy 0.900, worst 10.0%"]


def test_errors_by_shell_put_an_error_in_the_shell_of_its_wavenumber():
    """``errors_by_shell``: a perturbation of one Fourier mode (|k| = 10) is an error in
    the 8.5-12.5 shell only, of the size its energy against the reference's there says;
    the reference against itself has none; mismatched shapes are refused."""
    reference = ladder.coarse_trajectories(_runs(16, [0, 1], 40), 8)[:, :5]  # (2, 5, 2, 8, 8)
    reference = np.repeat(np.repeat(reference, 4, axis=-1), 4, axis=-2)  # on 32^2: every shell holds energy
    reference = reference + 0.01 * np.random.default_rng(0).normal(size=reference.shape)
    x = np.arange(32) * 2 * np.pi / 32
    wave = 0.05 * np.cos(10 * x)[None, :] * np.ones((32, 1))  # k = (0, 10) on the last axis
    runs = np.array(reference)
    runs[:, 3, 0] += wave
    errors = ladder.errors_by_shell(runs, reference, saves=[0, 3])
    assert errors.shape == (2, len(ladder.SHELLS) - 1)
    assert np.all(errors[0] == 0) and errors[1, 2] > 0
    np.testing.assert_array_less(errors[1, [0, 1, 3]], 1e-12)
    k = np.fft.fftfreq(32, 1 / 32)
    shell = (np.hypot(k[:, None], k[None]) >= 8.5) & (np.hypot(k[:, None], k[None]) < 12.5)
    power = np.sum(np.abs(np.fft.fft2(reference[:, 3])) ** 2 * shell)
    expected = np.sqrt(2 * np.sum(np.abs(np.fft.fft2(wave)) ** 2) / power)  # the wave in both states
    np.testing.assert_allclose(errors[1, 2], expected, rtol=1e-10)
    with pytest.raises(ValueError, match="must be the same"):
        ladder.errors_by_shell(runs[:, :4], reference, saves=[0])


def test_results_json_holds_no_infinity():
    """A model that blew up has infinite errors: the results file writes them as null
    (strict JSON), not as ``Infinity``."""
    import json

    script = _script()
    out = {"a": [1.0, np.inf, np.float32(-np.inf), np.nan], "b": {"c": (np.float64(2.5), "x", 3)}}
    text = json.dumps(script._json_safe(out), allow_nan=False)
    assert json.loads(text) == {"a": [1.0, None, None, None], "b": {"c": [2.5, "x", 3]}}


def test_ladder_runs_with_split_steps_measure_the_time_step_error(tmp_path):
    """``substeps``: the same rung with its step split (``--part time-step``): kept at the
    same times, cached apart; at the ladder's step, and at twice it, the time-step error
    is a small part of the grid's (the rung at twice the resolution)."""
    step = ladder.stepper(32)
    u = step.equation.project(kolmogorov.initial_velocity(step.equation.grid, 0, max_velocity=1.0))
    starts = np.asarray(u)[None, None].repeat(ladder.STATES_PER_SEED, axis=1)  # (1 seed, 4 states, 2, 32, 32)
    one = ladder.ladder_runs(tmp_path, starts, resolutions=(16,), score_resolution=8)[16]
    two = ladder.ladder_runs(tmp_path, starts, resolutions=(16,), score_resolution=8, substeps=2)[16]
    assert ladder.stepper(16, substeps=2).dt == pytest.approx(ladder.dt(16) / 2)
    assert one.shape == two.shape == (4, round(ladder.EVAL_HORIZON / ladder.EVAL_INTERVAL) + 1, 2, 8, 8)
    doubled = ladder.ladder_runs(tmp_path, starts, resolutions=(16,), score_resolution=8, multiple=2)[16]
    assert doubled.shape == one.shape and ladder.stepper(16, multiple=2).dt == pytest.approx(2 * ladder.dt(16))
    assert len(list(tmp_path.glob("rung16*.npz"))) == 3  # cached apart
    finer = ladder.ladder_runs(tmp_path, starts, resolutions=(32,), score_resolution=8)[32]
    at = 4  # t = 0.32, before the chaotic growth of differences
    in_time, longer, in_space = (np.max(np.abs(one[:, at] - other[:, at])) for other in (two, doubled, finer))
    print(
        f"at t = 0.32: halving the step changes the state by {in_time:.3g}, doubling it by {longer:.3g}, "
        f"doubling the grid by {in_space:.3g}"
    )
    assert 0 < in_time < longer < 0.05 * in_space
    with pytest.raises(ValueError, match="do not divide the save interval"):
        ladder.ladder_runs(tmp_path, starts, resolutions=(16,), score_resolution=8, multiple=3)
    with pytest.raises(ValueError, match="substeps must be an int >= 1, got 0"):
        ladder.stepper(16, substeps=0)


def _watch_fit(monkeypatch) -> dict:
    """Record the training states and the validation function that ``ladder.train``
    hands ``nnpde.fit`` (which still runs) in the returned dict."""
    seen = {}
    real_fit = nnpde.fit

    def fit(net, loss, train_part, **kw):
        seen["train"], seen["evaluate"] = np.asarray(train_part), kw["evaluate"]
        return real_fit(net, loss, train_part, **kw)

    monkeypatch.setattr(nnpde, "fit", fit)
    return seen


def _final_evaluation(result) -> dict:
    """The validation figures of a ``ladder.train`` result's final model, as ``nnpde.fit``
    recorded them (``eval_<name>`` at the last step)."""
    (last,) = [row for row in result.history if row["step"] == int(result.state.step) and "eval_val_blown_up" in row]
    return {k.removeprefix("eval_"): v for k, v in last.items() if k.startswith("eval_")}


def test_a_model_at_a_longer_step_trains_on_every_other_state(tmp_path, monkeypatch, correction_run):
    """``multiple``: the model takes that many coarse steps as one, starts as the plain
    solver at that step (run without the CFL check, which fails from twice the
    ladder's step), trains on every ``multiple``-th state with the validation horizon
    unchanged in time, and is rebuilt at its step from its settings."""
    model = ladder.model("interpolation_velocity", hidden=4, depth=2, resolution=16, multiple=2)
    plain = ladder.stepper(16, multiple=2, check_stability=False)
    assert model.dt == pytest.approx(2 * ladder.dt(16))
    u0 = _runs(16, [3], 1)[0, 0]
    np.testing.assert_array_equal(nnpde.rollout(model, u0, 3), nnpde.rollout(plain, u0, 3))
    assert not model.stepper.check_stability and ladder.model("correction", resolution=16).stepper.check_stability

    data = _runs(16, range(6), 12)
    seen = _watch_fit(monkeypatch)
    common = dict(kind="correction", hidden=4, depth=2, steps=1, window=2, batch_size=2, progress=False)
    result = ladder.train(tmp_path, data, multiple=2, validation_steps=4, eval_every=1, **common)
    np.testing.assert_array_equal(seen["train"], data[:-4, ::2])
    assert result.model.dt == pytest.approx(2 * ladder.dt(16))
    again, _, settings = ladder.trained(tmp_path, kind="correction", hidden=4, depth=2, resolution=16)
    assert settings["multiple"] == 2 and settings["data"] == list(data.shape)
    assert again.dt == pytest.approx(2 * ladder.dt(16))
    # the validation rolls the model over the same 4 coarse steps (2 of its own) as at the ladder's step
    figures = seen["evaluate"](ladder.model("correction", hidden=4, depth=2, resolution=16, multiple=2))  # plain
    assert figures["val_correlation_time"] == pytest.approx(4 * ladder.dt(16))
    assert figures["val_blown_up"] == 0
    # a model that blows up in validation is measured, not stopped: the validation runs
    # it without the runtime check (which would raise Diverged) and scores its runs from
    # their last finite state (a run at the ladder's step, trained on the same data)
    _, _, checked, at_ladder_step = correction_run
    assert checked.model.stepper.check_stability
    params, static = nnpde.partition(checked.model)
    wild = nnpde.combine(jax.tree.map(lambda p: p + 1e200, params), static)
    figures = at_ladder_step["evaluate"](wild)
    assert figures["val_blown_up"] > 0 and 0 <= figures["val_correlation_time"] < 4 * ladder.dt(16)
    refused = r"multiple=3 x hold=1 = 3 coarse steps per model step does not divide all of \{'validation_steps': 4"
    with pytest.raises(ValueError, match=refused):
        ladder.train(tmp_path, data, multiple=3, validation_steps=4, tag="bad", **common)
    # 16^2 keeps 2 coarse steps per EVAL_INTERVAL: a 4-step model could not be scored there
    with pytest.raises(ValueError, match="cannot keep the evaluation's state every 2 coarse steps"):
        ladder.train(tmp_path, data, multiple=4, validation_steps=4, tag="bad", **common)


def test_a_model_holding_its_stencils_over_two_steps_trains_on_every_other_state(tmp_path, monkeypatch):
    """``hold``: the learned stencils are chosen once per ``hold`` coarse steps, each
    inner step at the ladder's step and so still checked; a zero network is the plain
    solver; training reads every ``hold``-th state and the run is rebuilt with its
    hold and its network's 1 x 1 head (``head=1``) and, trained with
    ``forcing_inputs``, its network's forcing-phase inputs, and with ``stencil=6``, its
    6 x 6 stencils, and with ``base="central"``, stencils that correct the two-cell mean
    (a zero network: the plain solver with central advection, not the ladder's van
    Leer), and with ``separable``, its depthwise-separable hidden layers (a zero network:
    the plain solver again); a kind without stencils, a hold that does not divide the evaluation
    interval, another head, a stencil or base on a kind without stencils, or an unknown
    base, is refused."""
    model = ladder.model("interpolation_velocity", hidden=4, depth=2, resolution=16, hold=2)
    assert model.dt == pytest.approx(2 * ladder.dt(16)) and model.hold == 2 and model.stepper.check_stability
    u0 = _runs(16, [3], 1)[0, 0]
    np.testing.assert_allclose(
        nnpde.rollout(model, u0, 2)[-1], nnpde.rollout(ladder.stepper(16), u0, 4)[-1], rtol=0, atol=1e-12
    )
    with pytest.raises(ValueError, match="hold=2 holds learned stencils over several steps; kind 'correction'"):
        ladder.model("correction", resolution=16, hold=2)
    with pytest.raises(ValueError, match=r"head must be 1 or 3 .* got 5"):
        ladder.model("interpolation", resolution=16, head=5)
    wide = ladder.model("interpolation_velocity", hidden=4, depth=2, resolution=16, stencil=6)  # zero: plain
    np.testing.assert_allclose(wide(jnp.asarray(u0)), ladder.stepper(16)(jnp.asarray(u0)), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="stencil=6 sizes a learned interpolation's stencils; kind 'closure'"):
        ladder.model("closure", resolution=16, stencil=6)
    with pytest.raises(ValueError, match=r"stencil must be an int >= 3, got 2"):
        ladder.model("interpolation", resolution=16, stencil=2)
    linear = ladder.model("interpolation_velocity", hidden=4, depth=2, resolution=16, base="central")
    central = ladder.stepper(16, advection="central")
    assert central.equation.flow.advection == "central" and isinstance(central.equation.reconstruction, nnpde.Central)
    assert isinstance(linear.stepper.equation.reconstruction.base, nnpde.Central)
    np.testing.assert_allclose(linear(jnp.asarray(u0)), central(jnp.asarray(u0)), rtol=0, atol=1e-12)
    assert np.max(np.abs(np.asarray(central(jnp.asarray(u0)) - ladder.stepper(16)(jnp.asarray(u0))))) > 1e-6
    with pytest.raises(ValueError, match="base='central' is the scheme a learned interpolation corrects; kind 'clos"):
        ladder.model("closure", resolution=16, base="central")
    with pytest.raises(ValueError, match=r"base must be one of \('van_leer', 'central'\), got 'weno'. Fix:"):
        ladder.model("interpolation", resolution=16, base="weno")
    thin = ladder.model("interpolation_velocity", hidden=4, depth=3, resolution=16, separable=True)  # zero: plain
    np.testing.assert_allclose(thin(jnp.asarray(u0)), ladder.stepper(16)(jnp.asarray(u0)), rtol=0, atol=1e-12)
    with pytest.raises(TypeError, match="separable"):
        ladder.model("interpolation", resolution=16, separable="yes")

    data = _runs(16, range(6), 12)
    seen = _watch_fit(monkeypatch)
    common = dict(kind="interpolation", hidden=4, depth=3, steps=1, window=2, batch_size=2, progress=False)
    result = ladder.train(
        tmp_path,
        data,
        hold=2,
        head=1,
        forcing_inputs=True,
        stencil=6,
        base="central",
        separable=True,
        validation_steps=4,
        eval_every=1,
        **common,
    )
    np.testing.assert_array_equal(seen["train"], data[:-4, ::2])
    assert result.model.hold == 2 and int(result.state.step) == 1
    # the figures of seen["evaluate"](result.model), as fit's final evaluation recorded
    # them (running it again would compile the model's validation rollouts a second time)
    figures = _final_evaluation(result)  # over the same 4 coarse steps, 2 of the model's
    assert figures["val_blown_up"] == 0 and 0 < figures["val_correlation_time"] <= 4 * ladder.dt(16) + 1e-9
    again, _, settings = ladder.trained(tmp_path, kind="interpolation", hidden=4, depth=3, resolution=16)
    assert settings["hold"] == 2 and "multiple" not in settings and again.dt == pytest.approx(2 * ladder.dt(16))
    assert settings["head"] == 1
    kernels = [leaf.shape for leaf in jax.tree.leaves(again) if getattr(leaf, "ndim", 0) == 4]
    assert kernels[-1][:2] == (1, 1) and kernels[0][:2] == (3, 3)
    assert settings["forcing_inputs"] is True and kernels[0][2] == 4  # the velocity and the forcing's phase
    assert settings["stencil"] == 6 and again.stepper.equation.reconstruction.size == 6
    assert settings["base"] == "central" and isinstance(again.stepper.equation.reconstruction.base, nnpde.Central)
    targets, sides = ladder.stepper(16).equation.reconstruction_targets  # 33 coefficients: 36 cells less 3
    assert kernels[-1][3] == targets * sides * 33 == targets * sides * nnpde.correction_size(6, 2)
    network = again.stepper.equation.reconstruction.network
    assert isinstance(network, nnpde.FieldConditioned)
    assert settings["separable"] is True and len(kernels) == 2  # the middle layer: depthwise (3-D), pointwise (2-D)
    assert (3, 3, 4) in [leaf.shape for leaf in jax.tree.leaves(again) if getattr(leaf, "ndim", 0) == 3]
    np.testing.assert_array_equal(network.fields, ladder.forcing_fields(16))
    # 16^2 keeps a state every 2 coarse steps: a block of 2 x 2 is scored at its inner
    # steps (``test_a_held_block_longer_than_the_save_interval_is_kept_at_its_inner_steps``),
    # an inner step of 3 could not be
    with pytest.raises(ValueError, match=r"multiple=3 x hold=2 = 6 coarse steps per model step cannot keep"):
        ladder.train(tmp_path, data, multiple=3, hold=2, validation_steps=6, tag="bad", **common)


def test_a_held_block_longer_than_the_save_interval_is_kept_at_its_inner_steps():
    """A model whose held block (``multiple x hold`` coarse steps) is longer than the
    evaluation's save interval is kept at its inner steps (``save_spacing``,
    ``kept_states``, ``rollouts_every``, ``long_rollout``): one network call per block
    still, the states the ones its own steps reach, and a zero network the plain
    solver's at every interval; a spacing that fits neither way is refused."""
    u0 = _runs(16, [3, 4], 1)[:, 0]
    block = ladder.model("interpolation_velocity", hidden=4, depth=2, resolution=16, multiple=1, hold=4)
    assert block.dt == pytest.approx(2 * ladder.EVAL_INTERVAL)  # 16^2: dt(16) = EVAL_INTERVAL / 2
    assert ladder.save_spacing(block) == (1, 2) and ladder.save_spacing(ladder.stepper(16)) == (2, 1)
    plain = ladder.rollouts(ladder.stepper(16), u0, 4, 2)  # zero network: the plain solver
    np.testing.assert_allclose(ladder.rollouts_every(block, u0, 4), plain, rtol=0, atol=1e-12)
    params, static = nnpde.partition(block)
    key = iter(jax.random.split(jax.random.key(0), 64))
    trained = nnpde.combine(jax.tree.map(lambda p: p + 0.01 * jax.random.normal(next(key), p.shape), params), static)
    kept = ladder.rollouts_every(trained, u0, 5)
    assert kept.shape == (2, 6, 2, 16, 16) and np.max(np.abs(kept - ladder.rollouts_every(block, u0, 5))) > 1e-6
    np.testing.assert_allclose(kept[:, ::2], ladder.rollouts(trained, u0, 2, 1), rtol=0, atol=1e-6)
    long, reached = ladder.long_rollout(trained, u0[0], 0.48, chunk=0.16)
    assert reached == pytest.approx(0.48)
    np.testing.assert_allclose(long[:6], kept[0], rtol=0, atol=1e-6)
    for step, interval in ((block, 0.12), (ladder.model("interpolation", resolution=16, multiple=2, hold=3), 0.16)):
        with pytest.raises(ValueError, match="cannot keep a state every"):
            ladder.save_spacing(step, interval)


def test_forcing_inputs_give_the_network_the_forcing_phase():
    """``forcing_inputs``: the network reads ``sin(k y)`` and ``cos(k y)`` beside the
    velocity. The first is the forcing's own profile (at the u-faces' ``y``, which are
    the cell centres' ``y``). A zero network is still the plain solver; a perturbed
    one depends on the fields; a kind without a learned interpolation, or a non-bool,
    is refused."""
    from solvers.navier_stokes import kolmogorov_forcing

    fields = ladder.forcing_fields(16)
    forcing = kolmogorov_forcing(kolmogorov.make_grid(16), wavenumber=kolmogorov.WAVENUMBER)
    assert fields.shape == (2, 16, 16)
    np.testing.assert_allclose(fields[0], forcing[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(fields[0] ** 2 + fields[1] ** 2, 1.0, rtol=0, atol=1e-6)
    model = ladder.model("interpolation_velocity", hidden=4, depth=2, resolution=16, forcing_inputs=True)
    u0 = jnp.asarray(_runs(16, [3], 1)[0, 0])
    np.testing.assert_allclose(model(u0), ladder.stepper(16)(u0), rtol=0, atol=1e-12)
    network = model.equation.reconstruction.network
    rng = np.random.default_rng(0)
    perturbed = jax.tree.map(
        lambda x: x + 0.1 * rng.standard_normal(x.shape) if eqx.is_inexact_array(x) and x.ndim == 4 else x, network
    )
    blind = eqx.tree_at(lambda n: n.fields, perturbed, jnp.zeros_like(fields))
    assert not np.allclose(perturbed(u0), blind(u0), atol=1e-6)
    with pytest.raises(ValueError, match="forcing_inputs=True conditions a learned interpolation's network"):
        ladder.model("correction", resolution=16, forcing_inputs=True)
    with pytest.raises(TypeError, match="forcing_inputs"):  # (the suite's type checker may refuse it first)
        ladder.model("interpolation", resolution=16, forcing_inputs=1)


def test_costs_are_timed_as_one_program_and_split_over_the_devices():
    """``best_cost``: the suite runs on 4 host devices, so a batch of 4 states is timed
    both ways and charged the lower; a batch that does not split is timed once."""
    step = ladder.stepper(16)
    states = _runs(16, range(4), 0)[:, 0]
    seconds, by = ladder.best_cost(step, states, duration=4 * ladder.dt(16), repeats=1)
    assert set(by) == {1, jax.local_device_count()} and seconds == min(by.values()) > 0
    _, by = ladder.best_cost(step, states[:3], duration=4 * ladder.dt(16), repeats=1)
    assert set(by) == {1}


def test_the_evaluation_gets_one_device_per_core_unless_the_caller_chose(monkeypatch):
    """``scripts/kolmogorov_ladder.py --part evaluate`` starts JAX with one CPU device per
    core it may use; other parts, and a caller's own device count, are left alone."""
    import os
    import sys

    script = _script()
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(sys, "argv", ["kolmogorov_ladder.py", "--part", "evaluate"])
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    script._one_device_per_core()
    assert os.environ["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count={cores}"
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=3")
    script._one_device_per_core()
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=3"
    monkeypatch.setattr(sys, "argv", ["kolmogorov_ladder.py", "--part", "model"])
    monkeypatch.delenv("XLA_FLAGS")
    script._one_device_per_core()
    assert "XLA_FLAGS" not in os.environ
    # the --part value only: a model tagged "costs" is trained as any other
    monkeypatch.setattr(sys, "argv", ["kolmogorov_ladder.py", "--part", "model", "--tag", "costs"])
    script._one_device_per_core()
    assert "XLA_FLAGS" not in os.environ
    monkeypatch.setattr(sys, "argv", ["kolmogorov_ladder.py", "--part=costs"])
    script._one_device_per_core()
    assert os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count={cores}"


def test_the_cost_breakdown_times_each_part_of_a_model_step(tmp_path, monkeypatch):
    """``--part costs``: per variant the network alone, a held step, a plain step and
    the whole model step (which runs the network, so costs more than it), the model's
    cost both ways over the devices, and its parameter count; a malformed variant is
    refused with the expected form."""
    import argparse
    import json

    script = _script()
    # each part timed as the best of 5 means over 2 calls, not over 20 (the script's
    # default): 40 calls of the compiled parts instead of 400; the best of 5 short
    # windows still skips a busy moment of the machine
    monkeypatch.setattr(script, "_best_ms", functools.partial(script._best_ms, calls=2, repeats=5))
    results = tmp_path / "costs.json"
    args = argparse.Namespace(variants=["4:2:2:2:1"], results=results)
    assert script.model_costs(args, states=4, rungs=(16,)) == 0
    out = json.loads(results.read_text())
    row = out["models"]["4:2:2:2:1"]
    assert (
        row["model_step_ms"] > row["network_ms"] > 0
        and row["held_inner_step_ms"] > 0 < row["held_inner_step_unexpanded_ms"]
    )
    assert set(row["by_devices"]) == {"1", str(jax.local_device_count())}
    net = ladder.model("interpolation_velocity", hidden=4, depth=2, head=1).stepper.equation.reconstruction.network
    assert row["network_parameters"] == sum(x.size for x in jax.tree.leaves(eqx.filter(net, eqx.is_inexact_array)))
    assert set(out["plain"]) == {"plain_16"}
    with pytest.raises(SystemExit, match="is not H:D:MULTIPLE:HOLD:HEAD"):
        script.model_costs(argparse.Namespace(variants=["4:2:2"], results=results), states=4, rungs=())


def test_augmented_training_maps_each_window_by_a_random_symmetry(tmp_path, monkeypatch):
    """``augment=True``: the loss handed to ``nnpde.fit`` is the unrolled loss of the
    batch mapped by ``kolmogorov.random_symmetry`` (its key split from the step's key),
    the setting is recorded for the run, and anything but a bool is refused."""
    seen = {}
    monkeypatch.setattr(nnpde, "fit", lambda net, loss, data, **kw: seen.update(net=net, loss=loss, data=data))
    data = _runs(16, range(6), 12)
    common = dict(kind="correction", hidden=4, depth=2, steps=1, window=2, batch_size=2, validation_steps=4)
    ladder.train(tmp_path, data, augment=True, progress=False, **common)
    settings = (ladder.model_dir(tmp_path, "correction", 4, 2) / "settings.json").read_text()
    assert '"augment": true' in settings
    batch, key = jnp.asarray(data[:2, :3]), jax.random.key(7)
    mapped = kolmogorov.random_symmetry(jax.random.split(key)[1], batch)
    assert not np.array_equal(mapped, batch)  # this key maps the batch
    loss = eqx.filter_jit(seen["loss"])(seen["net"], batch, key)
    np.testing.assert_allclose(loss, eqx.filter_jit(nnpde.unrolled_loss)(seen["net"], mapped), rtol=1e-12)
    with pytest.raises(TypeError, match="augment"):  # (the suite's type checker may refuse it first)
        ladder.train(tmp_path, data, augment=1, tag="bad", progress=False, **common)


def test_a_vorticity_loss_compares_the_coarse_grids_vorticity(tmp_path, monkeypatch):
    """``loss_on="vorticity"``: the loss handed to ``nnpde.fit`` is the unrolled loss of
    the coarse grid's vorticity (not of the velocity), the setting is recorded for the run
    and a run with the default leaves it out (older runs resume with their settings); an
    unknown quantity is refused before any work."""
    seen = {}
    monkeypatch.setattr(nnpde, "fit", lambda net, loss, data, **kw: seen.update(net=net, loss=loss))
    data = _runs(16, range(6), 12)
    common = dict(kind="correction", hidden=4, depth=2, steps=1, window=2, batch_size=2, validation_steps=4)
    ladder.train(tmp_path, data, loss_on="vorticity", tag="vort", progress=False, **common)
    settings = (ladder.model_dir(tmp_path, "correction", 4, 2, "vort") / "settings.json").read_text()
    assert '"loss_on": "vorticity"' in settings
    batch, key = jnp.asarray(data[:2, :3]), jax.random.key(7)
    noise = 0.01 * jax.random.normal(jax.random.key(8), batch[:, 1:].shape, batch.dtype)  # rough: large in the curl
    batch = batch.at[:, 1:].add(noise)  # targets the model misses
    loss = eqx.filter_jit(seen["loss"])(seen["net"], batch, key)
    curl = ladder.stepper(16).equation.vorticity
    expected = eqx.filter_jit(nnpde.unrolled_loss)(seen["net"], batch, observable=curl)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    assert not np.isclose(loss, eqx.filter_jit(nnpde.unrolled_loss)(seen["net"], batch), rtol=1e-3)
    ladder.train(tmp_path, data, progress=False, **common)
    assert "loss_on" not in (ladder.model_dir(tmp_path, "correction", 4, 2) / "settings.json").read_text()
    with pytest.raises(ValueError, match=r"loss_on must be one of \['velocity', 'vorticity'\], got 'enstrophy'"):
        ladder.train(tmp_path, data, loss_on="enstrophy", tag="bad", progress=False, **common)


def test_a_spectrum_weight_adds_the_batch_mean_spectrum_term_to_the_loss(tmp_path, monkeypatch):
    """``spectrum_weight``: the loss handed to ``nnpde.fit`` is the unrolled loss plus
    the weighted spectrum term on the shells 1..K_MAX of the coarse grid (the term
    ``nnpde.unrolled_loss`` takes), the weight is recorded only when set, and a negative
    weight is refused before any work, in ``train`` and in the script's options."""
    seen = {}
    monkeypatch.setattr(nnpde, "fit", lambda net, loss, data, **kw: seen.update(net=net, loss=loss))
    data = _runs(16, range(6), 12)
    common = dict(kind="correction", hidden=4, depth=2, steps=1, window=2, batch_size=2, validation_steps=4)
    ladder.train(tmp_path, data, spectrum_weight=0.5, tag="spec", progress=False, **common)
    settings = (ladder.model_dir(tmp_path, "correction", 4, 2, "spec") / "settings.json").read_text()
    assert '"spectrum_weight": 0.5' in settings
    batch, key = jnp.asarray(data[:2, :3]), jax.random.key(7)
    batch = batch.at[:, 1:].multiply(0.9)  # the references hold less energy at every scale
    loss = eqx.filter_jit(seen["loss"])(seen["net"], batch, key)
    h = 2 * np.pi / 16

    def shells(u):
        return nnpde.metrics.energy_spectrum(u, h)[1][1 : ladder.K_MAX + 1]

    expected = nnpde.unrolled_loss(seen["net"], batch, spectrum=shells, spectrum_weight=0.5)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    plain = nnpde.unrolled_loss(seen["net"], batch)
    assert loss - plain > 0.5 * 0.01  # at least the first step's (2 log 0.9)^2 / 2, weighted
    ladder.train(tmp_path, data, progress=False, **common)
    assert "spectrum_weight" not in (ladder.model_dir(tmp_path, "correction", 4, 2) / "settings.json").read_text()
    with pytest.raises(ValueError, match=r"spectrum_weight must be a finite number >= 0, got -0.1"):
        ladder.train(tmp_path, data, spectrum_weight=-0.1, tag="bad", progress=False, **common)
    argv = ["--part", "model", "--spectrum-weight", "-1", "--out", str(tmp_path / "none")]
    assert exit_status(_script().main, argv) == 2
    assert not (tmp_path / "none").exists()


def test_generalisation_gap_reads_training_and_validation_seeds_apart():
    """``generalisation_gap``: the plain solver on its own runs has no loss on the
    training seeds; noise on the later states of the validation seeds (the last 4) shows
    up there only; trajectories too short for the window are refused."""
    data = np.array(_runs(16, range(6), 8))
    noisy = data.copy()
    noisy[-ladder.VALIDATION_SEEDS :, 1:] += 0.01 * np.random.default_rng(0).standard_normal(noisy[-4:, 1:].shape)
    gap = ladder.generalisation_gap(ladder.stepper(16), noisy, window=2, batches=2, batch_size=3)
    assert gap["train"]["mean"] < 1e-20 and gap["validation"]["mean"] > 1e-6 and gap["ratio"] > 1e10
    clean = ladder.generalisation_gap(ladder.stepper(16), data, window=2, batches=2, batch_size=3)
    assert clean["validation"]["mean"] < 1e-20
    with pytest.raises(ValueError, match=r"T > window=9"):
        ladder.generalisation_gap(ladder.stepper(16), data, window=9)


def test_extra_training_seeds_come_first_and_keep_the_validation_seeds_last(monkeypatch):
    """``--extra-seeds N``: N more seeds after the ladder's training seeds, their runs put
    before the ladder's so that the validation seeds (the last 4) stay the same; a count
    that would reach the held-out seeds, or none, is refused."""
    assert ladder.extra_seeds(3) == (32, 33, 34)
    with pytest.raises(
        ValueError, match=r"would reach the held-out seeds \(1000, 1001, 1002, 1003\). Fix: at most 968"
    ):
        ladder.extra_seeds(1000)
    with pytest.raises(ValueError, match="count must be an int >= 1"):
        ladder.extra_seeds(0)
    script = _script()

    def fake(folder, *, seeds=ladder.TRAIN_SEEDS):  # each run filled with its seed, at the kept 64^2
        return np.broadcast_to(np.asarray(seeds, np.float32)[:, None, None, None, None], (len(seeds), 3, 2, 64, 64))

    monkeypatch.setattr(script.ladder, "training_data", fake)
    both = script._training_trajectories(Path("unused"), extra_seeds=2)
    assert both.shape == (34, 3, 2, 32, 32)
    np.testing.assert_array_equal(both[:, 0, 0, 0, 0], [32, 33, *range(32)])
    np.testing.assert_array_equal(script._training_trajectories(Path("unused"))[:, 0, 0, 0, 0], range(32))
