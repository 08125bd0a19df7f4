"""Reviving dead units (ReDo + bias 0.01): output unchanged, nothing else moved."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from dying_models import ShiftedReLU

import keras_deadrelu as kd
from keras_deadrelu.fixes import LeakyReLUActivation, ReviveUnits
from keras_deadrelu.measurement import SiteMeasurement
from keras_deadrelu.probe import as_batches

rng = np.random.default_rng(9)
X = rng.normal(size=(256, 8)).astype("float32")
Y = (np.sin(X[:, :1]) + X[:, 1:2] ** 2).astype("float32")
HALF_DEAD_BIAS = keras.initializers.Constant([-5.0] * 8 + [0.5] * 8)
SIX_HALF_DEAD = keras.initializers.Constant([-5.0] * 3 + [0.5] * 3)


def window_statistics(model, x):
    sites = kd.find_sites(model)
    measurement = SiteMeasurement(model, sites, probe_batches=as_batches(x))
    measurement.install()
    try:
        return sites, measurement.close_window()
    finally:
        measurement.uninstall()


def half_dead_mlp(between=None, optimizer=None):
    """hidden (16 units, 8 born dead) -> [between] -> next (Dense 4) -> head."""
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(
        16,
        activation="relu",
        name="hidden",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.2),
        bias_initializer=HALF_DEAD_BIAS,
    )(inputs)
    for layer in between or []:
        hidden = layer(hidden)
    hidden = keras.layers.Dense(4, activation="tanh", name="next")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))
    model.compile(optimizer or keras.optimizers.Adam(0.01), "mse")
    return model


def snapshot(model):
    weights = {v.path: np.array(v.numpy()) for v in model.weights}
    slots = {v.name: np.array(v.numpy()) for v in model.optimizer.variables}
    return weights, slots


def revive(model, site_name="hidden"):
    sites, window = window_statistics(model, X)
    site = next(s for s in sites if s.name == site_name)
    statistics = window[site_name]
    return statistics, ReviveUnits(bias=0.01).apply(model, site, statistics)


@pytest.mark.parametrize(
    "between",
    [None, [keras.layers.Dropout(0.1)], [keras.layers.BatchNormalization()]],
    ids=["direct", "dropout", "batchnorm"],
)
def test_revival_keeps_predictions_and_every_other_weight(between):
    model = half_dead_mlp(between)
    model.fit(X, Y, epochs=1, verbose=0)  # Adam slots are non-zero now
    predictions = model.predict(X, verbose=0)
    weights, slots = snapshot(model)

    statistics, result = revive(model)
    dead = statistics.dead
    assert dead[:8].all() and not dead[8:].any()
    assert result[0] == 8 and "outgoing weights in next zeroed" in result[2]

    new_weights, new_slots = snapshot(model)
    kernel, bias, next_kernel = "hidden/kernel", "hidden/bias", "next/kernel"
    # The revived units: fresh incoming weights, bias 0.01, no outgoing weight.
    assert not np.allclose(new_weights[kernel][:, dead], weights[kernel][:, dead])
    np.testing.assert_array_equal(new_weights[bias][dead], np.float32(0.01))
    np.testing.assert_array_equal(new_weights[next_kernel][dead, :], 0.0)
    # Every other entry, everywhere, is bitwise unchanged.
    np.testing.assert_array_equal(
        new_weights[kernel][:, ~dead], weights[kernel][:, ~dead]
    )
    np.testing.assert_array_equal(new_weights[bias][~dead], weights[bias][~dead])
    np.testing.assert_array_equal(
        new_weights[next_kernel][~dead, :], weights[next_kernel][~dead, :]
    )
    next_bias = "next/bias"
    restarted = ()
    if between and isinstance(between[0], keras.layers.BatchNormalization):
        # A dead unit fed BN's constant gamma * (0 - mean) / std + beta to the
        # next layer; that constant moves into the next layer's bias.
        bn = between[0]
        gamma, beta, mean, variance = (
            np.float64(weights[f"{bn.name}/{name}"])
            for name in ("gamma", "beta", "moving_mean", "moving_variance")
        )
        constant = gamma * (0 - mean) / np.sqrt(variance + bn.epsilon) + beta
        expected = weights[next_bias] + constant[dead] @ weights[next_kernel][dead, :]
        np.testing.assert_allclose(new_weights[next_bias], expected, rtol=1e-5)
        # The dead units pull BN's moving variance toward 0 (from 1: one
        # epoch here); the revived channels' statistics restart at 0 and 1.
        assert (variance[dead] < 1.0).all()
        restarted = (f"{bn.name}/moving_mean", f"{bn.name}/moving_variance")
        for path, start in zip(restarted, (0.0, 1.0), strict=True):
            np.testing.assert_array_equal(new_weights[path][dead], start)
            np.testing.assert_array_equal(
                new_weights[path][~dead], weights[path][~dead]
            )
        assert f"moving mean and variance of {bn.name} restarted" in result[2]
    else:
        np.testing.assert_array_equal(new_weights[next_bias], weights[next_bias])
        assert "moving mean" not in result[2]
    for path, value in weights.items():
        if path not in (kernel, bias, next_kernel, next_bias, *restarted):
            np.testing.assert_array_equal(new_weights[path], value, err_msg=path)
    # Optimizer slots of exactly those entries are reset.
    for name, value in slots.items():
        new_value = new_slots[name]
        if name.startswith("hidden_kernel_"):
            np.testing.assert_array_equal(new_value[:, dead], 0.0)
            np.testing.assert_array_equal(new_value[:, ~dead], value[:, ~dead])
        elif name.startswith("hidden_bias_"):
            np.testing.assert_array_equal(new_value[dead], 0.0)
            np.testing.assert_array_equal(new_value[~dead], value[~dead])
        elif name.startswith("next_kernel_"):
            np.testing.assert_array_equal(new_value[dead, :], 0.0)
            np.testing.assert_array_equal(new_value[~dead, :], value[~dead, :])
        else:
            np.testing.assert_array_equal(new_value, value, err_msg=name)
    assert any(name.startswith("hidden_kernel_") for name in slots)
    # The network's output did not change at the moment of revival.
    revived_predictions = model.predict(X, verbose=0)
    assert np.max(np.abs(revived_predictions - predictions)) < 1e-6
    # And the revived units fire again.
    _, window = window_statistics(model, X)
    assert window["hidden"].dead_count == 0


@pytest.mark.parametrize(
    "data_format, between",
    [
        ("channels_last", []),
        ("channels_first", []),
        ("channels_last", ["pool", "batchnorm", "dropout_after"]),
        ("channels_first", ["pool", "batchnorm"]),
    ],
    ids=["last", "first", "last_pool_bn_dropout", "first_pool_bn"],
)
def test_flatten_then_dense_zeroes_the_dead_channels_rows(data_format, between):
    # The classic CNN head: Conv -> [pool, BN] -> Flatten -> Dense. The dead
    # channels' rows of the Dense kernel are zeroed (where the Flatten put
    # them), so predictions do not change.
    shape = (6, 6, 2) if data_format == "channels_last" else (2, 6, 6)
    axis = -1 if data_format == "channels_last" else 1
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(
        4,
        3,
        activation="relu",
        name="conv",
        data_format=data_format,
        bias_initializer=keras.initializers.Constant([-9.0, 0.5, -9.0, 0.5]),
    )(inputs)
    if "pool" in between:
        x = keras.layers.MaxPooling2D(2, data_format=data_format)(x)
    if "batchnorm" in between:
        x = keras.layers.BatchNormalization(
            axis=axis,
            beta_initializer="random_normal",
            moving_mean_initializer="random_normal",
        )(x)
    x = keras.layers.Flatten(data_format=data_format)(x)
    if "dropout_after" in between:
        x = keras.layers.Dropout(0.2)(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    model.compile("adam", "mse")
    x_data = rng.normal(size=(32, *shape)).astype("float32")
    predictions = model.predict(x_data, verbose=0)
    sites, window = window_statistics(model, x_data)
    np.testing.assert_array_equal(window["conv"].dead, [True, False, True, False])
    _, _, detail = ReviveUnits().apply(model, sites[0], window["conv"])
    assert "outgoing weights in head zeroed" in detail
    np.testing.assert_allclose(
        model.predict(x_data, verbose=0), predictions, rtol=1e-5, atol=1e-5
    )
    # Reference: Keras's own Flatten applied to a map holding channel ids.
    flatten = next(
        layer for layer in model.layers if isinstance(layer, keras.layers.Flatten)
    )
    ids_shape = (1, 1, 1, 4) if axis == -1 else (1, 4, 1, 1)
    channel_ids = np.broadcast_to(
        np.arange(4, dtype="float32").reshape(ids_shape),
        (1, *flatten.input.shape[1:]),
    )
    channel_of_row = np.asarray(
        keras.layers.Flatten(data_format=data_format)(channel_ids)
    )[0]
    head_kernel = model.get_layer("head").get_weights()[0]
    dead_rows = np.isin(channel_of_row, [0, 2])
    np.testing.assert_array_equal(head_kernel[dead_rows], 0.0)
    assert np.all(head_kernel[~dead_rows] != 0.0)
    _, window = window_statistics(model, x_data)
    assert window["conv"].dead_count == 0


def test_conv_to_conv_zeroes_the_next_kernels_input_channels():
    inputs = keras.Input((8, 8, 2))
    hidden = keras.layers.Conv2D(
        4,
        3,
        name="conv1",
        bias_initializer=keras.initializers.Constant([-9.0, 0.5, -9.0, 0.5]),
    )(inputs)
    hidden = keras.layers.ReLU(name="relu1")(hidden)  # an activation-layer site
    hidden = keras.layers.MaxPooling2D()(hidden)
    hidden = keras.layers.Conv2D(3, 2, activation="relu", name="conv2")(hidden)
    pooled = keras.layers.GlobalAveragePooling2D()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(pooled))
    model.compile("adam", "mse")
    x = rng.normal(size=(16, 8, 8, 2)).astype("float32")
    predictions = model.predict(x, verbose=0)
    sites, window = window_statistics(model, x)
    site = next(s for s in sites if s.name == "relu1")
    result = ReviveUnits().apply(model, site, window["relu1"])
    assert result[0] == 2 and "outgoing weights in conv2 zeroed" in result[2]
    next_kernel = model.get_layer("conv2").get_weights()[0]  # (2, 2, 4, 3)
    np.testing.assert_array_equal(next_kernel[:, :, [0, 2], :], 0.0)
    assert np.abs(next_kernel[:, :, [1, 3], :]).sum() > 0
    np.testing.assert_array_equal(
        model.get_layer("conv1").get_weights()[1], np.float32([0.01, 0.5, 0.01, 0.5])
    )
    assert np.max(np.abs(model.predict(x, verbose=0) - predictions)) < 1e-6


def test_revive_in_fit_brings_units_back_and_the_loss_keeps_falling():
    def bias_killed():
        keras.utils.set_random_seed(4)
        inputs = keras.Input((8,))
        hidden = keras.layers.Dense(
            32,
            activation="relu",
            name="hidden",
            bias_initializer=keras.initializers.Constant(-5.0),
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.15),
        )(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))
        model.compile(keras.optimizers.Adam(0.01), "mse")
        return model

    unfixed = bias_killed()
    plain = unfixed.fit(
        X,
        Y,
        epochs=8,
        verbose=0,
        callbacks=[kd.DeadNeuronMonitor(log_dir=None, verbose=0)],
    ).history
    fixed = bias_killed()
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="revive", verbose=0)
    revived = fixed.fit(X, Y, epochs=8, verbose=0, callbacks=[monitor]).history

    (event,) = monitor.events  # one revival: the units stay alive afterwards
    assert (event.epoch, event.site, event.fix, event.before) == (
        0,
        "hidden",
        "revive",
        32,
    )
    assert plain["dead_fraction/hidden"] == [1.0] * 8
    assert revived["dead_fraction/hidden"][0] == 1.0
    assert max(revived["dead_fraction/hidden"][1:]) < 0.5
    # Unfixed: only the head's bias learns, the loss stalls at Var(Y).
    assert plain["loss"][-1] > 0.95 * float(np.var(Y))
    assert revived["loss"][-1] < 0.5 * plain["loss"][-1]
    assert revived["loss"][-1] < revived["loss"][2]


def test_grouped_convolution_next_revives_incoming_only():
    inputs = keras.Input((6, 6, 2))
    hidden = keras.layers.Conv2D(
        4,
        1,
        activation="relu",
        name="conv",
        bias_initializer=keras.initializers.Constant([0.5, 0.5, -9.0, -9.0]),
    )(inputs)
    grouped = keras.layers.Conv2D(4, 1, groups=2, name="grouped")(hidden)
    pooled = keras.layers.GlobalAveragePooling2D()(grouped)
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    model.compile("adam", "mse")
    x = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    grouped_before = model.get_layer("grouped").get_weights()[0].copy()
    sites, window = window_statistics(model, x)
    result = ReviveUnits().apply(model, sites[0], window["conv"])
    assert result[0] == 2 and "incoming weights only" in result[2]
    np.testing.assert_array_equal(
        model.get_layer("grouped").get_weights()[0], grouped_before
    )


def test_slots_are_found_by_the_optimizer_index_not_by_name():
    """A nested 'enc/dense' and a top-level 'enc_dense' get the same slot
    names in Keras; only the revived layer's moments may be reset."""
    inner = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(
                6, activation="relu", name="dense", bias_initializer=SIX_HALF_DEAD
            ),
        ],
        name="enc",
    )
    inputs = keras.Input((8,))
    hidden = inner(inputs)
    other = keras.layers.Dense(6, activation="relu", name="enc_dense")(inputs)
    merged = keras.layers.Concatenate()([hidden, other])
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(merged))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(X, Y, epochs=1, verbose=0)
    other_kernel = model.get_layer("enc_dense").kernel
    index = model.optimizer._get_variable_index(other_kernel)
    other_moments = np.array(model.optimizer._momentums[index].numpy())
    sites, window = window_statistics(model, X)
    site = next(s for s in sites if s.name == "enc/dense")
    result = ReviveUnits().apply(model, site, window["enc/dense"])
    # Kernel and bias, two Adam moments each (name matching found eight).
    assert result is not None and "; 4 optimizer slot(s) reset" in result[2]
    np.testing.assert_array_equal(
        model.optimizer._momentums[index].numpy(), other_moments
    )


