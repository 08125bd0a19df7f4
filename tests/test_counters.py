"""CounterRecorder's per-unit sums against NumPy, on every summing path:
a (values, units) matrix summed as a matrix product (no XLA) or a plain sum
(XLA), and a sum over several axes (channels first)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from dying_models import ShiftedReLU
from numpy_reference import sampled_firing_rate

import keras_deadrelu as kd
from keras_deadrelu.counters import CounterRecorder
from keras_deadrelu.sites import Site, outputs_its_activation
from keras_deadrelu.unit_statistics import site_statistics


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


pytestmark = pytest.mark.usefixtures("counter_ops")


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


@pytest.mark.parametrize("kind", ["relu", "selu"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_conv_sums_over_batches_of_any_size_match_numpy(jit_compile, kind):
    # Traced with the batch size unknown, as in fit, then fed a full batch
    # and a partial one: each sample's positions are summed, then the
    # samples, whatever their number.
    layer = keras.layers.ReLU() if kind == "relu" else keras.layers.Activation("selu")
    site = Site("site", layer, kind)
    recorder = CounterRecorder("channel")
    step = _step_function(recorder, site, jit_compile)
    signature = tf.TensorSpec((None, 6, 5, 3), "float32")
    batches = [_outputs((8, 6, 5, 3), seed=7, kind=kind)]
    batches.append(_outputs((3, 6, 5, 3), seed=8, kind=kind))
    for batch in batches:
        step.get_concrete_function(signature)(tf.constant(batch))
    counters = recorder.read()["site"]
    per_unit = np.concatenate(batches).reshape(-1, 3)
    np.testing.assert_array_equal(counters.positive_count, (per_unit > 0).sum(axis=0))
    assert counters.element_count == per_unit.shape[0] == 11 * 6 * 5
    np.testing.assert_allclose(counters.abs_sum, np.abs(per_unit).sum(0), rtol=1e-5)
    if kind == "selu":
        np.testing.assert_allclose(
            counters.value_sum, per_unit.sum(axis=0), rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(
            counters.square_sum, np.square(per_unit).sum(axis=0), rtol=1e-5
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


@pytest.mark.parametrize("jit_compile", [False, True])
def test_sampled_positive_counts_keep_dead_units_exact(jit_compile):
    # A recorder that samples (the monitor's streaming one) counts a ReLU
    # conv site's positive values in the first sample of each batch only, on
    # a CPU without XLA; a unit is dead exactly when its absolute sum is 0.
    values = _outputs((6, 4, 3, 5), seed=5, kind="relu")
    values[:, :, :, 1] = 0.0  # dead
    values[:, :, :, 2] = 0.0
    values[4, 2, 1, 2] = 0.25  # fires once, not in the first sample
    recorder = CounterRecorder("channel", sample_positive_counts=True)
    counters = _record_in_a_step(
        recorder, Site("act", keras.layers.ReLU(), "relu"), values, jit_compile
    )
    stats = site_statistics("act", "relu", counters, dormant_tau=0.0)
    every = values.reshape(-1, 5)
    assert stats.dead.tolist() == [True, True, False, False, False]
    assert counters.element_count == 2 * len(every)
    sampled = not jit_compile and not tf.config.list_logical_devices("GPU")
    if sampled:
        assert counters.positive_sample == 2 * 12
        np.testing.assert_array_equal(
            counters.positive_count, 2 * (values[0].reshape(-1, 5) > 0).sum(axis=0)
        )
        np.testing.assert_allclose(
            stats.firing_rate,
            sampled_firing_rate(np.concatenate([values, values]), [0, len(values)]),
        )
        assert stats.firing_rate[2] == 1 / (2 * len(every))  # fired, not sampled
    else:
        assert counters.positive_sample is None
        np.testing.assert_allclose(stats.firing_rate, (every > 0).mean(axis=0))
    np.testing.assert_allclose(counters.abs_sum, 2 * every.sum(axis=0), rtol=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_sampled_positive_counts_channels_first(jit_compile):
    values = _outputs((5, 4, 3, 3), seed=6, kind="relu")
    values[:, 0] = 0.0
    values[:, 3] = 0.0
    values[2, 3, 1, 1] = 1.0  # fires once, not in the first sample
    site = Site("conv", keras.layers.ReLU(), "relu", 1)
    recorder = CounterRecorder("channel", sample_positive_counts=True)
    counters = _record_in_a_step(recorder, site, values, jit_compile)
    stats = site_statistics("conv", "relu", counters, dormant_tau=0.0)
    assert stats.dead.tolist() == [True, False, False, False]
    if not jit_compile and not tf.config.list_logical_devices("GPU"):
        both_steps = np.concatenate([values, values])
        expected = sampled_firing_rate(both_steps, [0, 5], channel_axis=1)
    else:
        expected = (np.moveaxis(values, 1, -1).reshape(-1, 4) > 0).mean(axis=0)
    np.testing.assert_allclose(stats.firing_rate, expected)


@pytest.mark.parametrize("kind", ["leaky_relu", "elu", "selu"])
def test_kinds_with_negative_outputs_count_every_value(kind):
    # Their dead units come from the positive count, so it is never sampled.
    values = np.random.default_rng(8).normal(size=(4, 3, 3, 2)).astype("float32")
    recorder = CounterRecorder("channel", sample_positive_counts=True)
    counters = _record_in_a_step(
        recorder, Site("act", keras.layers.Activation(kind), kind), values, False
    )
    assert counters.positive_sample is None
    np.testing.assert_array_equal(
        counters.positive_count, 2 * (values.reshape(-1, 2) > 0).sum(axis=0)
    )


class SubclassedDense(keras.layers.Dense):
    """A user's Dense that keeps Keras's `call`."""


@pytest.mark.parametrize(
    "layer, trusted",
    [
        (SubclassedDense(2, activation="relu"), True),
        (keras.layers.Conv2D(2, 3, activation=tf.nn.relu), True),
        (kd.layers.LeakyReLU(0.0), True),
        (ShiftedReLU(), False),
        (keras.layers.Dense(2, activation=lambda x: keras.activations.relu(x)), False),
    ],
    ids=["keras_call", "tf_activation", "package_layer", "custom_call", "lambda"],
)
def test_which_layers_are_trusted_to_output_their_activation(layer, trusted):
    assert outputs_its_activation(layer) is trusted


def test_a_custom_relu_layer_counts_every_value():
    # Dead units read from the absolute sum need outputs >= 0; a custom
    # layer's may be negative, so its positive count is never sampled.
    layer = ShiftedReLU()
    values = np.random.default_rng(10).normal(size=(4, 3, 3, 2)).astype("float32")
    values[..., 1] = -0.5  # never > 0, yet not 0: dead
    recorder = CounterRecorder("channel", sample_positive_counts=True)
    counters = _record_in_a_step(recorder, Site("act", layer, "relu"), values, False)
    assert counters.positive_sample is None
    np.testing.assert_array_equal(
        counters.positive_count, 2 * (values.reshape(-1, 2) > 0).sum(axis=0)
    )
    stats = site_statistics("act", "relu", counters, dormant_tau=0.0)
    assert stats.dead.tolist() == [False, True]


def _summing_graph(site, shape, jit_compile, granularity="channel"):
    step = _step_function(CounterRecorder(granularity), site, jit_compile)
    return step.get_concrete_function(tf.TensorSpec(shape, "float32")).graph


def _summing_ops(site, shape, jit_compile, granularity="channel"):
    """The op types that do the summing in a traced step of `site`."""
    graph = _summing_graph(site, shape, jit_compile, granularity)
    return {node.op for node in graph.as_graph_def().node} & {"MatMul", "Sum"}


def _product_shapes(site, shape, granularity="channel"):
    """The shapes of the matrices that rows of ones multiply (no XLA)."""
    graph = _summing_graph(site, shape, False, granularity)
    return [
        tuple(op.inputs[1].shape.as_list())
        for op in graph.get_operations()
        if op.type == "MatMul"
    ]


@pytest.mark.parametrize("counter_ops", ["native_op"], indirect=True)
@pytest.mark.parametrize("jit_compile", [False, True])
def test_the_compiled_op_takes_a_steps_sums_without_xla(jit_compile):
    # On a CPU without XLA, one compiled op sums every site whose units are
    # contiguous at the end; under XLA (or with a GPU), which fuses the stock
    # ops into the step, the op is not used.
    relu = Site("act", keras.layers.ReLU(), "relu")
    used = not jit_compile and not tf.config.list_logical_devices("GPU")
    for shape in [(8, 5), (8, 3, 3, 5)]:
        graph = _summing_graph(relu, shape, jit_compile)
        ops = {node.op for node in graph.as_graph_def().node}
        assert ("KerasDeadreluUnitSums" in ops) is used
        assert not ops & {"MatMul", "Sum"} if used else ops & {"MatMul", "Sum"}
    # A channels-first conv's units are not contiguous: stock ops sum it.
    channels_first = Site("conv", keras.layers.ReLU(), "relu", 1)
    ops = {
        n.op
        for n in _summing_graph(channels_first, (8, 5, 3, 3), jit_compile)
        .as_graph_def()
        .node
    }
    assert "KerasDeadreluUnitSums" not in ops


@pytest.mark.parametrize("counter_ops", ["stock_ops"], indirect=True)
@pytest.mark.parametrize("jit_compile", [False, True])
def test_which_sum_each_path_takes(jit_compile):
    # On a CPU without XLA, a (values, units) matrix is summed as a product
    # with a row of ones; under XLA, and over several axes, with Sum.
    relu = Site("act", keras.layers.ReLU(), "relu")
    matrix_op = (
        {"Sum"} if jit_compile or tf.config.list_logical_devices("GPU") else {"MatMul"}
    )
    assert _summing_ops(relu, (8, 5), jit_compile) == matrix_op
    # A conv's channels: a product over the samples, then a small Sum over
    # the positions.
    conv_ops = {"Sum"} if "Sum" in matrix_op else {"MatMul", "Sum"}
    assert _summing_ops(relu, (8, 3, 3, 5), jit_compile) == conv_ops
    channels_first = Site("conv", keras.layers.ReLU(), "relu", 1)
    assert _summing_ops(channels_first, (8, 5, 3, 3), jit_compile) == {"Sum"}


@pytest.mark.parametrize("counter_ops", ["stock_ops"], indirect=True)
@pytest.mark.skipif(
    bool(tf.config.list_logical_devices("GPU")), reason="GPUs sum with Sum, no product"
)
def test_a_conv_site_is_summed_over_its_samples_first():
    # Each sample's 3 x 3 x 5 values form one row of the product: a short,
    # wide matrix (one row per sample), not a tall one (one per position).
    relu = Site("act", keras.layers.ReLU(), "relu")
    assert _product_shapes(relu, (8, 3, 3, 5)) == [(8, 45), (8, 45)]
    # Per-position units (granularity="unit") are one row per sample already.
    assert _product_shapes(relu, (8, 3, 3, 5), "unit") == [(8, 45), (8, 45)]
    assert _product_shapes(relu, (8, 5)) == [(8, 5), (8, 5)]


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
    # A NaN is never counted as positive; an inf is (both forms of counters;
    # two steps of the same values).
    expected = 2 * (np.nan_to_num(values, nan=0.0) > 0).sum(axis=0)
    np.testing.assert_array_equal(counters.positive_count, expected)


def _record_sites(recorder, sites, jit_compile, signature=None):
    """A traced step that records one tensor per site of `sites` (a site may
    come twice: a shared layer) into `recorder`."""

    @tf.function(jit_compile=jit_compile, input_signature=signature)
    def step(*tensors):
        recorder.start_step()
        for site, values in zip(sites, tensors, strict=True):
            recorder.record(site, values)
        recorder.finish_step()
        return tf.constant(0)

    return step


def _expected(arrays, unit_axis=-1):
    """Positive counts, absolute sums and values per unit, over `arrays`."""
    per_unit = np.concatenate(
        [np.moveaxis(v, unit_axis, -1).reshape(-1, v.shape[unit_axis]) for v in arrays]
    )
    return (per_unit > 0).sum(axis=0), np.abs(per_unit).sum(axis=0), len(per_unit)


def _assert_counters(counters, arrays, unit_axis=-1):
    positive, absolute, count = _expected(arrays, unit_axis)
    np.testing.assert_array_equal(counters.positive_count, positive)
    np.testing.assert_allclose(counters.abs_sum, absolute, rtol=1e-5)
    assert counters.element_count == count


@pytest.mark.parametrize("jit_compile", [False, True])
def test_many_sites_of_every_kind_in_one_step(jit_compile):
    # Two Dense-like ReLU sites, a leaky one, a SELU one, a channels-first
    # conv and a shared site called twice: each site's counters against
    # NumPy, so every offset is right.
    rng = np.random.default_rng(7)
    relu_a = Site("a", keras.layers.ReLU(), "relu")
    relu_b = Site("b", keras.layers.ReLU(), "relu")
    leaky = Site("leaky", keras.layers.LeakyReLU(0.1), "leaky_relu")
    selu = Site("selu", keras.layers.Activation("selu"), "selu")
    conv = Site("conv", keras.layers.ReLU(), "relu", 1)
    records = [
        (relu_a, _outputs((6, 3), 1, "relu")),
        (leaky, rng.normal(size=(6, 4)).astype("float32")),
        (relu_b, _outputs((6, 5), 2, "relu")),
        (selu, rng.normal(size=(6, 2)).astype("float32")),
        (conv, _outputs((6, 3, 2, 2), 3, "relu")),
        (relu_b, _outputs((6, 5), 4, "relu")),
    ]
    recorder = CounterRecorder()
    step = _record_sites(recorder, [site for site, _ in records], jit_compile)
    step(*[tf.constant(values) for _, values in records])
    counters = recorder.read()
    _assert_counters(counters["a"], [records[0][1]])
    _assert_counters(counters["leaky"], [records[1][1]])
    _assert_counters(counters["b"], [records[2][1], records[5][1]])
    _assert_counters(counters["selu"], [records[3][1]])
    _assert_counters(counters["conv"], [records[4][1]], unit_axis=1)
    selu_values = records[3][1]
    np.testing.assert_allclose(
        counters["selu"].value_sum, selu_values.sum(axis=0), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        counters["selu"].square_sum, np.square(selu_values).sum(axis=0), rtol=1e-5
    )


def _graph_ops(step, signature):
    """Every op type in `step`'s graph, branches included, with repeats."""
    graph_def = step.get_concrete_function(*signature).graph.as_graph_def()
    ops = [node.op for node in graph_def.node]
    for function in graph_def.library.function:
        ops += [node.op for node in function.node_def]
    return ops


