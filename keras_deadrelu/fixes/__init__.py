"""Fixes the monitor can apply when a site's dead fraction reaches the threshold.

``DeadNeuronMonitor(fix=...)`` takes a name, a fix object, or a list of them,
applied in order:

- ``"lower_lr"`` / :class:`LowerLearningRate`
- ``"leaky_relu"`` / :class:`SwapToLeakyReLU`
- ``"revive"`` / :class:`ReviveUnits`

>>> for fix in resolve_fixes(["lower_lr", SwapToLeakyReLU(0.05)]):
...     print(fix)
LowerLearningRate(factor=0.5, min_lr=1e-06, cooldown=1)
SwapToLeakyReLU(negative_slope=0.05, cooldown=0)
"""

from __future__ import annotations

from typing import Any

from keras_deadrelu.fixes.base import Fix
from keras_deadrelu.fixes.events import FixEvent
from keras_deadrelu.fixes.leaky_relu_activation import LeakyReLUActivation
from keras_deadrelu.fixes.lower_learning_rate import LowerLearningRate
from keras_deadrelu.fixes.revive_units import ReviveUnits
from keras_deadrelu.fixes.scaled_schedule import ScaledSchedule
from keras_deadrelu.fixes.swap_to_leaky_relu import SwapToLeakyReLU

FIXES_BY_NAME = {
    "lower_lr": LowerLearningRate,
    "leaky_relu": SwapToLeakyReLU,
    "revive": ReviveUnits,
}


def resolve_fixes(fix: Any) -> list[Fix]:
    """Turns the monitor's `fix` argument into a list of fix objects."""
    if fix is None:
        return []
    items = list(fix) if isinstance(fix, (list, tuple)) else [fix]
    fixes = []
    for item in items:
        if isinstance(item, Fix):
            fixes.append(item)
        elif isinstance(item, str) and item in FIXES_BY_NAME:
            fixes.append(FIXES_BY_NAME[item]())
        else:
            known = ", ".join(repr(name) for name in FIXES_BY_NAME)
            raise ValueError(
                f"Argument `fix` must be None, a fix name ({known}), a fix object, "
                f"or a list of them. Received: fix={fix!r}"
            )
    # This package's fixes, each at most once (a fix of your own may repeat).
    kinds = [type(each) for each in fixes if type(each) in FIXES_BY_NAME.values()]
    repeated = sorted({kind.__name__ for kind in kinds if kinds.count(kind) > 1})
    if repeated:
        raise ValueError(
            "Argument `fix` lists a fix more than once (it would act twice per "
            f"window): {', '.join(repeated)}. Received: fix={fix!r}"
        )
    return fixes


__all__ = [
    "FIXES_BY_NAME",
    "Fix",
    "FixEvent",
    "LeakyReLUActivation",
    "LowerLearningRate",
    "ReviveUnits",
    "ScaledSchedule",
    "SwapToLeakyReLU",
    "resolve_fixes",
]
