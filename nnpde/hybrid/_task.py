"""``Task``: what a training run needs from a problem, in one object.

A problem module that can be trained from the command line (``nnpde train CONFIG``)
exposes ``task(**options) -> nnpde.Task``. The task holds the plain coarse solver (the
baseline every learned model must beat), a factory of learned models, the reference
data and the declared target accuracy: the relative L2 error, at ``horizon`` coarse
steps from held-out initial states, that a trained model must reach. Everything else
(batch size, learning rate, seeds, parallel layout) belongs to the run's configuration,
not to the task.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..numerics._stepper import AbstractStepper


@dataclasses.dataclass(frozen=True)
class Task:
    """A hybrid-modelling task: a coarse solver, learned models, data and a target.

    Args:
        name: short identifier (file names, logs).
        description: one paragraph on the physics and the set-up, printed and stored.
        baseline: the plain coarse solver, one step of the task's ``dt``.
        build_model: ``build_model(kind, seed) -> model``: a learned model on the coarse
            grid (a stepper) of one of ``kinds``, with freshly initialised networks.
        kinds: the model kinds ``build_model`` accepts; the first is the default.
        reference: ``reference(seed, n_samples, n_steps) -> (n_samples, n_steps + 1,
            *state)``: reference trajectories at the coarse ``dt`` on the coarse grid
            (fine-grid runs, downsampled), from initial states drawn with ``seed``.
        dataset_config: ``dataset_config(seed, n_samples, n_steps) -> dict``: everything
            the reference data depend on (the cache key).
        horizon: coarse steps of the evaluation rollout.
        target: the declared accuracy: relative L2 error at ``horizon``, averaged over
            the held-out trajectories, that a trained model must reach.
        channels: one name per state channel.
        units: units of the channels and of ``time`` (for files and plots).
        attrs: the problem's parameters, recorded with the results.
        symmetries: maps of ONE coarse state ``(C, *spatial) -> (C, *spatial)`` that the
            problem is invariant under (a reflection, a rotation): the reference
            dynamics and the coarse solver commute with each, so a trajectory mapped
            state by state is another valid trajectory. ``train.augment`` adds these
            images to the training data (``augment``). Maps a model is already
            equivariant to (grid translations, for a periodic CNN) add nothing.
        reference_domain: ``(grid, boundary_conditions)`` of the reference (fine-grid)
            solver, declared when ``reference`` can run split over MPI ranks: it then
            also accepts ``decomposition=``, a ``nnpde.distributed.Decomposition`` of
            that grid, runs its solver on this rank's block and returns the whole
            trajectories on every rank (``Decomposition.generate_trajectories``).
            ``None``: the reference runs whole, in one process.
    """

    name: str
    description: str
    baseline: AbstractStepper
    build_model: Callable[[str, int], Any]
    kinds: tuple[str, ...]
    reference: Callable[[int, int, int], Any]
    dataset_config: Callable[[int, int, int], dict]
    horizon: int
    target: float
    channels: tuple[str, ...]
    units: dict = dataclasses.field(default_factory=dict)
    attrs: dict = dataclasses.field(default_factory=dict)
    reference_domain: tuple | None = None
    symmetries: tuple = ()

    def __post_init__(self):
        if not (isinstance(self.symmetries, tuple) and all(callable(f) for f in self.symmetries)):
            raise TypeError(
                f"Task.symmetries must be a tuple of maps state -> state, got {self.symmetries!r}. "
                "Fix: e.g. symmetries=(reflect,) or ()."
            )
        if not isinstance(self.baseline, AbstractStepper):
            raise TypeError(f"Task.baseline must be an nnpde stepper, got {type(self.baseline).__name__}.")
        if not self.kinds:
            raise ValueError("Task.kinds is empty. Fix: name at least one model kind, e.g. ('correction',).")
        if not (isinstance(self.horizon, int) and self.horizon >= 1):
            raise ValueError(f"Task.horizon must be a positive int, got {self.horizon!r}.")
        if not (isinstance(self.target, (int, float)) and math.isfinite(self.target) and self.target > 0):
            raise ValueError(f"Task.target must be a positive relative error, got {self.target!r}.")
        shape = self.baseline.equation.state_shape
        if len(self.channels) != shape[0]:
            raise ValueError(f"Task.channels names {len(self.channels)} channels but the state has {shape[0]}.")
        if self.reference_domain is not None:
            from ..numerics._boundary import BoundaryConditions
            from ..numerics._grid import Grid

            domain = self.reference_domain
            if not (
                isinstance(domain, tuple)
                and len(domain) == 2
                and isinstance(domain[0], Grid)
                and isinstance(domain[1], BoundaryConditions)
            ):
                raise TypeError(
                    "Task.reference_domain must be (grid, boundary_conditions) of the reference solver, got "
                    f"{domain!r}. Fix: e.g. reference_domain=(fine.equation.grid, fine.equation.bc)."
                )

    @property
    def grid(self):
        """The coarse grid."""
        return self.baseline.equation.grid

    @property
    def dt(self) -> float:
        """The coarse time step: the spacing of the reference trajectories."""
        return float(self.baseline.dt)

    def augment(self, trajectories):
        """``trajectories`` ``(n, T, *state)`` followed by their images under each of
        ``symmetries``, state by state: ``(n * (1 + len(symmetries)), T, *state)``."""
        if not self.symmetries:
            raise ValueError(
                f"Task {self.name!r} declares no symmetries to augment its data with. "
                "Fix: set train.augment = false, or give the Task its symmetries."
            )
        trajectories = jnp.asarray(trajectories)
        images = [jax.jit(jax.vmap(jax.vmap(f)))(trajectories) for f in self.symmetries]
        for f, image in zip(self.symmetries, images):
            if image.shape != trajectories.shape or image.dtype != trajectories.dtype:
                raise ValueError(
                    f"Task {self.name!r}: symmetry {getattr(f, '__name__', f)!r} maps states of shape "
                    f"{trajectories.shape[2:]} {trajectories.dtype} to {image.shape[2:]} {image.dtype}. "
                    "Fix: a symmetry returns a state of the same shape and dtype."
                )
        return np.concatenate([np.asarray(trajectories), *(np.asarray(i) for i in images)])

    def model(self, kind: str | None = None, *, seed: int = 0):
        """A learned model of ``kind`` (default: the first of ``kinds``)."""
        kind = self.kinds[0] if kind is None else kind
        if kind not in self.kinds:
            raise ValueError(f"Unknown model kind {kind!r} for task {self.name!r}. Fix: use one of {self.kinds}.")
        return self.build_model(kind, seed)

    def trajectories(self, seed: int, n_samples: int, n_steps: int, *, cache_dir=None, decomposition=None):
        """``(trajectories, reused)``: ``reference`` cached as netCDF under ``cache_dir``
        (keyed by ``dataset_config``; ``None``: no cache). ``decomposition``: run the
        reference split over its ranks (collective; needs ``reference_domain``). The
        split run gives the same data as one process (to the pressure or implicit
        solver's tolerance), so it shares their cache entry."""
        from ._data import cached_trajectories

        if decomposition is not None and self.reference_domain is None:
            raise ValueError(
                f"Task {self.name!r} declares no reference_domain, so its reference cannot run split over ranks. "
                "Fix: run it whole (no decomposition)."
            )

        def build():
            if decomposition is None:
                return self.reference(seed, n_samples, n_steps)
            return self.reference(seed, n_samples, n_steps, decomposition=decomposition)

        return cached_trajectories(
            cache_dir,
            self.dataset_config(seed, n_samples, n_steps),
            build,
            dt=self.dt,
            grid=self.grid,
            channels=self.channels,
        )
