"""Finding sites: every ReLU-family activation, in model order, nested too."""

import keras
import numpy as np
import pytest
from helpers import fit_collecting_warnings

import keras_deadrelu as kd
from keras_deadrelu.sites import activation_kind, site_output_shapes


def test_finds_every_kind_of_site_and_skips_the_rest():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="selu", name="d")],
        name="inner",
    )
    outer = keras.Sequential([keras.Input((4,)), inner], name="outer")
    inputs = keras.Input((4,))
    layers = [
        keras.layers.Dense(4, activation="relu", name="dense_relu"),
        keras.layers.Dense(4, activation="relu6", name="dense_relu6"),
        keras.layers.Dense(4, activation="leaky_relu", name="dense_leaky"),
        keras.layers.Dense(4, activation="elu", name="dense_elu"),
        keras.layers.Dense(4, activation="tanh", name="dense_tanh"),
        keras.layers.Dense(4, name="dense_linear"),
        keras.layers.ReLU(name="relu"),
        keras.layers.LeakyReLU(name="keras_leaky"),
        keras.layers.PReLU(name="keras_prelu"),
        keras.layers.ELU(name="keras_elu"),
        keras.layers.Activation("relu", name="activation_relu"),
        keras.layers.Activation("selu", name="activation_selu"),
        keras.layers.Activation("sigmoid", name="activation_sigmoid"),
        kd.layers.PReLU(name="kd_prelu"),
        kd.layers.ELU(name="kd_elu"),
        kd.layers.SELU(name="kd_selu"),
        kd.layers.LeakyReLU(name="kd_leaky"),
        kd.layers.SELUDense(4, name="kd_selu_dense"),
        outer,
    ]
    hidden = inputs
    for layer in layers:
        hidden = layer(hidden)
    model = keras.Model(inputs, hidden)
    found = [(site.name, site.kind) for site in kd.find_sites(model)]
    assert found == [
        ("dense_relu", "relu"),
        ("dense_relu6", "relu6"),
        ("dense_leaky", "leaky_relu"),
        ("dense_elu", "elu"),
        ("relu", "relu"),
        ("keras_leaky", "leaky_relu"),
        ("keras_prelu", "prelu"),
        ("keras_elu", "elu"),
        ("activation_relu", "relu"),
        ("activation_selu", "selu"),
        ("kd_prelu", "prelu"),
        ("kd_elu", "elu"),
        ("kd_selu", "selu"),
        ("kd_leaky", "leaky_relu"),
        ("kd_selu_dense", "selu"),
        ("outer/inner/d", "selu"),
    ]


def test_shared_layer_is_one_site():
    shared = keras.layers.Dense(3, activation="relu", name="shared")
    first, second = keras.Input((3,)), keras.Input((3,))
    model = keras.Model(
        [first, second], keras.layers.Add()([shared(first), shared(second)])
    )
    assert [site.name for site in kd.find_sites(model)] == ["shared"]


