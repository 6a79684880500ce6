r"""The conservative momentum flux ``div(u u)`` of a staggered (MAC) velocity.

In 2-D or 3-D, for component ``c`` (on the lower faces normal to axis ``c``: ``u[i,
j]`` at ``(x_i, y_{j+1/2})``, ``v[i, j]`` at ``(x_{i+1/2}, y_j)``; ``solvers.pressure``)
over its control volume::

    div(u u)_c[j] = sum_a (F_ca[j + e_a] - F_ca[j]) / h_a,    F_ca = vel_ca face_ca,

with the advecting velocity ``vel_ca`` the average of ``u_a`` over its two neighbours
along ``c`` (at cell centres for ``a == c``, at cell corners otherwise) and the face
value ``face_ca`` of ``u_c``: the two-point average (``"central"``: second order,
energy conserving for a discretely divergence-free field) or the van Leer limited MUSCL
value (``"van_leer"``: TVD, second order where smooth; ``nnpde.fd.advective_flux``).
The state arrives padded by ghost layers (``bc.pad``: the periodic wrap, or halos on a
split domain), so the same stencil serves one process and many
(``NavierStokes2D``, ``NavierStokes3D``).

``stencil_rate`` adds the viscous term, ``nu laplacian_h u`` (5-point Laplacian of each
component at its own positions): the periodic right-hand side of ``NavierStokes2D``,
whose hand-written reverse-mode rule is ``solvers._ns_adjoint``.

Reference: Morinishi, Lund, Vasilyev & Moin, J. Comput. Phys. 143 (1998) 90 (central
conservative fluxes on the staggered grid); van Leer, J. Comput. Phys. 14 (1974) 361
(the limiter).
"""

from __future__ import annotations

import jax.numpy as jnp

from nnpde import fd


def flux_divergence(padded, shape, spacing, w: int, scheme):
    """``div(u u)`` on the staggered positions from the state padded by ``w`` ghost layers.

    Any dimension ``d = len(shape)``: ``padded`` is ``(d, *(n + 2 w for n in shape))``
    (periodic wrap, or the neighbour ranks' layers on a split domain); ``shape``: the
    unpadded grid shape; ``scheme``: ``"central"`` (``w >= 1``) or ``"van_leer"`` (``w >=
    2``), or a prepared ``nnpde.AbstractReconstruction`` (``reconstruction.prepare(u)``),
    which carries component ``c`` through the faces normal to ``a`` as reconstructed
    quantity ``d c + a`` (and may correct that flux's advecting velocity,
    ``advecting_velocity``: a learned interpolation of both, as Kochkov et al.'s).
    """
    ndim = len(shape)

    def advecting(c, a):
        """Velocity ``u_a`` through the faces normal to ``a`` of component ``c``'s volumes.

        ``u_a`` averaged over its two neighbours along ``c``: at cell centres for
        ``a == c``, at cell corners (edges in 3-D) otherwise; faces ``0 .. n`` along ``a`` (the
        ``n``-th from the ghost layer: the periodic wrap, or the neighbour rank's
        first face on a split domain).
        """

        def window(offset):
            index = []
            for b, n in enumerate(shape):
                start = w + (offset if b == c else 0)
                index.append(slice(start, start + n + (1 if b == a else 0)))
            return padded[a][tuple(index)]

        return 0.5 * (window(-1) + window(0))

    def flux(c, a):
        velocity = advecting(c, a)
        if isinstance(scheme, str):
            return fd.advective_flux(padded[c], velocity, a, ndim=ndim, width=w, scheme=scheme)
        target = ndim * c + a
        velocity = scheme.advecting_velocity(velocity, padded[a], c, a, ndim=ndim, width=w, target=target)
        return velocity * scheme.upwind(padded[c], velocity, a, ndim=ndim, width=w, target=target)

    return jnp.stack([fd.face_divergence([flux(c, a) for a in range(ndim)], spacing) for c in range(ndim)])


def stencil_rate(padded, viscosity, shape, spacing, w: int, scheme):
    """``nu laplacian_h u - div(u u)`` from the state padded by ``w`` ghost layers (any dimension)."""
    return viscosity * fd.laplacian(padded, spacing, width=w) - flux_divergence(padded, shape, spacing, w, scheme)
