"""Latency-bandwidth cost models of MPI collectives, their fit to timings, and
published interconnect figures (numpy only; no MPI).

Hockney's model charges a point-to-point message of ``n`` bytes ``alpha + n * beta``
(``alpha``: latency in seconds, ``beta``: seconds per byte, the inverse bandwidth). An
allreduce algorithm on ``p`` ranks sends a known number of such messages on its
critical path, so its time is ``a(p) * alpha + b(p) * n * beta``; ``NetworkModel``'s
docstring gives ``a`` and ``b`` per algorithm (Thakur, Rabenseifner and Gropp,
"Optimization of collective communication operations in MPICH", IJHPCA 19(1):49-66,
2005). The reduction arithmetic (their ``gamma`` term) is not separate: a fit folds it
into ``beta``. The model has no contention: a dragonfly or fat tree under other
traffic, or several ranks sharing one network adapter, is slower than it says.

``NetworkModel`` holds one ``(alpha, beta)`` and the algorithms the MPI library may
choose among; like a tuned library it takes the fastest of them for each message size
and rank count. ``fit_network`` fits ``(alpha, beta)`` to measured timings.
``INTERCONNECTS`` holds published figures of real networks, each with its source.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

ALLREDUCE_ALGORITHMS = ("ring", "recursive_doubling", "rabenseifner", "binomial_tree")
"""The allreduce algorithms ``NetworkModel`` knows (its docstring gives their costs):
ring, recursive doubling, Rabenseifner (reduce-scatter + allgather), binomial tree
(reduce + broadcast)."""


def _check_algorithms(algorithm) -> tuple[str, ...]:
    names = (algorithm,) if isinstance(algorithm, str) else tuple(algorithm)
    bad = [a for a in names if a not in ALLREDUCE_ALGORITHMS]
    if not names or bad:
        raise ValueError(
            f"algorithm must be one of {ALLREDUCE_ALGORITHMS} or a non-empty tuple of them, got {algorithm!r}. "
            "Fix: e.g. algorithm='ring', or ALLREDUCE_ALGORITHMS to let the library pick the fastest."
        )
    return names


def _check_ranks(ranks) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.size == 0 or not np.issubdtype(ranks.dtype, np.integer) or (ranks < 1).any():
        raise ValueError(f"ranks must be integers >= 1, got {ranks!r}. Fix: pass the number of ranks taking part.")
    return ranks.astype(np.int64)


def _check_nbytes(nbytes) -> np.ndarray:
    nbytes = np.asarray(nbytes, dtype=np.float64)
    if nbytes.size == 0 or not np.all(np.isfinite(nbytes)) or (nbytes < 0).any():
        raise ValueError(f"nbytes must be finite and >= 0, got {nbytes!r}. Fix: pass the message size in bytes.")
    return nbytes


def allreduce_terms(algorithm: str, ranks):
    """``(a, b)``: the allreduce of ``algorithm`` on ``ranks`` ranks costs
    ``a * alpha + b * nbytes * beta`` (the table of ``NetworkModel``; 0 for one rank)."""
    if not isinstance(algorithm, str):
        raise ValueError(f"allreduce_terms takes one algorithm name, got {algorithm!r}. Fix: e.g. 'ring'.")
    _check_algorithms(algorithm)
    p = _check_ranks(ranks).astype(np.float64)
    floor_log = np.floor(np.log2(p))
    pof2 = 2.0**floor_log
    extra = (p != pof2).astype(np.float64)
    if algorithm == "ring":
        a, b = 2 * (p - 1), 2 * (p - 1) / p
    elif algorithm == "recursive_doubling":
        a = b = floor_log + 2 * extra
    elif algorithm == "rabenseifner":
        a, b = 2 * floor_log + 2 * extra, 2 * (pof2 - 1) / pof2 + 2 * extra
    else:  # binomial_tree
        a = b = 2 * np.ceil(np.log2(p))
    return a, b


@dataclasses.dataclass(frozen=True)
class NetworkModel:
    """Hockney latency-bandwidth model of an allreduce: ``alpha`` seconds per message,
    ``beta`` seconds per byte, ``algorithm`` one of ``ALLREDUCE_ALGORITHMS`` or a tuple
    of them (the library takes the fastest for each message size and rank count, as a
    tuned MPI does). ``name``: a label for reports.

    An allreduce of ``n`` bytes on ``p`` ranks takes ``a(p) alpha + b(p) n beta``
    (Thakur, Rabenseifner and Gropp, IJHPCA 2005), with ``log = log2``,
    ``p' = 2^floor(log p)`` and ``e = 1`` when ``p`` is not a power of two, else 0:

    | algorithm | a(p), latency terms | b(p), bandwidth terms |
    | --- | --- | --- |
    | `ring` | `2 (p - 1)` | `2 (p - 1) / p` |
    | `recursive_doubling` | `log p' + 2 e` | `log p' + 2 e` |
    | `rabenseifner` | `2 log p' + 2 e` | `2 (p' - 1) / p' + 2 e` |
    | `binomial_tree` | `2 ceil(log p)` | `2 ceil(log p)` |

    Rabenseifner's is a reduce-scatter by recursive halving and an allgather by
    recursive doubling; the binomial tree a reduce to rank 0 and a broadcast back. For
    ``p`` not a power of two the ``p - p'`` extra ranks first hand their vector to a
    partner and get the result back at the end, as MPICH does: two more full-vector
    messages on the critical path (``e``). One rank costs 0.

    ``allreduce_seconds(nbytes, ranks)`` is the model time (broadcasting over arrays);
    ``chosen_algorithm`` the algorithm it used; ``broadcast_seconds`` a binomial-tree
    broadcast, ``ceil(log p) (alpha + n beta)``, for a group leader's broadcasts.
    """

    alpha: float | int
    beta: float | int
    algorithm: str | tuple[str, ...] = ALLREDUCE_ALGORITHMS
    name: str = ""

    def __post_init__(self):
        for field in ("alpha", "beta"):
            value = getattr(self, field)
            number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
            if not number or not (0 <= value < math.inf):
                raise ValueError(
                    f"{field} must be a finite number >= 0, got {value!r}. Fix: alpha in seconds per message "
                    "(e.g. 1.5e-6), beta in seconds per byte (e.g. 1 / 25e9 for 25 GB/s)."
                )
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "beta", float(self.beta))
        names = _check_algorithms(self.algorithm)
        object.__setattr__(self, "algorithm", names[0] if len(names) == 1 else names)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms the library may choose among."""
        return (self.algorithm,) if isinstance(self.algorithm, str) else self.algorithm

    def _times(self, nbytes, ranks):
        nbytes, ranks = _check_nbytes(nbytes), _check_ranks(ranks)
        times = []
        for algorithm in self.algorithms:
            a, b = allreduce_terms(algorithm, ranks)
            times.append(a * self.alpha + b * nbytes * self.beta)
        return np.stack(np.broadcast_arrays(*times))

    def allreduce_seconds(self, nbytes, ranks):
        """Seconds of an allreduce of ``nbytes`` bytes over ``ranks`` ranks (the fastest
        algorithm); a float for scalar arguments, else an array."""
        seconds = self._times(nbytes, ranks).min(axis=0)
        return float(seconds) if seconds.ndim == 0 else seconds

    def chosen_algorithm(self, nbytes, ranks):
        """The algorithm ``allreduce_seconds`` uses (the fastest) for this message size and
        rank count: a name for scalar arguments, else an array of names."""
        chosen = np.asarray(self.algorithms)[self._times(nbytes, ranks).argmin(axis=0)]
        return str(chosen) if chosen.ndim == 0 else chosen

    def broadcast_seconds(self, nbytes, ranks):
        """Seconds of a binomial-tree broadcast of ``nbytes`` bytes to ``ranks`` ranks."""
        nbytes, ranks = _check_nbytes(nbytes), _check_ranks(ranks)
        seconds = np.ceil(np.log2(ranks)) * (self.alpha + nbytes * self.beta)
        return float(seconds) if seconds.ndim == 0 else seconds


