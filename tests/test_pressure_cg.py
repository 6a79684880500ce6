"""The conjugate-gradient pressure solve (``solvers.pressure``, ``solver="cg"``).

* CG (Jacobi-preconditioned) equals the FFT (periodic) and DCT (walls) solves.
* A CG projection leaves a divergence at the solver tolerance (measured relative
  figure 7e-13 of max|D u| at rtol 1e-12 with the Jacobi preconditioner).
* Gradients through a CG projection match central differences, and the backward pass
  is one more (adjoint) CG solve, not backpropagation through the iterations.
* Incompatible right-hand sides and non-convergence are refused, not solved silently.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import nnpde
from solvers import pressure
from solvers.navier_stokes import walls

BCS = {"periodic": nnpde.BoundaryConditions.periodic(2), "box": walls()}


def _grid():
    return nnpde.Grid((12, 10), extent=((0.0, 1.0), (0.0, 1.5)))


def _rhs(grid, seed=0):
    rhs = jax.random.normal(jax.random.PRNGKey(seed), grid.shape)
    return rhs - rhs.mean()


@pytest.mark.parametrize("name", sorted(BCS))
def test_cg_equals_the_transform_solves(name):
    grid, bc = _grid(), BCS[name]
    # Jacobi (many iterations); the transform preconditioner (the exact inverse on these
    # grids) is checked on a nearby problem, an outflow, in tests/test_channel.py.
    preconditioners = ("jacobi",)

    @jax.jit
    def solves(rhs):
        reference = pressure.solve_poisson(rhs, grid, bc)  # FFT or DCT
        return reference, [
            pressure.solve_poisson(rhs, grid, bc, solver="cg", preconditioner=k) for k in preconditioners
        ]

    reference, solutions = solves(_rhs(grid))
    scale = float(jnp.max(jnp.abs(reference)))
    for preconditioner, p in zip(preconditioners, solutions):
        error = float(jnp.max(jnp.abs(p - reference))) / scale
        mean = abs(float(jnp.mean(p)))
        assert error < 1e-10 and mean < 1e-15 * scale, (
            f"{name} {preconditioner}: rel. error {error:.3e}, mean {mean:.3e}"
        )


def _loss_factory(grid, bc, preconditioner="jacobi", rtol=None):
    weights = jax.random.normal(jax.random.PRNGKey(2), (2, *grid.shape))

    def loss(u):
        pu = pressure.project(u, grid, bc, solver="cg", preconditioner=preconditioner, rtol=rtol)
        return jnp.sum(weights * pu) + 0.5 * jnp.sum(pu**2 * weights**2)

    return loss


def test_cg_projection_divergence_and_gradient():
    """A CG projection leaves max|D P u| at the solver tolerance and equals the DCT one;
    d loss / d u through it (implicit, adjoint solve) against central differences with
    eps = 1e-5 (float64): truncation and round-off are both ~1e-10 relative and the CG
    tolerance 1e-12 adds ~1e-12 |L| / eps = 1e-7 relative at most, hence the bar 1e-5
    (measured 1.2e-11)."""
    grid, bc = _grid(), BCS["box"]
    loss = _loss_factory(grid, bc)

    @jax.jit  # called twice, not vmapped: a batched CG loop compiles far slower
    def evaluate(u):
        before = jnp.max(jnp.abs(pressure.divergence(pressure.enforce_walls(u, grid, bc), grid, bc)))
        pu = pressure.project(u, grid, bc, solver="cg", preconditioner="jacobi")
        after = jnp.max(jnp.abs(pressure.divergence(pu, grid, bc)))
        gap = jnp.max(jnp.abs(pu - pressure.project(u, grid, bc))) / jnp.max(jnp.abs(u))  # vs the DCT projection
        return loss(u), before, after, gap

    u = jax.random.normal(jax.random.PRNGKey(3), (2, *grid.shape))
    direction = jax.random.normal(jax.random.PRNGKey(4), u.shape)
    eps = 1e-5
    plus, before, after, gap = (float(x) for x in evaluate(u + eps * direction))
    minus = float(evaluate(u - eps * direction)[0])
    assert after < 1e-11 * before, f"max|D P u| = {after:.3e}, max|D u| = {before:.3e} (ratio {after / before:.2e})"
    assert gap < 1e-11, f"CG vs DCT projection: relative gap {gap:.3e}"
    ad = float(jnp.sum(jax.jit(jax.grad(loss))(u) * direction))
    fd = (plus - minus) / (2 * eps)
    error = abs(ad - fd) / abs(fd)
    assert error < 1e-5, f"AD {ad:.12e} FD {fd:.12e} rel. error {error:.2e}"


def _count(jaxpr, name):
    total = 0
    for eqn in jaxpr.eqns:
        total += eqn.primitive.name == name
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += _count(sub, name)
    return total


def test_backward_pass_is_one_adjoint_solve_not_backprop_through_iterations():
    """The gradient program holds two lineax solves (the forward CG solve and one
    transposed solve), and no loop outside them; its size does not depend on how many iterations run (a
    tolerance 1e-4 vs 1e-12: a different iteration count, the same program size).
    Reverse-mode through the iterations would be impossible anyway: lax.while_loop
    has no transpose rule."""
    grid, bc = _grid(), BCS["box"]
    u = jax.random.normal(jax.random.PRNGKey(3), (2, *grid.shape))
    sizes = {}
    for rtol in (1e-4, 1e-12):
        jaxpr = jax.make_jaxpr(jax.value_and_grad(_loss_factory(grid, bc, rtol=rtol)))(u).jaxpr
        solves, loops = _count(jaxpr, "linear_solve"), _count(jaxpr, "while") + _count(jaxpr, "scan")
        sizes[rtol] = len(jaxpr.eqns)
        assert solves == 2 and loops == 0, f"rtol {rtol}: {solves} linear solves, {loops} loops (expected 2, 0)"
    assert sizes[1e-4] == sizes[1e-12], f"gradient program size depends on the tolerance: {sizes}"


def test_cg_refuses_bad_input_and_non_convergence():
    grid, bc = _grid(), BCS["box"]
    with pytest.raises(ValueError, match="zero mean"):
        pressure.solve_poisson(jnp.ones(grid.shape), grid, bc, solver="cg")
    with pytest.raises(ValueError, match="preconditioner must be one of"):
        pressure.solve_poisson(_rhs(grid), grid, bc, solver="cg", preconditioner="ilu")
    with pytest.raises(ValueError, match="solver must be"):
        pressure.solve_poisson(_rhs(grid), grid, bc, solver="multigrid")
    # Two Jacobi-CG steps cannot reach 1e-12 on 120 unknowns: an error, not a poor answer.
    with pytest.raises((eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError), match="maximum number of solver steps"):
        solve = jax.jit(
            lambda r: pressure.solve_poisson(r, grid, bc, solver="cg", preconditioner="jacobi", max_steps=2)
        )
        jax.block_until_ready(solve(_rhs(grid)))
