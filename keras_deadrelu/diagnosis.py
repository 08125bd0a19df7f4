"""Why did a site die? The likely cause, with its evidence.

The user's notes name two causes of dying ReLUs, and each leaves a cheap
trace:

- **Learning rate too high**: the weights feeding the site jumped. Evidence:
  how far the site's kernel and bias moved over the window, relative to
  their norm (``||W_end - W_start|| / ||W_start||``), at the current learning
  rate.
- **Bias far below zero**: the dead units' biases sit so far below zero that
  what their weights add cannot lift them. Evidence: the dead units' mean bias
  against their *pre-activation spread*, estimated as ``||w|| * rms(x)``
  (kernel norm times the root mean square of the layer's input, a scalar
  counter kept inside the train step).

A third case is reported on its own: a site whose inputs were all zero over
the window (input RMS 0) gets nothing from its weights: the layer feeding it
is dead, and that is the one to fix.

Nothing here runs the model: the figures come from the counters and from
weight snapshots taken once per window.

>>> import numpy as np
>>> evidence = SiteEvidence(dead_bias_mean=-4.9, pre_activation_spread=0.8)
>>> diagnose(evidence, where="epoch 3").cause
'bias'
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from keras_deadrelu.host_array import host_array
from keras_deadrelu.layer_graph import output_axis

#: Relative move of a kernel within one window above which the learning rate
#: is taken as the cause.
LARGE_WEIGHT_MOVE = 0.2


@dataclasses.dataclass(frozen=True)
class SiteEvidence:
    """What is known about one site at a crossing (None where unknown)."""

    dead_bias_mean: float | None = None
    pre_activation_spread: float | None = None
    weight_move: float | None = None
    weight_move_where: str | None = None
    learning_rate: float | None = None
    input_rms: float | None = None


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """The likely cause, the evidence behind it, and what to try."""

    cause: str  # "learning_rate", "bias", "dead_inputs" or "unclear"
    evidence: str
    advice: str

    def __str__(self) -> str:
        return f"{self.evidence} {self.advice}".strip()


def diagnose(
    evidence: SiteEvidence, where: str, large_move: float = LARGE_WEIGHT_MOVE
) -> Diagnosis:
    """Picks the likely cause of a site's death from its evidence."""
    rate = (
        f" at learning rate {evidence.learning_rate:.3g}"
        if evidence.learning_rate is not None
        else ""
    )
    moved_in = evidence.weight_move_where or where
    if evidence.weight_move is not None and evidence.weight_move >= large_move:
        return Diagnosis(
            "learning_rate",
            f"Layer weights moved {evidence.weight_move:.0%} of their norm in "
            f"{moved_in}{rate}: learning rate too high.",
            "Consider fix='lower_lr' (with 'revive' to bring the dead units back) "
            "or a smaller learning rate.",
        )
    bias, spread = evidence.dead_bias_mean, evidence.pre_activation_spread
    if bias is not None and spread is not None and -bias > abs(spread):
        # The bias outweighs anything the weights add or take away on any
        # input of the window: it is what holds these units below zero.
        inputs_note = (
            " (and its inputs were all zero)" if evidence.input_rms == 0 else ""
        )
        return Diagnosis(
            "bias",
            f"Dead units' mean bias {bias:.2g} against a pre-activation spread of "
            f"{spread:.2g} (kernel norm times input RMS){inputs_note}: bias driven "
            "far below zero.",
            "Consider bias_initializer=Constant(0.01), fix='revive', or a ReLU "
            "variant.",
        )
    if evidence.input_rms == 0:
        return Diagnosis(
            "dead_inputs",
            "Its inputs were all zero over the window (pre-activation spread 0): "
            "the layer feeding it is dead.",
            "Fix the layer upstream first.",
        )
    parts = []
    if bias is not None:
        parts.append(f"dead units' mean bias {bias:.2g}")
    if spread is not None:
        parts.append(f"pre-activation spread {spread:.2g}")
        if spread <= 0:
            parts.append("the weights alone keep them below zero")
    if evidence.weight_move is not None:
        parts.append(f"weights moved {evidence.weight_move:.0%} in {moved_in}{rate}")
    if not parts:
        return Diagnosis(
            "unclear",
            "Cause unclear (no weights feed this site directly).",
            "Consider fix='leaky_relu' or a ReLU variant (fix='revive' needs a "
            "Dense or Conv kernel right before the site).",
        )
    return Diagnosis(
        "unclear",
        f"Cause unclear ({', '.join(parts)}).",
        "Consider fix='revive' or a ReLU variant.",
    )


