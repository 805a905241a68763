"""Occurrences of a recurring interval `START hh:mm END hh:mm [ON days]` in a time zone.

An occurrence starts on each selected day at the start time (local) and ends at
the end time, the next day when END is not after START.  Daylight saving: a
local time inside a skipped hour happens at the first instant after the gap; a
local time in a repeated hour happens at its first occurrence.  Dates are
walked one by one, so no day is skipped or taken twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from cep.language import ast


def day_set(days: tuple[ast.DayRange, ...]) -> frozenset[int]:
    """Weekday numbers (Monday 0) of a day list; every day when the list is empty."""
    if not days:
        return frozenset(range(7))
    chosen: set[int] = set()
    for day_range in days:
        first = _checked_day(day_range.first)
        last = _checked_day(day_range.last or day_range.first)
        day = first
        while True:  # ranges may wrap: FRI-MON
            chosen.add(day)
            if day == last:
                break
            day = (day + 1) % 7
    return frozenset(chosen)


def _checked_day(name: str) -> int:
    number = ast.day_number(name)
    if number is None:  # the checks refuse unknown day names before anything runs
        raise ValueError(f"unknown day {name!r}")
    return number


def local_instant(day: date, clock: time, zone: tzinfo) -> float:
    """Unix time of a local wall-clock time, with the contract's DST rules."""
    naive = datetime.combine(day, clock)
    first = naive.replace(tzinfo=zone, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == naive:
        return utc.timestamp()  # exists (fold=0 is the first of a repeated hour)
    # In a gap: the first instant after it is the transition, between the two readings.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp()
    high = utc.timestamp()
    low, high = min(low, high), max(low, high)
    offset_low = _offset(low, zone)
    while high - low > 1e-3:
        middle = (low + high) / 2
        if _offset(middle, zone) == offset_low:
            low = middle
        else:
            high = middle
    return round(high)


def _offset(ts: float, zone: tzinfo) -> timedelta | None:
    return datetime.fromtimestamp(ts, zone).utcoffset()


class Recurrence:
    """The occurrences of one recurring interval."""

    def __init__(self, spec: ast.Recurring, zone: tzinfo,
                 location: tuple[float, float] | None = None) -> None:
        self.start = time(spec.start.hour, spec.start.minute)
        self.end = time(spec.end.hour, spec.end.minute)
        self.crosses_midnight = (spec.end.hour, spec.end.minute) <= \
            (spec.start.hour, spec.start.minute)
        self.days = day_set(spec.days)
        self.zone = zone

    def occurrence(self, day: date) -> tuple[float, float] | None:
        """(start, end) of the occurrence starting on local `day`, if that day is selected."""
        if day.weekday() not in self.days:
            return None
        start = local_instant(day, self.start, self.zone)
        end_day = day + timedelta(days=1) if self.crosses_midnight else day
        end = local_instant(end_day, self.end, self.zone)
        return (start, end) if end > start else None

    def occurrences_from(self, ts: float) -> Iterator[tuple[float, float]]:
        """Occurrences in start order that have not ended at `ts` (the one open at `ts` first)."""
        day = datetime.fromtimestamp(ts, self.zone).date() - timedelta(days=1)
        while True:
            found = self.occurrence(day)
            if found is not None and found[1] > ts:
                yield found
            day += timedelta(days=1)
