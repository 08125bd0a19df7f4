"""Warnings when a site's dead fraction crosses the threshold.

A site *crosses* when its dead fraction reaches the threshold at a window
after being below it (or at its first window). It warns once per crossing,
not at every window it stays above; dropping below re-arms the warning.

>>> alerts = ThresholdAlerts(threshold=0.5)
>>> alerts.crossed({"dense": 0.6}), alerts.crossed({"dense": 0.7})
(['dense'], [])
>>> alerts.crossed({"dense": 0.1}), alerts.crossed({"dense": 0.9})
([], ['dense'])
"""

from __future__ import annotations

from keras_deadrelu.unit_statistics import SiteStatistics


class DeadNeuronWarning(UserWarning):
    """Issued when a site's dead fraction crosses the monitor's threshold."""


class ThresholdAlerts:
    """Remembers which sites are above the threshold, to warn once per crossing."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self._above: set[str] = set()

    @property
    def above(self) -> set[str]:
        """The sites at or above the threshold at the last window."""
        return set(self._above)

    @above.setter
    def above(self, names) -> None:
        self._above = set(names)

    def crossed(self, dead_fractions: dict[str, float]) -> list[str]:
        """Returns the sites that crossed the threshold at this window."""
        crossed = []
        for name, fraction in dead_fractions.items():
            if reaches_threshold(fraction, self.threshold):
                if name not in self._above:
                    crossed.append(name)
                    self._above.add(name)
            else:
                self._above.discard(name)
        return crossed


def reaches_threshold(
    dead_fraction: float, threshold: float, tolerance: float = 0.0
) -> bool:
    """Whether a site with `dead_fraction` is at or above `threshold` (less
    `tolerance`, for fractions read back as float32). A site with no dead
    unit never is: ``threshold=0`` means "any dead unit".

    >>> reaches_threshold(0.5, 0.5), reaches_threshold(0.0, 0.0)
    (True, False)
    """
    return dead_fraction >= threshold - tolerance and dead_fraction > 0


def crossing_message(site: SiteStatistics, where: str, threshold: float) -> str:
    """The warning text for one crossing.

    >>> import numpy as np
    >>> site = SiteStatistics("dense_1", "relu", 10, dead=np.array([1, 1, 0], bool),
    ...     nan=np.zeros(3, bool), dormant=np.zeros(3, bool),
    ...     firing_rate=np.zeros(3))
    >>> crossing_message(site, "epoch 3", 0.5)
    'dense_1: 67% of units dead (2/3) at epoch 3, at or above the threshold of 50%.'
    """
    message = (
        f"{site.name}: {site.dead_fraction:.0%} of units dead "
        f"({site.dead_count}/{site.unit_count}) at {where}, "
        f"at or above the threshold of {threshold:.0%}."
    )
    if site.nan_count:
        message += f" {site.nan_count} unit(s) produced NaN or inf."
    return message
