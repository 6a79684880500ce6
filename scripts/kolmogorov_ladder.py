"""Data for the Kolmogorov accuracy-per-cost benchmark (``problems.kolmogorov_ladder``).

A 32^2 coarse grid trained on 256^2 reference runs and scored against a 512^2 truth,
with a ladder of plain solvers (32^2 .. 256^2) read on the same held-out states. The
reference runs take hours of CPU; every stage is resumable: run the same command again
after an interruption and it continues from the last chunk written under ``--out``.

    .venv/bin/python scripts/kolmogorov_ladder.py --part train   # 32 seeds at 256^2
    .venv/bin/python scripts/kolmogorov_ladder.py --part truth   # 4 seeds at 512^2
    .venv/bin/python scripts/kolmogorov_ladder.py --part all --estimate   # the plan and its cost, no run
    .venv/bin/python scripts/kolmogorov_ladder.py --part model --kind interpolation --hidden 16 --depth 3
    .venv/bin/python scripts/kolmogorov_ladder.py --part evaluate --models interpolation:16:3 correction:16:3

``--part model`` trains a learned 32^2 solver on the training data (checkpointed and
resumed in ``--out``); ``--part publish --models ...`` copies trained runs to
``benchmarks/models`` (kept in the repository; read where ``--out`` lacks a run);
``--part evaluate`` runs the plain ladder from the held-out
states (cached), scores every rung and trained model against the truth, times them in
this process and writes ``benchmarks/results/kolmogorov_equivalent_resolution.json``
and the figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from pathlib import Path


def _one_device_per_core() -> None:
    """``--part evaluate`` and ``costs``, before JAX starts: one CPU device per core this process may
    use, so that the costs can be timed with the held-out trajectories split over the
    cores (``ladder.seconds_per_time_unit(devices=)``) as well as in one program. A
    caller's own device count is kept; every other computation runs on the first
    device as before."""
    flags = os.environ.get("XLA_FLAGS", "")
    part = None
    for i, word in enumerate(sys.argv):  # the --part value only (a --tag costs is not a part)
        if word == "--part" and i + 1 < len(sys.argv):
            part = sys.argv[i + 1]
        elif word.startswith("--part="):
            part = word.split("=", 1)[1]
    timed = part in ("evaluate", "costs")
    if timed and "xla_force_host_platform_device_count" not in flags:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={cores}".strip()


_one_device_per_core()

import jax  # noqa: E402  (after the device count is set)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

import nnpde  # noqa: E402
from problems import kolmogorov  # noqa: E402
from problems import kolmogorov_ladder as ladder  # noqa: E402


def seconds_per_time_unit(resolution: int, steps: int = 20) -> float:
    """Wall time of ``steps`` plain steps at ``resolution``^2, per simulated time unit."""
    step = ladder.stepper(resolution)
    u0 = step.equation.project(kolmogorov.initial_velocity(step.equation.grid, 0, max_velocity=3.0))
    return ladder.seconds_per_time_unit(step, u0[None], duration=steps * step.dt, repeats=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part",
        choices=(
            "train",
            "truth",
            "all",
            "model",
            "evaluate",
            "time-step",
            "costs",
            "gap",
            "publish",
            "predictability",
            "compare",
        ),
        default="all",
    )
    parser.add_argument("--kind", choices=ladder.KINDS, default="interpolation", help="--part model: the model class")
    parser.add_argument("--hidden", type=int, default=16, help="--part model: CNN channels")
    parser.add_argument("--depth", type=int, default=3, help="--part model: CNN layers")
    parser.add_argument("--steps", type=int, default=1500, help="--part model: optimiser steps")
    parser.add_argument(
        "--extra-seeds",
        type=int,
        default=0,
        help="--part train: also run N more training seeds (after the ladder's 32, a cache file of their own); "
        "--part model: train on them too (the validation seeds stay the ladder's last 4)",
    )
    parser.add_argument("--window", type=int, default=16, help="--part model: unrolled model steps per sample")
    parser.add_argument(
        "--multiple",
        type=int,
        default=1,
        help="--part model: the model's step in coarse steps dt(32) (2: a step of 0.04, half the cost per time unit)",
    )
    parser.add_argument(
        "--hold",
        type=int,
        default=1,
        help="--part model: model steps per network call, the stencils held over them (2: half the network's cost); "
        "a held block longer than the evaluation's interval (0.08) is scored at its inner steps (e.g. --multiple 4 "
        "--hold 2: one network call per 0.16)",
    )
    parser.add_argument(
        "--head",
        type=int,
        choices=(1, 3),
        default=3,
        help="--part model: the CNN's last kernel (1: a per-cell output layer, about 2x cheaper for 32 x 4)",
    )
    parser.add_argument("--batch-size", type=int, default=6, help="--part model: samples per step")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="--part model: peak learning rate")
    parser.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="--part model: Gaussian noise (times each sampled state's rms) added to the unrolled starts",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="--part model: each sampled window mapped by a random symmetry of the forced flow (shift-reflection, "
        "rotation by pi; kolmogorov.symmetry)",
    )
    parser.add_argument(
        "--loss-on",
        choices=sorted(ladder.LOSS_QUANTITIES),
        default="velocity",
        help="--part model: the quantity the unrolled loss compares (vorticity: errors weighed by k^2, as the "
        "correlation time weighs them)",
    )
    parser.add_argument(
        "--spectrum-weight",
        type=float,
        default=0.0,
        help="--part model: weight of a loss term on the batch-mean energy spectrum (shells 1..12, squared log-ratio "
        "to the reference's) at every unrolled step: charges the energy a mean-square loss lets rollouts lose",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="--part model: the seed of the network's initialisation and of the sampled training windows (another "
        "seed: a replicate of the same recipe, for the spread between training runs); give the run its own --tag",
    )
    parser.add_argument(
        "--stencil",
        type=int,
        default=ladder.STENCIL,
        help=f"--part model: cells per axis of each learned stencil (default {ladder.STENCIL}, Kochkov et al.'s "
        "4 x 4; 6 reaches further)",
    )
    parser.add_argument(
        "--separable",
        action="store_true",
        help="--part model: depthwise-separable hidden layers in the CNN (about an eighth of their multiply-adds; "
        "the network is most of a learned step's cost)",
    )
    parser.add_argument(
        "--base",
        choices=ladder.BASES,
        default=ladder.BASE,
        help="--part model: the scheme the learned stencils correct (van_leer: the plain solver's, limited; "
        "central: the two-cell mean, linear and non-dissipative, the network adding the dissipation)",
    )
    parser.add_argument(
        "--forcing-inputs",
        action="store_true",
        help="--part model: the interpolation network also reads the forcing's phase, sin(4y) and cos(4y)",
    )
    parser.add_argument(
        "--init-from",
        metavar="TAG",
        default=None,
        help="--part model: start from the newest weights of the run of this kind and size with tag TAG ('' for the "
        "untagged one), with a fresh optimiser and schedule (fine-tuning: e.g. a longer --window, a lower "
        "--learning-rate); give the new run its own --tag. A run of another --base is allowed (the shapes match): "
        "its weights then start as corrections of the other scheme",
    )
    parser.add_argument(
        "--tag", default="", help="--part model: a further run of this kind and size (other settings): KIND:H:D:TAG"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        help="--part evaluate (default: interpolation:16:3) and publish: trained models KIND:HIDDEN:DEPTH[:TAG] "
        "(TAG: a run trained elsewhere, e.g. accel)",
    )
    parser.add_argument(
        "--long",
        nargs="+",
        default=None,
        metavar="NAME",
        help="--part evaluate: what runs the 50-unit rollouts, models named in --models or plain_N rungs of the "
        "ladder (default: the first model and plain_32)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="the results JSON (default: benchmarks/results/kolmogorov_equivalent_resolution.json for --part "
        "evaluate, kolmogorov_time_step.json for --part time-step)",
    )
    parser.add_argument(
        "--figure",
        type=Path,
        default=Path("docs/benchmarks/figures/kolmogorov_ladder_accuracy_cost.png"),
        help="--part evaluate: the accuracy-cost figure",
    )
    parser.add_argument(
        "--earlier",
        type=Path,
        nargs="+",
        default=[],
        metavar="RESULTS",
        help="--part evaluate: results JSONs of earlier evaluations; the figure also shows their models (those not "
        "in --models; hollow markers) with the plain ladder as timed in that run, for the accuracy-cost front of "
        "models whose weights are not at hand",
    )
    parser.add_argument(
        "--scores",
        type=Path,
        nargs="+",
        default=[],
        metavar="RESULTS",
        help="--part compare: results JSONs of --part evaluate whose per-state scores are pooled (a model scored "
        "in several must read the same in each; the plain rungs must, so the held-out states are the same)",
    )
    parser.add_argument(
        "--pairs",
        nargs="+",
        default=[],
        metavar="A=B",
        help="--part compare: model A against model B (KIND:H:D:TAG as in --models, or plain_N), paired over the "
        "held-out states: the mean ratio of A's scores to B's with its 90%% bootstrap interval",
    )
    parser.add_argument(
        "--with-predictability",
        action="store_true",
        help="--part evaluate: also read the plain 256^2 solver started from each held-out state's 32^2 state "
        "alone (--part predictability's smooth start; cached there, else about 10 min of one core) along the "
        "rollout, beside the models: what the 32^2 state allows at each time",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(COST_VARIANTS),
        metavar="H:D:MULTIPLE:HOLD:HEAD",
        help="--part costs: velocity learned-interpolation models to time (CNN width and depth, coarse steps per "
        "step, steps per network call, last kernel)",
    )
    parser.add_argument(
        "--timing-rounds",
        type=int,
        default=5,
        help="--part evaluate: interleaved timing rounds of every rung and model (the cost is their median, the "
        "speed-up's timing spread their range)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/kolmogorov_ladder"))
    parser.add_argument(
        "--published",
        type=Path,
        default=Path("benchmarks/models"),
        help="trained runs kept under version control (--part publish writes them): --part evaluate reads a model "
        "from there when --out lacks it, --part model resumes a run (or reads --init-from's) from there when --out "
        "lacks it",
    )
    parser.add_argument(
        "--cutoffs",
        type=int,
        nargs="+",
        default=[ladder.COARSE // 2],
        help="--part predictability: keep the Fourier modes |k_x|, |k_y| < CUTOFF of each held-out state exactly "
        "(16: what the 32^2 grid resolves)",
    )
    parser.add_argument(
        "--fine",
        type=int,
        nargs="+",
        default=[ladder.TRAIN_RESOLUTION],
        help="--part predictability: the resolutions of the plain solver run from the coarse state alone",
    )
    parser.add_argument(
        "--donors",
        type=int,
        default=3,
        help="--part predictability: runs per held-out state whose detail beyond the cutoff is another state's "
        "(besides the run with none); their mean is scored too",
    )
    parser.add_argument("--estimate", action="store_true", help="print the plan and its expected cost, run nothing")
    args = parser.parse_args(argv)
    if args.models is None:
        if args.part == "publish":
            parser.error("--part publish needs --models KIND:HIDDEN:DEPTH[:TAG] ... Fix: name the runs to copy.")
        args.models = ["interpolation:16:3"]
    if args.timing_rounds < 1:
        parser.error(f"--timing-rounds must be at least 1, got {args.timing_rounds}. Fix: e.g. --timing-rounds 5.")
    args.earlier_results = []
    for path in args.earlier:
        try:
            earlier = _earlier_results(path)
        except ValueError as error:
            parser.error(str(error))
        args.earlier_results.append((path, earlier))
    try:
        ladder.check_spectrum_weight(args.spectrum_weight)
    except ValueError as error:
        parser.error(f"--spectrum-weight: {error}")
    if args.extra_seeds:
        try:
            ladder.extra_seeds(args.extra_seeds)  # a count that is negative or reaches the held-out seeds
        except ValueError as error:
            parser.error(f"--extra-seeds {args.extra_seeds}: {error}")

    if args.part == "model":
        return train_model(args)
    if args.part == "evaluate":
        return evaluate(args)
    if args.part == "time-step":
        return time_step_error(args)
    if args.part == "costs":
        return model_costs(args)
    if args.part == "gap":
        return generalisation_gaps(args)
    if args.part == "publish":
        return publish(args)
    if args.part == "predictability":
        return predictability(args)
    if args.part == "compare":
        try:
            return compare(args)
        except ValueError as error:
            parser.error(str(error))
    rates = {n: seconds_per_time_unit(n) for n in (ladder.SPINUP_RESOLUTION, ladder.TRAIN_RESOLUTION)}
    rates[ladder.TRUTH_RESOLUTION] = rates[ladder.TRAIN_RESOLUTION] * 8  # 4x the cells, 2x the steps
    print(f"backend {jax.default_backend()}; measured s per time unit: {rates}")
    for n, (units, seconds) in ladder.cost_estimate(rates).items():
        print(f"  {n}^2: {units:.0f} time units, about {seconds / 3600:.1f} h")
    if args.estimate:
        return 0

    bar = None

    def progress(done, total, seconds):
        nonlocal bar
        if bar is None or bar.total != total:
            bar = tqdm(total=total, unit="save", file=sys.stdout)
        bar.n = done
        bar.refresh()

    if args.part in ("train", "all"):
        print(f"training data: seeds {ladder.TRAIN_SEEDS[0]}..{ladder.TRAIN_SEEDS[-1]} at {ladder.TRAIN_RESOLUTION}^2")
        data = ladder.training_data(args.out, progress=progress)
        print(f"  done: {data.shape} kept at {ladder.KEEP_RESOLUTION}^2")
        if args.extra_seeds:
            seeds = ladder.extra_seeds(args.extra_seeds)
            print(f"extra training data: seeds {seeds[0]}..{seeds[-1]} at {ladder.TRAIN_RESOLUTION}^2")
            data = ladder.training_data(args.out, seeds=seeds, progress=progress)
            print(f"  done: {data.shape} kept at {ladder.KEEP_RESOLUTION}^2")
    if args.part in ("truth", "all"):
        print(f"truth: seeds {ladder.EVAL_SEEDS} at {ladder.TRUTH_RESOLUTION}^2")
        runs, starts = ladder.truth(args.out, progress=progress)
        print(f"  done: {runs.shape}; held-out windows {ladder.held_out(runs).shape}, starts {starts.shape}")
    return 0


def _training_trajectories(folder: Path, extra_seeds: int = 0):
    """The coarse training trajectories, the ``extra_seeds`` runs (if any) first, so that the
    validation seeds stay the ladder's last ``VALIDATION_SEEDS``."""
    return ladder.training_trajectories(folder, ladder.extra_seeds(extra_seeds) if extra_seeds else ())


