"""``Checkpointer``: atomic, synchronous checkpoints of a train state pytree.

A thin layer over :class:`orbax.checkpoint.CheckpointManager` on a local directory.
Each step directory holds three items:

* ``arrays``: a flat ``{"leaf_00000": ndarray, ...}`` dictionary, one entry per leaf of
  the state (typed PRNG keys stored as their raw ``uint32`` key data);
* ``layout``: JSON, per leaf its path (``jax.tree_util.keystr``), dtype, shape and, for
  keys, the PRNG implementation;
* ``metadata``: JSON given by the caller (configuration, metrics);
* ``checksums``: JSON, the SHA-256 of every array (its dtype, shape and bytes).

Storing leaves by index and the layout beside them keeps the on-disk format independent
of the Python classes of the state: restoring rebuilds the state from a *template* (the
freshly initialised state), after checking leaf by leaf that paths, shapes and dtypes
agree. ``None`` leaves are part of the tree structure and are restored from the template.

Atomicity is orbax's: a step is written into a temporary directory and renamed into
place when complete, so a step interrupted by a crash is never listed nor restored;
leftover temporary directories are removed when a ``Checkpointer`` is created. The
checksums are written in the same commit as the arrays and verified on every restore:
a checkpoint altered on disk (flipped bits, a truncated file, a missing item) is
``CheckpointCorrupt``, naming the step and the file, never restored silently; see
``newest_intact`` for falling back to an earlier step. Checkpoints written before
checksums existed restore unverified.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

_ARRAYS = "arrays"
_LAYOUT = "layout"
_METADATA = "metadata"
_CHECKSUMS = "checksums"
_FORMAT = 1
_MISMATCH_FIX = (
    "the configuration changed since this checkpoint; use a new run directory or restore "
    "with the original configuration"
)


class CheckpointCorrupt(RuntimeError):
    """A checkpoint that cannot be restored as written: a checksum that does not match,
    or an item that cannot be read. ``step`` and ``path`` (the file or item) name it."""

    def __init__(self, step: int, path: str, detail: str):
        self.step, self.path, self.detail = step, path, detail
        super().__init__(f"checkpoint step {step} is corrupt ({path}: {detail})")


def _checksum(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (C order)."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _json_checksum(value) -> str:
    """SHA-256 of a JSON item (its canonical text)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _named_file(error: BaseException, default: str) -> str:
    """The file an I/O error of orbax or TensorStore names, else ``default``."""
    found = re.search(r"(?:^|(?<=[\s'\"]))(/[^\s'\"]+)", str(error))
    return found.group(1).rstrip(".,:;)") if found else default


