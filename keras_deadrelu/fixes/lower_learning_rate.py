"""Fix: lower the learning rate (the cure for cause 1, a rate too high)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_deadrelu._validation import check_number
from keras_deadrelu.fixes.base import Fix
from keras_deadrelu.fixes.scaled_schedule import ScaledSchedule
from keras_deadrelu.sites import Site
from keras_deadrelu.threshold_alerts import DeadNeuronWarning
from keras_deadrelu.unit_statistics import SiteStatistics, WindowStatistics


def current_learning_rate(optimizer: Any) -> float:
    """The optimizer's learning rate now, as a float (schedules evaluated)."""
    return float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))


def innermost_optimizer(optimizer: Any) -> Any:
    """The optimizer that owns the learning rate (a LossScaleOptimizer, as
    under mixed precision, wraps it)."""
    while getattr(optimizer, "inner_optimizer", None) is not None:
        optimizer = optimizer.inner_optimizer
    return optimizer


class LowerLearningRate(Fix):
    """Multiplies the learning rate by `factor`, never below `min_lr`.

    Works with a float learning rate (the variable is assigned: no retrace)
    and with a ``LearningRateSchedule`` (Keras refuses to assign one, so the
    schedule is wrapped in a :class:`ScaledSchedule` and the train function is
    rebuilt). After acting it waits `cooldown` windows.

    A lower learning rate stops *more* units from dying; it cannot bring dead
    ReLU units back (they get no gradient at any rate). So after it acts, it
    acts again for a site that had dead units then only while units of that
    site are still dying: when its dead fraction rose since the previous
    window. One action covers every site (the rate is the model's): several
    sites dead at once lower the rate once, not once per site. Pair it with
    ``"revive"`` or ``"leaky_relu"`` to bring the dead units back.

    Args:
        factor: multiplier in (0, 1).
        min_lr: floor for the learning rate, >= 0.
        cooldown: windows to wait after acting.

    >>> LowerLearningRate(factor=0.5, min_lr=1e-6, cooldown=1)
    LowerLearningRate(factor=0.5, min_lr=1e-06, cooldown=1)
    """

    name = "lower_lr"
    model_wide = True

    def __init__(self, factor: float = 0.5, min_lr: float = 1e-6, cooldown: int = 1):
        super().__init__(cooldown)
        self.factor = check_number(
            "factor",
            factor,
            minimum=0,
            maximum=1,
            minimum_inclusive=False,
            maximum_inclusive=False,
        )
        self.min_lr = check_number("min_lr", min_lr, minimum=0)
        self._acted_for: set[str] = set()
        self._acted_this_window = False
        self._previous_dead_fraction: dict[str, float] = {}
        self._model_schedule: Any = None  # the ScaledSchedule this fix set, if any

    def check_model(self, model: Any) -> None:
        optimizer = innermost_optimizer(getattr(model, "optimizer", None))
        if getattr(optimizer, "_inner_optimizers", None) is not None:
            raise ValueError(
                "fix='lower_lr' lowers the model's one learning rate; a "
                f"{type(optimizer).__name__} has one per group of variables, "
                "which it does not choose between. Lower them yourself, or "
                "use fix='revive' or fix='leaky_relu', which work with it. "
                f"Received: optimizer={optimizer!r}"
            )
        if optimizer is None or not hasattr(optimizer, "learning_rate"):
            raise ValueError(
                "fix='lower_lr' needs a compiled model whose optimizer has a "
                f"learning rate. Received an optimizer: {optimizer!r}"
            )
        rate = getattr(optimizer, "_learning_rate", None)
        if not isinstance(
            rate, keras.optimizers.schedules.LearningRateSchedule
        ) and not hasattr(rate, "assign"):
            raise ValueError(
                "fix='lower_lr' can lower a float learning rate or scale a "
                "LearningRateSchedule, not a learning rate given as a plain "
                f"callable. Received: learning_rate={rate!r}"
            )
        now = current_learning_rate(optimizer)
        # (A schedule may start low, as a warm-up from 0: not warned about.)
        if hasattr(rate, "assign") and np.float32(now) <= np.float32(self.min_lr):
            warnings.warn(
                f"fix='lower_lr' has min_lr={self.min_lr:g}, but the learning "
                f"rate is {now:g} already: it cannot lower it (unless a schedule "
                "raises it above min_lr later).",
                DeadNeuronWarning,
                stacklevel=2,
            )

    def apply(
        self, model: Any, site: Site, statistics: SiteStatistics
    ) -> tuple[float, float, str] | None:
        optimizer = innermost_optimizer(model.optimizer)
        before = current_learning_rate(optimizer)
        # The rate is read as float32: 0.001 reads 0.0010000000475, above the
        # Python float min_lr=0.001. Compared as float32, a rate at the floor
        # is at the floor, and a step that changes nothing is not taken.
        if np.float32(before) <= np.float32(self.min_lr):
            return None
        if np.float32(max(before * self.factor, self.min_lr)) == np.float32(before):
            return None
        previous = self._previous_dead_fraction.get(site.name)
        if site.name in self._acted_for and (
            previous is None or statistics.dead_fraction <= previous
        ):
            return None  # no longer dying: a lower rate would only slow training
        self._acted_for.add(site.name)
        self._acted_this_window = True
        schedule = optimizer._learning_rate  # the schedule or the variable
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            self._scale_schedule(model, optimizer, lambda scale: scale * self.factor)
        else:
            optimizer.learning_rate = max(before * self.factor, self.min_lr)
        after = current_learning_rate(optimizer)
        return before, after, f"learning rate {before:.3g} -> {after:.3g}"

    def observe(self, window: WindowStatistics) -> None:
        for site in window.sites:
            if self._acted_this_window and site.dead_fraction > 0:
                # The rate is the model's: this window's action was taken
                # for every site with dead units, not only the one it named.
                self._acted_for.add(site.name)
            self._previous_dead_fraction[site.name] = site.dead_fraction
        self._acted_this_window = False

    def forget(self) -> None:
        self._acted_for = set()
        self._acted_this_window = False
        self._previous_dead_fraction = {}
        self._model_schedule = None

    def state(self) -> dict[str, Any]:
        """Its memory, and a schedule's scale (a float learning rate is an
        optimizer variable: ``BackupAndRestore`` restores it)."""
        scale = getattr(self._model_schedule, "scale", None)
        return {
            "acted_for": sorted(self._acted_for),
            "previous_dead_fraction": dict(self._previous_dead_fraction),
            "schedule_scale": scale,
        }

    def restore(self, model: Any, sites: dict[str, Site], state: dict) -> None:
        self._acted_for = set(state.get("acted_for", []))
        self._previous_dead_fraction = dict(state.get("previous_dead_fraction", {}))
        saved = state.get("schedule_scale")
        optimizer = innermost_optimizer(model.optimizer)
        if saved is not None and isinstance(
            optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule
        ):
            self._scale_schedule(model, optimizer, lambda _: float(saved))
        self._model_schedule = optimizer._learning_rate

    def _scale_schedule(
        self, model: Any, optimizer: Any, new_scale: Callable[[float], float]
    ) -> None:
        """Wraps the optimizer's schedule in a :class:`ScaledSchedule` of scale
        ``new_scale(current scale)`` (1 for a plain schedule); retraces."""
        schedule, scale = optimizer._learning_rate, 1.0
        if isinstance(schedule, ScaledSchedule):
            schedule, scale = schedule.schedule, schedule.scale
        optimizer.learning_rate = ScaledSchedule(
            schedule, new_scale(scale), self.min_lr
        )
        self._model_schedule = optimizer._learning_rate
        model.make_train_function(force=True)

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor, "min_lr": self.min_lr, "cooldown": self.cooldown}
