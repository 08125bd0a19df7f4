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
