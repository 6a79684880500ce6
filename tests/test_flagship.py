"""The flagship hybrid tasks (heat board, Kolmogorov flow, natural convection) at tiny
sizes: each builds, generates finite reference data of the declared shape whose
initial states meet their constraints, its zero-initialised models are the plain
coarse solver exactly, and bad options are refused with the option named. The
default configs load and build their tasks."""

import dataclasses
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from nnpde import load_config, load_task
from problems import hybrid_convection, hybrid_heat, hybrid_heat_board, hybrid_kolmogorov

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "heat_board": (hybrid_heat_board, dict(resolution=8, factor=2, horizon=2, substeps=1, hidden=4, depth=2)),
    "kolmogorov": (
        hybrid_kolmogorov,
        dict(resolution=8, factor=2, horizon=2, spinup=0.2, spacing=0.1, hidden=4, depth=2),
    ),
    "convection": (hybrid_convection, dict(resolution=8, factor=2, horizon=2, spinup=5e-4, hidden=4, depth=2)),
}
CHANNELS = {"heat_board": 1, "kolmogorov": 2, "convection": 3}


@pytest.fixture(scope="module")
def tiny():
    """Each tiny task with two reference trajectories (generated once)."""
    out = {}
    for name, (module, options) in TINY.items():
        task = module.task(**options)
        out[name] = (task, np.asarray(task.reference(0, 2, task.horizon)))
    return out


# One step of a model, compiled once per model structure (a perturbed network reuses it).
_step = eqx.filter_jit(lambda model, u: model(u))


def _perturbed(model, scale=0.1):
    """``model`` with random (nonzero) network parameters."""
    params, static = eqx.partition(model, nnpde.trainable(model))
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(0)
    # numpy, not jax.random: no kernel to compile per parameter shape (seconds in all)
    leaves = [jnp.asarray(np.asarray(x) + scale * rng.standard_normal(x.shape).astype(x.dtype)) for x in leaves]
    return eqx.combine(jax.tree.unflatten(tree, leaves), static)


@pytest.mark.parametrize("name", list(TINY))
def test_reference_data_is_finite_with_the_declared_shape(tiny, name):
    task, data = tiny[name]
    assert data.shape == (2, task.horizon + 1, CHANNELS[name], 8, 8)
    assert task.baseline.equation.state_shape == data.shape[2:]
    assert np.isfinite(data).all()
    # the two samples are different states, and the flow / temperature evolves
    assert np.abs(data[0, 0] - data[1, 0]).max() > 1e-3
    assert np.abs(data[:, -1] - data[:, 0]).max() > 1e-6
    assert task.name == name and task.target > 0


@pytest.mark.parametrize("name", list(TINY))
def test_zero_initialised_models_are_the_plain_coarse_solver(tiny, name):
    task, data = tiny[name]
    u0 = jnp.asarray(data[0, 0])
    plain = _step(task.baseline, u0)
    for kind in task.kinds:
        model = task.model(kind, seed=3)
        diff = float(jnp.max(jnp.abs(_step(model, u0) - plain)))
        assert diff == 0.0, f"{name} {kind}: differs from the plain solver by {diff}"
        # and a trained (nonzero) network does change the step: the test above is not vacuous
        moved = float(jnp.max(jnp.abs(_step(_perturbed(model), u0) - plain)))
        assert moved > 1e-8, f"{name} {kind}: a nonzero network left the step unchanged ({moved})"


