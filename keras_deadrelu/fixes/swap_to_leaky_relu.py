"""Fix: swap a dead ReLU site to Leaky ReLU, in place, mid-fit."""

from __future__ import annotations

import warnings
from typing import Any

import keras

from keras_deadrelu._validation import check_number
from keras_deadrelu.fixes.base import Fix
from keras_deadrelu.fixes.leaky_relu_activation import LeakyReLUActivation
from keras_deadrelu.sites import (
    Site,
    is_library_activation,
    layer_kind,
    walk_layers,
)
from keras_deadrelu.threshold_alerts import DeadNeuronWarning
from keras_deadrelu.unit_statistics import SiteStatistics

#: Site kinds that this fix turns into Leaky ReLU (relu6 is left alone: the
#: swap would silently drop its cap at 6; leaky sites are leaky already).
SWAPPABLE_KINDS = ("relu",)


def _rebuilds_its_layers(container: Any) -> bool:
    """Whether `container`'s config rebuilds the layers inside it from its own
    ``__init__`` (a subclassed model or custom layer) rather than saving them
    (Functional and Sequential models, and Keras's own wrappers, save each
    inner layer's config, activation included)."""
    return type(container).__module__.split(".")[0] != "keras"


def unsaved_container(model: Any, site: Site) -> Any | None:
    """The outermost model or layer holding `site` whose saved config does not
    carry the site's activation (it builds the site's layer in ``__init__``),
    or None when a ``.keras`` file saves the swap."""
    containers = [model] + [
        layer for name, layer in walk_layers(model) if site.name.startswith(f"{name}/")
    ]
    return next(
        (container for container in containers if _rebuilds_its_layers(container)),
        None,
    )


def _users_activation(layer: Any) -> Any | None:
    """The activation of a ReLU site's layer when it is a function of the
    user's rather than a library's (None otherwise)."""
    if layer_kind(layer) not in SWAPPABLE_KINDS:
        return None
    if isinstance(layer, keras.layers.ReLU):
        return None  # the layer itself is swapped (its slope), not a function
    activation = getattr(layer, "activation", None)
    if activation is None or is_library_activation(activation):
        return None
    return activation


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

    The swap is saved with a Functional or Sequential model. A subclassed
    model (or custom layer) builds its layers in ``__init__`` when loaded, so
    its swapped activation is not saved (this package's ``LeakyReLU`` keeps
    its slope in a weight, which is): the fix warns once
    (:class:`~keras_deadrelu.DeadNeuronWarning`) when it swaps such a site.

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
        self._warned_not_saved = False

    def sites_out_of_reach(self, sites: list[Site]) -> dict[str, str]:
        """ReLU sites whose activation is a function of the user's (named
        "relu"): swapping it would drop whatever else it does (a cap, a
        shift), changing the live units' outputs too."""
        return {
            site.name: "its activation is a function of the user's, which the "
            "swap would replace whole"
            for site in sites
            if _users_activation(site.layer) is not None
        }

    def apply(
        self, model: Any, site: Site, statistics: SiteStatistics
    ) -> tuple[Any, Any, str] | None:
        result = self._swap(model, site, self.negative_slope)
        if result is not None:
            self._swapped[site.name] = self.negative_slope
            self._warn_if_not_saved(model, site)
        return result

    def _warn_if_not_saved(self, model: Any, site: Site) -> None:
        """Warns once when the swap of `site` is not saved with the model."""
        from keras_deadrelu.layers import LeakyReLU as DeadReluLeakyReLU

        if self._warned_not_saved or isinstance(site.layer, DeadReluLeakyReLU):
            return  # that layer's slope is a weight: saved with the weights
        container = unsaved_container(model, site)
        if container is None:
            return
        self._warned_not_saved = True
        warnings.warn(
            f"fix='leaky_relu' swapped site {site.name!r} to Leaky ReLU, but "
            f"{container.name!r} ({type(container).__name__}) is a subclassed "
            "model or custom layer that builds its layers in __init__: the swap "
            "is not saved with the model (a saved .keras file loads with ReLU "
            "there, weights kept). To keep it, use kd.layers.LeakyReLU(0.0) as "
            "that activation in the model (the fix sets its slope, a weight "
            "saved with the model), or save weights only (model.save_weights) "
            "and load them into a model built with a leaky activation there.",
            DeadNeuronWarning,
            stacklevel=2,
        )

    def forget(self) -> None:
        self._swapped = {}
        self._warned_not_saved = False

    def state(self) -> dict[str, Any]:
        return {"swapped": dict(self._swapped)}

    def restore(self, model: Any, sites: dict[str, Site], state: dict) -> None:
        """Swaps again the sites swapped before the restart (the activation is
        Python state: ``BackupAndRestore`` does not save it)."""
        for name, slope in state.get("swapped", {}).items():
            if name in sites:
                if self._swap(model, sites[name], float(slope)) is not None:
                    self._warn_if_not_saved(model, sites[name])
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
        if _users_activation(layer) is not None:
            return None  # (named once when fit starts)
        before = getattr(activation, "__name__", repr(activation))
        layer.activation = LeakyReLUActivation(slope)
        rebuild_compiled_functions(model)
        return before, f"leaky_relu({slope:g})", "activation swapped"

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope, "cooldown": self.cooldown}
