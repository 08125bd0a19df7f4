"""The ``tensorboard_plugins`` entry point: loads the Dead Neurons plugin.

TensorBoard keeps only 10 values per tag for plugins it does not know, which
would leave a 50-epoch run with 10 columns. The loader raises that to
:data:`.metadata.DEFAULT_SAMPLES` unless the user chose a number with
``--samples_per_plugin=dead_neurons=N``.
"""

from __future__ import annotations

from tensorboard.plugins import base_plugin

from keras_deadrelu.tensorboard_plugin import metadata


class DeadNeuronsLoader(base_plugin.TBLoader):
    """Loads :class:`~.plugin.DeadNeuronsPlugin` and sets its sample count."""

    def fix_flags(self, flags) -> None:
        samples = getattr(flags, "samples_per_plugin", None)
        if isinstance(samples, dict):
            samples.setdefault(metadata.PLUGIN_NAME, metadata.DEFAULT_SAMPLES)

    def load(self, context: base_plugin.TBContext):
        from keras_deadrelu.tensorboard_plugin.plugin import DeadNeuronsPlugin

        return DeadNeuronsPlugin(context)
