"""``StopSignals``: a batch system's "stop soon" signal turned into a flag the training
loop reads, so that a job stopped at its time limit or preempted leaves a checkpoint.

Slurm (and other batch systems) end a job with ``SIGTERM`` and, some seconds later,
``SIGKILL``; ``sbatch --signal=USR1@120`` sends ``SIGUSR1`` two minutes before the time
limit. Python's default for both is to die at once, losing the steps since the last
checkpoint. Inside ``StopSignals`` they only record that they came;
``fit(preempted=signals)`` reads it between steps, checkpoints, and stops with
``Preempted`` (``nnpde train`` exits with code 5; the same command resumes). Handlers
are process-wide state: this is for a driver (``nnpde train``, a script's main), never
for library code.
"""

from __future__ import annotations

import signal
import threading


class StopSignals:
    """While active (a context manager), ``signals`` (default ``SIGTERM`` and
    ``SIGUSR1``) no longer end the process: they are recorded, and calling the object
    returns whether one came (``received`` names the first). Every one of them is only
    recorded: Slurm may deliver the same ``SIGTERM`` twice (to the task, and through
    ``srun`` or the job script), and the second must not kill the run on its way to the
    checkpoint. ``SIGINT`` (Ctrl-C) is untouched, and ``SIGKILL`` cannot be caught.
    Leaving the context puts the previous handlers back. Outside the main thread Python
    cannot install handlers, and ``StopSignals`` does nothing (never true).

    Example (every rank of an MPI run calls ``fit`` the same way)::

        with nnpde.StopSignals() as signals:
            result = nnpde.fit(model, loss, data, steps=10_000, run_dir="runs/x", preempted=signals)
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)):
        self.signals = tuple(signal.Signals(s) for s in signals)
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __call__(self) -> bool:
        return self.received is not None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.signals}
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)

    def __exit__(self, *exc) -> None:
        previous, self._previous = self._previous, {}
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)  # None: not set from Python
