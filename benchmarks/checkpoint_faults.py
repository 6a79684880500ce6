"""Fault injection on training checkpoints: kill -9 at random moments, flipped bits,
truncated files; counts silent corruptions and lost runs.

    PYTHONPATH=. .venv/bin/python benchmarks/checkpoint_faults.py --trials 300

A reference run trains a small hybrid Burgers model (a learned correction of a 16-cell
solver by a convolutional network of ``--hidden`` channels) for ``--steps`` steps with
``nnpde.fit``, checkpointing every 2 steps (orbax, the 3 newest kept). Each trial
then faults a copy of a run and trains it to the end again, the way a user would
(``fit`` on the same run directory), and compares the final state with the
reference's bit for bit (read back with orbax directly, not through the checksums
under test). The trials, in turn:

- ``kill``: a training process killed with SIGKILL while a checkpoint is being
  written (a temporary directory exists; 4 kills in 10), inside a random step (5 in
  10) or during start-up; every other kill hits a run resumed half-way;
- ``flip``: 1 to 8 random bits flipped in one file of a checkpoint of a run stopped
  half-way (the newest step 2 times in 3; a data file half the time, else any file);
- ``truncate``: the same, the file cut to a random length.

Outcomes: ``resumed`` (finished, equal to the reference), ``fell back`` (a corrupt step
was named and skipped; finished, equal), ``stopped with fix`` (no intact checkpoint:
stopped with a message holding the fix, which the trial then applies; finished,
equal), ``silent corruption`` (finished without a word, but not equal to the reference)
and ``lost`` (anything else: a crash without a fix, a hang, a mismatch after the fix).
The report (``--out``, JSON) holds every trial.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


HIDDEN = 48  # channels of the network's hidden layers (--hidden)


def _setup():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import nnpde
    from nnpde import networks
    from solvers.burgers import Burgers

    jax.config.update("jax_enable_x64", True)
    grid = nnpde.Grid((16,), extent=((0.0, 2 * math.pi),))
    stepper = nnpde.ExplicitRK(
        Burgers(grid, nnpde.BoundaryConditions.periodic(1), viscosity=0.05, scheme="van_leer"),
        dt=0.02,
        method="ssprk3",
    )
    x = (jnp.arange(16) + 0.5) * 2 * math.pi / 16
    data = jnp.stack(
        [nnpde.rollout(stepper, (jnp.sin(x + p) + 0.3 * jnp.cos(2 * x))[None], 6, include_init=True) for p in (0, 1, 2)]
    )

    def model():
        net = networks.ConvNet(1, 1, ndim=1, periodic=(True,), hidden=HIDDEN, depth=2, kernel_size=3, rngs=nnx.Rngs(1))
        return nnpde.CorrectedStepper(stepper, nnpde.Network(net), scale=0.02)

    return model, data


def train(run_dir, steps: int):
    """Train (resuming from ``run_dir``'s checkpoints) to ``steps``; the final state."""
    import nnpde

    model, data = _setup()
    return nnpde.fit(
        model(),
        lambda m, b, k: nnpde.unrolled_loss(m, b),
        data + 0.01,
        steps=steps,
        batch_size=2,
        window=3,
        seed=11,
        run_dir=run_dir,
        checkpoint_every=2,
        log_every=1,
        optimizer=nnpde.make_optimizer(1e-2, clip_norm=1.0),
        progress=False,
    ).state


def final_arrays(run_dir: Path) -> dict:
    """The arrays of the newest checkpoint, read by orbax alone (no checksums)."""
    import numpy as np
    import orbax.checkpoint as ocp

    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    with ocp.StandardCheckpointer() as reader:
        arrays = reader.restore((run_dir / "checkpoints" / str(steps[-1]) / "arrays").resolve())
    return steps[-1], {k: np.asarray(v) for k, v in arrays.items()}


def _equal(a: dict, b: dict) -> bool:
    import numpy as np

    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _resume(run_dir: Path, steps: int) -> tuple[str, str]:
    """Train ``run_dir`` to the end in this process: ``(status, stderr)`` with status
    ``ok``, or ``error: <message>``."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            train(run_dir, steps)
            return "ok", err.getvalue()
        except Exception as error:  # classified by the caller
            return f"error: {type(error).__name__}: {error}", err.getvalue()


def _outcome(run_dir: Path, steps: int, reference: dict) -> dict:
    status, stderr = _resume(run_dir, steps)
    fix_applied = False
    if status.startswith("error") and "Fix:" in status and "is corrupt" in status:
        shutil.move(run_dir / "checkpoints", run_dir / "checkpoints.corrupt")  # the fix the message gives
        fix_applied = True
        status, more = _resume(run_dir, steps)
        stderr += more
    if status != "ok":
        return {"outcome": "lost", "status": status[:400]}
    step, arrays = final_arrays(run_dir)
    if step != steps or not _equal(arrays, reference):
        return {"outcome": "silent corruption" if not fix_applied else "lost", "final_step": step}
    if fix_applied:
        return {"outcome": "stopped with fix"}
    return {"outcome": "fell back" if "is corrupt" in stderr else "resumed", "note": stderr.strip()[:300]}


def _kill_trial(rng: random.Random, base: Path, work: Path, steps: int, reference: dict, duration: float) -> dict:
    run_dir = work / "run"
    shutil.copytree(base, run_dir) if base.exists() else None
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--hidden", str(HIDDEN), "--worker", str(run_dir), str(steps)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    moment = rng.random()
    mode = "mid_write" if moment < 0.4 else ("at_step" if moment < 0.9 else "start_up")
    at_step = rng.randint(1, steps)
    began = time.perf_counter()
    deadline = began + (rng.uniform(0.0, duration) if mode == "start_up" else 3 * duration)
    seen_tmp = False
    metrics, checkpoints = run_dir / "metrics.jsonl", run_dir / "checkpoints"
    while proc.poll() is None and time.perf_counter() < deadline:
        if mode == "mid_write" and checkpoints.is_dir() and any("tmp" in p.name for p in checkpoints.iterdir()):
            seen_tmp = True
            break
        if mode == "at_step" and metrics.is_file() and _last_step(metrics) >= at_step:
            time.sleep(rng.uniform(0.0, 0.05))  # somewhere inside the next step
            break
        time.sleep(0.0005)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = _outcome(run_dir, steps, reference)
    return {
        **result,
        "killed": killed,
        "mode": mode,
        "mid_write": seen_tmp,
        "after_s": round(time.perf_counter() - began, 2),
    }


def _last_step(metrics: Path) -> int:
    lines = metrics.read_text().splitlines()
    try:
        return json.loads(lines[-1])["step"] if lines else 0
    except (json.JSONDecodeError, KeyError):
        return 0


def _corrupt_trial(rng: random.Random, half: Path, work: Path, steps: int, reference: dict, kind: str) -> dict:
    run_dir = work / "run"
    shutil.copytree(half, run_dir)
    step_dirs = sorted((p for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    target_step = step_dirs[-1] if rng.random() < 2 / 3 else rng.choice(step_dirs)  # mostly the one resumed from
    files = sorted(p for p in target_step.rglob("*") if p.is_file() and p.stat().st_size > 0)
    # Half the faults hit the data files (arrays/**/d/*: small arrays are merged into
    # arrays/d, large ones stay in the per-process files), half any file.
    data = [p for p in files if p.parent.name == "d"]
    target = rng.choice(data if data and rng.random() < 0.5 else files)
    data = bytearray(target.read_bytes())
    if kind == "flip":
        bits = [rng.randrange(len(data) * 8) for _ in range(rng.randint(1, 8))]
        for bit in bits:
            data[bit // 8] ^= 1 << (bit % 8)
        detail = {"bits": len(bits)}
    else:
        cut = rng.randrange(len(data))
        data = data[:cut]
        detail = {"cut_to": cut}
    target.write_bytes(bytes(data))
    result = _outcome(run_dir, steps, reference)
    return {**result, "step": int(target_step.name), "file": str(target.relative_to(target_step)), **detail}


def main() -> None:
    global HIDDEN
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300, help="fault trials (kill, flip, truncate in turn)")
    parser.add_argument("--steps", type=int, default=12, help="training steps of a run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=HIDDEN, help="hidden channels of the network (its size)")
    parser.add_argument("--kinds", default="kill,flip,truncate", help="faults to inject, in turn")
    parser.add_argument("--out", default="benchmarks/results/checkpoint_faults.json")
    parser.add_argument(
        "--log",
        default="runs/checkpoint_faults/trials.jsonl",
        help="every finished trial is appended here; a run started again skips the trials it holds",
    )
    parser.add_argument("--worker", nargs=2, metavar=("RUN_DIR", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    HIDDEN = args.hidden
    if args.worker:
        train(Path(args.worker[0]), int(args.worker[1]))
        return

    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line) if line.strip() else None
            if entry and (entry.get("seed"), entry.get("steps"), entry.get("hidden")) == (
                args.seed,
                args.steps,
                HIDDEN,
            ):
                done[entry["trial"]] = entry
    scratch = Path(tempfile.mkdtemp(prefix="nnpde-faults-"))
    began = time.perf_counter()
    subprocess.run(  # one process start and compilation, to time what a kill may interrupt
        [sys.executable, __file__, "--hidden", str(HIDDEN), "--worker", str(scratch / "timed"), str(args.steps)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"},
        check=True,
    )
    duration = time.perf_counter() - began
    train(scratch / "reference", args.steps)
    _, reference = final_arrays(scratch / "reference")
    train(scratch / "half", args.steps // 2)  # checkpoints at 2, 4, ..., steps/2 (the 3 newest kept)

    kinds = args.kinds.split(",")
    trials = []
    for i in range(args.trials):
        kind = kinds[i % len(kinds)]
        if i in done and done[i]["kind"] == kind:
            trials.append(done[i])
            continue
        rng = random.Random(f"{args.seed}-{i}")  # each trial its own stream: a resumed run draws the same faults
        work = scratch / f"trial{i}"
        work.mkdir()
        if kind == "kill":
            # every other kill starts from the half-way run, so kills land in resumed runs too
            base = scratch / "half" if (i // len(kinds)) % 2 else scratch / "none"
            result = _kill_trial(rng, base, work, args.steps, reference, duration)
        else:
            result = _corrupt_trial(rng, scratch / "half", work, args.steps, reference, kind)
        trials.append({"trial": i, "kind": kind, "seed": args.seed, "steps": args.steps, "hidden": HIDDEN, **result})
        shutil.rmtree(work)
        print(json.dumps(trials[-1]), flush=True)
        with log.open("a") as f:
            f.write(json.dumps(trials[-1]) + "\n")

    counts = {}
    for t in trials:
        key = f"{t['kind']}: {t['outcome']}"
        counts[key] = counts.get(key, 0) + 1
    report = {
        "command": " ".join(["benchmarks/checkpoint_faults.py", *sys.argv[1:]]),
        "trials": len(trials),
        "detected_by_checksum": sum("sha256" in t.get("note", "") for t in trials),
        "silent_corruptions": sum(t["outcome"] == "silent corruption" for t in trials),
        "lost_runs": sum(t["outcome"] == "lost" for t in trials),
        "kills_mid_write": sum(bool(t.get("mid_write")) for t in trials),
        "outcomes": dict(sorted(counts.items())),
        "seconds": round(time.perf_counter() - began, 1),
        "trial_log": trials,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    shutil.rmtree(scratch)
    print(json.dumps({k: v for k, v in report.items() if k != "trial_log"}, indent=2))


if __name__ == "__main__":
    main()
