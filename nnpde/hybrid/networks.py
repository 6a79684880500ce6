"""Neural networks on grid fields and on coordinates (flax nnx).

Every field network maps ONE unbatched sample, channels first:
``(in_channels, *spatial) -> (out_channels, *spatial)`` with ``len(spatial) == ndim``
(1, 2 or 3). Batching is ``jax.vmap`` over ``nnx.merge(graphdef, params)(x)``, the
single functional boundary of a network::

    graphdef, params = nnx.split(model, nnx.Param)
    y = jax.vmap(lambda x: nnx.merge(graphdef, params)(x))(xs)

Internally the arrays are channels-last, as ``nnx.Conv`` wants.

Boundaries. Convolutions pad explicitly and then run with ``padding="VALID"``: each
spatial axis of a kernel of size ``k`` gets ``k // 2`` ghost cells per side, wrapped
(``jnp.pad(mode="wrap")``) on a periodic axis and filled with ``pad_mode`` ("edge",
"reflect" or "zeros") on a non-periodic one. So on a fully periodic grid the
convolutional networks commute with integer translations (``jnp.roll``). ``periodic``
is a bool (every axis), a tuple of bools, or anything with ``is_periodic(axis)`` such
as ``nnpde.BoundaryConditions`` (see ``periodic_axes``). The Fourier neural operator
is periodic by construction.

Derivatives. On the CPU backend the convolutions run through ``_valid_conv``: the
same forward as ``lax.conv_general_dilated``, with its own JVP on im2col windows,
whose transpose (reverse mode) runs 4-5x faster than XLA's transpose convolutions
inside the loops of unrolled training, for more working memory per step
(``benchmarks/conv_backward.py``, ``scripts/unroll_memory.py``,
docs/benchmarks/training-cost.md). Other backends use ``lax.conv_general_dilated`` and
its own derivatives.

``zero_init=True`` zeroes the kernel and bias of the last layer, so the network
outputs exactly 0 at initialisation: a learned correction then starts as the plain
solver, and the last layer still receives gradients.

Networks: ``ConvNet`` (plain CNN; depthwise-separable hidden layers with
``separable=True``, built on ``DepthwiseConv``), ``ResNet`` (He et al. 2016), ``UNet``
(Ronneberger et al. 2015), ``FNO`` (Li et al. 2021), ``MLP`` (pointwise, on
coordinates, for PINNs and coefficient fields).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from .._checks import check_int
from ._spectral_conv import SpectralConv as SpectralConv

_PAD_MODES = {"edge": "edge", "reflect": "reflect", "zeros": "constant"}


# ---------------------------------------------------------------------------
# argument checks


def periodic_axes(bc, ndim: int) -> tuple[bool, ...]:
    """Which of ``ndim`` spatial axes are periodic, as a tuple of bools.

    ``bc`` is a bool (the same for every axis), a sequence of ``ndim`` bools, or an
    object with ``is_periodic(axis) -> bool`` (e.g. ``nnpde.BoundaryConditions``).
    """
    if isinstance(bc, (bool, np.bool_)):
        return (bool(bc),) * ndim
    if hasattr(bc, "is_periodic"):
        have = getattr(bc, "ndim", ndim)
        if have != ndim:
            raise ValueError(
                f"periodic: the boundary conditions cover {have} axes but the network has ndim={ndim}. "
                "Fix: pass boundary conditions of the same dimension as the network."
            )
        return tuple(bool(bc.is_periodic(a)) for a in range(ndim))
    if isinstance(bc, Sequence) and not isinstance(bc, str):
        if len(bc) != ndim or not all(isinstance(b, (bool, np.bool_)) for b in bc):
            raise ValueError(
                f"periodic must hold one bool per spatial axis (ndim={ndim}), got {bc!r}. "
                f"Fix: e.g. periodic={(True,) * ndim}."
            )
        return tuple(bool(b) for b in bc)
    raise ValueError(
        f"periodic must be a bool, a tuple of {ndim} bools or an object with is_periodic(axis), got {bc!r}. "
        "Fix: pass e.g. periodic=True or an nnpde.BoundaryConditions."
    )


def _check_ndim(ndim) -> None:
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3, got {ndim!r}. Fix: pass the number of spatial axes.")


def _check_kernel_size(kernel_size) -> None:
    check_int(kernel_size, "kernel_size", minimum=1, fix="use a positive odd kernel size such as 3 or 5.")
    if kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be odd so the output stays centred on its cell, got {kernel_size}. "
            f"Fix: use {kernel_size + 1} or {kernel_size - 1}."
        )


def _check_pad_mode(pad_mode) -> None:
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"pad_mode must be one of {sorted(_PAD_MODES)}, got {pad_mode!r}. Fix: use 'edge'.")


def _check_input(x, in_channels: int, ndim: int, name: str) -> None:
    """Raise unless ``x`` is one sample of shape ``(in_channels, *spatial)``."""
    shape = tuple(jnp.shape(x))
    if len(shape) == ndim + 2 and shape[1] == in_channels:
        raise ValueError(
            f"{name} acts on one unbatched sample of shape (in_channels={in_channels}, *spatial) with "
            f"{ndim} spatial axes, got shape {shape}. Fix: for a batch use jax.vmap."
        )
    if len(shape) != ndim + 1 or shape[0] != in_channels:
        raise ValueError(
            f"{name} expects shape (in_channels={in_channels}, *spatial) with {ndim} spatial axes, "
            f"got shape {shape}. Fix: put channels first and pass one sample (for a batch use jax.vmap)."
        )


def _last_init(zero_init: bool) -> dict:
    if zero_init:
        return {"kernel_init": nnx.initializers.zeros_init(), "bias_init": nnx.initializers.zeros_init()}
    return {}


# ---------------------------------------------------------------------------
# padded convolution (channels-last inside)


def pad_field(h, width: int, periodic: tuple[bool, ...], pad_mode: str = "edge"):
    """Pad the leading ``len(periodic)`` axes of channels-last ``h`` by ``width`` per side.

    Periodic axes wrap; the others use ``pad_mode`` ("edge", "reflect", "zeros").
    """
    if width == 0:
        return h
    for axis, wrap in enumerate(periodic):
        pads = [(0, 0)] * h.ndim
        pads[axis] = (width, width)
        h = jnp.pad(h, pads, mode="wrap" if wrap else _PAD_MODES[pad_mode])
    return h


def _dn(ndim: int):
    spatial = "DHW"[3 - ndim :]
    return (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")


def _windows(x, size, out):
    """The ``prod(size)`` shifted windows of ``x (N, *S_in, I)`` of spatial shape
    ``out``, side by side: ``(N, *out, prod(size) * I)`` (``im2col``)."""
    return jnp.concatenate(
        [
            x[(slice(None), *(slice(o, o + n) for o, n in zip(offset, out)), slice(None))]
            for offset in itertools.product(*(range(k) for k in size))
        ],
        axis=-1,
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _valid_conv(x, kernel, precision):
    """Stride-1 VALID cross-correlation, channels last: ``x (N, *S_in, I)``, ``kernel
    (*k, I, O)`` -> ``(N, *S_in - k + 1, O)``; the same as ``lax.conv_general_dilated``.

    Its own JVP because XLA's CPU backend runs the convolutions of the default
    transpose (an input gradient with a reversed, transposed kernel; a kernel gradient
    that contracts over the batch) about 20x slower inside a loop (``lax.scan``, as in
    every unrolled training rollout) than outside one (``benchmarks/conv_backward.py``,
    docs/benchmarks/training-cost.md). The JVP is written on the ``im2col`` windows,
    ``dy = sum_k window_k(dx) W_k + window_k(x) dW_k``, so JAX's transpose of it
    (reverse mode) is matrix products plus shifted, padded additions, which run at full
    speed in a loop. Forward mode (``jax.jvp``, ``jax.jacfwd``) works as well.
    """
    ndim = kernel.ndim - 2
    return lax.conv_general_dilated(x, kernel, (1,) * ndim, "VALID", dimension_numbers=_dn(ndim), precision=precision)


@_valid_conv.defjvp
def _valid_conv_jvp(precision, primals, tangents):
    x, kernel = primals
    dx, dkernel = tangents
    y = _valid_conv(x, kernel, precision)
    ndim = kernel.ndim - 2
    size, out = kernel.shape[:ndim], y.shape[1:-1]
    flat = (-1, kernel.shape[-1])

    def product(a, b):
        return jnp.matmul(_windows(a, size, out), b.reshape(flat), precision=precision)

    # rematerialised: reverse mode keeps x, not its prod(k)-fold windows, per layer and step
    dy = product(dx, kernel) + jax.checkpoint(product)(x, dkernel)
    return y, dy.astype(y.dtype)


def _conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    precision=None,
    preferred_element_type=None,
    **kwargs,
):
    """``lax.conv_general_dilated`` for ``nnx.Conv``, routed through ``_valid_conv``
    (same values, a loop-friendly VJP) in the one case ``PaddedConv`` uses, on the CPU
    backend: the slow transpose convolutions are XLA:CPU's, and other backends run
    their own (e.g. cuDNN's) without the im2col temporaries."""
    ndim = rhs.ndim - 2
    ones = (1,) * ndim
    plain = (  # the stride-1, undilated, ungrouped VALID convolution of PaddedConv, channels last
        tuple(window_strides) == ones
        and padding == "VALID"
        and tuple(lhs_dilation or ones) == ones
        and tuple(rhs_dilation or ones) == ones
        and feature_group_count == 1
        and preferred_element_type is None
        and all(v is None for v in kwargs.values())
        and lhs.dtype == rhs.dtype
        and dimension_numbers == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _dn(ndim))
    )
    if plain and jax.default_backend() == "cpu":
        return _valid_conv(lhs, rhs, precision)
    extra = {} if preferred_element_type is None else {"preferred_element_type": preferred_element_type}
    return lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation,
        rhs_dilation,
        dimension_numbers,
        feature_group_count,
        precision=precision,
        **extra,
        **kwargs,
    )


