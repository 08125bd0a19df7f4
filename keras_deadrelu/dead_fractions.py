"""``dead_fractions``: one probe measurement of a model, outside ``fit``."""

from __future__ import annotations

import warnings
from typing import Any

from keras_deadrelu._validation import check_choice
from keras_deadrelu.layer_graph import without_shared_activation_sites
from keras_deadrelu.measurement import SiteMeasurement
from keras_deadrelu.probe import as_batches, check_batches_fit, first_batch
from keras_deadrelu.sites import find_sites, select_sites
from keras_deadrelu.threshold_alerts import DeadNeuronWarning
from keras_deadrelu.unit_statistics import WindowStatistics


def dead_fractions(
    model: Any,
    data: Any,
    batch_size: int | None = None,
    *,
    layers: list[str] | None = None,
    granularity: str = "channel",
    steps: int | None = None,
) -> dict[str, float]:
    """Returns ``{site name: dead fraction}`` of `model` over `data`.

    Runs `model` in inference mode over `data` in batches (memory O(units)),
    and counts, per site, the units whose output was never > 0 on any input.
    Use it to see whether a model is born dead before training, or inside a
    custom training loop.

    Args:
        model: a Keras model.
        data: an array, a tuple ``(x, y)``, a dict of arrays, a batched
            ``tf.data.Dataset``, a ``keras.utils.PyDataset``, or a generator
            function (with `steps`). Units that produce NaN or inf on it are
            named in a warning; they count neither as dead nor as alive.
        batch_size: batch size for array data (default 256).
        layers: site names to measure (default: every site).
        granularity: ``"channel"`` (default) or ``"unit"`` (per position).
        steps: number of batches to read (needed for generator functions).

    Example:

    >>> import numpy as np, keras
    >>> import keras_deadrelu as kd
    >>> model = keras.Sequential([
    ...     keras.Input((3,)),
    ...     keras.layers.Dense(4, activation="relu", name="hidden",
    ...                        bias_initializer=keras.initializers.Constant(-5.0),
    ...                        kernel_initializer="zeros"),
    ... ])
    >>> kd.dead_fractions(model, np.ones((10, 3), "float32"))
    {'hidden': 1.0}
    """
    window = probe_window(
        model, data, batch_size, layers=layers, granularity=granularity, steps=steps
    )
    if window is None:
        return {}
    nan_sites = [site for site in window.sites if site.nan_count]
    if nan_sites:
        named = ", ".join(
            f"{site.name} ({site.nan_count}/{site.unit_count})" for site in nan_sites
        )
        warnings.warn(
            f"Units produced NaN or inf on this data: {named}. They are counted "
            "neither as dead nor as alive.",
            DeadNeuronWarning,
            stacklevel=2,
        )
    return window.dead_fractions()


def probe_window(
    model: Any,
    data: Any,
    batch_size: int | None = None,
    *,
    layers: list[str] | None = None,
    granularity: str = "channel",
    steps: int | None = None,
) -> WindowStatistics | None:
    """The statistics of one probe pass of `model` over `data` (the arguments
    of :func:`dead_fractions`), or None (with a warning) for a model without
    sites."""
    check_choice("granularity", granularity, ("channel", "unit"))
    batches = as_batches(
        data,
        batch_size=batch_size,
        steps=steps,
        names=("data", "batch_size", "steps"),
        model_inputs=len(getattr(model, "inputs", None) or []) or None,
    )
    sites = without_shared_activation_sites(select_sites(find_sites(model), layers))
    if not sites:
        warnings.warn(
            "This model has no ReLU-family site; there is nothing to measure.",
            DeadNeuronWarning,
            stacklevel=3,
        )
        return None
    check_batches_fit(model, first_batch(batches), name="data")
    measurement = SiteMeasurement(
        model, sites, granularity, probe_batches=batches, exclusive=False
    )
    measurement.install()
    try:
        return measurement.close_window()
    finally:
        measurement.uninstall()
