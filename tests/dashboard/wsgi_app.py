"""A werkzeug client for TensorBoard's WSGI app, for the route tests."""

from __future__ import annotations

from werkzeug import test as werkzeug_test
from werkzeug import wrappers

from keras_deadrelu.tensorboard_plugin.wsgi import tensorboard_wsgi_app

PLUGIN_ROUTE = "/data/plugin/dead_neurons/"


def tensorboard_client(log_dir, *extra_flags: str) -> werkzeug_test.Client:
    """A test client for TensorBoard serving `log_dir` (Python data provider)."""
    return werkzeug_test.Client(
        tensorboard_wsgi_app(log_dir, extra_flags), wrappers.Response
    )
