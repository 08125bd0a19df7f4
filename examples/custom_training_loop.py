"""Dead units in a custom training loop: ``kd.dead_fractions`` instead of a callback.

No ``fit``, so no callback: a ``tf.GradientTape`` loop with
``keras.optimizers.Adam`` over batches of scikit-learn's bundled digits (no
download). ``kd.dead_fractions(model, x_val)`` runs one inference pass over
the validation data and returns ``{site: dead fraction}``.

The model is built born dead: its second hidden layer, ``born_dead``, starts
with biases of -5, so none of its ReLU units ever fires and none would ever
get a gradient. ``kd.dead_fractions`` shows it at 100% before the first step;
the script then resets those biases to 0.01 (the usual cure) and trains,
calling ``kd.dead_fractions`` again after every epoch.

    python examples/custom_training_loop.py [--epochs 5] [--logdir runs/loop]

Prints the dead fractions before training, after the bias reset and per
epoch, with the validation accuracy. The per-epoch figures also go to
TensorBoard (``dead_fraction/<site>``) under ``<logdir>``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_deadrelu as kd  # noqa: E402
from keras_deadrelu.demo import load_digits  # noqa: E402


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits in [0, 1], split 80/20 into training and validation."""
    return load_digits()


def build_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(
                32,
                activation="relu",
                name="born_dead",
                bias_initializer=keras.initializers.Constant(-5.0),
            ),
            keras.layers.Dense(10, name="logits"),
        ]
    )


def format_fractions(fractions: dict[str, float]) -> str:
    return ", ".join(f"{name} {fraction:.0%}" for name, fraction in fractions.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--logdir", default=os.path.join("runs", "loop"))
    parser.add_argument("--quick", action="store_true", help="tiny setting (tests)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    epochs = min(args.epochs, 2) if args.quick else args.epochs

    # Each kd.dead_fractions call traces its own small inference function;
    # TensorFlow's "retracing" warning about it is harmless here.
    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(0)
    x_train, y_train, x_val, y_val = load_data()
    model = build_model()

    before = kd.dead_fractions(model, x_val)
    print(f"before training: {format_fractions(before)}")
    for name, fraction in before.items():
        if fraction == 1.0:
            print(f"  {name} is born dead: no unit fires, so none gets a gradient.")
    born_dead = model.get_layer("born_dead")
    born_dead.bias.assign(np.full(born_dead.bias.shape, 0.01, "float32"))
    print(
        f"after bias reset to 0.01: {format_fractions(kd.dead_fractions(model, x_val))}"
    )

    optimizer = keras.optimizers.Adam(3e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    dataset = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=0)
        .batch(64)
    )

    @tf.function
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(
            zip(gradients, model.trainable_variables, strict=True)
        )
        return loss

    writer = tf.summary.create_file_writer(args.logdir)
    for epoch in range(1, epochs + 1):
        losses = [float(train_step(x, y)) for x, y in dataset]
        fractions = kd.dead_fractions(model, x_val)
        logits = model.predict(x_val, verbose=0)
        accuracy = float(np.mean(np.argmax(logits, axis=1) == y_val))
        with writer.as_default(step=epoch):
            for name, fraction in fractions.items():
                tf.summary.scalar(f"dead_fraction/{name}", fraction)
        print(
            f"epoch {epoch}: loss {np.mean(losses):.3f}, val accuracy "
            f"{accuracy:.3f}, dead: {format_fractions(fractions)}"
        )
    writer.close()
    print(f"See it in TensorBoard:\n  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
