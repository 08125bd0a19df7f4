"""The fixes in a real fit: lower the learning rate, swap to Leaky ReLU."""

import json
import os
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from event_files import read_run

import keras_deadrelu as kd
from keras_deadrelu.fixes import (
    LeakyReLUActivation,
    LowerLearningRate,
    ScaledSchedule,
    SwapToLeakyReLU,
)
from keras_deadrelu.measurement import SiteMeasurement
from keras_deadrelu.probe import as_batches
from keras_deadrelu.tensorboard_plugin import metadata
from keras_deadrelu.unit_statistics import SiteStatistics, WindowStatistics

rng = np.random.default_rng(5)
X = rng.normal(size=(256, 8)).astype("float32")
Y = (np.sin(X[:, :1]) + X[:, 1:2] ** 2).astype("float32")


def window_statistics(model, x):
    """One probe window's statistics, as the monitor would pass to a fix."""
    measurement = SiteMeasurement(
        model, kd.find_sites(model), probe_batches=as_batches(x)
    )
    measurement.install()
    try:
        return measurement.close_window()
    finally:
        measurement.uninstall()


def bias_killed_model(optimizer=None, hidden_layer="dense"):
    """Hidden ReLU units born dead: biases at -5, pre-activations ~ N(-5, 0.5)."""
    inputs = keras.Input((8,))
    kernel_init = keras.initializers.RandomNormal(stddev=0.15)
    if hidden_layer == "dense":
        hidden = keras.layers.Dense(
            32,
            activation="relu",
            name="hidden",
            kernel_initializer=kernel_init,
            bias_initializer=keras.initializers.Constant(-5.0),
        )(inputs)
    else:
        hidden = keras.layers.Dense(
            32,
            name="pre",
            kernel_initializer=kernel_init,
            bias_initializer=keras.initializers.Constant(-5.0),
        )(inputs)
        hidden = keras.layers.ReLU(name="hidden")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))
    model.compile(optimizer or keras.optimizers.Adam(0.01), "mse")
    return model


def dead_hidden_model(activation):
    """hidden: Dense(16, `activation`) with biases at -5 (born dead) -> head."""
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(
        16,
        activation=activation,
        name="hidden",
        bias_initializer=keras.initializers.Constant(-5.0),
    )(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))
    model.compile("adam", "mse")
    return model


