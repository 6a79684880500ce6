"""Throughput of the explicit 2-D heat step: nnpde vs jax-cfd vs memory bandwidth.

Everything is measured in one process, float32, periodic unit square, n x n
cells (default n = 256 and 1024), on whatever JAX backend is default (CPU here):

a. Memory bandwidth: a jitted triad ``y = a*x + b`` over 256 MiB arrays (far
   larger than any cache), counted as 8 bytes moved per element, best of
   several calls.  The output buffer is donated and reused, so the figure is
   not polluted by page faults on freshly allocated memory.  From it, the
   roofline bound on a stencil step that reads one float32 field and writes
   another: bandwidth / (8 bytes per cell update).  The in-place variant
   ``x = a*x + b`` (no write-allocate traffic) is reported for information.
b. jax-cfd: ``jax_cfd.base.diffusion.diffuse`` on a periodic ``GridVariable``
   plus a forward-Euler update, ``steps`` steps fused in one ``lax.scan``
   under ``jax.jit``.
c. nnpde: ``solvers.HeatEquation`` + ``nnpde.ExplicitRK(method="forward_euler")``
   + ``nnpde.rollout`` (a ``lax.scan``), same kappa, dt = 0.2 h^2 / kappa and
   step count.  Skipped with a message if nnpde is not importable yet.

Solver figures are million cell-updates per second (steps * n^2 / seconds),
compile excluded (one warm-up call), best of ``--repeats`` timed calls, each
ended by ``block_until_ready``.  After the run the two final fields are
compared (max abs difference) to show both did the same work.  Note: a 256^2
field (256 KiB) lives in L2 and a 1024^2 field (4 MiB) in L3 on most CPUs, so
a "fraction of roofline" above 1 means cache bandwidth, not a measuring error.

Launch (from the repository root):

    bash benchmarks/setup_bench_env.sh && .venv-bench/bin/python benchmarks/heat_throughput.py

Results are printed as a table and written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.metadata
import json
import os
import socket
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DTYPE = jnp.float32
BYTES_PER_UPDATE = 8  # one float32 read + one float32 write per cell update


# --------------------------------------------------------------------------- setup
def alias_removed_jax_names() -> list[str]:
    """Re-create top-level jax names that jax-cfd 0.2.1 still calls.

    jax removed ``jax.tree_map`` & co. (moved to ``jax.tree``); jax-cfd's last
    PyPI release predates that.  Must run before ``import jax_cfd``.  Only
    names that are actually missing are set, and the list is recorded.
    """
    aliases = {
        "tree_map": jax.tree.map,
        "tree_flatten": jax.tree.flatten,
        "tree_unflatten": jax.tree.unflatten,
        "tree_leaves": jax.tree.leaves,
        "tree_structure": jax.tree.structure,
    }
    added = []
    for name, fn in aliases.items():
        try:
            getattr(jax, name)
        except AttributeError:
            setattr(jax, name, fn)
            added.append(f"jax.{name}")
    return added


def import_nnpde():
    """Import nnpde lazily: it is being written, and the benchmark must still run."""
    # Make the working tree importable even without the editable install.
    sys.path.insert(0, str(REPO))
    try:
        import nnpde
        import solvers
    except Exception as err:  # ImportError, or a half-written module
        return None, f"{type(err).__name__}: {err}"
    # The package may exist before the API this benchmark uses does.
    missing = [f"nnpde.{a}" for a in ("Grid", "BoundaryConditions", "ExplicitRK", "rollout") if not hasattr(nnpde, a)]
    missing += [] if hasattr(solvers, "HeatEquation") else ["solvers.HeatEquation"]
    if missing:
        return None, "missing " + ", ".join(missing)
    return (nnpde, solvers), "ok"


def best_time(call, repeats: int) -> float:
    """Best wall time of ``call()`` over ``repeats`` runs, after one warm-up (compile)."""
    jax.block_until_ready(call())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return min(times)


# --------------------------------------------------------------------------- (a) bandwidth
def measure_bandwidth(mib: int, repeats: int) -> dict:
    n = mib * 2**20 // 4
    x, y = jnp.ones(n, DTYPE), jnp.zeros(n, DTYPE)

    # Out of place, the access pattern of a stencil step.  `out` is donated and
    # kept (keep_unused) so XLA writes the result into it instead of into fresh,
    # not yet faulted-in pages; the two buffers then swap roles.
    triad = jax.jit(lambda x, out: 0.5 * x + 1.0, donate_argnums=1, keep_unused=True)

    def call_triad():
        nonlocal x, y
        x, y = triad(x, y), x
        return x

    # In place (x donated and overwritten): no write-allocate, closer to raw DRAM rate.
    inplace = jax.jit(lambda x: 0.5 * x + 1.0, donate_argnums=0)

    def call_inplace():
        nonlocal x
        x = inplace(x)
        return x

    t_triad = best_time(call_triad, repeats)
    t_inplace = best_time(call_inplace, repeats)
    gbs = BYTES_PER_UPDATE * n / t_triad / 1e9
    return {
        "array_MiB": mib,
        "repeats": repeats,
        "triad_GB_per_s": gbs,
        "inplace_GB_per_s": BYTES_PER_UPDATE * n / t_inplace / 1e9,
        "roofline_Mcell_per_s": gbs * 1e9 / BYTES_PER_UPDATE / 1e6,
    }


# --------------------------------------------------------------------------- (b) jax-cfd
def make_jaxcfd_run(n: int, kappa: float, dt: float, steps: int):
    from jax_cfd.base import boundaries, diffusion, grids

    grid = grids.Grid((n, n), domain=((0.0, 1.0), (0.0, 1.0)))
    bc = boundaries.periodic_boundary_conditions(2)
    offset = (0.5, 0.5)  # cell-centred scalar

    def step(u, _):
        # Re-wrap the raw array each step so the scan carry is a plain array.
        var = grids.GridVariable(grids.GridArray(u, offset, grid), bc)
        return u + dt * diffusion.diffuse(var, kappa).data, None

    return jax.jit(lambda u0: jax.lax.scan(step, u0, None, length=steps)[0])


# --------------------------------------------------------------------------- (c) nnpde
def make_nnpde_run(mods, n: int, kappa: float, dt: float, steps: int, halo: int | None = None):
    nnpde, solvers = mods
    grid = nnpde.Grid((n, n), extent=((0.0, 1.0), (0.0, 1.0)))
    bc = nnpde.BoundaryConditions.periodic(2)
    eq = solvers.HeatEquation(grid, bc, conductivity=kappa)
    stepper = nnpde.ExplicitRK(eq, dt=dt, method="forward_euler")
    # nnpde states carry a leading field axis, (1, n, n); add/drop it inside the
    # jit so no extra eager copies are timed.
    return jax.jit(lambda u0: nnpde.rollout(stepper, u0[None], steps, trajectory=False, halo=halo)[0])


# --------------------------------------------------------------------------- main
def initial_field(n: int) -> jax.Array:
    """Smooth periodic modes plus seeded noise, so a wrong stencil shows up in the diff."""
    x = (np.arange(n) + 0.5) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    u = np.sin(2 * np.pi * X) * np.cos(4 * np.pi * Y)
    u += 0.1 * np.random.default_rng(0).standard_normal((n, n))
    return jnp.asarray(u, DTYPE)


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "jax_backend": jax.default_backend(),
        "versions": {d: version(d) for d in ("jax", "jaxlib", "jax-cfd")},
    }


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="grid sizes n (n x n cells)")
    # Fewer steps at 1024^2 (16x the cells) keeps each timed call ~0.1-1 s on 2 cores.
    p.add_argument("--steps", type=int, nargs="+", default=[5000, 500], help="time steps, one per size")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (best is kept)")
    p.add_argument("--kappa", type=float, default=1.0, help="conductivity; dt = 0.2 h^2 / kappa")
    p.add_argument("--bw-mib", type=int, default=256, help="array size for the bandwidth triad")
    p.add_argument("--halo", type=int, default=16, help="steps per halo fill for nnpde's deep-halo rollout")
    p.add_argument(
        "--out", type=Path, default=REPO / "benchmarks/results/heat_throughput.json", help="JSON results file"
    )
    args = p.parse_args()
    if len(args.steps) != len(args.sizes):
        p.error("--steps needs one value per --sizes entry")
    return args


def main():
    args = parse_args()
    aliased = alias_removed_jax_names()  # before jax_cfd is imported anywhere
    import jax_cfd  # noqa: F401  (fail early, with the aliases in place)

    nnpde_mods, nnpde_status = import_nnpde()
    if nnpde_mods is None:
        print(f"nnpde not importable yet ({nnpde_status}); measuring bandwidth and jax-cfd only.")

    info = machine_info()
    print(
        f"{info['cpu_model']}, {info['cpus_usable']} cpus, backend {info['jax_backend']}, versions {info['versions']}"
    )
    if aliased:
        print(f"aliased for jax-cfd: {', '.join(aliased)}")

    # Each triad call is only tens of ms, so take more samples than for the solvers.
    bw = measure_bandwidth(args.bw_mib, max(10, args.repeats))
    roof = bw["roofline_Mcell_per_s"]
    print(
        f"bandwidth: triad {bw['triad_GB_per_s']:.1f} GB/s "
        f"(in place {bw['inplace_GB_per_s']:.1f} GB/s) -> roofline {roof:.0f} "
        f"Mcell-updates/s at {BYTES_PER_UPDATE} B/update"
    )

    results, checks = [], []
    for n, steps in zip(args.sizes, args.steps):
        h = 1.0 / n
        dt = 0.2 * h**2 / args.kappa  # below the 2-D forward-Euler limit 0.25 h^2 / kappa
        u0 = initial_field(n)
        runs = {"jax-cfd": make_jaxcfd_run(n, args.kappa, dt, steps)}
        if nnpde_mods is not None:
            try:
                runs["nnpde"] = make_nnpde_run(nnpde_mods, n, args.kappa, dt, steps)
                runs[f"nnpde halo={args.halo}"] = make_nnpde_run(nnpde_mods, n, args.kappa, dt, steps, args.halo)
            except Exception as err:  # API still moving: keep the baseline
                print(f"nnpde setup failed at n={n}: {type(err).__name__}: {err}")

        finals = {}
        for solver, run in runs.items():
            try:
                seconds = best_time(functools.partial(run, u0), args.repeats)
                final = run(u0)
                finals[solver] = np.asarray(final)
            except Exception as err:  # report it, time the others
                print(f"{solver} failed at n={n}: {type(err).__name__}: {err}")
                continue
            mcells = steps * n * n / seconds / 1e6
            if final.dtype != DTYPE:  # e.g. a library switching on jax_enable_x64
                print(f"warning: {solver} returned {final.dtype}, not float32")
            results.append(
                {
                    "n": n,
                    "solver": solver,
                    "steps": steps,
                    "dt": dt,
                    "seconds": seconds,
                    "Mcell_per_s": mcells,
                    "roofline_fraction": mcells / roof,
                    "out_dtype": str(final.dtype),
                }
            )

        for solver in [s for s in finals if s != "jax-cfd"] if "jax-cfd" in finals else []:
            diff = float(np.max(np.abs(finals[solver] - finals["jax-cfd"])))
            scale = float(np.max(np.abs(finals["jax-cfd"])))
            same = diff <= 1e-4 * scale  # generous for float32 round-off, tiny vs a stencil bug
            checks.append({"n": n, "solver": solver, "max_abs_diff": diff, "max_abs_field": scale, "same": same})
            print(
                f"n={n}: max |{solver} - jax-cfd| = {diff:.3e} (field max {scale:.3f})"
                + ("" if same else "  <-- NOT the same field: timings not comparable")
            )

    # Ratio nnpde / jax-cfd per size, attached to the nnpde row.
    base = {r["n"]: r["Mcell_per_s"] for r in results if r["solver"] == "jax-cfd"}
    for r in results:
        r["ratio_nnpde_over_jaxcfd"] = (
            r["Mcell_per_s"] / base[r["n"]] if r["solver"].startswith("nnpde") and r["n"] in base else None
        )

    print(f"\n{'size':>10} {'solver':>15} {'Mcell-upd/s':>12} {'roofline':>9} {'nnpde/jax-cfd':>14}")
    for r in results:
        ratio = r["ratio_nnpde_over_jaxcfd"]
        ratio = "" if ratio is None else f"{ratio:.2f}"
        print(
            f"{r['n']:>5}^2 {'':>3}{r['solver']:>15} {r['Mcell_per_s']:>12.1f} "
            f"{r['roofline_fraction']:>9.2f} {ratio:>14}"
        )

    report = {
        **info,
        "dtype": "float32",
        "boundary": "periodic",
        "kappa": args.kappa,
        "steps": dict(zip(map(str, args.sizes), args.steps)),
        "repeats": args.repeats,
        "halo": args.halo,
        "bytes_per_cell_update": BYTES_PER_UPDATE,
        "bandwidth": bw,
        "results": results,
        "agreement": checks,
        "nnpde_status": nnpde_status,
        "aliased_jax_names": aliased,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
