"""Writes step 1 of a small state, then step 2 of a large one; the test kills it mid-write.

Usage: python _checkpoint_writer.py DIRECTORY MEGABYTES
Prints ``saved 1`` when step 1 is committed, ``saving 2`` just before the large save
and ``saved 2`` if that save completes.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from nnpde.runs._checkpoint import Checkpointer


def small_state():
    return {"w": jnp.arange(12.0, dtype=jnp.float32).reshape(3, 4), "step": jnp.int32(1), "rng": jax.random.key(3)}


def main() -> None:
    directory, megabytes = sys.argv[1], float(sys.argv[2])
    checkpointer = Checkpointer(directory)
    checkpointer.save(1, small_state())
    print("saved 1", flush=True)
    # Random values: incompressible, so the write takes time proportional to the size.
    n = int(megabytes * 2**20 / 4 / 4)
    rng = np.random.default_rng(0)
    large = {f"a{i}": rng.random(n, dtype=np.float32) for i in range(4)}
    print("saving 2", flush=True)
    checkpointer.save(2, large)
    print("saved 2", flush=True)
    checkpointer.close()


if __name__ == "__main__":
    main()
