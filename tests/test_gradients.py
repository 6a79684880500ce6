"""Gradients through rollouts of the heat equation are exact (float64).

What is verified, on a 12 x 10 grid with a periodic axis and a Dirichlet / Neumann
axis (inhomogeneous data), a spatially varying conductivity field, a source and a
smooth initial field, over 50-step rollouts:

* ``jax.grad`` of a trajectory loss with respect to the initial field and to the
  conductivity FIELD agrees with central finite differences (directional
  derivatives along fixed random directions) to a relative error < 1e-4, for
  explicit RK4 and SSP-RK3, implicit Crank-Nicolson and backward Euler with CG,
  implicit Crank-Nicolson with the spectral solver (scalar conductivity, periodic /
  Dirichlet-Dirichlet walls), and the diffrax adapter (Tsit5 with constant sub-steps,
  Kvaerno5 with an adaptive PID controller);
* ``rollout(checkpoint="step" | "sqrt")`` gives the same gradient as no
  checkpointing (to 1e-12);
* the implicit CG stepper is differentiated implicitly: the residuals that ``jax.vjp``
  keeps for the backward pass have the same size whether CG needs 4 or ~50
  iterations, and are a fixed multiple of the state size, whereas an unrolled CG
  loop stores residuals that grow with the iteration count; the gradient stays
  exact when CG needs many iterations.

Equation and stepper are built inside each loss from the traced conductivity, as a
user would. Each loss is compiled once (``jax.value_and_grad`` under ``jax.jit``) and
reused for every finite-difference evaluation, with the inputs passed as arguments.
"""

from __future__ import annotations

import functools
import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
import solvers

N_STEPS = 50
OBSERVED = (9, 24, 49)  # trajectory states that enter the loss
REL_EPS = 1e-6  # finite-difference step, relative to the norm of the input
TOLERANCE = 1e-4  # required relative agreement of AD and FD
N_DIRECTIONS = 2

GRID = nnpde.Grid((12, 10), extent=((0.0, 1.0), (0.0, 0.8)))
X, Y = GRID.cell_centres()
_X_WALL = GRID.boundary_face_centres(1)[0]  # x along the walls normal to axis 1
# Periodic in x; in y a wall temperature varying along the wall (low side) and a
# prescribed outward gradient (high side).
BC_MIXED = nnpde.BoundaryConditions(
    nnpde.Periodic(), (nnpde.Dirichlet(0.5 + 0.2 * jnp.cos(2 * jnp.pi * _X_WALL)), nnpde.Neumann(-0.3))
)
# Same-type walls per axis, as the spectral solver needs.
BC_SPECTRAL = nnpde.BoundaryConditions(
    nnpde.Periodic(), (nnpde.Dirichlet(0.5 + 0.2 * jnp.cos(2 * jnp.pi * _X_WALL)), nnpde.Dirichlet(-0.2))
)
K_FIELD = 1.0 + 0.3 * jnp.sin(2 * jnp.pi * X) * jnp.cos(jnp.pi * Y / 0.8) + 0.1 * Y
K_SCALAR = 1.3
SOURCE = 0.5 * jnp.cos(2 * jnp.pi * X) * Y
T_INIT = (jnp.sin(2 * jnp.pi * X) * jnp.cos(1.3 * Y) + 0.4 * Y + 0.2 * jnp.cos(4 * jnp.pi * X) * Y**2)[None]
TARGET = (0.3 * jnp.cos(2 * jnp.pi * X) + 0.1 * Y)[None]
STATE_SIZE = math.prod(T_INIT.shape)

DT_IMPLICIT = 0.01  # about six times the RK4 stability limit here


def _equation(bc, conductivity):
    return solvers.HeatEquation(GRID, bc, conductivity=conductivity, source=SOURCE)


# Explicit steps: 0.9 of each method's limit for the base conductivity (computed here,
# outside any trace: stable_dt needs concrete coefficients).
DT_EXPLICIT = {m: nnpde.stable_dt(_equation(BC_MIXED, K_FIELD), m) for m in ("rk4", "ssprk3")}


