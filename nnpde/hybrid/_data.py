"""Training data: generate trajectories, restrict them to a coarse grid, label them
as an ``xarray.Dataset`` and cache them on disk keyed by their configuration.

A trajectory is ``(T, C, *spatial)``, a batch of them ``(N, T, C, *spatial)``. The
file I/O of the package's data lives here; ``downsample`` and ``generate_trajectories``
compute only. Cache files are written atomically (a temporary file in the same
directory, renamed into place), like the results of ``run_simulation``.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite, check_int, is_concrete
from ..numerics._grid import Grid

CONFIG_ATTR = "nnpde_cache_config"
"""Attribute of a cached file holding its configuration as canonical JSON."""

STATUS_ATTR = "nnpde_cache"
"""Attribute of a dataset returned by ``cached_dataset``: ``"reused"`` or ``"built"``."""


def _resampling_args(name: str, u, factor, ndim):
    """``(u, factor, ndim)`` checked for ``downsample`` and ``upsample``."""
    factor = check_int(factor, f"{name} factor", fix="pass an integer such as 2 or 4.")
    try:
        ndim = operator.index(ndim)
    except TypeError:
        ndim = -1
    u = jnp.asarray(u)
    if not 1 <= ndim <= 3 or u.ndim < ndim:
        raise ValueError(
            f"{name}: ndim (the number of spatial axes) must be 1-3 and at most u.ndim={u.ndim}, "
            f"got ndim={ndim!r}. Fix: pass ndim=grid.ndim."
        )
    return u, factor, ndim


def _check_stagger(name: str, u, ndim: int, stagger: tuple) -> None:
    channels = u.shape[u.ndim - ndim - 1] if u.ndim > ndim else None
    if channels != len(stagger) or any(s is not None and s not in range(ndim) for s in stagger):
        raise ValueError(
            f"{name}: stagger must give, for each of the {channels} channels, None (cell-centred) or the spatial "
            f"axis 0..{ndim - 1} of the channel's faces, got stagger={stagger!r}. Fix: e.g. stagger=(0, 1) for a 2-D "
            "MAC velocity, (0, 1, None) for velocity plus a cell-centred temperature."
        )


def downsample(u, factor: int, *, ndim: int, stagger=None):
    """Block average of the last ``ndim`` axes by ``factor``: the conservative restriction.

    For cell-centred fields a coarse cell's value is the mean of the ``factor**ndim``
    fine cells it covers, ``U[I] = mean(u[factor * I + j] for j in [0, factor)^ndim)``,
    so the integral (and the mean) of every channel is preserved exactly and a
    piecewise-constant field on the coarse cells is reproduced exactly. The fine cell
    counts must be divisible by ``factor``. Leading axes (channels, time, samples) are
    untouched: a state or a trajectory. ``factor=1`` returns ``u``. Jit-able.

    ``stagger``: for a staggered (MAC) state, one entry per channel (the axis just
    before the spatial ones): ``None`` for a cell-centred channel (block average as
    above) or the spatial axis ``a`` whose LOWER faces the channel lives on (index
    ``i`` at ``x_a = i h``). A face channel keeps every ``factor``-th face along ``a``
    (the coarse faces are fine faces) and averages over the ``factor**(ndim-1)`` fine
    faces that make up the coarse face: the coarse flux through each coarse face is
    the fine flux through it, so a discretely divergence-free fine velocity restricts
    to a discretely divergence-free coarse one (the coarse divergence of a cell is the
    mean of the fine divergences inside it).
    """
    u, factor, ndim = _resampling_args("downsample", u, factor, ndim)
    lead, spatial = u.shape[: u.ndim - ndim], u.shape[u.ndim - ndim :]
    if any(n % factor for n in spatial):
        raise ValueError(
            f"downsample: the spatial shape {spatial} is not divisible by factor={factor}. "
            f"Fix: choose a factor dividing every axis, or a fine grid of a multiple of {factor} cells per axis."
        )
    if stagger is not None:
        return _downsample_staggered(u, factor, ndim, tuple(stagger))
    if factor == 1:
        return u
    blocked = u.reshape(*lead, *(m for n in spatial for m in (n // factor, factor)))
    block_axes = tuple(len(lead) + 2 * a + 1 for a in range(ndim))
    return jnp.mean(blocked, axis=block_axes)


def _downsample_staggered(u, factor: int, ndim: int, stagger: tuple):
    _check_stagger("downsample", u, ndim, stagger)
    out = []
    for c, axis in enumerate(stagger):
        field = jnp.take(u, c, axis=u.ndim - ndim - 1)
        if axis is None:
            out.append(downsample(field, factor, ndim=ndim))
            continue
        # the coarse faces along `axis` are every factor-th fine face; average across the others
        first = field.ndim - ndim + axis
        faces = jax.lax.slice_in_dim(field, 0, field.shape[first], stride=factor, axis=first)
        lead = faces.shape[: faces.ndim - ndim]
        shape = [
            m
            for a, n in enumerate(faces.shape[faces.ndim - ndim :])
            for m in ((n, 1) if a == axis else (n // factor, factor))
        ]
        blocked = faces.reshape(*lead, *shape)
        out.append(jnp.mean(blocked, axis=tuple(len(lead) + 2 * a + 1 for a in range(ndim))))
    return jnp.stack(out, axis=u.ndim - ndim - 1)


def upsample(u, factor: int, *, ndim: int, stagger=None):
    """The prolongation that ``downsample`` undoes: a fine field holding no detail below
    the coarse cells, ``downsample(upsample(U, f), f) == U``.

    A cell-centred channel is constant on each coarse cell's ``factor**ndim`` fine
    cells. A face channel (``stagger`` as in ``downsample``) keeps each coarse face's
    value on the fine faces that make it up and is linear along its face axis between
    two coarse faces, constant across: the fine divergence in every fine cell is then
    the coarse divergence of its coarse cell, so a divergence-free coarse MAC velocity
    prolongs to a divergence-free fine one. Along a face axis the faces wrap (the one
    after the last is the first): for periodic grids. What it is for: a fine state
    with the coarse state's content and none of the sub-grid detail (e.g. to ask how
    far the exact fine solver gets from the coarse state alone). Jit-able.
    """
    u, factor, ndim = _resampling_args("upsample", u, factor, ndim)
    spatial_axes = range(u.ndim - ndim, u.ndim)
    if stagger is None:
        for a in spatial_axes:
            u = jnp.repeat(u, factor, axis=a)
        return u
    stagger = tuple(stagger)
    _check_stagger("upsample", u, ndim, stagger)
    weights = jnp.arange(factor, dtype=u.dtype) / factor  # fine face i = factor * I + k sits at k / factor
    out = []
    for c, axis in enumerate(stagger):
        field = jnp.take(u, c, axis=u.ndim - ndim - 1)
        if axis is None:
            out.append(upsample(field, factor, ndim=ndim))
            continue
        a = field.ndim - ndim + axis
        shape = [1] * (field.ndim + 1)
        shape[a + 1] = factor
        w = weights.reshape(shape)
        below, above = jnp.expand_dims(field, a + 1), jnp.expand_dims(jnp.roll(field, -1, axis=a), a + 1)
        lines = ((1 - w) * below + w * above).reshape(*field.shape[:a], -1, *field.shape[a + 1 :])
        for b in range(field.ndim - ndim, field.ndim):
            if b != a:
                lines = jnp.repeat(lines, factor, axis=b)
        out.append(lines)
    return jnp.stack(out, axis=u.ndim - ndim - 1)


def generate_trajectories(
    step: Callable,
    initial_states,
    n_steps: int,
    *,
    save_every: int = 1,
    factor: int = 1,
    ndim: int,
    stagger=None,
    allow_non_finite: bool = False,
):
    """Run ``step`` from each initial state and keep every ``save_every``-th state.

    ``step``: a jit-able map of ONE state to the next, ``(C, *spatial) -> (C, *spatial)``
    (a stepper, a hybrid model). ``initial_states``: ``(N, C, *spatial)``; the batch is
    ``jax.vmap``, the time loop ``jax.lax.scan``. ``n_steps`` must be a multiple of
    ``save_every``; the states at steps ``0, save_every, ..., n_steps`` are kept
    (``n_saved = n_steps // save_every + 1``, the initial state first), each
    ``downsample``-d by ``factor`` as it is stored, so the fine trajectory is never
    held in memory. Returns ``(N, n_saved, C, *coarse_spatial)`` with
    ``coarse_spatial = spatial // factor``. Saved state ``i`` is at time
    ``i * save_every * dt``. A non-finite result raises, naming the sample, unless
    ``allow_non_finite`` (scoring a model that may blow up: its trajectory is returned
    as it is, for the caller to score from its last finite state).
    ``stagger``: per-channel face axes of a staggered state (see ``downsample``).
    """
    try:
        n_steps = operator.index(n_steps)
    except TypeError:
        n_steps = -1
    save_every = check_int(save_every, "save_every", fix="keep every k-th state with save_every=k >= 1.")
    if n_steps < 0 or n_steps % save_every:
        raise ValueError(
            f"n_steps must be a non-negative multiple of save_every={save_every}, got n_steps={n_steps!r}. "
            f"Fix: e.g. n_steps={max(n_steps, 1) // save_every * save_every or save_every}."
        )
    if not callable(step):
        raise TypeError(f"step must be a callable state -> next state, got {type(step).__name__}.")
    u0 = jnp.asarray(initial_states)
    if not isinstance(ndim, int) or not 1 <= ndim <= 3 or u0.ndim != ndim + 2:
        raise ValueError(
            f"initial_states must be a batch (N, C, *spatial) with ndim={ndim!r} spatial axes (1-3), "
            f"got shape {u0.shape}. Fix: stack the states on a leading axis (one state: u[None])."
        )
    if not jnp.issubdtype(u0.dtype, jnp.floating):
        raise TypeError(f"initial_states must be floating point, got dtype {u0.dtype}. Fix: u.astype(float).")
    u0 = check_finite(u0, "initial_states", "start from finite states.")
    factor = check_int(factor, "factor", fix="pass an integer such as 2 or 4.")
    if any(n % factor for n in u0.shape[2:]):
        raise ValueError(
            f"generate_trajectories: the spatial shape {u0.shape[2:]} is not divisible by factor={factor}. "
            f"Fix: choose a factor dividing every axis, or a grid of a multiple of {factor} cells per axis."
        )
    state = jax.ShapeDtypeStruct(u0.shape[1:], u0.dtype)
    # through a lambda: jax.jit(step) takes a module's __name__, which equinox sets to a
    # placeholder on a partitioned-and-recombined stepper whose abstract fields are
    # properties (a trained hybrid model, restored from a checkpoint)
    out = jax.eval_shape(lambda u: step(u), state)
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != state.shape or out.dtype != state.dtype:
        got = (out.shape, out.dtype) if isinstance(out, jax.ShapeDtypeStruct) else type(out).__name__
        raise ValueError(
            f"step must map one state {state.shape} {state.dtype} to the same shape and dtype, got {got}. "
            "Fix: step acts on ONE unbatched state; batching is done here with jax.vmap."
        )

    def advance(u, _):
        u = jax.lax.fori_loop(0, save_every, lambda _, v: step(v), u)
        return u, downsample(u, factor, ndim=ndim, stagger=stagger)

    def one(u):
        _, saved = jax.lax.scan(advance, u, None, length=n_steps // save_every)
        return jnp.concatenate([downsample(u, factor, ndim=ndim, stagger=stagger)[None], saved])

    trajectories = jax.jit(jax.vmap(one))(u0)
    if is_concrete(trajectories) and not allow_non_finite:
        bad = ~np.isfinite(np.asarray(trajectories)).all(axis=tuple(range(1, trajectories.ndim)))
        if bad.any():
            raise ValueError(
                f"generate_trajectories: {int(bad.sum())} of {bad.size} trajectories became non-finite "
                f"(first: sample {int(np.argmax(bad))}). Fix: reduce the time step or check the step function."
            )
    return trajectories


def trajectory_dataset(trajectories, *, dt: float, grid: Grid, channels, attrs: dict | None = None):
    """Label trajectories ``(N, T, C, *grid.shape)`` as an ``xarray.Dataset``.

    One data variable per channel, named by ``channels``, with dims
    ``("sample", "time", "x"[, "y"[, "z"]])``. Coordinates: ``time = i * dt`` for
    stored state ``i`` (``dt``: the time between stored states), and the cell centres
    of ``grid`` on each axis (the axes of ``grid.cell_centres()``). ``attrs`` are kept,
    with dicts, lists, tuples, bools and None stored as JSON strings (netCDF holds
    numbers and strings only); ``dt``, the grid ``shape`` and ``extent`` are added.
    """
    import xarray as xr

    u = np.asarray(trajectories)
    channels = (channels,) if isinstance(channels, str) else tuple(channels)
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be an nnpde.Grid, got {type(grid).__name__}.")
    if u.ndim != grid.ndim + 3 or u.shape[3:] != grid.shape or u.shape[2] != len(channels):
        raise ValueError(
            f"trajectories must be (N, T, C, {', '.join(map(str, grid.shape))}) with C = {len(channels)} channels "
            f"{channels}, got shape {u.shape}. Fix: one array of samples x time x channels x the grid's cells "
            "(after downsample, pass the coarse grid)."
        )
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be the positive time between stored states, got {dt!r}.")
    dims = ("x", "y", "z")[: grid.ndim]
    coords = {d: (d, grid.axis_centres(a)) for a, d in enumerate(dims)}
    coords["time"] = ("time", np.arange(u.shape[1]) * float(dt))
    coords["sample"] = ("sample", np.arange(u.shape[0]))
    data = {c: (("sample", "time", *dims), u[:, :, k]) for k, c in enumerate(channels)}
    stored = {
        k: (json.dumps(v) if isinstance(v, (dict, list, tuple, bool)) or v is None else v)
        for k, v in (attrs or {}).items()
    }
    stored.update(dt=float(dt), grid_shape=json.dumps(list(grid.shape)), grid_extent=json.dumps(grid.extent))
    return xr.Dataset(data, coords=coords, attrs=stored)


def _check_config(value, path: str) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"cached_dataset: config{path} is {value}; JSON has no NaN or infinity. Fix: a finite number."
            )
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"cached_dataset: config{path} has a key {k!r} of type {type(k).__name__}; keys must be strings. "
                    "Fix: str(key)."
                )
            _check_config(v, f"{path}[{k!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_config(v, f"{path}[{i}]")
        return
    raise TypeError(
        f"cached_dataset: config{path} is a {type(value).__module__}.{type(value).__name__} ({value!r:.60}), "
        "which has no canonical JSON form. Fix: use numbers, strings, bools, None, lists and dicts "
        "(e.g. float(x), x.tolist(), str(path))."
    )


def config_key(config: dict) -> tuple[str, str]:
    """Canonical JSON of ``config`` (sorted keys, no spaces) and its key, the first
    16 hex digits of its SHA-256. Raises on a value JSON cannot hold exactly."""
    if not isinstance(config, dict):
        raise TypeError(f"cached_dataset: config must be a dict, got {type(config).__name__}.")
    _check_config(config, "")
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return canonical, hashlib.sha256(canonical.encode()).hexdigest()[:16]


def cached_dataset(directory, config: dict, build: Callable):
    """Load the dataset of ``config`` from ``directory``, or ``build()`` and store it.

    The file is ``<directory>/<key>.nc`` with ``key`` from ``config_key``: the first 16
    hex digits of the SHA-256 of the canonical JSON of ``config`` (sorted keys).
    ``config`` holds numbers, strings, bools, None, lists and nested dicts; anything
    else raises, naming its key. The file keeps the canonical JSON in its attribute
    ``nnpde_cache_config``; when the file exists and that equals ``config``'s, it is
    loaded fully into memory (the file closed) and ``build`` is not called. Otherwise
    (no file, a different stored config, an unreadable file) ``build()`` (no
    arguments, returns an ``xarray.Dataset``) runs and its result is written to a
    temporary file in ``directory`` and renamed into place with ``os.replace``: a
    crash or an error never leaves a truncated ``<key>.nc``, and concurrent writers of
    the same key each write a complete file.

    The returned dataset's attribute ``nnpde_cache`` says ``"reused"`` or ``"built"``.
    """
    import xarray as xr

    canonical, key = config_key(config)
    if not callable(build):
        raise TypeError(f"cached_dataset: build must be a callable () -> xarray.Dataset, got {type(build).__name__}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.nc"
    if path.exists():
        try:
            dataset = xr.load_dataset(path, engine="netcdf4")
        except (OSError, ValueError, RuntimeError):
            dataset = None  # unreadable: rebuilt and replaced below
        if dataset is not None and dataset.attrs.get(CONFIG_ATTR) == canonical:
            dataset.attrs[STATUS_ATTR] = "reused"
            return dataset
    dataset = build()
    if not isinstance(dataset, xr.Dataset):
        raise TypeError(f"cached_dataset: build() must return an xarray.Dataset, got {type(dataset).__name__}.")
    dataset = dataset.copy()
    dataset.attrs[CONFIG_ATTR] = canonical
    dataset.attrs.pop(STATUS_ATTR, None)
    tmp = directory / f".{key}.nc.tmp-{os.getpid()}"
    try:
        dataset.to_netcdf(tmp, engine="netcdf4")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dataset.attrs[STATUS_ATTR] = "built"
    return dataset


def cached_trajectories(directory, config: dict, build: Callable, *, dt: float, grid: Grid, channels):
    """``(trajectories, reused)``: the array ``(N, T, C, *grid.shape)`` that ``build()``
    returns, cached on disk through ``cached_dataset`` (netCDF, keyed by ``config``)
    and labelled by ``trajectory_dataset``; ``reused`` tells whether it came from the
    cache. ``directory=None`` builds without caching."""
    channels = (channels,) if isinstance(channels, str) else tuple(channels)
    if directory is None:
        return np.asarray(build()), False

    def build_dataset():
        return trajectory_dataset(build(), dt=dt, grid=grid, channels=channels, attrs={"config": config})

    ds = cached_dataset(directory, config, build_dataset)
    u = np.stack([ds[c].values for c in channels], axis=2)
    return u, ds.attrs[STATUS_ATTR] == "reused"
