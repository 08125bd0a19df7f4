"""Per-unit counters that live on the device and are updated inside a step.

A :class:`CounterRecorder` accumulates, per site and per unit, a few sums
over a window. Inside a step (between :meth:`~CounterRecorder.start_step`
and :meth:`~CounterRecorder.finish_step`, which the train-step and probe
wrappers call), :meth:`~CounterRecorder.record` reduces a batch of a site's
outputs to per-unit sums; ``finish_step`` then adds *all* sites' sums to one
flat float64 buffer with a single ``assign_add``. It runs inside Keras's
traced (and, with ``jit_compile``, XLA-compiled) train step: no extra forward
pass, no device-to-host copy per step, and few ops per site (the cost of a
streaming monitor on a CPU is mostly per-op dispatch). The buffer is read and
zeroed once per window.

Per site the buffer holds: the count of values > 0 per unit, the sum of
absolute values per unit (NaN or inf shows there), for SELU sites the sum and
the sum of squares per unit, the number of values seen, and, for a layer with
a kernel, the sum of squares of the first sample of its input and that
sample's size (for the diagnosis). A step's sums are float32 and the
window's float64: a unit that sees more than 2**24 values in ONE step (channel
units of, say, a batch of 64 maps of 512 x 512) has its positive count
rounded, so its firing rate reads low; whether it fired at all is exact.
Memory is O(units). The buffer is a
``tf.Variable`` owned by the recorder, never by the model, so a model saved
mid-fit holds none of it.

Under a ``tf.distribute`` strategy (a step traced in a replica context, as in
``fit`` under ``MirroredStrategy``), the buffer is created *sync-on-read*
with SUM aggregation: each replica adds its own share of the batch to its own
copy, with no cross-device traffic per step, and reading it once per window
adds the copies together. So a unit counts as alive when it fired on any
replica, and the counts and sums are those of the whole global batch. Each
replica traces the step in its own thread, so a step's pending sums are kept
per thread. Without a strategy, nothing of this adds an op to the step.

>>> import numpy as np
>>> import keras
>>> from keras_deadrelu.sites import Site
>>> site = Site("act", keras.layers.ReLU(), "relu")
>>> recorder = CounterRecorder(granularity="channel")
>>> recorder.record(site, np.array([[1.0, 0.0], [2.0, 0.0]], "float32"))
>>> counters = recorder.read_and_reset()["act"]
>>> counters.positive_count.tolist(), counters.element_count
([2, 0], 2)
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import tensorflow as tf

from keras_deadrelu._xla import compiled_by_xla
from keras_deadrelu.sites import Site, layer_kind
from keras_deadrelu.unit_statistics import UnitCounters

#: Site kinds whose outputs are never negative.
NON_NEGATIVE_KINDS = ("relu", "relu6")


@dataclasses.dataclass(frozen=True)
class _SiteLayout:
    """Where one site's sums sit in the flat buffer."""

    name: str
    unit_shape: tuple[int, ...]
    offset: int
    moments: bool
    has_input: bool

    @property
    def units(self) -> int:
        return int(np.prod(self.unit_shape))

    @property
    def size(self) -> int:
        # positive count, abs sum, [value sum, square sum], element count,
        # [input square sum, input size]
        per_unit = 4 if self.moments else 2
        return per_unit * self.units + 1 + (2 if self.has_input else 0)