_ACTIVATIONS = {
    "relu": (keras.layers.ReLU, tf.nn.relu),
    "leaky_relu": (
        lambda: keras.layers.LeakyReLU(0.2),
        lambda z: tf.nn.leaky_relu(z, 0.2),
    ),
    "selu": (lambda: keras.layers.Activation("selu"), tf.nn.selu),
}


def _dense_sites_step(recorder, kinds, jit_compile, features=4):
    """A traced step of Dense-like sites all fed by one input `x` (so their
    batches provably agree): site i is activation(x @ W_i), W_i of width
    2 + i. Returns the step (which returns every site's values) and the
    sites."""
    rng = np.random.default_rng(0)
    kernels = [
        tf.constant(rng.normal(size=(features, 2 + i)).astype("float32"))
        for i in range(len(kinds))
    ]
    sites = [
        Site(f"s{i}", _ACTIVATIONS[kind][0](), kind) for i, kind in enumerate(kinds)
    ]

    @tf.function(
        jit_compile=jit_compile,
        input_signature=[tf.TensorSpec((None, features))],
    )
    def step(x):
        recorder.start_step()
        outputs = []
        for site, kind, kernel in zip(sites, kinds, kernels, strict=True):
            values = _ACTIVATIONS[kind][1](tf.matmul(x, kernel))
            recorder.record(site, values)
            outputs.append(values)
        recorder.finish_step()
        return outputs

    return step, sites


