"""The dashboard's JSON, built from what TensorBoard's data provider returns.

The functions here take the provider's time series (lists of data with a
``step`` and a ``numpy`` value) and never open a file. Long runs are
downsampled to at most ``max_windows`` columns: consecutive windows are
grouped, and each group shows its worst window (the highest dead fraction),
so a short-lived death is never averaged away.

>>> import json
>>> from types import SimpleNamespace as Datum
>>> rows = [[["h", "relu", 4, dead, 0, 0, 0.5, None, None]] for dead in (0, 2, 4)]
>>> series = [Datum(step=s, numpy=json.dumps(r).encode()) for s, r in enumerate(rows)]
>>> view = overview("run", series, [], max_windows=2)
>>> view["steps"], view["dead_fraction"], view["step_ranges"]
([1, 2], [[0.5, 1.0]], [[0, 1], [2, 2]])
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_deadrelu.tensorboard_plugin.metadata import SITE_COLUMNS

#: Columns the overview and the site detail show unless asked for fewer.
DEFAULT_MAX_WINDOWS = 1000
#: The most columns a request may ask for.
MAX_WINDOWS_LIMIT = 10000

_COLUMN = {name: index for index, name in enumerate(SITE_COLUMNS)}


def _text(value: Any) -> str:
    """A string tensor's value as text."""
    value = np.asarray(value)
    item = value.item() if value.size == 1 else value.reshape(-1)[0]
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)


def latest_per_step(series: Sequence[Any]) -> list[Any]:
    """The data in step order, one per step: the last written where a step
    appears twice (a restarted run that wrote a window again)."""
    by_step = {}
    for datum in sorted(series, key=lambda d: (d.step, getattr(d, "wall_time", 0))):
        by_step[datum.step] = datum
    return list(by_step.values())


def _decode_rows(series: Sequence[Any]) -> list[tuple[int, dict[str, list]]]:
    """``[(step, {site: row})]`` in step order; unreadable values are skipped."""
    windows = []
    for datum in latest_per_step(series):
        try:
            rows = json.loads(_text(datum.numpy))
        except (ValueError, TypeError):
            continue
        if not isinstance(rows, list):
            continue
        parsed = {
            row[0]: row
            for row in rows
            if isinstance(row, list) and len(row) == len(SITE_COLUMNS)
        }
        if parsed:
            windows.append((int(datum.step), parsed))
    return windows


def decode_fix_events(series: Sequence[Any]) -> list[dict]:
    """Every fix action in the run, in step order."""
    events = []
    for datum in latest_per_step(series):
        try:
            window_events = json.loads(_text(datum.numpy))
        except (ValueError, TypeError):
            continue
        for event in window_events if isinstance(window_events, list) else []:
            if isinstance(event, dict) and "site" in event:
                event = dict(event)
                event["step"] = int(datum.step)
                events.append(event)
    return events


def site_order(windows: list[tuple[int, dict[str, list]]]) -> list[str]:
    """Site names in model order: the latest window's order, then older ones."""
    names: list[str] = []
    seen = set()
    for _, rows in reversed(windows):
        for name in rows:
            if name not in seen:
                seen.add(name)
                names.append(name)
    latest = list(windows[-1][1]) if windows else []
    return latest + [name for name in names if name not in set(latest)]


def column_groups(count: int, max_windows: int) -> list[range]:
    """Splits ``count`` windows into at most ``max_windows`` consecutive groups.

    >>> [list(group) for group in column_groups(5, 2)]
    [[0, 1, 2], [3, 4]]
    """
    if count <= max_windows:
        return [range(index, index + 1) for index in range(count)]
    per_group = math.ceil(count / max_windows)
    return [
        range(start, min(start + per_group, count))
        for start in range(0, count, per_group)
    ]


def _fraction(dead: int, units: int) -> float:
    return dead / units if units else 0.0


def _row_fraction(row: list) -> float:
    return _fraction(row[_COLUMN["dead"]], row[_COLUMN["units"]])


def _worst_row(
    windows: list[tuple[int, dict[str, list]]], group: range, name: str
) -> list | None:
    """The site's row with the highest dead fraction in a group of windows."""
    rows = [windows[i][1][name] for i in group if name in windows[i][1]]
    return max(rows, key=_row_fraction) if rows else None


def _group_steps(windows: list, groups: list[range]) -> dict:
    return {
        "steps": [windows[group[-1]][0] for group in groups],
        "step_ranges": [
            [windows[group[0]][0], windows[group[-1]][0]] for group in groups
        ],
        "windows": len(windows),
        "downsampled": len(groups) < len(windows),
    }


