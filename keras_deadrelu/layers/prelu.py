"""Parametric ReLU with one learned slope per channel by default."""

from __future__ import annotations

import numbers
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_deadrelu._validation import check_number
from keras_deadrelu.layers._inputs import float_inputs

_ALL = "all"


def _normalize_shared_axes(shared_axes: Any) -> None | str | list[int]:
    if shared_axes is None:
        return None
    if isinstance(shared_axes, str):
        if shared_axes != _ALL:
            raise ValueError(
                "Argument `shared_axes` must be None, 'all', or a list of axes "
                f">= 1. Received: shared_axes={shared_axes!r}"
            )
        return _ALL
    axes = [shared_axes] if isinstance(shared_axes, numbers.Integral) else shared_axes
    if not isinstance(axes, (list, tuple)):
        raise TypeError(
            "Argument `shared_axes` must be None, 'all', an int or a list of "
            f"ints. Received: shared_axes={shared_axes!r}"
        )
    for axis in axes:
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(
                "Argument `shared_axes` must hold ints. "
                f"Received: shared_axes={shared_axes!r}"
            )
        if axis < 1:
            raise ValueError(
                "Argument `shared_axes` must hold axes >= 1 (axis 0 is the "
                f"batch axis, always shared). Received: shared_axes={shared_axes!r}"
            )
    return sorted({int(axis) for axis in axes})


