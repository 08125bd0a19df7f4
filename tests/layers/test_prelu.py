import keras
import numpy as np
import pytest
from helpers import assert_config_round_trip, outputs_and_gradients

from keras_deadrelu.layers import PReLU


def _np_prelu(x, alpha):
    return np.where(x >= 0, x, alpha * x)


def test_default_is_one_slope_per_channel_starting_at_quarter():
    layer = PReLU()
    layer.build((None, None, None, 3))
    assert tuple(layer.alpha.shape) == (3,)
    np.testing.assert_allclose(np.asarray(layer.alpha), 0.25)


def test_outputs_and_gradients_against_numpy_per_channel():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    layer = PReLU(alpha_initializer=keras.initializers.RandomUniform(0.1, 0.9))
    layer.build(x.shape)
    alpha = np.asarray(layer.alpha, np.float64)
    y, dx, (dalpha,) = outputs_and_gradients(layer, x, upstream)
    np.testing.assert_allclose(y, _np_prelu(x, alpha), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, np.where(x >= 0, 1.0, alpha) * upstream, rtol=1e-6)
    expected_dalpha = np.where(x < 0, x * upstream, 0.0).sum(axis=(0, 1))
    np.testing.assert_allclose(dalpha, expected_dalpha, rtol=1e-5, atol=1e-6)


def test_unknown_spatial_sizes():
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, PReLU()(inputs))
    x = np.full((1, 3, 5, 2), -4.0, "float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), -1.0)


def test_shared_axes_all_is_a_single_slope():
    layer = PReLU(shared_axes="all", alpha_initializer=0.5)
    x = np.array([[-2.0, 4.0], [-6.0, -1.0]], "float32")
    y, _, (dalpha,) = outputs_and_gradients(layer, x)
    assert tuple(layer.alpha.shape) == ()
    np.testing.assert_allclose(y, _np_prelu(x, 0.5))
    np.testing.assert_allclose(dalpha, -9.0)


def test_shared_axes_list_keeps_keras_semantics():
    layer = PReLU(shared_axes=[1])
    layer.build((None, 5, 3))
    assert tuple(layer.alpha.shape) == (1, 3)
    per_element = PReLU(shared_axes=[])
    per_element.build((None, 5, 3))
    assert tuple(per_element.alpha.shape) == (5, 3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"shared_axes": [0]}, ValueError, "shared_axes"),
        ({"shared_axes": "channels"}, ValueError, "shared_axes"),
        ({"shared_axes": [1.5]}, TypeError, "shared_axes"),
        ({"alpha_initializer": -0.1}, ValueError, "alpha_initializer"),
        ({"alpha_initializer": float("nan")}, ValueError, "alpha_initializer"),
        (
            {"alpha_initializer": keras.initializers.Constant(float("inf"))},
            ValueError,
            "alpha_initializer",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        PReLU(**kwargs)


def test_shared_axes_out_of_range_is_caught_at_build():
    layer = PReLU(shared_axes=[3])
    with pytest.raises(ValueError, match=r"shared_axes.*Received: shared_axes=\[3\]"):
        layer.build((None, 4, 2))


@pytest.mark.parametrize("axes", [[1], [3]])
def test_shared_axes_on_inputs_of_rank_one_are_refused(axes):
    # Rank 1 has no axis but the batch axis (Keras's PReLU refuses them too).
    with pytest.raises(ValueError, match=r"rank 1.*Received: shared_axes="):
        PReLU(shared_axes=axes)(np.ones((2,), "float32"))


@pytest.mark.parametrize(
    "argument, value",
    [
        ("alpha_initializer", True),
        ("alpha_initializer", "no_such_initializer"),
        ("alpha_regularizer", "no_such_regularizer"),
        ("alpha_constraint", 3),
    ],
)
def test_keras_objects_that_cannot_be_read_are_named(argument, value):
    with pytest.raises((TypeError, ValueError), match=rf"`{argument}`.*Received"):
        PReLU(**{argument: value})


def test_unknown_size_of_a_sloped_axis_is_an_error():
    with pytest.raises(ValueError, match="shared_axes"):
        PReLU(shared_axes=[2]).build((None, None, 3))


def test_config_round_trip_with_options():
    assert_config_round_trip(
        PReLU(
            alpha_initializer=0.1,
            alpha_regularizer="l2",
            alpha_constraint="non_neg",
            shared_axes=[2, 1],
        )
    )


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_integer_and_bool_inputs_are_cast_to_the_compute_dtype(dtype):
    # Cast to the input's integer dtype, the 0.25 slope would round to 0.
    x = np.array([[-2, -1, 0, 3], [5, -7, 1, -3]]).astype(dtype)
    layer = PReLU(alpha_initializer=keras.initializers.Constant([0.25, 0.5, 2.0, 0.1]))
    y = layer(x)
    assert y.dtype == "float32"
    expected = _np_prelu(x.astype(np.float64), np.array([0.25, 0.5, 2.0, 0.1]))
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-6)


def test_integer_inputs_in_a_functional_model():
    inputs = keras.Input((3,), dtype="int32")
    model = keras.Model(inputs, PReLU()(inputs))
    x = np.array([[-2, -1, 3]], "int32")
    np.testing.assert_allclose(model.predict(x, verbose=0), [[-0.5, -0.25, 3.0]])


def test_integer_inputs_under_mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    layer = PReLU()
    y = layer(np.array([[-8, 4]], "int32"))
    assert y.dtype == "float16"
    assert layer.alpha.dtype == "float32"
    np.testing.assert_array_equal(np.asarray(y, np.float32), [[-2.0, 4.0]])


def test_slopes_follow_the_variable_dtype_like_keras():
    ours = PReLU(dtype="float64")
    theirs = keras.layers.PReLU(dtype="float64")
    x = np.array([[-3.0, -1e-3, 2.0]])
    ours.build(x.shape)
    theirs.build(x.shape)
    assert ours.alpha.dtype == theirs.alpha.dtype == "float64"
    ours.alpha.assign(np.full((3,), 1 / 3))
    y, dx, (dalpha,) = outputs_and_gradients(ours, x)
    assert y.dtype == dx.dtype == dalpha.dtype == np.float64
    # 1/3 held in float64: agrees with NumPy far below float32's precision.
    np.testing.assert_allclose(y, _np_prelu(x, 1 / 3), rtol=1e-15)
    np.testing.assert_allclose(dalpha, [-3.0, -1e-3, 0.0], rtol=1e-15)


def test_a_float64_layer_starts_at_the_exact_slope():
    layer = PReLU(alpha_initializer=0.1, dtype="float64")
    layer.build((None, 3))
    assert np.asarray(layer.alpha).tolist() == [0.1, 0.1, 0.1]
    x = np.array([[-3.0, -1.0, 2.0]])
    np.testing.assert_allclose(np.asarray(layer(x)), [[-0.3, -0.1, 2.0]], rtol=1e-15)
    assert_config_round_trip(layer)
