"""Small test helpers built on public Keras/TensorFlow APIs only.

NumPy references here are written from the formulas, independently of the
package's code.
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

import keras_deadrelu as kd

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def np_elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def np_elu_grad(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


def np_selu(x: np.ndarray) -> np.ndarray:
    return SELU_SCALE * np_elu(x, SELU_ALPHA)


def np_selu_grad(x: np.ndarray) -> np.ndarray:
    return SELU_SCALE * np_elu_grad(x, SELU_ALPHA)


def np_leaky_relu(x: np.ndarray, slope: float) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(x >= 0, x, slope * x)


def np_leaky_relu_grad(x: np.ndarray, slope: float) -> np.ndarray:
    # At x = 0 the gradient is the slope, as in TensorFlow's fused kernel.
    return np.where(np.asarray(x) > 0, 1.0, slope)


def outputs_and_gradients(layer, x, upstream=None):
    """Returns (y, dy/dx . upstream, [d/dw for w in trainable weights]) as NumPy."""
    x = tf.convert_to_tensor(x)
    if not layer.built:
        layer.build(tuple(x.shape))
    if upstream is None:
        upstream = tf.ones_like(x)
    weights = list(layer.trainable_weights)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    gradients = tape.gradient(
        y, [x, *weights], output_gradients=tf.cast(upstream, y.dtype)
    )
    return (
        np.asarray(y),
        np.asarray(gradients[0]),
        [np.asarray(g) for g in gradients[1:]],
    )


def assert_config_round_trip(layer) -> None:
    config = layer.get_config()
    restored = type(layer).from_config(config)
    assert restored.get_config() == config


# One factory per layer of the family, used by the parameterised tests.
LAYER_FACTORIES = {
    "prelu": lambda: kd.layers.PReLU(),
    "prelu_all": lambda: kd.layers.PReLU(shared_axes="all"),
    "elu": lambda: kd.layers.ELU(alpha=1.5),
    "selu": lambda: kd.layers.SELU(),
    "leaky_relu": lambda: kd.layers.LeakyReLU(0.05),
    "selu_dense": lambda: kd.layers.SELUDense(4),
}


def all_layers_model(width: int = 8):
    """A small functional model that uses every layer of the family."""
    import keras

    inputs = keras.Input((width,))
    x = keras.layers.Dense(width)(inputs)
    x = kd.layers.PReLU()(x)
    x = keras.layers.Dense(width)(x)
    x = kd.layers.ELU(alpha=0.7)(x)
    x = keras.layers.Dense(width, kernel_initializer="lecun_normal")(x)
    x = kd.layers.SELU()(x)
    x = kd.layers.SELUDense(width)(x)
    x = keras.layers.Dense(width)(x)
    x = kd.layers.LeakyReLU(0.1)(x)
    outputs = keras.layers.Dense(1)(x)
    return keras.Model(inputs, outputs)


def fit_collecting_warnings(model, x, y, monitor, epochs=2):
    """Fits with `monitor`; returns the History and the messages of every
    ``DeadNeuronWarning`` raised (each one, not once per place)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=epochs, verbose=0, callbacks=[monitor])
    messages = [str(w.message) for w in caught if w.category is kd.DeadNeuronWarning]
    return history, messages
