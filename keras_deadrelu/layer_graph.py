"""Where a site's units come from and where they go, in the model's graph.

Used by the revive fix (to find the weights to re-initialise and to zero)
and by the diagnosis (to find the kernel and bias that feed a site). The
graph is Keras's functional graph: each layer's inbound and outbound nodes,
only those of the model the site was found in (`Site.graph`): a layer also
keeps calls from the earlier graphs of a Sequential rebuilt by ``add`` or
``pop``, and from other models it was used in.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import keras

from keras_deadrelu.sites import (
    DROPOUT_AND_NOISE,
    Site,
    inbound_nodes,
    is_library_activation,
    outbound_nodes,
)
from keras_deadrelu.threshold_alerts import DeadNeuronWarning

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

#: The names of Keras's activations that act on each value alone (TensorFlow's
#: and this package's of the same names do too). Any other (softmax,
#: log_softmax and sparsemax mix a sample's channels; glu halves them; a
#: function of the user's may do anything) ends the walk to the next kernel.
_ELEMENTWISE_ACTIVATIONS = frozenset(
    [
        "celu",
        "elu",
        "exponential",
        "gelu",
        "hard_shrink",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "hard_tanh",
        "leaky_relu",
        "linear",
        "log_sigmoid",
        "mish",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "silu",
        "soft_shrink",
        "softplus",
        "softsign",
        "sparse_plus",
        "sparse_sigmoid",
        "squareplus",
        "swish",
        "tanh",
        "tanh_shrink",
        "threshold",
    ]
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


def _dangling(operation: Any) -> bool:
    """An operation that is not a layer and feeds nothing, such as the cast
    that a float32 layer's autocast records after a float16 site under mixed
    precision: not a consumer."""
    return not isinstance(operation, keras.layers.Layer) and not getattr(
        operation, "_outbound_nodes", None
    )


def _consumers(layer: Any, graph: frozenset[Any] | None) -> list[Any]:
    """The operations called on `layer`'s output (in any of its calls) in
    `graph`."""
    return [
        node.operation
        for node in outbound_nodes(layer, graph)
        if not _dangling(node.operation)
    ]


def _format_axis(layer: Any) -> int | None:
    """The channel axis (batch included) a layer's ``data_format`` names, or
    None for a layer without one."""
    data_format = getattr(layer, "data_format", None)
    if data_format is None:
        return None
    return 1 if data_format == "channels_first" else -1


def _rank(node: Any) -> int:
    """The rank (batch included) of the first input of the call `node`."""
    return len(node.input_tensors[0].shape)


def _keeps_channels(layer: Any, axis: int, rank: int) -> bool:
    """Whether `layer`, met after a site, keeps each of its channels apart:
    the units on `axis` of its rank-`rank` input."""
    if isinstance(layer, keras.layers.Activation):
        # Keras's, TensorFlow's (tf.nn.relu), this package's (a swapped
        # LeakyReLUActivation): a library's, by an elementwise name.
        activation = layer.activation
        name = getattr(activation, "__name__", "")
        return name in _ELEMENTWISE_ACTIVATIONS and is_library_activation(activation)
    if isinstance(layer, keras.layers.BatchNormalization):
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        return [each % rank for each in axes] == [axis % rank]
    if isinstance(layer, _CHANNEL_PRESERVING):
        # A pooling layer of another data format pools across the units.
        own = _format_axis(layer)
        return own is None or own % rank == axis % rank
    return (
        isinstance(layer, keras.layers.Layer)
        and type(layer).__module__.startswith("keras_deadrelu.layers")
        and not hasattr(layer, "kernel")
    )


def _axis_mismatch(consumer: Any, axis: int, rank: int) -> str | None:
    """Why `consumer` (a Dense or Conv) does not take the units, on `axis` of
    its rank-`rank` input, as its input channels; None when it does (a Dense
    acts on the last axis, a conv on its ``data_format``'s channel axis)."""
    own = _format_axis(consumer)
    own = (-1 if own is None else own) % rank
    if own == axis % rank:
        return None
    name = type(consumer).__name__
    return (
        f"{consumer.name} ({name}) acts on axis {own} of its input, "
        f"the units are on axis {axis % rank}"
    )


def _producers(layer: Any, graph: frozenset[Any] | None) -> list[Any]:
    """The operations whose outputs `layer` takes, if `graph` calls it once."""
    nodes = inbound_nodes(layer, graph)
    if len(nodes) != 1:
        return []
    return [parent.operation for parent in nodes[0].parent_nodes]


def first_call(layer: Any, graph: frozenset[Any] | None) -> Any:
    """`layer`'s first call in `graph` (not ``layer.output``'s first call of
    all, which may belong to another graph and take another shape)."""
    calls = inbound_nodes(layer, graph) or list(layer._inbound_nodes)
    return calls[0]


def sites_of_shared_activation_layers(sites: list[Site]) -> dict[str, str]:
    """Sites whose layer computes no pre-activation of its own (a ``ReLU``
    or ``Activation`` layer, not a Dense or conv) and is called, in the
    site's graph, on the outputs of different layers: one activation layer
    object reused after several layers. Each call's units are other neurons,
    which the counters (one set of units per site) cannot tell apart; maps
    each such site's name to why. A layer called on outputs of one shared
    layer (the same neurons on other inputs) is not among them.

    >>> import keras
    >>> relu = keras.layers.ReLU(name="relu")
    >>> inputs = keras.Input((3,))
    >>> first = relu(keras.layers.Dense(4, name="first")(inputs))
    >>> second = relu(keras.layers.Dense(4, name="second")(first))
    >>> site = Site("relu", relu, "relu", graph=None)
    >>> sites_of_shared_activation_layers([site])
    {'relu': 'one ReLU layer called after first, second'}
    """
    shared = {}
    for site in sites:
        if hasattr(site.layer, "kernel"):
            continue  # a Dense/Conv called twice: the same neurons each time
        producers = {}
        for node in inbound_nodes(site.layer, site.graph):
            for parent in node.parent_nodes:
                source = _source_of_units(parent)
                producers[id(source)] = source.name
        if len(producers) > 1:
            names = ", ".join(sorted(producers.values()))
            kind = type(site.layer).__name__
            shared[site.name] = f"one {kind} layer called after {names}"
    return shared


def _source_of_units(node: Any) -> Any:
    """The layer whose call `node` is, or, through Dropout and noise layers
    (each value its own input's), the one that feeds them: two Dropouts
    after one shared layer carry the same neurons."""
    for _ in range(16):
        operation = node.operation
        if not isinstance(operation, DROPOUT_AND_NOISE) or len(node.parent_nodes) != 1:
            return operation
        node = node.parent_nodes[0]
    return node.operation


def without_shared_activation_sites(sites: list[Site]) -> list[Site]:
    """`sites` less those of :func:`sites_of_shared_activation_layers`, with
    one warning that names them and says what to do."""
    shared = sites_of_shared_activation_layers(sites)
    if shared:
        listed = "; ".join(f"{name} ({why})" for name, why in shared.items())
        warnings.warn(
            "These sites are left out, as their layer is reused after several "
            "layers, whose units are different neurons that one site cannot "
            f"tell apart: {listed}. Give each call its own activation layer (or "
            "use the layer before's activation= argument) to measure them.",
            DeadNeuronWarning,
            stacklevel=3,
        )
    return [site for site in sites if site.name not in shared]


def incoming_layer(site: Site) -> Any | None:
    """The weighted layer whose kernel computes the site's pre-activations."""
    layer = site.layer
    if getattr(layer, "activation", None) is not None and hasattr(layer, "kernel"):
        return layer if output_axis(layer) is not None else None
    producers = _producers(layer, site.graph)
    if len(producers) == 1 and output_axis(producers[0]) is not None:
        return producers[0]
    return None


def feeds_only(layer: Any, site: Site) -> bool:
    """Whether `layer` (the site's incoming layer) feeds the site and nothing
    else: new weights in a layer that also feeds another branch would change
    that branch."""
    return layer is site.layer or _consumers(layer, site.graph) == [site.layer]


@dataclasses.dataclass
class OutgoingPath:
    """One way from a site's units to a weighted layer that takes them.

    `between` holds the layers on the way, in order: channel-preserving ones,
    ``Concatenate`` layers on the channel axis (`offsets`: where the branch's
    channels start in each one's output), perhaps a ``Flatten`` into a Dense
    layer and dropout after it. The units reach `consumer`'s input channels
    (or, after a Flatten, its rows) at `channel_offset` plus their index.
    `node` is the consumer's call that takes them; `axis` the units' axis
    (batch included) in the input of the Flatten, if any, else of the call.
    """

    consumer: Any
    between: list[Any]
    offsets: dict[int, int]
    node: Any = None
    axis: int = -1

    @property
    def channel_offset(self) -> int:
        return sum(self.offsets.values())


def _outbound(node: Any, layer: Any, graph: frozenset[Any] | None) -> list[Any]:
    """The nodes (calls) in `graph` that take the output of `layer`'s call
    `node`."""
    return [
        outbound
        for outbound in outbound_nodes(layer, graph)
        if node in outbound.parent_nodes and not _dangling(outbound.operation)
    ]


def _concat_offset(node: Any, producer: Any, axis: int) -> int | str:
    """Where `producer`'s channels (on `axis`) start in the output of the
    Concatenate call `node`, or why that is not known."""
    layer = node.operation
    rank = _rank(node)
    if layer.axis % rank != axis % rank:
        return f"{layer.name} joins along another axis than the channels"
    inputs = list(node.input_tensors)
    mine = [i for i, t in enumerate(inputs) if t._keras_history.operation is producer]
    if len(mine) != 1:
        return f"{producer.name} feeds {layer.name} more than once"
    sizes = [t.shape[layer.axis] for t in inputs[: mine[0]]]
    if any(size is None for size in sizes):
        return f"{layer.name} joins maps of unknown channel counts"
    return int(sum(sizes))


def _unreached_call(paths: list[OutgoingPath], site: Site) -> str | None:
    """Why zeroing the paths' consumers would change another branch: one of
    them is also called on inputs the site does not feed; None if not."""
    reached = {id(path.node) for path in paths}
    for path in paths:
        calls = inbound_nodes(path.consumer, site.graph)
        if any(id(call) not in reached for call in calls):
            name = path.consumer.name
            return f"{name} is also called on inputs {site.layer.name} does not feed"
    return None


def outgoing_paths(site: Site) -> tuple[list[OutgoingPath], str]:
    """Every way from the site's units to the next weighted layers, or no way
    and why not. Every branch must end at a layer whose kernel takes the
    units as input channels (or, after a Flatten, as rows of a Dense
    kernel), through layers that keep each unit apart; any other layer (a
    residual Add, a Reshape, a LayerNormalization, a Dense or conv acting on
    another axis) stops the walk, and so does a consumer also called on
    inputs the site does not feed."""
    paths: list[OutgoingPath] = []
    # Each entry: (node, its layer, layers so far, concat offsets, flattened,
    # the units' axis in the node's output).
    pending = [
        (node, site.layer, [], {}, False, site.channel_axis)
        for node in inbound_nodes(site.layer, site.graph)
    ]
    while pending:
        if len(paths) + len(pending) > 64:
            return [], "too many branches"
        node, layer, between, offsets, flattened, axis = pending.pop()
        if len(between) > 16:
            return [], "graph too deep"
        taken = _outbound(node, layer, site.graph)
        if not taken:
            return [], f"{layer.name} feeds no layer (a model output)"
        for outbound in taken:
            consumer = outbound.operation
            more = [*between, consumer]
            rank = _rank(outbound)
            if flattened:
                if isinstance(consumer, DROPOUT_AND_NOISE):
                    pending.append((outbound, consumer, more, offsets, True, axis))
                elif isinstance(consumer, keras.layers.Dense) and input_axis(consumer):
                    paths.append(
                        OutgoingPath(consumer, between, offsets, outbound, axis)
                    )
                else:
                    return [], f"{consumer.name} follows a Flatten"
            elif isinstance(consumer, keras.layers.Concatenate):
                offset = _concat_offset(outbound, layer, axis)
                if isinstance(offset, str):
                    return [], offset
                offsets = {**offsets, id(consumer): offset}
                pending.append((outbound, consumer, more, offsets, False, axis))
            elif isinstance(consumer, keras.layers.Flatten):
                pending.append((outbound, consumer, more, offsets, True, axis))
            elif _keeps_channels(consumer, axis, rank):
                # A pooling layer puts the channels where its data format says
                # (a global one drops the positions).
                own = _format_axis(consumer)
                after = axis if own is None else own
                pending.append((outbound, consumer, more, offsets, False, after))
            elif input_axis(consumer) is not None:
                mismatch = _axis_mismatch(consumer, axis, rank)
                if mismatch is not None:
                    return [], mismatch
                paths.append(OutgoingPath(consumer, between, offsets, outbound, axis))
            else:
                name = type(consumer).__name__
                return [], f"{consumer.name} ({name}) mixes units"
    if not paths:
        if not inbound_nodes(site.layer, site.graph):
            # A subclassed model's call is Python: Keras keeps no graph of it.
            return [], "a subclassed model keeps no graph to find it in"
        return [], "no consumer"
    unreached = _unreached_call(paths, site)
    if unreached is not None:
        return [], unreached
    return paths, ""
