"""The functional part: ``nnpde train`` at 16 and 32 ranks with every group count,
and failing ranks (killed or raising) with the time until every rank has exited."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from scripts.scale.common import _cached, _mpirun, _run, _staleness_mean
from scripts.scale.settings import CONFIG, ROOT, SCRIPT


def part_functional(args, settings):
    s = settings["functional"]
    base = Path(args.out_dir) / "functional"
    runs = []
    for ranks in s["ranks"]:
        for groups in s["groups"]:
            if ranks % groups:
                continue
            label = f"n{ranks}_g{groups}"
            print(f"[functional] {label}", flush=True)
            run = _cached(base / f"{label}.json", args.force, lambda r=ranks, g=groups: _functional_run(args, s, r, g))
            runs.append(dict(run, group_start_seconds=_group_starts(base / label / "run", groups)))
    failures = []
    for case in s["failures"]:
        label = f"fail_{case['mode']}_n{case['ranks']}_g{case['groups']}"
        print(f"[functional] {label}", flush=True)
        failures.append(_cached(base / f"{label}.json", args.force, lambda c=case: _failure_run(args, s, c)))
    return {
        "config": str(CONFIG.relative_to(ROOT)),
        "note": f"{os.cpu_count()} cores: every run here is oversubscribed; the group allreduce inside the jitted step "
        "(mpi4jax) is not timed by nnpde train: mpi_seconds is the averager's main-thread MPI time, finish_seconds "
        "its final average.",
        "runs": runs,
        "failures": failures,
    }


def _train_command(args, s, ranks, groups, run_dir, rank_dir, failure=None):
    wrapper = {"dir": str(rank_dir), "watch": str(run_dir), "failure": failure}
    sets = {
        "out": f'"{run_dir}"',
        "train.steps": s["steps"],
        "train.batch_size": s["rank_batch"] * ranks // groups,
        "train.eval_every": s["steps"],
        "train.checkpoint_every": s["steps"],
        "distributed.groups": groups,
        **s["config_sets"],
    }
    command = [_mpirun(args), "-n", str(ranks), sys.executable, str(SCRIPT), "--worker", "rank"]
    command += ["--settings", json.dumps(wrapper), "--", "train", str(CONFIG), "--no-progress", "--no-evaluate"]
    return command + [x for key, value in sets.items() for x in ("--set", f"{key}={value}")]


def _functional_run(args, s, ranks, groups) -> dict:
    import shutil

    root = Path(args.out_dir) / "functional" / f"n{ranks}_g{groups}"
    shutil.rmtree(root, ignore_errors=True)
    run_dir, rank_dir = root / "run", root / "ranks"
    done = _run(_train_command(args, s, ranks, groups, run_dir, rank_dir), timeout=s["timeout"])
    summary_path = run_dir / "train.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    resident = _resident(rank_dir, ranks)
    groups_stats = (summary or {}).get("averaging", {}).get("groups", [])
    steady = _steady_from_metrics(run_dir, s["skip_steps"])
    return {
        "ranks": ranks,
        "groups": groups,
        "ranks_per_group": ranks // groups,
        "batch_per_group": s["rank_batch"] * ranks // groups,
        "steps": s["steps"],
        "finished": done["returncode"] == 0 and summary is not None,
        "returncode": done["returncode"],
        "timed_out": done["timed_out"],
        "seconds": done["seconds"],
        "train_seconds": (summary or {}).get("seconds"),
        "resident_mib_per_rank": resident,
        "resident_mib_max": max(resident) if resident and None not in resident else None,
        "resident_mib_total": sum(resident) if resident and None not in resident else None,
        "averaging": {k: v for k, v in (summary or {}).get("averaging", {}).items() if k != "groups"} or None,
        "averages_completed": int(sum(g["completed"] for g in groups_stats)),
        "averages_started": int(sum(g["started"] for g in groups_stats)),
        "averages_discarded": int(sum(g["discarded_stale"] for g in groups_stats)),
        "staleness_mean": _staleness_mean(groups_stats),
        "staleness_max": max(
            (g["staleness_max"] for g in groups_stats if g["staleness_max"] is not None), default=None
        ),
        "mpi_seconds_per_leader": [g["mpi_seconds"] for g in groups_stats],
        "finish_seconds_per_leader": [g["finish_seconds"] for g in groups_stats],
        "mpi_time_coverage": "AsyncAverager (main-thread MPI in after_step, finish); the group allreduce inside the "
        "jitted step (mpi4jax) is not timed by nnpde train",
        "steady_step_seconds": steady,
        "horizon_error": (summary or {}).get("horizon_error"),
        "command": done["command"],
        "output_tail": done["output_tail"] if done["returncode"] else done["output_tail"][-600:],
    }


def _resident(rank_dir: Path, ranks: int) -> list:
    out = []
    for r in range(ranks):
        path = rank_dir / f"rank{r}.json"
        if not path.exists():
            out.append(None)
            continue
        data = json.loads(path.read_text())
        kib = data["vm_hwm_kib"] or data["ru_maxrss_kib"]
        out.append(round(kib / 1024, 1))
    return out


def _leader_steps(run_dir: Path) -> dict:
    """``{group index: the training-step records (step, time, loss) of its leader's
    metrics.jsonl}`` (group 0's file is the run's own)."""
    out = {}
    for path in sorted(run_dir.rglob("metrics.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        group = int(path.parent.name[5:]) if path.parent.name.startswith("group") else 0
        out[group] = [r for r in records if "step" in r and "time" in r and "loss" in r]
    return out


def _steady_from_metrics(run_dir: Path, skip: int) -> dict | None:
    """Median seconds per step of each group leader's metrics.jsonl (logged every step),
    the first ``skip`` logged steps left out."""
    per_group = {}
    for group, records in sorted(_leader_steps(run_dir).items(), key=lambda item: f"group{item[0]}"):
        steps = np.array([r["step"] for r in records])[skip:]
        times = np.array([r["time"] for r in records])[skip:]
        if steps.size >= 2:
            per_group[f"group{group}"] = float(np.median(np.diff(times) / np.diff(steps)))
    return per_group or None


def _group_starts(run_dir: Path, groups: int) -> list | None:
    """Each group's first logged step (its leader's metrics.jsonl), in seconds after the
    earliest group's: the skew of groups that compile and stage their data one after
    another on the shared cores. ``None`` without every group's log."""
    first = {g: float(records[0]["time"]) for g, records in _leader_steps(run_dir).items() if records}
    if sorted(first) != list(range(groups)):
        return None
    earliest = min(first.values())
    return [first[g] - earliest for g in range(groups)]


