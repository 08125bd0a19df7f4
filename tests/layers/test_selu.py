import keras
import numpy as np
import pytest
from helpers import SELU_ALPHA, SELU_SCALE, np_selu, np_selu_grad, outputs_and_gradients

from keras_deadrelu import activations
from keras_deadrelu.layers import SELU


def test_constants():
    assert activations.SELU_ALPHA == SELU_ALPHA
    assert activations.SELU_SCALE == SELU_SCALE


def test_outputs_and_gradients_against_numpy():
    x = np.array([-20.0, -2.0, -0.5, 0.25, 1.0, 30.0], "float32")
    upstream = np.linspace(0.5, 1.5, x.size).astype("float32")
    y, dx, _ = outputs_and_gradients(SELU(), x, upstream)
    np.testing.assert_allclose(y, np_selu(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, np_selu_grad(x) * upstream, rtol=1e-6, atol=1e-7)


def test_fixed_point_of_standard_normal_input():
    x = keras.random.normal((200_000,), seed=3)
    y = np.asarray(SELU()(x), np.float64)
    assert abs(y.mean()) < 0.01
    assert abs(y.var() - 1.0) < 0.02


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_and_bool_inputs_are_cast_to_the_compute_dtype(dtype):
    x = np.array([-3, -1, 0, 2, 1]).astype(dtype)
    y = SELU()(x)
    assert y.dtype == "float32"
    np.testing.assert_allclose(
        np.asarray(y), np_selu(x.astype("float64")), rtol=1e-6, atol=1e-7
    )


def test_integer_inputs_under_mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    y = SELU()(np.array([-1, 0, 3], "int32"))
    assert y.dtype == "float16"
    np.testing.assert_allclose(
        np.asarray(y, np.float32), np_selu(np.array([-1, 0, 3])), rtol=2e-3
    )
