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


def sampled_firing_rate(
    activations: np.ndarray, first_samples, channel_axis: int = -1
) -> np.ndarray:
    """A streaming ReLU conv site's firing rates on a CPU without XLA: each
    channel's share of positive values in the samples at `first_samples`
    (the first of each batch, or of each replica's share of it); at least
    1 / its values where it fired at all, 0 where it never did."""
    moved = np.moveaxis(activations, channel_axis, -1)
    every = moved.reshape(-1, moved.shape[-1])
    firsts = moved[list(first_samples)].reshape(-1, moved.shape[-1])
    rate = (firsts > 0).mean(axis=0)
    fired = (every > 0).any(axis=0)
    return np.where(fired, np.maximum(rate, 1 / len(every)), 0.0)
