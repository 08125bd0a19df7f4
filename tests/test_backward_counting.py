"""Plain ReLU sites counted by their gradient, in the step's backward pass:
the compiled op against NumPy and TensorFlow's ReluGrad, and real fits whose
counts and weights are checked against NumPy and against a fit without the
monitor."""

import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from numpy_reference import dead_units, sampled_firing_rate

import keras_deadrelu as kd
from keras_deadrelu import backward_counting, native_unit_sums
from keras_deadrelu.sites import Site


@pytest.fixture
def relu_grad_op(counter_op):
    """``KerasDeadreluReluGradUnitSums`` (built with the other compiled op)."""
    return native_unit_sums.relu_grad_unit_sums_op()


# name: (shape, units)
CASES = {
    "dense": ((7, 3), 3),
    "one_unit": ((9, 1), 1),
    "conv_odd_rows": ((33, 9, 11, 5), 5),
    # 2**19 values: passed in two shards on a machine with 2 or more threads.
    "large": ((64, 32, 32, 8), 8),
    "per_position_units": ((5, 4, 3), 12),
    "empty_batch": ((0, 4), 4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_op_is_relu_grad_and_takes_the_unit_sums(relu_grad_op, case):
    shape, units = CASES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    features = np.maximum(rng.normal(size=shape), 0).astype("float32")
    gradients = rng.normal(size=shape).astype("float32")
    backprops, sums = relu_grad_op(gradients, features, units=units)

    expected = tf.raw_ops.ReluGrad(gradients=gradients, features=features)
    np.testing.assert_array_equal(backprops.numpy(), expected.numpy())
    np.testing.assert_array_equal(backprops.numpy(), gradients * (features > 0))
    matrix = features.reshape(-1, units).astype(np.float64)
    sums = sums.numpy()
    assert sums.dtype == np.float64 and sums.shape == (2 * units + 1,)
    np.testing.assert_array_equal(sums[:units], (matrix > 0).sum(axis=0))
    np.testing.assert_allclose(sums[units:-1], matrix.sum(axis=0), rtol=2e-6)
    assert sums[-1] == len(matrix)


def test_nan_and_inf_show_in_the_sum_and_are_never_counted(relu_grad_op):
    features = np.array([[1.0, 0.0, 2.0], [np.nan, 0.0, np.inf]], "float32")
    gradients = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], "float32")
    backprops, sums = relu_grad_op(gradients, features, units=3)
    # As ReluGrad: a product with the mask, so a NaN gradient stays NaN.
    np.testing.assert_array_equal(
        backprops.numpy(), [[1.0, np.nan, 3.0], [0.0, 0.0, 6.0]]
    )
    counts, totals = sums.numpy()[:3], sums.numpy()[3:6]
    assert counts.tolist() == [1, 0, 2]
    assert np.isnan(totals[0]) and totals[1] == 0 and np.isinf(totals[2])


def test_bad_shapes_are_refused(relu_grad_op):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="shape"):
        relu_grad_op(np.zeros((2, 3), "float32"), np.zeros((3, 2), "float32"), units=3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="divide into units"):
        relu_grad_op(np.zeros((2, 5), "float32"), np.zeros((2, 5), "float32"), units=3)


@pytest.mark.parametrize("in_graph", [False, True])
def test_its_gradient_is_relu_grads_gradient(relu_grad_op, in_graph):
    # Second order (a gradient penalty): the gradient of the op's backprops
    # is ReluGrad's, value for value.
    rng = np.random.default_rng(5)
    features = np.maximum(rng.normal(size=(6, 4)), 0).astype("float32")
    gradients = tf.constant(rng.normal(size=(6, 4)).astype("float32"))
    weights = tf.constant(rng.normal(size=(6, 4)).astype("float32"))

    def second_order(backward):
        with tf.GradientTape() as tape:
            tape.watch(gradients)
            backprops = backward(gradients)
            value = tf.reduce_sum(weights * backprops**2)
        return tape.gradient(value, gradients)

    def ours(upstream):
        return relu_grad_op(upstream, features, units=4)[0]

    def theirs(upstream):
        return tf.raw_ops.ReluGrad(gradients=upstream, features=features)

    if in_graph:
        ours_result = tf.function(lambda: second_order(ours))()
        theirs_result = tf.function(lambda: second_order(theirs))()
    else:
        ours_result, theirs_result = second_order(ours), second_order(theirs)
    np.testing.assert_array_equal(ours_result.numpy(), theirs_result.numpy())