def train_model(args) -> int:
    trajectories = _training_trajectories(args.out, args.extra_seeds)
    print(f"training data {trajectories.shape} (last {ladder.VALIDATION_SEEDS} seeds for validation)")
    result = ladder.train(
        args.out,
        trajectories,
        kind=args.kind,
        hidden=args.hidden,
        depth=args.depth,
        steps=args.steps,
        window=args.window,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        noise=args.noise,
        augment=args.augment,
        forcing_inputs=args.forcing_inputs,
        init_from=args.init_from,
        loss_on=args.loss_on,
        stencil=args.stencil,
        base=args.base,
        separable=args.separable,
        spectrum_weight=args.spectrum_weight,
        seed=args.seed,
        multiple=args.multiple,
        hold=args.hold,
        head=args.head,
        tag=args.tag,
        published=args.published,
    )
    print(f"trained {int(result.state.step)} steps; last figures {result.history[-1] if result.history else {}}")
    return 0


def _load(args, spec: str):
    """``(model, the same without the runtime CFL check, step)`` of a trained run
    ``KIND:HIDDEN:DEPTH[:TAG]`` in ``--out`` (or ``--published``), read once, its held
    stencil weights expanded once per network call (rolled out, not trained)."""
    named = _spec(spec)
    m, step, settings = ladder.trained(args.out, **named, expand=True, published=args.published)
    sizes = {key: named[key] for key in ("kind", "hidden", "depth")}
    return m, ladder.unchecked(m, settings, **sizes, expand=True), step


