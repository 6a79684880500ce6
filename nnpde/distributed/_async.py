"""``AsyncAverager``: asynchronous parameter averaging across groups, with a health guard.

The scheme of Kurth et al., "Deep Learning at 15PF" (SC'17): ranks are split into
groups; within a group training is synchronous (identical parameters after every
step); across groups, parameters are averaged asynchronously, so a slow group does not
stall the others. Every ``every`` steps each group leader contributes a snapshot of its
group's parameters to a non-blocking sum over the leaders (``MPI_Iallreduce`` on
``cross_comm``); training continues while the sum is in flight, and when it lands
``staleness`` steps later the group folds it in with ``mix`` (which keeps the progress
made meanwhile).

Rules that keep the ranks consistent (the reason behind each design choice):

- Within a group every rank must apply the same average at the same step, else the
  group's parameters diverge. Only the leader knows whether its request completed, so
  it decides (pending / apply / discard) and broadcasts the decision, and the average,
  over ``group_host_comm``. Every other decision (health, snapshot, start) is a
  deterministic function of the group's identical parameters and step.
- MPI matches the n-th collective call of each leader on ``cross_comm``. A leader
  starts a new average only after its previous one completed locally, and:

  * bounded staleness (``wait_free=False``): an average still in flight
    ``max_staleness`` steps after its snapshot is waited for (``MPI_Wait``). With
    ``max_staleness <= every`` every average completes before the next boundary, so
    every leader starts one at every boundary and all leaders start the same sequence
    (no leader can wait for a start another leader will never make);
  * wait-free (``wait_free=True``): a leader never waits; at a boundary with an
    average still in flight it skips the start, and a result older than
    ``max_staleness`` when it completes is discarded. Leaders may then have started
    different numbers of averages, but never more than one apart (the n-th average
    cannot complete before every leader started it); ``finish`` reconciles the counts
    on a separate communicator and matches the missing start with a weight-0 one.

  Every group must call ``after_step`` for the same sequence of step numbers.
- Non-blocking MPI collectives progress only inside MPI calls. With
  ``progress="thread"`` a helper thread calls ``MPI_Test`` every 0.5 ms until the
  request completes (mpi4py initialises MPI with ``MPI_THREAD_MULTIPLE``); with
  ``progress="poll"`` the leader tests once per ``after_step``.

The health guard runs on every call, in every group: non-finite parameters, or a norm
above ``max_growth`` times the norm of the last good state, roll the group back to that
state (parameters and optimiser state; step and PRNG key continue), log the event and
give the group weight 0 in the next average it starts. A group rolled back more than
``max_rollbacks`` times in a row keeps diverging from its last good state: rolling back
again would only repeat it, so the guard raises ``FloatingPointError`` instead (under
``mpirun``, ``abort_on_error`` then ends every rank with a non-zero exit).
"""

from __future__ import annotations

import dataclasses
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from ._averaging import _verdict, average_from, contribution, flatten, mix

_PENDING, _APPLY, _DISCARD = 0, 1, 2


@jax.jit
def _finite_and_norm(params):
    """Whether every leaf of ``params`` is finite, and the global L2 norm: reduced on the
    device, so the guard brings two scalars (not the parameters) to the host."""
    leaves = [leaf for leaf in jax.tree.leaves(params) if leaf is not None]
    if not leaves:
        return jnp.asarray(True), jnp.asarray(0.0)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))
    squares = [jnp.sum(jnp.square(leaf.astype(jnp.promote_types(leaf.dtype, jnp.float32)))) for leaf in leaves]
    return finite, jnp.sqrt(sum(squares))


def _copy(tree):
    """A copy of every JAX array in ``tree`` (a later donating ``jit`` may not delete it)."""
    return jax.tree.map(lambda x: jnp.copy(x) if isinstance(x, jax.Array) else x, tree)


def _place(new, like):
    """``new``'s leaves placed like ``like``'s: on the same sharding where ``like`` is
    committed to it, uncommitted otherwise. Committedness is part of a jitted function's
    cache key, so matching it keeps the training step from recompiling after an
    average is mixed in."""

    def place(n, o):
        if not isinstance(o, jax.Array):
            return n
        return jax.device_put(n, o.sharding) if o.committed else jax.device_put(n)

    return jax.tree.map(place, new, like)


def _with_params(state, params, opt_state=None):
    changes = {"params": params} if opt_state is None else {"params": params, "opt_state": opt_state}
    return dataclasses.replace(state, **changes)


