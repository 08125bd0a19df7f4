"""Fix: swap a dead ReLU site to Leaky ReLU, in place, mid-fit."""

from __future__ import annotations

from typing import Any

import keras

from keras_deadrelu._validation import check_number
from keras_deadrelu.fixes.base import Fix
from keras_deadrelu.fixes.leaky_relu_activation import LeakyReLUActivation
from keras_deadrelu.sites import Site, layer_kind
from keras_deadrelu.unit_statistics import SiteStatistics

#: Site kinds that this fix turns into Leaky ReLU (relu6 is left alone: the
#: swap would silently drop its cap at 6; leaky sites are leaky already).
SWAPPABLE_KINDS = ("relu",)


def rebuild_compiled_functions(model: Any) -> None:
    """Makes Keras trace its train/test/predict functions again at next use."""
    model.make_train_function(force=True)
    if getattr(model, "test_function", None) is not None:
        model.make_test_function(force=True)
    if getattr(model, "predict_function", None) is not None:
        model.make_predict_function(force=True)


class SwapToLeakyReLU(Fix):
    """Gives a dead ReLU site a negative slope, so its units get gradients again.

    - A layer with ``activation=relu`` (Dense, Conv, ...) or an
      ``Activation("relu")`` layer gets a :class:`LeakyReLUActivation`.
    - A Keras ``ReLU`` layer gets ``negative_slope`` set (it is Keras's own
      leaky ReLU then, and saves as such).
    - This package's ``LeakyReLU`` with slope 0 gets its slope variable set:
      no retrace needed.

    Weights and optimizer state are left as they are. Where the graph changes,
    Keras's compiled functions are rebuilt, so the next step trains with the
    new activation. A site already leaky (slope > 0), a relu6 (the swap would
    drop its cap), or of another kind (PReLU, ELU, SELU), is left alone.

    >>> SwapToLeakyReLU(negative_slope=0.01)
    SwapToLeakyReLU(negative_slope=0.01, cooldown=0)
    """

    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01, cooldown: int = 0):
        super().__init__(cooldown)
        self.negative_slope = check_number(
            "negative_slope", negative_slope, minimum=0, minimum_inclusive=False
        )
        # Site name -> slope, for every site this fix swapped.
        self._swapped: dict[str, float] = {}

    def apply(
        self, model: Any, site: Site, statistics: SiteStatistics
    ) -> tuple[Any, Any, str] | None:
        result = self._swap(model, site, self.negative_slope)
        if result is not None:
            self._swapped[site.name] = self.negative_slope
        return result

    def state(self) -> dict[str, Any]:
        return {"swapped": dict(self._swapped)}

    def restore(self, model: Any, sites: dict[str, Site], state: dict) -> None:
        """Swaps again the sites swapped before the restart (the activation is
        Python state: ``BackupAndRestore`` does not save it)."""
        for name, slope in state.get("swapped", {}).items():
            if name in sites:
                self._swap(model, sites[name], float(slope))
                self._swapped[name] = float(slope)

    def _swap(
        self, model: Any, site: Site, slope: float
    ) -> tuple[Any, Any, str] | None:
        from keras_deadrelu.layers import LeakyReLU as DeadReluLeakyReLU

        layer = site.layer
        if isinstance(layer, DeadReluLeakyReLU):
            before = layer.negative_slope
            if before > 0:
                return None
            layer.set_negative_slope(slope)
            return before, slope, "slope variable set, no retrace"
        if layer_kind(layer) not in SWAPPABLE_KINDS:
            return None
        if isinstance(layer, keras.layers.ReLU):
            before = float(layer.negative_slope)
            if before > 0:
                return None
            layer.negative_slope = slope
            rebuild_compiled_functions(model)
            return before, slope, "ReLU layer given a negative slope"
        if isinstance(layer, keras.layers.LeakyReLU):
            return None
        activation = getattr(layer, "activation", None)
        if activation is None or isinstance(activation, LeakyReLUActivation):
            return None
        before = getattr(activation, "__name__", repr(activation))
        layer.activation = LeakyReLUActivation(slope)
        rebuild_compiled_functions(model)
        return before, f"leaky_relu({slope:g})", "activation swapped"

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope, "cooldown": self.cooldown}
