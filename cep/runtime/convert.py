"""Converting values to declared attribute types (INT, FLOAT, STRING, BOOL, TIMESTAMP): bus
values by the adapters, `cast(...)` by expressions.

`converter(type_name, tz)` returns one function per declared type, chosen once
when the mapping is built.  A converter returns the converted value or raises
`BadValue` with a short reason (`"abc" is not a FLOAT`); the caller adds which
attribute it was, and nothing else escapes it.  Values never reach eval, format
strings or the like.

An INT is a 64-bit integer; a TIMESTAMP a time from 1970-01-01 up to 2200-01-01 UTC
(cep.runtime.limits), read from ISO-8601 text or from a number of Unix seconds, or of
milliseconds when the number is above MILLIS_ABOVE (`epoch_to_unix`, also used for
trace `ts` numbers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from cep.language.catalog import ATTRIBUTE_TYPES
from cep.runtime.limits import INT_MAX, INT_MIN, TIME_RANGE, time_problem

__all__ = ["MILLIS_ABOVE", "TYPES", "BadValue", "converter", "epoch_to_unix", "iso_to_unix",
           "number_to_unix", "show"]

TYPES = ATTRIBUTE_TYPES

# An epoch number above this is in milliseconds (1e11 s would be the year 5138; 1e11 ms
# is 1973-03-03).  Seconds beyond 2200 and milliseconds before 1973-03 are thus both out
# of range.
MILLIS_ABOVE = 1e11

_TRUE = frozenset(("on", "true", "1"))
_FALSE = frozenset(("off", "false", "0"))


class BadValue(ValueError):
    """A value that cannot be converted; `reason` says why, without naming the attribute."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def show(value: Any, limit: int = 60) -> str:
    """A value as it would look in JSON, shortened: for messages only."""
    if value is None:
        text = "null"
    elif value is True:
        text = "true"
    elif value is False:
        text = "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)  # escapes quotes and control characters
    elif isinstance(value, dict):
        text = "an object"
    elif isinstance(value, list):
        text = "an array"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse(value: Any, type_name: str, why: str = "") -> BadValue:
    article = "an" if type_name == "INT" else "a"
    reason = f"{show(value)} is not {article} {type_name}"
    return BadValue(f"{reason} ({why})" if why else reason)


def _clean_number_text(text: str) -> str:
    """Python's int()/float() accept `1_000`; a bus value must not."""
    if "_" in text:
        raise ValueError(text)
    return text


def _in_64_bits(value: Any, number: int) -> int:
    if INT_MIN <= number <= INT_MAX:
        return number
    raise _refuse(value, "INT", "beyond 64 bits")


def to_int(value: Any) -> int:
    kind = type(value)
    if kind is int:
        return _in_64_bits(value, value)
    if kind is float:
        if value.is_integer():
            return _in_64_bits(value, int(value))
        raise _refuse(value, "INT", "not a whole number" if math.isfinite(value)
                      else "not a finite number")
    if kind is str:
        try:
            return _in_64_bits(value, int(_clean_number_text(value)))
        except ValueError as exc:
            if isinstance(exc, BadValue):
                raise
        try:
            number = float(_clean_number_text(value))
        except ValueError:
            raise _refuse(value, "INT") from None
        if number.is_integer():
            return _in_64_bits(value, int(number))
        raise _refuse(value, "INT", "not a whole number" if math.isfinite(number)
                      else "not a finite number")
    if kind is bool:
        raise _refuse(value, "INT", "a boolean is not a number")
    raise _refuse(value, "INT")


def to_float(value: Any) -> float:
    kind = type(value)
    if kind is float:
        if math.isfinite(value):
            return float(value)
        raise _refuse(value, "FLOAT", "not a finite number")
    if kind is int:
        try:
            return float(value)
        except OverflowError:  # an integer beyond floats (the JSON fallback reads them)
            raise _refuse(value, "FLOAT", "not a finite number") from None
    if kind is str:
        try:
            number = float(_clean_number_text(value))
        except ValueError:
            raise _refuse(value, "FLOAT") from None
        if math.isfinite(number):
            return number
        raise _refuse(value, "FLOAT", "not a finite number")
    if kind is bool:
        raise _refuse(value, "FLOAT", "a boolean is not a number")
    raise _refuse(value, "FLOAT")


