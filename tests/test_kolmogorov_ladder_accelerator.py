"""``scripts/kolmogorov_ladder_accelerator.py``: the recipe its command line sets reaches
every worker's training unchanged, bad input is refused before any work, and its smoke
check trains and restores a toy run on this machine."""

import importlib.util
from pathlib import Path

import pytest

from problems import kolmogorov_ladder as ladder

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location(
        "kl_accelerator", ROOT / "scripts" / "kolmogorov_ladder_accelerator.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_a_workers_command_line_carries_the_whole_recipe(tmp_path):
    """Each option of the recipe (the defaults, and every one changed) arrives in the
    worker's ``ladder.train`` settings exactly as the call's own."""
    script = _script()
    defaults = script.parse(["--out", str(tmp_path)])
    recipe = [
        *("--out", str(tmp_path), "--window", "8", "--batch-size", "6", "--learning-rate", "0.003"),
        *("--multiple", "2", "--hold", "2", "--head", "1", "--augment", "--seed", "2", "--stencil", "6"),
        *("--base", "central", "--loss-on", "vorticity", "--spectrum-weight", "0.5", "--separable"),
        *("--unchecked", "--tiny", "--tag", "r2", "--init-from", "base", "--published", str(tmp_path / "shelf")),
    ]
    for argv in (["--out", str(tmp_path)], recipe):
        args = script.parse(argv)
        line = script.worker_line(args, "interpolation_velocity:8:2", deadline=1000.0)
        assert line[2:4] == ["--worker", "interpolation_velocity:8:2"]
        worker = script.parse(line[2:])
        assert worker.worker == "interpolation_velocity:8:2" and worker.deadline == pytest.approx(980.0)
        assert worker.tag == args.tag and worker.out == args.out
        assert script.train_settings(worker) == script.train_settings(args)
        assert worker.init_from == args.init_from and worker.published == args.published
    settings = script.train_settings(script.parse(recipe))
    assert settings == dict(
        window=4,  # --tiny's toy sizes
        batch_size=2,
        validation_steps=20,
        learning_rate=0.003,
        check_stability=False,
        multiple=2,
        hold=2,
        head=1,
        augment=True,
        seed=2,
        stencil=6,
        base="central",
        loss_on="vorticity",
        spectrum_weight=0.5,
        separable=True,
    )
    plain = script.train_settings(defaults)
    assert plain["base"] == "van_leer" and plain["stencil"] == ladder.STENCIL and plain["loss_on"] == "velocity"
    assert plain["seed"] == 0 and plain["check_stability"] and not plain["augment"] and plain["spectrum_weight"] == 0
    assert plain["separable"] is False
    assert defaults.init_from is None and defaults.published == Path("benchmarks/models")


def test_bad_input_is_refused_before_any_work(tmp_path, capsys):
    """An unreadable option, an unknown kind, or a recipe that a model cannot take (a
    base for a kind without learned stencils) stops the call before any data or report."""
    script = _script()
    with pytest.raises(SystemExit):
        script.parse(["--extra-seeds", "-1"])
    assert "--extra-seeds -1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.parse(["--spectrum-weight", "-0.5"])
    assert "--spectrum-weight: spectrum_weight must be a finite number >= 0, got -0.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.parse(["--base", "weno"])
    assert "invalid choice: 'weno'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"--models: 'interp:8:2' is not KIND:HIDDEN:DEPTH"):
        script.main(["--models", "interp:8:2", "--out", str(tmp_path), "--report", str(tmp_path / "r.json")])
    assert not (tmp_path / "r.json").exists()
    argv = ["--models", "interpolation:8:2", "correction:8:2", "--base", "central", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"--models correction:8:2: base='central' is the scheme a learned interp"):
        script.main([*argv, "--report", str(tmp_path / "r.json")])
    assert not (tmp_path / "r.json").exists()


def test_the_smoke_check_trains_and_restores_a_toy_run(tmp_path, capsys):
    script = _script()
    assert script.main(["--smoke", str(tmp_path)]) == 0
    assert "trained 2 steps, restored equal: True" in capsys.readouterr().out


def test_a_fine_tune_needs_its_run_to_start_from_before_any_work(tmp_path, monkeypatch):
    """``--init-from``: a run that neither ``--out`` nor ``--published`` holds, a network
    of another shape, or the tag being trained is refused before any data or report;
    a published run of the same shape passes the check."""
    script = _script()
    out, shelf, report = tmp_path / "out", tmp_path / "shelf", tmp_path / "r.json"
    argv = ["--models", "correction:4:2", "--out", str(out), "--report", str(report), "--published", str(shelf)]
    with pytest.raises(SystemExit, match=r"--models correction:4:2: init_from='base': No trained correction"):
        script.main([*argv, "--init-from", "base"])
    with pytest.raises(SystemExit, match=r"--init-from 'accel' is the tag of the runs trained here. Fix: a new"):
        script.main([*argv, "--init-from", "accel"])

    assert script.main(["--smoke", str(shelf)]) == 0  # a trained correction:4:2 run, untagged, head 3
    refused = r"init_from='': its network's weights have shapes .* Fix: the same --head, --forcing-inputs, --stencil"
    with pytest.raises(SystemExit, match=refused):
        script.main([*argv, "--init-from", "", "--head", "1"])
    assert not report.exists() and not out.exists()

    def data(*args):  # the first work after the checks
        raise RuntimeError("checks passed")

    monkeypatch.setattr(script, "_data", data)
    with pytest.raises(RuntimeError, match="checks passed"):
        script.main([*argv, "--init-from", ""])
