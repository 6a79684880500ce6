"""A/B of the networks' convolution derivative: XLA's transpose convolutions vs
``nnpde.networks._valid_conv``'s im2col JVP, in this one process.

Every convolutional network of ``nnpde.networks`` runs its convolutions through
``_valid_conv``, whose JVP is written on im2col windows so that reverse mode is matrix
products and shifted additions. The baseline is the same network with ``nnx.Conv``'s
default ``lax.conv_general_dilated``, whose reverse mode is JAX's transpose rule: an
input-gradient convolution with a reversed kernel and a kernel-gradient convolution
contracting over the batch. On XLA's CPU backend those two run far slower inside a
loop than outside one, and a training rollout is a loop.

Measured, for each variant (best of ``--repeats``, compilation excluded):

* an unrolled rollout as the learned corrections train on: ``u <- u + 0.01 * net(u)``
  for ``--steps`` steps in a ``lax.scan`` (``jax.vmap`` over single samples, as every
  nnpde model), periodic ``ConvNet``s: the forward rollout and its gradient with
  respect to the parameters. Three cases: the Burgers correction's network (1-D, 64
  cells, 1 channel, hidden 32, depth 4, kernel 5, batch 16), the Kolmogorov
  correction's (2-D, 16^2, 2 channels, hidden 32, depth 4, kernel 3, batch 8) and a
  3-D one (16^3, 2 channels, hidden 16, depth 3, kernel 3, batch 8);
* the gradient's temporary memory (XLA's compiled ``memory_analysis``);
* the two gradients' largest relative difference (they are the same derivative).

Both variants are forced here, whatever the backend (the networks themselves route to
``_valid_conv`` on the CPU backend only), so the same script measures the choice on a GPU.

Launch: ``.venv/bin/python benchmarks/conv_backward.py [--repeats 7] [--dims 1 2 3] [--out F]``
"""

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from heat_throughput import best_time  # noqa: E402

from nnpde import environment, networks  # noqa: E402


def _im2col(lhs, rhs, *args, precision=None, **kwargs):
    """``_valid_conv`` on any backend (the networks use it on the CPU backend only)."""
    return networks._valid_conv(lhs, rhs, precision)


def network(ndim: int, channels: int, hidden: int, depth: int, kernel: int, *, baseline: bool):
    net = networks.ConvNet(
        channels, channels, ndim=ndim, hidden=hidden, depth=depth, kernel_size=kernel, periodic=True, rngs=nnx.Rngs(0)
    )
    for layer in net.layers:
        layer.conv.conv_general_dilated = jax.lax.conv_general_dilated if baseline else _im2col
    return net


def measure(net, u0, steps: int, repeats: int):
    """Forward and gradient times of the rollout with ``net``, the gradient's
    temporaries, and the gradient itself."""
    graphdef, params = nnx.split(net)

    def rollout(params, u):
        model = nnx.merge(graphdef, params)

        def body(v, _):
            return v + 0.01 * jax.vmap(model)(v), None

        return jax.lax.scan(body, u, None, length=steps)[0]

    forward = jax.jit(rollout)
    gradient = jax.jit(jax.grad(lambda p, u: jnp.mean(rollout(p, u) ** 2)))
    memory = gradient.lower(params, u0).compile().memory_analysis()
    figures = {
        "forward_ms": 1e3 * best_time(lambda: forward(params, u0), repeats),
        "gradient_ms": 1e3 * best_time(lambda: gradient(params, u0), repeats),
        "gradient_temp_mib": None if memory is None else memory.temp_size_in_bytes / 2**20,
    }
    return figures, gradient(params, u0)


def case(ndim, channels, hidden, depth, kernel, n, batch, steps, repeats) -> dict:
    u0 = jax.random.normal(jax.random.key(1), (batch, channels) + (n,) * ndim, jnp.float32)
    out = {
        "ndim": ndim,
        "grid": [n] * ndim,
        "channels": channels,
        "hidden": hidden,
        "depth": depth,
        "kernel_size": kernel,
        "batch": batch,
        "steps": steps,
    }
    grads = {}
    for name, baseline in (("xla transpose", True), ("nnpde im2col jvp", False)):
        net = network(ndim, channels, hidden, depth, kernel, baseline=baseline)
        out[name], grads[name] = measure(net, u0, steps, repeats)
        print(
            f"{ndim}-D {name:>16}: forward {out[name]['forward_ms']:8.2f} ms, gradient "
            f"{out[name]['gradient_ms']:8.2f} ms ({out[name]['gradient_ms'] / out[name]['forward_ms']:5.2f}x "
            f"forward), gradient temporaries {out[name]['gradient_temp_mib']:.1f} MiB",
            flush=True,
        )
    a, b = (jax.tree.leaves(g) for g in grads.values())
    out["max_relative_difference"] = max(float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y))) for x, y in zip(a, b))
    out["gradient_speedup"] = out["xla transpose"]["gradient_ms"] / out["nnpde im2col jvp"]["gradient_ms"]
    print(
        f"{ndim}-D gradient speed-up {out['gradient_speedup']:.2f}x, "
        f"largest relative difference {out['max_relative_difference']:.1e}",
        flush=True,
    )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=16, help="rollout steps (the Kolmogorov training unroll)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--dims", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3], help="which cases to run")
    args = p.parse_args()
    cases = {
        1: (1, 1, 32, 4, 5, 64, 16),  # the Burgers correction
        2: (2, 2, 32, 4, 3, 16, 8),  # the Kolmogorov correction
        3: (3, 2, 16, 3, 3, 16, 8),
    }
    results = {
        "backend": jax.default_backend(),
        "cases": [case(*cases[d], args.steps, args.repeats) for d in args.dims],
        "repeats": args.repeats,
        "environment": environment(),
    }
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
