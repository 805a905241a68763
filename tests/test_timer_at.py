"""`timer:at(...)`: the instants (`next_instant`) and the pattern node (`AtNode`), run on
a small engine of their own (a clock and the timer queue), as the checks and the pattern
compiler of the second edition are being written. Times are local, with the UTC offset.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cep.language import ast
from cep.runtime import recurrence
from cep.runtime.clock import Timer, TimerQueue
from cep.runtime.events import Event
from cep.runtime.matcher import AtomNode, EveryNode, FollowedByNode, Node, PatternRun
from cep.runtime.recurrence import next_instant
from cep.runtime.timer_at import AtNode

BERLIN_ZONE = ZoneInfo("Europe/Berlin")
NEW_YORK_ZONE = ZoneInfo("America/New_York")
OSLO_ZONE = ZoneInfo("Europe/Oslo")
BERLIN = (52.52, 13.405)
TROMSO = (69.6492, 18.9553)


def at(text: str, zone: ZoneInfo) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def show(ts: float | None, zone: ZoneInfo) -> str | None:
    return None if ts is None else f"{datetime.fromtimestamp(ts, zone):%a %m-%d %H:%M:%S%z}"


def clock(hour: int, minute: int) -> ast.ClockTime:
    return ast.ClockTime(hour, minute)


def sun(event: str, minutes: float = 0.0) -> ast.SunTime:
    if not minutes:
        return ast.SunTime(event, None, None)
    offset = ast.Duration(((abs(minutes), "min"),), abs(minutes) * 60)
    return ast.SunTime(event, "-" if minutes < 0 else "+", offset)


def days(*names: str) -> tuple[ast.DayRange, ...]:
    ranges = []
    for name in names:
        first, _, last = name.partition("-")
        ranges.append(ast.DayRange(first, last or None))
    return tuple(ranges)


# ---------------------------------------------------------------- next_instant

NEXT = [
    # point, days, after (local), zone, location, expected
    (clock(7, 30), days("MON-FRI"), "2026-06-19T08:00", BERLIN_ZONE, None,
     "Mon 06-22 07:30:00+0200"),                           # Friday after 07:30: Monday
    (clock(7, 30), days("MON-FRI"), "2026-06-22T07:30", BERLIN_ZONE, None,
     "Tue 06-23 07:30:00+0200"),                           # strictly after: not that instant
    (clock(7, 30), days("MON-FRI"), "2026-06-22T07:29:59", BERLIN_ZONE, None,
     "Mon 06-22 07:30:00+0200"),
    (clock(7, 30), (), "2026-06-20T12:00", BERLIN_ZONE, None,
     "Sun 06-21 07:30:00+0200"),                           # no ON: every day
    (clock(22, 0), days("FRI-MON"), "2026-06-16T12:00", BERLIN_ZONE, None,
     "Fri 06-19 22:00:00+0200"),                           # a wrapping range
    # daylight saving: in the gap, the first instant after it; in a repeated hour, the first
    (clock(2, 30), (), "2026-03-28T12:00", BERLIN_ZONE, None, "Sun 03-29 03:00:00+0200"),
    (clock(2, 30), (), "2026-03-29T03:00", BERLIN_ZONE, None, "Mon 03-30 02:30:00+0200"),
    (clock(2, 30), (), "2026-10-24T12:00", BERLIN_ZONE, None, "Sun 10-25 02:30:00+0200"),
    (clock(2, 30), (), "2026-10-25T02:30", BERLIN_ZONE, None, "Mon 10-26 02:30:00+0100"),
    (clock(1, 30), (), "2026-10-31T12:00", NEW_YORK_ZONE, None, "Sun 11-01 01:30:00-0400"),
    (clock(2, 15), (), "2026-03-07T12:00", NEW_YORK_ZONE, None, "Sun 03-08 03:00:00-0400"),
    # sun events: ON names the day of the sun event, before the offset
    (sun("SUNSET", -15), days("SAT", "SUN"), "2026-06-19T12:00", BERLIN_ZONE, BERLIN,
     "Sat 06-20 21:18:04+0200"),
    (sun("SUNSET", +300), days("FRI"), "2026-06-15T12:00", BERLIN_ZONE, BERLIN,
     "Sat 06-20 02:32:48+0200"),                           # Friday's sunset + 5 hours
    (sun("SUNRISE"), (), "2026-03-28T12:00", BERLIN_ZONE, BERLIN,
     "Sun 03-29 06:48:02+0200"),
    # polar: the next sunrise after the polar night, the next sunset after the midnight sun
    (sun("SUNRISE"), (), "2026-12-01T00:00", OSLO_ZONE, TROMSO, "Fri 01-15 11:34:54+0100"),
    (sun("SUNSET"), (), "2026-06-01T00:00", OSLO_ZONE, TROMSO, "Mon 07-27 00:13:21+0200"),
    # 17 May's sunset is after midnight, on the 18th
    (sun("SUNSET"), days("SUN"), "2026-05-17T12:00", OSLO_ZONE, TROMSO,
     "Mon 05-18 00:29:02+0200"),
]


@pytest.mark.parametrize("point,day_list,after,zone,location,expected", NEXT)
def test_next_instant(point, day_list, after, zone, location, expected):
    assert show(next_instant(point, day_list, at(after, zone), zone, location), zone) == expected


def test_next_instant_none_when_it_never_comes(monkeypatch):
    # Every sun event happens some day in a year; with a horizon shorter than the polar
    # night, the next sunrise is "never".
    monkeypatch.setattr(recurrence, "HORIZON_DAYS", 30)
    after = at("2026-12-01T00:00", OSLO_ZONE)
    assert next_instant(sun("SUNRISE"), (), after, OSLO_ZONE, TROMSO) is None


def test_a_sun_event_needs_a_location():
    with pytest.raises(ValueError, match="SUNSET needs the home's location"):
        AtNode(sun("SUNSET"), (), BERLIN_ZONE, None)
    with pytest.raises(ValueError, match="DAWN needs the home's location"):
        next_instant(sun("DAWN"), (), 0.0, BERLIN_ZONE, None)


# ---------------------------------------------------------------- the node, on a small engine


class SmallEngine:
    """What pattern states use of the engine: the clock (event time), the timer queue,
    the event sequence; `advance` fires the timers due as `Engine.advance` does."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.event_seq = 0
        self.timers = TimerQueue()
        self.faults: list[BaseException] = []

    def schedule(self, deadline: float, callback: Callable[[float], None],
                 priority: int = 1) -> Timer:
        return self.timers.schedule(deadline, callback, priority)

    def report_fault(self, source: str, what: str, exc: BaseException) -> None:
        self.faults.append(exc)

    def advance(self, to: float) -> None:
        while (timer := self.timers.pop_due(to)) is not None:
            self.now = max(self.now, timer.deadline)
            timer.callback(timer.deadline)
        self.now = max(self.now, to)

    def event(self, run: PatternRun, type_name: str, ts: float) -> None:
        self.advance(ts)
        self.event_seq += 1
        run.dispatch(Event(type_name, ts, {}))


