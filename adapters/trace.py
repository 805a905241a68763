"""Trace files (JSON Lines): reading them lazily for replay, writing them for `cep record`.

A line is a bus message `{"ts", "topic", "payload"}`, an engine event
`{"ts", "event": "Type", ...attributes}` or a clock mark `{"ts", "clock": "start"}` /
`{"ts", "clock": "stop"}`.  A start mark is good only as the first good line (it starts
the replay's clock there); a stop mark ends the trace: the lines after it are counted
in `after_stop`, reported once, and not read.  `ts` is ISO-8601 (read in the given
zone when it has no offset) or Unix seconds (milliseconds when the number is above
MILLIS_ABOVE, as for TIMESTAMP values), from 1970-01-01 up to 2200-01-01 UTC.  A
string payload is the raw payload text; any other JSON value stands for its compact
JSON text.

A bad line is reported as `FILE:LINE: reason`, counted in `skipped`, and left
out; reading goes on.  A line longer than MAX_LINE is bad without being parsed.  A
message whose payload is over MAX_PAYLOAD (measured only on lines longer than that)
is given with its payload bytes, unparsed, so that the bus mapping refuses it as it
refuses such a payload live.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import IO, Any

from cep.runtime.convert import MILLIS_ABOVE, epoch_to_unix, iso_to_unix, show
from cep.runtime.limits import EARLIEST_TS, LATEST_TS, time_problem
from cep.runtime.output import format_ts

from .jsonlib import dumps_compact, loads
from .payload import MAX_PAYLOAD, UNPARSED

NOT_PARSED: Any = object()  # (a line handed back by the fused reading without its value)


class ReadState:
    """How far reading a trace has come, shared by `TraceReader.read_lines` and the fused
    reading: the last good line (its time, number and "ts" as written), the first good
    line, the number of the last line read, and the lines the fused reading took."""

    __slots__ = ("first_line", "last_line", "last_raw", "last_ts", "lines", "taken")

    def __init__(self) -> None:
        self.last_ts = -math.inf
        self.last_line = 0
        self.last_raw: Any = None
        self.first_line = 0
        self.lines = 0
        self.taken = 0


# The fused reading (cep.adapters.fused): take(numbered lines, state) reads on through
# the (number, line) pairs, processing the lines it takes itself and keeping `state` up to
# date, and returns the first line it does not take as (number, line, its JSON value or
# NOT_PARSED) for the general way; None at the end.
Take = Callable[[Iterator[tuple[int, bytes]], ReadState], "tuple[int, bytes, Any] | None"]


def _untaken(numbered: Iterator[tuple[int, bytes]], state: ReadState
             ) -> tuple[int, bytes, Any] | None:
    """The reading without a fused one: every line goes the general way."""
    for number, raw in numbered:
        return number, raw, NOT_PARSED
    return None


__all__ = [
    "CLOCK_MARKS",
    "MAX_LINE",
    "TraceClock",
    "TraceEvent",
    "TraceMessage",
    "TraceReader",
    "TraceRecord",
    "TraceWriter",
    "format_ts",
    "parse_trace_ts",
    "read_trace",
]


class TraceMessage:
    """A bus message from line `line`: it goes through the bus mapping like a live one.

    `payload` is the body as bytes.  When the line gave the payload as a JSON value
    (not a string), `value` keeps that value, parsed with the line, so the bus
    mapping does not parse it a second time; the bytes are then only made when
    something asks for them (a `PAYLOAD AS` attribute, an error message).  Else
    `value` is `UNPARSED`.
    """

    __slots__ = ("_payload", "line", "topic", "ts", "value")

    def __init__(self, line: int, ts: float, topic: str, payload: bytes | None,
                 value: Any = UNPARSED) -> None:
        if payload is None and value is UNPARSED:
            raise ValueError("a TraceMessage needs its payload bytes or its JSON value")
        self.line = line
        self.ts = ts
        self.topic = topic
        self._payload = payload
        self.value = value

    @property
    def payload(self) -> bytes:
        if self._payload is None:
            self._payload = dumps_compact(self.value)
        return self._payload

    def __eq__(self, other: object) -> bool:
        if type(other) is not TraceMessage:
            return NotImplemented
        return (self.line, self.ts, self.topic, self.payload) == \
            (other.line, other.ts, other.topic, other.payload)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"TraceMessage(line={self.line!r}, ts={self.ts!r}, topic={self.topic!r}, "
                f"payload={self.payload!r})")


@dataclass(slots=True)
class TraceEvent:
    """An engine event given directly on line `line` (attributes not yet converted)."""

    line: int
    ts: float
    type: str
    attrs: dict[str, Any]


@dataclass(slots=True)
class TraceClock:
    """A clock mark on line `line`: `mark` is "start" (the run started at `ts`; only ever
    the first good line) or "stop" (the run stopped at `ts`; the trace ends here)."""

    line: int
    ts: float
    mark: str


CLOCK_MARKS = ("start", "stop")

TraceRecord = TraceMessage | TraceEvent | TraceClock

_BOM = b"\xef\xbb\xbf"
_MISSING: Any = object()

# A line longer than this is a bad line, refused before it is parsed (a payload given as
# a JSON string may be escaped to several times its size, hence the room).
MAX_LINE = 8 * MAX_PAYLOAD


class BadLine(ValueError):
    """Why a trace line is skipped."""


def parse_trace_ts(value: Any, tz: tzinfo) -> float:
    """A trace `ts` as Unix seconds: ISO-8601 text (offset-less read in `tz`) or a number
    (of milliseconds above MILLIS_ABOVE), within the range of event times.

    Raises BadLine.
    """
    kind = type(value)
    seconds: float | str | None = None
    if kind is str:
        try:
            seconds = iso_to_unix(value, tz)
        except (ValueError, OverflowError, OSError):
            pass
        else:
            problem = time_problem(seconds)
            if problem is not None:
                seconds = problem
    elif kind is int or (kind is float and math.isfinite(value)):
        seconds = epoch_to_unix(value)
    if type(seconds) is float:
        return seconds
    if seconds is None:
        raise BadLine(f'bad "ts" {show(value)}: expected ISO-8601 time or Unix seconds')
    raise BadLine(f'bad "ts" {show(value)}: a time {seconds}')


def _common_message(number: int, data: Any) -> TraceMessage | None:
    """The usual line, a bus message whose `ts` is ISO text with an offset or Unix
    seconds, as a record; None for anything else (then `_record` reads the line, and
    says what is wrong).

    The same result as `_record` for the lines it takes, with fewer steps: every line
    of a trace passes here.
    """
    if type(data) is not dict or "event" in data or "payload" not in data or "clock" in data:
        return None
    raw_ts: Any = data.get("ts")  # a JSON value: its type is tested below
    topic = data.get("topic")
    if type(topic) is not str or not topic or "+" in topic or "#" in topic:
        return None
    kind = type(raw_ts)
    if kind is str:
        try:
            moment = datetime.fromisoformat(raw_ts)
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        ts = moment.timestamp()
        if not EARLIEST_TS <= ts < LATEST_TS:  # `_record` says what is wrong
            return None
    elif kind is float or kind is int:
        try:
            ts = float(raw_ts)
        except OverflowError:  # an integer beyond floats: `_record` says so
            return None
        if not EARLIEST_TS <= ts < LATEST_TS:  # also NaN
            if not ts > MILLIS_ABOVE or not EARLIEST_TS <= ts / 1000.0 < LATEST_TS:
                return None
            ts /= 1000.0  # milliseconds
    else:
        return None
    payload = data["payload"]
    if type(payload) is str:
        return TraceMessage(number, ts, topic, payload.encode("utf-8"))
    return TraceMessage(number, ts, topic, None, payload)


def _record(number: int, data: Any, tz: tzinfo) -> TraceRecord:
    """One parsed line as a record (`data` is the line's JSON value; it is reused)."""
    if type(data) is not dict:
        raise BadLine("not a JSON object")
    raw_ts = data.pop("ts", _MISSING)
    if raw_ts is _MISSING:
        raise BadLine('missing "ts"')
    ts = parse_trace_ts(raw_ts, tz)
    if "event" in data:
        type_name = data.pop("event")
        if type(type_name) is not str or not type_name:
            raise BadLine(f'"event" must name an event type, not {show(type_name)}')
        return TraceEvent(number, ts, type_name, data)
    if "clock" in data:
        mark = data.pop("clock")
        if type(mark) is not str or mark not in CLOCK_MARKS:
            raise BadLine(f'"clock" must be "start" or "stop", not {show(mark)}')
        if data:
            raise BadLine(f'a clock mark holds only "ts" and "clock", not '
                          f'{show(next(iter(data)))}')
        return TraceClock(number, ts, mark)
    topic = data.get("topic")
    if topic is None or "payload" not in data:
        if topic is None and "payload" not in data:
            raise BadLine('needs "topic" and "payload" (a bus message) or "event"')
        raise BadLine('missing "topic"' if topic is None else 'missing "payload"')
    if type(topic) is not str or not topic or "+" in topic or "#" in topic:
        raise BadLine(f'"topic" must be a topic name without wildcards, not {show(topic)}')
    payload = data["payload"]
    if type(payload) is str:
        return TraceMessage(number, ts, topic, payload.encode("utf-8"))
    return TraceMessage(number, ts, topic, None, payload)


class TraceReader:
    """Iterate a trace file's good lines as records, streaming; bad lines go to `report`.

    `name` is what `FILE` reads in reports (default: the path as given).  After
    iterating, `skipped` counts the bad lines, `records` the good ones and `after_stop`
    the lines after a stop mark (not read; reported once, with how many).  A stop mark is
    the last record given: `stopped` is its line.
    """

    def __init__(self, path: str | os.PathLike[str], tz: tzinfo = UTC,
                 report: Callable[[str], None] | None = None,
                 name: str | None = None) -> None:
        self.path = path
        self.tz = tz
        self.name = name if name is not None else os.fspath(path)
        self._report = report
        self.skipped = 0
        self.records = 0
        self.taken = 0  # of the records, lines the fused reading took (`read_lines`)
        self.after_stop = 0
        self.lines_read = 0  # every line of the file read, blank ones included
        self.blank = 0       # blank lines (skipped without a word)
        self.stopped: int | None = None
        self._handle: IO[bytes] | None = None
        self._read_to: int | None = None  # where reading ended, once it has

    @property
    def position(self) -> int | None:
        """Bytes of the file read so far (None before reading, or for a pipe); once read
        to the end, where it ended (while replay runs on to `--until`)."""
        handle = self._handle
        if handle is None:
            return self._read_to
        try:
            return handle.tell()
        except (OSError, ValueError):
            return None

    def _skip(self, number: int, reason: str) -> None:
        self.skipped += 1
        if self._report is not None:
            self._report(f"{self.name}:{number}: {reason}")

    def __iter__(self) -> Iterator[TraceRecord]:
        return self.records_of(None)

    def records_of(self, take: Take | None) -> Iterator[TraceRecord]:
        """The file's records; with `take`, the lines it takes are processed by it and
        not given (see `read_lines`)."""
        self.skipped = self.records = self.after_stop = self.lines_read = self.blank = 0
        self.taken = 0
        self.stopped = None
        with open(self.path, "rb") as handle:
            self._handle = handle
            self._read_to = None
            try:
                yield from self.read_lines(handle, take)
                self._read_to = self.position
            finally:
                self._handle = None

    def read_lines(self, lines: IO[bytes], take: Take | None = None
                   ) -> Iterator[TraceRecord]:
        """The records of an already open binary stream (for stdin or tests).

        With `take` (cep.adapters.fused), the lines are read by it: a line it takes is
        processed by it, counted in `records` like a record and in `taken`, and not
        given; the others it hands back, and they go the general way here.  Lines longer
        than MAX_PAYLOAD always go the general way."""
        tz = self.tz
        state = ReadState()
        read = take if take is not None else _untaken
        numbered = enumerate(lines, 1)
        large = MAX_PAYLOAD  # a line longer than this may hold a payload too large
        try:
            while True:
                handed = read(numbered, state)
                if handed is None:
                    break
                number, raw, data = handed
                self.lines_read = state.lines = number
                size = len(raw)
                if size > large and size > MAX_LINE:
                    self._skip(number, f"the line is {size:,} bytes long (at most "
                                       f"{MAX_LINE:,} are read)")
                    continue
                if data is NOT_PARSED:
                    try:
                        data = loads(raw)
                    except ValueError:  # a blank line, a byte order mark, or bad JSON: rare
                        if number == 1 and raw.startswith(_BOM):
                            raw = raw[len(_BOM):]
                        if not raw or raw.isspace():
                            self.blank += 1
                            continue
                        try:
                            data = loads(raw)
                        except ValueError:
                            self._skip(number, _json_problem(raw))
                            continue
                raw_ts = data.get("ts") if type(data) is dict else None
                record: TraceRecord | None = _common_message(number, data)
                if record is None:
                    try:
                        record = _record(number, data, tz)
                    except BadLine as exc:
                        self._skip(number, str(exc))
                        continue
                if type(record) is TraceClock and record.mark == "start" and \
                        state.first_line:
                    self._skip(number, f'a start mark is good only as the first line of a '
                                       f'trace; the clock started at line {state.first_line}')
                    continue
                if record.ts < state.last_ts:
                    self._skip(number, f'time goes back: "ts" {show(raw_ts)} is earlier than '
                                       f'line {state.last_line} ({show(state.last_raw)})')
                    continue
                if size > large:
                    _measure(record)
                state.last_ts, state.last_line, state.last_raw = record.ts, number, raw_ts
                if not state.first_line:
                    state.first_line = number
                self.records += 1
                yield record
                if type(record) is TraceClock and record.mark == "stop":
                    self.stopped = number
                    self._after_stop(number, lines)
                    return
        finally:
            self.records += state.taken
            self.taken += state.taken
            if state.lines > self.lines_read:
                self.lines_read = state.lines

    def _after_stop(self, stop_line: int, lines: IO[bytes]) -> None:
        """The lines after a stop mark on `stop_line`: counted (blank ones aside), not
        read, and reported once."""
        first = count = 0
        for number, raw in enumerate(lines, stop_line + 1):
            self.lines_read = number
            if raw.isspace() or not raw:
                self.blank += 1
                continue
            count += 1
            if not first:
                first = number
        self.after_stop = count
        if count and self._report is not None:
            self._report(f"{self.name}:{first}: {count} line{'s' if count != 1 else ''} "
                         f"after the stop mark on line {stop_line} skipped: a trace ends "
                         f"at its stop mark")


def _measure(record: TraceRecord) -> None:
    """A message on a long line whose payload, as bytes, is over MAX_PAYLOAD is given by
    those bytes (unparsed), so that the bus mapping refuses it as it would live."""
    if type(record) is TraceMessage and record.value is not UNPARSED and \
            len(record.payload) > MAX_PAYLOAD:
        record.value = UNPARSED


def _json_problem(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    return "not valid JSON"


def read_trace(path: str | os.PathLike[str], tz: tzinfo = UTC,
               report: Callable[[str], None] | None = None) -> TraceReader:
    """A TraceReader (iterate it; read `skipped` afterwards)."""
    return TraceReader(path, tz, report)


# ------------------------------------------------------------------ writing


def _payload_value(payload: bytes) -> Any:
    """A JSON object/array payload as that value; anything else as its text."""
    head = bytes(payload[:64]).lstrip()[:1]
    if head == b"{" or head == b"[":
        try:
            return loads(payload)
        except ValueError:
            pass
    return bytes(payload).decode("utf-8", errors="replace")


class TraceWriter:
    """Writes trace lines in the reader's format, flushing after each line.

    A payload that is not UTF-8 is written with U+FFFD replacing the bad bytes.
    """

    def __init__(self, out: IO[str], tz: tzinfo = UTC) -> None:
        self._out = out
        self._tz = tz
        self._owned = False

    @classmethod
    def open(cls, path: str | os.PathLike[str], tz: tzinfo = UTC,
             append: bool = False) -> TraceWriter:
        """Write `path` (emptied first, unless `append`)."""
        writer = cls(open(path, "a" if append else "w", encoding="utf-8", newline="\n"), tz)
        writer._owned = True
        return writer

    def size(self) -> int:
        """Bytes written so far (the file's size): where `cut` can come back to."""
        self._out.flush()
        return os.fstat(self._out.fileno()).st_size

    def cut(self, size: int) -> None:
        """Forget what was written after `size` bytes (a live run's recording, taken back
        to its last checkpoint: the journal writes the rest again)."""
        self._out.flush()
        self._out.truncate(size)
        self._out.seek(size)

    def _write(self, line: dict[str, Any]) -> None:
        self._out.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._out.flush()

    def message(self, ts: float, topic: str, payload: bytes) -> None:
        """One bus message."""
        self._write({"ts": format_ts(ts, self._tz), "topic": topic,
                     "payload": _payload_value(payload)})

    def start(self, ts: float) -> None:
        """The start mark: the run started at `ts` (before any other line)."""
        self._write({"ts": format_ts(ts, self._tz), "clock": "start"})

    def stop(self, ts: float) -> None:
        """The stop mark: the run stopped at `ts` (the last line)."""
        self._write({"ts": format_ts(ts, self._tz), "clock": "stop"})

    def event(self, ts: float, type_name: str, attrs: Mapping[str, Any]) -> None:
        """One engine event (attributes may not be named `ts` or `event`)."""
        if "ts" in attrs or "event" in attrs:
            raise ValueError("an event written to a trace cannot have an attribute "
                             "named 'ts' or 'event'")
        self._write({"ts": format_ts(ts, self._tz), "event": type_name, **attrs})

    def close(self) -> None:
        if self._owned:
            self._out.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
