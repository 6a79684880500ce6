#!/usr/bin/env bash
# Create/update the benchmark virtualenv .venv-bench (idempotent: safe to re-run).
# It holds jax + jax-cfd + nnpde's runtime deps, kept apart from .venv so that
# jax-cfd never becomes a dependency of nnpde.
#   usage: bash benchmarks/setup_bench_env.sh      (PYTHON=... to pick the interpreter)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-bench"
PYTHON="${PYTHON:-python3.11}"

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi

# pip skips already-satisfied pins, so re-runs are quick no-ops.
"$VENV/bin/python" -m pip install --quiet -r "$ROOT/benchmarks/requirements-jaxcfd.txt"

# nnpde editable, without resolving its deps: the ones the heat step imports are
# pinned above; the rest of pyproject's list (mpi4jax, flax, optax, xarray, ...)
# is not needed here and is deliberately left out.  Skipped while the package has no build
# metadata yet; the benchmark then measures only bandwidth and jax-cfd.
if [[ -f "$ROOT/pyproject.toml" || -f "$ROOT/setup.py" ]]; then
    "$VENV/bin/python" -m pip install --quiet --no-deps -e "$ROOT"
else
    echo "setup_bench_env: no pyproject.toml in $ROOT yet; nnpde not installed" >&2
fi

"$VENV/bin/python" -c "import jax, jax_cfd
print('bench env ok: jax', jax.__version__, '| jax-cfd', jax_cfd.__version__)"