@pytest.mark.parametrize("name", ["kolmogorov", "convection"])
def test_coarse_flows_are_divergence_free_initially_and_after_a_corrected_step(tiny, name):
    task, data = tiny[name]
    eq = task.baseline.equation
    speed = float(np.abs(data[:, 0, :2]).max())
    scale = speed / min(eq.grid.spacing)  # the size of one velocity difference per cell
    initial = max(float(jnp.max(jnp.abs(eq.divergence(jnp.asarray(u))))) for u in data[:, 0])
    assert initial < 1e-12 * scale, f"{name}: coarse initial divergence {initial:.3g} (velocity scale {scale:.3g})"
    corrected = _step(_perturbed(task.model("correction")), jnp.asarray(data[0, 0]))
    after = float(jnp.max(jnp.abs(eq.divergence(corrected))))
    assert after < 1e-12 * scale, f"{name}: divergence after a projected correction {after:.3g}"
    if name == "convection":  # no-penetration: the wall faces (index 0 along the normal) stay at 0
        assert float(jnp.max(jnp.abs(corrected[0, 0]))) == 0.0 and float(jnp.max(jnp.abs(corrected[1, :, 0]))) == 0.0


def test_kolmogorov_symmetries_commute_with_the_solvers():
    """Each declared symmetry of the Kolmogorov task maps a solution to a solution: two
    coarse steps of the mapped state equal the mapped two steps (float64; measured
    1e-16 relative, the same arithmetic in another order), for the coarse 16^2 solver
    and a 32^2 one; it keeps the MAC divergence at round-off and the norm. Two near
    misses are not symmetries and fail the same check by 6e-2 and 0.6: reflecting
    ``x`` without the half-period shift in ``y``, and flipping the sign of ``v`` too.
    ``Task.augment`` appends the images of the trajectories, in order."""
    from problems import kolmogorov

    def near_misses(n):
        flip = (-jnp.arange(n)) % n
        return (
            lambda u: jnp.stack([-u[0][flip], u[1][::-1]]),  # no shift in y
            lambda u: hybrid_kolmogorov.shift_reflect(u) * jnp.array([-1.0, -1.0])[:, None, None],
        )

    for n in (16, 32):
        stepper = nnpde.ProjectedRK(hybrid_kolmogorov.equation(n), dt=hybrid_kolmogorov.DT * 16 / n, method="rk4")
        u = stepper.equation.project(kolmogorov.initial_velocity(kolmogorov.make_grid(n), 3, max_velocity=3.0))

        def step(u, stepper=stepper):
            return _step(stepper, u)  # compiled once per grid, not run op by op

        for _ in range(10):  # a developed, asymmetric state
            u = step(u)

        def mismatch(f, step=step, u=u):
            a, b = step(step(f(u))), f(step(step(u)))
            return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))

        for f in hybrid_kolmogorov.SYMMETRIES:
            assert mismatch(f) < 1e-13, (n, f.__name__, mismatch(f))
            assert float(jnp.max(jnp.abs(stepper.equation.divergence(f(u))))) < 1e-12
            assert float(jnp.linalg.norm(f(u))) == pytest.approx(float(jnp.linalg.norm(u)), rel=1e-14)
        assert all(mismatch(f) > 1e-2 for f in near_misses(n)), [mismatch(f) for f in near_misses(n)]

    task = hybrid_kolmogorov.task(resolution=16, factor=2, horizon=2, spinup=0.2, spacing=0.1, hidden=4, depth=2)
    assert task.symmetries == hybrid_kolmogorov.SYMMETRIES
    trajectories = np.asarray(task.reference(0, 2, 2))
    augmented = task.augment(trajectories)
    assert augmented.shape == (8, *trajectories.shape[1:])
    np.testing.assert_array_equal(augmented[:2], trajectories)
    np.testing.assert_allclose(augmented[2:4], jax.vmap(jax.vmap(hybrid_kolmogorov.shift_reflect))(trajectories))
    # 12^2 has no whole-cell half-period shift (12 / 8 cells): no symmetries declared
    assert hybrid_kolmogorov.task(resolution=12, factor=2, hidden=4, depth=2).symmetries == ()
    with pytest.raises(ValueError, match=r"declares no symmetries.*Fix: set train.augment = false"):
        dataclasses.replace(task, symmetries=()).augment(trajectories)


