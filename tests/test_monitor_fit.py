"""The monitor in a real ``fit``: logs, event files on disk, saving, windows."""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from event_files import read_run, scalar_series
from helpers import fit_collecting_warnings
from tensorboard.plugins.custom_scalar import layout_pb2

import keras_deadrelu as kd

rng = np.random.default_rng(11)
X = rng.normal(size=(128, 5)).astype("float32")
Y = rng.normal(size=(128, 1)).astype("float32")


def small_model(dead_bias=-5.0):
    """Two sites: 'alive' (healthy) and 'dying' (zero kernel, bias far below 0)."""
    inputs = keras.Input((5,))
    alive = keras.layers.Dense(8, activation="relu", name="alive")(inputs)
    dying = keras.layers.Dense(
        4,
        activation="relu",
        name="dying",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(dead_bias),
    )(inputs)
    merged = keras.layers.Concatenate()([alive, dying])
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(merged))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


def test_history_logs_per_site_and_model_wide(tmp_path):
    model = small_model()
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0)
    history = model.fit(X, Y, epochs=3, batch_size=32, verbose=0, callbacks=[monitor])
    dead_alive = np.asarray(history.history["dead_fraction/alive"])
    assert history.history["dead_fraction/dying"] == [1.0, 1.0, 1.0]
    expected_model_wide = (dead_alive * 8 + 4) / 12
    np.testing.assert_allclose(history.history["dead_fraction"], expected_model_wide)


def test_event_files_hold_tags_steps_values_layout_histograms_image(tmp_path):
    model = small_model()
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0)
    history = model.fit(X, Y, epochs=3, batch_size=32, verbose=0, callbacks=[monitor])

    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    for tag in ("dead_fraction/alive", "dead_fraction/dying", "dead_fraction"):
        series = scalar_series(records, tag)
        assert [step for step, _ in series] == [0, 1, 2]
        np.testing.assert_allclose(
            [value for _, value in series], history.history[tag], rtol=1e-6
        )
    assert scalar_series(records, "nan_units/dying") == [(0, 0), (1, 0), (2, 0)]
    assert [v for _, v in scalar_series(records, "dormant_fraction/dying")] == [1.0] * 3

    # Histograms: 20 buckets of (left, right, count); counts add up to the units.
    step, histogram, plugin = records["firing_rate/alive"][0]
    assert plugin == "histograms" and histogram.shape == (20, 3)
    assert histogram[:, 2].sum() == pytest.approx(8)
    _, dying_histogram, _ = records["firing_rate/dying"][-1]
    assert dying_histogram[:, 2].sum() == pytest.approx(4)
    assert dying_histogram[0, 2] == pytest.approx(4)  # every unit fires at rate 0
    np.testing.assert_allclose(dying_histogram[:, 0], np.arange(20) / 20)
    # The 'alive' buckets agree with the window's own firing rates.
    counts, _ = np.histogram(monitor.last_window["alive"].firing_rate, 20, (0, 1))
    np.testing.assert_array_equal(records["firing_rate/alive"][-1][1][:, 2], counts)

    # Image: one per window; width, height header then a PNG.
    images = records["firing_rate_map"]
    assert [step for step, _, _ in images] == [0, 1, 2]
    width, height, png = images[0][1]
    assert int(height) == 2 * 12 and int(width) == 20 * 12
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    # The monitor's settings, as JSON text, for readers like `report`.
    ((_, config_text, _),) = records["monitor_config"]
    config = json.loads(config_text.item())
    assert config["threshold"] == 0.5 and config["sites"] == ["alive", "dying"]
    # Custom Scalars layout with one chart holding every site's dead fraction.
    ((_, layout_bytes, plugin),) = records["custom_scalars__config__"]
    assert plugin == "custom_scalars"
    layout = layout_pb2.Layout.FromString(layout_bytes.item())
    charts = {chart.title: chart for chart in layout.category[0].chart}
    assert list(charts["Dead fraction per site"].multiline.tag) == [
        r"^dead_fraction/.*"
    ]


def test_second_fit_continues_step_numbering(tmp_path):
    model = small_model()
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0)
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    steps = [step for step, _ in scalar_series(records, "dead_fraction")]
    assert steps == [0, 1, 2, 3]


