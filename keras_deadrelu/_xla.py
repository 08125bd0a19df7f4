"""Whether the code being traced now will be compiled by XLA.

Some forms are fastest as TensorFlow kernels without XLA but cost nothing
extra, or less, once XLA fuses them; code picks its form at trace time.

>>> compiled_by_xla()  # eager Python code, not traced
False
"""

from __future__ import annotations

import keras


def compiled_by_xla() -> bool:
    """True inside a trace that XLA compiles: always with JAX, and with
    TensorFlow inside a ``jit_compile=True`` function (Keras's ``fit`` with
    ``jit_compile`` on)."""
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend != "tensorflow":
        return False
    try:
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util

        in_xla_context = control_flow_util.GraphOrParentsInXlaContext
    except (ImportError, AttributeError):  # pragma: no cover - a TensorFlow
        return False  # without the helper: assume no XLA (always correct)
    return bool(in_xla_context(tf.compat.v1.get_default_graph()))


def fused_by_xla_or_gpu() -> bool:
    """True where a step traced now has its stock ops fused for it: under
    XLA, or with a GPU visible (whose kernels the counters leave to
    TensorFlow). There a CPU-only compiled op would only get in the way."""
    if compiled_by_xla():
        return True
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))
