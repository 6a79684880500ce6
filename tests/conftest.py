"""Test configuration: float64 everywhere (gradient checks need it), CPU devices."""

import os

from tests._mpirun import TEST_XLA_FLAGS

# The suite's XLA flags are added to any the caller set: the exactness tests (a
# zero-initialised coupling is the plain solver bit for bit) hold at the suite's
# optimisation level, and at LLVM's default level one of them differs in the last bit.
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    _flags += " --xla_force_host_platform_device_count=4"
if "xla_backend_optimization_level" not in _flags:
    _flags += " " + TEST_XLA_FLAGS
os.environ["XLA_FLAGS"] = _flags.strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# MPICH ranks waiting in a collective (for rank 0's single-process reference, for a
# rank still compiling) poll without pause; with more ranks than the CI machine's 2
# cores that polling takes the CPU from the ranks doing the work. Heavy yield sleeps
# between polls instead (every mpirun launched by a test inherits it): measured on the
# 4-rank Navier-Stokes split 175 -> 116 CPU seconds, the distributed script 112 -> 77.
os.environ.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


# The longest test files first. `make test` hands whole files to 2 workers in
# collection order (`--dist loadfile --no-loadscope-reorder`): a long file handed out
# last keeps one worker busy while the other idles (measured: ~170 s of a 1147 s run).
# Longest first is the classic greedy schedule (LPT). `tests/file_durations.json`
# holds each file's measured seconds; `pytest --record-file-durations` rewrites it
# (files it does not list keep their order, after those it lists).
import collections  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

_FILE_DURATIONS = Path(__file__).with_name("file_durations.json")
_seconds = collections.defaultdict(float)


def _file_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


def pytest_addoption(parser):
    parser.addoption(
        "--record-file-durations",
        action="store_true",
        help=f"write {_FILE_DURATIONS.name}: each test file's seconds (setup, call and teardown), longest first",
    )


def pytest_collection_modifyitems(session, config, items):
    if not _FILE_DURATIONS.exists():
        return
    seconds = json.loads(_FILE_DURATIONS.read_text())
    files = list(dict.fromkeys(_file_of(item.nodeid) for item in items))
    rank = {f: i for i, f in enumerate(sorted(files, key=lambda f: -seconds.get(f, 0.0)))}
    items.sort(key=lambda item: rank[_file_of(item.nodeid)])  # stable: a file's own order is kept


def pytest_runtest_logreport(report):
    _seconds[_file_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if config.getoption("--record-file-durations") and not hasattr(config, "workerinput"):
        ordered = dict(sorted(((f, round(s, 1)) for f, s in _seconds.items()), key=lambda kv: -kv[1]))
        _FILE_DURATIONS.write_text(json.dumps(ordered, indent=1) + "\n")
