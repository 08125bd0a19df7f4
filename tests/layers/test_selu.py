import keras
import numpy as np
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
