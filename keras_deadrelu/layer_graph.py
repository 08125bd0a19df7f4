"""Where a site's units come from and where they go, in the model's graph.

Used by the revive fix (to find the weights to re-initialise and to zero)
and by the diagnosis (to find the kernel and bias that feed a site). The
graph is Keras's functional graph: each layer's inbound and outbound nodes.
"""

from __future__ import annotations

from typing import Any

import keras

from keras_deadrelu.sites import DROPOUT_AND_NOISE, Site

#: Layers between a unit and its next weighted layer that keep each unit in
#: its own channel, so zeroing the next layer's weights still isolates it.
_CHANNEL_PRESERVING = (
    *DROPOUT_AND_NOISE,
    keras.layers.BatchNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
)

_DENSE_OR_CONV = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
)


def output_axis(layer: Any) -> int | None:
    """Kernel axis that indexes the layer's output units, or None."""
    if isinstance(
        layer,
        (
            keras.layers.Conv1DTranspose,
            keras.layers.Conv2DTranspose,
            keras.layers.Conv3DTranspose,
        ),
    ):
        return -2
    if isinstance(
        layer,
        (
            keras.layers.DepthwiseConv1D,
            keras.layers.DepthwiseConv2D,
            keras.layers.SeparableConv1D,
            keras.layers.SeparableConv2D,
        ),
    ):
        return None
    if isinstance(layer, _DENSE_OR_CONV):
        return -1
    return None


def input_axis(layer: Any) -> int | None:
    """Kernel axis that indexes the layer's input units, or None.

    None for a grouped convolution (``groups > 1``): its kernel holds only
    ``channels / groups`` input channels, so an input unit has no single
    slice of it.
    """
    if getattr(layer, "groups", 1) != 1:
        return None
    if isinstance(layer, _DENSE_OR_CONV) and output_axis(layer) == -1:
        return -2
    return None


def _consumers(layer: Any) -> list[Any]:
    return [node.operation for node in getattr(layer, "_outbound_nodes", [])]


def _producers(layer: Any) -> list[Any]:
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1:
        return []
    return [parent.operation for parent in nodes[0].parent_nodes]


def incoming_layer(site: Site) -> Any | None:
    """The weighted layer whose kernel computes the site's pre-activations."""
    layer = site.layer
    if getattr(layer, "activation", None) is not None and hasattr(layer, "kernel"):
        return layer if output_axis(layer) is not None else None
    producers = _producers(layer)
    if len(producers) == 1 and output_axis(producers[0]) is not None:
        return producers[0]
    return None


def outgoing_layer(site: Site) -> tuple[Any | None, list[Any], str]:
    """The next weighted layer fed by the site's units, the channel-preserving
    layers on the way, or None and why not."""
    current = site.layer
    between: list[Any] = []
    for _ in range(16):
        consumers = _consumers(current)
        if len(consumers) != 1:
            reason = "no consumer" if not consumers else "several consumers"
            return None, between, reason
        (consumer,) = consumers
        if isinstance(consumer, _CHANNEL_PRESERVING) or (
            isinstance(consumer, keras.layers.Layer)
            and type(consumer).__module__.startswith("keras_deadrelu.layers")
            and not hasattr(consumer, "kernel")
        ):
            between.append(consumer)
            current = consumer
            continue
        if input_axis(consumer) is not None:
            return consumer, between, ""
        return None, between, f"{consumer.name} ({type(consumer).__name__}) mixes units"
    return None, between, "graph too deep"
