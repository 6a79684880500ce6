"""A run's history: what changed each time ``nnpde train`` started it again.

A run directory keeps the configuration it last trained with (``config.toml``). When
``nnpde train`` is started again on it with other settings, the changed keys are
compared with that configuration before any work:

- keys that say what the checkpoints are a model OF (``problem``, ``model``, ``data``,
  ``precision``) cannot change under a run that has checkpoints: the command is refused
  (``ConfigError``, nothing written) with the fix, a new run directory;
- any other change (``train.learning_rate``, ``train.steps``, ``distributed.*``, ...) is
  accepted: printed, and recorded with the step it resumes from in ``history.jsonl``
  (one JSON object per start of ``nnpde train``), never silently.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from pathlib import Path

from ._config import ConfigError, RunConfig

# Sections and keys whose change makes the checkpoints a model of something else.
FIXED_ON_RESUME = ("problem.", "model.", "data.", "precision")


def _flatten(table: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def stored_config(run_dir: Path) -> dict | None:
    """The flat ``{key: value}`` configuration a run last trained with (``None``: none),
    the defaults filled in."""
    from ._config import _build

    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        return None
    try:
        stored = _build(RunConfig, tomllib.loads(path.read_text()), "", str(path), {})
    except (tomllib.TOMLDecodeError, ConfigError) as err:
        raise ConfigError(
            f"the run directory's {path} cannot be read ({err}). Fix: restore that file, or train into a new run "
            "directory."
        ) from None
    return _flatten(stored.to_dict())


def changed_settings(config: RunConfig) -> dict[str, list]:
    """``{key: [before, now]}``: the keys of ``config`` that differ from the configuration
    its run directory last trained with (empty for a new run)."""
    before = stored_config(config.run_dir)
    if before is None:
        return {}
    now = _flatten(config.to_dict())
    return {k: [before.get(k), now.get(k)] for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)}


def has_checkpoints(run_dir: Path) -> bool:
    """Whether the run directory holds checkpoints (its own, or a group's)."""
    run_dir = Path(run_dir)
    return any(p.is_dir() and any(p.iterdir()) for p in [run_dir / "checkpoints", *run_dir.glob("group*/checkpoints")])


def check_resume(config: RunConfig) -> dict[str, list]:
    """The settings changed since the run last trained (see the module docstring);
    ``ConfigError`` when one of them may not change under existing checkpoints."""
    changes = changed_settings(config)
    fixed = {k: v for k, v in changes.items() if k.startswith(FIXED_ON_RESUME)}
    if fixed and has_checkpoints(config.run_dir):
        listed = "; ".join(f"{k}: {before!r} -> {now!r}" for k, (before, now) in fixed.items())
        raise ConfigError(
            f"{config.run_dir} holds checkpoints of another model or data than this configuration ({listed}); "
            "a resume may change how it trains, not what it trains. Nothing was changed. Fix: train into a new "
            "run directory (--set out=runs/NEW with the TOML file), or drop these overrides to resume."
        )
    return changes


def describe(changes: dict[str, list]) -> str:
    """One line per changed key: ``key: before -> now``."""
    return "\n".join(f"  {k}: {before!r} -> {now!r}" for k, (before, now) in changes.items())


def record(run_dir: Path, entry: dict) -> None:
    """Append ``entry`` (with the time) to ``run_dir/history.jsonl``, rewritten
    atomically (a crash leaves the old or the new file, never half a line)."""
    path = Path(run_dir) / "history.jsonl"
    old = path.read_text() if path.is_file() else ""
    line = json.dumps({"time": time.time(), **entry}, default=str)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(old + line + "\n")
    os.replace(tmp, path)
