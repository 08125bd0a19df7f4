"""Interrupted and resumed fits with BackupAndRestore: nothing lost, nothing twice.

A "restart" here builds a fresh model and a fresh monitor, as a new process
would; only the files on disk (BackupAndRestore's and the monitor's state in
the same folder, and the event files) carry over.
"""

from __future__ import annotations

import json
import os
import warnings

import keras
import numpy as np
import pytest
from dying_models import X, Y, mlp
from event_files import read_run, scalar_series

import keras_deadrelu as kd
from keras_deadrelu import resume_state
from keras_deadrelu.fixes import LeakyReLUActivation, ScaledSchedule
from keras_deadrelu.resume_state import STATE_FILE
from keras_deadrelu.tensorboard_plugin import metadata

EPOCHS = 6
BATCHES_PER_EPOCH = len(X) // 64  # 8


class Interrupt(keras.callbacks.Callback):
    """Raises in the middle of `epoch`, as a killed process would stop."""

    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt("simulated interruption")


class ActivationAtEpochBegin(keras.callbacks.Callback):
    """Records h1's activation and the learning rate as each epoch begins
    (after the monitor's hook)."""

    def __init__(self):
        super().__init__()
        self.seen = {}
        self.learning_rate = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.seen[epoch] = type(self.model.get_layer("h1").activation)
        rate = self.model.optimizer.learning_rate
        self.learning_rate[epoch] = float(keras.ops.convert_to_numpy(rate))


def run(folder, *, interrupt=None, monitor_first=False, optimizer=None, **kwargs):
    """One (possibly interrupted) fit of a fresh model and a fresh monitor."""
    model = mlp(optimizer or keras.optimizers.SGD(0.01), bias=-5.0)
    backup = os.path.join(folder, "backup")
    monitor = kd.DeadNeuronMonitor(
        os.path.join(folder, "logs"), verbose=0, backup_dir=backup, **kwargs
    )
    restore = keras.callbacks.BackupAndRestore(backup)
    probe = ActivationAtEpochBegin()
    callbacks = [monitor, restore] if monitor_first else [restore, monitor]
    callbacks.append(probe)
    if interrupt is not None:
        callbacks.append(Interrupt(*interrupt))
    try:
        model.fit(X, Y, epochs=EPOCHS, batch_size=64, verbose=0, callbacks=callbacks)
    except KeyboardInterrupt:
        monitor.detach()
    return model, monitor, probe


@pytest.mark.parametrize("monitor_first", [False, True])
def test_swapped_layer_stays_leaky_and_numbering_goes_on(tmp_path, monitor_first):
    _, before, _ = run(
        tmp_path, interrupt=(3, 2), monitor_first=monitor_first, fix="leaky_relu"
    )
    swaps = [(e.step, e.site) for e in before.events]
    assert ("h1" in dict(map(reversed, swaps))) and all(s < 3 for s, _ in swaps)
    model, after, probe = run(tmp_path, monitor_first=monitor_first, fix="leaky_relu")
    # Resumed at epoch 3, with h1 already leaky before its first step.
    assert sorted(probe.seen) == [3, 4, 5]
    assert probe.seen[3] is LeakyReLUActivation
    assert isinstance(model.get_layer("h1").activation, LeakyReLUActivation)
    # The record goes on: the same swaps, none repeated.
    assert [(e.step, e.site) for e in after.events] == swaps
    assert [(s, n) for s, n, _ in after.diagnoses] == [
        (s, n) for s, n, _ in before.diagnoses
    ]
    # TensorBoard: every epoch exactly once, stock scalars and dashboard alike.
    records = read_run(os.path.join(tmp_path, "logs", "dead_neurons"))
    assert [s for s, _ in scalar_series(records, "dead_fraction")] == list(range(6))
    assert [s for s, _, _ in records[metadata.SITES_TAG]] == list(range(6))
    fix_steps = [s for s, _, _ in records[metadata.FIX_EVENTS_TAG]]
    assert fix_steps == sorted({s for s, _ in swaps})
    # Each window's swaps once, as one text event (a paragraph per swap) and
    # one scalar marker holding their count, as without backup_dir.
    swap_steps = sorted({s for s, _ in swaps})
    texts = records["fix_events"]
    assert [s for s, _, _ in texts] == swap_steps
    assert [len(text.item().decode().split("\n\n")) for _, text, _ in texts] == [
        sum(1 for s, _ in swaps if s == step) for step in swap_steps
    ]
    markers = scalar_series(records, "fix/leaky_relu")
    assert markers == [
        (step, float(sum(1 for s, _ in swaps if s == step))) for step in swap_steps
    ]
    # BackupAndRestore removes its folder after a completed fit, state included.
    assert not os.path.exists(os.path.join(tmp_path, "backup"))


