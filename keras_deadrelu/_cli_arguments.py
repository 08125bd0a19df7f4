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
