"""The diagnosis names the cause: bias far below zero, or a learning rate too high."""

import os

import keras
import numpy as np
import pytest
from dying_models import X, Y, mlp
from event_files import read_run

import keras_deadrelu as kd
from keras_deadrelu.diagnosis import (
    SiteEvidence,
    WeightSnapshots,
    bias_evidence,
    diagnose,
)


def test_bias_cause_on_the_bias_minus_five_model(tmp_path):
    model = mlp(keras.optimizers.Adam(1e-3), bias=-5.0)
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path), verbose=0)
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    (step, site, diagnosis), (_, second_site, second) = monitor.diagnoses
    assert (step, site, diagnosis.cause) == (0, "h1", "bias")
    # h2 died because h1 feeds it nothing but zeros.
    assert (second_site, second.cause) == ("h2", "dead_inputs")
    # Evidence checked by hand: the dead units' biases never moved from -5,
    # and their pre-activation spread is kernel norm times the input's RMS.
    kernel, bias = model.get_layer("h1").get_weights()
    dead = monitor.last_window["h1"].dead
    mean_square = monitor.last_window["h1"].input_mean_square
    # Estimated from the first sample of each batch: close to the data's.
    assert mean_square == pytest.approx(float(np.mean(X**2)), rel=0.25)
    spread = np.linalg.norm(kernel, axis=0)[dead].mean() * np.sqrt(mean_square)
    assert f"mean bias {-5.0:.2g} against a pre-activation spread of {spread:.2g}" in (
        diagnosis.evidence
    )
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    # Both sites crossed in one window: ONE text summary at that step (the
    # TensorBoard loader keeps one value per tag and step), a paragraph each.
    ((text_step, text, _),) = records["diagnosis"]
    first, second_text = text.item().decode().split("\n\n")
    assert text_step == 0 and "bias driven far below zero" in first
    assert first.startswith("h1: ") and second_text.startswith("h2: ")


def test_learning_rate_cause_on_the_high_learning_rate_model():
    model = mlp(keras.optimizers.SGD(0.5))
    monitor = kd.DeadNeuronMonitor(log_dir=None, threshold=0.3, verbose=0)
    model.fit(X, Y, epochs=3, verbose=0, callbacks=[monitor])
    assert monitor.diagnoses, "the high learning rate should kill a third of a layer"
    causes = {diagnosis.cause for _, _, diagnosis in monitor.diagnoses}
    assert causes == {"learning_rate"}
    evidence = monitor.diagnoses[0][2].evidence
    assert "at learning rate 0.5: learning rate too high" in evidence


@pytest.mark.parametrize(
    "evidence, cause",
    [
        (SiteEvidence(dead_bias_mean=-5.0, pre_activation_spread=0.0), "bias"),
        (SiteEvidence(dead_bias_mean=-3.0, pre_activation_spread=-1.0), "bias"),
        (SiteEvidence(dead_bias_mean=-0.5, pre_activation_spread=-2.5), "unclear"),
        (SiteEvidence(dead_bias_mean=0.2, pre_activation_spread=-1.0), "unclear"),
        (
            SiteEvidence(
                dead_bias_mean=-5.0,
                pre_activation_spread=0.1,
                weight_move=0.35,
                learning_rate=0.5,
            ),
            "learning_rate",
        ),
        (SiteEvidence(weight_move=0.05, learning_rate=0.01), "unclear"),
        (SiteEvidence(), "unclear"),
        (
            SiteEvidence(dead_bias_mean=0.0, pre_activation_spread=0.0, input_rms=0.0),
            "dead_inputs",
        ),
        # A zero kernel on live inputs is not "dead inputs".
        (
            SiteEvidence(dead_bias_mean=0.0, pre_activation_spread=0.0, input_rms=1.0),
            "unclear",
        ),
    ],
)
def test_decision_rules(evidence, cause):
    assert diagnose(evidence, where="epoch 3").cause == cause


def test_learning_rate_message_matches_the_user_story():
    diagnosis = diagnose(
        SiteEvidence(weight_move=0.35, learning_rate=0.5), where="epoch 3"
    )
    assert str(diagnosis).startswith(
        "Layer weights moved 35% of their norm in epoch 3 at learning rate 0.5: "
        "learning rate too high. Consider fix='lower_lr'"
    )


