"""Train one MLP with plain ReLU and with each ReLU variant, watching dead units.

Two ReLU arms are made to die by the two usual causes: a learning rate that
is too high, and biases far below zero.

Runs in about a minute on a 2-core CPU, on generated data (no download):

    python examples/compare_layers.py [--epochs 8] [--samples 4000] [--logdir runs]
        [--quick]

Every arm trains with a ``DeadNeuronMonitor`` that writes TensorBoard logs to
``<logdir>/<arm>/dead_neurons``; the script prints one table and the
``tensorboard`` command to look at the runs.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_deadrelu as kd  # noqa: E402

FEATURES, CLASSES, WIDTH, DEPTH = 20, 4, 64, 3


def make_data(samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A non-linear 4-class problem from a random two-layer teacher."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, FEATURES)).astype("float32")
    teacher_hidden = np.tanh(x @ rng.normal(size=(FEATURES, 32)))
    y = np.argmax(teacher_hidden @ rng.normal(size=(32, CLASSES)), axis=1)
    return x, y


def hidden_block(arm: str, index: int) -> list[keras.layers.Layer]:
    name = f"hidden_{index}"
    if arm in ("relu", "relu, lr 0.05"):
        return [keras.layers.Dense(WIDTH, activation="relu", name=name)]
    if arm == "relu, bias -3":
        return [
            keras.layers.Dense(
                WIDTH,
                activation="relu",
                name=name,
                bias_initializer=keras.initializers.Constant(-3.0),
            )
        ]
    if arm == "kd.SELUDense":
        return [kd.layers.SELUDense(WIDTH, name=name)]
    variants = {
        "kd.PReLU": kd.layers.PReLU,
        "kd.ELU": kd.layers.ELU,
        "kd.LeakyReLU": kd.layers.LeakyReLU,
    }
    return [
        keras.layers.Dense(WIDTH, name=f"{name}_linear"),
        variants[arm](name=name),
    ]


ARMS = (
    "relu",
    "relu, lr 0.05",
    "relu, bias -3",
    "kd.PReLU",
    "kd.ELU",
    "kd.SELUDense",
    "kd.LeakyReLU",
)


def build_model(arm: str) -> keras.Model:
    layers: list[keras.layers.Layer] = [keras.Input((FEATURES,))]
    for index in range(DEPTH):
        layers += hidden_block(arm, index)
    layers.append(keras.layers.Dense(CLASSES, activation="softmax", name="output"))
    model = keras.Sequential(layers, name=arm.replace(" ", "").replace(",", "_"))
    model.compile(
        keras.optimizers.Adam(0.05 if arm == "relu, lr 0.05" else 1e-3),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--logdir", default="runs")
    parser.add_argument(
        "--quick", action="store_true", help="tiny setting (2 epochs, 400 samples)"
    )
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.quick:
        args.epochs, args.samples = min(args.epochs, 2), min(args.samples, 400)

    keras.utils.set_random_seed(0)
    x, y = make_data(args.samples)
    split = int(0.8 * len(x))
    rows = []
    for arm in ARMS:
        started = time.perf_counter()
        print(f"--- {arm}", flush=True)
        model = build_model(arm)
        run_dir = os.path.join(args.logdir, arm.replace(", ", "_").replace(" ", "_"))
        monitor = kd.DeadNeuronMonitor(log_dir=run_dir, verbose=1)
        model.fit(
            x[:split],
            y[:split],
            epochs=args.epochs,
            batch_size=64,
            verbose=2,
            callbacks=[monitor],
        )
        _, accuracy = model.evaluate(x[split:], y[split:], verbose=0)
        window = monitor.last_window
        worst = max(window.sites, key=lambda site: site.dead_fraction)
        rows.append(
            (
                arm,
                f"{window.dead_fraction:.0%}",
                f"{worst.name} {worst.dead_fraction:.0%}",
                f"{accuracy:.3f}",
                f"{time.perf_counter() - started:.0f}s",
            )
        )
    header = ("arm", "dead (model)", "worst site", "test accuracy", "time")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print(
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            )
        )
    print(f"\nSee it in TensorBoard:\n  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
