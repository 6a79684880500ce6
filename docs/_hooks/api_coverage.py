"""mkdocs hook: every public name has its entry in the API reference.

The pages under ``docs/reference/`` render names with mkdocstrings (``::: nnpde.Grid``;
a name that no longer exists fails the build there). This hook checks the other
direction: each name re-exported by a covered namespace's ``__init__.py`` (the
``from ._x import Y as Y`` lines) must be rendered on some page, else a warning names
it and the page it belongs on, which fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.api_coverage")

ROOT = Path(__file__).resolve().parents[2]
# namespace -> its __init__.py and the reference page for names that belong nowhere else
NAMESPACES = {
    "nnpde": ("nnpde/__init__.py", "reference/numerics.md, reference/hybrid.md or reference/runs.md"),
    "nnpde.distributed": ("nnpde/distributed/__init__.py", "reference/distributed.md"),
    "solvers": ("solvers/__init__.py", "reference/solvers.md"),
}
RENDERED = re.compile(r"^:::\s+([\w.]+)", re.MULTILINE)


def public_names(init: Path) -> list[str]:
    """The names an ``__init__.py`` re-exports explicitly (``from m import X as X``)."""
    names = []
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            names += [a.name for a in node.names if a.asname == a.name and not a.name.startswith("_")]
    return names


def on_files(files, *, config):
    rendered = set()
    for file in files.documentation_pages():
        if file.src_uri.startswith("reference/"):
            rendered.update(RENDERED.findall(file.content_string))
    for namespace, (init, page) in NAMESPACES.items():
        missing = [n for n in public_names(ROOT / init) if f"{namespace}.{n}" not in rendered]
        for name in missing:
            log.warning(
                f"API reference: {namespace}.{name} is public ({init}) but on no reference page. "
                f"Fix: add '::: {namespace}.{name}' to {page}."
            )
    return files
