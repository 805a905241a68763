"""WSU CASAS sensor-event files: `date time sensor value [annotation...]`.

Fields are separated by spaces or tabs (runs of them). Each line becomes one message on
topic `casas/<sensor>` whose payload is the raw value (`ON`, `OFF`, `OPEN`, `21.5`, ...).
Annotations (activity labels such as `Sleeping begin`) are not bus traffic and are left
out. Times have no zone: they are read in the zone given to the importer.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import tzinfo

from cep.tools.importers.common import (
    ImportStats,
    LineReporter,
    Message,
    OrderWatch,
    Report,
    is_topic_level,
    numbered_lines,
    parse_local_time,
)

TOPIC_PREFIX = "casas/"


def read_casas(path: str, tz: tzinfo, stats: ImportStats, report: Report,
               name: str | None = None) -> Iterator[Message]:
    """The messages of a CASAS file; bad lines are reported and skipped."""
    reporter = LineReporter(name or path, stats, report)
    order = OrderWatch(stats)
    for number, text in numbered_lines(path, reporter):
        fields = text.split()
        if len(fields) < 4:
            reporter.bad(number, f"expected `date time sensor value`, found {len(fields)} "
                                 f"field{'s' if len(fields) != 1 else ''}")
            continue
        date, clock, sensor, value = fields[:4]
        ts = parse_local_time(f"{date} {clock}", tz)
        if ts is None:
            reporter.bad(number, f"`{date} {clock}` is not a date and time "
                                 "(YYYY-MM-DD HH:MM:SS[.ffffff])")
            continue
        if parse_local_time(f"{sensor} {value}", tz) is not None:
            reporter.bad(number, "a second date and time where the sensor should be (an "
                                 "interval file? those are `cep import ordonez`)")
            continue
        if not is_topic_level(sensor):
            reporter.bad(number, f"sensor name {sensor!r} cannot be a topic level "
                                 "(it holds +, # or /)")
            continue
        order.see(ts)
        yield Message(ts, TOPIC_PREFIX + sensor, value, (number,))
