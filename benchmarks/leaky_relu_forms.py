"""What a Leaky ReLU whose slope may change without retracing costs.

Keras's `LeakyReLU` bakes its slope into the trace: TensorFlow's fused
kernels (`LeakyRelu`, `LeakyReluGrad`) take it as a constant attribute. A
slope that can change after tracing (`kd.layers.LeakyReLU`, for the Leaky
ReLU swap fix) is a tensor, and TensorFlow has no fused kernel that takes one.
This script times, without XLA, forward + backward of:

- `keras`: Keras's `LeakyReLU` (the fused kernels, slope baked in);
- `kd`: this package's `LeakyReLU` (a branch on its slope variable: the fused
  kernels while the slope is the one traced, the general form after a change);
- `branch only`: a branch on a boolean variable between two fused kernels,
  the least that any form with a branch costs;
- the forms without a branch, slope read from a variable:
  `x * where(x > 0, 1, s)`, `maximum(x, s * x)`, `where(x > 0, x, s * x)`.

Each form runs through 20 layers in a row on a (128, 512) tensor (an MLP's
activations at batch 128, where a fixed cost per call shows) and through one
layer on a (4096, 1024) tensor. Forms are warmed up, then run interleaved in
a fresh random (seeded) order each round; medians of wall time and of
process CPU time are reported, with the cost per call beyond Keras's layer.
Prints a table, then one JSON line.

    python benchmarks/leaky_relu_forms.py            # full run
    python benchmarks/leaky_relu_forms.py --quick    # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from interleaving import interleaved  # noqa: E402

import keras_deadrelu as kd  # noqa: E402

SLOPE = 0.01


def _branch_only():
    fused = tf.Variable(True, trainable=False)

    def call(x):
        return tf.cond(
            fused,
            lambda: tf.nn.leaky_relu(x, SLOPE),
            lambda: tf.nn.leaky_relu(x, 2 * SLOPE),
        )

    return call


def _with_slope_variable(form):
    slope = tf.Variable(SLOPE, trainable=False)
    return lambda x: form(x, slope.read_value())


#: name -> factory of one layer (a callable on a tensor)
FORMS = {
    "keras": lambda: keras.layers.LeakyReLU(negative_slope=SLOPE),
    "kd": lambda: kd.layers.LeakyReLU(SLOPE),
    "branch only": _branch_only,
    "x*where(x>0,1,s)": lambda: _with_slope_variable(
        lambda x, s: x * tf.where(x > 0, 1.0, s)
    ),
    "maximum(x,s*x)": lambda: _with_slope_variable(lambda x, s: tf.maximum(x, s * x)),
    "where(x>0,x,s*x)": lambda: _with_slope_variable(
        lambda x, s: tf.where(x > 0, x, s * x)
    ),
}


def _step_function(layers):
    """Forward + backward through `layers`, one after the other (XLA off)."""

    @tf.function(jit_compile=False)
    def step(x, upstream):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = x
            for layer in layers:
                y = layer(y)
        # Fetch `y` too, so that no form's forward pass is pruned.
        return y, tape.gradient(y, x, upstream)

    return step


def time_forms(shape, depth, rounds, warmup=5):
    """``{form: (median wall ms, median CPU ms)}`` per forward + backward."""
    x = tf.random.normal(shape, seed=1)
    upstream = tf.random.normal(shape, seed=2)
    steps = {}
    for name, make in FORMS.items():
        steps[name] = _step_function([make() for _ in range(depth)])
        for _ in range(warmup):
            [value.numpy() for value in steps[name](x, upstream)]
    wall = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    for name in interleaved(steps, rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        [value.numpy() for value in steps[name](x, upstream)]
        wall[name].append(time.perf_counter() - start)
        cpu[name].append(time.process_time() - start_cpu)
    return {
        name: (1e3 * statistics.median(wall[name]), 1e3 * statistics.median(cpu[name]))
        for name in steps
    }


def _rows(setting, depth, times):
    keras_ms, keras_cpu = times["keras"]
    return [
        {
            "setting": setting,
            "form": name,
            "ms": round(ms, 4),
            "over_keras": round(ms / keras_ms, 3),
            "over_keras_cpu": round(cpu / keras_cpu, 3),
            "us_per_call_over_keras": round(1e3 * (ms - keras_ms) / depth, 1),
        }
        for name, (ms, cpu) in times.items()
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, fast smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        settings, rounds = [((16, 32), 20), ((64, 32), 1)], 3
    else:
        settings, rounds = [((128, 512), 20), ((4096, 1024), 1)], 100
    rows = []
    for shape, depth in settings:
        setting = f"{depth}x{shape[0]}x{shape[1]}"
        rows += _rows(setting, depth, time_forms(shape, depth, rounds))

    header = f"{'setting':14s} {'form':18s} {'ms':>8s} {'/keras':>7s} "
    header += f"{'cpu /keras':>10s} {'us/call over keras':>18s}"
    print(f"jit_compile=False backend={keras.backend.backend()} tf={tf.__version__}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['setting']:14s} {row['form']:18s} {row['ms']:8.3f} "
            f"{row['over_keras']:7.3f} {row['over_keras_cpu']:10.3f} "
            f"{row['us_per_call_over_keras']:18.1f}"
        )
    print(
        json.dumps({"benchmark": "leaky_relu_forms", "quick": args.quick, "rows": rows})
    )


if __name__ == "__main__":
    main()