def _fill_slots(optimizer, variables):
    """Gives every slot of `variables` stale values, as units that were alive
    before they died leave behind (a born-dead unit's slots never move):
    momentum-like slots 0.5, second moments and accumulators 1 (so that a
    centered RMSprop's velocity - average**2 stays positive)."""
    for variable in variables:
        index = optimizer._get_variable_index(variable)
        for name in ("_momentums", "momentums", "_average_gradients", "_linears"):
            slots = getattr(optimizer, name, None)
            if slots and slots[index] is not None:
                slots[index].assign(np.full(variable.shape, 0.5, "float32"))
        for name in ("_velocities", "_accumulators"):
            slots = getattr(optimizer, name, None)
            if slots and slots[index] is not None:
                slots[index].assign(np.full(variable.shape, 1.0, "float32"))


@pytest.mark.parametrize(
    "make_optimizer, starts",
    [
        (
            lambda: keras.optimizers.RMSprop(0.01, centered=True),
            {"_velocities": 0.0, "_average_gradients": 0.0},
        ),
        (lambda: keras.optimizers.Adagrad(0.05), {"_accumulators": 0.1}),
        (
            lambda: keras.optimizers.Ftrl(0.05, initial_accumulator_value=0.3),
            # Ftrl computes its weights from its slots: linear is what gives
            # back the new weights, -w * sqrt(accumulator) / rate (l1 = l2 = 0).
            {"_accumulators": 0.3, "_linears": -np.sqrt(0.3) / 0.05},
        ),
        (
            lambda: keras.optimizers.ScheduleFreeAdamW(0.01),
            {"_momentums": "the new weights", "_velocities": 0.0},
        ),
    ],
    ids=["rmsprop_centered", "adagrad", "ftrl", "schedule_free"],
)
def test_revived_slots_start_where_a_fresh_variables_slots_start(
    make_optimizer, starts
):
    """Not always at 0: an Ftrl accumulator of 0 gives NaN weights, a centered
    RMSprop with its velocity reset but not its average gradient NaN
    everywhere, and ScheduleFree's z is the weight itself."""
    model = half_dead_mlp(optimizer=make_optimizer())
    model.fit(X, Y, epochs=1, verbose=0)
    optimizer = model.optimizer
    kernel = model.get_layer("hidden").kernel
    next_kernel = model.get_layer("next").kernel
    _fill_slots(optimizer, model.trainable_variables)
    index = optimizer._get_variable_index(kernel)
    next_index = optimizer._get_variable_index(next_kernel)
    before = {
        name: (
            np.array(getattr(optimizer, name)[index].numpy()),
            np.array(getattr(optimizer, name)[next_index].numpy()),
        )
        for name in starts
    }

    statistics, result = revive(model)
    dead = statistics.dead
    assert dead.sum() == 8 and result is not None

    for name, start in starts.items():
        slot = getattr(optimizer, name)[index].numpy()
        next_slot = getattr(optimizer, name)[next_index].numpy()
        if start == "the new weights":
            np.testing.assert_array_equal(slot[:, dead], kernel.numpy()[:, dead])
            np.testing.assert_array_equal(next_slot[dead, :], 0.0)
        elif name == "_linears":
            np.testing.assert_allclose(
                slot[:, dead], start * kernel.numpy()[:, dead], rtol=1e-5
            )
            np.testing.assert_array_equal(next_slot[dead, :], 0.0)
        else:
            np.testing.assert_allclose(slot[:, dead], start, rtol=1e-6)
            np.testing.assert_allclose(next_slot[dead, :], start, rtol=1e-6)
        assert not np.allclose(before[name][0][:, dead], slot[:, dead]), name
        np.testing.assert_array_equal(slot[:, ~dead], before[name][0][:, ~dead])
        np.testing.assert_array_equal(next_slot[~dead, :], before[name][1][~dead, :])
    model.fit(X, Y, epochs=2, verbose=0)
    for weight in model.weights:
        assert np.isfinite(weight.numpy()).all(), weight.path
    _, window = window_statistics(model, X)
    assert window["hidden"].dead_count < 8


