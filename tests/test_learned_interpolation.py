"""Face reconstructions and learned interpolation (Kochkov et al. 2021): the pluggable
part of the advective flux, its consistent stencil corrections and the coupling that
lets a network choose them."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nnpde
import solvers
from problems import hybrid_burgers


@pytest.mark.parametrize("size, ndim", [(2, 1), (4, 1), (6, 1), (3, 2), (4, 2), (4, 3)])
def test_correction_basis_spans_exactly_the_consistent_weights(size, ndim):
    """B is orthonormal, annihilated by the consistency constraints (sum, first moments
    about the face) and of dimension size^ndim - 1 - ndim."""
    for axis in range(ndim):
        basis = nnpde.consistent_corrections(size, ndim, axis)
        offsets = np.asarray(nnpde.stencil_offsets(size, ndim, axis), dtype=float)
        positions = offsets + 0.5 * (np.arange(ndim) == axis)
        constraints = np.concatenate([np.ones((1, len(offsets))), positions.T])
        assert basis.shape == (size**ndim, nnpde.correction_size(size, ndim))
        np.testing.assert_allclose(basis.T @ basis, np.eye(basis.shape[1]), atol=1e-12)
        np.testing.assert_allclose(constraints @ basis, 0.0, atol=1e-12)
        # the stencil surrounds the face: both sides along the axis, the face's row across
        assert {int(o) for o in offsets[:, axis]} == set(range(-(size // 2), size - size // 2))


def _linear_field(shape, width, coefficients, offset=0.3):
    """A field linear in the cell centres (index units), padded: ghost cells included."""
    grids = np.meshgrid(*[np.arange(-width, n + width, dtype=float) for n in shape], indexing="ij")
    return jnp.asarray(offset + sum(c * g for c, g in zip(coefficients, grids)))


@pytest.mark.parametrize("base", ["central", "upwind", "van_leer"])
@pytest.mark.parametrize("ndim", [1, 2])
def test_any_consistent_correction_reconstructs_linear_fields_as_the_base(base, ndim):
    """Random stencil weights (on the consistent basis) leave the states of a field
    linear in space unchanged; van Leer's and the carried central value are the exact
    face values there."""
    shape = (9,) * ndim
    rng = np.random.default_rng(0)
    coefficients = rng.normal(size=ndim)
    width = 2
    c_pad = _linear_field(shape, width, coefficients)
    m = nnpde.correction_size(4, ndim)
    weights = jnp.asarray(rng.normal(size=(1, 2, m, *shape)))
    plain = nnpde.reconstruction(base)
    corrected = nnpde.CorrectedReconstruction(base, weights, size=4, periodic=(False,) * ndim, bounded=False)
    for axis in range(ndim):
        velocity = jnp.asarray(rng.normal(size=plain.states(c_pad, axis, ndim=ndim, width=width)[0].shape))
        for got, want in zip(
            corrected.states(c_pad, axis, ndim=ndim, width=width),
            plain.states(c_pad, axis, ndim=ndim, width=width),
        ):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        carried = corrected.upwind(c_pad, velocity, axis, ndim=ndim, width=width)
        np.testing.assert_allclose(carried, plain.upwind(c_pad, velocity, axis, ndim=ndim, width=width), atol=1e-12)
        if base in ("central", "van_leer"):  # second-order schemes: exact on linear fields
            faces = np.meshgrid(
                *[np.arange(n + 1) - 0.5 if b == axis else np.arange(n) for b, n in enumerate(shape)], indexing="ij"
            )
            exact = 0.3 + sum(c * g for c, g in zip(coefficients, faces))
            np.testing.assert_allclose(carried, exact, atol=1e-12)
    # and the corrections do act on a field that is not linear
    curved = c_pad**2
    assert not np.allclose(
        corrected.states(curved, 0, ndim=ndim, width=width)[0], plain.states(curved, 0, ndim=ndim, width=width)[0]
    )


def _network(out_channels, ndim=1, *, zero_init, seed=0):
    return nnpde.Network(
        nnpde.networks.ConvNet(
            ndim,
            out_channels,
            ndim=ndim,
            hidden=8,
            depth=2,
            periodic=(True,) * ndim,
            zero_init=zero_init,
            rngs=nnx.Rngs(seed),
        )
    )


def _burgers(ndim, scheme="van_leer"):
    grid = nnpde.Grid((16,) * ndim, extent=((0.0, 2 * np.pi),) * ndim)
    return solvers.Burgers(grid, nnpde.BoundaryConditions.periodic(ndim), viscosity=0.02, scheme=scheme)


def _smooth_state(eq, seed=1):
    x = eq.grid.cell_centres()
    rng = np.random.default_rng(seed)
    return jnp.stack(
        [
            sum(rng.normal() * jnp.sin(k * xi + rng.uniform(0, 6)) for k in (1, 2) for xi in x)
            for _ in range(eq.grid.ndim)
        ]
    )


@pytest.mark.parametrize("ndim, scheme", [(1, "van_leer"), (1, "upwind"), (2, "van_leer"), (2, "central")])
def test_zero_network_reproduces_the_base_scheme_exactly(ndim, scheme):
    eq = _burgers(ndim, scheme)
    targets, sides = eq.reconstruction_targets
    net = _network(targets * sides * nnpde.correction_size(4, ndim), ndim, zero_init=True)
    hybrid = nnpde.learned_interpolation(eq, net)
    assert type(hybrid) is type(eq) and hybrid.scheme == scheme
    u = _smooth_state(eq)
    np.testing.assert_array_equal(hybrid(0.0, u), eq(0.0, u))
    step, plain = nnpde.ExplicitRK(hybrid, dt=0.05, method="ssprk3"), nnpde.ExplicitRK(eq, dt=0.05, method="ssprk3")
    np.testing.assert_array_equal(nnpde.rollout(step, u, 5), nnpde.rollout(plain, u, 5))


def test_learned_interpolation_changes_the_flux_but_conserves_momentum():
    """A random network moves the right-hand side, yet the 1-D periodic scheme stays in
    conservation form: the total momentum's rate is zero to round-off."""
    eq = _burgers(1)
    targets, sides = eq.reconstruction_targets
    net = _network(targets * sides * nnpde.correction_size(4, 1), zero_init=False)
    hybrid = nnpde.learned_interpolation(eq, net, scale=0.1)
    u = _smooth_state(eq)
    rate, plain = hybrid(0.0, u), eq(0.0, u)
    assert float(jnp.max(jnp.abs(rate - plain))) > 1e-3 * float(jnp.max(jnp.abs(plain)))
    assert abs(float(jnp.sum(rate))) < 1e-12 * float(jnp.sum(jnp.abs(rate)))


