"""Training data (nnpde.hybrid._data): conservative downsampling, batched trajectory
generation against a Python loop, xarray labelling, and the configuration-keyed
netCDF cache (reuse, regeneration, atomic writes)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import nnpde
from nnpde.hybrid import _data


def test_downsample_is_exact_for_piecewise_constant_fields_and_keeps_the_mean():
    coarse = np.random.default_rng(0).standard_normal((3, 2, 4, 5))  # (T, C, 4, 5)
    fine = np.repeat(np.repeat(coarse, 3, axis=-2), 3, axis=-1)  # constant on 3x3 blocks
    restored = _data.downsample(fine, 3, ndim=2)
    assert restored.shape == coarse.shape
    err = float(np.max(np.abs(restored - coarse)))
    assert err < 1e-14, f"max error {err}"
    u = np.random.default_rng(1).standard_normal((2, 8, 16, 4))
    d = _data.downsample(u, 2, ndim=3)
    assert d.shape == (2, 4, 8, 2)
    drift = np.abs(np.mean(d, axis=(1, 2, 3)) - np.mean(u, axis=(1, 2, 3)))
    assert drift.max() < 1e-14, f"mean changed by {drift}"
    assert _data.downsample(u, 1, ndim=3) is not None
    with pytest.raises(ValueError, match="not divisible by factor=3"):
        _data.downsample(u, 3, ndim=2)
    with pytest.raises(ValueError, match="positive integer"):
        _data.downsample(u, 0, ndim=2)


def test_staggered_downsample_keeps_a_mac_velocity_divergence_free():
    """Face averaging (stagger) restricts a divergence-free MAC field to a divergence-free
    coarse one; the cell-centred block average of the same field does not."""
    from problems import kolmogorov
    from solvers import pressure

    fine_grid, coarse_grid = kolmogorov.make_grid(32), kolmogorov.make_grid(8)
    bc = kolmogorov.make_equation(coarse_grid).flow.bc
    u = kolmogorov.initial_velocity(fine_grid, 3, max_velocity=1.0)
    assert float(jnp.max(jnp.abs(pressure.divergence(u, fine_grid, bc)))) < 1e-12
    faces = _data.downsample(u, 4, ndim=2, stagger=(0, 1))
    blocks = _data.downsample(u, 4, ndim=2)
    div_faces = float(jnp.max(jnp.abs(pressure.divergence(faces, coarse_grid, bc))))
    div_blocks = float(jnp.max(jnp.abs(pressure.divergence(blocks, coarse_grid, bc))))
    assert faces.shape == (2, 8, 8)
    assert div_faces < 1e-12 and div_blocks > 1e-3, f"face average {div_faces:.3g}, block average {div_blocks:.3g}"
    # a coarse u-face value is the mean of the fine u on the fine faces that make it up
    assert abs(float(faces[0, 1, 2]) - float(jnp.mean(u[0, 4, 8:12]))) < 1e-14
    # a cell-centred channel is block-averaged as without stagger; leading axes pass through
    state = jnp.concatenate([u, u[:1] ** 2])[None]
    mixed = _data.downsample(state, 4, ndim=2, stagger=(0, 1, None))
    assert float(jnp.max(jnp.abs(mixed[0, 2] - _data.downsample(u[0] ** 2, 4, ndim=2)))) < 1e-14
    assert float(jnp.max(jnp.abs(mixed[0, :2] - faces))) == 0.0
    with pytest.raises(ValueError, match=r"stagger must give, for each of the 2 channels.*Fix"):
        _data.downsample(u, 4, ndim=2, stagger=(0,))
    with pytest.raises(ValueError, match="stagger"):
        _data.downsample(u, 4, ndim=2, stagger=(0, 2))


def test_upsample_is_undone_by_downsample_and_keeps_a_mac_velocity_divergence_free():
    """``upsample`` is the right inverse of ``downsample`` (cell-centred and MAC); a
    divergence-free coarse MAC velocity prolongs to a divergence-free fine one, linear
    along each face axis; a coarse field's fine copy has no sub-grid detail left."""
    from problems import kolmogorov
    from solvers import pressure

    coarse_grid, fine_grid = kolmogorov.make_grid(8), kolmogorov.make_grid(32)
    bc = kolmogorov.make_equation(coarse_grid).flow.bc
    U = kolmogorov.initial_velocity(coarse_grid, 5, max_velocity=1.0)
    assert float(jnp.max(jnp.abs(pressure.divergence(U, coarse_grid, bc)))) < 1e-12
    u = _data.upsample(U, 4, ndim=2, stagger=(0, 1))
    assert u.shape == (2, 32, 32)
    div = float(jnp.max(jnp.abs(pressure.divergence(u, fine_grid, bc))))
    assert div < 1e-12, f"fine divergence {div:.3g}"
    back = float(jnp.max(jnp.abs(_data.downsample(u, 4, ndim=2, stagger=(0, 1)) - U)))
    assert back < 1e-14, f"downsample(upsample(U)) - U: {back:.3g}"
    # u on x-face 4 I + k is (1 - k/4) U[I] + (k/4) U[I + 1] (wrapping), constant in y over a coarse cell
    expected = 0.25 * U[0, 7, 2] + 0.75 * U[0, 0, 2]
    assert abs(float(u[0, 31, 8]) - float(expected)) < 1e-14
    assert float(jnp.max(jnp.abs(u[0, 29, 8:12] - u[0, 29, 8]))) == 0.0
    assert abs(float(u[1, 5, 13]) - float(0.75 * U[1, 1, 3] + 0.25 * U[1, 1, 4])) < 1e-14
    # with sub-grid detail removed, restricting and prolonging again changes nothing
    fine = kolmogorov.initial_velocity(fine_grid, 6, max_velocity=1.0)
    smooth = _data.upsample(_data.downsample(fine, 4, ndim=2, stagger=(0, 1)), 4, ndim=2, stagger=(0, 1))
    again = _data.upsample(_data.downsample(smooth, 4, ndim=2, stagger=(0, 1)), 4, ndim=2, stagger=(0, 1))
    assert float(jnp.max(jnp.abs(again - smooth))) < 1e-14
    assert float(jnp.max(jnp.abs(smooth - fine))) > 1e-2  # the fine field had sub-grid detail
    # cell-centred channels (also mixed with faces, leading axes passing through): constant blocks
    c = jnp.asarray(np.random.default_rng(3).standard_normal((2, 3, 4, 5, 6)))
    up = _data.upsample(c, 2, ndim=3)
    assert up.shape == (2, 3, 8, 10, 12)
    assert float(jnp.max(jnp.abs(_data.downsample(up, 2, ndim=3) - c))) < 1e-14
    assert float(up[1, 2, 7, 9, 11]) == float(c[1, 2, 3, 4, 5])
    mixed = _data.upsample(jnp.concatenate([U, U[:1] ** 2])[None], 4, ndim=2, stagger=(0, 1, None))
    assert float(jnp.max(jnp.abs(mixed[0, :2] - u))) == 0.0
    assert float(jnp.max(jnp.abs(mixed[0, 2] - _data.upsample(U[0] ** 2, 4, ndim=2)))) == 0.0
    with pytest.raises(ValueError, match=r"stagger must give, for each of the 2 channels.*Fix"):
        _data.upsample(U, 4, ndim=2, stagger=(0,))
    with pytest.raises(ValueError, match="positive integer"):
        _data.upsample(U, 0, ndim=2)
    with pytest.raises(ValueError, match="ndim"):
        _data.upsample(U, 2, ndim=4)


