"""The dashboard's JSON on engineered windows with known answers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import tensorflow as tf

from dashboard.wsgi_app import PLUGIN_ROUTE, tensorboard_client
from keras_deadrelu.fixes.events import FixEvent
from keras_deadrelu.tensorboard_plugin import metadata, reader
from keras_deadrelu.tensorboard_sink import TensorBoardSink
from keras_deadrelu.unit_statistics import (
    UnitCounters,
    WindowStatistics,
    site_statistics,
)


def row(site, units, dead, kind="relu", nan=0):
    return [site, kind, units, dead, dead, nan, 0.5, None, None]


def datum(step, value):
    if isinstance(value, (list, dict)):
        value = json.dumps(value).encode()
    return SimpleNamespace(step=step, numpy=np.asarray(value))


def test_overview_of_engineered_windows():
    series = [
        datum(0, [row("a", 4, 0), row("b", 2, 0)]),
        datum(1, [row("a", 4, 1), row("b", 2, 2)]),
        datum(2, [row("a", 4, 4), row("b", 2, 1)]),
    ]
    view = reader.overview("r", series, [])
    assert [site["name"] for site in view["sites"]] == ["a", "b"]
    assert view["dead_fraction"] == [[0.0, 0.25, 1.0], [0.0, 1.0, 0.5]]
    assert view["dead"] == [[0, 1, 4], [0, 2, 1]]
    assert view["dormant"] == view["dead"]  # row() sets dormant = dead
    assert view["nan"] == [[0, 0, 0], [0, 0, 0]]
    # Model-wide: all dead units over all units.
    assert view["model_dead_fraction"] == [0.0, 3 / 6, 5 / 6]


def test_data_arriving_out_of_order_is_sorted_by_step():
    series = [datum(2, [row("a", 2, 2)]), datum(0, [row("a", 2, 0)])]
    view = reader.overview("r", series, [])
    assert view["steps"] == [0, 2] and view["dead_fraction"] == [[0.0, 1.0]]


def test_a_step_written_twice_shows_once_with_the_last_value():
    first, again = datum(1, [row("a", 2, 2)]), datum(1, [row("a", 2, 0)])
    first.wall_time, again.wall_time = 10.0, 20.0
    view = reader.overview("r", [again, datum(0, [row("a", 2, 1)]), first], [])
    assert view["steps"] == [0, 1] and view["dead"] == [[1, 0]]


def test_a_new_fit_into_the_same_run_supersedes_the_old_one_from_its_first_step():
    """Like TensorBoard's purge of orphaned data: fit 1 wrote steps 0-4 (sites
    A, B, a fix at step 3), fit 2 then wrote steps 0-2 (sites A, C)."""
    old = [datum(step, [row("A", 2, 1), row("B", 2, 2)]) for step in range(5)]
    new = [datum(step, [row("A", 2, 0), row("C", 2, 0)]) for step in range(3)]
    for index, item in enumerate(old + new):
        item.wall_time = float(index)
    old_fix = datum(3, [{"site": "B", "fix": "revive", "message": "m"}])
    old_fix.wall_time = 3.5
    view = reader.overview("r", old + new, [old_fix])
    assert view["steps"] == [0, 1, 2]
    assert [site["name"] for site in view["sites"]] == ["A", "C"]
    assert view["dead"] == [[0, 0, 0], [0, 0, 0]]
    assert view["fix_events"] == []


def test_rows_with_wrong_types_are_skipped():
    good = row("a", 2, 1)
    bad = [
        ["b", "relu", "2", 1, 0, 0, 0.5, None, None],  # units as text
        [["c"], "relu", 2, 1, 0, 0, 0.5, None, None],  # a list as a name
        ["d", "relu", 2, 3, 0, 0, 0.5, None, None],  # more dead than units
        ["e", "relu", 2, 1, 0, 0, float("nan"), None, None],
        ["f", "relu", 0, 0, 0, 0, None, None, None],  # no units
        ["g", "relu", True, 0, 0, 0, None, None, None],
    ]
    view = reader.overview("r", [datum(0, [good, *bad])], [])
    assert [site["name"] for site in view["sites"]] == ["a"]
    assert view["dead_fraction"] == [[0.5]]


def test_a_site_missing_from_a_window_is_null_not_zero():
    series = [datum(0, [row("a", 2, 0)]), datum(1, [row("a", 2, 1), row("b", 4, 4)])]
    view = reader.overview("r", series, [])
    assert [site["name"] for site in view["sites"]] == ["a", "b"]
    assert view["dead_fraction"][1] == [None, 1.0]


def test_unreadable_values_are_skipped():
    series = [
        datum(0, b"not json"),
        datum(1, [row("a", 2, 1)]),
        datum(2, {"not": "a list"}),
        datum(3, [["too", "short"]]),
    ]
    view = reader.overview("r", series, [datum(1, b"{broken")])
    assert view["steps"] == [1]
    assert view["dead_fraction"] == [[0.5]]
    assert view["fix_events"] == []


def test_downsampling_keeps_the_worst_window_of_each_group():
    deads = [0, 0, 3, 0, 0, 0, 1, 0, 0, 0]  # a one-window death at step 2
    series = [datum(step, [row("a", 4, dead)]) for step, dead in enumerate(deads)]
    view = reader.overview("r", series, [], max_windows=3)
    assert view["downsampled"] and view["windows"] == 10
    assert view["step_ranges"] == [[0, 3], [4, 7], [8, 9]]
    assert view["steps"] == [3, 7, 9]
    assert view["dead_fraction"] == [[0.75, 0.25, 0.0]]


def test_site_detail_unit_map_shows_each_groups_lowest_rate_and_nan_units():
    rates = [
        np.array([0.0, 0.5, np.nan], np.float32),
        np.array([0.0, 1.0, np.nan], np.float32),
        np.array([0.2, 1.0, 0.1], np.float32),
    ]
    sites = [datum(step, [row("a", 3, 1, nan=1)]) for step in range(3)]
    units = [datum(step, value) for step, value in enumerate(rates)]
    detail = reader.site_detail("r", "a", sites, units, [], max_windows=2)
    assert detail["unit_steps"] == detail["steps"] == [1, 2]
    assert detail["step_ranges"] == [[0, 1], [2, 2]]
    assert detail["unit_permille"] == [[0, 200], [500, 1000], [None, 100]]


def test_site_detail_unit_map_keeps_rare_firing_apart_from_never_and_always():
    rates = np.array([0.0, 1e-5, 0.0004, 0.9996, 1.0], np.float32)
    sites = [datum(0, [row("a", 5, 1)])]
    detail = reader.site_detail("r", "a", sites, [datum(0, rates)], [])
    assert detail["unit_permille"] == [[0], [1], [1], [999], [1000]]


def window(dead_units: int, units: int = 4, name: str = "h") -> WindowStatistics:
    positive = np.array([0] * dead_units + [5] * (units - dead_units))
    counters = UnitCounters(positive, positive.astype(float), 10)
    return WindowStatistics((site_statistics(name, "relu", counters, 0.1),))


def test_tensorboard_keeps_every_window_not_its_default_ten(tmp_path):
    """The loader raises TensorBoard's 10-sample default for this plugin."""
    sink = TensorBoardSink(str(tmp_path), run_name="long")
    deads = [step % 5 for step in range(30)]
    for step, dead in enumerate(deads):
        sink.write_window(step, window(dead))
    event = FixEvent(7, 7, "h", "revive", 2, 0, 0.5, "h: revived")
    sink.write_fix_events(7, [event], {"h": "h crossed 50%: bias."})
    sink.close()
    view = tensorboard_client(tmp_path).get(PLUGIN_ROUTE + "overview?run=long")
    view = view.get_json()
    assert view["steps"] == list(range(30))
    assert view["dead"] == [deads]
    assert [(e["step"], e["fix"], e["diagnosis"]) for e in view["fix_events"]] == [
        (7, "revive", "h crossed 50%: bias.")
    ]
    # ... and the user's own --samples_per_plugin wins (0 keeps every window).
    for samples, kept in ((5, 5), (0, 30)):
        client = tensorboard_client(
            tmp_path, f"--samples_per_plugin=dead_neurons={samples}"
        )
        view = client.get(PLUGIN_ROUTE + "overview?run=long").get_json()
        assert len(view["steps"]) == kept


def test_summaries_are_tensors_under_the_plugin_name(tmp_path):
    sink = TensorBoardSink(str(tmp_path), run_name="r")
    sink.write_window(0, window(1))
    sink.close()
    path = next((tmp_path / "r").glob("events.out.tfevents.*"))
    found = {}
    for event in tf.compat.v1.train.summary_iterator(str(path)):
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME:
                found[value.tag] = value
    assert set(found) == {metadata.SITES_TAG, metadata.units_tag("h")}
    for tag, value in found.items():
        assert value.metadata.data_class == metadata.summary_pb2.DATA_CLASS_TENSOR
        content = metadata.parse_plugin_content(value.metadata.plugin_data.content)
        assert content["version"] == metadata.SCHEMA_VERSION, tag
    rates = tf.make_ndarray(found[metadata.units_tag("h")].tensor)
    np.testing.assert_array_equal(rates, [0.0, 0.5, 0.5, 0.5])
    rows = json.loads(tf.make_ndarray(found[metadata.SITES_TAG].tensor).item())
    assert rows == [["h", "relu", 4, 1, 1, 0, 0.375, None, None]]
