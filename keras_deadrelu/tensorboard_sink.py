"""What goes to TensorBoard, and where.

The monitor writes into its own run folder, ``<log_dir>/<run_name>``
(``run_name`` defaults to ``"dead_neurons"``), so it sits beside
``keras.callbacks.TensorBoard(log_dir)``, which writes ``train/`` and
``validation/``. Per window, at one step:

==============================  ==========  =====================================
tag                             kind        value
==============================  ==========  =====================================
``dead_fraction``               scalar      model-wide: dead units / all units
``dead_fraction/<site>``        scalar      the site's dead units / units
``dormant_fraction/<site>``     scalar      ReDo dormant units / units
``nan_units``                   scalar      model-wide count of NaN/inf units
``nan_units/<site>``            scalar      the site's NaN/inf units
``firing_rate/<site>``          histogram   per-unit firing rates
``selu_mean/<site>``            scalar      SELU sites: activation mean
``selu_std/<site>``             scalar      SELU sites: activation std
``firing_rate_map``             image       one row per site, firing-rate bins
``learning_rate``               scalar      the optimizer's learning rate
``diagnosis``                   text        the window's crossings, likely causes
``fix_events``                  text        the window's fix actions (paragraphs)
``fix/<fix name>``              scalar      actions of that fix in the window
``dead_neurons/...``            tensor      for the Dead Neurons dashboard (see
                                            :mod:`.tensorboard_plugin.metadata`)
==============================  ==========  =====================================

plus, once per sink, the monitor's settings as JSON text (``monitor_config``:
threshold, freq, granularity, dormant_tau, fixes, mode, sites) and a Custom
Scalars layout (a "Dead neurons" category
with one chart holding every site's dead fraction as a line, one for the
dormant fractions, and the model-wide line). The writer is created on first
use and closed by :meth:`TensorBoardSink.close`. A window's summaries go out
as one Summary proto, in one op (about 1.4 ms for four sites, against 4.6 ms
with one ``tf.summary`` call each), in the form ``tf.summary`` gives them.
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np
import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorflow.core.framework import summary_pb2

from keras_deadrelu.firing_rate_map import firing_rate_map
from keras_deadrelu.fixes.events import FixEvent
from keras_deadrelu.tensorboard_plugin import metadata as dashboard
from keras_deadrelu.tensorboard_plugin import summaries as dashboard_summaries
from keras_deadrelu.unit_statistics import WindowStatistics

TEXT_SEPARATOR = dashboard.TEXT_SEPARATOR

DEFAULT_RUN_NAME = "dead_neurons"
HISTOGRAM_BUCKETS = 20


def custom_scalars_layout() -> layout_pb2.Layout:
    """The Custom Scalars layout: every site's dead fraction on one chart."""
    return layout_pb2.Layout(
        category=[
            layout_pb2.Category(
                title="Dead neurons",
                chart=[
                    layout_pb2.Chart(
                        title="Dead fraction per site",
                        multiline=layout_pb2.MultilineChartContent(
                            tag=[r"^dead_fraction/.*"]
                        ),
                    ),
                    layout_pb2.Chart(
                        title="Dead fraction, model-wide",
                        multiline=layout_pb2.MultilineChartContent(
                            tag=[r"^dead_fraction$"]
                        ),
                    ),
                    layout_pb2.Chart(
                        title="Dormant fraction per site (ReDo)",
                        multiline=layout_pb2.MultilineChartContent(
                            tag=[r"^dormant_fraction/.*"]
                        ),
                    ),
                ],
            )
        ]
    )


def _metadata(tensorboard_metadata) -> summary_pb2.SummaryMetadata:
    """A plugin's summary metadata (TensorBoard's own proto class) as
    TensorFlow's, for a Summary proto built here."""
    return summary_pb2.SummaryMetadata.FromString(
        tensorboard_metadata.SerializeToString()
    )


