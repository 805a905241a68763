"""IANA time zones by name, and nothing else.

A zone is named as in the IANA database: 'UTC', 'Europe/Berlin',
'America/Argentina/Buenos_Aires', 'Etc/GMT-2'. Only such names are looked up (in the
system's zone database or the `tzdata` package, through zoneinfo): never a path
('/etc/passwd', '../../x'), a file name with a dot, or a POSIX TZ string, so a rule file
or an option cannot make cep read an arbitrary file as a zone.
"""

from __future__ import annotations

import re
from datetime import UTC, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# Levels of letters, digits, `_`, `+` and `-`, each starting with a letter: no `.`, no
# leading `/`, no empty level, so never a path outside the zone database.
_IANA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z][A-Za-z0-9_+\-]*){0,2}")
_LONGEST_NAME = 64

ZONE_HELP = ("a time zone is an IANA name such as 'Europe/Berlin' or 'UTC' (the list: "
             "python3 -c \"import zoneinfo; print(*sorted(zoneinfo.available_timezones()))\")")


def is_zone_name(name: str) -> bool:
    """Whether `name` is spelt like an IANA zone name (whether or not the zone exists)."""
    return len(name) <= _LONGEST_NAME and _IANA_NAME.fullmatch(name) is not None


@cache
def known_zones() -> frozenset[str]:
    """The zone names this machine knows (empty when it has no zone database at all)."""
    return frozenset(available_timezones())


@cache
def get_zone(name: str) -> tzinfo | None:
    """The zone called `name` ('Europe/Berlin', 'UTC'), or None if there is none or `name`
    is not an IANA zone name."""
    if not is_zone_name(name):
        return None
    known = known_zones()
    if known and name not in known and name != "UTC":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return UTC if name == "UTC" else None
