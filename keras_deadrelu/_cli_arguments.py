"""Argument types shared by the command-line subcommands."""

from __future__ import annotations

import argparse


def positive_int_argument(text: str) -> int:
    """An argparse type: an integer >= 1.

    >>> positive_int_argument("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def fraction_argument(text: str) -> float:
    """An argparse type: a number in [0, 1].

    >>> fraction_argument("0.5")
    0.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def format_threshold(threshold: float) -> str:
    """The threshold as a percentage, with the decimals it needs (at least one).

    >>> format_threshold(0.5), format_threshold(0.005), format_threshold(0.0125)
    ('50.0%', '0.5%', '1.25%')
    """
    for decimals in range(1, 7):
        text = f"{threshold:.{decimals}%}"
        if abs(float(text[:-1]) / 100 - threshold) < 1e-12:
            return text
    return text
