"""The monitor and its fixes under ``tf.distribute.MirroredStrategy``.

The host CPU is split into two logical devices, which must happen before
TensorFlow initialises its devices: so the scenarios run in a fresh Python
process (this very file, run as a script). It builds the models under
``strategy.scope()``, fits them with the monitor, and saves what the monitor
reported, the weights it used and per-replica copies of variables to an
``.npz`` file. The tests here then check those numbers against an
independent NumPy forward pass and a single-device run. A scenario that
raised has its traceback saved instead, and only its own test fails.

Weights stay fixed while counting (learning rate 0), so the NumPy reference
over the whole training set is exactly what one epoch of streaming counters
must equal, whichever replica saw which sample.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback

import numpy as np
import pytest

SCENARIO_TIMEOUT_S = 180
SAMPLES = 61  # batches of 16, 16, 16 and 13: the last one splits unevenly
BATCH_SIZE = 16
CONV_INPUT = (8, 8, 2)
ONE_SAMPLE_CHANNEL = 2


# ---------------------------------------------------------------- the script
# Everything from here to `run_scenarios` runs in the subprocess only.


def _engineered_weights(layer, rng, dead_channel, shifted_channel, shift):
    """Random weights; `dead_channel` zeroed with bias -1 (dead for sure);
    `shifted_channel` gets bias `shift` so that only some inputs fire it."""
    kernel, bias = (w.copy() for w in layer.get_weights())
    kernel[:] = rng.normal(size=kernel.shape)
    bias[:] = rng.normal(scale=0.1, size=bias.shape)
    kernel[..., dead_channel] = 0.0
    bias[dead_channel] = -1.0
    bias[shifted_channel] = shift
    layer.set_weights([kernel, bias])


def _conv_dense_model(keras):
    inputs = keras.Input(CONV_INPUT)
    hidden = keras.layers.Conv2D(5, 3, activation="relu", name="conv")(inputs)
    hidden = keras.layers.Flatten()(hidden)
    hidden = keras.layers.Dense(9, name="pre_relu")(hidden)
    hidden = keras.layers.ReLU(name="relu_layer")(hidden)
    outputs = keras.layers.Dense(1, name="head")(hidden)
    return keras.Model(inputs, outputs)


def _site_results(prefix, window, results):
    for site in window.sites:
        results[f"{prefix}/{site.name}/firing_rate"] = site.firing_rate
        results[f"{prefix}/{site.name}/dead"] = site.dead
        results[f"{prefix}/{site.name}/dead_fraction"] = site.dead_fraction


def _per_replica_counters(kd_measurement, recorder_log):
    """Wraps `SiteMeasurement.close_window` to keep, before each window is
    read, every replica's own share of the counters."""
    original = kd_measurement.SiteMeasurement.close_window

    def close_window(self):
        recorder = self.recorder
        buffer = recorder._buffer
        shares = []
        if buffer is not None and hasattr(buffer, "values"):
            try:
                for component in buffer.values:
                    recorder._buffer = component
                    shares.append(recorder.read())
            finally:
                recorder._buffer = buffer
        elif buffer is not None:  # one device: its counters as they are
            shares.append(recorder.read())
        recorder_log.append((type(buffer).__name__, shares))
        return original(self)

    kd_measurement.SiteMeasurement.close_window = close_window


