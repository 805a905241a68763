"""The sun: sun events (`START SUNSET`, `timer:at(DUSK - 15 min)`) and `sun_elevation()` need
the home's place (`SET LOCATION GEO (lat, lon)`), and far north or south some sun events do
not happen on every day of the year.

Checks may not use the runtime's astronomy (cep.runtime.sun), so whether a sun event can
fail to happen is worked out here from a bound on the sun's declination alone:

The sun's declination δ stays within ±ε (ε = 23.44°, the Earth's axial tilt). At latitude φ
its altitude is at most 90° - |φ - δ| (at noon) and at least |φ + δ| - 90° (at midnight).
An event at altitude h (sunrise and sunset: h = -0.833°, the upper limb at the horizon with
standard refraction; dawn and dusk: h = -6°, civil twilight) fails on a day when the sun
stays above h all day or below it all day. Over a year δ takes every value in [-ε, ε], so
the event fails on some day exactly when |φ| > 90° - ε - |h| (polar day comes first: the
night-time bound is the tighter one for h < 0): 65.73° for sunrise and sunset, 60.56° for
dawn and dusk. The approximation leaves out the equation of time, the change of δ within a
day and refraction other than the standard one, which move the real bound by well under a
tenth of a degree; a place that close to it may get the warning or miss it.
"""

from __future__ import annotations

from collections.abc import Iterator

from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.diagnostics import SETTING, Diagnostics
from cep.language.walk import context_expressions, rule_expressions, walk, walk_expr

AXIAL_TILT = 23.44  # degrees: the bound of the sun's declination
SUN_ALTITUDES = {"SUNRISE": -0.833, "SUNSET": -0.833, "DAWN": -6.0, "DUSK": -6.0}
SUN_FUNCTION = "sun_elevation"
EXAMPLE = "SET LOCATION GEO (52.52, 13.40);"


def polar_latitude(event: str) -> float:
    """The latitude beyond which `event` does not happen on some days of the year."""
    return 90.0 - AXIAL_TILT - abs(SUN_ALTITUDES[event])


_LOWEST_POLAR = min(polar_latitude(event) for event in SUN_ALTITUDES)


def _pattern_uses(pattern: ast.Pattern) -> Iterator[tuple[str, ast.Span]]:
    for node in walk(pattern):
        if isinstance(node, ast.TimerAt) and isinstance(node.at, ast.SunTime):
            yield node.at.event, node.at.span


def _expression_uses(exprs: Iterator[ast.Expr]) -> Iterator[tuple[str, ast.Span]]:
    for expr in exprs:
        for node in walk_expr(expr):
            if isinstance(node, ast.Call) and node.name == SUN_FUNCTION:
                yield f"{SUN_FUNCTION}()", node.span


def sun_uses(files: list[ast.RuleFile]) -> Iterator[tuple[str, ast.Span]]:
    """Every use of the sun, in file order: (the sun event, or `sun_elevation()`; where)."""
    for file in files:
        for stmt in file.statements:
            if isinstance(stmt, ast.CreateContext):
                spec = stmt.spec
                if isinstance(spec, ast.Recurring):
                    for point in (spec.start, spec.end):
                        if isinstance(point, ast.SunTime):
                            yield point.event, point.span
                sources: list[ast.Source] = []
                if isinstance(spec, ast.EventInterval):
                    sources = [spec.initiator] + ([spec.terminator] if spec.terminator else [])
                for source in sources:
                    if isinstance(source, ast.PatternSource):
                        yield from _pattern_uses(source.pattern)
                yield from _expression_uses(context_expressions(stmt))
            elif isinstance(stmt, (ast.SelectRule, ast.OnRule)):
                trigger = stmt.source if isinstance(stmt, ast.SelectRule) else stmt.trigger
                if isinstance(trigger, ast.PatternSource):
                    yield from _pattern_uses(trigger.pattern)
                yield from _expression_uses(rule_expressions(stmt))
            elif isinstance(stmt, ast.CreateWindow) and stmt.source.filter is not None:
                yield from _expression_uses(iter([stmt.source.filter]))


def check_sun(files: list[ast.RuleFile], catalog: Catalog, diagnostics: Diagnostics) -> None:
    """Without SET LOCATION, the first use of the sun is an error (one for the rule set: one
    statement fixes them all); with it, a warning at the first use of each sun event that
    does not happen on some days at the home's latitude."""
    location = catalog.location
    if location is None and diagnostics.failed_to_declare(SETTING, "LOCATION"):
        return  # a SET LOCATION that did not parse, or is wrong: said there
    if location is not None and abs(location[0]) <= _LOWEST_POLAR:
        return  # every sun event happens every day here: nothing to look for
    uses = sun_uses(files)
    if location is None:
        first = next(uses, None)
        if first is None:
            return
        what, span = first
        others = sum(1 for _ in uses)
        also = (f" (and {others:,} other use{'s' if others != 1 else ''} of the sun)"
                if others else "")
        diagnostics.error(f"{what} needs to know where the home is: add `SET LOCATION GEO "
                          f"(latitude, longitude)` to the rule set, such as `{EXAMPLE}`{also}",
                          span)
        return
    latitude = location[0]
    warned: set[str] = set()
    for what, span in uses:
        if what not in SUN_ALTITUDES or what in warned:
            continue
        warned.add(what)
        if abs(latitude) <= polar_latitude(what):
            continue
        line = "the horizon" if what in ("SUNRISE", "SUNSET") else "6° below the horizon"
        diagnostics.warning(f"at latitude {latitude:g} there are days without {what} (on them "
                            f"the sun does not cross {line}), and on those days this does not "
                            "happen; use a clock time if it must happen every day", span)
