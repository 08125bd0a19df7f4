"""Argument types shared by the command-line subcommands."""

from __future__ import annotations

import argparse


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