def test_gradient_through_the_learned_stencil_matches_finite_differences():
    eq = _burgers(1)
    targets, sides = eq.reconstruction_targets
    net = _network(targets * sides * nnpde.correction_size(4, 1), zero_init=False)
    # unbounded: the clip is a kink that a finite difference may straddle
    model = nnpde.ExplicitRK(nnpde.learned_interpolation(eq, net, scale=0.05, bounded=False), dt=0.05, method="ssprk3")
    u0 = _smooth_state(eq)
    target = nnpde.rollout(nnpde.ExplicitRK(eq, dt=0.05, method="ssprk3"), u0 * 1.01, 4)
    params, static = eqx.partition(model, nnpde.trainable(model))

    def loss(p):
        return jnp.mean((nnpde.rollout(eqx.combine(p, static), u0, 4) - target) ** 2)

    # compiled once each (op by op, every call would compile its rollout's loop anew)
    grad = jax.jit(jax.grad(loss))(params)
    loss = jax.jit(loss)
    direction = jax.tree.map(lambda g: g / (jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(grad)))), grad)
    eps = 1e-3  # central differences: O(eps^2) truncation; smaller eps lose to round-off in the loss
    shifted = [jax.tree.map(lambda p, d, s=s: p + s * eps * d, params, direction) for s in (1, -1)]
    finite = (loss(shifted[0]) - loss(shifted[1])) / (2 * eps)
    analytic = sum(jnp.sum(g * d) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction)))
    assert float(analytic) > 0
    np.testing.assert_allclose(float(finite), float(analytic), rtol=1e-4)


