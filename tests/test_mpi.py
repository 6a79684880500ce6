"""The MPI stack the README promises: the pip ``mpich`` wheel's ``mpirun`` from the
virtualenv runs mpi4jax collectives inside ``jit`` (on a cloned communicator)."""

import os
import subprocess
import sys
from pathlib import Path

from tests._mpirun import TEST_XLA_FLAGS

ROOT = Path(__file__).resolve().parents[1]
MPIRUN = Path(sys.executable).parent / "mpirun"

SCRIPT = r"""
from mpi4py import MPI
import jax, jax.numpy as jnp, mpi4jax
comm = MPI.COMM_WORLD.Clone()  # never share one communicator between mpi4py and mpi4jax
x = jnp.arange(3.0) + comm.rank

@jax.jit
def total_and_grad(x):
    summed = mpi4jax.allreduce(x, op=MPI.SUM, comm=comm)
    return summed, jax.grad(lambda y: jnp.sum(mpi4jax.allreduce(y, op=MPI.SUM, comm=comm) ** 2))(x)

summed, grad = total_and_grad(x)
# Gather to rank 0 and print once: lines from two processes may interleave on stdout.
rows = comm.gather(f"{comm.rank} {comm.size} {summed.tolist()} {grad.tolist()}", root=0)
if comm.rank == 0:
    print("\n".join(rows), flush=True)
"""


def test_mpi4jax_allreduce_under_mpirun():
    assert MPIRUN.exists(), f"no mpirun beside {sys.executable}: the set-up (make) installs the pip mpich wheel"
    mpirun = str(MPIRUN)
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=TEST_XLA_FLAGS)
    result = subprocess.run(
        [mpirun, "-n", "2", sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = sorted(line.split(" ", 2) for line in result.stdout.strip().splitlines())
    assert [line[:2] for line in lines] == [["0", "2"], ["1", "2"]], result.stdout
    for line in lines:
        # s = sum over ranks of (i + rank) = 2 i + 1. The loss sum(s^2) is one global
        # scalar, replicated on every rank, so d loss / d x_rank = 2 s (not summed again).
        assert line[2] == "[1.0, 3.0, 5.0] [2.0, 6.0, 10.0]", result.stdout
