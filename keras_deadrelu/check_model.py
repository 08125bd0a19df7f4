"""``keras-deadrelu check``: the dead fraction of a saved model's sites on data.

Loads a ``.keras`` model and a ``.npy`` array, runs
:func:`keras_deadrelu.dead_fractions` over the array, and prints one row per
site and a verdict. Bad inputs end with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from typing import Any

import numpy as np

from keras_deadrelu._cli_arguments import (
    format_threshold,
    fraction_argument,
    positive_int_argument,
)
from keras_deadrelu.threshold_alerts import reaches_threshold
from keras_deadrelu.unit_statistics import WindowStatistics

DEFAULT_THRESHOLD = 0.5


class CheckInputError(Exception):
    """A bad command-line input; the message is printed as is."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``check`` arguments to `parser`."""
    parser.add_argument("model", metavar="MODEL.keras", help="a saved Keras model")
    parser.add_argument(
        "data", metavar="DATA.npy", help="a NumPy array of model inputs (np.save)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int_argument,
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
    if not zipfile.is_zipfile(path):
        raise CheckInputError(
            f"model file {path!r} is not a .keras archive (save the model with "
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
    if os.path.isdir(path):
        raise CheckInputError(f"data file {path!r} is a folder, not a .npy file.")
    if not os.path.isfile(path):
        raise CheckInputError(f"data file {path!r} does not exist.")
    with open(path, "rb") as file:
        magic = file.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise CheckInputError(f"data file {path!r} is not an array saved with np.save.")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise CheckInputError(
            f"data file {path!r} is not a numeric array ({error})."
        ) from error
    except OSError as error:
        raise CheckInputError(f"cannot read data file {path!r}: {error}") from error
    except MemoryError as error:
        raise CheckInputError(
            f"data file {path!r} is too large to load ({error})."
        ) from error
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
) -> WindowStatistics | None:
    """One probe pass of `model` over `data` (None for a model without
    sites), with input errors as CheckInputError."""
    import keras_deadrelu
    from keras_deadrelu.dead_fractions import probe_window

    _check_fits(data_path, data, model)
    sites = keras_deadrelu.find_sites(model)
    if not sites:
        return None
    if layers is not None:
        known = {site.name for site in sites} | {site.layer.name for site in sites}
        unknown = [name for name in layers if name not in known]
        if unknown or not layers:
            raise CheckInputError(
                f"--layers names no site: {', '.join(unknown) or repr('')} (sites: "
                f"{', '.join(site.name for site in sites)})."
            )
    try:
        return probe_window(model, data, batch_size=batch_size, layers=layers)
    except ValueError as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if "shape" in message.lower() or "incompatible" in message.lower():
            raise CheckInputError(
                _shape_error(data_path, data, _expected_shape(model))
            ) from error
        raise CheckInputError(f"cannot run the model on {data_path}: {message}") from (
            error
        )


def format_check(
    fractions: dict[str, float],
    threshold: float = 0.5,
    nan_units: dict[str, int] | None = None,
) -> str:
    """The table of `fractions` (and, where any unit produced NaN or inf,
    `nan_units` per site) and the verdict.

    >>> print(format_check({"hidden": 1.0, "out": 0.25}))
    site    dead
    ------  ------
    hidden  100.0%
    out      25.0%
    <BLANKLINE>
    1 of 2 sites have >= 50.0% dead units.
    >>> print(format_check({"hidden": 0.0}, nan_units={"hidden": 4}))
    site    dead  NaN units
    ------  ----  ---------
    hidden  0.0%          4
    <BLANKLINE>
    no dead units. 4 units produced NaN or inf (counted neither dead nor alive).
    """
    nan_units = {name: count for name, count in (nan_units or {}).items() if count}
    header = ("site", "dead") + (("NaN units",) if nan_units else ())
    rows = [
        (name, f"{fraction:.1%}")
        + ((str(nan_units.get(name, 0)),) if nan_units else ())
        for name, fraction in fractions.items()
    ]
    widths = [
        max(len(row[column]) for row in [header, *rows])
        for column in range(len(header))
    ]
    lines = [
        "  ".join(
            cell.ljust(width) for cell, width in zip(header, widths, strict=True)
        ).rstrip(),
        "  ".join("-" * width for width in widths),
    ]
    lines += [
        "  ".join(
            [row[0].ljust(widths[0])]
            + [
                cell.rjust(width)
                for cell, width in zip(row[1:], widths[1:], strict=True)
            ]
        )
        for row in rows
    ]
    crossed = sum(
        reaches_threshold(fraction, threshold) for fraction in fractions.values()
    )
    if not any(fraction > 0 for fraction in fractions.values()):
        verdict = "no dead units."
    else:
        verdict = (
            f"{crossed} of {len(fractions)} sites have >= "
            f"{format_threshold(threshold)} dead units."
        )
    if nan_units:
        verdict += (
            f" {sum(nan_units.values())} units produced NaN or inf (counted neither "
            "dead nor alive)."
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
        window = measure(model, data, args.data, args.batch_size, layers)
    except CheckInputError as error:
        print(f"keras-deadrelu check: error: {error}", file=sys.stderr)
        return 2
    if window is None:
        print(
            f"keras-deadrelu check: {args.model} has no ReLU-family site; "
            "nothing to check.",
            file=sys.stderr,
        )
        return 1
    nan_units = {site.name: site.nan_count for site in window.sites}
    print(format_check(window.dead_fractions(), args.threshold, nan_units))
    return 0