def _diffusion_step(u):
    lap = jnp.roll(u, 1, axis=-1) - 2 * u + jnp.roll(u, -1, axis=-1)
    return u + 0.25 * lap


def test_generate_trajectories_matches_a_python_loop():
    u0 = jnp.asarray(np.random.default_rng(2).standard_normal((3, 2, 16)))
    out = _data.generate_trajectories(_diffusion_step, u0, 6, save_every=2, factor=4, ndim=1)
    assert out.shape == (3, 4, 2, 4), f"shape {out.shape}"
    expected = []
    for sample in u0:
        states, u = [sample], sample
        for _ in range(6):
            u = _diffusion_step(u)
            states.append(u)
        expected.append(np.stack([np.asarray(_data.downsample(s, 4, ndim=1)) for s in states[::2]]))
    err = float(np.max(np.abs(np.asarray(out) - np.stack(expected))))
    assert err < 1e-13, f"max difference from the loop {err}"
    full = _data.generate_trajectories(_diffusion_step, u0, 3, ndim=1)
    assert full.shape == (3, 4, 2, 16)
    assert np.array_equal(full[:, 0], u0)


def test_generate_trajectories_runs_a_trained_hybrid_model():
    """A hybrid model as training and checkpoints leave it (partitioned into its trainable
    and static parts and recombined) is a valid ``step``; equinox gives such a stepper,
    whose abstract fields are properties, a placeholder ``__name__`` that ``jax.jit``
    of the stepper itself refuses."""
    from nnpde.hybrid._train import combine, init_train_state, make_optimizer
    from problems import hybrid_kolmogorov

    fresh = hybrid_kolmogorov.task(resolution=8, hidden=4, depth=2).build_model("correction", 0)
    state, static = init_train_state(fresh, make_optimizer(1e-3), seed=0)
    trained = combine(state.params, static)
    u0 = jnp.asarray(hybrid_kolmogorov.kolmogorov.initial_velocity(hybrid_kolmogorov.kolmogorov.make_grid(8), 1))
    a = _data.generate_trajectories(fresh, u0[None], 2, ndim=2)
    b = _data.generate_trajectories(trained, u0[None], 2, ndim=2)
    assert b.shape == (1, 3, 2, 8, 8)
    assert float(jnp.max(jnp.abs(a - b))) == 0.0 and float(jnp.max(jnp.abs(b[0, 2] - b[0, 0]))) > 0


