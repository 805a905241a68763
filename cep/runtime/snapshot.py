"""The engine's state as data: what a checkpoint holds, and how it is read back.

A snapshot is a JSON document (the state folder's checkpoint, see cep.adapters.state):
plain data, never code, so loading one cannot run anything.  Each stateful part of the
engine writes its own section with a `StateWriter` and reads it back with a
`StateReader`; the two share three tables, so that what is shared in memory is shared
in the snapshot:

- **events**: every event the state holds (in a partial match, a window, a context
  instance), written once and referred to by its index;
- **instances**: context instances, referred to by number (0: the always-open one);
- **timers**: each timer as `[deadline, priority, seq]`: read back into the engine's
  queue with the same place, so timers due at one instant fire in the same order as
  they would have without the restart.

Values (attributes, keys, remembered values) are JSON values, except those JSON cannot
carry, which are tagged objects: `{"$f": "nan"|"inf"|"-inf"}` (floats),
`{"$t": [...]}` (tuples), `{"$d": [[k, v], ...]}` (maps), `{"$e": n}` (an event of
the table).  A plain JSON object never appears as a value, so the tags cannot be
confused with data.

A part that cannot read its section (a missing or mistyped field) raises
`StateFormatError`: the caller refuses the whole snapshot rather than run with a part
of the state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cep.runtime.clock import Timer, TimerQueue
from cep.runtime.events import Bound, Event, Match

if TYPE_CHECKING:
    from cep.runtime.instances import ContextInstance

FORMAT = "cep-state"
VERSION = 1

Json = Any  # what json.loads gives back: dicts, lists, str, int, float, bool, None


class StateFormatError(ValueError):
    """A snapshot that does not say what this version of cep writes."""


def need(condition: bool, what: str) -> None:
    """Raise StateFormatError(`what`) unless `condition` (for the parts' readers)."""
    if not condition:
        raise StateFormatError(what)


_FLOAT_TAGS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class StateWriter:
    """Turns engine objects into JSON data, filling the shared tables."""

    def __init__(self) -> None:
        self.events: list[Json] = []
        self._event_ids: dict[int, int] = {}
        self._keep: list[Event] = []  # the events indexed, so their ids stay theirs
        self.instance_ids: dict[int, int] = {}  # id(instance) -> its number

    # ---------------------------------------------------------------- values
    def value(self, value: Any) -> Json:
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            return value
        if kind is float:
            if math.isfinite(value):
                return value
            return {"$f": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        if kind is list:
            return [self.value(item) for item in value]
        if kind is tuple:
            return {"$t": [self.value(item) for item in value]}
        if kind is dict:
            return {"$d": [[self.value(k), self.value(v)] for k, v in value.items()]}
        if kind is Event:
            return {"$e": self.event(value)}
        if isinstance(value, str):  # subclasses of the plain types, as the plain type
            return str(value)
        if isinstance(value, int):
            return bool(value) if isinstance(value, bool) else int(value)
        if isinstance(value, float):
            return self.value(float(value))
        raise TypeError(f"a value of type {kind.__name__} cannot be saved")

    def attrs(self, attrs: dict[str, Any]) -> Json:
        for v in attrs.values():  # the usual case, plain values: one copy, in C
            kind = type(v)
            if kind is float:
                if v - v != 0.0:  # NaN or an infinity
                    break
            elif kind is not str and kind is not int and kind is not bool and v is not None:
                break
        else:
            return dict(attrs)
        return {name: self.value(v) for name, v in attrs.items()}

    # ---------------------------------------------------------------- events and matches
    def event(self, event: Event) -> int:
        """The event's number in the events table (written the first time)."""
        number = self._event_ids.get(id(event))
        if number is None:
            number = len(self.events)
            self._event_ids[id(event)] = number
            self._keep.append(event)
            self.events.append([event.type, self.value(event.ts), self.attrs(event.attrs),
                                event.source])
        return number

    def bound(self, bound: Bound) -> Json:
        """A tag's binding: an event's number, or a list of bindings (repetitions)."""
        if type(bound) is Event:
            return self.event(bound)
        assert isinstance(bound, list)
        return [self.bound(item) for item in bound]

    def match(self, match: Match | None) -> Json:
        if match is None:
            return None
        return {tag: self.bound(b) for tag, b in match.items()}

    # ---------------------------------------------------------------- timers and instances
    def timer(self, timer: Timer | None) -> Json:
        """`[deadline, priority, seq]`, or None for no timer (or a cancelled or fired one)."""
        if timer is None or timer.cancelled or timer.queue is None:
            return None
        return [self.value(timer.deadline), timer.priority, timer.seq]

    def add_instance(self, instance: ContextInstance) -> int:
        """Number an instance (its context's section writes its content)."""
        number = self.instance_ids.get(id(instance))
        if number is None:
            number = self.instance_ids[id(instance)] = len(self.instance_ids)
        return number

    def instance(self, instance: ContextInstance) -> int:
        """The number of an instance its context has written (a rule's state refers to it)."""
        number = self.instance_ids.get(id(instance))
        if number is None:
            raise ValueError(f"{instance!r} is not an open instance of its context")
        return number


class StateReader:
    """Turns a snapshot's data back into engine objects (see `StateWriter`)."""

    def __init__(self, events: Json, timers: TimerQueue) -> None:
        need(isinstance(events, list), "the events table is not a list")
        self._raw_events: list[Json] = events
        self._events: list[Event | None] = [None] * len(events)
        self.timers = timers
        self.instances: dict[int, ContextInstance] = {}
        self.timer_count = 0    # timers read back
        self._timer_seqs: set[int] = set()

    # ---------------------------------------------------------------- values
    def value(self, data: Json) -> Any:
        kind = type(data)
        if kind is str or kind is int or kind is bool or data is None or kind is float:
            return data
        if kind is list:
            return [self.value(item) for item in data]
        if kind is dict and len(data) == 1:
            ((tag, body),) = data.items()
            if tag == "$f" and body in _FLOAT_TAGS:
                return _FLOAT_TAGS[body]
            if tag == "$t" and type(body) is list:
                return tuple(self.value(item) for item in body)
            if tag == "$d" and type(body) is list:
                out: dict[Any, Any] = {}
                for pair in body:
                    need(type(pair) is list and len(pair) == 2, "a map entry is not a pair")
                    out[self.value(pair[0])] = self.value(pair[1])
                return out
            if tag == "$e":
                return self.event(body)
        raise StateFormatError(f"not a saved value: {str(data)[:60]}")

    def attrs(self, data: Json) -> dict[str, Any]:
        need(type(data) is dict, "attributes are not an object")
        for v in data.values():
            kind = type(v)
            if kind is not str and kind is not int and kind is not float and \
                    kind is not bool and v is not None:
                break
        else:  # plain values: the JSON object read is taken as it is (it is nobody else's)
            return data  # type: ignore[no-any-return]
        return {str(name): self.value(v) for name, v in data.items()}

    def number(self, data: Json, what: str) -> float:
        value = self.value(data)
        need(type(value) in (int, float), f"{what} is not a number")
        return float(value)

    # ---------------------------------------------------------------- events and matches
    def event(self, number: Json) -> Event:
        need(type(number) is int and 0 <= number < len(self._events),
             f"no event #{number} in the events table")
        event = self._events[number]
        if event is None:
            raw = self._raw_events[number]
            need(type(raw) is list and len(raw) == 4 and type(raw[0]) is str
                 and (raw[3] is None or type(raw[3]) is str), f"event #{number} is damaged")
            # (an event may hold itself only through a cycle no engine makes: read once)
            event = Event(raw[0], self.number(raw[1], f"event #{number}'s time"), {}, raw[3])
            self._events[number] = event
            event.attrs = self.attrs(raw[2])
        return event

    def bound(self, data: Json) -> Bound:
        if type(data) is list:
            return [self.bound(item) for item in data]
        return self.event(data)

    def match(self, data: Json) -> Match:
        if data is None:
            return {}
        need(type(data) is dict, "a match is not an object")
        return {str(tag): self.bound(b) for tag, b in data.items()}

    # ---------------------------------------------------------------- timers and instances
    def timer(self, data: Json, callback: Callable[[float], None]) -> Timer | None:
        """Schedule `callback` where the saved timer was (None: there was none)."""
        if data is None:
            return None
        need(type(data) is list and len(data) == 3 and type(data[1]) is int
             and type(data[2]) is int, "a timer is not [deadline, priority, seq]")
        need(data[2] not in self._timer_seqs, f"timer #{data[2]} is given twice")
        self._timer_seqs.add(data[2])
        self.timer_count += 1
        return self.timers.restore(self.number(data[0], "a timer's deadline"), data[1],
                                   data[2], callback)

    def add_instance(self, number: Json, instance: ContextInstance) -> None:
        need(type(number) is int and number not in self.instances,
             f"context instance #{number} is given twice")
        self.instances[number] = instance

    def instance(self, number: Json) -> ContextInstance:
        need(type(number) is int and number in self.instances,
             f"no context instance #{number}")
        return self.instances[number]