def test_windows_much_shorter_than_the_backup_interval_keep_the_state(tmp_path):
    # One-step windows, a backup every epoch (8 steps), a crash late in epoch
    # 1: many windows pass after the backup, and the state that goes with it
    # (pinned around the backup) is still there for the restart.
    _, before, _ = run(tmp_path, interrupt=(1, 7), freq=1, fix="leaky_relu")
    swaps = [(e.step, e.site) for e in before.events]
    assert swaps and all(step <= 8 for step, _ in swaps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, after, probe = run(tmp_path, freq=1, fix="leaky_relu")
    # Resumed at epoch 1 with the layers already leaky; the same record,
    # and no threshold crossing announced again.
    assert probe.seen[1] is LeakyReLUActivation
    assert [(e.step, e.site) for e in after.events] == swaps
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "of units dead" in m]
    assert not [m for m in messages if "none of the" in m]


def test_a_restart_no_saved_state_goes_with_is_named(tmp_path, monkeypatch):
    # Without the pinned states (as before they were kept), no state goes
    # with the restored weights: the restart says so and starts afresh.
    monkeypatch.setattr(resume_state, "KEPT_PINNED", 0)
    run(tmp_path, interrupt=(1, 7), freq=1, fix="leaky_relu")
    with pytest.warns(kd.DeadNeuronWarning, match=r"none of the 6 monitor states"):
        run(tmp_path, freq=1, fix="leaky_relu")


def test_step_windows_resume_without_duplicates(tmp_path):
    # Windows of 5 steps; BackupAndRestore saves per epoch (every 8 steps), so
    # the resumed fit goes back to step 24 and redoes 25-27, whose window (25)
    # was written: it is not written again, and the windows go on in full
    # lengths of 5 from the restored step.
    run(tmp_path, interrupt=(3, 2), freq=5)
    run(tmp_path, freq=5)
    records = read_run(os.path.join(tmp_path, "logs", "dead_neurons"))
    steps = [s for s, _ in scalar_series(records, "dead_fraction")]
    total = EPOCHS * BATCHES_PER_EPOCH
    assert steps == [5, 10, 15, 20, 25, 29, 34, 39, 44, total]


def bias_of_h1(model) -> float:
    return float(np.mean(model.get_layer("h1").bias.numpy()))


class BiasAtEpochBegin(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.bias = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.bias[epoch] = bias_of_h1(self.model)


def test_revive_at_an_epoch_end_is_kept_when_the_monitor_comes_first(tmp_path):
    """Listed before BackupAndRestore, the monitor's fixes are in its backup."""
    _, before, _ = run(tmp_path, interrupt=(1, 2), monitor_first=True, fix="revive")
    assert [(e.step, e.site) for e in before.events] == [(0, "h1"), (0, "h2")]
    model, after, _ = run(tmp_path, monitor_first=True, fix="revive")
    assert [(e.step, e.site) for e in after.events] == [(0, "h1"), (0, "h2")]
    assert bias_of_h1(model) > -1  # revived, never dead again


def test_revive_lost_with_the_backup_is_redone_not_claimed(tmp_path):
    """Listed after BackupAndRestore, a fix made at the epoch's end is not in
    the backup: after a restart the monitor's record matches the weights (no
    claim of a revival that is not there) and the fix acts again."""
    run(tmp_path, interrupt=(1, 2), fix="revive")
    model = mlp(keras.optimizers.SGD(0.01), bias=-5.0)
    backup = os.path.join(tmp_path, "backup")
    monitor = kd.DeadNeuronMonitor(
        os.path.join(tmp_path, "logs"), verbose=0, backup_dir=backup, fix="revive"
    )
    biases = BiasAtEpochBegin()
    model.fit(
        X,
        Y,
        epochs=EPOCHS,
        batch_size=64,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup), biases, monitor],
    )
    assert biases.bias[1] == pytest.approx(-5.0)  # the backup predates the fix
    assert [(e.step, e.site) for e in monitor.events][:1] == [(1, "h1")]
    assert bias_of_h1(model) > -1


