"""The sun at the home (cep.runtime.sun): sun times of a local day, polar days and nights,
and the sun's elevation, against NOAA's formulas written out here a second time.

The tables are local times rounded to the minute (what the NOAA solar calculator shows);
each is checked two ways: cep.runtime.sun (astral's NOAA functions) rounds to it exactly,
and the NOAA spreadsheet's formulas below (`noaa_event`, independent code) land within a
minute of it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from math import acos, asin, cos, degrees, radians, sin, tan
from zoneinfo import ZoneInfo

import pytest

from cep.language import ast
from cep.runtime import sun
from cep.runtime.expressions import ExprEnv, ExpressionCompiler

# ---------------------------------------------------------------- NOAA's formulas, again
# The columns of NOAA's solar calculation spreadsheet (General Solar Position
# Calculations), evaluated at an instant; sunrise and sunset at zenith 90.833°, civil
# twilight at 96°, iterated at the instant found.


def _noaa_sun(ts: float) -> tuple[float, float]:
    """(declination in degrees, equation of time in minutes) at Unix time ts."""
    jc = (ts / 86400.0 + 2440587.5 - 2451545.0) / 36525.0
    l0 = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360
    m = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    center = (sin(radians(m)) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
              + sin(radians(2 * m)) * (0.019993 - 0.000101 * jc)
              + sin(radians(3 * m)) * 0.000289)
    apparent = l0 + center - 0.00569 - 0.00478 * sin(radians(125.04 - 1934.136 * jc))
    mean_obliquity = 23 + (26 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60) / 60
    obliquity = mean_obliquity + 0.00256 * cos(radians(125.04 - 1934.136 * jc))
    declination = degrees(asin(sin(radians(obliquity)) * sin(radians(apparent))))
    y = tan(radians(obliquity / 2)) ** 2
    eqtime = 4 * degrees(y * sin(2 * radians(l0)) - 2 * e * sin(radians(m))
                         + 4 * e * y * sin(radians(m)) * cos(2 * radians(l0))
                         - 0.5 * y * y * sin(4 * radians(l0))
                         - 1.25 * e * e * sin(2 * radians(m)))
    return declination, eqtime


_NOAA_ZENITH = {"SUNRISE": (90.833, -1), "SUNSET": (90.833, 1), "DAWN": (96.0, -1),
                "DUSK": (96.0, 1)}


def _noaa_solar_day(event: str, utc_day: date, lat: float, lon: float) -> float | None:
    zenith, sign = _NOAA_ZENITH[event]
    midnight = datetime(utc_day.year, utc_day.month, utc_day.day, tzinfo=UTC).timestamp()
    ts = midnight + (720 - 4 * lon) * 60
    for _ in range(10):
        declination, eqtime = _noaa_sun(ts)
        x = (cos(radians(zenith)) / (cos(radians(lat)) * cos(radians(declination)))
             - tan(radians(lat)) * tan(radians(declination)))
        if not -1 <= x <= 1:
            return None
        ts = midnight + (720 - 4 * lon - eqtime + sign * 4 * degrees(acos(x))) * 60
    return ts


def noaa_event(event: str, day: date, lat: float, lon: float, zone: ZoneInfo) -> float | None:
    """The event of the solar day whose noon falls on the local date `day`."""
    for shift in (0, -1, 1):
        utc_day = day + timedelta(days=shift)
        midnight = datetime(utc_day.year, utc_day.month, utc_day.day, tzinfo=UTC).timestamp()
        noon = midnight + (720 - 4 * lon) * 60
        noon = midnight + (720 - 4 * lon - _noaa_sun(noon)[1]) * 60
        if datetime.fromtimestamp(noon, zone).date() == day:
            return _noaa_solar_day(event, utc_day, lat, lon)
    raise AssertionError("no noon on that date")


def noaa_elevation(ts: float, lat: float, lon: float) -> float:
    """The spreadsheet's 'solar elevation corrected for atmospheric refraction'."""
    declination, eqtime = _noaa_sun(ts)
    true_solar = ((ts % 86400) / 60 + eqtime + 4 * lon) % 1440
    hour_angle = true_solar / 4 - 180
    cos_zenith = (sin(radians(lat)) * sin(radians(declination))
                  + cos(radians(lat)) * cos(radians(declination)) * cos(radians(hour_angle)))
    elevation = 90 - degrees(acos(max(-1.0, min(1.0, cos_zenith))))
    te = tan(radians(elevation))
    if elevation > 85:
        refraction = 0.0
    elif elevation > 5:
        refraction = 58.1 / te - 0.07 / te ** 3 + 0.000086 / te ** 5
    elif elevation > -0.575:
        refraction = 1735 + elevation * (-518.2 + elevation * (103.4 + elevation * (
            -12.79 + elevation * 0.711)))
    else:
        refraction = -20.772 / te
    return elevation + refraction / 3600


