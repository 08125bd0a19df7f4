"""What the monitor writes for the Dead Neurons dashboard, once per window.

The values are built here as plain Python and NumPy (so they can be checked
without TensorFlow); :class:`~keras_deadrelu.tensorboard_sink.TensorBoardSink`
writes them as tensor summaries under :mod:`.metadata`'s tags, in the
window's one Summary proto.

>>> import numpy as np
>>> from keras_deadrelu.unit_statistics import UnitCounters, site_statistics
>>> from keras_deadrelu.unit_statistics import WindowStatistics
>>> counters = UnitCounters(np.array([0, 5]), np.array([0.0, 2.0]), 10)
>>> window = WindowStatistics((site_statistics("h", "relu", counters, 0.1),))
>>> json.loads(sites_value(window))
[['h', 'relu', 2, 1, 1, 0, 0.25, None, None]]
>>> unit_rates_value(window.sites[0]).tolist()
[0.0, 0.5]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import numpy as np

from keras_deadrelu.fixes.events import FixEvent
from keras_deadrelu.unit_statistics import SiteStatistics, WindowStatistics


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(value)


def site_row(site: SiteStatistics) -> list:
    """One row of the sites JSON, in :data:`.metadata.SITE_COLUMNS` order."""
    finite_rates = site.firing_rate[np.isfinite(site.firing_rate)]
    mean_rate = float(finite_rates.mean()) if finite_rates.size else None
    return [
        site.name,
        site.kind,
        site.unit_count,
        site.dead_count,
        site.dormant_count,
        site.nan_count,
        mean_rate,
        _finite_or_none(site.activation_mean),
        _finite_or_none(site.activation_std),
    ]


def sites_value(window: WindowStatistics) -> str:
    """The ``dead_neurons/sites`` value: every site's row, in model order."""
    return json.dumps([site_row(site) for site in window.sites])


def unit_rates_value(site: SiteStatistics) -> np.ndarray:
    """The ``dead_neurons/units/<site>`` value: per-unit firing rates."""
    return np.asarray(site.firing_rate, dtype=np.float32).reshape(-1)


def fix_events_value(
    events: Iterable[FixEvent], diagnoses: Mapping[str, str] | None = None
) -> str:
    """The ``dead_neurons/fix_events`` value: the window's fix actions.

    `diagnoses` maps a site name to the diagnosis text that explains why it
    died (shown when the user hovers the fix's marker).
    """
    diagnoses = diagnoses or {}
    return json.dumps(
        [
            {**event.as_json_dict(), "diagnosis": diagnoses.get(event.site)}
            for event in events
        ]
    )
