"""Real monitored fits whose logs the dashboard tests read.

Two runs of the same small model, built to die (h1's bias starts at -5):
``no_fix`` and ``revive``, where the monitor's revive fix acts on h1. The
model has a SELU site too, so the site detail has a mean and a std to show.
"""

from __future__ import annotations

import keras
import numpy as np

import keras_deadrelu as kd

SITES = ("h1", "h2", "s1")
EPOCHS = 4


def dying_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(
                32,
                activation="relu",
                name="h1",
                bias_initializer=keras.initializers.Constant(-5.0),
            ),
            keras.layers.Dense(16, activation="relu", name="h2"),
            kd.layers.SELUDense(8, name="s1"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def training_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (np.sin(x[:, :1]) + x[:, 1:2] ** 2).astype("float32")
    return x, y


def write_runs(log_dir: str) -> dict[str, kd.DeadNeuronMonitor]:
    """Fits ``no_fix`` and ``revive`` into `log_dir`; returns their monitors."""
    x, y = training_data()
    monitors = {}
    for run, fix in (("no_fix", None), ("revive", "revive")):
        monitor = kd.DeadNeuronMonitor(
            log_dir, fix=fix, run_name=run, verbose=0, threshold=0.5
        )
        dying_model().fit(
            x, y, epochs=EPOCHS, batch_size=64, callbacks=[monitor], verbose=0
        )
        monitors[run] = monitor
    return monitors
