"""The record of one action a fix took."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def json_ready(value: Any) -> Any:
    """A copy of `value` that ``json.dumps`` takes: NumPy scalars become Python
    numbers, non-finite floats None, tuples lists, other objects their text.

    >>> json_ready({"a": np.float32(0.5), "b": (1, float("nan")), "c": print})
    {'a': 0.5, 'b': [1, None], 'c': '<built-in function print>'}
    """
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return str(value)


@dataclasses.dataclass(frozen=True)
class FixEvent:
    """One action of a fix, as kept in ``DeadNeuronMonitor.events``.

    Attributes:
        step: the TensorBoard step of the window that triggered it.
        epoch: the epoch (0-based) during which it acted.
        site: the site it acted for.
        fix: the fix's name, e.g. ``"lower_lr"``.
        before: the figure the fix changed, before (learning rate, slope, ...).
        after: the same figure after.
        dead_fraction: the site's dead fraction that triggered the fix.
        message: one human-readable line saying what was done and why.
    """

    step: int
    epoch: int
    site: str
    fix: str
    before: Any
    after: Any
    dead_fraction: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def as_json_dict(self) -> dict[str, Any]:
        """:meth:`as_dict` with every value JSON-ready (see :func:`json_ready`)."""
        return json_ready(self.as_dict())