class _Progress:
    """Drives one MPI request to completion.

    ``thread=True``: a daemon thread calls ``Test`` every ``interval`` seconds (under a
    lock: MPI forbids two threads using one request at once) and stops once complete.
    ``thread=False``: ``test`` calls ``Test`` from the caller's thread.
    ``seconds``: from the start to the first ``Test`` (or ``Wait``) that found the
    request complete, ``None`` before.
    """

    def __init__(self, request, *, thread: bool, interval: float = 5e-4):
        self.request = request
        self._interval = interval
        self._lock = threading.Lock()
        self._done = False
        self.started = time.perf_counter()
        self.seconds = None
        self._error = None
        self._stop = threading.Event()
        self._thread = None
        if thread:
            self._thread = threading.Thread(target=self._run, name="nnpde-async-average", daemon=True)
            self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                with self._lock:
                    if self._done or self.request.Test():
                        self._complete()
                        return
                time.sleep(self._interval)
        except Exception as error:  # surfaced on the main thread by test()/wait()
            self._error = error

    def _check(self):
        if self._error is not None:
            raise RuntimeError(f"The MPI progress thread failed: {self._error}") from self._error

    def test(self) -> bool:
        """Whether the request completed (non-blocking)."""
        self._check()
        if self._thread is None:
            with self._lock:
                if not self._done and self.request.Test():
                    self._complete()
        return self._done

    def wait(self):
        """Block until the request completed."""
        self._check()
        with self._lock:
            if not self._done:
                self.request.Wait()
                self._complete()
        self.close()

    def _complete(self):
        if not self._done:
            self._done = True
            self.seconds = time.perf_counter() - self.started

    def close(self):
        """Stop the thread (the request is left as it is)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._check()


@dataclasses.dataclass
class _InFlight:
    """One average on its way: the step and flat parameters of its snapshot (on every
    rank), and on the leader the message buffers (alive until completion) and request."""

    start_step: int
    snapshot: np.ndarray
    send: np.ndarray | None = None
    recv: np.ndarray | None = None
    progress: _Progress | None = None
    average: np.ndarray | None = None


class AsyncAverager:
    """Asynchronous, staleness-aware parameter averaging across the groups of a
    ``GroupTopology``, plus a per-step health guard with rollback.

    ``every``: steps between averages. ``max_staleness``: the oldest (in steps since its
    snapshot) an average may be when applied; with ``wait_free=False`` a leader waits
    for an average that old (``max_staleness <= every`` is then required), with
    ``wait_free=True`` it never waits and discards averages that arrive later.
    ``alpha``: mixing weight of ``mix`` (1 adopts the average). ``progress``:
    ``"thread"`` or ``"poll"`` (see the module docstring). ``max_growth``: the guard's
    bound on the parameter norm relative to the last good state. ``max_rollbacks``:
    rollbacks in a row a group may take before it counts as diverged
    (``FloatingPointError``). ``log``: called with
    each event dict (rollbacks), which are also kept in ``events``.

    Use: ``state = averager.after_step(step, state)`` after each optimiser step on every
    rank, then ``state = averager.finish(state)`` once on every rank at the end. An
    average starts at steps with ``step % every == 0`` (when none is in flight). The
    constructor is collective over the group leaders (it duplicates ``cross_comm``), so
    every rank builds its averagers in the same order. With one group, only the guard
    runs and no MPI call is made.

    Guard: each call reduces the parameters on the device to (all finite, L2 norm), two
    scalars brought to the host (so each call waits for the step to finish computing).
    The last good (parameters, optimiser state) is the state of the first call, then of
    every healthy call at a multiple of ``every``; a rollback returns to it and gives the
    group weight 0 in the next average it starts (a restored, older state carries no new
    information, and whatever broke it may recur), after which it counts again.
    """

    def __init__(
        self,
        topology,
        *,
        every,
        max_staleness,
        wait_free=False,
        alpha=1.0,
        progress="thread",
        max_growth=1e3,
        max_rollbacks=3,
        log=None,
    ):
        # Arguments are validated below (not by annotations), so each error names the
        # value and the fix.
        for field in ("n_groups", "group", "group_rank", "group_size", "group_host_comm", "cross_comm"):
            if not hasattr(topology, field):
                raise TypeError(
                    f"topology must be a GroupTopology, got {type(topology).__name__} without .{field}. "
                    "Fix: build it with nnpde.distributed.GroupTopology.create(groups=...)."
                )
        self.every = check_int(every, "every", fix="average every N >= 1 steps, e.g. every=10.")
        if isinstance(max_staleness, bool) or not isinstance(max_staleness, int | np.integer) or max_staleness < 0:
            raise ValueError(
                f"max_staleness must be an int >= 0 (steps), got {max_staleness!r}. Fix: e.g. max_staleness=every."
            )
        self.max_staleness = int(max_staleness)
        if not isinstance(wait_free, bool):
            raise ValueError(f"wait_free must be True or False, got {wait_free!r}.")
        self.wait_free = wait_free
        if wait_free and self.max_staleness == 0:
            raise ValueError(
                "max_staleness=0 with wait_free=True would discard every average: without waiting, an average "
                "cannot land in the step that starts it. Fix: max_staleness >= 1, or wait_free=False (with "
                "max_staleness=0 the average is then synchronous)."
            )
        if not wait_free and self.max_staleness > self.every:
            raise ValueError(
                f"max_staleness={self.max_staleness} > every={self.every} with wait_free=False: bounded staleness "
                "completes each average before the next one starts, so staleness never exceeds every (and leaders "
                "must start the same sequence of averages). Fix: max_staleness <= every, or wait_free=True."
            )
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha <= 1:
            raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}. Fix: alpha=1 adopts the average.")
        self.alpha = float(alpha)
        if progress not in ("thread", "poll"):
            raise ValueError(
                f"progress must be 'thread' or 'poll', got {progress!r}. Fix: 'thread' drives MPI in the "
                "background; 'poll' tests once per after_step."
            )
        self.progress = progress
        if isinstance(max_growth, bool) or not isinstance(max_growth, int | float) or not 1 < max_growth < np.inf:
            raise ValueError(
                f"max_growth must be a finite number > 1, got {max_growth!r}. Fix: e.g. max_growth=1e3 (a norm "
                "1000x the last good one counts as exploded)."
            )
        self.max_growth = float(max_growth)
        self.max_rollbacks = check_int(
            max_rollbacks, "max_rollbacks", fix="allow N >= 0 rollbacks in a row, e.g. max_rollbacks=3.", minimum=0
        )
        if log is not None and not callable(log):
            raise ValueError(f"log must be callable or None, got {log!r}.")
        self._log = log
        self.topology = topology
        self.events: list[dict] = []

        self._active = topology.n_groups > 1
        self._leader = topology.group_rank == 0
        self._good = None  # (params, opt_state, norm) of the last good state
        self._exclude_next = False
        self._inflight: _InFlight | None = None
        self._closed = False
        self._control = None
        self._counts = dict(
            started=0, completed=0, discarded_stale=0, discarded_empty=0, abandoned_at_finish=0, matched_at_finish=0
        )
        self._excluded = 0
        self._waits = 0
        self._rollbacks = 0
        self._rollbacks_in_row = 0
        self._staleness: list[int] = []
        self._round_seconds: list[float] = []
        self._round_starts: list[float] = []
        self._mpi_seconds = 0.0
        self._finish_seconds = 0.0

        if self._active:
            from mpi4py import MPI

            self._MPI = MPI
            if topology.group_size > 1 and topology.group_host_comm is None:
                raise ValueError(
                    f"The topology has groups of {topology.group_size} ranks but no group_host_comm. "
                    "Fix: build it with GroupTopology.create under mpirun."
                )
            if self._leader:
                if topology.cross_comm is None:
                    raise ValueError(
                        f"Group leader of group {topology.group} has no cross_comm with {topology.n_groups} groups. "
                        "Fix: build the topology with GroupTopology.create(groups=...)."
                    )
                if progress == "thread" and MPI.Query_thread() < MPI.THREAD_MULTIPLE:
                    raise ValueError(
                        f"progress='thread' needs MPI_THREAD_MULTIPLE, but MPI was initialised with thread level "
                        f"{MPI.Query_thread()}. Fix: progress='poll', or leave mpi4py's default "
                        "(mpi4py.rc.thread_level = 'multiple')."
                    )
                # Collective over the leaders: a second channel for finish's count
                # reconciliation, which must not interleave with cross_comm's averages.
                self._control = topology.cross_comm.Dup()

    # ------------------------------------------------------------------ public API

    def after_step(self, step, state):
        """The guarded (and, when an average landed, mixed) state after optimiser step
        ``step``. Call on every rank of every group with the group's identical state."""
        if self._closed:
            raise RuntimeError("after_step called after finish(). Fix: create a new AsyncAverager for a new run.")
        step = int(step)
        state = self._guard(step, state)
        if not self._active:
            return state
        state = self._resolve(step, state)
        if step % self.every == 0 and self._inflight is None:
            self._start(step, state)
            if not self.wait_free and self.max_staleness == 0:
                state = self._resolve(step, state)  # staleness 0: a synchronous average
        return state

    def finish(self, state):
        """The state with parameters averaged over all healthy groups (blocking), the
        same on every rank; call once, on every rank, after the last ``after_step``.

        An average still in flight is completed and dropped (the final average
        supersedes it). Groups whose parameters fail the health check get weight 0;
        if every group does, ``FloatingPointError`` is raised on every rank.
        """
        if self._closed:
            raise RuntimeError("finish() called twice. Fix: call it once, after the last after_step.")
        self._closed = True
        if not self._active:
            return state
        MPI = self._MPI
        flat, unflatten = flatten(state.params)
        inflight, self._inflight = self._inflight, None
        t0 = time.perf_counter()
        if self._leader:
            pending = []
            if inflight is not None:
                inflight.progress.close()
                pending.append(inflight.progress.request)
            # Leaders may have started one average more than others (wait-free); the
            # others match it with a weight-0 contribution before the final average.
            most = self._control.allreduce(self._counts["started"], op=MPI.MAX)
            if self._counts["started"] < most:
                send = contribution(np.zeros_like(flat), 0.0)
                recv = np.empty_like(send)
                pending.append(self.topology.cross_comm.Iallreduce(send, recv, op=MPI.SUM))
                self._counts["matched_at_finish"] += most - self._counts["started"]
            MPI.Request.Waitall(pending)
        if inflight is not None:
            self._counts["abandoned_at_finish"] += 1
        finite, norm = (v.item() for v in jax.device_get(_finite_and_norm(state.params)))
        reference = None if self._good is None else self._good[2]
        weight = 1.0 if _verdict(bool(finite), float(norm), reference, self.max_growth) is None else 0.0
        average = None
        ok = np.zeros(1, dtype=np.int64)
        if self._leader:
            send = contribution(flat, weight)
            recv = np.empty_like(send)
            self.topology.cross_comm.Allreduce(send, recv, op=MPI.SUM)
            average = average_from(recv)
            ok[0] = average is not None
            self._control.Free()
            self._control = None
        if self.topology.group_size > 1:
            self.topology.group_host_comm.Bcast(ok, root=0)
            if ok[0]:
                if average is None:
                    average = np.empty_like(flat)
                self.topology.group_host_comm.Bcast(average, root=0)
        self._finish_seconds += time.perf_counter() - t0
        if not ok[0]:
            raise FloatingPointError(
                f"finish(): no group has healthy parameters (all {self.topology.n_groups} groups are non-finite or "
                "exploded), so there is nothing to average. Fix: lower the learning rate or max_growth bound, and "
                "inspect the rollback events (averager.events)."
            )
        return _with_params(state, _place(unflatten(average), state.params))

    def stats(self) -> dict:
        """Counters of this rank's view, JSON-serialisable (identical within a group except
        the timings): averages ``started``, ``completed`` (applied), ``discarded_stale``
        (arrived after ``max_staleness``), ``discarded_empty`` (every group had weight 0),
        ``abandoned_at_finish`` (in flight when ``finish`` was called),
        ``matched_at_finish`` (weight-0 starts matching another leader's extra start),
        ``excluded_contributions`` (starts with weight 0 after a rollback), ``waits``
        (bounded-staleness waits), the staleness of every completed average
        (count/max/mean), ``rollbacks`` and ``events``; ``mpi_seconds``: main-thread time
        in MPI calls during ``after_step``; ``finish_seconds``: time in ``finish``'s
        MPI calls (including waiting for slower groups to finish);
        ``round_seconds_median`` / ``_max``: of the rounds' latencies (``rounds``; the
        leader's, ``None`` elsewhere)."""
        staleness, rounds = self._staleness, self._round_seconds
        return {
            "groups": int(self.topology.n_groups),
            "group": int(self.topology.group),
            "every": self.every,
            "max_staleness": self.max_staleness,
            "wait_free": self.wait_free,
            "progress": self.progress,
            **self._counts,
            "excluded_contributions": self._excluded,
            "waits": self._waits,
            "staleness_count": len(staleness),
            "staleness_max": max(staleness) if staleness else None,
            "staleness_mean": float(np.mean(staleness)) if staleness else None,
            "rollbacks": self._rollbacks,
            "mpi_seconds": self._mpi_seconds,
            "round_seconds_median": float(np.median(rounds)) if rounds else None,
            "round_seconds_max": max(rounds) if rounds else None,
            "finish_seconds": self._finish_seconds,
            "events": [dict(e) for e in self.events],
        }

    def rounds(self) -> dict:
        """Every round's timing on this rank (the leader's; empty elsewhere): ``starts``,
        each started average's start on ``time.perf_counter``'s clock (one clock for the
        processes of a node, so leaders' starts of the same round compare there), and
        ``seconds``, for each resolved one (applied or discarded, in order), the time from
        its ``Iallreduce``'s start to the first test that found it complete (the progress
        thread tests every 0.5 ms): the round's latency as this leader saw it."""
        return {"starts": list(self._round_starts), "seconds": list(self._round_seconds)}

    # ------------------------------------------------------------------ internals

    def _guard(self, step, state):
        finite, norm = (v.item() for v in jax.device_get(_finite_and_norm(state.params)))
        finite, norm = bool(finite), float(norm)
        if self._good is None:
            reason = _verdict(finite, norm, None, self.max_growth)
            if reason is not None:
                raise FloatingPointError(
                    f"Step {step}, group {self.topology.group}: {reason} before any good state to roll back to. "
                    "Fix: check the initial parameters and the first updates (learning rate)."
                )
            self._good = (_copy(state.params), _copy(state.opt_state), norm)
            return state
        reason = _verdict(finite, norm, self._good[2], self.max_growth)
        if reason is None:
            self._rollbacks_in_row = 0
            if step % self.every == 0:
                self._good = (_copy(state.params), _copy(state.opt_state), norm)
            return state
        event = {"step": step, "group": int(self.topology.group), "event": "rollback", "reason": reason}
        self.events.append(event)
        self._rollbacks += 1
        self._rollbacks_in_row += 1
        self._exclude_next = True
        if self._log is not None:
            self._log(dict(event))
        if self._rollbacks_in_row > self.max_rollbacks:
            raise FloatingPointError(
                f"Group {self.topology.group} diverged: rolled back {self._rollbacks_in_row} times in a row (more "
                f"than max_rollbacks={self.max_rollbacks}), the last at step {step} ({reason}); training from its "
                "last good state diverges again each time. Fix: lower the learning rate (a run started again "
                "resumes from its last checkpoint), clip gradients, or raise max_rollbacks "
                "(distributed.max_rollbacks)."
            )
        return _with_params(state, _copy(self._good[0]), _copy(self._good[1]))

    def _start(self, step, state):
        flat, _ = flatten(state.params)
        weight = 0.0 if self._exclude_next else 1.0
        self._excluded += int(weight == 0.0)
        self._exclude_next = False
        inflight = _InFlight(start_step=step, snapshot=flat)
        if self._leader:
            inflight.send = contribution(flat, weight)
            inflight.recv = np.empty_like(inflight.send)
            t0 = time.perf_counter()
            request = self.topology.cross_comm.Iallreduce(inflight.send, inflight.recv, op=self._MPI.SUM)
            self._mpi_seconds += time.perf_counter() - t0
            inflight.progress = _Progress(request, thread=self.progress == "thread")
            self._round_starts.append(inflight.progress.started)
        self._counts["started"] += 1
        self._inflight = inflight

    def _decide(self, staleness):
        """The leader's verdict on the average in flight: pending, apply or discard."""
        inflight = self._inflight
        t0 = time.perf_counter()
        done = inflight.progress.test()
        if not done and not self.wait_free and staleness >= self.max_staleness:
            inflight.progress.wait()
            self._waits += 1
            done = True
        self._mpi_seconds += time.perf_counter() - t0
        if not done:
            return _PENDING
        inflight.progress.close()
        self._round_seconds.append(inflight.progress.seconds)
        inflight.average = average_from(inflight.recv)
        if inflight.average is None or staleness > self.max_staleness:
            return _DISCARD
        return _APPLY

    def _resolve(self, step, state):
        inflight = self._inflight
        if inflight is None:
            return state
        staleness = step - inflight.start_step
        code = np.array([self._decide(staleness) if self._leader else 0], dtype=np.int64)
        average = inflight.average
        if self.topology.group_size > 1:
            t0 = time.perf_counter()
            self.topology.group_host_comm.Bcast(code, root=0)
            if code[0] == _APPLY:
                if average is None:
                    average = np.empty_like(inflight.snapshot)
                self.topology.group_host_comm.Bcast(average, root=0)
            self._mpi_seconds += time.perf_counter() - t0
        if code[0] == _PENDING:
            return state
        self._inflight = None
        self._staleness.append(staleness)
        if code[0] == _DISCARD:
            stale = staleness > self.max_staleness
            self._counts["discarded_stale" if stale else "discarded_empty"] += 1
            return state
        self._counts["completed"] += 1
        current, unflatten = flatten(state.params)
        mixed = mix(current, inflight.snapshot, average, staleness, alpha=self.alpha, max_staleness=self.max_staleness)
        return _with_params(state, _place(unflatten(mixed), state.params))
