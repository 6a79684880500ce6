"""Hybrid couplings, losses and the training step: exactness at initialisation,
gradients against finite differences, what trains, and bad configurations."""

from __future__ import annotations

import functools
import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nnpde
import solvers
from nnpde import networks
from solvers.burgers import Burgers

F64 = jnp.float64


def burgers(n=32, nu=0.05):
    grid = nnpde.Grid((n,), extent=((0.0, 2 * math.pi),))
    return Burgers(grid, nnpde.BoundaryConditions.periodic(1), viscosity=nu, scheme="van_leer")


def heat_2d(n=12):
    grid = nnpde.Grid((n, n), extent=((0.0, 1.0), (0.0, 1.0)))
    bc = nnpde.BoundaryConditions(nnpde.Neumann(0.0), (nnpde.Dirichlet(0.0), nnpde.Neumann(0.0)))
    return solvers.HeatEquation(grid, bc, conductivity=0.1)


def conv(in_ch, out_ch, ndim, periodic, *, zero_init=False, seed=0, hidden=8, depth=2):
    return nnpde.Network(
        networks.ConvNet(
            in_ch,
            out_ch,
            ndim=ndim,
            periodic=periodic,
            hidden=hidden,
            depth=depth,
            kernel_size=3,
            zero_init=zero_init,
            param_dtype=F64,
            rngs=nnx.Rngs(seed),
        )
    )


def mlp(n_in, n_out, *, zero_init=False, seed=0):
    return nnpde.Network(
        networks.MLP(n_in, n_out, hidden=8, depth=2, zero_init=zero_init, param_dtype=F64, rngs=nnx.Rngs(seed))
    )


def wave(n, phase=0.0):
    x = (jnp.arange(n) + 0.5) * 2 * math.pi / n
    return (jnp.sin(x + phase) + 0.3 * jnp.cos(2 * x))[None]


def field_2d(n, seed=0):
    x = (jnp.arange(n) + 0.5) / n
    a = jax.random.normal(jax.random.key(seed), (3,))
    return (a[0] * jnp.cos(jnp.pi * x)[:, None] * jnp.cos(0.5 * jnp.pi * x)[None] + a[1] * x[:, None] * x[None])[None]


# -- exactness at initialisation ----------------------------------------------------


def test_zero_initialised_couplings_reproduce_the_solver_exactly():
    eq = burgers()
    stepper = nnpde.ExplicitRK(eq, dt=0.02, method="ssprk3")
    u0 = wave(32)
    plain = nnpde.rollout(stepper, u0, 20)
    corrected = nnpde.CorrectedStepper(stepper, conv(1, 1, 1, (True,), zero_init=True), scale=0.02)
    closure = nnpde.ExplicitRK(
        nnpde.ClosureEquation(eq, conv(1, 1, 1, (True,), zero_init=True)), dt=0.02, method="ssprk3"
    )
    flux = nnpde.ExplicitRK(
        nnpde.ClosureEquation(eq, conv(1, 1, 1, (True,), zero_init=True), form="flux"), dt=0.02, method="ssprk3"
    )
    source = nnpde.ExplicitRK(nnpde.NeuralSource(eq, mlp(1, 1, zero_init=True)), dt=0.02, method="ssprk3")
    for name, model in [("correction", corrected), ("closure", closure), ("flux closure", flux), ("source", source)]:
        out = nnpde.rollout(model, u0, 20)
        assert jnp.array_equal(out, plain), f"{name}: max difference {float(jnp.max(jnp.abs(out - plain)))}"
    emulator = nnpde.Emulator(conv(1, 1, 1, (True,), zero_init=True), equation=eq, dt=0.02)
    assert jnp.array_equal(nnpde.rollout(emulator, u0, 5)[-1], u0)


def test_learned_coefficient_matches_the_equation_with_that_field():
    eq = heat_2d()
    coefficient = nnpde.LearnedCoefficient(eq, mlp(2, 1, seed=3), where=lambda e: e.conductivity)
    k = coefficient.field()
    assert k.shape == eq.grid.shape and bool(jnp.all(k > 0))
    direct = solvers.HeatEquation(eq.grid, eq.bc, conductivity=k)
    u = field_2d(12)
    np.testing.assert_allclose(coefficient(0.0, u), direct(0.0, u), rtol=1e-13, atol=1e-13)
    # the resolved equation drives an implicit stepper
    implicit = nnpde.ThetaMethod(coefficient.resolve(), dt=0.01)
    step = jax.jit(lambda s, u: s(u))
    np.testing.assert_allclose(step(implicit, u), step(nnpde.ThetaMethod(direct, dt=0.01), u), rtol=1e-10, atol=1e-12)