def test_swap_to_leaky_relu_fires_loses_nothing_and_unfreezes(tmp_path):
    model = bias_killed_model(keras.optimizers.Adam(0.05))
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), fix="leaky_relu", verbose=0)
    model.fit(X, Y, epochs=1, batch_size=32, verbose=0)  # dead, no monitor yet
    kernel_before = model.get_layer("hidden").get_weights()[0].copy()
    model.fit(X, Y, epochs=1, batch_size=32, verbose=0)
    # Dead units get no gradient: their kernel is frozen.
    np.testing.assert_array_equal(
        model.get_layer("hidden").get_weights()[0], kernel_before
    )

    iterations_at_swap = []

    class IterationsAtEpochEnd(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            iterations_at_swap.append(int(model.optimizer.iterations.numpy()))

    history = model.fit(
        X,
        Y,
        epochs=6,
        batch_size=8,
        verbose=0,
        callbacks=[monitor, IterationsAtEpochEnd()],
    )
    (event,) = monitor.events
    assert (event.site, event.fix, event.epoch, event.step) == (
        "hidden",
        "leaky_relu",
        0,
        0,
    )
    assert event.before == "relu" and event.dead_fraction == 1.0
    assert isinstance(model.get_layer("hidden").activation, LeakyReLUActivation)
    # The optimizer's step count goes on across the swap (2 x 8, then 32 an epoch).
    assert iterations_at_swap == [16 + 32 * epoch for epoch in range(1, 7)]
    # After the swap the formerly frozen kernel moves, and units come back.
    assert not np.array_equal(model.get_layer("hidden").get_weights()[0], kernel_before)
    dead = history.history["dead_fraction/hidden"]
    assert dead[0] == 1.0 and dead[-1] < 1.0

    # Recorded in TensorBoard: a text event and a marker at the step.
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    ((step, text, plugin),) = records["fix_events"]
    assert step == 0 and plugin == "text" and b"applied leaky_relu" in text.item()
    assert [(s, float(v)) for s, v, _ in records["fix/leaky_relu"]] == [(0, 1.0)]
    # Windows after the swap name the site's new kind, in History's windows
    # and in the dashboard's per-window rows alike.
    assert monitor.last_window["hidden"].kind == "leaky_relu"
    kinds = [
        {row[0]: row[1] for row in json.loads(value.item())}["hidden"]
        for _, value, _ in records[metadata.SITES_TAG]
    ]
    assert kinds == ["relu"] + ["leaky_relu"] * 5


def test_swap_changes_no_weight_bitwise_and_saves_with_slope(tmp_path):
    model = bias_killed_model()
    model.fit(X, Y, epochs=1, verbose=0)
    weights = [np.array(w) for w in model.get_weights()]
    slots = [np.array(v.numpy()) for v in model.optimizer.variables]
    site = next(s for s in kd.find_sites(model) if s.name == "hidden")
    statistics = window_statistics(model, X)["hidden"]
    assert SwapToLeakyReLU().apply(model, site, statistics) is not None
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    for before, after in zip(slots, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    # The next predict already uses the leaky slope.
    pre = X @ weights[0] + weights[1]
    expected_hidden = np.where(pre >= 0, pre, 0.01 * pre)
    expected = expected_hidden @ weights[2] + weights[3]
    np.testing.assert_allclose(
        model.predict(X, verbose=0), expected, rtol=1e-4, atol=1e-5
    )

    path = tmp_path / "swapped.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", X)
    script = (
        "import sys, json, numpy as np, keras, keras_deadrelu\n"
        "m = keras.models.load_model(sys.argv[1])\n"
        "a = m.get_layer('hidden').activation\n"
        "print(json.dumps([type(a).__name__, a.negative_slope]))\n"
        "np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0))\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(path),
            str(tmp_path / "x.npy"),
            str(tmp_path / "p.npy"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.stdout.strip().splitlines()[-1] == '["LeakyReLUActivation", 0.01]'
    np.testing.assert_array_equal(
        np.load(tmp_path / "p.npy"), model.predict(X, verbose=0)
    )


def test_swap_on_a_keras_relu_layer_sets_its_slope():
    model = bias_killed_model(hidden_layer="relu")
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix=SwapToLeakyReLU(0.05), verbose=0)
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    assert model.get_layer("hidden").negative_slope == 0.05
    assert [e.after for e in monitor.events] == [0.05]


def test_swap_on_a_deadrelu_leaky_layer_with_slope_zero_needs_no_retrace():
    inputs = keras.Input((8,))
    pre = keras.layers.Dense(
        16, bias_initializer=keras.initializers.Constant(-5.0), name="pre"
    )(inputs)
    hidden = kd.layers.LeakyReLU(0.0, name="hidden")(pre)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile("adam", "mse")
    model.fit(X, Y, epochs=1, verbose=0)
    train_function = model.train_function
    site = next(s for s in kd.find_sites(model) if s.name == "hidden")
    statistics = window_statistics(model, X)["hidden"]
    result = SwapToLeakyReLU().apply(model, site, statistics)
    assert result[2] == "slope variable set, no retrace"
    assert model.train_function is train_function
    assert model.get_layer("hidden").negative_slope == pytest.approx(0.01)


def test_the_output_layer_is_never_touched():
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(
        4,
        activation="relu",
        name="out",
        bias_initializer=keras.initializers.Constant(-9.0),
        kernel_initializer="zeros",
    )(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "mse")
    monitor = kd.DeadNeuronMonitor(
        log_dir=None, fix=["leaky_relu", "lower_lr"], verbose=0
    )
    model.fit(X, np.zeros((256, 4)), epochs=2, verbose=0, callbacks=[monitor])
    assert monitor.events == []
    assert model.get_layer("out").activation.__name__ == "relu"


def synthetic_statistics(name, dead_fraction, units=10):
    dead = np.arange(units) < round(dead_fraction * units)
    return SiteStatistics(
        name,
        "relu",
        100,
        dead=dead,
        nan=np.zeros(units, bool),
        dormant=dead,
        firing_rate=np.where(dead, 0.0, 0.5),
    )


def test_lower_lr_acts_while_units_keep_dying_and_respects_the_floor():
    model = bias_killed_model(keras.optimizers.SGD(0.1))
    site = next(s for s in kd.find_sites(model) if s.name == "hidden")
    fix = LowerLearningRate(factor=0.5, min_lr=0.02)
    actions = []
    for fraction in (0.5, 0.5, 0.6, 0.7, 0.7, 0.1, 0.6, 0.9):
        statistics = synthetic_statistics("hidden", fraction)
        result = None
        if fraction >= 0.5:  # the monitor calls a fix at or above the threshold
            result = fix.apply(model, site, statistics)
        actions.append(None if result is None else round(result[1], 6))
        fix.observe(WindowStatistics((statistics,)))
    # Acts at the first crossing; not while the fraction holds; again as it
    # rises (units still dying), even after it fell (revived, then dying
    # again); floored at min_lr.
    assert actions == [0.05, None, 0.025, 0.02, None, None, None, None]
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.02)


def test_lower_lr_acts_again_when_revived_units_die_again():
    model = bias_killed_model(keras.optimizers.SGD(0.4))
    site = next(s for s in kd.find_sites(model) if s.name == "hidden")
    fix = LowerLearningRate(factor=0.5, min_lr=1e-6)
    actions = []
    for fraction in (0.9, 0.1, 0.8):  # dead, revived, dying again
        statistics = synthetic_statistics("hidden", fraction)
        result = fix.apply(model, site, statistics) if fraction >= 0.5 else None
        actions.append(None if result is None else round(result[1], 6))
        fix.observe(WindowStatistics((statistics,)))
    assert actions == [0.2, None, 0.1]


def test_lower_lr_lowers_the_rate_once_for_several_sites_dead_at_once():
    # Four layers dead from the start, their fractions flat at 1.0: nothing
    # is dying any more after the first action, so the model's one rate is
    # lowered once, not once per dead site as cooldowns run out.
    keras.utils.set_random_seed(3)
    inputs = keras.Input((X.shape[1],))
    hidden = inputs
    for index in range(4):
        hidden = keras.layers.Dense(
            8,
            activation="relu",
            name=f"dead{index}",
            bias_initializer=keras.initializers.Constant(-20.0),
        )(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    monitor = kd.DeadNeuronMonitor(
        log_dir=None, fix=LowerLearningRate(cooldown=0), verbose=0
    )
    history = model.fit(X, Y, epochs=5, verbose=0, callbacks=[monitor])
    for index in range(4):
        assert history.history[f"dead_fraction/dead{index}"] == [1.0] * 5
    assert [(e.epoch, e.site) for e in monitor.events] == [(0, "dead0")]
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.05)


def test_lower_lr_acts_for_a_site_that_starts_dying_after_it_acted():
    model = bias_killed_model(keras.optimizers.SGD(0.4))
    site = next(s for s in kd.find_sites(model) if s.name == "hidden")
    fix = LowerLearningRate(factor=0.5, min_lr=1e-6)
    first = synthetic_statistics("hidden", 0.9)
    healthy = synthetic_statistics("other", 0.0)
    assert fix.apply(model, site, first) is not None
    fix.observe(WindowStatistics((first, healthy)))
    # "other" had no dead unit when the rate was lowered: its crossing is
    # new evidence, and the rate is lowered again; "hidden", flat, is not.
    assert fix.apply(model, site, synthetic_statistics("hidden", 0.9)) is None
    newly_dead = synthetic_statistics("other", 0.8)
    other_site = kd.Site("other", site.layer, site.kind)
    assert fix.apply(model, other_site, newly_dead) is not None


class AlwaysActs(kd.fixes.Fix):
    """A fix that acts at every chance, to test the monitor's cooldown."""

    name = "always"

    def apply(self, model, site, statistics):
        return 0, 1, "acted"


def test_monitor_waits_cooldown_windows_between_actions_per_site():
    model = bias_killed_model()
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix=AlwaysActs(cooldown=2), verbose=0)
    model.fit(X, Y, epochs=7, verbose=0, callbacks=[monitor])
    assert [event.epoch for event in monitor.events] == [0, 3, 6]


