"""The activation functions of `keras_deadrelu.activations` on inputs the
layers do not see: integer inputs with a tensor slope, bools as arguments,
float64 inputs; against NumPy."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import np_elu, np_leaky_relu

from keras_deadrelu import activations

INTEGERS = np.array([-3, -1, 0, 2, 5])


@pytest.mark.parametrize(
    "slope",
    [0.25, tf.constant(0.25), tf.Variable(0.25)],
    ids=["number", "tensor", "variable"],
)
def test_integer_inputs_are_cast_to_float_whatever_the_slope(slope):
    # Cast to the integer dtype, a tensor slope of 0.25 would round to 0.
    y = activations.leaky_relu(INTEGERS, slope).numpy()
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np_leaky_relu(INTEGERS.astype("float64"), 0.25))


def test_integer_inputs_of_elu_and_selu_are_cast_to_float():
    np.testing.assert_allclose(
        activations.elu(INTEGERS, alpha=tf.constant(0.5)).numpy(),
        np_elu(INTEGERS.astype("float64"), 0.5),
        rtol=1e-6,
    )
    assert activations.selu(INTEGERS).numpy().dtype == np.float32


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: activations.elu([-1.0, 2.0], alpha=False), "alpha"),
        (lambda: activations.elu([-1.0, 2.0], alpha=True), "alpha"),
        (lambda: activations.leaky_relu([-1.0, 2.0], True), "negative_slope"),
        (lambda: activations.leaky_relu([-1.0, 2.0], np.bool_(True)), "negative_slope"),
    ],
)
def test_a_bool_is_not_a_slope(call, name):
    with pytest.raises(TypeError, match=rf"`{name}`.*Received: {name}="):
        call()


def test_float64_leaky_relu_is_exact():
    # TensorFlow's fused kernel keeps its slope in float32 (0.1 would be off
    # by about 1.5e-9 relative).
    x = np.array([-3.0, -1e-3, 0.0, 7.0])
    for slope in (0.1, tf.constant(0.1, tf.float64)):
        y = activations.leaky_relu(x, slope).numpy()
        assert y.dtype == np.float64
        np.testing.assert_array_equal(y, np.where(x > 0, x, 0.1 * x))
