"""Problem modules: importing the one a run names, and finding its entry point.

A problem module offers, under fixed names, the entry points it supports (the
convention is written down in ``problems/__init__.py``); each command needs one:

| entry point | what it is | needed by |
| --- | --- | --- |
| ``task`` | ``task(**options) -> nnpde.Task`` | ``nnpde train``, ``evaluate``, ``generate``, ``benchmark`` |
| ``simulation`` | ``simulation(**options) -> nnpde.Simulation`` | ``nnpde simulate`` |
| ``CASES`` | a dict ``name -> case(full) -> dict`` | ``nnpde validate`` |

``import_problem`` imports the module and checks that it offers the entry point;
``build`` calls a factory with options checked against its signature. Every refusal
is a ``ConfigError`` naming the module, what is wrong and the fix.
"""

from __future__ import annotations

import importlib
import inspect
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
    "CASES": EntryPoint(
        "CASES, a dict of validation cases name -> case(full) -> dict", "nnpde validate", "problems.validation"
    ),
}


def _named(key: str, name: str) -> str:
    """How the run named the module: a config key (``problem.module = 'x'``) or an
    option of the command (``--problem x``)."""
    return f"{key} {name}" if key.startswith("--") else f"{key} = {name!r}"


def import_problem(name: str, entry: str, *, key: str) -> ModuleType:
    """The module ``name``, which a run names by ``key`` (a config key or an option of
    the command), after checking that it offers ``entry`` (one of ``ENTRY_POINTS``)."""
    spec = ENTRY_POINTS[entry]
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"{_named(key, name)} cannot be imported ({err}). Fix: give an importable module path, e.g. "
            f"{spec.example}, and make sure its folder is on PYTHONPATH."
        ) from None
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
