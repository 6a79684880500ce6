r"""Reading a model off a baseline ladder: equivalent resolution and speed-up at equal accuracy.

The claim of a learned coarse solver (Kochkov et al., PNAS 118 (2021) e2101784118,
Fig. 2) is measured against a *ladder* of plain solvers at increasing resolution
``n_0 < n_1 < ...``, every rung and the model scored on the same held-out states
(correlation time with the truth, an error at a fixed time). The model's **equivalent
resolution** is the resolution at which the plain ladder would score as the model does:
the mean scores of the rungs, interpolated linearly in ``log n`` between the two rungs
that bracket the model's mean score. Its **speed-up at equal accuracy** is the plain
solver's cost at that resolution (cost interpolated linearly in ``log n``-``log cost``)
over the model's cost.

Uncertainty: the held-out states are resampled with replacement (paired: one resample
applies to the model and to every rung, since they share the states) and the estimate is
recomputed; the interval is the percentile bootstrap (Efron & Tibshirani, *An
Introduction to the Bootstrap*, 1993, ch. 13). A score beyond the ladder's ends is not
interpolated: the estimate is then *censored* (``"below"`` the first rung or ``"above"``
the last) and reported as that rung's resolution, a bound rather than a value, so a
ruler that ends too early can never pass for a measurement.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np


def _as_scores(model_scores, ladder_scores, resolutions):
    model = np.asarray(model_scores, dtype=float)
    ladder = np.asarray(ladder_scores, dtype=float)
    n = np.asarray(resolutions, dtype=float)
    if model.ndim != 1 or model.size < 2:
        raise ValueError(
            f"model_scores must be one score per held-out state (at least 2), got shape {model.shape}. "
            "Fix: score the model on each held-out state separately."
        )
    if n.ndim != 1 or n.size < 2 or np.any(n <= 0) or np.any(np.diff(n) <= 0):
        raise ValueError(
            f"resolutions must be at least two increasing positive values, got {n.tolist()}. "
            "Fix: order the ladder from coarse to fine, e.g. [32, 64, 128, 256]."
        )
    if ladder.shape != (n.size, model.size):
        raise ValueError(
            f"ladder_scores must be (rungs, states) = ({n.size}, {model.size}): every rung scored on the model's "
            f"held-out states, got shape {ladder.shape}."
        )
    if not (np.all(np.isfinite(model)) and np.all(np.isfinite(ladder))):
        raise ValueError("Scores must be finite. Fix: a NaN score means a diverged rollout; score it as such first.")
    return model, ladder, n


def _interpolate(score: float, rungs: np.ndarray, log_n: np.ndarray, higher_is_better: bool):
    """``(log n, censored)`` at which the rungs' mean scores reach ``score``."""
    s = rungs if higher_is_better else -rungs
    target = score if higher_is_better else -score
    if target <= s[0]:
        return log_n[0], "below" if target < s[0] else None
    reached = np.nonzero(s >= target)[0]
    if len(reached) == 0:
        return log_n[-1], "above"
    r = int(reached[0])
    fraction = (target - s[r - 1]) / (s[r] - s[r - 1])
    return log_n[r - 1] + fraction * (log_n[r] - log_n[r - 1]), None