_SCALAR_METADATA = _metadata(scalar_metadata.create_summary_metadata(None, None))
_IMAGE_METADATA = _metadata(
    image_metadata.create_summary_metadata(
        None,
        "Rows: sites in model order. Columns: firing-rate bins from 0 (left, "
        "dead) to 1. Brightness: share of units.",
    )
)
_DASHBOARD_METADATA = {
    kind: _metadata(dashboard.summary_metadata(kind, description))
    for kind, description in [
        (dashboard.SITES_KIND, "Every site's units, dead, dormant and NaN counts."),
        (dashboard.UNITS_KIND, "Per-unit firing rates (NaN for a NaN unit)."),
        (dashboard.FIX_EVENTS_KIND, "What the fixes did, with the diagnosis."),
    ]
}


class _Summary:
    """One window's summaries, gathered into one Summary proto and written
    with a single op: what ``tf.summary.scalar``, ``histogram`` and ``image``
    would write one op each (a few hundred microseconds apiece, eagerly), in
    the same form, so TensorBoard reads them alike."""

    def __init__(self):
        self.proto = summary_pb2.Summary()

    def add(self, tag: str, value, metadata: summary_pb2.SummaryMetadata) -> None:
        self.proto.value.add(
            tag=tag, metadata=metadata, tensor=tf.make_tensor_proto(value)
        )

    def scalar(self, tag: str, value: float) -> None:
        self.add(tag, np.float32(value), _SCALAR_METADATA)

    def firing_rate_histogram(self, tag: str, firing_rates: np.ndarray) -> None:
        """A histogram with fixed buckets over [0, 1], so windows compare.

        ``tf.summary.histogram`` fits its buckets to the data (a site whose
        units all fire at rate 0 gets buckets around 0); firing rates live in
        [0, 1], so the buckets are fixed: 20 of width 0.05. NaN units are
        left out.
        """
        rates = firing_rates[np.isfinite(firing_rates)]
        counts, edges = np.histogram(rates, bins=HISTOGRAM_BUCKETS, range=(0.0, 1.0))
        buckets = np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)
        metadata = histogram_metadata.create_summary_metadata(
            display_name=tag,
            description="Per-unit firing rates (share of inputs on which the "
            "unit was > 0), 20 buckets over [0, 1].",
        )
        self.add(tag, buckets, _metadata(metadata))

    def image(self, tag: str, image: np.ndarray) -> None:
        """An RGB image (height, width, 3) of uint8, PNG-encoded, as
        ``tf.summary.image`` stores it: width, height, then the PNG."""
        height, width = image.shape[:2]
        png = tf.io.encode_png(image).numpy()  # eager, as callbacks run
        value = np.array([str(width).encode(), str(height).encode(), png], object)
        self.add(tag, value, _IMAGE_METADATA)

    def write(self) -> None:
        """Writes the proto at the default writer's step."""
        tf.summary.experimental.write_raw_pb(self.proto.SerializeToString())


def _always_record():
    """A context in which summaries are written whatever the caller's
    ``tf.summary.record_if``: ``keras.callbacks.TensorBoard(update_freq=N)``
    leaves one in force for the whole ``fit``, which would drop the
    monitor's windows (all of them, with ``freq="epoch"``)."""
    return tf.summary.record_if(True)