def test_bias_cause_for_a_relu_layer_after_a_dense():
    """Dense -> ReLU() is as common as Dense(activation="relu")."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8,))
    pre = keras.layers.Dense(
        32, name="pre", bias_initializer=keras.initializers.Constant(-5.0)
    )(inputs)
    hidden = keras.layers.ReLU(name="relu")(pre)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    ((_, site, diagnosis),) = monitor.diagnoses
    assert (site, diagnosis.cause) == ("relu", "bias")
    assert monitor.last_window["relu"].input_mean_square == pytest.approx(
        float(np.mean(X**2)), rel=0.25
    )
    # The hook on the Dense is gone after fit, like the site's.
    assert "call" not in model.get_layer("pre").__dict__


def _dense_with(kernel: np.ndarray) -> keras.layers.Dense:
    layer = keras.layers.Dense(kernel.shape[1], use_bias=False)
    layer.build((None, kernel.shape[0]))
    layer.kernel.assign(kernel)
    return layer


@pytest.mark.parametrize(
    "scale, factor",
    [
        (1.0, 1.001),  # a realistic small move, on 512 x 600 weights
        (1e20, 1.01),  # a diverging run: float32 squares overflow
        (1e-30, 2.0),  # float32 squares underflow to 0
    ],
)
def test_weight_moves_against_a_float64_reference(scale, factor):
    rng = np.random.default_rng(0)
    before = (rng.normal(size=(512, 600)) * scale).astype("float32")
    after = (before.astype(np.float64) * factor).astype("float32")
    after[0, 0] += np.float32(scale)  # not a pure rescaling
    layer = _dense_with(before)
    snapshots = WeightSnapshots()
    snapshots.take({"h": layer})
    layer.kernel.assign(after)
    snapshots.record_moves({"h": layer}, where="epoch 1")
    move, where = snapshots.largest_recent_move("h")
    expected = np.linalg.norm(
        after.astype(np.float64) - before.astype(np.float64)
    ) / np.linalg.norm(before.astype(np.float64))
    assert where == "epoch 1"
    assert move == pytest.approx(expected, rel=1e-4)


def test_a_nan_move_does_not_hide_a_finite_one():
    layer = _dense_with(np.ones((3, 2), "float32"))
    snapshots = WeightSnapshots()
    snapshots.take({"h": layer})
    layer.kernel.assign(np.full((3, 2), np.nan, "float32"))
    snapshots.record_moves({"h": layer}, where="epoch 1")  # a NaN move
    layer.kernel.assign(np.ones((3, 2), "float32"))  # as a fix would reset it
    snapshots.take({"h": layer})
    layer.kernel.assign(np.full((3, 2), 3.0, "float32"))  # moved by 2 norms
    snapshots.record_moves({"h": layer}, where="epoch 2")
    assert snapshots.largest_recent_move("h") == (pytest.approx(2.0), "epoch 2")


def _lora_kernel(layer: keras.layers.Dense) -> np.ndarray:
    """A LoRA Dense's effective kernel, from its variables, in float64."""
    a = np.asarray(layer.lora_kernel_a.numpy(), np.float64)
    b = np.asarray(layer.lora_kernel_b.numpy(), np.float64)
    base = np.asarray(layer._kernel.numpy(), np.float64)
    return base + (layer.lora_alpha / layer.lora_rank) * a @ b


def test_weight_moves_and_bias_evidence_of_a_lora_dense():
    # With LoRA, `layer.kernel` is computed (base + A @ B), not a variable.
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(4, bias_initializer=keras.initializers.Constant(-3.0))
    layer.build((None, 6))
    layer.enable_lora(2)
    snapshots = WeightSnapshots()
    snapshots.take({"h": layer})
    before = np.concatenate([_lora_kernel(layer).ravel(), np.full(4, -3.0)])
    layer.lora_kernel_b.assign(np.full((2, 4), 0.5, "float32"))
    snapshots.record_moves({"h": layer}, where="epoch 1")
    after = np.concatenate([_lora_kernel(layer).ravel(), np.full(4, -3.0)])
    expected = np.linalg.norm(after - before) / np.linalg.norm(before)
    assert expected > 0.1  # the LoRA factors moved the kernel
    move, where = snapshots.largest_recent_move("h")
    assert (move, where) == (pytest.approx(expected, rel=1e-4), "epoch 1")
    dead = np.array([True, False, True, False])
    bias, spread, rms = bias_evidence(layer, dead, input_mean_square=4.0)
    norms = np.linalg.norm(_lora_kernel(layer), axis=0)
    assert bias == pytest.approx(-3.0)
    assert spread == pytest.approx(norms[dead].mean() * 2.0, rel=1e-5)
    assert rms == 2.0


@pytest.mark.parametrize("fix", [None, "lower_lr"])
def test_the_monitor_measures_and_fixes_a_lora_dense_in_fit(fix):
    keras.utils.set_random_seed(3)
    bias = np.where(np.arange(16) < 8, -5.0, 0.1).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(
                16,
                activation="relu",
                name="h",
                bias_initializer=keras.initializers.Constant(bias),
            ),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.get_layer("h").enable_lora(2)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, threshold=0.3, fix=fix, verbose=0)
    history = model.fit(X, Y, epochs=2, verbose=0, callbacks=[monitor])
    assert np.isfinite(history.history["loss"]).all()
    layer = model.get_layer("h")
    # The 8 units born with bias -5 are dead: their pre-activations, from
    # the effective (LoRA) kernel, are below zero on every sample.
    pre = X @ _lora_kernel(layer) + layer.bias.numpy()
    assert (pre[:, :8] < 0).all()
    dead = monitor.last_window["h"].dead
    np.testing.assert_array_equal(dead[:8], np.ones(8, bool))
    (step, site, diagnosis), *_ = monitor.diagnoses
    assert (step, site, diagnosis.cause) == (0, "h", "bias")
    if fix is None:
        assert monitor.events == []
    else:
        (event,) = monitor.events
        assert (event.site, event.before, event.after) == (
            "h",
            pytest.approx(0.01),
            pytest.approx(0.005),
        )
        lr = float(model.optimizer.learning_rate.numpy())
        assert lr == pytest.approx(0.005)
