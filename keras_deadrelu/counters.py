"""Per-unit counters that live on the device and are updated inside a step.

A :class:`CounterRecorder` owns one set of counters per site. Its
:meth:`~CounterRecorder.record` method adds a batch of a site's outputs to
them with a handful of reductions; it runs inside Keras's traced (and, with
``jit_compile``, XLA-compiled) train step, so measuring costs no extra
forward pass and no device-to-host copy per step. The counters are read and
reset once per window with :meth:`~CounterRecorder.read_and_reset`.

Memory is O(units): each site keeps a few vectors of its unit count. The
counters are plain ``tf.Variable`` objects owned by the recorder, never by the
model, so a model saved mid-fit holds none of them.

>>> import numpy as np
>>> import keras
>>> from keras_deadrelu.sites import Site, layer_kind
>>> site = Site("act", keras.layers.ReLU(), "relu")
>>> recorder = CounterRecorder(granularity="channel")
>>> recorder.record(site, np.array([[1.0, 0.0], [2.0, -1.0]], "float32"))
>>> counters = recorder.read_and_reset()["act"]
>>> counters.positive_count.tolist(), counters.element_count
([2, 0], 2)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_deadrelu.sites import Site, layer_kind
from keras_deadrelu.unit_statistics import UnitCounters

#: Site kinds whose outputs are never negative.
NON_NEGATIVE_KINDS = ("relu", "relu6")


class _SiteCounterVariables:
    """The variables that accumulate one site's window sums."""

    def __init__(
        self, unit_shape: tuple[int, ...], track_moments: bool, track_input: bool
    ):
        def zeros(dtype: tf.DType, shape: tuple[int, ...] = unit_shape) -> tf.Variable:
            return tf.Variable(tf.zeros(shape, dtype), trainable=False)

        self.positive_count = zeros(tf.int64)
        self.abs_sum = zeros(tf.float32)
        self.element_count = zeros(tf.int64, ())
        self.value_sum = zeros(tf.float32) if track_moments else None
        self.square_sum = zeros(tf.float32) if track_moments else None
        # Mean square of the layer's input (scalars), for the diagnosis.
        self.input_square_sum = zeros(tf.float32, ()) if track_input else None
        self.input_count = zeros(tf.float32, ()) if track_input else None

    def variables(self) -> list[tf.Variable]:
        candidates = [
            self.positive_count,
            self.abs_sum,
            self.element_count,
            self.value_sum,
            self.square_sum,
            self.input_square_sum,
            self.input_count,
        ]
        return [variable for variable in candidates if variable is not None]

    def reset(self) -> None:
        for variable in self.variables():
            variable.assign(tf.zeros_like(variable))


def _mean_square(counters: _SiteCounterVariables) -> float | None:
    count = float(counters.input_count.numpy())
    return float(counters.input_square_sum.numpy()) / count if count else None


class CounterRecorder:
    """Accumulates per-unit counters for sites, one window at a time.

    Args:
        granularity: ``"channel"`` (a unit is an output feature or channel,
            all positions together) or ``"unit"`` (every output position of
            every channel is its own unit).
    """

    def __init__(self, granularity: str = "channel"):
        self.granularity = granularity
        self._counters: dict[str, _SiteCounterVariables] = {}
        self._kinds: dict[str, str] = {}

    def _reduce_axes_and_unit_shape(
        self, site: Site, shape: tf.TensorShape
    ) -> tuple[list[int], tuple[int, ...]]:
        rank = shape.rank
        if rank is None or rank < 2:
            raise ValueError(
                f"Site {site.name!r} produced an output of rank {rank}; a site's "
                "output needs a batch axis and at least one unit axis."
            )
        if self.granularity == "unit":
            unit_shape = tuple(shape[1:].as_list())
            reduce_axes = [0]
        else:
            channel_axis = site.channel_axis % rank
            unit_shape = (shape[channel_axis],)
            reduce_axes = [axis for axis in range(rank) if axis != channel_axis]
        if any(dim is None for dim in unit_shape):
            raise ValueError(
                f"Site {site.name!r} has output shape {shape}: the unit axes must "
                f"have a static size for granularity={self.granularity!r}."
            )
        return reduce_axes, unit_shape

    def record(self, site: Site, outputs, layer_input=None) -> None:
        """Adds one batch of `site`'s outputs to its counters.

        `layer_input`, when given (the input of a layer with a kernel), adds
        its sum of squares, from which the diagnosis estimates the spread of
        the pre-activations.
        """
        values = tf.convert_to_tensor(outputs)
        reduce_axes, unit_shape = self._reduce_axes_and_unit_shape(site, values.shape)
        counters = self._counters.get(site.name)
        if counters is None:
            # Created eagerly even while a train step is being traced.
            with tf.init_scope():
                counters = _SiteCounterVariables(
                    unit_shape,
                    track_moments=site.kind == "selu",
                    track_input=layer_input is not None,
                )
            self._counters[site.name] = counters
            self._kinds[site.name] = site.kind
        values = tf.cast(values, tf.float32)
        positive = tf.reduce_sum(tf.cast(values > 0, tf.int32), axis=reduce_axes)
        counters.positive_count.assign_add(tf.cast(positive, tf.int64))
        # ReLU outputs are >= 0 (or NaN): their sum is their absolute sum.
        # Read the kind now (at trace time): a fix may have made it leaky.
        kind = layer_kind(site.layer) or site.kind
        magnitudes = values if kind in NON_NEGATIVE_KINDS else tf.abs(values)
        abs_sum = tf.reduce_sum(magnitudes, axis=reduce_axes)
        if layer_input is not None and counters.input_square_sum is not None:
            layer_input = tf.cast(tf.convert_to_tensor(layer_input), tf.float32)
            counters.input_square_sum.assign_add(tf.reduce_sum(tf.square(layer_input)))
            counters.input_count.assign_add(tf.cast(tf.size(layer_input), tf.float32))
        counters.abs_sum.assign_add(abs_sum)
        elements_per_unit = tf.size(values, out_type=tf.int64) // int(
            np.prod(unit_shape)
        )
        counters.element_count.assign_add(elements_per_unit)
        if counters.value_sum is not None:
            counters.value_sum.assign_add(tf.reduce_sum(values, axis=reduce_axes))
            counters.square_sum.assign_add(
                tf.reduce_sum(tf.square(values), axis=reduce_axes)
            )

    @property
    def site_names(self) -> list[str]:
        """Names of the sites that have recorded at least once."""
        return list(self._counters)

    def read(self) -> dict[str, UnitCounters]:
        """Returns every site's counters as NumPy arrays (one copy per window)."""
        result = {}
        for name, counters in self._counters.items():
            result[name] = UnitCounters(
                positive_count=counters.positive_count.numpy(),
                abs_sum=counters.abs_sum.numpy(),
                element_count=int(counters.element_count.numpy()),
                value_sum=None
                if counters.value_sum is None
                else counters.value_sum.numpy(),
                square_sum=None
                if counters.square_sum is None
                else counters.square_sum.numpy(),
                input_mean_square=None
                if counters.input_square_sum is None
                else _mean_square(counters),
            )
        return result

    def reset(self) -> None:
        """Zeroes every counter; the next window starts empty."""
        for counters in self._counters.values():
            counters.reset()

    def read_and_reset(self) -> dict[str, UnitCounters]:
        """:meth:`read`, then :meth:`reset`."""
        values = self.read()
        self.reset()
        return values
