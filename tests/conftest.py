"""Test configuration: float64 everywhere (gradient checks need it), CPU devices."""

import os

from tests._mpirun import TEST_XLA_FLAGS

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4 " + TEST_XLA_FLAGS)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# MPICH ranks waiting in a collective (for rank 0's single-process reference, for a
# rank still compiling) poll without pause; with more ranks than the CI machine's 2
# cores that polling takes the CPU from the ranks doing the work. Heavy yield sleeps
# between polls instead (every mpirun launched by a test inherits it): measured on the
# 4-rank Navier-Stokes split 175 -> 116 CPU seconds, the distributed script 112 -> 77.
os.environ.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")

import jax

jax.config.update("jax_enable_x64", True)
