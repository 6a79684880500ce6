"""Concrete set-ups built on nnpde and solvers: domains, boundary conditions,
coefficients, initial states, reference or analytic solutions, data and targets.

Entry points. A problem module offers, under these fixed names, the entry points it
supports. The ``nnpde`` command finds a module by its import path (ours or a user's
own, e.g. ``[problem] module = "problems.hybrid_burgers"`` in a run's TOML file) and
refuses one without the entry point the command needs, naming the module, what is
missing and the fix (``nnpde/runs/_problem.py``).

``task(**options) -> nnpde.Task``
    A hybrid training task: the plain coarse solver, its learned models by kind, the
    reference data and the declared target (``nnpde.Task.from_solvers`` assembles the
    usual case, a reference on a finer grid). For ``nnpde train``, ``evaluate``,
    ``generate`` and ``benchmark``; ``[problem.options]`` are its keyword arguments.
    Ours: ``hybrid_burgers``, ``hybrid_heat_board``, ``hybrid_kolmogorov``,
    ``hybrid_convection``.

``simulation(**options) -> nnpde.Simulation``
    A plain (untrained) simulation: its stepper, initial state, length and what to
    store and plot. For ``nnpde simulate --problem problems.X --set key=value``. Ours:
    ``heat_board``.

``solve(...)``
    A run compared with a published or analytic reference: its fields and figures as
    an ``xarray.Dataset``, the parameters in ``attrs`` (``abc_flow``: a dict of
    figures). Called by the validation cases, the scripts and the tests, not by the
    command directly. Ours: ``burgers``, ``taylor_green``, ``abc_flow``,
    ``lid_driven_cavity``, ``heated_cavity``, ``kolmogorov``.

``monitoring(**options) -> nnpde.MonitoringTask``
    An anomaly-detection task: normal and labelled monitored series and detectors
    trained on normal data. For ``nnpde detect CONFIG``. Ours: ``thermal_monitoring``.

``CASES``
    A validation suite: a dict ``name -> case(full: bool) -> dict`` with
    ``quantity``, ``measured``, ``expected``, ``passed`` and ``reference``, in order.
    For ``nnpde validate --suite problems.X``. Ours: ``validation``.

Options are keyword arguments with visible defaults; a bad one raises ``ValueError``
naming the option, the value and the fix. What else a module defines (grids,
equations, initial states, constants) is its own public API, for scripts and tests.
``hybrid_heat`` declares no target accuracy, so it offers no ``task``: its ``model``
and ``trajectories`` serve the study scripts.

The import names ``problems`` and ``solvers`` are installed with nnpde. A module or
folder of the same name earlier on ``sys.path`` (the current directory comes first)
shadows them; ``nnpde`` then refuses to run, naming both locations and the fix.
"""
