"""Input handling shared by the layers."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def float_inputs(inputs: Any, compute_dtype: str) -> Any:
    """`inputs` as a tensor; integer and bool inputs cast to `compute_dtype`.

    Floating inputs are left as they are (Keras has already cast them to the
    layer's compute dtype when it autocasts). Integer inputs must not reach
    the math in their own dtype: a slope or scale cast to an integer dtype
    rounds to 0 or 1, and the fused kernels reject integers.
    """
    inputs = ops.convert_to_tensor(inputs)
    if not keras.backend.is_float_dtype(inputs.dtype):
        inputs = ops.cast(inputs, compute_dtype)
    return inputs