def predictability(args) -> int:
    """``--part predictability``: how far the coarse state alone determines the flow,
    whatever model runs it. From every held-out state's ``2 cutoff``^2 state
    (``--cutoffs``) alone, the plain solver of each ``--fine`` resolution runs from the
    smooth state that restricts to it, and from that plus the detail of ``--donors``
    other held-out states (``ladder.predictability_starts``); each run, and the mean of
    the donor runs (an ensemble forecast), is scored against the 512^2 truth as the
    ladder's rungs are, with its equivalent resolution on the ladder. Written to
    ``--results`` (default ``benchmarks/results/kolmogorov_predictability.json``).
    Cached and resumable; about 6 min of one core per 256^2 run of the 16 states."""
    if args.donors < 0 or args.donors >= ladder.STATES_PER_SEED * len(ladder.EVAL_SEEDS):
        print(f"--donors must lie in [0, 15], got {args.donors}. Fix: e.g. --donors 3.", file=sys.stderr)
        return 2
    if any(c < 1 for c in args.cutoffs):
        print(f"--cutoffs must be positive wavenumbers, got {args.cutoffs}. Fix: e.g. --cutoffs 16.", file=sys.stderr)
        return 2
    if any(n % (2 * c) or n > ladder.TRUTH_RESOLUTION for n in args.fine for c in args.cutoffs):
        print(
            f"--fine {args.fine}: each must be a multiple of every coarse grid 2 x --cutoffs {args.cutoffs} and at "
            f"most the truth's {ladder.TRUTH_RESOLUTION}. Fix: e.g. --fine 64 128 256.",
            file=sys.stderr,
        )
        return 2
    runs, starts = ladder.truth(args.out)
    reference = ladder.coarse_trajectories(ladder.held_out(runs))
    rung_runs = ladder.ladder_runs(args.out, starts)
    coarse_step = ladder.stepper(ladder.COARSE)
    resolutions = list(rung_runs)
    table = {f"plain_{n}": ladder.score_table(coarse_step, r, reference) for n, r in rung_runs.items()}
    variants = {}
    for cutoff in args.cutoffs:
        for fine in args.fine:
            shifts = tuple(range(args.donors + 1))
            members = ladder.predictability_runs(
                args.out, starts, cutoff=cutoff, donor_shifts=shifts, resolution=fine, progress=None
            )
            name = f"plain_{fine}_from_{2 * cutoff}"
            variants[f"{name}_no_detail"] = members[0]
            for shift in shifts[1:]:
                variants[f"{name}_detail_of_state_plus{shift}"] = members[shift]
            if args.donors > 1:
                variants[f"{name}_mean_of_{args.donors}_donors"] = np.mean([members[s] for s in shifts[1:]], axis=0)
    results = {}
    for name, r in variants.items():
        table[name] = ladder.score_table(coarse_step, r, reference)
        entry = {}
        for metric, better in (("correlation_time", True), ("error_0.64", False), ("error_2.56", False)):
            ladder_scores = np.stack([table[f"plain_{n}"][metric] for n in resolutions])
            entry[metric] = nnpde.metrics.equivalent_resolution(
                table[name][metric], ladder_scores, resolutions, coarse=ladder.COARSE, higher_is_better=better
            )
        entry["per_state_correlation_time"] = np.asarray(table[name]["correlation_time"]).tolist()
        results[name] = entry
        eq = entry["correlation_time"]
        print(
            f"{name}: correlation time {np.mean(table[name]['correlation_time']):.3f} "
            f"({eq['factor']:.2f}x [{eq['factor_lower']:.2f}, {eq['factor_upper']:.2f}]"
            f"{', censored ' + eq['censored'] if eq['censored'] else ''}), error at 0.64 "
            f"{np.mean(table[name]['error_0.64']):.4f} ({entry['error_0.64']['factor']:.2f}x), at 2.56 "
            f"{np.mean(table[name]['error_2.56']):.4f}",
            flush=True,
        )
    out = {
        "what": "the plain solver of the fine resolution from each held-out state's coarse state alone (the smooth "
        "state that restricts to it), with no detail beyond the coarse wavenumbers or another held-out state's; "
        "scored against the 512^2 truth on the 32^2 grid",
        "rungs": {f"plain_{n}": {m: float(np.mean(v)) for m, v in table[f"plain_{n}"].items()} for n in resolutions},
        "variants": results,
        "held_out_states": len(reference),
        "truth": ladder.TRUTH_RESOLUTION,
        "machine": nnpde.environment(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
    }
    _write_results(args.results or Path("benchmarks/results/kolmogorov_predictability.json"), out)
    return 0


def publish(args) -> int:
    """``--part publish``: copy the newest checkpoint of each of ``--models`` (with its
    settings and metrics log) from ``--out`` to ``--published``, to be committed: a
    fresh clone then scores the model, or resumes its training, without training it
    again."""
    for spec in args.models:
        step = ladder.publish(args.out, args.published, **_spec(spec))
        print(f"{spec}: step {step} -> {ladder.model_dir(args.published, **_spec(spec))}")
    return 0


def _spec(spec: str) -> dict:
    """``KIND:HIDDEN:DEPTH[:TAG]`` as ``ladder.trained``'s keywords."""
    kind, hidden, depth, *tag = spec.split(":")
    return dict(kind=kind, hidden=int(hidden), depth=int(depth), tag="".join(tag))


def _stored(path: Path, key: str) -> dict:
    """The arrays kept in ``path`` under ``key``; none if the file is missing or was
    written for another key."""
    if path.exists():
        with np.load(path) as stored:
            if str(stored["key"]) == key:
                return {k: stored[k] for k in stored.files if k != "key"}
    return {}


def _store(path: Path, key: str, arrays: dict) -> None:
    """``arrays`` into ``path`` under ``key``, atomically (a partial file, then a rename)."""
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, key=np.asarray(key), **arrays)
    partial.replace(path)


def _cached(path: Path, key: str, compute):
    """``compute()``'s arrays (a dict), kept in ``path`` (``.npz``) under ``key``: the
    rollouts of a trained model are computed once, so that the evaluation can be run
    again (say on an idle machine, for the timings alone) without repeating them."""
    arrays = _stored(path, key)
    if arrays:
        return arrays
    arrays = compute()
    _store(path, key, arrays)
    return arrays


def _json_safe(value):
    """``value`` with every non-finite float as ``None``: a run that blew up has an
    infinite error, which JSON cannot hold (Python would write ``Infinity``, which
    strict readers refuse)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _write_results(path: Path, out: dict) -> None:
    """``out`` as strict JSON (``_json_safe``) in ``path``, written whole or not at all
    (a partial file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(_json_safe(out), indent=2, default=str, allow_nan=False))
    partial.replace(path)


