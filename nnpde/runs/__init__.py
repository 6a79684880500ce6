"""Runs: configuration, the training loop, its logs and checkpoints, the ``nnpde`` command.

The top layer: it builds on ``nnpde.numerics``, ``nnpde.hybrid`` and
``nnpde.distributed`` and is, with ``nnpde.distributed``, the only place for side
effects (files, the clock, progress bars, MPI launches). ``_config`` (the TOML schema),
``_fit`` (the training loop) with ``_checkpoint`` and ``_metrics_log``, ``_run`` and
``_cli`` (the ``nnpde`` command), ``_history`` (what changed each time a run was
started again), ``_benchmark`` and ``_mllog`` (time to train),
``_resumable`` (long reference runs that survive a kill), ``_signals`` (a batch
system's stop signal as a flag the loop reads), ``_report``, ``_simulation``
and ``_validation``. Public names are re-exported flat by ``nnpde``.
"""
