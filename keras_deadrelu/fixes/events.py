"""The record of one action a fix took."""

from __future__ import annotations

import dataclasses
from typing import Any


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
