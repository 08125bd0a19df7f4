"""``DeadNeuronMonitor``: the callback that wires measurement, sinks and alerts."""

from __future__ import annotations

import os
import tempfile
import warnings
import weakref
from typing import Any

import keras
import numpy as np

from keras_deadrelu import native_unit_sums
from keras_deadrelu._validation import (
    check_choice,
    check_number,
    check_positive_int,
)
from keras_deadrelu.diagnosis import (
    Diagnosis,
    SiteEvidence,
    WeightSnapshots,
    bias_evidence,
    diagnose,
)
from keras_deadrelu.fixes import Fix, FixEvent, resolve_fixes
from keras_deadrelu.fixes.lower_learning_rate import (
    current_learning_rate,
    innermost_optimizer,
)
from keras_deadrelu.layer_graph import (
    incoming_layer,
    without_shared_activation_sites,
)
from keras_deadrelu.measurement import SiteMeasurement
from keras_deadrelu.probe import as_batches, check_batches_fit, first_batch
from keras_deadrelu.resume_state import (
    backup_marker,
    kept_states,
    pin_around_backup,
    read_states,
    state_for_weights,
    weights_fingerprint,
    write_states,
)
from keras_deadrelu.sites import (
    Site,
    find_sites,
    select_sites,
    site_output_shapes,
)
from keras_deadrelu.tensorboard_sink import DEFAULT_RUN_NAME, TensorBoardSink
from keras_deadrelu.threshold_alerts import (
    DeadNeuronWarning,
    ThresholdAlerts,
    crossing_message,
    reaches_threshold,
)
from keras_deadrelu.unit_statistics import SiteStatistics, WindowStatistics


def _check_log_dir(log_dir: Any) -> str | None:
    if log_dir is None:
        return None
    if not isinstance(log_dir, (str, os.PathLike)):
        raise TypeError(
            "Argument `log_dir` must be a path (str or os.PathLike) or None. "
            f"Received: log_dir={log_dir!r}"
        )
    return os.fspath(log_dir)


def _check_backup_dir(backup_dir: Any) -> str | None:
    if backup_dir is None:
        return None
    if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
        raise TypeError(
            "Argument `backup_dir` must be a folder path (str or os.PathLike), the "
            f"one given to BackupAndRestore, or None. Received: backup_dir="
            f"{backup_dir!r}"
        )
    if os.path.exists(backup_dir) and not os.path.isdir(backup_dir):
        raise ValueError(
            f"Argument `backup_dir` must be a directory, but {backup_dir!r} is a "
            f"file. Received: backup_dir={backup_dir!r}"
        )
    return os.fspath(backup_dir)


