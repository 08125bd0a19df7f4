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

import bisect
import contextlib
import gc
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


def _wall_time(datum: Any) -> float:
    return getattr(datum, "wall_time", 0.0)


def find_restarts(series: Sequence[Any]) -> list[tuple[float, int]]:
    """``(wall time, step)`` wherever a run went back to a step it had passed:
    a new fit writing into the same run folder (or a window written again).

    As TensorBoard does with orphaned data, what was written *before* such a
    restart at its step or later is superseded (:func:`current`).
    """
    found, last_step = [], None
    for datum in sorted(series, key=_wall_time):
        if last_step is not None and datum.step <= last_step:
            found.append((_wall_time(datum), int(datum.step)))
        last_step = datum.step
    return found


def current(series: Sequence[Any], restarts: list[tuple[float, int]]) -> list[Any]:
    """The data no restart superseded, one per step, in step order."""
    by_step = {}
    for datum in sorted(series, key=lambda d: (d.step, _wall_time(d))):
        if any(
            _wall_time(datum) < wall and datum.step >= step for wall, step in restarts
        ):
            continue
        by_step[datum.step] = datum
    return list(by_step.values())


def _is_figure(value: Any) -> bool:
    """None, or a finite int or float (``x - x`` is NaN for NaN and inf)."""
    return value is None or (type(value) in (int, float) and value - value == 0)


def valid_row(row: Any) -> bool:
    """Whether `row` is a well-formed row of :data:`.metadata.SITE_COLUMNS`.

    Checked for every row of every window, so written for speed (``type(x) is
    int`` also refuses booleans).

    >>> valid_row(["h", "relu", 4, 1, 0, 0, 0.5, None, None])
    True
    >>> valid_row(["h", "relu", "4", 1, 0, 0, 0.5, None, None])
    False
    """
    if type(row) is not list or len(row) != len(SITE_COLUMNS):
        return False
    name, kind, units, dead, dormant, nan, rate, mean, std = row
    return (
        type(name) is str
        and type(kind) is str
        and type(units) is int
        and type(dead) is int
        and type(dormant) is int
        and type(nan) is int
        and units > 0
        and 0 <= dead <= units
        and 0 <= dormant <= units
        and 0 <= nan <= units
        and _is_figure(rate)
        and _is_figure(mean)
        and _is_figure(std)
    )


