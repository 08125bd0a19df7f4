"""keras-deadrelu: find, show and fix dying ReLUs while a Keras model trains."""

from keras_deadrelu import layers
from keras_deadrelu.layers import ELU, SELU, LeakyReLU, PReLU, SELUDense

__version__ = "0.1.0"

__all__ = [
    "ELU",
    "SELU",
    "LeakyReLU",
    "PReLU",
    "SELUDense",
    "__version__",
    "layers",
]