@dataclasses.dataclass(frozen=True)
class NetworkFit:
    """A fitted ``NetworkModel`` with its residuals: ``residuals`` (seconds, measured
    minus model, one per timing), ``relative_residuals`` (the same over the measured
    time) and ``relative_rms`` (their root mean square, the quantity minimised)."""

    model: NetworkModel
    residuals: np.ndarray
    relative_residuals: np.ndarray
    relative_rms: float


def _nonnegative_least_squares(design, target):
    """``x >= 0`` minimising ``|design x - target|`` for two columns: the unconstrained
    solution if it is non-negative, else the better of the two one-column fits."""
    candidates = []
    x, *_ = np.linalg.lstsq(design, target, rcond=None)
    if (x >= 0).all():
        candidates.append(x)
    for keep in range(design.shape[1]):
        column = design[:, keep]
        norm = float(column @ column)
        x = np.zeros(design.shape[1])
        x[keep] = max(0.0, float(column @ target) / norm) if norm > 0 else 0.0
        candidates.append(x)
    return min(candidates, key=lambda x: float(np.sum((design @ x - target) ** 2)))


def fit_network(ranks, nbytes, seconds, *, algorithm=ALLREDUCE_ALGORITHMS, name="fitted") -> NetworkFit:
    """Fit ``alpha, beta >= 0`` of a ``NetworkModel`` to measured allreduce times.

    ``ranks``, ``nbytes``, ``seconds``: one entry per timing (repeat a configuration for
    repeated measurements). The fit minimises the relative error
    ``sum(((model - measured) / measured) ** 2)``: timings span orders of magnitude
    (microseconds at 1 KiB, milliseconds at 64 MiB), and an absolute fit would leave the
    latency to the largest messages. With one algorithm the model is linear in
    ``(alpha, beta)`` and the fit is a non-negative least-squares solve. With several,
    the library's choice (the fastest) makes the model piecewise linear; the fit then
    alternates: assign each timing to the algorithm the current ``(alpha, beta)`` make
    fastest, refit, until the assignment repeats, keeping the best fit seen. Both
    algorithms share one ``(alpha, beta)``: they run on one network.

    At least two timings at different (ranks, nbytes) are needed, and the design must
    separate latency from bandwidth (several message sizes).
    """
    names = _check_algorithms(algorithm)
    ranks, nbytes = _check_ranks(ranks), _check_nbytes(nbytes)
    seconds = np.asarray(seconds, dtype=np.float64)
    if not (ranks.ndim == nbytes.ndim == seconds.ndim == 1 and ranks.size == nbytes.size == seconds.size):
        raise ValueError(
            f"ranks, nbytes and seconds must be 1-D of one length, got shapes {ranks.shape}, {nbytes.shape}, "
            f"{seconds.shape}. Fix: one entry per timing."
        )
    if not np.all(np.isfinite(seconds)) or (seconds <= 0).any():
        raise ValueError(f"seconds must be finite and > 0, got {seconds!r}. Fix: pass measured times in seconds.")
    if (ranks < 2).any():
        raise ValueError(
            f"fit_network needs timings on 2 or more ranks (one rank exchanges nothing), got ranks={np.unique(ranks)}. "
            "Fix: drop the one-rank timings."
        )
    if np.unique(nbytes).size < 2:
        raise ValueError(
            f"fit_network needs timings at two or more message sizes to tell latency from bandwidth, got only "
            f"nbytes={np.unique(nbytes)}. Fix: measure e.g. 1 KiB to 64 MiB."
        )
    terms = {a: allreduce_terms(a, ranks) for a in names}

    def solve(assignment):
        a = np.choose(assignment, [terms[n][0] for n in names])
        b = np.choose(assignment, [terms[n][1] for n in names])
        design = np.stack([a, b * nbytes], axis=1) / seconds[:, None]
        alpha, beta = _nonnegative_least_squares(design, np.ones_like(seconds))
        return NetworkModel(alpha=float(alpha), beta=float(beta), algorithm=names, name=name)

    def error(model):
        return float(np.sum((model.allreduce_seconds(nbytes, ranks) / seconds - 1) ** 2))

    assignment = np.zeros(seconds.size, dtype=np.int64)
    best, seen = None, set()
    while assignment.tobytes() not in seen:
        seen.add(assignment.tobytes())
        model = solve(assignment)
        if best is None or error(model) < error(best):
            best = model
        assignment = np.asarray([names.index(str(a)) for a in np.atleast_1d(model.chosen_algorithm(nbytes, ranks))])
    predicted = best.allreduce_seconds(nbytes, ranks)
    residuals = seconds - predicted
    relative = residuals / seconds
    return NetworkFit(best, residuals, relative, float(np.sqrt(np.mean(relative**2))))


