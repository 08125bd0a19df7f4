"""A model that `fit` builds (a Sequential without `keras.Input`, a
subclassed model not called yet) is measured and diagnosed as the same model
built beforehand: the channel axis after a channels-first conv, the layer
whose weights feed a site (diagnosis, NaN weights) and the reach of the
fixes are found once its first step has built it."""

import warnings

import keras
import numpy as np
import pytest

import keras_deadrelu as kd

L = keras.layers


def _dense_sequential(with_input):
    head = [keras.Input((5,))] if with_input else []
    return keras.Sequential(
        head
        + [
            L.Dense(
                6,
                activation="relu",
                name="s",
                bias_initializer=keras.initializers.Constant(-50.0),
            ),
            L.Dense(1),
        ]
    )


class SubclassedNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.s = L.Dense(
            6,
            activation="relu",
            name="s",
            bias_initializer=keras.initializers.Constant(-50.0),
        )
        self.head = L.Dense(1)

    def call(self, inputs):
        return self.head(self.s(inputs))


def _xy(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype("float32")
    return x, rng.normal(size=(shape[0], 1)).astype("float32")


@pytest.mark.parametrize(
    "make",
    [
        lambda: _dense_sequential(True),
        lambda: _dense_sequential(False),
        SubclassedNet,
    ],
    ids=["with_input", "without_input", "subclassed"],
)
def test_diagnosis_and_reach_do_not_depend_on_when_the_model_is_built(make):
    x, y = _xy((40, 5))
    model = make()
    model.compile(keras.optimizers.SGD(0.01), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0, fix="revive")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[monitor])
    assert not [w for w in caught if "cannot act" in str(w.message)]
    (_, site, diagnosis) = monitor.diagnoses[0]
    assert site == "s" and diagnosis.cause == "bias"
    assert [event.site for event in monitor.events] == ["s"]  # revived


@pytest.mark.parametrize("with_input", [True, False])
def test_channels_first_units_of_an_activation_layer(with_input):
    x, y = _xy((16, 2, 8, 8))
    conv = L.Conv2D(
        4,
        3,
        data_format="channels_first",
        bias_initializer=keras.initializers.Constant([-100.0, -100.0, -100.0, 0.0]),
    )
    head = [keras.Input((2, 8, 8))] if with_input else []
    model = keras.Sequential(head + [conv, L.ReLU(name="act"), L.Flatten(), L.Dense(1)])
    model.compile("sgd", "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[monitor])
    site = monitor.last_window["act"]
    assert site.unit_count == 4  # the channels, not the width
    np.testing.assert_array_equal(site.dead, [True, True, True, False])


class _PoisonFirstColumn(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            layer = self.model.get_layer("s")
            kernel, bias = layer.get_weights()
            kernel[:, 0] = np.nan
            layer.set_weights([kernel, bias])


@pytest.mark.parametrize("with_input", [True, False])
def test_nan_weights_make_nan_units_not_dead_ones(with_input):
    x, y = _xy((40, 5), seed=1)
    head = [keras.Input((5,))] if with_input else []
    model = keras.Sequential(
        head + [L.Dense(6, activation="relu", name="s"), L.Dense(1)]
    )
    model.compile(keras.optimizers.SGD(0.0), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=40,
        verbose=0,
        callbacks=[_PoisonFirstColumn(), monitor],
    )
    site = monitor.last_window["s"]
    np.testing.assert_array_equal(site.nan, [True] + [False] * 5)
    assert not site.dead[0]
