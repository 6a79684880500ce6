"""The documentation: the site builds with warnings as errors, and its examples run.

The site (mkdocs.yml, docs/) renders the API from the docstrings and the configuration
reference from the code, so a renamed name, a broken link or an undocumented config key
shows up here. The README's Python example and the concept pages' examples are run as
a user would paste them: in a fresh process, in float32.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

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


def test_readme_example_runs(tmp_path):
    """The README's first ```python block, run as pasted (float32, a fresh process)."""
    example = _python_blocks(ROOT / "README.md")[0]
    result = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=600
    )
    assert result.returncode == 0, f"README example failed:\n{result.stderr[-4000:]}"
    assert "plain solver" in result.stdout and "hybrid" in result.stdout, result.stdout


# Runs the Python blocks of each page given on the command line, each page in a fresh
# namespace, the blocks of one page in order; a failure names the page.
_RUN_PAGES = """
import re, sys, traceback
from pathlib import Path
for page in sys.argv[1:]:
    code = "\\n".join(re.findall(r"^```python\\n(.*?)^```", Path(page).read_text(), re.DOTALL | re.MULTILINE))
    try:
        exec(compile(code, page, "exec"), {"__name__": "__main__"})
    except Exception:
        sys.exit(f"{page}:\\n{traceback.format_exc()}")
    print("ran", page, flush=True)
"""


def test_concept_examples_run(tmp_path):
    pages = sorted(str(p) for p in (ROOT / "docs" / "concepts").glob("*.md") if _python_blocks(p))
    assert len(pages) >= 6, pages
    command = [sys.executable, "-c", _RUN_PAGES, *pages]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=600)
    assert result.returncode == 0, f"a concept page's example failed:\n{result.stderr[-4000:]}"
    assert result.stdout.count("ran ") == len(pages), result.stdout