@dataclasses.dataclass(frozen=True)
class Interconnect:
    """Published figures of one interconnect, each with its source and status.

    ``alpha``: MPI-level small-message latency (seconds); ``beta``: seconds per byte
    (inverse of the nominal per-node bandwidth). ``bandwidth_source`` and
    ``latency_source`` name the document each figure comes from and say whether it is a
    specification (nominal, not measured) or an assumption. ``note``: what the figures
    leave out. ``network(algorithm)`` turns them into a ``NetworkModel``.
    """

    name: str
    alpha: float
    beta: float
    bandwidth_source: str
    latency_source: str
    note: str

    def network(self, algorithm=ALLREDUCE_ALGORITHMS) -> NetworkModel:
        """These figures as a ``NetworkModel`` with the given algorithm(s)."""
        return NetworkModel(alpha=self.alpha, beta=self.beta, algorithm=algorithm, name=self.name)

    def to_dict(self) -> dict:
        """The figures and their sources, JSON-serialisable."""
        return dataclasses.asdict(self)


_LINK_NOTE = (
    "Nominal per-port figures for one rank per node with the adapter to itself: no contention, no congestion, "
    "no topology (tapering, adaptive routing), no reduction arithmetic. Real allreduce times at scale are higher; "
    "prefer timings fitted on the target machine (fit_network)."
)