def test_heat_initial_states_meet_the_wall_conditions():
    """The initial temperatures (``hybrid_heat.initial_states``, shared by the heat board)
    satisfy T = 0 at y = 0 and dT/dn = 0 on the other walls: the wall value and the
    normal derivative of the quadratic through the three cells next to each wall vanish
    at the order of those one-sided formulas (h^3 and h^2: cut 8x and 4x per halving)."""

    def residuals(n):
        u = np.asarray(hybrid_heat.initial_states(jax.random.key(0), 1, n)[0, 0])
        h = 1.0 / n
        wall_value = np.abs((15 * u[:, 0] - 10 * u[:, 1] + 3 * u[:, 2]) / 8).max()  # at y = 0
        edges = (u, u[::-1], u.T[::-1])  # x = 0, x = 1, y = 1: cells ordered inwards from the wall
        slope = max(np.abs(-2 * e[0] + 3 * e[1] - e[2]).max() for e in edges) / h
        return wall_value, slope

    (v32, s32), (v64, s64) = residuals(32), residuals(64)
    assert v64 < v32 / 6, f"wall value {v32:.3g} -> {v64:.3g}"
    assert s64 < s32 / 3.5, f"wall slope {s32:.3g} -> {s64:.3g}"


def test_heat_board_traces_are_finer_than_the_coarse_grid():
    """Copper traces one fine cell wide: every coarse cell they cross holds both copper and
    laminate, so its block-averaged conductivity lies strictly between the two."""
    task = hybrid_heat_board.task(**TINY["heat_board"][1])
    fine = np.asarray(hybrid_heat_board.conductivity(16))
    coarse = np.asarray(task.baseline.equation.conductivity)
    assert set(np.unique(fine)) == {1.0, hybrid_heat_board.K_COPPER}
    crossed = coarse > 1.0
    assert crossed.any() and (coarse[crossed] < hybrid_heat_board.K_COPPER).all()
    assert math.isclose(coarse.mean(), fine.mean(), rel_tol=1e-12)  # the arithmetic (block) average