def run_node(node: Node, start: str, until: str, zone: ZoneInfo,
             events: tuple[tuple[str, str], ...] = ()) -> tuple[list[str], PatternRun]:
    """Start a run of `node` at `start`, deliver (type, local time) events, advance to
    `until`; the matches' times."""
    engine = SmallEngine(at(start, zone))
    matches: list[str] = []
    run = PatternRun(engine, None, lambda match: matches.append(show(engine.now, zone)))
    run.start(node)
    for type_name, when in events:
        engine.event(run, type_name, at(when, zone))
    engine.advance(at(until, zone))
    return matches, run


def test_every_weekday_morning_across_a_week():
    node = EveryNode(AtNode(clock(7, 30), days("MON-FRI"), BERLIN_ZONE))
    # from Saturday 13 June to Monday 22 June, noon
    matches, run = run_node(node, "2026-06-13T00:00", "2026-06-22T12:00", BERLIN_ZONE)
    assert matches == ["Mon 06-15 07:30:00+0200", "Tue 06-16 07:30:00+0200",
                       "Wed 06-17 07:30:00+0200", "Thu 06-18 07:30:00+0200",
                       "Fri 06-19 07:30:00+0200", "Mon 06-22 07:30:00+0200"]
    assert len(run.timers) == 1 and not run.finished  # Tuesday's is waiting


def test_every_weekend_sunset_less_a_quarter_hour():
    node = EveryNode(AtNode(sun("SUNSET", -15), days("SAT", "SUN"), BERLIN_ZONE, BERLIN))
    matches, _ = run_node(node, "2026-06-15T00:00", "2026-06-29T00:00", BERLIN_ZONE)
    assert matches == ["Sat 06-20 21:18:04+0200", "Sun 06-21 21:18:18+0200",
                       "Sat 06-27 21:18:28+0200", "Sun 06-28 21:18:18+0200"]


def test_started_exactly_at_the_time_fires_the_next_day():
    node = AtNode(clock(7, 30), (), BERLIN_ZONE)
    matches, run = run_node(node, "2026-06-15T07:30", "2026-06-18T00:00", BERLIN_ZONE)
    assert matches == ["Tue 06-16 07:30:00+0200"]
    assert run.finished and not run.timers  # without every: once


def test_after_an_event_at_the_very_instant_the_next_day():
    """`every a=A -> timer:at(07:30)`: an A at 07:30:00 waits for the next day's 07:30,
    as does one a second before that."""
    node = FollowedByNode([EveryNode(AtomNode("A", "a", None, False)),
                           AtNode(clock(7, 30), (), BERLIN_ZONE)])
    matches, _ = run_node(node, "2026-06-15T00:00", "2026-06-18T00:00", BERLIN_ZONE,
                          events=(("A", "2026-06-15T07:30"), ("A", "2026-06-16T07:29:59")))
    assert matches == ["Tue 06-16 07:30:00+0200", "Tue 06-16 07:30:00+0200"]


