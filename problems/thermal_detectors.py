"""Detectors for ``problems.thermal_monitoring``, each trained on normal series only.

A detector is ``fit(train, directory) -> (score, info)``: ``train`` a list of normal
series (dicts of ``workload (T, n_chips)`` and ``readings (T, M)``), ``directory`` a
folder of its own for what it keeps between runs (``None``: nothing kept),
``score(series) -> (T, M)`` the standardised residual of every sensor (its normal-data
mean and spread removed), ``info`` what to record (parameters, training loss).
``nnpde detect`` turns the residuals into one anomaly score, a threshold and alarms.

* ``hybrid``: the coarse physics (``thermal_monitoring.coarse_equation``, Crank-Nicolson
  on 8 x 8 cells) plus a learned correction ``DT * SCALE * N(T, q, log k, x, y)`` (a
  CNN; with ``correction="linear"`` the ``LinearCorrection`` of the coarse step's
  coefficients) after every step, trained with the solver in the loop: windows of ``WINDOW``
  steps start from the model's own open-loop states (recomputed every ``REFRESH``
  steps) and the loss is the mean squared error of the predicted sensors. The
  prediction runs open loop from the workload alone, so a fault cannot leak into it.
  The training is resumable: in ``directory`` it keeps checkpoints (every
  ``CHECKPOINT_EVERY`` steps and on Ctrl-C), ``metrics.jsonl`` (the loss of every
  step) and, once finished, the fitted network, which a later call reuses; a resumed
  training ends bitwise on the network of an uninterrupted one (``_fit_open_loop``).
* ``hybrid_filter``: the same hybrid as a Kalman filter of the readings: after every
  step the state is corrected by the steady-state gain (``_filter_gain``, from the
  physics' linear part, process noise ``process_noise`` times the sensor noise's
  variance) times the innovation, and the innovations (the one-step-ahead errors) are
  the residuals. The hybrid's training is shared with the ``hybrid`` detector.
* ``physics``: the plain coarse physics, open loop from the workload.
* ``physics_filter``: the plain coarse physics as the same Kalman filter.
* ``emulator``: the hybrid without the physics, the same CNN and inputs trained the
  same way, ``T_{n+1} = T_n + DT * SCALE * N(T_n, q, log k, x, y)`` (the form of
  ``nnpde.Emulator``): a data-only model open loop from the workload; resumable as
  the hybrid.
* ``data``: a data-only forecaster of about the same size: an MLP from the last
  ``LAGS`` readings and the workload to the next readings (one step ahead).
* ``arx``: the forecaster linear (``data(depth=0)``), fitted by least squares.
* ``fixed``: no model, the readings themselves standardised by their normal mean and
  spread: ``nnpde detect`` turns that into a fixed upper and lower temperature
  threshold per sensor (the faults are sized to stay inside normal readings).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import nnpde
from problems import hybrid_heat_board as board
from problems import thermal_monitoring as tm
from problems._resumable_training import CHECKPOINT_EVERY, ResumableTraining, fingerprint

WINDOW = 48
REFRESH = 200
LEARNING_RATE = 3e-3
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
    a, b_chips = _physics_matrices(eq, chips)

    def step(temperature, w):
        return _affine_step(a, b_chips, temperature, w)

    return step


def _physics_matrices(eq, chips):
    """``(A, B_chips)`` of ``physics_step``: ``B_chips = B q_c`` one column per chip at full load."""
    shape, n = eq.state_shape, int(np.prod(eq.state_shape))
    op = np.asarray(_operator_columns(eq)).reshape(n, n).T
    mass = np.broadcast_to(np.asarray(eq.mass(), dtype=float), shape).reshape(n)
    implicit = np.diag(mass) - 0.5 * tm.DT * op
    a = np.linalg.solve(implicit, np.diag(mass) + 0.5 * tm.DT * op)
    b = tm.DT * np.linalg.inv(implicit)
    return jnp.asarray(a), jnp.asarray(b @ np.asarray(chips).reshape(chips.shape[0], n).T)


def _affine_step(a, b_chips, temperature, w):
    decay = math.exp(-tm.H_FAN * tm.DT)
    return ((a @ temperature.reshape(-1) + b_chips @ w) * decay).reshape(temperature.shape)


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


def physics(train, directory=None, *, seed: int = 0):
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


class LinearCorrection(nnx.Module):
    """A correction linear in the state and the heat source: ``W [T, q] + b`` with
    ``W`` dense over every cell (``(n^2, 2 n^2)``) and ``b`` one value per cell, zero
    at the start. In the hybrid it learns the coarse step's coefficients,
    ``T' = (A + dA) T + (B + dB) q + b``: the form of the fine board's physics (linear
    in the temperatures and the powers), which extends to loads never seen in
    training; the CNN's correction need not. The inputs ``(5, n, n)`` are the hybrid's
    (the constant fields are not read: their part is ``b``)."""

    def __init__(self, n: int):
        cells = n * n
        self.n = n
        self.weight = nnx.Param(jnp.zeros((cells, 2 * cells)))
        self.bias = nnx.Param(jnp.zeros(cells))

    def __call__(self, inputs):
        x = inputs[:2].reshape(-1)
        return (self.weight @ x + self.bias).reshape(1, self.n, self.n)


CORRECTIONS = ("cnn", "linear")


def check_correction(kind: str) -> str:
    """``kind`` if it is one of ``CORRECTIONS``; a clear error otherwise."""
    if kind not in CORRECTIONS:
        raise ValueError(
            f"correction must be one of {CORRECTIONS}, got {kind!r}. Fix: 'cnn' (the default) or 'linear'."
        )
    return kind


def _correction(kind: str, seed: int, hidden: int, depth: int):
    """The learned part of the hybrid and the emulator: ``kind`` one of ``CORRECTIONS``."""
    if check_correction(kind) == "linear":
        return nnpde.Network(LinearCorrection(tm.FINE // tm.FACTOR))
    return _cnn(seed, hidden, depth)


def _count(net) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_inexact_array))))


def hybrid(train, directory=None, **options):
    """The hybrid detector: coarse physics plus a learned correction; ``directory``
    and the training options (keywords, with their defaults): ``_fit_open_loop``."""
    return _open_loop(train, directory, physics=True, **options)


def emulator(train, directory=None, **options):
    """The emulator detector: the same network without the physics step; ``directory``
    and the training options: ``_fit_open_loop``."""
    return _open_loop(train, directory, physics=False, **options)


class _OpenLoop(eqx.Module):
    """The fixed parts of the hybrid and the emulator: ``step(net)`` is ``T -> P(T, w) +
    DT * SCALE * net(T, q(w) / max q, log k, x, y)``, ``P`` the coarse physics step
    (``a``, ``b_chips``) or, without them (the emulator), the identity; ``ix, iy`` the
    sensors' cells. Passed to the compiled functions as an argument, not captured, so
    that every fit of the same sizes shares their compilation."""

    chips: jax.Array
    fields: jax.Array
    ix: jax.Array
    iy: jax.Array
    a: jax.Array | None
    b_chips: jax.Array | None

    def step(self, net):
        q_scale = jnp.max(self.chips)

        def step(temperature, w):
            q = jnp.tensordot(w, self.chips, 1)
            inputs = jnp.concatenate([temperature, q[None] / q_scale, self.fields])
            base = temperature if self.a is None else _affine_step(self.a, self.b_chips, temperature, w)
            return base + tm.DT * SCALE * net(inputs)

        return step


def _model(physics: bool = True) -> _OpenLoop:
    """The fixed parts of the hybrid (``physics``) or of the emulator (no physics step)."""
    eq, chips, fields, (ix, iy) = _coarse_parts()
    a, b_chips = _physics_matrices(eq, chips) if physics else (None, None)
    return _OpenLoop(chips, fields, jnp.asarray(ix), jnp.asarray(iy), a, b_chips)


@eqx.filter_jit
def _open_loop_states(net, model: _OpenLoop, w_all):
    """``(n_series, T, 1, n, n)``: the open-loop states of every series of ``w_all``."""
    return jax.vmap(lambda w: _rollout(model.step(net), w, model.ix, model.iy)[0])(w_all)


@eqx.filter_jit
def _open_loop_sensors(net, model: _OpenLoop, w):
    return _rollout(model.step(net), w, model.ix, model.iy)[1]


@functools.cache
def _optimiser(steps: int, learning_rate: float = LEARNING_RATE):
    """Adam on a cosine schedule over ``steps`` from ``learning_rate``, gradients
    clipped (one object per setting: the compiled train step is reused)."""
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(learning_rate, steps)))


@eqx.filter_jit
def _open_loop_train_step(net, opt_state, model: _OpenLoop, optimiser, t0, w, y):
    """One optimiser step on the mean over the batch of the windows' sensor errors,
    ``|predicted - y|^2 / NOISE^2``, each window open loop from ``t0`` driven by ``w``."""

    def window_loss(n, t0, w, y):
        predicted = _rollout(model.step(n), w, model.ix, model.iy, t0)[1]
        return jnp.mean((predicted - y) ** 2) / tm.NOISE**2

    def batch_loss(n):
        return jnp.mean(jax.vmap(lambda a, b, c: window_loss(n, a, b, c))(t0, w, y))

    loss, grads = eqx.filter_value_and_grad(batch_loss)(net)
    updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(net, eqx.is_inexact_array))
    return eqx.apply_updates(net, updates), opt_state, loss


def _fit_open_loop(
    train,
    directory,
    *,
    physics: bool,
    seed: int = 0,
    steps: int = 1500,
    batch: int = 16,
    hidden: int = 16,
    depth: int = 3,
    correction: str = "cnn",
    learning_rate: float = LEARNING_RATE,
    refresh: int = REFRESH,
    checkpoint_every: int = CHECKPOINT_EVERY,
    progress: bool = True,
    on_step=None,
):
    """Train the hybrid (``physics``) or the emulator on ``train``; ``(net, model, info)``.

    Step ``i`` draws its ``batch`` windows from a generator seeded by ``(seed, i)``,
    started from the open-loop states of the network as it was at the last multiple of
    ``refresh``: both depend on the step count only, so training can stop and go on.
    With ``directory``, the training is resumable (``ResumableTraining``): checkpoints every
    ``checkpoint_every`` steps and on an interrupt, losses in ``metrics.jsonl``, and a
    finished training is the fitted model that a later call reuses without training.
    ``correction``: the learned part, ``"cnn"`` (``hidden`` channels, ``depth``
    layers) or ``"linear"`` (``LinearCorrection``; ``hidden`` and ``depth`` unused);
    ``learning_rate``: Adam's, at the start of the cosine schedule.
    ``progress``: a tqdm bar with the loss. ``on_step(step, loss)``: called after each
    step is recorded (a ``KeyboardInterrupt`` raised there stops the training as Ctrl-C
    does).
    """
    steps = nnpde.check_int(steps, "steps", fix="training steps, e.g. 1500.")
    refresh = nnpde.check_int(refresh, "refresh", fix=f"steps between open-loop state refreshes, e.g. {REFRESH}.")
    model = _model(physics)
    w_all = jnp.asarray(np.stack([s["workload"] for s in train]))
    y_all = jnp.asarray(np.stack([s["readings"] for s in train]))
    n_series, n_steps = y_all.shape[:2]
    optimiser = _optimiser(steps, float(learning_rate))
    params, static = eqx.partition(_correction(correction, seed, hidden, depth), eqx.is_inexact_array)
    state = {"net": params, "anchor": params, "opt": optimiser.init(params), "losses": np.full(steps, np.nan)}
    cache = {}  # the open-loop states of the current anchor: (anchor's step, states)

    def advance(i, state):
        """Step ``i`` (0-based) from ``state``: the next state and the loss."""
        anchor = state["net"] if i % refresh == 0 else state["anchor"]
        if cache.get("step") != i - i % refresh:  # at a refresh, or the first step after a resume
            cache.update(step=i - i % refresh, states=_open_loop_states(eqx.combine(anchor, static), model, w_all))
        rng = np.random.default_rng((seed, i))
        s = rng.integers(n_series, size=batch)
        start = rng.integers(0, n_steps - WINDOW - 1, size=batch)
        idx = start[:, None] + np.arange(WINDOW)[None]
        t0, w, y = cache["states"][s, start], w_all[s[:, None], idx + 1], y_all[s[:, None], idx + 1]
        net, opt_state, loss = _open_loop_train_step(
            eqx.combine(state["net"], static), state["opt"], model, optimiser, t0, w, y
        )
        loss = float(loss)  # waits for the step: an interrupt before here leaves `state` as it was
        losses = state["losses"].copy()
        losses[i] = loss
        return {
            "net": eqx.filter(net, eqx.is_inexact_array),
            "anchor": anchor,
            "opt": opt_state,
            "losses": losses,
        }, loss

    settings = {
        "batch": batch,
        "hidden": hidden,
        "depth": depth,
        "seed": seed,
        "window": WINDOW,
        "refresh": refresh,
        "learning_rate": float(learning_rate),
        "dtype": jnp.dtype(y_all.dtype).name,
        "data": fingerprint(w_all, y_all),
        # recorded only when not the default, so that trainings kept before the option stay valid
        **({"correction": correction} if correction != "cnn" else {}),
    }
    name = "hybrid" if physics else "emulator"
    training = ResumableTraining(
        directory, name=name, steps=steps, settings=settings, checkpoint_every=checkpoint_every, progress=progress
    )
    state, resumed_from, seconds = training.run(advance, state, on_step=on_step)
    net, losses = eqx.combine(state["net"], static), state["losses"]
    info = {"parameters": _count(net), "loss_first": float(losses[0]), "loss_last": float(np.mean(losses[-50:]))}
    return net, model, {**info, "resumed_from": resumed_from, "train_seconds": seconds}


def _open_loop(train, directory, **options):
    """The open-loop detector of ``_fit_open_loop``'s model: the standardised
    difference between the readings and the sensors predicted from the workload alone."""
    net, model, info = _fit_open_loop(train, directory, **options)

    def residual(s):
        return s["readings"] - np.asarray(_open_loop_sensors(net, model, jnp.asarray(s["workload"])))

    mean, std = _standardise([residual(s) for s in train])

    def score(s):
        return (residual(s) - mean) / std

    return score, info


TRACKING = 1e4  # the filters' default process noise, in units of NOISE^2: the readings trusted over the model


def _filter_gain(f, ix, iy, shape, q: float):
    """The steady-state Kalman gain ``(n, M)`` of ``T_{n+1} = F T_n + e``, ``y = H T + v``,
    ``F`` the model step's linear part ``(n, n)``, ``H`` the sensors' cells,
    ``cov(e) = q NOISE^2 I`` and ``cov(v) = NOISE^2 I`` (the sensor noise), from the
    discrete algebraic Riccati equation."""
    import scipy.linalg

    n = int(np.prod(shape))
    f = np.asarray(f)
    h = np.zeros((len(ix), n))
    h[np.arange(len(ix)), np.ravel_multi_index((np.zeros_like(ix), ix, iy), shape)] = 1.0
    r = tm.NOISE**2 * np.eye(len(ix))
    p = scipy.linalg.solve_discrete_are(f.T, h.T, q * tm.NOISE**2 * np.eye(n), r)
    return jnp.asarray(p @ h.T @ np.linalg.inv(h @ p @ h.T + r))


@eqx.filter_jit
def _innovations(net, model: _OpenLoop, gain, w, y, t0=None):
    """The filter's innovations ``y_n - H T^-_n`` ``(T, M)``: ``T^-_n`` the model's step
    (``net`` None: the plain physics) from the filtered state ``T_{n-1}`` under ``w_n``,
    and ``T_n = T^-_n + K (y_n - H T^-_n)``; ``T_{-1} = t0`` (None: at rest)."""
    step = model.step(net) if net is not None else (lambda t, w: _affine_step(model.a, model.b_chips, t, w))
    n = tm.FINE // tm.FACTOR

    def body(t, wy):
        wn, yn = wy
        predicted = step(t, wn)
        innovation = yn - predicted[0, model.ix, model.iy]
        return predicted + (gain @ innovation).reshape(predicted.shape), innovation

    return jax.lax.scan(body, jnp.zeros((1, n, n)) if t0 is None else t0, (w, y))[1]


def _linear_part(net, model: _OpenLoop):
    """``F (n, n)``, the model step's derivative in the temperatures: ``exp(-h DT) A``
    for the physics; with a linear correction (``LinearCorrection``) the learned
    ``exp(-h DT) A + DT SCALE dA`` (exact: the step is affine); the CNN's correction is
    not linear and is left out (the physics' part)."""
    if net is not None and isinstance(net.module, LinearCorrection):
        n = tm.FINE // tm.FACTOR
        step = model.step(net)
        jac = jax.jacfwd(lambda t: step(t.reshape(1, n, n), jnp.zeros(model.chips.shape[0])).reshape(-1))
        return np.asarray(jac(jnp.zeros(n * n)))
    return np.asarray(model.a) * math.exp(-tm.H_FAN * tm.DT)


def _filter(train, net, model: _OpenLoop, process_noise: float):
    """The Kalman-filter detector of the physics step (with ``net``: plus the hybrid's
    correction), the gain from the step's linear part (``_linear_part``) and
    ``process_noise`` (``q``, in units of ``NOISE^2``): ``(score, info)``, the
    standardised innovations. Small ``q`` trusts the model (``q -> 0``: the open-loop
    detector), large ``q`` the readings (a one-step-ahead prediction, as the ``data``
    forecaster's)."""
    nnpde.check_positive(process_noise, "process_noise", fix=f"in units of NOISE^2, e.g. {TRACKING:g}.")
    n = tm.FINE // tm.FACTOR
    f = _linear_part(net, model)
    gain = _filter_gain(f, np.asarray(model.ix), np.asarray(model.iy), (1, n, n), process_noise)

    def residual(s):
        return np.asarray(_innovations(net, model, gain, jnp.asarray(s["workload"]), jnp.asarray(s["readings"])))

    normal = [residual(s) for s in train]
    mean, std = _standardise(normal)

    def score(s):
        return (residual(s) - mean) / std

    mse = float(np.mean([np.mean(r**2) for r in normal]))
    return score, {"process_noise": process_noise, "innovation_rms_over_noise": math.sqrt(mse) / tm.NOISE}


def physics_filter(train, directory=None, *, process_noise: float = TRACKING):
    """The plain coarse physics as a Kalman filter of the readings: its standardised
    innovations (``_filter``)."""
    score, info = _filter(train, None, _model(), process_noise)
    return score, {"parameters": 0, **info}


def hybrid_filter(train, directory=None, *, process_noise: float = TRACKING, hybrid_directory=None, **options):
    """The hybrid (physics plus the learned correction, trained open loop as the
    ``hybrid`` detector is, ``options`` as there) as a Kalman filter of the readings:
    its standardised innovations (``_filter``). Its training is the hybrid's, kept in
    ``hybrid_directory`` (None: ``directory/../hybrid``, the ``hybrid`` detector's
    folder under ``nnpde detect``)."""
    if hybrid_directory is None and directory is not None:
        hybrid_directory = Path(directory).parent / "hybrid"
    net, model, info = _fit_open_loop(train, hybrid_directory, physics=True, **options)
    score, filter_info = _filter(train, net, model, process_noise)
    return score, {**info, **filter_info}


def _features(s, lags: int, y_mean, y_std):
    y = (s["readings"] - y_mean) / y_std
    w = s["workload"]
    lagged = [y[lags - 1 - j : len(y) - 1 - j] for j in range(lags)]  # y_n, y_{n-1}, ...
    return np.concatenate([*lagged, w[lags:], w[lags - 1 : -1]], axis=1), y[lags:] - y[lags - 1 : -1]


def data(
    train, directory=None, *, seed: int = 0, steps: int = 3000, batch: int = 256, hidden: int = 72, depth: int = 2
):
    """The data-only forecaster: the next readings from the last ``LAGS`` readings and
    the workload, an MLP of ``depth`` hidden layers of ``hidden`` units trained for
    ``steps`` Adam steps on batches of ``batch``; ``depth=0``: linear, fitted by least
    squares (an ARX model: exact, no training)."""
    nnpde.check_int(depth, "depth", minimum=0, fix="hidden layers of the forecaster, e.g. 2 (0: linear, ARX).")
    all_y = np.concatenate([s["readings"] for s in train])
    y_mean, y_std = all_y.mean(axis=0), all_y.std(axis=0)
    x, target = map(np.concatenate, zip(*[_features(s, LAGS, y_mean, y_std) for s in train]))
    if depth == 0:
        forecast, info = _fit_arx(x, target)
    else:
        forecast, info = _fit_mlp(x, target, seed=seed, steps=steps, batch=batch, hidden=hidden, depth=depth)

    def residual(s):
        xs, t = _features(s, LAGS, y_mean, y_std)
        r = (t - forecast(xs)) * y_std
        return np.concatenate([np.zeros((LAGS, r.shape[1])), r])

    mean, std = _standardise([residual(s)[LAGS:] for s in train])

    def score(s):
        return (residual(s) - mean) / std

    return score, info


def _fit_mlp(x, target, *, seed, steps, batch, hidden, depth):
    """``data``'s MLP on ``(x, target)``: ``(forecast(xs) -> target, info)``."""
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

    def forecast(xs):
        return np.asarray(predict(net, jnp.asarray(xs))) * d_std

    return forecast, {"parameters": _count(net), "loss_first": losses[0], "loss_last": float(np.mean(losses[-50:]))}


def _fit_arx(x, target):
    """``data(depth=0)``: ``target ~ [x, 1] @ coef`` by least squares; ``(forecast, info)``."""
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)

    def forecast(xs):
        return np.concatenate([xs, np.ones((len(xs), 1))], axis=1) @ coef

    loss = float(np.mean((design @ coef - target) ** 2 / target.var(axis=0)))
    return forecast, {"parameters": int(coef.size), "loss_first": loss, "loss_last": loss}


def fixed(train, directory=None, *, seed: int = 0):
    mean, std = _standardise([s["readings"] for s in train])

    def score(s):
        return (s["readings"] - mean) / std

    return score, {"parameters": 0}


DETECTORS = {
    "hybrid": hybrid,
    "physics": physics,
    "emulator": emulator,
    "data": data,
    "arx": functools.partial(data, depth=0),
    "fixed": fixed,
    "hybrid_filter": hybrid_filter,
    "physics_filter": physics_filter,
}