def test_lower_lr_logs_the_learning_rate_every_window(tmp_path):
    model = bias_killed_model(keras.optimizers.SGD(0.1))
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), fix="lower_lr", verbose=0)
    model.fit(X, Y, epochs=3, verbose=0, callbacks=[monitor])
    assert [(e.epoch, e.before, e.after) for e in monitor.events] == [
        (0, pytest.approx(0.1), pytest.approx(0.05))
    ]
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    learning_rates = [(s, float(v)) for s, v, _ in records["learning_rate"]]
    assert [s for s, _ in learning_rates] == [0, 1, 2]
    assert learning_rates[0][1] == pytest.approx(0.1)  # logged before the fix
    assert learning_rates[1][1] == pytest.approx(0.05)


def test_lower_lr_scales_a_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1000, 0.5)
    model = bias_killed_model(keras.optimizers.SGD(schedule))
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="lower_lr", verbose=0)
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    (event,) = monitor.events
    new_schedule = model.optimizer._learning_rate
    assert isinstance(new_schedule, ScaledSchedule) and new_schedule.scale == 0.5
    step = int(model.optimizer.iterations.numpy())
    expected = 0.5 * 0.1 * 0.5 ** (step / 1000)
    assert float(model.optimizer.learning_rate) == pytest.approx(expected, rel=1e-5)
    assert event.after == pytest.approx(expected, rel=1e-5)
    # Training goes on with the scaled schedule.
    model.fit(X, Y, epochs=1, verbose=0)