@pytest.mark.parametrize("counter_ops", ["stock_ops"], indirect=True)
def test_dense_sites_of_one_batch_share_one_comparison_and_two_products():
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("with a GPU, sites are summed apart, with Sum")
    step, _ = _dense_sites_step(CounterRecorder(), ["relu"] * 3, False)
    graph_def = step.get_concrete_function().graph.as_graph_def()
    ops = [node.op for node in graph_def.node]
    assert ops.count("Greater") == 1  # x > 0, on the wide matrix
    assert ops.count("MatMul") == 3 + 2  # the sites' own, then the two sums
    assert not {"If", "StatelessIf"} & set(ops)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_mixed_kinds_of_one_batch_in_site_order(jit_compile):
    # ReLU, leaky, ReLU, SELU, leaky, fed by one input: summed by kind side
    # by side (no XLA), each site against NumPy, over two batch sizes.
    kinds = ["relu", "leaky_relu", "relu", "selu", "leaky_relu"]
    recorder = CounterRecorder()
    step, sites = _dense_sites_step(recorder, kinds, jit_compile)
    rng = np.random.default_rng(1)
    seen = [[] for _ in sites]
    for rows in (7, 3):
        outputs = step(tf.constant(rng.normal(size=(rows, 4)).astype("float32")))
        for values, kept in zip(outputs, seen, strict=True):
            kept.append(values.numpy())
    counters = recorder.read()
    for site, arrays in zip(sites, seen, strict=True):
        _assert_counters(counters[site.name], arrays)
    selu = np.concatenate(seen[3])
    np.testing.assert_allclose(
        counters["s3"].value_sum, selu.sum(axis=0), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        counters["s3"].square_sum, np.square(selu).sum(axis=0), rtol=1e-5
    )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_sites_with_batches_from_different_tensors_are_summed_apart(jit_compile):
    # Two sites fed by different tensors (a model may change the batch size
    # between sites): never put side by side, so right when the sizes differ.
    sites = [
        Site("a", keras.layers.ReLU(), "relu"),
        Site("b", keras.layers.ReLU(), "relu"),
    ]
    signature = [tf.TensorSpec((None, 3)), tf.TensorSpec((None, 5))]
    recorder = CounterRecorder()
    step = _record_sites(recorder, sites, jit_compile, signature)
    for rows_a, rows_b in ((7, 7), (7, 4)):
        a = _outputs((rows_a, 3), rows_a, "relu")
        b = _outputs((rows_b, 5), rows_b + 1, "relu")
        step(tf.constant(a), tf.constant(b))
        counters = recorder.read_and_reset()
        _assert_counters(counters["a"], [a])
        _assert_counters(counters["b"], [b])


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "probe"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_input_mean_square_from_the_first_sample_of_each_batch(jit_compile, streaming):
    """Streaming reads the first sample of each batch's input; a probe (no
    step to keep light) every sample."""
    dense = Site("dense", keras.layers.Dense(4, activation="relu"), "relu")
    other = Site("other", keras.layers.ReLU(), "relu")
    recorder = CounterRecorder(sample_positive_counts=streaming)

    @tf.function(jit_compile=jit_compile)
    def step(values, other_values, layer_input):
        recorder.start_step()
        recorder.record(dense, values, layer_input)
        recorder.record(other, other_values)
        recorder.finish_step()
        return tf.constant(0)

    rng = np.random.default_rng(11)
    inputs = [rng.normal(size=(5, 6)).astype("float32") * s for s in (1.0, 3.0)]
    for layer_input in inputs:
        step(
            tf.constant(_outputs((5, 4), 1, "relu")),
            tf.constant(_outputs((5, 2), 2, "relu")),
            tf.constant(layer_input),
        )
    counters = recorder.read()
    read = (lambda x: x[0]) if streaming else (lambda x: x)
    expected = np.mean([np.square(read(x)).mean() for x in inputs])
    np.testing.assert_allclose(counters["dense"].input_mean_square, expected, rtol=1e-5)
    assert counters["other"].input_mean_square is None


