"""``keras-deadrelu demo``: dying ReLUs caught and fixed, on data that ships offline.

The user's story on scikit-learn's bundled digits (8x8 images, 10 classes):
one MLP trained several ways, each with a :class:`DeadNeuronMonitor` writing
TensorBoard logs to ``<logdir>/<arm>``:

- plain ReLU, healthy (the reference);
- plain ReLU made to die by each of the two causes, without a fix: a learning
  rate too high, and biases far below zero;
- the same with each fix: ``lower_lr`` (with ``revive`` to bring the dead
  units back), ``leaky_relu`` and ``revive``;
- the same network built with this package's PReLU, ELU, SELUDense and
  LeakyReLU.

It prints one table (dead % model-wide and in the worst layer, test accuracy,
fixes applied) and the ``tensorboard`` command to look at the runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import warnings
from typing import Any

import keras
import numpy as np

import keras_deadrelu as kd
from keras_deadrelu._cli_arguments import positive_int_argument

WIDTH = 64
DEPTH = 3


@dataclasses.dataclass(frozen=True)
class Arm:
    """One way of training the demo network."""

    name: str
    hidden: str = "relu"  # relu, prelu, elu, selu, leaky_relu
    learning_rate: float = 0.01
    optimizer: str = "adam"
    bias: float = 0.0
    fix: Any = None


ARMS = (
    Arm("relu"),
    Arm("relu, lr too high", learning_rate=0.1),
    Arm("relu, bias -3", bias=-3.0),
    Arm("lr too high + lower_lr,revive", learning_rate=0.1, fix=("lower_lr", "revive")),
    Arm("bias -3 + leaky_relu", bias=-3.0, fix="leaky_relu"),
    Arm("bias -3 + revive", bias=-3.0, fix="revive"),
    Arm("kd.PReLU", hidden="prelu"),
    Arm("kd.ELU", hidden="elu"),
    Arm("kd.SELUDense", hidden="selu"),
    Arm("kd.LeakyReLU", hidden="leaky_relu"),
)


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits, scaled to [0, 1], split 80/20."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:  # pragma: no cover - depends on the install
        raise SystemExit(
            "The demo needs scikit-learn for its bundled digits data: "
            "pip install 'keras-deadrelu[demo]'"
        ) from error
    digits = sklearn_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return x[:split], y[:split], x[split:], y[split:]


def build_model(arm: Arm) -> keras.Model:
    """The demo MLP: 64 -> 3 hidden layers of 64 -> 10, as `arm` says."""
    layers: list[Any] = [keras.Input((64,))]
    bias = keras.initializers.Constant(arm.bias)
    for index in range(DEPTH):
        name = f"hidden_{index}"
        if arm.hidden == "relu":
            layers.append(
                keras.layers.Dense(
                    WIDTH, activation="relu", bias_initializer=bias, name=name
                )
            )
        elif arm.hidden == "selu":
            layers.append(kd.layers.SELUDense(WIDTH, name=name))
        else:
            variant = {
                "prelu": kd.layers.PReLU,
                "elu": kd.layers.ELU,
                "leaky_relu": kd.layers.LeakyReLU,
            }[arm.hidden]
            layers.append(keras.layers.Dense(WIDTH, name=f"{name}_linear"))
            layers.append(variant(name=name))
    layers.append(keras.layers.Dense(10, name="output"))
    model = keras.Sequential(layers, name="demo")
    optimizer = (
        keras.optimizers.SGD(arm.learning_rate)
        if arm.optimizer == "sgd"
        else keras.optimizers.Adam(arm.learning_rate)
    )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def run_folder(arm: Arm) -> str:
    """A folder name for the arm's TensorBoard run."""
    keep = [c if c.isalnum() or c in "-." else "_" for c in arm.name]
    return "".join(keep).replace("__", "_").strip("_")