def _parameters(layer: Any) -> np.ndarray | None:
    """The layer's kernel and bias as one flat float32 vector (a high learning
    rate throws both; a bias driven down is the usual way units die from
    it)."""
    kernel = host_array(getattr(layer, "kernel", None))
    if kernel is None:
        return None
    parts = [kernel.reshape(-1)]
    bias = host_array(getattr(layer, "bias", None))
    if bias is not None:
        parts.append(bias.reshape(-1))
    return np.concatenate(parts).astype(np.float32, copy=False)


def _norm(vector: np.ndarray) -> float:
    """The Euclidean norm of a float32 vector: one BLAS dot product summed in
    float32 (relative error below 1e-4 for millions of weights, plenty for a
    move ratio), or in float64 where float32 overflows or underflows (the
    huge weights of a diverging run)."""
    with np.errstate(over="ignore", under="ignore"):
        norm = float(np.sqrt(np.dot(vector, vector)))
    if not math.isfinite(norm) or (norm == 0.0 and vector.any()):
        norm = float(np.linalg.norm(vector.astype(np.float64)))
    return norm


class WeightSnapshots:
    """Keeps each site's incoming kernel and bias as of the last window's end
    (host memory: the size of those weights), to measure how far they moved.

    Streaming counts a unit that died mid-window as alive for that window, so
    a crossing shows one window after the jump that caused it: the largest
    move of the current and the previous window is the evidence.

    >>> import keras
    >>> layer = keras.layers.Dense(2, kernel_initializer="ones")
    >>> layer.build((None, 2))
    >>> snapshots = WeightSnapshots()
    >>> snapshots.take({"h": layer})
    >>> _ = layer.kernel.assign(layer.kernel * 2.0)
    >>> snapshots.record_moves({"h": layer}, where="epoch 1")
    >>> snapshots.largest_recent_move("h")
    (1.0, 'epoch 1')
    """

    def __init__(self):
        # Per site: the weights at the window's start and their norm.
        self._parameters: dict[str, tuple[np.ndarray, float]] = {}
        self._recent_moves: dict[str, list[tuple[float, str]]] = {}

    def record_moves(self, layers_by_site: dict[str, Any], where: str) -> None:
        """Measures how far each site's weights moved in the window `where`
        (call it before any fix changes the weights), and keeps the weights
        now as the start of the next window (:meth:`take` again only if a
        fix changed them)."""
        for name, layer in layers_by_site.items():
            before = self._parameters.get(name)
            now = _parameters(layer)
            if now is None:
                continue
            self._parameters[name] = (now, _norm(now))
            if before is None or before[0].shape != now.shape or not before[1]:
                continue
            move = _norm(now - before[0]) / before[1]
            recent = self._recent_moves.setdefault(name, [])
            recent[:] = [*recent[-1:], (move, where)]

    def take(self, layers_by_site: dict[str, Any]) -> None:
        """Stores the weights now, as the start of the next window."""
        for name, layer in layers_by_site.items():
            now = _parameters(layer)
            if now is not None:
                self._parameters[name] = (now, _norm(now))

    def largest_recent_move(self, name: str) -> tuple[float | None, str | None]:
        """The larger relative move of the last two windows, and where (a NaN
        move, from NaN weights, only when there is no other)."""
        recent = self._recent_moves.get(name)
        if not recent:
            return None, None
        finite = [move for move in recent if not math.isnan(move[0])]
        return max(finite or recent)


def bias_evidence(
    layer: Any, dead_channels: np.ndarray, input_mean_square: float | None
) -> tuple[float | None, float | None, float | None]:
    """Dead units' mean bias, their mean pre-activation spread, and the RMS of
    the layer's input.

    The spread of ``z = w . x + b`` around its bias is estimated as
    ``||w|| * rms(x)``: the unit's kernel norm times the root mean square of
    the layer's input over the window.
    """
    input_rms = None if input_mean_square is None else float(np.sqrt(input_mean_square))
    if not dead_channels.any():
        return None, None, input_rms
    bias = host_array(getattr(layer, "bias", None))
    if bias is None or bias.shape != dead_channels.shape:
        return None, None, input_rms
    bias = bias.astype(np.float64)
    spread = None
    kernel = host_array(getattr(layer, "kernel", None))
    if input_rms is not None and kernel is not None:
        kernel = np.moveaxis(kernel.astype(np.float64), output_axis(layer), -1)
        norms = np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), axis=0)
        spread = float(norms[dead_channels].mean() * input_rms)
    return float(bias[dead_channels].mean()), spread, input_rms
