"""The Kolmogorov ladder's data and training on an accelerator, in one prepared run.

What ``scripts/kolmogorov_ladder.py --part train`` and ``--part model`` do on the CPU,
sized for a GPU and a fixed wall-time budget:

1. the 256^2 training data (the same seeds and pipeline, ``problems.kolmogorov_ladder``;
   with ``--extra-seeds N`` N more runs, trained on before the ladder's), timed;
2. the cost of the plain solvers (32^2 .. 512^2) and of the learned models on this
   device (seconds per simulated time unit per trajectory, 16 trajectories batched);
3. several learned 32^2 models trained side by side, one process each sharing the
   device: each first times its own optimiser steps, then trains for as many steps as
   the budget leaves (cosine schedule to the last step), checkpointed and resumable.

It writes a report (JSON) and one archive per trained run directory, which
``scripts/kolmogorov_ladder.py --part evaluate --models KIND:HIDDEN:DEPTH:TAG`` scores
against the 512^2 truth once unpacked into ``--out`` on the machine that holds it.

    python scripts/kolmogorov_ladder_accelerator.py --budget 540 --report OUT/report.json \\
        --archives OUT --models interpolation:64:6 interpolation:32:4 correction:32:4
    python scripts/kolmogorov_ladder_accelerator.py --budget 540 --extra-seeds 32 --augment --multiple 2 \\
        --hold 2 --head 1 --window 8 --learning-rate 3e-3 --models interpolation_velocity:64:6 ...  # the CPU recipe
    python scripts/kolmogorov_ladder_accelerator.py --budget 540 ... --base central --learning-rate 3e-4 \
        --spectrum-weight 3 --init-from m2h2k1w8lr3s2000augx32central --tag ft  # fine-tune a published model
    python scripts/kolmogorov_ladder_accelerator.py --tiny --budget 300 ...   # a CPU check

Matrix products and convolutions run at full float32 precision
(``jax_default_matmul_precision = "highest"``: no TF32), as on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several processes share one device

import jax
import numpy as np

import nnpde
from problems import kolmogorov
from problems import kolmogorov_ladder as ladder

TINY = dict(seeds=tuple(range(6)), resolution=64, duration=0.8, spinup=0.4, settle=0.2, spinup_resolution=32)
PROBE_STEPS = 40


def _spec(text: str):
    kind, hidden, depth = text.split(":")
    return kind, int(hidden), int(depth)


def _data(out: Path, tiny: bool, extra_seeds: int = 0):
    """The coarse training trajectories, the ``extra_seeds`` runs first (as
    ``kolmogorov_ladder.py --extra-seeds``, in the same caches)."""
    if not tiny:
        return ladder.training_trajectories(out, ladder.extra_seeds(extra_seeds) if extra_seeds else ())
    first = len(TINY["seeds"])
    return ladder.training_trajectories(out, tuple(range(first, first + extra_seeds)), **TINY)


def _sizes(tiny: bool):
    return dict(window=4, batch_size=2, validation_steps=20) if tiny else {}


def device_costs(
    specs,
    *,
    resolutions,
    states: int = 16,
    duration: float = 0.16,
    multiple: int = 1,
    hold: int = 1,
    head: int = 3,
    stencil: int = ladder.STENCIL,
    base: str = ladder.BASE,
    separable: bool = False,
) -> dict:
    """Seconds per simulated time unit per trajectory of each plain rung and model (at
    ``multiple`` coarse steps per step, the stencils held over ``hold`` steps) on this
    device, ``states`` trajectories batched (any states: the cost does not depend on
    them)."""
    costs = {}
    for n in resolutions:
        step = ladder.stepper(n)
        grid = step.equation.grid
        u0 = np.stack(
            [
                np.asarray(step.equation.project(kolmogorov.initial_velocity(grid, s, max_velocity=3.0)))
                for s in range(states)
            ]
        )
        costs[f"plain_{n}"] = ladder.seconds_per_time_unit(step, u0, duration=duration)
        print(f"  plain {n}^2: {costs[f'plain_{n}']:.4g} s per time unit per trajectory", flush=True)
    coarse = ladder.stepper(ladder.COARSE)
    u0 = np.stack(
        [
            np.asarray(coarse.equation.project(kolmogorov.initial_velocity(coarse.equation.grid, s, max_velocity=3.0)))
            for s in range(states)
        ]
    )
    for text in specs:
        kind, hidden, depth = _spec(text)
        recipe = dict(multiple=multiple, hold=hold, head=head, stencil=stencil, base=base, separable=separable)
        learned = ladder.model(kind, hidden=hidden, depth=depth, **recipe)
        costs[text] = ladder.seconds_per_time_unit(learned, u0, duration=duration)
        print(f"  {text}: {costs[text]:.4g} s per time unit per trajectory", flush=True)
    return costs


def _step_seconds(run_dir: Path) -> float:
    """Seconds per optimiser step from the times logged between steps 20 and the last."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss" in r]
    first = next(r for r in rows if r["step"] >= 20)
    last = rows[-1]
    return (last["time"] - first["time"]) / (last["step"] - first["step"])


