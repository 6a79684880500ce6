"""An MLPerf-style event log: one ``:::MLLOG {json}`` line per event.

The format follows the MLPerf logging convention (``namespace``, ``time_ms``,
``event_type`` of ``POINT_IN_TIME``, ``INTERVAL_START`` or ``INTERVAL_END``, ``key``,
``value``, ``metadata``), so existing log parsers read it. It is MLPerf-style, not an
MLPerf submission: the benchmark and its rules are nnpde's own (``nnpde benchmark``).
Lines are flushed as they are written, so a crashed run keeps its log up to the crash.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

PREFIX = ":::MLLOG"


class MLLogger:
    """Appends events to ``path`` (and echoes them to stdout with ``echo=True``).
    ``enabled=False`` (e.g. on ranks other than 0) makes every call a no-op."""

    def __init__(self, path: str | os.PathLike | None, *, enabled: bool = True, echo: bool = False):
        self.enabled = enabled and path is not None
        self.echo = echo
        self._file = None
        if self.enabled:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", buffering=1)  # line-buffered: each event reaches disk at once

    def event(self, key: str, value=None, *, event_type: str = "POINT_IN_TIME", **metadata) -> None:
        if not self.enabled:
            return
        record = {
            "namespace": "",
            "time_ms": int(time.time() * 1000),
            "event_type": event_type,
            "key": key,
            "value": value,
            "metadata": metadata,
        }
        line = f"{PREFIX} {json.dumps(record, default=str)}"
        self._file.write(line + "\n")
        if self.echo:
            print(line, flush=True)

    def start(self, key: str, value=None, **metadata) -> None:
        self.event(key, value, event_type="INTERVAL_START", **metadata)

    def end(self, key: str, value=None, **metadata) -> None:
        self.event(key, value, event_type="INTERVAL_END", **metadata)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_mllog(path: str | os.PathLike) -> list[dict]:
    """The events of an MLPerf-style log (lines without the prefix are skipped)."""
    events = []
    for line in Path(path).read_text().splitlines():
        if line.startswith(PREFIX):
            events.append(json.loads(line[len(PREFIX) :]))
    return events
