"""ReLU-variant layers that keep units from dying.

>>> import keras
>>> import keras_deadrelu as kd
>>> model = keras.Sequential([
...     keras.Input((8,)),
...     keras.layers.Dense(16),
...     kd.layers.PReLU(),
...     kd.layers.SELUDense(16),
...     kd.layers.LeakyReLU(),
...     keras.layers.Dense(16),
...     kd.layers.ELU(alpha=1.0),
... ])
>>> model.output_shape
(None, 16)
"""

from keras_deadrelu.layers.elu import ELU
from keras_deadrelu.layers.leaky_relu import LeakyReLU
from keras_deadrelu.layers.prelu import PReLU
from keras_deadrelu.layers.selu import SELU
from keras_deadrelu.layers.selu_dense import SELUDense

__all__ = ["ELU", "LeakyReLU", "PReLU", "SELU", "SELUDense"]
