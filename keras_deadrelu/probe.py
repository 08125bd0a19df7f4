"""The probe: an inference-mode pass over fixed data that fills counters.

Used by the monitor when it is given ``probe_data``, and by
:func:`keras_deadrelu.dead_fractions`. The data is consumed in batches, so
memory stays O(units) however many samples the probe holds.

Accepted data: a NumPy array (or a tuple ``(x, y)`` / ``(x, y, w)``, or a dict
of arrays for a multi-input model), a batched ``tf.data.Dataset`` whose
elements are ``x`` or ``(x, ...)``, a ``keras.utils.PyDataset``, or a
callable that returns a fresh iterator of batches each time it is called (a
generator function).
A generator *object* can be iterated only once, so it is rejected with an
explanation.
"""

from __future__ import annotations

import collections.abc
import inspect
import reprlib
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_deadrelu._validation import check_positive_int
from keras_deadrelu.counters import CounterRecorder
from keras_deadrelu.instrumentation import recording_into

DEFAULT_BATCH_SIZE = 256


def _first_of_tuple(element: Any) -> Any:
    if isinstance(element, tuple) and element:
        return element[0]
    return element


def _count_samples(x: Any) -> int:
    leaves = tf.nest.flatten(x)
    return int(np.shape(leaves[0])[0]) if leaves and np.ndim(leaves[0]) else 0


def as_batches(
    data: Any,
    batch_size: int | None = None,
    steps: int | None = None,
    names: tuple[str, str, str] = ("probe_data", "probe_batch_size", "probe_steps"),
    model_inputs: int | None = None,
) -> tf.data.Dataset | collections.abc.Callable:
    """Normalises probe data to a re-iterable source of input batches.

    Returns a ``tf.data.Dataset`` (or, for a generator function, a callable
    that returns an iterator). Raises ``ValueError``/``TypeError`` naming the
    caller's argument (`names`: data, batch size, steps) for anything it
    cannot use, before any training happens. `model_inputs`, the number of
    the model's inputs when known, decides what a list of arrays is.
    """
    data_name, batch_name, steps_name = names
    if batch_size is not None:
        batch_size = check_positive_int(batch_name, batch_size)
    if steps is not None:
        steps = check_positive_int(steps_name, steps)
    if data is None:
        raise ValueError(f"Argument `{data_name}` must not be None.")
    if isinstance(data, tf.data.Dataset):
        if batch_size is not None:
            raise ValueError(
                f"Argument `{batch_name}` must be None for a tf.data.Dataset, which "
                f"is batched already. Received: {batch_name}={batch_size}"
            )
        cardinality = int(data.cardinality())
        if cardinality == tf.data.INFINITE_CARDINALITY and steps is None:
            raise ValueError(
                f"Argument `{data_name}` is an infinite tf.data.Dataset; pass "
                f"`{steps_name}` to say how many batches one probe reads."
            )
        if cardinality == 0:
            raise ValueError(f"Argument `{data_name}` is an empty tf.data.Dataset.")
        dataset = data.map(lambda *element: element[0])
        return dataset.take(steps) if steps is not None else dataset
    if isinstance(data, keras.utils.PyDataset):
        return _py_dataset_batches(data, batch_size, steps, names)
    if inspect.isgenerator(data) or isinstance(data, collections.abc.Iterator):
        raise TypeError(
            f"Argument `{data_name}` is a generator object, which can be read only "
            "once; the probe reads its data every window. Pass the generator "
            "function itself (a callable returning a fresh iterator) together "
            f"with `{steps_name}`, or an array. Received: {data_name}={data!r}"
        )
    if callable(data):
        if steps is None:
            raise ValueError(
                f"Argument `{steps_name}` is required when `{data_name}` is a "
                "generator function, since the probe cannot know where an "
                "infinite generator ends."
            )

        def batches() -> collections.abc.Iterator:
            iterator = iter(data())
            for _ in range(steps):
                try:
                    yield _first_of_tuple(next(iterator))
                except StopIteration:
                    return

        return batches
    if isinstance(data, tuple) and not isinstance(data, (np.ndarray,)):
        if not data:
            raise ValueError(f"Argument `{data_name}` is an empty tuple.")
        data = data[0]
    if isinstance(data, list) and data and all(hasattr(x, "shape") for x in data):
        # As in Keras: one array per input for a model with several inputs
        # (tf.data would stack the list into one tensor), the samples of one
        # array for a model with one.
        if model_inputs == 1 and len(data) == 1:
            data = data[0]  # [x]: one array for the one input, as Keras reads it
        else:
            data = (
                _one_array(data, data_name, of_arrays=True)
                if model_inputs == 1
                else tuple(data)
            )
    elif isinstance(data, list) and not any(hasattr(x, "shape") for x in data):
        # Nested lists of numbers: one array.
        data = _one_array(data, data_name, of_arrays=False)
    try:
        tensors = tf.nest.map_structure(np.asarray, data)
    except Exception as error:  # noqa: BLE001 - reported with the argument name
        raise TypeError(
            f"Argument `{data_name}` must be an array, a tuple (x, y), a dict of "
            "arrays, a tf.data.Dataset or a generator function. "
            f"Received: {data_name} of type {type(data).__name__}"
        ) from error
    for leaf in tf.nest.flatten(tensors):
        if leaf.dtype == object or not (
            np.issubdtype(leaf.dtype, np.number) or leaf.dtype == bool
        ):
            raise TypeError(
                f"Argument `{data_name}` must hold numbers; received an array of "
                f"dtype {leaf.dtype}."
            )
        if leaf.ndim == 0:
            raise ValueError(
                f"Argument `{data_name}` must have a batch axis; received a scalar."
            )
    if _count_samples(tensors) == 0:
        raise ValueError(f"Argument `{data_name}` is empty (0 samples).")
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    dataset = dataset.batch(batch_size or DEFAULT_BATCH_SIZE)
    return dataset.take(steps) if steps is not None else dataset


