"""Anomaly detection on a monitored board: the fault schedule, the physics, the
detectors on a short series, and ``nnpde detect`` end to end on a synthetic task."""

import dataclasses
import functools
import json
import shutil
import sys
import types
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from nnpde.runs import _detect
from nnpde.runs._cli import main
from problems import thermal_detectors, thermal_monitoring

ROOT = Path(__file__).resolve().parents[1]


def test_faults_are_disjoint_labelled_ranges_of_every_kind():
    rng = np.random.default_rng(3)
    f = thermal_monitoring.faults(rng, 20_000, 8)
    ranges = nnpde.metrics.label_ranges(f.kind >= 0)
    assert len(ranges) == 8, f"{len(ranges)} ranges"
    assert np.all(ranges[1:, 0] - ranges[:-1, 1] >= 600), "faults closer than 600 normal samples"
    kinds = {int(f.kind[a]) for a, _ in ranges}
    assert kinds == set(range(len(thermal_monitoring.KINDS))), kinds
    # drivers change only inside the ranges; the degradation ramps down gradually
    normal = f.kind < 0
    assert np.all(f.fan[normal] == 1) and np.all(f.pad[normal] == 1) and np.all(f.load[normal] == 0)
    pad = f.pad[f.kind == thermal_monitoring.KINDS.index("degradation")]
    assert pad[0] > 0.99 and pad.min() < 0.15, (pad[0], pad.min())
    with pytest.raises(ValueError, match="do not fit"):
        thermal_monitoring.faults(rng, 3000, 8)


def test_coarse_physics_step_is_the_solvers_crank_nicolson_step():
    eq, chips, _, _ = thermal_detectors._coarse_parts()
    step = thermal_detectors.physics_step(eq, chips)
    rng = np.random.default_rng(0)
    temperature = jnp.asarray(rng.random(eq.state_shape))
    w = jnp.asarray(rng.random(len(thermal_monitoring.CHIP_POWER)))
    local = type(eq)(eq.grid, eq.bc, conductivity=eq.conductivity, source=jnp.tensordot(w, chips, 1))
    cn = nnpde.ThetaMethod(local, dt=thermal_monitoring.DT, method="crank_nicolson", solver="cg", rtol=1e-12)
    # compiled as one call (applied eagerly, the CG solve's operations compile one by one)
    solved = eqx.filter_jit(lambda stepper, t: stepper(t))(cn, temperature)
    expected = np.asarray(solved) * np.exp(-thermal_monitoring.H_FAN * thermal_monitoring.DT)
    np.testing.assert_allclose(np.asarray(step(temperature, w)), expected, atol=1e-10)


# the hybrid at toy size: a refresh of the open-loop states at steps 0, 3 and 6
SMALL = {"steps": 7, "batch": 2, "hidden": 4, "depth": 1, "refresh": 3, "checkpoint_every": 2, "progress": False}


@pytest.fixture(scope="module")
def tiny_board(tmp_path_factory):
    """The real task at toy size, run once for the tests that read it: one normal
    series to fit on, one to threshold on, one test series with a fan failure; the
    model-free detectors through ``nnpde detect``. Returns the run's folder and report."""
    tmp_path = tmp_path_factory.mktemp("tiny_board")
    task = thermal_monitoring.monitoring(n_steps=2500, n_anomalies=1)
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'out = "{tmp_path / "run"}"\n[data]\ntrain = 1\nvalidation = 1\ntest = 1\n'
        '[detect]\nfalse_alarm_rate = 0.001\ndetectors = ["physics", "fixed"]\n'
    )
    report = _detect.run_detection(task, _detect.load_detect_config(config), echo=lambda *a: None)
    return tmp_path, report


def test_tiny_monitored_board_end_to_end(tiny_board):
    """The fan failure is found by the physics and mostly missed by fixed limits (the
    learned detectors: the next test)."""
    tmp_path, report = tiny_board
    with np.load(tmp_path / "run" / "data" / "test-0.npz") as f:
        s = dict(f)
    assert s["readings"].shape == (2500, len(thermal_monitoring.SENSORS)) and np.all(np.isfinite(s["truth"]))
    assert s["truth"][-1].min() > 0 and s["labels"].sum() >= 300
    assert {int(k) for k in s["kind"][s["labels"] == 1]} == {thermal_monitoring.KINDS.index("fan")}
    # the fan failure raises no sensor above its normal range: invisible to fixed limits
    with np.load(tmp_path / "run" / "data" / "train-0.npz") as f:
        normal = f["readings"]
    assert np.all(s["readings"][s["labels"] == 1].max(axis=0) <= normal.max(axis=0)), "fault outside normal range"
    assert set(report["detectors"]) == {"physics", "fixed"}
    for name, r in report["detectors"].items():
        assert set(r["per_kind"]) == {"fan"} and 0 <= r["flat"]["f1"] <= 1, (name, r)
        assert np.all(np.isfinite(np.load(tmp_path / "run" / "residuals" / name / "test-0.npy"))), name
    # the physics finds it at once and almost whole; fixed limits, which the fault stays
    # inside on the training series, see a part of it late
    physics, fixed = report["detectors"]["physics"]["per_kind"]["fan"], report["detectors"]["fixed"]["per_kind"]["fan"]
    assert physics["recall_flat"] > 0.9 and physics["mean_delay"] < 50, physics
    assert fixed["recall_flat"] < 0.5 and fixed["mean_delay"] > 5 * physics["mean_delay"], fixed