def to_string(value: Any) -> str:
    """Strings as they are; numbers and booleans as their JSON text (`21.5`, `true`)."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        try:
            return str(value)
        except ValueError:  # more digits than Python will turn into text
            raise _refuse(value, "STRING", "too many digits") from None
    if kind is float:
        if math.isfinite(value):
            return repr(value)
        raise _refuse(value, "STRING", "not a finite number")
    raise _refuse(value, "STRING")


def to_bool(value: Any) -> bool:
    """true/false; "ON"/"OFF", "true"/"false", "1"/"0" (any case); the numbers 1 and 0."""
    kind = type(value)
    if kind is bool:
        return bool(value)
    if kind is str:
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _refuse(value, "BOOL", "expected ON/OFF, true/false or 1/0")
    if (kind is int or kind is float) and (value == 1 or value == 0):
        return bool(value == 1)
    raise _refuse(value, "BOOL", "expected ON/OFF, true/false or 1/0")


def number_to_unix(number: float) -> float:
    """An epoch number as Unix seconds: above MILLIS_ABOVE it is taken as milliseconds.

    Raises OverflowError for an integer beyond floats."""
    return number / 1000.0 if number > MILLIS_ABOVE else float(number)


def epoch_to_unix(number: float) -> float | str:
    """An epoch number (a trace `ts`, a TIMESTAMP) as Unix seconds (milliseconds above
    MILLIS_ABOVE), or why it cannot be a time (out of range, not finite)."""
    try:
        seconds = number / 1000.0 if number > MILLIS_ABOVE else float(number)
    except OverflowError:
        return f"outside {TIME_RANGE}"
    problem = time_problem(seconds)
    return seconds if problem is None else problem


def iso_to_unix(text: str, tz: tzinfo) -> float:
    """ISO-8601 text as Unix seconds; without an offset it is local time in `tz`.

    `datetime.fromisoformat` (fast, C) first; `dateutil`'s isoparse for what it refuses.
    Raises ValueError.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        from dateutil.parser import isoparse  # (here: loading it costs 40 ms, rarely needed)

        try:
            moment = isoparse(text)
        except (ValueError, OverflowError) as exc:
            raise ValueError(str(exc)) from None
    if moment.tzinfo is None:
        localize = getattr(tz, "localize", None)  # pytz zones need localize, not replace
        moment = localize(moment) if localize is not None else moment.replace(tzinfo=tz)
    return moment.timestamp()


def make_to_timestamp(tz: tzinfo) -> Callable[[Any], float]:
    """A TIMESTAMP converter reading offset-less ISO text in `tz`."""

    def in_range(value: Any, seconds: float | str) -> float:
        if type(seconds) is float:
            return seconds
        raise _refuse(value, "TIMESTAMP", f"a time {seconds}")

    def to_timestamp(value: Any) -> float:
        kind = type(value)
        if kind is int or kind is float:
            if kind is int or math.isfinite(value):
                return in_range(value, epoch_to_unix(value))
            raise _refuse(value, "TIMESTAMP", "not a finite number")
        if kind is str:
            text = value.strip()
            try:
                number = float(_clean_number_text(text))
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return in_range(value, epoch_to_unix(number))
                raise _refuse(value, "TIMESTAMP", "not a finite number")
            try:
                seconds = iso_to_unix(text, tz)
            except (ValueError, OverflowError, OSError):
                raise _refuse(value, "TIMESTAMP",
                              "expected ISO-8601 or Unix seconds/milliseconds") from None
            problem = time_problem(seconds)
            if problem is not None:
                raise _refuse(value, "TIMESTAMP", f"a time {problem}")
            return seconds
        if kind is bool:
            raise _refuse(value, "TIMESTAMP", "a boolean is not a time")
        raise _refuse(value, "TIMESTAMP", "expected ISO-8601 or Unix seconds/milliseconds")

    return to_timestamp


def converter(type_name: str, tz: tzinfo) -> Callable[[Any], Any]:
    """The converter for a declared type (upper case); raises KeyError for an unknown type."""
    if type_name == "TIMESTAMP":
        return make_to_timestamp(tz)
    return {"INT": to_int, "FLOAT": to_float, "STRING": to_string, "BOOL": to_bool}[type_name]


# ------------------------------------------------------------------ in expressions


def text_of(value: Any) -> str:
    """A value as `+` joins it to text and `cast(x, STRING)` writes it: a FLOAT as the
    shortest text that reads back as the same number (`21.5`, `21.0`), a BOOL as
    `true` / `false`, lists and objects as JSON. (Never called with null.)"""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        if value - value != 0.0:
            raise ValueError("a FLOAT that is not a finite number has no text")
        return repr(value)
    if kind is int:
        return str(value)
    text: str = json.dumps(value, ensure_ascii=False, default=str)
    return text


def _cast_int(value: Any) -> int:
    if type(value) is float and math.isfinite(value):
        return _in_64_bits(value, int(value))  # toward zero
    return to_int(value)


def _cast_string(value: Any) -> str:
    if type(value) is float and not math.isfinite(value):
        raise _refuse(value, "STRING", "not a finite number")
    return text_of(value)


_CASTS: dict[str, Callable[[Any], Any]] = {
    "INT": _cast_int, "FLOAT": to_float, "STRING": _cast_string, "BOOL": to_bool}


def caster(type_name: str) -> Callable[[Any], Any]:
    """`cast(x, TYPE)`: x converted as a payload value would be (`'21'` is 21, `'ON'` is
    true), a FLOAT to INT truncated toward zero; null when it does not convert."""
    convert = _CASTS[type_name]

    def cast(value: Any) -> Any:
        if value is None:
            return None
        try:
            return convert(value)
        except (BadValue, ValueError, TypeError, OverflowError):
            return None
    return cast
