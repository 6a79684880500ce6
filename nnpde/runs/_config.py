"""Run configuration: a TOML file, validated into frozen dataclasses before any work.

A run is described by one TOML file with the sections below (every key optional; the
defaults are the dataclass defaults). ``--set section.key=value`` on the command line
overrides any key, with the value read as TOML (``--set train.steps=200``,
``--set model.kind='"closure"'`` or ``--set model.kind=closure``). Unknown sections or
keys, values of the wrong type and out-of-range values are refused with the key, the
value and the fix, before any data are generated or any step is taken. The resolved
configuration is printed at the start of a run and saved with its results
(``config.toml``), so ``nnpde train RUN_DIR/config.toml`` repeats the run.

```toml
name = "burgers"            # run name; results go to out (default runs/<name>)
out = "runs/burgers"
precision = "float32"       # or "float64"

[problem]
module = "problems.hybrid_burgers"   # any importable module with task(**options)
options = {}                         # passed to task()

[model]
kind = "correction"         # one of the task's kinds
seed = 0                    # network initialisation

[data]
train_samples = 32          # reference trajectories for training
eval_samples = 8            # held-out trajectories (other initial states)
train_seed = 0
eval_seed = 1000
cache_dir = "runs/data"     # netCDF cache, keyed by the data's configuration

[train]
steps = 600
batch_size = 16             # one group's batch
unroll = 16                 # steps through the solver per loss
...

[distributed]               # only under mpirun
groups = 1
...
domain = []                 # e.g. [2, 1]: the reference solver split over the ranks

[benchmark]                 # nnpde benchmark: time to train to the task's target
seeds = [0, 1, 2, 3, 4]
...
```
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration that cannot run: the message names the key, the value and the fix."""


# Every key has a docstring below it: docs/config.md lists the keys, their types,
# defaults, allowed values and these docstrings, generated from this module at build.
@dataclasses.dataclass(frozen=True)
class ProblemConfig:
    """What is trained: a problem module whose ``task(**options)`` returns an ``nnpde.Task``."""

    module: str = "problems.hybrid_burgers"
    """Import path of the problem module; any importable module with ``task(**options)``."""
    options: dict = dataclasses.field(default_factory=dict)
    """Keyword arguments of ``task()`` (checked by the task), e.g. ``{ hidden = 32 }``."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which of the task's learned models, and its initialisation."""

    kind: str = ""
    """One of the task's model kinds (``"correction"``, ``"closure"``, ...); empty: the task's first."""
    seed: int = 0
    """Seed of the network initialisation."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The reference trajectories: how many, from which seeds, cached where."""

    train_samples: int = 32
    """Reference trajectories to train on."""
    eval_samples: int = 8
    """Held-out trajectories (other initial states) for evaluation and the target."""
    train_seed: int = 0
    """Seed of the training trajectories' initial states."""
    eval_seed: int = 1000
    """Seed of the held-out initial states; must differ from ``train_seed``."""
    cache_dir: str = "runs/data"
    """netCDF cache of the reference data, keyed by their configuration; empty: no cache."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The optimisation: steps, batch, unrolled loss, optimiser, logging and checkpoints."""

    steps: int = 600
    """Optimiser steps (the length of the learning-rate schedule)."""
    batch_size: int = 16
    """Trajectory windows per step, for one group (split over its ranks and devices)."""
    unroll: int = 16
    """Steps through the solver per loss (``nnpde.unrolled_loss``); at most 4096."""
    learning_rate: float = 3e-3
    """Initial (peak) learning rate of Adam."""
    schedule: str = "cosine"
    """Learning-rate schedule over ``steps`` (``nnpde.make_optimizer``)."""
    warmup_steps: int = 0
    """Steps of linear warm-up before the schedule."""
    clip_norm: float = 1.0
    """Global gradient-norm clipping."""
    noise: float = 0.0
    """Gaussian noise on the initial states, relative to their RMS (training to recover from errors)."""
    augment: bool = False
    """Add the task's symmetry images of the training trajectories (``Task.symmetries``)."""
    seed: int = 0
    """Seed of the batch order (and of the noise)."""
    log_every: int = 10
    """Steps between lines of ``metrics.jsonl``."""
    eval_every: int = 100
    """Steps between evaluations on the held-out trajectories."""
    checkpoint_every: int = 100
    """Steps between checkpoints (a run resumes from the last)."""
    stop_at_target: bool = False
    """Stop at the first evaluation at or below the task's target."""


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """The parallel layout under ``mpirun``: groups, their averaging, a split reference solver."""

    groups: int = 1
    """Groups the MPI ranks form; each trains synchronously, groups average asynchronously."""
    every: int = 4
    """Steps between cross-group averages."""
    max_staleness: int = 4
    """Steps an average may stay in flight (bounded mode: then it is waited for; wait-free: discarded)."""
    wait_free: bool = False
    """Never wait for an average (discard stale ones) instead of bounding the staleness by waiting."""
    progress: str = "thread"
    """How non-blocking averages progress: a helper thread, or one test per step (``"poll"``)."""
    max_rollbacks: int = 3
    """Rollbacks in a row (a group's non-finite or exploding parameters reset to its last good state)
    after which the group counts as diverged and the run stops with an error (exit code 4)."""
    domain: list[int] = dataclasses.field(default_factory=list)
    """Ranks per axis of the reference (fine-grid) solver while the data are staged: ``[]`` runs it
    whole in one process; ``[2, 1]`` splits its grid over 2 ranks along x (halo exchange; the
    product must be the number of MPI ranks)."""


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """``nnpde benchmark``: time to train to the task's target over several seeds."""

    seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1, 2, 3, 4])
    """One fresh run per seed; the fastest and slowest are dropped (at least 3, 5 to report)."""
    max_steps: int = 2000
    """Steps a run may take before it counts as not reaching the target."""
    eval_every: int = 20
    """Steps between evaluations (inside the clock)."""
    price_per_core_hour: float = 0.05
    """Declared price of a core-hour, for the derived cost."""
    price_unit: str = "USD per core-hour (declared, not measured)"
    """Unit of ``price_per_core_hour``, printed with the cost."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole run: the top-level keys and one section per table of the TOML file."""

    name: str = "burgers"
    """Run name."""
    out: str = ""
    """Results folder; empty: ``runs/<name>``."""
    precision: str = "float32"
    """Floating-point precision of the run."""
    problem: ProblemConfig = dataclasses.field(default_factory=ProblemConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)
    benchmark: BenchmarkConfig = dataclasses.field(default_factory=BenchmarkConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.name}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


