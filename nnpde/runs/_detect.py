"""``nnpde detect CONFIG``: anomaly detection on monitored series, scored by range.

A problem module offers ``monitoring(**options) -> nnpde.MonitoringTask``: its series
(normal ones to train and to set thresholds on, labelled ones to test on) and its
detectors. The command, for every detector:

1. fits it on the normal training series (``fit(train, directory) -> (residual,
   info)``, ``directory`` its own folder ``models/<name>`` under ``out``);
2. turns its standardised sensor residuals ``z (T, M)`` into one score from their
   causal moving averages over ``window`` samples, ``m_t = mean(z[t - window + 1 ..
   t])``: the largest over the sensors, ``s_t = max_m |m_{t,m}|`` (``statistic =
   "max"``: each sensor on the scale of its residual on the training series), the
   largest once every sensor's moving average is standardised on the normal validation
   series (``"standardised_max"``, ``s_t = max_m |m_{t,m} - mu_m| / sigma_m``), or
   Hotelling's ``T^2`` (``"hotelling"``, ``s_t^2 = (m_t - mu)' S^-1 (m_t - mu)``,
   ``mu`` and ``S`` from the normal validation series); 0 over the first ``warmup`` samples
   (and until a window is full) of every series, normal or test: every series starts
   from rest and a model's start-up transient is not a fault;
3. sets the threshold at the ``1 - false_alarm_rate`` quantile of the scores on the
   normal validation series (never on test labels);
4. raises an alarm where ``s_t`` exceeds it, alarms less than ``merge_gap`` samples
   apart joined into one range;
5. scores the alarms on the test series (joined, a normal sample between them) with
   ``nnpde.metrics``: range-based precision, recall and F1 (``alpha = 0``, reciprocal
   cardinality; flat and front bias; the flat F1's 90 % interval, and its difference to
   the first detector's, from a paired bootstrap over the test series), per anomaly kind the precision (of the alarms
   that touch no other kind), the recall, the share of ranges detected and the mean
   detection delay, and the NAB score of the alarm onsets.

It writes ``report.json``, its tables as ``report.md`` and plots (``traces.png``, ``scores.png``, ``table.png``)
under ``out``; series and residuals are cached there (``data/``, ``residuals/``), so a
rerun skips what is done: a detector whose residuals are all there, fitted with the same
problem options and training series, is not fitted again.
What a detector keeps in ``models/<name>`` (checkpoints of an interrupted training, a
fitted model) is its own: a detector fitted again (its residuals removed, more
validation or test series) may reuse it.

```toml
name = "thermal_monitoring"
out = "runs/thermal_monitoring"
precision = "float64"
[problem]
module = "problems.thermal_monitoring"
options = {}                 # passed to monitoring()
[data]
train = 4                    # normal series to fit on
validation = 2               # normal series to set the thresholds on
test = 8                     # labelled series to score
[detect]
detectors = ["hybrid", "physics", "data"]
false_alarm_rate = 0.001     # share of normal validation samples above the threshold
window = 20                  # samples of the moving average
warmup = 100                 # first samples of every series not scored (0: none)
statistic = "max"            # or "standardised_max", or "hotelling" (the moving averages combined by T^2)
merge_gap = 100              # alarms closer than this are one range
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..hybrid import metrics
from ._config import ConfigError


@dataclasses.dataclass(frozen=True)
class MonitoringTask:
    """An anomaly-detection task on monitored series.

    Args:
        name: short identifier.
        description: one paragraph on the system and its faults.
        series: ``series(split, index) -> dict`` with ``split`` one of ``"train"``,
            ``"validation"`` (both normal) and ``"test"`` (labelled): NumPy arrays
            ``readings (T, M)``, ``labels (T,)`` 0/1, ``kind (T,)`` (index into
            ``kinds``, -1 normal) and whatever the detectors read (a workload).
        detectors: ``name -> fit``, ``fit(train: list[dict], directory: Path) ->
            (residual, info)``: ``residual(series) -> (T, M)`` standardised sensor
            residuals, ``info`` a JSON-able dict (its ``parameters`` count, training
            losses). ``directory`` (``out/models/<name>``, not created) is the
            detector's own, for what it keeps between runs (the checkpoints of a long
            training, its fitted model); a detector that keeps nothing ignores it.
        kinds: the anomaly kinds.
        sensors: one name per sensor (plots).
        attrs: the problem's parameters, recorded in the report.
    """

    name: str
    description: str
    series: Callable[[str, int], dict]
    detectors: Mapping[str, Callable]
    kinds: tuple[str, ...]
    sensors: tuple[str, ...]
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


STATISTICS = ("max", "standardised_max", "hotelling")  # detect.statistic

DEFAULTS = {
    "name": "monitoring",
    "out": "",
    "precision": "float64",
    "problem": {"module": "problems.thermal_monitoring", "options": {}},
    "data": {"train": 4, "validation": 2, "test": 8},
    "detect": {
        "detectors": [],
        "false_alarm_rate": 0.001,
        "window": 20,
        "warmup": 100,
        "statistic": "max",
        "merge_gap": 100,
    },
}


def load_detect_config(path, overrides: Mapping[str, Any] = ()) -> dict:
    """The configuration of ``nnpde detect``: the TOML file, ``overrides``
    (``section.key -> value``) on top, every key checked; ``ConfigError`` otherwise."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read the configuration {path}: {err}. Fix: give a TOML file.") from None
    for key, value in dict(overrides).items():
        *sections, last = key.split(".")
        node = raw
        for s in sections:
            node = node.setdefault(s, {})
        node[last] = value
    config = json.loads(json.dumps(DEFAULTS))
    for key, value in raw.items():
        if key not in config:
            raise ConfigError(f"unknown key {key!r} in {path}. Fix: use one of {sorted(config)}.")
        if isinstance(config[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a section, got {value!r}.")
            for sub, v in value.items():
                if sub not in config[key]:
                    raise ConfigError(f"unknown key {key}.{sub}. Fix: use one of {sorted(config[key])}.")
                config[key][sub] = v
        else:
            config[key] = value
    config["out"] = config["out"] or f"runs/{config['name']}"
    data, detect = config["data"], config["detect"]
    for split, minimum in (("train", 1), ("validation", 1), ("test", 1)):
        n = data[split]
        if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
            what = "labelled series" if split == "test" else "normal series: the thresholds need normal data"
            raise ConfigError(
                f"data.{split} must be an int >= {minimum}, got {n!r}. Fix: e.g. data.{split} = "
                f"{DEFAULTS['data'][split]} ({what})."
            )
    far = detect["false_alarm_rate"]
    if isinstance(far, bool) or not isinstance(far, (int, float)) or not 0 < far < 1:
        raise ConfigError(f"detect.false_alarm_rate must lie in (0, 1), got {far!r}. Fix: e.g. 0.001.")
    for key, minimum in (("window", 1), ("merge_gap", 1), ("warmup", 0)):
        v = detect[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(
                f"detect.{key} must be an int >= {minimum}, got {v!r}. Fix: e.g. {DEFAULTS['detect'][key]}."
            )
    if detect["statistic"] not in STATISTICS:
        raise ConfigError(
            f"detect.statistic must be one of {list(STATISTICS)}, got {detect['statistic']!r}. Fix: e.g. 'max' "
            "(the largest sensor's moving average), 'standardised_max' (the same, each sensor standardised on "
            "the normal validation series) or 'hotelling' (all sensors, weighed by their normal covariance)."
        )
    if config["precision"] not in ("float32", "float64"):
        raise ConfigError(f"precision must be 'float32' or 'float64', got {config['precision']!r}.")
    return config


def window_means(residual, window: int, warmup: int = 0) -> np.ndarray:
    """``mean(z[t - window + 1 .. t, m])``: causal, ``(T, M) -> (T, M)``.

    The first ``max(warmup, window - 1)`` samples are 0: a detector raises no alarm
    before it has a full window (a mean over fewer samples spreads wider: scored, the
    start of every normal series would set the threshold, and the start of every test
    series would cross it), nor during the ``warmup`` of a series that starts from rest
    (a model's start-up transient)."""
    z = np.asarray(residual, dtype=float)
    c = np.cumsum(np.concatenate([np.zeros((1, z.shape[1])), z]), axis=0)
    mean = np.zeros_like(z)
    mean[window - 1 :] = (c[window:] - c[: len(z) - window + 1]) / window
    mean[:warmup] = 0.0
    return mean


def smoothed_score(residual, window: int, warmup: int = 0) -> np.ndarray:
    """``s_t = max_m |mean(z[t - window + 1 .. t, m])|`` (``window_means``): ``(T, M) -> (T,)``."""
    return np.abs(window_means(residual, window, warmup)).max(axis=1)


def standardised_max_scores(normal_residuals, residuals, window: int, warmup: int = 0) -> list[np.ndarray]:
    """``s_t = max_m |m_{t,m} - mu_m| / sigma_m`` for every series of ``residuals``,
    ``m_t`` its ``window_means``, ``mu_m`` and ``sigma_m`` each sensor's mean and
    standard deviation over the scored samples of ``normal_residuals``: the largest
    sensor once each is measured in its own normal spread (a residual standardised on
    little training data, or a model that fits some sensors better than it predicts
    them, leaves the sensors on unequal scales and the plain maximum to the widest);
    0 where ``window_means`` is not scored."""
    start = max(warmup, window - 1)
    normal = np.concatenate([window_means(r, window, warmup)[start:] for r in normal_residuals])
    mu, sigma = normal.mean(axis=0), normal.std(axis=0)
    if not np.all(sigma > 0):
        raise ValueError(
            f"standardised_max: sensors {np.flatnonzero(~(sigma > 0)).tolist()} do not vary on the normal "
            "series, so they cannot be standardised. Fix: statistic = 'max', or drop those sensors."
        )
    out = []
    for r in residuals:
        s = (np.abs(window_means(r, window, warmup) - mu) / sigma).max(axis=1)
        s[:start] = 0.0
        out.append(s)
    return out


def hotelling_scores(normal_residuals, residuals, window: int, warmup: int = 0) -> list[np.ndarray]:
    """``s_t = sqrt((m_t - mu)' S^-1 (m_t - mu))`` for every series of ``residuals``,
    ``m_t`` its ``window_means``, ``mu`` and ``S`` their mean and covariance over the
    scored samples of ``normal_residuals`` (Hotelling's T^2 statistic: the sensors'
    residuals weighed by their normal spread and correlation, not only the largest);
    0 where ``window_means`` is not scored."""
    start = max(warmup, window - 1)
    normal = np.concatenate([window_means(r, window, warmup)[start:] for r in normal_residuals])
    mu, cov = normal.mean(axis=0), np.cov(normal.T)
    whiten = np.linalg.cholesky(np.linalg.inv(cov))
    out = []
    for r in residuals:
        m = window_means(r, window, warmup)
        s = np.sqrt((((m - mu) @ whiten) ** 2).sum(axis=1))
        s[:start] = 0.0
        out.append(s)
    return out


def threshold(normal_scores, false_alarm_rate: float) -> float:
    """The ``1 - false_alarm_rate`` quantile of scores on normal data; refuses none."""
    s = np.concatenate([np.ravel(x) for x in normal_scores]) if len(normal_scores) else np.zeros(0)
    if s.size == 0:
        raise ValueError(
            "threshold: no normal data to set a threshold on. Fix: give normal validation series "
            "(data.validation >= 1)."
        )
    if s.size * false_alarm_rate < 1:
        raise ValueError(
            f"threshold: {s.size} normal samples cannot resolve a false-alarm rate of {false_alarm_rate}. "
            "Fix: more normal validation data, or a larger false_alarm_rate."
        )
    return float(np.quantile(s, 1.0 - false_alarm_rate))


def alarms(score, limit: float, merge_gap: int) -> np.ndarray:
    """0/1 alarms where ``score > limit``, gaps shorter than ``merge_gap`` filled."""
    a = np.asarray(score) > limit
    r = metrics.label_ranges(a)
    gaps = r[1:, 0] - r[:-1, 1]
    for end, start in zip(r[:-1, 1][gaps < merge_gap], r[1:, 0][gaps < merge_gap]):
        a[end:start] = True
    return a.astype(np.int8)


def onsets(labels) -> np.ndarray:
    """1 at the first sample of every range of ``labels``: the alarms NAB counts."""
    out = np.zeros(len(labels), dtype=np.int8)
    out[metrics.label_ranges(labels)[:, 0]] = 1
    return out


def delays(real, predicted) -> list[int]:
    """Samples from the start of each detected real range to its first alarm."""
    p = np.asarray(predicted).astype(bool)
    out = []
    for start, end in metrics.label_ranges(real):
        hit = np.flatnonzero(p[start:end])
        if hit.size:
            out.append(int(hit[0]))
    return out


def alarms_of_kind(kind, predicted, j: int) -> np.ndarray:
    """The alarm ranges of ``predicted`` that overlap no anomaly of a kind other than
    ``j``: those that hit kind ``j`` and the false alarms. Their range precision
    against kind ``j``'s ranges is that kind's precision (false alarms count against
    every kind)."""
    p = np.asarray(predicted).astype(np.int8).copy()
    other = (np.asarray(kind) >= 0) & (np.asarray(kind) != j)
    for start, end in metrics.label_ranges(p):
        if other[start:end].any():
            p[start:end] = 0
    return p


def score_alarms(labels, kind, predicted, kinds) -> dict:
    """The report's figures for one detector on the joined test series."""
    out = {}
    for bias in ("flat", "front"):
        o = {"alpha": 0.0, "cardinality": "reciprocal", "bias": bias}
        p = metrics.range_precision(labels, predicted, cardinality="reciprocal", bias=bias)
        r = metrics.range_recall(labels, predicted, **o)
        out[bias] = {"precision": p, "recall": r, "f1": 0.0 if p + r == 0 else 2 * p * r / (p + r)}
    d = delays(labels, predicted)
    out["mean_delay"] = float(np.mean(d)) if d else None
    out["nab"] = {
        profile: metrics.nab_score(labels, onsets(predicted), profile=profile) for profile in metrics_profiles()
    }
    normal = np.asarray(labels) == 0
    out["false_alarm_samples"] = float(np.mean(np.asarray(predicted)[normal]))
    out["alarm_ranges"] = len(metrics.label_ranges(predicted))
    per_kind = {}
    for j, name in enumerate(kinds):
        real = (np.asarray(kind) == j).astype(np.int8)
        if not real.any():
            continue
        d = delays(real, predicted)
        own = alarms_of_kind(kind, predicted, j)
        per_kind[name] = {
            "ranges": len(metrics.label_ranges(real)),
            "precision_flat": metrics.range_precision(real, own, cardinality="reciprocal"),
            "detected": metrics.range_recall(real, predicted, alpha=1.0),
            "recall_flat": metrics.range_recall(real, predicted, cardinality="reciprocal"),
            "recall_front": metrics.range_recall(real, predicted, cardinality="reciprocal", bias="front"),
            "mean_delay": float(np.mean(d)) if d else None,
        }
    out["per_kind"] = per_kind
    return out


BOOTSTRAP = 300  # resamples of the test series for the F1 intervals


def f1_intervals(labels_by_series, predicted_by_detector, *, n: int = BOOTSTRAP, level: float = 0.9, seed: int = 0):
    """The flat range-based F1 (``alpha = 0``, reciprocal cardinality) of every detector
    under a paired bootstrap over the test series (every resample draws the same series
    for all detectors; a series joined as in the report): ``{name: {"f1_interval": [lo,
    hi], "minus_first": d, "minus_first_interval": [lo, hi]}}``, ``d`` the detector's F1
    less the first detector's on all series, the intervals the central ``level`` of the
    resamples. None with fewer than two test series."""
    names = list(predicted_by_detector)
    k = len(labels_by_series)
    if k < 2 or not names:
        return None

    def f1(idx, name):
        labels = _joined([labels_by_series[i] for i in idx])
        predicted = _joined([predicted_by_detector[name][i] for i in idx])
        p = metrics.range_precision(labels, predicted, cardinality="reciprocal")
        r = metrics.range_recall(labels, predicted, cardinality="reciprocal")
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    rng = np.random.default_rng(seed)
    draws = np.array([[f1(idx, name) for name in names] for idx in rng.integers(k, size=(n, k))])
    whole = np.array([f1(range(k), name) for name in names])
    q = [(1 - level) / 2, (1 + level) / 2]
    out = {}
    for j, name in enumerate(names):
        out[name] = {
            "f1_interval": np.quantile(draws[:, j], q).tolist(),
            "minus_first": float(whole[j] - whole[0]),
            "minus_first_interval": np.quantile(draws[:, j] - draws[:, 0], q).tolist(),
        }
    return out


def metrics_profiles():
    return ("standard", "reward_low_fp_rate", "reward_low_fn_rate")


def _joined(arrays):
    """Series joined with one normal sample between them (ranges never merge)."""
    parts = []
    for a in arrays:
        parts += [np.asarray(a), np.zeros((1, *np.shape(a)[1:]), dtype=np.asarray(a).dtype)]
    return np.concatenate(parts[:-1])


def link_series(source, out) -> int:
    """Hard-link the cached series (``*.npz``) of the folder ``source`` (the ``data/``
    folder of an earlier run of the same set-up) into ``out/data``, so that another
    run scores the same series without solving them again; series already there are
    kept. Returns how many were linked; a folder without series is refused."""
    sources = sorted(Path(source).glob("*.npz"))
    if not sources:
        raise ValueError(f"no series (*.npz) in {str(source)!r}. Fix: the data/ folder of an nnpde detect run.")
    data = Path(out) / "data"
    data.mkdir(parents=True, exist_ok=True)
    linked = 0
    for path in sources:
        if not (data / path.name).exists():
            os.link(path, data / path.name)
            linked += 1
    return linked


def _cached_series(task, split, i, folder: Path) -> dict:
    path = folder / f"{split}-{i}.npz"
    if path.exists():
        with np.load(path) as f:
            return dict(f)
    s = task.series(split, i)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path.with_suffix(".tmp.npz"), **s)
    path.with_suffix(".tmp.npz").replace(path)
    return s


def run_detection(task: MonitoringTask, config: dict, *, echo=print) -> dict:
    """Fit, threshold and score every configured detector; write the report and plots."""
    out = Path(config["out"])
    data, detect = config["data"], config["detect"]
    names = list(detect["detectors"]) or list(task.detectors)
    unknown = [n for n in names if n not in task.detectors]
    if unknown:
        raise ConfigError(f"detect.detectors: unknown {unknown}. Fix: use some of {list(task.detectors)}.")
    start = time.perf_counter()
    split_series = {}
    for split in ("train", "validation", "test"):
        split_series[split] = [_cached_series(task, split, i, out / "data") for i in range(data[split])]
        echo(f"{split}: {data[split]} series ready ({time.perf_counter() - start:.0f} s)")
    if any(s["labels"].any() for s in split_series["train"] + split_series["validation"]):
        raise ValueError(
            "the training or validation series hold anomalies; thresholds must come from normal data. "
            "Fix: the task's train and validation series must be normal."
        )
    labels = _joined([s["labels"] for s in split_series["test"]])
    kind = _joined([s["kind"] for s in split_series["test"]])
    kind[np.asarray(labels) == 0] = -1
    report = {"task": task.name, "description": task.description, "config": config, "attrs": dict(task.attrs)}
    report["detectors"], plots = {}, {}
    # what a detector's residuals were fitted with: other problem options or another
    # training set make them stale (fitted again, never silently reused)
    fitted_with = json.loads(json.dumps(_jsonable({"attrs": dict(task.attrs), "train": data["train"]})))
    for name in names:
        folder = out / "residuals" / name
        info_path = folder / "info.json"
        paths = [folder / f"{split}-{i}.npy" for split in ("validation", "test") for i in range(data[split])]
        stale = info_path.exists() and json.loads(info_path.read_text()).get("fitted_with") != fitted_with
        if stale:
            echo(f"{name}: its residuals were fitted with other problem options or training series; fitting again")
        if stale or not (info_path.exists() and all(p.exists() for p in paths)):
            t0 = time.perf_counter()
            residual, info = task.detectors[name](split_series["train"], directory=out / "models" / name)
            info["fit_seconds"] = time.perf_counter() - t0
            info["fitted_with"] = fitted_with
            folder.mkdir(parents=True, exist_ok=True)
            for split in ("validation", "test"):
                for i, s in enumerate(split_series[split]):
                    np.save(folder / f"{split}-{i}.npy", residual(s))
            info_path.write_text(json.dumps(info, indent=1))
        info = json.loads(info_path.read_text())
        scored = ("validation", "test")
        residuals = {split: [np.load(folder / f"{split}-{i}.npy") for i in range(data[split])] for split in scored}
        if detect["statistic"] in ("hotelling", "standardised_max"):
            combine = hotelling_scores if detect["statistic"] == "hotelling" else standardised_max_scores
            scores = {
                split: combine(residuals["validation"], residuals[split], detect["window"], detect["warmup"])
                for split in scored
            }
        else:
            scores = {
                split: [smoothed_score(r, detect["window"], detect["warmup"]) for r in residuals[split]]
                for split in scored
            }
        limit = threshold(scores["validation"], detect["false_alarm_rate"])
        predicted = [alarms(s, limit, detect["merge_gap"]) for s in scores["test"]]
        result = score_alarms(labels, kind, _joined(predicted), task.kinds)
        result.update({"threshold": limit, "info": info})
        report["detectors"][name] = result
        plots[name] = {"scores": scores, "predicted": predicted, "threshold": limit}
        echo(
            f"{name}: F1 {result['flat']['f1']:.3f} (P {result['flat']['precision']:.3f}, R "
            f"{result['flat']['recall']:.3f}); front F1 {result['front']['f1']:.3f}; NAB "
            f"{result['nab']['standard']:.1f}; mean delay {result['mean_delay']}"
        )
    intervals = f1_intervals(
        [s["labels"] for s in split_series["test"]], {name: p["predicted"] for name, p in plots.items()}
    )
    report["bootstrap"] = {"resamples": BOOTSTRAP, "level": 0.9, "over": "test series", "reference": names[0]}
    for name in names:
        report["detectors"][name]["flat"].update(intervals[name] if intervals else {})
    report["seconds"] = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    from ._detect_plots import plot_report

    report["plots"] = plot_report(task, split_series["test"], plots, report, out)
    (out / "report.json").write_text(json.dumps(_jsonable(report), indent=1) + "\n")
    (out / "report.md").write_text(markdown_tables(report, task.kinds))
    echo(f"wrote {out / 'report.json'}")
    return report


def _cell(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown_tables(report: dict, kinds) -> str:
    """The report's figures as two Markdown tables: one row per detector, then one
    row per detector and anomaly kind."""
    lines = [
        "| detector | parameters | P | R | F1 | F1 90 % | F1 minus first (90 %) | F1 front | mean delay "
        "| NAB standard | NAB low FP | NAB low FN | alarm ranges |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in report["detectors"].items():
        nab, flat = r["nab"], r["flat"]
        interval, diff = "-", "-"
        if "f1_interval" in flat:
            interval = f"[{_cell(flat['f1_interval'][0])}, {_cell(flat['f1_interval'][1])}]"
            lo, hi = flat["minus_first_interval"]
            diff = f"{flat['minus_first']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        lines.append(
            f"| {name} | {r['info'].get('parameters', 0)} | {_cell(flat['precision'])} | "
            f"{_cell(flat['recall'])} | {_cell(flat['f1'])} | {interval} | {diff} | {_cell(r['front']['f1'])} | "
            f"{_cell(r['mean_delay'], 0)} | {_cell(nab['standard'], 1)} | {_cell(nab['reward_low_fp_rate'], 1)} | "
            f"{_cell(nab['reward_low_fn_rate'], 1)} | {r['alarm_ranges']} |"
        )
    lines += [
        "",
        "| detector | kind | ranges | detected | precision | recall (flat) | recall (front) | mean delay |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in report["detectors"].items():
        for kind in kinds:
            k = r["per_kind"].get(kind)
            if k is None:
                continue
            lines.append(
                f"| {name} | {kind} | {k['ranges']} | {_cell(k['detected'], 2)} | {_cell(k['precision_flat'])} | "
                f"{_cell(k['recall_flat'])} | {_cell(k['recall_front'])} | {_cell(k['mean_delay'], 0)} |"
            )
    return "\n".join(lines) + "\n"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x
