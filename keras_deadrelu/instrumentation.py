"""Hooking sites so that their outputs reach a recorder, and unhooking them.

:class:`Instrumentation` replaces each site layer's ``call`` with a thin
wrapper (an instance attribute; the class is untouched). The wrapper passes
the layer's output to the *active* recorder, if any, and returns it
unchanged. A recorder is active only inside :func:`recording_into`, which the
monitor wraps around ``model.train_step`` and the probe wraps around its own
forward pass. Because Keras traces its step functions, the decision is made
at trace time: the train function gets the counter updates, while the test
and predict functions (traced outside the context) get none.

:meth:`Instrumentation.uninstall` restores every original attribute, so the
model is left exactly as it was: nothing is saved with it.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Iterator
from typing import Any

import keras

from keras_deadrelu import backward_counting
from keras_deadrelu.counters import CounterRecorder
from keras_deadrelu.sites import Site

_state = threading.local()
_MISSING = object()


def active_recorder() -> CounterRecorder | None:
    """The recorder that site outputs go to now, or None."""
    return getattr(_state, "recorder", None)


@contextlib.contextmanager
def recording_into(recorder: CounterRecorder) -> Iterator[None]:
    """Makes `recorder` the active recorder inside the block: one step.

    On leaving the block without error, the step's sums are added to the
    recorder's buffer (in one op, at the end of the traced step).
    """
    previous = active_recorder()
    _state.recorder = recorder
    recorder.start_step()
    try:
        yield
        recorder.finish_step()
    finally:
        _state.recorder = previous


def _is_symbolic(outputs: Any) -> bool:
    return isinstance(outputs, keras.KerasTensor)


#: The function of TensorFlow's ``tf.recompute_grad`` (which ``keras.remat``
#: and ``keras.RematScope`` use on TensorFlow) that calls the wrapped layers
#: again in the backward pass, and the file it lives in.
_RECOMPUTING_FUNCTION = ("inner_recompute_grad", "custom_gradient.py")


def _recomputing() -> bool:
    """Whether this call is ``tf.recompute_grad`` computing a layer again in
    the backward pass. The forward call has recorded the same values already
    (once per input, as for any call), so this one is not recorded again.

    Asked only while a recorder is active, so at trace time (or per call in
    ``run_eagerly``): it walks the Python stack.
    """
    name, file_name = _RECOMPUTING_FUNCTION
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == name and code.co_filename.endswith(file_name):
            return True
        frame = frame.f_back
    return False


class Instrumentation:
    """Installs and removes the recording wrappers on a model's sites.

    Args:
        model: the Keras model.
        sites: the sites to hook.
        train_recorder: when given, ``model.train_step`` is wrapped so that
            sites record into it during training steps.
        recorder: the recorder the wrappers record into (default:
            `train_recorder`); a wrapper ignores any other active recorder.
    """

    def __init__(
        self,
        model: Any,
        sites: list[Site],
        train_recorder: CounterRecorder | None = None,
        recorder: CounterRecorder | None = None,
    ):
        self.model = model
        self.sites = list(sites)
        self.train_recorder = train_recorder
        self.recorder = recorder if recorder is not None else train_recorder
        self._saved: list[tuple[Any, str, Any]] = []

    @property
    def installed(self) -> bool:
        return bool(self._saved)

    def _replace(self, owner: Any, attribute: str, value: Any) -> None:
        self._saved.append((owner, attribute, owner.__dict__.get(attribute, _MISSING)))
        object.__setattr__(owner, attribute, value)

    def install(self) -> None:
        """Hooks every site (and the train step, when recording training)."""
        if self.installed:
            return
        for site in self.sites:
            self._replace(
                site.layer,
                "call",
                _recording_call(site, site.layer.call, self.recorder),
            )
            producer = _weighted_producer(site)
            if producer is not None:
                self._replace(
                    producer,
                    "call",
                    _recording_input_call(site, producer.call, self.recorder),
                )
        self._replace(
            self.model, "call", _noting_model_call(self.model.call, self.recorder)
        )
        if self.train_recorder is not None:
            self._replace(
                self.model,
                "train_step",
                _recording_train_step(self.model.train_step, self.train_recorder),
            )

    def uninstall(self) -> None:
        """Restores every replaced attribute, newest first."""
        while self._saved:
            owner, attribute, original = self._saved.pop()
            if original is _MISSING:
                owner.__dict__.pop(attribute, None)
            else:
                object.__setattr__(owner, attribute, original)


def _recording_call(
    site: Site, original_call: Any, recorder: CounterRecorder | None
) -> Any:
    """Wraps a site's ``call`` so that its output (and input) is recorded.

    The layer's own computation is left alone: in particular the
    pre-activation is never read, since reading it would stop TensorFlow from
    fusing MatMul/Conv + BiasAdd + Relu into one kernel (measured: +11% per
    epoch on a 4x512 MLP). For a plain ReLU site in a training step, the
    ReLU of this call is one whose gradient also takes the site's sums
    (:mod:`keras_deadrelu.backward_counting`): the same values and the same
    gradient, and no extra read of the outputs. For a layer with a kernel,
    the layer's *input* is recorded too (its mean square, for the
    diagnosis); reading an input does not break any fusion.

    The wrapper records only into its own `recorder`: when two measurements
    hook the same layer (``kd.dead_fractions`` called during a monitored
    ``fit``), each wrapper counts for its own measurement only.
    """
    layer = site.layer

    @functools.wraps(original_call)
    def call(*args, **kwargs):
        active = active_recorder()
        ours = (
            active is not None
            and (recorder is None or active is recorder)
            and not _recomputing()
        )
        holder = None
        if (
            ours
            and active.count_in_backward
            and args
            and not _is_symbolic(args[0])
            # Asked at every trace: a fix may have made the site leaky.
            and backward_counting.applies_to(site)
            and backward_counting.in_use()
        ):
            # The ReLU's gradient takes the site's sums (no extra read).
            with backward_counting.counting(
                site, functools.partial(active.contiguous_units, site)
            ) as (holder, replacement):
                if replacement is not None and len(args) == 1 and not kwargs:
                    outputs = replacement(args[0])
                else:
                    outputs = original_call(*args, **kwargs)
        else:
            outputs = original_call(*args, **kwargs)
        if not ours or _is_symbolic(outputs):
            return outputs
        layer_input = args[0] if args and hasattr(layer, "kernel") else None
        active.record(site, outputs, layer_input, backward=holder)
        return outputs

    call.__deadrelu_original__ = original_call
    return call


def _weighted_producer(site: Site) -> Any | None:
    """For an activation-layer site fed directly by a Dense/Conv layer (that
    is not itself a site), that layer: its input feeds the diagnosis."""
    from keras_deadrelu.layer_graph import incoming_layer
    from keras_deadrelu.sites import layer_kind

    if hasattr(site.layer, "kernel"):
        return None
    producer = incoming_layer(site)
    if producer is None or producer is site.layer or layer_kind(producer):
        return None
    return producer


def _recording_input_call(
    site: Site, original_call: Any, recorder: CounterRecorder | None
) -> Any:
    """Wraps the call of the layer that feeds `site`, to note its input."""

    @functools.wraps(original_call)
    def call(*args, **kwargs):
        active = active_recorder()
        ours = active is not None and (recorder is None or active is recorder)
        if ours and args and not _is_symbolic(args[0]) and not _recomputing():
            active.record_input(site, args[0])
        return original_call(*args, **kwargs)

    call.__deadrelu_original__ = original_call
    return call


def _noting_model_call(original_call: Any, recorder: CounterRecorder | None) -> Any:
    """Wraps the model's ``call`` so that the active recorder learns which
    sites produce the model's outputs (the output layer, never fixed)."""

    @functools.wraps(original_call)
    def call(*args, **kwargs):
        outputs = original_call(*args, **kwargs)
        active = active_recorder()
        if active is not None and (recorder is None or active is recorder):
            active.note_model_outputs(outputs)
        return outputs

    call.__deadrelu_original__ = original_call
    return call


def _recording_train_step(original_train_step: Any, recorder: CounterRecorder) -> Any:
    @functools.wraps(original_train_step)
    def train_step(data):
        with recording_into(recorder):
            return original_train_step(data)

    return train_step
