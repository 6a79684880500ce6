"""The learned parts: couplings of solvers with networks, losses, training, data, metrics.

Builds on ``nnpde.numerics`` only. ``_coupling`` (corrections, closures, neural sources,
learned coefficients), ``networks`` and ``_network`` (flax nnx modules and the one
functional boundary to them), ``_loss``, ``_train`` (train state and step), ``_data``
(reference trajectories, down- and upsampling), ``metrics`` and ``_task`` (what a
problem declares for training). Public names are re-exported flat by ``nnpde``.
"""
