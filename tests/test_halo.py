"""Deep-halo rollouts (``rollout(..., halo=K)``) equal ordinary rollouts to round-off,
in value and gradient, and are refused where ghost cells are not a periodic copy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
import solvers


def _equation(shape, *, field_k, order=2):
    grid = nnpde.Grid(shape, extent=tuple((0.0, 1.0 + 0.3 * a) for a in range(len(shape))))
    x = grid.cell_centres()
    k = (1.0 + 0.3 * jnp.sin(2 * np.pi * x[0])) if field_k else 0.7
    return solvers.HeatEquation(
        grid,
        nnpde.BoundaryConditions.periodic(len(shape)),
        conductivity=k,
        source=lambda t: jnp.cos(2 * np.pi * x[-1]) * (1.0 + t),
        heat_capacity=1.0 + 0.1 * jnp.cos(2 * np.pi * x[0]) if field_k else 2.0,
        order=order,
    )


CASES = [((32,), False, 4), ((24,), True, 2), ((16, 12), False, 2), ((16, 12), True, 2), ((8, 6, 10), True, 2)]


METHODS, HALOS = ("forward_euler", "ssprk3", "rk4"), (1, 3, 8)
# Every case with every method and every halo width, and every (method, halo) pair in
# some case: a Latin square over the cases instead of the full 5 x 3 x 3 product,
# whose extra combinations exercise no code path these do not.
COMBINATIONS = [(*case, METHODS[j], HALOS[(i + j) % 3]) for i, case in enumerate(CASES) for j in range(len(METHODS))]


@pytest.mark.parametrize("shape,field_k,order,method,halo", COMBINATIONS)
def test_deep_halo_equals_plain_rollout(shape, field_k, order, method, halo):
    eq = _equation(shape, field_k=field_k, order=order)
    stepper = nnpde.ExplicitRK(eq, dt=nnpde.stable_dt(eq, method), method=method)
    u0 = jax.random.normal(jax.random.PRNGKey(1), eq.state_shape)
    plain = nnpde.rollout(stepper, u0, 13, t0=0.2)  # 13 steps: whole blocks and a remainder
    deep = nnpde.rollout(stepper, u0, 13, t0=0.2, halo=halo)
    assert deep.shape == plain.shape
    assert float(jnp.max(jnp.abs(deep - plain))) < 1e-13 * float(jnp.max(jnp.abs(plain)))
    final = nnpde.rollout(stepper, u0, 13, t0=0.2, halo=halo, trajectory=False)
    assert float(jnp.max(jnp.abs(final - plain[-1]))) < 1e-13 * float(jnp.max(jnp.abs(plain)))


def test_deep_halo_gradients_equal_plain_gradients():
    eq = _equation((16, 12), field_k=True)

    def loss(k, u0, halo, checkpoint):
        equation = solvers.HeatEquation(eq.grid, eq.bc, conductivity=k, source=eq.source_function)
        stepper = nnpde.ExplicitRK(equation, dt=2e-4, method="heun")
        # 11 steps: whole blocks and a remainder for every halo below
        return jnp.sum(nnpde.rollout(stepper, u0, 11, halo=halo, checkpoint=checkpoint) ** 2)

    u0 = jax.random.normal(jax.random.PRNGKey(2), eq.state_shape)
    # compiled, as in training (op by op the gradients take minutes); a two-stage method
    # and shallow halos keep the unrolled blocks' compile time down
    gradient = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=(2, 3))
    reference = gradient(eq.conductivity, u0, None, None)
    for halo, checkpoint in [(2, None), (3, "step"), (4, "sqrt")]:
        grads = gradient(eq.conductivity, u0, halo, checkpoint)
        for g, r in zip(grads, reference):
            assert float(jnp.max(jnp.abs(g - r))) < 1e-12 * float(jnp.max(jnp.abs(r))), (halo, checkpoint)


def test_deep_halo_is_refused_with_walls_or_implicit_steps():
    walls = solvers.HeatEquation(nnpde.Grid((8, 8)), nnpde.BoundaryConditions(nnpde.Periodic(), nnpde.Neumann(0.0)))
    u0 = jnp.zeros(walls.state_shape)
    with pytest.raises(ValueError, match="periodic on every axis"):
        nnpde.rollout(nnpde.ExplicitRK(walls, dt=1e-3), u0, 4, halo=2)
    periodic = _equation((8, 8), field_k=False)
    with pytest.raises(ValueError, match="explicit stepper"):
        nnpde.rollout(nnpde.ThetaMethod(periodic, dt=1e-2), jnp.zeros(periodic.state_shape), 4, halo=2)
    with pytest.raises(ValueError, match="positive int"):
        nnpde.rollout(nnpde.ExplicitRK(periodic, dt=1e-4), jnp.zeros(periodic.state_shape), 4, halo=0)