def test_subclassed_model_with_layer_attributes():
    class Tower(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(5, activation="relu", name="hidden")
            self.head = keras.layers.Dense(1, name="head")

        def call(self, inputs):
            return self.head(self.hidden(inputs))

    model = Tower()
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    model(x[:1])
    kernel, bias = model.hidden.get_weights()
    expected = float((~((x @ kernel + bias) > 0).any(axis=0)).mean())
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    history = model.fit(x, np.zeros((40, 1)), epochs=1, verbose=0, callbacks=[monitor])
    assert history.history["dead_fraction/hidden"] == [pytest.approx(expected)]


CONV_LAYERS = [
    ((9, 2), keras.layers.Conv1D(3, 2, activation="relu")),
    ((6, 6, 2), keras.layers.Conv2D(3, 2, activation="relu")),
    ((4, 4, 4, 2), keras.layers.Conv3D(3, 2, activation="relu")),
    ((6, 6, 2), keras.layers.DepthwiseConv2D(2, depth_multiplier=2, activation="relu")),
    ((6, 6, 2), keras.layers.SeparableConv2D(3, 2, activation="relu")),
    ((6, 6, 2), keras.layers.Conv2DTranspose(3, 2, activation="relu")),
    (
        (2, 6, 6),
        keras.layers.Conv2D(3, 2, activation="relu", data_format="channels_first"),
    ),
]


@pytest.mark.parametrize(
    "input_shape, layer", CONV_LAYERS, ids=lambda v: getattr(v, "name", "")
)
def test_conv_sites_count_channels_against_numpy(input_shape, layer):
    inputs = keras.Input(input_shape)
    conv = layer
    outputs = keras.layers.Flatten()(conv(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(outputs))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(1).normal(size=(12, *input_shape)).astype("float32")
    # Reference: the layer's own outputs, counted per channel in NumPy.
    activations = np.asarray(conv(x))
    channel_axis = 1 if getattr(conv, "data_format", "") == "channels_first" else -1
    moved = np.moveaxis(activations, channel_axis, -1)
    expected_dead = ~(moved > 0).reshape(-1, moved.shape[-1]).any(axis=0)

    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    model.fit(x, np.zeros((12, 1)), epochs=1, verbose=0, callbacks=[monitor])
    site = monitor.last_window[conv.name]
    assert site.unit_count == moved.shape[-1]
    np.testing.assert_array_equal(site.dead, expected_dead)


def test_activation_kind_uses_marker_attribute():
    class Marked:
        relu_family = "leaky_relu"

        def __call__(self, x):
            return x

    assert activation_kind(Marked()) == "leaky_relu"
    assert activation_kind(None) is None


def test_shared_layer_counts_every_call():
    shared = keras.layers.Dense(6, activation="relu", name="shared")
    first, second = keras.Input((3,)), keras.Input((3,))
    merged = keras.layers.Concatenate()([shared(first), shared(second)])
    model = keras.Model([first, second], keras.layers.Dense(1)(merged))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(40, 3)).astype("float32")
    b = (rng.normal(size=(40, 3)) + 3).astype("float32")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    model.fit([a, b], np.zeros((40, 1)), epochs=1, verbose=0, callbacks=[monitor])
    kernel, bias = shared.get_weights()
    fired = ((a @ kernel + bias) > 0).sum(0) + ((b @ kernel + bias) > 0).sum(0)
    site = monitor.last_window["shared"]
    assert site.element_count == 80
    np.testing.assert_allclose(site.firing_rate, fired / 80)


SHARED_X = np.random.default_rng(4).normal(size=(32, 4)).astype("float32")
HALF_DEAD_8 = keras.initializers.Constant([-100.0] * 4 + [100.0] * 4)


@pytest.mark.parametrize("second_width", [8, 16])
def test_one_relu_layer_reused_after_two_dense_layers_is_left_out(second_width):
    """Its calls' units are different neurons (the first layer's half dead,
    the second's all alive): one site would merge them, and with widths that
    differ, fail. The site is left out with a warning; the others count."""
    relu = keras.layers.ReLU(name="relu")
    inputs = keras.Input((4,))
    first = keras.layers.Dense(8, name="first", bias_initializer=HALF_DEAD_8)
    hidden = relu(first(inputs))
    hidden = relu(keras.layers.Dense(second_width, name="second")(hidden))
    hidden = keras.layers.Dense(8, activation="relu", name="third")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    with pytest.warns(kd.DeadNeuronWarning, match=r"relu \(one ReLU layer called "):
        history = model.fit(
            SHARED_X, np.zeros((32, 1)), epochs=2, verbose=0, callbacks=[monitor]
        )
    assert [site.name for site in monitor.sites] == ["third"]
    assert "dead_fraction/relu" not in history.history
    assert len(history.history["dead_fraction/third"]) == 2
    with pytest.warns(kd.DeadNeuronWarning, match="one ReLU layer called after"):
        assert set(kd.dead_fractions(model, SHARED_X)) == {"third"}


@pytest.mark.parametrize("dropouts", [False, True])
def test_one_relu_layer_after_one_shared_dense_layer_is_kept(dropouts):
    """Called on two outputs of ONE shared Dense layer (through a Dropout of
    each branch's own, too): the same neurons on two inputs, counted together
    like the shared layer's own calls."""
    shared, relu = keras.layers.Dense(6, name="shared"), keras.layers.ReLU(name="relu")
    first, second = keras.Input((4,)), keras.Input((4,))
    branches = [shared(first), shared(second)]
    if dropouts:
        branches = [keras.layers.Dropout(0.2)(branch) for branch in branches]
    merged = keras.layers.Concatenate()([relu(branch) for branch in branches])
    model = keras.Model([first, second], keras.layers.Dense(1)(merged))
    fractions = kd.dead_fractions(model, [SHARED_X, SHARED_X + 3])
    assert list(fractions) == ["relu"]
    kernel, bias = shared.get_weights()
    fired = np.maximum(SHARED_X @ kernel + bias, 0).max(0) + np.maximum(
        (SHARED_X + 3) @ kernel + bias, 0
    ).max(0)
    assert fractions["relu"] == pytest.approx(np.mean(fired == 0))


def test_a_subclassed_models_relu_reused_on_other_widths_is_left_out_at_trace():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.narrow = keras.layers.Dense(8)
            self.wide = keras.layers.Dense(16)
            self.relu = keras.layers.ReLU(name="shared_relu")
            self.last = keras.layers.Dense(8, activation="relu", name="last")
            self.head = keras.layers.Dense(1)

        def call(self, x):
            return self.head(self.last(self.relu(self.wide(self.relu(self.narrow(x))))))

    model = Net()
    model.compile(keras.optimizers.SGD(0.0), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    history, messages = fit_collecting_warnings(
        model, SHARED_X, np.zeros((32, 1)), monitor
    )
    left_out = [m for m in messages if "'shared_relu' is left out" in m]
    assert len(left_out) == 1 and "(8,), (16,)" in left_out[0]
    assert not any("no output of these sites" in m for m in messages)
    assert [key for key in history.history if key.startswith("dead_fraction/")] == [
        "dead_fraction/last"
    ]


@pytest.mark.parametrize(
    "between",
    [[], [keras.layers.BatchNormalization(axis=1, center=False, scale=False)]],
    ids=["conv_relu", "conv_bn_relu"],
)
def test_relu_layer_after_a_channels_first_conv_counts_channels(between):
    inputs = keras.Input((3, 9, 9))
    conv = keras.layers.Conv2D(
        4,
        3,
        padding="same",
        data_format="channels_first",
        bias_initializer=keras.initializers.Constant([-50.0, -50.0, 0.0, 0.0]),
    )
    hidden = conv(inputs)
    for layer in between:
        hidden = layer(hidden)
    relu = keras.layers.ReLU(name="relu")
    activations = relu(hidden)
    model = keras.Model(
        inputs, keras.layers.Dense(1)(keras.layers.Flatten()(activations))
    )
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(0).normal(size=(16, 3, 9, 9)).astype("float32")
    # Reference: the ReLU layer's outputs in training mode (BatchNorm on the
    # batch's statistics: one batch of 16, as in fit), per channel (axis 1).
    outputs = np.asarray(keras.Model(inputs, activations)(x, training=True))
    expected_dead = ~(np.moveaxis(outputs, 1, -1) > 0).reshape(-1, 4).any(axis=0)

    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    model.fit(x, np.zeros((16, 1)), epochs=1, verbose=0, callbacks=[monitor])
    site = monitor.last_window["relu"]
    assert site.unit_count == 4
    np.testing.assert_array_equal(site.dead, expected_dead)
    if not between:  # without BatchNorm, channels 0 and 1 are dead by design
        np.testing.assert_array_equal(expected_dead, [True, True, False, False])
    else:  # BatchNorm centres every channel on the batch: all fire somewhere
        assert not expected_dead.any()
    if not between:  # the probe runs in inference mode
        assert kd.dead_fractions(model, x)["relu"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "recurrent",
    [
        keras.layers.SimpleRNN(5, activation="relu"),
        keras.layers.LSTM(5, activation="relu"),
        keras.layers.Bidirectional(keras.layers.GRU(5, activation="relu")),
    ],
    ids=["simple_rnn", "lstm", "bidirectional_gru"],
)
def test_recurrent_layers_are_not_sites_and_train_with_the_monitor(recurrent):
    model = keras.Sequential(
        [
            keras.Input((7, 3)),
            recurrent,
            keras.layers.Dense(4, activation="relu", name="after"),
            keras.layers.Dense(1),
        ]
    )
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(16, 7, 3)).astype("float32")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    history = model.fit(x, x[:, -1, :1], epochs=1, verbose=0, callbacks=[monitor])
    assert [site.name for site in monitor.sites] == ["after"]
    assert "dead_fraction/after" in history.history


def _merged_then_relu(inputs):
    first = keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first")
    second = keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first")
    return keras.layers.Add()([first(inputs), second(inputs)]), 1


def _transposed_then_relu(inputs):
    conv = keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first")
    # A Lambda may move the channels anywhere: the layout is not followed.
    return keras.layers.Lambda(lambda t: keras.ops.transpose(t, (0, 2, 3, 1)))(
        conv(inputs)
    ), -1


def _permuted_to_last_then_relu(inputs):
    conv = keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first")
    return keras.layers.Permute((2, 3, 1))(conv(inputs)), -1


def _permuted_rows_then_relu(inputs):
    conv = keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first")
    return keras.layers.Permute((1, 3, 2))(conv(inputs)), 1


def _nested_model_then_relu(inputs):
    backbone_inputs = keras.Input((3, 9, 9))
    backbone = keras.Model(
        backbone_inputs,
        keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first")(
            backbone_inputs
        ),
        name="backbone",
    )
    return backbone(inputs), 1


