"""The "colorful" firing-rate map: one image row per site, one column per bin.

In the spirit of fastai's colorful dimension plot: for each site, the units are
binned by firing rate (share of inputs on which the unit fired) into
``bins`` columns from 0 (left, dead) to 1 (right, always on); a cell's
brightness is the share of the site's units in that bin, on a perceptual
colour scale. A healthy site shows a spread in the middle; a dying site lights
up the leftmost column.

>>> import numpy as np
>>> image = firing_rate_map([np.array([0.0, 0.0, 0.5, 1.0])], bins=4, cell=(1, 1))
>>> image.shape, image.dtype
((1, 4, 3), dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A few anchor colours of the viridis scale (dark purple to yellow).
_VIRIDIS = np.array(
    [
        [68, 1, 84],
        [59, 82, 139],
        [33, 145, 140],
        [94, 201, 98],
        [253, 231, 37],
    ],
    dtype=np.float64,
)


def colour_scale(values: np.ndarray) -> np.ndarray:
    """Maps values in [0, 1] to uint8 RGB on a viridis-like scale."""
    values = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
    positions = values * (len(_VIRIDIS) - 1)
    lower = np.floor(positions).astype(int)
    upper = np.minimum(lower + 1, len(_VIRIDIS) - 1)
    weight = (positions - lower)[..., None]
    colours = _VIRIDIS[lower] * (1 - weight) + _VIRIDIS[upper] * weight
    return np.round(colours).astype(np.uint8)


def firing_rate_shares(firing_rates: np.ndarray, bins: int) -> np.ndarray:
    """Share of units per firing-rate bin (NaN units left out)."""
    rates = np.asarray(firing_rates, dtype=np.float64)
    rates = rates[np.isfinite(rates)]
    if rates.size == 0:
        return np.zeros(bins)
    counts, _ = np.histogram(rates, bins=bins, range=(0.0, 1.0))
    return counts / rates.size


def firing_rate_map(
    firing_rates_per_site: Sequence[np.ndarray],
    bins: int = 20,
    cell: tuple[int, int] = (12, 12),
) -> np.ndarray:
    """Renders the map as an ``(rows, columns, 3)`` uint8 image.

    Args:
        firing_rates_per_site: one array of per-unit firing rates per site.
        bins: number of firing-rate bins (columns).
        cell: height and width in pixels of one cell.
    """
    shares = np.stack(
        [firing_rate_shares(rates, bins) for rates in firing_rates_per_site]
    )
    # Square root so that a few units in a bin still show.
    image = colour_scale(np.sqrt(shares))
    height, width = cell
    return np.repeat(np.repeat(image, height, axis=0), width, axis=1)