def test_a_scaled_schedule_never_raises_the_rate_above_the_users_schedule():
    """Where the user's schedule decays below min_lr, the lowered rate follows
    it down instead of being lifted to min_lr (0.5 * schedule, floored at
    min(schedule, min_lr))."""
    decay = keras.optimizers.schedules.PolynomialDecay(1e-2, 16, end_learning_rate=1e-8)
    scaled = ScaledSchedule(decay, scale=0.5, min_lr=1e-6)
    for step in [0, 4, 8, 15, 16, 40]:
        rate = float(decay(step))
        expected = max(0.5 * rate, min(rate, 1e-6))
        assert float(scaled(step)) == pytest.approx(expected, rel=1e-5), step
        assert float(scaled(step)) <= rate * (1 + 1e-6), step
    assert float(scaled(40)) == pytest.approx(1e-8, rel=1e-5)
    assert float(scaled(0)) == pytest.approx(5e-3, rel=1e-5)


@pytest.mark.parametrize(
    "fix, repeated",
    [
        (["lower_lr", "lower_lr"], "LowerLearningRate"),
        (["revive", "leaky_relu", kd.fixes.ReviveUnits(bias=0.1)], "ReviveUnits"),
    ],
)
def test_a_fix_listed_twice_is_refused_in_the_constructor(fix, repeated):
    with pytest.raises(ValueError, match=rf"more than once.*{repeated}.*fix=\["):
        kd.DeadNeuronMonitor(log_dir=None, fix=fix)


def test_two_fixes_of_ones_own_class_with_other_settings_are_accepted():
    class ClipLearningRate(kd.fixes.Fix):
        name = "clip_lr"

        def __init__(self, ceiling):
            super().__init__()
            self.ceiling = ceiling

    monitor = kd.DeadNeuronMonitor(
        log_dir=None, fix=[ClipLearningRate(0.1), ClipLearningRate(0.01)]
    )
    assert [fix.ceiling for fix in monitor.fixes] == [0.1, 0.01]


def test_lower_lr_warns_before_training_when_min_lr_is_the_rate_already():
    model = bias_killed_model(keras.optimizers.SGD(0.001))
    monitor = kd.DeadNeuronMonitor(
        log_dir=None, fix=LowerLearningRate(min_lr=0.01), verbose=0
    )
    with pytest.warns(kd.DeadNeuronWarning, match=r"min_lr=0.01.*rate is 0.001"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)


