"""nnpde: differentiable finite-difference PDE solvers coupled to neural networks, in JAX.

Every public name is re-exported here, flat (``nnpde.Grid``, ``nnpde.fit``). The
implementation is grouped by concern, each layer importing only those before it:

* ``nnpde.numerics``: grids, boundary conditions, finite differences (``nnpde.fd``),
  equations (WHAT), steppers (HOW) with their stability limits, rollouts, Krylov and
  fast-transform solves;
* ``nnpde.hybrid``: the learned parts: couplings of solvers with networks
  (``nnpde.networks``), losses, the train step, data, metrics (``nnpde.metrics``) and
  the ``Task`` a problem declares;
* ``nnpde.distributed``: groups, synchronous and asynchronous averaging, split domains;
* ``nnpde.runs``: configuration, the training loop ``fit`` with its logs and
  checkpoints, the ``nnpde`` command, benchmarks, reports and validation; the steps of
  a configured run are public for scripts that study a trained run (``load_config``,
  ``set_precision``, ``load_task``, ``stage_data``, ``restore_model``, ``environment``).

Concrete PDEs live in ``solvers``, ready problems in ``problems``. MPI (mpi4py,
mpi4jax) is imported only where communication happens.
"""

from ._checks import check_field_shape as check_field_shape
from ._checks import check_finite as check_finite
from ._checks import check_int as check_int
from ._checks import check_positive as check_positive
from ._checks import is_concrete as is_concrete
from ._custom_types import Field as Field
from ._custom_types import State as State
from ._version import __version__ as __version__
from .hybrid import metrics as metrics
from .hybrid import networks as networks
from .hybrid._coupling import ClosureEquation as ClosureEquation
from .hybrid._coupling import CorrectedStepper as CorrectedStepper
from .hybrid._coupling import Emulator as Emulator
from .hybrid._coupling import LearnedCoefficient as LearnedCoefficient
from .hybrid._coupling import NeuralSource as NeuralSource
from .hybrid._coupling import ProjectedClosureEquation as ProjectedClosureEquation
from .hybrid._coupling import stop_physics_gradient as stop_physics_gradient
from .hybrid._data import cached_dataset as cached_dataset
from .hybrid._data import cached_trajectories as cached_trajectories
from .hybrid._data import downsample as downsample
from .hybrid._data import generate_trajectories as generate_trajectories
from .hybrid._data import trajectory_dataset as trajectory_dataset
from .hybrid._data import upsample as upsample
from .hybrid._learned_interpolation import LearnedInterpolation as LearnedInterpolation
from .hybrid._learned_interpolation import PerStepInterpolation as PerStepInterpolation
from .hybrid._learned_interpolation import learned_interpolation as learned_interpolation
from .hybrid._loss import one_step_loss as one_step_loss
from .hybrid._loss import pinn_loss as pinn_loss
from .hybrid._loss import residual_loss as residual_loss
from .hybrid._loss import steady_residual_loss as steady_residual_loss
from .hybrid._loss import unrolled_loss as unrolled_loss
from .hybrid._loss import weighted_sum as weighted_sum
from .hybrid._network import FieldConditioned as FieldConditioned
from .hybrid._network import Network as Network
from .hybrid._task import Task as Task
from .hybrid._train import TrainState as TrainState
from .hybrid._train import combine as combine
from .hybrid._train import init_train_state as init_train_state
from .hybrid._train import make_optimizer as make_optimizer
from .hybrid._train import make_train_step as make_train_step
from .hybrid._train import partition as partition
from .hybrid._train import sample_windows as sample_windows
from .hybrid._train import trainable as trainable
from .numerics import fd as fd
from .numerics._boundary import BoundaryConditions as BoundaryConditions
from .numerics._boundary import Dirichlet as Dirichlet
from .numerics._boundary import Neumann as Neumann
from .numerics._boundary import Periodic as Periodic
from .numerics._diffrax import DiffraxStepper as DiffraxStepper
from .numerics._equation import AbstractEquation as AbstractEquation
from .numerics._equation import AbstractLinearEquation as AbstractLinearEquation
from .numerics._equation import AbstractProjectedEquation as AbstractProjectedEquation
from .numerics._equation import AbstractProjectedIMEXEquation as AbstractProjectedIMEXEquation
from .numerics._explicit import ExplicitRK as ExplicitRK
from .numerics._grid import Grid as Grid
from .numerics._imex import IMEX_METHODS as IMEX_METHODS
from .numerics._imex import IMEXTableau as IMEXTableau
from .numerics._imex import ProjectedIMEX as ProjectedIMEX
from .numerics._implicit import ThetaMethod as ThetaMethod
from .numerics._krylov import conjugate_gradient as conjugate_gradient
from .numerics._projected_rk import ProjectedRK as ProjectedRK
from .numerics._reconstruction import RECONSTRUCTIONS as RECONSTRUCTIONS
from .numerics._reconstruction import AbstractReconstruction as AbstractReconstruction
from .numerics._reconstruction import Central as Central
from .numerics._reconstruction import CorrectedReconstruction as CorrectedReconstruction
from .numerics._reconstruction import Upwind as Upwind
from .numerics._reconstruction import VanLeer as VanLeer
from .numerics._reconstruction import consistent_corrections as consistent_corrections
from .numerics._reconstruction import correction_size as correction_size
from .numerics._reconstruction import reconstruction as reconstruction
from .numerics._reconstruction import stencil_offsets as stencil_offsets
from .numerics._rollout import rollout as rollout
from .numerics._spectral import laplacian_eigenvalues as laplacian_eigenvalues
from .numerics._spectral import solve_shifted as solve_shifted
from .numerics._spectral import transform_kinds as transform_kinds
from .numerics._stability import max_stable_dt as max_stable_dt
from .numerics._stability import max_stable_dt_advective as max_stable_dt_advective
from .numerics._stability import stable_dt as stable_dt
from .numerics._stepper import AbstractStepper as AbstractStepper
from .numerics._tableau import FORWARD_EULER as FORWARD_EULER
from .numerics._tableau import HEUN as HEUN
from .numerics._tableau import RK4 as RK4
from .numerics._tableau import SSPRK3 as SSPRK3
from .numerics._tableau import ButcherTableau as ButcherTableau
from .numerics._tableau import advection_extents as advection_extents
from .runs._checkpoint import CheckpointCorrupt as CheckpointCorrupt
from .runs._checkpoint import Checkpointer as Checkpointer
from .runs._config import ConfigError as ConfigError
from .runs._config import RunConfig as RunConfig
from .runs._config import load_config as load_config
from .runs._config import parse_overrides as parse_overrides
from .runs._detect import MonitoringTask as MonitoringTask
from .runs._detect import link_series as link_series
from .runs._detect import load_detect_config as load_detect_config
from .runs._detect import run_detection as run_detection
from .runs._fit import FitResult as FitResult
from .runs._fit import evaluate_rollouts as evaluate_rollouts
from .runs._fit import fit as fit
from .runs._metrics_log import MetricsLog as MetricsLog
from .runs._metrics_log import read_metrics as read_metrics
from .runs._resumable import resumable_rollout as resumable_rollout
from .runs._run import environment as environment
from .runs._run import load_task as load_task
from .runs._run import restore_model as restore_model
from .runs._run import set_precision as set_precision
from .runs._run import stage_data as stage_data
from .runs._signals import StopSignals as StopSignals
from .runs._simulation import Simulation as Simulation
from .runs._simulation import run_simulation as run_simulation
from .runs._training_run import Diverged as Diverged
from .runs._training_run import Preempted as Preempted
