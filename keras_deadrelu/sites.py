"""Finding the sites of a model: every ReLU-family activation it applies.

A *site* is one ReLU-family activation in the model:

- a layer whose ``activation`` is relu, relu6, leaky_relu, elu, selu or celu
  (``Dense``, every ``Conv*``, ``SeparableConv*``, ``DepthwiseConv*``,
  ``Conv*Transpose``, this package's ``SELUDense``, and any custom layer with
  an ``activation`` attribute);
- a Keras ``ReLU``, ``LeakyReLU``, ``PReLU`` or ``ELU`` layer, or an
  ``Activation`` layer with one of those activations;
- one of this package's layers (``PReLU``, ``ELU``, ``SELU``, ``LeakyReLU``).

Layers inside nested models (and inside custom layers that track their
sublayers) are found too. Recurrent layers (``SimpleRNN``, ``LSTM``, ``GRU``,
``ConvLSTM*``, any ``keras.layers.RNN`` and its cells) are not sites, even
with ``activation="relu"``: their activation runs inside a loop over time,
out of the monitor's reach. A site's name is the layer's name, prefixed by the
names of the models that contain it: ``"encoder/dense_1"``.

>>> import keras
>>> model = keras.Sequential([
...     keras.Input((4,)),
...     keras.layers.Dense(8, activation="relu", name="hidden"),
...     keras.layers.Dense(1, name="head"),
... ])
>>> [(site.name, site.kind) for site in find_sites(model)]
[('hidden', 'relu')]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import keras

#: Activation function names that belong to the ReLU family.
RELU_FAMILY = ("relu", "relu6", "leaky_relu", "elu", "selu", "celu")

#: Attribute that marks a callable activation object as a ReLU-family member;
#: its value is the family name (for example ``"leaky_relu"``).
FAMILY_ATTRIBUTE = "relu_family"


@dataclasses.dataclass(frozen=True)
class Site:
    """One ReLU-family activation in a model.

    Attributes:
        name: the layer's name, with enclosing model names as a path prefix.
        layer: the Keras layer whose output is the activation.
        kind: the activation's family name, for example ``"relu"`` or ``"selu"``.
        channel_axis: the output axis that holds the units (``-1`` for
            channels-last layers, ``1`` for ``data_format="channels_first"``).
        graph: the calls (Keras graph nodes) that make up the graph of the
            model the site was found in (see `graph_nodes`): the walks along
            the graph take only these calls of a layer. None (a site made by
            hand, or one in a model without a functional graph of its own)
            takes every call.
    """

    name: str
    layer: Any
    kind: str
    channel_axis: int = -1
    graph: frozenset[Any] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )


def activation_kind(activation: Any) -> str | None:
    """Returns the ReLU-family name of an activation callable, or None.

    >>> import keras
    >>> activation_kind(keras.activations.get("relu"))
    'relu'
    >>> activation_kind(keras.activations.get("tanh")) is None
    True
    """
    if activation is None:
        return None
    marked = getattr(activation, FAMILY_ATTRIBUTE, None)
    if isinstance(marked, str):
        return marked
    name = getattr(activation, "__name__", None)
    if name in RELU_FAMILY:
        return name
    return None


def layer_kind(layer: Any) -> str | None:
    """Returns the ReLU-family name of what `layer` outputs, or None."""
    # Imported here: the layers package imports nothing from this module, but
    # keeping the import local leaves `sites` usable on its own.
    from keras_deadrelu import layers as deadrelu_layers

    marked = getattr(layer, FAMILY_ATTRIBUTE, None)
    if isinstance(marked, str):
        return marked
    by_class = (
        (deadrelu_layers.PReLU, "prelu"),
        (deadrelu_layers.ELU, "elu"),
        (deadrelu_layers.SELU, "selu"),
        (deadrelu_layers.LeakyReLU, "leaky_relu"),
        (keras.layers.PReLU, "prelu"),
        (keras.layers.ELU, "elu"),
        (keras.layers.LeakyReLU, "leaky_relu"),
        (keras.layers.ReLU, "relu"),
    )
    for layer_class, kind in by_class:
        if isinstance(layer, layer_class):
            if kind == "relu" and float(getattr(layer, "negative_slope", 0.0)) > 0:
                return "leaky_relu"  # a Keras ReLU given a slope is leaky
            return kind
    if isinstance(layer, keras.Model):
        return None
    return activation_kind(getattr(layer, "activation", None))


def outputs_its_activation(layer: Any) -> bool:
    """Whether `layer` provably outputs its activation's values as they are
    (for ReLU or ReLU6, never a negative one): a Keras layer's own ``call``
    (``Dense``, a convolution, ``Activation``, ``ReLU``, whose threshold
    Keras keeps >= 0) or this package's, with an activation of Keras's,
    TensorFlow's, JAX's or PyTorch's own (``"relu"``, ``tf.nn.relu``). Not
    a custom layer, whose ``call`` may change the values after the
    activation, nor a function of the user's: the counters then count its
    positive values as such, over every value, and the revive fix leaves it
    alone.

    >>> import keras
    >>> outputs_its_activation(keras.layers.Dense(4, activation="relu"))
    True
    >>> class Shifted(keras.layers.Dense):
    ...     def call(self, inputs):
    ...         return super().call(inputs) - 1.0
    >>> outputs_its_activation(Shifted(4, activation="relu"))
    False
    >>> def relu(x):
    ...     return keras.activations.relu(x) - 1.0
    >>> outputs_its_activation(keras.layers.Dense(4, activation=relu))
    False
    """
    call = getattr(type(layer), "call", None)
    if not _module_of(call).startswith(("keras.", "keras_deadrelu.layers.")):
        return False
    # A function of the user's named "relu" may change the values too.
    activation = getattr(layer, "activation", None)
    return activation is None or is_library_activation(activation)


def is_library_activation(activation: Any) -> bool:
    """Whether `activation` is Keras's, TensorFlow's, JAX's, PyTorch's or this
    package's own function, not one of the user's (which may be named
    "relu" and do more, such as a cap).

    >>> import keras
    >>> is_library_activation(keras.activations.relu)
    True
    >>> def relu(x):
    ...     return keras.ops.minimum(keras.activations.relu(x), 1.0)
    >>> is_library_activation(relu)
    False
    """
    return _module_of(activation).startswith(
        (
            "keras.",
            "keras_deadrelu.fixes.",
            "keras_deadrelu.activations",
            "tensorflow.",
            "jax.",
            "torch.",
        )
    )


def _module_of(function: Any) -> str:
    return getattr(function, "__module__", None) or ""


def _is_recurrent(layer: Any) -> bool:
    """A recurrent layer or cell (its activation runs in a loop over time)."""
    return isinstance(layer, keras.layers.RNN) or hasattr(layer, "state_size")


#: Dropout and noise layers: each output value is its own input value's.
DROPOUT_AND_NOISE = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
)

#: Layers whose output keeps their input's layout, axis for axis: the walk
#: back to a layer's data format goes through them (and through ReLU-family
#: layers), and stops at anything else.
_LAYOUT_KEEPING = (keras.layers.Activation, *DROPOUT_AND_NOISE)


#: Layers that merge maps of one layout into one of the same layout.
_MERGING = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras.layers.Concatenate,
)


class _LayoutWalk:
    """Finds the output axis of a layer that holds the channels: 1 after a
    layer with ``data_format="channels_first"``, else -1.

    An activation layer has its input's layout: the walk goes back through
    activation, dropout, noise and BatchNormalization layers, through merges
    (Add, Concatenate...) whose known inputs agree, through a ``Permute``
    (which moves the channels) and across the border of a nested functional
    model (in by its outputs, out by the layers that feed its inputs), to the
    layers that have a data format (a conv); anything else (a Lambda, a
    Reshape, a subclassed model) says nothing. Each layer's answer is kept,
    so the walk is linear in the size of the model when many sites share
    their history (a ResNet).
    """

    def __init__(self, model: Any, graph: frozenset[Any] | None = None):
        self._memo: dict[int, int | None] = {}
        self._graph = graph
        self._feeders = _input_feeders(model, graph)
        # A Sequential not built yet (no keras.Input: `fit` builds it) has no
        # graph: each of its layers is fed by the one before.
        self._previous: dict[int, Any] = {}
        if isinstance(model, keras.Sequential):
            layers = model.layers
            self._previous = {
                id(layer): before
                for before, layer in zip(layers, layers[1:], strict=False)
            }

    def channel_axis(self, layer: Any) -> int:
        axis = self._axis(layer)
        return -1 if axis is None else axis

    def _agreed(self, layers: list[Any]) -> int | None:
        known = {self._axis(layer) for layer in layers} - {None}
        return known.pop() if len(known) == 1 else None

    def _axis(self, layer: Any) -> int | None:
        if id(layer) in self._memo:
            return self._memo[id(layer)]  # known, or being walked (a cycle)
        self._memo[id(layer)] = None
        data_format = getattr(layer, "data_format", None)
        if data_format is not None:
            axis = 1 if data_format == "channels_first" else -1
        elif isinstance(layer, keras.layers.InputLayer):
            axis = self._agreed(self._feeders.get(id(layer), []))
        elif isinstance(layer, keras.Model):
            axis = self._agreed([t._keras_history.operation for t in _outputs(layer)])
        elif isinstance(layer, keras.layers.Permute):
            axis = _permuted_axis(self._agreed(self._parents(layer)), layer.dims)
        elif isinstance(
            layer, _LAYOUT_KEEPING + _MERGING + (keras.layers.BatchNormalization,)
        ) or (layer_kind(layer) is not None and not hasattr(layer, "kernel")):
            axis = self._agreed(self._parents(layer))
            if axis is None and isinstance(layer, keras.layers.BatchNormalization):
                bn_axis = layer.axis
                if isinstance(bn_axis, (list, tuple)) and len(bn_axis) == 1:
                    bn_axis = bn_axis[0]
                axis = 1 if bn_axis == 1 else None
        else:
            axis = None
        self._memo[id(layer)] = axis
        return axis

    def _parents(self, layer: Any) -> list[Any]:
        """The layers whose outputs `layer` was called on, in every call."""
        parents = [
            parent.operation
            for node in inbound_nodes(layer, self._graph)
            for parent in node.parent_nodes
        ]
        if not parents and id(layer) in self._previous:
            return [self._previous[id(layer)]]
        return parents


def graph_nodes(model: Any) -> frozenset[Any] | None:
    """The calls (Keras graph nodes) that make up `model`'s graph: those of
    its own functional graph and of every functional model nested in it (for
    a Sequential, the functional graph it built last). None when `model` has
    no functional graph of its own (a subclassed model, or a Sequential
    without an input yet): then every call a layer has counts.

    A layer's ``_inbound_nodes`` and ``_outbound_nodes`` keep every call ever
    made on symbolic inputs: each rebuild of a Sequential's graph (at every
    ``add`` and ``pop``) adds one, and so does each other model the layer was
    used in. Those calls are not this model's.
    """
    if not _functional_nodes(model):
        return None
    nodes: set[Any] = set()
    models = [model, *(layer for _, layer in walk_layers(model))]
    for each in models:
        if isinstance(each, keras.Model):
            nodes.update(_functional_nodes(each))
    return frozenset(nodes)


def _functional_nodes(model: Any) -> list[Any]:
    """The calls in `model`'s own functional graph (for a Sequential, the
    graph it built last; none for a subclassed model)."""
    functional = getattr(model, "_functional", None)  # a Sequential's graph
    functional = model if functional is None else functional
    by_depth = getattr(functional, "_nodes_by_depth", None) or {}
    return [node for calls in by_depth.values() for node in calls]


def _in_graph(nodes: list[Any], graph: frozenset[Any] | None) -> list[Any]:
    """The calls among `nodes` that belong to `graph` (all when None)."""
    return list(nodes) if graph is None else [node for node in nodes if node in graph]


def inbound_nodes(layer: Any, graph: frozenset[Any] | None) -> list[Any]:
    """`layer`'s calls in `graph` (see `graph_nodes`; None: all its calls)."""
    return _in_graph(getattr(layer, "_inbound_nodes", None) or [], graph)


