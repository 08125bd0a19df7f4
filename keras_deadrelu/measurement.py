"""Measuring a model's sites over a window, streaming or by probe.

:class:`SiteMeasurement` wires the pieces: it hooks the sites
(:mod:`~keras_deadrelu.instrumentation`), owns the counters
(:mod:`~keras_deadrelu.counters`), optionally runs the probe
(:mod:`~keras_deadrelu.probe`), and turns the counters into statistics
(:mod:`~keras_deadrelu.unit_statistics`) when a window closes.
"""

from __future__ import annotations

import weakref
from typing import Any

import keras
import numpy as np

from keras_deadrelu.counters import CounterRecorder
from keras_deadrelu.host_array import host_array
from keras_deadrelu.instrumentation import Instrumentation
from keras_deadrelu.layer_graph import incoming_layer, output_axis
from keras_deadrelu.probe import Probe
from keras_deadrelu.sites import Site, layer_kind
from keras_deadrelu.unit_statistics import WindowStatistics, site_statistics

# The measurement currently installed on each model, so that a fit that died
# before `on_train_end` can be cleaned up by the next one.
_INSTALLED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class SiteMeasurement:
    """Counts what a model's sites output, and summarises each window.

    Args:
        model: the Keras model.
        sites: the sites to measure.
        granularity: ``"channel"`` or ``"unit"``.
        dormant_tau: the ReDo threshold on the dormancy score.
        probe_batches: probe data from :func:`keras_deadrelu.probe.as_batches`;
            None measures the training steps themselves (streaming).
        exclusive: a monitor's measurement (one per model at a time); False
            for a one-off probe such as ``kd.dead_fractions``, which may run
            beside a monitor's.
    """

    def __init__(
        self,
        model: Any,
        sites: list[Site],
        granularity: str = "channel",
        dormant_tau: float = 0.0,
        probe_batches: Any = None,
        exclusive: bool = True,
    ):
        self.model = model
        self.sites = list(sites)
        self.dormant_tau = dormant_tau
        self.exclusive = exclusive
        self.streaming = probe_batches is None
        # Streaming, a ReLU conv site's firing rate is estimated from the
        # first sample of each batch on a CPU without XLA (its dead units
        # stay exact): counting every value costs more than the step allows.
        # A plain ReLU site's sums are taken by its gradient, in the
        # backward pass the step runs anyway, where that is possible.
        self.recorder = CounterRecorder(
            granularity,
            sample_positive_counts=self.streaming,
            count_in_backward=self.streaming,
        )
        self.instrumentation = Instrumentation(
            model,
            self.sites,
            train_recorder=self.recorder if self.streaming else None,
            recorder=self.recorder,
        )
        self._incoming: dict[str, Any] = {}
        self.find_incoming_layers()
        self._probe = None
        if probe_batches is not None:
            self._probe = Probe(
                model,
                probe_batches,
                self.recorder,
                jit_compile=getattr(model, "jit_compile", False) is True,
            )

    def find_incoming_layers(self) -> None:
        """Finds the layer whose weights feed each site (for the NaN-weights
        check). Again once a model that ``fit`` builds is built: before, its
        layers have no weights."""
        self._incoming = {
            site.name: layer
            for site in self.sites
            if (layer := incoming_layer(site) or _depthwise_site_layer(site))
            is not None
        }

    def install(self) -> None:
        """Hooks the sites; in streaming mode the train function is rebuilt.

        A monitor's measurement (`exclusive`) first removes one that a
        previous monitor left behind when its ``fit`` died.
        """
        if self.exclusive:
            stale = _INSTALLED.get(self.model)
            if stale is not None and stale is not self:
                stale.uninstall()
        self.instrumentation.install()
        if self.exclusive:
            _INSTALLED[self.model] = self
        if self.streaming:
            self._rebuild_train_function()

    def uninstall(self) -> None:
        """Unhooks the sites; the model is left as it was before `install`."""
        was_installed = self.instrumentation.installed
        self.instrumentation.uninstall()
        if _INSTALLED.get(self.model) is self:
            del _INSTALLED[self.model]
        if was_installed and self.streaming:
            # Drop the instrumented train function; fit makes a fresh one.
            self.model.train_function = None

    def _rebuild_train_function(self) -> None:
        make_train_function = getattr(self.model, "make_train_function", None)
        if make_train_function is not None:
            make_train_function(force=True)

    def _nonfinite_weights(self, site: Site, counters: Any) -> np.ndarray | None:
        """Per-unit mask of NaN/inf incoming weights (checked on the host, once
        per window), shaped like the site's units."""
        layer = self._incoming.get(site.name)
        if layer is None:
            return None
        per_channel = _nonfinite_kernel_channels(layer)
        if per_channel is None:
            return None
        bias = host_array(getattr(layer, "bias", None))
        if bias is not None:
            per_channel |= ~np.isfinite(bias)
        unit_shape = np.shape(counters.positive_count)
        if len(unit_shape) == 1:
            return per_channel if unit_shape[0] == per_channel.size else None
        # Per-position units: spread the channel's mask over its positions.
        # The unit shape has no batch axis: channels first is its axis 0.
        channel_axis = 0 if site.channel_axis == 1 else len(unit_shape) - 1
        shape = [1] * len(unit_shape)
        shape[channel_axis] = per_channel.size
        if unit_shape[channel_axis] != per_channel.size:
            return None
        return np.broadcast_to(per_channel.reshape(shape), unit_shape).reshape(-1)

    def refresh(self) -> None:
        """Retraces the probe at its next run (after a fix changed the graph)."""
        if self._probe is not None:
            self._probe.refresh()

    def close_window(self) -> WindowStatistics:
        """Summarises the window that ends now and starts the next one.

        In probe mode the probe runs first, over its fixed data. Sites that
        saw no data in the window are left out.
        """
        if self._probe is not None:
            self.recorder.reset()
            self._probe.run()
        counters = self.recorder.read_and_reset()
        statistics = []
        for site in self.sites:
            site_counters = counters.get(site.name)
            if site_counters is None or site_counters.element_count == 0:
                continue
            statistics.append(
                site_statistics(
                    site.name,
                    # What the layer computes now: a fix may have swapped it.
                    layer_kind(site.layer) or site.kind,
                    site_counters,
                    self.dormant_tau,
                    nonfinite_weights=self._nonfinite_weights(site, site_counters),
                )
            )
        return WindowStatistics(tuple(statistics))