def train_settings(args) -> dict:
    """The keyword arguments of ``ladder.train`` that a worker's command line sets (the
    recipe: every run of one call trains with the same)."""
    sizes = dict(window=args.window, batch_size=args.batch_size, learning_rate=args.learning_rate)
    sizes["check_stability"] = not args.unchecked
    sizes.update(multiple=args.multiple, hold=args.hold, head=args.head, augment=args.augment)
    sizes.update(seed=args.seed, stencil=args.stencil, base=args.base, loss_on=args.loss_on)
    sizes.update(separable=args.separable)
    sizes.update(spectrum_weight=args.spectrum_weight)
    sizes.update(_sizes(args.tiny))
    return sizes


def worker_line(args, text: str, deadline: float) -> list[str]:
    """The command line of the worker that trains model ``text`` with this call's recipe."""
    line = [sys.executable, __file__, "--worker", text, "--tag", args.tag, "--out", str(args.out)]
    line += ["--window", str(args.window), "--batch-size", str(args.batch_size)]
    line += ["--learning-rate", str(args.learning_rate), "--deadline", str(deadline - 20.0)]
    line += ["--multiple", str(args.multiple), "--hold", str(args.hold), "--head", str(args.head)]
    line += ["--worker-report", str(args.out / f"worker_{text.replace(':', '_')}.json")]
    line += ["--tiny"] if args.tiny else []
    line += ["--unchecked"] if args.unchecked else []
    line += ["--augment"] if args.augment else []
    line += ["--separable"] if args.separable else []
    line += ["--seed", str(args.seed), "--stencil", str(args.stencil), "--base", args.base]
    line += ["--loss-on", args.loss_on, "--spectrum-weight", str(args.spectrum_weight)]
    line += ["--published", str(args.published)] + (
        ["--init-from", args.init_from] if args.init_from is not None else []
    )
    return line


