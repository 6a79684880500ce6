"""Anomaly detection on a monitored board: the fault schedule, the physics, the
detectors on a short series, and ``nnpde detect`` end to end on a synthetic task."""

import json
import sys
import types

import numpy as np
import pytest

import nnpde
from nnpde.runs import _detect
from nnpde.runs._cli import main
from problems import thermal_detectors, thermal_monitoring


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


def test_normal_series_and_the_detectors_residuals():
    train = [thermal_monitoring.series(0, n_steps=300)]
    s = train[0]
    assert s["readings"].shape == (300, len(thermal_monitoring.SENSORS)) and not s["labels"].any()
    assert np.all(np.isfinite(s["truth"])) and s["truth"][-1].min() > 0
    for fit in (thermal_detectors.physics, thermal_detectors.data):
        residual, info = fit(train) if fit is thermal_detectors.physics else fit(train, steps=5)
        z = residual(s)
        assert z.shape == s["readings"].shape and np.all(np.isfinite(z)), info
    residual, info = thermal_detectors.hybrid(train, steps=3, batch=2)
    assert residual(s).shape == s["readings"].shape and info["parameters"] > 0


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


def _oracle(train):
    return (lambda s: s["readings"]), {"parameters": 0}


def _blind(train):
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


def test_detect_command_end_to_end(tmp_path, monkeypatch):
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
    # a rerun reads the cached residuals and gives the same figures
    assert main(["detect", str(config), "--set", "detect.detectors=['oracle']"]) == 0
    again = json.loads((tmp_path / "run" / "report.json").read_text())
    assert again["detectors"]["oracle"]["flat"] == oracle["flat"]


def test_bad_configurations_and_thresholds_are_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[detect]\nfalse_alarm_rate = 1.5\n")
    with pytest.raises(nnpde.ConfigError, match="false_alarm_rate"):
        _detect.load_detect_config(config)
    config.write_text("[data]\nvalidation = 0\n")
    with pytest.raises(nnpde.ConfigError, match="thresholds need normal data"):
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
