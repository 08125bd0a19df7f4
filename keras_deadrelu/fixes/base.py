"""What every fix has: a name, a cooldown, and an `apply` for one site."""

from __future__ import annotations

from typing import Any

from keras_deadrelu._validation import check_int
from keras_deadrelu.sites import Site
from keras_deadrelu.unit_statistics import SiteStatistics, WindowStatistics


class Fix:
    """Base class of the fixes the monitor applies when a site is too dead.

    Subclasses set `name` and implement :meth:`apply`. `cooldown` is the number
    of windows to wait after acting before the fix may act again (on any
    site for model-wide fixes, per site otherwise).
    """

    name = "fix"
    #: Whether one action covers the whole model (e.g. the learning rate).
    model_wide = False

    def __init__(self, cooldown: int = 0):
        self.cooldown = check_int("cooldown", cooldown, minimum=0)

    def check_model(self, model: Any) -> None:
        """Raises ValueError in ``on_train_begin`` when the fix cannot work."""

    def sites_out_of_reach(self, sites: list[Site]) -> dict[str, str]:
        """The sites this fix can never act on, each with the reason (the
        monitor warns once, in ``on_train_begin``). None here."""
        return {}

    def apply(
        self, model: Any, site: Site, statistics: SiteStatistics
    ) -> tuple[Any, Any, str] | None:
        """Acts for `site`, whose window `statistics` crossed the threshold.

        Returns ``(before, after, what was done)``, or None when there was
        nothing to do.
        """
        raise NotImplementedError

    def observe(self, window: WindowStatistics) -> None:
        """Sees every window's statistics, after the fixes acted (no-op here)."""

    def state(self) -> dict[str, Any]:
        """What the fix must remember across a restart (JSON-friendly).

        Saved by ``DeadNeuronMonitor(backup_dir=...)``; weights and optimizer
        variables are ``BackupAndRestore``'s business, not the fix's.
        """
        return {}

    def restore(self, model: Any, sites: dict[str, Site], state: dict) -> None:
        """Takes back a :meth:`state` on a model rebuilt after a restart."""

    def forget(self) -> None:
        """Forgets what it learned of a model: its monitor is now used on
        another model."""

    def get_config(self) -> dict[str, Any]:
        return {"cooldown": self.cooldown}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"