def worker(args) -> int:
    """One model: time its steps, then train for what the budget leaves."""
    began = time.perf_counter()
    kind, hidden, depth = _spec(args.worker)
    trajectories = np.load(args.out / "coarse_training.npy")
    sizes = train_settings(args)
    ladder.train(
        args.out / "probe",
        trajectories,
        kind=kind,
        hidden=hidden,
        depth=depth,
        steps=PROBE_STEPS,
        eval_every=10**6,
        progress=False,
        tag=args.tag,
        **sizes,
    )
    seconds = _step_seconds(ladder.model_dir(args.out / "probe", kind, hidden, depth, args.tag))
    probe_wall = time.perf_counter() - began
    overhead = probe_wall - PROBE_STEPS * seconds  # loading, compiling, one evaluation
    left = args.deadline - time.time() - overhead
    # checkpoints, evaluations and the device shared with the other runs take their part
    steps = max(50, int(0.75 * left / seconds) // 50 * 50)
    eval_every = max(50, steps // 6 // 50 * 50)
    print(f"[{args.worker}] {seconds * 1e3:.1f} ms per step, overhead {overhead:.0f} s: {steps} steps", flush=True)
    started = time.perf_counter()
    last_eval = [time.time()]

    def out_of_time(figures) -> bool:  # checked at each evaluation: stop before the next would overrun
        now = time.time()
        interval, last_eval[0] = now - last_eval[0], now
        return now + 1.5 * interval > args.deadline

    result = ladder.train(
        args.out,
        trajectories,
        kind=kind,
        hidden=hidden,
        depth=depth,
        steps=steps,
        eval_every=eval_every,
        checkpoint_every=eval_every,
        stop_when=out_of_time,
        progress=False,
        tag=args.tag,
        init_from=args.init_from,  # not in the probe: the weights do not change a step's cost
        published=args.published,
        **sizes,
    )
    report = {
        "model": args.worker,
        "tag": args.tag,
        "seconds_per_step": seconds,
        "steps": steps,
        "trained_steps": int(result.state.step),
        "stopped_early": bool(result.stopped_early),
        "training_seconds": time.perf_counter() - started,
        "history": [h for h in result.history if any(k.startswith("eval_") for k in h)],
        **sizes,
    }
    Path(args.worker_report).write_text(json.dumps(report, indent=2, default=float))
    print(f"[{args.worker}] done: {json.dumps(report['history'][-1:], default=float)}", flush=True)
    return 0


def smoke(folder: Path) -> int:
    """A few seconds' check that this machine's packages run the training path: a toy
    correction model trained 2 steps on 16^2 noise, checkpointed and read back."""
    rng = np.random.default_rng(0)
    step = ladder.stepper(16)
    noise = [jax.numpy.asarray(rng.standard_normal((2, 16, 16))) for _ in range(6)]  # JAX's default float
    u = np.stack([np.asarray(step.equation.project(v)) for v in noise])
    data = ladder.rollouts(step, u, 8, 1)
    first = ladder.train(
        folder,
        data,
        kind="correction",
        hidden=4,
        depth=2,
        steps=2,
        window=2,
        batch_size=2,
        eval_every=1,
        validation_steps=4,
        progress=False,
    )
    again, done, _ = ladder.trained(folder, kind="correction", hidden=4, depth=2, resolution=16)
    same = all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(nnpde.trainable(first.model)), jax.tree.leaves(nnpde.trainable(again)))
    )
    print(
        f"smoke: {jax.default_backend()} {jax.devices()[0]}; trained {done} steps, restored equal: {same}", flush=True
    )
    return 0 if same and done == 2 else 1


def diagnose(path: Path) -> int:
    """What the solvers' runtime CFL check sees on this device for coarse states
    ``(B, 2, 32, 32)`` in ``path`` (``.npy``): the limit against ``dt`` for the plain
    solver and an untrained learned-interpolation model (which equals it), one step of
    each (their difference), and one checked gradient of an unrolled loss."""
    states = jax.numpy.asarray(np.load(path))
    plain = ladder.stepper(ladder.COARSE)
    learned = ladder.model("interpolation", hidden=8, depth=2)
    inner = learned.stepper
    for name, s in (("plain", plain), ("learned", inner)):
        limits = [float(nnpde.max_stable_dt_advective(s.equation, s.tableau, u=u)) for u in states]
        radius = [float(s.equation.advective_radius(0.0, u)) for u in states]
        print(f"diagnose {name}: dt {s.dt}, limits {np.round(limits, 4)}, advective radius {np.round(radius, 2)}")
    one = jax.jit(jax.vmap(plain))(states)
    two = jax.jit(jax.vmap(learned))(states)
    print(f"diagnose: one step, max |learned - plain| = {float(jax.numpy.max(jax.numpy.abs(one - two))):.3g}")
    trajectory = np.asarray(ladder.rollouts(ladder.stepper(ladder.COARSE, check_stability=False), states, 32, 1))
    print(f"diagnose: plain 32-step rollout max |u| {float(np.abs(trajectory).max()):.3g}", flush=True)
    for checked in (False, True):
        try:
            result = ladder.train(
                path.parent / f"diagnose_{checked}",
                trajectory.astype(np.float32),
                kind="interpolation",
                hidden=8,
                depth=2,
                steps=2,
                window=32,
                batch_size=16,
                eval_every=10**6,
                validation_steps=16,
                progress=False,
                check_stability=checked,
            )
            print(f"diagnose training, check {checked}: {result.history[-1]}", flush=True)
        except Exception as error:  # reported, the run goes on
            print(f"diagnose training, check {checked}: {type(error).__name__}: {str(error)[:400]}", flush=True)
    return 0


