"""Counting a ReLU site's units in the training step's backward pass.

A streaming monitor needs, per unit, the count of a site's outputs > 0 and
their sum: one read of every value the site outputs, each step. The step
already reads those values once more: a ReLU's gradient (TensorFlow's
``ReluGrad``) reads the ReLU's outputs to know where to pass the incoming
gradient. For a plain ReLU site, on a CPU without XLA where the compiled ops
of :mod:`keras_deadrelu.native_unit_sums` are in use, the monitor therefore
takes the site's sums in that pass: while the site's layer is called in a
monitored training step, its ReLU is one whose gradient is
``KerasDeadreluReluGradUnitSums``, which computes what ``ReluGrad`` computes
and the site's sums from the values it reads anyway. The forward pass is
TensorFlow's ``Relu`` as before (so MatMul/Conv + BiasAdd + Relu stay fused)
and the gradient is the same, value for value; nothing is changed outside
the traced train step, so a model saved mid-fit holds none of it.

A plain ReLU site is a Keras layer of Keras's own whose activation is
``"relu"``, applied last (``Dense``, ``EinsumDense``, a convolution,
``Activation("relu")``), or a
``keras.layers.ReLU()`` with its default arguments, whose outputs are
float32 with their units contiguous at the end (channels last, or any
layout with ``granularity="unit"``). Where the step takes no gradient
through a site (a ReLU of the model's input, with no weight before it), or
takes it in another graph (inside a loop), its sums come from its values,
as for every other site.

>>> import keras
>>> from keras_deadrelu.sites import Site
>>> applies_to(Site("d", keras.layers.Dense(4, activation="relu"), "relu"))
True
>>> applies_to(Site("d", keras.layers.Dense(4, activation="relu6"), "relu6"))
False
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf

from keras_deadrelu import native_unit_sums
from keras_deadrelu._xla import fused_by_xla_or_gpu
from keras_deadrelu.sites import Site, outputs_its_activation

#: Activation functions that compute ``max(x, 0)`` and nothing more.
_PLAIN_RELUS = (keras.activations.relu, tf.nn.relu)
#: Keras layers whose ``call`` applies ``self.activation`` once, to what it
#: returns (a recurrent layer, say, applies its own in a loop).
_ACTIVATION_LAST_LAYERS = tuple(
    getattr(keras.layers, name)
    for name in (
        "Dense",
        "EinsumDense",
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "SeparableConv1D",
        "SeparableConv2D",
        "Activation",
    )
    if hasattr(keras.layers, name)
)


class BackwardSums:
    """Where one call of a site receives its per-unit sums, taken by its
    ReLU's gradient (None until the gradient is traced, or if it never is):
    positive count (units), sum (units), rows, float64."""

    def __init__(self, graph: Any):
        self.graph = graph
        self.sums: tf.Tensor | None = None


def _relu_grad_unit_sums_gradient(op, grad_backprops, _grad_sums):
    """Second-order gradient, as TensorFlow's for ``ReluGrad``: the incoming
    gradient passed where the features are > 0; none for the features."""
    features = op.inputs[1]
    return tf.raw_ops.ReluGrad(gradients=grad_backprops, features=features), (
        tf.zeros_like(features)
    )


# KeyError: the module was reloaded (autoreload); the first one stands.
with contextlib.suppress(KeyError):
    tf.RegisterGradient("KerasDeadreluReluGradUnitSums")(_relu_grad_unit_sums_gradient)


def _is_default_relu_layer(layer: Any) -> bool:
    if type(layer) is not keras.layers.ReLU:
        return False
    return (
        float(layer.negative_slope) == 0.0
        and layer.max_value is None
        and float(layer.threshold) == 0.0
    )


def applies_to(site: Site) -> bool:
    """Whether `site` is a plain ReLU site (see the module's docstring),
    whose sums its gradient can take. The dtype and shape of its outputs are
    checked when it is called."""
    layer = site.layer
    if _is_default_relu_layer(layer):
        return True
    if not isinstance(layer, _ACTIVATION_LAST_LAYERS):
        return False
    activation = layer.__dict__.get("activation")
    plain = any(activation is relu for relu in _PLAIN_RELUS)
    return plain and outputs_its_activation(layer)


def in_use() -> bool:
    """Whether a step traced now takes plain ReLU sites' sums in its backward
    pass: in a graph (not eagerly), outside XLA and a distribution strategy,
    with no GPU visible, the compiled ops built and loaded."""
    if tf.executing_eagerly() or tf.distribute.has_strategy():
        return False
    if fused_by_xla_or_gpu():
        return False
    return native_unit_sums.relu_grad_unit_sums_op() is not None


def _counting_relu(units_of: Any, holder: BackwardSums, fallback: Any) -> Any:
    """A ReLU whose gradient also takes its per-unit sums into `holder`.

    `units_of(shape)` gives the number of units of outputs of that shape, or
    None where they are not contiguous at the end; then, and for outputs
    that are not float32, `fallback` (the layer's own activation) runs.
    """
    op = native_unit_sums.relu_grad_unit_sums_op()

    def relu(x):
        x = tf.convert_to_tensor(x)
        units = units_of(x.shape) if x.dtype == tf.float32 else None
        if units is None:
            return fallback(x)

        @tf.custom_gradient
        def counted_relu(pre_activation):
            features = tf.nn.relu(pre_activation)

            def gradient(upstream):
                current = tf.compat.v1.get_default_graph()
                if holder.sums is not None or current is not holder.graph:
                    # A second gradient of the same call, or one taken in
                    # another graph: plain ReluGrad, nothing counted.
                    return tf.raw_ops.ReluGrad(gradients=upstream, features=features)
                backprops, holder.sums = op(upstream, features, units=units)
                return backprops

            return features, gradient

        return counted_relu(x)

    return relu


@contextlib.contextmanager
def counting(site: Site, units_of: Any) -> Iterator[tuple[BackwardSums, Any]]:
    """While the block runs (one call of `site`'s layer, traced in a
    monitored training step), the layer's ReLU takes the call's sums in its
    gradient. Yields the holder they go to and, for a ``ReLU`` layer (whose
    activation is not an attribute), the function to call in place of the
    layer's ``call`` (else None: call the layer's own)."""
    layer = site.layer
    holder = BackwardSums(tf.compat.v1.get_default_graph())
    if _is_default_relu_layer(layer):
        yield holder, _counting_relu(units_of, holder, tf.nn.relu)
        return
    original = layer.__dict__.get("activation")
    object.__setattr__(layer, "activation", _counting_relu(units_of, holder, original))
    try:
        yield holder, None
    finally:
        object.__setattr__(layer, "activation", original)
