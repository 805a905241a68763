"""What importers share: the message they produce, counting, time parsing, writing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import IO

from cep.adapters.trace import TraceWriter
from cep.language.diagnostics import plural

Report = Callable[[str], None]


@dataclass(frozen=True)
class Message:
    """One bus message of the trace: when, where, what (the raw payload text)."""

    ts: float
    topic: str
    payload: str
    order: tuple[int, ...] = ()   # ties at one instant are written in this order


@dataclass
class ImportStats:
    lines: int = 0       # non-blank input lines read (headers included)
    messages: int = 0    # messages written
    bad_lines: int = 0
    reordered: int = 0   # lines (rows) earlier in time than a line before them

    def summary(self, name: str) -> str:
        text = (f"{name}: {plural(self.lines, 'line')}, {plural(self.messages, 'message')}, "
                f"{plural(self.bad_lines, 'bad line')}")
        if self.reordered:
            text += f", {plural(self.reordered, 'line')} out of time order (sorted)"
        return text


class ImportRefused(Exception):
    """The file is not in the format asked for (a whole-file problem, exit status 2)."""


class OrderWatch:
    """Counts times that go back (the lines are sorted anyway)."""

    def __init__(self, stats: ImportStats) -> None:
        self.stats = stats
        self.last = float("-inf")

    def see(self, ts: float) -> None:
        if ts < self.last:
            self.stats.reordered += 1
        else:
            self.last = ts


class LineReporter:
    """Reports a bad line as `FILE:LINE: reason` and counts it."""

    def __init__(self, name: str, stats: ImportStats, report: Report) -> None:
        self.name = name
        self.stats = stats
        self.report = report

    def bad(self, number: int, reason: str) -> None:
        self.stats.bad_lines += 1
        self.report(f"{self.name}:{number}: {reason}")


def numbered_lines(path: str, reporter: LineReporter) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line; lines that are not UTF-8 are reported and skipped.

    Raises OSError when the file cannot be read.
    """
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                reporter.stats.lines += 1
                reporter.bad(number, "not UTF-8 text")
                continue
            text = text.rstrip("\r\n")
            if text.strip():
                reporter.stats.lines += 1
                yield number, text


_DATE_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$")


def parse_local_time(text: str, tz: tzinfo) -> float | None:
    """`2016-07-12 00:00:30.600670` (or with a T) read in `tz`; None if it is not one.

    A time in a skipped hour (spring forward) or a repeated one (fall back) is read with
    the offset before the change, as the first occurrence.
    """
    match = _DATE_TIME.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    micro = int((fraction or "0").ljust(6, "0"))
    try:
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                         micro, tzinfo=tz)
    except ValueError:
        return None
    return local.timestamp()


def is_topic_level(name: str) -> bool:
    """A name usable as one MQTT topic level of a trace (no wildcards, no `/`)."""
    return bool(name) and not any(c in name for c in "+#/\x00")


def write_trace(messages: Iterable[Message], out: IO[str], tz: tzinfo,
                stats: ImportStats) -> None:
    """Messages in time order (stable: ties keep their `order`), as trace lines."""
    collected = list(messages)
    collected.sort(key=lambda m: (m.ts, m.order))
    writer = TraceWriter(out, tz)
    for message in collected:
        writer.message(message.ts, message.topic, message.payload.encode("utf-8"))
        stats.messages += 1
