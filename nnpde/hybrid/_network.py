"""``Network``: a flax nnx module as a pure function of its parameters.

The one place flax meets the solver world. ``nnx.split`` turns a module into a static
graph definition and a pytree of parameters; ``nnx.merge`` rebuilds it for a call. A
``Network`` holds both, so a hybrid model (solver plus networks) is one equinox pytree:
it can be jitted, differentiated, vmapped, partitioned into what trains and what does
not (``nnpde.trainable``), and checkpointed, with no mutable state in between.
"""

from __future__ import annotations

import equinox as eqx
import jax
from flax import nnx


class Network(eqx.Module):
    """A flax nnx module held as ``(graphdef, params, rest)``.

    ``params`` are the ``nnx.Param`` variables (what an optimiser trains); ``rest``
    any other variables (batch statistics, constants), carried but never trained.
    Calling the network merges them into a fresh module and applies it, so the call is
    a pure function of the arrays in this pytree.

    Example::

        net = nnpde.Network(nnpde.networks.ConvNet(1, 1, ndim=1, periodic=(True,), rngs=nnx.Rngs(0)))
        du = net(u)  # u: (channels, *spatial), one unbatched state
    """

    graphdef: nnx.GraphDef = eqx.field(static=True)
    params: nnx.State
    rest: nnx.State

    def __init__(self, module: nnx.Module):
        if not isinstance(module, nnx.Module):
            raise TypeError(
                f"Network wraps a flax.nnx.Module, got {type(module).__name__}. "
                "Fix: pass e.g. nnpde.networks.ConvNet(...) or any nnx.Module."
            )
        self.graphdef, self.params, self.rest = nnx.split(module, nnx.Param, ...)

    @property
    def module(self) -> nnx.Module:
        """A fresh nnx module with these parameters (for inspection or nnx APIs)."""
        return nnx.merge(self.graphdef, self.params, self.rest)

    @property
    def n_params(self) -> int:
        """The number of trainable scalars."""
        return sum(x.size for x in jax.tree.leaves(self.params))

    def __call__(self, x):
        return self.module(x)


class FieldConditioned(eqx.Module):
    """A network that sees fixed fields beside the state: ``N([u, f_1, ..., f_k])``.

    ``fields``: ``(k, *spatial)`` channels concatenated after the state's channels at
    every call (a coarse source map, coordinates, a conductivity field): what a
    translation-equivariant network needs to know about the problem's layout. The
    fields are data, not parameters: ``nnpde.trainable`` leaves them fixed.
    """

    network: Network
    fields: jax.Array

    def __call__(self, u):
        if u.shape[1:] != self.fields.shape[1:]:
            raise ValueError(
                f"The state's grid shape {u.shape[1:]} differs from the conditioning fields' {self.fields.shape[1:]}. "
                "Fix: build the fields on the same grid as the state."
            )
        return self.network(jax.numpy.concatenate([u, self.fields.astype(u.dtype)], axis=0))
