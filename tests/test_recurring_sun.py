"""Recurring contexts with sun events (`START SUNSET END SUNRISE`), and daylight saving
days (section 9.2): exact context-start / context-end lines, in local time with the UTC
offset, through the engine.

The checks of the second edition are being written, so the sun cases build their catalog
by hand (the parsed CREATE CONTEXT and the location); the clock-time cases go through the
whole pipeline (`helpers.run_rules`). Sun times: see tests/test_sun.py (NOAA's formulas).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from helpers import run_rules

from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.diagnostics import Diagnostics
from cep.language.parser import parse_text
from cep.runtime.engine import Engine
from cep.runtime.recurrence import Recurrence
from cep.runtime.sun import sun_event

BERLIN = (52.52, 13.405)
NEW_YORK = (40.7128, -74.006)
TROMSO = (69.6492, 18.9553)


def context_lines(text: str, zone_name: str, location: tuple[float, float] | None,
                  first: str, until: str) -> list[str]:
    """The engine's context lines for the contexts of `text`, from `first` to `until`
    (local times), as `MM-DD HH:MM:SS+zzzz start|end`."""
    diagnostics = Diagnostics()
    rule_file = parse_text(text, "test.epl", diagnostics)
    assert not list(diagnostics)
    contexts = {s.name: s for s in rule_file.statements if isinstance(s, ast.CreateContext)}
    zone = ZoneInfo(zone_name)
    catalog = Catalog(timezone=zone_name, location=location, contexts=contexts)
    outputs: list[dict] = []
    engine = Engine(catalog, outputs.append, zone, show_contexts=True)
    engine.start(datetime.fromisoformat(first).replace(tzinfo=zone).timestamp())
    engine.advance(datetime.fromisoformat(until).replace(tzinfo=zone).timestamp())
    return [f"{datetime.fromtimestamp(o['ts'], zone):%m-%d %H:%M:%S%z} {o['kind'][8:]}"
            for o in outputs]


# ---------------------------------------------------------------- sun events and DST

SUN_CASES = [
    # Berlin, spring: the night of 28 March ends at a sunrise an hour later on the clock
    ("START SUNSET END SUNRISE", "Europe/Berlin", BERLIN, "2026-03-27T12:00", "2026-03-31T12:00",
     ["03-27 18:31:47+0100 start", "03-28 05:50:23+0100 end",
      "03-28 18:33:32+0100 start", "03-29 06:48:02+0200 end",
      "03-29 19:35:17+0200 start", "03-30 06:45:41+0200 end",
      "03-30 19:37:02+0200 start", "03-31 06:43:20+0200 end"]),
    # Berlin, autumn: the sunrise of 25 October is an hour earlier on the clock
    ("START SUNSET END SUNRISE", "Europe/Berlin", BERLIN, "2026-10-23T12:00", "2026-10-27T12:00",
     ["10-23 17:54:31+0200 start", "10-24 07:47:48+0200 end",
      "10-24 17:52:27+0200 start", "10-25 06:49:37+0100 end",
      "10-25 16:50:23+0100 start", "10-26 06:51:26+0100 end",
      "10-26 16:48:21+0100 start", "10-27 06:53:16+0100 end"]),
    # New York, spring (8 March) and autumn (1 November)
    ("START SUNSET END SUNRISE", "America/New_York", NEW_YORK, "2026-03-06T12:00",
     "2026-03-10T12:00",
     ["03-06 17:52:59-0500 start", "03-07 06:20:28-0500 end",
      "03-07 17:54:06-0500 start", "03-08 07:18:52-0400 end",
      "03-08 18:55:12-0400 start", "03-09 07:17:16-0400 end",
      "03-09 18:56:18-0400 start", "03-10 07:15:39-0400 end"]),
    ("START SUNSET END SUNRISE", "America/New_York", NEW_YORK, "2026-10-30T12:00",
     "2026-11-03T12:00",
     ["10-30 17:54:38-0400 start", "10-31 07:25:13-0400 end",
      "10-31 17:53:24-0400 start", "11-01 06:26:23-0500 end",
      "11-01 16:52:11-0500 start", "11-02 06:27:33-0500 end",
      "11-02 16:50:59-0500 start", "11-03 06:28:43-0500 end"]),
    # A clock END in the skipped hour happens at 03:00
    ("START SUNSET END 02:30", "Europe/Berlin", BERLIN, "2026-03-27T12:00", "2026-03-31T12:00",
     ["03-27 18:31:47+0100 start", "03-28 02:30:00+0100 end",
      "03-28 18:33:32+0100 start", "03-29 03:00:00+0200 end",
      "03-29 19:35:17+0200 start", "03-30 02:30:00+0200 end",
      "03-30 19:37:02+0200 start", "03-31 02:30:00+0200 end"]),
    # A clock START in the repeated hour happens at its first occurrence (-0400)
    ("START 01:30 END SUNRISE", "America/New_York", NEW_YORK, "2026-10-30T12:00",
     "2026-11-03T12:00",
     ["10-31 01:30:00-0400 start", "10-31 07:25:13-0400 end",
      "11-01 01:30:00-0400 start", "11-01 06:26:23-0500 end",
      "11-02 01:30:00-0500 start", "11-02 06:27:33-0500 end",
      "11-03 01:30:00-0500 start", "11-03 06:28:43-0500 end"]),
    # An offset, and ON naming the days (Friday 19 and Saturday 20 June)
    ("START SUNSET - 15 min END 23:30 ON FRI, SAT", "Europe/Berlin", BERLIN, "2026-06-15T12:00",
     "2026-06-22T12:00",
     ["06-19 21:17:48+0200 start", "06-19 23:30:00+0200 end",
      "06-20 21:18:04+0200 start", "06-20 23:30:00+0200 end"]),
    # ON names the day of the sun event: Friday's sunset + 5 hours is Saturday 02:32
    ("START SUNSET + 5 hours END SUNRISE ON FRI", "Europe/Berlin", BERLIN, "2026-06-15T12:00",
     "2026-06-22T12:00",
     ["06-20 02:32:48+0200 start", "06-20 04:42:54+0200 end"]),
    # A clock starting inside an occurrence opens it at once
    ("START DUSK END DAWN", "Europe/Berlin", BERLIN, "2026-01-10T23:00", "2026-01-11T12:00",
     ["01-10 23:00:00+0100 start", "01-11 07:32:50+0100 end"]),
]


@pytest.mark.parametrize("spec,zone,location,first,until,expected", SUN_CASES,
                         ids=["berlin-spring", "berlin-autumn", "newyork-spring", "newyork-autumn",
                              "end-in-gap", "start-in-repeated-hour", "offset-on-days",
                              "offset-past-midnight", "starts-open"])
def test_sun_contexts(spec, zone, location, first, until, expected):
    assert context_lines(f"CREATE CONTEXT N {spec};", zone, location, first, until) == expected


def test_sun_context_times_are_the_sun_times_of_each_day():
    """Each occurrence is that day's sunset to the next day's sunrise, across a change."""
    zone = ZoneInfo("Europe/Berlin")
    recurrence = Recurrence(ast.Recurring(ast.SunTime("SUNSET", None, None),
                                          ast.SunTime("SUNRISE", None, None), ()),
                            zone, BERLIN)
    for day in range(20, 40):
        local_day = date.fromordinal(date(2026, 3, 1).toordinal() + day)
        next_day = date.fromordinal(local_day.toordinal() + 1)
        assert recurrence.occurrence(local_day) == (
            sun_event("SUNSET", local_day, BERLIN, zone),
            sun_event("SUNRISE", next_day, BERLIN, zone))


# ---------------------------------------------------------------- polar days and nights

POLAR_CASES = [
    # The last sunsets before the midnight sun are after midnight; 17 May's sunset (00:29
    # on the 18th) has no sunrise after it (18 May has none): no occurrence from then on.
    ("START SUNSET END SUNRISE", "2026-05-15T12:00", "2026-05-25T12:00",
     ["05-15 23:48:30+0200 start", "05-16 01:31:42+0200 end",
      "05-17 00:03:01+0200 start", "05-17 01:17:14+0200 end"]),
    # Days shorten into the polar night: no sunrise from 28 November
    ("START SUNRISE END SUNSET", "2026-11-25T00:00", "2026-12-05T00:00",
     ["11-25 10:43:25+0100 start", "11-25 12:18:03+0100 end",
      "11-26 10:57:03+0100 start", "11-26 12:05:05+0100 end",
      "11-27 11:20:47+0100 start", "11-27 11:42:01+0100 end"]),
    # Civil twilight all night from 28 April: no dusk (and no dawn from the 29th)
    ("START DUSK END DAWN", "2026-04-25T12:00", "2026-05-05T12:00",
     ["04-25 23:30:53+0200 start", "04-26 01:52:01+0200 end",
      "04-26 23:44:27+0200 start", "04-27 01:38:08+0200 end",
      "04-28 00:02:19+0200 start", "04-28 01:19:59+0200 end"]),
    # ... and back in August: 14 August has a dusk (00:14 on the 15th) but no dawn; the
    # missing dawn would have been before the dusk, so the END is 15 August's dawn
    ("START DUSK END DAWN", "2026-08-10T12:00", "2026-08-17T12:00",
     ["08-15 00:14:14+0200 start", "08-15 01:24:30+0200 end",
      "08-15 23:55:02+0200 start", "08-16 01:43:19+0200 end",
      "08-16 23:40:46+0200 start", "08-17 01:57:11+0200 end"]),
    # Midsummer and midwinter: nothing at all
    ("START SUNSET END SUNRISE", "2026-06-10T00:00", "2026-07-10T00:00", []),
    ("START SUNRISE END SUNSET", "2026-12-05T00:00", "2027-01-10T00:00", []),
]


@pytest.mark.parametrize("spec,first,until,expected", POLAR_CASES,
                         ids=["midnight-sun-begins", "polar-night-begins", "white-nights-begin",
                              "white-nights-end", "midsummer", "midwinter"])
def test_polar_days_have_no_occurrence(spec, first, until, expected):
    assert context_lines(f"CREATE CONTEXT N {spec};", "Europe/Oslo", TROMSO, first,
                         until) == expected


def test_first_occurrence_after_the_polar_night():
    recurrence = Recurrence(ast.Recurring(ast.SunTime("SUNRISE", None, None),
                                          ast.SunTime("SUNSET", None, None), ()),
                            ZoneInfo("Europe/Oslo"), TROMSO)
    start = datetime(2026, 12, 1, tzinfo=ZoneInfo("Europe/Oslo")).timestamp()
    first = next(recurrence.occurrences_from(start))
    assert [f"{datetime.fromtimestamp(ts, ZoneInfo('Europe/Oslo')):%Y-%m-%d %H:%M}"
            for ts in first] == ["2027-01-15 11:34", "2027-01-15 12:12"]


def test_a_sun_event_needs_a_location():
    spec = ast.Recurring(ast.SunTime("SUNSET", None, None), ast.ClockTime(23, 30), ())
    with pytest.raises(ValueError, match="SUNSET needs the home's location"):
        Recurrence(spec, ZoneInfo("UTC"), None)


# ---------------------------------------------------------------- B1: an occurrence in the gap

NIGHTLY = """
SET TIMEZONE '%s';
CREATE EVENT Ping (n INT) FROM TOPIC 'ping';
CREATE CONTEXT Nightly START 02:30 END 02:31;
CONTEXT Nightly ON START PUBLISH 'nightly' PAYLOAD "start";
CONTEXT Nightly ON END PUBLISH 'nightly' PAYLOAD "end";
@name('seen') CONTEXT Nightly SELECT n FROM Ping;
"""


@pytest.mark.parametrize("zone,gap_day,trace,until,expected", [
    ("Europe/Berlin", "03-29",
     [("2026-03-27T12:00:00", "ping", {"n": 1}), ("2026-03-29T03:00:00", "ping", {"n": 2}),
      ("2026-03-30T02:30:30", "ping", {"n": 3})], "2026-03-30T12:00:00",
     ["03-28 02:30:00 context-start Nightly key=null", '03-28 02:30:00 publish nightly "start"',
      "03-28 02:31:00 context-end Nightly key=null", '03-28 02:31:00 publish nightly "end"',
      # the gap day: opens and closes at 03:00, the first instant after the gap; an
      # event at 03:00 is outside the empty interval [03:00, 03:00)
      "03-29 03:00:00 context-start Nightly key=null", '03-29 03:00:00 publish nightly "start"',
      "03-29 03:00:00 context-end Nightly key=null", '03-29 03:00:00 publish nightly "end"',
      "03-30 02:30:00 context-start Nightly key=null", '03-30 02:30:00 publish nightly "start"',
      '03-30 02:30:30 event seen key=null {"n": 3}',
      "03-30 02:31:00 context-end Nightly key=null", '03-30 02:31:00 publish nightly "end"']),
    ("America/New_York", "03-08",
     [("2026-03-07T12:00:00", "ping", {"n": 1})], "2026-03-09T12:00:00",
     ["03-08 03:00:00 context-start Nightly key=null", '03-08 03:00:00 publish nightly "start"',
      "03-08 03:00:00 context-end Nightly key=null", '03-08 03:00:00 publish nightly "end"',
      "03-09 02:30:00 context-start Nightly key=null", '03-09 02:30:00 publish nightly "start"',
      "03-09 02:31:00 context-end Nightly key=null", '03-09 02:31:00 publish nightly "end"']),
], ids=["berlin", "new-york"])
def test_an_occurrence_inside_the_spring_gap_opens_and_closes_at_once(zone, gap_day, trace,
                                                                     until, expected):
    assert run_rules(NIGHTLY % zone, trace, until=until) == expected


@pytest.mark.parametrize("zone,first,until,expected", [
    # Autumn: 02:30 happens twice in Berlin on 25 October: one occurrence, at the first
    ("Europe/Berlin", "2026-10-24T12:00", "2026-10-26T12:00",
     ["10-25 02:30:00+0200 start", "10-25 02:31:00+0200 end",
      "10-26 02:30:00+0100 start", "10-26 02:31:00+0100 end"]),
    # New York repeats 01:00-02:00 on 1 November: 02:30 is once, after it
    ("America/New_York", "2026-10-31T12:00", "2026-11-02T12:00",
     ["11-01 02:30:00-0500 start", "11-01 02:31:00-0500 end",
      "11-02 02:30:00-0500 start", "11-02 02:31:00-0500 end"]),
    # The clock starting at 03:00 on the gap day: the empty occurrence there opens and
    # closes at once
    ("Europe/Berlin", "2026-03-29T03:00", "2026-03-30T12:00",
     ["03-29 03:00:00+0200 start", "03-29 03:00:00+0200 end",
      "03-30 02:30:00+0200 start", "03-30 02:31:00+0200 end"]),
], ids=["berlin-autumn", "newyork-autumn", "clock-starts-at-the-gap"])
def test_short_night_around_the_changes(zone, first, until, expected):
    assert context_lines("CREATE CONTEXT N START 02:30 END 02:31;", zone, None, first,
                         until) == expected


def test_repeated_hour_interval_is_one_occurrence():
    """`START 01:30 END 01:45` in New York on 1 November: the first 01:30 to the first
    01:45, a quarter of an hour, not an hour and a quarter."""
    assert context_lines("CREATE CONTEXT N START 01:30 END 01:45;", "America/New_York", None,
                         "2026-10-31T12:00", "2026-11-01T12:00") == [
        "11-01 01:30:00-0400 start", "11-01 01:45:00-0400 end"]