# Range rules, checked after the types: (predicate, what it must be, an example fix).
_POSITIVE_INT = (lambda v: v >= 1, "a positive integer", "1 or more")
_NON_NEGATIVE = (lambda v: v >= 0 and math.isfinite(v), "zero or more (finite)", "0")
# JAX's PRNG keeps 32 bits of a seed in a float32 run: larger seeds would collide.
_SEED = (lambda v: 0 <= v < 2**32, "an integer from 0 to 2**32 - 1 (4294967295)", "e.g. 0")
_POSITIVE = (lambda v: v > 0 and math.isfinite(v), "a positive finite number", "e.g. 1e-3")
_RULES: dict[str, tuple] = {
    "data.train_samples": _POSITIVE_INT,
    "data.eval_samples": _POSITIVE_INT,
    "train.steps": _POSITIVE_INT,
    "train.batch_size": _POSITIVE_INT,
    "train.unroll": _POSITIVE_INT,
    "train.learning_rate": _POSITIVE,
    "train.warmup_steps": _NON_NEGATIVE,
    "train.clip_norm": _POSITIVE,
    "train.noise": _NON_NEGATIVE,
    "train.log_every": _POSITIVE_INT,
    "train.eval_every": _POSITIVE_INT,
    "train.checkpoint_every": _POSITIVE_INT,
    "distributed.groups": _POSITIVE_INT,
    "distributed.every": _POSITIVE_INT,
    "distributed.max_staleness": _NON_NEGATIVE,
    "distributed.max_rollbacks": _NON_NEGATIVE,
    "benchmark.max_steps": _POSITIVE_INT,
    "benchmark.eval_every": _POSITIVE_INT,
    "benchmark.price_per_core_hour": _NON_NEGATIVE,
    "model.seed": _SEED,
    "data.train_seed": _SEED,
    "data.eval_seed": _SEED,
    "train.seed": _SEED,
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "precision": ("float32", "float64"),
    "train.schedule": ("constant", "cosine", "exponential"),
    "distributed.progress": ("thread", "poll"),
}


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a table"}.get(
        tp, "a list of integers"
    )


def _check_type(key: str, value, tp, source: str):
    origin = typing.get_origin(tp)
    if origin in (list, types.GenericAlias) or tp == list[int]:
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return list(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, tp):
        return value
    hint = f" (quoted: write {key.rsplit('.', 1)[-1]} = {value} without quotes)" if isinstance(value, str) else ""
    raise ConfigError(
        f"{source}: {key} must be {_type_name(tp)}, got {value!r} ({type(value).__name__}){hint}. "
        f"Fix: give {key} {_type_name(tp)}."
    )


