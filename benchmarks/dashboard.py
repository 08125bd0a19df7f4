"""Server-side time of the Dead Neurons dashboard's routes on a large log.

Writes a synthetic run of ``--sites`` sites x ``--windows`` windows (64 units
per site, but 2,048 for the last one, as wide as ResNet50's widest layers; a
fix event every 100 windows) with the package's own dashboard
summaries and metadata, through TensorBoard's pure-Python event writer (the
values are exactly what the monitor writes; the writer is faster than
``tf.summary`` for 100,000 tensors). Then it serves the log with TensorBoard's
own WSGI app, the way ``tensorboard --logdir`` does, with both data providers
(Python multiplexer, ``--load_fast=false``; Rust data server, the default),
and times the ``overview`` and ``site`` routes in process: the median of
``--repeats`` requests after one warm-up. Loading time is reported apart.
Prints a table, then one JSON line.

    python benchmarks/dashboard.py              # 100 sites x 1000 windows
    python benchmarks/dashboard.py --quick      # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: E402
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402
from werkzeug import test as werkzeug_test  # noqa: E402
from werkzeug import wrappers  # noqa: E402

from keras_deadrelu.fixes.events import FixEvent  # noqa: E402
from keras_deadrelu.tensorboard_plugin import metadata, summaries  # noqa: E402
from keras_deadrelu.tensorboard_plugin.wsgi import tensorboard_wsgi_app  # noqa: E402
from keras_deadrelu.unit_statistics import (  # noqa: E402
    UnitCounters,
    WindowStatistics,
    site_statistics,
)

UNITS = 64
WIDE_UNITS = 2048  # the last site's units: the site route is timed on it
ROUTE = "/data/plugin/dead_neurons/"
GOAL_SECONDS = 1.0


def _value(tag: str, array, kind: str) -> summary_pb2.Summary.Value:
    return summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_util.make_tensor_proto(array),
        metadata=metadata.summary_metadata(kind),
    )


def write_log(run_dir: str, sites: int, windows: int) -> None:
    """A run where site i's units die one by one, earlier for deeper sites."""
    rng = np.random.default_rng(0)
    writer = EventFileWriter(run_dir)
    names = [f"block{index // 3}/conv{index % 3}" for index in range(sites)]
    for step in range(windows):
        statistics_ = []
        for index, name in enumerate(names):
            units = WIDE_UNITS if index == sites - 1 else UNITS
            dead = min(units, max(0, (step * (index + 1)) // max(windows, 1)))
            positive = rng.integers(1, 100, size=units)
            positive[:dead] = 0
            counters = UnitCounters(positive, positive.astype(float), 100)
            statistics_.append(site_statistics(name, "relu", counters, 0.1))
        window = WindowStatistics(tuple(statistics_))
        values = [_value(metadata.SITES_TAG, summaries.sites_value(window), "sites")]
        values += [
            _value(
                metadata.units_tag(site.name),
                summaries.unit_rates_value(site),
                "units",
            )
            for site in window.sites
        ]
        if step % 100 == 99:
            event = FixEvent(step, step, names[0], "revive", 1, 0, 0.5, "revived")
            values.append(
                _value(
                    metadata.FIX_EVENTS_TAG,
                    summaries.fix_events_value([event], {names[0]: "bias"}),
                    "fix_events",
                )
            )
        writer.add_event(
            event_pb2.Event(
                step=step,
                wall_time=time.time(),
                summary=summary_pb2.Summary(value=values),
            )
        )
    writer.close()


def _time_route(client, route: str, repeats: int, expect_columns: int) -> float:
    """Median seconds of `repeats` requests, after one warm-up."""
    response = client.get(ROUTE + route)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert len(body["steps"]) == expect_columns, (route, len(body["steps"]))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.get(ROUTE + route)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _loaded_client(log_dir: str, fast: bool, windows: int):
    """The app over `log_dir`, and the seconds until every window is served."""
    start = time.perf_counter()
    client = werkzeug_test.Client(
        tensorboard_wsgi_app(log_dir, fast_loading=fast), wrappers.Response
    )
    deadline = start + 600
    while True:
        response = client.get(ROUTE + "overview?run=run&max_windows=1")
        if response.status_code == 200 and response.get_json()["windows"] == windows:
            return client, time.perf_counter() - start
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the data did not load: {response.get_data()[:300]}")
        time.sleep(0.2)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10 x 50, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.sites, args.windows, args.repeats = 10, 50, 2
    rows = []
    with tempfile.TemporaryDirectory() as log_dir:
        start = time.perf_counter()
        write_log(os.path.join(log_dir, "run"), args.sites, args.windows)
        write_seconds = time.perf_counter() - start
        site = f"block{(args.sites - 1) // 3}/conv{(args.sites - 1) % 3}"
        for provider, fast in (("python", False), ("rust", True)):
            client, load_seconds = _loaded_client(log_dir, fast, args.windows)
            for route, columns in (
                ("overview?run=run", min(args.windows, 1000)),
                ("overview?run=run&max_windows=200", min(args.windows, 200)),
                (f"site?run=run&site={site}", min(args.windows, 1000)),
            ):
                seconds = _time_route(client, route, args.repeats, columns)
                rows.append(
                    {
                        "provider": provider,
                        "route": route.split("?")[0]
                        + ("/200" if "max_windows" in route else ""),
                        "median_s": round(seconds, 4),
                        "load_s": round(load_seconds, 2),
                        "under_goal": seconds < GOAL_SECONDS,
                    }
                )
    print(
        f"Dead Neurons routes, {args.sites} sites x {args.windows} windows "
        f"x {UNITS} units, the site route on a site of {WIDE_UNITS} units "
        f"(log written in {write_seconds:.1f} s)"
    )
    print(f"{'provider':<8} {'route':<14} {'median s':>9} {'load s':>7}  < 1 s")
    for row in rows:
        print(
            f"{row['provider']:<8} {row['route']:<14} {row['median_s']:>9.3f} "
            f"{row['load_s']:>7.1f}  {'yes' if row['under_goal'] else 'NO'}"
        )
    summary = {
        "benchmark": "dashboard",
        "quick": args.quick,
        "sites": args.sites,
        "windows": args.windows,
        "units_per_site": UNITS,
        "wide_site_units": WIDE_UNITS,
        "rows": rows,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