def test_same_monitor_refit_after_an_interruption_writes_no_step_twice(tmp_path):
    model = mlp(keras.optimizers.SGD(0.01), bias=-5.0)
    backup = os.path.join(tmp_path, "backup")
    monitor = kd.DeadNeuronMonitor(
        os.path.join(tmp_path, "logs"), verbose=0, backup_dir=backup, freq=5
    )
    callbacks = [keras.callbacks.BackupAndRestore(backup), monitor]
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            X,
            Y,
            epochs=EPOCHS,
            batch_size=64,
            verbose=0,
            callbacks=[*callbacks, Interrupt(3, 2)],
        )
    model.fit(X, Y, epochs=EPOCHS, batch_size=64, verbose=0, callbacks=callbacks)
    records = read_run(os.path.join(tmp_path, "logs", "dead_neurons"))
    steps = [s for s, _ in scalar_series(records, "dead_fraction")]
    assert steps == sorted(set(steps)), steps


def test_state_saved_before_any_backup_is_not_restored(tmp_path):
    # A window at step 5 (revive acts) but BackupAndRestore saves only at the
    # end of the epoch (step 8): the restarted fit starts from scratch, and so
    # does the monitor: one revival on record, not a phantom first one.
    run(tmp_path, interrupt=(0, 6), freq=5, fix="revive")
    assert not os.path.exists(os.path.join(tmp_path, "backup", "latest.weights.h5"))
    _, after, _ = run(tmp_path, freq=5, fix="revive")
    assert [(e.step, e.site) for e in after.events][:1] == [(5, "h1")]
    assert len([e for e in after.events if e.site == "h1"]) == 1


def test_a_state_from_another_model_is_named_and_ignored(tmp_path):
    run(tmp_path, interrupt=(3, 2), fix="leaky_relu")
    path = os.path.join(tmp_path, "backup", STATE_FILE)
    with open(path) as handle:
        saved = json.load(handle)
    for state in saved["states"]:
        state["fingerprint"] = "another model"
    with open(path, "w") as handle:
        json.dump(saved, handle)
    monitor = kd.DeadNeuronMonitor(None, verbose=0, backup_dir=tmp_path / "backup")
    model = mlp(keras.optimizers.SGD(0.01), bias=-5.0)
    model.get_layer("h1").name = "a1"
    model.get_layer("h2").name = "a2"
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(100)  # newer than every state
    with pytest.warns(kd.DeadNeuronWarning, match=r"sites this model does not"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.events == []


def test_a_state_from_another_model_is_named_even_with_no_event(tmp_path):
    # Nothing crossed the threshold and no fix acted: the state still names
    # the sites it was measured on.
    run(tmp_path, interrupt=(3, 2))
    path = os.path.join(tmp_path, "backup", STATE_FILE)
    with open(path) as handle:
        saved = json.load(handle)
    for state in saved["states"]:
        state["fingerprint"] = "another model"
        state["above_threshold"], state["events"] = [], []
        assert state["sites"] == ["h1", "h2"]
    with open(path, "w") as handle:
        json.dump(saved, handle)
    monitor = kd.DeadNeuronMonitor(None, verbose=0, backup_dir=tmp_path / "backup")
    model = mlp(keras.optimizers.SGD(0.01), bias=-5.0)
    model.get_layer("h1").name = "a1"
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(100)  # newer than every state
    with pytest.warns(kd.DeadNeuronWarning, match=r"does not have: \['h1'\]"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])


def test_a_restart_measuring_fewer_sites_keeps_the_state_and_the_swap(tmp_path):
    # The first run measured h1 and h2 and swapped h1; the restart measures
    # h2 only. Same model: the state is restored (no "another model"
    # warning), and h1 stays leaky, since it trained so before the restart.
    _, before, _ = run(tmp_path, interrupt=(3, 2), fix="leaky_relu")
    assert "h1" in {event.site for event in before.events}
    with warnings.catch_warnings():
        warnings.simplefilter("error", kd.DeadNeuronWarning)
        model, after, probe = run(tmp_path, fix="leaky_relu", layers=["h2"])
    assert [site.name for site in after.sites] == ["h2"]
    assert probe.seen[3] is LeakyReLUActivation
    assert isinstance(model.get_layer("h1").activation, LeakyReLUActivation)
    assert [(e.step, e.site) for e in after.events][: len(before.events)] == [
        (e.step, e.site) for e in before.events
    ]


