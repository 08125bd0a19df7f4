"""A Leaky ReLU activation object that a Dense/Conv layer can hold and save."""

from __future__ import annotations

from typing import Any

import keras

from keras_deadrelu._validation import check_number


@keras.saving.register_keras_serializable(package="keras_deadrelu")
class LeakyReLUActivation:
    """``activation=`` callable: ``x`` for ``x >= 0``, ``negative_slope * x``
    otherwise. Saved in ``.keras`` with its slope (not Keras's 0.2 default).

    >>> import numpy as np
    >>> activation = LeakyReLUActivation(0.01)
    >>> np.asarray(activation(np.array([-100.0, 2.0], "float32"))).tolist()
    [-1.0, 2.0]
    """

    #: Marks this object as a ReLU-family activation for site finding.
    relu_family = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = check_number("negative_slope", negative_slope, minimum=0)
        self.__name__ = "leaky_relu"

    def __call__(self, x: Any) -> Any:
        return keras.ops.leaky_relu(x, negative_slope=self.negative_slope)

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LeakyReLUActivation:
        return cls(**config)
