"""Independent NumPy forward passes used as references for dead-unit counts."""

from __future__ import annotations

import numpy as np


def relu(values: np.ndarray) -> np.ndarray:
    return np.maximum(values, 0.0)


def dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ kernel.astype(np.float64) + bias


def conv2d_valid(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """2-D convolution, stride 1, 'valid' padding, channels last."""
    height, width = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(
        x.astype(np.float64), (height, width), axis=(1, 2)
    )  # (batch, out_h, out_w, in_channels, height, width)
    return np.einsum("bhwcij,ijco->bhwo", windows, kernel.astype(np.float64)) + bias


def dead_fraction(activations: np.ndarray, channel_axis: int = -1) -> float:
    """Share of channels whose activation was never > 0 anywhere."""
    moved = np.moveaxis(activations, channel_axis, -1)
    fired = (moved > 0).reshape(-1, moved.shape[-1]).any(axis=0)
    return float(1.0 - fired.mean())


def dead_units(activations: np.ndarray, channel_axis: int = -1) -> np.ndarray:
    moved = np.moveaxis(activations, channel_axis, -1)
    return ~(moved > 0).reshape(-1, moved.shape[-1]).any(axis=0)
