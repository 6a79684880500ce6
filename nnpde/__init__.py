"""nnpde: differentiable finite-difference PDE solvers coupled to neural networks, in JAX.

The core: grids, boundary conditions, finite differences (``nnpde.fd``), equations,
steppers and rollouts. Concrete PDEs live in ``solvers``, ready problems in
``problems``. MPI (mpi4py, mpi4jax) is imported only where communication happens.
"""

from . import fd as fd
from ._boundary import BoundaryConditions as BoundaryConditions
from ._boundary import Dirichlet as Dirichlet
from ._boundary import Neumann as Neumann
from ._boundary import Periodic as Periodic
from ._checks import check_field_shape as check_field_shape
from ._checks import check_finite as check_finite
from ._checks import check_positive as check_positive
from ._checks import is_concrete as is_concrete
from ._custom_types import Field as Field
from ._custom_types import State as State
from ._diffrax import DiffraxStepper as DiffraxStepper
from ._equation import AbstractEquation as AbstractEquation
from ._equation import AbstractLinearEquation as AbstractLinearEquation
from ._explicit import FORWARD_EULER as FORWARD_EULER
from ._explicit import HEUN as HEUN
from ._explicit import RK4 as RK4
from ._explicit import SSPRK3 as SSPRK3
from ._explicit import AbstractStepper as AbstractStepper
from ._explicit import ButcherTableau as ButcherTableau
from ._explicit import ExplicitRK as ExplicitRK
from ._explicit import max_stable_dt as max_stable_dt
from ._explicit import stable_dt as stable_dt
from ._grid import Grid as Grid
from ._implicit import ThetaMethod as ThetaMethod
from ._projection import AbstractProjectedEquation as AbstractProjectedEquation
from ._projection import ProjectedRK as ProjectedRK
from ._projection import advection_extents as advection_extents
from ._projection import max_stable_dt_advective as max_stable_dt_advective
from ._rollout import rollout as rollout
from ._simulation import Simulation as Simulation
from ._simulation import run_simulation as run_simulation
from ._spectral import solve_shifted as solve_shifted
from ._spectral import transform_kinds as transform_kinds

__version__ = "0.1.0"
