"""One monitor reused on another model starts afresh: what it learned of the
first model (crossings announced, fixes' memory, steps written) does not
hold for the second."""

import warnings

import keras
import numpy as np
import pytest
from event_files import read_run, scalar_series

import keras_deadrelu as kd

SAMPLES = 32


def _six_of_eight_dead():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(
                8,
                activation="relu",
                name="hidden",
                bias_initializer=keras.initializers.Constant([-100.0] * 6 + [0.0] * 2),
            ),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def _crossings(caught):
    return [w for w in caught if "threshold" in str(w.message)]


def test_a_monitor_reused_on_another_model_announces_and_fixes_afresh(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 6)).astype("float32")
    y = rng.normal(size=(SAMPLES, 1)).astype("float32")
    monitor = kd.DeadNeuronMonitor(str(tmp_path), fix="lower_lr", verbose=1)
    rates, crossings = [], []
    for _ in range(2):
        model = _six_of_eight_dead()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[monitor])
        assert monitor.last_window["hidden"].dead_count == 6
        crossings.append(len(_crossings(caught)))
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    # Each model: its crossing announced once, its rate halved once.
    assert crossings == [1, 1]
    assert rates == pytest.approx([0.05, 0.05])
    assert [event.fix for event in monitor.events] == ["lower_lr"]  # the second's
    # The second model's windows are written at its own steps, 0 and 1, as
    # a new monitor's would be (not at 2 and 3, after the first model's).
    records = read_run(str(tmp_path / "dead_neurons"))
    steps = {step for step, _ in scalar_series(records, "dead_fraction/hidden")}
    assert steps == {0, 1}


def test_a_second_fit_of_the_same_model_goes_on_where_it_stopped(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(SAMPLES, 6)).astype("float32")
    y = rng.normal(size=(SAMPLES, 1)).astype("float32")
    monitor = kd.DeadNeuronMonitor(str(tmp_path), fix="lower_lr", verbose=1)
    model = _six_of_eight_dead()
    caught_per_fit = []
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[monitor])
        caught_per_fit.append(len(_crossings(caught)))
    # Announced once, and the rate halved once: the same model's history holds.
    assert caught_per_fit == [1, 0]
    assert len(monitor.events) == 1