def _build(cls, table: dict, prefix: str, source: str, origins: dict[str, str]):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in table if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, fields, n=1)
        where = f"[{prefix[:-1]}]" if prefix else "the top level"
        did_you_mean = f"Did you mean {prefix}{close[0]}? " if close else ""
        raise ConfigError(
            f"{origins.get(prefix + key, source)}: unknown key {prefix}{key} in {where}. {did_you_mean}"
            f"Fix: use one of {sorted(fields)} there (remove or rename {prefix}{key})."
        )
    values = {}
    for name, value in table.items():
        key, tp = prefix + name, hints[name]
        where = origins.get(key, source)
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table (a section), got {value!r}.")
            values[name] = _build(tp, value, key + ".", source, origins)
            continue
        value = _check_type(key, value, tp, where)
        if key in _RULES:
            ok, what, example = _RULES[key]
            if not ok(value):
                raise ConfigError(f"{where}: {key} must be {what}, got {value!r}. Fix: set {key} to {example}.")
        if key == "benchmark.seeds" and not all(_SEED[0](v) for v in value):
            raise ConfigError(f"{where}: every seed of benchmark.seeds must be {_SEED[1]}, got {value!r}.")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(f"{where}: {key} must be one of {_CHOICES[key]}, got {value!r}.")
        values[name] = value
    return cls(**values)