def test_swap_leaves_a_users_own_relu_function_alone_and_says_so():
    """A function of the user's named "relu" (here capped at 1) is not
    replaced: the swap would drop the cap from the live units too."""

    def relu(x):
        return keras.ops.minimum(keras.activations.relu(x), 1.0)

    model = dead_hidden_model(relu)
    site = next(s for s in kd.find_sites(model) if s.name == "hidden")
    fix = SwapToLeakyReLU()
    assert "function of the user's" in fix.sites_out_of_reach([site])["hidden"]
    statistics = window_statistics(model, X)["hidden"]
    assert statistics.dead_fraction == 1.0
    assert fix.apply(model, site, statistics) is None
    assert model.get_layer("hidden").activation is relu
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="leaky_relu", verbose=0)
    with pytest.warns(kd.DeadNeuronWarning, match=r"'leaky_relu' cannot act.*hidden"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.events == [] and model.get_layer("hidden").activation is relu


DECAY = keras.optimizers.schedules.ExponentialDecay(0.1, 1000, 0.5)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: LowerLearningRate(factor=1.5), r"factor=1.5"),
        (lambda: LowerLearningRate(min_lr=-1), r"min_lr=-1"),
        (lambda: LowerLearningRate(cooldown=-1), r"cooldown=-1"),
        (lambda: SwapToLeakyReLU(negative_slope=0), r"negative_slope=0"),
        (lambda: ScaledSchedule(DECAY, scale=-1), r"`scale` must be > 0.*scale=-1"),
        (lambda: ScaledSchedule(DECAY, scale=0), r"`scale` must be > 0.*scale=0"),
        (lambda: ScaledSchedule(DECAY, scale=np.inf), r"`scale`.*finite.*scale=inf"),
        (lambda: ScaledSchedule(DECAY, 0.5, min_lr=-1), r"min_lr.*min_lr=-1"),
    ],
)
def test_fix_arguments_are_checked(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("cooldown", [0.9, 1.5, "2", True])
def test_cooldown_must_be_a_whole_number_of_windows(cooldown):
    with pytest.raises(
        TypeError, match=rf"`cooldown` must be an integer.*{cooldown!r}"
    ):
        LowerLearningRate(cooldown=cooldown)


def test_swap_keeps_the_loss_falling_where_the_unfixed_model_stalls():
    histories = {}
    for fix in (None, "leaky_relu"):
        keras.utils.set_random_seed(2)
        model = bias_killed_model(keras.optimizers.Adam(0.05))
        monitor = kd.DeadNeuronMonitor(log_dir=None, fix=fix, verbose=0)
        histories[fix] = model.fit(
            X, Y, epochs=8, batch_size=8, verbose=0, callbacks=[monitor]
        ).history
    unfixed, fixed = histories[None], histories["leaky_relu"]
    # Unfixed: every hidden unit is dead, only the head's bias learns.
    assert unfixed["dead_fraction/hidden"] == [1.0] * 8
    assert unfixed["loss"][-1] > 0.95 * float(np.var(Y))
    assert fixed["dead_fraction/hidden"][-1] < fixed["dead_fraction/hidden"][0]
    # Fixed: the loss keeps falling after the swap, well below the stall.
    assert fixed["loss"][-1] < fixed["loss"][3] < fixed["loss"][1]
    assert fixed["loss"][-1] < 0.5 * unfixed["loss"][-1]


@pytest.mark.parametrize("kind", ["activation_layer", "conv"])
def test_swap_on_activation_layers_and_convolutions(kind):
    inputs = keras.Input((6, 6, 2))
    if kind == "conv":
        hidden = keras.layers.Conv2D(3, 3, activation="relu", name="hidden")(inputs)
    else:
        hidden = keras.layers.Conv2D(3, 3, name="pre")(inputs)
        hidden = keras.layers.Activation("relu", name="hidden")(hidden)
    pooled = keras.layers.GlobalAveragePooling2D()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    model.compile("adam", "mse")
    x = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    model.predict(x, verbose=0)
    site = next(s for s in kd.find_sites(model) if s.name == "hidden")
    statistics = window_statistics(model, x)["hidden"]
    assert SwapToLeakyReLU().apply(model, site, statistics) is not None
    layer = model.get_layer("hidden")
    assert isinstance(layer.activation, LeakyReLUActivation)
    # The rebuilt predict function uses it: compare with NumPy on the conv output.
    conv = model.get_layer("pre" if kind != "conv" else "hidden")
    kernel, bias = conv.get_weights()
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))
    pre = np.einsum("bhwcij,ijco->bhwo", windows, kernel) + bias
    leaky = np.where(pre >= 0, pre, 0.01 * pre)
    expected = leaky.mean(axis=(1, 2)) @ model.layers[-1].get_weights()[0]
    expected += model.layers[-1].get_weights()[1]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_swap_in_fit_on_a_conv_site_then_counts_every_value(jit_compile):
    # Streaming on a CPU without XLA, a ReLU conv site's positive count is
    # sampled; once swapped to Leaky ReLU it is counted in full. The layout
    # of the counters must survive the retrace, and both windows must match
    # NumPy (learning rate 0: the weights stay as set).
    inputs = keras.Input((6, 6, 3))
    conv = keras.layers.Conv2D(6, 3, activation="relu", name="c")
    model = keras.Model(
        inputs, keras.layers.Dense(1)(keras.layers.Flatten()(conv(inputs)))
    )
    conv.bias.assign(np.where(np.arange(6) % 3 == 0, -20.0, 0.0).astype("float32"))
    model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=jit_compile)
    x = rng.random((16, 6, 6, 3)).astype("float32")
    monitor = kd.DeadNeuronMonitor(
        log_dir=None, verbose=0, threshold=0.2, fix="leaky_relu"
    )
    history = model.fit(
        x,
        np.zeros((16, 1), "float32"),
        epochs=2,
        batch_size=8,
        shuffle=False,
        verbose=0,
        callbacks=[monitor],
    )
    assert [event.fix for event in monitor.events] == ["leaky_relu"]
    assert history.history["dead_fraction/c"] == [pytest.approx(2 / 6)] * 2
    kernel, bias = conv.get_weights()
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))
    pre = np.einsum("bhwcij,ijco->bhwo", windows, kernel) + bias
    # The second window ran Leaky ReLU: every value counted, on every path.
    np.testing.assert_allclose(
        monitor.last_window["c"].firing_rate,
        (pre > 0).reshape(-1, 6).mean(axis=0),
    )
    np.testing.assert_allclose(
        model.predict(x, verbose=0),
        np.where(pre >= 0, pre, 0.01 * pre).reshape(16, -1)
        @ model.layers[-1].get_weights()[0]
        + model.layers[-1].get_weights()[1],
        rtol=1e-4,
        atol=1e-4,
    )