def test_under_a_multi_optimizer_the_owning_sub_optimizers_slots_are_reset():
    adam, sgd = keras.optimizers.Adam(0.01), keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer_map = keras.optimizers.OptimizerMap(sgd, {"hidden/.*": adam})
    model = half_dead_mlp(optimizer=keras.optimizers.MultiOptimizer(optimizer_map))
    model.fit(X, Y, epochs=1, verbose=0)
    kernel = model.get_layer("hidden").kernel
    next_kernel = model.get_layer("next").kernel
    _fill_slots(adam, [kernel])
    _fill_slots(sgd, [next_kernel])

    statistics, result = revive(model)
    dead = statistics.dead
    # hidden's kernel and bias: two Adam moments each; next's kernel: one.
    assert "; 5 optimizer slot(s) reset" in result[2]
    index = adam._get_variable_index(kernel)
    for slots, stale in ((adam._momentums, 0.5), (adam._velocities, 1.0)):
        np.testing.assert_array_equal(slots[index].numpy()[:, dead], 0.0)
        np.testing.assert_array_equal(slots[index].numpy()[:, ~dead], stale)
    momentum = sgd.momentums[sgd._get_variable_index(next_kernel)].numpy()
    np.testing.assert_array_equal(momentum[dead, :], 0.0)
    np.testing.assert_array_equal(momentum[~dead, :], 0.5)