def test_flux_closure_conserves_the_total_exactly():
    for eq, periodic, u in [
        (burgers(), (True,), wave(32)),
        (heat_2d(), (False, False), field_2d(12)),
    ]:
        ndim = eq.grid.ndim
        closure = nnpde.ClosureEquation(eq, conv(1, ndim, ndim, periodic, seed=1), form="flux", periodic=periodic)
        rate = closure.closure(u)
        magnitude = float(jnp.max(jnp.abs(rate)))
        assert magnitude > 1e-3, "the closure should do something"
        total = float(jnp.sum(rate)) * eq.grid.cell_volume
        assert abs(total) < 1e-13 * magnitude, f"closure creates {total} (rate magnitude {magnitude})"


# -- gradients of every loss against finite differences ------------------------------


def _directional_check(loss, params, *, seed=0, eps=1e-6):
    """Relative error of the gradient's projection on a random direction against a
    central finite difference of the loss along it."""
    loss = jax.jit(loss)
    grads = jax.jit(jax.grad(loss))(params)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    direction = jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])

    def shifted(s):
        return loss(jax.tree.map(lambda p, d: p + s * d, params, direction))

    fd = (shifted(eps) - shifted(-eps)) / (2 * eps)
    ad = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
    return float(abs(ad - fd) / max(abs(fd), 1e-30)), float(ad)


def _slope(u):
    """A derived quantity of a periodic 1-D state ``(1, n)``: its forward difference."""
    return jnp.roll(u, -1, axis=-1) - u


def test_unrolled_loss_compares_an_observable_of_the_states():
    eq = burgers()
    stepper = nnpde.ExplicitRK(eq, dt=0.02, method="ssprk3")
    starts = jnp.stack([wave(32, p) for p in (0.0, 1.0)])
    trajectories = jax.vmap(lambda u: nnpde.rollout(stepper, u, 3, include_init=True))(starts)
    targets = trajectories + 0.01 * jnp.sin(3 * jnp.arange(32.0))  # the plain solver misses these
    loss = nnpde.unrolled_loss(stepper, targets, observable=_slope)
    predicted = jax.vmap(lambda u: nnpde.rollout(stepper, u, 3))(targets[:, 0])
    g, h = _slope(predicted), _slope(targets[:, 1:])
    expected = jnp.mean(jnp.mean((g - h) ** 2, axis=(2, 3)) / jnp.mean(h**2, axis=(2, 3)))
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    identity = nnpde.unrolled_loss(stepper, targets, observable=lambda u: u)
    np.testing.assert_allclose(identity, nnpde.unrolled_loss(stepper, targets), rtol=1e-6)
    assert not np.isclose(loss, identity, rtol=1e-2)  # the slope weighs the errors otherwise
    with pytest.raises(TypeError, match="observable"):  # (the suite's type checker may refuse it first)
        nnpde.unrolled_loss(stepper, targets, observable="vorticity")


def _shells(u):
    """Energy per shell 1..8 of a periodic 1-D state ``(1, 32)`` on ``[0, 2 pi)``."""
    return nnpde.metrics.energy_spectrum(u, 2 * math.pi / 32)[1][1:9]