def _streaming(tf, keras, kd, strategy, rng, results, freq, recorder_log):
    x = rng.normal(size=(SAMPLES, *CONV_INPUT)).astype("float32")
    y = np.zeros((SAMPLES, 1), "float32")
    with strategy.scope():
        model = _conv_dense_model(keras)
        _engineered_weights(model.get_layer("conv"), rng, 0, 1, -8.0)
        _engineered_weights(model.get_layer("pre_relu"), rng, 4, 5, -20.0)
        # Conv channel 2 fires for the first sample only, at one position:
        # on one replica only, whichever gets that sample.
        conv = model.get_layer("conv")
        kernel, bias = conv.get_weights()
        bias[ONE_SAMPLE_CHANNEL] = -1000.0
        conv.set_weights([kernel, bias])
        pattern = kernel[..., ONE_SAMPLE_CHANNEL]
        x[0, :3, :3, :] = pattern * (2000.0 / np.sum(pattern**2))
        model.compile(keras.optimizers.SGD(learning_rate=0.0), "mse")
    weights = model.get_weights()
    # With step windows, the last window is the last two batches in order.
    fit_arguments = dict(batch_size=BATCH_SIZE, epochs=1, verbose=0, shuffle=False)
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0, freq=freq)
    recorder_log.clear()
    history = model.fit(x, y, callbacks=[monitor], **fit_arguments)
    prefix = "streaming" if freq == "epoch" else "streaming_steps"
    results[f"{prefix}/x"] = x if freq == "epoch" else x[2 * BATCH_SIZE :]
    for layer in ("conv", "pre_relu"):
        kernel, bias = model.get_layer(layer).get_weights()
        results[f"{prefix}/{layer}/kernel"] = kernel
        results[f"{prefix}/{layer}/bias"] = bias
    results[f"{prefix}/history_dead_fraction"] = history.history["dead_fraction"][0]
    _site_results(prefix, monitor.last_window, results)
    buffer_type, shares = recorder_log[-1]
    results[f"{prefix}/buffer_type"] = buffer_type
    for name in ("conv", "relu_layer"):
        results[f"{prefix}/{name}/replica_positive_counts"] = np.stack(
            [share[name].positive_count for share in shares]
        )
        results[f"{prefix}/{name}/replica_element_counts"] = np.array(
            [share[name].element_count for share in shares]
        )
        results[f"{prefix}/{name}/replica_counted_values"] = np.array(
            [share[name].counted_values for share in shares]
        )
    # Whether conv's positive counts were sampled (a CPU without XLA).
    results[f"{prefix}/sampled"] = shares[0]["conv"].positive_sample is not None
    results[f"{prefix}/expect_sampled"] = not (
        model.jit_compile or tf.config.list_logical_devices("GPU")
    )

    # The same model and weights on one device, no strategy.
    single = _conv_dense_model(keras)
    single.set_weights(weights)
    single.compile(keras.optimizers.SGD(learning_rate=0.0), "mse")
    single_monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0, freq=freq)
    single.fit(x, y, callbacks=[single_monitor], **fit_arguments)
    _site_results(f"{prefix}/single", single_monitor.last_window, results)
    # Without a strategy, the conv's ReLU gradient counts every value where
    # the compiled ops are in use (keras_deadrelu.backward_counting).
    (single_share,) = recorder_log[-1][1]
    results[f"{prefix}/single/sampled"] = (
        single_share["conv"].positive_sample is not None
    )
    results[f"{prefix}/single/expect_sampled"] = bool(
        results[f"{prefix}/expect_sampled"]
    ) and (kd.native_unit_sums.relu_grad_unit_sums_op() is None)