def test_learned_interpolation_refuses_what_it_cannot_couple():
    eq = _burgers(1)
    with pytest.raises(ValueError, match=r"4 output channels.*1 reconstructed quantities x 2 state.*0 advecting"):
        nnpde.learned_interpolation(eq, _network(3, zero_init=True))
    heat = solvers.HeatEquation(nnpde.Grid((16,)), nnpde.BoundaryConditions.periodic(1))
    with pytest.raises(TypeError, match="no pluggable face reconstruction"):
        nnpde.learned_interpolation(heat, _network(4, zero_init=True))
    learned = nnpde.learned_interpolation(eq, _network(4, zero_init=True))
    with pytest.raises(ValueError, match="already learned"):
        nnpde.learned_interpolation(learned, _network(4, zero_init=True))
    with pytest.raises(ValueError, match="stencil size must be an int >= 2"):
        nnpde.learned_interpolation(eq, _network(4, zero_init=True), size=1)
    with pytest.raises(TypeError, match="prepare"):
        learned.reconstruction.states(jnp.zeros((1, 20)), 0, ndim=1, width=2)
    with pytest.raises(ValueError, match="Unknown advection scheme 'weno'"):
        solvers.Burgers(nnpde.Grid((16,)), nnpde.BoundaryConditions.periodic(1), scheme="weno")


def test_learned_interpolation_trains_past_the_plain_coarse_burgers_solver():
    """Bar-Sinai et al.'s setting at toy size: the 64-cell Burgers task's
    ``"interpolation"`` model, trained 60 steps with the solver in the loop, beats the
    plain coarse solver on held-out fine-grid data (measured: 0.58x its error; 0.52x
    after 150 steps, 0.60x after 40)."""
    task = hybrid_burgers.task(hidden=16, depth=3, horizon=8)
    train, _ = hybrid_burgers.trajectories(0, 16, 8)
    held_out, _ = hybrid_burgers.trajectories(1000, 4, 8)
    model = task.build_model("interpolation", 0)
    result = nnpde.fit(
        model,
        lambda m, batch, key: nnpde.unrolled_loss(m, batch),
        train,
        steps=60,
        batch_size=8,
        window=8,
        seed=0,
        progress=False,
        optimizer=nnpde.make_optimizer(3e-3),
    )

    def error(stepper):
        rollout = jax.vmap(lambda u: nnpde.rollout(stepper, u, 8))(held_out[:, 0])
        return float(
            jnp.mean(
                jnp.linalg.norm((rollout[:, -1] - held_out[:, -1]).reshape(4, -1), axis=1)
                / jnp.linalg.norm(held_out[:, -1].reshape(4, -1), axis=1)
            )
        )

    learned, plain = error(result.model), error(task.baseline)
    assert learned < 0.7 * plain, (learned, plain)


def test_reconstruction_pads_are_checked():
    c_pad = jnp.zeros((12,))
    with pytest.raises(ValueError, match="beyond the 1 ghost"):
        nnpde.VanLeer().states(c_pad[1:-1], 0, ndim=1, width=1)
    assert [nnpde.reconstruction(n).name for n in nnpde.RECONSTRUCTIONS] == list(nnpde.RECONSTRUCTIONS)
    assert list(itertools.chain(nnpde.stencil_offsets(4, 1, 0))) == [(-2,), (-1,), (0,), (1,)]


