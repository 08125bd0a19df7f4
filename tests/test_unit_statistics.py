"""Closed-form checks of the window statistics (dead, NaN, dormant, SELU)."""

import numpy as np
import pytest

from keras_deadrelu.firing_rate_map import firing_rate_map, firing_rate_shares
from keras_deadrelu.threshold_alerts import ThresholdAlerts
from keras_deadrelu.unit_statistics import (
    UnitCounters,
    WindowStatistics,
    site_statistics,
)


def test_dormant_scores_follow_redo_definition():
    # mean|a| per unit: 0, 0.05, 1, 2.95 -> layer mean 1.0 -> scores = same.
    counters = UnitCounters(
        positive_count=np.array([0, 1, 5, 9]),
        abs_sum=np.array([0.0, 0.5, 10.0, 29.5]),
        element_count=10,
    )
    stats = site_statistics("s", "relu", counters, dormant_tau=0.1)
    assert stats.dormant.tolist() == [True, True, False, False]
    assert site_statistics("s", "relu", counters, dormant_tau=0.0).dormant.tolist() == [
        True,
        False,
        False,
        False,
    ]
    assert stats.dormant_fraction == 0.5


def test_all_dead_site_is_all_dormant():
    counters = UnitCounters(np.zeros(3, int), np.zeros(3), element_count=4)
    stats = site_statistics("s", "relu", counters, dormant_tau=0.0)
    assert stats.dead_fraction == 1.0 and stats.dormant_fraction == 1.0


def test_sampled_positive_count_gives_an_estimated_rate_and_exact_dead_units():
    # 100 values per unit, of which 10 (the first samples) were counted:
    # unit 0 never fired; unit 1 fired, though not in the sample (so at
    # least 1 in 100); unit 2 fired on 4 of the 10; unit 3 produced a NaN.
    counters = UnitCounters(
        positive_count=np.array([0, 0, 4, 2]),
        abs_sum=np.array([0.0, 0.3, 7.0, np.nan]),
        element_count=100,
        positive_sample=10,
    )
    stats = site_statistics("s", "relu", counters, dormant_tau=0.0)
    assert stats.dead.tolist() == [True, False, False, False]
    assert stats.nan.tolist() == [False, False, False, True]
    np.testing.assert_allclose(stats.firing_rate, [0.0, 0.01, 0.4, np.nan])
    assert counters.counted_values == 10
    assert UnitCounters(np.zeros(1), np.zeros(1), 7).counted_values == 7


def test_selu_moments_from_sums():
    values = np.random.default_rng(0).normal(1.0, 2.0, size=(1000, 3))
    counters = UnitCounters(
        positive_count=(values > 0).sum(0),
        abs_sum=np.abs(values).sum(0),
        element_count=1000,
        value_sum=values.sum(0),
        square_sum=(values**2).sum(0),
    )
    stats = site_statistics("s", "selu", counters, dormant_tau=0.1)
    assert stats.activation_mean == pytest.approx(values.mean())
    assert stats.activation_std == pytest.approx(values.std())


def test_model_wide_fraction_is_dead_units_over_all_units():
    first = site_statistics(
        "a", "relu", UnitCounters(np.array([0, 1]), np.array([0.0, 1.0]), 2), 0.1
    )
    second = site_statistics(
        "b", "relu", UnitCounters(np.array([0, 0, 0, 1]), np.ones(4), 2), 0.1
    )
    window = WindowStatistics((first, second))
    assert window.dead_fraction == pytest.approx(4 / 6)
    assert window.dead_fractions() == {"a": 0.5, "b": 0.75}


def test_threshold_alerts_rearm_after_dropping_below():
    alerts = ThresholdAlerts(0.5)
    sequence = [0.2, 0.5, 0.9, 0.4, 0.6, 0.6]
    crossed = [bool(alerts.crossed({"s": value})) for value in sequence]
    assert crossed == [False, True, False, False, True, False]


def test_firing_rate_map_puts_dead_units_in_the_first_column():
    shares = firing_rate_shares(np.array([0.0, 0.0, 0.97, np.nan]), bins=4)
    np.testing.assert_allclose(shares, [2 / 3, 0, 0, 1 / 3])
    image = firing_rate_map([np.zeros(5), np.ones(5)], bins=4, cell=(2, 3))
    assert image.shape == (4, 12, 3)
    # Row 0 (all dead) is brightest at the left, row 1 (always on) at the right.
    brightness = image.astype(int).sum(axis=2)
    assert brightness[0, 0] > brightness[0, -1]
    assert brightness[2, -1] > brightness[2, 0]
