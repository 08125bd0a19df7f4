"""Dense layer with a SELU activation and the LeCun-normal kernel SELU needs."""

from __future__ import annotations

from typing import Any

import keras

from keras_deadrelu import activations

_SELU_NAMES = ("selu",)


def _is_selu(activation: Any) -> bool:
    if isinstance(activation, str):
        return activation in _SELU_NAMES
    return activation in (keras.activations.selu, activations.selu)


@keras.saving.register_keras_serializable(package="keras_deadrelu")
class SELUDense(keras.layers.Dense):
    """Fully connected layer followed by SELU, initialized to self-normalize.

    Formula:

    ```
    y = selu(x @ kernel + bias)
    ```

    The activation is always SELU (Keras's fused kernel, as the `SELU`
    layer). Integer and bool inputs are cast to the compute dtype, as by
    `keras.layers.Dense`.
    The kernel defaults to
    `"lecun_normal"` (variance 1 / fan_in), the initialization under which a
    deep stack keeps activations near mean 0 and variance 1 (Klambauer et
    al., 2017); with Keras's default Glorot initializer this does not hold.

    Args:
        units: Positive integer, the number of output features.
        kernel_initializer: Initializer for the kernel. Defaults to
            `"lecun_normal"`.
        **kwargs: Every other `keras.layers.Dense` argument (`use_bias`,
            `bias_initializer`, regularizers, constraints, `name`, `dtype`,
            ...). `activation` may only be `"selu"`; anything else raises
            `ValueError`.

    Example:

    >>> import numpy as np
    >>> layer = SELUDense(4)
    >>> layer(np.ones((2, 3))).shape
    TensorShape([2, 4])

    Reference:

    - [Klambauer et al., 2017](https://arxiv.org/abs/1706.02515)
    """

    def __init__(
        self, units: int, kernel_initializer: Any = "lecun_normal", **kwargs: Any
    ) -> None:
        activation = kwargs.pop("activation", "selu")
        if not _is_selu(activation):
            raise ValueError(
                "SELUDense always uses the SELU activation; argument `activation` "
                f"may only be 'selu'. Received: activation={activation!r}"
            )
        super().__init__(
            units,
            activation="selu",
            # None means the default here, as it does for Dense (Glorot there).
            kernel_initializer=kernel_initializer or "lecun_normal",
            **kwargs,
        )

    def get_config(self) -> dict[str, Any]:
        return super().get_config()
