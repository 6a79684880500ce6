"""``python -m nnpde``: the ``nnpde`` command."""

from .runs._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
