"""The spectral convolution of the Fourier neural operator (Li et al. 2021).

``K h = irfftn(R . P_modes rfftn(h))``: real FFT over the spatial axes, keep the
lowest ``modes[a]`` frequencies of each axis ``a`` (both signs on every axis but the
last, whose real FFT holds only non-negative ones), multiply the kept coefficients by
a learned complex ``(in, out)`` matrix per frequency, zero the rest, inverse FFT.
The FFT makes every axis periodic, so ``K`` commutes with integer translations.
FFTs use the default ``norm="backward"``, so the same weights give the same
operator on any grid fine enough to hold the kept modes (``modes[a] <= n_a // 2``).

Reference: Z. Li et al., "Fourier neural operator for parametric partial
differential equations", ICLR 2021, eq. (4)-(5).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx


class SpectralConv(nnx.Module):
    """Fourier-space convolution on one channels-first sample ``(in, *spatial) -> (out, *spatial)``.

    The complex weights are stored as two real ``nnx.Param`` arrays
    (``weight_real``, ``weight_imag``) of shape ``(in, out, 2 m_0, ..., 2 m_{d-2},
    m_{d-1})``, initialised uniformly in ``[0, 1/(in * out))`` as by Li et al.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        ndim: int,
        modes: int | Sequence[int],
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        modes = (modes,) * ndim if isinstance(modes, (int, np.integer)) else tuple(modes)
        if len(modes) != ndim or not all(isinstance(m, (int, np.integer)) and m >= 1 for m in modes):
            raise ValueError(
                f"modes must be a positive integer or one positive integer per spatial axis (ndim={ndim}), "
                f"got {modes!r}. Fix: e.g. modes=8."
            )
        self.in_channels, self.out_channels, self.ndim = in_channels, out_channels, ndim
        self.modes = tuple(int(m) for m in modes)
        self.dtype = dtype
        shape = (in_channels, out_channels, *(2 * m for m in self.modes[:-1]), self.modes[-1])
        scale = 1.0 / (in_channels * out_channels)
        self.weight_real = nnx.Param(scale * nnx.initializers.uniform(1.0)(rngs.params(), shape, param_dtype))
        self.weight_imag = nnx.Param(scale * nnx.initializers.uniform(1.0)(rngs.params(), shape, param_dtype))

    def __call__(self, h):
        spatial = tuple(h.shape[1:])
        if len(spatial) != self.ndim or h.shape[0] != self.in_channels:
            raise ValueError(
                f"SpectralConv expects shape (in_channels={self.in_channels}, *spatial) with {self.ndim} "
                f"spatial axes, got {tuple(h.shape)}. Fix: pass one channels-first sample (for a batch use jax.vmap)."
            )
        too_fine = [(n, m) for n, m in zip(spatial, self.modes) if m > n // 2]
        if too_fine:
            n, m = too_fine[0]
            raise ValueError(
                f"modes={m} needs at least {2 * m} cells per axis, got spatial shape {spatial}. "
                f"Fix: use modes <= {n // 2} or a finer grid."
            )
        dtype = self.dtype or jnp.result_type(h.dtype, self.weight_real.dtype)
        weight = (self.weight_real[...] + 1j * self.weight_imag[...]).astype(jnp.result_type(dtype, jnp.complex64))
        axes = tuple(range(1, self.ndim + 1))
        coeffs = jnp.fft.rfftn(h.astype(dtype), axes=axes)
        # Kept frequencies: 0..m-1 and -m..-1 on full axes, 0..m-1 on the real-FFT axis.
        index = [np.r_[0:m, n - m : n] for n, m in zip(spatial[:-1], self.modes[:-1])]
        index.append(np.arange(self.modes[-1]))
        grid = np.ix_(*index)
        kept = coeffs[(slice(None), *grid)]
        mixed = jnp.einsum("i...,io...->o...", kept, weight)
        out = jnp.zeros((self.out_channels, *coeffs.shape[1:]), mixed.dtype)
        out = out.at[(slice(None), *grid)].set(mixed)
        return jnp.fft.irfftn(out, s=spatial, axes=axes).astype(dtype)
