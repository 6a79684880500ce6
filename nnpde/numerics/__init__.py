"""Numerics: grids, boundary conditions, finite differences, equations, steppers, rollouts.

The layer every other one builds on; it imports nothing of ``nnpde`` but the shared
checks and shape aliases. One module a concept: ``_grid``, ``_boundary``, ``fd``
(stencils), ``_equation`` (WHAT: right-hand sides), ``_stepper`` and one module per
stepper family (HOW: ``_explicit``, ``_projected_rk``, ``_imex``, ``_implicit``,
``_diffrax``), ``_tableau`` and ``_stability`` (stability regions and time-step
limits), ``_rollout``, ``_krylov`` and ``_spectral`` (linear solves). Public names
are re-exported flat by ``nnpde``.
"""
