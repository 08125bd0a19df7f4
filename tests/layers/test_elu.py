import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import np_elu, np_elu_grad, outputs_and_gradients

from keras_deadrelu import activations
from keras_deadrelu.layers import ELU

X = np.array([-30.0, -3.0, -1.0, -0.25, 0.0, 0.5, 2.0, 40.0], "float32")


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5])
def test_outputs_and_gradients_against_numpy(alpha):
    upstream = np.linspace(-1.0, 2.0, X.size).astype("float32")
    y, dx, _ = outputs_and_gradients(ELU(alpha=alpha), X, upstream)
    np.testing.assert_allclose(y, np_elu(X, alpha), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        dx, np_elu_grad(X, alpha) * upstream, rtol=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_derivative_identity_on_negative_side(alpha):
    x = np.append(np.linspace(-8.0, -1e-3, 33), 0.0).astype("float32")
    y, dx, _ = outputs_and_gradients(ELU(alpha=alpha), x)
    # ELU'(x) = ELU(x) + alpha for x <= 0.
    np.testing.assert_allclose(dx, y.astype(np.float64) + alpha, atol=1e-6)


def test_tensor_alpha_path_matches_numpy():
    y = activations.elu(X, alpha=np.float32(0.7))
    np.testing.assert_allclose(np.asarray(y), np_elu(X, 0.7), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        ELU(alpha=alpha)


def test_alpha_of_wrong_type():
    with pytest.raises(TypeError, match="alpha"):
        ELU(alpha="1.0")


def _gradient_at_zero(function, jit_compile, dtype="float32"):
    @tf.function(jit_compile=jit_compile)
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x)
        return tape.gradient(y, x)

    return float(gradient(tf.constant([0.0], dtype))[0])


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0, 2.0, 2.5])
def test_gradient_at_zero_is_alpha(alpha, jit_compile):
    # f(x) = alpha * (exp(x) - 1) for x <= 0: f'(0) = alpha, as in Keras's ELU.
    expected = float(np_elu_grad(np.array([0.0]), alpha)[0])
    assert expected == alpha
    layer = ELU(alpha=alpha)
    assert _gradient_at_zero(layer, jit_compile) == pytest.approx(alpha, rel=1e-7)
    keras_layer = keras.layers.ELU(alpha=alpha)
    assert _gradient_at_zero(keras_layer, jit_compile) == pytest.approx(alpha)
    function_gradient = _gradient_at_zero(
        lambda x: activations.elu(x, alpha), jit_compile
    )
    assert function_gradient == pytest.approx(alpha, rel=1e-7)


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_gradient_at_zero_in_float16(alpha):
    assert _gradient_at_zero(ELU(alpha=alpha, dtype="float16"), False, "float16") == (
        alpha
    )


@pytest.mark.parametrize("alpha", [0.3, 2.5])
def test_tensor_alpha_gradients_match_numpy(alpha):
    x = tf.constant(X)
    alpha_tensor = tf.constant(alpha, "float32")
    upstream = np.linspace(-1.0, 2.0, X.size).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch([x, alpha_tensor])
        y = activations.elu(x, alpha=alpha_tensor)
    dx, dalpha = tape.gradient(y, [x, alpha_tensor], output_gradients=upstream)
    np.testing.assert_allclose(np.asarray(y), np_elu(X, alpha), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        np.asarray(dx), np_elu_grad(X, alpha) * upstream, rtol=1e-6, atol=1e-7
    )
    # d/dalpha of alpha * (exp(x) - 1) is exp(x) - 1, for x <= 0 only.
    expected_dalpha = np.sum(
        np.where(X <= 0, np.expm1(np.minimum(X, 0.0)), 0.0) * upstream
    )
    np.testing.assert_allclose(float(dalpha), expected_dalpha, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_and_bool_inputs_are_cast_to_the_compute_dtype(dtype):
    x = np.array([-3, -1, 0, 2, 1]).astype(dtype)
    y = ELU(alpha=0.5)(x)
    assert y.dtype == "float32"
    np.testing.assert_allclose(
        np.asarray(y), np_elu(x.astype("float64"), 0.5), rtol=1e-6, atol=1e-7
    )


def test_integer_inputs_under_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    y = ELU(alpha=2.0)(np.array([-1, 0, 3], "int32"))
    assert y.dtype == "bfloat16"
    np.testing.assert_allclose(
        np.asarray(tf.cast(y, "float32")), np_elu(np.array([-1, 0, 3]), 2.0), rtol=1e-2
    )


@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_a_float64_layer_computes_with_alpha_in_float64(alpha):
    """0.1 is not a float32 number: a float64 ELU must not round it."""
    x = np.array([-3.0, -1.0, -1e-3, 0.0, 2.0])
    y, dx, _ = outputs_and_gradients(ELU(alpha=alpha, dtype="float64"), x)
    # (float32's alpha would be off by ~1e-8, relative)
    np.testing.assert_allclose(np.asarray(y), np_elu(x, alpha), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(dx), np_elu_grad(x, alpha), rtol=1e-12)
