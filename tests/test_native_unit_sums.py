"""The compiled counter op against NumPy, and the fallback where it cannot be
built (a fresh Python process with its own cache folder and compiler)."""

import os
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import tensorflow as tf

from keras_deadrelu import native_unit_sums


@pytest.fixture
def unit_sums(counter_op):
    """The compiled op's Python wrapper (see conftest's `counter_op`), every
    site read from `values` unless `precomputed_of` says otherwise."""

    def call(*, values, precomputed=(), precomputed_of=None, **attributes):
        if precomputed_of is None:
            precomputed_of = [-1] * len(values)
        return counter_op(
            values=values,
            precomputed=list(precomputed),
            precomputed_of=precomputed_of,
            **attributes,
        )

    return call


def _expected(values, units, moments, count_slot, first_sample_only, layer_input):
    """The op's output for one site, from NumPy in float64."""
    matrix = values.reshape(-1, units).astype(np.float64)
    rows = matrix.shape[0]
    counted = rows
    if first_sample_only:
        counted = rows // len(values) if len(values) else 0
    numbers = [(matrix[:counted] > 0).sum(axis=0), np.abs(matrix).sum(axis=0)]
    if moments:
        numbers += [matrix.sum(axis=0), (matrix**2).sum(axis=0)]
    numbers.append([rows])
    if count_slot:
        numbers.append([counted])
    if layer_input is not None:
        sample = layer_input[:1].astype(np.float64)
        numbers.append([0.5 * (sample**2).sum(), sample.size])
    return np.concatenate([np.asarray(n, np.float64).ravel() for n in numbers])


