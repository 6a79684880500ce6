"""What the hybrid tasks share besides ``nnpde.Task.from_solvers``: the network of
their learned models and the check of their numeric options."""

from __future__ import annotations

import math

from flax import nnx

import nnpde


def cnn(
    seed: int,
    in_channels: int,
    out_channels: int,
    *,
    periodic: tuple[bool, ...],
    hidden: int,
    depth: int,
    kernel_size: int = 3,
    zero_init: bool = True,
    head_kernel_size: int | None = None,
    separable: bool = False,
) -> nnpde.Network:
    """A CNN on the coarse grid (``nnpde.networks.ConvNet``, one axis per entry of
    ``periodic``), initialised from ``seed``; with ``zero_init`` its last layer is zero,
    so that a learned correction or closure starts as the plain coarse solver.
    ``head_kernel_size``: the last layer's kernel (``kernel_size`` unless given);
    ``separable``: depthwise-separable hidden layers."""
    return nnpde.Network(
        nnpde.networks.ConvNet(
            in_channels,
            out_channels,
            ndim=len(periodic),
            hidden=hidden,
            depth=depth,
            kernel_size=kernel_size,
            head_kernel_size=head_kernel_size,
            periodic=tuple(periodic),
            zero_init=zero_init,
            separable=separable,
            rngs=nnx.Rngs(seed),
        )
    )


def check_option(name: str, value, minimum, fix: str, *, integer: bool = True) -> None:
    """Refuse a task option that is not an int (``integer``; else a finite number) of
    at least ``minimum``, naming it, the value and ``fix``."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (value >= minimum and math.isfinite(value)):
        what = "an int" if integer else "a finite number"
        raise ValueError(f"{name} must be {what} >= {minimum}, got {value!r}. Fix: {fix}")
