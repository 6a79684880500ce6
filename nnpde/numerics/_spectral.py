"""Fast transform solves of ``(shift - scale * laplacian_h) x = rhs``.

The discrete Laplacian with constant coefficient is diagonalised axis by axis:

* periodic axes by the DFT: eigenvalue ``sum_o c_o cos(o theta) / h^2``,
  ``theta = 2 pi m / n`` (any order of central stencil ``c``);
* homogeneous Neumann walls (second order, ghost ``u_-1 = u_0``) by the DCT-II:
  ``-4 sin^2(pi m / 2n) / h^2``;
* homogeneous Dirichlet walls (second order, ghost ``u_-1 = -u_0``) by the DST-II:
  ``-4 sin^2(pi (m + 1) / 2n) / h^2``.

Inhomogeneous boundary data is not part of the operator (it enters the right-hand
side), so the solve serves any values of those condition types. Cost O(N log N);
differentiable (the transforms are linear). Reference: Schumann & Sweet,
J. Comput. Phys. 20 (1976) 171; Strang, SIAM Review 41 (1999) 135.
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.scipy.fft as jfft
import numpy as np

from ._boundary import BoundaryConditions
from ._grid import Grid
from .fd import SECOND_DERIVATIVE


def transform_kinds(bc: BoundaryConditions, order: int) -> tuple[str, ...] | None:
    """Per-axis transform (``"fft"``, ``"dct"``, ``"dst"``), or ``None`` if some axis
    cannot be diagonalised (mixed wall types, or walls at fourth order)."""
    kinds = []
    for a in range(bc.ndim):
        lo, hi = bc.kinds(a)
        if lo == "periodic":
            kinds.append("fft")
        elif order == 2 and lo == hi == "neumann":
            kinds.append("dct")
        elif order == 2 and lo == hi == "dirichlet":
            kinds.append("dst")
        else:
            return None
    return tuple(kinds)


def laplacian_eigenvalues(grid: Grid, kinds: tuple[str, ...], order: int = 2) -> np.ndarray:
    """Eigenvalues of the discrete Laplacian in transform space (``grid.shape``)."""
    total = np.zeros(grid.shape)
    for a, (kind, n, h) in enumerate(zip(kinds, grid.shape, grid.spacing)):
        m = np.arange(n)
        if kind == "fft":
            theta = 2 * np.pi * m / n
            lam = sum(c * np.cos(o * theta) for o, c in SECOND_DERIVATIVE[order]) / h**2
        elif kind == "dct":
            lam = -4 * np.sin(np.pi * m / (2 * n)) ** 2 / h**2
        else:
            lam = -4 * np.sin(np.pi * (m + 1) / (2 * n)) ** 2 / h**2
        shape = [1] * grid.ndim
        shape[a] = n
        total = total + lam.reshape(shape)
    return total


def _dst(x, axis):
    # DST-II from DCT-II: alternate signs, transform, reverse the modes.
    n = x.shape[axis]
    sign = jnp.asarray((-1.0) ** np.arange(n), dtype=x.dtype)
    sign = sign.reshape([n if i == axis % x.ndim else 1 for i in range(x.ndim)])
    return jnp.flip(jfft.dct(x * sign, type=2, axis=axis, norm="ortho"), axis=axis)


def _idst(y, axis):
    n = y.shape[axis]
    sign = jnp.asarray((-1.0) ** np.arange(n), dtype=y.dtype)
    sign = sign.reshape([n if i == axis % y.ndim else 1 for i in range(y.ndim)])
    return jfft.idct(jnp.flip(y, axis=axis), type=2, axis=axis, norm="ortho") * sign


def solve_shifted(rhs, grid: Grid, kinds: tuple[str, ...], *, shift, scale, order: int = 2):
    """Solve ``(shift - scale * laplacian_h) x = rhs`` on the trailing grid axes.

    ``shift`` and ``scale`` are scalars with ``shift > 0`` or ``scale < 0`` on a
    definite operator, so that no eigenvalue of the shifted operator vanishes.
    """
    ndim = grid.ndim
    lead = rhs.ndim - ndim
    x = rhs
    for a, kind in enumerate(kinds):
        if kind == "dct":
            x = jfft.dct(x, type=2, axis=lead + a, norm="ortho")
        elif kind == "dst":
            x = _dst(x, lead + a)
    fft_axes = tuple(lead + a for a, k in enumerate(kinds) if k == "fft")
    if fft_axes:
        x = jnp.fft.fftn(x, axes=fft_axes)
    lam = jnp.asarray(laplacian_eigenvalues(grid, kinds, order), dtype=rhs.dtype)
    x = x / (shift - scale * lam)
    if fft_axes:
        x = jnp.fft.ifftn(x, axes=fft_axes).real.astype(rhs.dtype)
    for a, kind in reversed(list(enumerate(kinds))):
        if kind == "dct":
            x = jfft.idct(x, type=2, axis=lead + a, norm="ortho")
        elif kind == "dst":
            x = _idst(x, lead + a)
    return x