def outbound_nodes(layer: Any, graph: frozenset[Any] | None) -> list[Any]:
    """The calls in `graph` that take an output of `layer` (see
    `graph_nodes`; None: all of them)."""
    return _in_graph(getattr(layer, "_outbound_nodes", None) or [], graph)


def site_output_shapes(site: Site) -> list[tuple]:
    """The shapes of `site`'s outputs in the model's graph, one per call of
    its layer there (none for a layer without graph nodes, as in a
    subclassed model).

    >>> import keras
    >>> inputs = keras.Input((None, 3))
    >>> layer = keras.layers.Dense(4, activation="relu")
    >>> _ = keras.Model(inputs, layer(inputs))
    >>> site_output_shapes(Site("dense", layer, "relu"))
    [(None, None, 4)]
    """
    shapes = []
    for node in inbound_nodes(site.layer, site.graph):
        for tensor in getattr(node, "output_tensors", []):
            shape = getattr(tensor, "shape", None)
            if shape is not None:
                shapes.append(tuple(shape))
    return shapes


def _outputs(model: Any) -> list[Any]:
    """A functional model's output tensors (none for a subclassed one)."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return []
    return [tensor for tensor in outputs or [] if hasattr(tensor, "_keras_history")]


def _input_feeders(model: Any, graph: frozenset[Any] | None) -> dict[int, list[Any]]:
    """For the input layer of every nested functional model in `model`, the
    outer layers that feed it in `graph` (by the id of the input layer)."""
    feeders: dict[int, list[Any]] = {}
    for _, layer in walk_layers(model):
        if not isinstance(layer, keras.Model):
            continue
        try:
            inputs = list(layer.inputs or [])
        except (AttributeError, ValueError):
            continue
        for node in inbound_nodes(layer, graph):
            outer = list(node.input_tensors)
            if len(outer) != len(inputs):
                continue
            for inner_input, outer_tensor in zip(inputs, outer, strict=True):
                inner_layer = inner_input._keras_history.operation
                feeders.setdefault(id(inner_layer), []).append(
                    outer_tensor._keras_history.operation
                )
    return feeders


def _permuted_axis(axis: int | None, dims: tuple[int, ...]) -> int | None:
    """Where a ``Permute(dims)`` puts input axis `axis` (-1: the last)."""
    if axis is None:
        return None
    rank = len(dims) + 1
    position = dims.index(rank - 1 if axis == -1 else axis) + 1
    return -1 if position == rank - 1 else position


def _children(layer: Any) -> list[Any]:
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is not None:
        children = list(flatten(include_self=False, recursive=False))
    else:
        children = list(getattr(layer, "layers", []))
    return [
        child for child in children if not isinstance(child, keras.layers.InputLayer)
    ]


def walk_layers(model: Any) -> Iterator[tuple[str, Any]]:
    """Yields ``(path name, layer)`` for every layer under `model`, in order.

    Each layer is yielded once, even when it is shared.
    """
    seen: set[int] = set()

    def visit(parent: Any, prefix: str) -> Iterator[tuple[str, Any]]:
        for child in _children(parent):
            if id(child) in seen:
                continue
            seen.add(id(child))
            name = f"{prefix}/{child.name}" if prefix else child.name
            yield name, child
            yield from visit(child, name)

    yield from visit(model, "")


def find_sites(model: Any) -> list[Site]:
    """Returns every ReLU-family site of `model`, in model order."""
    sites = []
    recurrent: list[str] = []
    graph = graph_nodes(model)
    layouts = _LayoutWalk(model, graph)
    for name, layer in walk_layers(model):
        if any(name.startswith(f"{path}/") for path in recurrent):
            continue  # inside a recurrent layer: its cell
        if _is_recurrent(layer):
            recurrent.append(name)
            continue
        kind = layer_kind(layer)
        if kind is not None:
            axis = layouts.channel_axis(layer)
            sites.append(Site(name, layer, kind, axis, graph))
    return sites


def select_sites(
    sites: list[Site], names: list[str] | tuple[str, ...] | None
) -> list[Site]:
    """Keeps the sites named in `names` (all when None), in model order.

    A name may be a site's full path or, when unambiguous, its layer name.
    Raises ``ValueError`` naming the unknown names and listing the sites.
    """
    if names is None:
        return list(sites)
    if isinstance(names, str):
        names = [names]
    by_path = {site.name: site for site in sites}
    by_layer_name: dict[str, list[Site]] = {}
    for site in sites:
        by_layer_name.setdefault(site.layer.name, []).append(site)
    chosen: dict[str, Site] = {}
    unknown = []
    for name in names:
        if name in by_path:
            chosen[name] = by_path[name]
        elif len(by_layer_name.get(name, [])) == 1:
            site = by_layer_name[name][0]
            chosen[site.name] = site
        else:
            unknown.append(name)
    ambiguous = [name for name in unknown if len(by_layer_name.get(name, [])) > 1]
    if ambiguous:
        paths = ", ".join(
            repr(site.name) for name in ambiguous for site in by_layer_name[name]
        )
        raise ValueError(
            f"Argument `layers` names layers that more than one site shares: "
            f"{ambiguous!r}. Name them by path: {paths}. Received: layers={names!r}"
        )
    if unknown:
        available = ", ".join(repr(site.name) for site in sites) or "none"
        raise ValueError(
            f"Argument `layers` names no ReLU-family site of this model: "
            f"{unknown!r}. Available sites: {available}. Received: layers={names!r}"
        )
    return [site for site in sites if site.name in chosen]