def test_a_site_revive_cannot_reach_is_named_once_and_left_alone():
    # Conv -> BatchNormalization -> ReLU: no kernel feeds the ReLU directly.
    inputs = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(4, 3)(inputs)
    normalised = keras.layers.BatchNormalization(
        beta_initializer=keras.initializers.Constant(-30.0)
    )(conv)
    relu = keras.layers.ReLU(name="relu")(normalised)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(relu)))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(3).normal(size=(32, 6, 6, 2)).astype("float32")
    weights = [w.numpy().copy() for w in model.trainable_weights]
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="revive", verbose=0)
    with pytest.warns(kd.DeadNeuronWarning) as caught:
        model.fit(x, np.zeros((32, 1)), epochs=3, verbose=0, callbacks=[monitor])
    messages = [str(w.message) for w in caught]
    out_of_reach = [m for m in messages if "cannot act on these sites" in m]
    assert len(out_of_reach) == 1 and "relu (no Dense or Conv kernel" in out_of_reach[0]
    assert monitor.last_window["relu"].dead_fraction == 1.0
    assert monitor.events == []
    for before, after in zip(weights, model.trainable_weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())  # learning rate 0
    (_, _, diagnosis), *_ = monitor.diagnoses
    assert "fix='revive' needs a Dense or Conv kernel" in diagnosis.advice


def _dead_mlp_with(activation_layers):
    """Dense "pre" (16 units, 8 born dead) -> `activation_layers` -> next."""
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(
        16,
        name="pre",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.2),
        bias_initializer=HALF_DEAD_BIAS,
    )(inputs)
    for layer in activation_layers:
        hidden = layer(hidden)
    hidden = keras.layers.Dense(4, activation="tanh", name="next")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


@pytest.mark.parametrize(
    "activation, kind",
    [
        (keras.layers.Activation("elu", name="hidden"), "elu"),
        (keras.layers.Activation("selu", name="hidden"), "selu"),
        (keras.layers.LeakyReLU(0.3, name="hidden"), "leaky_relu"),
        (kd.layers.PReLU(name="hidden"), "prelu"),
    ],
    ids=["elu", "selu", "leaky", "prelu"],
)
def test_sites_whose_dead_units_output_values_are_not_revived(activation, kind):
    # A dead ELU unit outputs about -alpha, a leaky one slope * z: zeroing its
    # outgoing weights would change the output.
    model = _dead_mlp_with([activation])
    predictions = model.predict(X, verbose=0)
    weights, _ = snapshot(model)
    sites = kd.find_sites(model)
    reason = f"its dead units still output values other than 0 ({kind})"
    assert ReviveUnits().sites_out_of_reach(sites) == {"hidden": reason}
    statistics, result = revive(model)
    assert statistics.dead_count == 8 and result is None
    np.testing.assert_array_equal(model.predict(X, verbose=0), predictions)
    for path, value in snapshot(model)[0].items():
        np.testing.assert_array_equal(value, weights[path], err_msg=path)