def test_a_site_that_changes_kind_keeps_its_place_in_the_buffer():
    # A fix makes one of two ReLU sites leaky and Keras traces the step anew:
    # the leaky site is then counted with its own terms, yet at the same
    # place in the buffer, so the window's counts from before and after the
    # change add up.
    relu = keras.layers.ReLU()
    sites = [Site("a", relu, "relu"), Site("b", keras.layers.ReLU(), "relu")]
    recorder = CounterRecorder()
    before = [_outputs((6, 3), 1, "relu"), _outputs((6, 4), 2, "relu")]
    _record_sites(recorder, sites, False)(*map(tf.constant, before))
    relu.negative_slope = 0.1  # now leaky: counted with its own terms
    leaky_values = np.random.default_rng(3).normal(size=(6, 3)).astype("float32")
    after = [leaky_values, _outputs((6, 4), 4, "relu")]
    _record_sites(recorder, sites, False)(*map(tf.constant, after))
    counters = recorder.read()
    _assert_counters(counters["a"], [before[0], after[0]])
    _assert_counters(counters["b"], [before[1], after[1]])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_batch_sizes_known_to_differ_beside_an_unknown_one(jit_compile):
    # Dense sites on fixed-size tensors (4 and 6 rows) beside a batch-sized
    # one: each counted right.
    sites = [Site(name, keras.layers.ReLU(), "relu") for name in "abc"]
    signature = [
        tf.TensorSpec((4, 3)),
        tf.TensorSpec((6, 2)),
        tf.TensorSpec((None, 5)),
    ]
    recorder = CounterRecorder()
    step = _record_sites(recorder, sites, jit_compile, signature)
    values = [
        _outputs(shape, i, "relu") for i, shape in enumerate([(4, 3), (6, 2), (7, 5)])
    ]
    step(*map(tf.constant, values))
    counters = recorder.read()
    for site, site_values in zip(sites, values, strict=True):
        _assert_counters(counters[site.name], [site_values])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_sampled_sites_beside_others_keep_every_offset(jit_compile):
    # A sampling recorder, with a sampled conv site called twice (a shared
    # layer) and given its layer's input, between sites counted in full.
    rng = np.random.default_rng(9)
    dense = Site("dense", keras.layers.ReLU(), "relu")
    conv = Site("conv", keras.layers.ReLU(), "relu")
    leaky = Site("leaky", keras.layers.LeakyReLU(0.1), "leaky_relu")
    records = [
        (dense, _outputs((6, 3), 1, "relu")),
        (conv, _outputs((6, 3, 2, 4), 2, "relu")),
        (leaky, rng.normal(size=(6, 2, 2, 3)).astype("float32")),
        (conv, _outputs((6, 3, 2, 4), 3, "relu")),
    ]
    conv_input = rng.normal(size=(6, 5, 4, 2)).astype("float32")
    recorder = CounterRecorder(sample_positive_counts=True)

    @tf.function(jit_compile=jit_compile)
    def step(*tensors):
        recorder.start_step()
        for (site, _), values in zip(records, tensors, strict=True):
            layer_input = conv_input if site is conv else None
            recorder.record(site, values, layer_input=layer_input)
        recorder.finish_step()
        return tf.constant(0)

    step(*[tf.constant(values) for _, values in records])
    counters = recorder.read()
    _assert_counters(counters["dense"], [records[0][1]])
    _assert_counters(counters["leaky"], [records[2][1]])
    shared = counters["conv"]
    calls = [records[1][1], records[3][1]]
    positive, absolute, count = _expected(calls)
    np.testing.assert_allclose(shared.abs_sum, absolute, rtol=1e-5)
    assert shared.element_count == count
    expected_mean_square = np.mean(np.square(conv_input[0]))
    assert shared.input_mean_square == pytest.approx(expected_mean_square, rel=1e-5)
    if not jit_compile and not tf.config.list_logical_devices("GPU"):
        firsts = [values[:1] for values in calls]
        assert shared.positive_sample == 2 * 3 * 2
        np.testing.assert_array_equal(shared.positive_count, _expected(firsts)[0])
    else:
        assert shared.positive_sample is None
        np.testing.assert_array_equal(shared.positive_count, positive)


def test_a_site_whose_unit_shape_changes_is_named():
    site = Site("act", keras.layers.ReLU(), "relu")
    recorder = CounterRecorder()
    _record_in_a_step(recorder, site, np.ones((2, 3), "float32"), False)
    with pytest.raises(RuntimeError, match=r"site 'act' has unit_shape=\(4,\)"):
        _record_in_a_step(recorder, site, np.ones((2, 4), "float32"), False)
