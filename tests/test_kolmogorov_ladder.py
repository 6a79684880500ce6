"""The Kolmogorov ladder's data at toy size: spin-up, prolongation, settling and the
kept restriction, resumable stage by stage."""

import jax.numpy as jnp
import numpy as np

from problems import kolmogorov_ladder as ladder


def test_training_data_at_toy_size_is_divergence_free_restricted_and_resumable(tmp_path):
    settings = dict(seeds=(0, 1), resolution=64, duration=0.04, spinup=0.08, settle=0.02, spinup_resolution=32)
    data = ladder.training_data(tmp_path, keep=32, **settings)
    assert data.shape == (2, 3, 2, 32, 32)  # seeds, saves every dt(32) = 0.02 over 0.04 (+ the start), MAC state
    assert np.all(np.isfinite(data)) and float(np.max(np.abs(data))) > 0.1
    eq = ladder.stepper(32).equation
    assert max(float(np.max(np.abs(eq.divergence(jnp.asarray(u))))) for u in data.reshape(-1, 2, 32, 32)) < 1e-4
    assert data[0, 0].std() != data[1, 0].std()  # independent seeds
    files = sorted(p.name for p in tmp_path.iterdir())
    assert any(f.startswith("spinup32_") for f in files) and any(f.startswith("settle64_") for f in files)
    again = ladder.training_data(tmp_path, keep=32, **settings)  # every stage read back, not recomputed
    np.testing.assert_array_equal(again, data)


def test_ladder_steps_keep_the_cfl_number_and_refuse_fractional_durations():
    assert [ladder.dt(n) * n for n in ladder.LADDER] == [0.64] * len(ladder.LADDER)
    try:
        ladder.training_data(
            "/nonexistent-never-used", duration=0.03, seeds=(0,), resolution=32, spinup=0.02, settle=0.02
        )
    except ValueError as error:
        assert "multiple" in str(error) or "whole number" in str(error)
    else:
        raise AssertionError("a duration that is not a whole number of saves was accepted")


def test_truth_segments_join_into_one_run_with_full_states_at_each_held_out_start(tmp_path, monkeypatch):
    monkeypatch.setattr(ladder, "STATES_PER_SEED", 2)
    monkeypatch.setattr(ladder, "EVAL_SPACING", 0.04)
    monkeypatch.setattr(ladder, "EVAL_HORIZON", 0.08)
    monkeypatch.setattr(ladder, "EVAL_INTERVAL", 0.02)
    runs, starts = ladder.truth(tmp_path, seeds=(5,), resolution=32, keep=16, spinup=0.04, settle=0.04)
    assert runs.shape == (1, 2 + 4 + 1, 2, 16, 16) and starts.shape == (1, 2, 2, 32, 32)
    np.testing.assert_allclose(ladder.restrict(jnp.asarray(starts[0, 1]), 16), runs[0, 2], atol=1e-12)
    windows = ladder.held_out(runs)
    assert windows.shape == (2, 5, 2, 16, 16)
    np.testing.assert_array_equal(windows[1, 0], runs[0, 2])
