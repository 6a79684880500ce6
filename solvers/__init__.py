"""Concrete differentiable finite-difference PDEs built on the nnpde core."""

from .heat import HeatEquation as HeatEquation
