"""``scripts/scale_model.py`` (its code in ``scripts/scale/``), the scale-model campaign,
in its ``--tiny`` form: the collectives part under ``mpirun -n 2`` (timed, fitted, cached), then validate, report
and tables on tiny outputs of the other parts; the rounds part and one sharing layout run tiny too.

The averager, compute, sharing, convergence and functional parts train models under ``mpirun``
(a minute or more each, even tiny); their tiny outputs are kept in
``tests/data/scale_model_tiny/`` (made by ``python scripts/scale_model.py --part P
--tiny`` and copied from ``runs/scale_model_tiny/``; remake them when a part's output
changes shape).
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "scale_model_tiny"
KEYS = {"ranks", "groups", "what", "measured", "predicted", "relative_error", "flagged"}


def _script(*args, out_dir):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", MPIR_CVAR_ENABLE_HEAVY_YIELD="1")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "scale_model.py"), *args, "--tiny", "--out-dir", str(out_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_collectives_validate_and_report_tiny(tmp_path):
    out = tmp_path / "cache"
    _script("--part", "collectives", out_dir=out)
    collectives = json.loads((out / "collectives.json").read_text())
    rows = collectives["rows"]
    assert {(r["op"], r["ranks"]) for r in rows} == {("Allreduce", 2), ("Iallreduce", 2)}
    assert len({r["nbytes"] for r in rows}) >= 2
    for r in rows:
        assert r["correct"] and r["count"] == len(r["seconds"]) >= 2, r
        assert 0 < r["min"] <= r["median"] <= r["max"] < 10, r
    for op, fit in collectives["fits"].items():
        best = fit["by_algorithm"][fit["best"]]
        # 2 ranks cannot tell the algorithms apart; every fit is a sane latency and bandwidth
        assert 0 <= best["alpha"] < 0.1 and best["beta"] > 0, (op, best)
        assert 1e5 < best["bandwidth_bytes_per_second"] < 1e13, (op, best)
        assert math.isfinite(best["relative_rms"]) and len(best["points"]) == len(rows) // 2, (op, best)
    assert collectives["settings"]["ranks"] == [2] and "mpirun -n 2" in collectives["commands"][0]
    # a part already done is read back, not redone
    assert "cached" in _script("--part", "collectives", out_dir=out)

    for part in ("averager", "compute", "sharing", "convergence", "functional"):
        shutil.copy(FIXTURES / f"{part}.json", out / f"{part}.json")
    _script("--part", "validate", out_dir=out)
    results, figure = tmp_path / "scale_model.json", tmp_path / "prediction.png"
    _script("--part", "report", "--results", str(results), "--figure", str(figure), out_dir=out)
    report = json.loads(results.read_text())
    # the compute of ranks that share the cores is the sharing part's measurement
    assert "R = [2]" in report["validation_summary"]["sharing"]

    validation = report["validation"]
    assert {"step_seconds", "staleness", "steps_to_target", "seconds_to_target", "averager_exchange_seconds"} <= {
        e["what"] for e in validation
    }
    for e in validation:
        assert KEYS <= set(e) and 1 <= e["ranks"] <= 16, e
        assert e["measured"] > 0 and e["predicted"] > 0 and math.isfinite(e["relative_error"]), e
        assert e["flagged"] == (abs(e["relative_error"]) > 0.25), e
        assert not e["flagged"] or e["reason"], e
    for run in report["functional_runs"]:
        assert {"ranks", "groups", "finished", "seconds", "resident_mib_per_rank", "averages_completed"} <= set(run)
        assert run["finished"] and run["seconds"] > 0 and all(m > 50 for m in run["resident_mib_per_rank"]), run
    assert {run["mode"] for run in report["failure_runs"]} == {"kill", "raise"}
    for run in report["failure_runs"]:
        assert run["bounded"] and run["all_ranks_exited_with_error"] and run["seconds_from_failure_to_exit"] > 0
    assert report["compute"]["runs"] and report["convergence"]["steps_to_target_fit"]["single_group_steps"] > 0
    assert {"machine", "date", "command", "collectives", "averager"} <= set(report)
    networks = report["predictions"]["networks"]
    assert "this_machine" in networks and "infiniband_hdr" in networks
    for prediction in networks.values():
        for point in prediction["points"]:
            for layout in ("synchronous", "asynchronous"):
                assert point[layout]["seconds"] > 0 and 0 < point[layout]["parallel_efficiency"] <= 1.5, point
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the page's tables come from the report: a row per functional run and per convergence layout
    _script("--part", "tables", "--results", str(results), out_dir=out)
    tables = (out / "tables.md").read_text()
    sections = dict(part.split("\n", 1) for part in tables.split("\n### ")[1:])
    assert set(sections) == {"collectives", "compute", "sharing", "averager", "convergence", "functional"} | {
        "validation",
        "predictions",
    }

    def rows(section):  # the tables' body rows (not their header and separator lines)
        lines = sections[section].splitlines()
        return [
            line
            for line, after in zip(lines, [*lines[1:], ""], strict=True)
            if line.startswith("| ") and "---:" not in line and "---:" not in after
        ]

    assert len(rows("functional")) == len(report["functional_runs"])
    layouts = {(r["groups"], r["every"]) for r in report["convergence"]["rows"]}
    assert len(rows("convergence")) == len(layouts)
    within = report["validation_summary"]["within"]
    assert f"{within} of {len(validation)} points within 25 %" in sections["validation"]
    assert len(rows("predictions")) == sum(len({p["nodes"] for p in n["points"]}) for n in networks.values())

    # a fresh cache validated against the report's runs: convergence and functional rebuilt
    # from it, the quick parts as measured; the same validation comes out
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for part in ("collectives", "averager", "compute", "sharing"):
        shutil.copy(out / f"{part}.json", fresh / f"{part}.json")
    assert "restored from" in _script("--part", "validate", "--from-report", str(results), out_dir=fresh)
    assert (
        json.loads((fresh / "validate.json").read_text())["entries"]
        == json.loads((out / "validate.json").read_text())["entries"]
    )
    restored = json.loads((fresh / "convergence.json").read_text())
    assert restored["rows"] == report["convergence"]["rows"] and restored["restored_from"] == str(results)
    # a cache that is there is kept
    assert "nothing (caches present)" in _script("--part", "validate", "--from-report", str(results), out_dir=fresh)


def test_oversubscribed_layouts_take_the_measured_shared_compute():
    """Ranks that oversubscribe the cores: the sharing part's synchronised groups where
    measured, else its independent ranks, else the sharing factor."""
    from scripts.scale.validate import CampaignModel

    load = {p: json.loads((FIXTURES / f"{p}.json").read_text()) for p in ("compute", "averager")}
    collectives = {
        "fits": {
            op: {"best": "ring", "by_algorithm": {"ring": {"alpha": 1e-4, "beta": 1e-9, "algorithm": "ring"}}}
            for op in ("Allreduce", "Iallreduce")
        }
    }
    samples, synchronised = [0.05, 0.06, 0.07, 0.3], [0.05, 0.05, 0.2]
    sharing = {
        "runs": [
            {"ranks": 64, "batch": 1, "samples": samples},
            {"ranks": 64, "ranks_per_group": 8, "batch": 1, "samples": synchronised},
        ]
    }
    model = CampaignModel(collectives, load["compute"], load["averager"], sharing)
    shared, how, per = model.shared_compute(64, 1, averaging=False)
    assert (how, per) == ("measured", "rank") and math.isclose(shared.mean(), np.mean(samples), rel_tol=1e-9)
    with_guard, _, _ = model.shared_compute(64, 1, averaging=True)
    assert math.isclose(with_guard.mean(), np.mean(samples) + model.guard, rel_tol=1e-9)
    # groups of 8 among 64: the group's synchronised compute, one draw per group and step
    group, how, per = model.shared_compute(64, 1, averaging=False, ranks_per_group=8)
    assert (how, per) == ("measured_group", "group") and math.isclose(group.mean(), np.mean(synchronised))
    sim, _, reasons = model.simulate(8, 8, 400, 1)
    assert sim.wall_seconds / 400 > np.mean(synchronised) and "barrier after every step" in reasons[0]
    # one draw per group and step (mean 0.1 s), not the slowest of 8 draws of it (about 0.19 s), nor of one
    # rank's independent compute (about 0.28 s)
    assert sim.wall_seconds / 400 < 0.15
    # groups of a size that was not measured: one rank's measured compute, the slowest of the group
    assert model.shared_compute(64, 1, averaging=False, ranks_per_group=4)[1:] == ("measured", "rank")
    assert model.compute_source(2, 1, 2) == "factor"  # the cores are not oversubscribed
    # a rank count or batch that was not measured: the compute alone times the sharing factor
    alone, _ = model.compute_at(1, averaging=False)
    scaled, how, _ = model.shared_compute(32, 1, averaging=False)
    assert how == "factor" and math.isclose(scaled.mean(), alone.mean() * model.sharing(32), rel_tol=1e-6)
    assert model.shared_compute(64, 2, averaging=False)[1] == "factor"


def test_a_measured_group_step_is_not_charged_the_allreduce_again():
    """Where the sharing part measured groups running the synchronous training step
    itself (``group_collective = "in_step"``), that is the whole synchronous step:
    preferred to the barrier measurement, and simulated with no group allreduce added."""
    from scripts.scale.validate import CampaignModel

    load = {p: json.loads((FIXTURES / f"{p}.json").read_text()) for p in ("compute", "averager")}
    collectives = {
        "fits": {
            op: {"best": "ring", "by_algorithm": {"ring": {"alpha": 1e-2, "beta": 1e-9, "algorithm": "ring"}}}
            for op in ("Allreduce", "Iallreduce")
        }
    }
    barrier, allreduce = [0.05, 0.05, 0.06], [0.08, 0.09, 0.1]
    sharing = {
        "runs": [
            {"ranks": 64, "ranks_per_group": 8, "batch": 1, "samples": barrier},
            {"ranks": 64, "ranks_per_group": 8, "batch": 1, "samples": allreduce, "group_collective": "in_step"},
            {"ranks": 64, "ranks_per_group": 4, "batch": 1, "samples": barrier, "group_collective": "barrier"},
        ]
    }
    model = CampaignModel(collectives, load["compute"], load["averager"], sharing)
    step, how, per = model.shared_compute(64, 1, averaging=False, ranks_per_group=8)
    assert (how, per) == ("measured_group_step", "group") and math.isclose(step.mean(), np.mean(allreduce))
    assert model.compute_source(64, 1, 4) == "measured_group"  # only the barrier was measured there
    sim, _, reasons = model.simulate(8, 8, 400, 1)
    # the measured step alone: the fitted allreduce (alpha 10 ms x 14 latency terms of a ring of 8) not added
    assert math.isclose(sim.wall_seconds / 400, np.mean(allreduce), rel_tol=0.1), sim.wall_seconds / 400
    assert "running the training step itself" in reasons[0]
    barrier_sim, _, _ = model.simulate(16, 4, 400, 1)
    assert barrier_sim.wall_seconds / 400 > np.mean(barrier) + 0.1  # there the fitted allreduce is added
    assert model.group_network("measured_group") is model.network
    assert model.group_network("measured_group_step").alpha == 0.0


def test_validation_refuses_parts_timed_on_different_processors():
    """A VM can land on other hardware between sessions: timings of two processors are
    never combined (records from before the processor was kept pass, unknown)."""
    from scripts.scale.common import _machine, machines_of

    here = _machine()["cpu_model"]
    assert here
    parts = {"compute": {"machine": {"cpu_model": "A"}}, "convergence": {"machine": {}}, "sharing": None}
    assert machines_of(parts) == {"compute": "A", "convergence": None}
    with pytest.raises(SystemExit, match="different processors"):
        machines_of({**parts, "collectives": {"machine": {"cpu_model": "B"}}})


def test_sharing_times_a_group_running_the_synchronous_training_step(tmp_path):
    """``--part sharing`` with ``grouped_in_step``: a group of 2 ranks runs the task's
    synchronous train step itself (mpi4jax allreduces inside), one sample per step of
    the group's leader, recorded as ``group_collective = "in_step"``."""
    sets = ["sharing.ranks=[]", "sharing.grouped=[]", "sharing.grouped_in_step=[[2,2]]"]
    _script("--part", "sharing", *[f"--set={s}" for s in sets], out_dir=tmp_path)
    (run,) = json.loads((tmp_path / "sharing.json").read_text())["runs"]
    assert (run["ranks"], run["ranks_per_group"], run["group_collective"]) == (2, 2, "in_step"), run
    assert run["steps_in_overlap_per_rank"] == [len(run["samples"])] and len(run["samples"]) >= 20, run
    assert 0 < run["median"] < 1, run