def test_learned_interpolation_in_navier_stokes_keeps_the_flow_divergence_free():
    """On the MAC Navier-Stokes solver: a zero network is the plain van Leer solver
    bitwise (which still takes the hand-written adjoint); a random one changes the
    flow, which the projection keeps divergence-free. (The gradient through the Navier-
    Stokes stencils: ``test_learned_advecting_velocities_in_navier_stokes``, whose
    network chooses these face stencils too; its compilation is most of either test.)"""
    grid = nnpde.Grid((16, 16), extent=((0.0, 2 * np.pi),) * 2)
    eq = solvers.NavierStokes2D(grid, viscosity=0.01, advection="van_leer")
    targets, sides = eq.reconstruction_targets
    out = targets * sides * nnpde.correction_size(4, 2)
    x, y = grid.cell_centres()
    u0 = eq.project(jnp.stack([jnp.sin(y) + 0.3 * jnp.cos(2 * x), jnp.sin(x) * jnp.cos(y)]))
    plain = nnpde.ProjectedRK(eq, dt=0.05)
    zero = nnpde.ProjectedRK(nnpde.learned_interpolation(eq, _network(out, 2, zero_init=True)), dt=0.05)
    plain_rollout = nnpde.rollout(plain, u0, 3)
    np.testing.assert_array_equal(nnpde.rollout(zero, u0, 3), plain_rollout)
    learned = nnpde.ProjectedRK(nnpde.learned_interpolation(eq, _network(out, 2, zero_init=False), scale=0.1), dt=0.05)
    u3 = nnpde.rollout(learned, u0, 3)[-1]
    assert float(jnp.max(jnp.abs(u3 - plain_rollout[-1]))) > 1e-4
    assert float(jnp.max(jnp.abs(eq.divergence(u3)))) < 1e-10


def test_kolmogorov_task_offers_learned_interpolation_that_starts_as_its_solver():
    """The Kolmogorov task's "interpolation" model (4 x 4 stencils, 52 outputs per cell)
    is the plain coarse solver until it trains, also through the damped-flow wrapper."""
    from problems import hybrid_kolmogorov

    task = hybrid_kolmogorov.task(resolution=16, factor=2, hidden=8, depth=2)
    model = task.build_model("interpolation", 0)
    u0 = task.baseline.equation.project(
        hybrid_kolmogorov.kolmogorov.initial_velocity(task.baseline.equation.grid, 3, max_velocity=1.0)
    )
    np.testing.assert_array_equal(nnpde.rollout(model, u0, 2), nnpde.rollout(task.baseline, u0, 2))
    state = jnp.zeros(task.baseline.equation.state_shape)
    assert model.equation.reconstruction.network(state).shape == (52, 16, 16)


def _counting_burgers_steps():
    """``(eq, calls, step)``: 1-D Burgers, a list that grows by one per traced network
    call, and ``step(zero_init)``: an SSPRK3 stepper with learned interpolation by such
    a counting network."""
    eq = _burgers(1)
    targets, sides = eq.reconstruction_targets
    calls = []

    class Counting(eqx.Module):
        net: nnpde.Network

        def __call__(self, u):
            calls.append(1)
            return self.net(u)

    def step(zero_init):
        net = Counting(_network(targets * sides * nnpde.correction_size(4, 1), zero_init=zero_init))
        return nnpde.ExplicitRK(nnpde.learned_interpolation(eq, net, scale=0.1), dt=0.05, method="ssprk3")

    return eq, calls, step


def test_stencils_held_over_a_step_run_the_network_once_and_differ_from_per_stage():
    """``PerStepInterpolation``: a zero network is still the base scheme bitwise; a
    random one runs once per step (counted in the traced step) and gives a different,
    still conservative step than re-choosing the stencils at every stage."""
    eq, calls, step = _counting_burgers_steps()

    u = _smooth_state(eq)
    plain = nnpde.ExplicitRK(eq, dt=0.05, method="ssprk3")
    np.testing.assert_array_equal(nnpde.PerStepInterpolation(step(True))(u), plain(u))
    per_stage, held = step(False), nnpde.PerStepInterpolation(step(False))
    calls.clear()
    jax.make_jaxpr(held)(u)
    assert len(calls) == 1
    calls.clear()
    jax.make_jaxpr(per_stage)(u)
    assert len(calls) == 3  # SSPRK3: one network call per stage
    a, b = held(u), per_stage(u)
    assert 1e-12 < float(jnp.max(jnp.abs(a - b))) < 0.1 * float(jnp.max(jnp.abs(a - u)))
    np.testing.assert_allclose(float(jnp.sum(a)), float(jnp.sum(u)), atol=1e-12)
    assert held.dt == 0.05 and held.equation is held.stepper.equation
    with pytest.raises(TypeError, match="learned interpolation"):
        nnpde.PerStepInterpolation(plain)