def test_learned_detectors_fit_and_score_a_short_normal_series(tiny_board):
    # the first 200 samples of the tiny run's normal training series (no solve of its own)
    with np.load(tiny_board[0] / "run" / "data" / "train-0.npz") as f:
        s = {key: f[key][:200] for key in ("workload", "readings")}
    infos = {}
    for name, fit in (
        ("data", lambda t: thermal_detectors.data(t, steps=5, hidden=8)),
        ("hybrid", lambda t: thermal_detectors.hybrid(t, **SMALL)),  # without a directory: nothing kept
        ("emulator", lambda t: thermal_detectors.emulator(t, **SMALL)),
        ("hybrid_filter", lambda t: thermal_detectors.hybrid_filter(t, **SMALL)),
        ("physics_filter", lambda t: thermal_detectors.physics_filter(t)),
    ):
        residual, infos[name] = fit([s])
        z = residual(s)
        assert z.shape == s["readings"].shape and np.all(np.isfinite(z)), (name, infos[name])
    assert infos["hybrid"]["parameters"] == infos["emulator"]["parameters"] > 0, infos


@pytest.mark.parametrize("correction", [None, "linear"])
def test_the_kalman_filter_is_optimal_on_its_own_model(correction):
    """Readings of the model itself (the coarse physics; or the physics with a linear
    correction of random coefficients), driven by process noise of variance ``q
    NOISE^2`` per cell and read with the sensor noise: the filter's innovations are
    white with the covariance ``H P H' + R`` of the Riccati solution (what a wrong gain,
    linear part, sensor map or update order breaks); with ``q -> 0`` the filter is the
    open loop."""
    import scipy.linalg

    model = thermal_detectors._model()
    eq, chips, _, _ = thermal_detectors._coarse_parts()
    n_cells = eq.grid.shape[0]
    rng = np.random.default_rng(0)
    net = None
    if correction:
        net = thermal_detectors._correction(correction, 0, 16, 3)
        params = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)) * 1e-2, net.params)
        net = eqx.tree_at(lambda m: m.params, net, params)
    step = model.step(net) if net is not None else thermal_detectors.physics_step(eq, chips)
    n, q = 4000, 1.0
    w = jnp.asarray(rng.uniform(0.2, 1.0, (n, chips.shape[0])))
    e = jnp.asarray(np.sqrt(q) * thermal_monitoring.NOISE * rng.standard_normal((n, 1, n_cells, n_cells)))

    def body(x, we):
        x = step(x, we[0]) + we[1]
        return x, x[0, model.ix, model.iy]

    clean = jax.lax.scan(body, jnp.zeros((1, n_cells, n_cells)), (w, e))[1]
    y = clean + thermal_monitoring.NOISE * rng.standard_normal(clean.shape)
    shape = (1, n_cells, n_cells)
    f = thermal_detectors._linear_part(net, model)
    physics_f = np.asarray(model.a) * np.exp(-thermal_monitoring.H_FAN * thermal_monitoring.DT)
    if net is not None:  # the learned coefficients are in F: exp(-h DT) A + DT SCALE dA
        d_a = np.asarray(net.module.weight[...])[:, : n_cells**2]
        np.testing.assert_allclose(f, physics_f + thermal_monitoring.DT * thermal_detectors.SCALE * d_a, atol=1e-12)
    else:
        np.testing.assert_array_equal(f, physics_f)
    gain = thermal_detectors._filter_gain(f, np.asarray(model.ix), np.asarray(model.iy), shape, q)
    nu = np.asarray(thermal_detectors._innovations(net, model, gain, w, y))[200:]
    h = np.zeros((len(model.ix), n_cells**2))
    h[np.arange(len(model.ix)), np.asarray(model.ix) * n_cells + np.asarray(model.iy)] = 1.0
    r = thermal_monitoring.NOISE**2 * np.eye(len(model.ix))
    p = scipy.linalg.solve_discrete_are(f.T, h.T, q * thermal_monitoring.NOISE**2 * np.eye(n_cells**2), r)
    expected = h @ p @ h.T + r
    ratio = np.diag(np.cov(nu.T)) / np.diag(expected)
    assert np.all(np.abs(ratio - 1) < 0.1), ratio  # 3800 samples: a variance to ~2.3 %
    lag1 = np.mean(nu[1:] * nu[:-1], axis=0) / np.mean(nu**2, axis=0)
    assert np.all(np.abs(lag1) < 0.08), lag1  # white: 5 standard errors
    # q -> 0: no correction, the innovations are the open-loop residuals
    tiny = thermal_detectors._filter_gain(f, np.asarray(model.ix), np.asarray(model.iy), shape, 1e-10)
    open_loop = y - thermal_detectors._rollout(step, w, model.ix, model.iy)[1]
    np.testing.assert_allclose(thermal_detectors._innovations(net, model, tiny, w, y), open_loop, atol=1e-6)
    with pytest.raises(ValueError, match="process_noise must be positive"):
        thermal_detectors.physics_filter([], process_noise=0.0)