@pytest.mark.parametrize(
    "build",
    [
        _merged_then_relu,
        _transposed_then_relu,
        _permuted_to_last_then_relu,
        _permuted_rows_then_relu,
        _nested_model_then_relu,
    ],
)
def test_relu_layer_channels_through_merges_but_not_through_lambdas(build):
    inputs = keras.Input((3, 9, 9))
    before_relu, channel_axis = build(inputs)
    activations = keras.layers.ReLU(name="relu")(before_relu)
    flat = keras.layers.Flatten()(activations)
    model = keras.Model(inputs, keras.layers.Dense(1)(flat))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(1).normal(size=(8, 3, 9, 9)).astype("float32")
    outputs = np.asarray(keras.Model(inputs, activations)(x))
    moved = np.moveaxis(outputs, channel_axis, -1)
    expected_dead = ~(moved > 0).reshape(-1, moved.shape[-1]).any(axis=0)
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    model.fit(x, np.zeros((8, 1)), epochs=1, verbose=0, callbacks=[monitor])
    site = monitor.last_window["relu"]
    assert site.unit_count == 4  # the conv's 4 channels, wherever they sit
    np.testing.assert_array_equal(site.dead, expected_dead)


def test_relu_inside_a_nested_model_takes_the_outer_convs_channels():
    head_inputs = keras.Input((4, 9, 9))
    head = keras.Sequential(
        [head_inputs, keras.layers.ReLU(name="relu"), keras.layers.Flatten()],
        name="head",
    )
    inputs = keras.Input((3, 9, 9))
    conv = keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first")
    features = conv(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(head(features)))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(2).normal(size=(8, 3, 9, 9)).astype("float32")
    # Reference: the conv's outputs through a ReLU, per channel (axis 1).
    outputs = np.maximum(np.asarray(conv(x)), 0.0)
    expected_dead = ~(np.moveaxis(outputs, 1, -1) > 0).reshape(-1, 4).any(axis=0)
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    model.fit(x, np.zeros((8, 1)), epochs=1, verbose=0, callbacks=[monitor])
    assert [site.channel_axis for site in monitor.sites] == [1]
    site = monitor.last_window["head/relu"]
    assert site.unit_count == 4
    np.testing.assert_array_equal(site.dead, expected_dead)