def _hidden_model(keras, rng, dead_units, kernel_scale=0.3):
    """Dense(12, relu) 'hidden' with `dead_units` given bias -10, then 'head'."""
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(12, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[:] = kernel_scale * rng.normal(size=kernel.shape)
    bias[:] = rng.normal(scale=0.5, size=bias.shape)
    bias[dead_units] = -10.0
    model.get_layer("hidden").set_weights([kernel, bias])
    return model


def _probe(tf, keras, kd, strategy, rng, results):
    x_train = rng.normal(size=(SAMPLES, 6)).astype("float32")
    x_probe = rng.normal(size=(47, 6)).astype("float32")
    y = np.zeros((SAMPLES, 1), "float32")
    with strategy.scope():
        model = _hidden_model(keras, rng, [0, 1, 2])
        model.compile(keras.optimizers.SGD(learning_rate=0.0), "mse")
    kernel, bias = model.get_layer("hidden").get_weights()
    results["probe/x"] = x_probe
    results["probe/kernel"] = kernel
    results["probe/bias"] = bias
    for where in ("outside_scope", "inside_scope"):
        monitor = kd.DeadNeuronMonitor(
            log_dir=None, verbose=0, probe_data=x_probe, probe_batch_size=10
        )
        if where == "inside_scope":  # the probe then traces in cross-replica context
            with strategy.scope():
                model.fit(
                    x_train, y, batch_size=BATCH_SIZE, verbose=0, callbacks=[monitor]
                )
        else:
            model.fit(x_train, y, batch_size=BATCH_SIZE, verbose=0, callbacks=[monitor])
        _site_results(f"probe/{where}", monitor.last_window, results)
    results["probe/dead_fractions"] = kd.dead_fractions(model, x_probe)["hidden"]
    with strategy.scope():
        results["probe/dead_fractions_in_scope"] = kd.dead_fractions(model, x_probe)[
            "hidden"
        ]


def _local_copies(strategy, variable):
    return np.stack(
        [np.asarray(v) for v in strategy.experimental_local_results(variable.value)]
    )


def _revive(tf, keras, kd, strategy, rng, results):
    x = rng.normal(size=(SAMPLES, 6)).astype("float32")
    y = rng.normal(size=(SAMPLES, 1)).astype("float32")
    with strategy.scope():
        model = _hidden_model(keras, rng, [0, 1, 2, 3, 4, 5, 6])
        # Adam with learning rate 0: weights stay, moments fill up, and the
        # revival must reset the moments of the revived entries.
        model.compile(keras.optimizers.Adam(learning_rate=0.0), "mse")
    hidden, head = model.get_layer("hidden"), model.get_layer("head")
    results["revive/kernel_before"] = hidden.kernel.numpy()
    results["revive/head_kernel_before"] = head.kernel.numpy()
    results["revive/predictions_before"] = model.predict(x, verbose=0)
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0, threshold=0.5, fix="revive")
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0, callbacks=[monitor])
    results["revive/events"] = np.array([event.fix for event in monitor.events])
    results["revive/revived"] = np.array([event.before for event in monitor.events])
    results["revive/predictions_after"] = model.predict(x, verbose=0)
    results["revive/kernel_copies"] = _local_copies(strategy, hidden.kernel)
    results["revive/bias_copies"] = _local_copies(strategy, hidden.bias)
    results["revive/head_kernel_copies"] = _local_copies(strategy, head.kernel)
    slots = [
        slot
        for slot in model.optimizer.variables
        if "hidden_kernel" in slot.name and tuple(slot.shape) == (6, 12)
    ]
    results["revive/slot_copies"] = np.stack(
        [_local_copies(strategy, slot) for slot in slots]
    )
    # Training goes on with the revived units, the replicas still in step.
    model.optimizer.learning_rate.assign(0.01)
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)
    results["revive/kernel_copies_trained"] = _local_copies(strategy, hidden.kernel)


def _leaky_relu(tf, keras, kd, strategy, rng, results):
    x = rng.normal(size=(SAMPLES, 6)).astype("float32")
    y = np.ones((SAMPLES, 1), "float32")
    with strategy.scope():
        model = _hidden_model(keras, rng, list(range(12)))  # all dead
        model.compile(keras.optimizers.SGD(learning_rate=0.1), "mse")
    hidden = model.get_layer("hidden")
    kernel_start = hidden.kernel.numpy()
    monitor = kd.DeadNeuronMonitor(
        log_dir=None, verbose=0, threshold=0.5, fix="leaky_relu"
    )
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0, callbacks=[monitor])
    kernel_at_swap = hidden.kernel.numpy()
    history = model.fit(
        x, y, batch_size=BATCH_SIZE, epochs=2, verbose=0, callbacks=[monitor]
    )
    results["leaky/events"] = np.array([event.fix for event in monitor.events])
    results["leaky/activation"] = type(hidden.activation).__name__
    results["leaky/kernel_move_while_dead"] = np.abs(
        kernel_at_swap - kernel_start
    ).max()
    results["leaky/kernel_move_after_swap"] = np.abs(
        hidden.kernel.numpy() - kernel_at_swap
    ).max()
    results["leaky/loss"] = np.array(history.history["loss"])
    results["leaky/kernel_copies"] = _local_copies(strategy, hidden.kernel)


