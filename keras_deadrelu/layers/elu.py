"""Exponential Linear Unit layer."""

from __future__ import annotations

from typing import Any

import keras

from keras_deadrelu import activations
from keras_deadrelu._validation import check_number
from keras_deadrelu.layers._inputs import float_inputs


@keras.saving.register_keras_serializable(package="keras_deadrelu")
class ELU(keras.layers.Layer):
    """Exponential Linear Unit.

    Formula:

    ```
    f(x) = x                      for x > 0
    f(x) = alpha * (exp(x) - 1)   for x <= 0
    ```

    Its gradient is finite for every finite input (float16 included), and is
    `alpha` at `x = 0` (the `x <= 0` branch), as in `keras.layers.ELU`.
    Integer and bool inputs are cast to the layer's compute dtype.

    Args:
        alpha: Scale of the negative part (the value ELU tends to for very
            negative inputs is `-alpha`). A finite number > 0. Defaults to
            `1.0`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Example:

    >>> import numpy as np
    >>> layer = ELU(alpha=2.0)
    >>> np.round(layer(np.array([-1.0, 0.0, 3.0])).numpy(), 4)
    array([-1.2642,  0.    ,  3.    ], dtype=float32)

    Reference:

    - [Clevert et al., 2016](https://arxiv.org/abs/1511.07289)
    """

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = check_number("alpha", alpha, minimum=0, minimum_inclusive=False)
        self.supports_masking = True
        self.built = True

    def call(self, inputs: Any) -> Any:
        return activations.elu(
            float_inputs(inputs, self.compute_dtype), alpha=self.alpha
        )

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"alpha": self.alpha})
        return config
