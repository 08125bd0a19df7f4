import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import np_leaky_relu, np_leaky_relu_grad, outputs_and_gradients

from keras_deadrelu.layers import LeakyReLU

X = np.array([-1e3, -2.0, -0.5, 0.0, 0.5, 3.0], "float32")


def test_default_slope_is_one_hundredth():
    assert LeakyReLU().negative_slope == 0.01
    assert LeakyReLU().get_config()["negative_slope"] == 0.01


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.3, 2.0])
def test_outputs_and_gradients_against_numpy(slope):
    upstream = np.linspace(-1.0, 1.0, X.size).astype("float32")
    y, dx, weights = outputs_and_gradients(LeakyReLU(slope), X, upstream)
    assert weights == []  # the slope is not trainable
    np.testing.assert_allclose(y, np_leaky_relu(X, slope), rtol=1e-6)
    np.testing.assert_allclose(dx, np_leaky_relu_grad(X, slope) * upstream, rtol=1e-6)


def test_slope_is_a_non_trainable_float32_weight():
    keras.config.set_dtype_policy("mixed_float16")
    layer = LeakyReLU(0.2)
    layer.build((None, 3))
    assert layer.non_trainable_weights == [layer.negative_slope_variable]
    assert layer.negative_slope_variable.dtype == "float32"


def test_set_negative_slope_updates_config_and_output():
    layer = LeakyReLU(0.01)
    layer(X)
    layer.set_negative_slope(0.5)
    assert layer.get_config()["negative_slope"] == 0.5
    np.testing.assert_allclose(np.asarray(layer(X)), np_leaky_relu(X, 0.5))
    restored = LeakyReLU.from_config(layer.get_config())
    assert restored.negative_slope == 0.5


def test_set_negative_slope_before_build():
    layer = LeakyReLU(0.01)
    layer.set_negative_slope(0.25)
    np.testing.assert_allclose(np.asarray(layer(X)), np_leaky_relu(X, 0.25))


