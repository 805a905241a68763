"""Ordóñez "ADLs Recognition Using Binary Sensors" (UCI) sensor files.

After a two-line header (`Start time ... End time ... Location Type Place` and a line of
dashes), each row is an interval: `start  end  Location  Type  Place`, the columns
separated by runs of tabs (sometimes spaces around them). A row becomes two messages on
topic `ordonez/<Location>`: `ON` at its start and `OFF` at its end. All messages are then
put in time order; at one instant an interval's end comes before another interval's
start (so back-to-back intervals of one sensor read OFF, ON), and a zero-length interval
gives its ON before its OFF.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import tzinfo

from cep.tools.importers.common import (
    ImportRefused,
    ImportStats,
    LineReporter,
    Message,
    OrderWatch,
    Report,
    is_topic_level,
    numbered_lines,
    parse_local_time,
)

TOPIC_PREFIX = "ordonez/"
_COLUMNS = re.compile(r"\t+|\s{2,}")


def _is_header(number: int, fields: list[str]) -> bool:
    if fields and fields[0].lower().startswith("start time"):
        return True
    return number <= 2 and all(set(f) <= {"-"} for f in fields)


def read_ordonez(path: str, tz: tzinfo, stats: ImportStats, report: Report,
                 name: str | None = None) -> Iterator[Message]:
    """The ON/OFF messages of an Ordóñez *_Sensors.txt file (unsorted; see write_trace)."""
    reporter = LineReporter(name or path, stats, report)
    order = OrderWatch(stats)
    for number, text in numbered_lines(path, reporter):
        fields = [f.strip() for f in _COLUMNS.split(text.strip()) if f.strip()]
        if _is_header(number, fields):
            if len(fields) >= 3 and fields[2].lower() == "activity":
                raise ImportRefused(f"{reporter.name}:{number}: this is an activity-label file "
                                    "(start, end, Activity), not sensor events: import the "
                                    "*_Sensors.txt file")
            continue
        if len(fields) < 5:
            plural = "s" if len(fields) != 1 else ""
            reporter.bad(number, "expected `start  end  Location  Type  Place` separated by "
                                 f"tabs, found {len(fields)} field{plural}")
            continue
        start = parse_local_time(fields[0], tz)
        end = parse_local_time(fields[1], tz)
        location = fields[2]
        if start is None or end is None:
            bad = fields[0] if start is None else fields[1]
            reporter.bad(number, f"`{bad}` is not a date and time (YYYY-MM-DD HH:MM:SS)")
            continue
        if end < start:
            reporter.bad(number, f"the interval ends ({fields[1]}) before it starts "
                                 f"({fields[0]})")
            continue
        if not is_topic_level(location):
            reporter.bad(number, f"location {location!r} cannot be a topic level "
                                 "(it holds +, # or /)")
            continue
        topic = TOPIC_PREFIX + location
        order.see(start)
        yield Message(start, topic, "ON", (1, number, 0))
        # at one instant: ends (0) before starts (1); a zero-length interval keeps ON, OFF
        yield Message(end, topic, "OFF", (0 if end > start else 1, number, 1))