def test_unrolled_loss_spectrum_term_charges_energy_per_scale_not_phase():
    """The spectrum term of ``unrolled_loss``: zero for a reference that is the rollout
    shifted in space (same energy per scale, all phases wrong), exactly
    ``weight * (2 log c)^2`` for one scaled by ``c`` at every step, and refused when
    it is asked for without a spectrum or with a bad weight."""
    eq = burgers()
    stepper = nnpde.ExplicitRK(eq, dt=0.02, method="ssprk3")
    starts = jnp.stack([wave(32, p) for p in (0.0, 1.0)])
    trajectories = jax.vmap(lambda u: nnpde.rollout(stepper, u, 4, include_init=True))(starts)
    shifted = jnp.concatenate([trajectories[:, :1], jnp.roll(trajectories[:, 1:], 7, axis=-1)], axis=1)
    plain = nnpde.unrolled_loss(stepper, shifted)
    assert plain > 0.1  # the squared error sees the wrong phases
    with_term = nnpde.unrolled_loss(stepper, shifted, spectrum=_shells, spectrum_weight=10.0)
    np.testing.assert_allclose(with_term, plain, rtol=1e-5)  # the spectra agree: no charge
    c = 1.1
    scaled = jnp.concatenate([trajectories[:, :1], c * trajectories[:, 1:]], axis=1)
    weights = [1.0, 2.0, 3.0, 4.0]
    plain = nnpde.unrolled_loss(stepper, scaled, weights=weights)
    with_term = nnpde.unrolled_loss(stepper, scaled, weights=weights, spectrum=_shells, spectrum_weight=0.5)
    np.testing.assert_allclose(with_term - plain, 0.5 * (2 * math.log(c)) ** 2, rtol=1e-4)
    with pytest.raises(ValueError, match=r"spectrum_weight=0\.5 weighs a spectrum term, but spectrum is None"):
        nnpde.unrolled_loss(stepper, scaled, spectrum_weight=0.5)
    with pytest.raises(ValueError, match=r"spectrum_weight must be a finite number >= 0, got -1.0"):
        nnpde.unrolled_loss(stepper, scaled, spectrum=_shells, spectrum_weight=-1.0)
    with pytest.raises(TypeError, match="spectrum"):  # (the suite's type checker may refuse it first)
        nnpde.unrolled_loss(stepper, scaled, spectrum="energy", spectrum_weight=1.0)


def _loss_cases():
    eq = burgers()
    stepper = nnpde.ExplicitRK(eq, dt=0.02, method="ssprk3")
    trajectories = jnp.stack([nnpde.rollout(stepper, wave(32, p), 6, include_init=True) for p in (0.0, 1.0)])
    corrected = nnpde.CorrectedStepper(stepper, conv(1, 1, 1, (True,), seed=2), scale=0.02)
    closure = nnpde.ExplicitRK(nnpde.ClosureEquation(eq, conv(1, 1, 1, (True,), seed=3)), dt=0.02, method="ssprk3")
    emulator = nnpde.Emulator(conv(1, 1, 1, (True,), seed=4), equation=eq, dt=0.02, scale=0.02)
    targets = trajectories + 0.01 * jnp.sin(jnp.arange(32.0))  # a model that must learn something
    heat = heat_2d()
    states = jnp.stack([field_2d(12, s) for s in range(2)])
    key = jax.random.key(5)
    yield "one-step", corrected, lambda m: nnpde.one_step_loss(m, targets[:, 0], targets[:, 1])
    yield "unrolled", corrected, lambda m: nnpde.unrolled_loss(m, targets, weights=[1, 2, 3, 4, 5, 6])
    yield "unrolled-checkpointed", closure, lambda m: nnpde.unrolled_loss(m, targets, n_steps=4, checkpoint="sqrt")
    yield "unrolled-noise", corrected, lambda m: nnpde.unrolled_loss(m, targets, n_steps=3, noise=0.1, key=key)
    yield "unrolled-observable", corrected, lambda m: nnpde.unrolled_loss(m, targets, n_steps=3, observable=_slope)
    yield (
        "unrolled-spectrum",
        corrected,
        lambda m: nnpde.unrolled_loss(m, targets, n_steps=3, spectrum=_shells, spectrum_weight=3.0),
    )
    yield (
        "residual",
        emulator,
        lambda m: nnpde.residual_loss(
            stepper, jax.vmap(lambda u: nnpde.rollout(m, u, 4, include_init=True))(targets[:, 0])
        ),
    )
    field = nnpde.LearnedCoefficient(heat, mlp(2, 1, seed=6), where=lambda e: e.conductivity, scale=0.1)
    yield "steady-residual", field, lambda m: nnpde.steady_residual_loss(m, states, scale=1e-2)
    pinn = mlp(2, 1, seed=7)

    def heat_residual(u, x):  # u_t - 0.1 u_xx at x = (position, time)
        return jax.grad(u)(x)[1] - 0.1 * jax.hessian(u)(x)[0, 0]

    points = jax.random.uniform(jax.random.key(8), (16, 2))
    yield "pinn", pinn, lambda m: nnpde.pinn_loss(m, heat_residual, points)
    combined = nnpde.weighted_sum(
        {
            "data": (1.0, lambda m: nnpde.one_step_loss(m, targets[:, 0], targets[:, 1])),
            "unrolled": (0.5, lambda m: nnpde.unrolled_loss(m, targets, n_steps=2)),
        }
    )
    yield "weighted-sum", corrected, lambda m: combined(m)[0]


