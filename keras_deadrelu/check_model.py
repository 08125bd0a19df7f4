"""``keras-deadrelu check``: the dead fraction of a saved model's sites on data.

Loads a ``.keras`` model and a ``.npy`` array, runs
:func:`keras_deadrelu.dead_fractions` over the array, and prints one row per
site and a verdict. Bad inputs end with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

from keras_deadrelu._cli_arguments import fraction_argument

DEFAULT_THRESHOLD = 0.5


class CheckInputError(Exception):
    """A bad command-line input; the message is printed as is."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``check`` arguments to `parser`."""
    parser.add_argument("model", metavar="MODEL.keras", help="a saved Keras model")
    parser.add_argument(
        "data", metavar="DATA.npy", help="a NumPy array of model inputs (np.save)"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="inputs per batch (default 256)",
    )
    parser.add_argument(
        "--layers",
        metavar="a,b",
        default=None,
        help="comma-separated site names to check (default: every site)",
    )
    parser.add_argument(
        "--threshold",
        type=fraction_argument,
        default=DEFAULT_THRESHOLD,
        help="dead fraction in [0, 1] a site must reach to be counted in the "
        "verdict (default 0.5)",
    )


def load_model(path: str) -> Any:
    """Loads a ``.keras`` model without compiling it; raises CheckInputError."""
    import keras

    import keras_deadrelu  # noqa: F401 - registers the package's layers

    if not os.path.exists(path):
        raise CheckInputError(f"model file {path!r} does not exist.")
    if not path.endswith(".keras") or not os.path.isfile(path):
        raise CheckInputError(
            f"model file {path!r} is not a .keras file (save it with "
            "model.save('name.keras'))."
        )
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - any load failure is a bad input
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckInputError(
            f"cannot load model {path!r}: {type(error).__name__}"
            + (f": {reason}" if reason else "")
        ) from error


def load_data(path: str) -> np.ndarray:
    """Loads a numeric ``.npy`` array (no pickles); raises CheckInputError."""
    if not os.path.isfile(path):
        raise CheckInputError(f"data file {path!r} does not exist.")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise CheckInputError(
            f"data file {path!r} is not a numeric array ({error})."
        ) from error
    except OSError as error:
        raise CheckInputError(f"cannot read data file {path!r}: {error}") from error
    if not isinstance(data, np.ndarray):
        if hasattr(data, "close"):
            data.close()
        raise CheckInputError(
            f"data file {path!r} is an .npz archive; give one array saved with np.save."
        )
    if data.dtype.kind not in "biuf":
        raise CheckInputError(
            f"data file {path!r} is not a numeric array (dtype {data.dtype}, "
            f"shape {data.shape})."
        )
    return data


def _expected_shape(model: Any) -> tuple | None:
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        return None
    return tuple(inputs[0].shape)


def _shape_text(shape: tuple) -> str:
    cells = ["None" if size is None else str(size) for size in shape]
    return "(" + ", ".join(cells) + ("," if len(cells) == 1 else "") + ")"


def _shape_error(data_path: str, data: np.ndarray, expected: tuple | None) -> str:
    message = f"{data_path} has shape {_shape_text(data.shape)}"
    if expected is None:
        return message + " but the model does not accept it."
    return message + f" but the model expects {_shape_text(expected)}."


def _check_fits(data_path: str, data: np.ndarray, model: Any) -> None:
    expected = _expected_shape(model)
    if expected is None:
        return
    fits = len(data.shape) == len(expected) and all(
        want is None or want == got
        for want, got in zip(expected[1:], data.shape[1:], strict=True)
    )
    if not fits:
        raise CheckInputError(_shape_error(data_path, data, expected))


def measure(
    model: Any,
    data: np.ndarray,
    data_path: str,
    batch_size: int | None = None,
    layers: list[str] | None = None,
) -> dict[str, float]:
    """``dead_fractions`` of `model` on `data`, with input errors as CheckInputError."""
    import keras_deadrelu

    _check_fits(data_path, data, model)
    if layers is not None:
        known = {site.name for site in keras_deadrelu.find_sites(model)}
        known |= {site.layer.name for site in keras_deadrelu.find_sites(model)}
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise CheckInputError(
                f"--layers names no site: {', '.join(unknown)} (sites: "
                f"{', '.join(site.name for site in keras_deadrelu.find_sites(model))})."
            )
    try:
        return keras_deadrelu.dead_fractions(
            model, data, batch_size=batch_size, layers=layers
        )
    except ValueError as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if "shape" in message.lower() or "incompatible" in message.lower():
            raise CheckInputError(
                _shape_error(data_path, data, _expected_shape(model))
            ) from error
        raise CheckInputError(f"cannot run the model on {data_path}: {message}") from (
            error
        )


def format_check(fractions: dict[str, float], threshold: float = 0.5) -> str:
    """The table of `fractions` and the verdict line.

    >>> print(format_check({"hidden": 1.0, "out": 0.25}))
    site    dead
    ------  ------
    hidden  100.0%
    out      25.0%
    <BLANKLINE>
    1 of 2 sites have >= 50% dead units.
    """
    header = ("site", "dead")
    rows = [(name, f"{fraction:.1%}") for name, fraction in fractions.items()]
    name_width = max(len(row[0]) for row in [header, *rows])
    value_width = max(len(row[1]) for row in [header, *rows])
    lines = [
        f"{header[0].ljust(name_width)}  {header[1].ljust(value_width)}".rstrip(),
        f"{'-' * name_width}  {'-' * value_width}",
    ]
    lines += [
        f"{name.ljust(name_width)}  {value.rjust(value_width)}" for name, value in rows
    ]
    crossed = sum(fraction >= threshold for fraction in fractions.values())
    if not any(fraction > 0 for fraction in fractions.values()):
        verdict = "no dead units."
    else:
        verdict = (
            f"{crossed} of {len(fractions)} sites have >= {threshold:.0%} dead units."
        )
    return "\n".join([*lines, "", verdict])


def run(args: argparse.Namespace) -> int:
    """Runs ``keras-deadrelu check``; returns the exit code."""
    layers = None
    if args.layers is not None:
        layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    try:
        model = load_model(args.model)
        data = load_data(args.data)
        fractions = measure(model, data, args.data, args.batch_size, layers)
    except CheckInputError as error:
        print(f"keras-deadrelu check: error: {error}", file=sys.stderr)
        return 2
    if not fractions:
        print(
            f"keras-deadrelu check: {args.model} has no ReLU-family site; "
            "nothing to check.",
            file=sys.stderr,
        )
        return 1
    print(format_check(fractions, args.threshold))
    return 0