def _one_array(data: list, data_name: str, of_arrays: bool) -> np.ndarray:
    """The samples of a list (of arrays, or nested lists of numbers) as one
    array; items of different shapes are a ValueError naming the argument."""
    try:
        return np.asarray(data)
    except ValueError as error:
        if of_arrays:
            shapes = ", ".join(str(tuple(item.shape)) for item in data[:4])
            shown = (
                f"a list of arrays of shapes {shapes}{', ...' if len(data) > 4 else ''}"
            )
            advice = (
                "a list of arrays is one array per input only for a model "
                "with several inputs; this model has one: give one array"
            )
        else:
            shown = reprlib.repr(data)
            advice = "give one array, or nested lists of one shape"
        raise ValueError(
            f"Argument `{data_name}` is a list whose items differ in shape, "
            f"so it is not one array of samples: {advice}. "
            f"Received: {data_name}={shown}"
        ) from error


def _py_dataset_batches(
    data: keras.utils.PyDataset,
    batch_size: int | None,
    steps: int | None,
    names: tuple[str, str, str],
) -> collections.abc.Callable:
    """A `PyDataset`'s first `steps` batches (all by default), as a callable
    returning an iterator of their inputs."""
    data_name, batch_name, steps_name = names
    if batch_size is not None:
        raise ValueError(
            f"Argument `{batch_name}` must be None for a PyDataset, which is "
            f"batched already. Received: {batch_name}={batch_size}"
        )
    total = data.num_batches
    if total is None and steps is None:
        raise ValueError(
            f"Argument `{data_name}` is an infinite PyDataset; pass `{steps_name}` "
            "to say how many batches one probe reads."
        )
    count = steps if total is None else min(total, steps or total)
    if count == 0:
        raise ValueError(f"Argument `{data_name}` is an empty PyDataset.")

    def batches() -> collections.abc.Iterator:
        for index in range(count):
            yield _first_of_tuple(data[index])

    return batches


def check_batches_fit(model: Any, batch: Any, name: str = "probe_data") -> None:
    """Raises ValueError naming the argument `name` when `batch` (the first
    batch of probe data) cannot enter the model."""
    inputs = getattr(model, "inputs", None)
    leaves = keras.tree.flatten(batch)
    names = [getattr(tensor, "name", None) for tensor in inputs or []]
    if isinstance(batch, dict) and len(names) > 1 and set(names) == set(batch):
        leaves = [batch[name] for name in names]  # matched by name, as in Keras
    batch_leaves = [np.shape(leaf) for leaf in leaves]
    if inputs:
        expected = [tuple(tensor.shape) for tensor in inputs]
        if len(expected) != len(batch_leaves):
            raise ValueError(
                f"Argument `{name}` gives {len(batch_leaves)} input(s) but the "
                f"model takes {len(expected)}."
            )
        for want, got in zip(expected, batch_leaves, strict=True):
            fits = len(want) == len(got) and all(
                w is None or w == g for w, g in zip(want[1:], got[1:], strict=True)
            )
            if not fits:
                raise ValueError(
                    f"Argument `{name}` has batches of shape {tuple(got)}, but "
                    f"the model expects inputs of shape {want}."
                )
    try:
        model(batch, training=False)
    except Exception as error:  # noqa: BLE001 - re-raised with the argument name
        raise ValueError(
            f"Argument `{name}` does not fit the model (batches of shape "
            f"{batch_leaves}): {error}"
        ) from error


def first_batch(batches: tf.data.Dataset | collections.abc.Callable) -> Any:
    """Returns the first batch of a normalised probe source (for shape checks)."""
    iterator = iter(batches() if callable(batches) else batches)
    try:
        return next(iterator)
    except StopIteration:
        raise ValueError("The probe data holds no batch.") from None


class Probe:
    """Runs the model in inference mode over fixed batches into a recorder.

    Args:
        model: the Keras model; its sites must already be instrumented.
        batches: the output of :func:`as_batches`.
        recorder: where the site outputs are counted.
        jit_compile: compile the probe step with XLA.
    """

    def __init__(
        self,
        model: Any,
        batches: tf.data.Dataset | collections.abc.Callable,
        recorder: CounterRecorder,
        jit_compile: bool = False,
    ):
        self.model = model
        self.batches = batches
        self.recorder = recorder

        self.jit_compile = bool(jit_compile)
        self.refresh()

    def refresh(self) -> None:
        """Makes a fresh probe function (traced at its next call), so that a
        fix that changed the model's graph (a swapped activation) is seen."""
        model, recorder = self.model, self.recorder

        def probe_step(inputs):
            with recording_into(recorder):
                model(inputs, training=False)

        self._step = tf.function(
            probe_step, reduce_retracing=True, jit_compile=self.jit_compile
        )

    def run(self) -> int:
        """Feeds every batch through the model; returns the number of batches."""
        source = self.batches() if callable(self.batches) else self.batches
        count = 0
        for batch in source:
            self._step(batch)
            count += 1
        return count