class _TraceCounter(keras.layers.Layer):
    """Identity layer that counts how often its `call` runs in Python."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.traces = 0

    def call(self, inputs):
        self.traces += 1
        return inputs


def test_slope_change_after_compiled_predict_needs_no_retrace():
    counter = _TraceCounter()
    leaky = LeakyReLU(0.01)
    model = keras.Sequential([keras.Input((X.size,)), counter, leaky])
    model.compile(jit_compile=True)
    x = X[None, :]
    np.testing.assert_allclose(
        model.predict(x, verbose=0)[0], np_leaky_relu(X, 0.01), rtol=1e-6
    )
    predict_function = model.predict_function
    traces = counter.traces
    leaky.set_negative_slope(0.5)
    np.testing.assert_allclose(
        model.predict(x, verbose=0)[0], np_leaky_relu(X, 0.5), rtol=1e-6
    )
    assert model.predict_function is predict_function
    assert counter.traces == traces


@pytest.mark.parametrize("slope", [-0.01, float("inf"), float("nan")])
def test_bad_slope(slope):
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(slope)
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU().set_negative_slope(slope)


def test_slope_of_wrong_type():
    with pytest.raises(TypeError, match="negative_slope"):
        LeakyReLU(None)


def _traced_step(layer, jit_compile):
    @tf.function(jit_compile=jit_compile)
    def step(x, upstream):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return y, tape.gradient(y, x, upstream)

    return step


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("change", ["set_negative_slope", "assign"])
def test_outputs_and_gradients_after_a_change_in_a_traced_step(jit_compile, change):
    # The trace is made with 0.01; the slope then changes to 0.5 (through the
    # setter, or by assigning the weight directly, which the layer does not
    # see): the same trace must compute with 0.5, forward and backward.
    layer = LeakyReLU(0.01)
    layer.build(X.shape)
    step = _traced_step(layer, jit_compile)
    upstream = np.linspace(-1.0, 1.0, X.size).astype("float32")
    y, dx = step(tf.constant(X), tf.constant(upstream))
    np.testing.assert_allclose(y, np_leaky_relu(X, 0.01), rtol=1e-6)
    np.testing.assert_allclose(dx, np_leaky_relu_grad(X, 0.01) * upstream, rtol=1e-6)
    if change == "assign":
        layer.negative_slope_variable.assign(0.5)
    else:
        layer.set_negative_slope(0.5)
    y, dx = step(tf.constant(X), tf.constant(upstream))
    np.testing.assert_allclose(y, np_leaky_relu(X, 0.5), rtol=1e-6)
    np.testing.assert_allclose(dx, np_leaky_relu_grad(X, 0.5) * upstream, rtol=1e-6)
    assert step.experimental_get_tracing_count() == 1


def _fused_kernel_slopes(layer, input_shape):
    """The `alpha` of every fused LeakyRelu op in a trace of `layer`."""
    graph = (
        tf.function(layer)
        .get_concrete_function(tf.TensorSpec(input_shape, "float32"))
        .graph.as_graph_def()
    )
    nodes = [node for function in graph.library.function for node in function.node_def]
    nodes += list(graph.node)
    return [node.attr["alpha"].f for node in nodes if node.op == "LeakyRelu"]


def test_a_trace_uses_the_fused_kernel_with_the_current_slope():
    layer = LeakyReLU(0.01)
    layer.build(X.shape)
    assert _fused_kernel_slopes(layer, X.shape) == [pytest.approx(0.01)]
    layer.set_negative_slope(0.3)
    assert _fused_kernel_slopes(layer, X.shape) == [pytest.approx(0.3)]


@pytest.mark.parametrize("load", ["load_weights", "set_weights", "assign"])
def test_loaded_slope_is_the_next_traces_fused_slope(tmp_path, load):
    saved = keras.Sequential([keras.Input(X.shape), LeakyReLU(0.3)])
    target = keras.Sequential([keras.Input(X.shape), LeakyReLU(0.01)])
    layer = target.layers[0]
    if load == "load_weights":
        path = str(tmp_path / "leaky.weights.h5")
        saved.save_weights(path)
        target.load_weights(path)
    elif load == "set_weights":
        target.set_weights(saved.get_weights())
    else:
        layer.negative_slope_variable.assign(0.3)
    assert layer.negative_slope == pytest.approx(0.3)
    assert _fused_kernel_slopes(layer, X.shape) == [pytest.approx(0.3)]
    np.testing.assert_allclose(
        target.predict(X[None], verbose=0)[0], np_leaky_relu(X, 0.3), rtol=1e-6
    )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_integer_inputs_give_float_outputs(jit_compile):
    layer = LeakyReLU(0.3)
    integers = np.array([-4, -1, 0, 2], "int32")
    expected = np_leaky_relu(integers.astype("float32"), 0.3)
    function = tf.function(layer, jit_compile=jit_compile)
    for call in (layer, function):
        y = call(tf.constant(integers))
        assert y.dtype == "float32"
        np.testing.assert_allclose(y, expected, rtol=1e-6)
    layer.negative_slope_variable.assign(0.5)  # the general form, same trace
    y = function(tf.constant(integers))
    assert y.dtype == "float32"
    np.testing.assert_allclose(y, np_leaky_relu(integers.astype("float32"), 0.5))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_slope_change_under_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    layer = LeakyReLU(0.01)
    layer.build(X.shape)
    step = _traced_step(layer, jit_compile=False)
    x = tf.constant(X)
    upstream = tf.ones(X.shape, policy.split("_")[1])
    tolerance = 1e-2 if policy == "mixed_bfloat16" else 1e-3
    for slope in (0.01, 0.5):
        layer.set_negative_slope(slope)
        y, dx = step(x, upstream)
        assert y.dtype == policy.split("_")[1]
        np.testing.assert_allclose(
            np.asarray(tf.cast(y, tf.float32)), np_leaky_relu(X, slope), rtol=tolerance
        )
        np.testing.assert_allclose(
            np.asarray(tf.cast(dx, tf.float32)),
            np_leaky_relu_grad(X, slope),
            rtol=tolerance,
        )
    assert step.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("jit_compile", [False, True])
def test_branch_on_the_slope_only_without_xla(jit_compile):
    # Without XLA the trace holds the fused kernel behind a branch on the
    # slope; XLA fuses the general form by itself, so it gets no branch.
    layer = LeakyReLU(0.01)
    layer.build(X.shape)
    function = tf.function(layer, jit_compile=jit_compile)
    graph = function.get_concrete_function(tf.TensorSpec(X.shape, "float32")).graph
    ops_traced = {node.op for node in graph.as_graph_def().node}
    assert bool(ops_traced & {"If", "StatelessIf"}) is not jit_compile
    np.testing.assert_allclose(function(X), np_leaky_relu(X, 0.01), rtol=1e-6)


def test_slope_follows_the_variable_dtype():
    layer = LeakyReLU(1 / 3, dtype="float64")
    x = np.array([-3.0, -1e-3, 0.0, 2.0])
    y = layer(x)
    assert layer.negative_slope_variable.dtype == "float64"
    assert y.dtype == "float64"
    # 1/3 held in float64: agrees with NumPy far below float32's precision.
    np.testing.assert_allclose(np.asarray(y), np_leaky_relu(x, 1 / 3), rtol=1e-15)
    assert layer.negative_slope == 1 / 3


@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool"])
def test_other_integer_and_bool_inputs_give_float_outputs(dtype):
    x = np.array([-4, -1, 0, 2, 1]).astype(dtype)
    y = LeakyReLU(0.3)(x)
    assert y.dtype == "float32"
    np.testing.assert_allclose(np.asarray(y), np_leaky_relu(x.astype("float64"), 0.3))


def test_slope_of_a_layer_built_inside_a_tf_function_can_change_after():
    layer = LeakyReLU(0.3)
    traced = tf.function(layer)
    x = tf.constant([[-10.0, 2.0]])
    np.testing.assert_allclose(traced(x).numpy(), [[-3.0, 2.0]], rtol=1e-6)
    # (A first call that creates variables is traced twice by TensorFlow.)
    tracings = traced.experimental_get_tracing_count()
    layer.set_negative_slope(0.1)
    np.testing.assert_allclose(traced(x).numpy(), [[-1.0, 2.0]], rtol=1e-6)
    assert traced.experimental_get_tracing_count() == tracings


@pytest.mark.parametrize("jit_compile", [False, True])
def test_stateless_call_in_a_tf_function_uses_the_slope_passed_in(jit_compile):
    # JAX-style training loops pass the weights' values in: the slope is then
    # a tensor of the trace, with no value to specialize the trace on.
    model = keras.Sequential([keras.Input((3,)), LeakyReLU(0.1)])
    x = tf.constant([[-2.0, 0.0, 3.0]])

    @tf.function(jit_compile=jit_compile)
    def stateless(slope):
        return model.stateless_call([], [slope], x)[0]

    for slope in (0.5, 0.7):
        np.testing.assert_allclose(
            stateless(tf.constant(slope)).numpy(), np_leaky_relu(x.numpy(), slope)
        )
    assert model.layers[0].negative_slope == pytest.approx(0.1)  # left as it was
