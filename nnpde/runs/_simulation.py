"""Running a simulation: chunked rollouts with progress, results on disk, a plot.

The side effects of a plain (untrained) simulation live here: the progress bar, the
netCDF file, the summary and the figure. Results are written atomically (a temporary
file renamed into place), and also when the run is interrupted, so a crash or Ctrl-C
keeps every completed chunk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..numerics._rollout import rollout
from ..numerics._stepper import AbstractStepper


@dataclasses.dataclass(frozen=True)
class Simulation:
    """What to run: a stepper from an initial state, and how to report it.

    Args:
        name: short identifier, used in file names.
        description: one paragraph on the physics, printed and stored.
        stepper: any nnpde stepper.
        initial_state: ``(channels, *grid.shape)``.
        n_steps: total steps.
        save_every: steps between stored snapshots (also the jit chunk length).
        channels: one name per state channel, e.g. ``("temperature",)``.
        static_fields: named cell fields to store and plot beside the state
            (coefficients, sources).
        attrs: parameters to record with the results.
        units: units of the channels, static fields, ``time`` and the coordinates
            (``x``, ``y``, ``z``), stored in the netCDF file and shown on the plots.
    """

    name: str
    description: str
    stepper: AbstractStepper
    initial_state: jax.Array
    n_steps: int
    save_every: int
    channels: tuple[str, ...]
    static_fields: dict = dataclasses.field(default_factory=dict)
    attrs: dict = dataclasses.field(default_factory=dict)
    units: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.n_steps < 1 or self.save_every < 1:
            raise ValueError(
                f"n_steps and save_every must be >= 1, got n_steps={self.n_steps}, save_every={self.save_every}."
            )
        if len(self.channels) != jnp.shape(self.initial_state)[0]:
            raise ValueError(
                f"channels names {len(self.channels)} fields but the state has "
                f"{jnp.shape(self.initial_state)[0]} channels."
            )


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def run_simulation(sim: Simulation, out_dir: str | os.PathLike, *, progress: bool = True) -> dict:
    """Run ``sim``, writing ``<name>.nc``, ``<name>.png`` and ``summary.json`` to ``out_dir``."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    eq = sim.stepper.equation
    state = eq.check_state(sim.initial_state, "initial state")
    chunk = jax.jit(lambda u, t0: rollout(sim.stepper, u, sim.save_every, t0=t0, trajectory=False))
    times, snapshots = [0.0], [np.asarray(state)]
    n_chunks = -(-sim.n_steps // sim.save_every)
    start = time.perf_counter()
    status = "completed"
    bar = tqdm(total=sim.n_steps, desc=sim.name, unit="step", disable=not progress, dynamic_ncols=True)
    try:
        for i in range(n_chunks):
            t0 = i * sim.save_every * sim.stepper.dt
            state = chunk(state, t0)
            snapshot = np.asarray(state)
            if not np.isfinite(snapshot).all():
                status = f"stopped: non-finite state after {(i + 1) * sim.save_every} steps"
                break
            times.append((i + 1) * sim.save_every * sim.stepper.dt)
            snapshots.append(snapshot)
            bar.update(sim.save_every)
            bar.set_postfix({f"max {sim.channels[0]}": f"{snapshot[0].max():.4g}"})
    except KeyboardInterrupt:
        status = f"interrupted after {len(snapshots) - 1} of {n_chunks} chunks"
    finally:
        bar.close()
        wall = time.perf_counter() - start
        dataset = _to_dataset(sim, np.array(times), np.stack(snapshots), status)
        nc_path = out / f"{sim.name}.nc"
        _atomic_write(nc_path, lambda p: dataset.to_netcdf(p, engine="netcdf4"))
        png_path = out / f"{sim.name}.png"
        _atomic_write(png_path, lambda p: _plot(dataset, sim, p))
        summary = {
            "name": sim.name,
            "status": status,
            "steps": (len(snapshots) - 1) * sim.save_every,
            "dt": sim.stepper.dt,
            "stepper": type(sim.stepper).__name__,
            "grid": list(eq.grid.shape),
            "wall_seconds": round(wall, 3),
            "final": {
                c: {"min": float(snapshots[-1][k].min()), "max": float(snapshots[-1][k].max())}
                for k, c in enumerate(sim.channels)
            },
            "files": {"netcdf": str(nc_path), "plot": str(png_path)},
            "attrs": sim.attrs,
        }
        _atomic_write(out / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=2)))
    return summary


def _to_dataset(sim: Simulation, times, snapshots, status):
    import xarray as xr

    grid = sim.stepper.equation.grid
    dims = ("x", "y", "z")[: grid.ndim]
    coords = {d: grid.axis_centres(a) for a, d in enumerate(dims)}
    coords["time"] = times
    data = {c: (("time", *dims), snapshots[:, k]) for k, c in enumerate(sim.channels)}
    for name, field in sim.static_fields.items():
        data[name] = (dims, np.broadcast_to(np.asarray(field), grid.shape))
    attrs = {
        k: (json.dumps(v) if isinstance(v, (dict, list, tuple, bool)) or v is None else v) for k, v in sim.attrs.items()
    }
    attrs.update(description=sim.description, status=status, dt=sim.stepper.dt, stepper=type(sim.stepper).__name__)
    dataset = xr.Dataset(data, coords=coords, attrs=attrs)
    for name, unit in sim.units.items():
        if name in dataset.variables:
            dataset[name].attrs["units"] = unit
    return dataset


def _plot(dataset, sim: Simulation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    channel = sim.channels[0]
    field = dataset[channel]
    panels = [*sim.static_fields, channel]
    ndim = field.ndim - 1
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.2 * (len(panels) + 1), 3.8), layout="constrained")
    for ax, name in zip(axes, panels):
        values = dataset[name].isel(time=-1) if name == channel else dataset[name]
        if ndim == 1:
            ax.plot(values[values.dims[0]], values)
        else:
            if ndim == 3:
                values = values.isel(z=values.sizes["z"] // 2)
            image = values.transpose().plot.imshow(
                ax=ax, origin="lower", cmap="inferno" if name == channel else "viridis", add_colorbar=True
            )
            if name == channel:
                values.transpose().plot.contour(ax=ax, levels=8, colors="white", linewidths=0.5, add_labels=False)
            del image
        ax.set_title(f"{name} (t = {float(dataset.time[-1]):.3g})" if name == channel else name)
        ax.set_aspect("equal") if ndim > 1 else None
    ax = axes[-1]
    reduce_dims = [d for d in field.dims if d != "time"]
    ax.plot(dataset.time, field.max(reduce_dims), label="max")
    ax.plot(dataset.time, field.mean(reduce_dims), label="mean")
    ax.plot(dataset.time, field.min(reduce_dims), label="min")
    ax.set_xlabel(f"time [{sim.units['time']}]" if "time" in sim.units else "time")
    ax.set_ylabel(f"{channel} [{sim.units[channel]}]" if channel in sim.units else channel)
    ax.set_title(f"{channel} over time")
    ax.legend()
    fig.suptitle(f"{sim.name}: {dataset.attrs['status']}")
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
