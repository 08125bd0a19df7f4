"""Per-channel dead units in a small CNN: Conv2D -> BatchNormalization -> ReLU.

The digits of scikit-learn (bundled, no download) as 8x8x1 images go through
two Conv2D -> BatchNormalization -> ReLU blocks. The ``ReLU`` layers are the
monitor's sites, and with the default ``granularity="channel"`` a unit is a
channel: it is dead when it never fired at any position of any image in the
epoch. The monitor runs with its defaults (streaming, threshold 0.5).

To have something to find, the first ``--dead-channels`` channels (default 4)
of the second block start with a BatchNormalization offset (beta) of -10: they
never fire, get no gradient, and stay dead, while BatchNormalization keeps
every other channel alive.

    python examples/cnn.py [--epochs 4] [--dead-channels 4] [--logdir runs/cnn]

Prints, for each ReLU site, how many channels are dead, which ones, and each
channel's firing rate, from ``monitor.last_window[site]``; TensorBoard logs go
to ``<logdir>/dead_neurons``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_deadrelu as kd  # noqa: E402

FILTERS = (16, 32)


def offset_initializer(dead_channels: int) -> keras.initializers.Initializer:
    """BatchNormalization beta: -10 for the first `dead_channels`, else 0."""

    class DeadOffset(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            beta = np.zeros(shape, "float32")
            beta[:dead_channels] = -10.0
            return keras.ops.convert_to_tensor(beta, dtype=dtype)

    return DeadOffset()


def load_images() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as 8x8x1 images in [0, 1], and their labels."""
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., np.newaxis]
    return images, digits.target.astype("int64")


def build_model(dead_channels: int) -> keras.Model:
    layers: list[keras.layers.Layer] = [keras.Input((8, 8, 1))]
    for index, filters in enumerate(FILTERS, start=1):
        beta = offset_initializer(dead_channels) if index == 2 else "zeros"
        layers += [
            keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, name=f"conv_{index}"
            ),
            keras.layers.BatchNormalization(beta_initializer=beta, name=f"bn_{index}"),
            keras.layers.ReLU(name=f"relu_{index}"),
        ]
    layers += [
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(10, activation="softmax", name="output"),
    ]
    model = keras.Sequential(layers, name="digits_cnn")
    model.compile(
        keras.optimizers.Adam(1e-2),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--dead-channels", type=int, default=4)
    parser.add_argument("--logdir", default=os.path.join("runs", "cnn"))
    parser.add_argument("--quick", action="store_true", help="tiny setting (tests)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    epochs = min(args.epochs, 2) if args.quick else args.epochs

    keras.utils.set_random_seed(0)
    x, y = load_images()
    model = build_model(args.dead_channels)
    monitor = kd.DeadNeuronMonitor(log_dir=args.logdir)
    history = model.fit(
        x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=[monitor]
    )

    window = monitor.last_window
    print(f"Dead channels after epoch {epochs} (x = dead, . = fired):")
    for site in monitor.sites:
        statistics = window[site.name]
        dead = statistics.dead
        mask = "".join("x" if unit else "." for unit in dead)
        indices = np.flatnonzero(dead).tolist()
        print(
            f"  {site.name}: {statistics.dead_count}/{statistics.unit_count} "
            f"channels dead [{mask}] dead channels: {indices}"
        )
        rates = " ".join(f"{rate:.2f}" for rate in statistics.firing_rate)
        print(f"  {site.name} firing rate per channel: {rates}")
    print(f"Model-wide dead fraction: {window.dead_fraction:.1%}")
    print(f"Final training accuracy: {history.history['accuracy'][-1]:.3f}")
    print(f"See it in TensorBoard:\n  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
