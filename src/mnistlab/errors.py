"""Errors that end a run with one readable line instead of a traceback, and the checks that raise them."""

from __future__ import annotations

import math
from collections.abc import Iterable


class MnistlabError(Exception):
    """Base class: the message alone tells the user what is wrong and how to fix it."""


class ConfigError(MnistlabError, ValueError):
    """A configuration value is invalid; raised before any data is loaded or trained."""


class DataError(MnistlabError, RuntimeError):
    """The data set files are missing, unreadable or corrupt."""


class DivergedError(MnistlabError, RuntimeError):
    """Training produced a non-finite loss."""


# --- checks of one value, for constructors and config validation ------------------------------
# Each returns the value when it is fine and raises ConfigError naming the field otherwise, so
# every user-facing check reads the same and ends a run with one line.


def whole_number(value: object, field: str, minimum: int = 1, hint: str = "") -> int:
    """An ``int`` (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{field}={value!r} must be a whole number >= {minimum}{hint}")
    return value


def positive_int(value: object, field: str, hint: str = "") -> int:
    """A whole number >= 1."""
    return whole_number(value, field, 1, hint)


def positive_number(value: object, field: str, hint: str = "") -> float:
    """A finite real number > 0 (not a bool)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{field}={value!r} must be a positive number{hint}")
    return value


def in_range(
    value: object, field: str, low: float, high: float, high_inclusive: bool = False
) -> float:
    """A real number in ``[low, high)`` (or ``[low, high]``)."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and low <= value
        and (value <= high if high_inclusive else value < high)
    )
    if not ok:
        if math.isinf(high):
            raise ConfigError(f"{field}={value!r} must be a number >= {low:g}")
        close = "]" if high_inclusive else ")"
        raise ConfigError(f"{field}={value!r} must be in [{low:g}, {high:g}{close}")
    return value


def one_of(value: object, field: str, choices: Iterable[object]) -> object:
    """One of ``choices``; the message lists them."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(
            f"{field}={value!r} is unknown; choose one of: {', '.join(map(str, choices))}"
        )
    return value