#: Per-site figures of the overview: one ``[site][column]`` matrix each.
_OVERVIEW_COUNTS = ("dead", "units", "dormant", "nan")


def overview(
    run: str,
    sites_series: Sequence[Any],
    fix_series: Sequence[Any],
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> dict:
    """The overview heatmap of one run: sites x windows dead fractions.

    Each column shows, per site, its worst window in the column's group (the
    highest dead fraction), with that window's counts.
    """
    windows = _decode_rows(sites_series)
    names = site_order(windows)
    groups = column_groups(len(windows), max_windows)
    worst = [[_worst_row(windows, group, name) for group in groups] for name in names]
    model_fraction = [
        max(
            _fraction(
                sum(row[_COLUMN["dead"]] for row in windows[i][1].values()),
                sum(row[_COLUMN["units"]] for row in windows[i][1].values()),
            )
            for i in group
        )
        for group in groups
    ]
    latest_rows = {}
    for _, rows in windows:
        latest_rows.update(rows)
    view = {
        "run": run,
        "sites": [
            {
                "name": name,
                "kind": latest_rows[name][_COLUMN["kind"]],
                "units": latest_rows[name][_COLUMN["units"]],
            }
            for name in names
        ],
        **_group_steps(windows, groups),
        "dead_fraction": [
            [None if row is None else _row_fraction(row) for row in site_rows]
            for site_rows in worst
        ],
    }
    for count in _OVERVIEW_COUNTS:
        view[count] = [
            [None if row is None else row[_COLUMN[count]] for row in site_rows]
            for site_rows in worst
        ]
    view["model_dead_fraction"] = model_fraction
    view["fix_events"] = decode_fix_events(fix_series)
    return view


def _rounded(values: np.ndarray) -> list:
    """Firing rates for JSON: 4 decimals, ``None`` for NaN."""
    return [None if not np.isfinite(v) else round(float(v), 4) for v in values]


def site_detail(
    run: str,
    site: str,
    sites_series: Sequence[Any],
    unit_series: Sequence[Any],
    fix_series: Sequence[Any],
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> dict:
    """One site over time: its figures per window and its units x windows map.

    Downsampled like the overview: a column's figures come from the group's
    worst window, and each unit shows its lowest firing rate in the group
    (NaN if it was NaN in any window of it), so a unit that died for one
    window still shows. ``None`` in ``unit_rates`` is a NaN unit (or a unit
    the site did not have in that window).
    """
    windows = [
        (step, {site: rows[site]})
        for step, rows in _decode_rows(sites_series)
        if site in rows
    ]
    groups = column_groups(len(windows), max_windows)
    picked = [_worst_row(windows, group, site) for group in groups]

    def column(name: str) -> list:
        return [row[_COLUMN[name]] for row in picked]

    unit_data = latest_per_step(unit_series)
    unit_count = max((np.asarray(d.numpy).size for d in unit_data), default=0)
    unit_groups = column_groups(len(unit_data), max_windows)
    unit_map = np.full((unit_count, len(unit_groups)), np.nan)
    for column_index, group in enumerate(unit_groups):
        stacked = np.full((len(group), unit_count), np.nan)
        for row_index, data_index in enumerate(group):
            rates = np.asarray(unit_data[data_index].numpy, dtype=np.float64)
            stacked[row_index, : rates.size] = rates.reshape(-1)
        # min() propagates NaN: a unit NaN in any window of the group is NaN.
        unit_map[:, column_index] = stacked.min(axis=0)
    latest = picked[-1] if picked else [site, None, unit_count] + [None] * 6
    return {
        "run": run,
        "site": site,
        "kind": latest[_COLUMN["kind"]],
        "units": latest[_COLUMN["units"]],
        **_group_steps(windows, groups),
        "dead_fraction": [_row_fraction(row) for row in picked],
        "dead": column("dead"),
        "dormant": column("dormant"),
        "nan": column("nan"),
        "firing_rate": column("firing_rate"),
        "selu_mean": column("selu_mean"),
        "selu_std": column("selu_std"),
        "unit_steps": [int(unit_data[group[-1]].step) for group in unit_groups],
        "unit_rates": [_rounded(row) for row in unit_map],
        "fix_events": [
            event for event in decode_fix_events(fix_series) if event["site"] == site
        ],
    }