def _merge(base: dict, key: str, value, source: str) -> None:
    *sections, last = key.split(".")
    table = base
    for i, section in enumerate(sections):
        if section == "options" and i > 0 and sections[i - 1] == "problem":
            # Problem options are free-form below this point (the task checks them).
            table = table.setdefault(section, {})
            rest = ".".join([*sections[i + 1 :], last])
            table[rest] = value
            return
        nxt = table.setdefault(section, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{source}: cannot set {key}: {'.'.join(sections[: i + 1])} is not a section.")
        table = nxt
    table[last] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.steps=200"`` -> ``("train.steps", 200)``; the value is read as TOML,
    and as a plain string when it is not valid TOML (``model.kind=closure``)."""
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value, got {text!r}. Fix: e.g. --set train.steps=200.")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not key:
        raise ConfigError(f"--set {text!r} has no key. Fix: e.g. --set train.steps=200.")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """The ``RunConfig`` of a TOML file (``None``: the defaults) with ``overrides``
    (``"section.key=value"`` strings) applied, validated. Raises ``ConfigError``, which
    names the override (``--set ...``) or the file that gave the refused value.

    ``path`` may be a run directory (or its ``config.toml``): that directory is then the
    run, whatever ``out`` its stored configuration names (a copied run directory acts on
    itself, not on the run it was copied from)."""
    table: dict = {}
    source = "defaults"
    run_dir = None
    if path is not None:
        source = str(path)
        p = Path(path)
        if p.is_dir():
            run_dir, p = p, p / "config.toml"
            source = str(p)
        elif p.name == "config.toml" and _is_run_directory(p.parent):
            run_dir = p.parent
        if not p.is_file():
            raise ConfigError(f"config file {source} does not exist. Fix: give the path of a TOML file.")
        try:
            table = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{source} is not valid TOML: {err}. Fix: correct the syntax there.") from None
    origins: dict[str, str] = {}
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        for i in range(1, len(parts)):  # a section the override brings in is the override's
            section, node = ".".join(parts[:i]), table
            for name in parts[:i]:
                node = node.get(name) if isinstance(node, dict) else None
            if node is None:
                origins.setdefault(section, f"--set {text}")
        _merge(table, key, value, f"--set {text}")
        origins[key] = f"--set {text}"
    config = _build(RunConfig, table, "", source, origins)

    def where(*keys):
        return next((origins[k] for k in keys if k in origins), source)

    if run_dir is not None:
        if "out" in origins and Path(config.out or f"runs/{config.name}").resolve() != run_dir.resolve():
            raise ConfigError(
                f"{origins['out']}: the run directory named on the command line is the run ({run_dir}), so out "
                f"cannot name another one ({config.out!r}). Fix: drop --set out=..., or copy the run directory "
                "there first and name the copy."
            )
        config = dataclasses.replace(config, out=str(run_dir))
    if config.train.unroll > 4096:
        raise ConfigError(
            f"{where('train.unroll')}: train.unroll = {config.train.unroll} is not a sensible unroll. Fix: <= 4096."
        )
    if config.train.warmup_steps and config.train.warmup_steps >= config.train.steps:
        raise ConfigError(
            f"{where('train.warmup_steps', 'train.steps')}: train.warmup_steps = {config.train.warmup_steps} is not "
            f"shorter than the training (train.steps = {config.train.steps}), so the learning rate would never "
            f"reach its peak. Fix: train.warmup_steps < {config.train.steps} (e.g. {config.train.steps // 10})."
        )
    if config.data.eval_seed == config.data.train_seed:
        raise ConfigError(
            f"{where('data.eval_seed', 'data.train_seed')}: data.eval_seed equals data.train_seed "
            f"({config.data.eval_seed}): the held-out trajectories would be the training ones. Fix: choose a "
            "different data.eval_seed."
        )
    if config.distributed.max_staleness > config.distributed.every and not config.distributed.wait_free:
        raise ConfigError(
            f"{where('distributed.max_staleness', 'distributed.every', 'distributed.wait_free')}: "
            f"distributed.max_staleness ({config.distributed.max_staleness}) > distributed.every "
            f"({config.distributed.every}) in bounded mode would deadlock. Fix: max_staleness <= every, or "
            "wait_free = true."
        )
    return config


def _is_run_directory(directory: Path) -> bool:
    """Whether ``directory`` holds a run (checkpoints or results beside its config)."""
    return (directory / "checkpoints").is_dir() or (directory / "train.json").is_file()


def check_writable(config: RunConfig, *, out: bool = True) -> None:
    """Refuse, before any work, a ``data.cache_dir`` (and with ``out``, a run directory)
    that cannot be written: a path through a file, or a directory without write
    permission. Nothing is created here."""
    paths = [("data.cache_dir", config.data.cache_dir)] if config.data.cache_dir else []
    if out:
        paths.append(("out", str(config.run_dir)))
    for key, value in paths:
        problem = _unwritable(Path(value))
        if problem:
            raise ConfigError(
                f"{key} = {value!r} cannot be written: {problem}. Fix: set {key} to a directory you can write "
                f"(--set {key}=...)."
            )


def _unwritable(path: Path) -> str | None:
    """Why ``path`` (a directory to create or write into) cannot be written; ``None`` if it can."""
    import os

    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable (no write permission)"
    return None


def check_domain(config: RunConfig, task, world_size: int) -> None:
    """Refuse a ``distributed.domain`` that the task's reference grid or the run's rank
    count cannot honour (before any work)."""
    dims = config.distributed.domain
    if not dims:
        return
    if task.reference_domain is None:
        raise ConfigError(
            f"distributed.domain = {dims}, but the reference solver of {config.problem.module} cannot run split "
            "over ranks (its task declares no reference_domain). Fix: remove distributed.domain (set it to [])."
        )
    shape = task.reference_domain[0].shape
    example = [world_size] + [1] * (len(shape) - 1)
    if len(dims) != len(shape) or any(d < 1 for d in dims):
        raise ConfigError(
            f"distributed.domain = {dims} must give a positive rank count for each of the reference grid's "
            f"{len(shape)} axes ({' x '.join(map(str, shape))}). Fix: e.g. domain = {example}."
        )
    if math.prod(dims) != world_size:
        raise ConfigError(
            f"distributed.domain = {dims} splits the reference grid over {math.prod(dims)} ranks, but the run has "
            f"{world_size}. Fix: launch mpirun -n {math.prod(dims)}, or a domain whose product is {world_size} "
            f"(e.g. {example}{'; [] for one process' if world_size == 1 else ''})."
        )
    for axis, (n, d) in enumerate(zip(shape, dims)):
        if n % d:
            fits = [k for k in range(1, world_size + 1) if n % k == 0 and world_size % k == 0]
            raise ConfigError(
                f"distributed.domain = {dims} does not split the reference grid "
                f"({' x '.join(map(str, shape))}) over the ranks: axis {axis} has {n} cells, not a multiple of {d}. "
                f"Fix: ranks along axis {axis} that divide {n} (here one of {fits}), or another resolution."
            )


def check_layout(config: RunConfig, world_size: int, devices_per_rank: int = 1) -> None:
    """Refuse a parallel layout that does not fit the configuration (before any work)."""
    groups = config.distributed.groups
    if world_size % groups:
        raise ConfigError(
            f"distributed.groups = {groups} does not divide the {world_size} MPI ranks. Fix: launch a multiple "
            f"of {groups} ranks (mpirun -n {groups * max(1, world_size // groups)}) or set distributed.groups to "
            f"a divisor of {world_size}."
        )
    replicas = (world_size // groups) * devices_per_rank
    if config.train.batch_size % replicas:
        raise ConfigError(
            f"train.batch_size = {config.train.batch_size} does not split over the {replicas} replicas of a group "
            f"({world_size // groups} ranks x {devices_per_rank} devices). Fix: a multiple of {replicas}."
        )


def parse_overrides(pairs, *, prog: str = "nnpde") -> dict:
    """``["key=value", ...]`` from ``--set`` options -> ``{key: value}``: each value a
    Python literal where it reads as one (``64``, ``'busy'``, ``[1, 2]``), else the
    text itself. A pair without ``=`` stops the program with a clear message."""
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"{prog}: --set expects key=value, got {pair!r}. Example: --set resolution=64")
        key, raw = pair.split("=", 1)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        options[key.strip()] = value
    return options