@pytest.mark.parametrize("start,until,zone,expected", [
    ("2026-03-27T12:00", "2026-03-31T12:00", BERLIN_ZONE,
     ["Sat 03-28 02:30:00+0100", "Sun 03-29 03:00:00+0200", "Mon 03-30 02:30:00+0200",
      "Tue 03-31 02:30:00+0200"]),
    ("2026-10-24T00:00", "2026-10-27T00:00", BERLIN_ZONE,   # once on the repeated hour
     ["Sat 10-24 02:30:00+0200", "Sun 10-25 02:30:00+0200", "Mon 10-26 02:30:00+0100"]),
    ("2026-03-07T00:00", "2026-03-10T00:00", NEW_YORK_ZONE,
     ["Sat 03-07 02:30:00-0500", "Sun 03-08 03:00:00-0400", "Mon 03-09 02:30:00-0400"]),
], ids=["berlin-spring", "berlin-autumn", "newyork-spring"])
def test_every_night_across_the_changes(start, until, zone, expected):
    node = EveryNode(AtNode(clock(2, 30), (), zone))
    assert run_node(node, start, until, zone)[0] == expected


def test_every_sunrise_skips_the_polar_night():
    node = EveryNode(AtNode(sun("SUNRISE"), (), OSLO_ZONE, TROMSO))
    matches, _ = run_node(node, "2026-11-25T00:00", "2027-01-17T00:00", OSLO_ZONE)
    assert matches == ["Wed 11-25 10:43:25+0100", "Thu 11-26 10:57:03+0100",
                       "Fri 11-27 11:20:47+0100", "Fri 01-15 11:34:54+0100",
                       "Sat 01-16 11:16:32+0100"]


def test_a_time_that_never_comes_is_permanently_false(monkeypatch):
    monkeypatch.setattr(recurrence, "HORIZON_DAYS", 30)
    node = EveryNode(AtNode(sun("SUNRISE"), (), OSLO_ZONE, TROMSO))
    matches, run = run_node(node, "2026-12-01T00:00", "2026-12-31T00:00", OSLO_ZONE)
    assert matches == [] and run.finished and not run.timers


def test_stopping_cancels_the_timer_and_runs_share_the_node():
    node = EveryNode(AtNode(clock(7, 30), (), BERLIN_ZONE))
    engine = SmallEngine(at("2026-06-15T08:00", BERLIN_ZONE))
    fired: list[tuple[int, float]] = []
    runs = [PatternRun(engine, None, lambda match, i=i: fired.append((i, engine.now)))
            for i in range(3)]
    for run in runs:
        run.start(node)
    assert engine.timers.pending() == 3
    runs[1].stop()
    assert engine.timers.pending() == 2 and not runs[1].timers
    engine.advance(at("2026-06-17T00:00", BERLIN_ZONE))
    tuesday = at("2026-06-16T07:30", BERLIN_ZONE)
    assert fired == [(0, tuesday), (2, tuesday)]
    assert not runs[0].at_rest()  # a timer is pending: a partition keeps the instance


# ---------------------------------------------------------------- through the engine

ENGINE_RULES = """
SET TIMEZONE 'Europe/Berlin';
SET LOCATION GEO (52.52, 13.405);
@name('wake') SELECT 'wake' AS what FROM PATTERN [ every timer:at(07:30 ON MON-FRI) ];
@name('dusk') SELECT 'dusk' AS what FROM PATTERN [ every timer:at(SUNSET - 15 min ON SAT, SUN) ];
"""


def test_through_the_engine():
    """The whole pipeline: a week from Friday noon."""
    from helpers import load

    from cep.runtime.engine import Engine

    loaded = load(ENGINE_RULES)
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    outputs: list[dict] = []
    engine = Engine(loaded.catalog, outputs.append)
    engine.start(at("2026-06-19T12:00", BERLIN_ZONE))   # a Friday
    engine.advance(at("2026-06-26T12:00", BERLIN_ZONE))
    assert [(o["rule"], show(o["ts"], BERLIN_ZONE)) for o in outputs if o["kind"] == "event"] == [
        ("dusk", "Sat 06-20 21:18:04+0200"), ("dusk", "Sun 06-21 21:18:18+0200"),
        ("wake", "Mon 06-22 07:30:00+0200"), ("wake", "Tue 06-23 07:30:00+0200"),
        ("wake", "Wed 06-24 07:30:00+0200"), ("wake", "Thu 06-25 07:30:00+0200"),
        ("wake", "Fri 06-26 07:30:00+0200")]