def test_channel_axis_through_a_deep_residual_stack_in_linear_time():
    # 60 identity blocks of channels_first convs, ReLU after each Add: every
    # ReLU's channels are axis 1. Gated blocks (Multiply of two walks) would
    # make an unshared walk exponential.
    inputs = keras.Input((4, 5, 5))
    x = keras.layers.Conv2D(4, 1, data_format="channels_first")(inputs)
    for index in range(60):
        branch = keras.layers.Conv2D(4, 1, data_format="channels_first")(x)
        gate = keras.layers.Activation("sigmoid")(x)
        merged = keras.layers.Add()([keras.layers.Multiply()([x, gate]), branch])
        x = keras.layers.ReLU(name=f"relu_{index}")(merged)
    model = keras.Model(inputs, x)
    sites = kd.find_sites(model)
    assert len(sites) == 60
    assert {site.channel_axis for site in sites} == {1}


def test_batch_norm_on_the_default_axis_keeps_the_convs_channels():
    inputs = keras.Input((3, 6, 6))
    conv = keras.layers.Conv2D(4, 3, data_format="channels_first")(inputs)
    normalised = keras.layers.BatchNormalization()(conv)  # axis=-1: a slip
    relu = keras.layers.ReLU(name="relu")(normalised)
    (site,) = kd.find_sites(keras.Model(inputs, relu))
    assert site.channel_axis == 1


