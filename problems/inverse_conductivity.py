r"""Inverse problem: a smooth conductivity field recovered from temperature observations.

``dT/dt = div(k(x) grad T)`` on the unit interval or square, ``T = 0`` on the walls.
The true conductivity is ``k(x) = 1 + 0.5 sin(2 pi x_1) cos(pi x_2) ...`` (smooth,
between 0.5 and 1.5; see ``true_conductivity``). Temperatures are observed on every
cell at ``N_OBSERVATIONS`` times from ``N_EXPERIMENTS`` initial states (sums of sine
modes, so the temperature gradient is non-zero somewhere near every point, which is
what makes ``k`` identifiable). The unknown ``k`` is a pointwise MLP of position
through softplus (``nnpde.LearnedCoefficient``), fitted by Adam with gradients through
every explicit RK4 step of ``solvers.HeatEquation``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

import nnpde
import solvers

N_EXPERIMENTS = 4
N_OBSERVATIONS = 8
T_END = 0.02


def grid(ndim: int, resolution: int) -> nnpde.Grid:
    return nnpde.Grid((resolution,) * ndim, extent=((0.0, 1.0),) * ndim)


def true_conductivity(g: nnpde.Grid):
    c = g.cell_centres()
    k = 1.0 + 0.5 * jnp.sin(2 * jnp.pi * c[0])
    for x in c[1:]:
        k = k * (1.0 + 0.3 * jnp.cos(jnp.pi * x)) / 1.3
    return k


def equation(g: nnpde.Grid, conductivity) -> solvers.HeatEquation:
    return solvers.HeatEquation(g, nnpde.BoundaryConditions.dirichlet(g.ndim), conductivity=conductivity)


def initial_states(g: nnpde.Grid):
    """``(N_EXPERIMENTS, 1, *grid.shape)``: products of low sine modes, one set per experiment."""
    c = g.cell_centres()
    states = []
    for e in range(N_EXPERIMENTS):
        u = jnp.ones(g.shape)
        for a, x in enumerate(c):
            m = 1 + (e + a) % 3
            u = u * jnp.sin(m * jnp.pi * x + 0.0)
        states.append(u + 0.5 * jnp.sin(jnp.pi * c[0]) * (e + 1) / N_EXPERIMENTS)
    return jnp.stack(states)[:, None]


def time_step(g: nnpde.Grid) -> tuple[float, int]:
    """``(dt, steps per observation)``: RK4 at 0.9 of its limit for a conductivity up
    to 2 (so a learned field may overshoot the truth safely), dividing the interval
    between observations."""
    limit = nnpde.max_stable_dt(equation(g, 2.0), "rk4")
    per_obs = math.ceil(T_END / N_OBSERVATIONS / (0.9 * limit))
    return T_END / N_OBSERVATIONS / per_obs, per_obs


def observe(eq, u0, dt: float, per_obs: int):
    """Temperatures ``(N_EXPERIMENTS, N_OBSERVATIONS, 1, *shape)`` from ``u0`` under ``eq``."""
    stepper = nnpde.ExplicitRK(eq, dt=dt, method="rk4", check_stability=False)
    return jax.vmap(lambda u: nnpde.rollout(stepper, u, N_OBSERVATIONS * per_obs)[per_obs - 1 :: per_obs])(u0)


def observations(g: nnpde.Grid):
    """``(N_EXPERIMENTS, N_OBSERVATIONS, 1, *shape)`` temperatures under the true ``k``."""
    return jax.jit(observe, static_argnums=(2, 3))(equation(g, true_conductivity(g)), initial_states(g), *time_step(g))


def model(g: nnpde.Grid, *, seed: int = 0):
    """The unknown: ``k = softplus(MLP(x))``, starting near ``k = 0.69`` everywhere."""
    net = nnpde.Network(nnpde.networks.MLP(g.ndim, 1, hidden=32, depth=2, rngs=nnx.Rngs(seed)))
    return nnpde.LearnedCoefficient(equation(g, 1.0), net, where=lambda e: e.conductivity)


def recover(ndim: int = 1, resolution: int = 48, *, steps: int = 500, learning_rate: float = 1e-2, seed: int = 0):
    """Fit the conductivity; returns ``(learned field, true field, relative L2 error, history)``."""
    g = grid(ndim, resolution)
    data = observations(g)
    u0 = initial_states(g)
    dt, per_obs = time_step(g)

    def loss(m, batch, key):
        return jnp.mean((observe(m.resolve(), u0, dt, per_obs) - batch) ** 2) / jnp.mean(batch**2)

    optimizer = nnpde.make_optimizer(learning_rate, schedule="cosine", total_steps=steps)
    state, static = nnpde.init_train_state(model(g, seed=seed), optimizer, seed=seed)
    train_step = nnpde.make_train_step(loss, optimizer, static)
    history = []
    for n in range(steps):
        state, metrics = train_step(state, data)
        if (n + 1) % max(1, steps // 10) == 0:
            history.append({"step": n + 1, "loss": float(metrics["loss"])})
    learned, truth = nnpde.combine(state.params, static).field(), true_conductivity(g)
    error = float(jnp.linalg.norm((learned - truth).ravel()) / jnp.linalg.norm(truth.ravel()))
    return learned, truth, error, history
