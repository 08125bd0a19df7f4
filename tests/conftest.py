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


@pytest.fixture(params=["native_op", "stock_ops"])
def counter_ops(request, monkeypatch):
    """Runs a test with the streaming counters' compiled op, then with stock
    TensorFlow ops (the fallback where it cannot be built): both must give
    the same numbers. Only a machine without a C++ compiler lacks the first.
    """
    from keras_deadrelu import native_unit_sums

    if request.param == "stock_ops":
        monkeypatch.setenv(native_unit_sums.ENABLE_VARIABLE, "0")
    else:
        monkeypatch.setenv(native_unit_sums.ENABLE_VARIABLE, "1")
        available, reason = native_unit_sums.availability()
        if not available and native_unit_sums.compiler() is None:
            pytest.skip(f"no C++ compiler to build the counter op: {reason}")
        assert available, reason
    return request.param