def test_a_custom_layer_with_a_relu_activation_is_not_revived():
    # Its dead units output -1, not 0, as far as anyone outside its call
    # knows: zeroing the next layer's weights would change the output.
    model = _dead_mlp_with([ShiftedReLU(name="hidden")])
    predictions = model.predict(X, verbose=0)
    weights, _ = snapshot(model)
    reason = "a custom ShiftedReLU call or activation decides what its dead units "
    reason += "output"
    assert ReviveUnits().sites_out_of_reach(kd.find_sites(model)) == {"hidden": reason}
    statistics, result = revive(model)
    assert statistics.dead_count >= 8 and result is None
    np.testing.assert_array_equal(model.predict(X, verbose=0), predictions)
    for path, value in snapshot(model)[0].items():
        np.testing.assert_array_equal(value, weights[path], err_msg=path)


def test_a_pre_activation_layer_that_feeds_another_branch_is_not_revived():
    inputs = keras.Input((8,))
    pre = keras.layers.Dense(16, name="pre", bias_initializer=HALF_DEAD_BIAS)(inputs)
    relu = keras.layers.ReLU(name="hidden")(pre)
    merged = keras.layers.Add()(
        [keras.layers.Dense(4)(relu), keras.layers.Dense(4)(pre)]
    )
    model = keras.Model(inputs, keras.layers.Dense(1)(merged))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    predictions = model.predict(X, verbose=0)
    reasons = ReviveUnits().sites_out_of_reach(kd.find_sites(model))
    assert reasons == {"hidden": "pre also feeds other layers"}
    statistics, result = revive(model)
    assert statistics.dead_count == 8 and result is None
    np.testing.assert_array_equal(model.predict(X, verbose=0), predictions)


def _doubled(x):
    return 2.0 * x


@pytest.mark.parametrize("activation", ["softmax", "sparsemax", _doubled])
def test_an_activation_not_known_to_be_elementwise_stops_the_walk(activation):
    """Softmax and sparsemax mix a sample's units; a function of the user's
    may do anything: the outgoing weights are left alone, and the output
    moves only as the revived units' new incoming weights make it (they
    feed nothing at first only where the walk goes on)."""
    model = half_dead_mlp([keras.layers.Activation(activation, name="mixer")])
    _, (_, _, detail) = revive(model)
    assert "next weighted layer unknown (mixer (Activation) mixes units)" in detail


@pytest.mark.parametrize(
    "activation",
    ["sigmoid", tf.nn.sigmoid, LeakyReLUActivation(0.1)],
    ids=["keras", "tensorflow", "swapped_leaky"],
)
def test_an_elementwise_activation_between_keeps_the_output(activation):
    model = half_dead_mlp([keras.layers.Activation(activation, name="squash")])
    model.fit(X, Y, epochs=1, verbose=0)
    predictions = model.predict(X, verbose=0)
    _, (_, _, detail) = revive(model)
    assert "outgoing weights in next zeroed" in detail
    # sigmoid(0) = 0.5 fed the next layer; that constant moved into its bias.
    np.testing.assert_allclose(model.predict(X, verbose=0), predictions, atol=1e-5)


def test_under_ftrl_the_revival_and_the_bias_shift_survive_a_step():
    """Ftrl computes its weights from its slots at every step: the revived
    weights and the next layer's shifted bias must be what its slots give,
    or a step without any gradient would change the output."""
    model = half_dead_mlp(
        [keras.layers.Activation("sigmoid", name="squash")],
        optimizer=keras.optimizers.Ftrl(0.05, l1_regularization_strength=0.001),
    )
    model.fit(X, Y, epochs=1, verbose=0)
    statistics, (_, _, detail) = revive(model)
    assert "outgoing weights in next zeroed" in detail
    predictions = model.predict(X, verbose=0)
    weights = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    zeros = [keras.ops.zeros_like(v) for v in model.trainable_variables]
    model.optimizer.apply_gradients(zip(zeros, model.trainable_variables, strict=True))
    for variable in model.trainable_variables:
        np.testing.assert_allclose(
            variable.numpy(), weights[variable.path], atol=1e-6, err_msg=variable.path
        )
    np.testing.assert_allclose(model.predict(X, verbose=0), predictions, atol=1e-5)
    dead = statistics.dead
    assert np.abs(weights["hidden/kernel"][:, dead]).max() > 0.01  # not undone


def test_batch_norm_over_positions_stops_the_walk_to_the_next_kernel():
    # BatchNormalization(axis=1) of a (batch, time, units) Dense output: a dead
    # unit's 0 becomes a constant per time step, which no bias can take.
    inputs = keras.Input((4, 8))
    hidden = keras.layers.Dense(
        16, activation="relu", name="hidden", bias_initializer=HALF_DEAD_BIAS
    )(inputs)
    normalised = keras.layers.BatchNormalization(axis=1, name="mixer")(hidden)
    outputs = keras.layers.Dense(4, name="next")(normalised)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(outputs)))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    x = X[:64].reshape(16, 4, 8)
    sites, window = window_statistics(model, x)
    assert window["hidden"].dead_count == 8
    _, _, detail = ReviveUnits().apply(model, sites[0], window["hidden"])
    assert "next weighted layer unknown (mixer (BatchNormalization) mixes" in detail


def test_a_float32_head_after_a_float16_site_is_the_next_layer():
    # Under mixed precision the float32 head autocasts its input: Keras records
    # that cast as a second, dangling consumer of the site.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((8,))
        hidden = keras.layers.Dense(
            16, activation="relu", name="hidden", bias_initializer=HALF_DEAD_BIAS
        )(inputs)
        outputs = keras.layers.Dense(1, name="next", dtype="float32")(hidden)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(0.01), "mse")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    predictions = model.predict(X, verbose=0)
    statistics, (_, _, detail) = revive(model)
    assert statistics.dead_count == 8 and "outgoing weights in next zeroed" in detail
    np.testing.assert_allclose(model.predict(X, verbose=0), predictions, atol=1e-6)


