import keras
import numpy as np
import pytest
from helpers import np_selu, np_selu_grad, outputs_and_gradients

from keras_deadrelu.layers import SELUDense


def test_defaults():
    layer = SELUDense(3)
    config = layer.get_config()
    assert config["kernel_initializer"]["class_name"] == "LecunNormal"
    assert config["activation"] == "selu"
    restored = SELUDense.from_config(config)
    assert restored.get_config() == config
    # None means the default, as for Dense: lecun_normal here.
    explicit_none = SELUDense(3, kernel_initializer=None).get_config()
    assert explicit_none["kernel_initializer"]["class_name"] == "LecunNormal"


def test_outputs_and_gradients_against_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5)).astype("float32")
    upstream = rng.normal(size=(6, 3)).astype("float32")
    layer = SELUDense(3, bias_initializer="random_normal")
    layer.build(x.shape)
    kernel = np.asarray(layer.kernel, np.float64)
    bias = np.asarray(layer.bias, np.float64)
    z = x.astype(np.float64) @ kernel + bias
    y, dx, (dkernel, dbias) = outputs_and_gradients(layer, x, upstream)
    dz = np_selu_grad(z) * upstream
    np.testing.assert_allclose(y, np_selu(z), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, dz @ kernel.T, rtol=1e-5, atol=1e-6)
    expected_dkernel = x.T.astype(np.float64) @ dz
    np.testing.assert_allclose(dkernel, expected_dkernel, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dbias, dz.sum(axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", None, "linear", keras.activations.relu])
def test_other_activation_is_rejected(activation):
    with pytest.raises(ValueError, match="activation"):
        SELUDense(3, activation=activation)


def test_selu_activation_is_accepted():
    assert SELUDense(3, activation="selu").get_config()["activation"] == "selu"


def _layer_moments(kernel_initializer, depth=32, width=64, samples=4096):
    x = keras.random.normal((samples, width), seed=7)
    moments = []
    for _ in range(depth):
        x = SELUDense(width, kernel_initializer=kernel_initializer)(x)
        values = np.asarray(x, np.float64)
        moments.append((values.mean(), values.var()))
    return moments


def test_self_normalization_over_32_layers():
    for mean, variance in _layer_moments("lecun_normal"):
        assert abs(mean) <= 0.1
        assert abs(variance - 1.0) <= 0.15


def test_he_normal_breaks_self_normalization():
    moments = _layer_moments("he_normal")
    outside = [abs(m) > 0.1 or abs(v - 1.0) > 0.15 for m, v in moments]
    assert any(outside)


@pytest.mark.parametrize("dtype", ["int32", "bool"])
def test_integer_and_bool_inputs(dtype):
    x = np.array([[-2, 0, 3, 1], [1, 1, -1, 0]]).astype(dtype)
    layer = SELUDense(3, bias_initializer="random_normal")
    y = layer(x)
    assert y.dtype == "float32"
    z = x.astype(np.float64) @ np.asarray(layer.kernel, np.float64)
    z += np.asarray(layer.bias, np.float64)
    np.testing.assert_allclose(np.asarray(y), np_selu(z), rtol=1e-5, atol=1e-6)
