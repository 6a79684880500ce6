"""Peak memory of a gradient through a T-step unrolled loss, with and without
checkpointed rollouts: XLA's own accounting of the compiled gradient (temporary buffers
plus arguments and outputs), so the figures are exact and repeatable.

Model: the 2-D hybrid heat task's learned correction (``problems.hybrid_heat``: Crank-
Nicolson CG solver plus a CNN on 32 x 32), batch 1, T = 16, 64, 256.

Launch:

    .venv/bin/python scripts/unroll_memory.py

Prints a table and writes ``runs/unroll_memory.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp

import nnpde
from problems import hybrid_heat

LENGTHS = (16, 64, 256)


def peak_bytes(model, n_steps: int, checkpoint) -> int:
    params, static = nnpde.partition(model)
    shape = (1, n_steps + 1, *model.equation.state_shape)
    data = jax.ShapeDtypeStruct(shape, jnp.zeros(()).dtype)

    def loss(p, batch):
        return nnpde.unrolled_loss(nnpde.combine(p, static), batch, checkpoint=checkpoint)

    compiled = jax.jit(jax.grad(loss)).lower(params, data).compile()
    m = compiled.memory_analysis()
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


def main():
    model = hybrid_heat.model("correction", seed=0, hidden=32, depth=4, kernel_size=5)
    state_bytes = math.prod(model.equation.state_shape) * jnp.zeros(()).dtype.itemsize
    rows = []
    for n in LENGTHS:
        row = {"T": n}
        for label, checkpoint in (("none", None), ("step", "step"), ("sqrt", "sqrt")):
            row[label] = peak_bytes(model, n, checkpoint)
        rows.append(row)
        print(
            f"T={n:4d}  peak MiB: no checkpoint {row['none'] / 2**20:8.2f}   per step {row['step'] / 2**20:8.2f}"
            f"   sqrt {row['sqrt'] / 2**20:8.2f}   (state {state_bytes / 2**10:.1f} KiB)",
            flush=True,
        )
    for label in ("none", "step", "sqrt"):
        growth = rows[-1][label] / rows[0][label]
        print(f"{label:5s}: peak(T=256) / peak(T=16) = {growth:.2f}  (T ratio 16, sqrt ratio 4)")
    out = Path("runs/unroll_memory.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"state_bytes": state_bytes, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