# name -> (boundary conditions, base conductivity, stepper factory on a concrete equation)
CASES = {
    "rk4": (BC_MIXED, K_FIELD, lambda eq: nnpde.ExplicitRK(eq, dt=DT_EXPLICIT["rk4"], method="rk4")),
    "ssprk3": (BC_MIXED, K_FIELD, lambda eq: nnpde.ExplicitRK(eq, dt=DT_EXPLICIT["ssprk3"], method="ssprk3")),
    # The library's default CG tolerances for Crank-Nicolson, explicit 1e-12 for backward Euler.
    "crank_nicolson_cg": (
        BC_MIXED,
        K_FIELD,
        lambda eq: nnpde.ThetaMethod(eq, dt=DT_IMPLICIT, method="crank_nicolson", solver="cg"),
    ),
    "backward_euler_cg": (
        BC_MIXED,
        K_FIELD,
        lambda eq: nnpde.ThetaMethod(eq, dt=DT_IMPLICIT, method="backward_euler", solver="cg", rtol=1e-12, atol=1e-12),
    ),
    "crank_nicolson_spectral": (
        BC_SPECTRAL,
        K_SCALAR,
        lambda eq: nnpde.ThetaMethod(eq, dt=DT_IMPLICIT, method="crank_nicolson", solver="spectral"),
    ),
    "diffrax_tsit5_constant": (
        BC_MIXED,
        K_FIELD,
        lambda eq: nnpde.DiffraxStepper(
            eq, dt=DT_EXPLICIT["rk4"], solver=diffrax.Tsit5(), dt0=DT_EXPLICIT["rk4"] / 2, max_steps=8
        ),
    ),
    "diffrax_kvaerno5_pid": (
        BC_MIXED,
        K_FIELD,
        lambda eq: nnpde.DiffraxStepper(
            eq,
            dt=0.005,
            solver=diffrax.Kvaerno5(),
            dt0=0.001,
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10),
            max_steps=64,
        ),
    ),
}


def _trajectory_loss(traj):
    return sum(jnp.mean((traj[i] - TARGET) ** 2) for i in OBSERVED) / len(OBSERVED)


@functools.cache
def _value_and_grad(case, checkpoint=None):
    """Compiled ``(u0, k) -> (loss, (dloss/du0, dloss/dk))`` of a 50-step rollout."""
    bc, _, make = CASES[case]

    def loss(u0, conductivity):
        stepper = make(_equation(bc, conductivity))
        return _trajectory_loss(nnpde.rollout(stepper, u0, N_STEPS, checkpoint=checkpoint))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def _directions(x, n, seed):
    """``n`` fixed random directions with the norm of ``x`` (a scalar gets its own value)."""
    x = np.asarray(x)
    if x.ndim == 0:
        return [np.asarray(x)]
    rng = np.random.default_rng(seed)
    vs = rng.standard_normal((n, *x.shape))
    return [v * np.linalg.norm(x) / np.linalg.norm(v) for v in vs]


def _directional_errors(value_and_grad, args, argnum, seed):
    """``(ad, fd, relative error)`` per direction for input ``argnum`` of ``args``."""
    _, grads = value_and_grad(*args)
    rows = []
    for v in _directions(args[argnum], N_DIRECTIONS, seed):
        ad = float(jnp.vdot(grads[argnum], v))
        shifted = []
        for sign in (1.0, -1.0):
            perturbed = list(args)
            perturbed[argnum] = args[argnum] + sign * REL_EPS * v
            shifted.append(float(value_and_grad(*perturbed)[0]))
        fd = (shifted[0] - shifted[1]) / (2 * REL_EPS)
        rows.append((ad, fd, abs(ad - fd) / max(abs(fd), 1e-300)))
    return rows


def _report(title, rows):
    lines = [f"{title}:"] + [
        f"  v{i}: ad={ad:+.12e} fd={fd:+.12e} rel.err={err:.2e}" for i, (ad, fd, err) in enumerate(rows)
    ]
    text = "\n".join(lines)
    print(text)
    return text


