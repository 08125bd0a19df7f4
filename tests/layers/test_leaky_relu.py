import keras
import numpy as np
import pytest
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
