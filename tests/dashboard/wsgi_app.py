"""TensorBoard's own WSGI app over a log directory, in process, for route tests.

Built the way ``tensorboard --logdir`` builds it (flags parsed by TensorBoard,
then the plugin loader's ``fix_flags``, the local data ingester and its data
provider), with the Python data provider and one blocking load.
"""

from __future__ import annotations

from tensorboard import program
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_ingester
from tensorboard.plugins.core import core_plugin
from werkzeug import test as werkzeug_test
from werkzeug import wrappers

from keras_deadrelu.tensorboard_plugin.loader import DeadNeuronsLoader

PLUGIN_ROUTE = "/data/plugin/dead_neurons/"


def tensorboard_client(log_dir: str, *extra_flags: str) -> werkzeug_test.Client:
    """A werkzeug test client for TensorBoard serving `log_dir`."""
    plugins = [core_plugin.CorePluginLoader(), DeadNeuronsLoader()]
    board = program.TensorBoard(plugins=plugins)
    board.configure(
        argv=[
            "tensorboard",
            "--logdir",
            str(log_dir),
            "--load_fast=false",
            "--reload_interval=0",
            "--reload_task=blocking",
            *extra_flags,
        ]
    )
    ingester = data_ingester.LocalDataIngester(board.flags)
    ingester.start()
    app = application.TensorBoardWSGIApp(
        board.flags,
        plugins,
        ingester.data_provider,
        deprecated_multiplexer=ingester.deprecated_multiplexer,
    )
    return werkzeug_test.Client(app, wrappers.Response)
