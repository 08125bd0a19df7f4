"""Fixes against the user's two causes, end to end in fit."""

import keras
import pytest
from dying_models import X, Y, mlp

import keras_deadrelu as kd


def test_lower_lr_with_revive_rescues_the_high_learning_rate_model():
    """The user's cause 1 and its cure: the rate is lowered where units die,
    the dead units are revived, and the loss falls where the unfixed model
    stalls."""
    histories, monitors = {}, {}
    for name, fix in (("unfixed", None), ("fixed", ["lower_lr", "revive"])):
        model = mlp(keras.optimizers.SGD(0.5))
        monitor = kd.DeadNeuronMonitor(log_dir=None, fix=fix, threshold=0.3, verbose=0)
        histories[name] = model.fit(X, Y, epochs=8, verbose=0, callbacks=[monitor])
        monitors[name] = monitor
    unfixed, fixed = histories["unfixed"].history, histories["fixed"].history
    events = [(e.epoch, e.site, e.fix) for e in monitors["fixed"].events]
    # Both fixes act at the check where h2 first crosses the threshold.
    crossing = next(i for i, f in enumerate(fixed["dead_fraction/h2"]) if f >= 0.3)
    assert events[:2] == [(crossing, "h2", "lower_lr"), (crossing, "h2", "revive")]
    assert monitors["fixed"].events[0].after == pytest.approx(0.25)
    # Afterwards: fewer dead units, and a loss that keeps falling.
    assert (
        max(fixed["dead_fraction/h2"][crossing + 1 :])
        < fixed["dead_fraction/h2"][crossing]
    )
    assert min(unfixed["loss"][3:]) > 2.5  # stalled
    assert fixed["loss"][-1] < 0.3 * unfixed["loss"][-1]
