"""Runs: configuration, the training loop, its logs and checkpoints, the ``nnpde`` command.

The top layer (it may use every other, ``nnpde.distributed`` included) and, with
``nnpde.distributed``, the only place for side effects: files, the clock, progress
bars, MPI launches. ``_config`` (the TOML schema), ``_fit`` (the training loop),
``_checkpoint``, ``_metrics_log``, ``_mllog``, ``_run`` (a configured run from data to
report), ``_cli``, ``_benchmark``, ``_report``, ``_validation``, ``_simulation``.
"""