def _long_rollouts(
    step, starts, duration: float, name: str, path: Path, key: str, *, bound: float = np.inf, reuse: dict | None = None
) -> dict:
    """From every state of ``starts``, ``ladder.long_rollout(step, u, duration,
    bound=bound)``: ``kept{i}`` (restricted to the coarse grid), ``reached{i}``, and
    ``courant{i}``, ``exceeded{i}``: the largest ``ladder.courant_ratio`` along the run and
    the first kept time at which it passed 1 (the runtime CFL check would have stopped
    the run there; -1: never). One state at a time, each finished state kept on disk at
    once (``<path>.progress.npz``, under ``key``): a stopped call resumes at the next
    state (a plain 256^2 rung takes about an hour).

    ``reuse``: an earlier call's arrays, its runs made with the runtime check on; a run
    that the check never stopped (``reached{i} >= duration``) is the same computation
    (the check only raises) and is taken as it is, its ratio not known (NaN, never
    above 1)."""
    progress = path.with_name(path.name.removesuffix(".npz") + ".progress.npz")
    out = _stored(progress, key)
    reuse = reuse or {}
    for i, u in enumerate(tqdm(starts, desc=f"{name}: {duration:g}-unit rollouts", file=sys.stdout)):
        if f"reached{i}" in out:
            continue
        if f"reached{i}" in reuse and float(reuse[f"reached{i}"]) >= duration - 1e-9:
            out[f"kept{i}"], out[f"reached{i}"] = reuse[f"kept{i}"], reuse[f"reached{i}"]
            out[f"courant{i}"], out[f"exceeded{i}"] = np.asarray(np.nan), np.asarray(-1.0)
            continue
        kept, reached = ladder.long_rollout(step, u, duration, bound=bound)
        ratio = ladder.courant_ratio(step, kept)
        over = np.flatnonzero(ratio > 1.0)
        out[f"kept{i}"] = ladder.coarse_trajectories(kept[None])[0]
        out[f"reached{i}"] = np.asarray(reached)
        out[f"courant{i}"] = np.asarray(np.max(ratio))
        out[f"exceeded{i}"] = np.asarray(over[0] * ladder.EVAL_INTERVAL if len(over) else -1.0)
        _store(progress, key, out)
    progress.unlink(missing_ok=True)
    return out


def _paired(scores: dict, head: dict) -> dict:
    """Each metric's ``nnpde.metrics.paired_ratio`` of a model over the headline model on
    the same held-out states (none for a metric with a diverged run)."""
    out = {}
    for metric in scores:
        a, b = np.asarray(scores[metric], dtype=float), np.asarray(head[metric], dtype=float)
        finite = np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)
        out[metric] = nnpde.metrics.paired_ratio(a, b) if finite else None
    return out


def time_step_error(args, *, resolutions=(32, 64, 128), substeps=(1, 2, 4), multiples=(2, 4)) -> int:
    """``--part time-step``: the plain rungs with their step split in 2 and 4, and the
    coarse rung with 2 and 4 of its steps taken as one, scored on the held-out states
    like the ladder (``--results``, default ``benchmarks/results/kolmogorov_time_step.json``).
    Whatever changes with the step is time-stepping error, which a learned face
    interpolation does not see directly; a longer step that keeps the accuracy makes a
    coarse model cheaper."""
    runs, starts = ladder.truth(args.out)
    reference = ladder.coarse_trajectories(ladder.held_out(runs))
    coarse_step = ladder.stepper(ladder.COARSE)
    table = {}
    cases = [(n, k, 1) for k in substeps for n in resolutions] + [(ladder.COARSE, 1, m) for m in multiples]
    for n, k, m in cases:
        r = ladder.ladder_runs(args.out, starts, resolutions=(n,), substeps=k, multiple=m)[n]
        scores = ladder.score_table(coarse_step, r, reference)
        row = table[f"plain_{n}_dt/{k}" if m == 1 else f"plain_{n}_dt*{m}"] = {
            "dt": ladder.stepper(n, substeps=k, multiple=m).dt,
            "finite_runs": int(np.sum(np.isfinite(r).all(axis=tuple(range(1, r.ndim))))),
            **{metric: float(np.mean(v)) for metric, v in scores.items()},
            "per_state_correlation_time": np.asarray(scores["correlation_time"]).tolist(),
        }
        print(
            f"plain {n}^2, dt {row['dt']:.5g}: correlation time {row['correlation_time']:.4f}, "
            f"error at 0.64 {row['error_0.64']:.5f}, at 2.56 {row['error_2.56']:.5f}"
        )
    out = {
        "rungs": table,
        "held_out_states": len(reference),
        "truth": ladder.TRUTH_RESOLUTION,
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
    }
    _write_results(args.results or Path("benchmarks/results/kolmogorov_time_step.json"), out)
    return 0


PREDICTABILITY = f"plain_{ladder.TRAIN_RESOLUTION}_from_the_{ladder.COARSE}_state"
SHELL_TIMES = (0.16, 0.32, 0.64, 1.28, 3.2)  # time units at which errors_by_shell is read
BY_TIME_UNTIL = 4.0  # time units: the validation horizon; the correlation time is read near 3.2


_EARLIER_KEYS = ("date", "ladder", "mean_scores", "seconds_per_time_unit_per_trajectory")


def compare(args) -> int:
    """``--part compare``: each of ``--pairs`` ``A=B`` paired over the held-out states
    (``nnpde.metrics.paired_ratio`` of A's per-state correlation times and errors to
    B's), from the per-state scores pooled over ``--scores``: models scored in different
    evaluation calls, or whose weights are gone, compared as exactly as within one call.
    Written to ``--results`` (default ``benchmarks/results/kolmogorov_paired.json``)."""
    pooled, origin = _pooled_scores(args.scores)
    pairs = []
    for pair in args.pairs:
        a, sep, b = pair.partition("=")
        if not sep or not a or not b:
            raise ValueError(f"--pairs {pair!r} is not A=B. Fix: e.g. KIND:64:6:new=KIND:64:6:base.")
        missing = [m for m in (a, b) if m not in pooled]
        if missing:
            raise ValueError(
                f"--pairs {pair}: {missing} not scored in --scores {[str(p) for p in args.scores]}. "
                f"Fix: one of {sorted(pooled)}, or add the results file that scored it."
            )
        pairs.append((a, b))
    if not pairs:
        raise ValueError("--part compare needs --pairs A=B ... Fix: name the models to compare.")
    out = {"pairs": [], "scores": {m: str(origin[m]) for pair in pairs for m in pair}}
    energies = _pooled_energies(args.scores)
    for a, b in pairs:
        ratios = {m: nnpde.metrics.paired_ratio(pooled[a][m], pooled[b][m]) for m in pooled[a]}
        if a in energies and b in energies:  # both long-rolled from the held-out states, every run stable
            ratios["kinetic_energy_50"] = nnpde.metrics.paired_ratio(energies[a], energies[b])
        out["pairs"].append({"model": a, "baseline": b, **ratios})
        text = ", ".join(
            f"{m} {r['estimate']:.3f} [{r['lower']:.3f}, {r['upper']:.3f}] "
            f"(larger on {r['larger_on']} of {r['states']})"
            for m, r in ratios.items()
        )
        print(f"{a} / {b}: {text}")
    out.update(date=time.strftime("%Y-%m-%d"), command="scripts/kolmogorov_ladder.py " + " ".join(sys.argv[1:]))
    path = args.results or Path("benchmarks/results/kolmogorov_paired.json")
    _write_results(path, out)
    print(f"wrote {path}")
    return 0


