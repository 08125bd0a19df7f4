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

#: Activations that mix a sample's channels (not elementwise).
_MIXING_ACTIVATIONS = ("softmax", "log_softmax")

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
    """The operations called on `layer`'s output, less dangling ones: an
    operation that is not a layer and feeds nothing, such as the cast that a
    float32 layer's autocast records after a float16 site under mixed
    precision."""
    consumers = []
    for node in getattr(layer, "_outbound_nodes", []):
        operation = node.operation
        dangling = not isinstance(operation, keras.layers.Layer) and not getattr(
            operation, "_outbound_nodes", None
        )
        if not dangling:
            consumers.append(operation)
    return consumers


def _keeps_channels(layer: Any, site: Site) -> bool:
    """Whether `layer`, met after `site`, keeps each of its channels apart."""
    if isinstance(layer, keras.layers.Activation):
        name = getattr(layer.activation, "__name__", "")
        return name not in _MIXING_ACTIVATIONS  # softmax mixes the channels
    if isinstance(layer, keras.layers.BatchNormalization):
        rank = len(site.layer.output.shape)
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        return [axis % rank for axis in axes] == [site.channel_axis % rank]
    return isinstance(layer, _CHANNEL_PRESERVING) or (
        isinstance(layer, keras.layers.Layer)
        and type(layer).__module__.startswith("keras_deadrelu.layers")
        and not hasattr(layer, "kernel")
    )


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


def feeds_only(layer: Any, site: Site) -> bool:
    """Whether `layer` (the site's incoming layer) feeds the site and nothing
    else: new weights in a layer that also feeds another branch would change
    that branch."""
    return layer is site.layer or _consumers(layer) == [site.layer]


def outgoing_layer(site: Site) -> tuple[Any | None, list[Any], str]:
    """The next weighted layer fed by the site's units, the layers on the way
    (channel-preserving ones, then perhaps a ``Flatten`` and dropout before a
    Dense layer), or None and why not."""
    current = site.layer
    between: list[Any] = []
    flattened = False
    for _ in range(16):
        consumers = _consumers(current)
        if len(consumers) != 1:
            reason = "no consumer" if not consumers else "several consumers"
            return None, between, reason
        (consumer,) = consumers
        if flattened:
            if isinstance(consumer, DROPOUT_AND_NOISE):
                between.append(consumer)
                current = consumer
                continue
            if isinstance(consumer, keras.layers.Dense) and input_axis(consumer):
                return consumer, between, ""
            return None, between, f"{consumer.name} follows a Flatten"
        if _keeps_channels(consumer, site) or isinstance(
            consumer, keras.layers.Flatten
        ):
            flattened = isinstance(consumer, keras.layers.Flatten)
            between.append(consumer)
            current = consumer
            continue
        if input_axis(consumer) is not None:
            return consumer, between, ""
        return None, between, f"{consumer.name} ({type(consumer).__name__}) mixes units"
    return None, between, "graph too deep"