def _short_series(tiny_board, n: int = 200) -> dict:
    with np.load(tiny_board[0] / "run" / "data" / "train-0.npz") as f:
        return {key: f[key][:n] for key in ("workload", "readings")}


def _stop_after(step: int, error: BaseException):
    def on_step(done, loss):
        if done == step:
            raise error

    return on_step


def _saved_steps(directory) -> list[int]:
    with nnpde.Checkpointer(directory / "checkpoints", read_only=True) as reader:
        return reader.all_steps()


def _saved_arrays(directory, step: int) -> dict:
    """Every array of a checkpoint (its ``arrays`` item, ``nnpde.Checkpointer``'s format)."""
    import orbax.checkpoint as ocp

    return ocp.StandardCheckpointer().restore(directory / "checkpoints" / str(step) / "arrays")


def test_interrupted_hybrid_training_resumes_bitwise(tiny_board, tmp_path):
    """A crash after step 5 (not a checkpoint step: resumed from step 4, whose windows
    start from the open-loop states of the network of step 3, the last refresh), then
    Ctrl-C after step 5 (checkpointed there), then on to the end: the network, the
    optimiser state and the losses are bit for bit those of an uninterrupted training;
    and again after a corrupt newest checkpoint."""
    s = _short_series(tiny_board)
    whole_score, whole = thermal_detectors.hybrid([s], tmp_path / "whole", **SMALL)
    cut = tmp_path / "cut"
    with pytest.raises(RuntimeError, match="machine lost"):
        thermal_detectors.hybrid([s], cut, on_step=_stop_after(5, RuntimeError("machine lost")), **SMALL)
    assert _saved_steps(cut) == [2, 4]
    with pytest.raises(KeyboardInterrupt):
        thermal_detectors.hybrid([s], cut, on_step=_stop_after(5, KeyboardInterrupt()), **SMALL)
    assert _saved_steps(cut) == [2, 4, 5]
    score, info = thermal_detectors.hybrid([s], cut, **SMALL)
    assert info["resumed_from"] == 5 and whole["resumed_from"] == 0, (info, whole)
    expected, got = _saved_arrays(tmp_path / "whole", 7), _saved_arrays(cut, 7)
    differ = [k for k in expected if not np.array_equal(expected[k], got[k])]
    assert expected.keys() == got.keys() and not differ, f"leaves differ after resuming: {differ}"
    np.testing.assert_array_equal(score(s), whole_score(s))
    log = nnpde.read_metrics(cut / "metrics.jsonl")
    assert [r["step"] for r in log] == list(range(1, 8)), [r["step"] for r in log]
    assert [r["loss"] for r in log] == [r["loss"] for r in nnpde.read_metrics(tmp_path / "whole" / "metrics.jsonl")]
    # a finished training is the fitted model: reused, nothing trained
    _, again = thermal_detectors.hybrid([s], cut, on_step=_stop_after(6, AssertionError("trained again")), **SMALL)
    assert again["resumed_from"] == 7 and again["loss_last"] == whole["loss_last"], again
    # the newest checkpoint altered on disk (its metadata, which no longer matches its
    # checksum): moved aside, step 7 trained again from step 6, to the same bits
    metadata = cut / "checkpoints" / "7" / "metadata" / "metadata"
    metadata.write_text(metadata.read_text().replace('"seconds": ', '"seconds": 1'))
    _, again = thermal_detectors.hybrid([s], cut, **SMALL)
    assert again["resumed_from"] == 6 and (cut / "corrupt" / "7").is_dir(), (again, sorted(cut.iterdir()))
    got = _saved_arrays(cut, 7)
    assert not [k for k in expected if not np.array_equal(expected[k], got[k])]


def test_hybrid_checkpoints_of_other_settings_are_refused(tiny_board, tmp_path):
    s = _short_series(tiny_board)
    thermal_detectors.hybrid([s], tmp_path, **SMALL)
    with pytest.raises(nnpde.ConfigError, match=r"other settings: hidden 4 \(here 8\)\. Fix: run with the settings"):
        thermal_detectors.hybrid([s], tmp_path, **{**SMALL, "hidden": 8})
    with pytest.raises(nnpde.ConfigError, match=r"other settings: data '[0-9a-f]+' \(here '[0-9a-f]+'\)\. Fix"):
        thermal_detectors.hybrid([{k: v[:150] for k, v in s.items()}], tmp_path, **SMALL)
    with pytest.raises(nnpde.ConfigError, match=r"other settings: name 'hybrid' \(here 'emulator'\)"):
        thermal_detectors.emulator([s], tmp_path, **SMALL)
    assert _saved_steps(tmp_path)[-1] == 7 and len(nnpde.read_metrics(tmp_path / "metrics.jsonl")) == 7