def test_stencils_held_over_several_steps_run_the_network_once_per_block():
    """``PerStepInterpolation(hold=3)``: one network call advances three inner steps
    with the weights chosen on the block's first state (the same as preparing them by
    hand and stepping three times), ``dt`` is the block's, a zero network is three
    plain steps to rounding, ``substeps`` gives the inner states of one call, the
    gradient reaches the network, and a bad ``hold`` is refused with its value."""
    eq, calls, step = _counting_burgers_steps()

    u = _smooth_state(eq)
    plain = nnpde.ExplicitRK(eq, dt=0.05, method="ssprk3")
    zero = nnpde.PerStepInterpolation(step(True), hold=3)(u)
    np.testing.assert_allclose(zero, plain(plain(plain(u))), rtol=0, atol=1e-15)  # fused differently in the loop
    inner = step(False)
    block = nnpde.PerStepInterpolation(inner, hold=3)
    assert block.dt == 3 * 0.05 and block.hold == 3 and nnpde.PerStepInterpolation(inner).hold == 1
    calls.clear()
    jax.make_jaxpr(block)(u)
    assert len(calls) == 1
    held = eqx.tree_at(
        lambda s: s.equation, inner, inner.equation.with_reconstruction(inner.equation.reconstruction.prepare(u))
    )
    stepped = block(u)  # one block step, run op by op once for the checks below
    np.testing.assert_allclose(stepped, held(held(held(u))), rtol=0, atol=1e-13)
    rechosen = nnpde.PerStepInterpolation(inner)
    assert float(jnp.max(jnp.abs(stepped - rechosen(rechosen(rechosen(u)))))) > 1e-12
    np.testing.assert_allclose(float(jnp.sum(stepped)), float(jnp.sum(u)), atol=1e-12)
    # substeps: the three inner states of the block, one network call, the last the block's result
    calls.clear()
    inner_states = block.substeps(u)
    assert len(calls) == 1 and inner_states.shape == (3, *u.shape)
    for k, expected in enumerate((held(u), held(held(u)), stepped)):
        np.testing.assert_allclose(inner_states[k], expected, rtol=0, atol=1e-13)

    # the gradients compiled (op by op, their reverse passes take about twice as long)
    params, static = eqx.partition(block, eqx.is_inexact_array)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(eqx.combine(p, static)(u) ** 2)))(params)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))
    # expand: the held weights expanded once per call, the same step and gradient to rounding
    expanded = nnpde.PerStepInterpolation(inner, hold=3, expand=True)
    assert expanded.expand and not block.expand
    np.testing.assert_allclose(expanded(u), stepped, rtol=0, atol=1e-13)
    params, static = eqx.partition(expanded, eqx.is_inexact_array)
    again = jax.jit(jax.grad(lambda p: jnp.sum(eqx.combine(p, static)(u) ** 2)))(params)
    for g, h in zip(jax.tree.leaves(grads), jax.tree.leaves(again)):
        np.testing.assert_allclose(h, g, rtol=1e-10, atol=1e-12)
    with pytest.raises(TypeError, match="expand"):
        nnpde.PerStepInterpolation(inner, expand=1)
    for bad in (0, -2, True):
        with pytest.raises(ValueError, match=f"hold must be an int >= 1.*{bad!r}"):
            nnpde.PerStepInterpolation(inner, hold=bad)


