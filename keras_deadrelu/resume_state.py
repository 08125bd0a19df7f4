"""What the monitor keeps across a restart, beside ``BackupAndRestore``'s files.

``keras.callbacks.BackupAndRestore`` saves the weights and the optimizer (the
learning rate and iteration count included) and the epoch to resume at. What
lives only in Python is lost when the process dies: a layer swapped to Leaky
ReLU, which sites are above the threshold, the fixes' cooldowns and memory,
the record of what they did. With ``DeadNeuronMonitor(backup_dir=...)`` (the
same folder as ``BackupAndRestore``'s) the monitor writes that state to
``<backup_dir>/dead_neuron_monitor.json`` at the end of every window, before
its fixes act and again after, and restores it when a ``fit`` begins.

Which state goes with the weights ``BackupAndRestore`` restored? Each state
carries the optimizer's iteration count and a fingerprint of the weights and
the learning rate (a hash of their bytes) taken when it was saved:

1. the newest state whose fingerprint equals the restored weights' is theirs
   (whichever of the two callbacks saved first at that window);
2. otherwise the newest state saved at fewer iterations than the restored
   ones (the weights are newer: everything that state records is in them);
3. otherwise none: the weights are older than any state (or fresh), and the
   monitor starts afresh.

The file is read and written with ``tf.io.gfile``, so a ``backup_dir`` on
any filesystem TensorFlow knows (``gs://...``) works like a local one.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> states = [
...     {"iterations": 8, "fingerprint": "a"},
...     {"iterations": 16, "fingerprint": "b"},
...     {"iterations": 16, "fingerprint": "c"},
... ]
>>> write_states(folder, states)
>>> state_for_weights(read_states(folder), iterations=16, fingerprint="b")
{'iterations': 16, 'fingerprint': 'b'}
>>> state_for_weights(states, iterations=12, fingerprint="x")
{'iterations': 8, 'fingerprint': 'a'}
>>> state_for_weights(states, iterations=0, fingerprint="x") is None
True
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import tensorflow as tf

STATE_FILE = "dead_neuron_monitor.json"
STATE_VERSION = 2
#: The newest states kept in the file (the newest last), besides the pinned.
KEPT_STATES = 6
#: Pinned states kept: the two around each of the last two backups.
KEPT_PINNED = 4
#: What ``keras.callbacks.BackupAndRestore`` rewrites at every backup.
BACKUP_METADATA_FILE = "training_metadata.json"


def state_path(backup_dir: str) -> str:
    return tf.io.gfile.join(backup_dir, STATE_FILE)


def _unreadable(path: str, reason: Any) -> list[dict]:
    warnings.warn(
        f"DeadNeuronMonitor: ignoring the unreadable monitor state {path!r} "
        f"({reason}); the monitor starts afresh.",
        stacklevel=4,
    )
    return []


def read_states(backup_dir: str) -> list[dict]:
    """The saved states, oldest first; ``[]`` when there is no usable file."""
    path = state_path(backup_dir)
    if not tf.io.gfile.exists(path):
        return []
    try:
        with tf.io.gfile.GFile(path, "r") as handle:
            saved = json.loads(handle.read())
    except (OSError, ValueError, tf.errors.OpError) as error:
        return _unreadable(path, error)
    if not isinstance(saved, dict) or saved.get("version") != STATE_VERSION:
        version = saved.get("version") if isinstance(saved, dict) else None
        return _unreadable(path, f"version {version!r}, expected {STATE_VERSION}")
    states = saved.get("states")
    if not isinstance(states, list) or not all(
        isinstance(state, dict)
        and isinstance(state.get("iterations"), int)
        and isinstance(state.get("fingerprint"), str)
        for state in states
    ):
        return _unreadable(path, "states without iterations or fingerprint")
    return states


def write_states(backup_dir: str, states: list[dict]) -> None:
    """Writes the states that :func:`kept_states` keeps, atomically."""
    tf.io.gfile.makedirs(backup_dir)
    path = state_path(backup_dir)
    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "w") as handle:
        handle.write(
            json.dumps({"version": STATE_VERSION, "states": kept_states(states)})
        )
    tf.io.gfile.rename(temporary, path, overwrite=True)


def backup_marker(backup_dir: str) -> str | None:
    """What ``BackupAndRestore`` last wrote in `backup_dir` (its training
    metadata, rewritten at every backup), or None where it wrote nothing."""
    path = tf.io.gfile.join(backup_dir, BACKUP_METADATA_FILE)
    try:
        with tf.io.gfile.GFile(path, "r") as handle:
            return handle.read()
    except (OSError, tf.errors.OpError):
        return None


def pin_around_backup(states: list[dict], state: dict) -> None:
    """Pins `state` and the one before it when a backup was written between
    them (the backup's marker changed): the weights that backup restores go
    with one of the two, however many windows pass before a restart."""
    if states and states[-1].get("backup_marker") != state.get("backup_marker"):
        states[-1]["pinned"] = True
        state["pinned"] = True


def kept_states(states: list[dict]) -> list[dict]:
    """The newest :data:`KEPT_STATES` states and the newest
    :data:`KEPT_PINNED` pinned ones, oldest first.

    >>> states = [{"i": i, "pinned": i in (1, 2)} for i in range(10)]
    >>> [state["i"] for state in kept_states(states)]
    [1, 2, 4, 5, 6, 7, 8, 9]
    """
    pinned = [state for state in states if state.get("pinned")]
    pinned = pinned[max(len(pinned) - KEPT_PINNED, 0) :]
    newest = states[max(len(states) - KEPT_STATES, 0) :]
    kept = {id(state) for state in (*newest, *pinned)}
    return [state for state in states if id(state) in kept]


def state_for_weights(
    states: list[dict], iterations: int, fingerprint: str
) -> dict | None:
    """The state that goes with weights at `iterations` with `fingerprint`."""
    matching = [state for state in states if state["fingerprint"] == fingerprint]
    if matching:
        return matching[-1]
    older = [state for state in states if state["iterations"] < iterations]
    return older[-1] if older else None


def weights_fingerprint(variables: Iterable[Any]) -> str:
    """A hash of the variables' values (exact: their bytes, read once)."""
    digest = hashlib.blake2b(digest_size=16)
    for variable in variables:
        digest.update(np.ascontiguousarray(np.asarray(variable)).tobytes())
    return digest.hexdigest()
