"""Concrete differentiable finite-difference PDEs built on the nnpde core."""

from .boussinesq import Boussinesq2D as Boussinesq2D
from .burgers import Burgers as Burgers
from .heat import HeatEquation as HeatEquation
from .navier_stokes import NavierStokes2D as NavierStokes2D
from .navier_stokes3d import NavierStokes3D as NavierStokes3D