class _EpochDots(keras.callbacks.Callback):
    """A compact progress bar: one dot per epoch on the arm's line."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        print(".", end="", flush=True)


def train_arm(
    arm: Arm, data: tuple, epochs: int, logdir: str, verbose: int
) -> dict[str, Any]:
    """Trains one arm; returns its row of the table."""
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(1)
    model = build_model(arm)
    monitor = kd.DeadNeuronMonitor(
        log_dir=os.path.join(logdir, run_folder(arm)),
        threshold=0.5,
        fix=list(arm.fix) if isinstance(arm.fix, tuple) else arm.fix,
        verbose=0,
    )
    started = time.perf_counter()
    callbacks: list[Any] = [monitor]
    if verbose == 0:
        callbacks.append(_EpochDots())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(
            x_train,
            y_train,
            epochs=epochs,
            batch_size=32,
            verbose=verbose,
            callbacks=callbacks,
        )
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    window = monitor.last_window
    worst = max(window.sites, key=lambda site: site.dead_fraction)
    fixes = []
    for name in dict.fromkeys(event.fix for event in monitor.events):
        epochs_acted = [e.epoch + 1 for e in monitor.events if e.fix == name]
        fixes.append(f"{name} x{len(epochs_acted)} (from epoch {epochs_acted[0]})")
    return {
        "arm": arm.name,
        "dead": window.dead_fraction,
        "worst": f"{worst.name} {worst.dead_fraction:.0%}",
        "nan": window.nan_count,
        "accuracy": float(accuracy),
        "fixes": ", ".join(fixes) if fixes else "-",
        "seconds": time.perf_counter() - started,
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """The result table, aligned."""
    header = ("arm", "dead (model)", "worst layer", "test acc", "fixes applied")
    lines = [
        (
            row["arm"],
            f"{row['dead']:.0%}" + (f" ({row['nan']} NaN)" if row["nan"] else ""),
            row["worst"],
            "nan" if np.isnan(row["accuracy"]) else f"{row['accuracy']:.3f}",
            row["fixes"],
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(5)]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in [header, *lines]
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's command-line options."""
    parser.add_argument(
        "--epochs", type=positive_int_argument, default=15, help="epochs per arm (15)"
    )
    parser.add_argument("--logdir", default="runs", help="TensorBoard logs (runs)")
    parser.add_argument(
        "--quick", action="store_true", help="3 epochs, for a fast look"
    )


def run(args: argparse.Namespace) -> int:
    """Runs every arm and prints the table; returns the exit code."""
    if args.epochs < 1:
        print(
            f"keras-deadrelu demo: error: --epochs must be >= 1, got {args.epochs}",
            file=sys.stderr,
        )
        return 2
    try:
        os.makedirs(args.logdir, exist_ok=True)
        if not os.access(args.logdir, os.W_OK):
            raise PermissionError("not writable")
    except OSError as error:
        reason = error.strerror or str(error)
        print(
            f"keras-deadrelu demo: error: --logdir {args.logdir!r} cannot hold "
            f"the logs ({reason}).",
            file=sys.stderr,
        )
        return 2
    epochs = 3 if args.quick else args.epochs
    data = load_digits()
    print(
        f"Digits: {len(data[0])} training and {len(data[2])} test images. "
        f"{len(ARMS)} arms x {epochs} epochs; logs in {args.logdir}/"
    )
    rows = []
    for number, arm in enumerate(ARMS, start=1):
        print(f"[{number}/{len(ARMS)}] {arm.name} ", end="", flush=True)
        row = train_arm(arm, data, epochs, args.logdir, verbose=0)
        print(
            f" dead {row['dead']:.0%}, accuracy {row['accuracy']:.3f}, "
            f"{row['seconds']:.0f}s",
            flush=True,
        )
        rows.append(row)
    print()
    print(format_table(rows))
    print(f"\nLook at it in TensorBoard:\n  tensorboard --logdir {args.logdir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m keras_deadrelu.demo``."""
    parser = argparse.ArgumentParser(prog="keras-deadrelu demo", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