@functools.cache
def _loss_case_list() -> tuple:
    """``_loss_cases()``, built once for the module's tests (each case's test would
    otherwise build all ten, their data rollout included)."""
    return tuple(_loss_cases())


@pytest.mark.parametrize("case", list(range(10)))
def test_loss_gradient_matches_finite_differences(case):
    name, model, loss = _loss_case_list()[case]
    params, static = nnpde.partition(model)
    error, ad = _directional_check(lambda p: loss(nnpde.combine(p, static)), params)
    print(f"{name}: directional derivative {ad:.6e}, relative error {error:.2e}")
    assert ad != 0.0, f"{name}: the gradient vanishes"
    assert error < 1e-6, f"{name}: gradient relative error {error:.2e}"


def test_stop_physics_gradient_changes_only_the_path_through_the_solver():
    eq = burgers()
    stepper = nnpde.ExplicitRK(eq, dt=0.02, method="ssprk3")
    traj = jnp.stack([nnpde.rollout(stepper, wave(32) * 1.1, 4, include_init=True)])
    model = nnpde.CorrectedStepper(stepper, conv(1, 1, 1, (True,), seed=2), scale=0.02)
    params, static = nnpde.partition(model)

    def grad(stop, n):
        loss = lambda p: nnpde.unrolled_loss(nnpde.combine(p, static), traj, n_steps=n, stop_physics=stop)  # noqa: E731
        return jax.jit(jax.grad(loss))(params)

    one_full, one_stopped = grad(False, 1), grad(True, 1)
    for a, b in zip(jax.tree.leaves(one_full), jax.tree.leaves(one_stopped)):
        np.testing.assert_array_equal(a, b)  # one step: the network never sees the solver's derivative
    full, stopped = grad(False, 4), grad(True, 4)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(stopped)))
    assert diff > 1e-8, "over several steps the solver's Jacobian must enter the full gradient"
    assert not nnpde.stop_physics_gradient(model).physics_gradient


# -- what trains ----------------------------------------------------------------------


def test_only_networks_train_unless_physics_is_asked_for():
    eq = Burgers(
        nnpde.Grid((32,), extent=((0.0, 2 * math.pi),)),
        nnpde.BoundaryConditions.periodic(1),
        viscosity=jnp.asarray(0.05),
        scheme="van_leer",
    )
    model = nnpde.CorrectedStepper(nnpde.ExplicitRK(eq, dt=0.02), conv(1, 1, 1, (True,)), scale=0.02)
    params, _ = nnpde.partition(model)
    assert params.stepper.equation.viscosity is None
    assert len(jax.tree.leaves(params)) == len(jax.tree.leaves(model.network.params))
    spec = nnpde.trainable(model, physics=[lambda m: m.stepper.equation.viscosity])
    params, _ = nnpde.partition(model, spec)
    assert params.stepper.equation.viscosity is not None

    python_float = nnpde.CorrectedStepper(nnpde.ExplicitRK(burgers(), dt=0.02), conv(1, 1, 1, (True,)))
    with pytest.raises(ValueError, match="floating JAX array"):
        nnpde.trainable(python_float, physics=[lambda m: m.stepper.equation.viscosity])
    with pytest.raises(ValueError, match="Nothing to train"):
        nnpde.trainable(nnpde.ExplicitRK(burgers(), dt=0.02))


