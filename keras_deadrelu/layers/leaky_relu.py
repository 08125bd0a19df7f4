"""Leaky ReLU whose slope lives in a variable, so it can change after tracing."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_deadrelu import activations
from keras_deadrelu._validation import check_number
from keras_deadrelu._xla import compiled_by_xla
from keras_deadrelu.layers._inputs import float_inputs


@keras.saving.register_keras_serializable(package="keras_deadrelu")
class LeakyReLU(keras.layers.Layer):
    """Leaky Rectified Linear Unit with a changeable slope.

    Formula:

    ```
    f(x) = x                   for x >= 0
    f(x) = negative_slope * x  for x < 0
    ```

    The default slope is 0.01 (Maas et al., 2013). Note that Keras's
    `keras.layers.LeakyReLU` defaults to 0.3 and `keras.activations.leaky_relu`
    to 0.2.

    The slope is kept in a non-trainable scalar weight,
    `negative_slope_variable`, created in `build()` in the layer's variable
    dtype (float32 by default and under the mixed policies; float64 with
    `dtype="float64"`). Integer and bool inputs are cast to the layer's
    compute dtype. `set_negative_slope(value)`
    changes it, and the change takes effect at the next step of an already
    compiled and traced model (XLA included) without retracing. The weight is
    saved in `.keras` files; `get_config()["negative_slope"]` reports the
    current value, so config and weight agree.

    Speed (TensorFlow without XLA): a trace remembers the slope it was made
    with. While the weight still holds that slope, the step runs the fused
    Leaky ReLU kernel, the one `keras.layers.LeakyReLU` runs, behind a
    branch on the weight; once the slope changes, the same trace switches
    (no retrace) to `x * where(x > 0, 1, slope)`, which costs about 1.5x the
    fused kernel on CPU until the next trace. The branch itself costs
    16 µs (a 2-core AMD VM) to 25-50 µs (a 2-core Intel VM) per call,
    forward and backward (docs/benchmarks.md); on the Intel VM that is
    1.3-1.5x the time of Keras's layer on a (128, 512) tensor and 2-4% more
    on a (4096, 1024) one. Under XLA (JAX, or TensorFlow with
    `jit_compile`) and on other backends the general form alone is traced;
    XLA fuses it as well as the kernel, and reading the weight costs about
    10 µs per call (Intel VM).

    Args:
        negative_slope: Slope for `x < 0`, a finite number >= 0. Defaults to
            `0.01`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Example:

    >>> import numpy as np
    >>> layer = LeakyReLU()
    >>> np.round(layer(np.array([-10.0, 0.0, 5.0])).numpy(), 4)
    array([-0.1,  0. ,  5. ], dtype=float32)
    >>> layer.set_negative_slope(0.5)
    >>> layer(np.array([-10.0, 0.0, 5.0])).numpy()
    array([-5.,  0.,  5.], dtype=float32)
    >>> layer.negative_slope
    0.5

    Reference:

    - [Maas et al., 2013](https://ai.stanford.edu/~amaas/papers/relu_hybrid_icml2013_final.pdf)
    """

    def __init__(self, negative_slope: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._negative_slope = check_number("negative_slope", negative_slope, minimum=0)
        self.negative_slope_variable = None
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        self.negative_slope_variable = self.add_weight(
            shape=(),
            name="negative_slope",
            # A NumPy float64, not a Python float: TensorFlow would turn the
            # latter into a float32 tensor first, and a float64 weight would
            # hold the float32-rounded slope.
            initializer=keras.initializers.Constant(np.float64(self._negative_slope)),
            trainable=False,
            dtype=self.variable_dtype,
        )

    @property
    def negative_slope(self) -> float:
        """The current slope for `x < 0`, as a Python float."""
        if self.negative_slope_variable is None:
            return self._negative_slope
        return float(keras.ops.convert_to_numpy(self.negative_slope_variable.value))

    def set_negative_slope(self, value: float) -> None:
        """Checks `value` (a finite number >= 0) and makes it the slope.

        Call it outside the model's step (e.g. from a callback); a compiled
        model uses the new slope from its next step on, without retracing.
        """
        value = check_number("negative_slope", value, minimum=0)
        self._negative_slope = value
        if self.negative_slope_variable is not None:
            self.negative_slope_variable.assign(value)

    def call(self, inputs: Any) -> Any:
        inputs = float_inputs(inputs, self.compute_dtype)
        slope = self.negative_slope_variable.value
        if keras.backend.backend() != "tensorflow" or compiled_by_xla():
            # XLA (JAX, or TensorFlow's jit_compile) fuses the general form
            # as well as the kernel; elsewhere a branch would cost a sync.
            return activations.leaky_relu(inputs, slope)
        traced_slope = self._slope_at_trace_time()
        if traced_slope is None:
            # The slope is a tensor of the trace itself (`stateless_call`):
            # no value to specialize on.
            return activations.leaky_relu(inputs, slope)
        # The traced slope is a constant of this trace; the weight may change
        # after tracing. Compared in the dtype the weight is read in here (the
        # compute dtype under a mixed policy), where both forms compute alike.
        unchanged = ops.equal(slope, ops.cast(traced_slope, slope.dtype))
        return ops.cond(
            unchanged,
            lambda: activations.leaky_relu(inputs, traced_slope),
            lambda: activations.leaky_relu(inputs, slope),
        )

    def _slope_at_trace_time(self) -> float | None:
        """The weight's value now, read eagerly even inside a trace
        (TensorFlow), however it was set: setter, load, assign. None when the
        value is a tensor of the trace (``model.stateless_call`` passes the
        weights' values in)."""
        import tensorflow as tf

        with tf.init_scope():
            value = self.negative_slope_variable.value
            if tf.is_symbolic_tensor(value):
                return None
            # Read as float32: under a mixed policy the read is autocast, and
            # NumPy cannot take a bfloat16 tensor.
            value = ops.convert_to_numpy(ops.cast(value, "float32"))
        if value.size != 1:
            # Built in this very trace (a first call inside a tf.function):
            # the weight is not initialized yet, and holds the initial slope.
            return self._negative_slope
        return float(value)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"negative_slope": self.negative_slope})
        return config
