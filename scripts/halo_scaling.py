"""Strong scaling of a domain-decomposed 2-D heat rollout (halo exchange by mpi4jax).

A fixed global problem (periodic ``resolution x resolution`` grid, variable
conductivity, explicit RK4) is split over 1, 2 and 4 ranks with
``nnpde.distributed.Decomposition``; each run times ``--steps`` steps of the jitted
rollout (compilation excluded, best of ``--repeats``) and checks the gathered result
against the one-process rollout's checksum printed by the 1-rank run.

One size per launch::

    for n in 1 2 4; do
        .venv/bin/mpirun -n $n .venv/bin/python scripts/halo_scaling.py --resolution 512 --steps 200
    done

or the driver, which launches those runs itself and writes ``runs/halo_scaling.json``::

    .venv/bin/python scripts/halo_scaling.py --drive --ranks 1 2 4 --resolution 256 --steps 100

More ranks than CPU cores share cores: such runs are labelled *oversubscribed* and
measure contention, not scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(resolution: int, steps: int, repeats: int) -> dict | None:
    """One launch: this rank's share of the timed rollout; the summary on rank 0."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from mpi4py import MPI

    sys.path.insert(0, str(ROOT))
    import nnpde
    import solvers
    from nnpde.distributed import Decomposition

    comm = MPI.COMM_WORLD
    grid = nnpde.Grid((resolution, resolution))
    bc = nnpde.BoundaryConditions.periodic(2)
    x, y = grid.cell_centres()
    k = 1.0 + 0.5 * jnp.sin(2 * np.pi * x) * jnp.cos(2 * np.pi * y)
    u0 = jnp.sin(2 * np.pi * x)[None] + 0.3 * jnp.cos(6 * np.pi * y)[None]
    dt = nnpde.stable_dt(solvers.HeatEquation(grid, bc, conductivity=k), "rk4")

    d = Decomposition.create(grid, bc, comm=comm)
    eq = solvers.HeatEquation(d.local_grid, d.boundary_conditions, conductivity=d.split(k))
    stepper = nnpde.ExplicitRK(eq, dt=dt, method="rk4", check_stability=False)
    run = jax.jit(lambda u: nnpde.rollout(stepper, u, steps, trajectory=False))
    local = d.split(u0)
    run(local).block_until_ready()  # compile
    times = []
    for _ in range(repeats):
        comm.Barrier()
        start = time.perf_counter()
        out = run(local).block_until_ready()
        comm.Barrier()
        times.append(time.perf_counter() - start)
    checksum = float(d.sum(out * out))
    if d.rank != 0:
        return None
    cores = os.cpu_count() or 1
    return {
        "ranks": d.size,
        "dims": list(d.dims),
        "resolution": resolution,
        "steps": steps,
        "seconds": min(times),
        "seconds_per_step": min(times) / steps,
        "cell_updates_per_second": resolution**2 * steps / min(times),
        "checksum": checksum,
        "cpu_cores": cores,
        "oversubscribed": d.size > cores,
    }


def drive(ranks, resolution: int, steps: int, repeats: int, output: Path) -> list[dict]:
    """Launch one ``mpirun`` per rank count and collect the summaries."""
    mpirun = Path(sys.executable).parent / "mpirun"
    rows = []
    for n in ranks:
        command = [str(mpirun), "-n", str(n), sys.executable, __file__]
        command += ["--resolution", str(resolution), "--steps", str(steps), "--repeats", str(repeats)]
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"mpirun -n {n} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        report(rows[-1], rows[0])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {output}")
    return rows


def report(row: dict, base: dict | None = None) -> None:
    """One line per run; with ``base`` (the first run) the speed-up and the relative
    drift of the checksum ``sum(u^2)`` (round-off only: the rollouts are the same)."""
    label = " (oversubscribed: more ranks than cores)" if row["oversubscribed"] else ""
    versus = ""
    if base is not None:
        drift = abs(row["checksum"] - base["checksum"]) / abs(base["checksum"])
        versus = (
            f", speed-up {base['seconds'] / row['seconds']:.2f} vs {base['ranks']} rank(s), checksum drift {drift:.1e}"
        )
    print(
        f"ranks={row['ranks']} dims={tuple(row['dims'])} {row['resolution']}^2 x {row['steps']} steps: "
        f"{row['seconds']:.3f} s ({1e3 * row['seconds_per_step']:.2f} ms/step){versus}{label}",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--drive", action="store_true", help="launch the mpirun runs and write the JSON")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "halo_scaling.json")
    args = parser.parse_args(argv)
    if args.drive:
        drive(args.ranks, args.resolution, args.steps, args.repeats, args.output)
        return
    row = measure(args.resolution, args.steps, args.repeats)
    if row is not None:
        report(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
