"""Problem modules: importing the one a run names, and finding its entry point.

A problem module offers, under fixed names, the entry points it supports (the
convention is written down in ``problems/__init__.py``); each command needs one:

| entry point | what it is | needed by |
| --- | --- | --- |
| ``task`` | ``task(**options) -> nnpde.Task`` | ``nnpde train``, ``evaluate``, ``generate``, ``benchmark`` |
| ``simulation`` | ``simulation(**options) -> nnpde.Simulation`` | ``nnpde simulate`` |
| ``monitoring`` | ``monitoring(**options) -> nnpde.MonitoringTask`` | ``nnpde detect`` |
| ``CASES`` | a dict ``name -> case(full) -> dict`` | ``nnpde validate`` |

``import_problem`` imports the module and checks that it offers the entry point;
``build`` calls a factory with options checked against its signature. The names
``problems`` and ``solvers`` are ours, installed beside ``nnpde``; a module of a user's
own with either name earlier on ``sys.path`` (the current directory comes first)
shadows ours, and a run that imports it is refused, naming both locations. Every
refusal is a ``ConfigError`` naming the module, what is wrong and the fix.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from ._config import ConfigError


class EntryPoint(NamedTuple):
    signature: str
    needed_by: str
    example: str


ENTRY_POINTS = {
    "task": EntryPoint(
        "task(**options) returning an nnpde.Task",
        "nnpde train, evaluate, generate and benchmark",
        "problems.hybrid_burgers",
    ),
    "simulation": EntryPoint(
        "simulation(**options) returning an nnpde.Simulation", "nnpde simulate", "problems.heat_board"
    ),
    "monitoring": EntryPoint(
        "monitoring(**options) returning an nnpde.MonitoringTask", "nnpde detect", "problems.thermal_monitoring"
    ),
    "CASES": EntryPoint(
        "CASES, a dict of validation cases name -> case(full) -> dict", "nnpde validate", "problems.validation"
    ),
}

# The folder that holds the nnpde package and, installed with it, problems and solvers.
INSTALLED = Path(__file__).resolve().parents[2]
OURS = ("problems", "solvers")


def _named(key: str, name: str) -> str:
    """How the run named the module: a config key (``problem.module = 'x'``) or an
    option of the command (``--problem x``)."""
    return f"{key} {name}" if key.startswith("--") else f"{key} = {name!r}"


def _location(module: ModuleType) -> Path | None:
    """The folder of a package (or the file of a module) that ``module`` was imported from."""
    file = getattr(module, "__file__", None)
    if file is None:  # a namespace package: a folder without __init__.py
        folders = list(getattr(module, "__path__", []))
        return Path(folders[0]).resolve() if folders else None
    path = Path(file).resolve()
    return path.parent if path.name == "__init__.py" else path


def check_not_shadowed() -> None:
    """Refuse when the ``problems`` or ``solvers`` that has been imported is not the
    package installed with nnpde (a ``problems.py`` or ``problems/`` of the user's own
    came first on ``sys.path``)."""
    for package in OURS:
        module = sys.modules.get(package)
        installed = INSTALLED / package
        if module is None or not (installed / "__init__.py").is_file():
            continue  # not imported, or none installed beside nnpde to compare with
        found = _location(module)
        if found != installed:
            raise ConfigError(
                f"the module {package!r} that was imported is {found}, not the {package} package installed with "
                f"nnpde, {installed}: a {package}.py or {package}/ of your own comes earlier on sys.path (the "
                f"current directory comes first) and shadows it. Fix: rename your module (e.g. my_{package}), "
                "or run nnpde from another directory."
            )


def import_problem(name: str, entry: str, *, key: str) -> ModuleType:
    """The module ``name``, which a run names by ``key`` (a config key or an option of
    the command), after checking that it offers ``entry`` (one of ``ENTRY_POINTS``)
    and that the ``problems`` and ``solvers`` it imports are ours."""
    spec = ENTRY_POINTS[entry]
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        check_not_shadowed()  # a shadowing package hides ours: say so, not "not found"
        raise ConfigError(
            f"{_named(key, name)} cannot be imported ({err}). Fix: give an importable module path, e.g. "
            f"{spec.example}, and make sure its folder is on PYTHONPATH."
        ) from None
    except Exception:
        check_not_shadowed()
        raise
    check_not_shadowed()
    value = getattr(module, entry, None)
    if not (isinstance(value, dict) if entry == "CASES" else callable(value)):
        offered = [f"{e} ({ENTRY_POINTS[e].needed_by})" for e in ENTRY_POINTS if hasattr(module, e)]
        raise ConfigError(
            f"{_named(key, name)} has no {spec.signature} (the entry point of {spec.needed_by}); it offers "
            f"{', '.join(offered) or 'none of the entry points'}. Fix: name a module that has one (e.g. "
            f"{spec.example}), or add {entry} to {name} (the entry points: problems/__init__.py)."
        )
    return module


def build(module: ModuleType, entry: str, options: dict, *, key: str, returns: type):
    """``module.<entry>(**options)``, checked to be a ``returns``; ``options`` come from
    ``key`` (``problem.options`` of a config, or ``--set`` of the command). An option
    the factory does not take, one it refuses (``TypeError``, ``ValueError``) and a
    result of another type are each a ``ConfigError`` naming them and the fix."""
    factory, where = getattr(module, entry), f"{module.__name__}.{entry}"
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        what = f"option {unknown[0]} ({key})" if key.startswith("--") else f"key {key}.{unknown[0]}"
        raise ConfigError(f"unknown {what} for {where}. Fix: use one of {sorted(accepted)}.")
    try:
        made = factory(**options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key} {options} refused by {where}: {err}") from None
    if not isinstance(made, returns):
        raise ConfigError(
            f"{where}(...) returned {type(made).__name__}, not an nnpde.{returns.__name__}. Fix: return one "
            "(the entry points: problems/__init__.py)."
        )
    return made