def _keras_object(name: str, get: Any, value: Any) -> Any:
    """``get(value)`` (``keras.initializers.get`` and the like), its error
    naming the argument and the value."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"Argument `{name}` must be a Keras object or its name. "
            f"Received: {name}={value!r}"
        )
    try:
        return get(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Argument `{name}` could not be interpreted ({error}). "
            f"Received: {name}={value!r}"
        ) from error


def _check_initial_slope(initializer: Any) -> Any:
    """Turns a number into `Constant` and checks constant slopes are finite, >= 0."""
    if isinstance(initializer, numbers.Real) and not isinstance(initializer, bool):
        value = check_number("alpha_initializer", initializer, minimum=0)
        # A NumPy float64 (a float, for the config): a Python float would be
        # made a float32 tensor first, and a float64 slope would start rounded.
        return keras.initializers.Constant(np.float64(value))
    initializer = _keras_object(
        "alpha_initializer", keras.initializers.get, initializer
    )
    if isinstance(initializer, keras.initializers.Constant):
        value = initializer.get_config().get("value")
        if isinstance(value, numbers.Real):
            check_number("alpha_initializer", value, minimum=0)
    return initializer


@keras.saving.register_keras_serializable(package="keras_deadrelu")
class PReLU(keras.layers.Layer):
    """Parametric Rectified Linear Unit with a learned negative slope.

    Formula:

    ```
    f(x) = x          for x >= 0
    f(x) = alpha * x  for x < 0
    ```

    where `alpha` is trainable. By default there is ONE SLOPE PER CHANNEL (the
    last axis), shared over the batch and every other axis, so the layer works
    with unknown spatial sizes. This differs from `keras.layers.PReLU`, whose
    default is one slope per element. The slopes start at 0.25 as in He et al.
    (2015); `keras.layers.PReLU` starts them at 0, i.e. as a plain ReLU whose
    dead units only revive once their slopes move.

    The slopes are stored in the layer's variable dtype (float32 by default
    and under the mixed policies, float64 with `dtype="float64"`), as in
    `keras.layers.PReLU`. Integer and bool inputs are cast to the layer's
    compute dtype.

    Args:
        alpha_initializer: Initializer for the slopes, or a number >= 0 for a
            constant. Defaults to `Constant(0.25)`.
        alpha_regularizer: Regularizer for the slopes. Defaults to `None`.
        alpha_constraint: Constraint for the slopes. Defaults to `None`.
        shared_axes: How the slopes are shared.
            - `None` (default): one slope per channel (last axis).
            - `"all"`: a single slope for the whole layer.
            - a list of axes `>= 1` (or one int): as in `keras.layers.PReLU`,
              the slopes are shared over these axes (and the batch) and there
              is one slope per position along every other axis, whose sizes
              must be known. For example `[1, 2]` on `(batch, h, w, c)` is one
              slope per channel; `[]` is one slope per element.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Example:

    >>> import numpy as np
    >>> layer = PReLU()
    >>> x = np.array([[-4.0, 2.0], [1.0, -2.0]])
    >>> layer(x).numpy()
    array([[-1. ,  2. ],
           [ 1. , -0.5]], dtype=float32)
    >>> tuple(layer.alpha.shape)
    (2,)

    Reference:

    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """

    def __init__(
        self,
        alpha_initializer: Any = None,
        alpha_regularizer: Any = None,
        alpha_constraint: Any = None,
        shared_axes: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if alpha_initializer is None:
            alpha_initializer = keras.initializers.Constant(0.25)
        self.alpha_initializer = _check_initial_slope(alpha_initializer)
        self.alpha_regularizer = _keras_object(
            "alpha_regularizer", keras.regularizers.get, alpha_regularizer
        )
        self.alpha_constraint = _keras_object(
            "alpha_constraint", keras.constraints.get, alpha_constraint
        )
        self.shared_axes = _normalize_shared_axes(shared_axes)
        self.supports_masking = True

    def _slope_shape(self, input_shape: tuple) -> tuple[int, ...]:
        ndim = len(input_shape)
        if self.shared_axes not in (None, _ALL) and any(
            axis >= ndim for axis in self.shared_axes
        ):
            allowed = (
                f"hold axes in 1..{ndim - 1}"
                if ndim > 1
                else "be None or 'all' (no axis but the batch axis)"
            )
            raise ValueError(
                f"Argument `shared_axes` must {allowed} for inputs of rank "
                f"{ndim} (shape {tuple(input_shape)}). "
                f"Received: shared_axes={self.shared_axes!r}"
            )
        if self.shared_axes == _ALL or ndim < 2:
            return ()
        if self.shared_axes is None:
            kept_axes = [ndim - 1]
            shape = (input_shape[-1],)
        else:
            kept_axes = [i for i in range(1, ndim) if i not in self.shared_axes]
            shape = tuple(
                1 if i in self.shared_axes else input_shape[i] for i in range(1, ndim)
            )
        unknown = [axis for axis in kept_axes if input_shape[axis] is None]
        if unknown:
            raise ValueError(
                f"PReLU needs a known size for every axis that has its own slopes "
                f"(axes {unknown} are None in input shape {tuple(input_shape)}); "
                "share them with `shared_axes`. "
                f"Received: shared_axes={self.shared_axes!r}"
            )
        return tuple(int(size) for size in shape)

    def build(self, input_shape: tuple) -> None:
        shape = self._slope_shape(input_shape)
        self.alpha = self.add_weight(
            shape=shape,
            name="alpha",
            initializer=self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint,
            dtype=self.variable_dtype,
        )
        ndim = len(input_shape)
        if self.shared_axes == _ALL or ndim < 2:
            axes = {}
        elif self.shared_axes is None:
            axes = {ndim - 1: input_shape[-1]}
        else:
            axes = {
                i: input_shape[i] for i in range(1, ndim) if i not in self.shared_axes
            }
        self.input_spec = keras.InputSpec(ndim=ndim, axes=axes)

    def call(self, inputs: Any) -> Any:
        inputs = float_inputs(inputs, self.compute_dtype)
        # x * where(x >= 0, 1, alpha): the gradient for x is one multiply, and
        # x >= 0 keeps exactly x (no rounding).
        alpha = ops.cast(self.alpha, inputs.dtype)
        one = ops.cast(1, inputs.dtype)
        return inputs * ops.where(inputs >= 0, one, alpha)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "alpha_initializer": keras.initializers.serialize(
                    self.alpha_initializer
                ),
                "alpha_regularizer": keras.regularizers.serialize(
                    self.alpha_regularizer
                ),
                "alpha_constraint": keras.constraints.serialize(self.alpha_constraint),
                "shared_axes": self.shared_axes,
            }
        )
        return config
