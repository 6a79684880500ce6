"""Unit tests of ``nnpde.Grid`` and of ghost-cell padding (``BoundaryConditions.pad``).

Everything here is exact arithmetic on tiny arrays: a ghost value either reproduces the
polynomial it is built from (to round-off, ~1e-12) or the test fails and prints the
measured and the expected values.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import nnpde
from nnpde import BoundaryConditions, Dirichlet, Neumann, Periodic

TOL = 1e-12


def close(actual, expected, what, tol=TOL):
    """Exact comparison (to round-off) that prints both arrays when it fails."""
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    np.testing.assert_allclose(
        actual, expected, rtol=tol, atol=tol, err_msg=f"{what}\nmeasured={actual!r}\nexpected={expected!r}"
    )


# ---------------------------------------------------------------------------------------
# Grid
# ---------------------------------------------------------------------------------------
def test_grid_spacing_lengths_volume():
    grid = nnpde.Grid((4, 5, 2), extent=((-1.0, 1.0), (0.0, 2.5), (3.0, 4.0)))
    assert grid.ndim == 3
    assert grid.shape == (4, 5, 2)
    close(grid.lengths, (2.0, 2.5, 1.0), "lengths")
    close(grid.spacing, (0.5, 0.5, 0.5), "spacing")
    close(grid.cell_volume, 0.125, "cell_volume")
    assert grid.size == 40


def test_grid_defaults_and_normalisation():
    grid = nnpde.Grid(8)
    assert grid.shape == (8,)
    assert grid.extent == ((0.0, 1.0),)
    close(grid.spacing, (0.125,), "default spacing")
    # A list shape and integer extents are normalised to tuples of int / float.
    # (Not np.int64 cell counts: the code accepts them, but the annotation
    # ``tuple[int, ...] | list[int] | int`` makes the test-suite's beartype hook reject
    # them at random, as it samples one element.)
    grid = nnpde.Grid([3, 2], extent=[(0, 3), (1, 2)])
    assert grid.shape == (3, 2)
    assert all(isinstance(n, int) for n in grid.shape), grid.shape
    assert grid.extent == ((0.0, 3.0), (1.0, 2.0))
    assert all(isinstance(v, float) for e in grid.extent for v in e), grid.extent


def test_grid_is_hashable_static_metadata():
    a = nnpde.Grid((4, 4), extent=((0.0, 1.0), (0.0, 2.0)))
    b = nnpde.Grid([4, 4], extent=[[0, 1], [0, 2]])
    assert a == b and hash(a) == hash(b)
    assert a != nnpde.Grid((4, 4))


def test_axis_centres_and_faces_include_both_ends():
    grid = nnpde.Grid((4,), extent=((-1.0, 1.0),))
    close(grid.axis_centres(0), [-0.75, -0.25, 0.25, 0.75], "axis_centres")
    faces = grid.axis_faces(0)
    close(faces, [-1.0, -0.5, 0.0, 0.5, 1.0], "axis_faces")
    assert faces[0] == -1.0 and faces[-1] == 1.0, faces
    # Every centre lies midway between its two faces.
    close(0.5 * (faces[1:] + faces[:-1]), grid.axis_centres(0), "centres = mid-faces")


def test_cell_centres_mesh_ij():
    grid = nnpde.Grid((2, 3), extent=((0.0, 2.0), (0.0, 3.0)))
    x, y = grid.cell_centres()
    assert x.shape == y.shape == (2, 3)
    close(x, [[0.5] * 3, [1.5] * 3], "x centres (ij indexing)")
    close(y, [[0.5, 1.5, 2.5]] * 2, "y centres (ij indexing)")


def test_face_centres_shapes_and_values():
    grid = nnpde.Grid((2, 3, 4), extent=((0.0, 1.0), (0.0, 3.0), (-2.0, 2.0)))
    for axis in range(3):
        mesh = grid.face_centres(axis)
        expected_shape = tuple(n + 1 if a == axis else n for a, n in enumerate(grid.shape))
        assert len(mesh) == 3
        for c in mesh:
            assert c.shape == expected_shape, (axis, c.shape, expected_shape)
        # Along ``axis`` the faces (both boundary faces included), elsewhere centres.
        for a in range(3):
            line = np.moveaxis(np.asarray(mesh[a]), a, 0)[(slice(None),) + (0,) * 2]
            expected = grid.axis_faces(a) if a == axis else grid.axis_centres(a)
            close(line, expected, f"face_centres({axis})[{a}]")
    x, y = grid.face_centres(1)[:2]
    close(np.asarray(y)[0, :, 0], [0.0, 1.0, 2.0, 3.0], "y faces, both ends")
    close(np.asarray(x)[:, 0, 0], [0.25, 0.75], "x centres on y faces")


def test_boundary_face_shape_and_centres():
    grid = nnpde.Grid((2, 3, 4), extent=((0.0, 1.0), (0.0, 3.0), (-2.0, 2.0)))
    assert grid.boundary_face_shape(0) == (3, 4)
    assert grid.boundary_face_shape(1) == (2, 4)
    assert grid.boundary_face_shape(2) == (2, 3)
    y, z = grid.boundary_face_centres(0)
    assert y.shape == z.shape == (3, 4)
    close(y[:, 0], [0.5, 1.5, 2.5], "y on x faces")
    close(z[0], [-1.5, -0.5, 0.5, 1.5], "z on x faces")
    x, y = grid.boundary_face_centres(2)
    assert x.shape == y.shape == (2, 3)
    close(x[:, 0], [0.25, 0.75], "x on z faces")
    # 2-D: a single coordinate array; 1-D: a point face, no coordinates.
    g2 = nnpde.Grid((2, 5))
    (x2,) = g2.boundary_face_centres(1)
    close(x2, [0.25, 0.75], "x on y faces (2-D)")
    assert nnpde.Grid(6).boundary_face_centres(0) == ()
    assert nnpde.Grid(6).boundary_face_shape(0) == ()


# ---------------------------------------------------------------------------------------
# Padding in 1-D: formulas and sign conventions
# ---------------------------------------------------------------------------------------
U = jnp.asarray([[0.3, -1.2, 2.5, 0.7, 1.1]])  # one channel, 5 cells; arbitrary data
H = 0.4


def test_pad_periodic_wraps():
    bc = BoundaryConditions(Periodic())
    for width in (1, 2):
        padded = bc.pad(U, width, (H,))
        expected = np.concatenate([U[:, -width:], U, U[:, :width]], axis=1)
        close(padded, expected, f"periodic wrap, width {width}")


def test_pad_dirichlet_order2_ghost_is_2g_minus_u0():
    bc = BoundaryConditions((Dirichlet(1.5), Dirichlet(-0.25)))
    padded = bc.pad(U, 1, (H,))
    assert padded.shape == (1, 7)
    close(padded[:, 1:-1], U, "interior unchanged")
    close(padded[0, 0], 2 * 1.5 - U[0, 0], "low ghost 2g - u0")
    close(padded[0, -1], 2 * -0.25 - U[0, -1], "high ghost 2g - u_{n-1}")


def test_pad_neumann_order2_ghost_is_u0_plus_h_g():
    bc = BoundaryConditions((Neumann(0.8), Neumann(-2.0)))
    padded = bc.pad(U, 1, (H,))
    close(padded[:, 1:-1], U, "interior unchanged")
    close(padded[0, 0], U[0, 0] + H * 0.8, "low ghost u0 + h g")
    close(padded[0, -1], U[0, -1] + H * -2.0, "high ghost u_{n-1} + h g")


@pytest.mark.parametrize(
    "kinds", [("dirichlet", "dirichlet"), ("neumann", "neumann"), ("dirichlet", "neumann"), ("neumann", "dirichlet")]
)
@pytest.mark.parametrize("width", [1, 2])
def test_pad_order2_reproduces_linear_function(kinds, width):
    """u = a + b x with exact data: Dirichlet u(wall); Neumann the OUTWARD normal
    derivative, -b on the low side and +b on the high side. Ghosts (width 1 and 2)
    lie on the same line."""
    a, b = 0.7, -1.9
    grid = nnpde.Grid(5, extent=((-0.5, 1.5),))
    x = grid.axis_centres(0)
    u = jnp.asarray(a + b * x)[None]
    lo, hi = grid.extent[0]
    data = {
        ("dirichlet", "low"): Dirichlet(a + b * lo),
        ("dirichlet", "high"): Dirichlet(a + b * hi),
        ("neumann", "low"): Neumann(-b),
        ("neumann", "high"): Neumann(+b),
    }
    bc = BoundaryConditions((data[kinds[0], "low"], data[kinds[1], "high"]))
    padded = bc.pad(u, width, grid.spacing)
    h = grid.spacing[0]
    x_pad = lo + (np.arange(-width, 5 + width) + 0.5) * h
    close(padded[0], a + b * x_pad, f"linear function, {kinds}, width {width}")


def test_pad_order2_width2_formulas_on_arbitrary_data():
    """Width 2 at order 2 extends the same straight line one more cell."""
    g_lo, g_hi = 1.5, -0.25
    padded = BoundaryConditions((Dirichlet(g_lo), Dirichlet(g_hi))).pad(U, 2, (H,))
    assert padded.shape == (1, 9)
    u = np.asarray(U[0])
    close(padded[0, :2], [4 * g_lo - 3 * u[0], 2 * g_lo - u[0]], "Dirichlet low ghosts (far, near)")
    close(padded[0, -2:], [2 * g_hi - u[-1], 4 * g_hi - 3 * u[-1]], "Dirichlet high ghosts (near, far)")
    padded = BoundaryConditions((Neumann(g_lo), Neumann(g_hi))).pad(U, 2, (H,))
    close(padded[0, :2], [u[0] + 2 * H * g_lo, u[0] + H * g_lo], "Neumann low ghosts (far, near)")
    close(padded[0, -2:], [u[-1] + H * g_hi, u[-1] + 2 * H * g_hi], "Neumann high ghosts (near, far)")


QUARTICS = [
    (1.0,),
    (0.3, -1.1),
    (0.2, 0.5, -0.7),
    (-0.4, 0.1, 0.9, 0.6),
    (0.25, -0.3, 0.8, -0.45, 0.35),
]


@pytest.mark.parametrize("coeffs", QUARTICS, ids=[f"degree{len(c) - 1}" for c in QUARTICS])
@pytest.mark.parametrize("kinds", [("dirichlet", "dirichlet"), ("neumann", "neumann"), ("neumann", "dirichlet")])
def test_pad_order4_reproduces_polynomials_up_to_degree_4(coeffs, kinds):
    grid = nnpde.Grid(6, extent=((-0.6, 1.2),))
    p = np.polynomial.Polynomial(coeffs)
    dp = p.deriv()
    lo, hi = grid.extent[0]
    h = grid.spacing[0]
    u = jnp.asarray(p(grid.axis_centres(0)))[None]
    data = {
        ("dirichlet", "low"): Dirichlet(float(p(lo))),
        ("dirichlet", "high"): Dirichlet(float(p(hi))),
        ("neumann", "low"): Neumann(float(-dp(lo))),
        ("neumann", "high"): Neumann(float(dp(hi))),
    }
    bc = BoundaryConditions((data[kinds[0], "low"], data[kinds[1], "high"]))
    padded = bc.pad(u, 2, grid.spacing, order=4)
    x_pad = lo + (np.arange(-2, 6 + 2) + 0.5) * h
    close(padded[0], p(x_pad), f"order-4 ghosts, {kinds}, p={coeffs}", tol=1e-11)


def test_pad_order4_is_not_exact_for_degree_5():
    """Sanity check of the test above: a quintic is NOT reproduced (so the check has teeth)."""
    grid = nnpde.Grid(6)
    p = np.polynomial.Polynomial([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    u = jnp.asarray(p(grid.axis_centres(0)))[None]
    bc = BoundaryConditions((Dirichlet(float(p(0.0))), Dirichlet(float(p(1.0)))))
    padded = bc.pad(u, 2, grid.spacing, order=4)
    x_pad = (np.arange(-2, 8) + 0.5) * grid.spacing[0]
    error = np.max(np.abs(np.asarray(padded[0]) - p(x_pad)))
    assert error > 1e-6, f"degree-5 ghost error {error} unexpectedly small"


def test_pad_time_dependent_values():
    bc = BoundaryConditions((Dirichlet(lambda t: 1.0 + 2.0 * t), Neumann(lambda t: jnp.sin(t))))
    u = np.asarray(U[0])
    for t in (0.0, 0.5, 1.25):
        padded = bc.pad(U, 1, (H,), t=t)
        close(padded[0, 0], 2 * (1.0 + 2.0 * t) - u[0], f"Dirichlet(t) ghost at t={t}")
        close(padded[0, -1], u[-1] + H * np.sin(t), f"Neumann(t) ghost at t={t}")
    # The default time is 0.
    close(bc.pad(U, 1, (H,))[0, 0], 2.0 - u[0], "default t=0")


def test_pad_leading_axes_broadcast():
    """Channels (and any leading axes) are padded independently, without a channel axis too."""
    bc = BoundaryConditions((Dirichlet(1.0), Neumann(0.5)))
    many = jnp.stack([U[0], 2 * U[0], -U[0]])  # (3, 5)
    padded = bc.pad(many, 1, (H,))
    for c in range(3):
        close(padded[c], bc.pad(many[c][None], 1, (H,))[0], f"channel {c}")
    close(bc.pad(U[0], 1, (H,)), bc.pad(U, 1, (H,))[0], "no channel axis")


def test_homogeneous_gives_zero_data():
    bc = BoundaryConditions(
        (Dirichlet(3.0), Neumann(lambda t: 1.0 + t)),
        Periodic(),
        (Neumann(jnp.arange(4.0)), Dirichlet(jnp.ones(4))),
    )
    zero = bc.homogeneous()
    assert zero.kinds(0) == ("dirichlet", "neumann")
    assert zero.kinds(1) == ("periodic", "periodic")
    assert zero.kinds(2) == ("neumann", "dirichlet")
    for axis, pair in enumerate(zero.sides):
        for c in pair:
            if isinstance(c, Periodic):
                continue
            assert c.function is None, (axis, c)
            close(c.at(0.7), 0.0, f"homogeneous datum on axis {axis}")
    # Padding with zero data: Dirichlet ghost -u0, Neumann ghost u0.
    padded = BoundaryConditions((Dirichlet(3.0), Neumann(lambda t: 1.0 + t))).homogeneous().pad(U, 1, (H,), t=2.0)
    close(padded[0, 0], -U[0, 0], "homogeneous Dirichlet ghost")
    close(padded[0, -1], U[0, -1], "homogeneous Neumann ghost")


def test_constructors_periodic_dirichlet_neumann():
    assert BoundaryConditions.periodic(2).kinds(1) == ("periodic", "periodic")
    bc = BoundaryConditions.dirichlet(3, 2.0)
    assert bc.ndim == 3 and all(bc.kinds(a) == ("dirichlet", "dirichlet") for a in range(3))
    close(bc.sides[2][1].at(0.0), 2.0, "dirichlet(ndim, value)")
    bc = BoundaryConditions.neumann(1, -1.0)
    assert bc.kinds(0) == ("neumann", "neumann") and not bc.is_periodic(0)
    # A list of specs is one spec per axis.
    assert BoundaryConditions([Periodic(), Dirichlet(0.0)]).ndim == 2


# ---------------------------------------------------------------------------------------
# Padding in 2-D and 3-D: values varying along the face, corners
# ---------------------------------------------------------------------------------------
def _bilinear(x, y):
    return 0.4 + 1.3 * x - 0.8 * y + 0.9 * x * y


def test_pad_2d_face_arrays_reproduce_bilinear():
    """Dirichlet and Neumann data varying along the wall, on every side; the function is
    linear in each variable, so order-2 ghosts (off the corners) are exact."""
    grid = nnpde.Grid((4, 3), extent=((-1.0, 1.0), (0.0, 1.5)))
    (xlo, _), (ylo, yhi) = grid.extent
    (y_on_x,) = grid.boundary_face_centres(0)  # (3,)
    (x_on_y,) = grid.boundary_face_centres(1)  # (4,)
    bc = BoundaryConditions(
        # x walls: Dirichlet low, Neumann high (outward d/dx = +(1.3 + 0.9 y))
        (Dirichlet(_bilinear(xlo, y_on_x)), Neumann(1.3 + 0.9 * y_on_x)),
        # y walls: Neumann low (outward = -d/dy = -(-0.8 + 0.9 x)), Dirichlet high
        (Neumann(-(-0.8 + 0.9 * x_on_y)), Dirichlet(_bilinear(x_on_y, yhi))),
    )
    bc.check(grid)
    x, y = grid.cell_centres()
    u = _bilinear(x, y)[None]
    padded = bc.pad(u, 1, grid.spacing)
    assert padded.shape == (1, 6, 5)
    hx, hy = grid.spacing
    xp = xlo + (np.arange(-1, 5) + 0.5) * hx
    yp = ylo + (np.arange(-1, 4) + 0.5) * hy
    exact = _bilinear(xp[:, None], yp[None, :])
    close(padded[0, 1:-1, 1:-1], u[0], "interior")
    close(padded[0, [0, -1], 1:-1], exact[[0, -1], 1:-1], "x ghosts (Dirichlet low, Neumann high)")
    close(np.asarray(padded[0])[1:-1][:, [0, -1]], exact[1:-1][:, [0, -1]], "y ghosts (Neumann low, Dirichlet high)")
    corners = np.asarray(padded[0])[np.ix_([0, -1], [0, -1])]
    assert np.isfinite(corners).all(), corners


def test_pad_2d_face_arrays_width2_and_corners_finite():
    grid = nnpde.Grid((3, 4))
    (y_on_x,) = grid.boundary_face_centres(0)
    (x_on_y,) = grid.boundary_face_centres(1)
    bc = BoundaryConditions(
        (Dirichlet(1.0 + y_on_x), Neumann(y_on_x**2)),
        (Neumann(lambda t: t * x_on_y), Dirichlet(jnp.cos(x_on_y))),
    )
    u = jnp.arange(12.0).reshape(1, 3, 4) / 7.0
    padded = bc.pad(u, 2, grid.spacing, t=0.3)
    assert padded.shape == (1, 7, 8)
    assert np.isfinite(np.asarray(padded)).all(), padded
    close(padded[:, 2:-2, 2:-2], u, "interior unchanged")
    hx, hy = grid.spacing
    u0 = np.asarray(u[0])
    # Width 2, order 2: ghosts continue the straight line through the datum.
    close(padded[0, 1, 2:-2], 2 * (1.0 + y_on_x) - u0[0], "x-low near ghost")
    close(padded[0, 0, 2:-2], 4 * (1.0 + y_on_x) - 3 * u0[0], "x-low far ghost")
    close(padded[0, -2, 2:-2], u0[-1] + hx * y_on_x**2, "x-high near ghost")
    close(padded[0, 2:-2, 1], u0[:, 0] + hy * 0.3 * x_on_y, "y-low near ghost (t=0.3)")
    close(padded[0, 2:-2, -1], 4 * np.cos(x_on_y) - 3 * u0[:, -1], "y-high far ghost")


def _trilinear(x, y, z):
    return 1.0 + 0.5 * x - 1.5 * y + 2.0 * z + 0.7 * x * y - 0.4 * y * z + 0.3 * x * z + 0.6 * x * y * z


def test_pad_3d_face_arrays_reproduce_trilinear():
    grid = nnpde.Grid((3, 4, 2), extent=((0.0, 1.5), (-1.0, 1.0), (0.0, 1.0)))
    (xlo, xhi), (ylo, yhi), _ = grid.extent
    y0, z0 = grid.boundary_face_centres(0)  # (4, 2)
    x1, z1 = grid.boundary_face_centres(1)  # (3, 2)

    def dx(x, y, z):
        return 0.5 + 0.7 * y + 0.3 * z + 0.6 * y * z

    def dy(x, y, z):
        return -1.5 + 0.7 * x - 0.4 * z + 0.6 * x * z

    bc = BoundaryConditions(
        (Neumann(-dx(xlo, y0, z0)), Dirichlet(_trilinear(xhi, y0, z0))),
        (Dirichlet(_trilinear(x1, ylo, z1)), Neumann(dy(x1, yhi, z1))),
        Periodic(),
    )
    bc.check(grid)
    x, y, z = grid.cell_centres()
    u = _trilinear(x, y, z)[None]
    padded = np.asarray(bc.pad(u, 1, grid.spacing))
    assert padded.shape == (1, 5, 6, 4)
    assert np.isfinite(padded).all()
    h = grid.spacing
    xp = xlo + (np.arange(-1, 4) + 0.5) * h[0]
    yp = ylo + (np.arange(-1, 5) + 0.5) * h[1]
    exact = _trilinear(xp[:, None, None], yp[None, :, None], grid.axis_centres(2)[None, None, :])
    inner = padded[0, :, :, 1:-1]
    close(inner[[0, -1], 1:-1], exact[[0, -1], 1:-1], "x ghosts (Neumann low, Dirichlet high)")
    close(inner[1:-1, [0, -1]], exact[1:-1, [0, -1]], "y ghosts (Dirichlet low, Neumann high)")
    # z is periodic: wrap of the padded neighbours.
    close(padded[0, 1:-1, 1:-1, 0], np.asarray(u[0, :, :, -1]), "z periodic low ghost")
    close(padded[0, 1:-1, 1:-1, -1], np.asarray(u[0, :, :, 0]), "z periodic high ghost")


def test_pad_2d_order4_face_arrays_reproduce_product_of_quartics():
    grid = nnpde.Grid((5, 4), extent=((0.0, 1.0), (-1.0, 1.0)))
    px = np.polynomial.Polynomial([0.3, -0.2, 0.5, 0.1, -0.4])
    py = np.polynomial.Polynomial([1.0, 0.4, -0.3, 0.2, 0.15])
    (xlo, xhi), (ylo, yhi) = grid.extent
    (y_on_x,) = grid.boundary_face_centres(0)
    (x_on_y,) = grid.boundary_face_centres(1)
    bc = BoundaryConditions(
        (Neumann(-px.deriv()(xlo) * py(y_on_x)), Dirichlet(px(xhi) * py(y_on_x))),
        (Dirichlet(px(x_on_y) * py(ylo)), Neumann(px(x_on_y) * py.deriv()(yhi))),
    )
    bc.check(grid, order=4)
    x, y = grid.cell_centres()
    u = jnp.asarray(px(np.asarray(x)) * py(np.asarray(y)))[None]
    padded = np.asarray(bc.pad(u, 2, grid.spacing, order=4))
    assert padded.shape == (1, 9, 8)
    assert np.isfinite(padded).all()
    xp = xlo + (np.arange(-2, 7) + 0.5) * grid.spacing[0]
    yp = ylo + (np.arange(-2, 6) + 0.5) * grid.spacing[1]
    exact = px(xp)[:, None] * py(yp)[None, :]
    close(padded[0, :, 2:-2][[0, 1, -2, -1]], exact[:, 2:-2][[0, 1, -2, -1]], "order-4 x ghosts", tol=1e-11)
    close(padded[0, 2:-2][:, [0, 1, -2, -1]], exact[2:-2][:, [0, 1, -2, -1]], "order-4 y ghosts", tol=1e-11)


def test_check_accepts_fitting_face_arrays_and_scalars():
    grid = nnpde.Grid((4, 6))
    BoundaryConditions(Dirichlet(jnp.ones(6)), Neumann(jnp.zeros(4))).check(grid)
    BoundaryConditions(Dirichlet(1.0), (Neumann(0), Neumann(jnp.asarray(2.0)))).check(grid)
    BoundaryConditions(Dirichlet(lambda t: t), Periodic()).check(grid)