def test_physical_viscosity_is_recovered_by_training_it():
    """Gradients through the solver to a physical constant: viscosity from data."""
    grid = nnpde.Grid((32,), extent=((0.0, 2 * math.pi),))

    def stepper(nu):
        eq = Burgers(grid, nnpde.BoundaryConditions.periodic(1), viscosity=nu, scheme="central")
        return nnpde.ExplicitRK(eq, dt=0.02, method="rk4")

    truth = stepper(0.08)
    data = jnp.stack([nnpde.rollout(truth, wave(32, p), 10, include_init=True) for p in (0.0, 2.0)])
    model = nnpde.CorrectedStepper(stepper(jnp.asarray(0.03)), conv(1, 1, 1, (True,), zero_init=True))
    spec = jax.tree.map(lambda _: False, model)
    spec = eqx.tree_at(lambda m: m.stepper.equation.viscosity, spec, True)
    result = nnpde.fit(
        model,
        lambda m, b, k: nnpde.unrolled_loss(m, b),
        data,
        steps=150,
        batch_size=2,
        window=10,
        spec=spec,
        optimizer=nnpde.make_optimizer(3e-3),
        progress=False,
    )
    nu = float(result.model.stepper.equation.viscosity)
    print(f"recovered viscosity {nu:.5f} (true 0.08, start 0.03)")
    assert abs(nu - 0.08) < 1e-3


def test_every_evaluation_reaches_on_evaluation_as_it_is_recorded(tmp_path):
    """``on_evaluation(step, figures)`` sees each evaluation (the periodic ones and the
    final one) once it is in the run's metrics file, with the step and figures of the
    history."""
    grid = nnpde.Grid((16,), extent=((0.0, 2 * math.pi),))
    eq = Burgers(grid, nnpde.BoundaryConditions.periodic(1), viscosity=0.08, scheme="central")
    stepper = nnpde.ExplicitRK(eq, dt=0.02, method="rk4")
    data = jnp.stack([nnpde.rollout(stepper, wave(16, p), 4, include_init=True) for p in (0.0, 2.0)])
    model = nnpde.CorrectedStepper(stepper, conv(1, 1, 1, (True,)))
    seen = []
    unrolled_loss = eqx.filter_jit(nnpde.unrolled_loss)  # each evaluation's loss compiled once, not op by op

    def on_evaluation(step, figures):
        lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
        on_file = [json.loads(line) for line in lines if "eval_loss" in line]
        seen.append((step, figures["loss"], on_file[-1]["step"]))

    result = nnpde.fit(
        model,
        lambda m, b, k: nnpde.unrolled_loss(m, b),
        data,
        steps=5,
        batch_size=2,
        window=2,
        evaluate=lambda m: {"loss": float(unrolled_loss(m, data))},
        eval_every=2,
        on_evaluation=on_evaluation,
        run_dir=tmp_path,
        progress=False,
    )
    recorded = [(e["step"], e["eval_loss"]) for e in result.history if "eval_loss" in e]
    assert [step for step, _, _ in seen] == [2, 4, 5]
    assert [(step, loss) for step, loss, _ in seen] == recorded
    assert all(step == on_file for step, _, on_file in seen)


# -- bad configurations -------------------------------------------------------------


def test_network_that_does_not_fit_the_state_is_refused():
    eq = burgers()
    stepper = nnpde.ExplicitRK(eq, dt=0.02)
    with pytest.raises(ValueError, match=r"\(2, 32\).*needs \(1, 32\)"):
        nnpde.CorrectedStepper(stepper, conv(1, 2, 1, (True,)))
    with pytest.raises(ValueError, match="could not be applied"):
        nnpde.CorrectedStepper(stepper, conv(3, 1, 1, (True,)))
    with pytest.raises(ValueError, match="channels x ndim"):
        nnpde.ClosureEquation(heat_2d(), conv(1, 1, 2, (False, False)), form="flux")
    with pytest.raises(ValueError, match="form must be"):
        nnpde.ClosureEquation(eq, conv(1, 1, 1, (True,)), form="sideways")
    with pytest.raises(ValueError, match=r"could not be applied.*in_features=3"):
        nnpde.LearnedCoefficient(heat_2d(), mlp(3, 1), where=lambda e: e.conductivity)
    with pytest.raises(ValueError, match="where"):
        nnpde.LearnedCoefficient(heat_2d(), mlp(2, 1), where=lambda e: e.diffusivity)
    with pytest.raises(TypeError, match="stepper"):
        nnpde.CorrectedStepper(eq, conv(1, 1, 1, (True,)))