def run_scenarios(output_path: str) -> None:
    """Runs every scenario on two logical CPUs; saves results to `output_path`."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu,
        [
            tf.config.LogicalDeviceConfiguration(),
            tf.config.LogicalDeviceConfiguration(),
        ],
    )
    import keras

    import keras_deadrelu as kd
    from keras_deadrelu import measurement as kd_measurement

    keras.utils.set_random_seed(1234)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    recorder_log: list = []
    _per_replica_counters(kd_measurement, recorder_log)
    results = {"replicas": strategy.num_replicas_in_sync}
    scenarios = {
        "streaming": lambda rng: _streaming(
            tf, keras, kd, strategy, rng, results, "epoch", recorder_log
        ),
        "streaming_steps": lambda rng: _streaming(
            tf, keras, kd, strategy, rng, results, 2, recorder_log
        ),
        "probe": lambda rng: _probe(tf, keras, kd, strategy, rng, results),
        "revive": lambda rng: _revive(tf, keras, kd, strategy, rng, results),
        "leaky": lambda rng: _leaky_relu(tf, keras, kd, strategy, rng, results),
    }
    for seed, (name, scenario) in enumerate(scenarios.items()):
        try:
            scenario(np.random.default_rng(seed))
        except Exception:  # noqa: BLE001 - reported by that scenario's test
            results[f"{name}/error"] = traceback.format_exc()
    np.savez(output_path, **{k: np.asarray(v) for k, v in results.items()})


if __name__ == "__main__":
    run_scenarios(sys.argv[1])
    sys.exit(0)


# ----------------------------------------------------------------- the tests
from numpy_reference import (  # noqa: E402
    conv2d_valid,
    dense,
    relu,
    sampled_firing_rate,
)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    output = tmp_path_factory.mktemp("distributed") / "results.npz"
    environment = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run(
        [sys.executable, os.path.abspath(__file__), str(output)],
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        env=environment,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with np.load(output) as saved:
        return {key: saved[key] for key in saved.files}


def scenario(results, name):
    error = results.get(f"{name}/error")
    if error is not None:
        pytest.fail(f"scenario {name!r} raised in the subprocess:\n{error}")
    return {
        key[len(name) + 1 :]: value
        for key, value in results.items()
        if key.startswith(name + "/")
    }


def per_channel(activations):
    return activations.reshape(-1, activations.shape[-1])


def first_samples(count, replicas=1):
    """The index of the first sample of each batch (`replicas` = 1) or of
    each replica's share of it: MirroredStrategy splits a batch in order,
    the larger shares first (13 samples: 7 and 6)."""
    firsts = []
    for start in range(0, count, BATCH_SIZE):
        size = min(BATCH_SIZE, count - start)
        share = -(-size // replicas)
        firsts += [start + r * share for r in range(replicas) if r * share < size]
    return firsts


def expected_firing_rate(site, activations, replicas, sampled):
    """Every value counted, or (a ReLU conv site, streaming on a CPU without
    XLA) the first sample of each share."""
    if site == "conv" and sampled:
        return sampled_firing_rate(
            activations, first_samples(len(activations), replicas)
        )
    return (per_channel(activations) > 0).mean(axis=0)


@pytest.mark.parametrize("name", ["streaming", "streaming_steps"])
def test_streaming_counts_add_up_across_replicas(results, name):
    assert int(results["replicas"]) == 2
    found = scenario(results, name)
    x = found["x"]
    conv = relu(conv2d_valid(x, found["conv/kernel"], found["conv/bias"]))
    pre = dense(
        conv.reshape(len(x), -1), found["pre_relu/kernel"], found["pre_relu/bias"]
    )
    expected = {"conv": conv, "relu_layer": relu(pre)}

    assert str(found["buffer_type"]) == "SyncOnReadVariable"
    sampled = bool(found["sampled"])
    assert sampled == bool(found["expect_sampled"])
    single_sampled = bool(found["single/sampled"])
    assert single_sampled == bool(found["single/expect_sampled"])
    dead_total = units_total = 0
    for site, activations in expected.items():
        fired = per_channel(activations) > 0
        reference_dead = ~fired.any(axis=0)
        np.testing.assert_array_equal(found[f"{site}/dead"], reference_dead)
        np.testing.assert_allclose(
            found[f"{site}/firing_rate"],
            expected_firing_rate(site, activations, 2, sampled),
        )
        # The same dead units as one device running the same weights and
        # data (whose sampled firing rates take other first samples, where
        # they are sampled).
        np.testing.assert_array_equal(found[f"single/{site}/dead"], reference_dead)
        np.testing.assert_allclose(
            found[f"single/{site}/firing_rate"],
            expected_firing_rate(site, activations, 1, single_sampled),
        )
        # Each replica counted its own share of every batch; the shares add up.
        shares = found[f"{site}/replica_positive_counts"]
        elements = found[f"{site}/replica_element_counts"]
        assert shares.shape[0] == 2 and np.all(elements > 0)
        assert elements.sum() == len(fired)
        if site == "conv" and sampled:
            firsts = activations[first_samples(len(activations), 2)]
            fired_in_firsts = per_channel(firsts) > 0
            counted = found[f"{site}/replica_counted_values"]
            assert counted.sum() == len(fired_in_firsts)
            np.testing.assert_array_equal(
                shares.sum(axis=0), fired_in_firsts.sum(axis=0)
            )
        else:
            np.testing.assert_array_equal(shares.sum(axis=0), fired.sum(axis=0))
        dead_total += reference_dead.sum()
        units_total += reference_dead.size
    assert 0 < dead_total < units_total
    assert float(found["history_dead_fraction"]) == pytest.approx(
        dead_total / units_total
    )
    if name == "streaming_steps":
        # The window read and zeroed after step 2 left no replica's copy
        # with counts from the first two batches in it (checked above).
        return
    # A unit that fired on one replica only counts as alive.
    one_sample = found["conv/replica_positive_counts"][:, ONE_SAMPLE_CHANNEL]
    assert sorted(one_sample.tolist()) == [0, 1]
    assert not found["conv/dead"][ONE_SAMPLE_CHANNEL]


def test_probe_mode_matches_numpy_inside_and_outside_the_scope(results):
    found = scenario(results, "probe")
    fired = relu(dense(found["x"], found["kernel"], found["bias"])) > 0
    for where in ("outside_scope", "inside_scope"):
        np.testing.assert_array_equal(
            found[f"{where}/hidden/dead"], ~fired.any(axis=0), err_msg=where
        )
        np.testing.assert_allclose(
            found[f"{where}/hidden/firing_rate"], fired.mean(axis=0), err_msg=where
        )
    expected_fraction = (~fired.any(axis=0)).mean()
    assert expected_fraction >= 3 / 12
    assert float(found["dead_fractions"]) == pytest.approx(expected_fraction)
    assert float(found["dead_fractions_in_scope"]) == pytest.approx(expected_fraction)


def test_revive_keeps_mirrored_copies_equal_and_predictions_unchanged(results):
    found = scenario(results, "revive")
    assert found["events"].tolist() == ["revive"]
    revived = int(found["revived"][0])
    assert revived >= 7
    np.testing.assert_allclose(
        found["predictions_after"], found["predictions_before"], atol=1e-6
    )
    for key in (
        "kernel_copies",
        "bias_copies",
        "head_kernel_copies",
        "slot_copies",
        "kernel_copies_trained",
    ):
        copies = found[key]
        if key == "slot_copies":
            copies = np.moveaxis(copies, 1, 0)  # (replica, slot, ...)
        np.testing.assert_array_equal(copies[0], copies[1], err_msg=key)
    kernel = found["kernel_copies"][0]
    bias = found["bias_copies"][0]
    revived_units = np.flatnonzero(bias == np.float32(0.01))
    assert len(revived_units) == revived
    assert set(range(7)) <= set(revived_units.tolist())
    # Fresh incoming weights, outgoing weights zeroed, moments reset.
    assert np.all(kernel[:, revived_units] != found["kernel_before"][:, revived_units])
    assert np.all(found["head_kernel_copies"][0][revived_units] == 0.0)
    assert np.all(found["slot_copies"][:, 0][:, :, revived_units] == 0.0)
    # The revived units learn again afterwards.
    trained = found["kernel_copies_trained"][0]
    assert np.abs(trained[:, revived_units] - kernel[:, revived_units]).max() > 0


def test_leaky_relu_swap_trains_on_under_the_strategy(results):
    found = scenario(results, "leaky")
    assert found["events"].tolist() == ["leaky_relu"]
    assert str(found["activation"]) == "LeakyReLUActivation"
    assert float(found["kernel_move_while_dead"]) == 0.0
    assert float(found["kernel_move_after_swap"]) > 0.0
    assert np.all(np.isfinite(found["loss"]))
    assert found["loss"][-1] < found["loss"][0]
    np.testing.assert_array_equal(found["kernel_copies"][0], found["kernel_copies"][1])