def test_schedule_scale_survives_a_restart(tmp_path):
    def schedule_optimizer():
        rate = keras.optimizers.schedules.ExponentialDecay(0.5, 1000, 0.99)
        return keras.optimizers.SGD(rate)

    keras.utils.set_random_seed(0)
    _, before, _ = run(
        tmp_path,
        interrupt=(4, 1),
        optimizer=schedule_optimizer(),
        fix=["lower_lr", "revive"],
        threshold=0.3,
    )
    lowered = [e for e in before.events if e.fix == "lower_lr"]
    assert lowered, [(e.step, e.fix) for e in before.events]
    scale = lowered[-1].after / lowered[0].before  # the product of the factors
    with open(os.path.join(tmp_path, "backup", STATE_FILE)) as handle:
        state = json.load(handle)
    saved = state["states"][-1]["fixes"][0]["state"]
    assert saved["schedule_scale"] == pytest.approx(scale, rel=0.05)
    model, after, probe = run(
        tmp_path,
        optimizer=schedule_optimizer(),
        fix=["lower_lr", "revive"],
        threshold=0.3,
    )
    # From its first resumed step, the rate is the schedule times the scale.
    resumed = min(probe.learning_rate)
    inner = keras.optimizers.schedules.ExponentialDecay(0.5, 1000, 0.99)
    expected = float(inner(resumed * BATCHES_PER_EPOCH)) * saved["schedule_scale"]
    assert probe.learning_rate[resumed] == pytest.approx(expected, rel=1e-5)
    assert isinstance(model.optimizer._learning_rate, ScaledSchedule)


def test_model_checkpoint_after_a_swap_loads_leaky(tmp_path):
    model = mlp(keras.optimizers.SGD(0.01), bias=-5.0)
    path = os.path.join(tmp_path, "checkpoint.keras")
    monitor = kd.DeadNeuronMonitor(None, fix="leaky_relu", verbose=0)
    checkpoint = keras.callbacks.ModelCheckpoint(path)
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor, checkpoint])
    assert monitor.events
    loaded = keras.saving.load_model(path)
    activation = loaded.get_layer("h1").activation
    assert isinstance(activation, LeakyReLUActivation)
    assert activation.negative_slope == pytest.approx(0.01)
    np.testing.assert_allclose(
        loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6
    )


def test_unreadable_state_is_named_and_ignored(tmp_path):
    os.makedirs(tmp_path / "backup")
    (tmp_path / "backup" / STATE_FILE).write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable monitor state"):
        _, monitor, _ = run(tmp_path, fix="leaky_relu")
    assert monitor.last_window is not None


@pytest.mark.parametrize(
    "value, error, message",
    [
        (3, TypeError, "backup_dir=3"),
        ("", TypeError, "backup_dir=''"),
    ],
)
def test_bad_backup_dir(value, error, message):
    with pytest.raises(error, match=message):
        kd.DeadNeuronMonitor(None, backup_dir=value)


def test_backup_dir_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ValueError, match="is a file"):
        kd.DeadNeuronMonitor(None, backup_dir=path)


def test_without_backup_dir_a_recompiled_refit_writes_its_windows(tmp_path):
    """Only a monitor given `backup_dir` holds back steps it wrote before: a
    model recompiled (iterations from 0) and fitted again is logged."""
    model = mlp(keras.optimizers.SGD(0.01))
    monitor = kd.DeadNeuronMonitor(tmp_path, verbose=0, freq=4)
    model.fit(X, Y, epochs=1, batch_size=64, verbose=0, callbacks=[monitor])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    model.fit(X, Y, epochs=1, batch_size=64, verbose=0, callbacks=[monitor])
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    steps = [s for s, _ in scalar_series(records, "dead_fraction")]
    assert steps == [4, 8, 4, 8]
