"""The "Dead Neurons" TensorBoard dashboard.

- :mod:`~keras_deadrelu.tensorboard_plugin.metadata`: the plugin's name, its
  tags and the summary metadata, shared by the writer and the plugin.
- :mod:`~keras_deadrelu.tensorboard_plugin.summaries`: what the monitor
  writes for the dashboard, once per window.
- :mod:`~keras_deadrelu.tensorboard_plugin.reader`: turns what TensorBoard's
  data provider returns into the dashboard's JSON.
- :mod:`~keras_deadrelu.tensorboard_plugin.plugin`: the TensorBoard plugin
  (routes and static files); :mod:`~keras_deadrelu.tensorboard_plugin.loader`
  is its ``tensorboard_plugins`` entry point.
- :mod:`~keras_deadrelu.tensorboard_plugin.wsgi`: TensorBoard with the plugin
  as an in-process WSGI app.
- ``static/``: the frontend, plain ES modules (no build step).

Importing this package imports nothing from TensorBoard's server side.
"""
