"""Distributed training (Kurth et al., "Deep Learning at 15PF", SC'17): synchronous
within groups of MPI ranks, asynchronous parameter averaging across groups, and solver
domains split across ranks.

- ``GroupTopology``: the world split into groups, with the communicators each needs;
- ``make_group_step`` / ``group_mean`` / ``data_parallel``: the synchronous gradient
  mean within a group (devices: shard_map + pmean; ranks: mpi4jax allreduce);
- ``AsyncAverager``: the asynchronous, staleness-aware cross-group average and the
  per-step health guard (rollback of non-finite or exploded parameters);
- ``flatten``, ``healthy``, ``contribution``, ``average_from``, ``mix``: the pure
  arithmetic of the average, usable and testable without MPI;
- ``Decomposition``: a solver domain split across ranks, ghost cells filled by halo
  exchange;
- ``abort_on_error``: a failing rank aborts the whole job instead of hanging it;
- the scale model (numpy only, no MPI): ``NetworkModel`` / ``fit_network`` /
  ``INTERCONNECTS`` (collective costs), ``ComputeModel`` (per-step compute with
  stragglers and heavy tails) / ``BatchScaling`` / ``fit_batch_scaling`` (its fixed
  and per-sample cost against the local batch), ``simulate`` (discrete-event simulation of groups and
  ``AsyncAverager``'s rule), ``fit_steps_to_target`` / ``time_to_target`` /
  ``predict_scaling`` (statistical efficiency, time to target, 1 to 10^4 nodes).
"""

from ._async import AsyncAverager as AsyncAverager
from ._averaging import average_from as average_from
from ._averaging import contribution as contribution
from ._averaging import flatten as flatten
from ._averaging import healthy as healthy
from ._averaging import mix as mix
from ._batch_scaling import BatchScaling as BatchScaling
from ._batch_scaling import fit_batch_scaling as fit_batch_scaling
from ._compute_model import ComputeModel as ComputeModel
from ._decomposition import Decomposition as Decomposition
from ._launch import abort_on_error as abort_on_error
from ._network_model import ALLREDUCE_ALGORITHMS as ALLREDUCE_ALGORITHMS
from ._network_model import INTERCONNECTS as INTERCONNECTS
from ._network_model import Interconnect as Interconnect
from ._network_model import NetworkFit as NetworkFit
from ._network_model import NetworkModel as NetworkModel
from ._network_model import allreduce_terms as allreduce_terms
from ._network_model import fit_network as fit_network
from ._scale_model import Simulation as Simulation
from ._scale_model import simulate as simulate
from ._scale_prediction import StepsToTarget as StepsToTarget
from ._scale_prediction import fit_steps_to_target as fit_steps_to_target
from ._scale_prediction import information_age as information_age
from ._scale_prediction import predict_scaling as predict_scaling
from ._scale_prediction import time_to_target as time_to_target
from ._sync import data_parallel as data_parallel
from ._sync import group_mean as group_mean
from ._sync import make_group_step as make_group_step
from ._sync import rank_share as rank_share
from ._topology import GroupTopology as GroupTopology
from ._topology import launched_by_mpi as launched_by_mpi