class _DropReadOnlyNotice(logging.Filter):
    """Drops orbax's warning that a manager opened with ``read_only=True`` is read only:
    the reader asked for exactly that, and a user running ``nnpde evaluate`` cannot act on it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Given directory is read only")


@contextlib.contextmanager
def _quiet_read_only_notice():
    logger = logging.getLogger("absl")  # orbax logs through absl.logging
    notice = _DropReadOnlyNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _leaf_layout(path, leaf) -> dict[str, Any]:
    """What is stored for one leaf: its path, dtype, shape, and key implementation."""
    if _is_key(leaf):
        return {
            "path": jax.tree_util.keystr(path),
            "dtype": "key",
            "shape": list(leaf.shape),
            "impl": str(jax.random.key_impl(leaf)),
            "data_shape": list(jax.random.key_data(leaf).shape),
        }
    return {
        "path": jax.tree_util.keystr(path),
        "dtype": np.dtype(leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype).name,
        "shape": list(np.shape(leaf)),
    }


def _layout_of(tree) -> list[dict[str, Any]]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [_leaf_layout(path, leaf) for path, leaf in leaves]


def _to_numpy(leaf) -> np.ndarray:
    if _is_key(leaf):
        leaf = jax.random.key_data(leaf)
    # A copy on the host: the saved values may not alias arrays that are donated later.
    return np.array(leaf, copy=True)


def _from_numpy(value: np.ndarray, template_leaf):
    """``value`` in the type and placement of ``template_leaf``."""
    if _is_key(template_leaf):
        data = jax.device_put(value, template_leaf.sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(template_leaf))
    if isinstance(template_leaf, jax.Array):
        return jax.device_put(value, template_leaf.sharding)
    if isinstance(template_leaf, np.ndarray):
        return value
    if isinstance(template_leaf, np.generic):
        return value[()]
    return type(template_leaf)(value.item())  # Python scalar


def _check_layout(saved: list[dict], expected: list[dict], where: str) -> None:
    for i, (s, e) in enumerate(zip(saved, expected)):
        if s != e:
            raise ValueError(
                f"Checkpoint {where} does not match the template at leaf {i}: saved "
                f"{s['path']} with dtype {s['dtype']} and shape {tuple(s['shape'])}"
                f"{' (' + s['impl'] + ')' if 'impl' in s else ''}, template expects "
                f"{e['path']} with dtype {e['dtype']} and shape {tuple(e['shape'])}"
                f"{' (' + e['impl'] + ')' if 'impl' in e else ''}; {_MISMATCH_FIX}."
            )
    if len(saved) != len(expected):
        n = min(len(saved), len(expected))
        extra = saved[n] if len(saved) > n else expected[n]
        side = "saved" if len(saved) > n else "template"
        raise ValueError(
            f"Checkpoint {where} has {len(saved)} leaves but the template has "
            f"{len(expected)}; first unmatched leaf ({side}): {extra['path']} with dtype "
            f"{extra['dtype']} and shape {tuple(extra['shape'])}; {_MISMATCH_FIX}."
        )


class Checkpointer:
    """Saves and restores a train state pytree, one directory per step.

    ``directory`` is created if missing. ``max_to_keep`` newest steps are kept
    (``None`` keeps all); with ``keep_every=k``, steps that are multiples of ``k`` are
    also kept whatever their age. Saves are synchronous: ``save`` returns when the step
    is committed on disk.

    ``read_only=True`` opens an existing directory for restoring only: nothing is
    created, removed or written (other ranks of a group restore beside the one that
    writes).

    Use as a context manager, or call ``close`` when done.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_to_keep: int | None = 3,
        keep_every: int | None = None,
        read_only: bool = False,
    ):
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep must be a positive integer or None, got {max_to_keep!r}.")
        if keep_every is not None and keep_every < 1:
            raise ValueError(f"keep_every must be a positive integer or None, got {keep_every!r}.")
        self.directory = os.path.abspath(os.fspath(directory))
        policies = [ocp.checkpoint_managers.LatestN(n=max_to_keep)]
        if keep_every is not None:
            policies.append(ocp.checkpoint_managers.EveryNSteps(interval_steps=keep_every))
        options = ocp.CheckpointManagerOptions(
            create=not read_only,
            read_only=read_only,
            enable_async_checkpointing=False,
            # A reader saves nothing; saying so here spares orbax's warning that it reset
            # save_interval_steps to 0 for read_only.
            save_interval_steps=0 if read_only else 1,
            # A crash mid-save leaves a temporary directory behind; it is never listed,
            # and removing it here keeps the directory tidy and the step free to rewrite.
            cleanup_tmp_directories=not read_only,
            save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(1),
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
        )
        with _quiet_read_only_notice():
            self._manager = ocp.CheckpointManager(
                self.directory, item_names=(_ARRAYS, _LAYOUT, _METADATA, _CHECKSUMS), options=options
            )

    def save(self, step: int, state, *, metadata: dict | None = None, force: bool = False) -> bool:
        """Write ``state`` as step ``step``; return whether a checkpoint was written.

        A step not newer than the latest saved one is skipped (returns ``False``) unless
        ``force=True``; an existing step is never overwritten (``ValueError``).
        ``metadata`` must be JSON-serialisable.
        """
        step = int(step)
        leaves = jax.tree_util.tree_leaves(state)
        arrays = {f"leaf_{i:05d}": _to_numpy(leaf) for i, leaf in enumerate(leaves)}
        layout = {"format": _FORMAT, "leaves": _layout_of(state)}
        meta = {} if metadata is None else dict(metadata)
        try:
            json.dumps(meta)
        except TypeError as e:
            raise ValueError(
                f"metadata must be JSON-serialisable: {e}; convert arrays with float() or .tolist()."
            ) from e
        saved = self._manager.save(
            step,
            args=ocp.args.Composite(
                **{
                    _ARRAYS: ocp.args.StandardSave(arrays),
                    _LAYOUT: ocp.args.JsonSave(layout),
                    _METADATA: ocp.args.JsonSave(meta),
                    _CHECKSUMS: ocp.args.JsonSave(
                        {
                            "algorithm": "sha256",
                            "arrays": {k: _checksum(v) for k, v in arrays.items()},
                            _LAYOUT: _json_checksum(layout),
                            _METADATA: _json_checksum(meta),
                        }
                    ),
                }
            ),
            force=force,
        )
        self._manager.wait_until_finished()
        return bool(saved)

    def latest_step(self) -> int | None:
        """The newest committed step, or ``None`` when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Committed steps, oldest first."""
        return sorted(self._manager.all_steps())

    def _resolve(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
            if step is None:
                raise FileNotFoundError(
                    f"No checkpoint in {self.directory}; start from a fresh state or point to the run directory."
                )
            return step
        if int(step) not in self.all_steps():
            raise FileNotFoundError(
                f"No checkpoint for step {step} in {self.directory}; steps saved: {self.all_steps()}."
            )
        return int(step)

    def restore(self, template, step: int | None = None):
        """The state saved at ``step`` (the latest by default), shaped like ``template``.

        The result has the tree structure, dtypes, shapes and placement of ``template``
        and the saved values bit for bit, verified against the checksums saved with
        them. Raises ``ValueError`` naming the first leaf that differs when the template
        does not match the saved layout, and ``CheckpointCorrupt`` (step and file) when
        the checkpoint is not as it was written.
        """
        step = self._resolve(step)
        self.check_template(template, step)
        leaves, treedef = jax.tree_util.tree_flatten(template)
        arrays = self._read(step, _ARRAYS, ocp.args.StandardRestore())
        expected = self._checksums(step)
        restored = []
        for i, leaf in enumerate(leaves):
            name = f"leaf_{i:05d}"
            if not isinstance(arrays, dict) or name not in arrays:
                raise CheckpointCorrupt(step, self._item(step, _ARRAYS), f"array {name} is missing")
            value = np.asarray(arrays[name])
            if expected is not None and _checksum(value) != expected.get(name):
                raise CheckpointCorrupt(
                    step,
                    self._item(step, _ARRAYS),
                    f"array {name} ({_layout_of(template)[i]['path']}) does not match its sha256 checksum",
                )
            restored.append(_from_numpy(value, leaf))
        return jax.tree_util.tree_unflatten(treedef, restored)

    def newest_intact(self, template, report: Callable[[CheckpointCorrupt], None] | None = None):
        """``(state, step)``: the newest step that restores intact, shaped like
        ``template``; each corrupt newer step is passed to ``report`` (then skipped).
        Raises the newest ``CheckpointCorrupt`` when no step is intact, and
        ``FileNotFoundError`` when there is none."""
        steps = self.all_steps()
        if not steps:
            self._resolve(None)  # raises FileNotFoundError with the fix
        first = None
        for step in reversed(steps):
            try:
                return self.restore(template, step), step
            except CheckpointCorrupt as corrupt:
                first = first or corrupt
                if report is not None:
                    report(corrupt)
        raise first

    def quarantine(self, step: int, destination: str | os.PathLike) -> str:
        """Move step ``step`` out of the checkpoint directory into ``destination`` (a
        directory, created), so that it is neither listed nor in the way of a new save
        of that step; returns its new path."""
        destination = os.fspath(destination)
        os.makedirs(destination, exist_ok=True)
        target = os.path.join(destination, f"{step}")
        n = 1
        while os.path.exists(target):
            target, n = os.path.join(destination, f"{step}.{n}"), n + 1
        os.replace(os.path.join(self.directory, str(step)), target)
        self._manager.reload()
        return target

    def _item(self, step: int, item: str) -> str:
        return os.path.join(self.directory, str(step), item)

    def _read(self, step: int, item: str, args):
        """One item of ``step``; any failure to read it is ``CheckpointCorrupt``."""
        try:
            return self._manager.restore(step, args=ocp.args.Composite(**{item: args}))[item]
        except Exception as error:  # orbax, TensorStore and JSON errors alike: the file is not as written
            text = str(error).strip()
            detail = text.splitlines()[0][:300] if text else type(error).__name__
            raise CheckpointCorrupt(step, _named_file(error, self._item(step, item)), detail) from error

    def _checksums(self, step: int, key: str = "arrays"):
        """The saved checksum(s) ``key`` of ``step``: ``"arrays"`` (a dict by array
        name), ``"layout"`` or ``"metadata"`` (a string); ``None`` when written before
        checksums existed."""
        if not os.path.isdir(self._item(step, _CHECKSUMS)):
            return None
        saved = self._read(step, _CHECKSUMS, ocp.args.JsonRestore())
        if (
            not isinstance(saved, dict)
            or saved.get("algorithm") != "sha256"
            or not isinstance(saved.get("arrays"), dict)
            or key not in saved
        ):
            raise CheckpointCorrupt(step, self._item(step, _CHECKSUMS), "the checksums are unreadable")
        return saved[key]

    def _read_json(self, step: int, item: str):
        """A JSON item of ``step``, verified against its checksum."""
        value = self._read(step, item, ocp.args.JsonRestore())
        expected = self._checksums(step, item)
        if expected is not None and _json_checksum(value) != expected:
            raise CheckpointCorrupt(step, self._item(step, item), f"the {item} does not match its sha256 checksum")
        return value

    def check_template(self, template, step: int | None = None) -> None:
        """Raise ``ValueError`` naming the first leaf that differs when ``template`` does
        not match the layout saved at ``step`` (the latest by default); reads no arrays.
        A layout that cannot be read is ``CheckpointCorrupt``."""
        step = self._resolve(step)
        layout = self._read_json(step, _LAYOUT)
        if not isinstance(layout, dict) or not isinstance(layout.get("leaves"), list):
            raise CheckpointCorrupt(step, self._item(step, _LAYOUT), "the layout is unreadable")
        _check_layout(layout["leaves"], _layout_of(template), f"step {step} in {self.directory}")

    def metadata(self, step: int | None = None) -> dict:
        """The JSON metadata saved with ``step`` (the latest by default)."""
        step = self._resolve(step)
        return self._read_json(step, _METADATA)

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
