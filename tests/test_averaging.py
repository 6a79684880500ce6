"""The pure arithmetic of the cross-group average, and ``AsyncAverager`` in one process
(one group: only the health guard runs, no MPI)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nnpde
from nnpde.distributed import (
    AsyncAverager,
    GroupTopology,
    average_from,
    contribution,
    flatten,
    healthy,
    mix,
)


def _params():
    return {
        "w": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3),
        "b": jnp.asarray([0.5, -1.5], dtype=jnp.float16),
        "c": jnp.asarray(3.25, dtype=jnp.float64),
        "frozen": None,
    }


def test_flatten_round_trip_keeps_dtypes_and_shapes():
    params = _params()
    flat, unflatten = flatten(params)
    assert flat.dtype == np.float64 and flat.shape == (9,)
    back = unflatten(flat)
    assert back["frozen"] is None
    for key in ("w", "b", "c"):
        assert back[key].dtype == params[key].dtype and back[key].shape == params[key].shape
        np.testing.assert_array_equal(np.asarray(back[key]), np.asarray(params[key]))
    with pytest.raises(ValueError, match="shape"):
        unflatten(flat[:-1])


def test_flatten_single_dtype_comes_back_in_that_dtype():
    params = {"w": jnp.ones((3,), jnp.float32)}
    flat, unflatten = flatten(params)
    assert unflatten(flat + 1)["w"].dtype == jnp.float32


def test_flatten_rejects_integer_leaves():
    with pytest.raises(TypeError, match="floating"):
        flatten({"n": jnp.arange(3)})


def test_healthy():
    x = np.array([3.0, 4.0])  # norm 5
    assert healthy(x)
    assert not healthy(np.array([1.0, np.nan]))
    assert not healthy(np.array([np.inf, 0.0]))
    assert healthy(x, reference_norm=1.0, max_growth=5.0)
    assert not healthy(x, reference_norm=1.0, max_growth=4.9)
    assert healthy(x, reference_norm=0.0, max_growth=2.0)  # a zero reference bounds nothing


def test_contribution_and_average_with_an_excluded_group():
    a, b, bad = np.array([1.0, 2.0]), np.array([3.0, 6.0]), np.array([np.nan, np.inf])
    total = contribution(a, 1) + contribution(b, 1) + contribution(bad, 0)
    np.testing.assert_array_equal(contribution(bad, 0), np.zeros(3))  # no NaN leaks through weight 0
    np.testing.assert_array_equal(average_from(total), (a + b) / 2)
    weighted = contribution(a, 3) + contribution(b, 1)
    np.testing.assert_allclose(average_from(weighted), (3 * a + b) / 4)
    assert average_from(contribution(a, 0) + contribution(bad, 0)) is None
    with pytest.raises(ValueError, match="weight"):
        contribution(a, -1)


def test_mix_properties():
    rng = np.random.default_rng(0)
    snapshot, average, d = rng.normal(size=5), rng.normal(size=5), rng.normal(size=5)
    # staleness 0, alpha 1: exactly the average (bit for bit)
    np.testing.assert_array_equal(mix(snapshot, snapshot, average, 0, max_staleness=3), average)
    # local progress made while the average was in flight is kept (dyadic values: exact)
    s, a, step = np.array([1.0, -2.0]), np.array([0.5, 4.0]), np.array([0.25, -0.75])
    np.testing.assert_array_equal(mix(s + step, s, a, 3, max_staleness=3), a + step)
    np.testing.assert_allclose(mix(snapshot + d, snapshot, average, 2, max_staleness=3), average + d)
    # beyond the bound: the current parameters come back unchanged
    current = snapshot + d
    np.testing.assert_array_equal(mix(current, snapshot, average, 4, max_staleness=3), current)
    # alpha < 1 moves part of the way: current + alpha (average - snapshot)
    np.testing.assert_allclose(
        mix(current, snapshot, average, 1, alpha=0.25, max_staleness=3), current + 0.25 * (average - snapshot)
    )
    # a consensus (average == snapshot) leaves the group where it is
    np.testing.assert_allclose(mix(current, snapshot, snapshot, 1, max_staleness=3), current)
    with pytest.raises(ValueError, match="alpha"):
        mix(current, snapshot, average, 0, alpha=0.0, max_staleness=3)
    with pytest.raises(ValueError, match="staleness"):
        mix(current, snapshot, average, -1, max_staleness=3)


def _one_process_topology():
    return GroupTopology(
        world_rank=0,
        world_size=1,
        n_groups=1,
        group=0,
        group_rank=0,
        group_size=1,
        devices=tuple(jax.local_devices()[:1]),
        axis_name="data",
    )


def _toy_state(optimizer):
    params = {"w": jnp.asarray([1.0, -2.0]), "frozen": None}
    return nnpde.TrainState(params, optimizer.init(params), jnp.asarray(0, jnp.int32), jax.random.key(0))


def test_guard_rolls_back_a_nan_state_and_logs():
    optimizer = optax.sgd(0.1, momentum=0.9)
    logged = []
    averager = AsyncAverager(_one_process_topology(), every=2, max_staleness=2, log=logged.append)
    state = _toy_state(optimizer)
    grad = {"w": jnp.asarray([0.5, 0.5]), "frozen": None}

    def step(state):
        updates, opt_state = optimizer.update(grad, state.opt_state, state.params)
        return nnpde.TrainState(optax.apply_updates(state.params, updates), opt_state, state.step + 1, state.rng)

    for k in range(1, 5):
        state = averager.after_step(k, step(state))
    good_params, good_opt = state.params, state.opt_state  # step 4 is a refresh boundary
    broken = step(state)
    broken = nnpde.TrainState(
        {"w": broken.params["w"].at[0].set(jnp.nan), "frozen": None}, broken.opt_state, broken.step, broken.rng
    )
    restored = averager.after_step(5, broken)
    np.testing.assert_array_equal(restored.params["w"], good_params["w"])
    for got, want in zip(jax.tree.leaves(restored.opt_state), jax.tree.leaves(good_opt)):
        np.testing.assert_array_equal(got, want)
    assert int(restored.step) == 5  # step and key continue
    assert logged == averager.events and len(logged) == 1
    assert logged[0]["step"] == 5 and logged[0]["group"] == 0 and logged[0]["event"] == "rollback"
    assert "non-finite" in logged[0]["reason"]

    exploded = nnpde.TrainState(
        {"w": restored.params["w"] * 1e6, "frozen": None}, restored.opt_state, restored.step, restored.rng
    )
    again = averager.after_step(6, exploded)
    np.testing.assert_array_equal(again.params["w"], good_params["w"])
    assert "max_growth" in averager.events[-1]["reason"]
    stats = averager.stats()
    assert stats["rollbacks"] == 2 and stats["started"] == 0


def test_one_group_finish_is_the_identity():
    optimizer = optax.sgd(0.1)
    averager = AsyncAverager(_one_process_topology(), every=1, max_staleness=0)
    state = averager.after_step(1, _toy_state(optimizer))
    final = averager.finish(state)
    assert final is state
    with pytest.raises(RuntimeError, match="finish"):
        averager.finish(state)
    with pytest.raises(RuntimeError, match="after_step"):
        averager.after_step(2, state)


def test_a_group_rolled_back_more_than_max_rollbacks_in_a_row_is_an_error():
    """Rolling back again and again repeats the divergence: past ``max_rollbacks`` in a
    row the guard stops the run instead of reporting a result trained on nothing."""
    optimizer = optax.sgd(0.1)
    averager = AsyncAverager(_one_process_topology(), every=1, max_staleness=0, max_rollbacks=2)
    good = averager.after_step(1, _toy_state(optimizer))
    bad = nnpde.TrainState({"w": good.params["w"] * jnp.nan, "frozen": None}, good.opt_state, good.step, good.rng)
    averager.after_step(2, bad)
    averager.after_step(3, good)  # a healthy step: the count starts again
    averager.after_step(4, bad)
    averager.after_step(5, bad)
    with pytest.raises(FloatingPointError, match=r"Group 0 diverged: rolled back 3 times in a row.*max_rollbacks=2"):
        averager.after_step(6, bad)


def test_first_state_non_finite_is_an_error():
    params = {"w": jnp.asarray([jnp.nan])}
    state = nnpde.TrainState(params, optax.sgd(0.1).init(params), jnp.asarray(0, jnp.int32), jax.random.key(0))
    with pytest.raises(FloatingPointError, match="before any good state"):
        AsyncAverager(_one_process_topology(), every=1, max_staleness=1).after_step(1, state)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(every=0, max_staleness=0), "every"),
        (dict(every=2, max_staleness=-1), "max_staleness"),
        (dict(every=2, max_staleness=5), "wait_free=True"),
        (dict(every=2, max_staleness=0, wait_free=True), "discard every average"),
        (dict(every=2, max_staleness=1, alpha=1.5), "alpha"),
        (dict(every=2, max_staleness=1, progress="spin"), "progress"),
        (dict(every=2, max_staleness=1, max_growth=1.0), "max_growth"),
        (dict(every=2, max_staleness=1, log="print"), "log"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AsyncAverager(_one_process_topology(), **kwargs)


def test_placing_an_average_keeps_the_training_step_compiled_once():
    """An average mixed into uncommitted parameters stays uncommitted (and committed
    ones stay on their sharding): committedness is part of jit's cache key, and a
    recompile of the training step would stall the group."""
    from nnpde.distributed._async import _place

    step = jax.jit(lambda p: jax.tree.map(lambda x: x * 0.5, p))
    params = step({"w": jnp.ones((3, 2)), "b": jnp.zeros(2)})
    assert not params["w"].committed
    placed = _place({"w": np.full((3, 2), 2.0), "b": np.ones(2)}, params)
    assert not placed["w"].committed and not placed["b"].committed
    step(placed)
    assert step._cache_size() == 1
    committed = jax.device_put(params, jax.devices()[0])
    again = _place({"w": np.full((3, 2), 2.0), "b": np.ones(2)}, committed)
    assert again["w"].committed and again["w"].sharding == committed["w"].sharding