def test_the_unit_sums_op_takes_precomputed_sites_as_they_are(counter_op):
    # Three sites: read from its values, precomputed (with a layer input and
    # a count slot), read again; the precomputed block goes in as it is.
    rng = np.random.default_rng(8)
    first = np.maximum(rng.normal(size=(6, 4)), 0).astype("float32")
    third = np.maximum(rng.normal(size=(6, 2, 2, 3)), 0).astype("float32")
    block = np.array([3.0, 0.0, 5.0, 1.5, 0.0, 7.25, 40.0])  # 3 units
    layer_input = rng.normal(size=(6, 5)).astype("float32")
    out = counter_op(
        values=[first, third],
        layer_inputs=[layer_input],
        precomputed=[block],
        units=[4, 3, 3],
        moments=[False, False, False],
        count_slot=[False, True, True],
        first_sample_only=[False, False, True],
        input_of=[-1, 0, -1],
        precomputed_of=[-1, 0, -1],
    ).numpy()
    first_part = np.concatenate(
        [(first > 0).sum(0), first.sum(0, dtype=np.float64), [6]]
    )
    sample = layer_input[:1].astype(np.float64)
    second_part = np.concatenate([block, [40.0, 0.5 * (sample**2).sum(), 5]])
    third_matrix = third.reshape(-1, 3).astype(np.float64)
    third_part = np.concatenate(
        [(third[:1].reshape(-1, 3) > 0).sum(0), third_matrix.sum(0), [24, 4]]
    )
    expected = np.concatenate([first_part, second_part, third_part])
    np.testing.assert_allclose(out, expected, rtol=2e-6)


def test_a_precomputed_site_with_moments_is_refused(counter_op):
    with pytest.raises(tf.errors.InvalidArgumentError, match="precomputed_of"):
        counter_op(
            values=[],
            layer_inputs=[],
            precomputed=[np.zeros(7)],
            units=[3],
            moments=[True],
            count_slot=[False],
            first_sample_only=[False],
            input_of=[-1],
            precomputed_of=[0],
        )


# ------------------------------------------------------------ in real fits
def _conv_model(relu_on_input: bool = False) -> keras.Model:
    """Plain ReLU sites of every form (a conv's activation, Activation,
    ReLU(), a Dense's activation) and one that is not plain (ReLU6); with
    `relu_on_input`, first an Activation("relu") of the model's input."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 2))
    x = inputs
    if relu_on_input:
        x = keras.layers.Activation("relu", name="input_relu")(x)
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(x)
    x = keras.layers.Conv2D(5, 3, name="conv_pre")(x)
    x = keras.layers.Activation("relu", name="act")(x)
    x = keras.layers.Conv2D(4, 1, name="conv_pre2")(x)
    x = keras.layers.ReLU(name="relu_layer")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(7, activation="relu", name="dense")(x)
    x = keras.layers.Dense(3, name="dense_pre")(x)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="output")(x))


PLAIN_SITES = ["conv", "act", "relu_layer", "dense"]


def _activations(
    model: keras.Model, x: np.ndarray, names=(*PLAIN_SITES, "relu6")
) -> dict[str, np.ndarray]:
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    return dict(zip(names, probe.predict(x, verbose=0), strict=True))


def _spy_on_the_op(monkeypatch) -> list[int]:
    """Counts the op's uses as steps are traced (the real op runs)."""
    uses = []
    real = native_unit_sums.relu_grad_unit_sums_op

    def counting_op():
        op = real()

        def use(*args, **kwargs):
            uses.append(kwargs.get("units"))
            return op(*args, **kwargs)

        return None if op is None else use

    monkeypatch.setattr(native_unit_sums, "relu_grad_unit_sums_op", counting_op)
    return uses


def _fit(model, x, y, callbacks, jit_compile=False, learning_rate=0.0):
    model.compile(
        keras.optimizers.SGD(learning_rate=learning_rate),
        "mse",
        jit_compile=jit_compile,
    )
    return model.fit(
        x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=callbacks
    )


def test_plain_relu_sites_are_counted_in_full_by_their_gradient(
    counter_op, monkeypatch
):
    uses = _spy_on_the_op(monkeypatch)
    model = _conv_model()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 2)).astype("float32")
    model.get_layer("conv").bias.assign([0.0, -50.0, 0.0, 0.0, 0.0, 0.0])
    expected = _activations(model, x)
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    _fit(model, x, np.zeros((64, 1), "float32"), [monitor])

    # One op per plain ReLU site (units 6, 5, 4, 7) in each trace of the
    # train step (tf.function traces twice when its first trace makes the
    # counters' variable).
    assert set(uses) == {6, 5, 4, 7} and len(uses) % 4 == 0
    window = monitor.last_window
    for name, activations in expected.items():
        moved = activations.reshape(-1, activations.shape[-1])
        site = window[name]
        np.testing.assert_array_equal(site.dead, dead_units(activations), name)
        # Every value counted, the conv sites' too (not the first sample).
        np.testing.assert_allclose(site.firing_rate, (moved > 0).mean(0), err_msg=name)
    assert window["conv"].dead.tolist() == [False, True, False, False, False, False]