@contextlib.contextmanager
def garbage_collection_paused():
    """Decoding a run's JSON makes hundreds of thousands of small lists; in a
    TensorBoard process holding a million objects, the collector would scan
    them all over and over (0.4 s instead of 0.04 s for 100 sites x 1,000
    windows). None of these objects forms a cycle."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decode_rows(
    series: Sequence[Any], restarts: list[tuple[float, int]]
) -> list[tuple[int, dict[str, list]]]:
    """``[(step, {site: row})]`` in step order; unreadable rows are skipped."""
    windows = []
    for datum in current(series, restarts):
        try:
            rows = json.loads(_text(datum.numpy))
        except (ValueError, TypeError):
            continue
        if not isinstance(rows, list):
            continue
        parsed = {row[0]: row for row in rows if valid_row(row)}
        if parsed:
            windows.append((int(datum.step), parsed))
    return windows


def _written_over(series: Sequence[Any], sites_series: Sequence[Any]) -> list[Any]:
    """The data of `series` that no window of `sites_series` was written
    over: a window at the same step or an earlier one, written later, comes
    from a newer fit into the run (a window's fix actions are written after
    its sites, so its own window never hides them). TensorBoard's fast loader
    drops a restarted tag's older points itself, so its sites series shows no
    restart, while another tag (the fix actions) may keep them."""
    by_step = sorted(sites_series, key=lambda datum: datum.step)
    steps = [datum.step for datum in by_step]
    latest, newest = [], float("-inf")
    for datum in by_step:  # the newest write at this step or before
        newest = max(newest, _wall_time(datum))
        latest.append(newest)
    kept = []
    for datum in series:
        index = bisect.bisect_right(steps, datum.step)
        if index and latest[index - 1] > _wall_time(datum):
            continue
        kept.append(datum)
    return kept


def decode_fix_events(
    series: Sequence[Any],
    restarts: list[tuple[float, int]] = (),
    sites_series: Sequence[Any] = (),
) -> list[dict]:
    """Every fix action in the run, in step order; none that a newer fit's
    windows (`sites_series`) were written over."""
    events = []
    kept = current(series, list(restarts))
    for datum in _written_over(kept, sites_series):
        try:
            window_events = json.loads(_text(datum.numpy))
        except (ValueError, TypeError):
            continue
        for event in window_events if isinstance(window_events, list) else []:
            if isinstance(event, dict) and isinstance(event.get("site"), str):
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


#: Per-site figures of the overview: one ``[site][column]`` matrix each, in
#: the order of the count matrix built by :func:`_count_matrix`.
_OVERVIEW_COUNTS = ("units", "dead", "dormant", "nan")
_MISSING = (0, 0, 0, 0)


def _count_matrix(windows: list, names: list[str]) -> np.ndarray:
    """``[count, site, window]`` array of :data:`_OVERVIEW_COUNTS` (units 0
    where a site has no row in a window)."""
    columns = slice(_COLUMN["units"], _COLUMN["nan"] + 1)
    table = [
        [row[columns] if (row := rows.get(name)) else _MISSING for name in names]
        for _, rows in windows
    ]
    matrix = np.asarray(table, dtype=np.int64).reshape(len(windows), len(names), 4)
    return matrix.transpose(2, 1, 0)


def _with_none(matrix: np.ndarray, present: np.ndarray) -> list:
    """`matrix` as nested lists, ``None`` where not `present`."""
    if present.all():
        return matrix.tolist()
    return np.where(present, matrix, None).tolist()


@garbage_collection_paused()
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
    restarts = find_restarts(sites_series)
    windows = _decode_rows(sites_series, restarts)
    names = site_order(windows)
    groups = column_groups(len(windows), max_windows)
    counts = _count_matrix(windows, names)  # [count, site, window]
    units, dead = counts[0], counts[1]
    present = units > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(present, dead / np.where(present, units, 1), -1.0)
        model = dead.sum(axis=0) / np.maximum(units.sum(axis=0), 1)
    # Per group and site: the window with the highest dead fraction.
    picked = np.empty((len(names), len(groups)), dtype=np.int64)
    model_fraction = []
    for column, group in enumerate(groups):
        window_slice = slice(group[0], group[-1] + 1)
        picked[:, column] = group[0] + fraction[:, window_slice].argmax(axis=1)
        model_fraction.append(float(model[window_slice].max()))
    rows = np.arange(len(names))[:, np.newaxis]
    chosen_present = present[rows, picked]
    latest_rows = {}
    for _, window_rows in windows:
        latest_rows.update(window_rows)
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
        "dead_fraction": _with_none(fraction[rows, picked], chosen_present),
    }
    for index, count in enumerate(_OVERVIEW_COUNTS):
        view[count] = _with_none(counts[index][rows, picked], chosen_present)
    view["model_dead_fraction"] = model_fraction
    view["fix_events"] = decode_fix_events(fix_series, restarts, sites_series)
    return view


def _permille_rows(rates: np.ndarray) -> list[list]:
    """Firing rates as whole thousandths (0-1000) for JSON, ``None`` for NaN:
    integers keep a 2,048-unit map small and fast to encode. Only a unit that
    never fired reads 0 and only one that always fired reads 1000: a rate
    strictly between them keeps to 1-999 (a unit that fired once in 10,000
    values is alive, not dead, on the map).

    >>> _permille_rows(np.array([[0.0, 0.0001, 0.5, 0.9999, 1.0]]))
    [[0, 1, 500, 999, 1000]]
    """
    permille = np.rint(rates * 1000.0)
    between = (rates > 0.0) & (rates < 1.0)
    permille = np.where(between, np.clip(permille, 1.0, 999.0), permille)
    finite = np.isfinite(permille)
    if finite.all():
        return permille.astype(np.int64).tolist()
    return np.where(finite, permille, None).tolist()


@garbage_collection_paused()
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
    window still shows. ``unit_permille[unit][column]`` is the rate in
    thousandths (0 to 1000); ``None`` is a NaN unit (or a unit the site did not
    have in that window).
    """
    restarts = find_restarts(sites_series)
    windows = [
        (step, {site: rows[site]})
        for step, rows in _decode_rows(sites_series, restarts)
        if site in rows
    ]
    groups = column_groups(len(windows), max_windows)
    picked = [_worst_row(windows, group, site) for group in groups]

    def column(name: str) -> list:
        return [row[_COLUMN[name]] for row in picked]

    unit_data = current(unit_series, restarts)
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
        "unit_permille": _permille_rows(unit_map),
        "fix_events": [
            event
            for event in decode_fix_events(fix_series, restarts, sites_series)
            if event["site"] == site
        ],
    }