# ---------------------------------------------------------------- sun times

PLACES = {
    "Berlin": ((52.52, 13.405), "Europe/Berlin"),
    "Sydney": ((-33.8688, 151.2093), "Australia/Sydney"),
    "Cape Town": ((-33.9249, 18.4241), "Africa/Johannesburg"),
    "New York": ((40.7128, -74.006), "America/New_York"),
    "Tromsø": ((69.6492, 18.9553), "Europe/Oslo"),
}

# place, local date: DAWN, SUNRISE, SUNSET, DUSK (local, to the minute; None: not that day)
SUN_TIMES = [
    ("Berlin", "2026-03-20", ("05:35", "06:09", "18:19", "18:54")),
    ("Berlin", "2026-06-21", ("03:53", "04:43", "21:33", "22:24")),
    ("Berlin", "2026-12-21", ("07:33", "08:15", "15:54", "16:36")),
    ("Sydney", "2026-03-20", ("06:33", "06:58", "19:07", "19:32")),   # daylight saving (+11)
    ("Sydney", "2026-06-21", ("06:32", "07:00", "16:54", "17:22")),
    ("Sydney", "2026-12-21", ("05:11", "05:41", "20:05", "20:35")),
    ("Cape Town", "2026-03-20", ("06:24", "06:49", "18:58", "19:22")),
    ("Cape Town", "2026-06-21", ("07:24", "07:51", "17:45", "18:13")),
    ("Cape Town", "2026-12-21", ("05:03", "05:32", "19:57", "20:26")),
    ("New York", "2026-03-20", ("06:32", "06:59", "19:08", "19:36")),
    ("New York", "2026-06-21", ("04:52", "05:25", "20:31", "21:04")),
    ("New York", "2026-12-21", ("06:46", "07:17", "16:32", "17:03")),
    ("Tromsø", "2026-03-20", ("04:44", "05:44", "18:02", "19:02")),
    ("Tromsø", "2026-06-21", (None, None, None, None)),               # midnight sun
    ("Tromsø", "2026-12-21", ("09:31", None, None, "13:53")),         # polar night
]
EVENTS = ("DAWN", "SUNRISE", "SUNSET", "DUSK")


def _local(day: date, text: str, zone: ZoneInfo) -> float:
    hour, minute = map(int, text.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).timestamp()


@pytest.mark.parametrize("place,day,expected", SUN_TIMES,
                         ids=[f"{p}-{d}" for p, d, _ in SUN_TIMES])
