"""Tests run over the whole family of layers."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import (
    LAYER_FACTORIES,
    all_layers_model,
    assert_config_round_trip,
    outputs_and_gradients,
)

import keras_deadrelu as kd

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTREME_INPUTS = [-1e4, -100.0, 0.0, 100.0, 1e4]


@pytest.fixture(params=sorted(LAYER_FACTORIES))
def make_layer(request):
    return LAYER_FACTORIES[request.param]


def _extreme_input(make_layer, dtype):
    layer = make_layer()
    x = np.array(EXTREME_INPUTS, dtype)[:, None]  # (5, 1)
    if isinstance(layer, kd.layers.SELUDense):
        layer = kd.layers.SELUDense(1, kernel_initializer="ones", dtype=dtype)
    return layer, x


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_gradients_are_finite_at_extreme_inputs(make_layer, dtype):
    layer, x = _extreme_input(make_layer, dtype)
    y, dx, weight_gradients = outputs_and_gradients(layer, tf.constant(x))
    assert np.all(np.isfinite(y))
    assert np.all(np.isfinite(dx))
    for gradient in weight_gradients:
        assert np.all(np.isfinite(gradient))


def test_config_round_trip(make_layer):
    assert_config_round_trip(make_layer())


def test_output_shape_and_masking(make_layer):
    layer = make_layer()
    assert layer.supports_masking
    inputs = keras.Input((None, 4))
    outputs = layer(inputs)
    expected = layer.compute_output_shape((None, None, 4))
    assert tuple(outputs.shape) == tuple(expected)


def test_mask_passes_through():
    inputs = keras.Input((3, 2))
    masked = keras.layers.Masking(0.0)(inputs)
    x = masked
    for make in LAYER_FACTORIES.values():
        x = make()(x)
    model = keras.Model(inputs, x)
    data = np.array([[[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]]], "float32")
    assert model.predict(data, verbose=0).shape == (1, 3, 4)
    layer = kd.layers.ELU()
    np.testing.assert_array_equal(
        np.asarray(layer.compute_mask(data, np.array([[True, False, True]]))),
        [[True, False, True]],
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_matches_float32(make_layer, policy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    reference_layer = make_layer()
    reference = np.asarray(reference_layer(x), np.float64)
    keras.config.set_dtype_policy(policy)
    layer = make_layer()
    layer.build(x.shape)
    layer.set_weights(reference_layer.get_weights())
    y = layer(x)
    assert y.dtype == layer.compute_dtype == policy.split("_")[1]
    for weight in layer.weights:
        assert weight.dtype == "float32"
    tolerance = 2e-2 if policy == "mixed_bfloat16" else 2e-3
    np.testing.assert_allclose(
        np.asarray(tf.cast(y, tf.float32)),
        reference,
        rtol=tolerance,
        atol=tolerance,
    )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_with_and_without_xla(jit_compile):
    model = all_layers_model()
    model.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_keras_file_loads_in_a_fresh_process_without_custom_objects(tmp_path):
    model = all_layers_model()
    model.layers[-2].set_negative_slope(0.2)  # the LeakyReLU
    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    expected = model.predict(x, verbose=0)
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import json, os
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import keras
        import numpy as np
        import keras_deadrelu  # registers the layers; no custom_objects below
        model = keras.saving.load_model({model_path!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "y.npy")!r}, model.predict(x, verbose=0))
        leaky = [l for l in model.layers if type(l).__name__ == "LeakyReLU"][0]
        print(json.dumps({{
            "classes": sorted({{type(l).__module__ for l in model.layers}}),
            "slope": leaky.negative_slope,
        }}))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    paths = [REPO_ROOT, env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for module in ("prelu", "elu", "selu", "selu_dense", "leaky_relu"):
        assert f"keras_deadrelu.layers.{module}" in report["classes"]
    assert report["slope"] == pytest.approx(0.2)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


def test_export_to_saved_model(tmp_path):
    model = all_layers_model()
    x = np.random.default_rng(1).normal(size=(4, 8)).astype("float32")
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "exported")
    model.export(path, verbose=False)
    # Keep the loaded object alive while its function runs.
    reloaded = tf.saved_model.load(path)
    served = reloaded.serve(tf.constant(x))
    np.testing.assert_allclose(np.asarray(served), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_integer_inputs_match_the_same_values_as_floats(make_layer, jit_compile):
    x = np.array([[-3, -1, 0, 2], [4, 0, -2, 1]], "int32")
    layer = make_layer()
    expected = np.asarray(layer(x.astype("float32")))
    inputs = keras.Input((4,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.compile(jit_compile=jit_compile)
    y = model.predict(x, verbose=0)
    assert y.dtype == np.float32
    # XLA may round SELUDense's matmul differently: not bit for bit.
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_layer_first_built_inside_a_tf_function(make_layer, jit_compile):
    # A custom training loop may call an unbuilt model first in its traced
    # step: the layer builds (creating its weights) inside that trace.
    x = np.array([[-3.0, -1.0, 0.0, 2.0], [4.0, 0.5, -2.0, 1.0]], "float32")
    keras.utils.set_random_seed(0)
    traced = make_layer()
    keras.utils.set_random_seed(0)
    eager = make_layer()

    @tf.function(jit_compile=jit_compile)
    def call(inputs):
        return traced(inputs)

    y = call(tf.constant(x)).numpy()
    np.testing.assert_allclose(y, np.asarray(eager(x)), rtol=1e-6, atol=1e-6)
