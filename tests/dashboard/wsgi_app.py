"""A werkzeug client for TensorBoard's WSGI app, for the route tests."""

from __future__ import annotations

import time

from werkzeug import test as werkzeug_test
from werkzeug import wrappers

from keras_deadrelu.tensorboard_plugin.wsgi import tensorboard_wsgi_app

PLUGIN_ROUTE = "/data/plugin/dead_neurons/"


def tensorboard_client(log_dir, *extra_flags: str) -> werkzeug_test.Client:
    """A test client for TensorBoard serving `log_dir` (Python data provider)."""
    return werkzeug_test.Client(
        tensorboard_wsgi_app(log_dir, extra_flags), wrappers.Response
    )


def fast_loading_client(log_dir, *extra_flags: str) -> werkzeug_test.Client:
    """A test client for TensorBoard's Rust data server (``--load_fast``),
    which loads in the background."""
    return werkzeug_test.Client(
        tensorboard_wsgi_app(log_dir, extra_flags, fast_loading=True),
        wrappers.Response,
    )


def wait_for_json(client, route: str, expected, timeout: float = 60.0) -> None:
    """Polls `route` until it answers `expected` (fails after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(PLUGIN_ROUTE + route)
        if response.status_code == 200 and response.get_json() == expected:
            return
        assert time.monotonic() < deadline, response.get_data(as_text=True)
        time.sleep(0.5)