@pytest.mark.parametrize("along, normal", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_learned_advecting_velocity_interpolates_linear_velocities_exactly(along, normal):
    """The advecting velocity of the staggered momentum flux (component ``along``'s flux
    through its faces normal to ``normal``): any consistent stencil correction leaves
    the two-point mean of a field linear in space unchanged, and that mean is its exact
    value at the faces; a curved field is changed."""
    shape, width = (9, 9), 3
    rng = np.random.default_rng(along * 2 + normal)
    coefficients = rng.normal(size=2)
    v_pad = _linear_field(shape, width, coefficients)
    m = nnpde.correction_size(4, 2)
    corrected = nnpde.CorrectedReconstruction(
        "van_leer",
        jnp.zeros((4, 1, m, *shape)),
        size=4,
        periodic=(False, False),
        velocity_weights=jnp.asarray(rng.normal(size=(4, m, *shape))),
    )
    assert corrected.width == 3  # one row further across the face than the face states' stencil

    def mean(field):  # the solver's own value: u_normal averaged over its two neighbours along `along`
        lengths = [n + (1 if b == normal else 0) for b, n in enumerate(shape)]
        windows = []
        for offset in (-1, 0):
            index = tuple(
                slice(width + (offset if b == along else 0), width + (offset if b == along else 0) + lengths[b])
                for b in range(2)
            )
            windows.append(field[index])
        return 0.5 * (windows[0] + windows[1])

    target = 2 * along + normal
    got = corrected.advecting_velocity(mean(v_pad), v_pad, along, normal, ndim=2, width=width, target=target)
    np.testing.assert_allclose(got, mean(v_pad), rtol=0, atol=1e-12)
    # the mean of a linear field is its value at the faces: i - 1/2 along `along`, rows j along the others
    faces = np.meshgrid(
        *[np.arange(len_) - (0.5 if b == along else 0.0) for b, len_ in enumerate(mean(v_pad).shape)], indexing="ij"
    )
    np.testing.assert_allclose(mean(v_pad), 0.3 + sum(c * g for c, g in zip(coefficients, faces)), atol=1e-12)
    curved = v_pad**2
    assert not np.allclose(
        corrected.advecting_velocity(mean(curved), curved, along, normal, ndim=2, width=width, target=target),
        mean(curved),
    )
    plain = nnpde.VanLeer()  # a base scheme leaves the solver's velocity as it is
    given = mean(curved)
    assert plain.advecting_velocity(given, curved, along, normal, ndim=2, width=width) is given


def test_learned_advecting_velocities_in_navier_stokes():
    """``velocities=True`` (Kochkov et al. interpolate the advecting velocity too): 52
    more outputs; a zero network is the plain solver bitwise; a random one changes
    the flow, conserves momentum, stays divergence-free under the projection, and its
    gradient reaches the velocity stencils' outputs; equations without an advecting
    velocity are refused."""
    grid = nnpde.Grid((16, 16), extent=((0.0, 2 * np.pi),) * 2)
    eq = solvers.NavierStokes2D(grid, viscosity=0.01, advection="van_leer")
    m = nnpde.correction_size(4, 2)
    out = (4 + eq.advecting_targets) * m
    x, y = grid.cell_centres()
    u0 = eq.project(jnp.stack([jnp.sin(y) + 0.3 * jnp.cos(2 * x), jnp.sin(x) * jnp.cos(y)]))
    plain = nnpde.ProjectedRK(eq, dt=0.05)
    with pytest.raises(ValueError, match=rf"{out} output channels.*4 advecting velocities"):
        nnpde.learned_interpolation(eq, _network(4 * m, 2, zero_init=True), velocities=True)
    zero = nnpde.learned_interpolation(eq, _network(out, 2, zero_init=True), velocities=True)
    assert zero.reconstruction.width == 3
    np.testing.assert_array_equal(nnpde.rollout(nnpde.ProjectedRK(zero, dt=0.05), u0, 3), nnpde.rollout(plain, u0, 3))
    net = _network(out, 2, zero_init=False)
    both = nnpde.learned_interpolation(eq, net, scale=0.1, velocities=True, bounded=False)
    faces_only = nnpde.learned_interpolation(eq, lambda u: net(u)[: 4 * m], scale=0.1, bounded=False)
    rate = eqx.filter_jit(both)(0.0, u0)  # compiled: op by op, this right-hand side takes longer
    assert float(jnp.max(jnp.abs(rate - eqx.filter_jit(faces_only)(0.0, u0)))) > 1e-4  # the velocity stencils act
    divergence = eqx.filter_jit(lambda e, u: e.momentum_flux_divergence(u))(both, u0)  # compiled, as the rate
    for c in range(2):  # a flux divergence: each component's total momentum rate is zero
        assert abs(float(jnp.sum(divergence[c]))) < 1e-12
    step = nnpde.PerStepInterpolation(nnpde.ProjectedRK(both, dt=0.05))
    u3 = nnpde.rollout(step, u0, 3)[-1]
    assert float(jnp.max(jnp.abs(eq.divergence(u3)))) < 1e-10

    def velocity_part(u):  # the network's velocity-stencil outputs alone moved
        return jnp.sum(both.reconstruction.prepare(u).velocity_weights ** 2)

    assert float(velocity_part(u0)) > 0
    params, static = eqx.partition(step, nnpde.trainable(step))
    # compiled: op by op, the reverse pass through the held stencils and the projection
    # dispatches (and compiles) each operation alone, which takes longer
    grad = jax.jit(jax.grad(lambda p: jnp.sum(nnpde.rollout(eqx.combine(p, static), u0, 1) ** 2)))(params)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grad)]
    assert all(np.isfinite(norms)) and min(norms) > 0  # every weight and bias of the network
    # the gradient of the flow with respect to the velocity stencils alone is not zero
    weights = both.reconstruction.prepare(u0)

    def rate_of(vw):
        prepared = eqx.tree_at(lambda r: r.velocity_weights, weights, vw)
        return jnp.sum(eq.with_reconstruction(prepared).momentum_flux_divergence(u0) ** 2)

    assert float(jnp.linalg.norm(jax.jit(jax.grad(rate_of))(weights.velocity_weights))) > 0
    with pytest.raises(ValueError, match="no advecting velocity"):
        nnpde.learned_interpolation(_burgers(2), _network(8 * m, 2, zero_init=True), velocities=True)
    with pytest.raises(TypeError, match="velocities"):  # the suite's type checker, or the coupling's own check
        nnpde.learned_interpolation(eq, _network(out, 2, zero_init=True), velocities=1)