def test_sun_times_to_the_minute(place, day, expected):
    location, zone_name = PLACES[place]
    zone = ZoneInfo(zone_name)
    local_day = date.fromisoformat(day)
    got = []
    for event, want in zip(EVENTS, expected):
        ts = sun.sun_event(event, local_day, location, zone)
        noaa = noaa_event(event, local_day, *location, zone)
        assert (ts is None) == (noaa is None) == (want is None), event
        if ts is None:
            got.append(None)
            continue
        assert abs(noaa - _local(local_day, want, zone)) <= 60, event
        assert abs(ts - noaa) < 1.0, event  # the same formulas: within a second
        got.append(datetime.fromtimestamp(round(ts / 60) * 60, zone).strftime("%H:%M"))
    assert tuple(got) == expected
    assert sun.sun_times(local_day, location, zone) == {
        event: sun.sun_event(event, local_day, location, zone) for event in EVENTS}


def test_sun_times_match_noaa_every_day_of_a_year():
    """Every local date of 2026 in each place: the same days without an event, and times
    within a second of the formulas above."""
    worst = 0.0
    for location, zone_name in PLACES.values():
        zone = ZoneInfo(zone_name)
        day = date(2026, 1, 1)
        while day.year == 2026:
            for event in EVENTS:
                ts = sun.sun_event(event, day, location, zone)
                noaa = noaa_event(event, day, *location, zone)
                assert (ts is None) == (noaa is None), (zone_name, event, day)
                if ts is not None:
                    worst = max(worst, abs(ts - noaa))
            day += timedelta(days=1)
    assert worst < 1.0


def test_astral_own_sun_times_agree_within_a_minute_at_mid_latitudes():
    """astral's sunrise()/dawn() take a slightly different zenith (refraction from its
    formula, at -6° too): within a minute away from the polar circles."""
    from astral import Observer
    from astral import sun as astral_sun

    functions = {"DAWN": astral_sun.dawn, "SUNRISE": astral_sun.sunrise,
                 "SUNSET": astral_sun.sunset, "DUSK": astral_sun.dusk}
    for place in ("Berlin", "Sydney", "Cape Town", "New York"):
        (lat, lon), zone_name = PLACES[place]
        zone = ZoneInfo(zone_name)
        for day in (date(2026, 3, 20), date(2026, 6, 21), date(2026, 12, 21)):
            for event, function in functions.items():
                theirs = function(Observer(lat, lon), day, tzinfo=zone).timestamp()
                assert abs(sun.sun_event(event, day, (lat, lon), zone) - theirs) < 60


def test_sun_times_on_daylight_saving_days_follow_the_local_clock():
    """The instants move smoothly; the local times jump by the hour the clock does."""
    location, zone = (52.52, 13.405), ZoneInfo("Europe/Berlin")
    rows = []
    for day in ("2026-03-28", "2026-03-29", "2026-10-24", "2026-10-25"):
        ts = sun.sun_event("SUNRISE", date.fromisoformat(day), location, zone)
        rows.append(datetime.fromtimestamp(ts, zone).strftime("%m-%d %H:%M:%S%z"))
    assert rows == ["03-28 05:50:23+0100", "03-29 06:48:02+0200",
                    "10-24 07:47:48+0200", "10-25 06:49:37+0100"]


def test_unknown_sun_event_is_refused():
    with pytest.raises(ValueError, match="unknown sun event"):
        sun.sun_event("NOON", date(2026, 1, 1), (0.0, 0.0), ZoneInfo("UTC"))


# ---------------------------------------------------------------- polar days and nights

TROMSO, OSLO_ZONE = PLACES["Tromsø"][0], ZoneInfo("Europe/Oslo")


def _spans(days: list[date]) -> list[tuple[str, str]]:
    spans: list[list[date]] = []
    for day in days:
        if spans and (day - spans[-1][1]).days == 1:
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return [(first.isoformat(), last.isoformat()) for first, last in spans]