def test_fix_actions_are_warned_unless_verbose_is_zero():
    model = bias_killed_model()
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="leaky_relu", verbose=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    messages = [str(w.message) for w in caught if w.category is kd.DeadNeuronWarning]
    assert len(messages) == 2  # the crossing (with its diagnosis), the action
    assert "bias driven far below zero" in messages[0]
    assert re.search(r"hidden: 100% dead .* applied leaky_relu", messages[1])
    assert len(monitor.events) == 1


def test_lower_lr_under_mixed_precision_lowers_the_inner_optimizer():
    keras.config.set_dtype_policy("mixed_float16")
    model = bias_killed_model(keras.optimizers.SGD(0.1))
    assert hasattr(model.optimizer, "inner_optimizer")  # a LossScaleOptimizer
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="lower_lr", verbose=0)
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    (event,) = monitor.events
    assert (event.before, event.after) == (pytest.approx(0.1), pytest.approx(0.05))
    learning_rate = model.optimizer.inner_optimizer.learning_rate
    assert float(np.asarray(learning_rate)) == pytest.approx(0.05)


def test_lower_lr_rejects_a_callable_learning_rate_before_training():
    model = bias_killed_model(keras.optimizers.SGD(learning_rate=lambda: 0.01))
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="lower_lr", verbose=0)
    with pytest.raises(ValueError, match="plain callable"):
        model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    assert int(model.optimizer.iterations.numpy()) == 0
    assert "train_step" not in model.__dict__


def test_lower_lr_refuses_a_multi_optimizer_before_training():
    optimizer = keras.optimizers.MultiOptimizer(
        keras.optimizers.OptimizerMap(
            keras.optimizers.SGD(0.1), {"dense/.*": keras.optimizers.SGD(0.01)}
        )
    )
    model = bias_killed_model(optimizer)
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="lower_lr", verbose=0)
    with pytest.raises(ValueError, match="a MultiOptimizer has one per group"):
        model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    assert int(model.optimizer.iterations.numpy()) == 0


@pytest.mark.parametrize("activation", ["leaky_relu", "relu6"])
def test_swap_leaves_leaky_and_relu6_sites_alone(activation):
    model = dead_hidden_model(activation)
    site = next(s for s in kd.find_sites(model) if s.name == "hidden")
    statistics = window_statistics(model, X)["hidden"]
    assert SwapToLeakyReLU().apply(model, site, statistics) is None
    assert model.get_layer("hidden").activation.__name__ == activation


def test_a_failing_fix_is_reported_and_training_goes_on():
    class Broken(kd.fixes.Fix):
        name = "broken"

        def apply(self, model, site, statistics):
            raise RuntimeError("boom")

    model = bias_killed_model()
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix=Broken(), verbose=0)
    with pytest.warns(kd.DeadNeuronWarning, match="fix 'broken' failed .*boom"):
        history = model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    assert len(history.history["loss"]) == 2 and monitor.events == []


