"""ReLU-variant activation functions, written with `keras.ops` only.

Every function here has a finite gradient for every finite input, in float32
and in float16: none of them evaluates `exp` of a large positive number in a
branch that a `where` later throws away (that branch's gradient would be
`inf * 0 = NaN`). Integer and bool inputs are cast to Keras's float type
(`keras.config.floatx()`).
"""

from __future__ import annotations

import numbers
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_deadrelu._validation import check_number

#: SELU's alpha (Klambauer et al., 2017, eq. 14), to the paper's precision.
SELU_ALPHA = 1.6732632423543772848170429916717
#: SELU's scale lambda (Klambauer et al., 2017, eq. 14), to the paper's precision.
SELU_SCALE = 1.0507009873554804934193349852946

__all__ = ["SELU_ALPHA", "SELU_SCALE", "elu", "leaky_relu", "selu"]


def _is_python_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _float_tensor(x: Any) -> Any:
    """`x` as a tensor; integer and bool inputs cast to Keras's float type
    (a slope or scale cast to an integer dtype would round to 0 or 1)."""
    x = ops.convert_to_tensor(x)
    if not keras.backend.is_float_dtype(x.dtype):
        x = ops.cast(x, keras.config.floatx())
    return x


def _check_bool(name: str, value: Any) -> None:
    """A bool is not a number here (``True`` would be a slope of 1): refused
    with the argument's name."""
    if isinstance(value, (bool, np.bool_)):
        check_number(name, value)  # raises TypeError, naming `name`


def elu(x: Any, alpha: Any = 1.0) -> Any:
    """Exponential Linear Unit.

    Formula:

    ```
    f(x) = x                      for x > 0
    f(x) = alpha * (exp(x) - 1)   for x <= 0
    ```

    It runs the backend's fused unit ELU kernel (`keras.ops.elu`, whose
    exponential never sees a large positive input) and, for `alpha != 1`,
    multiplies it by `where(x > 0, 1, alpha)`. The gradient at `x = 0` is
    `alpha`, the `x <= 0` branch's (as in `keras.layers.ELU`), on every
    backend: the branch is picked by `x > 0`, not by how a backend breaks
    ties in `maximum`.

    Args:
        x: Input tensor.
        alpha: Scale of the negative part, a real number > 0 or a scalar
            tensor. Defaults to `1.0`.

    Returns:
        A tensor of the same shape and dtype as `x`.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> np.round(ops.convert_to_numpy(elu(np.array([-1.0, 0.0, 2.0]))), 4)
    array([-0.6321,  0.    ,  2.    ])

    Reference:

    - [Clevert et al., 2016](https://arxiv.org/abs/1511.07289)
    """
    x = _float_tensor(x)
    _check_bool("alpha", alpha)
    if _is_python_number(alpha):
        alpha = check_number("alpha", alpha, minimum=0, minimum_inclusive=False)
        if alpha == 1.0:
            # Both branches have slope 1 at x = 0: the kernel alone is right.
            return ops.elu(x)
    return _scaled_unit_elu(x, ops.cast(1, x.dtype), _as_dtype(alpha, x.dtype))


def _as_dtype(value: Any, dtype: Any) -> Any:
    """`value` in `dtype`: a Python number through a NumPy scalar of that
    dtype (a direct cast makes a float32 tensor first, so a float64 input
    would compute with alpha rounded to float32)."""
    if _is_python_number(value) and keras.backend.standardize_dtype(dtype) == "float64":
        return ops.convert_to_tensor(np.float64(value), dtype="float64")
    return ops.cast(value, dtype)


def _scaled_unit_elu(x: Any, positive_scale: Any, negative_scale: Any) -> Any:
    """`positive_scale * x` for x > 0, `negative_scale * expm1(x)` for x <= 0.

    `elu(x) * where(x > 0, positive_scale, negative_scale)`: the fused unit
    ELU (finite gradient everywhere) times a factor picked by `x > 0`, so the
    gradient at `x = 0` is the `x <= 0` branch's, `negative_scale`. Its
    gradient for `x` is the ELU kernel's gradient and one multiply, cheaper
    than a `where` over two branches or a `maximum`.
    """
    return ops.elu(x) * ops.where(x > 0, positive_scale, negative_scale)


def selu(x: Any) -> Any:
    """Scaled Exponential Linear Unit.

    Formula:

    ```
    f(x) = SELU_SCALE * x                          for x > 0
    f(x) = SELU_SCALE * SELU_ALPHA * (exp(x) - 1)  for x <= 0
    ```

    Uses the backend's fused SELU kernel (`keras.ops.selu`), whose constants
    are `SELU_ALPHA` and `SELU_SCALE` (the tests check the values against a
    NumPy computation with these constants).

    Args:
        x: Input tensor.

    Returns:
        A tensor of the same shape and dtype as `x`.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> np.round(ops.convert_to_numpy(selu(np.array([-1.0, 0.0, 1.0]))), 4)
    array([-1.1113,  0.    ,  1.0507])

    Reference:

    - [Klambauer et al., 2017](https://arxiv.org/abs/1706.02515)
    """
    return ops.selu(_float_tensor(x))


def leaky_relu(x: Any, negative_slope: Any) -> Any:
    """Leaky Rectified Linear Unit.

    Formula:

    ```
    f(x) = x                   for x >= 0
    f(x) = negative_slope * x  for x < 0
    ```

    With a Python number for `negative_slope` this uses the backend's fused
    kernel (`keras.ops.leaky_relu`). With a tensor (for example a variable
    that may change between steps), or for float64 inputs (TensorFlow's
    kernel keeps its slope in float32), it computes
    `x * where(x > 0, 1, slope)`: its gradient with respect to `x` is a
    single multiply, and `slope` at `x = 0`, as in TensorFlow's fused kernel.
    Integer and bool inputs are cast to Keras's float type first.

    Args:
        x: Input tensor.
        negative_slope: Slope for `x < 0`: a finite real number >= 0, or a
            scalar tensor.

    Returns:
        A tensor of the same shape and dtype as `x`.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> ops.convert_to_numpy(leaky_relu(np.array([-10.0, 0.0, 5.0]), 0.01))
    array([-0.1,  0. ,  5. ])

    Reference:

    - [Maas et al., 2013](https://ai.stanford.edu/~amaas/papers/relu_hybrid_icml2013_final.pdf)
    """
    x = _float_tensor(x)
    _check_bool("negative_slope", negative_slope)
    if _is_python_number(negative_slope):
        negative_slope = check_number("negative_slope", negative_slope, minimum=0)
        if keras.backend.standardize_dtype(x.dtype) != "float64":
            return ops.leaky_relu(x, negative_slope=negative_slope)
        # TensorFlow's fused kernel holds its slope in float32.
    slope = _as_dtype(negative_slope, x.dtype)
    return x * ops.where(x > 0, ops.cast(1, x.dtype), slope)