def test_tromso_polar_night_and_midnight_sun():
    # Polar night: no sunrise or sunset from 28 November to 14 January; midnight sun: none
    # from 18 May to 25 July. Civil twilight lasts all night from the end of April to the
    # middle of August (a night's DUSK, after midnight, belongs to the day before).
    assert _spans(sun.days_without("SUNRISE", TROMSO, OSLO_ZONE)) == [
        ("2026-01-01", "2026-01-14"), ("2026-05-18", "2026-07-25"),
        ("2026-11-28", "2026-12-31")]
    assert sun.days_without("SUNSET", TROMSO, OSLO_ZONE) == \
        sun.days_without("SUNRISE", TROMSO, OSLO_ZONE)
    assert _spans(sun.days_without("DAWN", TROMSO, OSLO_ZONE)) == [("2026-04-29", "2026-08-14")]
    assert _spans(sun.days_without("DUSK", TROMSO, OSLO_ZONE)) == [("2026-04-28", "2026-08-13")]


def test_a_sun_event_past_midnight_belongs_to_its_solar_day():
    """The last sunsets before the midnight sun fall after midnight: each is still its
    day's (as the NOAA calculator lists them), so no date lacks one and none has two."""
    rows = []
    for day in (15, 16, 17):
        for event in ("SUNRISE", "SUNSET"):
            ts = sun.sun_event(event, date(2026, 5, day), TROMSO, OSLO_ZONE)
            rows.append(f"05-{day} {event} {datetime.fromtimestamp(ts, OSLO_ZONE):%m-%d %H:%M}")
    assert rows == ["05-15 SUNRISE 05-15 01:43", "05-15 SUNSET 05-15 23:48",
                    "05-16 SUNRISE 05-16 01:31", "05-16 SUNSET 05-17 00:03",
                    "05-17 SUNRISE 05-17 01:17", "05-17 SUNSET 05-18 00:29"]


@pytest.mark.parametrize("place,events,expected", [
    ("Berlin", ["SUNSET", "SUNRISE", "DAWN", "DUSK"], ()),
    ("Sydney", ["DUSK", "DAWN"], ()),
    ("Tromsø", ["SUNSET", "DAWN", "SUNSET"], ("SUNSET", "DAWN")),
    ("Tromsø", [], ()),
])
def test_missing_events_names_those_some_day_lacks(place, events, expected):
    location, zone_name = PLACES[place]
    assert sun.missing_events(location, ZoneInfo(zone_name), events) == expected


def test_civil_twilight_fails_first_beyond_about_60_5_degrees():
    # At the June solstice the sun's lowest elevation is 23.44° - (90° - latitude): above
    # -6° from about 60.6° N on. Oslo (59.9° N) has its dusk every day, Trondheim
    # (63.4° N) not, but its sunset every day (the limit for that is about 65.7° N).
    oslo, trondheim = (59.91, 10.75), (63.43, 10.39)
    assert sun.missing_events(oslo, OSLO_ZONE, ["DUSK", "SUNSET"]) == ()
    assert sun.missing_events(trondheim, OSLO_ZONE, ["DUSK", "SUNSET"]) == ("DUSK",)


# ---------------------------------------------------------------- elevation


def test_elevation_matches_noaa_within_a_hundredth_of_a_degree():
    worst = 0.0
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for location, _ in PLACES.values():
        for step in range(0, 365 * 24, 7):  # every 7 hours through the year
            ts = start + step * 3600 + 1234.0
            worst = max(worst, abs(sun.elevation(ts, location) - noaa_elevation(ts, *location)))
    assert worst < 0.01


@pytest.mark.parametrize("when,location,expected", [
    # Berlin's solar noon at the March equinox: about 90° - latitude
    ("2026-03-20T11:13:57+00:00", (52.52, 13.405), 37.445),
    # and its solar midnight
    ("2026-03-20T23:13:57+00:00", (52.52, 13.405), -37.331),
    # Berlin's sunrise: 0.833° below the horizon geometrically (NOAA's zenith), which
    # NOAA's refraction for negative elevations (-20.772"/tan e) lifts to -0.437°
    ("2026-06-21T02:43:05+00:00", (52.52, 13.405), -0.437),
    # Tromsø at solar midnight in midsummer: 23.44° - (90° - 69.65°) = 3.09°, + refraction
    ("2026-06-21T22:44:00+00:00", (69.6492, 18.9553), 3.312),
    # Tromsø at solar noon in the polar night: -3.09°, + refraction; above twilight's -6°
    ("2026-12-21T10:42:00+00:00", (69.6492, 18.9553), -2.979),
])
def test_elevation_values(when, location, expected):
    ts = datetime.fromisoformat(when).timestamp()
    assert sun.elevation(ts, location) == pytest.approx(expected, abs=0.001)
    assert noaa_elevation(ts, *location) == pytest.approx(expected, abs=0.001)