def _pooled_energies(paths) -> dict:
    """``{model: per-run time-mean kinetic energy}`` of the 50-unit rollouts that the
    results files ``paths`` recorded run by run (``long_rollout_50``, one run per held-out
    state, in their order), for models whose runs all stayed stable: ``--part compare``
    pairs them as it pairs the scores. Files written before the per-run record hold none."""
    out = {}
    for path in paths:
        long = json.loads(Path(path).read_text()).get("long_rollout_50", {})
        for model, entry in long.items():
            runs = entry.get("per_run_kinetic_energy") if isinstance(entry, dict) else None
            if runs and all(e is not None for e in runs):
                out.setdefault(model, np.asarray(runs, float))
    return out


def _pooled_scores(paths) -> tuple[dict, dict]:
    """``(per-state scores by model, the file each came from)`` over the results files
    ``paths``; refused where the files disagree (another set of held-out states, or a
    model scored differently)."""
    if not paths:
        raise ValueError("--part compare needs --scores RESULTS ... Fix: the results JSONs of --part evaluate.")
    pooled, origin = {}, {}
    for path in paths:
        try:
            scores = json.loads(Path(path).read_text())["per_state_scores"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f"--scores {path}: no per-state scores ({type(error).__name__}: {error}). "
                "Fix: a results JSON of --part evaluate."
            ) from None
        for model, table in scores.items():  # _write_results stored a blown-up run's inf as None
            table = {k: np.asarray([math.inf if x is None else x for x in v], float) for k, v in table.items()}
            if model in pooled:
                if pooled[model].keys() != table.keys() or not all(
                    np.array_equal(pooled[model][k], table[k]) for k in table
                ):
                    what = "the held-out states differ" if model.startswith("plain_") else "it was scored differently"
                    raise ValueError(
                        f"--scores: {model} reads differently in {origin[model]} and {path} ({what}). "
                        "Fix: compare results of the same held-out states and the same weights."
                    )
                continue
            pooled[model], origin[model] = table, path
    return pooled, origin


def _earlier_results(path: Path) -> dict:
    """An earlier ``--part evaluate`` results JSON (``--earlier``), checked for what the
    figure reads: its date, ladder, mean scores and costs."""
    try:
        out = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(
            f"--earlier {path}: cannot be read as JSON ({error}). Fix: a results JSON of --part evaluate."
        ) from None
    missing = [key for key in _EARLIER_KEYS if not isinstance(out, dict) or key not in out]
    if missing:
        raise ValueError(
            f"--earlier {path}: lacks {missing}; not a results JSON of --part evaluate. "
            "Fix: e.g. benchmarks/results/kolmogorov_equivalent_resolution_ft_w16lr1s500.json."
        )
    return out


def _earlier_points(earlier_results, models) -> list[tuple[str, str, list, list, list]]:
    """Per earlier results file: ``(name, date, plain costs, plain correlation times,
    [(model, cost, correlation time)])``, its models that ``models`` does not hold."""
    points = []
    for path, out in earlier_results:
        costs, scores = out["seconds_per_time_unit_per_trajectory"], out["mean_scores"]
        plain = [f"plain_{n}" for n in out["ladder"]]
        rows = [
            (spec, costs[spec], scores[spec]["correlation_time"])
            for spec in scores
            if spec not in models and not spec.startswith("plain_") and spec in costs
        ]
        points.append(
            (
                Path(path).name,
                out["date"],
                [costs[p] for p in plain],
                [scores[p]["correlation_time"] for p in plain],
                rows,
            )
        )
    return points


def _long_names(args) -> list[str]:
    """What runs the long rollouts (``--long``), checked before any work: models named in
    ``--models`` or plain rungs of the ladder."""
    names = args.long if args.long is not None else [args.models[0], f"plain_{ladder.COARSE}"]
    rungs = [f"plain_{n}" for n in ladder.LADDER]
    unknown = [name for name in names if name not in args.models and name not in rungs]
    if unknown:
        raise SystemExit(
            f"--long {' '.join(unknown)}: not a model of --models {args.models} nor a rung of the ladder {rungs}. "
            "Fix: name models exactly as in --models, or plain_N."
        )
    return list(dict.fromkeys(names))


COST_VARIANTS = ("32:4:1:1:3", "32:4:2:1:3", "32:4:2:2:3", "32:4:2:2:1", "48:5:2:1:3", "48:5:2:2:1", "64:6:2:1:3")


def _best_ms(f, *args, calls: int = 20, repeats: int = 5) -> float:
    """Milliseconds per call of the compiled ``f``: best of ``repeats`` means over ``calls``."""
    jax.block_until_ready(f(*args))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            jax.block_until_ready(f(*args))
        best = min(best, (time.perf_counter() - start) / calls)
    return 1e3 * best


def model_costs(args, *, states: int = 16, rungs=(32, 64, 128)) -> int:
    """Where a learned model's time goes (untrained networks: the cost does not depend
    on the weights): per variant, the network alone, one step with its stencils held
    (their weights expanded once, as the model does, and not expanded: the
    coefficients turned into weights at every stage) and one plain step of the same
    length (ms for ``states`` states batched), and the
    whole model's seconds per time unit and trajectory as one program and split over
    the cores (``ladder.best_cost``), beside the plain rungs timed the same way."""
    import equinox as eqx

    coarse = ladder.stepper(ladder.COARSE)
    grid = coarse.equation.grid

    def starts(n):
        step = ladder.stepper(n)
        u = [
            step.equation.project(kolmogorov.initial_velocity(step.equation.grid, s, max_velocity=3.0))
            for s in range(states)
        ]
        return np.stack([np.asarray(x) for x in u])

    u0 = starts(ladder.COARSE)
    out = {"states": states, "devices": jax.local_device_count(), "plain": {}, "models": {}}
    for n in rungs:
        best, by = ladder.best_cost(ladder.stepper(n), starts(n))
        out["plain"][f"plain_{n}"] = {"seconds_per_time_unit": best, "by_devices": by}
        print(f"plain {n}^2: {best:.4g} s per time unit ({by})", flush=True)
    for text in args.variants:
        try:
            hidden, depth, multiple, hold, head = (int(x) for x in text.split(":"))
        except ValueError:
            raise SystemExit(f"--variants: {text!r} is not H:D:MULTIPLE:HOLD:HEAD, e.g. 32:4:2:2:1.") from None
        m = ladder.model(
            "interpolation_velocity", hidden=hidden, depth=depth, multiple=multiple, hold=hold, head=head, expand=True
        )
        inner = m.stepper
        equation = inner.equation
        batch = jnp.asarray(u0)
        prepared = jax.jit(jax.vmap(equation.reconstruction.prepare))(batch)
        expanded = jax.jit(jax.vmap(lambda r: r.expand()))(prepared)  # as the model holds them

        def held(r, u, inner=inner, equation=equation):
            return eqx.tree_at(lambda s: s.equation, inner, equation.with_reconstruction(r))(u)

        plain = ladder.stepper(ladder.COARSE, multiple=multiple, check_stability=False)
        best, by = ladder.best_cost(m, u0)
        out["models"][text] = {
            "network_ms": _best_ms(jax.jit(jax.vmap(equation.reconstruction.network)), batch),
            "held_inner_step_ms": _best_ms(jax.jit(jax.vmap(held)), expanded, batch),
            "held_inner_step_unexpanded_ms": _best_ms(jax.jit(jax.vmap(held)), prepared, batch),
            "plain_step_ms": _best_ms(jax.jit(jax.vmap(plain)), batch),
            "model_step_ms": _best_ms(jax.jit(jax.vmap(m)), batch),
            "seconds_per_time_unit": best,
            "by_devices": by,
            "network_parameters": int(
                sum(x.size for x in jax.tree.leaves(eqx.filter(equation.reconstruction.network, eqx.is_inexact_array)))
            ),
        }
        print(f"{text}: {json.dumps(out['models'][text])}", flush=True)
    out.update(machine=nnpde.environment(), date=time.strftime("%Y-%m-%d"), command="python " + " ".join(sys.argv))
    out["grid"] = list(grid.shape)
    _write_results(args.results or Path("benchmarks/results/kolmogorov_model_costs.json"), out)
    return 0