_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)


def _depthwise_site_layer(site: Site) -> Any | None:
    """The site's own layer when it is a depthwise or separable conv with the
    activation: its kernels compute the units, though not as one kernel's
    output axis (which the revive fix and the diagnosis need)."""
    return site.layer if isinstance(site.layer, _DEPTHWISE + _SEPARABLE) else None


def _nonfinite_kernel_channels(layer: Any) -> np.ndarray | None:
    """Per output channel of `layer`: whether a weight that computes it is
    NaN or inf. A depthwise kernel (..., in, multiplier) makes channel
    ``i * multiplier + m`` of input channel i; a separable conv's pointwise
    kernel mixes every depthwise channel into each output, so a non-finite
    depthwise weight reaches them all."""
    if isinstance(layer, _DEPTHWISE + _SEPARABLE):
        depthwise = host_array(
            layer.kernel if isinstance(layer, _DEPTHWISE) else layer.depthwise_kernel
        )
        if depthwise is None:
            return None
        depthwise_bad = ~np.isfinite(
            depthwise.reshape(-1, int(np.prod(depthwise.shape[-2:])))
        )
        per_depthwise_channel = depthwise_bad.any(axis=0)
        if isinstance(layer, _DEPTHWISE):
            return per_depthwise_channel
        pointwise = host_array(layer.pointwise_kernel)
        if pointwise is None:
            return None
        pointwise_bad = ~np.isfinite(pointwise.reshape(-1, pointwise.shape[-1]))
        return pointwise_bad.any(axis=0) | per_depthwise_channel.any()
    axis = output_axis(layer)
    kernel = host_array(layer.kernel)  # a LoRA layer's is a computed tensor
    if axis is None or kernel is None:
        return None
    finite = np.moveaxis(np.isfinite(kernel), axis, -1)
    return ~finite.reshape(-1, finite.shape[-1]).all(axis=0)
