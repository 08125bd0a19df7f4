"""Small models built to die, shared by the diagnosis and fix tests."""

import keras
import numpy as np

rng = np.random.default_rng(5)
X = rng.normal(size=(512, 8)).astype("float32")
Y = (np.sin(X[:, :1]) + X[:, 1:2] ** 2).astype("float32")


def mlp(optimizer, bias=0.0):
    """8 -> h1 (32 relu) -> h2 (32 relu) -> 1; `bias` initialises h1's bias."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(
                32,
                activation="relu",
                name="h1",
                bias_initializer=keras.initializers.Constant(bias),
            ),
            keras.layers.Dense(32, activation="relu", name="h2"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(optimizer, "mse")
    return model


class ShiftedReLU(keras.layers.Layer):
    """A custom layer with a ReLU `activation` whose output can be
    negative (`relu(x) - 1`): a dead unit outputs -1, not 0."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.relu

    def call(self, inputs):
        return self.activation(inputs) - 1.0