def generalisation_gaps(args) -> int:
    """``--part gap``: each model of ``--models``' unrolled loss on training and on
    validation windows at its own step and window (``ladder.generalisation_gap``), in
    ``--results`` (default ``benchmarks/results/kolmogorov_generalisation_gap.json``)."""
    data = _training_trajectories(args.out)
    out = {"models": {}}
    for spec in args.models:
        m, step, settings = ladder.trained(args.out, **_spec(spec), expand=True, published=args.published)
        per_model_step = settings.get("multiple", 1) * settings.get("hold", 1)
        gap = ladder.generalisation_gap(m, data[:, ::per_model_step], window=settings["window"])
        gap.update(trained_steps=step, window=settings["window"], coarse_steps_per_model_step=per_model_step)
        out["models"][spec] = gap
        print(
            f"{spec} ({step} steps): train {gap['train']['mean']:.3e}, validation "
            f"{gap['validation']['mean']:.3e}, ratio {gap['ratio']:.2f}",
            flush=True,
        )
    out.update(machine=nnpde.environment(), date=time.strftime("%Y-%m-%d"), command="python " + " ".join(sys.argv))
    _write_results(args.results or Path("benchmarks/results/kolmogorov_generalisation_gap.json"), out)
    return 0


def evaluate(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    long_names = _long_names(args)
    runs, starts = ladder.truth(args.out)
    held = ladder.held_out(runs)
    reference = ladder.coarse_trajectories(held)
    states = len(reference)
    print(f"truth {ladder.TRUTH_RESOLUTION}^2: {states} held-out states, {reference.shape[1]} saves each")
    rung_runs = ladder.ladder_runs(args.out, starts)
    coarse_step = ladder.stepper(ladder.COARSE)
    table, timed = {}, {}
    for n, r in rung_runs.items():
        table[f"plain_{n}"] = ladder.score_table(coarse_step, r, reference)
        timed[f"plain_{n}"] = (ladder.stepper(n), ladder.held_out_starts(starts, n))
        print(f"plain {n}^2: correlation time {table[f'plain_{n}']['correlation_time'].mean():.3f}")
    coarse_starts = ladder.held_out_starts(starts, ladder.COARSE)
    model_runs, trained_steps, blown, unchecked_models = {}, {}, {}, {}
    for spec in args.models:
        m, unchecked, done = _load(args, spec)  # unchecked: a run that blows up goes on, scored from there
        unchecked_models[spec] = unchecked
        model_runs[spec] = _cached(
            args.out / f"evaluation_{spec.replace(':', '_')}.npz",
            f"step {done}, {len(coarse_starts)} states, {reference.shape[1]} saves",
            lambda unchecked=unchecked: {
                "runs": ladder.rollouts_every(
                    unchecked, coarse_starts, reference.shape[1] - 1, ladder.EVAL_INTERVAL, allow_non_finite=True
                )
            },
        )["runs"]
        peak = np.max(np.abs(np.nan_to_num(model_runs[spec], nan=np.inf)), axis=tuple(range(1, model_runs[spec].ndim)))
        blown[spec] = int(np.sum(peak > 10 * np.max(np.abs(reference))))  # inf, NaN or 10x the truth's fastest
        if blown[spec]:
            print(f"{spec}: {blown[spec]} of {len(coarse_starts)} runs blew up within the scored horizon")
        table[spec] = ladder.score_table(coarse_step, model_runs[spec], reference)
        timed[spec] = (m, coarse_starts)
        trained_steps[spec] = done
        print(f"{spec} ({done} steps): correlation time {table[spec]['correlation_time'].mean():.3f}")
    # every rung and model timed in the same interleaved rounds, after all of them are
    # compiled: the cost is the median round, and the round-by-round speed-ups show the
    # spread that timing noise alone puts on a speed-up
    print(f"timing {len(timed)} steppers in {args.timing_rounds} interleaved rounds")
    timings = ladder.interleaved_costs(timed, rounds=args.timing_rounds)
    costs = {name: t["median"] for name, t in timings.items()}
    by_devices = {name: {d: float(np.median(v)) for d, v in t["by_devices"].items()} for name, t in timings.items()}
    for name, cost in costs.items():
        spread = np.asarray(timings[name]["rounds"])
        print(f"{name}: {cost:.4g} s per time unit (rounds {spread.min():.4g} to {spread.max():.4g})")
    resolutions = list(rung_runs)
    plain_costs = [costs[f"plain_{n}"] for n in resolutions]
    plain_rounds = [timings[f"plain_{n}"]["rounds"] for n in resolutions]
    results = {}
    for spec in args.models:
        per_metric = {}
        for metric, better in (("correlation_time", True), ("error_0.64", False), ("error_2.56", False)):
            ladder_scores = np.stack([table[f"plain_{n}"][metric] for n in resolutions])
            diverged = int(np.sum(~np.isfinite(table[spec][metric])))
            if diverged:  # an error with no bound: no resolution of the ladder matches it
                per_metric[metric] = {"factor": None, "diverged_states": diverged}
                print(f"{spec}: {metric} unbounded on {diverged} states (blown up by then); no equivalent resolution")
                continue
            eq = nnpde.metrics.equivalent_resolution(
                table[spec][metric], ladder_scores, resolutions, coarse=ladder.COARSE, higher_is_better=better
            )
            eq["speedup_at_equal_accuracy"] = nnpde.metrics.speedup_at_equal_accuracy(
                eq, resolutions, plain_costs, costs[spec]
            )
            eq["speedup_at_equal_accuracy"]["timing_rounds"] = nnpde.metrics.speedup_over_rounds(
                eq, resolutions, plain_rounds, timings[spec]["rounds"]
            )
            per_metric[metric] = eq
        results[spec] = per_metric
    head = args.models[0]
    headline = results[head]["correlation_time"]
    ratio_256 = float(
        table[f"plain_{resolutions[-1]}"]["correlation_time"].mean() / table[head]["correlation_time"].mean()
    )
    # long rollouts (50 time units) from every held-out state: stable? the statistics of the attractor?
    duration = 50.0
    long_bound = float(10 * np.max(np.abs(reference)))
    truth_stats = ladder.statistics(ladder.coarse_trajectories(runs))
    settle = round(10.0 / ladder.EVAL_INTERVAL)
    long_stats = {"truth": truth_stats}
    for name in long_names:
        done = trained_steps.get(name, 0)
        # without the runtime CFL check: that check is a conservative, frozen-coefficient
        # estimate, and it stopped bounded runs (2 of 16 plain 256^2 runs, at the truth's
        # own peak speeds). A run is unstable when it is not finite or passes `bound`.
        if name.startswith("plain_"):  # a rung: from the held-out starts at its resolution, kept at the coarse grid
            n = int(name.removeprefix("plain_"))
            step, long_starts = ladder.stepper(n, check_stability=False), ladder.held_out_starts(starts, n)
        else:
            step, long_starts = unchecked_models[name], coarse_starts  # the weights scored above

        path = args.out / f"long_{name.replace(':', '_')}.npz"
        checked_key = f"step {done}, {len(coarse_starts)} states, {duration:g} units"
        key = f"{checked_key}, unchecked, bounded by {long_bound:.6g}"
        stored = _cached(
            path,
            key,
            functools.partial(
                _long_rollouts,
                step,
                long_starts,
                duration,
                name,
                path,
                key,
                bound=long_bound,
                reuse=_stored(path, checked_key),
            ),
        )
        pieces = [(stored[f"kept{i}"], float(stored[f"reached{i}"])) for i in range(len(coarse_starts))]
        reached = [r for _, r in pieces]
        stable = [p for p, r in pieces if r >= duration - 1e-9]
        exceeded = [float(stored[f"exceeded{i}"]) for i in range(len(pieces))]
        entry = {
            "reached": reached,
            "stable_runs": len(stable),
            "runs": len(pieces),
            "unstable_means": f"not finite, or a velocity above {long_bound:.6g} (10x the truth's fastest)",
            "cfl_check_exceeded_at": [None if e < 0 else e for e in exceeded],
            "cfl_check_would_have_stopped": int(sum(e >= 0 for e in exceeded)),
        }
        entry["per_run_kinetic_energy"] = [  # time means after the settling, paired by start in --part compare
            ladder.statistics(p[None, settle:])["kinetic_energy"] if r >= duration - 1e-9 else None for p, r in pieces
        ]
        if stable:
            entry.update(ladder.statistics(np.stack([p[settle:] for p in stable])))
            entry["kinetic_energy_ratio"] = entry["kinetic_energy"] / truth_stats["kinetic_energy"]
            ratio = np.asarray(entry["spectrum"]) / np.asarray(truth_stats["spectrum"])
            entry["max_spectrum_deviation"] = float(np.max(np.abs(ratio - 1)))
        long_stats[name] = entry
        print(
            f"{name}: {len(stable)} of {len(pieces)} runs stable for {duration:g} time units; reached {reached}; "
            f"the runtime CFL check would have stopped {entry['cfl_check_would_have_stopped']}"
        )
    # the equivalent resolution along the rollout, on the velocity and on the vorticity
    # error, up to BY_TIME_UNTIL (past it the coarse rungs' errors saturate as they
    # decorrelate, and the ladder no longer separates resolutions)
    saves = round(BY_TIME_UNTIL / ladder.EVAL_INTERVAL) + 1
    errors = {
        f"plain_{n}": ladder.errors_by_time(coarse_step, r[:, :saves], reference[:, :saves])
        for n, r in rung_runs.items()
    }
    errors.update(
        {
            spec: ladder.errors_by_time(coarse_step, model_runs[spec][:, :saves], reference[:, :saves])
            for spec in args.models
        }
    )
    curves = list(args.models)
    if args.with_predictability:  # the information ruler: a function of the 32^2 state alone
        print(f"{PREDICTABILITY}: the --part predictability smooth start (cached, else about 10 min of one core)")
        smooth = ladder.predictability_runs(args.out, starts, donor_shifts=(0,))[0]
        errors[PREDICTABILITY] = ladder.errors_by_time(coarse_step, smooth[:, :saves], reference[:, :saves])
        curves.append(PREDICTABILITY)
    by_time = {
        spec: {
            q: ladder.equivalence_by_time(
                errors[spec][q], np.stack([errors[f"plain_{n}"][q] for n in resolutions]), resolutions
            )
            for q in ("velocity", "vorticity")
        }
        for spec in curves
    }
    # which scales the errors sit in, at a few times: the headline, the rungs, the ruler
    shell_saves = [round(t / ladder.EVAL_INTERVAL) for t in SHELL_TIMES]
    shell_runs = {head: model_runs[head], **{f"plain_{n}": r for n, r in rung_runs.items()}}
    if args.with_predictability:
        shell_runs[PREDICTABILITY] = smooth
    by_shell = {
        "times": list(SHELL_TIMES),
        "shell_edges": [e if np.isfinite(e) else None for e in ladder.SHELLS],
        "relative_error": {
            name: ladder.errors_by_shell(r, reference, saves=shell_saves).tolist() for name, r in shell_runs.items()
        },
    }
    out = {
        "equivalent_resolution": {
            "estimate": headline["factor"],
            "lower_90": headline["factor_lower"],
            "upper_90": headline["factor_upper"],
            "metric": f"vorticity correlation time at {ladder.THRESHOLD} against the {ladder.TRUTH_RESOLUTION}^2 truth",
            "censored": headline["censored"],
            "resolution": headline["estimate"],
        },
        "speedup_at_equal_accuracy": headline["speedup_at_equal_accuracy"],
        "coarse": ladder.COARSE,
        "truth": ladder.TRUTH_RESOLUTION,
        "training_resolution": ladder.TRAIN_RESOLUTION,
        "held_out_states": states,
        "ladder": resolutions,
        "headline_model": head,
        "plain_finest_over_model_correlation_time": ratio_256,
        "models": {
            spec: {
                "trained_steps": trained_steps[spec],
                "blown_up_in_scored_horizon": blown[spec],
                "metrics": results[spec],
                f"paired_with_{head}": _paired(table[spec], table[head]) if spec != head else None,
            }
            for spec in args.models
        },
        "mean_scores": {name: {k: float(np.mean(v)) for k, v in t.items()} for name, t in table.items()},
        "per_state_scores": {name: {k: np.asarray(v).tolist() for k, v in t.items()} for name, t in table.items()},
        "seconds_per_time_unit_per_trajectory": costs,
        "seconds_per_time_unit_by_devices": by_devices,
        "seconds_per_time_unit_rounds": {name: t["rounds"] for name, t in timings.items()},
        "timing": f"median of {args.timing_rounds} interleaved rounds, each stepper charged its best device split",
        "long_rollout_50": long_stats,
        "equivalent_resolution_by_time": by_time,
        "velocity_error_by_wavenumber_shell": by_shell,
        "machine": nnpde.environment() if hasattr(nnpde, "environment") else {},
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
    }
    earlier = _earlier_points(args.earlier_results, args.models)
    if earlier:  # shown in the figure, timed in their own runs
        out["earlier_results_in_figure"] = [
            {"file": name, "date": date, "models": [spec for spec, _, _ in rows]} for name, date, _, _, rows in earlier
        ]
    _write_results(args.results or Path("benchmarks/results/kolmogorov_equivalent_resolution.json"), out)
    print(
        json.dumps({k: out[k] for k in ("equivalent_resolution", "speedup_at_equal_accuracy")}, indent=2, default=str)
    )

    args.figure.parent.mkdir(parents=True, exist_ok=True)
    entries = len(args.models) + 1 + sum(1 + len(rows) for *_, rows in earlier)
    rows = (entries + 1) // 2  # of the shared legend below the panels, two columns
    height = 4.6 + 0.2 * rows
    fig, ax = plt.subplots(1, 2, figsize=(12, height))
    # one colour and marker per model, the same in both panels; the plain rungs in greys
    colours = plt.get_cmap("tab20")(np.arange(len(args.models)) % 20)
    markers = "sDo^vP*Xhp<>"

    def label(spec: str) -> str:
        names = _spec(spec)
        return f"{names['kind'].replace('_', ' ')} {names['hidden']}x{names['depth']} {names['tag']}".strip()

    def spread(name: str):  # the timing rounds' range about the median, as error bars
        r = np.asarray(timings[name]["rounds"])
        return [[costs[name] - r.min()], [r.max() - costs[name]]]

    xs = [costs[f"plain_{n}"] for n in resolutions]
    ys = [table[f"plain_{n}"]["correlation_time"].mean() for n in resolutions]
    ax[0].plot(xs, ys, "o-", color="k", label="plain solver (van Leer, RK4) at 32, 64, 128, 256$^2$")
    for n, x, y in zip(resolutions, xs, ys):
        ax[0].errorbar(x, y, xerr=spread(f"plain_{n}"), color="k", capsize=2, lw=0.8)
        ax[0].annotate(f"{n}$^2$", (x, y), textcoords="offset points", xytext=(4, -10))
    for i, spec in enumerate(args.models):
        ax[0].errorbar(
            costs[spec],
            table[spec]["correlation_time"].mean(),
            xerr=spread(spec),
            fmt=markers[i % len(markers)],
            color=colours[i],
            capsize=2,
            lw=0.8,
            label=f"{label(spec)} (32$^2$)",
        )
    faded = plt.get_cmap("tab20b")(np.arange(sum(len(r) for *_, r in earlier)) % 20)
    k = 0
    for name, date, plain_costs, plain_times, model_rows in earlier:  # their own plain ladder: the timing drift
        ax[0].plot(
            plain_costs,
            plain_times,
            "o--",
            color="0.6",
            mfc="none",
            lw=0.8,
            label=f"plain solver as timed {date} ({name})",
        )
        for spec, cost, corr in model_rows:
            m = markers[k % len(markers)]
            ax[0].plot(cost, corr, m, mfc="none", color=faded[k], label=f"{label(spec)} (timed {date})")
            k += 1
    ax[0].set_xscale("log")
    ax[0].set_xlabel(
        "wall time per simulated time unit per trajectory [s]\n"
        f"(this CPU; median and range of {args.timing_rounds} timing rounds)"
    )
    ax[0].set_ylabel(f"time until vorticity correlation < {ladder.THRESHOLD}")
    ax[0].set_title("accuracy against cost")
    t = np.arange(reference.shape[1]) * ladder.EVAL_INTERVAL
    greys = plt.get_cmap("Greys")(np.linspace(0.45, 0.95, len(resolutions)))
    styles = [dict(color=g, ls="--", lw=1.2) for g in greys] + [dict(color=c, lw=1.4) for c in colours]
    for (name, r), style in zip(
        [*((f"plain {n}$^2$", rung_runs[n]) for n in resolutions), *((s, model_runs[s]) for s in args.models)],
        styles,
    ):
        rho = np.mean(
            [
                np.asarray(
                    nnpde.metrics.correlation(
                        ladder.vorticity(coarse_step, a), ladder.vorticity(coarse_step, b), ndim=2
                    )
                )
                for a, b in zip(r, reference)
            ],
            axis=0,
        )
        ax[1].plot(t, rho, **style, label=name if name.startswith("plain") else None)
    ax[1].axhline(ladder.THRESHOLD, color="gray", ls=":")
    ax[1].set_ylim(0.5, 1.01)
    ax[1].set_xlabel("time")
    ax[1].set_ylabel("vorticity correlation with the truth (mean over states)")
    ax[1].set_title("correlation with the 512$^2$ truth (models: colours as left)")
    ax[1].legend(fontsize=8, loc="lower left")
    fig.legend(*ax[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.2 * rows + 0.1) / height, 1, 1))
    fig.savefig(args.figure, dpi=120)
    plt.close(fig)
    _by_time_figure(plt, args.figure.with_name(args.figure.stem + "_by_time.png"), by_time, results, label, colours)
    if any("spectrum" in v for k, v in long_stats.items() if k != "truth"):
        path = args.figure.with_name(args.figure.stem + "_spectrum.png")
        by_spec = dict(zip(args.models, colours))
        _spectrum_figure(plt, path, long_stats, lambda s: label(s) if s in by_spec else s, by_spec)
    return 0