def _prepare_run_dir(log_dir: str, run_dir: str) -> None:
    """Creates the run folder and proves it is writable, or raises ValueError.
    A URL (``gs://``, ``s3://``, ``hdfs://``, ...) goes through TensorFlow's
    file system, as the summary writer does, not through the local one."""
    if "://" in log_dir:
        import tensorflow as tf

        try:
            tf.io.gfile.makedirs(run_dir)
        except Exception as error:  # noqa: BLE001 - reported with the argument
            raise ValueError(
                f"Argument `log_dir` cannot be created ({error}). "
                f"Received: log_dir={log_dir!r}"
            ) from error
        return
    if os.path.exists(log_dir) and not os.path.isdir(log_dir):
        raise ValueError(
            f"Argument `log_dir` must be a directory, but {log_dir!r} is a file. "
            f"Received: log_dir={log_dir!r}"
        )
    try:
        os.makedirs(run_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as error:
        raise ValueError(
            f"Argument `log_dir` is not writable ({error.strerror or error}). "
            f"Received: log_dir={log_dir!r}"
        ) from error


def site_channel_axis(sites: list[Site], name: str) -> int:
    """The channel axis of the site called `name` (-1 when unknown)."""
    return next((site.channel_axis for site in sites if site.name == name), -1)


# The monitor measuring each model in its current fit.
_MONITOR_IN_FIT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class DeadNeuronMonitor(keras.callbacks.Callback):
    """Measures the dead fraction of every ReLU-family layer during ``fit``.

    A unit is *dead* over a window when its output was never > 0 for any
    input in the window (for ReLU this is exactly "gets no gradient"). Every
    window (an epoch, or `freq` steps) the monitor:

    - adds ``dead_fraction/<site>`` and the model-wide ``dead_fraction`` to
      the epoch logs, so they show in the progress bar, ``History``,
      ``CSVLogger`` and ``EarlyStopping(monitor="dead_fraction")`` (list the
      monitor before those callbacks);
    - writes scalars, histograms, an image and a Custom Scalars layout to
      ``<log_dir>/<run_name>`` for TensorBoard;
    - warns (:class:`DeadNeuronWarning`) when a site crosses `threshold`.

    By default it measures *streaming*: counters are updated inside the train
    step Keras already runs (no extra forward pass, one device read per
    window). With `probe_data` it instead runs an inference pass over that
    fixed data at each window's end.

    Args:
        log_dir: TensorBoard log directory, or None to write nothing.
        threshold: dead fraction in [0, 1] at which a site is reported.
        fix: what to do when a site's dead fraction reaches `threshold`:
            ``"revive"``, ``"leaky_relu"``, ``"lower_lr"``, a fix object
            (:class:`~keras_deadrelu.fixes.ReviveUnits`,
            :class:`~keras_deadrelu.fixes.SwapToLeakyReLU`,
            :class:`~keras_deadrelu.fixes.LowerLearningRate`), or a list of
            them applied in order. The output layer is never touched. Every
            action is kept in ``monitor.events``, warned about (unless
            ``verbose=0``) and written to TensorBoard.
        probe_data: data for probe mode (array, ``(x, y)``, dict, batched
            ``tf.data.Dataset``, ``keras.utils.PyDataset``, or generator
            function with `probe_steps`).
        layers: site names to monitor (default: every site).
        freq: ``"epoch"``, or an integer number of training steps per window.
            Step windows need a batch hook, which turns off Keras's
            asynchronous callback dispatch; epoch windows do not.
        verbose: 0 silent, 1 warnings on crossings, 2 also a line per window.
        granularity: ``"channel"`` (a unit is a feature or channel, all
            positions together) or ``"unit"`` (each position its own unit).
        dormant_tau: ReDo threshold: a unit is dormant when its mean absolute
            output is at most `dormant_tau` times the site's average.
        probe_batch_size: batch size for array probe data (default 256).
        probe_steps: batches per probe (required for generator functions and
            infinite datasets; at most the data's own batches otherwise).
        run_name: run folder under `log_dir` (default ``"dead_neurons"``).
        histograms: write per-site firing-rate histograms.
        images: write the firing-rate map image.
        backup_dir: the ``backup_dir`` of the ``keras.callbacks.BackupAndRestore``
            in the same ``fit``. The monitor saves what only lives in Python
            (swapped activations, alerts, cooldowns, its record of fixes and
            its step numbering) there at each window, and a new monitor
            restores it when the interrupted ``fit`` resumes (see
            :mod:`keras_deadrelu.resume_state`). List the monitor before
            ``BackupAndRestore`` so its backups hold each window's fixes.

    Example:

    >>> import numpy as np, keras
    >>> import keras_deadrelu as kd
    >>> model = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(8, activation="relu", name="hidden"),
    ...     keras.layers.Dense(1),
    ... ])
    >>> model.compile("adam", "mse")
    >>> x, y = np.ones((32, 4), "float32"), np.ones((32, 1), "float32")
    >>> monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor])
    >>> sorted(key for key in history.history if key.startswith("dead"))
    ['dead_fraction', 'dead_fraction/hidden']
    """

    def __init__(
        self,
        log_dir: str | os.PathLike | None = "logs",
        threshold: float = 0.5,
        fix: Any = None,
        probe_data: Any = None,
        layers: list[str] | None = None,
        freq: str | int = "epoch",
        verbose: int = 1,
        *,
        granularity: str = "channel",
        dormant_tau: float = 0.1,
        probe_batch_size: int | None = None,
        probe_steps: int | None = None,
        run_name: str = DEFAULT_RUN_NAME,
        histograms: bool = True,
        images: bool = True,
        backup_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.log_dir = _check_log_dir(log_dir)
        self.threshold = check_number("threshold", threshold, minimum=0, maximum=1)
        self.fix = fix
        self.fixes: list[Fix] = resolve_fixes(fix)
        if layers is not None and (
            isinstance(layers, str) or not all(isinstance(name, str) for name in layers)
        ):
            raise TypeError(
                f"Argument `layers` must be a list of site names. Received: "
                f"layers={layers!r}"
            )
        self.layers = None if layers is None else list(layers)
        if freq != "epoch":
            if isinstance(freq, str):
                raise ValueError(
                    f"Argument `freq` must be 'epoch' or a positive integer number "
                    f"of steps. Received: freq={freq!r}"
                )
            freq = check_positive_int("freq", freq)
            # Only step windows need a batch hook (see callback_list.py: an
            # overridden batch hook turns off asynchronous dispatch).
            self.on_train_batch_end = self._on_train_batch_end_with_windows
        self.freq = freq
        self.verbose = check_choice("verbose", verbose, (0, 1, 2))
        self.granularity = check_choice("granularity", granularity, ("channel", "unit"))
        self.dormant_tau = check_number("dormant_tau", dormant_tau, minimum=0)
        if (
            not isinstance(run_name, str)
            or run_name in ("", ".", "..")
            or os.sep in run_name
            or (os.altsep and os.altsep in run_name)
        ):
            raise ValueError(
                "Argument `run_name` must be a non-empty folder name. "
                f"Received: run_name={run_name!r}"
            )
        self.run_name = run_name
        self.probe_data = probe_data
        self.probe_batch_size = probe_batch_size
        self.probe_steps = probe_steps
        self._probe_batches = None
        if probe_batch_size is not None:
            check_positive_int("probe_batch_size", probe_batch_size)
        if probe_steps is not None:
            check_positive_int("probe_steps", probe_steps)
        if probe_data is not None:
            self._probe_batches = as_batches(
                probe_data, batch_size=probe_batch_size, steps=probe_steps
            )
        for name, value in (("histograms", histograms), ("images", images)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(
                    f"Argument `{name}` must be True or False. "
                    f"Received: {name}={value!r}"
                )
        self.histograms = bool(histograms)
        self.images = bool(images)
        self.backup_dir = _check_backup_dir(backup_dir)

        self.sites: list[Site] = []
        self._measurement: SiteMeasurement | None = None
        self._sink: TensorBoardSink | None = None
        self._last_fit_model: Any = None  # a weak reference
        # Whether `_analyse_weights` has run for this fit's built model.
        self._weights_analysed = False
        self._start_afresh()

    def _start_afresh(self) -> None:
        """Sets what the monitor learns of a model over its fits to nothing:
        its record, alerts, windows and steps (a new monitor's state)."""
        self.events: list[FixEvent] = []
        self.diagnoses: list[tuple[int, str, Diagnosis]] = []
        # The latest crossing message per site, shown with a fix's marker.
        self._diagnosis_messages: dict[str, str] = {}
        self._incoming_layers: dict[str, Any] = {}
        self._snapshots = WeightSnapshots()
        self._windows_seen = 0
        self._cooldown_until: dict[tuple[int, str], int] = {}
        self._frozen_warned: set[str] = set()
        self._epoch = 0
        self.last_window: WindowStatistics | None = None
        self._alerts = ThresholdAlerts(self.threshold)
        self._next_epoch_step = 0
        self._epoch_step_offset: int | None = None
        self._global_step = 0
        self._last_batch = -1
        self._steps_in_window = 0
        self._epoch_start: tuple[int, int] | None = None
        self._window_closed_this_epoch = False
        self._states: list[dict] = []
        self._last_written_step: int | None = None

    # ----------------------------------------------------------------- setup
    def on_train_begin(self, logs=None):
        self._teardown()
        self._claim_model()
        last_model = None if self._last_fit_model is None else self._last_fit_model()
        if last_model is not None and last_model is not self.model:
            # Reused on another model: nothing learned of the last one holds.
            self._start_afresh()
            for fix in self.fixes:
                fix.forget()
        self._last_fit_model = weakref.ref(self.model)
        sites = select_sites(find_sites(self.model), self.layers)
        sites = without_shared_activation_sites(sites)
        self.sites = sites
        if not sites:
            if self.layers is not None and not list(self.layers):
                message = (
                    "DeadNeuronMonitor: layers=[] selects no site; nothing will be "
                    "measured and training goes on normally."
                )
            else:
                message = (
                    "DeadNeuronMonitor: this model has no ReLU-family site (relu, "
                    "leaky_relu, elu, selu, PReLU, ...); nothing will be measured "
                    "and training goes on normally. An activation applied as a "
                    "function inside a subclassed model's call() is not a layer and "
                    "cannot be monitored: use a ReLU() layer or a layer's "
                    "activation= argument. Recurrent layers (SimpleRNN, LSTM, GRU) "
                    "are not monitored: their activation runs in a loop over time."
                )
            warnings.warn(message, DeadNeuronWarning, stacklevel=2)
            return
        steps = (self.params or {}).get("steps")
        if self.freq != "epoch" and steps and self.freq > steps:
            warnings.warn(
                f"DeadNeuronMonitor: freq={self.freq} is more than the {steps} "
                "steps of an epoch; a window closes at each epoch's end, so "
                "windows are epochs.",
                DeadNeuronWarning,
                stacklevel=2,
            )
        if self.granularity == "unit":
            _check_static_unit_axes(self.model, sites)
        for fix in self.fixes:
            fix.check_model(self.model)
        # A model that `fit` builds (no keras.Input, or a subclassed model not
        # called yet) has no weights yet: what depends on them is found once
        # its first step has built it (`_analyse_weights`).
        self._weights_analysed = False
        if self.model.built:
            self._analyse_weights()
        if self.log_dir is not None:
            sink = TensorBoardSink(
                self.log_dir,
                self.run_name,
                self.histograms,
                self.images,
                config={
                    "threshold": self.threshold,
                    "freq": self.freq,
                    "granularity": self.granularity,
                    "dormant_tau": self.dormant_tau,
                    "fixes": [repr(fix) for fix in self.fixes],
                    "mode": "probe" if self._probe_batches is not None else "streaming",
                    "sites": [site.name for site in sites],
                },
            )
            _prepare_run_dir(self.log_dir, sink.run_dir)
            self._sink = sink
        if self._probe_batches is not None:
            inputs = len(getattr(self.model, "inputs", None) or [])
            if inputs == 1 and isinstance(self.probe_data, list):
                # A list of arrays is one input's samples for this model.
                self._probe_batches = as_batches(
                    self.probe_data,
                    batch_size=self.probe_batch_size,
                    steps=self.probe_steps,
                    model_inputs=1,
                )
            check_batches_fit(self.model, first_batch(self._probe_batches))
        if not getattr(self.model, "jit_compile", False):
            # The counters' compiled op is built (once) here, not in a trace.
            native_unit_sums.prepare()
        self._measurement = SiteMeasurement(
            self.model,
            sites,
            self.granularity,
            self.dormant_tau,
            probe_batches=self._probe_batches,
        )
        self._measurement.install()
        self._epoch_step_offset = None
        # The rest waits for the first epoch (the offset still None marks
        # it): BackupAndRestore loads weights and the iteration count in its
        # on_train_begin, maybe after this one.

    def on_train_end(self, logs=None):
        leftover = self.freq != "epoch" and self._steps_in_window > 0
        if self._measurement is not None and leftover:
            # The steps after the last full window make a last, shorter one.
            # Training is over: nothing to resume, no state to save (and
            # BackupAndRestore may have removed its folder already).
            self._finish_window(
                self._global_step, f"step {self._global_step}", save_state=False
            )
        self._teardown()

    def detach(self) -> None:
        """Removes the monitor's hooks from the model and closes its writer.

        ``on_train_end`` does this; Keras does not call it when ``fit`` stops
        with an exception, so call ``detach()`` after an interrupted ``fit``
        (the next monitor attached to the model also cleans up).
        """
        self._teardown()

    def _analyse_weights(self) -> None:
        """What the sites' weights tell, found once the model is built: the
        layer whose weights feed each site (diagnosis, NaN weights), and the
        sites each fix cannot act on (named in a warning)."""
        self._weights_analysed = True
        self._incoming_layers = {
            site.name: layer
            for site in self.sites
            if (layer := incoming_layer(site)) is not None
        }
        if self._measurement is not None:
            self._measurement.find_incoming_layers()
        for fix in self.fixes:
            out_of_reach = fix.sites_out_of_reach(self.sites)
            if out_of_reach:
                listed = "; ".join(f"{n} ({why})" for n, why in out_of_reach.items())
                warnings.warn(
                    f"DeadNeuronMonitor: fix {fix.name!r} cannot act on these "
                    f"sites, which it leaves alone: {listed}.",
                    DeadNeuronWarning,
                    stacklevel=3,
                )

    def _claim_model(self) -> None:
        """Makes this the model's monitor for this ``fit``; refuses a second
        monitor in the same ``fit`` (Keras hands every callback of one
        ``fit`` the same ``params``), whose hooks would replace the first's.
        The first is detached, so the model is left as it was."""
        other = _MONITOR_IN_FIT.get(self.model)
        if (
            other is not None
            and other is not self
            and other._measurement is not None
            and other.params is not None
            and other.params is self.params
        ):
            other.detach()
            raise ValueError(
                "Two DeadNeuronMonitor callbacks in one fit of the same model: "
                "the second would replace the first's hooks, and the first "
                "would measure nothing. Use one monitor (it measures every "
                "site, or those named in layers=[...]). Received two "
                f"monitors, run_name={other.run_name!r} and "
                f"run_name={self.run_name!r}."
            )
        _MONITOR_IN_FIT[self.model] = self

    def _teardown(self) -> None:
        if self.model is not None and _MONITOR_IN_FIT.get(self.model) is self:
            del _MONITOR_IN_FIT[self.model]
        if self._measurement is not None:
            self._measurement.uninstall()
            self._measurement = None
        if self._sink is not None:
            self._sink.close()

    # --------------------------------------------------------------- windows
    def on_epoch_begin(self, epoch, logs=None):
        if self._epoch_step_offset is None:
            if self._measurement is not None:
                self._begin_fit(epoch)
            self._epoch_step_offset = max(self._next_epoch_step, epoch) - epoch
        self._last_batch = -1
        self._window_closed_this_epoch = False
        self._epoch = epoch
        self._epoch_start = None
        if self._partial_executions_uncounted():
            self._epoch_start = (self._iterations(), self._global_step)

    def _partial_executions_uncounted(self) -> bool:
        """Step windows, `steps_per_execution` > 1 and an epoch whose length
        is unknown or not a multiple of it: the batch indices cannot tell how
        many steps the epoch's last execution ran (fewer, where the data ran
        out; all of them, past `steps_per_epoch`, on repeated data)."""
        if self._measurement is None or self.freq == "epoch":
            return False
        per_execution = int(getattr(self.model, "steps_per_execution", 1) or 1)
        steps = (self.params or {}).get("steps")
        return per_execution > 1 and (not steps or steps % per_execution != 0)

    def _uncount_partial_execution(self) -> None:
        """Before a window is labelled, and at an epoch's end, sets the steps
        counted this epoch to those the optimizer ran: takes off those of a
        last execution cut short, or adds those an execution ran past the
        epoch's last step. At most `steps_per_execution` - 1 either way (a
        larger gap means the optimizer does not count every step, as with
        gradient accumulation: left alone)."""
        if self._epoch_start is None:
            return
        iterations, global_step = self._epoch_start
        extra = (self._global_step - global_step) - (self._iterations() - iterations)
        if 0 < abs(extra) < int(self.model.steps_per_execution):
            self._global_step -= extra
            self._steps_in_window = max(self._steps_in_window - extra, 0)

    def _begin_fit(self, epoch: int) -> None:
        """Reads what the weights say at the first epoch of a fit, after every
        callback's on_train_begin (BackupAndRestore's included)."""
        if self.backup_dir is not None:
            self._restore_state()
        self._snapshots = WeightSnapshots()
        self._snapshots.take(self._incoming_layers)
        self._global_step = self._iterations()
        self._steps_in_window = 0

    def _iterations(self) -> int:
        """The optimizer's iteration count (0 without an optimizer)."""
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        return int(iterations.numpy()) if iterations is not None else 0

    def _on_train_batch_end_with_windows(self, batch, logs=None):
        if self._measurement is None:
            return
        epoch_steps = (self.params or {}).get("steps")
        if epoch_steps:
            # With steps_per_execution > 1, Keras reports a last, partial
            # execution's nominal end step, past the epoch's last.
            batch = min(batch, epoch_steps - 1)
        steps = max(batch - self._last_batch, 1)
        self._last_batch = batch
        self._global_step += steps
        self._steps_in_window += steps
        if self._steps_in_window >= self.freq:
            self._uncount_partial_execution()  # before labelling a window
        if self._steps_in_window >= self.freq:
            self._finish_window(self._global_step, f"step {self._global_step}")
            self._window_closed_this_epoch = True

    def on_epoch_end(self, epoch, logs=None):
        if self._measurement is None:
            return
        if self.freq == "epoch":
            step = epoch + (self._epoch_step_offset or 0)
            self._next_epoch_step = step + 1
            window = self._finish_window(step, f"epoch {epoch + 1}")
        else:
            self._uncount_partial_execution()
            # A window closes at an epoch's end unless one closed during the
            # epoch and too few steps are left for another (the last
            # execution's steps past the epoch's end may fill one).
            window = (
                self.last_window
                if self._window_closed_this_epoch and self._steps_in_window < self.freq
                else self._finish_window(self._global_step, f"step {self._global_step}")
            )
        if logs is not None and window is not None:
            for name, fraction in window.dead_fractions().items():
                logs[f"dead_fraction/{name}"] = fraction
            if window.sites:
                logs["dead_fraction"] = window.dead_fraction

    def _warn_silent_sites(self, window: WindowStatistics) -> None:
        """Warns once about sites that saw nothing in the first window:
        called inside a loop or branch (``tf.cond``, ``while_loop``) of the
        model's call, out of the counters' reach, or not called in
        training."""
        seen = {site.name for site in window.sites}
        if self._measurement is not None:  # left out with a warning of their own
            seen |= self._measurement.recorder.left_out_site_names
        silent = [site.name for site in self.sites if site.name not in seen]
        if silent:
            warnings.warn(
                f"DeadNeuronMonitor: no output of these sites was counted in the "
                f"first window: {', '.join(silent)}. Sites called inside a loop or "
                "a branch of the model's call (tf.cond, tf.while_loop) cannot be "
                "counted; they are left out of the figures.",
                DeadNeuronWarning,
                stacklevel=4,
            )

    def _sink_for(self, step: int) -> TensorBoardSink | None:
        """The sink, unless `backup_dir` is set and `step` was written already:
        a fit rolled back by BackupAndRestore redoes steps, but not twice."""
        written = self._last_written_step
        if self.backup_dir is not None and written is not None and step <= written:
            return None
        return self._sink

    def _finish_window(
        self, step: int, where: str, save_state: bool = True
    ) -> WindowStatistics:
        """Closes a window: statistics, TensorBoard, alerts, fixes, and (with
        `backup_dir`) the state a restarted fit restores, before the fixes act
        and after."""
        if not self._weights_analysed and self.model.built:
            # Built by its first step: the weights' analysis was put off.
            self._analyse_weights()
        window = self._measurement.close_window()
        self._steps_in_window = 0
        if self.last_window is None:
            self._warn_silent_sites(window)
        self.last_window = window
        self._windows_seen += 1
        sink = self._sink_for(step)
        if sink is not None:
            sink.write_window(step, window, self._learning_rate())
            self._last_written_step = step
        learning_rate = self._learning_rate()
        self._snapshots.record_moves(self._incoming_layers, where)
        messages = []
        for name in self._alerts.crossed(window.dead_fractions()):
            diagnosis = self._diagnose(window[name], where, learning_rate)
            message = (
                f"{crossing_message(window[name], where, self.threshold)} {diagnosis}"
            )
            self.diagnoses.append((step, name, diagnosis))
            self._diagnosis_messages[name] = message
            messages.append(message)
            if self.verbose:
                warnings.warn(message, DeadNeuronWarning, stacklevel=3)
        if sink is not None:
            sink.write_text(step, "diagnosis", messages)
        if self.verbose >= 2:
            parts = ", ".join(
                f"{site.name} {site.dead_fraction:.0%}" for site in window.sites
            )
            print(
                f"DeadNeuronMonitor {where}: dead {window.dead_fraction:.1%} ({parts})"
            )
        save_state = save_state and self.backup_dir is not None
        if save_state:
            self._save_state(step)
        if self.fixes:
            events_before = len(self.events)
            self._apply_fixes(window, step, where)
            for fix in self.fixes:
                fix.observe(window)
            if len(self.events) > events_before:
                # Re-read after the fixes, so a revival does not read as a jump.
                self._snapshots.take(self._incoming_layers)
                if sink is not None:
                    sink.write_events(step, self.events[events_before:])
                    sink.write_fix_events(
                        step, self.events[events_before:], self._diagnosis_messages
                    )
                if save_state:
                    self._save_state(step)
        return window

    # ---------------------------------------------------------------- resume
    def _fingerprint(self) -> str:
        """A hash of the weights and the learning rate, to match a state with
        the weights ``BackupAndRestore`` restores."""
        variables = list(self.model.weights)
        optimizer = innermost_optimizer(getattr(self.model, "optimizer", None))
        rate = getattr(optimizer, "_learning_rate", None)
        if hasattr(rate, "assign"):  # a float learning rate: a variable
            variables.append(rate)
        return weights_fingerprint(variables)

    def _save_state(self, step: int) -> None:
        """Saves what a new monitor needs to go on after a restart."""
        self._states.append(
            {
                "iterations": self._iterations(),
                "fingerprint": self._fingerprint(),
                "step": step,
                "next_epoch_step": self._next_epoch_step,
                "last_written_step": self._last_written_step,
                "windows_seen": self._windows_seen,
                "cooldown_until": [
                    [index, name, until]
                    for (index, name), until in self._cooldown_until.items()
                ],
                "above_threshold": sorted(self._alerts.above),
                "sites": [site.name for site in self.sites],
                "diagnosis_messages": dict(self._diagnosis_messages),
                "diagnoses": [
                    [at, name, d.cause, d.evidence, d.advice]
                    for at, name, d in self.diagnoses
                ],
                "events": [event.as_json_dict() for event in self.events],
                "fixes": [
                    {"name": fix.name, "state": fix.state()} for fix in self.fixes
                ],
                "backup_marker": backup_marker(self.backup_dir),
            }
        )
        pin_around_backup(self._states[:-1], self._states[-1])
        self._states = kept_states(self._states)
        write_states(self.backup_dir, self._states)

    def _restore_state(self) -> None:
        """Takes back the saved state that goes with the weights now in the
        model (see :mod:`keras_deadrelu.resume_state`)."""
        states = read_states(self.backup_dir)
        written = [s.get("last_written_step") for s in states]
        written = [w for w in written if isinstance(w, int)]
        if written:
            self._last_written_step = max(written + [self._last_written_step or 0])
        iterations = self._iterations()
        state = state_for_weights(states, iterations, self._fingerprint())
        if state is None:
            if states and iterations > 0:
                warnings.warn(
                    f"DeadNeuronMonitor: none of the {len(states)} monitor "
                    f"states in {self.backup_dir!r} goes with the restored "
                    f"weights (iteration {iterations}; states at iterations "
                    f"{states[0]['iterations']}-{states[-1]['iterations']}). "
                    "The monitor starts afresh: the fixes made before the "
                    "restart are redone only when their sites cross the "
                    "threshold again.",
                    DeadNeuronWarning,
                    stacklevel=3,
                )
            return
        # Every site of the model, not only those selected now: a restart may
        # measure fewer (`layers=`) than the run that saved the state, and
        # the sites it fixed must stay fixed.
        all_sites = {site.name: site for site in find_sites(self.model)}
        all_sites.update((site.name, site) for site in self.sites)
        names = set(all_sites)
        try:
            referenced = {event["site"] for event in state["events"]}
            referenced |= set(state["above_threshold"])
            referenced |= set(state.get("sites", []))  # absent in older states
            unknown = sorted(referenced - names)
            if unknown:
                raise ValueError(
                    f"it names sites this model does not have: {unknown}; it "
                    f"belongs to another model"
                )
            restored = {
                "next_epoch_step": int(state["next_epoch_step"]),
                "windows_seen": int(state["windows_seen"]),
                "cooldown_until": {
                    (int(index), name): int(until)
                    for index, name, until in state["cooldown_until"]
                },
                "diagnoses": [
                    (at, name, Diagnosis(cause, evidence, advice))
                    for at, name, cause, evidence, advice in state["diagnoses"]
                ],
                "events": [FixEvent(**event) for event in state["events"]],
            }
        except (KeyError, TypeError, ValueError) as error:
            warnings.warn(
                f"DeadNeuronMonitor: ignoring the monitor state in "
                f"{self.backup_dir!r}: {error}. The monitor starts afresh.",
                DeadNeuronWarning,
                stacklevel=3,
            )
            return
        self._states = states[: states.index(state) + 1]
        self._next_epoch_step = restored["next_epoch_step"]
        self._windows_seen = restored["windows_seen"]
        self._cooldown_until = restored["cooldown_until"]
        self._alerts.above = state["above_threshold"]
        self._diagnosis_messages = dict(state.get("diagnosis_messages", {}))
        self.diagnoses = restored["diagnoses"]
        self.events = restored["events"]
        for fix, saved in zip(self.fixes, state.get("fixes", []), strict=False):
            if isinstance(saved, dict) and fix.name == saved.get("name"):
                fix.restore(self.model, all_sites, saved.get("state", {}))
        self._measurement.refresh()

    def _diagnose(
        self, statistics: SiteStatistics, where: str, learning_rate: float | None
    ) -> Diagnosis:
        layer = self._incoming_layers.get(statistics.name)
        if layer is None:
            return diagnose(SiteEvidence(learning_rate=learning_rate), where)
        dead = statistics.dead
        channels = getattr(getattr(layer, "bias", None), "shape", (dead.size,))[0]
        if dead.size != channels and dead.size % channels == 0:
            if site_channel_axis(self.sites, statistics.name) == 1:
                dead = dead.reshape(channels, -1).all(axis=1)
            else:
                dead = dead.reshape(-1, channels).all(axis=0)
        bias, spread, input_rms = bias_evidence(
            layer, dead, statistics.input_mean_square
        )
        move, moved_in = self._snapshots.largest_recent_move(statistics.name)
        evidence = SiteEvidence(
            dead_bias_mean=bias,
            pre_activation_spread=spread,
            weight_move=move,
            weight_move_where=moved_in,
            learning_rate=learning_rate,
            input_rms=input_rms,
        )
        return diagnose(evidence, where)

    def _learning_rate(self) -> float | None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "learning_rate"):
            return None
        try:
            return current_learning_rate(optimizer)
        except (TypeError, ValueError):
            return None

    def _frozen(self, site: Site) -> bool:
        """Whether the site's layer, or the one whose kernel feeds it, is
        frozen (``trainable=False``, say a pretrained backbone): a fix would
        change weights or a function that training cannot adapt to. Warns
        once per site."""
        layers = [site.layer, self._incoming_layers.get(site.name)]
        if all(layer is None or layer.trainable for layer in layers):
            return False
        if site.name not in self._frozen_warned:
            self._frozen_warned.add(site.name)
            warnings.warn(
                f"{site.name}: its layer is frozen (trainable=False); fixes leave "
                "it alone.",
                DeadNeuronWarning,
                stacklevel=5,
            )
        return True

    def _apply_fixes(
        self,
        window: WindowStatistics,
        step: int,
        where: str,
    ) -> None:
        """Applies every fix, in order, to each site at or above the threshold,
        noting each action in `events` (written to TensorBoard by the caller,
        one summary per window)."""
        sites_by_name = {site.name: site for site in self.sites}
        now = self._windows_seen
        for fix_index, fix in enumerate(self.fixes):
            for statistics in window.sites:
                site = sites_by_name[statistics.name]
                if not reaches_threshold(statistics.dead_fraction, self.threshold):
                    continue
                if site.name in self._measurement.recorder.output_site_names:
                    continue  # the model's output layer: never fixed
                if not fix.model_wide and self._frozen(site):
                    continue
                key = (fix_index, "" if fix.model_wide else site.name)
                if self._cooldown_until.get(key, 0) > now:
                    continue
                try:
                    result = fix.apply(self.model, site, statistics)
                except Exception as error:  # noqa: BLE001 - training goes on
                    warnings.warn(
                        f"{site.name}: fix {fix.name!r} failed and was skipped "
                        f"({type(error).__name__}: {error}); training goes on.",
                        DeadNeuronWarning,
                        stacklevel=4,
                    )
                    continue
                if result is None:
                    continue
                before, after, detail = result
                self._cooldown_until[key] = now + fix.cooldown + 1
                message = (
                    f"{site.name}: {statistics.dead_fraction:.0%} dead "
                    f"({statistics.dead_count}/{statistics.unit_count}) at {where}: "
                    f"applied {fix.name} ({detail})."
                )
                event = FixEvent(
                    step=step,
                    epoch=self._epoch,
                    site=site.name,
                    fix=fix.name,
                    before=before,
                    after=after,
                    dead_fraction=statistics.dead_fraction,
                    message=message,
                )
                self.events.append(event)
                self._measurement.refresh()
                if self.verbose:
                    warnings.warn(message, DeadNeuronWarning, stacklevel=4)
                if fix.model_wide:
                    break


def _check_static_unit_axes(model: Any, sites: list[Site]) -> None:
    """With ``granularity="unit"`` every output position is a unit, so a
    site's output axes after the batch axis need static sizes. Checked when
    ``fit`` starts, on the shapes the model's own graph knows; a nested
    model's layers (whose graph may be less specific than the outer call)
    and a subclassed model's are checked when the step is traced."""
    own_layers = {id(layer) for layer in getattr(model, "layers", [])}
    for site in sites:
        if id(site.layer) not in own_layers:
            continue
        for shape in site_output_shapes(site):
            if any(size is None for size in shape[1:]):
                raise ValueError(
                    f"granularity='unit' needs every output axis after the batch "
                    f"axis to have a static size, but site {site.name!r} outputs "
                    f"shape {shape}. Use granularity='channel', or give the model "
                    "inputs of a fixed size."
                )
