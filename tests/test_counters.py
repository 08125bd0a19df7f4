"""CounterRecorder's per-unit sums against NumPy, on every summing path:
a (values, units) matrix summed as a matrix product (no XLA) or a plain sum
(XLA), and a sum over several axes (channels first)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_deadrelu.counters import CounterRecorder
from keras_deadrelu.sites import Site


def _step_function(recorder, site, jit_compile):
    """A traced step that records `site`'s values into `recorder`."""

    @tf.function(jit_compile=jit_compile)
    def step(values):
        recorder.start_step()
        recorder.record(site, values)
        recorder.finish_step()
        return tf.constant(0)

    return step


def _record_in_a_step(recorder, site, values, jit_compile):
    step = _step_function(recorder, site, jit_compile)
    step(tf.constant(values))
    step(tf.constant(values))  # two steps: the sums add up
    return recorder.read()[site.name]


def _outputs(shape, seed, kind):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=shape).astype("float32")
    values[..., 0] = -1.0  # a dead unit (channel 0)
    return np.maximum(values, 0.0) if kind == "relu" else values


CASES = {
    # name: (layer, kind, output shape, granularity, NumPy unit axis)
    "dense": (keras.layers.ReLU(), "relu", (37, 6), "channel", -1),
    "conv_channels_last": (keras.layers.ReLU(), "relu", (5, 7, 3, 4), "channel", -1),
    "conv_per_position": (keras.layers.ReLU(), "relu", (5, 7, 3, 4), "unit", None),
    "selu_dense": (keras.layers.Activation("selu"), "selu", (41, 5), "channel", -1),
}


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_sums_match_numpy(case, jit_compile):
    layer, kind, shape, granularity, unit_axis = CASES[case]
    values = _outputs(shape, seed=len(case), kind=kind)
    site = Site("site", layer, kind)
    counters = _record_in_a_step(
        CounterRecorder(granularity), site, values, jit_compile
    )
    if unit_axis is None:  # every position of every channel is a unit
        per_unit = values.reshape(shape[0], -1)
    else:
        per_unit = np.moveaxis(values, unit_axis, -1).reshape(-1, shape[unit_axis])
    expected_count = 2 * (per_unit > 0).sum(axis=0)
    np.testing.assert_array_equal(counters.positive_count.reshape(-1), expected_count)
    assert counters.element_count == 2 * per_unit.shape[0]
    np.testing.assert_allclose(
        counters.abs_sum.reshape(-1), 2 * np.abs(per_unit).sum(axis=0), rtol=1e-5
    )
    assert counters.positive_count.reshape(-1)[0] == 0  # the dead unit
    if kind == "selu":
        np.testing.assert_allclose(
            counters.value_sum, 2 * per_unit.sum(axis=0), rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(
            counters.square_sum, 2 * np.square(per_unit).sum(axis=0), rtol=1e-5
        )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_channels_first_sums_over_batch_and_positions(jit_compile):
    conv = keras.layers.Conv2D(4, 2, activation="relu", data_format="channels_first")
    values = _outputs((5, 4, 3, 3), seed=3, kind="relu")
    values[:, 0] = 0.0  # channel 0 (axis 1) dead
    counters = _record_in_a_step(
        CounterRecorder("channel"), Site("conv", conv, "relu", 1), values, jit_compile
    )
    per_unit = np.moveaxis(values, 1, -1).reshape(-1, 4)
    np.testing.assert_array_equal(
        counters.positive_count, 2 * (per_unit > 0).sum(axis=0)
    )
    np.testing.assert_allclose(counters.abs_sum, 2 * per_unit.sum(axis=0), rtol=1e-5)
    assert counters.positive_count[0] == 0


def _summing_ops(site, shape, jit_compile, granularity="channel"):
    """The op types that do the summing in a traced step of `site`."""
    step = _step_function(CounterRecorder(granularity), site, jit_compile)
    graph = step.get_concrete_function(tf.TensorSpec(shape, "float32")).graph
    return {node.op for node in graph.as_graph_def().node} & {"MatMul", "Sum"}


@pytest.mark.parametrize("jit_compile", [False, True])
def test_which_sum_each_path_takes(jit_compile):
    # On a CPU without XLA, a (values, units) matrix is summed as a product
    # with a row of ones; under XLA, and over several axes, with Sum.
    relu = Site("act", keras.layers.ReLU(), "relu")
    matrix_op = (
        {"Sum"} if jit_compile or tf.config.list_logical_devices("GPU") else {"MatMul"}
    )
    assert _summing_ops(relu, (8, 5), jit_compile) == matrix_op
    assert _summing_ops(relu, (8, 3, 3, 5), jit_compile) == matrix_op
    channels_first = Site("conv", keras.layers.ReLU(), "relu", 1)
    assert _summing_ops(channels_first, (8, 5, 3, 3), jit_compile) == {"Sum"}


@pytest.mark.parametrize("jit_compile", [False, True])
def test_nan_and_inf_show_in_the_absolute_sum(jit_compile):
    values = _outputs((9, 4), seed=4, kind="relu")
    values[3, 1] = np.nan
    values[5, 2] = np.inf
    counters = _record_in_a_step(
        CounterRecorder(), Site("act", keras.layers.ReLU(), "relu"), values, jit_compile
    )
    finite = np.isfinite(counters.abs_sum)
    assert finite.tolist() == [True, False, False, True]
