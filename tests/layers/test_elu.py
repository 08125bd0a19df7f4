import numpy as np
import pytest
from helpers import np_elu, np_elu_grad, outputs_and_gradients

from keras_deadrelu import activations
from keras_deadrelu.layers import ELU

X = np.array([-30.0, -3.0, -1.0, -0.25, 0.5, 2.0, 40.0], "float32")


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
    x = np.linspace(-8.0, -1e-3, 33).astype("float32")
    y, dx, _ = outputs_and_gradients(ELU(alpha=alpha), x)
    # ELU'(x) = ELU(x) + alpha for x < 0 (at 0 the layer takes the right
    # derivative, 1).
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