def test_generate_trajectories_rejects_bad_input():
    u0 = jnp.zeros((2, 1, 8))
    with pytest.raises(ValueError, match="multiple of save_every"):
        _data.generate_trajectories(_diffusion_step, u0, 5, save_every=2, ndim=1)
    with pytest.raises(ValueError, match="non-finite"):
        _data.generate_trajectories(_diffusion_step, u0.at[1, 0, 3].set(jnp.nan), 2, ndim=1)
    with pytest.raises(ValueError, match="batch"):
        _data.generate_trajectories(_diffusion_step, u0[0], 2, ndim=1)
    with pytest.raises(ValueError, match="same shape"):
        _data.generate_trajectories(lambda u: u[:, :4], u0, 2, ndim=1)
    with pytest.raises(ValueError, match="not divisible"):
        _data.generate_trajectories(_diffusion_step, u0, 2, factor=3, ndim=1)
    with pytest.raises(ValueError, match="became non-finite"):
        _data.generate_trajectories(lambda u: u / 0.0 * 0.0, u0, 2, ndim=1)
    # scoring a model that may blow up: the run comes back as it is, finite up to its blow-up
    ones = jnp.ones((2, 1, 8))
    blown = _data.generate_trajectories(lambda u: u * 1e300, ones, 2, ndim=1, allow_non_finite=True)
    assert np.all(blown[:, 1] == 1e300) and np.all(np.isinf(blown[:, 2]))
    with pytest.raises(ValueError, match="non-finite"):  # the initial states must be finite still
        _data.generate_trajectories(_diffusion_step, u0.at[1, 0, 3].set(jnp.nan), 2, ndim=1, allow_non_finite=True)


def test_trajectory_dataset_labels_dims_and_coordinates():
    grid = nnpde.Grid((4, 6), ((0.0, 2.0), (0.0, 3.0)))
    u = np.random.default_rng(3).standard_normal((2, 5, 2, 4, 6))
    ds = _data.trajectory_dataset(u, dt=0.1, grid=grid, channels=("u", "v"), attrs={"seed": 3, "tags": ["a"]})
    assert ds["u"].dims == ("sample", "time", "x", "y")
    assert np.array_equal(ds["v"].values, u[:, :, 1])
    assert np.allclose(ds.time, 0.1 * np.arange(5))
    assert np.allclose(ds.x, [0.25, 0.75, 1.25, 1.75]) and np.allclose(ds.y, grid.axis_centres(1))
    assert ds.attrs["seed"] == 3 and json.loads(ds.attrs["tags"]) == ["a"] and ds.attrs["dt"] == 0.1
    with pytest.raises(ValueError, match="channels"):
        _data.trajectory_dataset(u, dt=0.1, grid=grid, channels=("u",))


def _builder(value, calls):
    def build():
        calls.append(value)
        return xr.Dataset({"u": (("time", "x"), np.full((3, 4), float(value)))}, coords={"x": np.arange(4.0)})

    return build