def _spectrum_figure(plt, path: Path, long_stats: dict, label, colours: dict) -> list[str]:
    """The time-mean energy spectrum of each model's stable 50-unit rollouts over the
    truth's, by wavenumber ``k <= K_MAX``, with the issue's 15 % band (``--part
    evaluate``'s third figure; ``long_stats`` as in its results, ``colours`` by model, grey
    for any other). Returns the legend's labels."""
    fig, ax = plt.subplots(figsize=(8, 4.4 + 0.2 * len(long_stats)))
    truth = np.asarray(long_stats["truth"]["spectrum"])
    k = np.asarray(long_stats["truth"]["k"])
    ax.axhspan(0.85, 1.15, color="0.9", lw=0, label="within 15 % of the truth")
    ax.axhline(1.0, color="k", lw=0.8)
    for name, entry in long_stats.items():
        if name == "truth" or "spectrum" not in entry:
            continue
        ratio = np.asarray(entry["spectrum"]) / truth
        text = f"{label(name)}: energy {entry['kinetic_energy_ratio']:.3f}, worst {entry['max_spectrum_deviation']:.1%}"
        ax.plot(k, ratio, "o-", ms=3, color=colours.get(name, "0.5"), label=text)
    ax.set_xlabel("wavenumber k")
    ax.set_ylabel("time-mean energy spectrum / the truth's")
    ax.set_title(f"50-unit rollouts from the held-out states, after the first 10 units (k <= {ladder.K_MAX})")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)  # below: clear of the curves
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return labels


