"""The usual trace line, from its JSON value to the engine, in one function.

Most lines of a trace are bus messages of one shape: `{"ts": ISO-8601 text with an offset,
or Unix seconds, "topic": a topic one declared type maps, "payload": a JSON object whose
keys are the type's attributes}` (or a number or text for a `PAYLOAD AS` type).  Read
the general way such a line goes through four steps with an object each (the trace
record, the bus mapping's routes, the type's decoder, the event) and then the replay
loop; `fused_reading(bus, engine, where)` returns a function that does it all at once,
in one loop over the lines, for exactly those lines: it reads the line's values and hands
them to the engine (`Engine.process_values`, which makes an event only when something can
use it), or, when the type's screen (the early drop, cep.runtime.screen) turns them away
and no timer falls due (`Engine.pass_window`), counts them, and the engine takes them
together (`Engine.pass_events`) before anything else reaches it.  The first other line it
hands back untouched, and that line goes the general way, which says what is wrong with
it, if anything: so the result is the same either way, line for line (tests replay traces
both ways).

It takes a line only when the general way would make exactly one event of it with no
report: a topic the bus mapping has met before (its `known_topics`) that one type maps,
whose topic levels converted; a decoder without PAYLOAD paths or TIMESTAMP FROM; every
value taken as it is or converted without a problem; a time not earlier than the line
before (a line whose time goes back is reported by the general way).  The first line of
each topic goes the general way (which matches it against the templates and remembers
it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

from cep.adapters.bus import BusMapping
from cep.adapters.isotimes import SUMS_PAY, OffsetTimes
from cep.adapters.jsonlib import loads
from cep.adapters.payload import MAX_PAYLOAD, Converter, PayloadDecoder
from cep.adapters.trace import NOT_PARSED, ReadState, Take
from cep.runtime.convert import BadValue
from cep.runtime.events import Attrs
from cep.runtime.limits import EARLIEST_TS, LATEST_TS
from cep.runtime.screen import Screen

# (attribute, the type taken as it is or None, converter): PayloadDecoder.plain_fields
_PlainFields = tuple[tuple[str, type | None, Converter], ...]
# A topic's screen, applied to the values its lines make (see `_quick_screen`): the wanted
# (attribute, constants), and per partition (its live keys, the topic's key or None, else
# the attribute holding the key)
_Quick = tuple[tuple[tuple[str, frozenset[Any]], ...],
               tuple[tuple[dict[Any, Any], Any, str | None], ...]]
_TopicPlan = tuple[str, dict[str, Any], _PlainFields | None, PayloadDecoder, _Quick | None]


class ValuesEngine(Protocol):
    """What the fused reading needs of the engine (cep.runtime.engine.Engine)."""

    def process_values(self, type_name: str, ts: float, attrs: Attrs,
                       source: str | None) -> None: ...

    def pass_window(self) -> tuple[float, float]: ...

    def pass_events(self, count: int, ts: float) -> None: ...

    def screen_of_type(self, type_name: str) -> tuple[bool, Screen | None]: ...


class LineHolder(Protocol):
    """Where the replay keeps the number of the line being processed (for its reports)."""

    line: int | None


def _quick_screen(seen: bool, screen: Screen | None, bound: dict[str, Any]) -> _Quick | None:
    """The screen of a type (`Engine.screen_of_type`) as the fused reading applies it to
    a topic's lines, or None when it is not applied (the engine decides each line).

    The values of a fused line are scalars (each hashable), so the screen's tests need
    no guard: an attribute the topic gives is tested once, here (a wanted value: None,
    every line goes to the engine; else its test is left out), and a partition keyed by a
    topic attribute looks its key up each line (a key the partition does not know yet
    means the line must be observed).  A partition keyed by several attributes: None."""
    if not seen:
        return (), ()  # nothing sees the type: every line only moves the clock
    if screen is None:
        return None
    wanted: list[tuple[str, frozenset[Any]]] = []
    for attr, constants in screen.wanted:
        if attr in bound:
            if bound[attr] in constants:
                return None
            continue
        wanted.append((attr, constants))
    keys: list[tuple[dict[Any, Any], Any, str | None]] = []
    for partition in screen.partitions:
        single = partition.single
        if single is None:
            return None
        if single in bound:
            keys.append((partition.by_key, bound[single], None))
        else:
            keys.append((partition.by_key, None, single))
    return tuple(wanted), tuple(keys)


def fused_reading(bus: BusMapping, engine: ValuesEngine, where: LineHolder) -> Take:
    """The fused reading of trace lines through `bus` (see the module's docstring):
    `take(numbered, state)` reads on through the numbered lines; a line it takes it
    processes (setting `where.line` when it hands values to the engine), and the first
    one it does not take it returns, with its JSON value when it has parsed it
    (cep.adapters.trace.Take)."""
    known = bus.known_topics()
    process_values = engine.process_values
    pass_window, pass_events = engine.pass_window, engine.pass_events
    screen_of_type = engine.screen_of_type
    # ISO times: by sums within a minute where that pays (cep.adapters.isotimes), else by
    # fromisoformat here (a call to a function doing it costs a tenth of the line)
    sums = OffsetTimes().unix if SUMS_PAY else None
    parse_iso = datetime.fromisoformat
    # topic -> what the fused reading needs of its one route, worked out at the topic's
    # first fused line: (type name, converted topic values, plain fields or None, the
    # decoder, the screen as applied here or None), or None when the route is not one
    # this reading takes.  Only topics `known` holds are planned, and a known topic's
    # routes never change; nor do the engine's screens.
    plans: dict[str, _TopicPlan | None] = {}

    def plan_of(topic: str) -> _TopicPlan | None:
        routes = known.get(topic)
        if routes is None:
            return None  # not met yet: the general way meets it (and it is planned later)
        plan: _TopicPlan | None = None
        if len(routes) == 1:
            decoder, bound, error = routes[0]
            if error is None:
                quick = _quick_screen(*screen_of_type(decoder.name), bound)
                plan = (decoder.name, bound, decoder.plain_fields, decoder, quick)
        plans[topic] = plan
        return plan

    def take(numbered: Iterator[tuple[int, bytes]], state: ReadState
             ) -> tuple[int, bytes, Any] | None:
        # One loop for all the lines it takes: a call per line would cost a tenth of it.
        # Events the screen turns away are given to the engine together (`passed` of
        # them, the last at `passed_ts`) before anything else reaches it.
        last_ts, last_line, last_raw = state.last_ts, state.last_line, state.last_raw
        first_line, taken = state.first_line, 0
        # When an event nothing can use only moves the clock (Engine.pass_window), asked
        # again when the window kept does not hold a line's time; a call into the engine
        # ends it.
        pass_from, pass_to = math.inf, -math.inf
        passed, passed_ts = 0, 0.0
        number = 0
        try:
            for number, raw in numbered:
                if len(raw) > MAX_PAYLOAD:
                    return number, raw, NOT_PARSED
                try:
                    data = loads(raw)
                except ValueError:
                    return number, raw, NOT_PARSED
                if type(data) is not dict or len(data) != 3:
                    return number, raw, data
                try:  # (subscripts: cheaper than get; the usual line has all three)
                    topic = data["topic"]
                    raw_ts: Any = data["ts"]  # JSON values: their types are tested here
                    payload: Any = data["payload"]
                except KeyError:
                    return number, raw, data
                if type(topic) is not str:
                    return number, raw, data
                # (a known topic has no wildcards: only the reader's good lines are decoded)
                try:
                    plan = plans[topic]
                except KeyError:
                    plan = plan_of(topic)
                if plan is None:
                    return number, raw, data
                type_name, bound, fields, decoder, quick = plan
                kind = type(raw_ts)
                if kind is str:
                    if sums is not None:
                        unix = sums(raw_ts)  # (None: not ISO-8601 with an offset)
                        if unix is None:
                            return number, raw, data
                        ts = unix
                    else:
                        try:
                            moment = parse_iso(raw_ts)
                        except ValueError:
                            return number, raw, data
                        if moment.tzinfo is None:
                            return number, raw, data
                        ts = moment.timestamp()
                elif kind is float or kind is int:
                    try:
                        ts = float(raw_ts)  # (milliseconds are out of range: the general way)
                    except OverflowError:
                        return number, raw, data
                else:
                    return number, raw, data
                if not EARLIEST_TS <= ts < LATEST_TS or ts < last_ts:  # (also NaN)
                    return number, raw, data
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
                            return number, raw, data
                elif not decoder.plain_raw or decoder.raw_attr is None:
                    return number, raw, data
                else:
                    attr, convert = decoder.raw_attr
                    value_kind = type(payload)
                    if value_kind is decoder.raw_native and (value_kind is int or
                                                             payload - payload == 0):
                        attrs[attr] = payload  # a whole number, or a finite float
                    elif value_kind is str and payload[:1] != '"':  # (quoted: general way)
                        try:
                            attrs[attr] = convert(payload)
                        except BadValue:
                            return number, raw, data
                    else:
                        return number, raw, data
                last_ts, last_line, last_raw = ts, number, raw_ts
                if not first_line:
                    first_line = number
                taken += 1
                if quick is not None:  # the type's screen (cep.runtime.screen), written out
                    wanted, keys = quick
                    for attr, constants in wanted:
                        if attrs.get(attr) in constants:
                            break  # a rule wants it
                    else:
                        for live, key, key_attr in keys:
                            if key_attr is not None:
                                key = attrs.get(key_attr)
                                if key is None:
                                    continue  # it belongs to no instance
                            if key not in live:
                                break  # it opens an instance
                        else:
                            if not pass_from <= ts < pass_to:  # (worked out when needed)
                                pass_from, pass_to = pass_window()
                            if pass_from <= ts < pass_to:
                                passed += 1
                                passed_ts = ts
                                continue
                if passed:
                    pass_events(passed, passed_ts)
                    passed = 0
                where.line = number
                process_values(type_name, ts, attrs, topic)
                pass_to = -math.inf  # the engine has moved on: the window is worked out again
            return None
        finally:
            if passed:
                pass_events(passed, passed_ts)
            state.last_ts, state.last_line, state.last_raw = last_ts, last_line, last_raw
            state.first_line = first_line
            state.taken += taken
            state.lines = number

    return take
