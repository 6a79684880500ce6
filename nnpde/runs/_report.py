"""The PNG report of an evaluated run (written by ``nnpde evaluate``).

- ``fields.png``: one held-out trajectory at the horizon: the reference, the plain
  coarse solver and the trained model side by side, and the model's error (1-D states:
  curves on one axis; 2-D: images per channel, the velocity as its magnitude).
- ``error.png``: relative L2 error against time, model and plain solver, with the
  declared target.
- ``spectra.png``: shell-averaged energy spectra at the horizon (``nnpde.metrics``).
- ``training.png``: the training loss and the periodic held-out error against step,
  from ``metrics.jsonl``.

Files are written atomically (a temporary file renamed into place).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    plt = _pyplot()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return str(path)


def _fields(path: Path, task, reference, plain, model) -> str:
    plt = _pyplot()
    grid = task.grid
    t = task.horizon * task.dt
    if grid.ndim == 1:
        (x,) = (grid.axis_centres(0),)
        channels = reference.shape[0]
        fig, axes = plt.subplots(channels, 2, figsize=(11, 3.6 * channels), squeeze=False, layout="constrained")
        for c in range(channels):
            ax = axes[c, 0]
            ax.plot(x, reference[c], "k-", lw=2, label="reference")
            ax.plot(x, plain[c], "C0--", label="plain coarse solver")
            ax.plot(x, model[c], "C3-", label="trained model")
            ax.set_title(f"{task.channels[c]} at t = {t:.3g}")
            ax.set_xlabel("x")
            ax.legend()
            ax = axes[c, 1]
            ax.plot(x, plain[c] - reference[c], "C0--", label="plain - reference")
            ax.plot(x, model[c] - reference[c], "C3-", label="model - reference")
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title("error")
            ax.set_xlabel("x")
            ax.legend()
        fig.suptitle(f"{task.name}: one held-out trajectory at the horizon")
        return _save(fig, path)
    index = (slice(None),) * 2 + ((reference.shape[-1] // 2,) if grid.ndim == 3 else ())

    def panels(state):
        if task.channels[:2] in (("u", "v"), ("velocity_x", "velocity_y")):
            speed = np.sqrt(state[0] ** 2 + state[1] ** 2)
            return {"speed": speed[index], **{c: state[k][index] for k, c in enumerate(task.channels) if k >= 2}}
        return {c: state[k][index] for k, c in enumerate(task.channels)}

    ref, pla, mod = panels(reference), panels(plain), panels(model)
    rows = list(ref)
    fig, axes = plt.subplots(len(rows), 4, figsize=(16, 3.8 * len(rows)), squeeze=False, layout="constrained")
    for r, name in enumerate(rows):
        lo, hi = float(np.min(ref[name])), float(np.max(ref[name]))
        for c, (title, field) in enumerate(
            (("reference", ref[name]), ("plain coarse solver", pla[name]), ("trained model", mod[name]))
        ):
            image = axes[r, c].imshow(field.T, origin="lower", vmin=lo, vmax=hi, cmap="viridis")
            axes[r, c].set_title(f"{name}: {title}")
            fig.colorbar(image, ax=axes[r, c], shrink=0.8)
        err = mod[name] - ref[name]
        bound = float(np.max(np.abs(pla[name] - ref[name]))) or 1.0
        image = axes[r, 3].imshow(err.T, origin="lower", cmap="RdBu_r", vmin=-bound, vmax=bound)
        axes[r, 3].set_title(f"{name}: model - reference\n(colour range: plain solver's max error)")
        fig.colorbar(image, ax=axes[r, 3], shrink=0.8)
    fig.suptitle(f"{task.name}: one held-out trajectory at t = {t:.3g}")
    return _save(fig, path)


def _errors(path: Path, task, model_errors, plain_errors) -> str:
    plt = _pyplot()
    t = task.dt * np.arange(1, len(model_errors) + 1)
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    ax.semilogy(t, plain_errors, "C0--", label="plain coarse solver")
    ax.semilogy(t, model_errors, "C3-", label="trained model")
    ax.axhline(task.target, color="k", ls=":", label=f"target at the horizon ({task.target:g})")
    ax.set_xlabel(f"time [{task.units['time']}]" if "time" in task.units else "time")
    ax.set_ylabel("relative L2 error (held-out mean)")
    ax.set_title(f"{task.name}: error against time")
    ax.legend()
    return _save(fig, path)


def _spectra(path: Path, task, reference, plain, model) -> str:
    from ..hybrid import metrics

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    from ..numerics._boundary import BoundaryConditions

    bc = getattr(task.baseline.equation, "bc", None)
    periodic = not isinstance(bc, BoundaryConditions) or all(bc.is_periodic(a) for a in range(task.grid.ndim))
    for label, state, style in (("reference", reference, "k-"), ("plain", plain, "C0--"), ("model", model, "C3-")):
        k, e = metrics.energy_spectrum(state, task.grid)
        k, e = np.asarray(k)[1:], np.asarray(e)[1:]
        ax.loglog(k, np.maximum(e, 1e-30), style, label=label)
    note = "" if periodic else " (non-periodic: FFT of the walled field, indicative only)"
    ax.set_xlabel("wavenumber k")
    ax.set_ylabel("E(k)")
    ax.set_title(f"energy spectra at the horizon{note}", fontsize=9)
    ax.legend()
    return _save(fig, path)


def _training(path: Path, metrics_path: Path) -> str | None:
    from ._metrics_log import read_metrics

    if not Path(metrics_path).is_file():
        return None
    rows = read_metrics(metrics_path)
    loss = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval_horizon_error"]) for r in rows if "eval_horizon_error" in r]
    if not loss:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    ax.semilogy(*zip(*loss), "C1-", label="training loss")
    if evals:
        ax.semilogy(*zip(*evals), "C3o-", label="held-out horizon error")
    ax.set_xlabel("optimiser step")
    ax.set_title("training curves")
    ax.legend()
    return _save(fig, path)


def write_report(run_dir, *, task, reference, plain, model, model_errors, plain_errors, metrics_path) -> dict[str, str]:
    """Write the PNGs into ``run_dir``; returns ``{name: path}`` of those written.
    ``reference``, ``plain``, ``model``: one trajectory ``(T, *state)`` each."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "fields": _fields(run_dir / "fields.png", task, reference[-1], plain[-1], model[-1]),
        "error": _errors(run_dir / "error.png", task, model_errors, plain_errors),
        "spectra": _spectra(run_dir / "spectra.png", task, reference[-1], plain[-1], model[-1]),
    }
    training = _training(run_dir / "training.png", metrics_path)
    if training:
        files["training"] = training
    return files