class CounterRecorder:
    """Accumulates per-unit counters for sites, one window at a time.

    Args:
        granularity: ``"channel"`` (a unit is an output feature or channel,
            all positions together) or ``"unit"`` (every output position of
            every channel is its own unit).
    """

    def __init__(self, granularity: str = "channel"):
        self.granularity = granularity
        self._layout: list[_SiteLayout] | None = None
        self._buffer: tf.Variable | None = None
        # Per thread: under MirroredStrategy each replica traces its step in
        # a thread of its own, interleaved with the others at every
        # cross-replica sync (the gradient all-reduce).
        self._local = threading.local()

    @property
    def _pending(self) -> list[tuple[_SiteLayout, list]] | None:
        return getattr(self._local, "pending", None)

    @_pending.setter
    def _pending(self, value: list[tuple[_SiteLayout, list]] | None) -> None:
        self._local.pending = value

    # ------------------------------------------------------------ recording
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

    def start_step(self) -> None:
        """Begins collecting the sums of one step (at trace time)."""
        self._pending = []
        self._local.inputs = {}

    def record_input(self, site: Site, layer_input) -> None:
        """Notes the input of the weighted layer that feeds `site` (a ReLU or
        Activation layer after a Dense/Conv), for the site's next record."""
        if self._pending is not None:
            self._local.inputs[site.name] = layer_input

    def record(self, site: Site, outputs, layer_input=None) -> None:
        """Reduces one batch of `site`'s outputs to per-unit sums.

        `layer_input`, when given (the input of a layer with a kernel), adds
        its sum of squares, from which the diagnosis estimates the spread of
        the pre-activations. Outside a step, the sums are added at once.
        """
        if self._pending is None:
            self.start_step()
            self.record(site, outputs, layer_input)
            self.finish_step()
            return
        values = tf.cast(tf.convert_to_tensor(outputs), tf.float32)
        reduce_axes, unit_shape = self._reduce_axes_and_unit_shape(site, values.shape)
        if reduce_axes in (list(range(values.shape.rank - 1)), [0]):
            # Units contiguous at the end (channels last, or one unit per
            # position): a (values, units) matrix, summed over its rows.
            values = tf.reshape(values, [-1, int(np.prod(unit_shape))])
            total = _row_summer(values)
        else:
            axes = reduce_axes

            def total(tensor):
                return tf.reshape(tf.reduce_sum(tensor, axis=axes), [-1])

        # Read the kind now (at trace time): a fix may have made it leaky.
        kind = layer_kind(site.layer) or site.kind
        if kind in NON_NEGATIVE_KINDS:
            # ReLU outputs are >= 0 (or NaN): sign counts the positive ones,
            # and their sum is their absolute sum.
            parts = [total(tf.sign(values)), total(values)]
        else:
            parts = [total(tf.cast(values > 0, tf.float32)), total(tf.abs(values))]
        moments = kind == "selu"
        if moments:
            parts += [total(values), total(tf.square(values))]
        scalars = [tf.cast(tf.size(values), tf.float32) / float(np.prod(unit_shape))]
        if layer_input is None:
            layer_input = self._local.inputs.pop(site.name, None)
        has_input = layer_input is not None
        if has_input:
            # The input's mean square is estimated from the first sample of
            # each batch: plenty over a window, at a fraction of a full pass.
            sample = tf.cast(tf.convert_to_tensor(layer_input)[:1], tf.float32)
            scalars.append(2.0 * tf.nn.l2_loss(sample))  # sum of squares
            scalars.append(tf.cast(tf.size(sample), tf.float32))
        parts.append(tf.stack(scalars))
        layout = _SiteLayout(site.name, unit_shape, 0, moments, has_input)
        self._pending.append((layout, parts))

    def finish_step(self) -> None:
        """Adds every site's sums of this step to the buffer, in one op."""
        pending, self._pending = self._pending, None
        if not pending:
            return
        layout, offset = [], 0
        for site_layout, _ in pending:
            placed = dataclasses.replace(site_layout, offset=offset)
            layout.append(placed)
            offset += placed.size
        if self._layout is None:
            self._buffer = _new_buffer(offset)
            self._layout = layout
        elif layout != self._layout:
            raise RuntimeError(
                "The model's sites produced different outputs than in the first "
                f"traced step: {[s.name for s in layout]} against "
                f"{[s.name for s in self._layout]}. A monitored model must call "
                "the same sites, with the same unit shapes, at every step."
            )
        flat = tf.cast(
            tf.concat([part for _, parts in pending for part in parts], axis=0),
            tf.float64,
        )
        buffer = self._buffer
        if isinstance(buffer, tf.distribute.DistributedValues) and (
            tf.distribute.in_cross_replica_context()
        ):
            # A sync-on-read SUM variable refuses `assign_add` in cross-replica
            # context (a probe run under `strategy.scope()`): the whole batch
            # was seen once, so it goes to one replica's copy, and reading
            # still adds the copies up.
            buffer = buffer.values[0]
        buffer.assign_add(flat)

    # -------------------------------------------------------------- reading
    @property
    def site_names(self) -> list[str]:
        """Names of the sites that have recorded at least once."""
        return [layout.name for layout in self._layout or []]

    def read(self) -> dict[str, UnitCounters]:
        """Returns every site's counters as NumPy arrays (one copy per window).

        A site called several times per step (a shared layer) has its calls
        added together.
        """
        if self._buffer is None:
            return {}
        buffer = self._buffer.numpy()
        result: dict[str, UnitCounters] = {}
        for layout in self._layout:
            units = layout.units
            cursor = layout.offset

            def take(count: int) -> np.ndarray:
                nonlocal cursor
                cursor += count
                return buffer[cursor - count : cursor]

            positive = take(units)
            absolute = take(units)
            value_sum = square_sum = None
            if layout.moments:
                value_sum = take(units)
                square_sum = take(units)
            scalars = take(1 + (2 if layout.has_input else 0))
            element_count = int(round(scalars[0]))
            input_mean_square = None
            if layout.has_input and scalars[2] > 0:
                input_mean_square = float(scalars[1] / scalars[2])
            counters = UnitCounters(
                positive_count=np.rint(np.nan_to_num(positive))
                .astype(np.int64)
                .reshape(layout.unit_shape),
                abs_sum=absolute.reshape(layout.unit_shape),
                element_count=element_count,
                value_sum=None
                if value_sum is None
                else value_sum.reshape(layout.unit_shape),
                square_sum=None
                if square_sum is None
                else square_sum.reshape(layout.unit_shape),
                input_mean_square=input_mean_square,
            )
            if layout.name in result:
                counters = _add(result[layout.name], counters)
            result[layout.name] = counters
        return result

    def reset(self) -> None:
        """Zeroes every counter; the next window starts empty."""
        if self._buffer is not None:
            # For a sync-on-read variable this zeroes every replica's copy.
            self._buffer.assign(tf.zeros(self._buffer.shape, self._buffer.dtype))

    def read_and_reset(self) -> dict[str, UnitCounters]:
        """:meth:`read`, then :meth:`reset`."""
        values = self.read()
        self.reset()
        return values


