"""Argument checks shared by the layers, the monitor and the fixes.

Every check raises ``ValueError`` (or ``TypeError`` for a wrong type) whose
message names the argument and repeats the value received, in Keras's style:
``"... Received: alpha=-1.0"``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any


def _received(name: str, value: Any) -> str:
    return f"Received: {name}={value!r}"


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    minimum_inclusive: bool = True,
    maximum_inclusive: bool = True,
) -> float:
    """Returns `value` as a float after checking it is a finite real number in range.

    >>> check_number("alpha", 2, minimum=0, minimum_inclusive=False)
    2.0
    >>> check_number("alpha", 0, minimum=0, minimum_inclusive=False)
    Traceback (most recent call last):
    ...
    ValueError: Argument `alpha` must be > 0. Received: alpha=0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a real number. {_received(name, value)}"
        )
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"Argument `{name}` must be finite. {_received(name, value)}")
    if minimum is not None:
        too_small = number < minimum if minimum_inclusive else number <= minimum
        if too_small:
            sign = ">=" if minimum_inclusive else ">"
            raise ValueError(
                f"Argument `{name}` must be {sign} {minimum:g}. "
                f"{_received(name, value)}"
            )
    if maximum is not None:
        too_big = number > maximum if maximum_inclusive else number >= maximum
        if too_big:
            sign = "<=" if maximum_inclusive else "<"
            raise ValueError(
                f"Argument `{name}` must be {sign} {maximum:g}. "
                f"{_received(name, value)}"
            )
    return number


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Returns `value` as an int after checking it is an integer >= `minimum`.

    >>> check_int("cooldown", 0, minimum=0)
    0
    >>> check_int("cooldown", 0.9, minimum=0)
    Traceback (most recent call last):
    ...
    TypeError: Argument `cooldown` must be an integer. Received: cooldown=0.9
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be an integer. {_received(name, value)}"
        )
    if value < minimum:
        raise ValueError(
            f"Argument `{name}` must be >= {minimum}. {_received(name, value)}"
        )
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """Returns `value` as an int after checking it is an integer >= 1.

    >>> check_positive_int("freq", 10)
    10
    """
    return check_int(name, value, minimum=1)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Returns `value` after checking it is one of `choices`.

    >>> check_choice("granularity", "unit", ("channel", "unit"))
    'unit'
    """
    choices = tuple(choices)
    if value not in choices:
        options = ", ".join(repr(choice) for choice in choices)
        raise ValueError(
            f"Argument `{name}` must be one of {options}. {_received(name, value)}"
        )
    return value
