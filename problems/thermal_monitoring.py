r"""A monitored circuit board: workload-driven chips, a fan, noisy sensors and faults.

``dT/dt = div(k grad T) - h T + sum_c P_c w_c(t) phi_c(x)`` on the unit square
(non-dimensional: FR-4 laminate ``k = 1``, ``rho c = 1``), ``T`` the temperature rise
above the inlet air. The board of ``problems.hybrid_heat_board`` (copper traces one fine
cell wide, a bus to the heat-sink edge ``T = 0`` at the bottom, the other edges
insulated), cooled over its face by the fan's air stream, the sink coefficient ``h``
(``H_FAN``: a time constant ``1 / h`` of ``20 * DT``). Chip ``c`` dissipates
``P_c w_c(t)``: ``w`` is the reported workload, a utilisation in [0.05, 1] per chip
that jumps between job levels (a shared rack load and each chip's own jobs). ``M``
sensors read ``T`` at fixed points with Gaussian noise ``NOISE``, one sample per ``DT``.

Faults are injected in the physics, not painted on the trace (``KINDS``):

* ``fan``: the fan fails, ``h`` drops to 45-65 % of ``H_FAN`` for the range;
* ``heat_load``: an unreported source (a shorted part, a neighbour's exhaust) of
  10-20 % of the board's full power at a point away from the chips;
* ``sensor``: one sensor sticks at its reading at the onset, or drifts (a ramp of
  8-15 % of its full-load reading over the range);
* ``degradation``: the thermal contact under one chip fails slowly, the conductivity
  of its pad falling linearly over the first 60 % of the range (a gradual onset) to
  5-12 % of normal, restored at the end (maintenance).

Each is sized so that its effect stays inside what normal operation covers: a fan
failure at light load reads cooler than full load with the fan working, so a fixed
temperature threshold finds few of them; a detector has to know what the workload
implies. (Not all: a fan failure under heavy load, or an unreported load beside a
bare-board sensor, can leave that sensor's normal range; the ``fixed`` detector of
``problems.thermal_detectors`` measures it.)

The truth is ``FINE`` cells per side, Crank-Nicolson with conjugate gradients for the
conduction and the source, the air-stream sink ``exp(-h DT)`` after each step (Lie
splitting, exact for the uniform ``h`` apart from the source's timing; first order).
The coarse physics that detectors may use is the same equation on ``FINE / FACTOR``
cells per side with block-averaged (arithmetic) conductivity and sources and the
nominal ``h``: it cannot hold the copper traces nor a sensor's point reading, so its
prediction is biased by an amount that depends on the workload.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import nnpde
import solvers
from problems import hybrid_heat_board as board
from problems._xla import EXECUTION_BOUND

FINE = 32
FACTOR = 4
DT = 0.01
H_FAN = 5.0
CHIP_POWER = (4.0, 6.0, 3.0, 5.0, 2.5)  # full-load power per chip of board.CHIPS
CHIP_WIDTH = 0.03
PAD_RADIUS = 0.06
NOISE = 0.01
# sensor positions (x, y): one beside each chip, three on the bare board
SENSORS = ((0.2, 0.33), (0.75, 0.42), (0.3, 0.62), (0.65, 0.77), (0.45, 0.83), (0.1, 0.1), (0.9, 0.2), (0.9, 0.95))
KINDS = ("fan", "heat_load", "sensor", "degradation")
# anomaly lengths in samples (lo, hi) per kind; the degradation is slow
DURATIONS = {"fan": (300, 800), "heat_load": (300, 800), "sensor": (400, 1000), "degradation": (1200, 2500)}


def _cells(points, n: int):
    return tuple((min(n - 1, int(x * n)), min(n - 1, int(y * n))) for x, y in points)


def chip_maps(resolution: int):
    """``(n_chips, n, n)``: each chip's footprint, integrating to 1 over the board."""
    g = board.grid(resolution)
    x, y = g.cell_centres()
    maps = [jnp.exp(-((x - a) ** 2 + (y - b) ** 2) / (2 * CHIP_WIDTH**2)) for a, b, _ in board.CHIPS]
    return jnp.stack([m / (jnp.sum(m) * g.cell_volume) for m in maps])


