"""Occurrences of a recurring interval `START p END q [ON days]` in a time zone, and the
instants of a `timer:at(p [ON days])`; p and q are clock times (`22:00`) or sun events
with an optional offset (`SUNSET - 15 min`, see cep.runtime.sun).

The instant of a time point on a local day: a clock time by the DST rules of section 9.2
of docs/language.md (a local time inside a skipped hour happens at the first instant after
the gap, one in a repeated hour at its first occurrence); a sun event at that day's local
sun time, plus its offset (so `ON` names the day of the sun event, and the offset may carry
the instant to another date; a day's sun event is that of its solar day, see
cep.runtime.sun). A day on which a sun event does not happen (polar day or night) has no
instant.

An occurrence starts on each selected day at START. Its END: with two clock times, that
day's END, or the next day's when END is not after START on the clock (`START 22:00 END
07:00`); with a sun event at either end, that day's END if it is after the START, else
the next day's (`START SUNSET END SUNRISE`: the next morning's), else the day after that
(a START offset of many hours). A day whose START or END does not happen has no
occurrence (a missing END counts where the sun came closest to its elevation, so the
missing sunrise of the morning before a sunset START is not the END: the next one is).
An occurrence may last zero seconds: `START 02:30 END 02:31`, on the day the clock skips
02:00 to 03:00, opens and closes at 03:00 (it is not skipped). Dates are walked one by
one, so no day is skipped or taken twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from cep.language import ast
from cep.runtime.sun import Location, sun_event_or_closest

_DAY = timedelta(days=1)

# How far `next_instant` and `occurrences_from` look for a day with an instant before
# they say "never" (a polar night is some weeks; every sun event happens in a year).
HORIZON_DAYS = 3 * 366


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
    """Unix time of a local wall-clock time (DST: docs/language.md, section 9.2)."""
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
    return float(round(high))  # (a float, as every instant: snapshots keep the type)


def _offset(ts: float, zone: tzinfo) -> timedelta | None:
    return datetime.fromtimestamp(ts, zone).utcoffset()


def check_point(point: ast.TimePoint, location: Location | None) -> None:
    """Refuse what cannot be computed: a sun event without a location (the checks refuse
    both before anything runs)."""
    if isinstance(point, ast.SunTime) and location is None:
        raise ValueError(f"{point.event} needs the home's location (SET LOCATION GEO)")


def point_instant(point: ast.TimePoint, day: date, zone: tzinfo,
                  location: Location | None) -> float | None:
    """Unix time of a time point on local `day`: a clock time (DST rules above) or a sun
    event of that day plus its offset; None when the sun event does not happen that day."""
    ts, happens = point_instant_or_closest(point, day, zone, location)
    return ts if happens else None


def point_instant_or_closest(point: ast.TimePoint, day: date, zone: tzinfo,
                             location: Location | None) -> tuple[float, bool]:
    """(`point_instant`, True), or for a sun event that does not happen that day (where it
    would come among the day's instants, False): see `sun.sun_event_or_closest`."""
    if isinstance(point, ast.ClockTime):
        return local_instant(day, time(point.hour, point.minute), zone), True
    if location is None:
        raise ValueError(f"{point.event} needs the home's location (SET LOCATION GEO)")
    ts, happens = sun_event_or_closest(point.event, day, location, zone)
    return ts + point.offset_seconds, happens


def _first_day(point: ast.TimePoint, after: float, zone: tzinfo) -> date:
    """A local date before which no day's instant of `point` can be after `after`."""
    # (a day's sun event may fall on the next date, just past midnight)
    shift = point.offset_seconds if isinstance(point, ast.SunTime) else 0.0
    return datetime.fromtimestamp(after - shift, zone).date() - 2 * _DAY


def next_instant(point: ast.TimePoint, days: tuple[ast.DayRange, ...] | frozenset[int],
                 after: float, zone: tzinfo, location: Location | None) -> float | None:
    """The first instant of `point` on a selected day that is strictly after `after`
    (`timer:at`); None when there is none (a sun event that stops happening).

    `days` is a day list or its `day_set`. The instants of successive days increase, so
    the first day found gives the earliest instant."""
    check_point(point, location)
    chosen = days if isinstance(days, frozenset) else day_set(days)
    day = _first_day(point, after, zone)
    for _ in range(HORIZON_DAYS):
        if day.weekday() in chosen:
            ts = point_instant(point, day, zone, location)
            if ts is not None and ts > after:
                return ts
        day += _DAY
    return None


class Recurrence:
    """The occurrences of one recurring interval."""

    def __init__(self, spec: ast.Recurring, zone: tzinfo,
                 location: Location | None = None) -> None:
        check_point(spec.start, location)
        check_point(spec.end, location)
        start, end = spec.start, spec.end
        self.start: ast.TimePoint = start
        self.end: ast.TimePoint = end
        self.clock_only = isinstance(start, ast.ClockTime) and isinstance(end, ast.ClockTime)
        self.crosses_midnight = isinstance(start, ast.ClockTime) and \
            isinstance(end, ast.ClockTime) and \
            (end.hour, end.minute) <= (start.hour, start.minute)
        self.days = day_set(spec.days)
        self.zone = zone
        self.location = location

    def occurrence(self, day: date) -> tuple[float, float] | None:
        """(start, end) of the occurrence starting on local `day` (the day of its START's
        sun event), if that day is selected and its START and END happen; end == start
        when both fall in one skipped hour."""
        if day.weekday() not in self.days:
            return None
        zone, location = self.zone, self.location
        start = point_instant(self.start, day, zone, location)
        if start is None:
            return None
        if self.clock_only:
            end_day = day + _DAY if self.crosses_midnight else day
            end = point_instant(self.end, end_day, zone, location)
            # (a clock time always has an instant, and the later of two never comes first)
            return (start, end) if end is not None and end >= start else None
        # That day's END, else the next day's (an END before its START on the day is the
        # next day's); when both come before the START (offsets that push it past them),
        # that day has no occurrence. An END that does not happen counts where it would
        # have come (sun.py).
        for end_day in (day, day + _DAY):
            end, happens = point_instant_or_closest(self.end, end_day, zone, location)
            if end > start:
                return (start, end) if happens else None
        return None

    def occurrences_from(self, ts: float) -> Occurrences:
        """Occurrences in start order that have not ended at `ts` (the one open at `ts`
        first; one of zero length at `ts` counts as open). Ends after `HORIZON_DAYS` days
        in a row without one (none happens: polar sun events)."""
        # An occurrence lasts less than two days; its START may be an offset away from its
        # sun event's date.
        shift = abs(self.start.offset_seconds) if isinstance(self.start, ast.SunTime) else 0.0
        day = datetime.fromtimestamp(ts - shift, self.zone).date() - 3 * _DAY
        return Occurrences(self, ts, day)


class Occurrences(Iterator[tuple[float, float]]):
    """`Recurrence.occurrences_from(ts)`: an iterator whose place is plain data (`ts`, the
    next `day` to look at, the `last_end` of the occurrence given last), so a snapshot can
    save it and `Occurrences(recurrence, ts, day, last_end)` go on from there."""

    def __init__(self, recurrence: Recurrence, ts: float, day: date,
                 last_end: float = -math.inf) -> None:
        self.recurrence = recurrence
        self.ts = ts
        self.day = day
        self.last_end = last_end
        self.done = False  # HORIZON_DAYS days in a row without one: it never gives another

    def __next__(self) -> tuple[float, float]:
        if self.done:
            raise StopIteration
        ts = self.ts
        empty = 0
        while empty < HORIZON_DAYS:
            found = self.recurrence.occurrence(self.day)
            self.day += _DAY
            if found is not None and found[0] < self.last_end:
                found = None  # one instance at a time: it would start while one is open
            if found is not None and (found[1] > ts or found[0] == ts):
                self.last_end = found[1]
                return found
            empty += 1
        self.done = True
        raise StopIteration
