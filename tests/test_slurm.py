"""``scripts/slurm/train.sbatch`` as far as one machine can test it: no Slurm here.

The job script runs as Slurm would run it (a batch shell with the allocation's
``SLURM_*`` variables), with stand-ins for ``srun`` and ``scontrol``
(``tests/_slurm_standin/``): ``srun`` becomes the pip wheel's ``mpirun`` with the
variables srun gives each task, ``scontrol`` names this machine and records a requeue.
Two ranks of the tiny Burgers task of the CLI tests, in one group. What stays untested:
a real ``srun`` and its PMI, several nodes, Open MPI's ``mpirun``, a shared file system
other than the local disk, GPUs.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from tests._mpirun import TEST_XLA_FLAGS
from tests.test_cli import TINY

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm" / "train.sbatch"
STANDIN = ROOT / "tests" / "_slurm_standin"
TRAIN = [x for pair in TINY for x in ("--set", pair)] + ["--no-evaluate"]


class Cluster:
    """A shared directory (runs, staged data, compilation cache: one for the module, so
    that only the first job compiles and stages) and the job script run in it."""

    def __init__(self, shared: Path):
        self.shared = shared
        self.standin_log = shared / "standin.log"

    def env(self, run: str, *, job: int, attempt: int = 0, launcher: str = "srun") -> dict:
        env = {
            **os.environ,
            "PATH": os.pathsep.join([str(STANDIN), str(Path(sys.executable).parent), os.environ["PATH"]]),
            "PYTHONPATH": str(ROOT),
            "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": TEST_XLA_FLAGS,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2",
            # what sbatch gives a job of 2 tasks on one node
            "SLURM_JOB_ID": str(job),
            "SLURM_JOB_NAME": "nnpde-train",
            "SLURM_NTASKS": "2",
            "SLURM_JOB_NUM_NODES": "1",
            "SLURM_NTASKS_PER_NODE": "2",
            "SLURM_JOB_NODELIST": "localhost",
            "SLURM_SUBMIT_DIR": str(ROOT),
            "SLURM_PROCID": "0",
            "SLURM_RESTART_COUNT": str(attempt),
            # the script's settings
            "NNPDE_PYTHON": sys.executable,
            "NNPDE_SHARED": str(self.shared),
            "NNPDE_RUN": str(self.shared / "runs" / run),
            "NNPDE_LAUNCHER": launcher,
            "SLURM_STANDIN_LOG": str(self.standin_log),
        }
        env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the script's own default, on the shared directory
        return env

    def submit(self, run: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", str(SCRIPT), "scripts/configs/burgers.toml", *TRAIN],
            cwd=ROOT,
            env=self.env(run, **kw),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def logs(self, run: str, job: int, attempt: int = 0) -> Path:
        return self.shared / "runs" / run / "logs" / f"{job}.{attempt}"


def _finish(job: subprocess.Popen, timeout: int = 600) -> str:
    try:
        out, _ = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        job.kill()
        out, _ = job.communicate()
        pytest.fail(f"the job script did not finish within {timeout} s:\n{out[-4000:]}")
    return out


def _final_params(run_dir: Path):
    """The trained parameters of a run, as a user reads them (``nnpde.restore_model``)."""
    import nnpde

    config = nnpde.load_config(run_dir / "config.toml")
    nnpde.set_precision(config)
    model, step = nnpde.restore_model(config, nnpde.load_task(config))
    return step, [np.asarray(leaf) for leaf in jax.tree.leaves(nnpde.partition(model)[0])]


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]


@pytest.fixture
def keep_x64():
    """Reading a run back sets its precision (float32); restore the suite's float64."""
    yield
    jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    return Cluster(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module")
def straight(cluster):
    """One job run through to the end by srun: the script's output and run directory."""
    job = cluster.submit("straight", job=101)
    out = _finish(job)
    assert job.returncode == 0, out[-4000:]
    return out, cluster.shared / "runs" / "straight"


def test_the_job_script_trains_under_srun_with_a_log_per_rank(cluster, straight):
    out, run = straight
    summary = json.loads((run / "train.json").read_text())
    assert summary["steps"] == 4 and summary["environment"]["parallel"]["ranks"] == 2, summary
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["2", "4"]
    assert len(list((cluster.shared / "data").glob("*.nc"))) == 2  # staged on the shared directory
    # JAX's compilation cache: one per rank (JAX writes it without a lock), shared too
    assert summary["environment"]["jax_compilation_cache"] == str(cluster.shared / "jax-cache" / "rank0")
    srun = [line for line in cluster.standin_log.read_text().splitlines() if line.startswith("srun:")]
    assert len(srun) == 1 and "srun: 2 tasks:" in srun[0], srun
    # One log per rank; rank 0's also in the job's output, the other ranks' only in theirs.
    logs = cluster.logs("straight", 101)
    assert sorted(p.name for p in logs.iterdir()) == ["rank0.log", "rank1.log"]
    rank0, rank1 = ((logs / f"rank{r}.log").read_text() for r in (0, 1))
    assert "rank 0 of 2 on" in rank0 and "trained 4 steps" in rank0 and "resolved configuration" in rank0, rank0
    assert "rank 1 of 2 on" in rank1 and "trained" not in rank1, rank1
    assert out.count("resolved configuration") == 1 and "trained 4 steps" in out and "rank 1 of 2" not in out, out
    assert "nnpde train exited with 0" in out and "requeue" not in cluster.standin_log.read_text()


def test_a_stop_signal_checkpoints_and_requeues_and_mpirun_with_a_host_file_resumes_exactly(
    cluster, straight, keep_x64
):
    """Slurm's time-limit warning (``--signal=B:USR1``) reaches the job script while the
    ranks are still starting: they stop at the first checkpoint step (exit 5) and the
    script requeues the job. Its second attempt runs through ``mpirun`` with the
    allocation's host file and ends on the parameters of the uninterrupted run, bit for
    bit (the same group of 2 ranks, the same batches)."""
    job = cluster.submit("stopped", job=102)
    logs = cluster.logs("stopped", 102)
    began = time.monotonic()
    # Every rank prints its line once its handlers are in place: signal after that.
    while not all("of 2 on" in _read(logs / f"rank{r}.log") for r in (0, 1)):
        assert job.poll() is None, _finish(job)[-4000:]
        assert time.monotonic() - began < 300, "the ranks did not start within 300 s"
        time.sleep(0.05)
    job.send_signal(signal.SIGUSR1)
    out = _finish(job)
    assert job.returncode == 5, out[-4000:]
    assert "USR1: passed on to the ranks" in out and "Training stopped at step 2" in out, out
    assert "scontrol: requeue 102" in cluster.standin_log.read_text()
    run = cluster.shared / "runs" / "stopped"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["2"]
    assert not (run / "train.json").exists()

    requeued = cluster.submit("stopped", job=102, attempt=1, launcher="mpirun")
    out = _finish(requeued)
    assert requeued.returncode == 0, out[-4000:]
    assert "by mpirun" in out and "trained 4 steps" in out, out
    assert (cluster.logs("stopped", 102, 1) / "hostfile").read_text() == "localhost:2\n"
    assert "rank 1 of 2 on" in _read(cluster.logs("stopped", 102, 1) / "rank1.log")
    assert _records(run) == _records(straight[1])  # the same losses at the same steps, logged once
    (step, resumed), (_, uninterrupted) = _final_params(run), _final_params(straight[1])
    assert step == 4
    for a, b in zip(resumed, uninterrupted, strict=True):
        np.testing.assert_array_equal(a, b)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_srun_tasks_that_are_not_mpi_ranks_are_refused(tmp_path, monkeypatch, capsys):
    """srun without PMI (or an MPI it cannot reach) starts N independent copies: each
    would train alone into the same run directory. Refused before any work."""
    from nnpde.runs._cli import main

    for name in ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    assert main(["train", *TRAIN, "--set", f'out="{tmp_path / "run"}"']) == 2
    err = capsys.readouterr().err
    assert "srun started 2 tasks" in err and "Fix: let srun start MPI ranks" in err, err
    assert not (tmp_path / "run").exists()


def test_stop_signals_are_recorded_not_fatal_and_the_handlers_restored():
    from nnpde import StopSignals

    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: seen.append("previous handler"))
    try:
        with StopSignals() as signals:
            assert not signals()
            os.kill(os.getpid(), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGTERM)  # a second signal is recorded too, not fatal
            assert signals() and signals.received == signal.SIGUSR1
        assert seen == []
        os.kill(os.getpid(), signal.SIGUSR1)  # the handler from before is back
        assert seen == ["previous handler"]
    finally:
        signal.signal(signal.SIGUSR1, previous)