class PaddedConv(nnx.Module):
    """``nnx.Conv`` with boundary-aware padding, on channels-last ``(*spatial, C)``.

    Pads ``kernel_size // 2`` cells per side (see ``pad_field``), then a VALID
    convolution, so the spatial shape is preserved.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        kernel_size: int,
        periodic: tuple[bool, ...],
        pad_mode: str = "edge",
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
        **init,
    ):
        self.periodic = tuple(periodic)
        self.pad_mode = pad_mode
        self.width = kernel_size // 2
        self.conv = nnx.Conv(
            in_features,
            out_features,
            (kernel_size,) * len(self.periodic),
            padding="VALID",
            conv_general_dilated=_conv_general_dilated,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
            **init,
        )

    def __call__(self, h):
        return self.conv(pad_field(h, self.width, self.periodic, self.pad_mode))


class DepthwiseConv(nnx.Module):
    """A depthwise convolution on channels-last ``(*spatial, C)``: each channel
    convolved with its own ``kernel_size^ndim`` kernel, plus a bias, padded as
    ``PaddedConv`` (``kernel_size // 2`` cells per side, wrapped on periodic axes), so
    the spatial shape is preserved. Followed by a pointwise (1 x 1) layer it is the
    depthwise-separable convolution of Chollet (Xception, CVPR 2017) and Howard et al.
    (MobileNets, 2017): ``k^ndim * C + C * C'`` multiply-adds per cell instead of
    ``k^ndim * C * C'``.

    It runs as a sum of ``k^ndim`` shifted, scaled copies of the padded field, not as a
    grouped convolution: on XLA's CPU backend the grouped ``lax.conv_general_dilated``
    is several times slower than the full convolution it replaces, and the sum's
    derivatives are shifts and sums, fast inside the loops of unrolled training.
    The kernel is initialised with variance ``1 / k^ndim`` (LeCun normal, its fan-in).
    """

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int,
        periodic: tuple[bool, ...],
        pad_mode: str = "edge",
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        check_int(channels, "channels", minimum=1, fix="pass the number of channels.")
        _check_kernel_size(kernel_size)
        _check_pad_mode(pad_mode)
        self.periodic = tuple(periodic)
        self.pad_mode = pad_mode
        self.kernel_size = kernel_size
        shape = (kernel_size,) * len(self.periodic) + (channels,)
        self.kernel = nnx.Param(
            nnx.initializers.lecun_normal(in_axis=tuple(range(len(self.periodic))), out_axis=-1)(
                rngs.params(), shape, param_dtype
            )
        )
        self.bias = nnx.Param(jnp.zeros((channels,), param_dtype))

    def __call__(self, h):
        spatial = h.shape[: len(self.periodic)]
        padded = pad_field(h, self.kernel_size // 2, self.periodic, self.pad_mode)
        kernel = self.kernel[...]
        total = 0.0
        for offset in itertools.product(range(self.kernel_size), repeat=len(self.periodic)):
            window = padded[tuple(slice(o, o + n) for o, n in zip(offset, spatial))]
            total = total + window * kernel[offset]
        return total + self.bias[...]


class _Separable(nnx.Module):
    """``DepthwiseConv`` then a pointwise ``nnx.Linear``: one layer of ``ConvNet(separable=True)``."""

    def __init__(self, cin: int, cout: int, *, kernel_size: int, common: dict):
        rngs = common["rngs"]
        self.depthwise = DepthwiseConv(
            cin,
            kernel_size=kernel_size,
            periodic=common["periodic"],
            pad_mode=common["pad_mode"],
            param_dtype=common["param_dtype"],
            rngs=rngs,
        )
        self.pointwise = nnx.Linear(cin, cout, dtype=common["dtype"], param_dtype=common["param_dtype"], rngs=rngs)

    def __call__(self, h):
        return self.pointwise(self.depthwise(h))


class _ConvArgs:
    """The checked options shared by the convolutional networks."""

    def __init__(self, ndim, periodic, kernel_size, pad_mode, dtype, param_dtype, rngs):
        _check_ndim(ndim)
        _check_kernel_size(kernel_size)
        _check_pad_mode(pad_mode)
        self.periodic = periodic_axes(periodic, ndim)
        self.common = dict(periodic=self.periodic, pad_mode=pad_mode, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.kernel_size = kernel_size

    def conv(self, cin: int, cout: int, *, kernel_size: int | None = None, zero_init: bool = False):
        k = self.kernel_size if kernel_size is None else kernel_size
        return PaddedConv(cin, cout, kernel_size=k, **self.common, **_last_init(zero_init))


def _channels_last(x):
    return jnp.moveaxis(x, 0, -1)


def _channels_first(h):
    return jnp.moveaxis(h, -1, 0)


# ---------------------------------------------------------------------------
# convolutional networks


class ConvNet(nnx.Module):
    """Plain convolutional network: ``depth`` convolutions, ``activation`` between them.

    Layers: ``in_channels -> hidden -> ... -> hidden -> out_channels`` (``depth == 1``:
    a single convolution). Each convolution pads ``kernel_size // 2`` cells per side,
    wrapped on periodic axes and ``pad_mode`` on the others, so the receptive field
    has radius ``depth * (kernel_size // 2)`` cells.

    ``head_kernel_size``: the last convolution's kernel (``kernel_size`` unless given). A
    ``1`` makes the output layer a per-cell projection: where the output has many more
    channels than ``hidden`` (a learned interpolation's stencil coefficients, say), that
    layer dominates the cost, and a 1 x 1 head cuts it by ``kernel_size^ndim``; the
    receptive field then has radius ``(depth - 1) * (kernel_size // 2)``.

    ``separable``: the ``hidden -> hidden`` layers are depthwise-separable
    (``DepthwiseConv`` then a pointwise layer; Chollet 2017, Howard et al. 2017): the
    same receptive field at ``1 / kernel_size^ndim + 1 / hidden`` of those layers'
    multiply-adds and weights (an eighth at 3 x 3 and 64 channels). The first and the
    last layer stay full convolutions.

    Shapes: ``(in_channels, *spatial) -> (out_channels, *spatial)``, one sample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        ndim: int,
        periodic,
        hidden: int = 32,
        depth: int = 4,
        kernel_size: int = 5,
        head_kernel_size: int | None = None,
        pad_mode: str = "edge",
        activation: Callable = nnx.gelu,
        zero_init: bool = False,
        separable: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        check_int(in_channels, "in_channels", minimum=1, fix="pass the number of input fields.")
        check_int(out_channels, "out_channels", minimum=1, fix="pass the number of output fields.")
        check_int(hidden, "hidden", minimum=1, fix="use e.g. hidden=32.")
        check_int(depth, "depth", minimum=1, fix="use e.g. depth=4 convolutions.")
        if not isinstance(separable, bool):
            raise TypeError(f"separable must be True or False, got {separable!r}.")
        args = _ConvArgs(ndim, periodic, kernel_size, pad_mode, dtype, param_dtype, rngs)
        if head_kernel_size is not None:
            _check_kernel_size(head_kernel_size)
        self.in_channels, self.out_channels, self.ndim = in_channels, out_channels, ndim
        self.periodic = args.periodic
        self.activation = activation
        widths = [in_channels] + [hidden] * (depth - 1) + [out_channels]

        def layer(i, a, b):
            if separable and 0 < i < depth - 1:  # hidden -> hidden
                return _Separable(a, b, kernel_size=kernel_size, common=args.common)
            return args.conv(
                a, b, kernel_size=head_kernel_size if i == depth - 1 else None, zero_init=zero_init and i == depth - 1
            )

        self.layers = nnx.List([layer(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(widths))])

    def __call__(self, x):
        _check_input(x, self.in_channels, self.ndim, "ConvNet")
        h = _channels_last(x)
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return _channels_first(self.layers[-1](h))


class ResNet(nnx.Module):
    """Residual convolutional network (He et al. 2016, pre-activation blocks).

    A lifting convolution ``in_channels -> hidden``, then ``depth`` blocks
    ``h <- h + conv(act(conv(act(h))))``, then a 1x1 projection ``hidden ->
    out_channels`` (the last layer, zeroed by ``zero_init``). Padding as in
    ``ConvNet``: wrap on periodic axes, ``pad_mode`` on the others.

    Reference: K. He, X. Zhang, S. Ren, J. Sun, "Identity mappings in deep residual
    networks", ECCV 2016.

    Shapes: ``(in_channels, *spatial) -> (out_channels, *spatial)``, one sample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        ndim: int,
        periodic,
        hidden: int = 32,
        depth: int = 4,
        kernel_size: int = 5,
        pad_mode: str = "edge",
        activation: Callable = nnx.gelu,
        zero_init: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        check_int(in_channels, "in_channels", minimum=1, fix="pass the number of input fields.")
        check_int(out_channels, "out_channels", minimum=1, fix="pass the number of output fields.")
        check_int(hidden, "hidden", minimum=1, fix="use e.g. hidden=32.")
        check_int(depth, "depth", minimum=0, fix="use e.g. depth=4 residual blocks.")
        args = _ConvArgs(ndim, periodic, kernel_size, pad_mode, dtype, param_dtype, rngs)
        self.in_channels, self.out_channels, self.ndim = in_channels, out_channels, ndim
        self.periodic = args.periodic
        self.activation = activation
        self.lift = args.conv(in_channels, hidden)
        self.blocks = nnx.List([nnx.List([args.conv(hidden, hidden), args.conv(hidden, hidden)]) for _ in range(depth)])
        self.project = args.conv(hidden, out_channels, kernel_size=1, zero_init=zero_init)

    def __call__(self, x):
        _check_input(x, self.in_channels, self.ndim, "ResNet")
        h = self.lift(_channels_last(x))
        for first, second in self.blocks:
            h = h + second(self.activation(first(self.activation(h))))
        return _channels_first(self.project(self.activation(h)))


def _pool(h, ndim: int):
    """Average over 2^ndim blocks of the leading ``ndim`` axes (channels-last)."""
    shape = []
    for n in h.shape[:ndim]:
        shape += [n // 2, 2]
    return h.reshape(*shape, h.shape[-1]).mean(axis=tuple(range(1, 2 * ndim, 2)))


def _upsample(h, ndim: int):
    """Nearest-neighbour upsampling by 2 along the leading ``ndim`` axes."""
    for axis in range(ndim):
        h = jnp.repeat(h, 2, axis=axis)
    return h


class UNet(nnx.Module):
    """U-Net (Ronneberger et al. 2015) in 1-D, 2-D or 3-D.

    Encoder: at level ``l = 0..levels`` two convolutions to ``hidden * 2**l``
    channels, with 2x average pooling between levels. Decoder: nearest-neighbour 2x
    upsampling, concatenation with the encoder features of the same level (skip
    connection), two convolutions. A final 1x1 convolution maps to ``out_channels``
    (the last layer, zeroed by ``zero_init``). Padding as in ``ConvNet`` at every
    level: wrap on periodic axes, ``pad_mode`` on the others. Pooling makes the
    network commute only with translations by multiples of ``2**levels`` cells.

    Every spatial size must be divisible by ``2**levels``.

    Reference: O. Ronneberger, P. Fischer, T. Brox, "U-Net: convolutional networks
    for biomedical image segmentation", MICCAI 2015.

    Shapes: ``(in_channels, *spatial) -> (out_channels, *spatial)``, one sample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        ndim: int,
        periodic,
        hidden: int = 16,
        levels: int = 2,
        kernel_size: int = 3,
        pad_mode: str = "edge",
        activation: Callable = nnx.gelu,
        zero_init: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        check_int(in_channels, "in_channels", minimum=1, fix="pass the number of input fields.")
        check_int(out_channels, "out_channels", minimum=1, fix="pass the number of output fields.")
        check_int(hidden, "hidden", minimum=1, fix="use e.g. hidden=16.")
        check_int(levels, "levels", minimum=0, fix="use e.g. levels=2 down-samplings.")
        args = _ConvArgs(ndim, periodic, kernel_size, pad_mode, dtype, param_dtype, rngs)
        self.in_channels, self.out_channels, self.ndim, self.levels = in_channels, out_channels, ndim, levels
        self.periodic = args.periodic
        self.activation = activation
        widths = [hidden * 2**level for level in range(levels + 1)]
        self.down = nnx.List(
            [
                nnx.List([args.conv(cin, cout), args.conv(cout, cout)])
                for cin, cout in zip([in_channels, *widths[:-1]], widths)
            ]
        )
        self.up = nnx.List(
            [
                nnx.List(
                    [
                        args.conv(widths[level + 1] + widths[level], widths[level]),
                        args.conv(widths[level], widths[level]),
                    ]
                )
                for level in reversed(range(levels))
            ]
        )
        self.project = args.conv(widths[0], out_channels, kernel_size=1, zero_init=zero_init)

    def _block(self, convs, h):
        for conv in convs:
            h = self.activation(conv(h))
        return h

    def __call__(self, x):
        _check_input(x, self.in_channels, self.ndim, "UNet")
        factor = 2**self.levels
        spatial = tuple(x.shape[1:])
        if any(n % factor for n in spatial):
            fixed = tuple(-(-n // factor) * factor for n in spatial)
            raise ValueError(
                f"UNet with levels={self.levels} needs every spatial size divisible by 2**levels={factor}, "
                f"got spatial shape {spatial}. Fix: use a grid of shape e.g. {fixed}, or fewer levels."
            )
        h = _channels_last(x)
        skips = []
        for level, convs in enumerate(self.down):
            if level > 0:
                h = _pool(h, self.ndim)
            h = self._block(convs, h)
            skips.append(h)
        for convs, skip in zip(self.up, reversed(skips[:-1])):
            h = self._block(convs, jnp.concatenate([_upsample(h, self.ndim), skip], axis=-1))
        return _channels_first(self.project(h))


# ---------------------------------------------------------------------------
# coordinate networks


class MLP(nnx.Module):
    """Pointwise multilayer perceptron on coordinates: ``(..., in_features) -> (..., out_features)``.

    ``depth`` hidden layers of ``hidden`` units with ``activation`` (``tanh`` by
    default: smooth, so derivatives of every order with respect to the input exist, as
    a physics-informed residual needs), then a linear output layer (zeroed by
    ``zero_init``). Leading axes broadcast; no boundary handling (it never sees a grid).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        hidden: int = 64,
        depth: int = 3,
        activation: Callable = nnx.tanh,
        zero_init: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        check_int(in_features, "in_features", minimum=1, fix="pass the number of coordinates.")
        check_int(out_features, "out_features", minimum=1, fix="pass the number of outputs.")
        check_int(hidden, "hidden", minimum=1, fix="use e.g. hidden=64.")
        check_int(depth, "depth", minimum=1, fix="use e.g. depth=3 hidden layers.")
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        widths = [in_features] + [hidden] * depth + [out_features]
        opts = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.layers = nnx.List(
            [
                nnx.Linear(a, b, **opts, **_last_init(zero_init and i == depth))
                for i, (a, b) in enumerate(itertools.pairwise(widths))
            ]
        )

    def __call__(self, x):
        shape = tuple(jnp.shape(x))
        if len(shape) == 0 or shape[-1] != self.in_features:
            raise ValueError(
                f"MLP expects inputs of shape (..., in_features={self.in_features}), got shape {shape}. "
                "Fix: put the coordinates on the last axis (a scalar coordinate x becomes x[..., None])."
            )
        h = x
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return self.layers[-1](h)


# ---------------------------------------------------------------------------
# Fourier neural operator


class FNO(nnx.Module):
    """Fourier neural operator (Li et al. 2021).

    Lift (pointwise linear ``in_channels -> width``), ``depth`` Fourier layers
    ``h <- act(K h + W h)`` (no activation after the last), project (pointwise
    ``width -> width -> out_channels`` with ``activation`` between; the last linear
    map is zeroed by ``zero_init``). ``K`` is a ``SpectralConv``: real FFT over the
    spatial axes, the lowest ``modes`` frequencies per axis multiplied by learned
    complex matrices, inverse FFT; ``W`` is a pointwise (1x1) linear map.

    Periodic by construction: the FFT treats every axis as periodic, so the operator
    commutes with integer translations (``jnp.roll``) and needs no padding; for a
    non-periodic problem pad the domain yourself. Coordinates are not appended to the
    input (pass them as channels if wanted). Each spatial size ``n`` must satisfy
    ``modes <= n // 2``. Since the spectral weights act on Fourier coefficients, the
    same parameters apply to any resolution; for band-limited inputs the outputs at
    shared points agree up to the aliasing of the pointwise nonlinearities.

    Reference: Z. Li, N. Kovachki, K. Azizzadenesheli, B. Liu, K. Bhattacharya,
    A. Stuart, A. Anandkumar, "Fourier neural operator for parametric partial
    differential equations", ICLR 2021.

    Shapes: ``(in_channels, *spatial) -> (out_channels, *spatial)``, one sample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        ndim: int,
        modes: int | Sequence[int],
        width: int = 32,
        depth: int = 4,
        activation: Callable = nnx.gelu,
        zero_init: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        _check_ndim(ndim)
        check_int(in_channels, "in_channels", minimum=1, fix="pass the number of input fields.")
        check_int(out_channels, "out_channels", minimum=1, fix="pass the number of output fields.")
        check_int(width, "width", minimum=1, fix="use e.g. width=32.")
        check_int(depth, "depth", minimum=1, fix="use e.g. depth=4 Fourier layers.")
        self.in_channels, self.out_channels, self.ndim = in_channels, out_channels, ndim
        self.activation = activation
        opts = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.lift = nnx.Linear(in_channels, width, **opts)
        self.spectral = nnx.List([SpectralConv(width, width, ndim=ndim, modes=modes, **opts) for _ in range(depth)])
        self.pointwise = nnx.List([nnx.Linear(width, width, **opts) for _ in range(depth)])
        self.project = nnx.List(
            [nnx.Linear(width, width, **opts), nnx.Linear(width, out_channels, **opts, **_last_init(zero_init))]
        )

    def __call__(self, x):
        _check_input(x, self.in_channels, self.ndim, "FNO")
        h = _channels_first(self.lift(_channels_last(x)))
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise)):
            h = spectral(h) + _channels_first(pointwise(_channels_last(h)))
            if i < last:
                h = self.activation(h)
        h = self.project[1](self.activation(self.project[0](_channels_last(h))))
        return _channels_first(h)
