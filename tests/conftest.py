"""Test configuration: float64 everywhere (gradient checks need it), CPU devices."""

import os

from tests._mpirun import TEST_XLA_FLAGS

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4 " + TEST_XLA_FLAGS)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_enable_x64", True)