def test_detach_after_an_interrupted_fit_leaves_the_model_as_it_was():
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    model = bias_killed_model()
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, epochs=3, verbose=0, callbacks=[monitor, Interrupt()])
    assert "train_step" in model.__dict__  # Keras did not call on_train_end
    monitor.detach()
    assert "train_step" not in model.__dict__
    assert all("call" not in layer.__dict__ for layer in model.layers)
    model.fit(X, Y, epochs=1, verbose=0)  # trains normally afterwards


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("fix", ["leaky_relu", "revive", "lower_lr"])
def test_every_fix_acts_under_mixed_precision(policy, fix):
    keras.config.set_dtype_policy(policy)
    model = bias_killed_model(keras.optimizers.Adam(0.01))
    hidden = model.get_layer("hidden")
    assert hidden.compute_dtype == policy.split("_")[1]
    assert hidden.kernel.dtype == "float32"  # variables stay float32
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix=fix, verbose=0)
    history = model.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    kernel_after_first_epoch = hidden.kernel.numpy().copy()  # frozen: all dead
    history = model.fit(X, Y, epochs=3, verbose=0, callbacks=[monitor])
    assert [e.site for e in monitor.events][:1] == ["hidden"], monitor.events
    assert np.isfinite(history.history["loss"]).all()
    for variable in model.weights + model.optimizer.variables:
        assert np.isfinite(np.asarray(variable.numpy(), dtype=np.float64)).all()
    if fix == "lower_lr":
        assert monitor.events[0].after == pytest.approx(monitor.events[0].before / 2)
    elif fix == "revive":
        # The revived units fire again.
        assert history.history["dead_fraction/hidden"][-1] < 0.5
    else:
        # The swapped units get gradients: the frozen kernel moves.
        assert isinstance(hidden.activation, LeakyReLUActivation)
        assert hidden.compute_dtype == policy.split("_")[1]
        moved = np.abs(hidden.kernel.numpy() - kernel_after_first_epoch).max(axis=0)
        assert (moved > 0).all()


@pytest.mark.parametrize("fix", ["revive", "leaky_relu"])
def test_fixes_leave_a_frozen_backbone_alone_and_fix_the_rest(fix):
    dead_bias = keras.initializers.Constant(-20.0)
    backbone = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(8, activation="relu", bias_initializer=dead_bias),
            keras.layers.Dense(8, name="frozen_next"),
        ],
        name="backbone",
    )
    backbone.trainable = False  # pretrained: must not change
    model = keras.Sequential(
        [
            keras.Input((8,)),
            backbone,
            keras.layers.Dense(
                6, activation="relu", bias_initializer=dead_bias, name="trainable"
            ),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    frozen_site = backbone.layers[0]
    frozen_weights = [w.copy() for w in backbone.get_weights()]
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix=fix, verbose=0)
    with pytest.warns(kd.DeadNeuronWarning, match=f"{frozen_site.name}.*frozen"):
        model.fit(X, Y, epochs=2, batch_size=64, verbose=0, callbacks=[monitor])
    for before, after in zip(frozen_weights, backbone.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert keras.activations.serialize(frozen_site.activation) == "relu"
    assert {event.site for event in monitor.events} == {"trainable"}


class HeadFirst(keras.Model):
    """A subclassed model whose output layer is created before its hidden
    one, so `model.layers[-1]` is the hidden layer; both start dead."""

    def __init__(self):
        super().__init__()
        dead = keras.initializers.Constant(-20.0)
        self.head = keras.layers.Dense(
            1, activation="relu", bias_initializer=dead, name="head"
        )
        self.hidden = keras.layers.Dense(
            8, activation="relu", bias_initializer=dead, name="hidden"
        )

    def call(self, inputs):
        return self.head(self.hidden(inputs))


@pytest.mark.parametrize("built", [True, False])
def test_a_subclassed_models_output_layer_is_never_touched(built):
    model = HeadFirst()
    if built:
        model(X[:1])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="leaky_relu", verbose=0)
    with pytest.warns(kd.DeadNeuronWarning, match="the swap is not saved"):
        model.fit(X, np.abs(Y), epochs=2, verbose=0, callbacks=[monitor])
    assert {event.site for event in monitor.events} == {"hidden"}
    assert keras.activations.serialize(model.head.activation) == "relu"


def test_the_output_site_before_a_float32_cast_is_never_touched():
    # Keras's mixed-precision guide ends a model with a float32 cast layer:
    # the site before it still produces the model's output.
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((8,))
        hidden = keras.layers.Dense(
            8,
            activation="relu",
            name="hidden",
            bias_initializer=keras.initializers.Constant(-50.0),
        )(inputs)
        output = keras.layers.Dense(
            1,
            activation="relu",
            name="output",
            bias_initializer=keras.initializers.Constant(-50.0),
        )(hidden)
        cast = keras.layers.Activation("linear", dtype="float32")(output)
        model = keras.Model(inputs, cast)
        model.compile(keras.optimizers.SGD(0.01), "mse")
        monitor = kd.DeadNeuronMonitor(log_dir=None, fix="leaky_relu", verbose=0)
        model.fit(X, np.abs(Y), epochs=2, verbose=0, callbacks=[monitor])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert {event.site for event in monitor.events} == {"hidden"}
    output_layer = model.get_layer("output")
    assert keras.activations.serialize(output_layer.activation) == "relu"


class KillMoreEachEpoch(keras.callbacks.Callback):
    """Kills `epoch + 2` more hidden units (bias -1000) at each epoch's start,
    so the site keeps dying and `lower_lr` keeps wanting to act."""

    def on_epoch_begin(self, epoch, logs=None):
        layer = self.model.get_layer("hidden")
        bias = layer.bias.numpy().copy()
        bias[: epoch + 2] = -1000.0
        layer.bias.assign(bias)


@pytest.mark.parametrize(
    "learning_rate, expected",
    [
        # 0.001 is not exact in float32: the rate reads 0.0010000000475.
        (0.003, [(0.003, 0.0015), (0.0015, 0.001)]),
        (0.001, []),  # at the floor from the start
    ],
)
def test_lower_lr_stops_at_a_float32_inexact_floor(tmp_path, learning_rate, expected):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))
    model.compile(keras.optimizers.Adam(learning_rate), "mse")
    fix = LowerLearningRate(factor=0.5, min_lr=0.001, cooldown=0)
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), threshold=0.1, fix=fix)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            X,
            Y,
            epochs=5,
            verbose=0,
            callbacks=[KillMoreEachEpoch(), monitor],
        )
    # The dead fraction rose in every window (2/16 ... 6/16).
    assert [(e.before, e.after) for e in monitor.events] == [
        (pytest.approx(before), pytest.approx(after)) for before, after in expected
    ]
    actions = [str(w.message) for w in caught if "applied lower_lr" in str(w.message)]
    assert len(actions) == len(expected)
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    assert len(records.get("fix/lower_lr", [])) == len(expected)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(
        min(learning_rate, 0.001) if expected else learning_rate
    )


