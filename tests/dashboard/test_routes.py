"""The plugin's routes, in TensorBoard's own WSGI app, over a real fit's logs.

Every figure is checked against what the monitor wrote through a different
path (its scalar, histogram and text summaries, read back from disk) or
against the monitor's own record of its fixes.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from event_files import read_run, scalar_series

from dashboard.logs import EPOCHS, RUNS, SITES, write_runs
from dashboard.wsgi_app import (
    PLUGIN_ROUTE,
    fast_loading_client,
    tensorboard_client,
    wait_for_json,
)
from keras_deadrelu.tensorboard_plugin import metadata, plugin


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("dashboard_logs")
    monitors = write_runs(str(log_dir))
    return str(log_dir), monitors


@pytest.fixture(scope="module")
def client(logs):
    return tensorboard_client(logs[0])


def get_json(client, route, status=200):
    response = client.get(PLUGIN_ROUTE + route)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def test_tab_is_listed_and_active(client):
    listing = client.get("/data/plugins_listing").get_json()[metadata.PLUGIN_NAME]
    assert listing["enabled"] is True
    assert listing["tab_name"] == "Dead Neurons"
    assert listing["loading_mechanism"] == {
        "type": "IFRAME",
        "module_path": "/data/plugin/dead_neurons/index.js",
    }


def test_tab_is_inactive_without_monitor_data(tmp_path):
    import tensorflow as tf

    with tf.summary.create_file_writer(str(tmp_path / "train")).as_default():
        tf.summary.scalar("loss", 1.0, step=0)
    listing = tensorboard_client(tmp_path).get("/data/plugins_listing").get_json()
    assert listing[metadata.PLUGIN_NAME]["enabled"] is False


def test_runs(client):
    runs = get_json(client, "runs")["runs"]
    assert [run["run"] for run in runs] == sorted(RUNS)
    for run in runs:
        assert [site["name"] for site in run["sites"]] == list(SITES)  # model order
        assert [site["units"] for site in run["sites"]] == [32, 16, 8]
        assert run["max_step"] == EPOCHS - 1
    assert [run["has_fix_events"] for run in runs] == [
        RUNS[run["run"]] is not None for run in runs
    ]


def test_runs_give_the_last_step_of_the_newest_fit_into_a_run(tmp_path):
    """A second, shorter fit into the same run supersedes the first one's
    windows from its first step on: TensorBoard's own last step of the tag
    (4) still counts them; the route answers the newer fit's (1)."""
    import time

    import keras

    import keras_deadrelu as kd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    for site, epochs in (("first_fit", 5), ("second_fit", 2)):
        # TensorBoard reads a run's event files in name order, and a name
        # holds its time in whole seconds: the second fit's files must be of
        # a later second to be read as the newer ones.
        time.sleep(1.1)
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(8, activation="relu", name=site),
                keras.layers.Dense(1),
            ]
        )
        model.compile("sgd", "mse")
        monitor = kd.DeadNeuronMonitor(str(tmp_path), run_name="r", verbose=0)
        model.fit(x, x[:, :1], epochs=epochs, callbacks=[monitor], verbose=0)
    expected = {
        "runs": [
            {
                "run": "r",
                "max_step": 1,
                "sites": [{"name": "second_fit", "kind": "relu", "units": 8}],
                "has_fix_events": False,
            }
        ]
    }
    assert get_json(tensorboard_client(tmp_path), "runs") == expected
    wait_for_json(fast_loading_client(tmp_path), "runs", expected)