def _failure_run(args, s, case) -> dict:
    import shutil

    root = Path(args.out_dir) / "functional" / f"fail_{case['mode']}_n{case['ranks']}_g{case['groups']}"
    shutil.rmtree(root, ignore_errors=True)
    run_dir, rank_dir = root / "run", root / "ranks"
    failure = {k: case[k] for k in ("rank", "mode", "after_step")}
    command = _train_command(
        args,
        dict(s, steps=max(s["steps"], 4 * case["after_step"])),
        case["ranks"],
        case["groups"],
        run_dir,
        rank_dir,
        failure,
    )
    done = _run(command, timeout=s["failure_timeout"])
    failed = rank_dir / "failure.json"
    at = json.loads(failed.read_text()) if failed.exists() else None
    after = done["ended"] - at["time"] if at else None
    tail = done["output_tail"]
    return {
        **case,
        "ranks_per_group": case["ranks"] // case["groups"],
        "failure_injected": at is not None,
        "step_seen_at_failure": at and at["step_seen"],
        "returncode": done["returncode"],
        "all_ranks_exited_with_error": done["returncode"] != 0 and not done["timed_out"],
        "timed_out": done["timed_out"],
        "timeout_seconds": s["failure_timeout"],
        "seconds_total": done["seconds"],
        "seconds_from_failure_to_exit": after,
        "bounded": at is not None and not done["timed_out"],
        "aborted_by_mpi_abort": "aborting all" in tail,
        "command": done["command"],
        "output_tail": tail[-1500:],
    }
