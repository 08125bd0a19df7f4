"""TensorBoard's own WSGI app with the Dead Neurons plugin, in process.

Built the way ``tensorboard --logdir`` builds it: TensorBoard's flag parser,
the plugin loader's ``fix_flags``, a data ingester and its data provider. For
tests, benchmarks, and for embedding TensorBoard in another WSGI server.

``fast_loading=False`` reads the logs once with TensorBoard's Python data
provider before returning: a snapshot, steady for tests and scripts.
``fast_loading=True`` starts TensorBoard's Rust data server (``tensorboard
--load_fast=true``, a subprocess), which loads in the background and reloads
every 5 s (``--reload_interval`` in `extra_flags`), as ``tensorboard`` does:
poll until the data you expect is there. (A reloading *thread* in this
process is not offered: killed at interpreter exit in the middle of a read,
it aborts the process.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tensorboard import program
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_ingester
from tensorboard.data import server_ingester
from tensorboard.plugins.core import core_plugin

from keras_deadrelu.tensorboard_plugin.loader import DeadNeuronsLoader


def tensorboard_wsgi_app(
    log_dir: str | os.PathLike,
    extra_flags: Sequence[str] = (),
    fast_loading: bool = False,
):
    """TensorBoard (core and Dead Neurons plugins) serving `log_dir`, as WSGI.

    Args:
        log_dir: the log directory, as for ``tensorboard --logdir``.
        extra_flags: more ``tensorboard`` flags, e.g.
            ``["--samples_per_plugin=dead_neurons=100"]``.
        fast_loading: use TensorBoard's Rust data server instead of its
            Python data provider.
    """
    plugins = [core_plugin.CorePluginLoader(), DeadNeuronsLoader()]
    board = program.TensorBoard(plugins=plugins)
    loading = (
        ["--load_fast=true"]
        if fast_loading
        else ["--load_fast=false", "--reload_interval=0", "--reload_task=blocking"]
    )
    board.configure(
        argv=["tensorboard", "--logdir", os.fspath(log_dir), *loading, *extra_flags]
    )
    flags = board.flags
    if fast_loading:
        ingester = server_ingester.SubprocessServerDataIngester(
            server_binary=server_ingester.get_server_binary(),
            logdir=flags.logdir,
            reload_interval=flags.reload_interval,
            channel_creds_type=flags.grpc_creds_type,
            samples_per_plugin=flags.samples_per_plugin,
        )
    else:
        ingester = data_ingester.LocalDataIngester(flags)
    ingester.start()
    return application.TensorBoardWSGIApp(
        flags,
        plugins,
        ingester.data_provider,
        deprecated_multiplexer=getattr(ingester, "deprecated_multiplexer", None),
    )
