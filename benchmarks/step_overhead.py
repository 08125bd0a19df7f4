"""What ``DeadNeuronMonitor``'s streaming counters add to one training step.

Usage::

    python benchmarks/step_overhead.py            # full run
    python benchmarks/step_overhead.py --jit      # jit_compile=True (XLA)
    python benchmarks/step_overhead.py --quick    # smoke run (seconds)

``benchmarks/overhead.py`` times whole epochs of two fits, as the overhead
goal is stated; on a shared 2-core machine its ratios move by several
percent from run to run. This script isolates the per-step cost with much
less noise: ONE model, four of Keras's train functions traced from it, two
plain (traced without the monitor) and two traced with the monitor hooked in
(``on_train_begin``): ``monitor``, as a user gets it (its counters summed by
the compiled ops of ``keras_deadrelu.native_unit_sums`` where they are
available: a plain ReLU site's by its ReLU's gradient, in the backward
pass, see ``keras_deadrelu.backward_counting``), and ``stock_ops``, with the
ops turned off (the fallback), all
fed from one batched, repeated ``tf.data`` iterator. Blocks of ``--block``
steps of each function run in a fresh random order per round; a block ends
by reading the iteration count, so its steps have run. Same weights, same
data, same process: the two plain functions differ only by noise, which the
table shows beside the monitor's ratio (``plain2/plain1``). The monitor's
epoch-end work (reading the counters once, writing TensorBoard) is not
included: it is timed by overhead.py.

Scenarios: the 4x512 ReLU MLP and the small convnet of overhead.py, batch
128, Adam, jit_compile off unless ``--jit``. Prints a table, then one JSON
line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from interleaving import interleaved  # noqa: E402
from overhead import (  # noqa: E402
    build_conv,
    build_mlp,
    compile_model,
    image_data,
    machine_info,
    mlp_data,
)

import keras_deadrelu as kd  # noqa: E402
from keras_deadrelu import native_unit_sums  # noqa: E402

BATCH_SIZE = 128


def _monitored_train_function(model, dataset_iterator, log_dir, compiled_op):
    """A train function traced with the monitor hooked in, its counters
    summed by the compiled op (where it is available) or by stock ops."""
    previous = os.environ.get(native_unit_sums.ENABLE_VARIABLE)
    os.environ[native_unit_sums.ENABLE_VARIABLE] = "1" if compiled_op else "0"
    try:
        monitor = kd.DeadNeuronMonitor(log_dir=log_dir, verbose=0)
        monitor.set_model(model)
        monitor.on_train_begin()  # hooks the sites, forces a new trace
        model.make_train_function(force=True)
        function = model.train_function
        function(dataset_iterator)  # trace, while the variable is set
        monitor.on_train_end()  # unhooks; the traced function keeps its counters
    finally:
        if previous is None:
            del os.environ[native_unit_sums.ENABLE_VARIABLE]
        else:
            os.environ[native_unit_sums.ENABLE_VARIABLE] = previous
    return function


def _train_functions(model, dataset_iterator, log_dir):
    """Two plain train functions and two monitored ones, all traced."""
    functions = {}
    for name in ("plain1", "plain2"):
        model.make_train_function(force=True)
        functions[name] = model.train_function
        functions[name](dataset_iterator)  # trace
    for name, compiled_op in (("monitor", True), ("stock_ops", False)):
        functions[name] = _monitored_train_function(
            model, dataset_iterator, os.path.join(log_dir, name), compiled_op
        )
    return functions


def time_steps(name, model, x, y, rounds, block, jit):
    keras.utils.set_random_seed(0)
    compile_model(model, jit)
    model.fit(
        x[: 2 * BATCH_SIZE], y[: 2 * BATCH_SIZE], batch_size=BATCH_SIZE, verbose=0
    )
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    # As in fit: the batch size is unknown when traced (a last batch may be
    # partial), which the counters pay for; every batch here is full.
    dataset = dataset.batch(BATCH_SIZE).repeat().prefetch(4)
    iterator = iter(dataset)
    with tempfile.TemporaryDirectory() as log_dir:
        functions = _train_functions(model, iterator, log_dir)
        for function in functions.values():
            for _ in range(block):  # warm up
                function(iterator)
        seconds = {arm: [] for arm in functions}
        for arm in interleaved(functions, rounds):
            function = functions[arm]
            start = time.perf_counter()
            for _ in range(block):
                function(iterator)
            model.optimizer.iterations.numpy()  # waits for the block
            seconds[arm].append((time.perf_counter() - start) / block)
    medians = {arm: statistics.median(values) for arm, values in seconds.items()}
    plain = statistics.median(seconds["plain1"] + seconds["plain2"])
    return {
        "scenario": name,
        "jit_compile": jit,
        "rounds": rounds,
        "block": block,
        "plain_ms": round(1e3 * plain, 4),
        "monitor_ms": round(1e3 * medians["monitor"], 4),
        "monitor_over_plain": round(medians["monitor"] / plain, 4),
        "stock_ops_ms": round(1e3 * medians["stock_ops"], 4),
        "stock_ops_over_plain": round(medians["stock_ops"] / plain, 4),
        "plain2_over_plain1": round(medians["plain2"] / medians["plain1"], 4),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="rounds (50)")
    parser.add_argument("--block", type=int, default=20, help="steps per block (20)")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True")
    parser.add_argument("--quick", action="store_true", help="smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.block = 2, 2
    if args.rounds < 1 or args.block < 1:
        parser.error("--rounds and --block must be >= 1")
    samples = 4 * BATCH_SIZE if args.quick else 50 * BATCH_SIZE
    x, y = mlp_data(samples, 64, seed=0)
    images, labels = image_data(samples // 5 if not args.quick else samples, seed=0)
    rows = [
        time_steps("mlp", build_mlp(64), x, y, args.rounds, args.block, args.jit),
        time_steps(
            "conv", build_conv(), images, labels, args.rounds, args.block, args.jit
        ),
    ]
    available, reason = native_unit_sums.availability()
    print(
        "counters: compiled op "
        + ("in use" if available else "NOT available")
        + f" ({reason}); under XLA neither arm uses it"
    )
    header = (
        f"{'scenario':9s} {'jit':5s} {'plain ms':>9s} {'monitor ms':>11s} "
        f"{'monitor/plain':>14s} {'stock ops/plain':>16s} {'plain2/plain1':>14s}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['scenario']:9s} {str(row['jit_compile']):5s} {row['plain_ms']:9.3f} "
            f"{row['monitor_ms']:11.3f} {row['monitor_over_plain']:14.4f} "
            f"{row['stock_ops_over_plain']:16.4f} {row['plain2_over_plain1']:14.4f}"
        )
    summary = {
        "benchmark": "step_overhead",
        "quick": args.quick,
        "compiled_counter_op": {"in_use": available, "detail": reason},
        "machine": machine_info(list(os.getloadavg())),
        "rows": rows,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
