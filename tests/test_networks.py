"""Networks: shapes and dtypes, zero initialisation, translation equivariance under
periodic padding (and its failure at a padded wall), FNO resolution transfer, MLP fit
and second derivatives, vmap through nnx.split/merge, the convolutions' own derivatives
against lax's, and argument errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import nnpde
from nnpde import networks

DTYPES = [jnp.float32, jnp.float64]
TOL = {jnp.float32: 1e-5, jnp.float64: 1e-12}


def fast_rngs(seed):
    # The rbg generator compiles its initialisers in ~0.2 s per shape, threefry in ~2 s on CPU.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def make(kind, ndim, dtype=jnp.float32, *, periodic=True, zero_init=False, cin=2, cout=3, seed=0):
    """A small network, initialised in one compiled call."""
    return nnx.jit(lambda: build(kind, ndim, dtype, periodic, zero_init, cin, cout, seed))()


def build(kind, ndim, dtype, periodic, zero_init, cin, cout, seed):
    rngs = fast_rngs(seed)
    common = dict(ndim=ndim, zero_init=zero_init, param_dtype=dtype, rngs=rngs)
    if kind in ("convnet", "separable"):
        return networks.ConvNet(
            cin, cout, periodic=periodic, hidden=6, depth=3, kernel_size=3, separable=kind == "separable", **common
        )
    if kind == "resnet":
        return networks.ResNet(cin, cout, periodic=periodic, hidden=6, depth=2, kernel_size=3, **common)
    if kind == "unet":
        return networks.UNet(cin, cout, periodic=periodic, hidden=4, levels=2, kernel_size=3, **common)
    if kind == "fno":
        return networks.FNO(cin, cout, modes=4, width=6, depth=2, **common)
    raise AssertionError(kind)


def jitted(model):
    """The model as one compiled function of its input (eager dispatch of each op is slow)."""
    graphdef, state = nnx.split(model)
    apply = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    return lambda x: apply(state, x)


def field(shape, dtype, seed=1):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


SPATIAL = {1: (16,), 2: (8, 16), 3: (8, 8, 16)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("kind", ["convnet", "separable", "resnet", "unet", "fno"])
def test_shape_and_dtype(kind, ndim, dtype):
    # Shapes and dtypes by abstract evaluation: nothing is compiled.
    model = nnx.eval_shape(lambda: build(kind, ndim, dtype, True, False, 2, 3, 0))
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((2, *SPATIAL[ndim]), dtype)
    y = jax.eval_shape(lambda state, x: nnx.merge(graphdef, state)(x), state, x)
    assert y.shape == (3, *SPATIAL[ndim]), f"{kind}: got {y.shape}"
    assert y.dtype == dtype, f"{kind}: got {y.dtype}, want {dtype}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_shape_and_dtype(dtype):
    model = nnx.eval_shape(lambda: networks.MLP(2, 3, hidden=8, depth=2, param_dtype=dtype, rngs=fast_rngs(0)))
    y = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((4, 5, 2), dtype))
    assert y.shape == (4, 5, 3) and y.dtype == dtype, f"got {y.shape} {y.dtype}"


def _last_kernel(kind, grads):
    return {
        "convnet": lambda g: g.layers[-1].conv.kernel,
        "separable": lambda g: g.layers[-1].conv.kernel,
        "resnet": lambda g: g.project.conv.kernel,
        "unet": lambda g: g.project.conv.kernel,
        "fno": lambda g: g.project[1].kernel,
        "mlp": lambda g: g.layers[-1].kernel,
    }[kind](grads)[...]


@pytest.mark.parametrize("kind", ["convnet", "separable", "resnet", "unet", "fno", "mlp"])
def test_zero_init_outputs_zero_and_trains(kind):
    if kind == "mlp":
        model = networks.MLP(2, 3, hidden=8, depth=2, zero_init=True, param_dtype=jnp.float64, rngs=fast_rngs(0))
        x = field((7, 2), jnp.float64)
    else:
        model = make(kind, 1, jnp.float64, zero_init=True)
        x = field((2, 16), jnp.float64)
    graphdef, params = nnx.split(model, nnx.Param)
    y = jitted(model)(x)
    assert float(jnp.max(jnp.abs(y))) == 0.0, f"{kind}: max |y| = {float(jnp.max(jnp.abs(y)))}"
    target = jnp.ones_like(y)

    def loss(p):
        return jnp.mean((nnx.merge(graphdef, p)(x) - target) ** 2)

    grads = nnx.merge(graphdef, jax.jit(jax.grad(loss))(params))
    g = float(jnp.max(jnp.abs(_last_kernel(kind, grads))))
    assert g > 1e-6, f"{kind}: max |dL/d(last kernel)| = {g}"


SHIFTS = {1: (5,), 2: (3, 5)}


@pytest.mark.parametrize("ndim, dtype", [(2, jnp.float32), (2, jnp.float64)])
@pytest.mark.parametrize("kind", ["convnet", "separable", "resnet", "fno"])
def test_periodic_translation_equivariance(kind, ndim, dtype):
    model = jitted(make(kind, ndim, dtype, periodic=True))
    shape = (2, 32) if ndim == 1 else (2, 16, 16)
    x = field(shape, dtype)
    axes = tuple(range(1, ndim + 1))
    shifted = model(jnp.roll(x, SHIFTS[ndim], axis=axes))
    expected = jnp.roll(model(x), SHIFTS[ndim], axis=axes)
    err = float(jnp.max(jnp.abs(shifted - expected)))
    scale = float(jnp.max(jnp.abs(expected)))
    print(f"{kind} {ndim}-D {jnp.dtype(dtype).name}: equivariance error {err:.2e} (max |y| {scale:.2e})")
    assert err < TOL[dtype] * max(scale, 1.0), f"{kind}: roll error {err:.3e}, max |y| {scale:.3e}"


@pytest.mark.parametrize("kind, radius", [("convnet", 3), ("separable", 3), ("resnet", 5)])
def test_wall_padding_breaks_equivariance_only_near_the_wall(kind, radius):
    # radius = receptive-field radius in cells: convnet 3 convs of size 3; resnet lift + 2 blocks x 2 convs.
    model = jitted(make(kind, 1, jnp.float64, periodic=False))
    n, k = 48, 5
    x = field((2, n), jnp.float64)
    diff = jnp.max(jnp.abs(model(jnp.roll(x, k, axis=1)) - jnp.roll(model(x), k, axis=1)), axis=0)
    interior = float(jnp.max(diff[k + radius : n - radius]))
    wall = float(jnp.max(diff[: k + radius]))
    print(f"{kind}: wall-region error {wall:.2e}, interior error {interior:.2e}")
    assert wall > 1e-3, f"{kind}: padding looks periodic, wall-region error only {wall:.3e}"
    assert interior < 1e-12, f"{kind}: interior error {interior:.3e}"


def test_a_one_by_one_head_shrinks_the_receptive_field_by_one_layer():
    """``ConvNet(head_kernel_size=1)``: the last layer is a per-cell projection, so one
    perturbed cell reaches ``(depth - 1) * (kernel_size // 2)`` cells, one layer's
    reach less than with the full head; the rest of the network is unchanged."""
    common = dict(ndim=1, periodic=True, hidden=6, depth=3, kernel_size=3, rngs=fast_rngs(0))
    x = field((2, 32), jnp.float32)
    bump = x.at[:, 16].add(1.0)
    for head, radius in ((None, 3), (1, 2)):
        net = networks.ConvNet(2, 5, head_kernel_size=head, **common)
        changed = np.flatnonzero(np.any(np.abs(np.asarray(net(bump) - net(x))) > 0, axis=0))
        assert changed.min() == 16 - radius and changed.max() == 16 + radius, (head, changed)
    small = networks.ConvNet(2, 5, head_kernel_size=1, **common)
    assert small.layers[-1].conv.kernel.shape[0] == 1 and small.layers[0].conv.kernel.shape[0] == 3


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_a_depthwise_convolution_is_a_grouped_convolution_and_separable_layers_cost_less(ndim):
    """``DepthwiseConv`` (a sum of shifted, scaled copies) equals ``lax``'s grouped
    convolution (one group per channel) on the same padded field, and its derivatives
    equal that convolution's. ``ConvNet(separable=True)`` keeps the first and last layers
    full and makes each ``hidden -> hidden`` layer depthwise then pointwise: its weights
    are ``k^ndim * C + C * C`` (plus biases) per such layer, against ``k^ndim * C * C``."""
    from jax import lax

    channels, k = 5, 3
    layer = networks.DepthwiseConv(channels, kernel_size=k, periodic=(True,) * ndim, rngs=fast_rngs(0))
    kernel = layer.kernel[...]
    assert kernel.shape == (k,) * ndim + (channels,)
    h = field(SPATIAL[ndim] + (channels,), jnp.float32)
    dn = networks._dn(ndim)

    def grouped(h, kernel):
        padded = networks.pad_field(h, k // 2, (True,) * ndim)[None]
        out = lax.conv_general_dilated(
            padded, kernel[..., None, :], (1,) * ndim, "VALID", dimension_numbers=dn, feature_group_count=channels
        )
        return out[0] + layer.bias[...]

    graphdef, state = nnx.split(layer)
    pure = nnx.to_pure_dict(state)

    def depthwise(h, kernel):  # the layer with this kernel, as a function (for jax.grad)
        swapped = nnx.State(state)
        nnx.replace_by_pure_dict(swapped, {**pure, "kernel": kernel})
        return nnx.merge(graphdef, swapped)(h)

    np.testing.assert_allclose(jax.jit(depthwise)(h, kernel), jax.jit(grouped)(h, kernel), rtol=1e-5, atol=1e-5)
    probe = field(SPATIAL[ndim] + (channels,), jnp.float32, seed=3)

    def gradients(f):  # with respect to the field and the kernel, in one compiled call
        return jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) * probe), argnums=(0, 1)))(h, kernel)

    for mine, lax_grad in zip(gradients(depthwise), gradients(grouped), strict=True):
        np.testing.assert_allclose(mine, lax_grad, rtol=1e-4, atol=1e-4)

    hidden, depth = 8, 4
    common = dict(ndim=ndim, periodic=True, hidden=hidden, depth=depth, kernel_size=k, rngs=fast_rngs(0))
    full, separable = networks.ConvNet(2, 3, **common), networks.ConvNet(2, 3, separable=True, **common)

    def count(net):
        return sum(a.size for a in jax.tree.leaves(nnx.state(net, nnx.Param)))

    middle = depth - 2
    per_layer = k**ndim * hidden * hidden - (k**ndim * hidden + hidden * hidden + hidden)  # one more bias
    assert count(full) - count(separable) == middle * per_layer
    assert isinstance(separable.layers[1].depthwise, networks.DepthwiseConv)
    assert separable.layers[0].conv.kernel.shape == full.layers[0].conv.kernel.shape
    assert separable.layers[-1].conv.kernel.shape == full.layers[-1].conv.kernel.shape
    with pytest.raises(TypeError, match="separable"):
        networks.ConvNet(2, 3, separable="yes", **common)


def test_mixed_periodicity_from_boundary_conditions():
    bc = nnpde.BoundaryConditions(nnpde.Periodic(), nnpde.Dirichlet(0.0))
    assert networks.periodic_axes(bc, 2) == (True, False)
    model = jitted(make("convnet", 2, jnp.float64, periodic=bc))
    x = field((2, 16, 16), jnp.float64)
    err_periodic = float(jnp.max(jnp.abs(model(jnp.roll(x, 3, axis=1)) - jnp.roll(model(x), 3, axis=1))))
    err_wall = float(jnp.max(jnp.abs(model(jnp.roll(x, 3, axis=2)) - jnp.roll(model(x), 3, axis=2))))
    print(f"roll along periodic axis {err_periodic:.2e}, along wall axis {err_wall:.2e}")
    assert err_periodic < 1e-12 and err_wall > 1e-3, (err_periodic, err_wall)


def test_unet_shape_and_indivisible_size():
    model = nnx.eval_shape(lambda: build("unet", 1, jnp.float64, True, False, 2, 3, 0))
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((2, 32), jnp.float64)
    y = jax.eval_shape(lambda state, x: nnx.merge(graphdef, state)(x), state, x)
    assert y.shape == (3, 32), f"got {y.shape}"
    with pytest.raises(ValueError, match=r"divisible by 2\*\*levels=4.*\(10,\)") as info:
        model(field((2, 10), jnp.float64))
    assert "12" in str(info.value)  # the suggested fix


@pytest.mark.parametrize("ndim", [1, 2])
def test_fno_resolution_transfer(ndim):
    model = jitted(make("fno", ndim, jnp.float64, cin=1, cout=1))

    def sample(n):
        # Band-limited: only modes 1..3 < modes=4 on every axis.
        grid = np.meshgrid(*([2 * np.pi * np.arange(n) / n] * ndim), indexing="ij")
        u = sum(np.sin(m * g + 0.3 * m) / m for m in (1, 2, 3) for g in grid)
        return jnp.asarray(u)[None]

    coarse = model(sample(16))
    fine = model(sample(32))
    every_other = (slice(None),) + (slice(None, None, 2),) * ndim
    err = float(jnp.max(jnp.abs(fine[every_other] - coarse)))
    scale = float(jnp.max(jnp.abs(fine)))
    print(f"FNO {ndim}-D, n=16 vs n=32 at shared points: max error {err:.2e}, max |y| {scale:.2e}")
    # Measured: 6e-6 (1-D) and 5e-6 (2-D) of max |y|; the residue is the aliasing of the GELU
    # harmonics on 16 cells (other initialisations gave up to 1.5e-3).
    assert err < 5e-3 * scale, f"resolution transfer error {err:.3e}, max |y| {scale:.3e}"


def test_mlp_fits_sine_and_has_second_derivatives():
    model = networks.MLP(1, 1, hidden=32, depth=2, param_dtype=jnp.float64, rngs=fast_rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    x = jnp.linspace(0.0, 2 * np.pi, 64)[:, None]
    y = jnp.sin(x)
    optimiser = optax.adam(1e-2)

    def loss(p):
        # Coordinates scaled to [-1, 1], as one feeds a coordinate network.
        return jnp.mean((nnx.merge(graphdef, p)(x / np.pi - 1.0) - y) ** 2)

    @jax.jit
    def train(p):
        def step(carry, _):
            p, state = carry
            value, g = jax.value_and_grad(loss)(p)
            updates, state = optimiser.update(g, state)
            return (optax.apply_updates(p, updates), state), value

        (p, _), history = jax.lax.scan(step, (p, optimiser.init(p)), None, length=400)
        return p, history

    params, _ = train(params)
    mse = float(loss(params))
    print(f"MLP fit of sin on [0, 2pi], 400 adam steps: MSE {mse:.2e}")
    assert mse < 1e-3, f"MSE {mse:.3e}"

    def u(s):
        return nnx.merge(graphdef, params)(s[None])[0]

    s0, h = 1.3, 1e-4
    second = float(jax.hessian(u)(s0))
    fd = float((jax.grad(u)(s0 + h) - jax.grad(u)(s0 - h)) / (2 * h))
    print(f"u''(1.3): hessian {second:.8f}, finite difference {fd:.8f}")
    assert np.isfinite(second) and abs(second - fd) < 1e-6 * max(1.0, abs(fd)), (second, fd)


def test_vmap_through_split_merge_matches_loop():
    kind = "convnet"
    model = make(kind, 2, jnp.float64, periodic=(True, False))
    graphdef, params = nnx.split(model, nnx.Param)
    xs = field((3, 2, 8, 16), jnp.float64)
    batched = jax.vmap(lambda p, x: nnx.merge(graphdef, p)(x), in_axes=(None, 0))(params, xs)
    apply = jitted(model)
    looped = jnp.stack([apply(x) for x in xs])
    err = float(jnp.max(jnp.abs(batched - looped)))
    assert err < 1e-12, f"{kind}: vmap vs loop {err:.3e}"


@pytest.mark.parametrize("kind", ["convnet", "fno"])
def test_wrong_input_shapes(kind):
    # The shape check runs before any parameter is used, so an abstract model suffices.
    model = nnx.eval_shape(lambda: build(kind, 2, jnp.float32, True, False, 2, 3, 0))
    with pytest.raises(ValueError, match=r"\(4, 2, 8, 16\).*jax\.vmap"):
        model(jnp.zeros((4, 2, 8, 16)))
    with pytest.raises(ValueError, match=r"in_channels=2.*\(5, 8, 16\)"):
        model(jnp.zeros((5, 8, 16)))
    with pytest.raises(ValueError, match=r"\(2, 16\)"):
        model(jnp.zeros((2, 16)))


def test_mlp_wrong_input_shape():
    model = networks.MLP(2, 1, hidden=4, depth=1, rngs=fast_rngs(0))
    with pytest.raises(ValueError, match=r"in_features=2.*\(7, 3\)"):
        model(jnp.zeros((7, 3)))


def test_fno_modes_too_many_for_grid():
    model = networks.FNO(1, 1, ndim=1, modes=10, width=4, depth=1, rngs=fast_rngs(0))
    with pytest.raises(ValueError, match=r"modes=10.*\(16,\).*modes <= 8"):
        model(jnp.zeros((1, 16)))


BAD_ARGUMENTS = [
    (networks.ConvNet, dict(ndim=1, periodic=True, depth=-1), "-1"),
    (networks.ConvNet, dict(ndim=1, periodic=True, kernel_size=4), "4"),
    (networks.ConvNet, dict(ndim=1, periodic=True, head_kernel_size=2), "2"),
    (networks.ConvNet, dict(ndim=4, periodic=True), "4"),
    (networks.ConvNet, dict(ndim=2, periodic=(True,)), r"\(True,\)"),
    (networks.ResNet, dict(ndim=1, periodic=True, pad_mode="mirror"), "mirror"),
    (networks.ResNet, dict(ndim=1, periodic=True, hidden=0), "0"),
    (networks.UNet, dict(ndim=1, periodic=True, levels=-2), "-2"),
    (networks.FNO, dict(ndim=1, modes=0), "0"),
    (networks.FNO, dict(ndim=2, modes=(4, 4, 4)), r"\(4, 4, 4\)"),
    (networks.MLP, dict(depth=0), "0"),
]


@pytest.mark.parametrize("cls, kwargs, value", BAD_ARGUMENTS)
def test_bad_constructor_arguments(cls, kwargs, value):
    with pytest.raises(ValueError, match=value) as info:
        cls(2, 3, rngs=fast_rngs(0), **kwargs)
    assert "Fix" in str(info.value), str(info.value)


def test_periodic_axes_dimension_mismatch():
    with pytest.raises(ValueError, match=r"3 axes.*ndim=2"):
        networks.periodic_axes(nnpde.BoundaryConditions.periodic(3), 2)


@pytest.mark.parametrize(
    "ndim, kernel_size, spatial",
    [(1, 3, (9,)), (2, 3, (6, 9)), (2, 1, (5, 7)), (2, 5, (8, 7)), (3, 3, (5, 6, 7))],
)
def test_convolution_derivatives_equal_lax(ndim, kernel_size, spatial):
    """``PaddedConv`` runs its VALID convolution through ``networks._valid_conv``, whose
    own JVP (im2col windows; reverse mode by JAX's transpose of it) replaces XLA's
    transpose convolutions. Its value, its VJP (under ``vmap`` and inside ``lax.scan``,
    where it matters) and its JVP must equal ``lax.conv_general_dilated``'s to round-off
    (float64): a wrong window offset, kernel flip or channel order shows up at O(1)."""
    cin, cout, batch = 3, 4, 2
    k = jax.random.split(jax.random.key(7), 5)
    x = jax.random.normal(k[0], (batch, *spatial, cin), jnp.float64)
    w = jax.random.normal(k[1], (kernel_size,) * ndim + (cin, cout), jnp.float64)
    dx = jax.random.normal(k[2], x.shape, jnp.float64)
    dw = jax.random.normal(k[3], w.shape, jnp.float64)

    def plain(x, w):
        return jax.lax.conv_general_dilated(x, w, (1,) * ndim, "VALID", dimension_numbers=networks._dn(ndim))

    def ours(x, w):
        return networks._valid_conv(x, w, None)

    y = plain(x, w)
    g = jax.random.normal(k[4], y.shape, jnp.float64)
    np.testing.assert_allclose(ours(x, w), y, rtol=1e-12, atol=1e-12)

    def per_sample(conv):  # the nnpde layout: vmap over single samples, a shared kernel
        return lambda x, w: jax.vmap(lambda xi: conv(xi[None], w)[0])(x)

    for conv in (per_sample(ours), ours):
        (vx, vw) = jax.vjp(conv, x, w)[1](g)
        (px, pw) = jax.vjp(per_sample(plain), x, w)[1](g)
        np.testing.assert_allclose(vx, px, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(vw, pw, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(
        jax.jvp(ours, (x, w), (dx, dw))[1], jax.jvp(plain, (x, w), (dx, dw))[1], rtol=1e-11, atol=1e-11
    )

    def looped(conv):  # a few nonlinear steps in a scan, differentiated end to end
        def run(x, w):
            def body(h, _):
                padded = jnp.pad(conv(h, w), [(0, 0)] + [(kernel_size // 2,) * 2] * ndim + [(0, 0)])
                return h + 0.1 * jnp.tanh(padded[..., :cin]), None

            return jnp.sum(jax.lax.scan(body, x, None, length=3)[0] ** 2)

        return jax.jit(jax.grad(run, argnums=(0, 1)))

    if cout >= cin:
        for a, b in zip(looped(ours)(x, w), looped(plain)(x, w)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_convnet_uses_the_loop_friendly_convolution_on_cpu(monkeypatch):
    """On the CPU backend the networks' convolutions go through ``_valid_conv`` (not
    XLA's transpose convolutions): the reverse pass of a ConvNet has no convolution with
    a reversed kernel. On any other backend they are lax's, with lax's derivatives."""
    net = make("convnet", 2, jnp.float64)
    graphdef, state = nnx.split(net)
    x = field((2, 8, 16), jnp.float64)

    def loss(state):
        return jnp.sum(nnx.merge(graphdef, state)(x) ** 2)

    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")  # the same test on a GPU machine
    text = jax.jit(jax.grad(loss)).lower(state).as_text()
    # the forward's three convolutions only; JAX's own transpose would add five more
    # (input gradients of layers 2 and 3 with reversed kernels, three kernel gradients)
    assert text.count("stablehlo.convolution") == 3
    assert "stablehlo.reverse" not in text
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    text = jax.jit(jax.grad(loss)).lower(state).as_text()
    assert text.count("stablehlo.convolution") == 8
