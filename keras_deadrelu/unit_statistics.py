"""How a unit is declared dead, dormant or NaN: window statistics from counters.

This module is the one place that defines the figures the monitor reports.
It works on plain NumPy arrays (the counters read once per window), so every
definition can be checked by hand.

- **Dead**: the unit's output was never > 0 for any input in the window.
- **NaN unit**: its output was NaN or +/-inf at least once in the window. A
  NaN unit is never counted as alive and never as dead: it has its own count.
- **Dead fraction**: dead units / units (NaN units stay in the denominator).
- **Firing rate**: share of the values (inputs times positions) that were > 0.
  Where the positive count was taken over a sample of the values (a ReLU conv
  site, streaming on a CPU without XLA), it is that sample's share, and at
  least ``1 / element_count`` for a unit that fired (dead or alive is exact).
- **Dormant** (Sokar et al. 2023, ReDo): ``score_i = mean|a_i| / mean_k
  mean|a_k|`` over the site's finite units; dormant when ``score_i <= tau``.
  With ``tau = 0`` dormant equals dead for ReLU.

>>> import numpy as np
>>> counters = UnitCounters(
...     positive_count=np.array([0, 3, 5, 0]),
...     abs_sum=np.array([0.0, 1.5, 6.5, np.nan]),
...     element_count=10,
... )
>>> stats = site_statistics("dense", "relu", counters, dormant_tau=0.1)
>>> stats.dead_count, stats.nan_count, stats.dead_fraction
(1, 1, 0.25)
>>> stats.firing_rate.tolist()
[0.0, 0.3, 0.5, nan]
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class UnitCounters:
    """Per-unit sums over one window, as read from a site's counters.

    Attributes:
        positive_count: number of values > 0, per unit.
        abs_sum: sum of absolute values, per unit (NaN or inf when the unit
            produced a non-finite value).
        element_count: number of values each unit produced in the window
            (inputs times positions).
        value_sum: sum of values per unit (kept for SELU sites only).
        square_sum: sum of squared values per unit (SELU sites only).
        input_mean_square: mean square of the input of the layer that computes
            the site (layers with a kernel), for the diagnosis.
        positive_sample: when `positive_count` was counted over a sample of
            the values (the first sample of each batch), the number of values
            per unit in that sample; None when over all `element_count`. Only
            for sites whose outputs are never negative (ReLU, ReLU6), whose
            dead units are then read from `abs_sum`, exactly.
    """

    positive_count: np.ndarray
    abs_sum: np.ndarray
    element_count: int
    value_sum: np.ndarray | None = None
    square_sum: np.ndarray | None = None
    input_mean_square: float | None = None
    positive_sample: int | None = None

    @property
    def counted_values(self) -> int:
        """The number of values per unit that `positive_count` counts."""
        if self.positive_sample is None:
            return self.element_count
        return self.positive_sample


@dataclasses.dataclass(frozen=True)
class SiteStatistics:
    """What one site did over one window. Per-unit arrays are flat."""

    name: str
    kind: str
    element_count: int
    dead: np.ndarray
    nan: np.ndarray
    dormant: np.ndarray
    firing_rate: np.ndarray
    activation_mean: float | None = None
    activation_std: float | None = None
    input_mean_square: float | None = None

    @property
    def unit_count(self) -> int:
        return int(self.dead.size)

    @property
    def dead_count(self) -> int:
        return int(self.dead.sum())

    @property
    def nan_count(self) -> int:
        return int(self.nan.sum())

    @property
    def dormant_count(self) -> int:
        return int(self.dormant.sum())

    @property
    def dead_fraction(self) -> float:
        return self.dead_count / self.unit_count if self.unit_count else 0.0

    @property
    def nan_fraction(self) -> float:
        return self.nan_count / self.unit_count if self.unit_count else 0.0

    @property
    def dormant_fraction(self) -> float:
        return self.dormant_count / self.unit_count if self.unit_count else 0.0


@dataclasses.dataclass(frozen=True)
class WindowStatistics:
    """Every observed site over one window, in model order."""

    sites: tuple[SiteStatistics, ...]

    @property
    def unit_count(self) -> int:
        return sum(site.unit_count for site in self.sites)

    @property
    def dead_count(self) -> int:
        return sum(site.dead_count for site in self.sites)

    @property
    def nan_count(self) -> int:
        return sum(site.nan_count for site in self.sites)

    @property
    def dead_fraction(self) -> float:
        """Model-wide: all dead units over all units."""
        units = self.unit_count
        return self.dead_count / units if units else 0.0

    def dead_fractions(self) -> dict[str, float]:
        """``{site name: dead fraction}`` in model order."""
        return {site.name: site.dead_fraction for site in self.sites}

    def __getitem__(self, name: str) -> SiteStatistics:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(name)


def site_statistics(
    name: str,
    kind: str,
    counters: UnitCounters,
    dormant_tau: float,
    nonfinite_weights: np.ndarray | None = None,
) -> SiteStatistics:
    """Turns one site's window counters into its statistics.

    `nonfinite_weights` (per unit, optional) marks units whose incoming
    weights or bias are NaN or inf: they are NaN units even where a fused
    MatMul+Relu kernel turned ``relu(nan)`` into 0. So are all of a site's
    units when the input of its layer held NaN or inf (its mean square,
    taken from the first sample of each batch, is not finite).
    """
    positive_count = np.asarray(counters.positive_count).reshape(-1)
    abs_sum = np.asarray(counters.abs_sum, dtype=np.float64).reshape(-1)
    elements = int(counters.element_count)
    nan = ~np.isfinite(abs_sum)
    if nonfinite_weights is not None and nonfinite_weights.size == nan.size:
        nan = nan | nonfinite_weights.reshape(-1)
    input_mean_square = counters.input_mean_square
    if input_mean_square is not None and not np.isfinite(input_mean_square):
        nan = np.ones_like(nan)
    if counters.positive_sample is None:
        dead = (positive_count == 0) & ~nan
        rate = positive_count / max(elements, 1)
    else:
        # Outputs never negative: a unit never fired exactly when its
        # absolute sum is 0. A unit that fired did so at least once. (This
        # holds for a window whose steps all ran the ReLU: the built-in
        # fixes change a site's kind only when a window closes. A user who
        # makes the site leaky by hand mid-window and retraces gets one
        # mixed window, where a negative value reads as alive.)
        dead = (abs_sum == 0) & ~nan
        rate = positive_count / max(counters.positive_sample, 1)
        rate = np.where(dead, 0.0, np.maximum(rate, 1 / max(elements, 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        firing_rate = np.where(nan, np.nan, rate)
        mean_abs = abs_sum / max(elements, 1)
        finite_mean_abs = mean_abs[~nan]
        layer_mean = finite_mean_abs.mean() if finite_mean_abs.size else 0.0
        if layer_mean > 0:
            dormant = (mean_abs / layer_mean <= dormant_tau) & ~nan
        else:
            dormant = ~nan
    activation_mean = activation_std = None
    if counters.value_sum is not None and counters.square_sum is not None:
        value_sum = np.asarray(counters.value_sum, dtype=np.float64).reshape(-1)
        square_sum = np.asarray(counters.square_sum, dtype=np.float64).reshape(-1)
        finite = ~nan & np.isfinite(value_sum) & np.isfinite(square_sum)
        total = elements * int(finite.sum())
        if total:
            activation_mean = float(value_sum[finite].sum() / total)
            variance = square_sum[finite].sum() / total - activation_mean**2
            activation_std = float(np.sqrt(max(variance, 0.0)))
    return SiteStatistics(
        name=name,
        kind=kind,
        element_count=elements,
        dead=dead,
        nan=nan,
        dormant=dormant,
        firing_rate=firing_rate.astype(np.float64),
        activation_mean=activation_mean,
        activation_std=activation_std,
        input_mean_square=counters.input_mean_square,
    )
