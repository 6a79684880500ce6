"""Run a test script under the virtualenv's ``mpirun`` and read the JSON rows it prints."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MPIRUN = Path(sys.executable).parent / "mpirun"
# XLA flags of every test process (conftest.py, and the ranks launched here): LLVM's
# backend optimisation off. Most tests run tiny grids and spend their time compiling
# (measured: the deep-halo gradient test 105 s -> 66 s; an execution-bound 3-D
# convergence study 55 s -> 65 s). No fast-math at either level, but results can differ
# in the last bit between levels (multiply-adds are fused differently): the flux
# closure's zero-network exactness test differs by 1.1e-16 at the default level, so
# conftest.py adds these flags to any the caller set.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def mpirun_rows(n: int, script: str, cases, *, timeout: int) -> list[dict]:
    """``mpirun -n n python -c script json(cases)``; the script prints one JSON list of
    rows (one per case) from rank 0 as its last line."""
    assert MPIRUN.exists(), f"no mpirun beside {sys.executable}: the set-up installs the pip mpich wheel"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=TEST_XLA_FLAGS, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [str(MPIRUN), "-n", str(n), sys.executable, "-c", script, json.dumps(cases)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(rows) == len(cases), result.stdout
    return rows
