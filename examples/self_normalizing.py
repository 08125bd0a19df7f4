"""Self-normalization: a deep SELU stack keeps its activations near mean 0, std 1.

Twelve ``kd.layers.SELUDense`` layers (SELU with the LeCun-normal kernel it
needs) on standardized scikit-learn digits (bundled, no download), watched by
a ``DeadNeuronMonitor``. For every SELU site the monitor also counts the
activation mean and standard deviation over the epoch; self-normalization
(Klambauer et al., 2017) keeps them near 0 and 1 at every depth. The same
stack built with ``he_normal`` kernels (variance 2 / fan_in, the ReLU
initializer) is trained beside it: its std grows layer after layer.

    python examples/self_normalizing.py [--epochs 3] [--depth 12] \\
        [--logdir runs/selu]

Prints one table: per layer, mean and std of the activations for the LeCun
stack and for the he_normal stack, from ``monitor.last_window[site]``. (Training
moves the weights off the LeCun scale, so the deepest layers drift slowly
over many epochs too; the he_normal stack is off from the start.) The
monitor writes ``selu_mean/<site>`` and ``selu_std/<site>`` to TensorBoard
under ``<logdir>/<stack>/dead_neurons``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import keras_deadrelu as kd  # noqa: E402

WIDTH = 64


def load_data() -> tuple[np.ndarray, np.ndarray]:
    """Digits standardized per pixel (mean 0, std 1; constant pixels stay 0)."""
    digits = load_digits()
    x = StandardScaler().fit_transform(digits.data).astype("float32")
    return x, digits.target.astype("int64")


def build_stack(depth: int, kernel_initializer: str) -> keras.Model:
    layers: list[keras.layers.Layer] = [keras.Input((64,))]
    for index in range(1, depth + 1):
        layers.append(
            kd.layers.SELUDense(
                WIDTH, kernel_initializer=kernel_initializer, name=f"selu_{index}"
            )
        )
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    model = keras.Sequential(layers, name=f"stack_{kernel_initializer}")
    model.compile(
        keras.optimizers.SGD(0.02),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train_and_measure(
    kernel_initializer: str,
    depth: int,
    epochs: int,
    x: np.ndarray,
    y: np.ndarray,
    logdir: str,
) -> tuple[list[tuple[str, float, float]], float]:
    """Trains one stack; returns (site, mean, std) per SELU site, and accuracy."""
    model = build_stack(depth, kernel_initializer)
    monitor = kd.DeadNeuronMonitor(
        log_dir=os.path.join(logdir, kernel_initializer), verbose=0
    )
    history = model.fit(
        x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=[monitor]
    )
    window = monitor.last_window
    moments = [
        (site.name, float(site.activation_mean), float(site.activation_std))
        for site in window.sites
        if site.activation_mean is not None
    ]
    return moments, history.history["accuracy"][-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--logdir", default=os.path.join("runs", "selu"))
    parser.add_argument("--quick", action="store_true", help="tiny setting (tests)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    epochs = 1 if args.quick else args.epochs
    depth = min(args.depth, 8) if args.quick else args.depth

    keras.utils.set_random_seed(0)
    x, y = load_data()
    lecun, lecun_accuracy = train_and_measure(
        "lecun_normal", depth, epochs, x, y, args.logdir
    )
    he, he_accuracy = train_and_measure("he_normal", depth, epochs, x, y, args.logdir)

    print(f"SELU activation moments over epoch {epochs}, {depth} layers:")
    print(
        f"{'site':<10}  {'lecun mean':>10}  {'lecun std':>9}  {'he mean':>8}  "
        f"{'he std':>7}"
    )
    for (name, mean, std), (_, he_mean, he_std) in zip(lecun, he, strict=True):
        print(
            f"{name:<10}  {mean:>+10.3f}  {std:>9.3f}  {he_mean:>+8.3f}  {he_std:>7.3f}"
        )
    lecun_drift = max(abs(std - 1.0) for _, _, std in lecun)
    he_drift = max(abs(std - 1.0) for _, _, std in he)
    print(
        f"\nlargest |std - 1|: lecun_normal {lecun_drift:.3f}, he_normal {he_drift:.3f}"
    )
    print(
        f"training accuracy: lecun_normal {lecun_accuracy:.3f}, "
        f"he_normal {he_accuracy:.3f}"
    )
    print(f"See it in TensorBoard:\n  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