def test_revived_units_survive_the_moving_average_written_back_at_the_end():
    # With use_ema, fit ends by writing the weights' moving averages over them.
    keras.utils.set_random_seed(4)
    model = half_dead_mlp()
    model.compile(keras.optimizers.Adam(0.01, use_ema=True), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="revive", verbose=0)
    model.fit(X, Y, epochs=2, batch_size=64, verbose=0, callbacks=[monitor])
    assert [event.epoch for event in monitor.events] == [0]
    bias = model.get_layer("hidden").bias.numpy()
    assert bias[:8].min() > -1.0  # not back at -5
    assert kd.dead_fractions(model, X)["hidden"] < 0.5


def test_a_plain_function_initializer_draws_the_new_weights():
    def small_normal(shape, dtype=None):
        return keras.random.normal(shape, stddev=0.2, dtype=dtype)

    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(
        16,
        activation="relu",
        name="hidden",
        kernel_initializer=small_normal,
        bias_initializer=HALF_DEAD_BIAS,
    )(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="next")(hidden))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    predictions = model.predict(X, verbose=0)
    statistics, (revived, _, _) = revive(model)
    assert revived == 8
    np.testing.assert_allclose(model.predict(X, verbose=0), predictions, atol=1e-6)
    _, window = window_statistics(model, X)
    assert window["hidden"].dead_count < 8


def test_revive_bias_must_not_be_negative():
    with pytest.raises(ValueError, match=r"`bias` must be >= 0.*bias=-1"):
        ReviveUnits(bias=-1)


def test_lora_kernels_are_left_alone():
    # With enable_lora(), a Dense layer's kernel is base + A @ B, computed.
    model = half_dead_mlp()
    model.get_layer("next").enable_lora(2)
    _, (_, _, detail) = revive(model)
    assert "incoming weights only" in detail and "next's kernel is LoRA's sum" in detail
    model = half_dead_mlp()
    model.get_layer("hidden").enable_lora(2)
    reasons = ReviveUnits().sites_out_of_reach(kd.find_sites(model))
    assert reasons == {"hidden": "hidden's kernel is LoRA's sum (base + A @ B)"}


def _branchy_model(kind):
    """hidden (16 units, 8 born dead) feeding a Concatenate, two consumers, or
    the same layer called on two inputs."""
    dense = keras.layers.Dense(
        16,
        activation="relu",
        name="hidden",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.2),
        bias_initializer=HALF_DEAD_BIAS,
    )
    if kind == "shared":
        first, second = keras.Input((8,)), keras.Input((8,))
        joined = keras.layers.Add()(
            [
                keras.layers.Dense(3, name="a")(dense(first)),
                keras.layers.Dense(3, name="b")(dense(second)),
            ]
        )
        return keras.Model([first, second], keras.layers.Dense(1)(joined))
    inputs = keras.Input((8,))
    hidden = dense(inputs)
    other = keras.layers.Dense(5, activation="tanh", name="other")(inputs)
    if kind == "concatenate":
        joined = keras.layers.Concatenate()([other, hidden, other])
        outputs = keras.layers.Dense(3, name="a")(joined)
    else:  # two consumers, one through BatchNormalization
        normalised = keras.layers.BatchNormalization(
            beta_initializer="random_normal", moving_mean_initializer="random_normal"
        )(hidden)
        outputs = keras.layers.Add()(
            [
                keras.layers.Dense(3, name="a")(hidden),
                keras.layers.Dense(3, name="b")(normalised),
            ]
        )
    return keras.Model(inputs, keras.layers.Dense(1)(outputs))


@pytest.mark.parametrize("kind", ["concatenate", "two_consumers", "shared"])
def test_every_consumer_of_the_dead_units_gets_its_weights_zeroed(kind):
    model = _branchy_model(kind)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    x = [X, X[::-1]] if kind == "shared" else X
    predictions = model.predict(x, verbose=0)
    sites, window = window_statistics(model, x)
    statistics = window["hidden"]
    dead = statistics.dead
    assert dead[:8].all() and not dead[8:].any()
    _, _, detail = ReviveUnits().apply(model, sites[0], statistics)
    consumers = ["a"] if kind == "concatenate" else ["a", "b"]
    assert f"outgoing weights in {', '.join(consumers)} zeroed" in detail
    np.testing.assert_allclose(
        model.predict(x, verbose=0), predictions, rtol=1e-5, atol=1e-6
    )
    # The rows zeroed: the dead units', after the 5 channels of `other`.
    rows = np.flatnonzero(dead) + (5 if kind == "concatenate" else 0)
    for name in consumers:
        kernel = model.get_layer(name).get_weights()[0]
        np.testing.assert_array_equal(kernel[rows], 0.0)
        assert np.count_nonzero(kernel == 0.0) == rows.size * kernel.shape[1]


def _one_in_three_dead(*layers):
    """Units 0, 3, ... of each layer dead (bias -20), the others alive (+20)."""
    for layer in layers:
        units = layer.bias.shape[0]
        layer.bias.assign(np.where(np.arange(units) % 3 == 0, -20.0, 20.0))


def _fit_with_revive(model, x, outputs):
    """One epoch at learning rate 0 (only the fix changes weights), revive on;
    the predictions before and after, and the monitor."""
    model.compile(keras.optimizers.SGD(0.0), "mse")
    before = model.predict(x, verbose=0)
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="revive", threshold=0.2, verbose=0)
    y = np.zeros((16, outputs), "float32")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[monitor])
    return before, model.predict(x, verbose=0), monitor