def _spot(resolution: int, x0: float, y0: float):
    g = board.grid(resolution)
    x, y = g.cell_centres()
    m = jnp.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * CHIP_WIDTH**2))
    return m / (jnp.sum(m) * g.cell_volume)


def pad_mask(resolution: int, chip: int):
    """The cells of chip ``chip``'s thermal contact (within ``PAD_RADIUS`` of its centre)."""
    g = board.grid(resolution)
    x, y = g.cell_centres()
    a, b, _ = board.CHIPS[chip]
    return ((x - a) ** 2 + (y - b) ** 2 < PAD_RADIUS**2).astype(float)


WORKLOADS = {"normal": ((0.2, 1.0), (0.1, 1.0)), "busy": ((0.7, 1.0), (0.5, 1.0))}


def workload(rng: np.random.Generator, n_steps: int, regime: str = "normal") -> np.ndarray:
    """``(n_steps, n_chips)`` utilisation in [0.05, 1]: a shared rack load (level
    changes every ~600 samples) times each chip's own jobs (every ~150 samples), the
    levels uniform in the ranges ``WORKLOADS[regime]`` (rack, own). ``"normal"``: rack
    0.2-1, own 0.1-1 (the board's mean utilisation 0.28 at the median, 0.70 at the
    99th percentile); ``"busy"``: rack 0.7-1, own 0.5-1 (median 0.63: a busy period
    that the normal series reach less than 10 % of the time)."""
    (rack_lo, rack_hi), (own_lo, own_hi) = WORKLOADS[regime]

    def levels(mean_length, lo, hi, n):
        out, t = np.empty(n_steps), 0
        while t < n_steps:
            length = 1 + int(rng.exponential(mean_length))
            out[t : t + length] = rng.uniform(lo, hi)
            t += length
        return out

    rack = levels(600, rack_lo, rack_hi, 1)
    own = np.stack([levels(150, own_lo, own_hi, 1) for _ in board.CHIPS], axis=1)
    return np.clip(rack[:, None] * own, 0.05, 1.0)


@dataclasses.dataclass(frozen=True)
class Faults:
    """A series' fault schedule: per-step drivers and labels (``kind`` -1: normal)."""

    fan: np.ndarray  # (T,) multiplier of h
    pad: np.ndarray  # (T,) multiplier of the pad conductivity of chip ``pad_chip``
    pad_chip: int
    load: np.ndarray  # (T,) unreported power
    load_at: tuple[float, float]
    sensor: list  # [(start, end, sensor, "stuck" | "drift", size)]
    kind: np.ndarray  # (T,) index into KINDS, -1 where normal


def faults(rng: np.random.Generator, n_steps: int, n_anomalies: int) -> Faults:
    """``n_anomalies`` non-overlapping faults of kinds drawn in turn from ``KINDS``
    (shuffled), at random times with at least 600 normal samples between them."""
    fan, pad, load, kind = np.ones(n_steps), np.ones(n_steps), np.zeros(n_steps), np.full(n_steps, -1)
    if n_anomalies == 0:  # normal operation
        return Faults(fan, pad, 0, load, (0.5, 0.2), [], kind)
    kinds = [KINDS[i % len(KINDS)] for i in rng.permutation(n_anomalies)]
    lengths = [int(rng.integers(*DURATIONS[k])) for k in kinds]
    slack = n_steps - 1000 - sum(lengths) - 600 * n_anomalies
    if slack < 0:
        raise ValueError(f"{n_anomalies} anomalies do not fit in {n_steps} samples. Fix: fewer, or a longer series.")
    gaps = np.diff(np.sort(rng.integers(0, slack, n_anomalies)), prepend=0)
    sensor, pad_chip = [], int(rng.integers(len(board.CHIPS)))
    load_at = (float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.1, 0.25)))
    full_power = sum(CHIP_POWER)
    t = 1000
    for k, length, gap in zip(kinds, lengths, gaps):
        t += 600 + int(gap)
        span = slice(t, t + length)
        kind[span] = KINDS.index(k)
        if k == "fan":
            fan[span] = rng.uniform(0.45, 0.65)
        elif k == "heat_load":
            load[span] = rng.uniform(0.1, 0.2) * full_power
        elif k == "degradation":
            ramp = np.minimum(1.0, np.arange(1, length + 1) / (0.6 * length))
            pad[span] = 1.0 - ramp * (1.0 - rng.uniform(0.05, 0.12))
        else:
            mode = "stuck" if rng.random() < 0.5 else "drift"
            sensor.append((t, t + length, int(rng.integers(len(SENSORS))), mode, float(rng.uniform(0.08, 0.15))))
        t += length
    return Faults(fan, pad, pad_chip, load, load_at, sensor, kind)


