"""The sun at the home's location (`SET LOCATION GEO (lat, lon)`): the times of the sun
events of a local day, and the sun's elevation at an instant.

Computed with `astral`, whose formulas are NOAA's (the NOAA solar calculator's), at sea
level:
- SUNRISE and SUNSET: the sun's centre 0.833° below the horizon (NOAA's zenith of
  90.833°: 0.567° of refraction and the sun's radius of 0.267°);
- DAWN and DUSK: civil twilight, the sun's centre 6° below the horizon (geometric).

The sun events of a local date (in the rules' zone) are those of its solar day: the day
whose solar noon falls on that date, as the NOAA calculator lists them. So each date has
each event once, or not at all when the sun does not cross that elevation on that day
(polar day or night); near the polar circles an event may fall just past midnight, on the
next date: Tromsø's sunset of 16 May 2026 is at 00:03 on 17 May. Nothing here reads the
wall clock; results are cached, as they never change.

It imports nothing of cep (astral only), so it could move to a lower stage as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from math import cos, degrees, radians, sin

from astral import Observer, SunDirection
from astral.julian import julianday_to_juliancentury
from astral.sun import elevation as _astral_elevation
from astral.sun import eq_of_time, hour_angle, sun_declination

Location = tuple[float, float]  # (latitude, longitude) in degrees, north and east positive

SUN_EVENTS = ("SUNRISE", "SUNSET", "DAWN", "DUSK")

# event -> (zenith in degrees, rising or setting)
_TRANSITS: dict[str, tuple[float, SunDirection]] = {
    "SUNRISE": (90.833, SunDirection.RISING),
    "SUNSET": (90.833, SunDirection.SETTING),
    "DAWN": (96.0, SunDirection.RISING),
    "DUSK": (96.0, SunDirection.SETTING),
}

# A year whose days `missing_events` walks by default (any year gives the same answer but
# at the very edge of the polar circles; a fixed one keeps `cep check` deterministic).
REFERENCE_YEAR = 2026

_DAY = timedelta(days=1)
_EPOCH = date(1970, 1, 1)
_JD_EPOCH = 2440587.5  # the Julian day of the Unix epoch
_ITERATIONS = 10


def _midnight(day: date) -> float:
    return (day - _EPOCH).days * 86400.0


def _century(ts: float) -> float:
    return julianday_to_juliancentury(ts / 86400.0 + _JD_EPOCH)


@lru_cache(maxsize=4096)
def _noon(lon: float, day: date) -> float:
    """Unix time of the solar noon on the UTC date `day` (between its 00:00 and the next
    date's 00:00 UTC: noon comes 4 minutes earlier per degree of east longitude)."""
    mean_noon = _midnight(day) + (720.0 - 4.0 * lon) * 60.0
    return mean_noon - eq_of_time(_century(mean_noon)) * 60.0


@lru_cache(maxsize=16384)
def _transit(lat: float, lon: float, event: str, day: date) -> tuple[float, bool]:
    """(Unix time, True) of `event` in the solar day whose noon falls on the UTC date
    `day`, the NOAA way: the hour angle from the sun's declination, with the equation of
    time, both evaluated again at the instant found until it moves less than a second.
    When the sun does not reach the event's zenith that day: (the instant it comes
    closest, False): solar noon if it stays below; if it stays above, the solar midnight
    before noon (a rising) or after it (a setting).

    (astral's own `time_of_transit` returns one event per UTC date, folded into it, so
    near the polar circles it loses one when two fall on a UTC date.)"""
    zenith, direction = _TRANSITS[event]
    lat = max(-89.8, min(89.8, lat))  # as astral: the hour angle is undefined at a pole
    midnight = _midnight(day)
    noon = ts = _noon(lon, day)
    for _ in range(_ITERATIONS):
        jc = _century(ts)
        declination = sun_declination(jc)
        try:
            angle = hour_angle(lat, declination, zenith, direction)
        except ValueError:  # "math domain error": the sun stays above or below
            if _stays_below(lat, declination, zenith):
                return noon, False
            half_day = 43200.0 if direction is SunDirection.SETTING else -43200.0
            return noon + half_day, False
        previous = ts
        ts = midnight + (720.0 - 4.0 * lon - degrees(angle) * 4.0 - eq_of_time(jc)) * 60.0
        if abs(ts - previous) < 1.0:  # converged (in two or three rounds, more where the
            break                     # sun barely reaches the zenith)
    return ts, True


def _stays_below(lat: float, declination: float, zenith: float) -> bool:
    """Whether the sun's zenith angle stays above `zenith` all day (never that high)."""
    phi, delta = radians(lat), radians(declination)
    cos_hour = (cos(radians(zenith)) - sin(phi) * sin(delta)) / (cos(phi) * cos(delta))
    return cos_hour > 1.0


def solar_day(day: date, lon: float, zone: tzinfo) -> date:
    """The UTC date whose solar noon falls on the local date `day` in `zone`."""
    for shift in (0, -1, 1):
        candidate = day + shift * _DAY
        if datetime.fromtimestamp(_noon(lon, candidate), zone).date() == day:
            return candidate
    # (a zone more than 12 hours off the sun: no noon on that date, take the nearest)
    return day


def sun_event_or_closest(event: str, day: date, location: Location,
                         zone: tzinfo) -> tuple[float, bool]:
    """(Unix time, True) of `event` (SUNRISE, SUNSET, DAWN or DUSK) of the local date `day`
    in `zone`, of its solar day (it may fall just past midnight, on the next date). When
    it does not happen that day: (when the sun comes closest to its elevation, False),
    solar noon or midnight, which places the missing event among the others (a recurring
    context's END that would have come before its START)."""
    if event not in _TRANSITS:
        raise ValueError(f"unknown sun event {event!r}")
    lat, lon = location
    return _transit(lat, lon, event, solar_day(day, lon, zone))


def sun_event(event: str, day: date, location: Location, zone: tzinfo) -> float | None:
    """Unix time of `event` of the local date `day` (as `sun_event_or_closest`), or None
    when it does not happen that day."""
    ts, happens = sun_event_or_closest(event, day, location, zone)
    return ts if happens else None


def sun_times(day: date, location: Location, zone: tzinfo) -> dict[str, float | None]:
    """Every sun event of a local date (None for those that do not happen)."""
    return {event: sun_event(event, day, location, zone) for event in SUN_EVENTS}


def days_without(event: str, location: Location, zone: tzinfo,
                 year: int = REFERENCE_YEAR) -> list[date]:
    """The local dates of `year` on which `event` does not happen."""
    day = date(year, 1, 1)
    missing: list[date] = []
    while day.year == year:
        if sun_event(event, day, location, zone) is None:
            missing.append(day)
        day += _DAY
    return missing


def missing_events(location: Location, zone: tzinfo, events: Iterable[str],
                   year: int = REFERENCE_YEAR) -> tuple[str, ...]:
    """Of `events` (in their order, each once), those that do not happen on some local day
    of `year`: polar day or night at the location (for a warning: a recurring context or
    a `timer:at` with such an event has nothing on those days)."""
    found: list[str] = []
    for event in dict.fromkeys(events):
        if days_without(event, location, zone, year):
            found.append(event)
    return tuple(found)


def elevation(ts: float, location: Location) -> float:
    """The sun's elevation in degrees above the horizon at Unix time `ts`, seen from
    `location`, with atmospheric refraction (NOAA's correction)."""
    lat, lon = location
    moment = datetime.fromtimestamp(ts, UTC)
    return float(_astral_elevation(Observer(lat, lon), moment, with_refraction=True))
