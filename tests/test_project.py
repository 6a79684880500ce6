"""Project-level checks: layering, lint, the console command, import without MPI."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._inprocess import exit_status

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["nnpde", "solvers", "problems", "scripts", "examples"]  # each may import only those before it


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_layering(layer):
    """nnpde <- solvers <- problems <- scripts, examples: no layer imports one above it."""
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & above)
        for path in (ROOT / layer).rglob("*.py")
        if _imports(path) & above
    }
    assert not offenders, f"{layer} imports layers above it: {offenders}"


# Inside nnpde: each subpackage may import only the shared base modules and the
# subpackages before it. The flat re-exports (nnpde/__init__.py, __main__.py) see all.
SUBLAYERS = ["numerics", "hybrid", "distributed", "runs"]
BASE = {"_checks", "_custom_types", "_version"}


def _nnpde_imports(path: Path, source: str | None = None) -> set[str]:
    """The first name below ``nnpde`` of every nnpde module that ``path`` (or ``source``,
    read as if it were at ``path``) imports."""
    module = path.relative_to(ROOT).with_suffix("").parts
    package = module if module[-1] == "__init__" else module[:-1]
    package = tuple(p for p in package if p != "__init__")
    names = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "nnpde":
                target = node.module.split(".")
            else:
                continue
            if len(target) == 1:  # from nnpde import x / from . import x (at top level)
                names.update(alias.name for alias in node.names)
            else:
                names.add(target[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "nnpde":
                    names.add(parts[1] if len(parts) > 1 else "nnpde (the whole package)")
    return names


@pytest.mark.parametrize("sublayer", SUBLAYERS)
def test_layering_inside_nnpde(sublayer):
    """numerics <- hybrid <- distributed <- runs: a subpackage imports only the shared base
    (_checks, _custom_types) and the subpackages before it; never the flat package."""
    allowed = BASE | set(SUBLAYERS[: SUBLAYERS.index(sublayer) + 1])
    offenders = {
        str(path.relative_to(ROOT)): sorted(_nnpde_imports(path) - allowed)
        for path in (ROOT / "nnpde" / sublayer).rglob("*.py")
        if _nnpde_imports(path) - allowed
    }
    assert not offenders, f"nnpde/{sublayer} imports layers above it: {offenders}"
    for name in BASE:
        assert not _nnpde_imports(ROOT / "nnpde" / f"{name}.py"), f"nnpde/{name}.py must import no nnpde module"


def test_layering_test_sees_a_violation():
    """The checker above is not vacuous: a numerics module importing upwards is caught."""
    path = ROOT / "nnpde" / "numerics" / "_probe.py"
    source = "from ..hybrid import metrics\nfrom .. import fit\nimport nnpde.runs._fit\nfrom ._grid import Grid\n"
    assert _nnpde_imports(path, source) == {"hybrid", "fit", "runs", "numerics"}


# Scripts, benchmarks and examples are written as a user writes them: public names only.
LAUNCHERS = ["scripts", "benchmarks", "examples"]
IMPLEMENTATION = {"numerics", "hybrid", "runs"}  # nnpde's subpackages behind the flat re-exports


def _private_nnpde_imports(path: Path, source: str | None = None) -> list[str]:
    """Every nnpde module or name that ``path`` (or ``source``) imports which is not public:
    a dotted component starting with ``_``, or one of the implementation subpackages."""
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, filename=str(path))):
        if isinstance(node, ast.Import):
            dotted = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            dotted = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in dotted:
            parts = name.split(".")
            if parts[0] == "nnpde" and (
                any(p.startswith("_") for p in parts[1:]) or (len(parts) > 1 and parts[1] in IMPLEMENTATION)
            ):
                found.append(name)
    return found


def test_launchers_import_public_names_only():
    """No file under scripts/, benchmarks/ or examples/ imports a private nnpde module."""
    probe = (
        "import nnpde\nfrom nnpde import fit, networks\nfrom nnpde.distributed import Decomposition\n"
        "from nnpde.runs._run import load_task\nimport nnpde.numerics\nfrom nnpde import hybrid\n"
        "from nnpde.distributed._async import AsyncAverager\nfrom nnpde import _checks\n"
    )
    assert _private_nnpde_imports(ROOT / "scripts" / "probe.py", probe) == [
        "nnpde.runs._run.load_task",
        "nnpde.numerics",
        "nnpde.hybrid",
        "nnpde.distributed._async.AsyncAverager",
        "nnpde._checks",
    ], "the checker misses a private import"
    offenders = {
        str(path.relative_to(ROOT)): _private_nnpde_imports(path)
        for folder in LAUNCHERS
        for path in sorted((ROOT / folder).rglob("*.py"))
        if _private_nnpde_imports(path)
    }
    assert not offenders, f"private nnpde imports (Fix: re-export the name in nnpde/__init__.py): {offenders}"


def test_ruff_passes():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_without_mpi():
    """nnpde, solvers and problems import (and a step runs) where mpi4py/mpi4jax are absent."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('mpi4py', 'mpi4jax'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import nnpde, solvers, problems.heat_board\n"
        "eq = problems.heat_board.equation(16)\n"
        "nnpde.ThetaMethod(eq, dt=1.0)(eq.forcing(0.0) * 0)\n"
        "assert 'mpi4py' not in sys.modules and 'mpi4jax' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def _nnpde(*args, cwd):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "nnpde", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_simulate_command_writes_results(tmp_path):
    result = _nnpde(
        "simulate", "--out", str(tmp_path), "--no-progress", "--set", "resolution=24", "--set", "hours=0.25", cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 30
    assert summary["final"]["temperature"]["max"] > 0.1  # the chips heat the board

    import xarray as xr

    with xr.open_dataset(tmp_path / "heat_board.nc") as data:
        assert data.temperature.shape == (3, 24, 24)
        assert data.temperature.attrs["units"] == "K above ambient"
        assert float(data.temperature.isel(time=-1).max()) == pytest.approx(summary["final"]["temperature"]["max"])
    assert (tmp_path / "heat_board.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


@pytest.mark.parametrize(
    "args, words",
    [
        (["simulate", "--problem", "no_such_module"], ["no_such_module", "Fix"]),
        (["simulate", "--problem", "problems.hybrid_burgers"], ["hybrid_burgers has no simulation", "task", "Fix"]),
        (["simulate", "--set", "resolution"], ["key=value"]),
        (["simulate", "--set", "colour=3"], ["unknown option", "colour", "resolution"]),
        (["simulate", "--set", "resolution=1"], ["too few", "refine"]),
    ],
)
def test_simulate_command_refuses_bad_input(args, words, capsys, monkeypatch):
    # ``python -m nnpde`` (``raise SystemExit(main())``) run in this process: each
    # refusal comes before any work, so a fresh interpreter would only import the same
    # modules again (the command itself runs in a fresh process above)
    from nnpde.runs._cli import main

    monkeypatch.chdir(ROOT)
    returncode = exit_status(main, args)
    stderr = capsys.readouterr().err
    assert returncode != 0
    for word in words:
        assert word in stderr, stderr[-2000:]


@pytest.mark.parametrize(
    ("shadow", "args"),
    [
        ("problems/", ["simulate", "--problem", "problems.heat_board"]),
        ("problems/", ["generate", str(ROOT / "scripts/configs/burgers.toml"), "--set", 'data.cache_dir="data"']),
        ("problems/", ["validate", "--out", "validation"]),
        ("solvers.py", ["simulate", "--problem", "problems.heat_board"]),
    ],
)
def test_a_users_problems_or_solvers_module_that_shadows_ours_is_refused(tmp_path, shadow, args):
    """A ``problems/`` or ``solvers.py`` of the user's own in the working directory comes
    first on ``sys.path`` and shadows ours: the command refuses before any work, naming
    both locations and the fix, whether the user's package lacks the module (``not
    found`` would mislead) or has one of the same name (it would run instead of ours)."""
    name = shadow.rstrip("/").removesuffix(".py")
    if shadow.endswith("/"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text('"""A package of the user\'s own."""\n')
        (tmp_path / name / "heat_board.py").write_text(
            "def simulation(**options):\n    raise SystemExit('the user module ran')\n"
        )
        found = tmp_path / name
    else:
        (tmp_path / shadow).write_text('"""A module of the user\'s own."""\n')
        found = tmp_path / shadow
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))  # nnpde from this checkout
    result = subprocess.run(
        [sys.executable, "-m", "nnpde", *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert result.returncode == 2, result.stdout + result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    for words in (str(found.resolve()), str((ROOT / name).resolve()), "shadows it", "Fix: rename your module"):
        assert words in message, result.stderr[-3000:]
    assert "the user module ran" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([shadow.rstrip("/")]), "work was started"


def test_shape_annotations_are_checked_while_tests_run():
    """A step that returns another shape than it was given is caught by the jaxtyping
    annotation ``(u: State) -> State`` (the hook that pytest installs)."""
    import jax.numpy as jnp
    import jaxtyping

    import nnpde

    class Broadcasting(nnpde.AbstractEquation):
        grid: nnpde.Grid = nnpde.Grid((8,))

        def __call__(self, t, u, args=None):
            return -u[None]  # a stray axis: (1, 1, 8) instead of (1, 8)

        @property
        def state_shape(self):
            return (1, 8)

        def spectral_radius(self, t, u):
            return 1.0

    stepper = nnpde.ExplicitRK(Broadcasting(), dt=0.1, method="forward_euler")
    with pytest.raises(jaxtyping.TypeCheckError, match="return"):
        stepper(jnp.ones((1, 8)))