def _sun_elevation(args: tuple[ast.Expr, ...], now: float,
                   location: tuple[float, float] | None):
    env = ExprEnv(now=lambda: now, location=location)
    compiled = ExpressionCompiler(frozenset(), frozenset({"t"}), env=env).compile(
        ast.Call("sun_elevation", args))
    return compiled


def test_sun_elevation_function_now_and_of_a_timestamp():
    noon = datetime.fromisoformat("2026-03-20T11:13:57+00:00").timestamp()
    midnight = datetime.fromisoformat("2026-03-20T23:13:57+00:00").timestamp()
    berlin = PLACES["Berlin"][0]
    now = _sun_elevation((), noon, berlin)
    assert now({}, {}, None) == pytest.approx(37.445, abs=0.001)
    of_t = _sun_elevation((ast.Name("t"),), noon, berlin)
    assert of_t({"t": midnight}, {}, None) == pytest.approx(-37.331, abs=0.001)
    assert of_t({"t": None}, {}, None) is None
    assert of_t({"t": 1e300}, {}, None) is None   # not a time: null, not a crash
    assert of_t({"t": "noon"}, {}, None) is None


def test_sun_elevation_is_null_without_a_location():
    assert _sun_elevation((), 1_780_000_000.0, None)({}, {}, None) is None


def test_sun_elevation_through_the_engine():
    from helpers import run_rules

    rules = """
    SET TIMEZONE 'Europe/Berlin';
    SET LOCATION GEO (52.52, 13.405);
    CREATE EVENT Light (lux FLOAT, at TIMESTAMP) FROM TOPIC 'light';
    @name('sun')
    SELECT round(sun_elevation(), 3) AS now_deg, round(sun_elevation(at), 3) AS then_deg
    FROM Light;
    """
    lines = run_rules(rules, [("2026-03-20T12:13:57", "light",
                               {"lux": 1, "at": "2026-03-21T00:13:57+01:00"}),
                              ("2026-03-20T12:13:58", "light", {"lux": 1})])
    assert lines == [
        '03-20 12:13:57 event sun key=null {"now_deg": 37.445, "then_deg": -37.331}',
        '03-20 12:13:58 event sun key=null {"now_deg": 37.445, "then_deg": null}']


@pytest.mark.parametrize("latitude,expected", [
    # The latitudes beyond which some day lacks the event, by the declination's bound
    # (90° - 23.44° - |h|, as cep.checks.sun works them out): 60.56° for civil twilight
    # (h = -6°), 65.73° for sunrise and sunset (h = -0.833°)
    (60.4, ()), (60.7, ("DAWN", "DUSK")), (65.6, ("DAWN", "DUSK")),
    (65.9, ("SUNRISE", "SUNSET", "DAWN", "DUSK")),
    (-60.4, ()), (-60.7, ("DAWN", "DUSK")), (-65.6, ("DAWN", "DUSK")),
    (-65.9, ("SUNRISE", "SUNSET", "DAWN", "DUSK")),
])
def test_missing_events_agree_with_the_latitude_bound(latitude, expected):
    events = ["SUNRISE", "SUNSET", "DAWN", "DUSK"]
    assert sun.missing_events((latitude, 10.0), ZoneInfo("UTC"), events) == expected
