"""The scale-model campaign's settings: the task (``MODEL``), every part's full
(``FULL``) and cut-down (``TINY``) settings, and ``--set`` overrides."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "scale_model.py"  # the launcher: parts run its workers
BENCH = ROOT / "scripts" / "benchmark_distributed.py"
CONFIG = ROOT / "scripts" / "configs" / "scale_functional.toml"
PARTS = (
    "collectives",
    "averager",
    "compute",
    "sharing",
    "rounds",
    "convergence",
    "functional",
    "validate",
    "report",
    "tables",
)
MEASURED = PARTS[: PARTS.index("report")]  # the parts whose results are cached
KIB, MIB = 1024, 1024**2

# The task: benchmark_distributed's hybrid Burgers correction (its defaults).
MODEL = {"hidden": 8, "unroll": 8, "learning_rate": 3e-3, "train": 32, "test": 8, "data_seed": 0, "data": "runs/data"}


FULL = {
    "collectives": {
        "ranks": [2, 4, 8, 16],
        "nbytes": [KIB * 4**k for k in range(9)],  # 1 KiB .. 64 MiB
        "repetitions": 20,
        "large_repetitions": 5,  # from large_from bytes on
        "large_from": 4 * MIB,
        "warmup": 2,
        "timeout": 1800,
    },
    "averager": {
        "batch": 8,
        "steps": 300,
        "warmup": 20,
        "exchange_repeats": 50,
        "timeout": 1800,
    },
    "compute": {
        "batches": [1, 2, 4, 8],
        "main_batch": 8,
        "steps": 300,  # at main_batch
        "short_steps": 120,  # at the other batches
        "warmup": 20,
        "straggler_probability": 0.05,
        "straggler_slowdown": 3.0,  # the straggling step takes this x the median step
        "timeout": 1800,
    },
    "sharing": {
        "ranks": [2, 4, 8, 16],  # the rank counts of the measured runs
        "grouped": [[16, 16], [16, 8], [16, 4], [16, 2]],  # [ranks, ranks per group] of the 16-rank layouts
        # the same groups running the synchronous training step itself (mpi4jax allreduces inside)
        "grouped_in_step": [[16, 16], [16, 8], [16, 4], [16, 2]],
        "batch": 1,  # one sample per rank: the convergence and functional runs'
        "steps": 400,
        "warmup": 20,
        "timeout": 1800,
    },
    "rounds": {
        "ranks": 16,
        "groups": [2, 4, 8, 16],
        "every": 4,  # none of the convergence part's periods (2, 8)
        "staleness_factor": 2,
        "total_batch": 16,
        "steps": 400,
        # 16 groups resolved one round per leader in 400 steps (2.8 s after the last start; 405 ms in
        # a 200-step check): one round is not a rate, so they train long enough for several
        "steps_by_groups": {"16": 2000},
        "warmup": 20,
        "timeout": 1800,
    },
    "convergence": {
        "ranks": 16,
        "groups": [1, 2, 4, 8, 16],
        "every": [2, 8],  # averaging periods: (1 + 4 group counts x 2 periods) x 3 seeds = 27 runs, ~80 min
        "staleness_factor": 2,  # max_staleness = this x every (wait-free)
        "seeds": [0, 1, 2],
        "total_batch": 16,
        "steps": 300,
        "eval_every": 5,
        "warmup": 20,
        "target_factor": 0.5,
        "timeout": 3600,
    },
    "functional": {
        "ranks": [16, 32],
        "groups": [1, 2, 4, 8, 16],
        "rank_batch": 1,
        "steps": 60,
        "config_sets": {},  # further --set overrides of the config
        "skip_steps": 5,  # first logged steps left out of the steady step time (compilation)
        "timeout": 1800,
        "failures": [
            {"ranks": 16, "groups": 4, "rank": 5, "mode": "kill", "after_step": 10},
            {"ranks": 16, "groups": 4, "rank": 5, "mode": "raise", "after_step": 10},
        ],
        "failure_timeout": 300,
    },
    "validate": {"flag": 0.25},
    "report": {
        "node_counts": [1, 4, 16, 64, 256, 1024, 4096, 10000],
        # strong scaling of one large-batch setting: 2^14 samples per step, >= 1 per node up to 10^4 nodes;
        # the local batch 16384 / N crosses the measured t0 / t1 (4.8 samples) near 3400 nodes
        "global_batch": 16384,
        "group_counts": [2, 4, 8, 16, 32, 64, 128],
        "every": 4,
        "max_staleness": 8,
        "wait_free": True,
        "interconnects": ["cray_aries_cori", "infiniband_hdr", "infiniband_ndr"],
    },
}


TINY = {
    "collectives": {"ranks": [2], "nbytes": [KIB, 16 * KIB, 256 * KIB], "repetitions": 5, "timeout": 120},
    "averager": {"steps": 20, "warmup": 2, "exchange_repeats": 10, "timeout": 300},
    "compute": {"batches": [1, 2], "main_batch": 2, "steps": 40, "short_steps": 15, "warmup": 3, "timeout": 300},
    "sharing": {
        "ranks": [2],
        "grouped": [[2, 2]],
        "grouped_in_step": [[2, 2]],
        "batch": 1,
        "steps": 30,
        "warmup": 3,
        "timeout": 300,
    },
    "rounds": {"ranks": 2, "groups": [2], "every": 2, "steps": 40, "warmup": 2, "total_batch": 2, "timeout": 300},
    "convergence": {
        "ranks": 2,
        "groups": [1, 2],
        "every": [4],
        "seeds": [0],
        "total_batch": 2,
        "steps": 10,
        "eval_every": 5,
        "warmup": 2,
        "target_factor": 1.5,  # met at the first evaluation
        "timeout": 300,
    },
    "functional": {
        "ranks": [2],
        "groups": [2],
        "steps": 6,
        "config_sets": {"data.train_samples": 4, "data.eval_samples": 2},
        "skip_steps": 1,
        "timeout": 300,
        "failures": [
            {"ranks": 2, "groups": 2, "rank": 1, "mode": "kill", "after_step": 2},
            {"ranks": 2, "groups": 2, "rank": 1, "mode": "raise", "after_step": 2},
        ],
        "failure_timeout": 120,
    },
    "report": {
        "node_counts": [1, 4, 16],
        "global_batch": 64,
        "group_counts": [2, 4],
        "interconnects": ["infiniband_hdr"],
    },
}


TINY_MODEL = {"train": 4, "test": 2}


def _settings(args) -> dict:
    """Per-part settings: FULL, then TINY with --tiny, then --set overrides."""
    settings = {part: dict(FULL.get(part, {})) for part in PARTS}
    settings["model"] = dict(MODEL, **(TINY_MODEL if args.tiny else {}))
    if args.tiny:
        for part, values in TINY.items():
            settings[part].update(values)
    for item in args.set:
        key, _, value = item.partition("=")
        part, _, name = key.partition(".")
        if part not in settings or not name or not value:
            raise SystemExit(f"--set {item!r}: expected part.key=JSON with part one of {sorted(settings)}.")
        try:
            settings[part][name] = json.loads(value)
        except json.JSONDecodeError:
            settings[part][name] = value
    return settings