def test_cached_dataset_reuses_an_unchanged_config_and_rebuilds_a_changed_one(tmp_path):
    calls = []
    config = {"resolution": 32, "solver": {"dt": 0.01, "scheme": "rk4"}, "seeds": [0, 1], "fine": True}
    first = _data.cached_dataset(tmp_path, config, _builder(1, calls))
    # key order does not matter: the JSON is canonical
    again = dict(reversed(list(config.items())))
    second = _data.cached_dataset(tmp_path, again, _builder(2, calls))
    assert calls == [1], f"build calls {calls}"
    assert first.attrs["nnpde_cache"] == "built" and second.attrs["nnpde_cache"] == "reused"
    assert np.array_equal(first["u"].values, second["u"].values)
    _, key = _data.config_key(config)
    assert len(key) == 16 and (tmp_path / f"{key}.nc").exists()
    assert json.loads(second.attrs["nnpde_cache_config"]) == config
    changed = {**config, "solver": {"dt": 0.005, "scheme": "rk4"}}
    third = _data.cached_dataset(tmp_path, changed, _builder(3, calls))
    assert calls == [1, 3] and third.attrs["nnpde_cache"] == "built"
    assert float(third["u"][0, 0]) == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{key}.nc", f"{_data.config_key(changed)[1]}.nc"])


def test_cached_dataset_regenerates_a_stale_file(tmp_path):
    config = {"n": 1}
    _, key = _data.config_key(config)
    stale = xr.Dataset({"u": ("x", np.zeros(2))}, attrs={"nnpde_cache_config": json.dumps({"n": 2})})
    stale.to_netcdf(tmp_path / f"{key}.nc", engine="netcdf4")
    calls = []
    ds = _data.cached_dataset(tmp_path, config, _builder(5, calls))
    assert calls == [5] and ds.attrs["nnpde_cache"] == "built"
    reloaded = xr.load_dataset(tmp_path / f"{key}.nc", engine="netcdf4")
    assert float(reloaded["u"][0, 0]) == 5.0 and reloaded.attrs["nnpde_cache_config"] == '{"n":1}'
    # a truncated (unreadable) file is rebuilt as well
    (tmp_path / f"{key}.nc").write_bytes(b"CDF\x01 truncated")
    ds = _data.cached_dataset(tmp_path, config, _builder(6, calls))
    assert calls == [5, 6] and float(ds["u"][0, 0]) == 6.0


def test_cached_dataset_rejects_unserialisable_configs(tmp_path):
    with pytest.raises(TypeError, match=r"config\['solver'\]\['dt'\] is a numpy.ndarray"):
        _data.cached_dataset(tmp_path, {"solver": {"dt": np.array([0.1])}}, _builder(0, []))
    with pytest.raises(TypeError, match=r"config\['grid'\]\[1\]"):
        _data.cached_dataset(tmp_path, {"grid": [32, object()]}, _builder(0, []))
    with pytest.raises(ValueError, match=r"config\['nu'\] is nan"):
        _data.cached_dataset(tmp_path, {"nu": float("nan")}, _builder(0, []))
    assert list(tmp_path.iterdir()) == []


def test_cached_dataset_leaves_nothing_behind_when_build_or_write_fails(tmp_path):
    def failing():
        raise RuntimeError("solver diverged")

    with pytest.raises(RuntimeError, match="solver diverged"):
        _data.cached_dataset(tmp_path, {"n": 1}, failing)
    assert list(tmp_path.iterdir()) == []

    def unwritable():  # netCDF cannot store a dict attribute: to_netcdf fails mid-write
        return xr.Dataset({"u": ("x", np.zeros(3))}, attrs={"bad": {"a": 1}})

    with pytest.raises((TypeError, ValueError)):
        _data.cached_dataset(tmp_path, {"n": 2}, unwritable)
    assert list(tmp_path.iterdir()) == [], f"left behind: {list(tmp_path.iterdir())}"


def test_cached_dataset_interrupted_before_the_rename_keeps_no_partial_file(tmp_path, monkeypatch):
    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(_data.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        _data.cached_dataset(tmp_path, {"n": 3}, _builder(1, []))
    assert list(tmp_path.iterdir()) == [], f"left behind: {list(tmp_path.iterdir())}"