def dead_dense(name):
    return keras.layers.Dense(
        8,
        activation="relu",
        name=name,
        bias_initializer=keras.initializers.Constant(-50.0),
    )


class TwoDeadLayers(keras.Model):
    """A subclassed model: its config rebuilds both ReLU layers on loading."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = dead_dense("first")
        self.second = dead_dense("second")
        self.head = keras.layers.Dense(1, name="head")

    def call(self, inputs):
        return self.head(inputs + self.second(self.first(inputs))[:, :1])


def functional_around_a_subclassed_model():
    inputs = keras.Input((8,))
    return keras.Model(inputs, TwoDeadLayers(name="inner")(inputs))


def functional_around_a_sequential():
    inputs = keras.Input((8,))
    inner = keras.Sequential(
        [keras.Input((8,)), dead_dense("first"), dead_dense("second")], name="inner"
    )
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(inner(inputs)))


class SubclassedWithDeadReluLeaky(keras.Model):
    """The package's LeakyReLU keeps its slope in a weight: saved as such."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pre = keras.layers.Dense(
            8, name="pre", bias_initializer=keras.initializers.Constant(-50.0)
        )
        self.act = kd.layers.LeakyReLU(0.0, name="act")
        self.head = keras.layers.Dense(1, name="head")

    def call(self, inputs):
        return self.head(self.act(self.pre(inputs)))


@pytest.mark.parametrize(
    "make, warned_about",
    [
        (TwoDeadLayers, "two_dead_layers"),
        (functional_around_a_subclassed_model, "inner"),
        (functional_around_a_sequential, None),
        (SubclassedWithDeadReluLeaky, None),
    ],
)
def test_swap_warns_once_when_a_subclassed_model_would_not_save_it(make, warned_about):
    keras.utils.set_random_seed(0)
    model = make()
    model(X[:1])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, fix="leaky_relu", verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    assert len(monitor.events) == (1 if make is SubclassedWithDeadReluLeaky else 2)
    messages = [
        str(w.message)
        for w in caught
        if w.category is kd.DeadNeuronWarning and "not saved" in str(w.message)
    ]
    if warned_about is None:
        assert messages == []
    else:
        (message,) = messages  # once, though two sites were swapped
        assert f"{warned_about!r}" in message
        assert "kd.layers.LeakyReLU" in message and "save_weights" in message
