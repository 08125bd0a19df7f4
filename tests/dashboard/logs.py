"""Real monitored fits whose logs the dashboard tests read.

One small functional model, fitted three ways: ``no_fix``, ``revive`` and
``leaky_relu`` (the monitor's fix). Its first branch, ``h1``, is born dead
(biases at -5); a second branch, ``h2``, is healthy; both feed ``s1``, a SELU
site, so the site detail has a mean and a std to show.
"""

from __future__ import annotations

import keras
import numpy as np

import keras_deadrelu as kd

SITES = ("h1", "h2", "s1")
#: Run name -> the monitor's fix.
RUNS = {"no_fix": None, "revive": "revive", "leaky_relu": "leaky_relu"}
EPOCHS = 8


def dying_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8,))
    born_dead = keras.layers.Dense(
        32,
        activation="relu",
        name="h1",
        bias_initializer=keras.initializers.Constant(-5.0),
    )(inputs)
    healthy = keras.layers.Dense(16, activation="relu", name="h2")(inputs)
    joined = keras.layers.Concatenate()([born_dead, healthy])
    selu = kd.layers.SELUDense(8, name="s1")(joined)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(selu))
    model.compile(keras.optimizers.Adam(0.05), "mse")
    return model


def training_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (np.sin(x[:, :1]) + x[:, 1:2] ** 2).astype("float32")
    return x, y


def write_runs(log_dir: str) -> dict[str, kd.DeadNeuronMonitor]:
    """Fits every run of :data:`RUNS` into `log_dir`; returns their monitors."""
    x, y = training_data()
    monitors = {}
    for run, fix in RUNS.items():
        monitor = kd.DeadNeuronMonitor(
            log_dir, fix=fix, run_name=run, verbose=0, threshold=0.5
        )
        dying_model().fit(
            x, y, epochs=EPOCHS, batch_size=64, callbacks=[monitor], verbose=0
        )
        monitors[run] = monitor
    return monitors