def test_detect_reuses_a_finished_hybrid_training(tiny_board, tmp_path):
    """``nnpde detect`` fits the hybrid into ``models/hybrid``; with a residual file
    missing (more test series, a crash while scoring) it fits again from there without
    training, and writes the same residuals."""
    shutil.copytree(tiny_board[0] / "run" / "data", tmp_path / "run" / "data")
    task = thermal_monitoring.monitoring(n_steps=2500, n_anomalies=1)
    task = dataclasses.replace(task, detectors={"hybrid": functools.partial(thermal_detectors.hybrid, **SMALL)})
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'out = "{tmp_path / "run"}"\n[data]\ntrain = 1\nvalidation = 1\ntest = 1\n'
        '[detect]\nfalse_alarm_rate = 0.001\ndetectors = ["hybrid"]\n'
    )
    first = _detect.run_detection(task, _detect.load_detect_config(config), echo=lambda *a: None)
    residuals = tmp_path / "run" / "residuals" / "hybrid"
    test_residual = np.load(residuals / "test-0.npy")
    assert first["detectors"]["hybrid"]["info"]["resumed_from"] == 0
    assert _saved_steps(tmp_path / "run" / "models" / "hybrid")[-1] == SMALL["steps"]
    (residuals / "test-0.npy").unlink()
    again = _detect.run_detection(task, _detect.load_detect_config(config), echo=lambda *a: None)
    assert again["detectors"]["hybrid"]["info"]["resumed_from"] == SMALL["steps"], again["detectors"]["hybrid"]
    np.testing.assert_array_equal(np.load(residuals / "test-0.npy"), test_residual)
    assert again["detectors"]["hybrid"]["flat"] == first["detectors"]["hybrid"]["flat"]


def test_detect_fits_again_when_the_problem_options_change(tmp_path):
    """Residuals cached under other problem options (say more training steps) are not
    reused silently: the detector is fitted again."""
    calls = []

    def counted(train, directory=None):
        calls.append(1)
        return _oracle(train, directory)

    config = tmp_path / "toy.toml"
    config.write_text(
        f'out = "{tmp_path / "run"}"\n[data]\ntrain = 1\nvalidation = 1\ntest = 1\n'
        '[detect]\nfalse_alarm_rate = 0.001\ndetectors = ["oracle"]\n'
    )
    for steps, expected in ((10, 1), (10, 1), (20, 2)):
        task = dataclasses.replace(toy_task(), detectors={"oracle": counted}, attrs={"hybrid_steps": steps})
        _detect.run_detection(task, _detect.load_detect_config(config), echo=lambda *a: None)
        assert len(calls) == expected, (steps, len(calls))


def _toy_series(split, index):
    rng = np.random.default_rng(100 * index + {"train": 0, "validation": 1, "test": 2}[split])
    n = 4000
    readings = rng.standard_normal((n, 2))
    kind = np.full(n, -1)
    if split == "test":
        for j, start in enumerate((500, 1500, 2500)):
            kind[start : start + 300] = j % 2
            readings[start : start + 300, j % 2] += 2.0
    return {"readings": readings, "labels": (kind >= 0).astype(np.int8), "kind": kind}


def _oracle(train, directory=None):
    return (lambda s: s["readings"]), {"parameters": 0}


def _blind(train, directory=None):
    return (lambda s: np.random.default_rng(0).standard_normal(s["readings"].shape)), {"parameters": 0}


def toy_task():
    return nnpde.MonitoringTask(
        name="toy",
        description="white noise, shifted in the anomalies",
        series=_toy_series,
        detectors={"oracle": _oracle, "blind": _blind},
        kinds=("up0", "up1"),
        sensors=("a", "b"),
    )


