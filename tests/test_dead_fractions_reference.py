"""Dead fractions and firing rates against an independent NumPy forward pass.

The models are compiled with a learning rate of 0, so the weights that the
NumPy reference reads before training are the weights every training step
used: streaming counts over one epoch must equal the reference over the
whole training set, unit by unit. (Streaming on a CPU without XLA, a ReLU
conv site's firing rate is taken over the first sample of each batch, which
the reference takes too; its dead units are exact.)
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from numpy_reference import (
    conv2d_valid,
    dead_units,
    dense,
    relu,
    sampled_firing_rate,
)

import keras_deadrelu as kd

rng = np.random.default_rng(7)


def engineered_dense_weights(layer, dead_columns, shifted_columns):
    """Random kernel; `dead_columns` zeroed with bias -1 (dead for sure);
    `shifted_columns` get bias -2 so that only some inputs fire them."""
    kernel, bias = (w.copy() for w in layer.get_weights())
    kernel[:] = rng.normal(size=kernel.shape)
    bias[:] = rng.normal(scale=0.1, size=bias.shape)
    kernel[:, dead_columns] = 0.0
    bias[dead_columns] = -1.0
    bias[shifted_columns] = -2.0
    layer.set_weights([kernel, bias])
    return kernel, bias


def build_dense_model():
    block = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(7, activation="relu", name="inner")],
        name="block",
    )
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(12, activation="relu", name="dense_relu")(inputs)
    hidden = keras.layers.Dense(10, name="pre_relu")(hidden)
    hidden = keras.layers.ReLU(name="relu_layer")(hidden)
    hidden = keras.layers.Dense(8, name="pre_activation")(hidden)
    hidden = keras.layers.Activation("relu", name="activation_relu")(hidden)
    hidden = block(hidden)
    outputs = keras.layers.Dense(1, name="head")(hidden)
    model = keras.Model(inputs, outputs)
    weights = {
        "dense_relu": engineered_dense_weights(
            model.get_layer("dense_relu"), [0, 1], [2, 3]
        ),
        "pre_relu": engineered_dense_weights(model.get_layer("pre_relu"), [4], [5, 6]),
        "pre_activation": engineered_dense_weights(
            model.get_layer("pre_activation"), [0, 7], [3]
        ),
        "inner": engineered_dense_weights(block.get_layer("inner"), [2, 3, 4], [5]),
    }
    return model, weights


def dense_reference(x, weights):
    a1 = relu(dense(x, *weights["dense_relu"]))
    a2 = relu(dense(a1, *weights["pre_relu"]))
    a3 = relu(dense(a2, *weights["pre_activation"]))
    a4 = relu(dense(a3, *weights["inner"]))
    return {
        "dense_relu": a1,
        "relu_layer": a2,
        "activation_relu": a3,
        "block/inner": a4,
    }


def build_conv_model():
    inputs = keras.Input((8, 8, 2))
    hidden = keras.layers.Conv2D(5, 3, activation="relu", name="conv")(inputs)
    hidden = keras.layers.Conv2D(4, 3, name="conv_pre")(hidden)
    hidden = keras.layers.ReLU(name="conv_relu")(hidden)
    hidden = keras.layers.GlobalAveragePooling2D()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    weights = {}
    for name, dead_channel, shifted in (("conv", 0, 1), ("conv_pre", 3, 2)):
        layer = model.get_layer(name)
        kernel, bias = (w.copy() for w in layer.get_weights())
        kernel[:] = rng.normal(size=kernel.shape)
        bias[:] = rng.normal(scale=0.1, size=bias.shape)
        kernel[..., dead_channel] = 0.0
        bias[dead_channel] = -1.0
        bias[shifted] = -8.0
        layer.set_weights([kernel, bias])
        weights[name] = (kernel, bias)
    return model, weights


def conv_reference(x, weights):
    a1 = relu(conv2d_valid(x, *weights["conv"]))
    a2 = relu(conv2d_valid(a1, *weights["conv_pre"]))
    return {"conv": a1, "conv_relu": a2}


def fit_one_epoch(model, x, monitor, jit_compile):
    model.compile(
        keras.optimizers.SGD(learning_rate=0.0), "mse", jit_compile=jit_compile
    )
    y = np.zeros((len(x), 1), "float32")
    return model.fit(
        x,
        y,
        batch_size=BATCH_SIZE,
        epochs=1,
        verbose=0,
        callbacks=[monitor],
        shuffle=False,  # the batches' first samples are known
    )


BATCH_SIZE = 16


CASES = {
    "dense": (build_dense_model, dense_reference, (240, 6)),
    "conv": (build_conv_model, conv_reference, (64, 8, 8, 2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("jit_compile", [False, True])
def test_streaming_matches_numpy(case, jit_compile, counter_ops):
    # counter_ops: the compiled counter op, then stock TensorFlow ops (without
    # XLA; under XLA both are stock ops).
    build, reference, shape = CASES[case]
    model, weights = build()
    x = rng.normal(size=shape).astype("float32")
    expected = reference(x, weights)
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    history = fit_one_epoch(model, x, monitor, jit_compile)

    assert [site.name for site in monitor.last_window.sites] == list(expected)
    on_gpu = bool(tf.config.list_logical_devices("GPU"))
    all_dead = all_units = 0
    for name, activations in expected.items():
        site = monitor.last_window[name]
        reference_dead = dead_units(activations)
        np.testing.assert_array_equal(site.dead, reference_dead, err_msg=name)
        moved = activations.reshape(-1, activations.shape[-1])
        # A conv site's positive count is taken over each batch's first
        # sample on a CPU without XLA, unless its ReLU's gradient counts every
        # value (the compiled ops, keras_deadrelu.backward_counting).
        counted_in_full = jit_compile or on_gpu or counter_ops == "native_op"
        if activations.ndim > 2 and not counted_in_full:
            firsts = range(0, len(activations), BATCH_SIZE)
            expected_rate = sampled_firing_rate(activations, firsts)
        else:
            expected_rate = (moved > 0).mean(axis=0)
        np.testing.assert_allclose(site.firing_rate, expected_rate)
        assert history.history[f"dead_fraction/{name}"][0] == pytest.approx(
            reference_dead.mean()
        )
        all_dead += reference_dead.sum()
        all_units += reference_dead.size
    # The engineered units are dead for sure; some shifted ones may be too.
    assert 0 < all_dead < all_units
    assert history.history["dead_fraction"][0] == pytest.approx(all_dead / all_units)


@pytest.mark.parametrize("case", sorted(CASES))
def test_probe_mode_and_dead_fractions_match_numpy(case):
    build, reference, shape = CASES[case]
    model, weights = build()
    x_train = rng.normal(size=shape).astype("float32")
    x_probe = rng.normal(size=shape).astype("float32")
    expected = {
        name: float(dead_units(a).mean())
        for name, a in reference(x_probe, weights).items()
    }

    assert kd.dead_fractions(model, x_probe, batch_size=7) == pytest.approx(expected)

    monitor = kd.DeadNeuronMonitor(
        log_dir=None, verbose=0, probe_data=x_probe, probe_batch_size=10
    )
    history = fit_one_epoch(model, x_train, monitor, jit_compile=False)
    for name, fraction in expected.items():
        assert history.history[f"dead_fraction/{name}"][0] == pytest.approx(fraction)


def test_unit_granularity_counts_every_position():
    model, weights = build_conv_model()
    x = rng.normal(size=(32, 8, 8, 2)).astype("float32")
    activations = conv_reference(x, weights)["conv"]  # (32, 6, 6, 5)
    expected_dead = ~(activations > 0).any(axis=0).reshape(-1)

    monitor = kd.DeadNeuronMonitor(
        log_dir=None, verbose=0, granularity="unit", layers=["conv"]
    )
    fit_one_epoch(model, x, monitor, jit_compile=False)

    site = monitor.last_window["conv"]
    assert site.unit_count == 6 * 6 * 5
    np.testing.assert_array_equal(site.dead, expected_dead)
    # Per-position units die more easily than whole channels.
    assert site.dead_fraction >= dead_units(activations).mean()


def test_engineered_known_answer_zero_kernel_and_bias_minus_five():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(
        8,
        activation="relu",
        name="hidden",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(
            [-5.0, -5.0, -5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
        ),
    )(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    x = rng.choice([-1.5, 1.5], size=(50, 4)).astype("float32")

    assert kd.dead_fractions(model, x) == {"hidden": 3 / 8}
    window_site = None
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    fit_one_epoch(model, x, monitor, jit_compile=False)
    window_site = monitor.last_window["hidden"]
    assert window_site.dead.tolist() == [True] * 3 + [False] * 5
    assert window_site.firing_rate.tolist() == [0.0] * 3 + [1.0] * 5
    # The layer's input mean square (estimated from the first sample of each
    # batch, exact here since every input value is +-1.5), for the diagnosis.
    assert window_site.input_mean_square == pytest.approx(2.25)
    # Dormant (ReDo) with tau 0.1: dead units have score 0.
    assert window_site.dormant.tolist() == [True] * 3 + [False] * 5


@pytest.mark.parametrize("jit_compile", [False, True])
def test_nan_units_are_reported_apart(jit_compile):
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    layer = model.get_layer("hidden")
    kernel = np.ones((3, 4), "float32")
    kernel[:, 1] = np.nan  # unit 1 outputs NaN
    bias = np.array([0.0, 0.0, -100.0, 0.0], "float32")
    kernel[:, 2] = 0.0  # unit 2 is dead
    layer.set_weights([kernel, bias])
    # NaN gradients would turn every weight NaN, even at learning rate 0.
    layer.trainable = False
    x = np.abs(rng.normal(size=(20, 3))).astype("float32") + 0.1

    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    fit_one_epoch(model, x, monitor, jit_compile=jit_compile)
    site = monitor.last_window["hidden"]
    assert site.nan.tolist() == [False, True, False, False]
    assert site.dead.tolist() == [False, False, True, False]
    assert site.nan_count == 1 and site.dead_count == 1
    assert site.dead_fraction == 0.25
    assert np.isnan(site.firing_rate[1])
    # The probe reports the same, and so does the model-wide figure.
    with pytest.warns(kd.DeadNeuronWarning, match=r"hidden \(1/4\)"):
        assert kd.dead_fractions(model, x) == {"hidden": 0.25}
    assert monitor.last_window.nan_count == 1


@pytest.mark.parametrize(
    "layer",
    [
        keras.layers.DepthwiseConv2D(3, activation="relu", name="site"),
        keras.layers.SeparableConv2D(4, 3, activation="relu", name="site"),
    ],
    ids=["depthwise", "separable"],
)
def test_a_nan_bias_in_a_depthwise_or_separable_conv_makes_a_nan_unit(layer):
    """TensorFlow's fused conv + bias + ReLU turns relu(NaN) into 0; the
    weights checked on the host name the unit NaN, never dead."""
    model = keras.Sequential([keras.Input((6, 6, 3)), layer])
    weights = [np.abs(w) + 0.1 for w in layer.get_weights()]
    weights[-1][0] = np.nan  # the bias of output channel 0
    layer.set_weights(weights)
    x = np.abs(rng.normal(size=(8, 6, 6, 3))).astype("float32")
    assert np.isnan(np.asarray(model(x))[..., 0]).all()  # eager: NaN
    with pytest.warns(kd.DeadNeuronWarning, match=r"NaN or inf.*site \(1/"):
        assert kd.dead_fractions(model, x) == {"site": 0.0}


@pytest.mark.parametrize("separate_relu", [False, True])
def test_a_nan_input_makes_nan_units_not_dead_units(separate_relu):
    # A feature missing (NaN) in every row: every pre-activation is NaN, which
    # TensorFlow's fused MatMul + BiasAdd + Relu kernel turns into 0 in a graph.
    inputs = keras.Input((4,))
    if separate_relu:
        pre = keras.layers.Dense(3, name="pre")(inputs)
        hidden = keras.layers.ReLU(name="hidden")(pre)
    else:
        hidden = keras.layers.Dense(3, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, hidden)
    x = rng.normal(size=(32, 4)).astype("float32")
    x[:, 2] = np.nan
    assert np.isnan(np.asarray(model(x))).all()  # eager: the NumPy-like answer
    with pytest.warns(kd.DeadNeuronWarning, match=r"NaN or inf.*hidden \(3/3\)"):
        assert kd.dead_fractions(model, x) == {"hidden": 0.0}  # NaN is not dead
    # The monitor's probe on that data, while fitting on clean data.
    model.compile(keras.optimizers.SGD(0.0), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, probe_data=x, verbose=0)
    clean = np.nan_to_num(x)
    model.fit(clean, np.zeros((32, 3)), epochs=1, verbose=0, callbacks=[monitor])
    site = monitor.last_window["hidden"]
    assert site.nan.tolist() == [True] * 3
    assert site.dead_count == 0 and monitor.last_window.nan_count == 3


@pytest.mark.parametrize("separate_relu", [False, True])
def test_a_probe_sees_a_nan_input_in_any_sample_not_only_the_first(separate_relu):
    """The probe has no step to keep light: its input check reads every
    sample, so one NaN in sample 5 of 8 makes NaN units, not dead ones."""
    inputs = keras.Input((4,))
    dead = keras.initializers.Constant(-100.0)
    if separate_relu:
        pre = keras.layers.Dense(3, name="pre", bias_initializer=dead)(inputs)
        hidden = keras.layers.ReLU(name="hidden")(pre)
    else:
        hidden = keras.layers.Dense(
            3, activation="relu", name="hidden", bias_initializer=dead
        )(inputs)
    model = keras.Model(inputs, hidden)
    x = np.ones((8, 4), "float32")
    assert kd.dead_fractions(model, x) == {"hidden": 1.0}  # dead, all clean
    x[5, 1] = np.nan
    with pytest.warns(kd.DeadNeuronWarning, match=r"NaN or inf.*hidden \(3/3\)"):
        assert kd.dead_fractions(model, x, batch_size=8) == {"hidden": 0.0}


@pytest.mark.parametrize("form", ["list", "dict"])
@pytest.mark.parametrize("names", [("a", "b"), ("zeta", "alpha")])
def test_probe_data_for_a_two_input_model_as_a_list_or_a_dict(form, names):
    """A dict is matched to the inputs by name, whatever their order."""
    inputs = [keras.Input((5,), name=names[0]), keras.Input((4,), name=names[1])]
    branch_a = keras.layers.Dense(6, activation="relu", name="da")
    branch_b = keras.layers.Dense(6, activation="relu", name="db")
    merged = keras.layers.Concatenate()([branch_a(inputs[0]), branch_b(inputs[1])])
    model = keras.Model(inputs, keras.layers.Dense(1)(merged))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    engineered_dense_weights(branch_a, dead_columns=[0, 1], shifted_columns=[2])
    xa, xb = (rng.normal(size=(40, size)).astype("float32") for size in (5, 4))
    expected = {
        "da": dead_units(relu(dense(xa, *branch_a.get_weights()))).mean(),
        "db": dead_units(relu(dense(xb, *branch_b.get_weights()))).mean(),
    }
    probe = [xa, xb] if form == "list" else {names[1]: xb, names[0]: xa}
    assert kd.dead_fractions(model, probe, batch_size=16) == pytest.approx(expected)
    monitor = kd.DeadNeuronMonitor(log_dir=None, probe_data=probe, verbose=0)
    model.fit([xa, xb], xa[:, :1], epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.last_window.dead_fractions() == pytest.approx(expected)


def test_a_list_of_samples_is_one_inputs_data_for_a_one_input_model():
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(6, activation="relu", name="h")]
    )
    model.compile(keras.optimizers.SGD(0.0), "mse")
    engineered_dense_weights(model.layers[0], dead_columns=[0], shifted_columns=[1])
    x = rng.normal(size=(30, 5)).astype("float32")
    expected = {"h": dead_units(relu(dense(x, *model.layers[0].get_weights()))).mean()}
    samples = list(x)  # as Keras's predict takes it
    assert kd.dead_fractions(model, samples) == pytest.approx(expected)
    monitor = kd.DeadNeuronMonitor(log_dir=None, probe_data=samples, verbose=0)
    model.fit(x, np.zeros((30, 6)), epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.last_window.dead_fractions() == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"Argument `data` has batches of shape"):
        kd.dead_fractions(model, [x, x])
    # A list holding the one input's array, as Keras's predict([x]) reads it.
    assert kd.dead_fractions(model, [x]) == pytest.approx(expected)
    assert kd.dead_fractions(model, ([x], np.zeros(30))) == pytest.approx(expected)
