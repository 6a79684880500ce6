"""Synchronous training within a group (nnpde.distributed): the topology, the group
mean over devices (shard_map + pmean) and over ranks (mpi4jax under mpirun), and a
failing rank that takes the job down instead of hanging it."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
import pytest

import nnpde
from nnpde.distributed import GroupTopology, make_group_step
from tests._mpirun import TEST_XLA_FLAGS

ROOT = Path(__file__).resolve().parents[1]
MPIRUN = Path(sys.executable).parent / "mpirun"
ENV = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=TEST_XLA_FLAGS)


def test_one_process_is_the_degenerate_topology():
    topo = GroupTopology.create(devices=jax.local_devices()[:1])
    assert (topo.world_size, topo.n_groups, topo.group, topo.group_rank, topo.group_size) == (1, 1, 0, 0, 1)
    assert topo.group_comm is None and topo.cross_comm is None
    assert topo.is_leader and topo.is_root and topo.replicas == 1
    assert topo.describe()["ranks"] == 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"groups": 3}, "1 ranks do not split into 3 equal groups"),
        ({"groups": 0}, "groups must be a positive int"),
        ({"group_size": 2}, "1 ranks do not split into groups of 2"),
        ({"groups": 2, "group_size": 2}, "= 4 ranks, but the run has 1"),
        ({"devices": []}, "devices is empty"),
    ],
)
def test_bad_topologies_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GroupTopology.create(**kwargs)


def _toy():
    params = {"w": jnp.array([0.3, -0.2, 0.1]), "b": jnp.array(0.5)}
    x = jax.random.normal(jax.random.key(0), (8, 3))
    y = x @ jnp.array([1.0, 2.0, -1.0]) + 0.3
    batch = jnp.concatenate([x, y[:, None]], axis=1)

    def loss_fn(p, b, key):
        pred = b[:, :3] @ p["w"] + p["b"]
        return jnp.mean((pred - b[:, 3]) ** 2), {"bias": p["b"] ** 2}

    return params, batch, loss_fn


@pytest.mark.parametrize("n_devices", [2, 4])
def test_group_step_over_devices_equals_one_step_on_the_whole_batch(n_devices):
    """shard_map over the named axis with pmean: the same update as one device on the
    whole batch, to round-off, for several steps. (Plain SGD: the update is linear in
    the gradient, so round-off is not amplified as Adam's g / sqrt(v) does near g = 0.)"""
    params, batch, loss_fn = _toy()
    opt = optax.sgd(0.1)
    state, static = nnpde.init_train_state(params, opt, seed=0, spec=jax.tree.map(lambda _: True, params))
    plain = nnpde.make_train_step(loss_fn, opt, static)
    topo = GroupTopology.create(devices=jax.local_devices()[:n_devices])
    group = jax.jit(make_group_step(loss_fn, opt, static, topo))
    a, b = state, state
    for _ in range(4):
        a, ma = plain(a, batch)
        b, mb = group(b, batch)
        for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
            assert float(jnp.max(jnp.abs(x - y))) < 1e-13
        assert abs(float(ma["loss"]) - float(mb["loss"])) < 1e-13
        assert abs(float(ma["bias"]) - float(mb["bias"])) < 1e-13
    assert float(jnp.abs(a.params["b"] - params["b"])) > 0.1  # it did train


def test_a_batch_that_does_not_split_over_the_devices_is_refused():
    params, batch, loss_fn = _toy()
    opt = optax.sgd(0.1)
    state, static = nnpde.init_train_state(params, opt, seed=0, spec=jax.tree.map(lambda _: True, params))
    topo = GroupTopology.create(devices=jax.local_devices()[:3])
    with pytest.raises(ValueError, match="group batch of 8 does not split over 1 rank"):
        make_group_step(loss_fn, opt, static, topo)(state, batch)


def _mpirun(n, *args, timeout=300):
    assert MPIRUN.exists(), f"no mpirun beside {sys.executable}: the set-up (make) installs the pip mpich wheel"
    return subprocess.run(
        [str(MPIRUN), "-n", str(n), sys.executable, *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.parametrize("ranks", [4])
def test_one_group_of_ranks_reproduces_single_process_training(ranks):
    """mpirun -n 4, one group: the ranks' parameters are bitwise identical after every
    step, and the trained parameters equal one process's on the whole batch. (Two ranks
    run the same gradient all-reduce with fewer members; the two-group test below and
    the CLI's ``mpirun -n 2`` tests launch 2 and 4 ranks too.)"""
    result = _mpirun(ranks, str(ROOT / "tests" / "_group_fit_script.py"), "4", "4")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["ranks"] == ranks and out["checked"] == 4 and out["mismatches"] == 0, out
    assert out["moved"] > 1e-3, out  # training changed the parameters
    assert out["max_diff"] < 1e-12 * out["scale"], out


FAILING = r"""
import time
from mpi4py import MPI
from nnpde.distributed import abort_on_error
with abort_on_error():
    comm = MPI.COMM_WORLD
    if comm.rank == 1:
        raise RuntimeError("rank 1 fails on purpose")
    comm.Barrier()  # rank 0 would wait here forever
    print("unreachable", flush=True)
"""


def test_a_failing_rank_takes_every_rank_down_instead_of_hanging():
    began = time.perf_counter()
    result = _mpirun(2, "-c", FAILING, timeout=120)
    seconds = time.perf_counter() - began
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stderr and "aborting all 2 ranks" in result.stderr
    assert "unreachable" not in result.stdout
    assert seconds < 60, seconds


def test_the_distributed_training_script_under_mpirun_with_two_groups(tmp_path):
    """The launch line of scripts/train_distributed.py at toy size: 4 ranks in 2 groups,
    asynchronous averaging, a NaN injected into group 1 (rolled back, kept out of the
    average); the summary, the per-group logs and the averaged checkpoint are written."""
    out = tmp_path / "run"
    result = _mpirun(
        4,
        str(ROOT / "scripts" / "train_distributed.py"),
        *("--groups", "2", "--steps", "12", "--every", "3", "--max-staleness", "3", "--inject-nan", "1:5"),
        *("--train", "4", "--test", "2", "--hidden", "4", "--batch", "4", "--unroll", "2"),
        *("--data", str(tmp_path / "data"), "--out", str(out)),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parallel"]["ranks"] == 4 and summary["parallel"]["groups"] == 2
    assert summary["parallel"]["ranks_per_group"] == 2 and summary["parallel"]["every"] == 3
    assert summary["all_finite"]
    by_group = {g["group"]: g["averaging"] for g in summary["groups"]}
    assert by_group[1]["rollbacks"] == 1 and by_group[0]["rollbacks"] == 0
    assert by_group[1]["events"][0]["step"] == 5
    assert all(a["completed"] >= 1 for a in by_group.values())
    assert summary["horizon_error"]["averaged model"] < 1.0
    for g in (0, 1):
        assert (out / f"group{g}" / "metrics.jsonl").exists()
    assert (out / "checkpoints" / "12").exists()
