"""Statistical efficiency (steps to target against groups and staleness), time to
target, and scaling predictions from 1 to 10^4 nodes (numpy only; no MPI).

Wall time to a target accuracy is (steps to target) x (time per step): ``simulate``
gives the second, ``StepsToTarget`` (fitted to measured runs by
``fit_steps_to_target``) the first; ``time_to_target`` combines them for one layout and
``predict_scaling`` for every node count and layout.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._compute_model import ComputeModel
from ._scale_model import _count, check_averaging, simulate


def information_age(every, mean_staleness):
    """``mean_staleness + (every - 1) / 2``: the information age of bounded-staleness
    averaging (every average applied; ``StepsToTarget`` derives it). A float for
    scalars, else an array."""
    age = np.asarray(mean_staleness, dtype=np.float64) + (np.asarray(every, dtype=np.float64) - 1) / 2
    return float(age) if age.ndim == 0 else age


@dataclasses.dataclass(frozen=True)
class StepsToTarget:
    """Steps to the target per group at equal global batch, ``G`` groups:

        S(G, age) = S1 * (1 + a * age * (G - 1) / G)

    ``age`` is the information age: the mean, over steps, of the number of steps since the
    snapshot behind the newest average a group has applied. With bounded staleness an
    average of staleness ``tau`` lands every ``every`` steps, so the age runs from ``tau``
    to ``tau + every - 1``: ``age = tau + (every - 1) / 2``. Why this form:

    - ``G = 1``, or averaging every step with no delay (``age = 0``), is synchronous
      training at the same global batch (for plain SGD, the mean of the groups' parameters
      after one step from a common point is the step of the mean gradient): ``S = S1``;
    - the penalty grows with the age: analyses of local SGD (periodic averaging) and of
      asynchronous SGD have extra error terms that grow with the averaging period and
      with the delay (Stich, "Local SGD converges fast and communicates little", ICLR
      2019; Lian et al., "Asynchronous parallel stochastic gradient for nonconvex
      optimization", NeurIPS 2015). The model takes the simplest such growth, linear in
      the age (a first-order expansion, not their bounds), and the fit's residuals must
      support it;
    - only the other groups' share of the average is old: a group's own progress is
      current. ``(G - 1) / G`` is that share.

    ``a >= 0`` (staleness is not assumed to help) and ``S1 > 0`` are fitted by
    non-negative least squares on the relative error; the residuals say how well the form
    fits. It is linear in the age: it cannot bend (a cliff beyond some staleness, or a
    benefit of averaging as an ensemble) and it says nothing about the mixing weight
    ``alpha < 1``, which the measured runs must then use.

    ``residuals``: relative residuals (measured / model - 1) of the fitted points;
    ``relative_rms``: their root mean square. ``steps(groups, age)`` evaluates it.
    """

    single_group_steps: float | int
    penalty: float | int
    residuals: tuple[float, ...] = ()
    relative_rms: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "single_group_steps", float(self.single_group_steps))
        object.__setattr__(self, "penalty", float(self.penalty))
        if not (math.isfinite(self.single_group_steps) and self.single_group_steps > 0):
            raise ValueError(f"single_group_steps must be finite and > 0, got {self.single_group_steps!r}.")
        if not (math.isfinite(self.penalty) and self.penalty >= 0):
            raise ValueError(f"penalty must be finite and >= 0, got {self.penalty!r}.")

    def steps(self, groups, age):
        """Steps to target with ``groups`` groups at information age ``age`` (steps)."""
        groups = np.asarray(groups, dtype=np.float64)
        age = np.asarray(age, dtype=np.float64)
        if (groups < 1).any() or (age < 0).any():
            raise ValueError(f"groups must be >= 1 and age >= 0, got groups={groups!r}, age={age!r}.")
        value = self.single_group_steps * (1 + self.penalty * age * (groups - 1) / groups)
        return float(value) if value.ndim == 0 else value

    def to_dict(self) -> dict:
        """The fit, JSON-serialisable."""
        return {
            "model": "S = S1 * (1 + a * age * (G - 1) / G)",
            "single_group_steps": self.single_group_steps,
            "penalty": self.penalty,
            "residuals": list(self.residuals),
            "relative_rms": self.relative_rms,
        }


def fit_steps_to_target(groups, every, mean_staleness, steps) -> StepsToTarget:
    """Fit ``StepsToTarget`` to measured runs: one entry per run (several seeds of one
    layout are several entries). ``groups``, ``every``: the layout; ``mean_staleness``:
    the run's mean staleness of applied averages (``AsyncAverager.stats``, any value
    for one group); ``steps``: steps to the target. Non-negative least squares on the
    relative error; at least one run with one group and one with several are needed to
    tell ``S1`` from the penalty.
    """
    groups, every, staleness, steps = (np.asarray(v, dtype=np.float64) for v in (groups, every, mean_staleness, steps))
    if not (groups.ndim == 1 and groups.shape == every.shape == staleness.shape == steps.shape and groups.size >= 2):
        raise ValueError(
            f"groups, every, mean_staleness and steps must be 1-D of one length >= 2, got shapes {groups.shape}, "
            f"{every.shape}, {staleness.shape}, {steps.shape}. Fix: one entry per measured run."
        )
    if (groups < 1).any() or (every < 1).any() or (staleness < 0).any() or not np.all(steps > 0):
        raise ValueError(
            "groups and every must be >= 1, mean_staleness >= 0 and steps > 0, got "
            f"groups={groups!r}, every={every!r}, mean_staleness={staleness!r}, steps={steps!r}."
        )
    if not ((groups == 1).any() and (groups > 1).any()):
        raise ValueError(
            f"fit_steps_to_target needs runs with one group and with several, got groups={np.unique(groups)}. "
            "Fix: add the synchronous (one-group) runs: they fix S1."
        )
    x = information_age(every, staleness) * (groups - 1) / groups
    design = np.stack([np.ones_like(x), x], axis=1) / steps[:, None]
    target = np.ones_like(steps)
    solutions = []
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    if (solution >= 0).all():
        solutions.append(solution)
    s1_only = float(design[:, 0] @ target) / float(design[:, 0] @ design[:, 0])
    solutions.append(np.array([s1_only, 0.0]))
    s1, slope = min(solutions, key=lambda p: float(np.sum((design @ p - target) ** 2)))
    predicted = s1 + slope * x
    residuals = steps / predicted - 1
    return StepsToTarget(
        single_group_steps=float(s1),
        penalty=float(slope / s1),
        residuals=tuple(float(r) for r in residuals),
        relative_rms=float(np.sqrt(np.mean(residuals**2))),
    )


def time_to_target(
    steps_model,
    groups,
    ranks_per_group,
    compute,
    network,
    *,
    parameter_bytes,
    iterations=4,
    **options,
) -> dict:
    """Simulated wall time to the target of ``steps_model`` with this layout.

    The steps depend on the information age, which the simulation measures: start from
    ``S1`` steps, simulate, set the steps to ``steps_model.steps(groups, age)``, and
    repeat until the step count repeats (at most ``iterations`` simulations;
    ``converged`` says whether it did). ``options``: the keywords of ``simulate``.
    Returns a JSON-ready dict: ``groups``, ``ranks_per_group``, ``nodes``, ``steps``,
    ``seconds`` (to the end of ``finish``), ``seconds_per_step``, ``information_age``,
    ``converged`` and the last ``simulation``'s summary.
    """
    if not isinstance(steps_model, StepsToTarget):
        raise ValueError(
            f"steps_model must be a StepsToTarget, got {type(steps_model).__name__}. Fix: fit_steps_to_target(...)."
        )
    iterations = _count(iterations, "iterations", "e.g. iterations=4.")
    steps = max(1, math.ceil(steps_model.steps(groups, 0.0)))
    converged = False
    for _ in range(iterations):
        run = simulate(groups, ranks_per_group, steps, compute, network, parameter_bytes=parameter_bytes, **options)
        wanted = max(1, math.ceil(steps_model.steps(groups, run.information_age)))
        if wanted == steps:
            converged = True
            break
        steps = wanted
    return {
        "groups": run.groups,
        "ranks_per_group": run.ranks_per_group,
        "nodes": run.groups * run.ranks_per_group,
        "steps": run.steps,
        "seconds": run.end_seconds,
        "seconds_per_step": run.wall_seconds / run.steps,
        "information_age": run.information_age,
        "converged": converged,
        "simulation": run.summary(),
    }


def _layout(steps_model, nodes, groups, compute, network, reference, options):
    result = time_to_target(steps_model, groups, nodes // groups, compute, network, **options)
    seconds = result["seconds"]
    sim = result.pop("simulation")
    result.update(
        parallel_efficiency=None if reference is None else reference / (nodes * seconds),
        node_hours=nodes * seconds / 3600,
        averages_completed=sim["completed"],
        averages_discarded=sim["discarded_stale"],
        mean_applied_staleness=sim["mean_applied_staleness"],
        wait_fraction=sim["wait_fraction"],
    )
    return result


def predict_scaling(
    node_counts,
    *,
    steps_model,
    compute,
    network,
    parameter_bytes,
    global_batch,
    group_counts=(2, 4, 8, 16, 32, 64, 128),
    stragglers=None,
    every=4,
    max_staleness=4,
    wait_free=False,
    seed=0,
    **options,
) -> dict:
    """Time to target and parallel efficiency against node count, at a fixed global
    batch, for three layouts: synchronous (one group of ``N`` ranks), hybrid (the
    fastest of ``group_counts`` that divide ``N``, strictly between 1 and ``N``) and
    asynchronous (``N`` groups of one rank).

    The global batch is fixed (strong scaling, the setting of ``StepsToTarget``):
    ``compute`` is one rank's ``ComputeModel`` with its batch dependence
    (``ComputeModel.fit_batches``, or ``with_batch_scaling``); at ``N`` nodes each rank
    computes ``global_batch / N`` samples, ``compute.at_batch(global_batch / N)``
    (``N <= global_batch`` is required). Its step ``t0 + t1 * b`` floors at the fixed
    cost ``t0`` as the local batch ``b`` shrinks, so once ``global_batch / N`` falls
    below ``t0 / t1`` more nodes barely shorten a step and the efficiency falls: strong
    scaling saturates (in every layout: each computes ``global_batch / N`` per node).
    Parallel efficiency is ``T(1) / (N * T(N))``, ``T`` the time to target, ``T(1)``
    one node computing the whole global batch, with the same straggler setting.
    ``node_hours`` is ``N * T(N) / 3600``, the cost. ``stragglers``: ``(probability,
    slowdown)`` to also predict every point with stragglers, or ``None``. ``every``,
    ``max_staleness``, ``wait_free``, ``seed`` and ``options`` (e.g.
    ``gradient_bytes``, ``cross_network``): passed to ``simulate``.

    Returns a JSON-ready dict: ``settings`` and ``points``, one per node count and
    straggler setting, each with ``nodes``, ``stragglers``, ``local_batch``,
    ``compute_seconds`` (one rank's mean compute per step at that batch),
    ``one_node_seconds`` (the efficiency's reference, same straggler setting) and the
    layouts ``synchronous``, ``hybrid`` (``None`` without a candidate; its
    ``candidates`` list every group count tried) and ``asynchronous``, each with
    ``groups``, ``steps``, ``seconds``, ``seconds_per_step``, ``information_age``,
    ``parallel_efficiency``, ``node_hours`` and averaging counts.
    """
    counts = [_count(n, "node_counts entry", "node counts are integers >= 1.") for n in np.atleast_1d(node_counts)]
    if not counts:
        raise ValueError("node_counts is empty. Fix: e.g. node_counts=(1, 10, 100, 1000, 10000).")
    fix = "group counts are integers >= 2."
    candidates = sorted({_count(g, "group_counts entry", fix, minimum=2) for g in group_counts})
    global_batch = _count(global_batch, "global_batch", "the total batch of one step, e.g. 65536.")
    if max(counts) > global_batch:
        raise ValueError(
            f"global_batch={global_batch} is smaller than {max(counts)} nodes: some rank would get no sample. "
            "Fix: a global batch of at least the largest node count."
        )
    if "compute_batch" in options:
        raise ValueError(
            f"compute_batch={options['compute_batch']!r} is no longer taken: it scaled the step linearly with the "
            "batch, which leaves out the fixed cost per step. Fix: pass compute with its batch law, "
            "compute=ComputeModel.fit_batches(batches, samples_per_batch) or "
            "compute.with_batch_scaling(BatchScaling(t0, t1), batch=compute_batch)."
        )
    if not isinstance(compute, ComputeModel):
        raise ValueError(f"compute must be a ComputeModel, got {type(compute).__name__}.")
    if compute.batch_scaling is None:
        raise ValueError(
            "compute has no batch dependence, so it cannot be moved to the local batch global_batch / nodes. Fix: "
            "ComputeModel.fit_batches(batches, samples_per_batch), or "
            "compute.with_batch_scaling(BatchScaling(t0, t1), batch=<the batch it was measured at>)."
        )
    variants = [(False, compute)]
    if stragglers is not None:
        try:
            probability, slowdown = stragglers
        except (TypeError, ValueError):
            raise ValueError(
                f"stragglers must be (probability, slowdown) or None, got {stragglers!r}. Fix: e.g. (0.01, 2.0)."
            ) from None
        variants.append((True, compute.with_stragglers(probability, slowdown)))
    every, max_staleness, wait_free = check_averaging(every, max_staleness, wait_free)
    options = dict(options, every=every, max_staleness=max_staleness, wait_free=wait_free, seed=seed)
    options["parameter_bytes"] = parameter_bytes

    points = []
    for straggling, base in variants:
        one = _layout(steps_model, 1, 1, base.at_batch(global_batch), network, None, options)
        reference = one["seconds"]
        for nodes in counts:
            rank_compute = base.at_batch(global_batch / nodes)

            def layout(groups, rank_compute=rank_compute, nodes=nodes, reference=reference):
                return _layout(steps_model, nodes, groups, rank_compute, network, reference, options)

            synchronous = layout(1)
            tried = [layout(g) for g in candidates if g < nodes and nodes % g == 0]
            hybrid = min(tried, key=lambda r: r["seconds"]) if tried else None
            if hybrid is not None:
                hybrid = dict(hybrid, candidates=[{"groups": r["groups"], "seconds": r["seconds"]} for r in tried])
            points.append(
                {
                    "nodes": nodes,
                    "stragglers": straggling,
                    "local_batch": global_batch / nodes,
                    "compute_seconds": rank_compute.mean(),
                    "one_node_seconds": reference,
                    "synchronous": synchronous,
                    "hybrid": hybrid,
                    "asynchronous": layout(nodes),
                }
            )
    settings = {
        "global_batch": global_batch,
        "compute_batch": compute.batch,
        "compute": compute.to_dict(),
        "stragglers": None if stragglers is None else {"probability": probability, "slowdown": slowdown},
        "network": _describe(network),
        "parameter_bytes": parameter_bytes,
        "every": every,
        "max_staleness": max_staleness,
        "wait_free": wait_free,
        "group_counts": candidates,
        "steps_model": steps_model.to_dict(),
        "seed": seed,
    }
    return {"settings": settings, "points": points}


def _describe(network) -> dict:
    if dataclasses.is_dataclass(network):
        out = dataclasses.asdict(network)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    return {"type": type(network).__name__}
