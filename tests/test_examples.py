"""The examples run as a user runs them (a fresh process; the split-domain one under
``mpirun -n 2``) at their tiny size, and achieve what they claim: the inversion cuts
the conductivity error, the trained correction beats the plain coarse solver on
held-out trajectories, and the split run equals the single-process run."""

import os
import re
import subprocess
import sys

from tests._mpirun import MPIRUN, ROOT, TEST_XLA_FLAGS


def _example(name: str, *args: str, ranks: int | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "XLA_FLAGS": TEST_XLA_FLAGS}
    command = [sys.executable, str(ROOT / "examples" / f"{name}.py"), *args]
    if ranks:
        assert MPIRUN.exists(), f"no mpirun beside {sys.executable}: the set-up installs the pip mpich wheel"
        command = [str(MPIRUN), "-n", str(ranks), *command]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    print(result.stdout)
    return result.stdout


def _figures(pattern: str, text: str) -> tuple[float, ...]:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return tuple(float(g) for g in match.groups())


def test_heat_inversion_cuts_the_conductivity_error():
    out = _example("heat_inversion", "--tiny")
    before, after = _figures(r"before ([\d.]+), after ([\d.]+)", out)
    assert after < before / 4, f"conductivity error {before:.4f} -> {after:.4f}: less than a 4x cut (measured 6.7x)"


def test_burgers_correction_beats_the_plain_coarse_solver_on_held_out_data():
    out = _example("burgers_correction", "--tiny")
    plain, corrected = _figures(r"plain ([\d.]+), corrected ([\d.]+)", out)
    assert corrected < plain / 1.5, f"held-out horizon error: plain {plain:.4f}, corrected {corrected:.4f} (want 1.5x)"


def test_split_domain_matches_the_single_process_run():
    out = _example("split_domain", "--tiny", ranks=2)
    assert "over 2 rank(s) as 2 x 1 blocks of 8 x 16" in out, out
    split, single = _figures(r"heat content at t = [\d.]+: ([\d.]+) \(split\), ([\d.]+) \(one process\)", out)
    (difference,) = _figures(r"max \|T_split - T_single\| = ([\d.e+-]+)", out)
    assert difference <= 1e-12, f"the split and the single-process temperatures differ by {difference:.2e}"
    assert abs(split - single) <= 1e-6, f"heat content {split} (split) vs {single} (one process)"
