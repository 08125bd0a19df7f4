"""Scaled Exponential Linear Unit layer."""

from __future__ import annotations

from typing import Any

import keras

from keras_deadrelu import activations
from keras_deadrelu.layers._inputs import float_inputs


@keras.saving.register_keras_serializable(package="keras_deadrelu")
class SELU(keras.layers.Layer):
    """Scaled Exponential Linear Unit.

    Formula:

    ```
    f(x) = scale * x                        for x > 0
    f(x) = scale * alpha * (exp(x) - 1)     for x <= 0
    ```

    with `alpha = SELU_ALPHA = 1.6732632423543772848170429916717` and
    `scale = SELU_SCALE = 1.0507009873554804934193349852946`
    (`keras_deadrelu.activations`).

    It runs Keras's fused SELU kernel; at exactly `x = 0` the gradient is the
    kernel's (`scale` without XLA, `scale * alpha` with it on TensorFlow), and
    it is finite for every finite input. Without XLA the kernel's gradient is
    also `scale` just below 0 where the output rounds to 0 (`x` above about
    -3e-8 in float32, -2.4e-4 in float16, -1.9e-3 in bfloat16), as for
    `keras.layers.Activation("selu")`.
    Integer and bool inputs are cast to the layer's compute dtype.

    SELU only self-normalizes when the layer before it is initialized for it:
    a stock `keras.layers.Dense` (or conv) before `SELU()` needs
    `kernel_initializer="lecun_normal"` (Keras's default, Glorot uniform, is
    not it). `SELUDense` sets this for you.

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Example:

    >>> import numpy as np
    >>> layer = SELU()
    >>> np.round(layer(np.array([-1.0, 0.0, 1.0])).numpy(), 4)
    array([-1.1113,  0.    ,  1.0507], dtype=float32)

    Reference:

    - [Klambauer et al., 2017](https://arxiv.org/abs/1706.02515)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True
        self.built = True

    def call(self, inputs: Any) -> Any:
        return activations.selu(float_inputs(inputs, self.compute_dtype))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return super().get_config()