@pytest.mark.parametrize("wrt", ["initial_field", "conductivity"])
@pytest.mark.parametrize("case", list(CASES))
def test_rollout_gradient_matches_finite_differences(case, wrt):
    _, k, _ = CASES[case]
    args = (T_INIT, jnp.asarray(k))
    argnum = {"initial_field": 0, "conductivity": 1}[wrt]
    rows = _directional_errors(_value_and_grad(case), args, argnum, seed=10 + argnum)
    what = "scalar conductivity" if wrt == "conductivity" and np.ndim(k) == 0 else wrt.replace("_", " ")
    text = _report(f"{case}, d loss / d {what} ({N_STEPS} steps)", rows)
    assert all(np.isfinite(ad) and np.isfinite(fd) for ad, fd, _ in rows), text
    assert max(err for _, _, err in rows) < TOLERANCE, text


# "sqrt" (segments of 8 steps: 6 full segments and a remainder of 2) exercises the
# two-level scheme; "step" with CG checks that recomputing the solves changes nothing.
@pytest.mark.parametrize(("case", "checkpoint"), [("rk4", "step"), ("rk4", "sqrt"), ("crank_nicolson_cg", "step")])
def test_checkpointed_rollout_gradient_equals_plain(case, checkpoint):
    _, k, _ = CASES[case]
    args = (T_INIT, jnp.asarray(k))
    value_plain, grads_plain = _value_and_grad(case)(*args)
    value_ckpt, grads_ckpt = _value_and_grad(case, checkpoint)(*args)
    figures = [abs(float(value_ckpt - value_plain)) / abs(float(value_plain))]
    for g_plain, g_ckpt in zip(grads_plain, grads_ckpt):
        figures.append(float(jnp.max(jnp.abs(g_ckpt - g_plain)) / jnp.max(jnp.abs(g_plain))))
    text = (
        f"{case}, checkpoint={checkpoint!r} vs None: relative difference of the loss {figures[0]:.1e}, "
        f"of d/du0 {figures[1]:.1e}, of d/dk {figures[2]:.1e}"
    )
    print(text)
    assert max(figures) < 1e-12, text


# -- the implicit CG stepper's backward pass ------------------------------------------
# Two regimes of one backward-Euler step with a conductivity field: "easy" (tiny dt,
# loose tolerance: CG converges in at most 6 iterations) and "hard" (dt = 1, about 600
# times the explicit limit, default tolerance: CG needs more than 40 iterations).
EASY = dict(dt=1e-4, rtol=1e-6, atol=1e-6)
HARD = dict(dt=1.0)
# An implementation that stored CG iterates would keep at least one state-sized vector
# per iteration (an unrolled CG keeps about ten); what is stored must stay below these
# many state sizes. With respect to the state alone that is the solution, the forcing
# and the conductivity-dependent constants; with respect to the conductivity too, the
# linearised operator (harmonic face means and their derivatives), stored once.
RESIDUAL_BOUND = {"wrt_state": 8, "wrt_state_and_conductivity": 40}


def _implicit_step(conductivity=K_FIELD, **kwargs):
    return nnpde.ThetaMethod(_equation(BC_MIXED, conductivity), method="backward_euler", solver="cg", **kwargs)


def _one_step(**kwargs):
    """One backward-Euler CG step ``(u, conductivity) -> u_next``."""

    def step(u, conductivity):
        return _implicit_step(conductivity, **kwargs)(u)

    return step


def _stored_residual_size(step, *args, argnums):
    """Number of array elements ``jax.vjp`` keeps for the backward pass of ``step``.

    Traced abstractly (``jax.eval_shape``): the residuals of a reverse-mode pass are
    fixed at trace time, and the vjp function is a pytree whose leaves are them.
    """

    def residuals(*primals):
        def partial_step(*diff_args):
            full = list(primals)
            for i, a in zip(argnums, diff_args):
                full[i] = a
            return step(*full)

        return jax.vjp(partial_step, *(primals[i] for i in argnums))[1]

    shapes = jax.eval_shape(residuals, *args)
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes))


