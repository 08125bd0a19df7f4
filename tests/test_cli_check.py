"""``keras-deadrelu check`` on a saved model and array, and its input errors.

The expected dead fractions are computed with NumPy from the saved weights.
"""

import re

import keras
import numpy as np
import pytest

from keras_deadrelu.command_line import main

rng = np.random.default_rng(3)


@pytest.fixture
def saved(tmp_path):
    """A model with a born-dead site and a healthy one, saved with some data."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((5,))
    dead = keras.layers.Dense(
        6,
        activation="relu",
        name="dead",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(-5.0),
    )(inputs)
    healthy = keras.layers.Dense(
        12,
        activation="relu",
        name="healthy",
        bias_initializer=keras.initializers.Constant(-1.0),
    )(inputs)
    joined = keras.layers.Concatenate()([dead, healthy])
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(joined))
    model_path = tmp_path / "model.keras"
    model.save(model_path)
    data = rng.normal(size=(40, 5)).astype("float32")
    data_path = tmp_path / "data.npy"
    np.save(data_path, data)
    kernel, bias = model.get_layer("healthy").get_weights()
    fires = (data.astype(np.float64) @ kernel + bias > 0).any(axis=0)
    expected_healthy = 1.0 - fires.mean()
    return str(model_path), str(data_path), data, expected_healthy


def _rows(output):
    return {
        cells[0]: cells[1]
        for cells in (line.split() for line in output.splitlines())
        if len(cells) == 2 and cells[1].endswith("%")
    }


def test_check_prints_table_and_verdict(saved, capsys):
    model_path, data_path, _, expected_healthy = saved
    assert 0.0 < expected_healthy < 0.5  # the fixture is what it claims
    assert main(["check", model_path, data_path, "--batch-size", "7"]) == 0
    output = capsys.readouterr().out
    assert _rows(output) == {"dead": "100.0%", "healthy": f"{expected_healthy:.1%}"}
    assert "1 of 2 sites have >= 50.0% dead units." in output
    # A threshold below a whole percent is printed as it is, not rounded.
    assert expected_healthy >= 0.005
    assert main(["check", model_path, data_path, "--threshold", "0.005"]) == 0
    assert "2 of 2 sites have >= 0.5% dead units." in capsys.readouterr().out


def test_check_layers_option(saved, capsys):
    model_path, data_path, _, expected_healthy = saved
    assert main(["check", model_path, data_path, "--layers", "healthy"]) == 0
    output = capsys.readouterr().out
    assert _rows(output) == {"healthy": f"{expected_healthy:.1%}"}
    assert "0 of 1 sites have >= 50.0% dead units." in output
    assert main(["check", model_path, data_path, "--layers", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_check_no_dead_units(saved, tmp_path, capsys):
    model_path, _, _, _ = saved
    inputs = keras.Input((2,))
    model = keras.Model(
        inputs,
        keras.layers.Dense(
            3, activation="relu", name="alive", kernel_initializer="ones"
        )(inputs),
    )
    model.save(tmp_path / "alive.keras")
    np.save(tmp_path / "ones.npy", np.ones((4, 2), "float32"))
    assert (
        main(["check", str(tmp_path / "alive.keras"), str(tmp_path / "ones.npy")]) == 0
    )
    output = capsys.readouterr().out
    assert _rows(output) == {"alive": "0.0%"}
    assert "no dead units." in output


def _error(capsys):
    err = capsys.readouterr().err.strip()
    return err


def test_missing_model(saved, tmp_path, capsys):
    _, data_path, _, _ = saved
    missing = tmp_path / "missing.keras"
    assert main(["check", str(missing), data_path]) == 2
    err = _error(capsys)
    assert str(missing) in err and "does not exist" in err
    assert len(err.splitlines()) == 1


def test_model_not_a_keras_file(saved, tmp_path, capsys):
    _, data_path, _, _ = saved
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"not a model")
    assert main(["check", str(h5), data_path]) == 2
    assert "is not a .keras file" in _error(capsys)


def test_unreadable_model(saved, tmp_path, capsys):
    _, data_path, _, _ = saved
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"this is not a zip archive")
    assert main(["check", str(broken), data_path]) == 2
    err = _error(capsys)
    assert f"model file {str(broken)!r} is not a .keras archive" in err
    assert len(err.splitlines()) == 1


def test_missing_data(saved, tmp_path, capsys):
    model_path, _, _, _ = saved
    missing = tmp_path / "missing.npy"
    assert main(["check", model_path, str(missing)]) == 2
    err = _error(capsys)
    assert str(missing) in err and "does not exist" in err


@pytest.mark.parametrize(
    "array",
    [np.array(["a", "b"]), np.array([{"x": 1}], dtype=object)],
    ids=["strings", "objects"],
)
def test_data_not_numeric(saved, tmp_path, capsys, array):
    model_path, _, _, _ = saved
    path = tmp_path / "bad.npy"
    np.save(path, array, allow_pickle=True)
    assert main(["check", model_path, str(path)]) == 2
    err = _error(capsys)
    assert "is not a numeric array" in err and str(path) in err
    assert len(err.splitlines()) == 1


def test_data_not_an_npy_file(saved, tmp_path, capsys):
    model_path, _, _, _ = saved
    path = tmp_path / "text.npy"
    path.write_text("1,2,3\n")
    assert main(["check", model_path, str(path)]) == 2
    assert "is not an array saved with np.save" in _error(capsys)


def test_data_too_large_to_load_is_one_error_line(saved, tmp_path, capsys):
    # A header that promises 10**12 rows (a huge or damaged file).
    model_path, _, _, _ = saved
    path = tmp_path / "huge.npy"
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(
            file, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 8)}
        )
    assert main(["check", model_path, str(path)]) == 2
    assert "is too large to load" in _error(capsys)


def test_data_that_is_a_folder(saved, tmp_path, capsys):
    model_path, _, _, _ = saved
    assert main(["check", model_path, str(tmp_path)]) == 2
    assert "is a folder, not a .npy file" in _error(capsys)


def test_empty_layers_option_is_an_error(saved, capsys):
    model_path, data_path, _, _ = saved
    assert main(["check", model_path, data_path, "--layers", ","]) == 2
    err = _error(capsys)
    assert "--layers names no site" in err and "dead, healthy" in err
    assert len(err.splitlines()) == 1


def test_nan_units_are_shown_and_not_dead(saved, tmp_path, capsys):
    model_path, _, data, expected_healthy = saved
    with_nan = data.copy()
    with_nan[:, 1] = np.nan  # every pre-activation NaN, in every unit
    np.save(tmp_path / "nan.npy", with_nan)
    assert main(["check", model_path, str(tmp_path / "nan.npy")]) == 0
    output = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in output.splitlines()[2:4]}
    assert rows == {"dead": ["0.0%", "6"], "healthy": ["0.0%", "12"]}
    assert "18 units produced NaN or inf" in output


@pytest.mark.parametrize("shape", [(10, 4), (10, 5, 1), (5,), ()])
def test_data_shape_does_not_fit(saved, tmp_path, capsys, shape):
    model_path, _, _, _ = saved
    path = tmp_path / "wrong.npy"
    np.save(path, np.zeros(shape, "float32"))
    assert main(["check", model_path, str(path)]) == 2
    shape_text = re.escape(str(shape))
    assert re.fullmatch(
        rf"keras-deadrelu check: error: {re.escape(str(path))} has shape "
        rf"{shape_text} but the model expects \(None, 5\)\.",
        _error(capsys),
    )


@pytest.mark.parametrize("batch_size", ["0", "-3", "two"])
def test_bad_batch_size(saved, capsys, batch_size):
    model_path, data_path, _, _ = saved
    assert main(["check", model_path, data_path, "--batch-size", batch_size]) == 2
    assert "--batch-size" in _error(capsys)


def test_threshold_zero_counts_only_sites_with_a_dead_unit():
    from keras_deadrelu.check_model import format_check

    text = format_check({"alive": 0.0, "dying": 0.25}, threshold=0.0)
    assert "1 of 2 sites have >= 0.0% dead units." in text
