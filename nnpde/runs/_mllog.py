"""The time-to-train event log, written and checked with MLCommons' ``mlperf-logging``.

The lines are written by the reference writer, ``mlperf_logging.mllog`` (one
``:::MLLOG {json}`` line per event: ``namespace``, ``time_ms``, ``event_type``, ``key``,
``value``, ``metadata`` with the call site), with its keys (``mllog.constants``), and
checked by its compliance checker (``mlperf_logging.compliance_checker``) under the
MLPerf HPC 3.0.0 ruleset as adapted to nnpde in ``mllog_rules/nnpde_hpc_3.0.0.yaml``
(what applies, what does not and why: that file's header). The benchmark and its rules
are nnpde's own, so a log says division ``open``, status ``research`` and a benchmark
named ``nnpde_<task>``: MLPerf tooling reads it, it is not an MLCommons submission.
Lines are flushed as they are written, so a crashed run keeps its log up to the crash.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from mlperf_logging.mllog.mllog import MLLogger as _ReferenceLogger

PREFIX = ":::MLLOG"

# Keys that mllog.constants lacks. ``eval_error`` is the HPC key for a lower-is-better
# quality metric (CosmoFlow's); the HPC benchmarks fix their targets in their rules,
# ours is the task's, so the log states it.
EVAL_ERROR = "eval_error"
TARGET_EVAL_ERROR = "target_eval_error"

# The compliance checker's arguments: the HPC ruleset and nnpde's rules file. The
# checker reads a relative --config from its own package directory, so the path is
# absolute.
CHECKER_USAGE = "hpc"
CHECKER_RULESET = "3.0.0"
RULES = Path(__file__).resolve().parent / "mllog_rules" / "nnpde_hpc_3.0.0.yaml"

_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


class MLLogger:
    """Appends events to ``path`` through ``mlperf_logging.mllog``; every line reaches
    the disk when it is written. ``enabled=False`` (e.g. on ranks other than 0) or
    ``path=None`` makes every call a no-op. ``metadata`` are keyword arguments;
    ``time_ms`` (milliseconds since the epoch) dates an event that began before the
    logger existed."""

    def __init__(self, path: str | os.PathLike | None, *, enabled: bool = True):
        self.enabled = enabled and path is not None
        self._handler = None
        self._log = None
        if self.enabled:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # A logger of its own, outside logging's registry: two runs in one process
            # never share handlers. FileHandler flushes after every record.
            logger = logging.Logger(f"nnpde.mllog:{path}", level=logging.INFO)
            logger.propagate = False
            self._handler = logging.FileHandler(path, mode="a", encoding="utf-8")
            logger.addHandler(self._handler)
            # stack offset 2: the call site recorded is the caller of these methods
            self._log = _ReferenceLogger(logger=logger, default_stack_offset=2, root_dir=re.escape(_SOURCE_ROOT))

    def event(self, key: str, value=None, *, time_ms: int | None = None, **metadata) -> None:
        if self.enabled:
            self._log.event(key, value, metadata=metadata, time_ms=time_ms)

    def start(self, key: str, value=None, *, time_ms: int | None = None, **metadata) -> None:
        if self.enabled:
            self._log.start(key, value, metadata=metadata, time_ms=time_ms)

    def end(self, key: str, value=None, *, time_ms: int | None = None, **metadata) -> None:
        if self.enabled:
            self._log.end(key, value, metadata=metadata, time_ms=time_ms)

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()
            self._handler = None
            self.enabled = False


def read_mllog(path: str | os.PathLike) -> list[dict]:
    """The events of an MLPerf log (lines without the prefix are skipped)."""
    events = []
    for line in Path(path).read_text().splitlines():
        if line.startswith(PREFIX):
            events.append(json.loads(line[len(PREFIX) :]))
    return events


def checker_command(path: str | os.PathLike, *, report: str | os.PathLike | None = None) -> list[str]:
    """The command that runs MLCommons' compliance checker on the log at ``path`` with
    nnpde's rules; ``report``: where the checker writes its own log (default: beside
    ``path``, ``<name>.compliance.txt``)."""
    path = Path(path)
    report = Path(report) if report is not None else path.with_name(path.name + ".compliance.txt")
    return [
        sys.executable,
        "-m",
        "mlperf_logging.compliance_checker",
        "--usage",
        CHECKER_USAGE,
        "--ruleset",
        CHECKER_RULESET,
        "--config",
        str(RULES),
        "--log_output",
        str(report),
        str(path),
    ]


def check_mllog(path: str | os.PathLike) -> tuple[bool, str]:
    """``(passed, output)``: MLCommons' compliance checker run on the log at ``path``
    (a separate process, as a user would run it: ``checker_command``); ``output`` is
    what it printed, each failed rule with the line and the test."""
    result = subprocess.run(checker_command(path), capture_output=True, text=True, check=False)
    return result.returncode == 0, result.stdout + result.stderr
