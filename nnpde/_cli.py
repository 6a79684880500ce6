"""The ``nnpde`` console command.

``nnpde simulate [--problem MODULE] [--out DIR] [--set key=value ...]`` runs a
problem's simulation: ``MODULE`` is an import path (ours, e.g. ``problems.heat_board``,
or the user's own) whose ``setup(**options)`` returns an ``nnpde.Simulation``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import sys

DEFAULT_PROBLEM = "problems.heat_board"


def _parse_overrides(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"nnpde: --set expects key=value, got {pair!r}. Example: --set resolution=64")
        key, raw = pair.split("=", 1)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        options[key.strip()] = value
    return options


def _load_setup(problem: str):
    try:
        module = importlib.import_module(problem)
    except ModuleNotFoundError as err:
        raise SystemExit(
            f"nnpde: cannot import problem module {problem!r} ({err}). Fix: give an importable "
            f"module path, e.g. --problem {DEFAULT_PROBLEM}, and check it is on PYTHONPATH."
        ) from None
    setup = getattr(module, "setup", None)
    if setup is None:
        raise SystemExit(f"nnpde: problem module {problem!r} has no setup(**options) function returning a Simulation.")
    return setup


def _simulate(args) -> int:
    import jax

    # Simulations run in float64 unless asked otherwise: implicit solves of stiff,
    # high-contrast problems need it (float32 CG stagnates near eps * condition number).
    jax.config.update("jax_enable_x64", not args.float32)
    from ._simulation import run_simulation

    setup = _load_setup(args.problem)
    options = _parse_overrides(args.set)
    accepted = inspect.signature(setup).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise SystemExit(f"nnpde: unknown option(s) {unknown} for {args.problem}.setup. Known: {sorted(accepted)}.")
    try:
        sim = setup(**options)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"nnpde: {args.problem}.setup({options}) refused: {err}") from None
    out = args.out or f"runs/{sim.name}"
    print(f"nnpde simulate: {args.problem}\n{sim.description}")
    print("settings: " + json.dumps(sim.attrs, sort_keys=True))
    summary = run_simulation(sim, out, progress=not args.no_progress)
    print(f"{summary['status']}: {summary['steps']} steps in {summary['wall_seconds']:.1f} s")
    for channel, stats in summary["final"].items():
        print(f"final {channel}: min {stats['min']:.6g}, max {stats['max']:.6g}")
    print(f"wrote {summary['files']['netcdf']}, {summary['files']['plot']} and {out}/summary.json")
    return 0 if summary["status"] == "completed" else 1


def main(argv: list[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="nnpde", description="Hybrid neural-network + PDE modelling in JAX.")
    parser.add_argument("--version", action="version", version=f"nnpde {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("simulate", help="run a problem's simulation; write netCDF, a plot and a summary")
    sim.add_argument(
        "--problem", default=DEFAULT_PROBLEM, help=f"import path of the problem (default {DEFAULT_PROBLEM})"
    )
    sim.add_argument("--out", default=None, help="output folder (default runs/<name>)")
    sim.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setup option")
    sim.add_argument("--no-progress", action="store_true", help="no progress bar")
    sim.add_argument("--float32", action="store_true", help="single precision (default: float64)")
    sim.set_defaults(handler=_simulate)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