INTERCONNECTS = {
    "cray_aries_cori": Interconnect(
        name="Cray Aries (NERSC Cori, dragonfly)",
        alpha=1.5e-6,
        beta=1 / 8e9,
        bandwidth_source=(
            "NERSC, 'Cori Configuration' system page (nersc.gov/users/computational-systems/cori/configuration/): "
            "'~8GB/sec MPI bandwidth'; the operator's nominal MPI-level figure, not measured here (GB taken as 1e9 B)."
        ),
        latency_source=(
            "Assumption: 1.5 us, one value inside the '0.25 us to 3.7 us MPI latency' range that the same NERSC "
            "page states (the range spans near and far nodes of the dragonfly)."
        ),
        note=_LINK_NOTE,
    ),
    "infiniband_hdr": Interconnect(
        name="InfiniBand HDR 200 Gb/s (NVIDIA ConnectX-6)",
        alpha=1.0e-6,
        beta=1 / 25e9,
        bandwidth_source=(
            "NVIDIA ConnectX-6 adapter user manual, 'Introduction' (docs.nvidia.com/networking): ports of "
            "'200Gb/s'; vendor specification, nominal data rate, 25e9 B/s per port."
        ),
        latency_source=(
            "Assumption: 1.0 us MPI-level latency through a switch. The same manual specifies 'sub-600ns latency' "
            "for the adapter alone; MPI software and switch hops add to it."
        ),
        note=_LINK_NOTE,
    ),
    "infiniband_ndr": Interconnect(
        name="InfiniBand NDR 400 Gb/s (NVIDIA ConnectX-7)",
        alpha=1.0e-6,
        beta=1 / 50e9,
        bandwidth_source=(
            "NVIDIA ConnectX-7 adapter user manual, 'Introduction' (docs.nvidia.com/networking): single-port "
            "'NDR 400Gb/s'; vendor specification, nominal data rate, 50e9 B/s per port."
        ),
        latency_source="Assumption: 1.0 us MPI-level latency through a switch, as for HDR (no figure cited).",
        note=_LINK_NOTE,
    ),
}
"""Published interconnect figures by key: ``cray_aries_cori``, ``infiniband_hdr``,
``infiniband_ndr`` (``Interconnect`` values; each names its sources and which figure is
a specification and which an assumption)."""
