"""Checks of declarations: SET TIMEZONE, CREATE EVENT, CREATE LOCATION, CREATE CONTEXT.

Each function checks one statement kind and registers it in the catalog.
Duplicate names are errors; a later duplicate is reported and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from cep.checks.scope import suggestion
from cep.language import ast
from cep.language.catalog import (
    ATTRIBUTE_TYPES,
    NUMERIC,
    STRING,
    Catalog,
    EventTypeInfo,
)
from cep.language.diagnostics import SETTING, Diagnostics
from cep.language.timezones import ZONE_HELP, get_zone, is_zone_name, known_zones

POLICIES = ("ADD", "IGNORE", "REFRESH", "EXTEND")
MAX_TOPIC_PROBLEMS = 20  # of one topic template, the problems reported one by one
_TEMPLATE_NAME = re.compile(r"\{([^{}/]*)\}")


def text_span(text: ast.Text, offset: int, length: int = 1) -> ast.Span:
    """The span of characters `offset`.. inside a quoted string (after its quote)."""
    col = text.span.col + 1 + offset
    return ast.Span(text.span.file, text.span.line, col, text.span.line, col + length)


def template_names(template: ast.Text) -> list[tuple[str, int]]:
    """`{name}` placeholders of a topic template, with their offsets."""
    return [(m.group(1), m.start()) for m in _TEMPLATE_NAME.finditer(template.value)]


def check_template(template: ast.Text, diagnostics: Diagnostics, publish: bool) -> None:
    """Structural problems of a topic template (empty levels, bad wildcards, braces)."""
    from cep.language.topics import template_problems

    problems = template_problems(template.value)
    shown = template.value if len(template.value) <= 80 else template.value[:80] + "..."
    for message, offset in problems[:MAX_TOPIC_PROBLEMS]:
        diagnostics.error(f"topic '{shown}': {message}", text_span(template, offset))
    if len(problems) > MAX_TOPIC_PROBLEMS:
        diagnostics.error(f"topic '{shown}': and {len(problems) - MAX_TOPIC_PROBLEMS:,} more "
                          "problems", template.span)
    if publish:
        for wildcard in ("+", "#"):
            offset = template.value.find(wildcard)
            if offset >= 0:
                diagnostics.error(f"a PUBLISH topic cannot contain the wildcard `{wildcard}`",
                                  text_span(template, offset))


class _Declared(Protocol):
    """What the catalog holds for a declared name: where it was declared."""

    @property
    def span(self) -> ast.Span: ...


def is_duplicate(stmt: ast.CreateEvent | ast.CreateLocation | ast.CreateContext, kind: str,
                 known: Mapping[str, _Declared], diagnostics: Diagnostics) -> bool:
    """Report a second declaration of a name (the first one stays)."""
    if stmt.name not in known:
        return False
    first = known[stmt.name].span
    diagnostics.error(f"{kind} {stmt.name} is already declared at {first.file}:{first.line}",
                      stmt.name_span)
    return True


# ------------------------------------------------------------------ SET TIMEZONE


def check_timezone(stmt: ast.SetTimezone, catalog: Catalog, diagnostics: Diagnostics,
                   seen: list[ast.SetTimezone]) -> None:
    zone = stmt.zone.value
    if get_zone(zone) is None:
        if is_zone_name(zone):
            diagnostics.error(f"unknown time zone '{zone}': use an IANA name such as "
                              f"'Europe/Berlin' or 'UTC'{suggestion(zone, known_zones())}",
                              stmt.zone.span)
        else:
            shown = zone if len(zone) <= 80 else zone[:80] + "..."
            diagnostics.error(f"unknown time zone '{shown}': {ZONE_HELP}; never a file name "
                              "or a path", stmt.zone.span)
        return
    if seen and seen[0].zone.value != zone:
        first = seen[0]
        diagnostics.error(f"time zone '{zone}' conflicts with '{first.zone.value}' set at "
                          f"{first.span.file}:{first.span.line}: one rule set has one zone",
                          stmt.zone.span)
        return
    seen.append(stmt)
    catalog.timezone = zone
    catalog.timezone_span = stmt.span


# ------------------------------------------------------------------ SET LOCATION


def check_set_location(stmt: ast.SetLocation, catalog: Catalog, diagnostics: Diagnostics,
                       seen: list[ast.SetLocation]) -> None:
    """Where the home is, for the sun: one place per rule set. A wrong one is reported and
    counted as given (the sun events that need it are not reported again)."""
    right = True
    if not -90 <= stmt.lat <= 90:
        diagnostics.error(f"latitude {stmt.lat:g} is outside -90..90: SET LOCATION GEO takes "
                          "(latitude, longitude), such as GEO (52.52, 13.40)", stmt.span)
        right = False
    if not -180 <= stmt.lon <= 180:
        diagnostics.error(f"longitude {stmt.lon:g} is outside -180..180", stmt.span)
        right = False
    if not right:
        diagnostics.declaration_failed(SETTING, "LOCATION")
        return
    if seen and (seen[0].lat, seen[0].lon) != (stmt.lat, stmt.lon):
        first = seen[0]
        diagnostics.error(f"location GEO ({stmt.lat:g}, {stmt.lon:g}) conflicts with GEO "
                          f"({first.lat:g}, {first.lon:g}) set at {first.span.file}:"
                          f"{first.span.line}: one rule set has one location", stmt.span)
        return
    seen.append(stmt)
    catalog.location = (stmt.lat, stmt.lon)
    catalog.location_span = stmt.span


# ------------------------------------------------------------------ CREATE EVENT


def check_create_event(stmt: ast.CreateEvent, catalog: Catalog,
                       diagnostics: Diagnostics) -> None:
    if is_duplicate(stmt, "event type", catalog.events, diagnostics):
        return
    attrs: dict[str, str] = {}
    for attr in stmt.attrs:
        if attr.name in attrs:
            diagnostics.error(f"attribute `{attr.name}` is declared twice in {stmt.name}",
                              attr.span)
            continue
        if attr.type not in ATTRIBUTE_TYPES:
            diagnostics.error(f"unknown type {attr.type} for `{attr.name}`: use INT, FLOAT, "
                              f"STRING, BOOL or TIMESTAMP{suggestion(attr.type, ATTRIBUTE_TYPES)}",
                              attr.span)
            attrs[attr.name] = "ANY"
            continue
        attrs[attr.name] = attr.type
    catalog.events[stmt.name] = EventTypeInfo(stmt.name, attrs, stmt, span=stmt.span)

    def need_attr(ident: ast.Ident, role: str, types: tuple[str, ...] = ()) -> None:
        if ident.name not in attrs:
            diagnostics.error(f"{role} `{ident.name}` is not an attribute of {stmt.name}"
                              f"{suggestion(ident.name, attrs)}", ident.span)
        elif types and attrs[ident.name] not in (*types, "ANY"):
            diagnostics.error(f"{role} `{ident.name}` must be "
                              f"{' or '.join(types)}, not {attrs[ident.name]}", ident.span)

    if stmt.topic is not None:
        binding = stmt.topic
        check_template(binding.topic, diagnostics, publish=False)
        for name, offset in template_names(binding.topic):
            if name and name not in attrs:
                diagnostics.error(f"topic placeholder `{{{name}}}` is not an attribute of "
                                  f"{stmt.name}{suggestion(name, attrs)}",
                                  text_span(binding.topic, offset, len(name) + 2))
        if binding.payload_as is not None:
            need_attr(binding.payload_as, "PAYLOAD AS")
            if binding.payload_as.name in {name for name, _ in template_names(binding.topic)}:
                diagnostics.error(f"`{binding.payload_as.name}` is taken from the topic "
                                  f"(`{{{binding.payload_as.name}}}`) and from the payload "
                                  f"(PAYLOAD AS): take it from one of them",
                                  binding.payload_as.span)
        seen_paths: set[str] = set()
        for path in binding.payload_paths:
            need_attr(ast.Ident(path.attr, path.span), "PAYLOAD path for")
            if path.attr in seen_paths:
                diagnostics.error(f"`{path.attr}` has two PAYLOAD paths", path.span)
            seen_paths.add(path.attr)
            if not path.path.value or any(not part for part in path.path.value.split(".")):
                diagnostics.error(f"bad payload path '{path.path.value}': use dotted keys "
                                  "such as 'sensor.value'", path.path.span)
    if stmt.timestamp_path is not None and not stmt.timestamp_path.value:
        diagnostics.error("TIMESTAMP FROM needs a payload path such as 'time'",
                          stmt.timestamp_path.span)
    if isinstance(stmt.position, ast.LocatedAt):
        role = "LOCATED AT GEO" if stmt.position.geo else "LOCATED AT"
        need_attr(stmt.position.first, role, NUMERIC)
        need_attr(stmt.position.second, role, NUMERIC)
    elif isinstance(stmt.position, ast.LocatedIn):
        need_attr(stmt.position.attr, "LOCATED IN", (STRING,))
    if stmt.entity is not None:
        need_attr(stmt.entity, "ENTITY")
        if stmt.position is None:
            diagnostics.error(f"ENTITY needs a LOCATED clause: {stmt.name} events carry no "
                              "position", stmt.entity.span)


# ------------------------------------------------------------------ CREATE LOCATION


def check_create_location(stmt: ast.CreateLocation, catalog: Catalog,
                          diagnostics: Diagnostics) -> None:
    if is_duplicate(stmt, "location", catalog.locations, diagnostics):
        return
    catalog.locations[stmt.name] = stmt
    shape = stmt.shape
    points = shape.points if isinstance(shape, ast.Polygon) else (shape.center,)
    if isinstance(shape, ast.Polygon) and len(shape.points) < 3:
        diagnostics.error(f"an AREA needs at least 3 corners, {stmt.name} has "
                          f"{len(shape.points)}", shape.span)
    if isinstance(shape, ast.Circle):
        check_positive_distance(shape.radius, diagnostics)
    if shape.geo:
        for point in points:
            if not -90 <= point.x <= 90:
                diagnostics.error(f"latitude {point.x:g} is outside -90..90 (GEO points are "
                                  "(lat, lon))", point.span)
            if not -180 <= point.y <= 180:
                diagnostics.error(f"longitude {point.y:g} is outside -180..180", point.span)


def check_positive_distance(distance: ast.Distance, diagnostics: Diagnostics) -> None:
    if distance.meters <= 0:
        diagnostics.error("a distance must be greater than zero", distance.span)


def check_duration(duration: ast.Duration, diagnostics: Diagnostics) -> None:
    from cep.language.transformer import TIME_UNITS

    canonical = {unit for unit, _ in TIME_UNITS.values()}
    if all(unit in canonical for _, unit in duration.parts) and duration.seconds <= 0:
        diagnostics.error("a duration must be longer than zero", duration.span)


# ------------------------------------------------------------------ CREATE CONTEXT (static part)


def check_clock(time: ast.TimePoint, diagnostics: Diagnostics) -> None:
    """A clock time is one of the day's (00:00 to 23:59); a sun event's offset is a duration
    of less than a day (`SUNSET + 0 min` is allowed: it is SUNSET)."""
    if isinstance(time, ast.SunTime):
        check_sun_offset(time, diagnostics)
        return
    if not (0 <= time.hour <= 23 and 0 <= time.minute <= 59):
        diagnostics.error(f"{time.hour:02d}:{time.minute:02d} is not a clock time: use 00:00 "
                          "to 23:59", time.span)


def check_sun_offset(time: ast.SunTime, diagnostics: Diagnostics) -> None:
    from cep.language.transformer import TIME_UNITS

    offset = time.offset
    if offset is None:
        return
    canonical = {unit for unit, _ in TIME_UNITS.values()}
    if all(unit in canonical for _, unit in offset.parts) and offset.seconds >= 86400:
        diagnostics.error(f"an offset from {time.event} must be less than a day: the event "
                          "happens every day, so write a clock time or a shorter offset",
                          offset.span)


def _same_time(a: ast.TimePoint, b: ast.TimePoint) -> bool:
    """The same clock time, or the same sun event with the same offset (`SUNSET + 1 hour` is
    `SUNSET + 60 min`)."""
    if isinstance(a, ast.ClockTime) and isinstance(b, ast.ClockTime):
        return (a.hour, a.minute) == (b.hour, b.minute)
    if isinstance(a, ast.SunTime) and isinstance(b, ast.SunTime):
        return a.event == b.event and a.offset_seconds == b.offset_seconds
    return False


def check_days(days: tuple[ast.DayRange, ...], diagnostics: Diagnostics) -> None:
    for day_range in days:
        for name in (day_range.first, day_range.last):
            if name is not None and ast.day_number(name) is None:
                diagnostics.error(f"unknown day `{name}`: use MON, TUE, WED, THU, FRI, SAT or "
                                  f"SUN{suggestion(name, ast.DAYS)}", day_range.span)


def check_policy(policy: ast.Policy | None, diagnostics: Diagnostics) -> None:
    if policy is not None and policy.name not in POLICIES:
        diagnostics.error(f"unknown policy {policy.name}: use ADD, IGNORE, REFRESH or EXTEND"
                          f"{suggestion(policy.name, POLICIES)}", policy.span)


def register_context(stmt: ast.CreateContext, catalog: Catalog,
                     diagnostics: Diagnostics) -> None:
    """Register a context and check what needs no other declaration."""
    if is_duplicate(stmt, "context", catalog.contexts, diagnostics):
        return
    catalog.contexts[stmt.name] = stmt
    spec = stmt.spec
    if isinstance(spec, ast.Recurring):
        check_clock(spec.start, diagnostics)
        check_clock(spec.end, diagnostics)
        if _same_time(spec.start, spec.end):
            diagnostics.error("START and END are the same time, so the interval would be "
                              "empty", spec.end.span)
        check_days(spec.days, diagnostics)
    elif isinstance(spec, ast.EventInterval):
        if spec.duration is not None:
            check_duration(spec.duration, diagnostics)
        check_policy(spec.policy, diagnostics)
        _check_repeated(spec.keys, diagnostics)
    elif isinstance(spec, ast.EntityDistance):
        check_positive_distance(spec.distance, diagnostics)
        if not spec.entity.value:
            diagnostics.error("the entity id must not be empty", spec.entity.span)
    elif isinstance(spec, ast.EventDistance):
        check_positive_distance(spec.distance, diagnostics)
        check_duration(spec.duration, diagnostics)
        check_policy(spec.policy, diagnostics)
    elif isinstance(spec, ast.Partition):
        _check_repeated(spec.attrs, diagnostics)


def _check_repeated(attrs: tuple[ast.Ident, ...], diagnostics: Diagnostics) -> None:
    seen: set[str] = set()
    for attr in attrs:
        if attr.name in seen:
            diagnostics.error(f"`{attr.name}` appears twice in PARTITION BY", attr.span)
        seen.add(attr.name)