def test_the_weights_are_those_of_a_fit_without_the_monitor(counter_op, monkeypatch):
    uses = _spy_on_the_op(monkeypatch)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 8, 8, 2)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    trained = []
    for callbacks in ([], [kd.DeadNeuronMonitor(log_dir=None, verbose=0)]):
        model = _conv_model()
        _fit(model, x, y, callbacks, learning_rate=0.05)
        trained.append(model.get_weights())
    assert uses, "the monitored fit did not count in the backward pass"
    for plain, monitored in zip(*trained, strict=True):
        np.testing.assert_allclose(monitored, plain, rtol=1e-5, atol=1e-6)


def test_a_site_no_gradient_reaches_is_counted_from_its_values(counter_op, monkeypatch):
    # A ReLU of the model's input: no weight before it, so the step takes no
    # gradient through it, and its sums come from its values (its firing
    # rate from each batch's first sample, as for any site read so).
    uses = _spy_on_the_op(monkeypatch)
    model = _conv_model(relu_on_input=True)
    x = np.random.default_rng(2).normal(size=(48, 8, 8, 2)).astype("float32")
    x[..., 1] = -np.abs(x[..., 1])  # channel 1 never fires
    expected = _activations(model, x, ["input_relu", "conv"])
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    _fit(model, x, np.zeros((48, 1), "float32"), [monitor])

    assert set(uses) == {6, 5, 4, 7}  # none for the input's two channels
    window = monitor.last_window
    assert window["input_relu"].dead.tolist() == [False, True]
    expected_rate = sampled_firing_rate(expected["input_relu"], [0, 16, 32])
    np.testing.assert_allclose(window["input_relu"].firing_rate, expected_rate)
    conv = expected["conv"].reshape(-1, 6)
    np.testing.assert_allclose(window["conv"].firing_rate, (conv > 0).mean(0))


@pytest.mark.parametrize(
    "setting", ["jit_compile", "mixed_float16", "native_ops_off", "eager"]
)
def test_elsewhere_the_values_are_read_as_before(counter_op, monkeypatch, setting):
    uses = _spy_on_the_op(monkeypatch)
    if setting == "native_ops_off":
        monkeypatch.setenv(native_unit_sums.ENABLE_VARIABLE, "0")
    if setting == "mixed_float16":
        keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _conv_model()
    finally:
        keras.config.set_dtype_policy("float32")
    if setting == "eager":
        model.compile(keras.optimizers.SGD(0.0), "mse", run_eagerly=True)
    x = np.random.default_rng(4).normal(size=(32, 8, 8, 2)).astype("float32")
    expected = _activations(model, x)
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    if setting == "eager":
        model.fit(x, np.zeros((32, 1)), batch_size=16, verbose=0, callbacks=[monitor])
    else:
        _fit(
            model, x, np.zeros((32, 1), "float32"), [monitor], setting == "jit_compile"
        )
    assert uses == []
    for name, activations in expected.items():
        dead = monitor.last_window[name].dead
        np.testing.assert_array_equal(dead, dead_units(activations), name)


def test_only_keras_plain_relus_qualify():
    def relu(x):  # a user's own function named relu
        return keras.activations.relu(x) - 1.0

    assert backward_counting.applies_to(Site("s", keras.layers.ReLU(), "relu"))
    assert backward_counting.applies_to(
        Site("s", keras.layers.Conv2D(2, 1, activation=tf.nn.relu), "relu")
    )
    for layer in (
        keras.layers.ReLU(negative_slope=0.1),
        keras.layers.ReLU(threshold=0.5),
        keras.layers.Dense(3, activation=relu),
        keras.layers.Dense(3, activation="relu6"),
        keras.layers.Activation("elu"),
        keras.layers.SimpleRNN(3, activation="relu"),  # in a loop, not last
        kd.layers.LeakyReLU(),
    ):
        assert not backward_counting.applies_to(Site("s", layer, "relu")), layer


def test_the_module_can_be_reloaded():
    # Jupyter's autoreload: the gradient's registration must not fail twice.
    import importlib

    importlib.reload(backward_counting)


def test_a_dense_sites_batch_walks_back_through_the_custom_gradient():
    # Where stock ops sum the step (a channels-first conv site beside), the
    # Dense sites of one batch are still put side by side: the walk to their
    # batch's tensor goes through the custom gradient's IdentityN.
    from keras_deadrelu.counters import _batch_source

    found = []

    @tf.function
    def step(x, kernel):
        @tf.custom_gradient
        def relu(pre_activation):
            return tf.nn.relu(pre_activation), lambda upstream: upstream

        outputs = relu(tf.matmul(x, kernel))
        assert outputs.op.type == "IdentityN"
        found.append(_batch_source(outputs) is x)
        return outputs

    step.get_concrete_function(tf.TensorSpec([None, 3]), tf.TensorSpec([3, 4]))
    assert found == [True]