def test_step_windows_end_with_the_steps_left_over(tmp_path):
    model = small_model()
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0, freq=3)
    model.fit(X, Y, epochs=2, batch_size=32, verbose=0, callbacks=[monitor])
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    steps = [step for step, _ in scalar_series(records, "dead_fraction/dying")]
    # 8 steps: windows end at 3 and 6, and the last 2 steps make a last one.
    assert steps == [3, 6, 8]


def test_step_windows_use_global_steps(tmp_path):
    model = small_model()
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0, freq=2)
    history = model.fit(X, Y, epochs=2, batch_size=32, verbose=0, callbacks=[monitor])
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    steps = [step for step, _ in scalar_series(records, "dead_fraction/dying")]
    assert steps == [2, 4, 6, 8]  # 4 steps per epoch, a window every 2
    assert history.history["dead_fraction/dying"] == [1.0, 1.0]


def test_coexists_with_keras_tensorboard_on_the_same_log_dir(tmp_path):
    model = small_model()
    callbacks = [
        kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0),
        keras.callbacks.TensorBoard(log_dir=str(tmp_path)),
    ]
    model.fit(X, Y, epochs=2, verbose=0, validation_data=(X, Y), callbacks=callbacks)
    assert sorted(os.listdir(tmp_path)) == ["dead_neurons", "train", "validation"]
    ours = read_run(os.path.join(tmp_path, "dead_neurons"))
    theirs = read_run(os.path.join(tmp_path, "train"))
    assert "dead_fraction/dying" in ours and "epoch_loss" in theirs
    assert not any(tag.startswith("dead_fraction") for tag in theirs)


@pytest.mark.parametrize("freq", ["epoch", 2])
def test_every_window_is_written_beside_tensorboard_with_update_freq(tmp_path, freq):
    # TensorBoard(update_freq=3) keeps a `tf.summary.record_if` in force for
    # the whole fit; the monitor's own writes must not obey it.
    model = small_model()
    callbacks = [
        keras.callbacks.TensorBoard(log_dir=str(tmp_path), update_freq=3),
        kd.DeadNeuronMonitor(log_dir=str(tmp_path), freq=freq, verbose=0),
    ]
    model.fit(X, Y, epochs=3, batch_size=32, verbose=0, callbacks=callbacks)
    ours = read_run(os.path.join(tmp_path, "dead_neurons"))
    steps = [step for step, _ in scalar_series(ours, "dead_fraction/dying")]
    # 4 steps per epoch: a window per epoch (at its index), or every 2 steps.
    assert steps == ([0, 1, 2] if freq == "epoch" else [2, 4, 6, 8, 10, 12])
    assert "custom_scalars__config__" in ours and "monitor_config" in ours
    assert [step for step, _, _ in ours["firing_rate_map"]] == steps


def test_works_with_early_stopping_and_csv_logger(tmp_path):
    model = small_model()
    csv_path = tmp_path / "log.csv"
    callbacks = [
        kd.DeadNeuronMonitor(log_dir=None, verbose=0),
        keras.callbacks.EarlyStopping(monitor="dead_fraction", mode="min", patience=1),
        keras.callbacks.CSVLogger(str(csv_path)),
    ]
    history = model.fit(X, Y, epochs=10, verbose=0, callbacks=callbacks)
    # The dying site never changes, so the model-wide figure stops improving.
    assert len(history.history["loss"]) < 10
    header = csv_path.read_text().splitlines()[0].split(",")
    assert "dead_fraction" in header and "dead_fraction/dying" in header


def test_progress_bar_shows_dead_fraction(capsys):
    model = small_model()
    model.fit(
        X,
        Y,
        epochs=1,
        verbose=2,
        callbacks=[kd.DeadNeuronMonitor(log_dir=None, verbose=0)],
    )
    assert "dead_fraction: " in capsys.readouterr().out


def test_warns_once_per_crossing(tmp_path):
    model = small_model()
    monitor = kd.DeadNeuronMonitor(log_dir=None, threshold=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, Y, epochs=3, verbose=0, callbacks=[monitor])
    messages = [str(w.message) for w in caught if w.category is kd.DeadNeuronWarning]
    (message,) = messages
    assert message.startswith(
        "dying: 100% of units dead (4/4) at epoch 1, at or above the threshold of 50%."
    )
    # With a zero kernel and bias -5, the diagnosis can only be the bias.
    assert "Dead units' mean bias -5 against a pre-activation spread of 0 " in message
    assert "bias driven far below zero" in message


