"""Runs: the configuration, the training loop, the ``nnpde`` command and its reports.

Builds on ``nnpde.numerics``, ``nnpde.hybrid`` and ``nnpde.distributed``. ``_config``
(the TOML schema), ``_fit`` (the training loop) with ``_checkpoint`` and
``_metrics_log``, ``_run`` and ``_cli`` (the ``nnpde`` command), ``_benchmark`` and
``_mllog`` (time to train), ``_report``, ``_simulation`` and ``_validation``. Side
effects (files, the clock, progress bars) live here. Public names are re-exported flat
by ``nnpde``.
"""
