"""IANA time zones: the system database through zoneinfo, else dateutil's bundled copy."""

from __future__ import annotations

from datetime import tzinfo
from functools import lru_cache
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=None)
def get_zone(name: str) -> Optional[tzinfo]:
    """The zone called `name` ('Europe/Berlin', 'UTC'), or None if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    from dateutil.zoneinfo import get_zonefile_instance

    return get_zonefile_instance().get(name)
