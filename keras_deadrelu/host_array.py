"""Reading a layer's weights to the host, whatever holds them."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def host_array(weights: Any) -> np.ndarray | None:
    """A layer's weights as a NumPy array: a variable's value, or a tensor the
    layer computes from its variables (``Dense.enable_lora()`` makes
    ``layer.kernel`` ``base + A @ B``, not a variable). None for what cannot be
    read (a symbolic tensor).

    >>> import keras
    >>> layer = keras.layers.Dense(2, bias_initializer="ones")
    >>> layer.build((None, 3))
    >>> host_array(layer.bias).tolist()
    [1.0, 1.0]
    """
    if weights is None:
        return None
    if isinstance(weights, keras.Variable):
        weights = weights.value
    try:
        return np.asarray(keras.ops.convert_to_numpy(weights))
    except Exception:  # noqa: BLE001 - evidence is optional; fit goes on
        return None
