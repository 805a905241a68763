"""The usual trace line, from its JSON value to the engine, in one function.

Most lines of a trace are bus messages of one shape: `{"ts": ISO-8601 text with an offset,
or Unix seconds, "topic": a topic one declared type maps, "payload": a JSON object whose
keys are the type's attributes}` (or a number or text for a `PAYLOAD AS` type).  Read
the general way such a line goes through four steps with an object each (the trace
record, the bus mapping's routes, the type's decoder, the event) and then the replay
loop; `fused_reading(bus, process_values, where)` returns a function that does it all at
once for exactly those lines: it reads the line's values and hands them to the engine
(`Engine.process_values`, which makes an event only when something can use it).  For any
other line it does nothing and returns None, and the line goes the general way, which
says what is wrong with it, if anything: so the result is the same either way, line for
line (tests replay traces both ways).

It takes a line only when the general way would make exactly one event of it with no
report: a topic the bus mapping has met before (its `known_topics`) that one type maps,
whose topic levels converted; a decoder without PAYLOAD paths or TIMESTAMP FROM; every
value taken as it is or converted without a problem; a time not earlier than the line
before (a line whose time goes back is reported by the general way).  The first line of
each topic goes the general way (which matches it against the templates and remembers
it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from cep.adapters.bus import BusMapping
from cep.adapters.isotimes import SUMS_PAY, OffsetTimes
from cep.adapters.payload import Converter, PayloadDecoder
from cep.adapters.trace import Take
from cep.runtime.convert import BadValue
from cep.runtime.events import Attrs
from cep.runtime.limits import EARLIEST_TS, LATEST_TS

# (attribute, the type taken as it is or None, converter): PayloadDecoder.plain_fields
_PlainFields = tuple[tuple[str, type | None, Converter], ...]
_TopicPlan = tuple[str, dict[str, Any], _PlainFields | None, PayloadDecoder]
# Engine.process_values: (type name, time, attributes, source topic)
ProcessValues = Callable[[str, float, Attrs, str | None], None]


class LineHolder(Protocol):
    """Where the replay keeps the number of the line being processed (for its reports)."""

    line: int | None


def fused_reading(bus: BusMapping, process_values: ProcessValues,
                  where: LineHolder) -> Take:
    """The fused reading of trace lines through `bus` (see the module's docstring):
    `take(number, data, last_ts)` for line `number` whose JSON value is the object `data`,
    the line before it being at `last_ts`.  When it takes the line it sets `where.line`,
    hands the event's values to `process_values` and returns the line's time; else it
    returns None and has done nothing."""
    known = bus.known_topics()
    # ISO times: by sums within a minute where that pays (cep.adapters.isotimes), else by
    # fromisoformat here (a call to a function doing it costs a tenth of the line)
    sums = OffsetTimes().unix if SUMS_PAY else None
    parse_iso = datetime.fromisoformat
    # topic -> what the fused reading needs of its one route, worked out at the topic's
    # first fused line: (type name, converted topic values, plain fields or None, the
    # decoder), or None when the route is not one this reading takes.  Only topics
    # `known` holds are planned, and a known topic's routes never change.
    plans: dict[str, _TopicPlan | None] = {}

    def plan_of(topic: str) -> _TopicPlan | None:
        routes = known.get(topic)
        if routes is None:
            return None  # not met yet: the general way meets it (and it is planned later)
        plan: _TopicPlan | None = None
        if len(routes) == 1:
            decoder, bound, error = routes[0]
            if error is None:
                plan = (decoder.name, bound, decoder.plain_fields, decoder)
        plans[topic] = plan
        return plan

    def take(number: int, data: dict[str, Any], last_ts: float) -> float | None:
        if len(data) != 3:
            return None
        try:  # (subscripts: cheaper than get, and a line of the usual shape has all three)
            topic = data["topic"]
            raw_ts: Any = data["ts"]  # JSON values: their types are tested here
            payload: Any = data["payload"]
        except KeyError:
            return None
        if type(topic) is not str:
            return None
        # (a known topic has no wildcards: only the reader's good lines are decoded)
        try:
            plan = plans[topic]
        except KeyError:
            plan = plan_of(topic)
        if plan is None:
            return None
        type_name, bound, fields, decoder = plan
        kind = type(raw_ts)
        if kind is str:
            if sums is not None:
                unix = sums(raw_ts)  # (None: not ISO-8601 with an offset)
                if unix is None:
                    return None
                ts = unix
            else:
                try:
                    moment = parse_iso(raw_ts)
                except ValueError:
                    return None
                if moment.tzinfo is None:
                    return None
                ts = moment.timestamp()
        elif kind is float or kind is int:
            try:
                ts = float(raw_ts)  # (milliseconds are out of range: the general way)
            except OverflowError:
                return None
        else:
            return None
        if not EARLIEST_TS <= ts < LATEST_TS or ts < last_ts:  # (also NaN)
            return None
        attrs = bound.copy() if bound else {}
        if fields is not None and type(payload) is dict:
            for attr, native, convert in fields:
                item = payload.get(attr)
                if item is None:
                    continue
                if type(item) is native:
                    attrs[attr] = item
                    continue
                try:
                    attrs[attr] = convert(item)
                except BadValue:
                    return None
        elif not decoder.plain_raw or decoder.raw_attr is None:
            return None
        else:
            attr, convert = decoder.raw_attr
            value_kind = type(payload)
            if value_kind is decoder.raw_native and (value_kind is int or
                                                     payload - payload == 0):
                attrs[attr] = payload  # a whole number, or a finite float
            elif value_kind is str and payload[:1] != '"':  # (a quoted text: the general way)
                try:
                    attrs[attr] = convert(payload)
                except BadValue:
                    return None
            else:
                return None
        where.line = number
        process_values(type_name, ts, attrs, topic)
        return ts

    return take
