"""IANA time zones: the system database through zoneinfo, else python-dateutil's lookup."""

from __future__ import annotations

from datetime import tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@cache
def get_zone(name: str) -> tzinfo | None:
    """The zone called `name` ('Europe/Berlin', 'UTC'), or None if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    from dateutil import tz

    return tz.gettz(name) if "/" in name or name.isalpha() else None
