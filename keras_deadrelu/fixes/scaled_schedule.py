"""A learning-rate schedule multiplied by a constant, for `LowerLearningRate`."""

from __future__ import annotations

from typing import Any

import keras

from keras_deadrelu._validation import check_number


@keras.saving.register_keras_serializable(package="keras_deadrelu")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``scale * schedule(step)``, floored at `min_lr`, but never above
    ``schedule(step)`` itself: where the schedule goes below `min_lr` (a decay
    to 0, a warm-up from 0), the rate follows it, so a lowered rate is never
    higher than the user's own.

    Args:
        schedule: the learning-rate schedule to scale.
        scale: multiplier, finite and > 0.
        min_lr: floor for the learning rate, finite and >= 0.

    >>> import keras
    >>> inner = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    >>> round(float(ScaledSchedule(inner, scale=0.5)(0)), 6)
    0.05
    >>> round(float(ScaledSchedule(inner, scale=0.5, min_lr=0.06)(0)), 6)
    0.06
    >>> round(float(ScaledSchedule(inner, scale=0.5, min_lr=0.06)(40)), 6)
    0.00625
    """

    def __init__(
        self,
        schedule: keras.optimizers.schedules.LearningRateSchedule,
        scale: float,
        min_lr: float = 0.0,
    ):
        self.schedule = schedule
        self.scale = check_number("scale", scale, minimum=0, minimum_inclusive=False)
        self.min_lr = check_number("min_lr", min_lr, minimum=0)

    def __call__(self, step: Any) -> Any:
        rate = self.schedule(step)
        floor = keras.ops.minimum(rate, self.min_lr)
        return keras.ops.maximum(rate * self.scale, floor)

    def get_config(self) -> dict[str, Any]:
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "scale": self.scale,
            "min_lr": self.min_lr,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ScaledSchedule:
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)
