"""Argument validation, in one place.

Every public constructor and function checks its arguments here, so that the
messages read the same everywhere: the argument is named, what is allowed is
said, and the value received is shown (`Received: name=value`). A value of the
wrong type raises `TypeError`; a value of the right type outside the allowed
range or set raises `ValueError`.
"""

import math
import numbers

INFERENCE_MODES = ("mean", "sample")


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def real(
    name,
    value,
    low=-math.inf,
    high=math.inf,
    low_open=False,
    high_open=False,
    allowed=None,
):
    """`value` as a finite float in the interval from `low` to `high` (ends open as asked).

    `allowed` words what is allowed in the message (default: the interval).
    """
    if allowed is None:
        allowed = (
            f"a finite float in {'(' if low_open else '['}{low:g}, "
            f"{high:g}{')' if high_open else ']'}"
        )
    if not _is_real(value):
        raise TypeError(
            f"Argument `{name}` must be {allowed}. Received: {name}={value!r}"
        )
    above_low = value > low if low_open else value >= low
    below_high = value < high if high_open else value <= high
    if not (math.isfinite(value) and above_low and below_high):
        raise ValueError(
            f"Argument `{name}` must be {allowed}. Received: {name}={value!r}"
        )
    return float(value)


def positive(name, value):
    """`value` as a positive, finite float."""
    return real(name, value, low=0.0, low_open=True, allowed="a positive, finite float")


def non_negative(name, value):
    """`value` as a non-negative, finite float."""
    return real(name, value, low=0.0, allowed="a non-negative, finite float")


def fraction(name, value, low_open=False):
    """`value` as a float in `[0, 1)` (`(0, 1)` with `low_open`)."""
    interval = "(0, 1)" if low_open else "[0, 1)"
    return real(
        name,
        value,
        low=0.0,
        high=1.0,
        low_open=low_open,
        high_open=True,
        allowed=f"a float in {interval}",
    )


def integer(name, value, minimum=None):
    """`value` as an int, at least `minimum` if given."""
    if not _is_integer(value):
        raise TypeError(
            f"Argument `{name}` must be an integer. Received: {name}={value!r}"
        )
    if minimum is not None and value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(
            f"Argument `{name}` must be {what}. Received: {name}={value!r}"
        )
    return int(value)


def positive_integer(name, value):
    return integer(name, value, minimum=1)


def boolean(name, value):
    if not isinstance(value, bool):
        raise TypeError(
            f"Argument `{name}` must be a boolean. Received: {name}={value!r}"
        )
    return value


def choice(name, value, allowed):
    """`value`, which must be one of `allowed`."""
    if any(isinstance(a, str) for a in allowed) and not isinstance(value, str):
        raise TypeError(
            f"Argument `{name}` must be one of {list(allowed)}. Received: {name}={value!r}"
        )
    if value not in allowed:
        raise ValueError(
            f"Argument `{name}` must be one of {list(allowed)}. Received: {name}={value!r}"
        )
    return value


def seed(value, name="seed"):
    """An integer seed or None."""
    if value is not None and not _is_integer(value):
        raise TypeError(
            f"Argument `{name}` must be an integer or None. Received: {name}={value!r}"
        )
    return value


def kl_weight(value):
    return non_negative("kl_weight", value)


def inference(value):
    return choice("inference", value, INFERENCE_MODES)