def _refit(log_dir):
    """Fit 1 (sites A and B, born dead, revived) then, a second later, a
    shorter fit 2 without fixes (sites A and C) into the same run."""
    import time

    import keras

    import keras_deadrelu as kd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    for names, epochs, fix in ((("A", "B"), 4, "revive"), (("A", "C"), 2, None)):
        keras.utils.set_random_seed(1)
        dead = keras.initializers.Constant(-50.0 if fix else 0.0)
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(6, "relu", name=names[0], bias_initializer=dead),
                keras.layers.Dense(5, "relu", name=names[1], bias_initializer=dead),
                keras.layers.Dense(1),
            ]
        )
        model.compile("sgd", "mse")
        monitor = kd.DeadNeuronMonitor(log_dir, run_name="r", fix=fix, verbose=0)
        model.fit(x, x[:, :1], epochs=epochs, callbacks=[monitor], verbose=0)
        assert bool(monitor.events) == bool(fix)
        time.sleep(1.1)  # event files are told apart by their second


def test_a_newer_fit_hides_the_older_fits_fixes_and_sites_with_both_loaders(
    tmp_path,
):
    _refit(str(tmp_path))
    slow = tensorboard_client(tmp_path)
    overview = get_json(slow, "overview?run=r")
    assert overview["steps"] == [0, 1]
    assert [site["name"] for site in overview["sites"]] == ["A", "C"]
    assert overview["fix_events"] == []
    fast = fast_loading_client(tmp_path)
    wait_for_json(fast, "overview?run=r", overview)
    for client in (slow, fast):
        assert get_json(client, "site?run=r&site=A")["fix_events"] == []
        error = get_json(client, "site?run=r&site=B", status=400)["error"]
        assert error == "unknown site 'B' in run 'r'"


@pytest.mark.parametrize("run", list(RUNS))
def test_overview_matches_the_scalars_on_disk(client, logs, run):
    view = get_json(client, f"overview?run={run}")
    records = read_run(os.path.join(logs[0], run))
    assert [site["name"] for site in view["sites"]] == list(SITES)  # model order
    assert view["steps"] == list(range(EPOCHS))
    assert view["windows"] == EPOCHS and not view["downsampled"]
    for index, site in enumerate(SITES):
        scalars = scalar_series(records, f"dead_fraction/{site}")
        assert [step for step, _ in scalars] == view["steps"]
        np.testing.assert_allclose(
            view["dead_fraction"][index], [v for _, v in scalars], atol=1e-6
        )
        dead = np.asarray(view["dead"][index])
        units = np.asarray(view["units"][index])
        np.testing.assert_allclose(dead / units, view["dead_fraction"][index])
    np.testing.assert_allclose(
        view["model_dead_fraction"],
        [v for _, v in scalar_series(records, "dead_fraction")],
        atol=1e-6,
    )


def test_fix_events_match_the_monitor_and_carry_the_diagnosis(client, logs):
    monitor = logs[1]["revive"]
    assert monitor.events, "the revive run must have acted"
    view = get_json(client, "overview?run=revive")
    assert [
        (e["step"], e["site"], e["fix"], e["message"]) for e in view["fix_events"]
    ] == [(e.step, e.site, e.fix, e.message) for e in monitor.events]
    records = read_run(os.path.join(logs[0], "revive"))
    diagnosis_texts = {value.item().decode() for _, value, _ in records["diagnosis"]}
    for event in view["fix_events"]:
        assert event["diagnosis"] in diagnosis_texts
        assert event["site"] in event["diagnosis"]
    assert get_json(client, "overview?run=no_fix")["fix_events"] == []