def fine_step_function(resolution: int = FINE):
    """``step(T, (w, fan, pad, load), pad_mask, load_map) -> T``: one truth step."""
    g, bc = board.grid(resolution), board.boundary_conditions()
    k0, chips = board.conductivity(resolution), chip_maps(resolution) * jnp.asarray(CHIP_POWER)[:, None, None]

    def step(temperature, drivers, mask, load_map):
        w, fan, pad, load = drivers
        k = k0 * (1.0 - (1.0 - pad) * mask)
        q = jnp.tensordot(w, chips, 1) + load * load_map
        eq = solvers.HeatEquation(g, bc, conductivity=k, source=q)
        cn = nnpde.ThetaMethod(eq, dt=DT, method="crank_nicolson", solver="cg", rtol=1e-9)
        return cn(temperature) * jnp.exp(-H_FAN * fan * DT)

    return step


# The truth is execution-bound (thousands of CG solves in one scan): compiled with
# XLA's default optimisation whatever the process's XLA_FLAGS say (problems._xla).
@functools.partial(jax.jit, compiler_options=EXECUTION_BOUND)
def _truth(w, fan, pad, load, mask, load_map):
    step = fine_step_function(FINE)
    cells = _cells(SENSORS, FINE)
    ix, iy = jnp.asarray([c[0] for c in cells]), jnp.asarray([c[1] for c in cells])

    def body(temperature, drivers):
        temperature = step(temperature, drivers, mask, load_map)
        return temperature, temperature[0, ix, iy]

    return jax.lax.scan(body, jnp.zeros((1, FINE, FINE)), (w, fan, pad, load))[1]


def series(
    seed: int, *, n_steps: int = 20_000, n_anomalies: int = 0, noise: float = NOISE, truth=None, regime: str = "normal"
) -> dict:
    """One monitored series, drawn from ``seed``: ``workload (T, n_chips)``,
    ``readings (T, M)`` (noisy, faulty sensors included), ``truth (T, M)`` (the
    temperatures at the sensors), ``labels (T,)`` 0/1 and ``kind (T,)`` (index into
    ``KINDS``, -1 normal). ``n_anomalies = 0``: normal operation. ``noise``: the
    sensors' noise (the same draws, scaled). ``truth``: an earlier series of the same
    seed and sizes (a dict as returned here), whose temperatures are reused instead
    of solving again (its workload and labels must match). ``regime``: the workload's
    (``WORKLOADS``)."""
    nnpde.check_int(n_steps, "n_steps", minimum=100, fix="samples per series, e.g. 20000.")
    nnpde.check_int(n_anomalies, "n_anomalies", minimum=0, fix="faults per series, e.g. 8 (0: normal data).")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise ValueError(f"noise must be a number >= 0, got {noise!r}. Fix: e.g. noise={NOISE}.")
    if regime not in WORKLOADS:
        raise ValueError(f"regime must be one of {sorted(WORKLOADS)}, got {regime!r}. Fix: e.g. regime='normal'.")
    rng = np.random.default_rng(seed)
    w = workload(rng, n_steps, regime)
    f = faults(rng, n_steps, n_anomalies)
    if truth is not None:
        if not (np.array_equal(truth["workload"], w) and np.array_equal(truth["kind"], f.kind)):
            raise ValueError(
                f"series({seed}): the given truth comes from another seed or other sizes. "
                "Fix: reuse series of the same seed, n_steps and n_anomalies."
            )
        truth = np.asarray(truth["truth"])
    else:
        truth = np.asarray(
            _truth(
                jnp.asarray(w),
                jnp.asarray(f.fan),
                jnp.asarray(f.pad),
                jnp.asarray(f.load),
                pad_mask(FINE, f.pad_chip),
                _spot(FINE, *f.load_at),
            )
        )
    readings = truth + noise * rng.standard_normal(truth.shape)
    full_load = np.quantile(truth, 0.99, axis=0)
    for start, end, m, mode, size in f.sensor:
        if mode == "stuck":
            readings[start:end, m] = readings[start, m]
        else:
            sign = 1.0 if rng.random() < 0.5 else -1.0
            readings[start:end, m] += sign * size * full_load[m] * np.linspace(0, 1, end - start)
    kind = f.kind
    return {"workload": w, "readings": readings, "truth": truth, "labels": (kind >= 0).astype(np.int8), "kind": kind}


