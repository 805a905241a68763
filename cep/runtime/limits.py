"""Limits that keep one message from crashing, stalling, blinding or flooding the engine.

Documented for users in docs/language.md (section 11, "Bad input") and docs/cli.md; the
adapters refuse what is outside them as bad messages or bad lines, and the engine refuses
what still reaches it.
"""

from __future__ import annotations

import math
from json.encoder import encode_basestring
from typing import Any

__all__ = [
    "EARLIEST_TS",
    "INT_MAX",
    "INT_MIN",
    "LATEST_TS",
    "MAX_ACTION_PAYLOAD",
    "MAX_AHEAD",
    "MAX_PARTITION_INSTANCES",
    "MAX_TOPIC_BYTES",
    "REPORT_INTERVAL",
    "TIME_RANGE",
    "payload_problem",
    "time_problem",
    "topic_problem",
]

# Event times (Unix seconds) are from 1970-01-01T00:00:00Z up to, not including,
# 2200-01-01T00:00:00Z: a time outside can only be a mistake (a millisecond or microsecond
# number read as seconds, a year 10000), and one would move the clock past every timer.
EARLIEST_TS = 0.0
LATEST_TS = 7_258_118_400.0
TIME_RANGE = "1970-01-01 .. 2200-01-01 UTC"

# Live: an event time (from TIMESTAMP FROM) more than this far after the message's arrival
# is a bad message; the engine's clock would jump ahead and every timer would wait for it.
MAX_AHEAD = 86_400.0

# PUBLISH actions: what MQTT (and the brokers' consumers) can take.
MAX_TOPIC_BYTES = 65_535           # MQTT's limit on a topic name (UTF-8 bytes)
MAX_ACTION_PAYLOAD = 256 * 1024    # bytes of an action's payload (MQTT allows 256 MB)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # integers that 64-bit JSON readers can take

# Live instances of one partition context (an Engine parameter): events of further new
# keys belong to no instance of it (counted and reported).
MAX_PARTITION_INSTANCES = 100_000

# Repeated reports of one kind (a rule failing on every event) at most this often, in
# seconds of event time.
REPORT_INTERVAL = 60.0

_PAYLOAD_DEPTH = 128  # nesting an action's payload may have (JSON encoders stop near 255)


def time_problem(ts: Any) -> str | None:
    """Why `ts` (Unix seconds) cannot be an event time, or None when it can."""
    if type(ts) is float or type(ts) is int:
        if EARLIEST_TS <= ts < LATEST_TS:
            return None
        return f"outside {TIME_RANGE}" if ts == ts else "not a number"
    return "not a number"


def topic_problem(topic: str) -> str | None:
    """Why MQTT or a broker would refuse `topic` as a PUBLISH topic, or None.

    Refused: an empty topic, the wildcards `+` and `#`, control characters (U+0000 to
    U+001F, U+007F), text that is not valid UTF-8 (lone surrogates), more than 65,535 bytes.
    """
    if not topic:
        return "the topic is empty"
    for ch in topic:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            return f"the topic holds the control character U+{code:04X}"
        if ch == "+" or ch == "#":
            return f"the topic holds the wildcard {ch!r}"
        if 0xD800 <= code <= 0xDFFF:
            return "the topic is not valid UTF-8 (a lone surrogate)"
    if len(topic) * 4 > MAX_TOPIC_BYTES:  # else it cannot be too long, whatever its text
        size = len(topic.encode("utf-8"))
        if size > MAX_TOPIC_BYTES:
            return f"the topic is {size:,} bytes long (MQTT allows {MAX_TOPIC_BYTES:,})"
    return None


def payload_problem(value: Any) -> str | None:
    """Why an action's payload (a string, or a JSON value) cannot be sent, or None.

    Refused: a value JSON cannot hold (an object key that is not a string; anything but
    null, booleans, numbers, strings, arrays and objects), an integer outside 64 bits, a
    number that is not finite, text that is not valid UTF-8 (lone surrogates), nesting
    deeper than 128 levels, more than MAX_ACTION_PAYLOAD bytes: the string's UTF-8 bytes,
    or the value's compact JSON text.
    """
    if type(value) is str:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            return "the payload is not valid UTF-8 (a lone surrogate)"
        return _too_large(size)
    return _Sizer().walk(value, 0)


def _too_large(size: int) -> str | None:
    if size > MAX_ACTION_PAYLOAD:
        return f"the payload is {size:,} bytes (at most {MAX_ACTION_PAYLOAD:,} are sent)"
    return None


_OVER = f"the payload is over {MAX_ACTION_PAYLOAD:,} bytes as JSON"


class _Sizer:
    """Walks a JSON value, adding up the bytes of its compact JSON text as it goes."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        self.size = 0

    def text(self, text: str, what: str) -> str | None:
        try:
            self.size += len(encode_basestring(text).encode("utf-8"))
        except UnicodeEncodeError:
            return f"{what} is not valid UTF-8 (a lone surrogate)"
        return None

    def walk(self, value: Any, depth: int) -> str | None:
        kind = type(value)
        if value is None or kind is bool:
            self.size += 5 if value is False else 4
        elif kind is int:
            if not INT_MIN <= value <= INT_MAX:
                return "the payload holds an integer beyond 64 bits"
            self.size += len(str(value))
        elif kind is float:
            if not math.isfinite(value):
                return "the payload holds a number that is not finite"
            self.size += len(repr(value))
        elif kind is str:
            return self.text(value, "a string of the payload")
        elif kind is list or kind is dict:
            if depth >= _PAYLOAD_DEPTH:
                return f"the payload is nested deeper than {_PAYLOAD_DEPTH} levels"
            self.size += 1 + max(1, len(value))  # brackets and commas
            problem: str | None
            if kind is dict:
                for key, item in value.items():
                    if type(key) is not str:
                        return f"the payload has an object key that is not a string ({key!r})"
                    self.size += 1  # the colon
                    problem = self.text(key, "a key of the payload") or \
                        self.walk(item, depth + 1)
                    if problem is not None:
                        return problem
            else:
                for item in value:
                    problem = self.walk(item, depth + 1)
                    if problem is not None:
                        return problem
        else:
            return f"the payload holds a value JSON cannot carry ({kind.__name__})"
        return _OVER if self.size > MAX_ACTION_PAYLOAD else None