def _by_time_figure(plt, path: Path, by_time: dict, results: dict, label, colours) -> list[str]:
    """Each model's equivalent resolution on the error at each time (velocity solid,
    vorticity dashed, the 90 % band of the velocity's) with its equivalent resolution on
    the correlation time (dotted), against the time of the rollout; the information
    ruler (``PREDICTABILITY``), where given, in grey. Returns the legend's labels."""
    fig, ax = plt.subplots(figsize=(13, 5.5))

    def curve(c: dict, style: str, band: bool, **line) -> None:  # the saves with a reading (None: blown up)
        kept = [i for i, f in enumerate(c["factor"]) if f is not None]
        t = [c["time"][i] for i in kept]
        ax.plot(t, [c["factor"][i] for i in kept], style, **line)
        if band:
            lower, upper = [c["lower"][i] for i in kept], [c["upper"][i] for i in kept]
            ax.fill_between(t, lower, upper, color=line["color"], alpha=0.15, lw=0)

    ruler_name = f"plain {ladder.TRAIN_RESOLUTION}$^2$ from the {ladder.COARSE}$^2$ state alone"
    learned = [(spec, curves) for spec, curves in by_time.items() if spec != PREDICTABILITY]
    models = [(spec, curves, colour) for (spec, curves), colour in zip(learned, colours)]
    if PREDICTABILITY in by_time:
        models.insert(0, (PREDICTABILITY, by_time[PREDICTABILITY], "0.55"))
    for spec, curves, colour in models:
        ruler = spec == PREDICTABILITY
        name = ruler_name if ruler else label(spec)
        for quantity, style in (("velocity", "-"), ("vorticity", "--")):
            line = dict(color=colour, label=f"{name}: {quantity} error", **({"lw": 1.0} if ruler else {}))
            curve(curves[quantity], style, band=quantity == "velocity" and not ruler, **line)
        corr = {} if ruler else results[spec]["correlation_time"]
        if corr.get("factor") is not None:
            ax.axhline(corr["factor"], color=colour, ls=":", lw=1.2, label=f"{name}: correlation time")
    ax.set_xlabel("time of the rollout")
    ax.set_ylabel(f"equivalent resolution (x {ladder.COARSE}$^2$) on the plain ladder")
    ax.set_title("what a model is worth along its rollout (errors against the 512$^2$ truth)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside the curves
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return labels


if __name__ == "__main__":
    raise SystemExit(main())