def test_unknown_model_kind_and_bad_training_input_are_refused():
    from problems import hybrid_burgers

    with pytest.raises(ValueError, match="Unknown model kind 'transformer'"):
        hybrid_burgers.model("transformer")
    model = nnpde.CorrectedStepper(nnpde.ExplicitRK(burgers(), dt=0.02), conv(1, 1, 1, (True,)))
    bad = jnp.ones((2, 5, 1, 32)).at[1, 2, 0, 3].set(jnp.nan)
    with pytest.raises(ValueError, match="non-finite"):
        nnpde.fit(model, lambda m, b, k: nnpde.unrolled_loss(m, b), bad, steps=2, progress=False)
    good = jnp.ones((2, 5, 1, 32))
    with pytest.raises(ValueError, match=r"n_steps=9 must be an int in \[1, 4\]"):
        nnpde.unrolled_loss(model, good, n_steps=9)
    with pytest.raises(ValueError, match=r"expected \(batch, time, \*\(1, 32\)\)"):
        nnpde.unrolled_loss(model, jnp.ones((2, 5, 1, 16)))
    with pytest.raises(ValueError, match="needs a PRNG key"):
        nnpde.unrolled_loss(model, good, noise=0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        nnpde.make_optimizer(-1.0)
    with pytest.raises(ValueError, match="total_steps"):
        nnpde.make_optimizer(1e-3, schedule="cosine")


def test_task_from_solvers_runs_the_fine_solver_and_refuses_what_does_not_fit():
    """``Task.from_solvers``: the reference is the fine solver's run from the initial
    states, every ``substeps``-th state restricted to the coarse grid, the first
    ``spinup`` dropped; the cache key is the parameters with the counts; models by
    kind, the first the default; a reference step, grid or split that does not fit the
    coarse solver is refused, naming it."""
    coarse = nnpde.ExplicitRK(burgers(16), dt=0.04, method="ssprk3")
    fine = nnpde.ExplicitRK(burgers(32), dt=0.02, method="ssprk3")

    def initial_states(seed, n_samples, run):
        return jnp.stack([wave(32, phase=seed + k) for k in range(n_samples)])

    def make(**changes):
        options = dict(
            name="tiny",
            description="Burgers, 16 cells against 32.",
            baseline=coarse,
            models={
                "correction": lambda seed: nnpde.CorrectedStepper(coarse, conv(1, 1, 1, (True,), seed=seed)),
                "emulator": lambda seed: nnpde.Emulator(conv(1, 1, 1, (True,), seed=seed), equation=coarse.equation),
            },
            fine=fine,
            substeps=2,
            factor=2,
            initial_states=initial_states,
            parameters={"problem": "tiny", "viscosity": 0.05},
            horizon=3,
            target=0.1,
            channels=("u",),
        )
        return nnpde.Task.from_solvers(**{**options, **changes})

    task, spun = make(), make(spinup=1)
    u0 = initial_states(5, 2, None)
    expected = nnpde.generate_trajectories(fine, u0, 8, save_every=2, factor=2, ndim=1)
    np.testing.assert_array_equal(np.asarray(task.reference(5, 2, 3)), np.asarray(expected[:, :4]))
    np.testing.assert_array_equal(np.asarray(spun.reference(5, 2, 3)), np.asarray(expected[:, 1:]))
    config = task.dataset_config(5, 2, 3)
    assert config == {**config, "problem": "tiny", "viscosity": 0.05, "seed": 5, "n_samples": 2, "n_steps": 3}
    assert task.kinds == ("correction", "emulator") and isinstance(task.model(), nnpde.CorrectedStepper)
    assert task.reference_domain is None and task.dt == 0.04
    with pytest.raises(ValueError, match="Unknown model kind 'closure' for task 'tiny'"):
        task.build_model("closure", 0)
    refusals = [
        (dict(substeps=3), r"3 reference steps of 0.02 are 0.06, not the coarse step 0.04"),
        (dict(factor=4), r"reference grid \(32,\) is not factor = 4 times the coarse grid"),
        (dict(split=lambda d: fine), r"split and reference_bc go together"),
        (dict(spinup=-1), r"spinup must be an integer >= 0"),
        (dict(models={}), r"models must map each model kind"),
    ]
    for changes, message in refusals:
        with pytest.raises((ValueError, TypeError), match=message):
            make(**changes)


# -- the driver: resume continues bitwise ----------------------------------------------


def test_fit_resumed_from_a_checkpoint_continues_bitwise(tmp_path):
    eq = burgers(16)
    stepper = nnpde.ExplicitRK(eq, dt=0.02, method="ssprk3")
    data = jnp.stack([nnpde.rollout(stepper, wave(16, p) * 1.2, 6, include_init=True) for p in (0.0, 1.0, 2.0)])
    data = data + 0.01 * jnp.cos(jnp.arange(16.0))

    def run(steps, directory, preempted=None):
        model = nnpde.CorrectedStepper(stepper, conv(1, 1, 1, (True,), seed=1), scale=0.02)
        return nnpde.fit(
            model,
            lambda m, b, k: nnpde.unrolled_loss(m, b, noise=0.05, key=k),
            data,
            steps=steps,
            batch_size=2,
            window=3,
            seed=11,
            run_dir=directory,
            checkpoint_every=3,
            log_every=1,
            optimizer=nnpde.make_optimizer(1e-2, clip_norm=1.0),
            progress=False,
            preempted=preempted,
        )

    straight = run(8, tmp_path / "straight")
    run(5, tmp_path / "resumed")
    resumed = run(8, tmp_path / "resumed")
    # A stop request (a batch system's signal, nnpde.StopSignals) after step 4, between
    # two scheduled checkpoints: that step is checkpointed, and the run resumes from it.
    asked = iter([False, False, False, True])
    with pytest.raises(nnpde.Preempted, match="stopped at step 4") as stop:
        run(8, tmp_path / "preempted", preempted=lambda: next(asked))
    assert stop.value.step == 4
    with nnpde.Checkpointer(tmp_path / "preempted" / "checkpoints", read_only=True) as reader:
        assert reader.all_steps() == [3, 4]
    preempted = run(8, tmp_path / "preempted")
    for other, directory in ((resumed, "resumed"), (preempted, "preempted")):
        for a, b in zip(jax.tree.leaves(straight.state), jax.tree.leaves(other.state)):
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            np.testing.assert_array_equal(a, b)
        logged = [entry["step"] for entry in nnpde.read_metrics(tmp_path / directory / "metrics.jsonl")]
        assert logged == list(range(1, 9)), (directory, logged)


# -- long unrolls fit in memory; an inverse problem is solved ---------------------------


def test_checkpointed_unroll_gradient_memory_grows_like_sqrt_t():
    """XLA's accounting of the compiled gradient (temporaries, arguments, outputs)."""
    stepper = nnpde.ExplicitRK(burgers(64), dt=0.02, method="ssprk3")
    model = nnpde.CorrectedStepper(stepper, conv(1, 1, 1, (True,), hidden=16, depth=3), scale=0.02)
    params, static = nnpde.partition(model)

    def peak(n, checkpoint):
        data = jax.ShapeDtypeStruct((1, n + 1, 1, 64), F64)
        grad = jax.grad(lambda p, b: nnpde.unrolled_loss(nnpde.combine(p, static), b, checkpoint=checkpoint))
        m = jax.jit(grad).lower(params, data).compile().memory_analysis()
        return m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes

    plain = peak(256, None) / peak(16, None)
    sqrt = peak(256, "sqrt") / peak(16, "sqrt")
    print(f"peak(T=256) / peak(T=16): no checkpointing {plain:.2f}, sqrt checkpointing {sqrt:.2f}")
    assert plain > 8, "without checkpointing the memory should grow about linearly in T"
    assert sqrt < 4, "sqrt checkpointing: growth from T=16 to 256 at most sqrt(16) = 4"


def test_inverse_problem_recovers_a_smooth_conductivity():
    from problems import inverse_conductivity

    _, _, error, history = inverse_conductivity.recover(1, 48, steps=400)
    print(
        f"relative L2 error of the recovered conductivity {error:.4f}; loss {history[0]['loss']:.3e} -> "
        f"{history[-1]['loss']:.3e}"
    )
    assert error < 0.05
