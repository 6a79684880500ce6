"""nnpde: differentiable finite-difference PDE solvers coupled to neural networks, in JAX.

The core: grids, boundary conditions, finite differences (``nnpde.fd``), equations,
steppers and rollouts; hybrid couplings of solvers with networks (``nnpde.networks``),
losses, training, checkpoints, data and metrics (``nnpde.metrics``). Concrete PDEs live
in ``solvers``, ready problems in ``problems``. MPI (mpi4py, mpi4jax) is imported only where communication happens.
"""

from . import fd as fd
from . import metrics as metrics
from . import networks as networks
from ._boundary import BoundaryConditions as BoundaryConditions
from ._boundary import Dirichlet as Dirichlet
from ._boundary import Neumann as Neumann
from ._boundary import Periodic as Periodic
from ._checkpoint import Checkpointer as Checkpointer
from ._checks import check_field_shape as check_field_shape
from ._checks import check_finite as check_finite
from ._checks import check_positive as check_positive
from ._checks import is_concrete as is_concrete
from ._config import ConfigError as ConfigError
from ._config import RunConfig as RunConfig
from ._config import load_config as load_config
from ._coupling import ClosureEquation as ClosureEquation
from ._coupling import CorrectedStepper as CorrectedStepper
from ._coupling import Emulator as Emulator
from ._coupling import LearnedCoefficient as LearnedCoefficient
from ._coupling import NeuralSource as NeuralSource
from ._coupling import stop_physics_gradient as stop_physics_gradient
from ._custom_types import Field as Field
from ._custom_types import State as State
from ._data import cached_dataset as cached_dataset
from ._data import cached_trajectories as cached_trajectories
from ._data import downsample as downsample
from ._data import generate_trajectories as generate_trajectories
from ._data import trajectory_dataset as trajectory_dataset
from ._data import upsample as upsample
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
from ._fit import FitResult as FitResult
from ._fit import evaluate_rollouts as evaluate_rollouts
from ._fit import fit as fit
from ._grid import Grid as Grid
from ._imex import IMEX_METHODS as IMEX_METHODS
from ._imex import AbstractProjectedIMEXEquation as AbstractProjectedIMEXEquation
from ._imex import IMEXTableau as IMEXTableau
from ._imex import ProjectedIMEX as ProjectedIMEX
from ._implicit import ThetaMethod as ThetaMethod
from ._loss import one_step_loss as one_step_loss
from ._loss import pinn_loss as pinn_loss
from ._loss import residual_loss as residual_loss
from ._loss import steady_residual_loss as steady_residual_loss
from ._loss import unrolled_loss as unrolled_loss
from ._loss import weighted_sum as weighted_sum
from ._metrics_log import MetricsLog as MetricsLog
from ._metrics_log import read_metrics as read_metrics
from ._network import FieldConditioned as FieldConditioned
from ._network import Network as Network
from ._projection import AbstractProjectedEquation as AbstractProjectedEquation
from ._projection import ProjectedRK as ProjectedRK
from ._projection import advection_extents as advection_extents
from ._projection import max_stable_dt_advective as max_stable_dt_advective
from ._rollout import rollout as rollout
from ._simulation import Simulation as Simulation
from ._simulation import run_simulation as run_simulation
from ._spectral import solve_shifted as solve_shifted
from ._spectral import transform_kinds as transform_kinds
from ._task import Task as Task
from ._train import TrainState as TrainState
from ._train import combine as combine
from ._train import init_train_state as init_train_state
from ._train import make_optimizer as make_optimizer
from ._train import make_train_step as make_train_step
from ._train import partition as partition
from ._train import sample_windows as sample_windows
from ._train import trainable as trainable

__version__ = "0.1.0"