@pytest.mark.parametrize("site", SITES)
def test_site_detail_matches_histograms_and_scalars(client, logs, site):
    detail = get_json(client, f"site?run=revive&site={site}")
    records = read_run(os.path.join(logs[0], "revive"))
    assert detail["site"] == site and detail["steps"] == list(range(EPOCHS))
    rates = np.array(detail["unit_permille"], dtype=np.float64) / 1000  # None: nan
    assert rates.shape == (detail["units"], EPOCHS)
    histograms = records[f"firing_rate/{site}"]
    for column, (step, buckets, _) in enumerate(histograms):
        assert detail["unit_steps"][column] == step
        finite = rates[:, column][np.isfinite(rates[:, column])]
        counts, _ = np.histogram(finite, bins=20, range=(0.0, 1.0))
        # Rates are k/256 here: rounding to thousandths crosses no bucket edge.
        np.testing.assert_array_equal(counts, buckets[:, 2])
        assert detail["dead"][column] == int((finite == 0).sum())
    for name, tag in (("dormant", "dormant_fraction"), ("nan", "nan_units")):
        scalars = [v for _, v in scalar_series(records, f"{tag}/{site}")]
        figures = np.asarray(detail[name], dtype=float)
        if name == "dormant":
            figures = figures / detail["units"]
        np.testing.assert_allclose(figures, scalars, atol=1e-6)
    if site == "s1":
        for name in ("selu_mean", "selu_std"):
            scalars = [v for _, v in scalar_series(records, f"{name}/{site}")]
            np.testing.assert_allclose(detail[name], scalars, rtol=1e-5, atol=1e-6)
    else:
        assert detail["selu_mean"] == [None] * EPOCHS
    assert [e["site"] for e in detail["fix_events"]] == [
        e.site for e in logs[1]["revive"].events if e.site == site
    ]


def test_max_windows_takes_leading_zeros(client):
    assert get_json(client, "overview?run=revive&max_windows=0000002") == get_json(
        client, "overview?run=revive&max_windows=2"
    )


def test_max_windows_downsamples_to_the_worst_window(client):
    full = get_json(client, "overview?run=revive")
    half = get_json(client, "overview?run=revive&max_windows=2")
    middle = EPOCHS // 2
    assert half["downsampled"] and half["steps"] == [middle - 1, EPOCHS - 1]
    assert half["step_ranges"] == [[0, middle - 1], [middle, EPOCHS - 1]]
    rows = zip(full["dead_fraction"], half["dead_fraction"], strict=True)
    for full_row, half_row in rows:
        assert half_row == [max(full_row[:middle]), max(full_row[middle:])]


@pytest.mark.parametrize(
    "route, message",
    [
        ("overview", "missing parameter 'run'"),
        ("overview?run=nope", "unknown run 'nope'"),
        ("overview?run=..%2Fno_fix", "unknown run '../no_fix'"),
        ("overview?run=revive&tag=x", "unknown parameter 'tag'"),
        ("overview?run=revive&run=no_fix", "parameter 'run' given more than once"),
        ("overview?run=revive&max_windows=0", "max_windows must be an integer"),
        ("overview?run=revive&max_windows=abc", "got 'abc'"),
        ("overview?run=revive&max_windows=10001", "got '10001'"),
        ("overview?run=revive&max_windows=%2B5_0", "got '+5_0'"),
        ("overview?run=revive&max_windows=%D9%A5", "max_windows must be an integer"),
        ("site?run=revive", "missing parameter 'site'"),
        ("site?run=revive&site=nope", "unknown site 'nope' in run 'revive'"),
        ("site?run=nope&site=h1", "unknown run 'nope'"),
        ("site?run=revive&site=h1&unit=3", "unknown parameter 'unit'"),
        ("runs?run=revive", "unknown parameter 'run'; this route takes no parameters"),
    ],
)
def test_bad_parameters_get_400_naming_them(client, route, message):
    answer = get_json(client, route, status=400)
    assert message in answer["error"]