def equivalent_resolution(
    model_scores,
    ladder_scores,
    resolutions,
    *,
    coarse: float | int | None = None,
    higher_is_better: bool = True,
    level: float = 0.90,
    resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """The resolution at which the plain ladder scores as the model does (module docstring).

    ``model_scores``: ``(S,)``, the model's score on each of ``S`` held-out states;
    ``ladder_scores``: ``(R, S)``, rung ``r`` (resolution ``resolutions[r]``, increasing)
    on the same states. ``higher_is_better``: a correlation time (True) or an error
    (False). ``coarse``: the model's own resolution, to report the factor.

    Returns ``estimate`` (a resolution), ``lower`` and ``upper`` (the ``level``
    percentile-bootstrap interval over held-out states, ``resamples`` paired resamples),
    ``factor``/``factor_lower``/``factor_upper`` (divided by ``coarse``, when given),
    ``censored`` (``None``, ``"below"`` or ``"above"`` for the estimate) and
    ``censored_fraction`` (of the resamples), with the mean scores that went in.
    """
    model, ladder, n = _as_scores(model_scores, ladder_scores, resolutions)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}. Fix: e.g. level=0.90.")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100:
        raise ValueError(f"resamples must be an int >= 100, got {resamples!r}. Fix: e.g. resamples=2000.")
    log_n = np.log(n)
    log_estimate, censored = _interpolate(model.mean(), ladder.mean(axis=1), log_n, higher_is_better)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, model.size, size=(resamples, model.size))
    boot, boot_censored = np.empty(resamples), 0
    for b, index in enumerate(draws):
        boot[b], flag = _interpolate(model[index].mean(), ladder[:, index].mean(axis=1), log_n, higher_is_better)
        boot_censored += flag is not None
    tail = 100.0 * (1.0 - level) / 2.0
    lower, upper = np.exp(np.percentile(boot, [tail, 100.0 - tail]))
    out = {
        "estimate": float({"below": n[0], "above": n[-1]}.get(censored, math.exp(log_estimate))),
        "lower": float(lower),
        "upper": float(upper),
        "level": level,
        "censored": censored,
        "censored_fraction": boot_censored / resamples,
        "resamples": resamples,
        "held_out_states": int(model.size),
        "higher_is_better": higher_is_better,
        "resolutions": n.tolist(),
        "ladder_mean_scores": ladder.mean(axis=1).tolist(),
        "model_mean_score": float(model.mean()),
    }
    if coarse is not None:
        if not coarse > 0:
            raise ValueError(f"coarse must be the model's positive resolution, got {coarse!r}.")
        out.update(
            coarse=float(coarse),
            factor=out["estimate"] / coarse,
            factor_lower=out["lower"] / coarse,
            factor_upper=out["upper"] / coarse,
        )
    return out


def cost_at_resolution(resolution, resolutions, costs) -> float:
    """The plain solver's cost at ``resolution``, interpolated linearly in ``log n`` and
    ``log cost`` between the measured rungs (``costs[r]`` at ``resolutions[r]``: wall time
    per simulated time unit, say). Refuses to extrapolate beyond the measured rungs."""
    n = np.asarray(resolutions, dtype=float)
    c = np.asarray(costs, dtype=float)
    if n.shape != c.shape or n.ndim != 1 or n.size < 2 or np.any(np.diff(n) <= 0) or np.any(c <= 0):
        raise ValueError(
            f"resolutions and costs must be matching 1-D arrays, resolutions increasing and costs positive, got "
            f"{n.tolist()} and {c.tolist()}."
        )
    if not n[0] * (1 - 1e-9) <= resolution <= n[-1] * (1 + 1e-9):
        raise ValueError(
            f"resolution {resolution:.4g} lies outside the measured rungs [{n[0]:.4g}, {n[-1]:.4g}]: a cost there "
            "would be extrapolated. Fix: time the plain solver at a resolution beyond it."
        )
    return float(np.exp(np.interp(np.log(resolution), np.log(n), np.log(c))))


