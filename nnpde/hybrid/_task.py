"""``Task``: what a training run needs from a problem, in one object.

A problem module that can be trained from the command line (``nnpde train CONFIG``)
exposes ``task(**options) -> nnpde.Task``. The task holds the plain coarse solver (the
baseline every learned model must beat), a factory of learned models, the reference
data and the declared target accuracy: the relative L2 error, at ``horizon`` coarse
steps from held-out initial states, that a trained model must reach. Everything else
(batch size, learning rate, seeds, parallel layout) belongs to the run's configuration,
not to the task.

``Task.from_solvers`` assembles the usual case, whose reference is the same physics on
a finer grid: the problem states its coarse and fine solvers, its models by kind, its
initial states and what its data depend on; the reference runs, the restriction to the
coarse grid, the split over MPI ranks and the cache key are written once, there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from ..numerics._boundary import BoundaryConditions
from ..numerics._grid import Grid
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

    @classmethod
    def from_solvers(
        cls,
        *,
        name: str,
        description: str,
        baseline: AbstractStepper,
        models: Mapping[str, Callable[[int], Any]],
        fine: AbstractStepper,
        substeps: int,
        factor: int,
        initial_states: Callable[[int, int, Callable], Any],
        parameters: dict,
        horizon: int,
        target: float,
        channels: tuple[str, ...],
        stagger: tuple | None = None,
        spinup: int = 0,
        split: Callable[[Any], AbstractStepper] | None = None,
        reference_bc: BoundaryConditions | None = None,
        units: dict | None = None,
        attrs: dict | None = None,
        symmetries: tuple = (),
    ) -> Task:
        """The task of a coarse solver whose reference is the same physics on a finer grid.

        ``name``, ``description``, ``horizon``, ``target``, ``channels``, ``units``,
        ``attrs`` and ``symmetries`` are as for ``Task``.

        Args:
            baseline: the plain coarse solver, one step of the task's ``dt``.
            models: ``kind -> (seed -> model)``, one entry per model kind (the first is
                the default): a learned model on the coarse grid with freshly
                initialised networks.
            fine: the reference solver, one step of ``baseline.dt / substeps`` on a grid
                ``factor`` times finer per axis.
            substeps: fine steps per coarse step.
            factor: fine cells per coarse cell, per axis. Fine states are restricted to
                the coarse grid by ``nnpde.downsample(factor, stagger=stagger)`` (block
                averages; face averages of the staggered channels).
            initial_states: ``initial_states(seed, n_samples, run) -> (n_samples,
                *fine_state)``: the fine initial states drawn with ``seed``. ``run(u0,
                n_steps, *, save_every=1) -> (N, n_saved, *fine_state)`` runs the
                reference solver (whole, or split over the ranks like the reference)
                for states that are spun up on the fine grid first.
            parameters: everything else the reference data depend on (the problem's
                name and constants, numbers, strings, lists): the cache key is these
                with the seed, the counts and the dtype.
            spinup: coarse steps run from the initial states and dropped before the
                first kept state.
            split: ``split(decomposition) -> stepper``: ``fine`` on the rank's block of
                a ``nnpde.distributed.Decomposition`` (its ``local_grid``,
                ``boundary_conditions``, split coefficient fields), so that
                ``distributed.domain`` can split the reference over the ranks.
                ``None``: the reference runs whole.
            reference_bc: with ``split``, the ``nnpde.BoundaryConditions`` of the fine
                grid that a decomposition splits (``reference_domain`` is the fine grid
                and these).

        The reference trajectory of an initial state is ``fine`` run ``substeps *
        (spinup + n_steps)`` steps, every ``substeps``-th state restricted to the coarse
        grid, the first ``spinup`` dropped: ``(n_samples, n_steps + 1, *coarse_state)``.
        """
        from ._data import generate_trajectories

        if not (isinstance(models, Mapping) and models and all(callable(f) for f in models.values())):
            raise TypeError(
                f"models must map each model kind to a function seed -> model, got {models!r}. "
                "Fix: e.g. models={'correction': lambda seed: nnpde.CorrectedStepper(coarse, network(seed))}."
            )
        substeps = check_int(substeps, "substeps", fix="fine steps per coarse step, e.g. 4.")
        factor = check_int(factor, "factor", fix="fine cells per coarse cell and axis, e.g. 4.")
        spinup = check_int(spinup, "spinup", minimum=0, fix="coarse steps dropped from the start, e.g. 0.")
        if not isinstance(fine, AbstractStepper):
            raise TypeError(f"fine must be an nnpde stepper (the reference solver), got {type(fine).__name__}.")
        if not math.isclose(fine.dt * substeps, baseline.dt, rel_tol=1e-9):
            raise ValueError(
                f"{substeps} reference steps of {fine.dt:g} are {fine.dt * substeps:g}, not the coarse step "
                f"{baseline.dt:g}. Fix: the reference's dt = coarse dt / substeps."
            )
        coarse_grid, fine_grid = baseline.equation.grid, fine.equation.grid
        if fine_grid.shape != tuple(n * factor for n in coarse_grid.shape):
            raise ValueError(
                f"the reference grid {fine_grid.shape} is not factor = {factor} times the coarse grid "
                f"{coarse_grid.shape}. Fix: {tuple(n * factor for n in coarse_grid.shape)} reference cells."
            )
        if (split is None) != (reference_bc is None):
            raise ValueError(
                "split and reference_bc go together: how the reference runs on one rank's block, and the "
                "boundary conditions of the grid split into blocks. Fix: give both, or neither (a whole reference)."
            )
        kinds = tuple(models)

        def build_model(kind: str, seed: int):
            if kind not in models:
                raise ValueError(f"Unknown model kind {kind!r} for task {name!r}. Fix: use one of {kinds}.")
            return models[kind](seed)

        def reference(seed: int, n_samples: int, n_steps: int, *, decomposition=None):
            step = fine if decomposition is None else split(decomposition)
            generate = generate_trajectories if decomposition is None else decomposition.generate_trajectories
            ndim = fine_grid.ndim

            def run(u0, n_steps, *, save_every=1):
                return generate(step, u0, n_steps, save_every=save_every, ndim=ndim)

            u0 = initial_states(seed, n_samples, run)
            n_fine = (spinup + n_steps) * substeps
            kept = generate(step, u0, n_fine, save_every=substeps, factor=factor, ndim=ndim, stagger=stagger)
            return kept[:, spinup:] if spinup else kept

        def dataset_config(seed: int, n_samples: int, n_steps: int) -> dict:
            counts = {"seed": seed, "n_samples": n_samples, "n_steps": n_steps}
            return {**parameters, **counts, "dtype": jnp.zeros(()).dtype.name}

        return cls(
            name=name,
            description=description,
            baseline=baseline,
            build_model=build_model,
            kinds=kinds,
            reference=reference,
            dataset_config=dataset_config,
            horizon=horizon,
            target=target,
            channels=channels,
            units=dict(units or {}),
            attrs=dict(attrs or {}),
            reference_domain=None if split is None else (fine_grid, reference_bc),
            symmetries=symmetries,
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
