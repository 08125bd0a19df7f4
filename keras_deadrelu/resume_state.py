"""What the monitor keeps across a restart, beside ``BackupAndRestore``'s files.

``keras.callbacks.BackupAndRestore`` saves the weights and the optimizer (the
learning rate and iteration count included) and the epoch to resume at. What
lives only in Python is lost when the process dies: a layer swapped to Leaky
ReLU, which sites are above the threshold, the fixes' cooldowns and memory,
the record of what they did. With ``DeadNeuronMonitor(backup_dir=...)`` (the
same folder as ``BackupAndRestore``'s) the monitor writes that state to
``<backup_dir>/dead_neuron_monitor.json`` at the end of every window, and a
new monitor restores it when the resumed ``fit`` begins its first epoch.

The file keeps the last few states, each tagged with the epoch a resumed fit
would start at after it (``resume_epoch``); the monitor restores the latest
one whose ``resume_epoch`` is not after the epoch ``fit`` resumes at, so a
crash between the monitor's save and ``BackupAndRestore``'s never restores
a state newer than the weights.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> write_states(folder, [{"resume_epoch": 1}, {"resume_epoch": 2}])
>>> state_for_epoch(read_states(folder), 1)
{'resume_epoch': 1}
>>> state_for_epoch(read_states(folder), 0) is None
True
"""

from __future__ import annotations

import json
import os
import warnings

STATE_FILE = "dead_neuron_monitor.json"
STATE_VERSION = 1
#: States kept in the file (the newest last).
KEPT_STATES = 4


def state_path(backup_dir: str) -> str:
    return os.path.join(backup_dir, STATE_FILE)


def read_states(backup_dir: str) -> list[dict]:
    """The saved states, oldest first; ``[]`` when there is no usable file."""
    path = state_path(backup_dir)
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
        if saved.get("version") != STATE_VERSION:
            raise ValueError(f"version {saved.get('version')!r}")
        states = saved["states"]
        if not isinstance(states, list):
            raise ValueError("no list of states")
        return states
    except (OSError, ValueError, KeyError, AttributeError) as error:
        warnings.warn(
            f"DeadNeuronMonitor: ignoring the unreadable monitor state {path!r} "
            f"({error}); the monitor starts afresh.",
            stacklevel=3,
        )
        return []


def write_states(backup_dir: str, states: list[dict]) -> None:
    """Writes the newest :data:`KEPT_STATES` states, atomically."""
    os.makedirs(backup_dir, exist_ok=True)
    path = state_path(backup_dir)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump({"version": STATE_VERSION, "states": states[-KEPT_STATES:]}, handle)
    os.replace(temporary, path)


def state_for_epoch(states: list[dict], epoch: int) -> dict | None:
    """The newest state a fit resuming at `epoch` may restore, if any."""
    usable = [state for state in states if state.get("resume_epoch", 1 << 62) <= epoch]
    return usable[-1] if usable else None