def parse(argv=None) -> argparse.Namespace:
    """The command line (``--worker`` lines included: ``worker_line``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["interpolation:64:6", "interpolation:32:4"])
    parser.add_argument("--tag", default="accel", help="appended to each run directory's name")
    parser.add_argument("--budget", type=float, default=540.0, help="wall seconds for the whole script")
    parser.add_argument("--window", type=int, default=32, help="unrolled model steps per sample")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--multiple", type=int, default=1, help="the models' step in coarse steps dt(32) (2: the best CPU recipe)"
    )
    parser.add_argument("--hold", type=int, default=1, help="model steps per network call (stencils held over them)")
    parser.add_argument("--head", type=int, choices=(1, 3), default=3, help="the CNN's last kernel (1: cheaper)")
    parser.add_argument(
        "--augment", action="store_true", help="train on windows mapped by random symmetries of the flow"
    )
    parser.add_argument("--seed", type=int, default=0, help="the seed of the initialisation and the sampled windows")
    parser.add_argument(
        "--stencil", type=int, default=ladder.STENCIL, help="cells per axis of each learned stencil (Kochkov's 4)"
    )
    parser.add_argument(
        "--base", choices=ladder.BASES, default=ladder.BASE, help="the scheme the learned stencils correct"
    )
    parser.add_argument("--separable", action="store_true", help="depthwise-separable hidden layers in the CNN")
    parser.add_argument(
        "--loss-on",
        choices=sorted(ladder.LOSS_QUANTITIES),
        default="velocity",
        help="the quantity the unrolled loss compares",
    )
    parser.add_argument(
        "--spectrum-weight",
        type=float,
        default=0.0,
        help="weight of the loss term on the batch-mean energy spectrum (as kolmogorov_ladder.py --spectrum-weight)",
    )
    parser.add_argument(
        "--extra-seeds",
        type=int,
        default=0,
        help="N more 256^2 training runs, trained on before the ladder's (as kolmogorov_ladder.py --extra-seeds)",
    )
    parser.add_argument(
        "--init-from",
        help="fine-tune: each model starts from the newest weights of its run with this tag in --out or "
        "--published (as kolmogorov_ladder.py --init-from); with --learning-rate, e.g. 3e-4",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/kolmogorov_ladder"))
    parser.add_argument(
        "--published",
        type=Path,
        default=Path("benchmarks/models"),
        help="trained runs kept under version control: read where --out lacks a run (--init-from's, or one to resume)",
    )
    parser.add_argument("--report", type=Path, default=Path("kolmogorov_ladder_accelerator.json"))
    parser.add_argument("--archives", type=Path, default=Path("."), help="folder for the run archives")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: a check of this script on a CPU")
    parser.add_argument("--smoke", type=Path, help="only check the packages: a toy training run in this folder")
    parser.add_argument("--diagnose", type=Path, help="only report the runtime CFL check on the states in this .npy")
    parser.add_argument("--unchecked", action="store_true", help="train without the solvers' runtime CFL check")
    parser.add_argument("--skip-costs", action="store_true", help="do not time the solvers on this device")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-report", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.extra_seeds:
        try:
            ladder.extra_seeds(args.extra_seeds)  # a count that is negative or reaches the held-out seeds
        except ValueError as error:
            parser.error(f"--extra-seeds {args.extra_seeds}: {error}")
    try:
        ladder.check_spectrum_weight(args.spectrum_weight)
    except ValueError as error:
        parser.error(f"--spectrum-weight: {error}")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    for text in args.models:
        kind, hidden, depth = _spec(text)
        if kind not in ladder.KINDS:
            raise SystemExit(f"--models: {text!r} is not KIND:HIDDEN:DEPTH with KIND in {ladder.KINDS}.")
        recipe = dict(multiple=args.multiple, hold=args.hold, head=args.head, stencil=args.stencil, base=args.base)
        recipe.update(separable=args.separable)
        try:  # the recipe fits every model (a base or stencil needs learned stencils), before any data or training
            fresh = ladder.model(kind, hidden=hidden, depth=depth, **recipe)
        except ValueError as error:
            raise SystemExit(f"--models {text}: {error}") from None
        if args.init_from is not None and not args.worker:  # the run to start from, before any data
            if args.init_from == args.tag:
                raise SystemExit(
                    f"--init-from {args.init_from!r} is the tag of the runs trained here. Fix: a new --tag."
                )
            try:  # the same check as the CPU script's training makes: the run exists, its shapes fit
                ladder.warm_start(args.out, fresh, kind, hidden, depth, args.init_from, ladder.COARSE, args.published)
            except (FileNotFoundError, ValueError) as error:
                raise SystemExit(f"--models {text}: {error}") from None
    if args.smoke:
        return smoke(args.smoke)
    if args.diagnose:
        return diagnose(args.diagnose)
    if args.worker:
        return worker(args)

    began = time.time()
    deadline = began + args.budget
    device = jax.devices()[0]
    report = {
        "device": str(getattr(device, "device_kind", device)),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "matmul_precision": os.environ["JAX_DEFAULT_MATMUL_PRECISION"],
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
        "budget_seconds": args.budget,
    }
    print(json.dumps(report), flush=True)

    def save():
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, default=float))

    t = time.perf_counter()
    trajectories = _data(args.out, args.tiny, args.extra_seeds)
    report["data_seconds"] = time.perf_counter() - t
    report["training_shape"] = list(trajectories.shape)
    report["extra_seeds"] = args.extra_seeds
    print(f"training trajectories {trajectories.shape} in {report['data_seconds']:.0f} s", flush=True)
    np.save(args.out / "coarse_training.npy", trajectories)
    save()

    resolutions = (32, 64) if args.tiny else (32, 64, 128, 256, 512)
    if not args.skip_costs:
        report["seconds_per_time_unit_per_trajectory"] = device_costs(
            args.models,
            resolutions=resolutions,
            multiple=args.multiple,
            hold=args.hold,
            head=args.head,
            stencil=args.stencil,
            base=args.base,
            separable=args.separable,
        )
        save()
    report["runtime_cfl_check"] = not args.unchecked

    env = dict(os.environ)
    workers = []
    for text in args.models:
        workers.append((text, subprocess.Popen(worker_line(args, text, deadline), env=env)))
    report["models"] = {}
    for text, process in workers:
        try:
            code = process.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            code = "killed at the deadline"
        kind, hidden, depth = _spec(text)
        run_dir = ladder.model_dir(args.out, kind, hidden, depth, args.tag)
        worker_report = args.out / f"worker_{text.replace(':', '_')}.json"
        entry = json.loads(worker_report.read_text()) if worker_report.exists() else {}
        entry["exit"] = code
        if run_dir.exists():
            archive = args.archives / f"{run_dir.name}.tar.gz"
            args.archives.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive, "w:gz") as tar:
                tar.add(run_dir, arcname=run_dir.name)
            entry["archive"] = archive.name
        report["models"][text] = entry
        save()
    report["wall_seconds"] = time.time() - began
    save()
    print(json.dumps(report["models"], indent=2, default=float), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
