"""Detectors for ``problems.thermal_monitoring``, each trained on normal series only.

A detector is ``fit(train) -> (score, info)``: ``train`` a list of normal series
(dicts of ``workload (T, n_chips)`` and ``readings (T, M)``), ``score(series) -> (T, M)``
the standardised residual of every sensor (its normal-data mean and spread removed),
``info`` what to record (parameters, training loss). ``nnpde detect`` turns the
residuals into one anomaly score, a threshold and alarms.

* ``hybrid``: the coarse physics (``thermal_monitoring.coarse_equation``, Crank-Nicolson
  on 8 x 8 cells) plus a learned correction ``DT * SCALE * N(T, q, log k, x, y)`` (a
  CNN) after every step, trained with the solver in the loop: windows of ``WINDOW``
  steps start from the model's own open-loop states (recomputed every ``REFRESH``
  steps) and the loss is the mean squared error of the predicted sensors. The
  prediction runs open loop from the workload alone, so a fault cannot leak into it.
* ``physics``: the plain coarse physics, open loop from the workload.
* ``emulator``: the hybrid without the physics, the same CNN and inputs trained the
  same way, ``T_{n+1} = T_n + DT * SCALE * N(T_n, q, log k, x, y)`` (the form of
  ``nnpde.Emulator``): a data-only model open loop from the workload.
* ``data``: a data-only forecaster of about the same size: an MLP from the last
  ``LAGS`` readings and the workload to the next readings (one step ahead).
* ``fixed``: no model, the readings themselves standardised by their normal mean and
  spread: ``nnpde detect`` turns that into a fixed upper and lower temperature
  threshold per sensor (the faults are sized to stay inside normal readings).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import nnpde
from problems import hybrid_heat_board as board
from problems import thermal_monitoring as tm

WINDOW = 48
REFRESH = 200
LAGS = 3
SCALE = sum(tm.CHIP_POWER)


def _coarse_parts():
    eq = tm.coarse_equation()
    chips = tm.coarse_chip_maps()
    g = eq.grid
    x, y = g.cell_centres()
    fields = jnp.stack([jnp.log(eq.conductivity) / jnp.log(board.K_COPPER), x, y])
    return eq, chips, fields, tm.sensor_cells()


@eqx.filter_jit
def _operator_columns(eq):
    """``apply_operator`` on every unit vector, in one compiled call (applied
    eagerly, each of its operations was compiled on its own: seconds)."""
    n = int(np.prod(eq.state_shape))
    return jax.vmap(eq.apply_operator)(jnp.eye(n).reshape(n, *eq.state_shape))


def physics_step(eq, chips):
    """One coarse step ``T -> exp(-h DT) CN(T; q(w))``. The coarse Crank-Nicolson step
    is affine with constant coefficients, ``CN(T; q) = A T + B q``, with ``A = (M -
    DT/2 L)^-1 (M + DT/2 L)`` and ``B = DT (M - DT/2 L)^-1`` for the solver's operator
    ``L`` (tabulated from ``apply_operator`` on every unit vector) and mass ``M``; the
    walls are homogeneous (``T = 0`` at the sink), so there is no offset. Dense on the
    8 x 8 grid: exact (the CG solve only approximates it) and cheap to differentiate."""
    shape, n = eq.state_shape, int(np.prod(eq.state_shape))
    op = np.asarray(_operator_columns(eq)).reshape(n, n).T
    mass = np.broadcast_to(np.asarray(eq.mass(), dtype=float), shape).reshape(n)
    implicit = np.diag(mass) - 0.5 * tm.DT * op
    a = np.linalg.solve(implicit, np.diag(mass) + 0.5 * tm.DT * op)
    b = tm.DT * np.linalg.inv(implicit)
    # the chips' contribution at full load, one column per chip
    a, b_chips = jnp.asarray(a), jnp.asarray(b @ np.asarray(chips).reshape(chips.shape[0], n).T)
    decay = math.exp(-tm.H_FAN * tm.DT)

    def step(temperature, w):
        return ((a @ temperature.reshape(n) + b_chips @ w) * decay).reshape(shape)

    return step


def _rollout(step, w, ix, iy, t0=None):
    """Open-loop states and sensor predictions driven by ``w (T, n_chips)``."""
    n = tm.FINE // tm.FACTOR
    temperature = jnp.zeros((1, n, n)) if t0 is None else t0

    def body(t, wn):
        t = step(t, wn)
        return t, (t, t[0, ix, iy])

    return jax.lax.scan(body, temperature, w)[1]


def _standardise(residuals):
    r = np.concatenate(residuals)
    return r.mean(axis=0), r.std(axis=0) + 1e-12


def physics(train, *, seed: int = 0):
    eq, chips, _, (ix, iy) = _coarse_parts()
    step = physics_step(eq, chips)
    predict = jax.jit(lambda w: _rollout(step, w, ix, iy)[1])
    mean, std = _standardise([s["readings"] - np.asarray(predict(s["workload"])) for s in train])

    def score(s):
        return (s["readings"] - np.asarray(predict(s["workload"])) - mean) / std

    return score, {"parameters": 0}


def _cnn(seed: int, hidden: int, depth: int):
    return nnpde.Network(
        nnpde.networks.ConvNet(
            5, 1, ndim=2, hidden=hidden, depth=depth, periodic=(False, False), zero_init=True, rngs=nnx.Rngs(seed)
        )
    )


def _count(net) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array))))


def hybrid(train, *, seed: int = 0, steps: int = 1500, batch: int = 16, hidden: int = 16, depth: int = 3):
    return _open_loop(train, physics=True, seed=seed, steps=steps, batch=batch, hidden=hidden, depth=depth)


def emulator(train, *, seed: int = 0, steps: int = 1500, batch: int = 16, hidden: int = 16, depth: int = 3):
    return _open_loop(train, physics=False, seed=seed, steps=steps, batch=batch, hidden=hidden, depth=depth)


def _open_loop(train, *, physics: bool, seed: int, steps: int, batch: int, hidden: int, depth: int):
    eq, chips, fields, (ix, iy) = _coarse_parts()
    base = physics_step(eq, chips) if physics else (lambda temperature, w: temperature)
    q_scale = float(jnp.max(chips))

    def step_with(net):
        def step(temperature, w):
            q = jnp.tensordot(w, chips, 1)
            inputs = jnp.concatenate([temperature, q[None] / q_scale, fields])
            return base(temperature, w) + tm.DT * SCALE * net(inputs)

        return step

    net = _cnn(seed, hidden, depth)
    w_all = jnp.asarray(np.stack([s["workload"] for s in train]))
    y_all = jnp.asarray(np.stack([s["readings"] for s in train]))
    n_series, n_steps = y_all.shape[:2]

    @eqx.filter_jit
    def states_of(net):
        return jax.vmap(lambda w: _rollout(step_with(net), w, ix, iy)[0])(w_all)

    def window_loss(net, t0, w, y):
        predicted = _rollout(step_with(net), w, ix, iy, t0)[1]
        return jnp.mean((predicted - y) ** 2) / tm.NOISE**2

    schedule = optax.cosine_decay_schedule(3e-3, steps)
    optimiser = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    opt_state = optimiser.init(eqx.filter(net, eqx.is_inexact_array))

    @eqx.filter_jit
    def train_step(net, opt_state, t0, w, y):
        def batch_loss(n):
            return jnp.mean(jax.vmap(lambda a, b, c: window_loss(n, a, b, c))(t0, w, y))

        loss, grads = eqx.filter_value_and_grad(batch_loss)(net)
        updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(net, eqx.is_inexact_array))
        return eqx.apply_updates(net, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    losses = []
    for i in range(steps):
        if i % REFRESH == 0:
            states = states_of(net)
        s = rng.integers(n_series, size=batch)
        start = rng.integers(0, n_steps - WINDOW - 1, size=batch)
        idx = start[:, None] + np.arange(WINDOW)[None]
        t0 = states[s, start]
        net, opt_state, loss = train_step(net, opt_state, t0, w_all[s[:, None], idx + 1], y_all[s[:, None], idx + 1])
        losses.append(float(loss))
    predict = eqx.filter_jit(lambda net, w: _rollout(step_with(net), w, ix, iy)[1])
    mean, std = _standardise([s["readings"] - np.asarray(predict(net, s["workload"])) for s in train])

    def score(s):
        return (s["readings"] - np.asarray(predict(net, s["workload"])) - mean) / std

    return score, {"parameters": _count(net), "loss_first": losses[0], "loss_last": float(np.mean(losses[-50:]))}


def _features(s, lags: int, y_mean, y_std):
    y = (s["readings"] - y_mean) / y_std
    w = s["workload"]
    lagged = [y[lags - 1 - j : len(y) - 1 - j] for j in range(lags)]  # y_n, y_{n-1}, ...
    return np.concatenate([*lagged, w[lags:], w[lags - 1 : -1]], axis=1), y[lags:] - y[lags - 1 : -1]


def data(train, *, seed: int = 0, steps: int = 3000, batch: int = 256, hidden: int = 72, depth: int = 2):
    all_y = np.concatenate([s["readings"] for s in train])
    y_mean, y_std = all_y.mean(axis=0), all_y.std(axis=0)
    x, target = map(np.concatenate, zip(*[_features(s, LAGS, y_mean, y_std) for s in train]))
    d_std = target.std(axis=0)
    net = nnpde.Network(
        nnpde.networks.MLP(x.shape[1], target.shape[1], hidden=hidden, depth=depth, rngs=nnx.Rngs(seed))
    )
    x, target = jnp.asarray(x), jnp.asarray(target / d_std)
    schedule = optax.cosine_decay_schedule(3e-3, steps)
    optimiser = optax.adam(schedule)
    opt_state = optimiser.init(eqx.filter(net, eqx.is_inexact_array))

    @eqx.filter_jit
    def train_step(net, opt_state, xb, yb):
        loss, grads = eqx.filter_value_and_grad(lambda n: jnp.mean((jax.vmap(n)(xb) - yb) ** 2))(net)
        updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(net, eqx.is_inexact_array))
        return eqx.apply_updates(net, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        i = rng.integers(x.shape[0], size=batch)
        net, opt_state, loss = train_step(net, opt_state, x[i], target[i])
        losses.append(float(loss))
    predict = eqx.filter_jit(lambda net, xs: jax.vmap(net)(xs))

    def residual(s):
        xs, t = _features(s, LAGS, y_mean, y_std)
        r = (t - np.asarray(predict(net, jnp.asarray(xs))) * d_std) * y_std
        return np.concatenate([np.zeros((LAGS, r.shape[1])), r])

    mean, std = _standardise([residual(s)[LAGS:] for s in train])

    def score(s):
        return (residual(s) - mean) / std

    return score, {"parameters": _count(net), "loss_first": losses[0], "loss_last": float(np.mean(losses[-50:]))}


def fixed(train, *, seed: int = 0):
    mean, std = _standardise([s["readings"] for s in train])

    def score(s):
        return (s["readings"] - mean) / std

    return score, {"parameters": 0}


DETECTORS = {"hybrid": hybrid, "physics": physics, "emulator": emulator, "data": data, "fixed": fixed}
