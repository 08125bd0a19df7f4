"""Test-wide set-up: quiet TensorFlow, the TensorFlow backend, fixed seeds."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded_and_clean():
    """Every test starts from the same seed and a float32 policy."""
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def counter_op():
    """The streaming counters' compiled op (built on first use). Skips only
    where there is no C++ compiler to build it; any other failure fails."""
    from keras_deadrelu import native_unit_sums

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(native_unit_sums.ENABLE_VARIABLE, "1")
        available, reason = native_unit_sums.availability()
        if not available and native_unit_sums.compiler() is None:
            pytest.skip(f"no C++ compiler to build the counter op: {reason}")
        assert available, reason
        return native_unit_sums.unit_sums_op()


@pytest.fixture(params=["native_op", "stock_ops"])
def counter_ops(request, monkeypatch):
    """Runs a test with the streaming counters' compiled op, then with stock
    TensorFlow ops (the fallback where it cannot be built): both must give
    the same numbers. Only a machine without a C++ compiler lacks the first.

    With the op, every step it applies to (no XLA, no GPU, every site's
    units contiguous at the end) must have been summed by it.
    """
    from keras_deadrelu import counters, native_unit_sums

    if request.param == "stock_ops":
        monkeypatch.setenv(native_unit_sums.ENABLE_VARIABLE, "0")
        return request.param
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("jit_compile"):
        pytest.skip("under XLA both forms are the same stock ops")
    request.getfixturevalue("counter_op")
    monkeypatch.setenv(native_unit_sums.ENABLE_VARIABLE, "1")
    summed_by_op = counters._sums_by_native_op

    def summed_by_op_where_it_applies(pending):
        result = summed_by_op(pending)
        applies = not counters._fused_by_xla_or_gpu() and all(
            entry.matrix is not None for entry in pending
        )
        assert result is not None or not applies, "the compiled op was not used"
        return result

    monkeypatch.setattr(counters, "_sums_by_native_op", summed_by_op_where_it_applies)
    return request.param
