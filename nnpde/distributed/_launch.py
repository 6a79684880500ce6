"""Launch helpers: a failing rank takes the whole MPI job down instead of hanging it."""

from __future__ import annotations

import contextlib
import sys
import time
import traceback

from ._topology import _world


@contextlib.contextmanager
def abort_on_error():
    """Run the body; if it raises on any rank, print the traceback and abort the whole
    MPI job (``MPI_Abort``, error code 4 for a ``FloatingPointError``, the divergence
    of training, else 1), so that ranks blocked in a collective waiting for the failed
    one exit at once instead of hanging. One process: the exception propagates
    as usual.

    Use around the whole of a script's work::

        with nnpde.distributed.abort_on_error():
            main()
    """
    world = _world()
    try:
        yield
    except BaseException as error:
        if world is None or world.Get_size() == 1 or (isinstance(error, SystemExit) and not error.code):
            raise
        rank = world.Get_rank()
        print(f"[rank {rank}] failed; aborting all {world.Get_size()} ranks:", file=sys.stderr, flush=True)
        traceback.print_exc()
        sys.stderr.flush()
        sys.stdout.flush()
        # MPI_Abort kills every rank at once, pipes included: give the process manager a
        # moment to forward what was just written (under load it lost the traceback)
        time.sleep(0.5)
        world.Abort(4 if isinstance(error, FloatingPointError) else 1)  # 4: diverged, as nnpde's exit code
        raise  # not reached when MPI_Abort ends the process, as it should
