"""Layers that ``tf.recompute_grad`` (or ``keras.RematScope``, which uses it
on TensorFlow) computes again in the backward pass are counted once per
input, as any other call: the fits' counts are checked against a NumPy
forward pass."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from numpy_reference import dense, relu

import keras_deadrelu as kd

SAMPLES, FEATURES, UNITS = 48, 6, 10


class RecomputedDense(keras.layers.Layer):
    """A ReLU Dense whose activations `tf.recompute_grad` recomputes in the
    backward pass instead of keeping them."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units, activation="relu")

    def call(self, inputs):
        return tf.recompute_grad(self.dense)(inputs)


class RecomputingModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.block = RecomputedDense(UNITS, name="block")
        self.head = keras.layers.Dense(1, name="head")

    def call(self, inputs):
        return self.head(self.block(inputs))


def _remat_model():
    """A Functional model whose ReLU Dense and ReLU layer are rematerialized
    by ``keras.RematScope``."""
    inputs = keras.Input((FEATURES,))
    with keras.RematScope(mode="full"):
        hidden = keras.layers.Dense(UNITS, name="hidden")(inputs)
        hidden = keras.layers.ReLU(name="relu")(hidden)
    outputs = keras.layers.Dense(1, name="head")(hidden)
    return keras.Model(inputs, outputs)


def _data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = rng.normal(size=(SAMPLES, 1)).astype("float32")
    return x, y


def _fit_one_window(model, x, y, run_eagerly, tmp_path):
    # Learning rate 0: the weights that NumPy reads are those of every step.
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0),
        loss="mse",
        run_eagerly=run_eagerly,
    )
    monitor = kd.DeadNeuronMonitor(log_dir=str(tmp_path / "logs"), verbose=0)
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[monitor], verbose=0)
    return monitor.last_window


def _assert_counted_once(statistics, activations):
    assert statistics.element_count == SAMPLES
    np.testing.assert_array_equal(statistics.dead, ~(activations > 0).any(axis=0))
    np.testing.assert_allclose(
        statistics.firing_rate, (activations > 0).mean(axis=0), atol=1e-12
    )


@pytest.mark.parametrize("run_eagerly", [False, True], ids=["graph", "eager"])
def test_a_site_under_recompute_grad_is_counted_once(run_eagerly, tmp_path):
    x, y = _data()
    model = RecomputingModel()
    model(x[:1])
    # Kill three units, so that dead units are checked too.
    kernel, bias = model.block.dense.get_weights()
    bias[:3] = -100.0
    model.block.dense.set_weights([kernel, bias])

    window = _fit_one_window(model, x, y, run_eagerly, tmp_path)

    kernel, bias = model.block.dense.get_weights()
    activations = relu(dense(x, kernel, bias))
    (site,) = [s for s in window.sites if s.name.startswith("block")]
    assert site.dead_count == 3
    _assert_counted_once(site, activations)


def test_sites_in_a_remat_scope_are_counted_once(tmp_path):
    x, y = _data()
    model = _remat_model()

    # Eagerly: in a traced step Keras's remat on TensorFlow fails by itself
    # (Keras 3.15: tf.custom_gradient takes no keyword arguments in a graph).
    window = _fit_one_window(model, x, y, True, tmp_path)

    kernel, bias = model.get_layer("hidden").get_weights()
    activations = relu(dense(x, kernel, bias))
    _assert_counted_once(window["relu"], activations)