def test_verbose_zero_is_silent(capsys):
    model = small_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            X,
            Y,
            epochs=1,
            verbose=0,
            callbacks=[kd.DeadNeuronMonitor(log_dir=None, verbose=0)],
        )
    assert not [w for w in caught if w.category is kd.DeadNeuronWarning]
    assert capsys.readouterr().out == ""


def test_model_without_sites_warns_once_and_trains():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="tanh")(inputs))
    model.compile("sgd", "mse")
    with pytest.warns(kd.DeadNeuronWarning, match="no ReLU-family site"):
        history = model.fit(
            X, Y, epochs=2, verbose=0, callbacks=[kd.DeadNeuronMonitor(log_dir=None)]
        )
    assert len(history.history["loss"]) == 2
    assert "dead_fraction" not in history.history


def test_layers_selects_sites_and_unknown_names_are_listed():
    model = small_model()
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0, layers=["dying"])
    history = model.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    assert [key for key in history.history if key.startswith("dead")] == [
        "dead_fraction/dying",
        "dead_fraction",
    ]
    weights_before = [w.copy() for w in model.get_weights()]
    bad = kd.DeadNeuronMonitor(log_dir=None, verbose=0, layers=["nope"])
    with pytest.raises(ValueError, match=r"\['nope'\].*'alive', 'dying'"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[bad])
    for before, after in zip(weights_before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_model_leaves_no_trace_and_mid_fit_checkpoint_loads_without_monitor(
    tmp_path, jit_compile
):
    model = small_model()
    model.compile(keras.optimizers.SGD(0.01), "mse", jit_compile=jit_compile)
    weight_count = len(model.weights)
    checkpoint = tmp_path / "mid_fit.keras"
    callbacks = [
        kd.DeadNeuronMonitor(log_dir=str(tmp_path / "logs"), verbose=0),
        keras.callbacks.ModelCheckpoint(str(checkpoint)),
    ]
    model.fit(X, Y, epochs=2, verbose=0, callbacks=callbacks)
    # Nothing of the monitor stays on the model or its layers.
    assert len(model.weights) == weight_count
    assert "train_step" not in model.__dict__
    assert all("call" not in layer.__dict__ for layer in model.layers)
    expected = model.predict(X, verbose=0)

    script = (
        "import json, sys, numpy as np, keras\n"
        "model = keras.models.load_model(sys.argv[1])\n"
        "x = np.load(sys.argv[2])\n"
        "print(json.dumps({'weights': len(model.weights),\n"
        "    'prediction': model.predict(x, verbose=0).tolist()}))\n"
    )
    np.save(tmp_path / "x.npy", X)
    result = subprocess.run(
        [sys.executable, "-c", script, str(checkpoint), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["weights"] == weight_count
    np.testing.assert_allclose(loaded["prediction"], expected, rtol=1e-6, atol=1e-6)


def test_validation_and_predict_are_not_counted():
    model = small_model(dead_bias=-5.0)
    x_val = np.full((16, 5), 100.0, "float32")  # would fire every 'alive' unit
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    model.compile(keras.optimizers.SGD(0.0), "mse")
    model.fit(
        X, Y, epochs=1, verbose=0, validation_data=(x_val, Y[:16]), callbacks=[monitor]
    )
    kernel, bias = model.get_layer("alive").get_weights()
    expected = ~((X @ kernel + bias) > 0).any(axis=0)
    np.testing.assert_array_equal(monitor.last_window["alive"].dead, expected)


def test_selu_sites_log_activation_mean_and_std(tmp_path):
    inputs = keras.Input((5,))
    hidden = kd.layers.SELUDense(16, name="selu_dense")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0)
    model.fit(X, Y, epochs=1, batch_size=32, verbose=0, callbacks=[monitor])

    outputs = np.asarray(model.get_layer("selu_dense")(X), dtype=np.float64)
    site = monitor.last_window["selu_dense"]
    assert site.activation_mean == pytest.approx(outputs.mean(), abs=1e-5)
    assert site.activation_std == pytest.approx(outputs.std(), rel=1e-4)
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    ((_, mean),) = scalar_series(records, "selu_mean/selu_dense")
    ((_, std),) = scalar_series(records, "selu_std/selu_dense")
    assert mean == pytest.approx(outputs.mean(), abs=1e-5)
    assert std == pytest.approx(outputs.std(), rel=1e-4)
    assert "selu_mean/alive" not in records


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_streaming_under_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    model = small_model()
    model.compile(keras.optimizers.SGD(0.0), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    history = model.fit(X, Y, epochs=1, batch_size=32, verbose=0, callbacks=[monitor])
    pre_activation = np.asarray(
        model.get_layer("alive")(X), dtype=np.float32
    )  # computed in the policy's precision, like training
    expected = ~(pre_activation > 0).any(axis=0)
    np.testing.assert_array_equal(monitor.last_window["alive"].dead, expected)
    assert history.history["dead_fraction/dying"] == [1.0]
    assert monitor.last_window["alive"].element_count == len(X)


def test_dead_fractions_during_a_monitored_fit_measures_and_breaks_nothing():
    """A callback that probes with kd.dead_fractions beside the monitor."""
    model = small_model()
    model.compile(keras.optimizers.SGD(0.0), "mse")
    probes = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            probes.append(kd.dead_fractions(self.model, X))

    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    history = model.fit(X, Y, epochs=3, verbose=0, callbacks=[monitor, Probe()])
    kernel, bias = model.get_layer("alive").get_weights()
    expected = float((~((X @ kernel + bias) > 0).any(axis=0)).mean())
    assert probes == [{"alive": pytest.approx(expected), "dying": 1.0}] * 3
    # The streaming counts were not disturbed by the probes: one epoch each.
    assert history.history["dead_fraction/alive"] == [pytest.approx(expected)] * 3
    assert monitor.last_window["alive"].element_count == len(X)
    assert "train_step" not in model.__dict__


def test_tf_data_with_steps_per_epoch_counts_exactly_the_steps_run():
    import tensorflow as tf

    model = small_model()
    model.compile(keras.optimizers.SGD(0.0), "mse")
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(16).repeat()
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    model.fit(dataset, steps_per_epoch=3, epochs=2, verbose=0, callbacks=[monitor])
    # Each epoch window saw 3 batches of 16 samples.
    assert monitor.last_window["alive"].element_count == 48
    assert monitor.last_window["dying"].dead_fraction == 1.0


def test_activations_applied_inside_call_are_not_sites_and_are_said_so():
    class Functional(keras.Model):
        def __init__(self):
            super().__init__()
            self.linear = keras.layers.Dense(4)
            self.head = keras.layers.Dense(1)

        def call(self, inputs):
            return self.head(keras.activations.relu(self.linear(inputs)))

    model = Functional()
    model.compile("sgd", "mse")
    with pytest.warns(kd.DeadNeuronWarning, match="no ReLU-family site"):
        history = model.fit(
            X, Y, epochs=1, verbose=0, callbacks=[kd.DeadNeuronMonitor(log_dir=None)]
        )
    assert "dead_fraction" not in history.history


class SubclassedModel(keras.Model):
    """Its layers are attributes; Keras builds it inside the first step."""

    def __init__(self):
        super().__init__()
        self.dying = keras.layers.Dense(
            4,
            activation="relu",
            name="dying",
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(-5.0),
        )
        self.alive = keras.layers.Dense(6, activation="relu", name="alive")
        self.head = keras.layers.Dense(1)

    def call(self, inputs):
        return self.head(
            keras.layers.concatenate([self.dying(inputs), self.alive(inputs)])
        )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_an_unbuilt_subclassed_model_is_measured_from_its_first_step(jit_compile):
    model = SubclassedModel()  # not built: Keras builds it in a scratch graph
    model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=jit_compile)
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    history = model.fit(X, Y, epochs=1, batch_size=32, verbose=0, callbacks=[monitor])
    # Reference: the alive layer's outputs on the same data (weights fixed).
    kernel, bias = model.alive.get_weights()
    expected = (np.maximum(X @ kernel + bias, 0) > 0).any(axis=0)
    alive = monitor.last_window["alive"]
    np.testing.assert_array_equal(~alive.dead, expected)
    assert alive.element_count == len(X)  # every sample of the epoch counted
    assert history.history["dead_fraction/dying"] == [1.0]
    assert kd.dead_fractions(SubclassedModel(), X)["dying"] == 1.0


def test_step_windows_follow_the_optimizer_under_steps_per_execution(tmp_path):
    model = small_model()
    model.compile(keras.optimizers.SGD(0.01), "mse", steps_per_execution=3)
    iterations = []

    class Iterations(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            iterations.append(int(self.model.optimizer.iterations.numpy()))

    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0, freq=3)
    # 128 samples, batch 16: 8 steps per epoch, run 3 + 3 + 2.
    model.fit(
        X, Y, epochs=2, batch_size=16, verbose=0, callbacks=[monitor, Iterations()]
    )
    assert iterations == [3, 6, 8, 11, 14, 16]
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    steps = [step for step, _ in scalar_series(records, "dead_fraction/dying")]
    # A window closes at the first execution end after 3 steps; the 2 left
    # over at an epoch's end carry on; the last steps make a last window.
    assert steps == [3, 6, 11, 14, 16]
    assert set(steps) <= set(iterations)


def test_freq_above_the_steps_of_an_epoch_warns_and_closes_at_epoch_ends(tmp_path):
    model = small_model()
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0, freq=25)
    with pytest.warns(kd.DeadNeuronWarning, match="freq=25 is more than the 4"):
        model.fit(X, Y, epochs=2, batch_size=32, verbose=0, callbacks=[monitor])
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    assert [step for step, _ in scalar_series(records, "dead_fraction")] == [4, 8]


def test_step_windows_count_batches_when_the_optimizer_counts_otherwise(tmp_path):
    # With gradient accumulation the optimizer's count moves once per 4
    # batches; windows still close every `freq` training steps.
    model = small_model()
    model.compile(keras.optimizers.SGD(0.01, gradient_accumulation_steps=4), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0, freq=3)
    model.fit(X, Y, epochs=2, batch_size=16, verbose=0, callbacks=[monitor])
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    steps = [step for step, _ in scalar_series(records, "dead_fraction/dying")]
    assert steps == [3, 6, 9, 12, 15, 16]


class BranchedDense(keras.layers.Layer):
    """Calls its Dense inside `keras.ops.cond`, out of the counters' reach."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(5, activation="relu", name="inner")

    def call(self, inputs):
        return keras.ops.cond(
            keras.ops.sum(inputs) > -1e9, lambda: self.inner(inputs), lambda: inputs
        )


def test_a_site_inside_a_branch_is_named_once_and_left_out():
    inputs = keras.Input((5,))
    branched = BranchedDense(name="branched")(inputs)
    hidden = keras.layers.Dense(4, activation="relu", name="hidden")(branched)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    silent = [
        str(w.message) for w in caught if "no output of these sites" in str(w.message)
    ]
    assert len(silent) == 1 and "branched/inner" in silent[0]
    assert [site.name for site in monitor.sites] == ["branched/inner", "hidden"]
    assert "dead_fraction/branched/inner" not in history.history
    assert len(history.history["dead_fraction/hidden"]) == 2


def _windows_under_steps_per_execution(tmp_path, dataset, per_execution, freq, **fit):
    """Fits with `steps_per_execution` and step windows; returns the
    optimizer's final count and the windows' steps read from disk."""
    model = small_model()
    model.compile(keras.optimizers.SGD(0.01), "mse", steps_per_execution=per_execution)
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0, freq=freq)
    model.fit(dataset, verbose=0, callbacks=[monitor], **fit)
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    steps = [step for step, _ in scalar_series(records, "dead_fraction/dying")]
    return int(model.optimizer.iterations.numpy()), steps


def test_step_windows_on_data_of_unknown_length_under_steps_per_execution(tmp_path):
    # A filtered dataset has no known length: Keras reports the nominal end
    # of the last, partial execution (batch 11 of 10 steps).
    dataset = (
        tf.data.Dataset.from_tensor_slices((X[:100], Y[:100]))
        .filter(lambda x, y: True)
        .batch(10)
    )
    iterations, steps = _windows_under_steps_per_execution(
        tmp_path, dataset, per_execution=4, freq=4, epochs=2
    )
    assert iterations == 20
    # Windows at 4 and 8; the 2 steps left at the epoch's end carry on.
    assert steps == [4, 8, 14, 18, 20]


@pytest.mark.parametrize(
    "batch, per_execution, freq, steps_per_epoch, expected",
    [
        # steps_per_epoch=5, steps_per_execution=2: Keras runs whole
        # executions, 6 steps an epoch, and reports the last batch as 5.
        # Windows close at the first execution end after 3 steps, labelled
        # with the optimizer's count (not 7, 10, 15 as the batches say).
        (10, 2, 3, 5, [4, 8, 12, 16, 18]),
        # 12 steps an epoch for 10: the last execution's 2 steps past the
        # epoch's end fill the epoch's third window of 4.
        (4, 4, 4, 10, list(range(4, 37, 4))),
    ],
)
def test_step_windows_follow_executions_run_past_steps_per_epoch(
    tmp_path, batch, per_execution, freq, steps_per_epoch, expected
):
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(batch).repeat()
    iterations, steps = _windows_under_steps_per_execution(
        tmp_path,
        dataset,
        per_execution=per_execution,
        freq=freq,
        epochs=3,
        steps_per_epoch=steps_per_epoch,
    )
    assert iterations == expected[-1]
    assert steps == expected


class _GraphConv(keras.layers.Layer):
    """A custom site called on a list, [features, adjacency] (GCN-style)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.relu

    def build(self, shapes):
        self.kernel = self.add_weight(shape=(shapes[0][-1], self.units))
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        features, adjacency = inputs
        mixed = keras.ops.matmul(adjacency, keras.ops.matmul(features, self.kernel))
        return self.activation(mixed + self.bias)


class _WithAuxiliary(keras.layers.Layer):
    """A custom site that returns a tuple (its ReLU output, an auxiliary)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.relu
        self.inner = keras.layers.Dense(units)

    def call(self, inputs):
        pre = self.inner(inputs)
        return self.activation(pre), keras.ops.mean(pre, axis=-1, keepdims=True)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_sites_fed_a_sparse_tensor_or_a_list_are_counted(jit_compile):
    """The input of a site's layer feeds only the diagnosis; a sparse one, or
    a list, is skipped there instead of breaking the step."""
    sparse_inputs = keras.Input((6,), sparse=True)
    sparse_model = keras.Model(
        sparse_inputs,
        keras.layers.Dense(1)(
            keras.layers.Dense(4, activation="relu", name="h")(sparse_inputs)
        ),
    )
    features, adjacency = keras.Input((5, 3)), keras.Input((5, 5))
    hidden = _GraphConv(4, name="gc")([features, adjacency])
    graph_model = keras.Model(
        [features, adjacency],
        keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(hidden)),
    )
    dense_x = (rng.random((32, 6)) > 0.7).astype("float32")
    sparse_x = tf.data.Dataset.from_tensor_slices(
        (tf.sparse.from_dense(dense_x), np.zeros((32, 1), "float32"))
    ).batch(8)
    graph_x = [
        rng.normal(size=(32, 5, 3)).astype("float32"),
        (rng.random((32, 5, 5)) > 0.5).astype("float32"),
    ]
    for model, data, name in (
        # XLA has no kernels for sparse ops (a plain fit fails there too).
        *([] if jit_compile else [(sparse_model, (sparse_x,), "h")]),
        (graph_model, (graph_x, np.zeros((32, 1))), "gc"),
    ):
        model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=jit_compile)
        monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
        history = model.fit(*data, epochs=1, verbose=0, callbacks=[monitor])
        assert monitor.last_window[name].element_count == 32 * (
            5 if name == "gc" else 1
        )
        assert f"dead_fraction/{name}" in history.history
    kernel, bias = sparse_model.get_layer("h").get_weights()
    expected = np.mean((dense_x @ kernel + bias > 0).sum(axis=0) == 0)
    assert kd.dead_fractions(sparse_model, sparse_x) == {"h": pytest.approx(expected)}


def test_a_site_that_returns_a_tuple_is_left_out_with_one_warning():
    inputs = keras.Input((5,))
    hidden, auxiliary = _WithAuxiliary(4, name="block")(inputs)
    hidden = keras.layers.Dense(3, activation="relu", name="after")(hidden)
    model = keras.Model(
        inputs, keras.layers.Dense(1)(keras.layers.Concatenate()([hidden, auxiliary]))
    )
    model.compile(keras.optimizers.SGD(0.0), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    history, messages = fit_collecting_warnings(model, X, np.zeros((128, 1)), monitor)
    assert [m for m in messages if "left out" in m] == [
        "Site 'block' is left out: its layer returns tuple, not one dense tensor "
        "of units."
    ]
    assert not any("no output of these sites" in m for m in messages)
    assert "dead_fraction/after" in history.history
    assert "dead_fraction/block" not in history.history
