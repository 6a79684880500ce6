"""The documentation: the site builds with warnings as errors, and its examples run.

The site (mkdocs.yml, docs/) renders the API from the docstrings and the configuration
reference from the code, so a renamed name, a broken link or an undocumented config key
shows up here. The README's Python example and the concept pages' examples are run as
a user would paste them: in a fresh process, in float32.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._mpirun import TEST_XLA_FLAGS

ROOT = Path(__file__).resolve().parents[1]
README_LINES = 150  # the README is a door, not the house: the rest lives in docs/
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=TEST_XLA_FLAGS, PYTHONPATH=str(ROOT))
    env["NO_MKDOCS_2_WARNING"] = "1"  # mkdocs-material's banner about MkDocs 2.0, printed on every build
    return env


def _python_blocks(path: Path) -> list[str]:
    return PYTHON_BLOCK.findall(path.read_text())


def test_site_builds_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=600,
    )
    warnings = [line for line in result.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert result.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(warnings or [result.stderr[-4000:]])
    assert (tmp_path / "site" / "config" / "index.html").is_file()


def test_readme_is_short_and_its_example_is_the_getting_started_one():
    readme = ROOT / "README.md"
    lines = len(readme.read_text().splitlines())
    assert lines <= README_LINES, f"README.md has {lines} lines (at most {README_LINES}): move the rest into docs/."
    example = _python_blocks(readme)[0]
    assert example in _python_blocks(ROOT / "docs" / "getting-started.md"), (
        "docs/getting-started.md must show the README's first Python example verbatim (it says so)."
    )


# Runs the examples given on the command line (JSON: [[name, code], ...]) in one fresh
# process, in order, each in a fresh namespace: a line "#### example: name" before each one's
# output, "ran name" after it, or its traceback on stderr (the others still run).
_RUN_EXAMPLES = """
import json, sys, traceback
failed = False
for name, code in json.loads(sys.argv[1]):
    print("#### example:", name, flush=True)
    try:
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
    except Exception:
        failed = True
        print(f"{name}:\\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        continue
    print("ran", name, flush=True)
sys.exit(1 if failed else 0)
"""


def _concept_pages() -> list[Path]:
    return sorted(p for p in (ROOT / "docs" / "concepts").glob("*.md") if _python_blocks(p))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """The README's first ```python block, then each concept page's blocks, run as a
    user would paste them: in a fresh process (one for all of them: the README's block
    first, so it runs in a process of its own), float32. Returns the result and each
    example's output by name."""
    readme = _python_blocks(ROOT / "README.md")[0]
    pages = [(str(p), "\n".join(_python_blocks(p))) for p in _concept_pages()]
    command = [sys.executable, "-c", _RUN_EXAMPLES, json.dumps([("README.md", readme), *pages])]
    cwd = tmp_path_factory.mktemp("examples")
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=_env(), timeout=900)
    outputs = {}
    for section in result.stdout.split("#### example: ")[1:]:
        name, _, text = section.partition("\n")
        outputs[name] = text
    return result, outputs


def test_readme_example_runs(examples):
    """The README's first ```python block, run as pasted (float32, a fresh process)."""
    result, outputs = examples
    out = outputs.get("README.md", "")
    assert "ran README.md" in out, f"README example failed:\n{result.stderr[-4000:]}"
    assert "plain solver" in out and "hybrid" in out, out


def test_concept_examples_run(examples):
    pages = [str(p) for p in _concept_pages()]
    assert len(pages) >= 6, pages
    result, outputs = examples
    failed = [page for page in pages if f"ran {page}" not in outputs.get(page, "")]
    assert not failed, f"a concept page's example failed ({failed}):\n{result.stderr[-4000:]}"