def coarse_equation(resolution: int = FINE // FACTOR, factor: int = FACTOR):
    """The coarse physics: block-averaged conductivity on ``resolution`` cells per side."""
    n = resolution * factor
    return solvers.HeatEquation(
        board.grid(resolution),
        board.boundary_conditions(),
        conductivity=nnpde.downsample(board.conductivity(n), factor, ndim=2),
    )


def coarse_chip_maps(resolution: int = FINE // FACTOR, factor: int = FACTOR):
    """``(n_chips, n, n)`` chip sources at full load on the coarse grid (block averages)."""
    fine = chip_maps(resolution * factor) * jnp.asarray(CHIP_POWER)[:, None, None]
    return nnpde.downsample(fine, factor, ndim=2)


def sensor_cells(resolution: int = FINE // FACTOR):
    """The coarse cell holding each sensor, as index arrays ``(ix, iy)``."""
    cells = _cells(SENSORS, resolution)
    return np.asarray([c[0] for c in cells]), np.asarray([c[1] for c in cells])


SPLIT_SEEDS = {"train": 0, "validation": 10_000, "test": 20_000}


def fit_on_first(fit, samples: int):
    """``fit`` given the first ``samples`` samples of each training series only (the
    ``train_samples`` option; public for scripts that build their own detectors)."""

    @functools.wraps(fit)
    def cut(train, directory=None):
        return fit([{key: value[:samples] for key, value in s.items()} for s in train], directory)

    return cut


def detector_settings(*, hybrid_steps: int = 1500, data_steps: int = 3000, correction: str = "cnn") -> dict:
    """The keyword arguments ``monitoring`` gives each detector of
    ``thermal_detectors.DETECTORS`` that takes any, from its options of the same names
    (public for scripts that fit variants of the configured detectors)."""
    learned = {"steps": hybrid_steps, **({"correction": correction} if correction != "cnn" else {})}
    return {"hybrid": learned, "hybrid_filter": learned, "emulator": learned, "data": {"steps": data_steps}}


def monitoring(
    *,
    n_steps: int = 20_000,
    n_anomalies: int = 8,
    hybrid_steps: int = 1500,
    data_steps: int = 3000,
    noise: float = NOISE,
    truth_from: str = "",
    test_workload: str = "normal",
    train_samples: int = 0,
    correction: str = "cnn",
) -> nnpde.MonitoringTask:
    """The monitoring task for ``nnpde detect``: series of ``n_steps`` samples (test
    series with ``n_anomalies`` faults each, cycling through ``KINDS``), sensor noise
    ``noise``, the detectors of ``problems.thermal_detectors`` (the hybrid, its
    filter and the emulator trained for ``hybrid_steps``, the data-only forecaster for
    ``data_steps``). ``test_workload``: the test series' workload regime
    (``WORKLOADS``; ``"busy"``: a busy period the normal series, training and
    validation, rarely reach: do the detectors hold outside the data they were fitted
    and thresholded on?). ``train_samples``: fit every detector on the first
    ``train_samples`` samples of each training series only (0: all of them), to ask
    what each needs of normal data; validation, thresholds and tests are unchanged.
    ``correction``: the learned part of the hybrid, its filter and the emulator
    (``thermal_detectors.CORRECTIONS``: ``"cnn"``, or ``"linear"``, the coarse step's
    coefficients learned, the form of the board's physics).
    ``truth_from``: the ``data`` folder of an earlier run of the same
    sizes, whose temperatures are reused (another sensor noise on the same physics,
    without solving again)."""
    from problems import thermal_detectors

    nnpde.check_int(n_steps, "n_steps", minimum=100, fix="samples per series, e.g. 20000.")
    nnpde.check_int(n_anomalies, "n_anomalies", minimum=1, fix="faults per test series, e.g. 8.")
    nnpde.check_int(hybrid_steps, "hybrid_steps", minimum=1, fix="training steps of the hybrid, e.g. 1500.")
    nnpde.check_int(data_steps, "data_steps", minimum=1, fix="training steps of the forecaster, e.g. 3000.")
    nnpde.check_int(
        train_samples, "train_samples", minimum=0, fix="samples of each training series to fit on, e.g. 2000 (0: all)."
    )
    if train_samples and train_samples > n_steps:
        raise ValueError(
            f"train_samples = {train_samples} exceeds the series' n_steps = {n_steps}. "
            f"Fix: at most {n_steps}, or 0 for all of them."
        )
    thermal_detectors.check_correction(correction)
    if test_workload not in WORKLOADS:
        raise ValueError(
            f"test_workload must be one of {sorted(WORKLOADS)}, got {test_workload!r}. Fix: e.g. 'normal' or 'busy'."
        )

    def draw(split: str, index: int) -> dict:
        anomalies = n_anomalies if split == "test" else 0
        truth = None
        if truth_from:
            with np.load(Path(truth_from) / f"{split}-{index}.npz") as f:
                truth = dict(f)
        regime = test_workload if split == "test" else "normal"
        return series(
            SPLIT_SEEDS[split] + index, n_steps=n_steps, n_anomalies=anomalies, noise=noise, truth=truth, regime=regime
        )

    detectors = dict(thermal_detectors.DETECTORS)
    for name, settings in detector_settings(
        hybrid_steps=hybrid_steps, data_steps=data_steps, correction=correction
    ).items():
        detectors[name] = functools.partial(thermal_detectors.DETECTORS[name], **settings)
    if train_samples:
        detectors = {name: fit_on_first(fit, train_samples) for name, fit in detectors.items()}
    return nnpde.MonitoringTask(
        name="thermal_monitoring",
        description=" ".join(__doc__.split("\n\n")[0:1]).replace("\n", " "),
        series=draw,
        detectors=detectors,
        kinds=KINDS,
        sensors=tuple(f"sensor {m} ({x:.2f}, {y:.2f})" for m, (x, y) in enumerate(SENSORS)),
        attrs={
            "fine": FINE,
            "factor": FACTOR,
            "dt": DT,
            "h_fan": H_FAN,
            "chip_power": list(CHIP_POWER),
            "noise": noise,
            "truth_from": truth_from,
            "test_workload": test_workload,
            "sensors": [list(s) for s in SENSORS],
            "n_steps": n_steps,
            "n_anomalies": n_anomalies,
            "hybrid_steps": hybrid_steps,
            "data_steps": data_steps,
            "durations": {k: list(v) for k, v in DURATIONS.items()},
            # recorded only when set, so that residuals cached before the option existed stay valid
            **({"train_samples": train_samples} if train_samples else {}),
            **({"correction": correction} if correction != "cnn" else {}),
        },
    )
