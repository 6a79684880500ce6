"""mkdocs hook: the configuration reference (docs/config.md), generated from the code.

``docs/config.md`` holds the marker ``<!-- config-reference -->``. At build time it is
replaced by one table per section of ``nnpde.RunConfig``, read from the module that
defines it: every key with its type, its default, the values the loader accepts (its
range and choice rules) and the docstring written under the field. So the page cannot
drift from the schema. A key without a docstring, a rule for a key that does not
exist, or a missing marker is reported as a warning, which fails ``mkdocs build
--strict`` (and so the test suite).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import logging
import sys
import tempfile
import typing
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.config_reference")

PAGE = "config.md"
MARKER = "<!-- config-reference -->"
ROOT = Path(__file__).resolve().parents[2]
TYPE_NAMES = {
    int: "integer",
    float: "float",
    bool: "boolean",
    str: "string",
    dict: "table",
    list[int]: "array of integers",
}


def _schema():
    """The module defining ``nnpde.RunConfig``, found through the public name."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import nnpde

    return sys.modules[nnpde.RunConfig.__module__]


def _field_docs(module) -> dict[str, dict[str, str]]:
    """``{class name: {field: docstring}}``: the string literal under each field."""
    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.ClassDef):
            fields = docs.setdefault(node.name, {})
            for field, below in zip(node.body, node.body[1:]):
                if (
                    isinstance(field, ast.AnnAssign)
                    and isinstance(field.target, ast.Name)
                    and isinstance(below, ast.Expr)
                    and isinstance(below.value, ast.Constant)
                    and isinstance(below.value.value, str)
                ):
                    fields[field.target.id] = " ".join(inspect.cleandoc(below.value.value).split())
    return docs


def _toml(value) -> str:
    """A default as it is written in the TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _default(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(cls, prefix: str, module, docs: dict, used: set[str]) -> list[str]:
    hints = typing.get_type_hints(cls)
    rules, choices = module._RULES, module._CHOICES
    rows = ["| key | type | default | accepted | what it sets |", "| --- | --- | --- | --- | --- |"]
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp):
            continue
        key = prefix + field.name
        used.add(key)
        doc = docs.get(cls.__name__, {}).get(field.name)
        if not doc:
            log.warning(
                f"config reference: {key} ({cls.__name__}.{field.name} in {module.__name__}) has no docstring. "
                "Fix: write a string literal on the line below the field."
            )
            doc = ""
        if tp not in TYPE_NAMES:
            log.warning(f"config reference: {key} has type {tp!r}, which the reference cannot name. Fix: add it.")
        accepted = "any"
        if key in choices:
            accepted = " or ".join(f"`{_toml(c)}`" for c in choices[key])
        elif key in rules:
            accepted = rules[key][1]
        elif tp is bool:
            accepted = "`true` or `false`"
        cells = [f"`{field.name}`", TYPE_NAMES.get(tp, str(tp)), f"`{_toml(_default(field))}`", accepted, doc]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _defaults_toml(run, module) -> str:
    """Every key with its default, as a TOML file; checked to load back as the defaults."""
    lines, sections = [], []
    for field in dataclasses.fields(run):
        value = _default(field)
        if dataclasses.is_dataclass(value):
            sections += ["", f"[{field.name}]"]
            sections += [f"{f.name} = {_toml(getattr(value, f.name))}" for f in dataclasses.fields(value)]
        else:
            lines.append(f"{field.name} = {_toml(value)}")
    text = "\n".join(lines + sections)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "defaults.toml"
        path.write_text(text)
        if module.load_config(path) != run():
            log.warning("config reference: the generated defaults do not load back as RunConfig(). Fix: _toml.")
    return text


def reference() -> str:
    """The generated Markdown: one section per table of the TOML file."""
    module = _schema()
    docs = _field_docs(module)
    run = module.RunConfig
    hints = typing.get_type_hints(run)
    used: set[str] = set()
    out = ["## Top level", "", inspect.cleandoc(run.__doc__ or ""), ""]
    out += _table(run, "", module, docs, used)
    for field in dataclasses.fields(run):
        section = hints[field.name]
        if not dataclasses.is_dataclass(section):
            continue
        if not section.__doc__ or section.__doc__.startswith(section.__name__ + "("):
            log.warning(f"config reference: {section.__name__} (section [{field.name}]) has no docstring.")
        out += ["", f"## [{field.name}]", "", inspect.cleandoc(section.__doc__ or ""), ""]
        out += _table(section, field.name + ".", module, docs, used)
    for key in sorted(set(module._RULES) | set(module._CHOICES)):
        if key not in used:
            log.warning(f"config reference: {module.__name__} has a rule for {key}, which is no key of RunConfig.")
    defaults = _defaults_toml(run, module)
    out += ["", "## Every key with its default", "", "An empty file means this:", "", "```toml", defaults, "```"]
    return "\n".join(out) + "\n"


def on_page_markdown(markdown: str, *, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        log.warning(f"config reference: {PAGE} lacks the marker {MARKER} where the generated tables go.")
        return markdown
    return markdown.replace(MARKER, reference())
