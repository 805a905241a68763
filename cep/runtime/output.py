"""Output records and their JSON Lines form (see cli.md, "Output lines").

The engine emits plain dicts with `ts` as Unix seconds; `OutputWriter` turns
them into lines with ISO-8601 timestamps in the rules' time zone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone, tzinfo
from math import isfinite, modf
from typing import IO, Any
from zoneinfo import ZoneInfo

from cep.language.catalog import TIMESTAMP, Catalog
from cep.runtime.events import Event
from cep.runtime.limits import EARLIEST_TS, LATEST_TS

Output = dict[str, Any]
Sink = Callable[[Output], None]


def format_ts(ts: float, tz: tzinfo) -> str:
    """ISO-8601 with the zone's offset, to the millisecond.

    Never raises: a time datetime cannot show (beyond the year 9999, not a number) comes
    out as its number, for messages about it.
    """
    try:
        return datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError, OSError, TypeError):
        return f"{ts!r} (Unix seconds, not a representable time)"


def iso_or_none(ts: float, tz: tzinfo) -> str | None:
    """`format_ts` for a time in the range of event times (cep.runtime.limits), else None."""
    if not EARLIEST_TS <= ts < LATEST_TS:
        return None
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


class JsonValues:
    """Engine values → JSON values: events become objects, timestamps ISO strings.

    What JSON cannot carry is written as null and counted in `stats["nulled"]`: a number
    that is not finite (NaN, ±Infinity: JSON has no such numbers) and a TIMESTAMP outside
    the range of event times.
    """

    def __init__(self, catalog: Catalog, tz: tzinfo, stats: dict[str, int] | None = None) -> None:
        self.tz = tz
        self.types = {name: info.attrs for name, info in catalog.events.items()}
        self.stats = stats if stats is not None else {}
        self.stats.setdefault("nulled", 0)

    def attrs(self, values: dict[str, Any], types: dict[str, str] | None) -> dict[str, Any]:
        out = {}
        for name, value in values.items():
            kind = type(value)
            if kind is str or kind is bool or value is None:  # the usual values, as they are
                out[name] = value
            elif kind is float or kind is int:
                if types is not None and types.get(name) == TIMESTAMP:
                    text = iso_or_none(value, self.tz)
                    if text is None:
                        self.stats["nulled"] += 1
                    out[name] = text
                elif kind is int or value - value == 0.0:  # not NaN or an infinity
                    out[name] = value
                else:
                    self.stats["nulled"] += 1
                    out[name] = None
            else:
                out[name] = self.value(value)
        return out

    def value(self, value: Any) -> Any:
        kind = type(value)
        if kind is float:
            if isfinite(value):
                return value
            self.stats["nulled"] += 1
            return None
        if kind is Event:
            return self.attrs(value.attrs, self.types.get(value.type))
        if kind is list:
            return [self.value(v) for v in value]
        if kind is dict:
            return {k: self.value(v) for k, v in value.items()}
        return value


# json.dumps(value, ensure_ascii=False) builds an encoder per call; one is enough. NaN and
# infinities are not JSON: JsonValues has made them null; should one still come (a record
# not built by the engine), the line is written with it as null.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _refuse_object(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _line_encoder() -> Callable[[Any], str]:
    """`_ENCODER.encode`, without the encoder it builds in C for every call: the one C
    encoder that `encode` would build, made once (the same text for the same value).  It
    does not look for circular references (records hold none); where the C encoder is
    missing, `_ENCODER.encode` itself."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    chunks = make(None, _refuse_object, json.encoder.encode_basestring, None, ": ", ", ",
                  False, False, False)
    join = "".join

    def encode(value: Any) -> str:
        return join(chunks(value, 0))

    return encode


_encode_line = _line_encoder()


