"""Preconditioned conjugate gradients with pluggable reductions, for split domains.

lineax's CG (used by ``ThetaMethod`` and the pressure solve in one process) takes its
inner products itself, over the whole array it sees. On a domain split across ranks
(``nnpde.distributed.Decomposition``) every rank holds one block, so each inner
product and norm must be summed over the ranks: this CG takes them from a
``reduce(x, op)`` callable (the decomposed boundary conditions' ``allreduce``;
identity in one process). Every rank then computes the same step lengths and the
same stopping decision, and runs the same number of iterations.

Differentiation is implicit: the iteration sits inside ``jax.lax.custom_linear_solve``
(symmetric), so reverse mode solves the same system once more for the cotangent, and
derivatives with respect to the operator's own parameters (a conductivity) come from
the matvec; no iterate is stored. Stopping: the normwise relative residual
``max|r| <= rtol max|b|`` (as ``ThetaMethod`` and ``solvers.pressure`` ask of lineax);
a solve that misses it within ``max_steps`` raises (``eqx.error_if``, under ``jit``
too) instead of returning a poor answer.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp


def _local(x, op: str = "sum"):
    return x


def conjugate_gradient(
    matvec: Callable,
    b,
    *,
    reduce: Callable | None = None,
    preconditioner: Callable | None = None,
    x0=None,
    rtol: float | None = None,
    atol: float = 0.0,
    max_steps: int | None = None,
    size: int | None = None,
    what: str = "conjugate gradients",
):
    """``x`` with ``matvec(x) = b`` for a symmetric positive definite ``matvec``.

    ``reduce(x, op)`` sums (``op="sum"``) or maximises (``"max"``) a local scalar over
    the ranks that share the field (default: one process, identity).
    ``preconditioner``: a symmetric positive definite approximation of the inverse
    (default identity). ``x0``: the initial guess (no gradient flows through it).
    Stops at ``max|r| <= atol + rtol max|b|``; ``rtol``: default 1e-12 in float64,
    1e-5 in float32; ``max_steps`` default
    ``10 * size``, ``size`` the number of unknowns over all ranks (default ``b.size``).
    """
    reduce = _local if reduce is None else reduce
    apply_m = (lambda r: r) if preconditioner is None else preconditioner
    rtol = rtol if rtol is not None else (1e-12 if b.dtype == jnp.float64 else 1e-5)
    max_steps = 10 * (b.size if size is None else size) if max_steps is None else max_steps
    guess = jnp.zeros_like(b) if x0 is None else jax.lax.stop_gradient(x0)

    def dot(x, y):
        return reduce(jnp.sum(x * y), "sum")

    def solve(op, rhs):
        bound = atol + rtol * jnp.maximum(reduce(jnp.max(jnp.abs(rhs)), "max"), jnp.finfo(rhs.dtype).tiny)
        x = guess  # also for the cotangent solve: a guess changes the iterations, not the answer
        r = rhs - op(x)
        z = apply_m(r)
        state = (x, r, z, z, dot(r, z), reduce(jnp.max(jnp.abs(r)), "max"), jnp.asarray(0))

        def unfinished(s):
            return (s[5] > bound) & (s[6] < max_steps)

        def step(s):
            x, r, z, p, rz, _, k = s
            q = op(p)
            alpha = rz / dot(p, q)
            x = x + alpha * p
            r = r - alpha * q
            z = apply_m(r)
            rz_next = dot(r, z)
            p = z + (rz_next / rz) * p
            return x, r, z, p, rz_next, reduce(jnp.max(jnp.abs(r)), "max"), k + 1

        x, *_, residual, _ = jax.lax.while_loop(unfinished, step, state)
        return eqx.error_if(
            x,
            residual > bound,
            f"{what} did not reach the relative residual {rtol:g} within {max_steps} steps. Fix: "
            "raise max_steps, loosen rtol, or check the operator (singular, not symmetric positive "
            "definite, or non-finite input).",
        )

    return jax.lax.custom_linear_solve(matvec, b, solve, symmetric=True)
