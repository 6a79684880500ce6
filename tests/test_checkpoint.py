"""Checkpoints and the metrics log: bitwise round trips, bitwise resume, crash safety."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnpde.runs._checkpoint import CheckpointCorrupt, Checkpointer
from nnpde.runs._metrics_log import MetricsLog, read_metrics

WRITER = os.path.join(os.path.dirname(__file__), "_checkpoint_writer.py")


def _raw(leaf):
    if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(leaf)), f"key<{jax.random.key_impl(leaf)}>"
    return np.asarray(leaf), np.asarray(leaf).dtype.name


def assert_bitwise_equal(got, expected):
    """Same structure, dtypes, shapes and bits; the message names every leaf that differs."""
    assert jax.tree.structure(got) == jax.tree.structure(expected), (
        f"structure differs:\n got {jax.tree.structure(got)}\n expected {jax.tree.structure(expected)}"
    )
    problems = []
    for (path, g), e in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(expected)):
        (gv, gd), (ev, ed) = _raw(g), _raw(e)
        where = jax.tree_util.keystr(path)
        if type(g) is not type(e) or gd != ed or gv.shape != ev.shape:
            problems.append(
                f"{where}: got {type(g).__name__} {gd}{gv.shape}, expected {type(e).__name__} {ed}{ev.shape}"
            )
        elif gv.tobytes() != ev.tobytes():
            problems.append(f"{where}: values differ, got {gv.ravel()[:4]}..., expected {ev.ravel()[:4]}...")
    assert not problems, "\n".join(problems)


def _example_state():
    params = {
        "w": jax.random.normal(jax.random.key(1), (3, 4), jnp.float32),
        "b": jnp.linspace(-1.0, 1.0, 4, dtype=jnp.float64),
        "frozen": None,
        "scale": jnp.float64(math.pi),
    }
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    grads = jax.tree.map(lambda p: 0.5 * p, params)
    opt_state = opt.init(params)
    _, opt_state = opt.update(grads, opt_state, params)  # nonzero moments and count
    return {
        "params": params,
        "adam": optax.adam(1e-3).init(params),
        "chain": opt_state,
        "step": jnp.int32(17),
        "rng": jax.random.key(0),
        "keys": jax.random.split(jax.random.key(5), 3),
        "host": np.arange(5, dtype=np.int32),
    }


def _zeros_like(state):
    """A template: same structure, shapes and dtypes, different values."""

    def zero(leaf):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.key(99) if leaf.ndim == 0 else jax.random.split(jax.random.key(99), leaf.shape[0])
        return jnp.zeros_like(leaf) if isinstance(leaf, jax.Array) else np.zeros_like(leaf)

    return jax.tree.map(zero, state)


def test_round_trip_bitwise(tmp_path):
    state = _example_state()
    with Checkpointer(tmp_path / "run") as checkpointer:
        assert checkpointer.save(17, state, metadata={"config": {"lr": 1e-3}, "loss": 0.25})
        restored = checkpointer.restore(_zeros_like(state))
        assert checkpointer.metadata() == {"config": {"lr": 1e-3}, "loss": 0.25}
    assert_bitwise_equal(restored, state)
    # A new Checkpointer on the same directory sees the committed step.
    with Checkpointer(tmp_path / "run") as checkpointer:
        assert checkpointer.latest_step() == 17, checkpointer.all_steps()
        assert_bitwise_equal(checkpointer.restore(_zeros_like(state), step=17), state)


class TrainState(eqx.Module):
    params: dict
    opt_state: tuple
    step: jax.Array
    rng: jax.Array


_OPT = optax.adam(1e-2)
_X = jax.random.normal(jax.random.key(42), (64, 3), jnp.float32)
_Y = _X @ jnp.array([1.0, -2.0, 0.5], jnp.float32) + 0.3


@jax.jit
def _train_step(state):
    rng, k_batch, k_noise = jax.random.split(state.rng, 3)
    idx = jax.random.choice(k_batch, _X.shape[0], (16,), replace=False)
    noise = 0.1 * jax.random.normal(k_noise, (16,), jnp.float32)

    def loss(p):
        return jnp.mean((_X[idx] @ p["w"] + p["b"] - _Y[idx] - noise) ** 2)

    grads = jax.grad(loss)(state.params)
    updates, opt_state = _OPT.update(grads, state.opt_state, state.params)
    return TrainState(optax.apply_updates(state.params, updates), opt_state, state.step + 1, rng)


def _fresh_state(seed):
    params = {"w": jnp.zeros(3, jnp.float32), "b": jnp.float32(0.0), "unused": None}
    return TrainState(params, _OPT.init(params), jnp.int32(0), jax.random.key(seed))


def test_resume_continues_bitwise(tmp_path):
    straight = _fresh_state(0)
    for _ in range(10):
        straight = _train_step(straight)

    first = _fresh_state(0)
    for _ in range(5):
        first = _train_step(first)
    with Checkpointer(tmp_path / "run") as checkpointer:
        checkpointer.save(int(first.step), first)

    # A new process would start from a fresh template; a different seed shows that the
    # key comes from the checkpoint.
    with Checkpointer(tmp_path / "run") as checkpointer:
        step = checkpointer.latest_step()
        resumed = checkpointer.restore(_fresh_state(123))
    assert step == 5
    for _ in range(5):
        resumed = _train_step(resumed)
    assert int(resumed.step) == 10
    assert_bitwise_equal(resumed, straight)
    assert float(jnp.abs(straight.params["w"]).sum()) > 0.0  # it did train


def _tmp_dirs(directory, step):
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return [n for n in names if n.startswith(f"{step}.") and "tmp" in n]


def _bytes_under(directory):
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except FileNotFoundError:  # renamed or removed while walking
                pass
    return total


def _run_writer_and_kill(directory, megabytes):
    """Start the writer, SIGKILL it while it writes array data into its step-2 temporary directory.

    Returns (killed mid-write, description of what was seen).
    """
    proc = subprocess.Popen(
        [sys.executable, WRITER, str(directory), str(megabytes)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    try:
        assert proc.stdout.readline().strip() == "saved 1", "writer did not save step 1"
        assert proc.stdout.readline().strip() == "saving 2", "writer did not start step 2"
        t0 = time.perf_counter()
        final = os.path.join(directory, "2")
        seen_tmp, written = [], 0
        # Wait until more than 1 MiB of the step has been written, so that the kill
        # interrupts the data itself rather than the directory set-up.
        while proc.poll() is None and not os.path.exists(final) and time.perf_counter() - t0 < 60:
            seen_tmp = _tmp_dirs(directory, 2)
            written = sum(_bytes_under(os.path.join(directory, n)) for n in seen_tmp)
            if written > 2**20:
                break
            time.sleep(0.002)
        final_before = os.path.exists(final)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        waited = time.perf_counter() - t0
        left = sum(_bytes_under(os.path.join(directory, n)) for n in _tmp_dirs(directory, 2))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = proc.stdout.read()
    proc.stdout.close()
    killed_mid_write = (
        bool(seen_tmp)
        and written > 2**20
        and not final_before
        and "saved 2" not in rest
        and proc.returncode == -signal.SIGKILL
    )
    info = (
        f"{megabytes} MiB: temporary dirs {seen_tmp}, final step-2 dir before kill {final_before}, "
        f"killed {waited * 1e3:.0f} ms after 'saving 2' with {written / 2**20:.1f} MiB written "
        f"({left / 2**20:.1f} MiB left on disk), return code {proc.returncode}, later output {rest!r}"
    )
    return killed_mid_write, info


def test_kill_mid_write_keeps_last_complete_step(tmp_path):
    attempts = []
    for megabytes in (256, 1024):
        directory = tmp_path / f"run{megabytes}"
        killed, info = _run_writer_and_kill(directory, megabytes)
        attempts.append(info)
        if killed:
            break
    else:
        pytest.fail("the writer was never interrupted mid-write:\n" + "\n".join(attempts))
    print("\n".join(attempts))
    leftovers = _tmp_dirs(directory, 2)
    assert leftovers, f"expected the interrupted save to leave a temporary directory; found {os.listdir(directory)}"

    sys.path.insert(0, os.path.dirname(__file__))
    try:
        from _checkpoint_writer import small_state
    finally:
        sys.path.pop(0)
    with Checkpointer(directory) as checkpointer:
        assert checkpointer.latest_step() == 1, f"steps {checkpointer.all_steps()}, on disk {os.listdir(directory)}"
        assert checkpointer.all_steps() == [1]
        assert_bitwise_equal(checkpointer.restore(_zeros_like(small_state())), small_state())
        assert checkpointer.save(2, small_state()), "save of step 2 after the crash was skipped"
        assert checkpointer.all_steps() == [1, 2]
        assert_bitwise_equal(checkpointer.restore(_zeros_like(small_state())), small_state())
    assert not _tmp_dirs(directory, 2), f"temporary directories left: {os.listdir(directory)}"


def test_a_flipped_bit_in_the_data_is_caught_by_the_checksum_and_skipped(tmp_path):
    """One bit flipped in the middle of a data file (same size): orbax alone restores
    the altered values without a word; the SHA-256 checked on restore names the step,
    the item and the leaf, and ``newest_intact`` falls back to the step before."""
    import orbax.checkpoint as ocp

    state = {"w": jnp.asarray(np.random.default_rng(0).random(100_000, dtype=np.float32)), "step": jnp.int32(0)}
    directory = tmp_path / "run"
    with Checkpointer(directory) as checkpointer:
        checkpointer.save(1, state)
        checkpointer.save(2, state)
    data = max((directory / "2" / "arrays").rglob("d/*"), key=lambda p: p.stat().st_size)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0b1000
    data.write_bytes(bytes(raw))
    with ocp.StandardCheckpointer() as plain:
        silently = np.asarray(plain.restore(directory / "2" / "arrays")["leaf_00001"])  # leaves by key: step, w
    print(f"orbax alone restored {np.sum(silently != np.asarray(state['w']))} altered values without an error")
    reported = []
    with Checkpointer(directory, read_only=True) as checkpointer:
        with pytest.raises(CheckpointCorrupt, match=r"step 2 is corrupt \(.*2/arrays: array leaf_00001 \(\['w'\]\)"):
            checkpointer.restore(_zeros_like(state), 2)
        restored, step = checkpointer.newest_intact(_zeros_like(state), report=reported.append)
    assert step == 1 and [r.step for r in reported] == [2]
    assert_bitwise_equal(restored, state)


def test_template_mismatch_names_leaf(tmp_path):
    state = {"params": {"w": jnp.zeros((3, 4), jnp.float32), "b": jnp.zeros(4, jnp.float32)}, "step": jnp.int32(0)}
    with Checkpointer(tmp_path / "run") as checkpointer:
        checkpointer.save(1, state)
        wrong_shape = {**state, "params": {**state["params"], "w": jnp.zeros((3, 5), jnp.float32)}}
        with pytest.raises(ValueError, match=r"\['params'\]\['w'\].*\(3, 4\).*\(3, 5\).*configuration changed"):
            checkpointer.restore(wrong_shape)
        wrong_dtype = {**state, "step": jnp.float32(0)}
        with pytest.raises(ValueError, match=r"\['step'\].*int32.*float32"):
            checkpointer.restore(wrong_dtype)
        extra_leaf = {**state, "rng": jax.random.key(0)}
        with pytest.raises(ValueError, match=r"\['rng'\]"):
            checkpointer.restore(extra_leaf)
        with pytest.raises(FileNotFoundError, match="step 7"):
            checkpointer.restore(state, step=7)
    empty = tmp_path / "empty"
    with Checkpointer(empty) as checkpointer:
        assert checkpointer.latest_step() is None and checkpointer.all_steps() == []
        with pytest.raises(FileNotFoundError, match=str(empty)):
            checkpointer.restore(state)


def test_max_to_keep_and_keep_every(tmp_path):
    state = {"x": jnp.zeros(2, jnp.float32)}
    with Checkpointer(tmp_path / "a", max_to_keep=2) as checkpointer:
        for step in range(1, 6):
            checkpointer.save(step, jax.tree.map(lambda x, s=step: x + s, state))
        assert checkpointer.all_steps() == [4, 5]
        assert float(checkpointer.restore(state, step=4)["x"][0]) == 4.0
        assert not checkpointer.save(3, state), "a step older than the latest should be skipped"
    assert sorted(os.listdir(tmp_path / "a")) == ["4", "5"], os.listdir(tmp_path / "a")
    with Checkpointer(tmp_path / "b", max_to_keep=2, keep_every=3) as checkpointer:
        for step in range(1, 9):
            checkpointer.save(step, state)
        assert checkpointer.all_steps() == [3, 6, 7, 8]


def test_read_only_reader_logs_no_orbax_warnings(tmp_path, caplog):
    """Opening a checkpoint directory read-only (``nnpde evaluate``, resuming ranks)
    logs none of orbax's notices about the read-only mode, while other absl warnings
    still get through (the filter is targeted)."""
    from absl import logging as absl_logging

    state = {"x": jnp.arange(3.0, dtype=jnp.float32)}
    with Checkpointer(tmp_path) as writer:
        writer.save(1, state)
    with caplog.at_level("WARNING"):
        with Checkpointer(tmp_path, read_only=True) as reader:
            assert float(reader.restore(state)["x"][2]) == 2.0
        assert not [r.getMessage() for r in caplog.records if r.levelname == "WARNING"], caplog.text
        absl_logging.warning("Given directory is read only=%s (logged outside a Checkpointer)", tmp_path)
    assert "logged outside a Checkpointer" in caplog.text


def test_metrics_log(tmp_path):
    path = tmp_path / "logs" / "metrics.jsonl"
    with MetricsLog(path) as log:
        for step in range(1, 7):
            log.log(step, loss=jnp.float32(1.0 / step), lr=np.float64(1e-3), n=np.int32(step))
        log.log(7, loss=jnp.nan, grad=np.inf, other=-math.inf, note="diverged")
    lines = path.read_text().splitlines()
    assert len(lines) == 7
    records = [json.loads(line) for line in lines]  # strict JSON: NaN literals would fail below
    assert all(math.isfinite(r["time"]) for r in records)
    assert records[1]["loss"] == float(np.float32(0.5)) and records[1]["n"] == 2 and records[1]["lr"] == 1e-3
    assert records[6]["loss"] == "nan" and records[6]["grad"] == "inf" and records[6]["other"] == "-inf"
    json.loads(lines[6], parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} written"))
    back = read_metrics(path)
    assert math.isnan(back[6]["loss"]) and back[6]["grad"] == math.inf and back[6]["other"] == -math.inf

    # Resume from step 4: steps 5..7 are dropped and logged again.
    with MetricsLog(path, resume_from_step=4) as log:
        assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4]
        log.log(5, loss=0.125)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]
    assert not [n for n in os.listdir(path.parent) if n != "metrics.jsonl"], os.listdir(path.parent)

    # A crash mid-write leaves a partial last line: read_metrics ignores it, and the
    # next MetricsLog removes it before appending.
    with open(path, "a") as f:
        f.write('{"step": 6, "time": 1.0, "lo')
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]
    with MetricsLog(path) as log:
        log.log(6, loss=0.1)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5, 6]
    assert all(json.loads(line) for line in path.read_text().splitlines())

    with MetricsLog(path) as log, pytest.raises(ValueError, match="shape"):
        log.log(7, loss=jnp.ones(3))