@pytest.mark.parametrize(
    "build", ["added", "popped_and_re_added", "relu_shared_with_another_model"]
)
def test_relu_layer_in_a_sequential_built_by_add_takes_the_convs_channels(build):
    # Each add() rebuilds the Sequential's graph, and the ReLU layer keeps
    # the calls of every graph it was in: one on a channels-last conv since
    # popped, or in another model. Only this model's graph counts.
    conv = keras.layers.Conv2D(
        4,
        3,
        padding="same",
        data_format="channels_first",
        bias_initializer=keras.initializers.Constant([-50.0, -50.0, 0.0, 0.0]),
        name="conv",
    )
    relu = keras.layers.ReLU(name="relu")
    model = keras.Sequential()
    model.add(keras.Input((3, 9, 9)))
    if build == "popped_and_re_added":
        model.add(keras.layers.Conv2D(4, 3, padding="same"))  # channels last
        model.add(relu)
        model.pop()
        model.pop()
    elif build == "relu_shared_with_another_model":
        other = keras.Input((9, 9, 3))
        keras.Model(other, relu(keras.layers.Conv2D(4, 3)(other)))
    for layer in (conv, relu, keras.layers.Flatten(), keras.layers.Dense(1)):
        model.add(layer)
    assert len(relu._inbound_nodes) > 1  # calls from other graphs
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(3).normal(size=(8, 3, 9, 9)).astype("float32")
    # Reference: the conv's outputs through a ReLU, per channel (axis 1).
    outputs = np.maximum(np.asarray(conv(x)), 0.0)
    expected_dead = ~(np.moveaxis(outputs, 1, -1) > 0).reshape(-1, 4).any(axis=0)
    np.testing.assert_array_equal(expected_dead, [True, True, False, False])

    (site,) = kd.find_sites(model)
    assert site.channel_axis == 1
    assert site_output_shapes(site) == [(None, 4, 9, 9)]
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0, granularity="channel")
    model.fit(x, np.zeros((8, 1)), epochs=1, verbose=0, callbacks=[monitor])
    window = monitor.last_window["relu"]
    assert window.unit_count == 4
    np.testing.assert_array_equal(window.dead, expected_dead)
    assert kd.dead_fractions(model, x)["relu"] == pytest.approx(0.5)
