"""Bad input fails early, names the argument and the value, and loses nothing."""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_deadrelu as kd

X = np.random.default_rng(3).normal(size=(64, 5)).astype("float32")
Y = np.zeros((64, 1), "float32")


def model():
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
    built = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    built.compile("adam", "mse")
    return built


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"threshold": 1.5}, ValueError, r"`threshold` must be <= 1.*threshold=1.5"),
        ({"threshold": -0.1}, ValueError, r"threshold=-0.1"),
        ({"threshold": float("nan")}, ValueError, r"`threshold` must be finite"),
        ({"threshold": "high"}, TypeError, r"threshold='high'"),
        ({"fix": "magic"}, ValueError, r"`fix` must be None.*fix=.magic."),
        ({"fix": ["lower_lr", 3]}, ValueError, r"fix=\[.lower_lr., 3\]"),
        ({"fix": "Revive"}, ValueError, r"fix='Revive'"),
        ({"freq": 0}, ValueError, r"`freq` must be >= 1.*freq=0"),
        ({"freq": "batch"}, ValueError, r"freq='batch'"),
        ({"freq": 2.5}, TypeError, r"freq=2.5"),
        ({"verbose": 3}, ValueError, r"verbose=3"),
        ({"granularity": "pixel"}, ValueError, r"granularity='pixel'"),
        ({"dormant_tau": -1}, ValueError, r"dormant_tau=-1"),
        ({"layers": "hidden"}, TypeError, r"layers='hidden'"),
        ({"log_dir": 5}, TypeError, r"log_dir=5"),
        ({"run_name": ""}, ValueError, r"run_name=''"),
        ({"histograms": "no"}, TypeError, r"`histograms` must be True or False.*'no'"),
        ({"images": 0}, TypeError, r"images=0"),
        ({"probe_data": np.array([])}, ValueError, r"`probe_data` is empty"),
        ({"probe_data": np.array(["a", "b"])}, TypeError, r"`probe_data` must hold"),
        ({"probe_data": (x for x in [X])}, TypeError, r"generator object"),
        ({"probe_data": lambda: iter([X])}, ValueError, r"`probe_steps` is required"),
        (
            {"probe_data": tf.data.Dataset.from_tensors(X).repeat()},
            ValueError,
            r"infinite",
        ),
        ({"probe_data": X, "probe_batch_size": 0}, ValueError, r"probe_batch_size=0"),
        (
            {"probe_steps": -2},
            ValueError,
            r"`probe_steps` must be >= 1.*probe_steps=-2",
        ),
        ({"probe_steps": 2.5}, TypeError, r"probe_steps=2.5"),
        ({"probe_steps": "3"}, TypeError, r"probe_steps='3'"),
    ],
)
def test_constructor_rejects(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        kd.DeadNeuronMonitor(**kwargs)


def fit_raises(monitor, error, pattern):
    built = model()
    before = [w.copy() for w in built.get_weights()]
    with pytest.raises(error, match=pattern):
        built.fit(X, Y, epochs=3, verbose=0, callbacks=[monitor])
    # Raised before the first step: weights and optimizer untouched.
    assert int(built.optimizer.iterations.numpy()) == 0
    for old, new in zip(before, built.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    # And the model is not left instrumented.
    assert "train_step" not in built.__dict__
    assert all("call" not in layer.__dict__ for layer in built.layers)


def test_two_monitors_in_one_fit_fail_before_training_and_leave_no_hooks():
    first = kd.DeadNeuronMonitor(log_dir=None, layers=["hidden"], verbose=0)
    second = kd.DeadNeuronMonitor(log_dir=None, run_name="other", verbose=0)
    built = model()
    before = [w.copy() for w in built.get_weights()]
    with pytest.raises(ValueError, match=r"Two DeadNeuronMonitor.*run_name='other'"):
        built.fit(X, Y, epochs=2, verbose=0, callbacks=[first, second])
    assert int(built.optimizer.iterations.numpy()) == 0
    for old, new in zip(before, built.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert "train_step" not in built.__dict__ and "call" not in built.__dict__
    assert all("call" not in layer.__dict__ for layer in built.layers)
    # One of them alone then measures as usual; so does a new monitor in a
    # later fit of the same model (a monitor per fit is fine).
    history = built.fit(X, Y, epochs=1, verbose=0, callbacks=[first])
    assert "dead_fraction/hidden" in history.history
    history = built.fit(X, Y, epochs=1, verbose=0, callbacks=[second])
    assert "dead_fraction/hidden" in history.history


def test_arrays_of_different_shapes_for_a_one_input_model_are_named():
    arrays = [np.ones((4, 5), "float32"), np.ones((3, 2), "float32")]
    pattern = r"this model has one.*shapes \(4, 5\), \(3, 2\)"
    with pytest.raises(ValueError, match=pattern):
        kd.dead_fractions(model(), arrays)


def test_detach_before_any_fit_does_nothing():
    # As in `try: fit(...) finally: monitor.detach()` when fit fails on its
    # data before it attaches the callbacks.
    monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0)
    monitor.detach()
    built = model()
    with pytest.raises(ValueError):
        try:
            built.fit(X[:, :2], Y, epochs=1, verbose=0, callbacks=[monitor])
        finally:
            monitor.detach()


def test_probe_data_of_the_wrong_shape_fails_in_on_train_begin():
    monitor = kd.DeadNeuronMonitor(log_dir=None, probe_data=np.ones((10, 3)))
    fit_raises(monitor, ValueError, r"`probe_data` has batches of shape \(10, 3\)")


@pytest.mark.parametrize("call", ["monitor", "dead_fractions"])
def test_ragged_probe_data_is_refused_with_the_argument_named(call):
    ragged = [[1.0, 2.0, 3.0], [1.0, 2.0]]
    with pytest.raises(ValueError, match=r"`(probe_data|data)` is a list whose items"):
        if call == "monitor":
            kd.DeadNeuronMonitor(log_dir=None, probe_data=ragged)
        else:
            model = keras.Sequential(
                [keras.Input((3,)), keras.layers.Dense(2, activation="relu")]
            )
            kd.dead_fractions(model, ragged)


def test_probe_data_of_the_wrong_rank_fails_in_on_train_begin():
    monitor = kd.DeadNeuronMonitor(log_dir=None, probe_data=np.ones((10, 5, 2)))
    fit_raises(monitor, ValueError, r"probe_data")


def test_log_dir_that_is_a_file_fails_in_on_train_begin(tmp_path):
    a_file = tmp_path / "not_a_dir"
    a_file.write_text("x")
    monitor = kd.DeadNeuronMonitor(log_dir=str(a_file))
    fit_raises(monitor, ValueError, r"`log_dir` must be a directory.*not_a_dir")


def test_log_dir_below_a_file_fails_in_on_train_begin(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    monitor = kd.DeadNeuronMonitor(log_dir=str(a_file / "logs"))
    fit_raises(monitor, ValueError, r"`log_dir` is not writable.*file/logs")


def test_unknown_layer_name_fails_in_on_train_begin():
    monitor = kd.DeadNeuronMonitor(log_dir=None, layers=["hiden"])
    fit_raises(monitor, ValueError, r"Available sites: 'hidden'.*layers=\['hiden'\]")


def _sequence_model(inner_length=None, outer_length=None):
    """Dense(relu) over the last axis of a sequence, inside a nested model
    whose input length may differ from the outer model's."""
    inner = keras.Sequential(
        [
            keras.Input((inner_length, 3)),
            keras.layers.Dense(4, activation="relu", name="inner_dense"),
        ],
        name="inner",
    )
    inputs = keras.Input((outer_length, 3))
    hidden = keras.layers.Dense(2, activation="relu", name="outer_dense")(inputs)
    hidden = keras.layers.Dense(3)(hidden)
    outputs = keras.layers.GlobalAveragePooling1D()(inner(hidden))
    built = keras.Model(inputs, outputs)
    built.compile("sgd", "mse")
    return built


def test_unit_granularity_on_a_dynamic_axis_fails_in_on_train_begin():
    built = _sequence_model()
    before = [w.copy() for w in built.get_weights()]
    monitor = kd.DeadNeuronMonitor(log_dir=None, granularity="unit")
    pattern = r"granularity='unit'.*site 'outer_dense' outputs shape \(None, None, 2\)"
    with pytest.raises(ValueError, match=pattern):
        built.fit(np.ones((4, 5, 3)), np.ones((4, 4)), verbose=0, callbacks=[monitor])
    assert int(built.optimizer.iterations.numpy()) == 0
    for old, new in zip(before, built.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_unit_granularity_trusts_the_outer_shape_over_a_nested_model():
    # The nested model's graph has a dynamic length; the outer call does not.
    built = _sequence_model(inner_length=None, outer_length=5)
    monitor = kd.DeadNeuronMonitor(log_dir=None, granularity="unit", verbose=0)
    built.fit(np.ones((4, 5, 3)), np.ones((4, 4)), verbose=0, callbacks=[monitor])
    assert monitor.last_window["inner/inner_dense"].unit_count == 5 * 4
    assert monitor.last_window["outer_dense"].unit_count == 5 * 2


def test_a_layer_name_shared_by_two_sites_must_be_a_path():
    def block(name):
        inputs = keras.Input((5,))
        dense = keras.layers.Dense(4, activation="relu", name="dense")(inputs)
        return keras.Model(inputs, dense, name=name)

    inputs = keras.Input((5,))
    outputs = keras.layers.Concatenate()([block("b1")(inputs), block("b2")(inputs)])
    nested = keras.Model(inputs, keras.layers.Dense(1)(outputs))
    with pytest.raises(ValueError, match=r"more than one site.*'b1/dense', 'b2/dense'"):
        kd.dead_fractions(nested, X, layers=["dense"])
    assert set(kd.dead_fractions(nested, X, layers=["b2/dense"])) == {"b2/dense"}


class Batches(keras.utils.PyDataset):
    """`X` in batches of 16, with targets, as a Keras PyDataset."""

    def __init__(self, infinite=False):
        super().__init__()
        self.infinite = infinite

    @property
    def num_batches(self):
        return None if self.infinite else 4

    def __getitem__(self, index):
        rows = slice(16 * (index % 4), 16 * (index % 4) + 16)
        return X[rows], Y[rows]


def test_probe_accepts_a_py_dataset():
    built = model()
    kernel, bias = built.get_layer("hidden").get_weights()
    expected = {"hidden": float((~((X @ kernel + bias) > 0).any(axis=0)).mean())}
    assert kd.dead_fractions(built, Batches()) == pytest.approx(expected)
    assert kd.dead_fractions(built, Batches(infinite=True), steps=4) == pytest.approx(
        expected
    )
    # Two batches: the units that fire on X[:32] only.
    fires = ((X[:32] @ kernel + bias) > 0).any(axis=0)
    assert kd.dead_fractions(built, Batches(), steps=2) == pytest.approx(
        {"hidden": float((~fires).mean())}
    )
    with pytest.raises(ValueError, match=r"infinite PyDataset; pass `probe_steps`"):
        kd.DeadNeuronMonitor(probe_data=Batches(infinite=True))
    with pytest.raises(ValueError, match=r"`batch_size` must be None for a PyDataset"):
        kd.dead_fractions(built, Batches(), batch_size=8)
    # Nested lists of numbers are one array, as np.asarray reads them.
    assert kd.dead_fractions(built, X.tolist()) == pytest.approx(expected)


def test_dead_fractions_rejects_bad_arguments():
    built = model()
    with pytest.raises(ValueError, match="granularity='x'"):
        kd.dead_fractions(built, X, granularity="x")
    with pytest.raises(ValueError, match="batch_size=-2"):
        kd.dead_fractions(built, X, batch_size=-2)
    with pytest.raises(ValueError, match="Available sites"):
        kd.dead_fractions(built, X, layers=["nope"])
    # Its own argument names, not the monitor's.
    with pytest.raises(ValueError, match=r"`steps` must be >= 1. Received: steps=0"):
        kd.dead_fractions(built, X, steps=0)
    with pytest.raises(TypeError, match=r"Argument `data` is a generator object"):
        kd.dead_fractions(built, (x for x in [X]))


def test_probe_accepts_datasets_tuples_and_generator_functions():
    built = model()
    kernel, bias = built.get_layer("hidden").get_weights()
    expected = {"hidden": float((~((X @ kernel + bias) > 0).any(axis=0)).mean())}
    batches = [X[i : i + 16] for i in range(0, 64, 16)]
    sources = [
        {"data": (X, Y)},
        {"data": tf.data.Dataset.from_tensor_slices((X, Y)).batch(10)},
        {"data": lambda: iter(batches), "steps": 4},
        {"data": tf.data.Dataset.from_tensor_slices(X).batch(8).repeat(), "steps": 8},
    ]
    for source in sources:
        assert kd.dead_fractions(built, **source) == pytest.approx(expected)


def test_threshold_zero_flags_a_site_with_one_dead_unit_and_no_healthy_one():
    """threshold=0 means "any dead unit": a site with none never crosses,
    so no warning, no diagnosis and no fix touch it."""
    healthy = model()
    monitor = kd.DeadNeuronMonitor(
        log_dir=None, threshold=0.0, fix="leaky_relu", verbose=1
    )
    hidden = healthy.get_layer("hidden")
    kernel, bias = hidden.get_weights()
    hidden.set_weights([kernel, np.full_like(bias, 10.0)])  # every unit fires
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        healthy.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.last_window["hidden"].dead_count == 0
    assert not [w for w in caught if w.category is kd.DeadNeuronWarning]
    assert monitor.diagnoses == [] and monitor.events == []
    assert hidden.activation.__name__ == "relu"

    hidden.set_weights([kernel, np.where(np.arange(6) == 0, -1000.0, 10.0)])  # 1 dead
    monitor = kd.DeadNeuronMonitor(log_dir=None, threshold=0.0, verbose=0)
    healthy.compile(keras.optimizers.SGD(0.0), "mse")
    healthy.fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    assert [name for _, name, _ in monitor.diagnoses] == ["hidden"]


def test_a_url_log_dir_goes_through_tensorflows_file_system(tmp_path, monkeypatch):
    """gs://, s3://, ... (here TensorFlow's in-memory ram://): created and
    written there, with no local folder named after the URL."""
    monkeypatch.chdir(tmp_path)
    log_dir = "ram://keras_deadrelu_test_logs"
    monitor = kd.DeadNeuronMonitor(log_dir=log_dir, verbose=0)
    model().fit(X, Y, epochs=1, verbose=0, callbacks=[monitor])
    assert tf.io.gfile.glob(f"{log_dir}/dead_neurons/events.out.tfevents.*")
    assert os.listdir(tmp_path) == []
