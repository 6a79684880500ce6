"""Run a command's ``main`` in the test's own process, as the interpreter would end on it.

For refusals that come before any work: a fresh interpreter would only import the same
modules again. The commands themselves are run in fresh processes elsewhere.
"""

from __future__ import annotations

import sys


def exit_status(main, argv: list[str]) -> int:
    """``main(argv)``'s exit status as ``python -m ...`` would give it: the returned
    value, or that of a ``SystemExit`` (a message in it is printed to stderr and the
    status is 1, as the interpreter does)."""
    try:
        return main(argv)
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
            return 1
        return 0 if stop.code is None else stop.code
