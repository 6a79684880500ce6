# Two entry points for a fresh machine: `make run` (the main job: train the default
# hybrid model and write its report) and `make test`.
# Both create the virtualenv .venv on first use. MPI comes from the pip `mpich` wheel;
# mpi4jax compiles against it and against jax's FFI headers, so both come first
# (about a minute, once).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nnpde-installed
# A CUDA compiler on the PATH without headers next to it breaks mpi4jax's build; point
# it at the real CUDA root when there is one (harmless on CPU-only machines).
CUDA_ROOT := $(firstword $(wildcard /usr/local/cuda) $(CUDA_PATH))

.PHONY: setup run test lint docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet setuptools wheel cython nanobind "mpi4py>=4.1.2" "mpich>=5.0.2" "jax>=0.10.2"
	PATH="$(abspath $(BIN)):$$PATH" CUDA_PATH="$(CUDA_ROOT)" $(BIN)/pip install --quiet --no-build-isolation "mpi4jax>=0.9.1"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/nnpde train scripts/configs/burgers.toml

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=30

lint: $(STAMP)
	$(BIN)/ruff check .

# The documentation site (docs/, mkdocs.yml) at http://127.0.0.1:8000, rebuilt on every
# change; tests/test_docs.py builds it with warnings as errors.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve

clean:
	rm -rf $(VENV) runs site .pytest_cache
