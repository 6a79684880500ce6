"""Plumbing of the scale-model campaign: JSON written atomically, the machine record,
launching ``mpirun`` runs and workers (killed as a process group on a timeout), the
per-part cache, and ``scripts/benchmark_distributed.py``'s options."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from scripts.scale.settings import BENCH, ROOT, SCRIPT


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default))
    tmp.replace(path)


def _json_default(value):
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _machine() -> dict:
    from importlib import metadata

    versions = {}
    for name in ("jax", "mpi4py", "mpi4jax", "mpich", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": memory,
        "load_average": os.getloadavg(),
        "software": versions,
    }


def _cpu_model() -> str | None:
    """The processor's model name (``/proc/cpuinfo``): a VM may land on other hardware
    from one day to the next, and timings of different processors must not be mixed."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machines_of(parts: dict) -> dict:
    """Each loaded part's processor (``None`` where its record predates ``cpu_model``);
    a ``SystemExit`` when two known ones differ: the model must not combine timings of
    different processors."""
    models = {name: (part.get("machine") or {}).get("cpu_model") for name, part in parts.items() if part}
    known = {m for m in models.values() if m}
    if len(known) > 1:
        raise SystemExit(
            f"the parts were measured on different processors: {models}. Timings of different machines cannot be "
            "combined. Fix: run the timed parts again on one machine (--part P --force)."
        )
    return models


def _env() -> dict:
    """Every launched run's environment: oversubscribed ranks yield; CPU unless told
    otherwise; one persistent compilation cache (a run that compiles what an earlier
    one did starts sooner; no timed step includes compilation)."""
    env = dict(os.environ, MPIR_CVAR_ENABLE_HEAVY_YIELD="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / "runs" / "scale_model_jax_cache"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    return env


def _mpirun(args) -> str:
    return args.mpirun or str(Path(sys.executable).parent / "mpirun")


def _run(command, *, timeout, env=None) -> dict:
    """Run ``command`` in its own process group; on timeout kill that group (mpirun and
    every rank it started). Returns exit code, seconds, output tail, timed_out."""
    print("  $ " + " ".join(command), flush=True)
    began = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    return {
        "returncode": proc.returncode,
        "seconds": time.perf_counter() - began,
        "timed_out": timed_out,
        "ended": time.time(),
        "output_tail": (output or "")[-3000:],
        "command": " ".join(command),
    }


def _launch_worker(args, n, worker, settings, *, timeout, extra=()):
    """``mpirun -n n`` (or one process for n = 0) of a worker of this script or of
    benchmark_distributed (``worker`` a list of its arguments); its result JSON."""
    result = Path(args.out_dir) / "tmp" / f"{os.getpid()}_{time.monotonic_ns()}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(worker, str):
        command = [sys.executable, str(SCRIPT), "--worker", worker, "--settings", json.dumps(settings)]
    else:
        command = [sys.executable, str(BENCH), *worker]
    command += [*extra, "--result", str(result)]
    if n:
        command = [_mpirun(args), "-n", str(n), *command]
    done = _run(command, timeout=timeout)
    if done["returncode"] != 0 or not result.exists():
        raise RuntimeError(f"worker failed (exit {done['returncode']}): {done['command']}\n{done['output_tail']}")
    out = json.loads(result.read_text())
    result.unlink()
    out["launch"] = {k: done[k] for k in ("command", "seconds")}
    return out


def _cached(path: Path, force: bool, make):
    """``make()``'s result, stored at ``path``; read back when present unless ``force``."""
    if path.exists() and not force:
        print(f"  cached: {path}", flush=True)
        return json.loads(path.read_text())
    began = time.perf_counter()
    result = make()
    result["seconds"] = time.perf_counter() - began
    _write_json(path, result)
    return result


def _bench():
    """scripts/benchmark_distributed.py as a module (its workers, hook and fit)."""
    from scripts import benchmark_distributed

    return benchmark_distributed


def _bench_args(settings, **extra):
    """The argument namespace benchmark_distributed's helpers read."""
    model = settings["model"]
    return argparse.Namespace(
        seed=extra.pop("seed", 0),
        data_seed=model["data_seed"],
        train=model["train"],
        test=model["test"],
        data=model["data"],
        hidden=model["hidden"],
        unroll=model["unroll"],
        learning_rate=model["learning_rate"],
        **extra,
    )


def _options(**options) -> list[str]:
    """Command-line options: ``_options(eval_every=5)`` is ``["--eval-every", "5"]``."""
    return [x for key, value in options.items() for x in (f"--{key.replace('_', '-')}", str(value))]


def _bench_shared(model) -> list[str]:
    """benchmark_distributed's model and data options."""
    return _options(
        **{k: model[k] for k in ("hidden", "unroll", "learning_rate", "train", "test", "data_seed", "data")}
    )


def _staleness_mean(stats) -> float | None:
    """The mean staleness over several ``AsyncAverager.stats`` (weighted by their counts)."""
    counted = [a for a in stats if a and a.get("staleness_count")]
    if not counted:
        return None
    return sum(a["staleness_mean"] * a["staleness_count"] for a in counted) / sum(a["staleness_count"] for a in counted)


def _spread(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {
        "count": int(v.size),
        "median": float(np.median(v)),
        "mean": float(v.mean()),
        "min": float(v.min()),
        "max": float(v.max()),
        "p10": float(np.quantile(v, 0.1)),
        "p90": float(np.quantile(v, 0.9)),
        "p99": float(np.quantile(v, 0.99)),
        "std": float(v.std()),
    }


# the parts a report holds in full, and how to rebuild each part's cache from it
RESTORABLE = {
    "convergence": lambda report: report["convergence"],
    "functional": lambda report: {"runs": report["functional_runs"], "failures": report["failure_runs"]},
}


def restore_from_report(report_path: Path, out_dir: Path) -> list[str]:
    """Rebuild the caches of the long measured parts (``RESTORABLE``: convergence,
    functional; 100 minutes of runs) from a report this script wrote, so that the quick
    parts can be measured again on a fresh machine and validated against the committed
    runs. A cache that exists is never overwritten. Returns the parts restored."""
    report = json.loads(Path(report_path).read_text())
    done = []
    for part, rebuild in RESTORABLE.items():
        path = Path(out_dir) / f"{part}.json"
        if path.exists():
            continue
        try:
            result = rebuild(report)
        except (KeyError, TypeError):
            raise SystemExit(
                f"--from-report {report_path}: it holds no {part} part. Fix: a report of --part report."
            ) from None
        if not result or (part == "functional" and not result["runs"]):
            raise SystemExit(f"--from-report {report_path}: its {part} part is empty. Fix: a full campaign's report.")
        result = dict(result, restored_from=str(report_path), restored_on=time.strftime("%Y-%m-%d %H:%M:%S"))
        result.setdefault("settings", (report.get("settings") or {}).get(part))
        result.setdefault("command", (report.get("part_commands") or {}).get(part))
        _write_json(path, result)
        done.append(part)
    return done
