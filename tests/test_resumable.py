"""resumable_rollout: long batched reference runs that continue bitwise after a kill."""

import numpy as np
import pytest

import nnpde
import solvers


def _stepper():
    grid = nnpde.Grid((32,), extent=((0.0, 2 * np.pi),))
    eq = solvers.Burgers(grid, nnpde.BoundaryConditions.periodic(1), viscosity=0.05)
    return nnpde.ExplicitRK(eq, dt=0.02, method="ssprk3"), grid


def _initial(grid):
    (x,) = grid.cell_centres()
    return np.stack([np.sin(x)[None], 0.5 * np.cos(2 * x)[None] + 0.2])


def test_batched_rollout_keeps_every_save_and_matches_the_plain_rollout(tmp_path):
    stepper, grid = _stepper()
    u0 = _initial(grid)
    kept = nnpde.resumable_rollout(stepper, u0, 7, save_every=3, path=tmp_path / "run.npz", chunk=3)
    assert kept.shape == (2, 8, 1, 32)
    for b in range(2):
        plain = nnpde.rollout(stepper, u0[b], 21, include_init=True)[::3]
        np.testing.assert_allclose(kept[b], plain, rtol=0, atol=1e-13)
    # transform: what is kept is the restriction, the run itself continues on the full state
    coarse = nnpde.resumable_rollout(
        stepper,
        u0,
        7,
        save_every=3,
        path=tmp_path / "coarse.npz",
        chunk=3,
        transform=lambda u: nnpde.downsample(u, 4, ndim=1),
    )
    np.testing.assert_allclose(coarse, np.stack([nnpde.downsample(k, 4, ndim=1) for k in kept]), atol=1e-13)


def test_a_killed_run_continues_bitwise_and_a_finished_one_is_only_read(tmp_path):
    stepper, grid = _stepper()
    u0 = _initial(grid)
    whole = nnpde.resumable_rollout(stepper, u0, 10, save_every=2, path=tmp_path / "whole.npz", chunk=4)

    def kill_after_first_chunk(done, total, seconds):
        assert 0 < done < total and seconds >= 0
        raise KeyboardInterrupt

    path = tmp_path / "killed.npz"
    with pytest.raises(KeyboardInterrupt):
        nnpde.resumable_rollout(stepper, u0, 10, save_every=2, path=path, chunk=4, progress=kill_after_first_chunk)
    with np.load(path) as partial:
        assert int(partial["done"]) == 4
    calls = []
    resumed = nnpde.resumable_rollout(
        stepper, u0, 10, save_every=2, path=path, chunk=4, progress=lambda d, n, s: calls.append(d)
    )
    assert calls == [8, 10]  # it continued from save 4
    np.testing.assert_array_equal(resumed, whole)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind
    again = nnpde.resumable_rollout(
        stepper, u0, 10, save_every=2, path=path, chunk=4, progress=lambda d, n, s: calls.append(-1)
    )
    np.testing.assert_array_equal(again, whole)
    assert calls == [8, 10]  # read back, no step taken


def test_a_file_of_another_run_is_refused(tmp_path):
    stepper, grid = _stepper()
    u0 = _initial(grid)
    path = tmp_path / "run.npz"
    nnpde.resumable_rollout(stepper, u0, 2, save_every=1, path=path)
    with pytest.raises(ValueError, match=r"other initial states or settings.*delete the file"):
        nnpde.resumable_rollout(stepper, u0 * 1.1, 2, save_every=1, path=path)
    with pytest.raises(ValueError, match="other initial states or settings"):
        nnpde.resumable_rollout(stepper, u0, 2, save_every=2, path=path)
    with pytest.raises(ValueError, match=r"\(runs, \*state\)"):
        nnpde.resumable_rollout(stepper, u0[0], 2, save_every=1, path=tmp_path / "other.npz")