@pytest.mark.parametrize(
    ("module", "options", "named"),
    [
        (hybrid_heat_board, dict(resolution=2), "resolution"),
        (hybrid_heat_board, dict(factor=1), "factor"),
        (hybrid_heat_board, dict(substeps=0), "substeps"),
        (hybrid_kolmogorov, dict(horizon=0), "horizon"),
        (hybrid_kolmogorov, dict(spacing=0.0), "spacing"),
        (hybrid_kolmogorov, dict(factor=True), "factor"),
        (hybrid_convection, dict(rayleigh=-1.0), "rayleigh"),
        (hybrid_convection, dict(spinup=float("nan")), "spinup"),
        (hybrid_convection, dict(hidden=0), "hidden"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(module, options, named):
    with pytest.raises(ValueError, match=rf"^{named} must be .*got .*Fix:"):
        module.task(**options)


@pytest.mark.parametrize("name", ["heat_board", "kolmogorov", "convection"])
def test_default_configs_load_and_build_their_tasks(name):
    config = load_config(ROOT / f"scripts/configs/{name}.toml")
    task = load_task(config)  # checks options, model kind and unroll <= horizon
    assert task.name == name and config.model.kind in task.kinds


def test_equivalent_resolution_is_the_log_log_crossing():
    """``scripts/kolmogorov_resolution.py``: where the plain solver's error curve (linear
    between measured points in log-log) meets the hybrid's error, and the time there."""
    import importlib.util
    import math

    spec = importlib.util.spec_from_file_location("kolmogorov_resolution", ROOT / "scripts/kolmogorov_resolution.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    resolutions, errors = [16, 32, 64], [0.4, 0.1, 0.025]
    assert study.crossing(0.1, resolutions, errors) == pytest.approx(32)
    assert study.crossing(0.2, resolutions, errors) == pytest.approx(16 * math.sqrt(2))  # halfway in log
    assert study.crossing(0.05, resolutions, errors) == pytest.approx(32 * math.sqrt(2))
    assert study.crossing(0.01, resolutions, errors) is None  # finer than any measured grid
    assert study.crossing(0.5, resolutions, errors) is None  # worse than the coarsest
    assert study.interpolate_loglog(32 * math.sqrt(2), resolutions, [1.0, 4.0, 16.0]) == pytest.approx(8.0)


def test_kolmogorov_information_study_runs_and_refuses_bad_grids(tmp_path, monkeypatch):
    """``scripts/kolmogorov_information.py`` on a tiny set-up (8^2 coarse, 32^2 reference):
    a row per resolution below the reference, finite errors, the sub-grid energy shrinking
    with resolution, and the JSON written; a coarse grid that is no multiple of 8 is
    refused before any work."""
    import importlib.util
    import json
    import sys

    spec = importlib.util.spec_from_file_location("kolmogorov_information", ROOT / "scripts/kolmogorov_information.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    out = tmp_path / "info"
    argv = ["x", "--coarse", "8", "--factor", "4", "--samples", "2", "--time", "0.16", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    assert study.main() == 0
    rows = json.loads((out / "information.json").read_text())["rows"]
    assert [r["resolution"] for r in rows] == [8, 16]
    assert all(0 < r["plain"] < 2 and 0 < r["reference_from_state"] < 2 for r in rows)
    assert 0 < rows[1]["subgrid_energy_fraction"] < rows[0]["subgrid_energy_fraction"] < 1
    monkeypatch.setattr(sys, "argv", ["x", "--coarse", "12"])
    with pytest.raises(SystemExit, match="multiple of 8"):
        study.main()


def test_kolmogorov_time_step_option_sets_both_solvers_and_the_cache_key():
    """``dt`` (for a finer coarse grid at the same CFL number): the coarse step, the
    correction's scale, the data's key and the reference's ``dt / factor``; refused when
    not a positive finite number, and a step too long for the reference is refused by
    its stability check before any data are made."""
    task = hybrid_kolmogorov.task(
        resolution=8, factor=2, horizon=2, spinup=0.2, spacing=0.1, hidden=4, depth=2, dt=0.02
    )
    assert task.dt == 0.02 and task.build_model("correction", 0).scale == 0.02
    assert task.dataset_config(0, 1, 2)["dt"] == 0.02
    default = hybrid_kolmogorov.task(resolution=8, factor=2, horizon=2, spinup=0.2, spacing=0.1, hidden=4, depth=2)
    assert default.dt == hybrid_kolmogorov.DT and default.dataset_config(0, 1, 2)["dt"] == hybrid_kolmogorov.DT
    # two coarse steps of dt are 2 * factor reference steps of dt / factor
    a = np.asarray(task.reference(0, 1, 2))
    b = np.asarray(default.reference(0, 1, 1))
    assert a.shape == (1, 3, 2, 8, 8)
    change = float(np.max(np.abs(b[:, 1] - b[:, 0])))  # one step of the default dt
    # the same states (the spin-up is in time units; its fine steps differ, hence 1e-3)
    assert float(np.max(np.abs(a[:, 0] - b[:, 0]))) < 1e-3 * change
    assert float(np.max(np.abs(a[:, 2] - b[:, 1]))) < 1e-3 * change  # both at t = 0.04
    assert float(np.max(np.abs(a[:, 1] - b[:, 1]))) > 0.3 * change  # t = 0.02 is not t = 0.04
    for bad in (0.0, -0.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"dt must be a positive finite number.*Fix"):
            hybrid_kolmogorov.task(resolution=8, factor=2, dt=bad)
    with pytest.raises(Exception, match=r"exceeds the advective-viscous \(CFL\) stability limit.*Fix: reduce dt"):
        hybrid_kolmogorov.task(resolution=8, factor=2, horizon=2, spinup=0.2, spacing=1.0, dt=2.0).reference(0, 1, 2)