# name: (shape, units, moments, count_slot, first_sample_only, input shape)
CASES = {
    "dense": ((7, 5), 5, False, False, False, (7, 3)),
    "one_unit": ((9, 1), 1, False, False, False, None),
    "wide": ((3, 1000), 1000, True, False, False, None),
    "selu_conv": ((6, 4, 5, 3), 3, True, False, False, (6, 4, 5, 2)),
    "conv_sampled": ((6, 4, 5, 3), 3, False, True, True, None),
    "conv_slot_counted_in_full": ((6, 4, 5, 3), 3, False, True, False, None),
    "per_position_units": ((5, 4, 3), 12, False, False, False, None),
    # 2**19 values: summed in two shards on a machine with 2 or more threads.
    "large": ((64, 32, 32, 8), 8, True, False, False, (64, 16)),
    "large_sampled": ((64, 32, 32, 8), 8, False, True, True, None),
    "empty_batch": ((0, 4), 4, True, True, True, (0, 2)),
    # An odd number of rows (a partial batch of an odd size, odd maps): rows
    # left over beside the wide rows, and long sums kept exact enough.
    "odd_rows": ((33, 127, 127, 3), 3, True, True, False, (33, 5)),
    "odd_rows_sampled": ((7, 9, 11, 5), 5, False, True, True, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_op_matches_numpy(unit_sums, case):
    shape, units, moments, count_slot, first_only, input_shape = CASES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    values = rng.normal(size=shape).astype("float32")
    values[values < -1.0] = 0.0  # exact zeros, as a ReLU gives
    layer_input = None
    if input_shape is not None:
        layer_input = rng.normal(size=input_shape).astype("float32")
    out = unit_sums(
        values=[values],
        layer_inputs=[] if layer_input is None else [layer_input],
        units=[units],
        moments=[moments],
        count_slot=[count_slot],
        first_sample_only=[first_only],
        input_of=[-1 if layer_input is None else 0],
    ).numpy()
    expected = _expected(values, units, moments, count_slot, first_only, layer_input)
    np.testing.assert_allclose(out, expected, rtol=2e-6, atol=1e-4)
    counts = expected[:units]  # whole numbers, exact however many rows
    np.testing.assert_array_equal(out[:units], counts)


def test_several_sites_come_out_one_after_another(unit_sums):
    # Two sites share one layer input; a NaN and an inf show in the absolute
    # sum and are never counted as positive.
    rng = np.random.default_rng(3)
    first = rng.normal(size=(8, 4)).astype("float32")
    second = rng.normal(size=(8, 2, 2, 3)).astype("float32")
    first[2, 1], first[5, 3] = np.nan, np.inf
    shared_input = rng.normal(size=(8, 6)).astype("float32")
    out = unit_sums(
        values=[first, second],
        layer_inputs=[shared_input],
        units=[4, 3],
        moments=[False, True],
        count_slot=[False, True],
        first_sample_only=[False, False],
        input_of=[0, 0],
    ).numpy()
    expected = np.concatenate(
        [
            _expected(first, 4, False, False, False, shared_input),
            _expected(second, 3, True, True, False, shared_input),
        ]
    )
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(out[finite], expected[finite], rtol=2e-6)
    assert out[:4].tolist() == [(first[:, u] > 0).sum() for u in range(4)]
    assert np.isnan(out[4 + 1]) and np.isinf(out[4 + 3])


def _window_of_sites(native: bool, monkeypatch):
    """One step's counters over several kinds of sites, summed with the
    compiled op or with stock ops (as chosen when the step is traced)."""
    import keras

    from keras_deadrelu.counters import CounterRecorder
    from keras_deadrelu.sites import Site

    monkeypatch.setenv(native_unit_sums.ENABLE_VARIABLE, "1" if native else "0")
    rng = np.random.default_rng(11)
    dense = np.maximum(rng.normal(size=(37, 6)), 0).astype("float32")
    conv = np.maximum(rng.normal(size=(37, 5, 7, 4)), 0).astype("float32")
    selu = rng.normal(size=(37, 3, 3, 2)).astype("float32")
    dense_input = rng.normal(size=(37, 9)).astype("float32")
    conv_layer = keras.layers.Conv2D(4, 3, activation="relu")
    sites = [
        Site("dense", keras.layers.Dense(6, activation="relu"), "relu"),
        Site("conv", conv_layer, "relu"),
        Site("selu", keras.layers.Activation("selu"), "selu"),
    ]
    recorder = CounterRecorder("channel", sample_positive_counts=True)

    @tf.function(jit_compile=False)
    def step(dense, conv, selu, dense_input):
        recorder.start_step()
        recorder.record(sites[0], dense, dense_input)
        recorder.record(sites[1], conv)
        recorder.record(sites[2], selu)
        recorder.finish_step()

    step(dense, conv, selu, dense_input)
    return recorder.read()


def test_both_forms_give_the_same_counters(unit_sums, monkeypatch):
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("with a GPU both forms are stock ops")
    native = _window_of_sites(True, monkeypatch)
    stock = _window_of_sites(False, monkeypatch)
    assert list(native) == list(stock) == ["dense", "conv", "selu"]
    for name in native:
        ours, theirs = native[name], stock[name]
        np.testing.assert_array_equal(ours.positive_count, theirs.positive_count)
        assert ours.element_count == theirs.element_count
        assert ours.positive_sample == theirs.positive_sample
        np.testing.assert_allclose(ours.abs_sum, theirs.abs_sum, rtol=1e-6)
        for field in ("value_sum", "square_sum"):
            if getattr(theirs, field) is None:
                assert getattr(ours, field) is None
            else:
                # Signed sums cancel: float32 rounding, relative to |x| summed.
                np.testing.assert_allclose(
                    getattr(ours, field),
                    getattr(theirs, field),
                    atol=1e-6 * theirs.abs_sum.max(),
                )
        if theirs.input_mean_square is None:
            assert ours.input_mean_square is None
        else:
            assert ours.input_mean_square == pytest.approx(theirs.input_mean_square)
    # The conv site's firing rate is taken over the first sample of the batch.
    assert native["conv"].positive_sample == 5 * 7


def test_the_output_length_is_known_when_traced(unit_sums):
    @tf.function
    def step(values, layer_input):
        return unit_sums(
            values=[values],
            layer_inputs=[layer_input],
            units=[5],
            moments=[True],
            count_slot=[True],
            first_sample_only=[True],
            input_of=[0],
        )

    spec = tf.TensorSpec([None, None, 5]), tf.TensorSpec([None, 3])
    traced = step.get_concrete_function(*spec)
    assert traced.output_shapes.as_list() == [4 * 5 + 1 + 1 + 2]


def test_attribute_lists_of_the_wrong_length_are_refused(unit_sums):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="one entry"):
        unit_sums(
            values=[np.zeros((2, 3), "float32")],
            layer_inputs=[],
            units=[3, 3],
            moments=[False],
            count_slot=[False],
            first_sample_only=[False],
            input_of=[-1],
        )


def test_values_that_do_not_divide_into_units_are_refused(unit_sums):
    with pytest.raises(tf.errors.InvalidArgumentError, match="divide into its units"):
        unit_sums(
            values=[np.zeros((2, 5), "float32")],
            layer_inputs=[],
            units=[3],
            moments=[False],
            count_slot=[False],
            first_sample_only=[False],
            input_of=[-1],
        )


def test_it_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(native_unit_sums.ENABLE_VARIABLE, "0")
    assert native_unit_sums.availability() == (
        False,
        "turned off by $KERAS_DEADRELU_NATIVE",
    )
    assert native_unit_sums.unit_sums_op() is None


_FALLBACK_SCRIPT = textwrap.dedent(
    """
    import logging
    import numpy as np
    import keras
    import keras_deadrelu as kd
    from keras_deadrelu import native_unit_sums

    logging.basicConfig()
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu", name="hidden"),
         keras.layers.Dense(1)]
    )
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[:, 1] = 0.0
    bias[1] = -5.0  # unit 1 never fires
    model.get_layer("hidden").set_weights([kernel, bias])
    model.compile("sgd", "mse", jit_compile=False)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = np.zeros((64, 1), "float32")
    monitor = kd.DeadNeuronMonitor(log_dir={log_dir!r}, verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0,
                        callbacks=[monitor])
    print("AVAILABLE", native_unit_sums.availability()[0])
    print("DEAD", history.history["dead_fraction/hidden"][0])
    """
)


def _run_fit(tmp_path, drop=(), **environment):
    script = _FALLBACK_SCRIPT.format(log_dir=str(tmp_path / "logs"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **environment)
    for name in drop:
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_a_working_compiler_training_uses_stock_ops(tmp_path):
    # A compiler that fails: one log line says why, and the numbers are right.
    result = _run_fit(
        tmp_path,
        CXX="false",
        KERAS_DEADRELU_CACHE_DIR=str(tmp_path / "cache"),
        KERAS_DEADRELU_NATIVE="1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AVAILABLE False" in result.stdout
    # One unit of three never fires, whichever ops counted it.
    assert "DEAD 0.333" in result.stdout
    assert result.stderr.count("compiled counter op is not available") == 1
    assert "exited with 1" in result.stderr
    assert not list((tmp_path / "cache").glob("*.so"))


def test_without_a_compiler_on_the_path_training_uses_stock_ops(tmp_path):
    environment = {"PATH": str(tmp_path / "empty"), "KERAS_DEADRELU_NATIVE": "1"}
    environment["KERAS_DEADRELU_CACHE_DIR"] = str(tmp_path / "cache")
    result = _run_fit(tmp_path, drop=("CXX",), **environment)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AVAILABLE False" in result.stdout
    assert "DEAD 0.333" in result.stdout
    assert "no C++ compiler on the PATH" in result.stderr


def test_a_built_op_is_cached_and_reused(tmp_path, unit_sums):
    # The op of this test session is in the cache; a new process loads it
    # without compiling (its file is not rewritten).
    library = native_unit_sums.library_path(native_unit_sums.compiler())
    before = library.stat().st_mtime_ns
    result = _run_fit(tmp_path, KERAS_DEADRELU_NATIVE="1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AVAILABLE True" in result.stdout
    assert "DEAD 0.333" in result.stdout
    assert library.stat().st_mtime_ns == before


_FAKE_COMPILER = textwrap.dedent(
    """
    import sys
    arguments = sys.argv[1:]
    with open({calls!r}, "a") as calls:
        calls.write(" ".join(arguments) + "\\n")
    if "-march=native" in arguments:
        sys.exit("error: unrecognized command-line option '-march=native'")
    with open(arguments[arguments.index("-o") + 1], "w") as library:
        library.write("built")
    """
)


def test_a_compiler_that_refuses_the_machine_flags_builds_without_them(
    tmp_path, monkeypatch
):
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "fake_compiler.py"
    fake.write_text(_FAKE_COMPILER.format(calls=str(calls)))
    monkeypatch.setenv("CXX", f"{sys.executable} {fake}")
    monkeypatch.setattr(
        native_unit_sums, "_machine_flags", lambda: ["-march=native", "-mno-avx512f"]
    )
    target = tmp_path / "cache" / "op.so"
    native_unit_sums._build(native_unit_sums.compiler(), target)
    first, second = calls.read_text().splitlines()
    assert "-march=native" in first.split() and "-DNDEBUG" in first.split()
    assert "-march=native" not in second.split() and "-DNDEBUG" in second.split()
    assert target.read_text() == "built"


def test_the_cached_library_is_named_after_the_cpu_it_was_built_for(monkeypatch):
    cxx = ["c++"]
    monkeypatch.setattr(native_unit_sums, "_machine_identity", lambda: b"cpu one")
    first = native_unit_sums.library_path(cxx)
    monkeypatch.setattr(native_unit_sums, "_machine_identity", lambda: b"cpu two")
    assert native_unit_sums.library_path(cxx) != first
    assert native_unit_sums.library_path(cxx).parent == first.parent


def test_a_compile_error_is_not_retried_without_the_machine_flags(
    tmp_path, monkeypatch
):
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "failing_compiler.py"
    fake.write_text(
        f"import sys\nopen({str(calls)!r}, 'a').write('call\\n')\n"
        "sys.exit('unit_sums.cc:1: error: expected declaration')\n"
    )
    monkeypatch.setenv("CXX", f"{sys.executable} {fake}")
    monkeypatch.setattr(
        native_unit_sums, "_machine_flags", lambda: ["-march=native", "-mno-avx512f"]
    )
    with pytest.raises(RuntimeError, match="expected declaration"):
        native_unit_sums._build(native_unit_sums.compiler(), tmp_path / "op.so")
    assert calls.read_text() == "call\n"
