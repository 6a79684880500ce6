"""``simulate``: wall time of hybrid synchronous/asynchronous training, ``G`` groups of
``R`` ranks, by discrete-event simulation (numpy only; no MPI). ``simulate``'s
docstring states the model; ``Simulation`` holds the outcome.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._compute_model import ComputeModel

_MAX_CELLS = 20_000_000  # groups * steps: the simulation holds a few float64 arrays this size
_DRAW_CHUNK = 2_000_000  # rank-step draws per chunk


def _count(value, name, fix, *, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}. Fix: {fix}")
    return int(value)


def _seconds(value, name, fix):
    ok = not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)
    if not (ok and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}. Fix: {fix}")
    return float(value)


def check_averaging(every, max_staleness, wait_free):
    """``(every, max_staleness, wait_free)`` checked as ``AsyncAverager`` checks them."""
    every = _count(every, "every", "average every N >= 1 steps, e.g. every=4.")
    max_staleness = _count(max_staleness, "max_staleness", "e.g. max_staleness=every.", minimum=0)
    if not isinstance(wait_free, bool):
        raise ValueError(f"wait_free must be True or False, got {wait_free!r}.")
    if wait_free and max_staleness == 0:
        raise ValueError(
            "max_staleness=0 with wait_free=True would discard every average (AsyncAverager refuses it). "
            "Fix: max_staleness >= 1, or wait_free=False."
        )
    if not wait_free and max_staleness > every:
        raise ValueError(
            f"max_staleness={max_staleness} > every={every} with wait_free=False: AsyncAverager refuses it "
            "(bounded staleness completes each average before the next boundary). Fix: max_staleness <= every, "
            "or wait_free=True."
        )
    return every, max_staleness, wait_free


def _check_network(network, name):
    for method in ("allreduce_seconds", "broadcast_seconds"):
        if not callable(getattr(network, method, None)):
            raise ValueError(
                f"{name} must have .allreduce_seconds(nbytes, ranks) and .broadcast_seconds(nbytes, ranks), got "
                f"{type(network).__name__}. Fix: pass a NetworkModel (fit_network or INTERCONNECTS[...].network())."
            )
    return network


@dataclasses.dataclass(frozen=True)
class Simulation:
    """The outcome of ``simulate``. Times are seconds from the start of step 1 (of the
    earliest group, with ``start_seconds``).

    ``step_seconds`` ``(groups, steps)``: each step's duration, from the end of the
    previous ``after_step`` to the end of this one (compute, group allreduce, the
    averaging work and any wait). ``end_of_steps`` ``(groups,)``: when each group
    finished its last step. ``wall_seconds``: the last of them; ``end_seconds``: when
    ``finish`` (the final average) is done, the run's end. Per group ``(groups,)``
    counts as ``AsyncAverager.stats`` names them: ``started``, ``completed``
    (applied), ``discarded_stale``, ``abandoned_at_finish``, ``matched_at_finish``,
    ``waits``; ``wait_seconds`` (time blocked in bounded-staleness waits).
    ``staleness``: one entry per resolved average (applied or discarded), all groups;
    ``applied_staleness``: the applied ones. ``information_age``: the mean over groups
    and steps of the steps since the snapshot behind the newest applied average (0 at
    the start: all groups begin from the same parameters), the input of
    ``StepsToTarget``.
    """

    groups: int
    ranks_per_group: int
    steps: int
    every: int
    max_staleness: int
    wait_free: bool
    step_seconds: np.ndarray
    end_of_steps: np.ndarray
    wall_seconds: float
    end_seconds: float
    started: np.ndarray
    completed: np.ndarray
    discarded_stale: np.ndarray
    abandoned_at_finish: np.ndarray
    matched_at_finish: np.ndarray
    waits: np.ndarray
    wait_seconds: np.ndarray
    staleness: np.ndarray
    applied_staleness: np.ndarray
    information_age: float

    @property
    def mean_staleness(self) -> float:
        """Mean staleness of the applied averages (NaN when none was applied)."""
        return float(self.applied_staleness.mean()) if self.applied_staleness.size else math.nan

    def summary(self) -> dict:
        """Scalars and histograms, JSON-serialisable (no per-step arrays)."""
        staleness = self.staleness.astype(np.int64)
        return {
            "groups": self.groups,
            "ranks_per_group": self.ranks_per_group,
            "nodes": self.groups * self.ranks_per_group,
            "steps": self.steps,
            "every": self.every,
            "max_staleness": self.max_staleness,
            "wait_free": self.wait_free,
            "wall_seconds": self.wall_seconds,
            "end_seconds": self.end_seconds,
            "seconds_per_step": self.wall_seconds / self.steps,
            "step_seconds_mean": float(self.step_seconds.mean()),
            "step_seconds_p99": float(np.quantile(self.step_seconds, 0.99)),
            "group_seconds_per_step": {
                "min": float(self.end_of_steps.min() / self.steps),
                "max": float(self.end_of_steps.max() / self.steps),
            },
            "started": int(self.started.sum()),
            "completed": int(self.completed.sum()),
            "discarded_stale": int(self.discarded_stale.sum()),
            "abandoned_at_finish": int(self.abandoned_at_finish.sum()),
            "matched_at_finish": int(self.matched_at_finish.sum()),
            "waits": int(self.waits.sum()),
            "wait_seconds": float(self.wait_seconds.sum()),
            "wait_fraction": float(self.wait_seconds.sum() / self.end_of_steps.sum()),
            "staleness_mean": float(staleness.mean()) if staleness.size else None,
            "staleness_max": int(staleness.max()) if staleness.size else None,
            "staleness_histogram": np.bincount(staleness).tolist() if staleness.size else [],
            "mean_applied_staleness": None if math.isnan(self.mean_staleness) else self.mean_staleness,
            "information_age": self.information_age,
        }


def _first_reaching(cumulative, rows, lo, hi, offset, per_step, target):
    """Per row ``i``: the smallest step ``j`` in ``[lo_i, hi_i]`` with
    ``cumulative[rows_i, j] + j * per_step + offset_i >= target_i``, else ``hi_i + 1``.
    A vectorised binary search (the left side increases with ``j``)."""
    lo, hi = lo.copy(), hi + 1
    last = cumulative.shape[1] - 1
    while True:
        searching = lo < hi
        if not searching.any():
            return lo
        mid = np.minimum((lo + hi) // 2, last)
        reached = cumulative[rows, mid] + mid * per_step + offset >= target
        hi = np.where(searching & reached, mid, hi)
        lo = np.where(searching & ~reached, mid + 1, lo)


def _draw_steps(compute, groups, ranks, steps, allreduce, overhead, slowdown, rng, per_group=False):
    """``(idle, busy)``: each group's step durations ``(groups, steps)`` without and with
    an average in flight (the leader, rank 0, slowed by ``1 + overhead``). ``per_group``:
    ``compute`` is the group's synchronised compute, one draw per group and step, slowed
    by the group's slowest rank's factor (and by ``1 + overhead`` with an average in
    flight)."""
    idle = np.empty((groups, steps))
    busy = np.empty((groups, steps)) if overhead > 0 else idle
    if per_group:
        group_slowdown = slowdown.max(axis=1)
        chunk = max(1, _DRAW_CHUNK // groups)
        for start in range(0, steps, chunk):
            k = min(chunk, steps - start)
            draws = compute.sample(rng, (k, groups)) * group_slowdown
            idle[:, start : start + k] = (draws + allreduce).T
            if overhead > 0:
                busy[:, start : start + k] = (draws * (1 + overhead) + allreduce).T
        return idle, busy
    chunk = max(1, _DRAW_CHUNK // (groups * ranks))
    for start in range(0, steps, chunk):
        k = min(chunk, steps - start)
        draws = compute.sample(rng, (k, groups, ranks)) * slowdown
        leader = draws[..., 0]
        others = draws[..., 1:].max(axis=-1) if ranks > 1 else np.zeros_like(leader)
        idle[:, start : start + k] = (np.maximum(leader, others) + allreduce).T
        if overhead > 0:
            busy[:, start : start + k] = (np.maximum(leader * (1 + overhead), others) + allreduce).T
    return idle, busy


def simulate(
    groups,
    ranks_per_group,
    steps,
    compute,
    network,
    *,
    parameter_bytes,
    gradient_bytes=None,
    every=4,
    max_staleness=4,
    wait_free=False,
    cross_network=None,
    snapshot_seconds=0.0,
    mix_seconds=0.0,
    progress_overhead=0.0,
    rank_slowdown=None,
    compute_per="rank",
    start_seconds=None,
    seed=0,
) -> Simulation:
    """Simulate ``steps`` training steps of ``groups`` groups of ``ranks_per_group``
    ranks and return a ``Simulation``.

    ``compute``: a ``ComputeModel`` (one rank's compute per step). ``network``: the
    group allreduce and broadcasts (a ``NetworkModel``); ``cross_network``: the
    leaders' average (default ``network``). ``parameter_bytes``: the average's message,
    ``8 * (parameters + 1)`` for ``AsyncAverager`` (float64 values and the weight);
    ``gradient_bytes``: the group allreduce's message size, or a list of sizes, one per
    allreduce (``group_mean`` makes one blocking allreduce per leaf of the gradients,
    the loss and its parts, so each leaf pays the latency terms; 4 bytes per float32
    value); default ``parameter_bytes``. ``every``, ``max_staleness``,
    ``wait_free``: as ``AsyncAverager`` takes them. ``snapshot_seconds`` /
    ``mix_seconds``: host time to snapshot the parameters at a start / mix an average
    in. ``progress_overhead``: the leader's compute slowdown while an average is in
    flight. ``rank_slowdown``: fixed per-rank factors on compute, shape
    ``(groups, ranks_per_group)`` (broadcast), e.g. a slower node. ``compute_per``:
    ``"rank"`` (default): ``compute`` is one rank's, drawn independently for every rank
    and step, and a group waits for the slowest of its ``R`` draws; ``"group"``:
    ``compute`` is already the group's step compute, measured with its ranks in step (a
    barrier after every step), drawn once per group and step. Use ``"group"`` where the
    ranks' slowdowns are correlated, e.g. ranks that share cores and are descheduled
    together, which the slowest of independent draws overstates; a group is then slowed
    by its slowest rank's ``rank_slowdown``. ``start_seconds``: when each group starts
    its first step, ``(groups,)`` (default all 0), e.g. the measured skew of groups
    that compile and load their data one after another: a late group holds up every
    round until it has posted its part. ``seed``: the draws'.

    The model follows the rule of ``AsyncAverager`` (``_async.py``) with ``progress="thread"``:

    - Within a group, step ``k`` ends when the slowest of its ``R`` ranks has computed and
      the group's gradient allreduces (``network``, each of ``gradient_bytes``, ``R``
      ranks, one after the other) are done: ``d(k) = max_r c(r, k) + A`` (with
      ``compute_per="group"``: ``d(k) = c(k) + A``, one draw for the group). Steps are
      numbered from 1, as the training loop does.
    - After each step the group calls ``after_step(k)``: with an average in flight, the
      leader tests it (at the end of step ``k``'s compute), broadcasts its decision to the
      group (one integer, ``broadcast_seconds(8, R)``) and, when it applies the average,
      the average itself (``parameter_bytes``) and mixes it in (``mix_seconds``). Then, at
      ``k % every == 0`` with nothing in flight, the leader snapshots the parameters
      (``snapshot_seconds``) and starts the next non-blocking allreduce over the leaders.
    - The ``n``-th average of each leader is one collective: it completes at
      ``C_n = max_g s(g, n) + X``, the last leader's start plus the network time of an
      allreduce of ``parameter_bytes`` over ``G`` leaders (``cross_network``). The
      progress thread moves it without the main thread, so nothing else delays it; while
      it is in flight the leader's compute is ``1 + progress_overhead`` times slower (the
      thread's share of the CPU; 0 by default).
    - Bounded staleness (``wait_free=False``): a test at staleness ``max_staleness`` that
      finds the average pending waits for it (``waits``, ``wait_seconds``). With
      ``max_staleness <= every`` every leader starts an average at every boundary.
    - Wait-free: a boundary with an average still in flight starts none; a completed
      average older than ``max_staleness`` steps is discarded. Leaders may then start
      different numbers of averages (at most one apart); the ``n``-th completes only when
      every leader has started its ``n``-th.
    - Staleness of an average: the group's steps from its snapshot to the step whose
      ``after_step`` resolved it (applied or discarded), as ``AsyncAverager.stats`` counts.
    - ``finish``: each leader closes its in-flight average, the leaders agree on the
      number of starts (an allreduce of one integer), those one short match the last
      collective with a weight-0 start, and one blocking allreduce of the parameters and
      a broadcast within each group end the run (``end_seconds``).

    Events are processed round by round, not by a global clock: a leader's ``(n+1)``-th
    start depends only on the completion of its ``n``-th average, and ``C_n`` on every
    leader's ``n``-th start, so round ``n`` (all starts, then ``C_n``, then each group's
    test, wait or discard, found by binary search in its cumulative step times) needs
    nothing later. The result is exact for the model, and its cost is ``O(G * steps)``
    memory and ``O(rounds * G * log(steps))`` work after the draws.

    Not represented: ``progress="poll"`` (the average then moves only inside the leader's
    ``MPI_Test`` calls, at a pace set by the MPI library's progress engine); the
    progress thread's own pace (it tests every 0.5 ms, so a library that advances a
    non-blocking collective only inside MPI calls may hold each round of the algorithm
    up to that long: fit ``cross_network`` to measured ``AsyncAverager`` timings rather
    than to blocking allreduces when that matters); the health
    guard's rollbacks and weight-0 contributions (they change no timing); contention
    between the group allreduces and the averages on shared links.
    """
    G = _count(groups, "groups", "e.g. groups=4.")
    R = _count(ranks_per_group, "ranks_per_group", "e.g. ranks_per_group=8.")
    S = _count(steps, "steps", "e.g. steps=1000.")
    every, m, wait_free = check_averaging(every, max_staleness, wait_free)
    if compute_per not in ("rank", "group"):
        raise ValueError(
            f"compute_per must be 'rank' or 'group', got {compute_per!r}. Fix: 'group' when compute is the "
            "group's synchronised step compute, else 'rank'."
        )
    if not isinstance(compute, ComputeModel):
        raise ValueError(
            f"compute must be a ComputeModel, got {type(compute).__name__}. Fix: e.g. ComputeModel.constant(0.05)."
        )
    network = _check_network(network, "network")
    cross = network if cross_network is None else _check_network(cross_network, "cross_network")
    fix = "the message size in bytes, e.g. 8 * (parameters + 1)."
    parameter_bytes = _seconds(parameter_bytes, "parameter_bytes", fix)
    messages = np.atleast_1d(np.asarray(parameter_bytes if gradient_bytes is None else gradient_bytes, dtype=float))
    if messages.ndim != 1 or messages.size == 0 or not np.all(np.isfinite(messages)) or (messages < 0).any():
        raise ValueError(
            f"gradient_bytes must be a size in bytes or a non-empty list of them (one per allreduce), got "
            f"{gradient_bytes!r}. Fix: e.g. [4 * leaf.size for leaf in gradient leaves] + [8, 8] for the loss."
        )
    snapshot = _seconds(snapshot_seconds, "snapshot_seconds", "the measured host time of a snapshot, or 0.")
    mix_cost = _seconds(mix_seconds, "mix_seconds", "the measured host time of mixing an average in, or 0.")
    overhead = _seconds(progress_overhead, "progress_overhead", "a fraction, e.g. 0.02 for 2 % slower compute.")
    if G * S > _MAX_CELLS:
        raise ValueError(
            f"groups * steps = {G} * {S} = {G * S} exceeds {_MAX_CELLS}: the simulation keeps several float64 "
            "arrays of that size. Fix: simulate fewer steps (step statistics settle after a few hundred) or "
            "fewer groups."
        )
    slowdown = np.ones((G, R)) if rank_slowdown is None else np.asarray(rank_slowdown, dtype=np.float64)
    try:
        slowdown = np.broadcast_to(slowdown, (G, R))
    except ValueError:
        raise ValueError(
            f"rank_slowdown must broadcast to (groups, ranks_per_group) = {(G, R)}, got shape {slowdown.shape}. "
            "Fix: one factor per rank, e.g. np.ones((groups, ranks_per_group)) with the slow ones > 1."
        ) from None
    if not np.all(np.isfinite(slowdown)) or (slowdown <= 0).any():
        raise ValueError(f"rank_slowdown must be finite and > 0, got {slowdown!r}. Fix: 1 for a normal rank.")

    start = np.zeros(G) if start_seconds is None else np.asarray(start_seconds, dtype=np.float64).reshape(-1)
    if start.shape != (G,) or not np.all(np.isfinite(start)) or (start < 0).any():
        raise ValueError(
            f"start_seconds must be {G} finite times >= 0, one per group, got {start_seconds!r}. Fix: e.g. each "
            "group's first-step time less the earliest group's."
        )

    allreduce = float(np.sum(network.allreduce_seconds(messages, R))) if R > 1 else 0.0
    cross_seconds = cross.allreduce_seconds(parameter_bytes, G) if G > 1 else 0.0
    decision = network.broadcast_seconds(8, R) if R > 1 else 0.0  # the leader's verdict, one int64
    share = network.broadcast_seconds(parameter_bytes, R) if R > 1 else 0.0  # the average, to the group
    rng = np.random.default_rng(seed)
    idle, busy = _draw_steps(compute, G, R, S, allreduce, overhead, slowdown, rng, per_group=compute_per == "group")
    zeros = np.zeros((G, 1))
    idle_cum = np.concatenate([zeros, np.cumsum(idle, axis=1)], axis=1)
    busy_cum = idle_cum if busy is idle else np.concatenate([zeros, np.cumsum(busy, axis=1)], axis=1)

    started, completed, discarded, abandoned, waits = (np.zeros(G, np.int64) for _ in range(5))
    wait_seconds, end = np.zeros(G), np.zeros(G)
    clock, pos, previous = start.copy(), np.zeros(G, np.int64), np.zeros(G, np.int64)
    active = np.ones(G, bool)
    if G == 1:  # one group: AsyncAverager makes no MPI call, nothing is averaged
        active[:] = False
        end[:] = start + idle_cum[:, S]
    # events, one array per round: in flight (group, start step, last step), extra seconds
    # at a step (group, step, seconds), applied averages (group, snapshot step, step)
    flights, extras, applied, stale_all, stale_applied = [], [], [], [], []
    last_round = None  # (starters, start times, C) of the newest round
    pending_completions = []  # C of averages in flight at the end, when finite
    g_all = np.arange(G)
    while active.any():
        rows = g_all[active]
        # 1. starts: the first boundary at or after the last resolution, after the last start
        boundary = -(-pos[rows] // every) * every
        boundary = np.where(boundary <= previous[rows], previous[rows] + every, boundary)
        done = boundary > S
        quit_rows = rows[done]
        end[quit_rows] = clock[quit_rows] + idle_cum[quit_rows, S] - idle_cum[quit_rows, pos[quit_rows]]
        active[quit_rows] = False
        rows, b = rows[~done], boundary[~done]
        if rows.size == 0:
            break
        s = clock[rows] + idle_cum[rows, b] - idle_cum[rows, pos[rows]] + snapshot
        if snapshot > 0:
            extras.append((rows, b, np.full(rows.size, snapshot)))
        started[rows] += 1
        clock[rows], pos[rows], previous[rows] = s, b, b
        # 2. completion: only when every leader has started this (n-th) average
        complete = cross_seconds + s.max() if rows.size == G else math.inf
        last_round = (rows, s, complete)
        # 3. each group's test: the first step after the start whose test time reaches C
        offset = clock[rows] - busy_cum[rows, b] - (b + 1) * decision
        if not wait_free and m == 0:  # staleness 0: resolved in the after_step that started it
            found = clock[rows] >= complete
            r = b.copy()
        else:
            hi = np.minimum(b + m, S) if not wait_free else np.full(rows.size, S)
            r = _first_reaching(busy_cum, rows, b + 1, hi, offset, decision, np.full(rows.size, complete))
            found = r <= hi
        must_wait = ~found & (b + m <= S) & (not wait_free)
        if must_wait.any() and math.isinf(complete):
            raise RuntimeError(  # impossible under AsyncAverager's rule (every leader starts every boundary)
                "Bounded staleness waits for an average that a leader never starts: the real run would hang."
            )
        resolved = found | must_wait
        r = np.where(must_wait, b + m, r)
        tested = np.where(r > b, offset + busy_cum[rows, np.minimum(r, S)] + r * decision, clock[rows])
        wait = np.where(must_wait, np.maximum(complete - tested, 0.0) if math.isfinite(complete) else 0.0, 0.0)
        # resolved: applied or discarded at step r
        res = rows[resolved]
        r_res, b_res = r[resolved], b[resolved]
        staleness = r_res - b_res
        apply = staleness <= m
        after = tested[resolved] + wait[resolved] + decision + np.where(apply, share + mix_cost, 0.0)
        clock[res], pos[res] = after, r_res
        waits[res] += must_wait[resolved]
        wait_seconds[res] += wait[resolved]
        completed[res] += apply
        discarded[res] += ~apply
        stale_all.append(staleness)
        stale_applied.append(staleness[apply])
        applied.append((res[apply], b_res[apply], r_res[apply]))
        flights.append((res, b_res, r_res))
        # (the decision broadcast of an in-flight step is in the step series; at r == b
        # there is no in-flight step, so it is added here)
        extra = wait[resolved] + np.where(apply, share + mix_cost, 0.0) + (r_res == b_res) * decision
        extras.append((res, r_res, extra))
        # still in flight after the last step: abandoned at finish
        left = rows[~resolved]
        b_left = b[~resolved]
        end[left] = clock[left] + busy_cum[left, S] - busy_cum[left, b_left] + (S - b_left) * decision
        abandoned[left] += 1
        active[left] = False
        flights.append((left, b_left, np.full(left.size, S)))
        if left.size and math.isfinite(complete):
            pending_completions.append(complete)

    step_seconds = _step_series(idle, busy, decision, flights, extras, S)
    matched = np.zeros(G, np.int64)
    end_seconds = float(end.max())
    if G > 1:  # finish(): count reconciliation, matching starts, the final average
        control = float(end.max()) + cross.allreduce_seconds(8, G)
        ready = max([control, *pending_completions])
        matched = started.max() - started
        if last_round is not None and matched.any():
            rows, s, _ = last_round
            ready = max(ready, max(float(s.max()), control) + cross_seconds)
        end_seconds = ready + cross_seconds + share
    return Simulation(
        groups=G,
        ranks_per_group=R,
        steps=S,
        every=every,
        max_staleness=m,
        wait_free=wait_free,
        step_seconds=step_seconds,
        end_of_steps=end,
        wall_seconds=float(end.max()),
        end_seconds=float(end_seconds),
        started=started,
        completed=completed,
        discarded_stale=discarded,
        abandoned_at_finish=abandoned,
        matched_at_finish=matched,
        waits=waits,
        wait_seconds=wait_seconds,
        staleness=np.concatenate(stale_all) if stale_all else np.zeros(0, np.int64),
        applied_staleness=np.concatenate(stale_applied) if stale_applied else np.zeros(0, np.int64),
        information_age=_information_age(applied, G, S),
    )


def _step_series(idle, busy, decision, flights, extras, steps):
    """Each step's duration: idle, or busy plus the decision broadcast while an average
    is in flight (steps start+1 .. last), plus the extras at their steps."""
    G = idle.shape[0]
    series = idle.copy()
    if flights:
        g = np.concatenate([f[0] for f in flights])
        first = np.concatenate([f[1] for f in flights]) + 1
        last = np.concatenate([f[2] for f in flights])
        keep = first <= last
        change = np.zeros((G, steps + 2))
        np.add.at(change, (g[keep], first[keep]), 1)
        np.add.at(change, (g[keep], last[keep] + 1), -1)
        flying = np.cumsum(change, axis=1)[:, 1 : steps + 1] > 0
        series = np.where(flying, busy + decision, series)
    for g, step, seconds in extras:
        np.add.at(series, (g, step - 1), seconds)
    return series


def _information_age(applied, groups, steps):
    """Mean over groups and steps ``j = 1..steps`` of ``j - b``, ``b`` the snapshot step
    of the newest average applied at or before ``j`` (0 before the first)."""
    total_j = groups * steps * (steps + 1) / 2
    if not applied:
        return total_j / (groups * steps)
    g = np.concatenate([a[0] for a in applied])
    b = np.concatenate([a[1] for a in applied]).astype(np.float64)
    r = np.concatenate([a[2] for a in applied])
    order = np.lexsort((r, g))
    g, b, r = g[order], b[order], r[order]
    following = np.append(r[1:], steps + 1)
    following = np.where(np.append(g[1:] != g[:-1], True), steps + 1, following)
    snapshot_sum = float(np.sum(b * (following - r)))
    return (total_j - snapshot_sum) / (groups * steps)
