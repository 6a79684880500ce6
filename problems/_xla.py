"""Compiler options for the problems' execution-bound loops."""

# A march to a steady state or a long monitored series runs thousands of steps in one
# compiled scan: its time is execution, not compilation. These options ask XLA for its
# default optimisation whatever the process's XLA_FLAGS say: the test suite turns
# LLVM's optimisation off for its many compile-bound tests (tests/_mpirun.py), which
# made such loops about 8x slower there. Outside the suite they are XLA's defaults, so
# they change nothing; in it, the loops also give bitwise a default process's numbers.
EXECUTION_BOUND = {"xla_backend_optimization_level": 3, "xla_llvm_disable_expensive_passes": False}
