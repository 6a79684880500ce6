"""Running a validation suite (``nnpde validate``): cases, timings, a report.

A suite is a module with ``CASES``, a dict ``name -> case(full) -> dict`` (see
``problems.validation``). Each case's result is printed as it finishes and the whole
report is written to ``out/validation.json`` and a Markdown table ``out/validation.md``
(atomically, after each case, so an interrupted suite keeps what it measured).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _table(results: list[dict]) -> str:
    lines = ["| case | passed | measured | expected | reference | seconds |", "| --- | --- | --- | --- | --- | ---: |"]
    for r in results:
        lines.append(
            f"| {r['name']} | {'yes' if r['passed'] else '**NO**'} | {json.dumps(r['measured'])} | "
            f"{json.dumps(r['expected'])} | {r['reference']} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def run_suite(suite, *, out="runs/validation", only=None, full: bool = False, echo=print) -> dict:
    cases = getattr(suite, "CASES", None)
    if not isinstance(cases, dict) or not cases:
        raise SystemExit(f"nnpde validate: {suite.__name__} has no CASES dict of validation cases.")
    names = list(cases) if not only else list(only)
    unknown = [n for n in names if n not in cases]
    if unknown:
        raise SystemExit(f"nnpde validate: unknown case(s) {unknown}. Fix: choose from {sorted(cases)}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        echo(f"{name}: running ({'full' if full else 'quick'}) ...", flush=True)
        began = time.perf_counter()
        result = {"name": name, **cases[name](full), "seconds": time.perf_counter() - began}
        result["passed"] = bool(result["passed"])
        results.append(result)
        echo(
            f"{name}: {'passed' if result['passed'] else 'FAILED'} in {result['seconds']:.1f} s: "
            f"{json.dumps(result['measured'])} (expected {json.dumps(result['expected'])})",
            flush=True,
        )
        report = {
            "suite": suite.__name__,
            "full": full,
            "passed": all(r["passed"] for r in results),
            "date": time.strftime("%Y-%m-%d"),
            "cases": results,
        }
        _write(out / "validation.json", json.dumps(report, indent=2, default=float))
        _write(out / "validation.md", _table(results))
    echo(
        f"{sum(r['passed'] for r in results)} passed, {sum(not r['passed'] for r in results)} failed; "
        f"wrote {out / 'validation.json'} and {out / 'validation.md'}"
    )
    return report