def test_channels_first_concatenate_revives_both_sites_keeping_predictions():
    # Two channels-first conv maps joined on axis 1, then Flatten -> Dense:
    # each site's dead channels sit at its offset along axis 1 of the join.
    inputs = keras.Input((3, 6, 6))
    c1 = keras.layers.Conv2D(4, 3, activation="relu", data_format="channels_first")
    c2 = keras.layers.Conv2D(5, 3, activation="relu", data_format="channels_first")
    joined = keras.layers.Concatenate(axis=1)([c2(inputs), c1(inputs)])
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(joined))
    model = keras.Model(inputs, outputs)
    _one_in_three_dead(c1, c2)
    kernels = [c1.kernel.numpy().copy(), c2.kernel.numpy().copy()]
    x = rng.random((16, 3, 6, 6)).astype("float32")
    before, after, monitor = _fit_with_revive(model, x, 2)
    assert sorted(event.site for event in monitor.events) == sorted([c1.name, c2.name])
    for event in monitor.events:
        assert "outgoing weights in head zeroed" in event.message
    for layer, kernel in zip((c1, c2), kernels, strict=True):
        assert not np.array_equal(layer.kernel.numpy(), kernel)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    # Rows of the head: c2's 5 channels, then c1's 4, 16 positions each.
    dead_channels = [0, 3, 5 + 0, 5 + 3]
    rows = np.isin(np.arange(9 * 16) // 16, dead_channels)
    head_kernel = model.get_layer("head").kernel.numpy()
    np.testing.assert_array_equal(head_kernel[rows], 0.0)
    assert np.all(head_kernel[~rows] != 0.0)


def test_a_failing_plan_leaves_every_weight_untouched(monkeypatch):
    # All or none: the incoming weights change only once the whole plan stands.
    def broken(*args, **kwargs):
        raise RuntimeError("plan broke")

    monkeypatch.setattr("keras_deadrelu.fixes.revive_units._plan_path", broken)
    model = half_dead_mlp()
    weights, _ = snapshot(model)
    with pytest.warns(kd.DeadNeuronWarning, match="fix 'revive' failed.*plan broke"):
        before, after, monitor = _fit_with_revive(model, X[:16], 1)
    assert monitor.events == []
    np.testing.assert_array_equal(after, before)
    for path, value in snapshot(model)[0].items():
        np.testing.assert_array_equal(value, weights[path], err_msg=path)


@pytest.mark.parametrize(
    "other, reason",
    [
        ("another_branch", "head is also called on inputs da does not feed"),
        ("the_site_again", None),
        ("the_site_again_normalised", None),
        ("the_site_elsewhere", "head's calls take the units in different places"),
    ],
)
def test_a_consumer_called_on_another_branch_is_not_zeroed(other, reason):
    # head(da(a)) + head(db(b)): zeroing head's rows for da's dead units would
    # also cut db's units 0 and 3. Called on da both times, with the units on
    # the same rows, it is zeroed (a BatchNormalization's constant moved into
    # its bias once); with them on other rows in each call, it is not.
    first, second = keras.Input((4,)), keras.Input((4,))
    da = keras.layers.Dense(6, activation="relu", name="da")
    db = keras.layers.Dense(6, name="db")
    head = keras.layers.Dense(2, name="head")
    if other == "another_branch":
        calls = [da(first), db(second)]
    elif other == "the_site_again":
        calls = [da(first), da(second)]
    elif other == "the_site_again_normalised":
        normalise = keras.layers.BatchNormalization(
            beta_initializer="random_normal", moving_mean_initializer="random_normal"
        )
        normalise.trainable = False  # its moving statistics stay put in fit
        calls = [normalise(da(first)), normalise(da(second))]
    else:
        join = keras.layers.Concatenate()
        calls = [join([da(first), db(first)]), join([db(second), da(second)])]
    outputs = keras.layers.Add()([head(call) for call in calls])
    model = keras.Model([first, second], outputs)
    _one_in_three_dead(da)
    if db.built:
        db.bias.assign(np.full(6, 5.0, "float32"))  # all of db's units alive
    head_weights = [w.numpy().copy() for w in head.weights]
    x = [rng.random((16, 4)).astype("float32") for _ in range(2)]
    before, after, monitor = _fit_with_revive(model, x, 2)
    (event,) = monitor.events
    assert event.site == "da" and "revived 2 unit(s) of da" in event.message
    _assert_zeroed_or_untouched(
        event, reason, head, head_weights, np.s_[[0, 3]], before, after
    )


def _assert_zeroed_or_untouched(event, reason, consumer, weights, rows, before, after):
    """With no `reason`, the consumer's `rows` are zeroed and the output kept;
    with one, the event gives it, the consumer's `weights` are untouched and
    the output changed."""
    if reason is None:
        assert f"outgoing weights in {consumer.name} zeroed" in event.message
        np.testing.assert_array_equal(consumer.kernel.numpy()[rows], 0.0)
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
        return
    assert "zeroed" not in event.message
    assert f"incoming weights only: next weighted layer unknown ({reason})" in (
        event.message
    )
    for weight, value in zip(consumer.weights, weights, strict=True):
        np.testing.assert_array_equal(weight.numpy(), value)
    assert np.max(np.abs(after - before)) > 1e-3  # as the event warns


@pytest.mark.parametrize(
    "consumer, reason",
    [
        (
            keras.layers.Dense(2, name="next"),
            "next (Dense) acts on axis 2 of its input, the units are on axis 1",
        ),
        (
            keras.layers.Conv1D(2, 3, name="next"),
            "next (Conv1D) acts on axis 2 of its input, the units are on axis 1",
        ),
        (
            keras.layers.GlobalAveragePooling1D(name="next"),
            "next (GlobalAveragePooling1D) mixes units",
        ),
        (keras.layers.Conv1D(2, 3, data_format="channels_first", name="next"), None),
    ],
    ids=["dense", "conv_channels_last", "pool_channels_last", "conv_channels_first"],
)
def test_a_consumer_must_take_the_units_along_their_channel_axis(consumer, reason):
    # A channels-first Conv1D's units are on axis 1 of (batch, 6, 8); a Dense
    # or a channels-last layer acts on axis 2 (the positions) instead.
    inputs = keras.Input((3, 10))
    conv = keras.layers.Conv1D(
        6, 3, activation="relu", data_format="channels_first", name="conv"
    )
    outputs = keras.layers.Flatten()(consumer(conv(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(outputs))
    _one_in_three_dead(conv)
    weights = [w.numpy().copy() for w in consumer.weights]
    head_kernel = model.get_layer("head").kernel.numpy().copy()
    x = rng.random((16, 3, 10)).astype("float32")
    before, after, monitor = _fit_with_revive(model, x, 2)
    (event,) = monitor.events
    assert "revived 2 unit(s) of conv" in event.message
    _assert_zeroed_or_untouched(
        event, reason, consumer, weights, np.s_[:, [0, 3], :], before, after
    )
    if reason is not None:
        head = model.get_layer("head").kernel.numpy()
        np.testing.assert_array_equal(head, head_kernel)


def _hidden_layers(build):
    """Dense "hidden" (16 units, 8 born dead) with a ReLU, or Dense "hidden"
    then ReLU "relu"; the site's name."""
    if build.endswith("relu_layer"):
        dense = keras.layers.Dense(16, name="hidden", bias_initializer=HALF_DEAD_BIAS)
        return [dense, keras.layers.ReLU(name="relu")], "relu"
    dense = keras.layers.Dense(
        16, activation="relu", name="hidden", bias_initializer=HALF_DEAD_BIAS
    )
    return [dense], "hidden"


@pytest.mark.parametrize(
    "build",
    ["added", "added_relu_layer", "popped_and_re_added", "built_by_fit"],
)
def test_revive_in_a_sequential_built_layer_by_layer_keeps_predictions(build):
    # Each add() (and pop()) rebuilds a Sequential's graph: its layers keep
    # the calls of every earlier graph, which feed nothing. Only the model's
    # own graph counts: the next layer is found and its rows zeroed.
    hidden, site = _hidden_layers(build)
    tail = [
        keras.layers.Dense(4, activation="tanh", name="next"),
        keras.layers.Dense(1, name="head"),
    ]
    if build == "built_by_fit":  # no Input: fit builds it, once
        model = keras.Sequential([*hidden, *tail])
    else:
        model = keras.Sequential()
        model.add(keras.Input((8,)))
        for layer in hidden:
            model.add(layer)
        if build == "popped_and_re_added":
            model.add(keras.layers.Dense(3, name="dropped"))
            model.add(keras.layers.Dense(1, name="dropped_head"))
            model.pop()
            model.pop()
        for layer in tail:
            model.add(layer)
        assert len(hidden[-1]._inbound_nodes) > 1  # stale calls
    before, after, monitor = _fit_with_revive(model, X[:16], 1)
    (event,) = monitor.events
    assert event.site == site
    assert "revived 8 unit(s) of hidden" in event.message
    assert "outgoing weights in next zeroed" in event.message
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(model.get_layer("next").kernel.numpy()[:8], 0.0)


def test_calls_of_a_layer_in_another_model_do_not_count():
    # hidden and next were used in model `other` first: hidden into a head
    # of its own, next on another input. In this model next takes hidden's
    # units only, so it is zeroed; `other`'s layers are not touched.
    hidden = keras.layers.Dense(
        16, activation="relu", name="hidden", bias_initializer=HALF_DEAD_BIAS
    )
    following = keras.layers.Dense(4, activation="tanh", name="next")
    first = keras.Input((8,))
    other_head = keras.layers.Dense(2, name="other_head")
    keras.Model(
        first,
        [other_head(hidden(first)), following(keras.layers.Dense(16)(first))],
    )
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(1, name="head")(following(hidden(inputs)))
    model = keras.Model(inputs, outputs)
    other_kernel = other_head.kernel.numpy().copy()
    before, after, monitor = _fit_with_revive(model, X[:16], 1)
    (event,) = monitor.events
    assert "revived 8 unit(s) of hidden" in event.message
    assert "outgoing weights in next zeroed" in event.message
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(following.kernel.numpy()[:8], 0.0)
    np.testing.assert_array_equal(other_head.kernel.numpy(), other_kernel)


def test_a_batch_normalization_shared_with_another_branch_keeps_its_statistics():
    # One BatchNormalization called on the site's branch and on another:
    # restarting its moving statistics would change the other branch's
    # predictions, so they are kept, and the event says why.
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(2, 128, 8)).astype("float32")
    second += 3.0
    a, b = keras.Input((8,), name="a"), keras.Input((8,), name="b")
    hidden = keras.layers.Dense(
        16, activation="relu", name="hidden", bias_initializer=HALF_DEAD_BIAS
    )(a)
    other = keras.layers.Dense(16, name="other")(b)
    shared = keras.layers.BatchNormalization(name="shared_bn")
    outputs = [
        keras.layers.Dense(1, name="next")(shared(hidden)),
        keras.layers.Dense(1, name="other_next")(shared(other)),
    ]
    model = keras.Model([a, b], outputs)
    model.compile("adam", ["mse", "mse"])
    model.fit([first, second], [Y[:128], Y[:128]], epochs=2, verbose=0)
    statistics_before = [np.array(w) for w in shared.get_weights()]
    predictions = model.predict([first, second], verbose=0)

    sites, window = window_statistics(model, [first, second])
    site = next(s for s in sites if s.name == "hidden")
    result = ReviveUnits().apply(model, site, window["hidden"])
    assert result[0] == 8
    assert (
        "moving mean and variance of shared_bn kept (called more than once)"
        in (result[2])
    )
    for before, after in zip(statistics_before, shared.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    revived = model.predict([first, second], verbose=0)
    for old, new in zip(predictions, revived, strict=True):
        assert np.max(np.abs(new - old)) < 1e-5