@pytest.mark.parametrize("ndim, sides, periodic", [(1, 2, True), (2, 1, True), (2, 2, False)])
def test_expanded_stencil_weights_reconstruct_as_the_coefficients(ndim, sides, periodic):
    """``expand``: the stencil weights computed once from the coefficients give the same
    face states, carried values and advecting velocities (to rounding) on every axis,
    periodic or walled; expanding twice is expanding once; a non-bool is refused."""
    shape, width = (7,) * ndim, 3
    rng = np.random.default_rng(ndim + sides)
    m = nnpde.correction_size(4, ndim)
    weights = jnp.asarray(rng.normal(size=(2 * ndim, sides, m, *shape)))
    velocity_weights = jnp.asarray(rng.normal(size=(2 * ndim, m, *shape))) if ndim == 2 else None
    common = dict(size=4, periodic=(periodic,) * ndim, velocity_weights=velocity_weights)
    plain = nnpde.CorrectedReconstruction("van_leer", weights, **common)
    expanded = plain.expand()
    assert plain.expanded is None and len(expanded.expanded) == ndim and expanded.expand() is expanded
    assert (expanded.expanded_velocity is None) == (velocity_weights is None)
    c_pad = jnp.asarray(rng.normal(size=[n + 2 * width for n in shape]))
    for axis in range(ndim):
        for target in range(2 * ndim):
            kw = dict(ndim=ndim, width=width, target=target)
            velocity = jnp.asarray(rng.normal(size=plain.states(c_pad, axis, **kw)[0].shape))
            base = plain.base.states(c_pad, axis, ndim=ndim, width=width)[0]
            assert not np.allclose(expanded.states(c_pad, axis, **kw)[0], base)  # the correction acts
            pairs = [
                (plain.states(c_pad, axis, **kw), expanded.states(c_pad, axis, **kw)),
                ([plain.upwind(c_pad, velocity, axis, **kw)], [expanded.upwind(c_pad, velocity, axis, **kw)]),
            ]
            if velocity_weights is not None:
                for normal in range(ndim):
                    lengths = [n + (1 if b == normal else 0) for b, n in enumerate(shape)]
                    mean = jnp.asarray(rng.normal(size=lengths))
                    pairs.append(
                        (
                            [plain.advecting_velocity(mean, c_pad, axis, normal, **kw)],
                            [expanded.advecting_velocity(mean, c_pad, axis, normal, **kw)],
                        )
                    )
            for want, got in pairs:
                for w, g in zip(want, got):
                    np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="expand"):  # the type checker under the suite, else our own message
        nnpde.CorrectedReconstruction("van_leer", weights, expand=1, **common)
