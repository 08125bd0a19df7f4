"""TensorBoard's own WSGI app with the Dead Neurons plugin, in process.

Built the way ``tensorboard --logdir`` builds it: TensorBoard's flag parser,
the plugin loader's ``fix_flags``, a data ingester and its data provider. For
tests, benchmarks, and for embedding TensorBoard in another WSGI server.

``fast_loading=False`` reads the logs with TensorBoard's Python data
provider before returning: once, or, with ``reload_interval`` seconds, again
in a background thread at that interval (as ``tensorboard`` does, so runs
written later appear). ``fast_loading=True`` starts TensorBoard's Rust data
server (``tensorboard --load_fast=true``), which loads and reloads in the
background: poll until the data you expect is there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tensorboard import program
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_ingester
from tensorboard.data import server_ingester
from tensorboard.plugins.core import core_plugin

from keras_deadrelu._validation import check_number
from keras_deadrelu.tensorboard_plugin.loader import DeadNeuronsLoader


def tensorboard_wsgi_app(
    log_dir: str | os.PathLike,
    extra_flags: Sequence[str] = (),
    fast_loading: bool = False,
    reload_interval: float = 0,
):
    """TensorBoard (core and Dead Neurons plugins) serving `log_dir`, as WSGI.

    Args:
        log_dir: the log directory, as for ``tensorboard --logdir``.
        extra_flags: more ``tensorboard`` flags, e.g.
            ``["--samples_per_plugin=dead_neurons=100"]``.
        fast_loading: use TensorBoard's Rust data server instead of its
            Python data provider.
        reload_interval: seconds between reloads of `log_dir` (0: read it
            once, before returning; ``tensorboard``'s default is 5).
    """
    check_number("reload_interval", reload_interval, minimum=0)
    plugins = [core_plugin.CorePluginLoader(), DeadNeuronsLoader()]
    board = program.TensorBoard(plugins=plugins)
    reload = f"--reload_interval={reload_interval:g}"
    if fast_loading:
        loading = ["--load_fast=true", reload]
    elif reload_interval == 0:
        loading = ["--load_fast=false", reload, "--reload_task=blocking"]
    else:
        loading = ["--load_fast=false", reload, "--reload_task=thread"]
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