def _row_summer(matrix: tf.Tensor):
    """A function that sums a (rows, units) matrix like `matrix` over its rows.

    On a CPU without XLA it multiplies by a row of ones: TensorFlow's CPU
    kernel for a sum over the outer axis is slower than that one-row matrix
    product (the whole monitor added 5.1-6.7% to a training step of a
    4 x 512 ReLU MLP, batch 128, this way, against 8.1-8.9% with sums; the
    same on a small convnet). XLA fuses a plain sum into the step, so under
    XLA it is one; so it is with a GPU, whose matrix products may round
    float32 to TF32.
    """
    if compiled_by_xla() or tf.config.list_logical_devices("GPU"):
        return lambda tensor: tf.reduce_sum(tensor, axis=0)
    ones = tf.ones([1, tf.shape(matrix)[0]], matrix.dtype)
    return lambda tensor: tf.reshape(tf.matmul(ones, tensor), [-1])


def _new_buffer(size: int) -> tf.Variable:
    """The zeroed flat float64 buffer, created eagerly even while tracing.

    Under a distribution strategy it is sync-on-read with SUM aggregation, so
    that replicas add to their own copies and a read sums them.
    """
    distributed = {}
    if tf.distribute.has_strategy():
        distributed = {
            "synchronization": tf.VariableSynchronization.ON_READ,
            "aggregation": tf.VariableAggregation.SUM,
        }
    with tf.init_scope():
        return tf.Variable(tf.zeros([size], tf.float64), trainable=False, **distributed)


def _add(first: UnitCounters, second: UnitCounters) -> UnitCounters:
    """Two calls of one shared site, added together."""

    def plus(a, b):
        return None if a is None or b is None else a + b

    return UnitCounters(
        positive_count=first.positive_count + second.positive_count,
        abs_sum=first.abs_sum + second.abs_sum,
        element_count=first.element_count + second.element_count,
        value_sum=plus(first.value_sum, second.value_sum),
        square_sum=plus(first.square_sum, second.square_sum),
        input_mean_square=first.input_mean_square,
    )
