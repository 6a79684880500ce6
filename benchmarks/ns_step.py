"""Cost of a 2-D incompressible Navier-Stokes step: nnpde vs jax-cfd vs Exponax.

Problem: Kolmogorov flow on the periodic square [0, 2 pi]^2 (Kochkov et al., PNAS 118
(2021) e2101784118): nu = 1e-3, forcing (sin(4 y), 0), linear drag 0.1 u, n x n cells
(default 256^2), float32. One seeded divergence-free initial velocity
(``problems.kolmogorov.initial_velocity``, max speed 3) goes through every solver;
every solver uses the same dt, jax-cfd's ``stable_time_step`` for max velocity 7 and
Courant number 0.5, Kochkov et al.'s choice.

Measured, for each solver, in one process, on the default JAX backend (CPU here):

* forward: a ``--steps``-step rollout (default 20) in one ``lax.scan`` under
  ``jax.jit``, returning the final state; milliseconds per step = its time / steps;
* gradient: ``jax.jit(jax.grad(loss))`` with ``loss`` = the sum of squares of the
  final state (kinetic energy x 2 / cell area for velocity states; enstrophy for
  Exponax's vorticity state), w.r.t. the initial state;
* the gradient-to-forward ratio = gradient time / forward time.

Compilation excluded (one warm-up call), best of ``--repeats`` timed calls, each ended
by ``block_until_ready``.

Solvers:

* nnpde: ``problems.kolmogorov.DampedNavierStokes2D`` (``solvers.NavierStokes2D`` + drag)
  stepped by ``nnpde.ProjectedRK`` (classic RK4, a projection after every stage: 4
  right-hand sides and 4 FFT pressure solves per step), advection ``"central"`` and
  ``"van_leer"``; and van Leer with forward Euler (1 right-hand side and 1 pressure
  solve per step, admitted below the total-variation-diminishing limit). The
  right-hand side's gradient is its hand-written adjoint (``differentiation="adjoint"``,
  the default). ``check_stability`` is left on (the default), so each step also
  checks the stability limit.
* jax-cfd 0.2.1 finite volume: ``equations.semi_implicit_navier_stokes`` with
  ``advection.advect_van_leer_using_limiters`` (its default convection), explicit
  ``diffusion.diffuse``, ``pressure.solve_fast_diag``, Kolmogorov + linear forcing;
  with its default ``time_stepping.forward_euler`` (Kochkov et al.'s setting: 1
  right-hand side and 1 pressure solve per step) and with ``classic_rk4`` (the same
  stage count as nnpde).
* Exponax (if importable): ``exponax.stepper.KolmogorovFlowVorticity``, pseudo-spectral
  vorticity form, ETDRK2, 2/3 dealiasing; state = vorticity at the cell corners (in
  Exponax's sign convention, ``EXPONAX_SIGN``), so its gradient is w.r.t. the initial
  vorticity, not velocity.

The velocity solvers advance the same initial state; the maximum difference of their
final vorticity from nnpde van Leer's is printed and stored (they differ by their
schemes' truncation errors, not by the setup).

Launch (from the repository root):

    bash benchmarks/setup_bench_env.sh && .venv-bench/bin/python benchmarks/ns_step.py

Results are printed as a table and written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from heat_throughput import alias_removed_jax_names, best_time, machine_info  # noqa: E402

NU, K_FORCE, AMPLITUDE, DRAG = 1e-3, 4, 1.0, 0.1
# Exponax 0.2.0's vorticity state is the negative of dv/dx - du/dy (measured: with this
# sign on the state and on its forcing, 20 steps at 64^2 agree with nnpde's van Leer run
# to 13 % of max|omega|, the same as nnpde central vs van Leer; with +1 they differ by 76 %).
EXPONAX_SIGN = -1.0


# --------------------------------------------------------------------------- solvers
def make_nnpde(n, dt, steps, advection, method="rk4"):
    import nnpde
    from problems import kolmogorov

    grid = kolmogorov.make_grid(n)
    eq = kolmogorov.make_equation(
        grid, viscosity=NU, wavenumber=K_FORCE, amplitude=AMPLITUDE, drag=DRAG, advection=advection
    )
    stepper = nnpde.ProjectedRK(eq, dt=dt, method=method)

    def forward(u0):
        return nnpde.rollout(stepper, u0, steps, trajectory=False)

    return forward, eq.vorticity, lambda u: u  # state is nnpde's own layout


def make_jaxcfd(n, dt, steps, stepper_name):
    from jax_cfd.base import advection, boundaries, equations, forcings, funcutils, grids, pressure, time_stepping

    grid = grids.Grid((n, n), domain=((0.0, 2 * np.pi), (0.0, 2 * np.pi)))
    bc = boundaries.periodic_boundary_conditions(2)
    forcing = forcings.sum_forcings(
        forcings.kolmogorov_forcing(grid, scale=AMPLITUDE, k=K_FORCE),
        forcings.linear_forcing(grid, -DRAG),
    )
    step = equations.semi_implicit_navier_stokes(
        density=1.0,
        viscosity=NU,
        dt=dt,
        grid=grid,
        convect=lambda v: tuple(advection.advect_van_leer_using_limiters(u, v, dt) for u in v),
        pressure_solve=pressure.solve_fast_diag,
        forcing=forcing,
        time_stepper=getattr(time_stepping, stepper_name),
    )
    offsets = grid.cell_faces  # ((1, 0.5), (0.5, 1)): jax-cfd stores the upper faces

    def wrap(u):
        return tuple(grids.GridVariable(grids.GridArray(u[a], offsets[a], grid), bc) for a in range(2))

    def forward(u0):
        v = funcutils.repeated(step, steps)(wrap(u0))
        return jnp.stack([c.data for c in v])

    # nnpde lower faces -> jax-cfd upper faces: shift each component by one cell along its axis.
    def to_jaxcfd(u):
        return jnp.stack([jnp.roll(u[0], -1, axis=0), jnp.roll(u[1], -1, axis=1)])

    def vorticity(u):  # back to nnpde's layout, then nnpde's corner vorticity
        h = 2 * np.pi / n
        back = jnp.stack([jnp.roll(u[0], 1, axis=0), jnp.roll(u[1], 1, axis=1)])
        return (back[1] - jnp.roll(back[1], 1, axis=0)) / h - (back[0] - jnp.roll(back[0], 1, axis=1)) / h

    return forward, vorticity, to_jaxcfd


def make_exponax(n, dt, steps):
    import exponax

    stepper = exponax.stepper.KolmogorovFlowVorticity(
        2,
        2 * np.pi,
        n,
        dt,
        diffusivity=NU,
        drag=-DRAG,
        injection_mode=K_FORCE,
        injection_scale=EXPONAX_SIGN * AMPLITUDE,
    )

    def forward(w0):
        return jax.lax.scan(lambda w, _: (stepper(w), None), w0, None, length=steps)[0]

    return forward, lambda w: EXPONAX_SIGN * w[0], None


# --------------------------------------------------------------------------- main
def version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--n", type=int, default=256, help="cells per axis")
    p.add_argument("--steps", type=int, default=20, help="steps per rollout")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (best is kept)")
    p.add_argument("--seed", type=int, default=0, help="initial-field seed")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/ns_step.json", help="JSON results file")
    return p.parse_args()


def main():
    args = parse_args()
    aliased = alias_removed_jax_names()  # before jax_cfd is imported anywhere
    import jax_cfd  # noqa: F401
    from jax_cfd.base import equations as cfd_equations
    from jax_cfd.base import grids as cfd_grids

    from problems import kolmogorov

    info = machine_info()
    info["versions"]["exponax"] = version("exponax")
    info["versions"]["equinox"] = version("equinox")
    print(
        f"{info['cpu_model']}, {info['cpus_usable']} cpus, backend {info['jax_backend']}, versions {info['versions']}"
    )

    n, steps = args.n, args.steps
    cfd_grid = cfd_grids.Grid((n, n), domain=((0.0, 2 * np.pi), (0.0, 2 * np.pi)))
    dt = float(cfd_equations.stable_time_step(7.0, 0.5, NU, cfd_grid))
    grid = kolmogorov.make_grid(n)
    u0 = jnp.asarray(kolmogorov.initial_velocity(grid, args.seed, max_velocity=3.0), jnp.float32)
    print(f"{n}^2, float32, dt = {dt:.6g}, {steps} steps per rollout, best of {args.repeats}")

    builders = {
        "nnpde central RK4": functools.partial(make_nnpde, n, dt, steps, "central"),
        "nnpde van_leer RK4": functools.partial(make_nnpde, n, dt, steps, "van_leer"),
        "nnpde van_leer, forward Euler": functools.partial(make_nnpde, n, dt, steps, "van_leer", "forward_euler"),
        "jax-cfd FV van Leer, forward Euler": functools.partial(make_jaxcfd, n, dt, steps, "forward_euler"),
        "jax-cfd FV van Leer, RK4": functools.partial(make_jaxcfd, n, dt, steps, "classic_rk4"),
        "exponax spectral ETDRK2 (vorticity)": functools.partial(make_exponax, n, dt, steps),
    }
    stages = {
        "nnpde central RK4": 4,
        "nnpde van_leer RK4": 4,
        "nnpde van_leer, forward Euler": 1,
        "jax-cfd FV van Leer, forward Euler": 1,
        "jax-cfd FV van Leer, RK4": 4,
        "exponax spectral ETDRK2 (vorticity)": 2,
    }
    omega0 = None
    results, skipped, finals = [], {}, {}
    for name, build in builders.items():
        try:
            forward, vorticity, convert = build()
        except Exception as err:  # e.g. exponax not installed
            skipped[name] = f"{type(err).__name__}: {err}"
            print(f"skipped {name}: {skipped[name]}")
            continue
        if convert is None:  # vorticity state: nnpde's corner vorticity of the same u0
            if omega0 is None:
                omega0 = EXPONAX_SIGN * kolmogorov.make_equation(grid).vorticity(u0)[None].astype(jnp.float32)
            x0 = omega0
        else:
            x0 = convert(u0)

        fwd = jax.jit(forward)
        grad = jax.jit(jax.grad(lambda x, forward=forward: jnp.sum(forward(x) ** 2)))
        try:
            t_fwd = best_time(functools.partial(fwd, x0), args.repeats)
            t_grad = best_time(functools.partial(grad, x0), args.repeats)
        except Exception as err:
            skipped[name] = f"{type(err).__name__}: {err}"
            print(f"failed {name}: {skipped[name]}")
            continue
        final = fwd(x0)
        g = grad(x0)
        finals[name] = np.asarray(vorticity(final))
        row = {
            "solver": name,
            "stages_per_step": stages[name],
            "forward_s": t_fwd,
            "grad_s": t_grad,
            "ms_per_step": 1e3 * t_fwd / steps,
            "grad_over_forward": t_grad / t_fwd,
            "out_dtype": str(final.dtype),
            "final_finite": bool(np.isfinite(np.asarray(final)).all()),
            "grad_finite": bool(np.isfinite(np.asarray(g)).all()),
        }
        results.append(row)
        print(
            f"  {name:<38} {row['ms_per_step']:8.2f} ms/step   grad/fwd {row['grad_over_forward']:5.2f}"
            + ("" if row["final_finite"] and row["grad_finite"] else "   NON-FINITE")
        )

    base = {r["solver"]: r["ms_per_step"] for r in results}
    ref_name = "jax-cfd FV van Leer, forward Euler"
    for r in results:
        r["step_time_over_jaxcfd_fe"] = r["ms_per_step"] / base[ref_name] if ref_name in base else None
        r["step_time_over_jaxcfd_rk4"] = (
            r["ms_per_step"] / base["jax-cfd FV van Leer, RK4"] if "jax-cfd FV van Leer, RK4" in base else None
        )

    ref = finals.get("nnpde van_leer RK4")
    agreement = {}
    if ref is not None:
        scale = float(np.max(np.abs(ref)))
        for name, w in finals.items():
            agreement[name] = float(np.max(np.abs(w - ref))) / scale
        print(f"\nmax |omega - omega_nnpde_van_leer| / max|omega| after {steps} steps: ")
        for name, rel in agreement.items():
            print(f"  {name:<38} {rel:.2e}")

    header = "\n| solver | stages/step | ms/step | time / jax-cfd FE step | time / jax-cfd RK4 step | grad/forward |"
    print(header + "\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        fe = "" if r["step_time_over_jaxcfd_fe"] is None else f"{r['step_time_over_jaxcfd_fe']:.2f}"
        rk = "" if r["step_time_over_jaxcfd_rk4"] is None else f"{r['step_time_over_jaxcfd_rk4']:.2f}"
        print(
            f"| {r['solver']} | {r['stages_per_step']} | {r['ms_per_step']:.2f} | {fe} | {rk} | "
            f"{r['grad_over_forward']:.2f} |"
        )

    report = {
        **info,
        "problem": "kolmogorov flow, [0, 2 pi]^2 periodic",
        "n": n,
        "dtype": "float32",
        "viscosity": NU,
        "forcing": f"({AMPLITUDE} sin({K_FORCE} y), 0)",
        "drag": DRAG,
        "dt": dt,
        "steps_per_rollout": steps,
        "repeats": args.repeats,
        "loss": "sum of squares of the final state",
        "results": results,
        "final_vorticity_rel_diff_vs_nnpde_van_leer": agreement,
        "skipped": skipped,
        "aliased_jax_names": aliased,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