def test_frontend_is_served_from_the_plugin_folder(client):
    response = client.get(PLUGIN_ROUTE + "index.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    with open(os.path.join(plugin.STATIC_DIR, "index.js"), "rb") as handle:
        assert response.get_data() == handle.read()
    assert re.search(
        r"export (async )?function render\(", response.get_data(as_text=True)
    )
    module = client.get(PLUGIN_ROUTE + "static/api.js")
    assert module.status_code == 200 and module.mimetype == "text/javascript"


@pytest.mark.parametrize(
    "path",
    [
        "static/../plugin.py",
        "static/..%2Fplugin.py",
        "static/%2e%2e/plugin.py",
        "static/%2E%2E%2Fplugin.py",
        "static/..%5Cplugin.py",
        "static/../../__init__.py",
        "static/../../../../../../etc/passwd",
        "static/%2Fetc%2Fpasswd",
        "static//etc/passwd",
        "static/",
        "static/.",
        "static/nonexistent.js",
        "plugin.py",
        "../plugin.py",
        "index.js/../plugin.py",
    ],
)
def test_path_traversal_is_refused(client, path):
    response = client.get(PLUGIN_ROUTE + path)
    assert response.status_code == 404, path
    body = response.get_data(as_text=True)
    assert "DeadNeuronsPlugin" not in body and "root:" not in body
    if path.startswith("static/") and path != "static/":
        # It reached the plugin's static route, whose allow-list refused it.
        assert response.mimetype == "application/json"
        assert "no static file" in response.get_json()["error"]


def test_same_answers_from_tensorboards_rust_data_server(client, logs):
    """``tensorboard``'s default (--load_fast) reads through the Rust server."""
    fast = fast_loading_client(logs[0])
    wait_for_json(fast, "overview?run=revive", get_json(client, "overview?run=revive"))
    assert get_json(fast, "site?run=revive&site=h1") == get_json(
        client, "site?run=revive&site=h1"
    )


def test_the_fast_loading_app_shows_runs_written_after_it_started(tmp_path, logs):
    """The Rust data server reloads, as ``tensorboard`` does."""
    import shutil

    once = tensorboard_client(tmp_path)
    live = fast_loading_client(tmp_path, "--reload_interval=1")
    assert get_json(once, "runs")["runs"] == []
    shutil.copytree(os.path.join(logs[0], "revive"), tmp_path / "revive")
    expected = get_json(tensorboard_client(tmp_path), "overview?run=revive")
    wait_for_json(live, "overview?run=revive", expected)
    assert get_json(once, "runs")["runs"] == []  # read once, when it was made


def _write_sites(run_dir, value, content=None) -> None:
    """One window of the sites tag, with the plugin data `content` (the
    monitor's by default)."""
    import tensorflow as tf
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.util import tensor_util

    summary_metadata = metadata.summary_metadata(metadata.SITES_KIND)
    if content is not None:
        summary_metadata.plugin_data.content = content
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=metadata.SITES_TAG,
        metadata=summary_metadata,
        tensor=tensor_util.make_tensor_proto(value),
    )
    with tf.summary.create_file_writer(str(run_dir)).as_default():
        tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=0)


_GOOD_ROW = ["h", "relu", 4, 1, 0, 0, 0.5, None, None]


def test_a_run_of_another_data_version_is_not_listed(tmp_path):
    import json

    _write_sites(tmp_path / "current", json.dumps([_GOOD_ROW]))
    future = json.dumps({"version": metadata.SCHEMA_VERSION + 1, "kind": "sites"})
    _write_sites(tmp_path / "future", json.dumps([_GOOD_ROW]), future.encode())
    client = tensorboard_client(tmp_path)
    assert [run["run"] for run in get_json(client, "runs")["runs"]] == ["current"]
    answer = get_json(client, "overview?run=future", status=400)
    assert "unknown run 'future'" in answer["error"]


def test_a_run_of_damaged_data_gets_400_and_leaves_the_others_listed(tmp_path):
    import json

    _write_sites(tmp_path / "good", json.dumps([_GOOD_ROW]))
    huge = [_GOOD_ROW[0], "relu", 10**30, *_GOOD_ROW[3:]]
    _write_sites(tmp_path / "huge", json.dumps([huge]))
    _write_sites(tmp_path / "empty", np.array([], dtype=object))
    client = tensorboard_client(tmp_path)
    runs = get_json(client, "runs")["runs"]
    assert [(run["run"], run["sites"][0]["units"]) for run in runs] == [("good", 4)]
    for run in ("huge", "empty"):
        answer = get_json(client, f"overview?run={run}", status=400)
        assert (
            f"run {run!r} holds Dead Neurons data this version cannot read"
            in (answer["error"])
        )