class TensorBoardSink:
    """Writes window statistics as TensorBoard summaries.

    Args:
        log_dir: the TensorBoard log directory.
        run_name: the run folder under `log_dir` this sink writes into.
        histograms: write the per-site firing-rate histograms.
        images: write the firing-rate map image.
    """

    def __init__(
        self,
        log_dir: str,
        run_name: str = DEFAULT_RUN_NAME,
        histograms: bool = True,
        images: bool = True,
        config: dict | None = None,
    ):
        self.log_dir = os.fspath(log_dir)
        self.run_name = run_name
        self.histograms = histograms
        self.images = images
        self.config = dict(config or {})
        self._writer = None
        self._layout_written = False

    @property
    def run_dir(self) -> str:
        return os.path.join(self.log_dir, self.run_name)

    def _get_writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.run_dir)
        if not self._layout_written:
            self._layout_written = True
            with self._writer.as_default(), _always_record():
                layout = custom_scalar_summary.pb(custom_scalars_layout())
                tf.summary.experimental.write_raw_pb(layout.SerializeToString(), step=0)
                if self.config:
                    text = json.dumps(self.config, sort_keys=True)
                    tf.summary.text("monitor_config", text, step=0)
        return self._writer

    def write_window(
        self, step: int, window: WindowStatistics, learning_rate: float | None = None
    ) -> None:
        """Writes every figure of one window at `step`."""
        if not window.sites:
            return
        summary = _Summary()
        if learning_rate is not None:
            summary.scalar("learning_rate", learning_rate)
        summary.scalar("dead_fraction", window.dead_fraction)
        summary.scalar("nan_units", window.nan_count)
        for site in window.sites:
            summary.scalar(f"dead_fraction/{site.name}", site.dead_fraction)
            summary.scalar(f"dormant_fraction/{site.name}", site.dormant_fraction)
            summary.scalar(f"nan_units/{site.name}", site.nan_count)
            if self.histograms:
                summary.firing_rate_histogram(
                    f"firing_rate/{site.name}", site.firing_rate
                )
            if site.activation_mean is not None:
                summary.scalar(f"selu_mean/{site.name}", site.activation_mean)
                summary.scalar(f"selu_std/{site.name}", site.activation_std)
        summary.add(
            dashboard.SITES_TAG,
            dashboard_summaries.sites_value(window),
            _DASHBOARD_METADATA[dashboard.SITES_KIND],
        )
        for site in window.sites:
            summary.add(
                dashboard.units_tag(site.name),
                dashboard_summaries.unit_rates_value(site),
                _DASHBOARD_METADATA[dashboard.UNITS_KIND],
            )
        if self.images:
            image = firing_rate_map([site.firing_rate for site in window.sites])
            summary.image("firing_rate_map", image)
        with self._get_writer().as_default(step=step), _always_record():
            summary.write()
        self._writer.flush()

    def write_text(self, step: int, tag: str, texts: list[str]) -> None:
        """Writes a window's lines of text (for example its diagnoses) at
        `step`, as ONE summary: paragraphs separated by a blank line
        (:data:`TEXT_SEPARATOR`). TensorBoard keeps one value per tag and
        step (its fast loader drops the others), so several summaries at one
        step would show only the last."""
        if not texts:
            return
        with self._get_writer().as_default(step=step), _always_record():
            tf.summary.text(tag, TEXT_SEPARATOR.join(texts))
        self._writer.flush()

    def write_events(self, step: int, events: list[FixEvent]) -> None:
        """Writes a window's fix actions: their messages as one text summary
        (``fix_events``) and, per fix, one scalar ``fix/<name>`` holding how
        many times it acted (one value per tag and step, as TensorBoard keeps
        them)."""
        if not events:
            return
        counts = collections.Counter(event.fix for event in events)
        with self._get_writer().as_default(step=step), _always_record():
            tf.summary.text(
                "fix_events", TEXT_SEPARATOR.join(event.message for event in events)
            )
            for fix, count in counts.items():
                tf.summary.scalar(f"fix/{fix}", float(count))
        self._writer.flush()

    def write_fix_events(
        self,
        step: int,
        events: list[FixEvent],
        diagnoses: dict[str, str] | None = None,
    ) -> None:
        """Writes one window's fix actions for the dashboard's markers."""
        if not events:
            return
        summary = _Summary()
        summary.add(
            dashboard.FIX_EVENTS_TAG,
            dashboard_summaries.fix_events_value(events, diagnoses),
            _DASHBOARD_METADATA[dashboard.FIX_EVENTS_KIND],
        )
        with self._get_writer().as_default(step=step), _always_record():
            summary.write()
        self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the writer; a later write opens a new one."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
