"""Quickstart: watch a layer die during ``fit`` and let the monitor revive it.

A small MLP on scikit-learn's bundled 8x8 digits (64 -> 64 -> 32 -> 10, no
download). The second hidden layer, ``dying``, starts with biases of -5, so
every one of its ReLU units is dead from the first step. A
``DeadNeuronMonitor(fix="revive")`` sees it at the end of epoch 1 and
re-initialises the dead units (fresh incoming weights, bias +0.01, outgoing
weights zeroed so the output does not jump); from the next epoch on they fire
again.

    python examples/quickstart.py [--epochs 5] [--logdir runs/quickstart]

Prints the dead fraction of every layer per epoch (from ``History``), the fix
events, and the ``tensorboard`` command to look at the run.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_deadrelu as kd  # noqa: E402


def load_data() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as flat 64-pixel vectors in [0, 1], and their labels."""
    digits = load_digits()
    return (digits.data / 16.0).astype("float32"), digits.target.astype("int64")


def build_model() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(
                32,
                activation="relu",
                name="dying",
                bias_initializer=keras.initializers.Constant(-5.0),
            ),
            keras.layers.Dense(10, activation="softmax", name="output"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--logdir", default=os.path.join("runs", "quickstart"))
    parser.add_argument("--quick", action="store_true", help="tiny setting (tests)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    epochs = min(args.epochs, 3) if args.quick else args.epochs

    keras.utils.set_random_seed(0)
    x, y = load_data()
    model = build_model()
    monitor = kd.DeadNeuronMonitor(
        log_dir=args.logdir, threshold=0.5, fix="revive", verbose=0
    )
    history = model.fit(
        x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=[monitor]
    )

    sites = [site.name for site in monitor.sites]
    print("Dead fraction per epoch (History):")
    print("epoch  " + "  ".join(f"{name:>8}" for name in sites) + "     model")
    for epoch in range(len(history.history["dead_fraction"])):
        cells = "  ".join(
            f"{history.history[f'dead_fraction/{name}'][epoch]:>8.0%}" for name in sites
        )
        model_wide = history.history["dead_fraction"][epoch]
        print(f"{epoch + 1:>5}  {cells}  {model_wide:>8.0%}")

    print("\nFix events:")
    for event in monitor.events:
        print(f"  {event.message}")
    if not monitor.events:
        print("  (none)")
    accuracy = history.history["accuracy"][-1]
    print(f"\nFinal training accuracy: {accuracy:.3f}")
    print(f"See it in TensorBoard:\n  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