def paired_ratio(scores, baseline_scores, *, resamples: int = 2000, seed: int = 0, level: float = 0.9) -> dict:
    """How two models compare on the same held-out states: the ratio of their mean
    scores, ``mean(scores) / mean(baseline_scores)``, with a paired percentile-bootstrap
    interval (one resample of the states applies to both) at ``level``, and on how many
    states ``scores`` is the larger (``larger_on``) of ``states``. Finite positive scores
    (a correlation time, an error)."""
    a, b = np.asarray(scores, dtype=float), np.asarray(baseline_scores, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise ValueError(
            f"scores and baseline_scores must be one score per held-out state, the same states, at least 2; "
            f"got shapes {a.shape} and {b.shape}. Fix: score both models on each held-out state."
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
        raise ValueError("Scores must be finite and positive. Fix: a diverged run has no ratio; count it apart.")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100:
        raise ValueError(f"resamples must be an int >= 100, got {resamples!r}. Fix: e.g. resamples=2000.")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}. Fix: e.g. level=0.9.")
    draws = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
    boot = a[draws].mean(axis=1) / b[draws].mean(axis=1)
    tail = 50 * (1 - level)
    return {
        "estimate": float(a.mean() / b.mean()),
        "lower": float(np.percentile(boot, tail)),
        "upper": float(np.percentile(boot, 100 - tail)),
        "level": level,
        "larger_on": int(np.sum(a > b)),
        "states": int(a.size),
    }


def speedup_at_equal_accuracy(equivalent: dict, resolutions, costs, model_cost: float) -> dict:
    """Plain cost at the equivalent resolution over ``model_cost``, for the estimate and
    both ends of its interval (``equivalent`` from ``equivalent_resolution``). A censored
    end that lies beyond the timed rungs is reported as the bound it is (``None``)."""
    if not model_cost > 0:
        raise ValueError(f"model_cost must be positive, got {model_cost!r}.")
    out = {}
    for key in ("estimate", "lower", "upper"):
        try:
            out[key] = cost_at_resolution(equivalent[key], resolutions, costs) / model_cost
        except ValueError:
            out[key] = None
    out["censored"] = equivalent.get("censored")
    out["model_cost"] = float(model_cost)
    return out


def split_batch(states, devices: int):
    """``states`` ``(B, ...)`` placed with their batch axis split over the first
    ``devices`` local devices (one device: as they are)."""
    u0 = jnp.asarray(states)
    if devices == 1:
        return u0
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:devices]), ("batch",))
    return jax.device_put(u0, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch")))


def _timed_program(step, states, duration, devices):
    """``(run, u0, units)``: the compiled batched rollout of ``step`` over ``states`` for
    about ``duration`` time units, its inputs placed over ``devices``, and the trajectory
    time units one call simulates (its wall time over ``units`` is the cost)."""
    from ..numerics._rollout import rollout

    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration!r}. Fix: e.g. duration=10 * step.dt.")
    _check_devices(devices)
    if len(states) % devices:
        raise ValueError(
            f"{len(states)} trajectories do not split over devices={devices}. Fix: a batch divisible by {devices}."
        )
    n = max(1, round(duration / step.dt))
    run = jax.jit(jax.vmap(lambda u: rollout(step, u, n, trajectory=False)))
    u0 = split_batch(states, devices)
    return run, u0, n * step.dt * len(u0)


def _check_devices(devices) -> None:
    available = jax.local_device_count()
    if isinstance(devices, bool) or not isinstance(devices, int) or not 1 <= devices <= available:
        raise ValueError(
            f"devices must be an int from 1 to the {available} local devices, got {devices!r}. Fix: e.g. devices=1, "
            "or more host devices with XLA_FLAGS=--xla_force_host_platform_device_count=N set before JAX starts."
        )


def _positive_int(value, name: str, example: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}. Fix: e.g. {name}={example}.")


def seconds_per_time_unit(step, states, *, duration: float, repeats: int = 2, devices: int = 1) -> float:
    """Wall time per simulated time unit and per trajectory of ``step`` (a stepper with
    ``dt``) run batched over ``states`` (``(B, *state)``) for about ``duration`` time units,
    compiled, best of ``repeats`` runs after a compiling one: the cost that
    ``speedup_at_equal_accuracy`` divides by. Time every rung and the model in one process.

    ``devices``: the batch split over that many local devices (trajectories are
    independent, so no communication): on a CPU given several host devices
    (``XLA_FLAGS=--xla_force_host_platform_device_count=N``) this runs the trajectories
    on several cores where one compiled program would not spread its work over them (a
    small convolution network, say); time every rung both ways and keep each one's
    best, so that neither side is handicapped."""
    _positive_int(repeats, "repeats", 2)
    run, u0, units = _timed_program(step, states, duration, devices)
    run(u0).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run(u0).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return best / units


