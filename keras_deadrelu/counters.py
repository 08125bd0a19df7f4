"""Per-unit counters that live on the device and are updated inside a step.

A :class:`CounterRecorder` accumulates, per site and per unit, a few sums
over a window. Inside a step (between :meth:`~CounterRecorder.start_step`
and :meth:`~CounterRecorder.finish_step`, which the train-step and probe
wrappers call), :meth:`~CounterRecorder.record` notes a batch of a site's
outputs; ``finish_step`` reduces every site's to per-unit sums and adds them
all to one flat float64 buffer with a single ``assign_add``. It runs inside
Keras's traced (and, with ``jit_compile``, XLA-compiled) train step: no
extra forward pass, no device-to-host copy per step, and few ops. On a CPU
without XLA, where per-op dispatch is most of a streaming monitor's cost,
one compiled op (:mod:`keras_deadrelu.native_unit_sums`) takes every site's
sums in one pass; where it cannot be built, stock TensorFlow ops do, with
the Dense-like sites of one kind (an MLP's) summed side by side, as one
wide matrix. The buffer is read and zeroed once per window.

Per site the buffer holds: the count of values > 0 per unit, the sum of
absolute values per unit (NaN or inf shows there), for SELU sites the sum and
the sum of squares per unit, the number of values seen, the number of values
the positive count was taken over (fewer than those seen where it is taken
over the first sample of each batch only: streaming a ReLU or ReLU6 site
with several values per unit per sample on a CPU without XLA, see
:func:`samples_positive_counts`), and, for a layer with a kernel, half the
sum of squares of the first sample of its input (as ``l2_loss`` gives it)
and that sample's size (for the diagnosis). A step's
sums are float32 and the window's float64: a unit that sees more than 2**24
values in ONE step (channel units of, say, a batch of 64 maps of 512 x 512)
has its positive count rounded, so its firing rate reads low; whether it
fired at all is exact.
The buffer's memory is O(units). The buffer is a
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
import warnings

import numpy as np
import tensorflow as tf

from keras_deadrelu import native_unit_sums
from keras_deadrelu._xla import fused_by_xla_or_gpu as _fused_by_xla_or_gpu
from keras_deadrelu.backward_counting import BackwardSums
from keras_deadrelu.sites import Site, layer_kind, outputs_its_activation
from keras_deadrelu.threshold_alerts import DeadNeuronWarning
from keras_deadrelu.unit_statistics import UnitCounters

#: Site kinds whose outputs are never negative.
NON_NEGATIVE_KINDS = ("relu", "relu6")


@dataclasses.dataclass(frozen=True)
class _SiteLayout:
    """Where one site's sums sit in the flat buffer: from `offset` on, its
    per-unit vectors (positive count, absolute sum, [value sum, square sum]),
    its element count, [the number of values its positive count counted],
    and [its input's half square sum and size].

    The middle slot (`sampled`) depends on the site's shape, not its kind,
    so a fix that makes a ReLU site leaky (which is then counted in full)
    keeps the layout: a site counted in full writes its element count there.
    """

    name: str
    unit_shape: tuple[int, ...]
    offset: int
    moments: bool
    has_input: bool
    sampled: bool = False

    @property
    def units(self) -> int:
        return int(np.prod(self.unit_shape))

    @property
    def size(self) -> int:
        vectors = 4 if self.moments else 2
        counts = 2 if self.sampled else 1
        return vectors * self.units + counts + (2 if self.has_input else 0)


def _is_dense_tensor(value) -> bool:
    """One dense tensor (or array): not a tuple or dict of them, nor a sparse
    or ragged tensor."""
    return isinstance(value, (tf.Tensor, tf.Variable, np.ndarray))


def _identity(values: tf.Tensor) -> tf.Tensor:
    return values


def _is_positive(values: tf.Tensor) -> tf.Tensor:
    return tf.cast(values > 0, values.dtype)


def _per_unit_terms(kind: str | None, never_negative: bool) -> tuple:
    """The functions of a site's values whose per-unit sums the buffer
    holds, in layout order: positive count, absolute sum, [value sum, square
    sum]. The first is taken over the batch's first sample alone where the
    positive count is sampled. `never_negative`: the values are a ReLU's as
    it output them (see `outputs_its_activation`)."""
    # ReLU outputs are >= 0 (or NaN): their sum is their absolute sum. A NaN
    # is never counted as positive (as in the compiled op).
    terms = (_is_positive, _identity if never_negative else tf.abs)
    if kind == "selu":
        terms += (_identity, tf.square)
    return terms


@dataclasses.dataclass
class _PendingSite:
    """One site's record in a step being traced, before its sums are taken.

    `matrix` is the site's values as a (values, units) matrix when its units
    are contiguous at the end (channels last, or one unit per position),
    `values` the same values in their own shape, and
    `positions` how many of its rows each sample fills (a conv's positions,
    when known at trace time; else 1); otherwise `sums` already holds its
    per-unit sums and `count` the number of values per unit.
    `batch_source`, for a rank-2 output (a Dense layer), is the tensor whose
    first axis its first axis provably is.
    `layer_input` is the input of the layer that computes the site, when it
    has a kernel. `output_ref` is the ref of the site's output tensor as the
    layer returned it. `sample`, where the positive count is sampled, is the
    batch's first sample, shaped like `matrix` (rows of units) or like the
    values. `backward`, for a plain ReLU site counted in the backward pass
    (:mod:`keras_deadrelu.backward_counting`), receives its sums there.
    """

    layout: _SiteLayout
    terms: tuple
    output_ref: object
    matrix: tf.Tensor | None = None
    batch_source: tf.Tensor | None = None
    sums: list[tf.Tensor] | None = None
    count: tf.Tensor | None = None
    positions: int = 1
    values: tf.Tensor | None = None
    layer_input: tf.Tensor | None = None
    sample: tf.Tensor | None = None
    backward: BackwardSums | None = None

    @property
    def backward_sums(self) -> tf.Tensor | None:
        """The site's positive count, sum and rows, taken by its ReLU's
        gradient in this step's backward pass, where they were."""
        return None if self.backward is None else self.backward.sums

    def group_key(self) -> tuple:
        """Sites with equal keys are summed side by side, as one wide matrix:
        Dense-like sites of one kind whose batches come from one tensor, so
        that their matrices have as many rows."""
        if self.batch_source is None:
            return ("alone", id(self))
        return (self.terms, self.batch_source.ref())


class CounterRecorder:
    """Accumulates per-unit counters for sites, one window at a time.

    Args:
        granularity: ``"channel"`` (a unit is an output feature or channel,
            all positions together) or ``"unit"`` (every output position of
            every channel is its own unit).
        sample_positive_counts: whether a ReLU or ReLU6 site with several
            positions per unit (a conv's channels) has its positive count
            taken over the first sample of each batch only, on a CPU without
            XLA (see :func:`samples_positive_counts`). Its dead or alive state
            stays exact, from its absolute sum; its firing rate is estimated.
            The monitor's streaming measurement sets it; a probe does not.
        count_in_backward: whether a plain ReLU site's sums are taken by its
            gradient, in the training step's backward pass, where that is
            possible (:mod:`keras_deadrelu.backward_counting`); every value
            is then counted, at no extra read. The monitor's streaming
            measurement sets it.
    """

    def __init__(
        self,
        granularity: str = "channel",
        sample_positive_counts: bool = False,
        count_in_backward: bool = False,
    ):
        self.granularity = granularity
        self.sample_positive_counts = sample_positive_counts
        self.count_in_backward = count_in_backward
        self._layout: list[_SiteLayout] | None = None
        self._buffer: tf.Variable | None = None
        #: Names of the sites whose output is one of the model's outputs, as
        #: seen when a step was traced (the output layer, which fixes never
        #: touch; subclassed models included).
        self.output_site_names: set[str] = set()
        #: Sites left out at trace time, with a warning: a layer that returns
        #: more than one tensor, or one called on units of several shapes in
        #: a step (an activation layer reused after layers of different
        #: widths, in a model without a graph to see it in).
        self.left_out_site_names: set[str] = set()
        # Per thread: under MirroredStrategy each replica traces its step in
        # a thread of its own, interleaved with the others at every
        # cross-replica sync (the gradient all-reduce).
        self._local = threading.local()

    @property
    def _pending(self) -> list[_PendingSite] | None:
        return getattr(self._local, "pending", None)

    @_pending.setter
    def _pending(self, value: list[_PendingSite] | None) -> None:
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

    def contiguous_units(self, site: Site, shape: tf.TensorShape) -> int | None:
        """The number of units of `site`'s outputs of `shape` when they are
        contiguous at the end (a (values, units) matrix), else None."""
        if shape.rank is None or shape.rank < 2:
            return None
        try:
            reduce_axes, unit_shape = self._reduce_axes_and_unit_shape(site, shape)
        except ValueError:
            return None
        if reduce_axes not in (list(range(shape.rank - 1)), [0]):
            return None
        return int(np.prod(unit_shape))

    def start_step(self) -> None:
        """Begins collecting the sums of one step (at trace time)."""
        self._pending = []
        self._local.inputs = {}
        self._local.graph = _current_graph()

    def _in_step_graph(self) -> bool:
        """Whether ops made now belong to the step's own graph. Not when
        Keras builds an unbuilt model in a scratch graph inside the step, nor
        inside a control-flow body (a loop or branch): tensors made there
        cannot be used where the step's sums are taken, so they are not
        counted."""
        return _current_graph() is getattr(self._local, "graph", None)

    def record_input(self, site: Site, layer_input) -> None:
        """Notes the input of the weighted layer that feeds `site` (a ReLU or
        Activation layer after a Dense/Conv), for the site's next record."""
        if self._pending is not None and self._in_step_graph():
            self._local.inputs[site.name] = layer_input

    def note_model_outputs(self, outputs) -> None:
        """Notes which of this step's sites produced the model's `outputs`
        (called when the model's call returns, at trace time)."""
        if self._pending is None or not self._in_step_graph():
            return
        returned = set()
        for tensor in tf.nest.flatten(outputs):
            # Back through casts (a float32 output layer under mixed
            # precision casts the site's float16 output) and identities.
            for _ in range(16):
                if not hasattr(tensor, "ref"):
                    break
                returned.add(tensor.ref())
                op = getattr(tensor, "op", None)
                if op is None or op.type not in ("Cast", "Identity") or not op.inputs:
                    break
                tensor = op.inputs[0]
        for entry in self._pending:
            if entry.output_ref in returned:
                self.output_site_names.add(entry.layout.name)

    def record(
        self,
        site: Site,
        outputs,
        layer_input=None,
        backward: BackwardSums | None = None,
    ) -> None:
        """Notes one batch of `site`'s outputs, reduced to per-unit sums at the
        end of the step (or here, for units not contiguous at the end).

        `layer_input`, when given (the input of a layer with a kernel), adds
        its sum of squares, from which the diagnosis estimates the spread of
        the pre-activations. `backward`, when its sums are taken by the
        site's gradient, stands in for reading the outputs. Outside a step,
        the sums are added at once.
        """
        if self._pending is None:
            self.start_step()
            self.record(site, outputs, layer_input)
            self.finish_step()
            return
        if not self._in_step_graph() or site.name in self.left_out_site_names:
            return
        if not _is_dense_tensor(outputs):
            self._leave_out(
                site,
                f"its layer returns {type(outputs).__name__}, not one dense "
                "tensor of units",
            )
            return
        output = tf.convert_to_tensor(outputs)
        values = tf.cast(output, tf.float32)
        reduce_axes, unit_shape = self._reduce_axes_and_unit_shape(site, values.shape)
        if self._calls_differ(site, unit_shape):
            return
        # Read the kind now (at trace time): a fix may have made it leaky.
        kind = layer_kind(site.layer) or site.kind
        if layer_input is None:
            layer_input = self._local.inputs.pop(site.name, None)
        if not _is_dense_tensor(layer_input):
            layer_input = None  # sparse, ragged or several: no input figure
        # Several values per unit per sample: its positive count may be
        # sampled (in a slot of the layout), and is for some kinds.
        never_negative = kind in NON_NEGATIVE_KINDS and outputs_its_activation(
            site.layer
        )
        may_sample = self.sample_positive_counts and reduce_axes != [0]
        sampled = may_sample and never_negative and samples_positive_counts(kind)
        layout = _SiteLayout(
            site.name,
            unit_shape,
            0,
            kind == "selu",
            layer_input is not None,
            may_sample,
        )
        terms = _per_unit_terms(kind, never_negative)
        entry = _PendingSite(layout, terms, output.ref(), backward=backward)
        if layer_input is not None:
            entry.layer_input = tf.convert_to_tensor(layer_input)
            if not self.sample_positive_counts:
                # No step to keep light (a probe): the whole batch is one
                # "first sample", so a NaN anywhere in the input shows.
                entry.layer_input = tf.reshape(entry.layer_input, [1, -1])
        if reduce_axes in (list(range(values.shape.rank - 1)), [0]):
            # Units contiguous at the end: a (values, units) matrix, summed
            # over its rows at the end of the step; a Dense layer's beside
            # other such sites'.
            entry.matrix = tf.reshape(values, [-1, layout.units])
            entry.values = values
            if reduce_axes != [0]:
                entry.positions = values.shape[1:-1].num_elements() or 1
            if sampled:
                entry.sample = tf.reshape(values[:1], [-1, layout.units])
            if values.shape.rank == 2 and not _fused_by_xla_or_gpu():
                entry.batch_source = _batch_source(values)
        else:
            positive, *rest = entry.terms
            sample = values[:1] if sampled else values
            entry.sums = [
                tf.reshape(tf.reduce_sum(term(tensor), axis=reduce_axes), [-1])
                for term, tensor in [(positive, sample)]
                + [(term, values) for term in rest]
            ]
            counts = [tf.size(values)] + ([tf.size(sample)] if may_sample else [])
            entry.count = tf.cast(tf.stack(counts), tf.float32) / float(layout.units)
        self._pending.append(entry)

    def _calls_differ(self, site: Site, unit_shape: tuple[int, ...]) -> bool:
        """Whether `site` is left out: called in this step on units of
        another shape than now (warned once, and its records dropped)."""
        shapes = {
            entry.layout.unit_shape
            for entry in self._pending
            if entry.layout.name == site.name
        }
        if not shapes or shapes == {unit_shape}:
            return False
        shapes = ", ".join(str(shape) for shape in sorted(shapes | {unit_shape}))
        self._leave_out(
            site,
            f"its layer is called in one step on units of different shapes "
            f"({shapes}), which one site cannot add up: an activation layer "
            "reused after layers of different widths (different neurons; give "
            "each call its own activation layer), or, with granularity='unit', "
            "one layer called on inputs of different sizes",
        )
        return True

    def _leave_out(self, site: Site, why: str) -> None:
        """Leaves `site` out of the counts from now on, with one warning."""
        self.left_out_site_names.add(site.name)
        self._pending = [e for e in self._pending if e.layout.name != site.name]
        warnings.warn(
            f"Site {site.name!r} is left out: {why}.", DeadNeuronWarning, stacklevel=3
        )

    def finish_step(self) -> None:
        """Takes every site's per-unit sums of this step and adds them to the
        buffer, in one op.

        On a CPU without XLA, where per-op dispatch is most of a streaming
        monitor's cost, the sums come from one compiled op when it is
        available (:mod:`keras_deadrelu.native_unit_sums`), else from a few
        stock ops for all sites together.
        """
        pending, self._pending = self._pending, None
        if not pending:
            return
        flat = _sums_by_native_op(pending)
        if flat is None:
            flat = _sums_by_tensorflow_ops(pending)
        layout, offset = [], 0
        for entry in pending:
            layout.append(dataclasses.replace(entry.layout, offset=offset))
            offset += entry.layout.size
        if self._layout is None:
            self._buffer = _new_buffer(offset)
            self._layout = layout
        elif layout != self._layout:
            raise RuntimeError(
                "The model's sites produced different outputs than in the first "
                f"traced step: {_layout_difference(layout, self._layout)}. A "
                "monitored model must call the same sites, with the same unit "
                "shapes, at every step."
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
            numbers = buffer[layout.offset : layout.offset + layout.size]
            vectors = 4 if layout.moments else 2
            positive, absolute, *moments = numbers[: vectors * units].reshape(
                vectors, units
            )
            value_sum, square_sum = moments if moments else (None, None)
            element_count = int(round(numbers[vectors * units]))
            positive_sample = None
            if layout.sampled:
                counted = int(round(numbers[vectors * units + 1]))
                if counted != element_count:  # else every value was counted
                    positive_sample = counted
            input_mean_square = None
            if layout.has_input:
                half_square_sum, size = numbers[layout.size - 2 : layout.size]
                if size > 0:
                    input_mean_square = float(2.0 * half_square_sum / size)
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
                positive_sample=positive_sample,
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


def _layout_difference(new: list[_SiteLayout], old: list[_SiteLayout]) -> str:
    """The first difference between two steps' site layouts, in words."""
    names = [site.name for site in new], [site.name for site in old]
    if names[0] != names[1]:
        return f"sites {names[0]} against {names[1]}"
    for now, before in zip(new, old, strict=True):
        for field in ("unit_shape", "moments", "has_input", "sampled"):
            if getattr(now, field) != getattr(before, field):
                return (
                    f"site {now.name!r} has {field}={getattr(now, field)!r} "
                    f"against {getattr(before, field)!r}"
                )
    return "the same sites, in other positions"


def _sums_by_tensorflow_ops(pending: list[_PendingSite]) -> tf.Tensor:
    """A step's sums in the buffer's layout, from stock TensorFlow ops.

    On a CPU without XLA, Dense-like sites (one row per sample) of one kind
    are summed side by side, as one wide matrix, and the few scalars of all
    sites are stacked together: a few ops per step rather than a few per
    site.
    """
    for entry in pending:
        _take_backward_sums(entry)
    groups: dict[tuple, list[_PendingSite]] = {}
    for entry in pending:
        groups.setdefault(entry.group_key(), []).append(entry)
    # The groups' sums come out kind by kind; a gather puts every site's
    # numbers together, in the buffer's layout (one small op).
    vectors, length = [], 0
    indices: dict[int, list[int]] = {id(entry): [] for entry in pending}
    for group in groups.values():
        sums, counts = _group_sums(group)
        vectors += [sums, counts]
        slot_start = length
        for _term in group[0].terms:
            for entry in group:
                units = entry.layout.units
                indices[id(entry)] += range(slot_start, slot_start + units)
                slot_start += units
        length = slot_start
        # One count, shared by the group's sites; a site that may be
        # sampled (always alone) has a second: how many it counted.
        count_slots = 2 if group[0].layout.sampled else 1
        for entry in group:
            indices[id(entry)] += range(length, length + count_slots)
        length += count_slots
    input_terms = []
    # After the sums: taken as soon as its input exists, a sample would
    # race the next layer's kernel for the CPU threads (on a 4 x 512 MLP
    # step, this order saves about 1.5 points of the monitor's overhead).
    with tf.control_dependencies(vectors):
        for entry in pending:
            if entry.layer_input is not None:
                input_terms += _first_sample_terms(entry.layer_input)
                indices[id(entry)] += [length, length + 1]
                length += 2
    if input_terms:
        vectors.append(tf.stack(input_terms))
    order = [index for entry in pending for index in indices[id(entry)]]
    return tf.cast(tf.gather(tf.concat(vectors, axis=0), order), tf.float64)


def _take_backward_sums(entry: _PendingSite) -> None:
    """Makes a site whose sums its gradient took (in float64: positive
    count, sum, rows) a site with its sums already taken, alone in its
    group, for the stock ops."""
    sums = entry.backward_sums
    if sums is None:
        return
    units = entry.layout.units
    entry.sums = [tf.cast(sums[: 2 * units], tf.float32)]
    rows = tf.cast(sums[2 * units :], tf.float32)
    entry.count = tf.concat([rows, rows], 0) if entry.layout.sampled else rows
    entry.batch_source = None


def _sums_by_native_op(pending: list[_PendingSite]) -> tf.Tensor | None:
    """A step's sums in the buffer's layout, from the compiled op of
    :mod:`keras_deadrelu.native_unit_sums`: one pass over each site's
    outputs, one op for the whole step. None where it does not apply: under
    XLA or with a GPU (which fuse the stock ops into the step), for a site
    whose units are not contiguous at the end (a channels-first conv), or
    where the op is turned off or cannot be built."""
    if _fused_by_xla_or_gpu() or any(entry.matrix is None for entry in pending):
        return None
    op = native_unit_sums.unit_sums_op()
    if op is None:
        return None
    layer_inputs, input_of, precomputed = [], [], []
    for entry in pending:
        if entry.layer_input is None:
            input_of.append(-1)
            continue
        layer_input = entry.layer_input
        if layer_input.dtype != tf.float32:  # cast only the first sample
            layer_input = tf.cast(layer_input[:1], tf.float32)
        input_of.append(len(layer_inputs))
        layer_inputs.append(layer_input)
    precomputed_of = []
    for entry in pending:
        sums = entry.backward_sums
        precomputed_of.append(-1 if sums is None else len(precomputed))
        if sums is not None:
            precomputed.append(sums)
    return op(
        values=[entry.values for entry in pending if entry.backward_sums is None],
        layer_inputs=layer_inputs,
        precomputed=precomputed,
        precomputed_of=precomputed_of,
        units=[entry.layout.units for entry in pending],
        moments=[entry.layout.moments for entry in pending],
        count_slot=[entry.layout.sampled for entry in pending],
        first_sample_only=[
            entry.sample is not None and entry.backward_sums is None
            for entry in pending
        ],
        input_of=input_of,
    )


def _row_summer(matrix: tf.Tensor, positions: int = 1):
    """A function that sums a (rows, units) matrix like `matrix` over its rows.

    On a CPU without XLA it multiplies by a row of ones: TensorFlow's CPU
    kernel for a sum over the outer axis is slower than that one-row matrix
    product (the whole monitor added 5.1-6.7% to a training step of a
    4 x 512 ReLU MLP, batch 128, this way, against 8.1-8.9% with sums; the
    same on a small convnet). When each sample fills `positions` rows (a
    conv's channels), the product runs over the samples, on a (samples,
    positions x units) view, and a small sum over the positions follows:
    a long, narrow product (128 x 26 x 26 rows, 16 columns) is the slow
    shape for the CPU kernel, and this one took half its time on a 2-core
    Intel Xeon VM. XLA fuses a plain sum into the step, so under XLA it is
    one; so it is with a GPU, whose matrix products may round float32 to
    TF32.
    """
    if _fused_by_xla_or_gpu():
        return lambda tensor: tf.reduce_sum(tensor, axis=0)
    if positions > 1:
        units = matrix.shape[1]
        ones = tf.ones([1, tf.shape(matrix)[0] // positions], matrix.dtype)

        def sum_over_samples_then_positions(tensor):
            per_sample = tf.reshape(tensor, [-1, positions * units])
            over_samples = tf.matmul(ones, per_sample)
            return tf.reduce_sum(tf.reshape(over_samples, [positions, units]), 0)

        return sum_over_samples_then_positions
    ones = tf.ones([1, tf.shape(matrix)[0]], matrix.dtype)
    return lambda tensor: tf.reshape(tf.matmul(ones, tensor), [-1])


def samples_positive_counts(kind: str | None) -> bool:
    """Whether a site of `kind` with several values per unit per sample (a
    conv's channels), traced now, has its positive count taken over the
    first sample of each batch only (when its recorder samples).

    Only where it pays and loses nothing exact: on a CPU without XLA, for
    ReLU and ReLU6, whose outputs are never negative, so that a unit's
    absolute sum is 0 exactly when it never fired. There the positive count
    would take a sign pass and a second sum over every value, nearly all of
    a streaming monitor's cost on a convnet; on the first sample, it costs a
    fraction of that. Under XLA, or with a GPU, the sums are fused into the
    step and every value is counted.
    """
    return kind in NON_NEGATIVE_KINDS and not _fused_by_xla_or_gpu()


def _group_sums(group: list[_PendingSite]) -> tuple[tf.Tensor, tf.Tensor]:
    """The per-unit sums of a group of sites of one kind, as one flat vector
    (term by term: positive count, absolute sum, ...; within a term, site by
    site), and the number of values per unit, which all its sites share.

    A group of several sites (Dense-like sites whose batches provably come
    from one tensor, on a CPU without XLA) is summed side by side, as one
    wide matrix: a few ops for all of them. Under XLA, which fuses the sums
    into the step, or with a GPU, sites stay apart.
    """
    terms = group[0].terms
    if len(group) > 1:
        wide = tf.concat([entry.matrix for entry in group], axis=1)
        summer = _row_summer(wide)
        return tf.concat([summer(term(wide)) for term in terms], 0), _rows(wide)
    (entry,) = group
    if entry.sums is not None:
        return tf.concat(entry.sums, 0), entry.count
    summer = _row_summer(entry.matrix, entry.positions)
    if entry.sample is None:
        sums = tf.concat([summer(term(entry.matrix)) for term in terms], 0)
        rows = _rows(entry.matrix)
        # A site that may be sampled but is not: every value was counted.
        return sums, tf.concat([rows, rows], 0) if entry.layout.sampled else rows
    positive, *rest = terms
    sums = [_row_summer(entry.sample)(positive(entry.sample))]
    sums += [summer(term(entry.matrix)) for term in rest]
    return tf.concat(sums, 0), tf.concat([_rows(entry.matrix), _rows(entry.sample)], 0)


#: Ops whose output's first axis is their first input's (elementwise on one
#: tensor, or a bias added along the last axis).
_BATCH_KEEPING_OPS = frozenset(
    [
        "Abs",
        "Cast",
        "Elu",
        "Exp",
        "Gelu",
        "Identity",
        "LeakyRelu",
        "Log",
        "Neg",
        "Relu",
        "Relu6",
        "Rsqrt",
        "Selu",
        "Sigmoid",
        "Sign",
        "Softplus",
        "Softsign",
        "Sqrt",
        "Square",
        "StopGradient",
        "Tanh",
        "BiasAdd",
    ]
)
#: Elementwise ops of two tensors, which may broadcast.
_ELEMENTWISE_BINARY_OPS = frozenset(
    ["Add", "AddV2", "Maximum", "Minimum", "Mul", "RealDiv", "Sub", "SquaredDifference"]
)


def _batch_source(tensor: tf.Tensor) -> tf.Tensor | None:
    """The tensor whose first axis `tensor`'s first axis provably is, found
    by walking back through ops that keep it (a Dense layer's MatMul, bias
    add and activation): sites with one source have equal batch sizes. None
    where there is no graph to walk (eager)."""
    if not hasattr(tensor, "op") or tf.executing_eagerly():
        return None
    for _ in range(256):
        op = tensor.op
        keeps = op.type in _BATCH_KEEPING_OPS
        if keeps or (op.type == "MatMul" and not op.get_attr("transpose_a")):
            tensor = op.inputs[0]
        elif op.type == "IdentityN":  # a custom gradient's (backward_counting)
            tensor = op.inputs[tensor.value_index]
        elif op.type in _ELEMENTWISE_BINARY_OPS:
            rank = tensor.shape.rank
            carriers = [
                operand
                for operand in op.inputs
                if operand.shape.rank == rank and operand.shape[0] != 1
            ]
            if len(carriers) != 1:  # broadcasting on the batch axis, or two
                return tensor
            tensor = carriers[0]
        else:
            return tensor
    return tensor


def _first_sample_terms(layer_input: tf.Tensor) -> tuple:
    """Half the sum of squares of the first sample of `layer_input`, and
    that sample's size: the input's mean square is estimated from the first
    sample of each batch, plenty over a window, at a fraction of a pass."""
    sample = tf.cast(layer_input[:1], tf.float32)
    size = sample.shape.num_elements()  # known when traced, mostly
    if size is None:
        size = tf.cast(tf.size(sample), tf.float32)
    return tf.nn.l2_loss(sample), size


def _rows(matrix: tf.Tensor) -> tf.Tensor:
    """The number of rows of `matrix`, as a float32 vector of one."""
    rows = matrix.shape[0]
    if rows is not None:
        return tf.constant([rows], tf.float32)
    return tf.cast(tf.shape(matrix)[:1], tf.float32)


def _current_graph():
    """The graph ops go to now (None when executing eagerly)."""
    if tf.executing_eagerly():
        return None
    return tf.compat.v1.get_default_graph()


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

    positive_sample = None
    if first.positive_sample is not None or second.positive_sample is not None:
        positive_sample = first.counted_values + second.counted_values
    return UnitCounters(
        positive_count=first.positive_count + second.positive_count,
        abs_sum=first.abs_sum + second.abs_sum,
        element_count=first.element_count + second.element_count,
        positive_sample=positive_sample,
        value_sum=plus(first.value_sum, second.value_sum),
        square_sum=plus(first.square_sum, second.square_sum),
        input_mean_square=first.input_mean_square
        if first.input_mean_square is not None
        else second.input_mean_square,
    )