def _finite(value: Any) -> Any:
    """`value` with every number that is not finite replaced by None."""
    if isinstance(value, float):
        return value if isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class OutputFailed(Exception):
    """Output lines could not be written (a closed pipe, a full disk).

    The fault is where the output goes, not a rule's: the engine lets it through, the run
    stops, and the command says so (quietly for a reader that closed the pipe, `| head`).
    """

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.strerror or str(cause))
        self.closed_pipe = isinstance(cause, BrokenPipeError)


def finish_output(out: IO[str] | None) -> None:
    """Close an output file, or flush standard output, raising OutputFailed when the last
    lines cannot be written (buffered lines meet a full disk only here)."""
    if out is None:
        return
    try:
        if out is sys.stdout:
            out.flush()
        else:
            out.close()
    except OSError as exc:
        raise OutputFailed(exc) from exc


_MILLIS = tuple(f"{n:03d}" for n in range(1000))
_SECONDS = tuple(f"{n:02d}." for n in range(60))


class OutputWriter:
    """Writes output records as JSON Lines (flushing after each, so tails see them live).

    Times are written as `format_ts` writes them, which is most of the cost of writing a
    line; so the text around the milliseconds of the last second written is kept (outputs
    come many to a second when one event completes several matches), and made from the
    text of its minute (outputs come a few seconds apart in most homes).  A minute's text
    is used when its first and last seconds are written with the same offset, a whole
    number of minutes: then every second between is too, since a zone changes its offset
    at most once in a minute (the tz database's changes are days apart at least)."""

    def __init__(self, out: IO[str], tz: tzinfo, flush: bool = True) -> None:
        self.out = out
        self.tz = tz
        self.flush = flush
        # the zones whose offset at an instant is that of its whole second (zoneinfo and
        # fixed offsets); another tzinfo could do otherwise, and gets format_ts every time
        self._by_second = isinstance(tz, ZoneInfo | timezone)
        self._second = -1.0  # the whole second last written (Unix seconds), and its text
        self._before = self._after = ""  # before and after the milliseconds
        self._minute = -1.0  # the minute (Unix seconds) of that second, and its texts:
        self._minute_text = ""  # "YYYY-MM-DDTHH:MM:" ("": not one offset and prefix for
        self._offset_text = ""  # "+HH:MM"            all its seconds: each gets its own)

    def time_text(self, ts: float) -> str:
        """`format_ts(ts, tz)`, from the last second's text when `ts` is in it."""
        if not self._by_second or not EARLIEST_TS <= ts < LATEST_TS:
            return format_ts(ts, self.tz)
        # datetime.fromtimestamp's own rounding, to the microsecond, half to even
        part, second = modf(ts)
        micros = round(part * 1e6)
        if micros >= 1_000_000:
            second += 1.0
            micros -= 1_000_000
        if second != self._second:
            self._new_second(second)
        return self._before + _MILLIS[micros // 1000] + self._after

    def _new_second(self, second: float) -> None:
        """The texts before and after the milliseconds of a whole second (Unix seconds)."""
        minute = second - second % 60.0  # (whole seconds as floats: exact)
        if minute != self._minute:
            self._minute = minute
            first = format_ts(minute, self.tz)  # "YYYY-MM-DDTHH:MM:00.000+HH:MM"
            last = format_ts(minute + 59.0, self.tz)
            same = (len(first) == 29 and first[17:19] == "00" and last[17:19] == "59"
                    and first[:17] == last[:17] and first[23:] == last[23:])
            self._minute_text, self._offset_text = (first[:17], first[23:]) if same else ("", "")
        if self._minute_text:
            self._before = self._minute_text + _SECONDS[int(second - minute)]
            self._after = self._offset_text
        else:
            text = format_ts(second, self.tz)
            self._before, self._after = text[:20], text[23:]
        self._second = second

    def __call__(self, record: Output) -> None:
        line = dict(record)
        line["ts"] = self.time_text(record["ts"])
        try:
            text = _encode_line(line)
        except ValueError:  # a number that is not finite
            text = _ENCODER.encode(_finite(line))
        try:
            self.out.write(text + "\n")
            if self.flush:
                self.out.flush()
        except OSError as exc:
            raise OutputFailed(exc) from exc