def test_detect_command_end_to_end(tmp_path, monkeypatch, capsys):
    module = types.ModuleType("toy_monitoring")
    module.monitoring = toy_task
    monkeypatch.setitem(sys.modules, "toy_monitoring", module)
    config = tmp_path / "toy.toml"
    config.write_text(
        f'name = "toy"\nout = "{tmp_path / "run"}"\n[problem]\nmodule = "toy_monitoring"\n'
        "[data]\ntrain = 1\nvalidation = 3\ntest = 2\n[detect]\nfalse_alarm_rate = 0.0002\nwindow = 20\n"
    )
    assert main(["detect", str(config)]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    oracle, blind = report["detectors"]["oracle"], report["detectors"]["blind"]
    assert oracle["flat"]["f1"] > 0.8 and oracle["nab"]["standard"] > 80, oracle
    assert blind["flat"]["recall"] < 0.2, blind
    assert set(oracle["per_kind"]) == {"up0", "up1"} and oracle["per_kind"]["up0"]["ranges"] == 4
    for name in ("traces", "scores", "table"):
        assert (tmp_path / "run" / f"{name}.png").exists()
    tables = (tmp_path / "run" / "report.md").read_text()
    assert f"| oracle | 0 | {oracle['flat']['precision']:.3f} |" in tables and "| blind | up1 | 2 |" in tables
    # a rerun reads the cached residuals and gives the same figures
    assert main(["detect", str(config), "--set", "detect.detectors=['oracle']"]) == 0
    again = json.loads((tmp_path / "run" / "report.json").read_text())
    assert again["detectors"]["oracle"]["flat"] == oracle["flat"]
    # an out that cannot be written is refused before any series is simulated
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    capsys.readouterr()
    assert main(["detect", str(config), "--set", f"out='{blocker / 'run'}'"]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_bad_configurations_and_thresholds_are_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[detect]\nfalse_alarm_rate = 1.5\n")
    with pytest.raises(nnpde.ConfigError, match="false_alarm_rate"):
        _detect.load_detect_config(config)
    config.write_text("[data]\nvalidation = 0\n")
    with pytest.raises(nnpde.ConfigError, match="thresholds need normal data"):
        _detect.load_detect_config(config)
    config.write_text('[detect]\nstatistic = "mean"\n')
    with pytest.raises(
        nnpde.ConfigError,
        match=r"detect\.statistic must be one of \['max', 'standardised_max', 'hotelling'\], got 'mean'",
    ):
        _detect.load_detect_config(config)
    config.write_text("[detect]\nwarmup = -1\n")
    with pytest.raises(nnpde.ConfigError, match=r"detect\.warmup must be an int >= 0, got -1"):
        _detect.load_detect_config(config)
    config.write_text("[detect]\nwindows = 3\n")
    with pytest.raises(nnpde.ConfigError, match=r"unknown key detect\.windows"):
        _detect.load_detect_config(config)
    with pytest.raises(ValueError, match="no normal data"):
        _detect.threshold([], 0.01)
    with pytest.raises(ValueError, match="cannot resolve"):
        _detect.threshold([np.ones(10)], 0.001)
    task = toy_task()
    bad = nnpde.MonitoringTask(
        name="bad",
        description="",
        series=lambda split, i: _toy_series("test", i),
        detectors=task.detectors,
        kinds=task.kinds,
        sensors=task.sensors,
    )
    config.write_text(f'out = "{tmp_path / "bad"}"\n[data]\ntrain = 1\nvalidation = 1\ntest = 1\n')
    with pytest.raises(ValueError, match="thresholds must come from normal data"):
        _detect.run_detection(bad, _detect.load_detect_config(config), echo=lambda *a: None)


def test_alarms_merge_gaps_and_smoothing_is_causal():
    score = np.zeros(100)
    score[[10, 11, 30, 80]] = 5.0
    a = _detect.alarms(score, 1.0, merge_gap=25)
    assert nnpde.metrics.label_ranges(a).tolist() == [[10, 31], [80, 81]]
    z = np.zeros((50, 2))
    z[20:, 1] = 1.0
    s = _detect.smoothed_score(z, 10)
    assert np.all(s[:20] == 0) and s[29] == pytest.approx(1.0) and s[24] == pytest.approx(0.5)
    # no score before a full window (a mean of fewer samples spreads wider), nor in the warm-up
    z = np.ones((50, 2))
    assert np.flatnonzero(_detect.smoothed_score(z, 10))[0] == 9
    assert np.flatnonzero(_detect.smoothed_score(z, 10, warmup=30))[0] == 30
    assert np.flatnonzero(_detect.smoothed_score(z, 10, warmup=3))[0] == 9


def test_hotelling_statistic_weighs_sensors_by_their_normal_covariance():
    """Two sensors whose normal residuals move together: a departure of one alone is
    what T^2 flags (the largest-sensor score sees both alike), and T^2 on normal data
    is the chi distribution's (mean square = number of sensors)."""
    rng = np.random.default_rng(0)
    common = rng.standard_normal((20_000, 1))
    normal = common + 0.1 * rng.standard_normal((20_000, 2))  # correlation ~0.99
    together, apart = np.zeros((300, 2)), np.zeros((300, 2))
    together[100:], apart[100:, 0] = 1.0, 1.0
    window = 1
    t2 = _detect.hotelling_scores([normal], [normal, together, apart], window)
    assert np.mean(t2[0] ** 2) == pytest.approx(2.0, rel=1e-3)  # np.cov divides by n - 1
    assert t2[2][200] > 5 * t2[1][200]  # one sensor alone: off the normal correlation
    mx = [_detect.smoothed_score(z, window) for z in (together, apart)]
    assert mx[0][200] == mx[1][200] == 1.0
    assert np.all(_detect.hotelling_scores([normal], [normal], 20, warmup=50)[0][:50] == 0)


def test_standardised_max_measures_each_sensor_in_its_normal_spread():
    """A sensor whose residual spreads 10x wider on the normal series than its training
    scale says dominates the plain maximum (the threshold follows it, a departure of the
    tight sensor goes unseen); standardised on the normal series both count alike."""
    rng = np.random.default_rng(1)
    normal = rng.standard_normal((20_000, 2)) * [10.0, 1.0] + [3.0, 0.0]
    departure = np.zeros((300, 2))
    departure[100:, 1] = 5.0  # five normal spreads of the tight sensor
    window = 10
    z = _detect.standardised_max_scores([normal], [normal, departure], window, warmup=20)
    limit = _detect.threshold([z[0]], 0.001)
    assert z[1][200] > 3 * limit  # the tight sensor's departure stands out
    plain = [_detect.smoothed_score(r, window, 20) for r in (normal, departure)]
    assert plain[1][200] < _detect.threshold([plain[0]], 0.001)  # buried under the wide sensor's scale
    assert np.all(z[0][:20] == 0) and np.std(np.concatenate([z[0][20:]])) > 0
    with pytest.raises(ValueError, match=r"sensors \[1\] do not vary"):
        _detect.standardised_max_scores([np.c_[normal[:, 0], np.zeros(20_000)]], [departure], window)


def test_per_kind_precision_drops_alarms_on_other_kinds():
    kind = np.full(40, -1)
    kind[5:10], kind[20:30] = 0, 1
    predicted = np.zeros(40, dtype=np.int8)
    predicted[[6, 7, 15, 25, 26]] = 1  # a hit on kind 0, a false alarm, a hit on kind 1
    own = _detect.alarms_of_kind(kind, predicted, 0)
    assert np.flatnonzero(own).tolist() == [6, 7, 15]
    report = _detect.score_alarms((kind >= 0).astype(np.int8), kind, predicted, ("a", "b"))
    # kind a: its own range fully precise, the false alarm not: (1 + 0) / 2
    assert report["per_kind"]["a"]["precision_flat"] == pytest.approx(0.5)
    assert report["per_kind"]["b"]["precision_flat"] == pytest.approx(0.5)


def test_f1_intervals_are_a_paired_bootstrap_over_the_test_series():
    rng = np.random.default_rng(1)
    labels = []
    for _ in range(5):
        s = np.zeros(400, dtype=np.int8)
        start = rng.integers(50, 300)
        s[start : start + 60] = 1
        labels.append(s)
    half = [np.where(np.arange(400) % 2 == 0, s, 0).astype(np.int8) for s in labels]  # every other sample
    late = [np.roll(s, 10 + 10 * i) for i, s in enumerate(labels)]  # 10-50 samples late
    out = _detect.f1_intervals(labels, {"perfect": labels, "half": half, "again": labels, "late": late}, n=200)
    assert out["perfect"]["f1_interval"] == [1.0, 1.0] and out["again"]["minus_first_interval"] == [0.0, 0.0]
    for name in ("half", "late"):
        lo, hi = out[name]["minus_first_interval"]
        eps = 1e-12
        assert lo - eps <= out[name]["minus_first"] <= hi + eps and hi < 0, out[name]
        lo, hi = out[name]["f1_interval"]
        assert 0 < lo and lo - eps <= 1 + out[name]["minus_first"] <= hi + eps and hi < 1, out[name]
    assert _detect.f1_intervals(labels[:1], {"perfect": labels[:1]}) is None


def test_a_busy_test_workload_loads_the_board_beyond_the_normal_series():
    normal = thermal_monitoring.workload(np.random.default_rng(0), 60_000).mean(axis=1)
    busy = thermal_monitoring.workload(np.random.default_rng(0), 60_000, "busy").mean(axis=1)
    assert np.median(busy) > np.quantile(normal, 0.9), (np.median(busy), np.quantile(normal, 0.9))
    assert busy.max() <= 1.0 and busy.min() >= 0.05
    with pytest.raises(ValueError, match="test_workload must be one of"):
        thermal_monitoring.monitoring(test_workload="heavy")
    with pytest.raises(ValueError, match="regime must be one of"):
        thermal_monitoring.series(0, n_steps=100, regime="heavy")
    assert thermal_monitoring.monitoring(test_workload="busy").attrs["test_workload"] == "busy"


def test_the_f1_figure_is_drawn_from_the_committed_reports(tmp_path):
    """``scripts/thermal_f1_plot.py`` reads every report the results page shows (each
    with the bootstrap intervals ``nnpde detect`` writes) and draws the figure."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import thermal_f1_plot
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    out, amount = tmp_path / "f1.png", tmp_path / "amount.png"
    assert thermal_f1_plot.main(["--out", str(out), "--amount-out", str(amount)]) == 0
    assert out.stat().st_size > 10_000 and amount.stat().st_size > 10_000
    # the amount of normal data, read from each report's configuration
    full = json.loads((ROOT / "benchmarks" / "results" / "thermal_monitoring.json").read_text())
    little = json.loads((ROOT / "benchmarks" / "results" / "thermal_monitoring_little.json").read_text())
    assert thermal_f1_plot.normal_samples(full) == 3 * 20_000
    assert thermal_f1_plot.normal_samples(little) == 1000
    assert len(thermal_f1_plot.plot_amounts(ROOT / "benchmarks" / "results", amount)) >= 2


def test_train_samples_fits_every_detector_on_the_head_of_each_training_series():
    rng = np.random.default_rng(0)
    train = [
        {
            "workload": rng.random((300, 2)),
            "readings": 40 + rng.standard_normal((300, 3)) * (1 + 9 * (np.arange(300) >= 100))[:, None],
        }
        for _ in range(2)
    ]
    probe = {"workload": np.zeros((5, 2)), "readings": np.full((5, 3), 41.0)}
    task = thermal_monitoring.monitoring(n_steps=300, train_samples=100)
    assert task.attrs["train_samples"] == 100 and set(task.detectors) == set(thermal_detectors.DETECTORS)
    cut_score, _ = task.detectors["fixed"](train)
    head_score, _ = thermal_detectors.fixed([{k: v[:100] for k, v in s.items()} for s in train])
    full_score, _ = thermal_detectors.fixed(train)
    np.testing.assert_array_equal(cut_score(probe), head_score(probe))
    # the tail's spread is 10x the head's: fitted on all samples, the score would differ
    assert not np.allclose(cut_score(probe), full_score(probe))
    assert "train_samples" not in thermal_monitoring.monitoring().attrs  # all samples: attrs as before
    with pytest.raises(ValueError, match=r"train_samples = 400 exceeds the series' n_steps = 300"):
        thermal_monitoring.monitoring(n_steps=300, train_samples=400)
    with pytest.raises(ValueError, match="train_samples"):
        thermal_monitoring.monitoring(train_samples=-5)


def test_baseline_sweep_scores_variants_of_a_detector_on_a_runs_series(tiny_board, tmp_path):
    """``scripts/thermal_baseline_sweep.py`` fits each ``DETECTOR:key=value`` variant on
    the series of an earlier run (hard links, the same thresholds protocol) with the
    ``--set`` overrides ``nnpde detect`` takes; bad variants are refused."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import thermal_baseline_sweep as sweep
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert sweep.parse_variant("data:hidden=8,steps=20") == ("data_hidden8_steps20", "data", {"hidden": 8, "steps": 20})
    assert sweep.parse_variant("fixed") == ("fixed", "fixed", {})
    for bad, match in (("forecast:steps=2", "unknown detector"), ("data:steps", "expected key=value")):
        with pytest.raises(SystemExit, match=match):
            sweep.parse_variant(bad)
    config = tmp_path / "tiny.toml"
    config.write_text("[problem]\noptions = { n_steps = 2500, n_anomalies = 1 }\n[detect]\nfalse_alarm_rate = 0.001\n")
    sets = ["data.train=1", "data.validation=1", "data.test=1", "problem.options.train_samples=400"]
    argv = ["--config", str(config), "--data", str(tiny_board[0] / "run" / "data"), "--out", str(tmp_path / "sweep")]
    argv += [f"--set={s}" for s in sets] + ["--variant", "data:hidden=8,steps=20", "--variant", "fixed"]
    assert sweep.main(argv) == 0
    report = json.loads((tmp_path / "sweep" / "report.json").read_text())
    assert list(report["detectors"]) == ["data_hidden8_steps20", "fixed"]
    assert report["attrs"]["train_samples"] == 400
    assert (tmp_path / "sweep" / "data" / "test-0.npz").stat().st_nlink >= 2  # a hard link, not a copy
    for r in report["detectors"].values():
        assert 0 <= r["flat"]["f1"] <= 1
    with pytest.raises(SystemExit, match="no series"):
        sweep.main([*argv[:2], "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "x"), "--variant", "fixed"])


def test_a_linear_correction_starts_as_the_physics_and_stays_affine():
    """``correction="linear"`` learns the coarse step's coefficients: zero at the start
    (the hybrid is the plain physics, exactly), and with any weights the step stays
    affine in the temperatures and the workload jointly, the form of the fine board's
    physics (which is why it extends to loads the training never saw)."""
    eq, chips, _, _ = thermal_detectors._coarse_parts()
    physics = thermal_detectors.physics_step(eq, chips)
    model = thermal_detectors._model(physics=True)
    net = thermal_detectors._correction("linear", 0, 16, 3)
    assert net.n_params == 64 * 128 + 64
    rng = np.random.default_rng(1)
    t1, t2 = (jnp.asarray(rng.random(eq.state_shape)) for _ in range(2))
    w1, w2 = (jnp.asarray(rng.random(len(thermal_monitoring.CHIP_POWER))) for _ in range(2))
    np.testing.assert_array_equal(np.asarray(model.step(net)(t1, w1)), np.asarray(physics(t1, w1)))
    params = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)) * 0.01, net.params)
    step = model.step(eqx.tree_at(lambda n: n.params, net, params))
    zero_t, zero_w = jnp.zeros_like(t1), jnp.zeros_like(w1)
    offset = step(zero_t, zero_w)
    assert float(jnp.abs(offset).max()) > 0  # the learned bias
    both = step(t1 + 2 * t2, w1 + 2 * w2) - offset
    parts = (step(t1, w1) - offset) + 2 * (step(t2, w2) - offset)
    np.testing.assert_allclose(np.asarray(both), np.asarray(parts), atol=1e-12)
    # the CNN's correction is not affine: the same check fails for it
    cnn = thermal_detectors._cnn(0, 8, 2)
    cnn = eqx.tree_at(lambda n: n.params, cnn, jax.tree.map(lambda p: jnp.ones_like(p) * 0.1, cnn.params))
    step = model.step(cnn)
    offset = step(zero_t, zero_w)
    both = step(t1 + 2 * t2, w1 + 2 * w2) - offset
    parts = (step(t1, w1) - offset) + 2 * (step(t2, w2) - offset)
    assert float(jnp.abs(both - parts).max()) > 1e-6
    with pytest.raises(ValueError, match=r"correction must be one of \('cnn', 'linear'\), got 'quadratic'"):
        thermal_detectors._correction("quadratic", 0, 16, 3)


def test_the_linear_hybrid_learns_the_coarse_physics_error(tiny_board):
    """Trained open loop on a short normal series, the linear correction removes most
    of the coarse physics' sensor error (in units of the sensor noise's variance)."""
    s = _short_series(tiny_board, 600)
    options = {**SMALL, "steps": 300, "batch": 8, "refresh": 100}
    _, info = thermal_detectors.hybrid([s], correction="linear", **options)
    assert info["parameters"] == 64 * 128 + 64
    assert info["loss_last"] < 0.2 * info["loss_first"], info


def test_the_arx_forecaster_is_the_least_squares_fit_of_a_linear_system():
    """``data(depth=0)``: readings of a stable linear system driven by the workload,
    with noise of spread ``sigma``: the least-squares forecaster's one-step error is the
    next reading's noise, nearly all of it (the rest is predictable), its standardised
    residual stays standardised on a new series of the same system, and a step of 10
    sigma on one sensor of that series stands out at once."""
    rng = np.random.default_rng(0)
    n_sensors, n_chips, sigma = 3, 2, 0.01
    gain = rng.random((n_sensors, n_chips))

    def draw(n):
        w = rng.random((n, n_chips))
        x = np.zeros((n, n_sensors))
        for i in range(1, n):
            x[i] = 0.9 * x[i - 1] + 0.1 * gain @ w[i]
        return {"workload": w, "readings": x + sigma * rng.standard_normal(x.shape)}

    train, new = draw(4000), draw(2000)
    score, info = thermal_detectors.data([train], depth=0)
    lags = thermal_detectors.LAGS
    assert info["parameters"] == (lags * n_sensors + 2 * n_chips + 1) * n_sensors
    target = np.diff(train["readings"], axis=0)[lags - 1 :]
    # the next reading's noise is all that cannot be forecast (the last reading's is in
    # the lags): the error's share of the target's variance is sigma^2 / var, within 20 %
    floor = np.mean(sigma**2 / target.var(axis=0))
    assert floor <= info["loss_last"] < 1.2 * floor, (info, floor)
    z = score(new)[lags:]
    assert abs(z.std() - 1) < 0.1 and abs(z.mean()) < 0.1, (z.mean(), z.std())
    faulty = {**new, "readings": new["readings"] + 10 * sigma * (np.arange(2000) >= 1000)[:, None] * np.eye(3)[0]}
    assert abs(score(faulty)[1000, 0]) > 5
    with pytest.raises(ValueError, match="depth"):
        thermal_detectors.data([train], depth=-1)


def test_the_correction_option_reaches_every_learned_detector():
    task = thermal_monitoring.monitoring(correction="linear", hybrid_steps=11)
    for name in ("hybrid", "hybrid_filter", "emulator"):
        assert task.detectors[name].keywords == {"steps": 11, "correction": "linear"}, name
    assert task.attrs["correction"] == "linear"
    default = thermal_monitoring.monitoring(hybrid_steps=11)
    assert default.detectors["hybrid"].keywords == {"steps": 11} and "correction" not in default.attrs
    assert thermal_detectors.DETECTORS["arx"].keywords == {"depth": 0}
    # what the baseline sweep fits its variants from: the configured settings
    assert thermal_monitoring.detector_settings(correction="linear", hybrid_steps=11)["emulator"] == {
        "steps": 11,
        "correction": "linear",
    }
    with pytest.raises(ValueError, match=r"correction must be one of \('cnn', 'linear'\), got 'mlp'"):
        thermal_monitoring.monitoring(correction="mlp")
    config = _detect.load_detect_config(ROOT / "scripts" / "configs" / "thermal_monitoring_commissioning.toml")
    commissioning = thermal_monitoring.monitoring(**config["problem"]["options"])
    assert commissioning.attrs["correction"] == "linear" and commissioning.attrs["test_workload"] == "busy"
    assert set(config["detect"]["detectors"]) <= set(commissioning.detectors)