def interleaved_costs(
    steppers, *, duration: float, devices=None, rounds: int = 5, min_seconds: float = 0.5, progress: bool = False
) -> dict:
    """Wall time per simulated time unit and per trajectory of several steppers, timed in
    interleaved rounds so that the machine's drift falls on all of them alike.

    ``steppers``: ``{name: (step, states)}``, each run batched over its ``states`` for
    about ``duration`` time units (as ``seconds_per_time_unit``). Every stepper is timed
    with its batch split over each count in ``devices`` that divides it (default: one
    program, and one part per local device), all compiled first. Then, in each of
    ``rounds`` rounds, every program runs once in turn (the order rotated from round to
    round), each timing repeating its call until it lasts at least ``min_seconds``, so a
    cheap stepper is not timed over a few milliseconds of scheduler noise.

    Returns ``{name: {"rounds": [...], "median": m, "by_devices": {d: [...]}}}``:
    per round, the stepper's best over the device splits (each side charged its best, as
    in ``best_cost``), and their median, the cost to report. Taking the ratio of two
    steppers round by round (``speedup_over_rounds``) cancels what a round shares: the
    spread of those ratios is the timing's own uncertainty, which a bootstrap over
    held-out states does not see. ``progress``: a tqdm bar over the compilations and
    the timed runs."""
    from tqdm.auto import tqdm

    _positive_int(rounds, "rounds", 5)
    if not min_seconds >= 0:
        raise ValueError(f"min_seconds must be >= 0, got {min_seconds!r}. Fix: e.g. min_seconds=0.5.")
    if not steppers:
        raise ValueError("steppers is empty. Fix: {name: (step, states)} with at least one stepper.")
    if devices is None:
        devices = sorted({1, jax.local_device_count()})
    for d in devices:
        _check_devices(d)
    plan = {}
    for name, (_, states) in steppers.items():
        plan[name] = [d for d in devices if len(states) % d == 0]
        if not plan[name]:
            raise ValueError(
                f"{name!r}: {len(states)} trajectories split over none of devices={list(devices)}. "
                "Fix: include 1 in devices, or a batch that divides."
            )
    count = sum(map(len, plan.values()))
    bar = tqdm(total=count * (1 + rounds), desc="compiling", unit="run", disable=not progress, dynamic_ncols=True)
    programs = {}
    for name, (step, states) in steppers.items():
        for d in plan[name]:
            bar.set_postfix_str(f"{name}, {d} device(s)")
            run, u0, units = _timed_program(step, states, duration, d)
            run(u0).block_until_ready()  # compiles
            start = time.perf_counter()
            run(u0).block_until_ready()
            first = time.perf_counter() - start
            programs[name, d] = (run, u0, units, max(1, math.ceil(min_seconds / max(first, 1e-9))))
            bar.update()
    timed = {key: [] for key in programs}
    keys = list(programs)
    for r in range(rounds):
        bar.set_description(f"timing round {r + 1} of {rounds}")
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            bar.set_postfix_str(f"{key[0]}, {key[1]} device(s)")
            run, u0, units, calls = programs[key]
            start = time.perf_counter()
            for _ in range(calls):
                run(u0).block_until_ready()
            timed[key].append((time.perf_counter() - start) / calls / units)
            bar.update()
    bar.close()
    out = {}
    for name in steppers:
        by = {d: timed[n, d] for n, d in programs if n == name}
        best = np.min(np.stack([np.asarray(v) for v in by.values()]), axis=0)
        out[name] = {"rounds": best.tolist(), "median": float(np.median(best)), "by_devices": by}
    return out


def speedup_over_rounds(equivalent: dict, resolutions, plain_rounds, model_rounds) -> dict:
    """The speed-up at equal accuracy at ``equivalent``'s estimate, computed round by
    round from ``interleaved_costs``: ``plain_rounds`` ``(len(resolutions), rounds)``,
    ``model_rounds`` ``(rounds,)``. Returns the per-round speed-ups, their median, min
    and max: the spread that timing noise alone puts on the figure. ``None`` throughout
    when the estimate lies beyond the timed rungs."""
    plain = np.asarray(plain_rounds, dtype=float)
    model = np.asarray(model_rounds, dtype=float)
    if plain.ndim != 2 or plain.shape != (len(resolutions), model.size) or model.ndim != 1:
        raise ValueError(
            f"plain_rounds must be (rungs, rounds) = ({len(resolutions)}, {model.size}) and model_rounds (rounds,), "
            f"got {plain.shape} and {model.shape}. Fix: pass interleaved_costs' 'rounds' of each rung and the model."
        )
    try:
        ratios = [
            cost_at_resolution(equivalent["estimate"], resolutions, plain[:, r]) / model[r] for r in range(model.size)
        ]
    except ValueError:
        return {"rounds": None, "median": None, "min": None, "max": None}
    return {"rounds": ratios, "median": float(np.median(ratios)), "min": min(ratios), "max": max(ratios)}
