"""What the checks know about a context's instances before anything runs: the event types
a (keyed) event interval reads, the longest an instance can last, and whether instances end
at all.

Recurring occurrences and DURATION instances have a known longest length; the other kinds
(TERMINATED BY alone, EXTEND, sun events, partitions, locations) have none the checks can
be sure of, and are left out of every warning that needs one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.context_info import flatten
from cep.language.timezones import get_zone


def interval_types(spec: ast.EventInterval) -> list[str]:
    """The event types an event interval's initiator and terminator read (a pattern's: the
    type of each of its atoms), each once, in order."""
    from cep.language.walk import event_types

    found: dict[str, None] = {}
    for source in (spec.initiator, spec.terminator):
        if isinstance(source, ast.StreamSource):
            found.setdefault(source.type)
        elif isinstance(source, ast.PatternSource):
            for type_name in event_types(source.pattern):
                found.setdefault(type_name)
    return list(found)


# ------------------------------------------------------------------ how long instances last


@dataclass(frozen=True)
class Longest:
    """The longest an instance of a context can last, and how to say so."""

    seconds: float
    context: str  # the (part of the) context that bounds it
    why: str      # `START 22:00 END 02:00`, `DURATION 1 hour`
    window: tuple[int, int] | None = None  # a recurring part's (START, END) in minutes


def known_seconds(duration: ast.Duration | None) -> float | None:
    """A duration's length, when every unit of it is known (an unknown unit is reported by the
    parser, and the length then says nothing)."""
    from cep.language.transformer import TIME_UNITS

    if duration is None:
        return None
    canonical = {unit for unit, _ in TIME_UNITS.values()}
    if not all(unit in canonical for _, unit in duration.parts):
        return None
    return duration.seconds


def length_words(seconds: float) -> str:
    """`4 hours`, `1 hour`, `90 minutes`, `45 seconds`, `2 days`."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def _minutes(point: ast.ClockTime) -> int:
    return point.hour * 60 + point.minute


@cache
def daylight_saving_shift(zone_name: str) -> float:
    """How many seconds the zone's offset from UTC varies by (0 for UTC and zones without
    daylight saving), sampled on the 15th of each month from 2020 to 2035: on the night the
    clocks go back, an occurrence that holds the repeated hour lasts that much longer. Any
    change of the zone's offset in those years counts, so the bound errs on the long side."""
    zone = get_zone(zone_name)
    if zone is None:
        return 0.0
    offsets = set()
    for year in range(2020, 2036):
        for month in range(1, 13):
            offset = datetime(year, month, 15, 12, tzinfo=UTC).astimezone(zone).utcoffset()
            offsets.add(offset if offset is not None else timedelta(0))
    return (max(offsets) - min(offsets)).total_seconds()


def _part_longest(part: ast.CreateContext, catalog: Catalog) -> Longest | None:
    spec = part.spec
    if isinstance(spec, ast.Recurring):
        start, end = spec.start, spec.end
        if not isinstance(start, ast.ClockTime) or not isinstance(end, ast.ClockTime):
            return None  # sun events move with the seasons
        if not (0 <= start.hour <= 23 and 0 <= end.hour <= 23 and start.minute <= 59
                and end.minute <= 59) or start == end:
            return None  # reported at the context
        minutes = (_minutes(end) - _minutes(start)) % 1440
        why = (f"START {start.hour:02d}:{start.minute:02d} END {end.hour:02d}:"
               f"{end.minute:02d}")
        shift = daylight_saving_shift(catalog.timezone)
        if shift:
            why += f", {length_words(shift)} longer on the night the clocks go back"
        return Longest(minutes * 60 + shift, part.name, why, (_minutes(start), _minutes(end)))
    duration, policy = None, None
    if isinstance(spec, (ast.EventInterval, ast.EventDistance)):
        duration, policy = spec.duration, spec.policy
    seconds = known_seconds(duration)
    if duration is None or seconds is None or seconds <= 0:
        return None
    if policy is not None and policy.name == "EXTEND":
        return None  # each further initiator moves the end
    from cep.language.printer import format_duration

    return Longest(seconds, part.name, f"DURATION {format_duration(duration)}")


def longest_instance(name: str, catalog: Catalog) -> list[Longest]:
    """What bounds how long an instance of `name` lasts: one entry per part of it with a
    known longest length (a composition closes with the first of its parts to close, so
    each bounds it). Empty when nothing does."""
    found: list[Longest] = []
    for part in flatten(name, catalog):
        longest = _part_longest(part, catalog)
        if longest is not None:
            found.append(longest)
    return found


_NEVER_ENDS = {
    ast.Partition: "a partition's instances do not end",
    ast.FixedLocation: "a fixed location's instance lasts the whole run",
    ast.EntityDistance: "an entity distance's instance lasts the whole run",
}


def never_ends(name: str, catalog: Catalog) -> str | None:
    """Why no instance of `name` ever closes (said for ON END), or None when some can: a
    composition closes when one of its parts does, so it never ends only when none of them
    does."""
    parts = flatten(name, catalog)
    if not parts:
        return None
    reasons = [_NEVER_ENDS.get(type(part.spec)) for part in parts]
    if any(reason is None for reason in reasons):
        return None
    if len(parts) == 1:
        return reasons[0]
    return ("none of its parts ends (partitions, fixed locations and entity distances last "
            "the whole run)")