def test_round_times_split_a_round_at_the_last_leaders_start():
    """The n-th starts of all leaders are one collective: the time a leader waits for
    the last start is the groups' skew (which the simulation produces itself), the rest
    is what the model charges to the network."""
    from scripts.scale.measure import _round_times

    a = {"rounds": {"starts": [0.0, 10.0], "seconds": [5.0, 3.0]}}
    b = {"rounds": {"starts": [2.0, 11.0, 20.0], "seconds": [3.5, 2.5]}}  # its third start abandoned at finish
    times = _round_times([a, b])
    assert times["round_seconds_median"] == np.median([5.0, 3.0, 3.5, 2.5])
    # round 0: last start 2, seen complete at 5 and 5.5; round 1: last start 11, seen at 13 and 13.5
    assert times["round_after_last_start_median"] == np.median([3.0, 3.5, 2.0, 2.5])
    assert _round_times([{"rounds": None}]) == {"round_seconds_median": None, "round_after_last_start_median": None}


def test_oversubscribed_layouts_take_the_measured_rounds():
    """Where the rounds part measured a layout that oversubscribes the cores, the
    cross-group average takes its measured time after the last start, in place of the
    Iallreduce fit, and the staleness follows from it; elsewhere the fit stays."""
    from scripts.scale.validate import CampaignModel

    load = {p: json.loads((FIXTURES / f"{p}.json").read_text()) for p in ("compute", "averager")}
    collectives = {
        "fits": {
            op: {"best": "ring", "by_algorithm": {"ring": {"alpha": 1e-5, "beta": 1e-10, "algorithm": "ring"}}}
            for op in ("Allreduce", "Iallreduce")
        }
    }
    sharing = {"runs": [{"ranks": 64, "batch": 1, "samples": [0.01, 0.011, 0.012]}]}
    rounds = {
        "runs": [{"ranks": 64, "groups": 64, "round_after_last_start_median": 0.2, "startup_excess_seconds": 1.5}]
    }
    averaging = dict(every=2, max_staleness=4, wait_free=True)
    fitted = CampaignModel(collectives, load["compute"], load["averager"], sharing)
    measured = CampaignModel(collectives, load["compute"], load["averager"], sharing, rounds)
    network, how = measured.cross_network(64, 64)
    assert how == "measured_rounds" and network.allreduce_seconds(5968, 64) == 0.2
    assert measured.cross_network(64, 32) == (measured.cross, "fit")  # not measured
    assert measured.cross_network(2, 2) == (measured.cross, "fit")  # not oversubscribed
    # the first steps' one-off seconds: added to time to target where measured
    assert measured.startup_seconds(64, 64) == 1.5
    assert measured.startup_seconds(64, 32) == measured.startup_seconds(2, 2) == fitted.startup_seconds(64, 64) == 0
    slow, _, reasons = measured.simulate(64, 1, 400, 1, averaging)
    fast, _, _ = fitted.simulate(64, 1, 400, 1, averaging)
    # a 200 ms round is about 18 steps of ~11 ms: every average arrives too stale (> 4) and is discarded
    assert slow.summary()["staleness_mean"] > 10 > fast.summary()["staleness_mean"], (slow.summary(), fast.summary())
    assert any("--part rounds" in r for r in reasons)
    replay, _, _ = fitted.simulate(64, 1, 400, 1, averaging, round_seconds=0.2)
    assert replay.summary()["staleness_mean"] == slow.summary()["staleness_mean"]


def test_rounds_part_times_the_cross_group_rounds(tmp_path):
    """``--part rounds`` (tiny: 2 ranks, 2 groups, an average every 2 steps, 40 steps):
    the convergence worker without evaluations; each leader's rounds timed (how many
    resolve before the run ends depends on the machine's load: at least one)."""
    _script("--part", "rounds", out_dir=tmp_path)
    (run,) = json.loads((tmp_path / "rounds.json").read_text())["runs"]
    assert (run["ranks"], run["groups"], run["every"]) == (2, 2, 2), run
    assert len(run["rounds_per_leader"]) == 2 and max(run["rounds_per_leader"]) >= 1, run
    assert 0 < run["round_after_last_start_median"] <= run["round_seconds_median"] + 1e-3 < 60, run
    assert math.isfinite(run["startup_excess_seconds"]), run
