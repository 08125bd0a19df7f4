"""Speed of keras_deadrelu's layers against their Keras counterparts and ReLU.

Forward + backward of each layer on a (4096, 1024) float32 tensor, with XLA
off and on; the same through 20 layers of each kind in a row on a (128, 512)
tensor (an MLP's activations at batch 128, where a fixed cost per call shows
and the large tensor hides it); and the epoch time of `model.fit` on a 4x512
MLP per activation.
Every contender gets the same input and the same upstream gradient, and each
step returns the layer's output as well as the gradients: in a real network
the output feeds the next layer, and if it were not fetched the graph
optimizer (or XLA) would drop the forward pass for layers whose gradient does
not need it (ours written with `where`), but not for fused kernels whose
gradient reads the output (`Relu`, `Elu`, `Selu`), which skews the ratios.
Contenders are warmed up, then run interleaved in rounds, in a fresh random
(seeded) order each round so no contender always follows the same one;
medians over the rounds are reported, of wall time and of process CPU time
(on a shared machine other processes stretch wall time in bursts; CPU time
mostly ignores them). Prints a table, then one JSON line.

    python benchmarks/layers.py            # full run
    python benchmarks/layers.py --quick    # smoke run (seconds)
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
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from interleaving import interleaved  # noqa: E402

import keras_deadrelu as kd  # noqa: E402

#: Layers in a row in the small-tensor rows (per-call costs add up there).
CHAIN_DEPTH = 20

# name -> (our layer factory, Keras counterpart factory)
PAIRS = {
    "PReLU": (kd.layers.PReLU, lambda: keras.layers.PReLU()),
    "ELU": (kd.layers.ELU, lambda: keras.layers.ELU()),
    # alpha != 1: the unit ELU kernel times a factor (Keras's is two passes).
    "ELU(0.2)": (lambda: kd.layers.ELU(0.2), lambda: keras.layers.ELU(alpha=0.2)),
    "LeakyReLU": (
        lambda: kd.layers.LeakyReLU(0.01),
        lambda: keras.layers.LeakyReLU(negative_slope=0.01),
    ),
    "SELU": (kd.layers.SELU, lambda: keras.layers.Activation("selu")),
}


def _step_function(layers, jit_compile):
    """Forward + backward through `layers`, one after the other."""
    variables = [variable for layer in layers for variable in layer.trainable_variables]

    @tf.function(jit_compile=jit_compile)
    def step(x, upstream):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = x
            for layer in layers:
                y = layer(y)
        # Fetch `y` too, so its forward pass is never pruned (see module doc).
        return [y, *tape.gradient(y, [x, *variables], upstream)]

    return step


def _run(step, x, upstream):
    for value in step(x, upstream):
        value.numpy()


def time_forward_backward(shape, jit_compile, rounds, warmup=5, depth=1):
    """Median wall and process-CPU milliseconds per forward + backward
    through `depth` layers of each kind in a row."""
    x = tf.random.normal(shape, seed=1)
    upstream = tf.random.normal(shape, seed=2)
    contenders = {"ReLU": keras.layers.ReLU}
    for name, (ours, theirs) in PAIRS.items():
        contenders[f"kd.{name}"] = ours
        contenders[f"keras.{name}"] = theirs
    steps = {}
    for name, make in contenders.items():
        layers = [make() for _ in range(depth)]
        for layer in layers:
            layer.build(shape)
        steps[name] = _step_function(layers, jit_compile)
        for _ in range(warmup):
            _run(steps[name], x, upstream)
    wall = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    for name in interleaved(steps, rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        _run(steps[name], x, upstream)
        wall[name].append(time.perf_counter() - start)
        cpu[name].append(time.process_time() - start_cpu)
    return _medians_ms(wall, cpu)


def _medians_ms(wall, cpu):
    return {
        name: (1e3 * statistics.median(wall[name]), 1e3 * statistics.median(cpu[name]))
        for name in wall
    }


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.durations = []
        self.cpu_durations = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._start_cpu = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.perf_counter() - self._start)
        self.cpu_durations.append(time.process_time() - self._start_cpu)


def _mlp(make_activation, features, width=512, depth=4):
    layers = [keras.Input((features,))]
    for _ in range(depth):
        layers += [keras.layers.Dense(width), make_activation()]
    layers.append(keras.layers.Dense(1))
    return keras.Sequential(layers)


def time_fit_epochs(samples, epochs, rounds):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 64)).astype("float32")
    y = rng.normal(size=(samples, 1)).astype("float32")
    activations = {"ReLU": keras.layers.ReLU}
    for name, (ours, theirs) in PAIRS.items():
        activations[f"kd.{name}"] = ours
        activations[f"keras.{name}"] = theirs
    models = {}
    for name, make in activations.items():
        keras.utils.set_random_seed(0)
        model = _mlp(make, x.shape[1])
        model.compile(optimizer="adam", loss="mse")  # jit_compile="auto"
        model.fit(x[:1024], y[:1024], batch_size=128, epochs=1, verbose=0)  # warm up
        models[name] = model
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for name in interleaved(models, rounds):
        timer = _EpochTimer()
        models[name].fit(
            x, y, batch_size=128, epochs=epochs, verbose=0, callbacks=[timer]
        )
        wall[name].extend(timer.durations)
        cpu[name].extend(timer.cpu_durations)
    return _medians_ms(wall, cpu)


def _rows(setting, times):
    rows = []
    for name in PAIRS:
        (ours, ours_cpu), (theirs, theirs_cpu) = (
            times[f"kd.{name}"],
            times[f"keras.{name}"],
        )
        relu, relu_cpu = times["ReLU"]
        rows.append(
            {
                "setting": setting,
                "layer": name,
                "kd_ms": round(ours, 3),
                "keras_ms": round(theirs, 3),
                "relu_ms": round(relu, 3),
                "kd_over_keras": round(ours / theirs, 3),
                "kd_over_relu": round(ours / relu, 3),
                "kd_over_keras_cpu": round(ours_cpu / theirs_cpu, 3),
                "kd_over_relu_cpu": round(ours_cpu / relu_cpu, 3),
            }
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, fast smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        shape, rounds, samples, epochs, fit_rounds = (256, 128), 3, 512, 1, 1
        chain_shape, chain_rounds = (16, 32), 3
    else:
        shape, rounds, samples, epochs, fit_rounds = (4096, 1024), 60, 16384, 2, 6
        chain_shape, chain_rounds = (128, 512), 60
    rows = []
    for jit_compile in (False, True):
        times = time_forward_backward(shape, jit_compile, rounds)
        rows += _rows(f"fwd+bwd jit={'on' if jit_compile else 'off'}", times)
    for jit_compile in (False, True):
        # A small tensor, as in a training step (an MLP's batch of 128 x 512),
        # through a chain of layers: what each call costs beyond its kernels.
        times = time_forward_backward(
            chain_shape, jit_compile, chain_rounds, depth=CHAIN_DEPTH
        )
        setting = f"{CHAIN_DEPTH}x{chain_shape[0]}x{chain_shape[1]} jit="
        rows += _rows(setting + ("on" if jit_compile else "off"), times)
    rows += _rows("fit epoch (jit auto)", time_fit_epochs(samples, epochs, fit_rounds))

    header = f"{'setting':22s} {'layer':10s} {'kd ms':>9s} {'keras ms':>9s} "
    header += f"{'ReLU ms':>9s} {'kd/keras':>9s} {'kd/ReLU':>8s} {'cpu kd/keras':>12s}"
    print(f"shape={shape} backend={keras.backend.backend()} tf={tf.__version__}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['setting']:22s} {row['layer']:10s} {row['kd_ms']:9.2f} "
            f"{row['keras_ms']:9.2f} {row['relu_ms']:9.2f} "
            f"{row['kd_over_keras']:9.2f} {row['kd_over_relu']:8.2f} "
            f"{row['kd_over_keras_cpu']:12.2f}"
        )
    summary = {
        "benchmark": "layers",
        "quick": args.quick,
        "shape": list(shape),
        "rows": rows,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
