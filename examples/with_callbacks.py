"""The monitor beside Keras's own callbacks: TensorBoard, EarlyStopping, CSVLogger.

The ``DeadNeuronMonitor`` puts ``dead_fraction`` and ``dead_fraction/<site>``
into the epoch logs, so the callbacks after it see them like any metric:

- ``keras.callbacks.TensorBoard(logdir)`` writes ``<logdir>/train`` and
  ``<logdir>/validation``; the monitor writes ``<logdir>/dead_neurons`` beside
  them, so one ``tensorboard --logdir <logdir>`` shows all three runs;
- ``keras.callbacks.EarlyStopping(monitor="dead_fraction", mode="min")``
  stops when the dead fraction has not gone down for ``--patience`` epochs
  (``mode="min"``: Keras cannot guess the direction of a custom figure);
- ``keras.callbacks.CSVLogger`` writes a ``dead_fraction`` column.

The monitor must come *before* them in ``callbacks=[...]``, or they run
before the figures are in the logs. The MLP trains on scikit-learn's bundled
digits (no download) with a learning rate of 0.01, high enough for some ReLU
units to die.

    python examples/with_callbacks.py [--epochs 10] [--patience 2] \\
        [--logdir runs/callbacks]

Prints where the CSV is, its ``dead_fraction`` column, and at which epoch
``EarlyStopping`` stopped (if it did).
"""

from __future__ import annotations

import argparse
import csv
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
            keras.layers.Dense(128, activation="relu", name="hidden_1"),
            keras.layers.Dense(64, activation="relu", name="hidden_2"),
            keras.layers.Dense(10, activation="softmax", name="output"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-2),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--logdir", default=os.path.join("runs", "callbacks"))
    parser.add_argument("--quick", action="store_true", help="tiny setting (tests)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    epochs = min(args.epochs, 3) if args.quick else args.epochs

    keras.utils.set_random_seed(0)
    x, y = load_data()
    model = build_model()
    os.makedirs(args.logdir, exist_ok=True)
    csv_path = os.path.join(args.logdir, "training.csv")
    monitor = kd.DeadNeuronMonitor(log_dir=args.logdir, verbose=0)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="dead_fraction", mode="min", patience=args.patience
    )
    callbacks = [
        monitor,  # first: it adds dead_fraction to the logs the others read
        keras.callbacks.TensorBoard(log_dir=args.logdir),
        early_stopping,
        keras.callbacks.CSVLogger(csv_path),
    ]
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=64,
        validation_split=0.2,
        verbose=0,
        callbacks=callbacks,
    )

    with open(csv_path, newline="") as file:
        rows = list(csv.DictReader(file))
    print(f"CSV log: {csv_path}")
    print("epoch  dead_fraction  val_accuracy")
    for row in rows:
        print(
            f"{int(row['epoch']) + 1:>5}  {float(row['dead_fraction']):>13.4f}  "
            f"{float(row['val_accuracy']):>12.3f}"
        )
    if early_stopping.stopped_epoch:
        print(
            f"EarlyStopping stopped after epoch {early_stopping.stopped_epoch + 1}: "
            f"dead_fraction did not go down for {args.patience} epochs."
        )
    else:
        print(f"EarlyStopping did not stop the run ({len(rows)} epochs).")
    runs = sorted(
        name
        for name in os.listdir(args.logdir)
        if os.path.isdir(os.path.join(args.logdir, name))
    )
    print(f"TensorBoard runs in {args.logdir}: {', '.join(runs)}")
    print(f"See them in TensorBoard:\n  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
