"""``MetricsLog``: training metrics as JSON lines, consistent with the checkpoints.

One JSON object per line: ``{"step": int, "time": float, **metrics}`` with ``time`` the
wall-clock seconds since the epoch. Each line is flushed when written, so a crash loses
at most the line being written; ``read_metrics`` ignores such a truncated last line.

Non-finite floats are not valid JSON; they are written as the strings ``"nan"``,
``"inf"`` and ``"-inf"`` (which keeps NaN and the infinities apart, unlike ``null``) and
``read_metrics`` turns them back into floats.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import numpy as np

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _to_json_value(name: str, value) -> Any:
    if isinstance(value, str | bool) or value is None:
        return value
    try:
        a = np.asarray(value)
    except Exception as e:
        raise TypeError(f"Metric {name!r} = {value!r} is not a number or string.") from e
    if a.ndim != 0:
        raise ValueError(
            f"Metric {name!r} has shape {a.shape}; log scalars only "
            "(reduce it, e.g. with .mean(), or log elements by name)."
        )
    if a.dtype == np.bool_:
        return bool(a)
    if np.issubdtype(a.dtype, np.integer):
        return int(a)
    if np.issubdtype(a.dtype, np.floating):
        x = float(a)
        if math.isfinite(x):
            return x
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    raise TypeError(f"Metric {name!r} has dtype {a.dtype}; log real numbers, booleans or strings.")


def _from_json_value(value):
    return _NON_FINITE.get(value, value) if isinstance(value, str) else value


def _complete_lines(text: str) -> list[str]:
    """The complete lines of ``text``: a last line without newline is a crash mid-write."""
    lines = text.split("\n")
    # The piece after the last newline is either "" or an unfinished line.
    return [line for line in lines[:-1] if line.strip()]


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All records of a metrics log, in file order, with non-finite values as floats.

    A truncated last line (a crash while it was written) is ignored.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    records = []
    for line in _complete_lines(text):
        record = json.loads(line)
        records.append({k: _from_json_value(v) for k, v in record.items()})
    return records


class MetricsLog:
    """Appends one JSON line of metrics per call of ``log``.

    With ``resume_from_step=s`` (the step of the restored checkpoint), records with
    ``step > s`` are removed first: training repeats those steps and logs them again.
    A truncated last line is always removed. The file is rewritten atomically (a
    temporary file renamed over it), so a crash during the rewrite leaves either the
    old or the new file.
    """

    def __init__(self, path: str | os.PathLike, *, resume_from_step: int | None = None):
        self.path = os.path.abspath(os.fspath(path))
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.exists(self.path):
            self._rewrite(resume_from_step)
        self._file = open(self.path, "a", encoding="utf-8")  # closed by close()

    def _rewrite(self, resume_from_step: int | None) -> None:
        with open(self.path, encoding="utf-8") as f:
            text = f.read()
        lines = _complete_lines(text)
        if resume_from_step is not None:
            lines = [line for line in lines if json.loads(line)["step"] <= resume_from_step]
        new_text = "".join(line + "\n" for line in lines)
        if new_text == text:
            return
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def log(self, step: int, **metrics) -> dict:
        """Write one record for ``step`` and return it (as written)."""
        if "step" in metrics or "time" in metrics:
            raise ValueError("'step' and 'time' are written by MetricsLog; rename the metric.")
        record = {"step": int(step), "time": time.time()}
        record.update({name: _to_json_value(name, value) for name, value in metrics.items()})
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        return record

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