def _unrolled_cg(u, conductivity, *, dt, n_iter):
    """Jacobi-preconditioned CG for the same backward-Euler system, unrolled for a fixed
    number of iterations (``fori_loop`` with static bounds is a ``scan``): what naive
    differentiation through the iterations looks like."""
    eq = _equation(BC_MIXED, conductivity)
    rhs = eq.mass() * u + dt * eq.forcing(dt)

    def matvec(x):
        return eq.mass() * x - dt * eq.apply_operator(x)

    inverse_diagonal = 1.0 / (eq.mass() - dt * eq.preconditioner_diagonal())
    r = rhs - matvec(u)
    z = inverse_diagonal * r

    def body(_, carry):
        x, r, z, p = carry
        ap = matvec(p)
        alpha = jnp.vdot(r, z) / jnp.vdot(p, ap)
        x, r_new = x + alpha * p, r - alpha * ap
        z_new = inverse_diagonal * r_new
        p = z_new + (jnp.vdot(r_new, z_new) / jnp.vdot(r, z)) * p
        return x, r_new, z_new, p

    return jax.lax.fori_loop(0, n_iter, body, (u, r, z, z))[0]


def test_cg_iteration_counts_of_the_two_regimes():
    """The premise of the residual test: the hard regime needs many more CG iterations."""
    _implicit_step(**EASY, max_steps=6)(T_INIT)  # converges within 6 iterations (else raises)
    with pytest.raises(RuntimeError, match="maximum number of solver steps"):
        jax.block_until_ready(_implicit_step(**HARD, max_steps=40)(T_INIT))
    # (With the default budget the hard step converges: the gradient test below runs it.)


@pytest.mark.parametrize("wrt", list(RESIDUAL_BOUND))
def test_implicit_cg_backward_stores_no_iterations(wrt):
    argnums = {"wrt_state": (0,), "wrt_state_and_conductivity": (0, 1)}[wrt]
    bound = RESIDUAL_BOUND[wrt]
    args = (T_INIT, K_FIELD)
    sizes = {
        "easy": _stored_residual_size(_one_step(**EASY), *args, argnums=argnums),
        "hard": _stored_residual_size(_one_step(**HARD), *args, argnums=argnums),
        "hard, max_steps=10**5": _stored_residual_size(_one_step(**HARD, max_steps=10**5), *args, argnums=argnums),
    }
    unrolled = {
        n: _stored_residual_size(functools.partial(_unrolled_cg, dt=HARD["dt"], n_iter=n), *args, argnums=argnums)
        for n in (4, 50)
    }
    text = (
        f"stored vjp residuals ({wrt}), in state sizes ({STATE_SIZE} values): "
        + ", ".join(f"{name}: {s / STATE_SIZE:.2f}" for name, s in sizes.items())
        + "; unrolled CG: "
        + ", ".join(f"{n} iterations: {s / STATE_SIZE:.2f}" for n, s in unrolled.items())
        + f"; bound {bound}"
    )
    print(text)
    assert len(set(sizes.values())) == 1, text
    assert sizes["hard"] <= bound * STATE_SIZE, text
    # The measurement sees iteration storage when there is some:
    assert unrolled[50] >= 5 * unrolled[4], text
    assert unrolled[50] > bound * STATE_SIZE, text


@functools.cache
def _hard_value_and_grad():
    step = _one_step(**HARD)
    return jax.jit(jax.value_and_grad(lambda u, k: jnp.mean((step(u, k) - TARGET) ** 2), argnums=(0, 1)))


@pytest.mark.parametrize("wrt", ["state", "conductivity"])
def test_implicit_cg_gradient_exact_when_cg_needs_many_iterations(wrt):
    argnum = {"state": 0, "conductivity": 1}[wrt]
    rows = _directional_errors(_hard_value_and_grad(), (T_INIT, K_FIELD), argnum, seed=20 + argnum)
    text = _report(f"one backward-Euler CG step, dt={HARD['dt']}, d loss / d {wrt}", rows)
    assert all(np.isfinite(ad) and np.isfinite(fd) for ad, fd, _ in rows), text
    assert max(err for _, _, err in rows) < TOLERANCE, text
