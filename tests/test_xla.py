import pytest
import tensorflow as tf

from keras_deadrelu._xla import compiled_by_xla


@pytest.mark.parametrize("jit_compile", [False, True])
def test_compiled_by_xla_inside_a_traced_function(jit_compile):
    seen = []

    @tf.function(jit_compile=jit_compile)
    def step(x):
        seen.append(compiled_by_xla())
        return x + 1

    assert float(step(tf.constant(1.0))) == 2.0
    assert seen == [jit_compile]


def test_not_compiled_by_xla_when_eager():
    assert compiled_by_xla() is False
