"""What `changed(attr)` remembers: per event type and source, the last value of each
attribute some filter asks about, and nothing else.

The source of an event is the MQTT topic of its message, or its type for an event
without one (derived, or given directly in a trace). The memory is engine-wide (not
per context instance) and is updated by every event of the type, whether or not a
filter passes: the engine calls `observe` before anything else sees the event, and
the filters it then runs read `changed` for that event. The first event from a
source counts as changed; null differs from every value, and two nulls in a row are
no change.

What a snapshot holds is `memory` (`snapshot` / `restore`): `watched` is made as the rules
are compiled, and `current` only answers for the event being delivered (every read of
it follows that event's `observe`), so neither is state.
"""

from __future__ import annotations

from typing import Any

from cep.runtime.events import Event
from cep.runtime.snapshot import Json, StateReader, StateWriter, need

_NOTHING: frozenset[str] = frozenset()


def differs(old: Any, new: Any) -> bool:
    if old is None or new is None:
        return (old is None) != (new is None)
    if type(old) is bool or type(new) is bool:  # true is not 1
        return type(old) is not type(new) or old != new
    try:
        return bool(old != new)
    except Exception:  # values that cannot be compared are different
        return True


class ChangeTracker:
    def __init__(self) -> None:
        self.watched: dict[str, list[str]] = {}               # type -> attributes asked about
        self.memory: dict[str, dict[Any, dict[str, Any]]] = {}  # type -> source -> last values
        self.current: dict[str, frozenset[str]] = {}          # type -> what changed in its event

    def watch(self, type_name: str, attr: str) -> None:
        """A filter of `type_name` asks `changed(attr)` (while rules are compiled)."""
        attrs = self.watched.setdefault(type_name, [])
        if attr not in attrs:
            attrs.append(attr)
        self.memory.setdefault(type_name, {})

    def observe(self, event: Event) -> None:
        attrs = self.watched.get(event.type)
        if attrs is None:
            return
        source = event.source if event.source is not None else event.type
        sources = self.memory[event.type]
        values = event.attrs
        last = sources.get(source)
        if last is None:
            sources[source] = {attr: values.get(attr) for attr in attrs}
            self.current[event.type] = frozenset(attrs)
            return
        changed: list[str] = []
        for attr in attrs:
            value = values.get(attr)
            if differs(last.get(attr), value):
                changed.append(attr)
            last[attr] = value
        self.current[event.type] = frozenset(changed) if changed else _NOTHING

    def changed(self, type_name: str, attr: str) -> bool:
        """Whether `attr` changed in the event of `type_name` being delivered."""
        return attr in self.current.get(type_name, _NOTHING)

    def snapshot(self, w: StateWriter) -> Json:
        """`{type: [[source, {attr: value, ...}], ...], ...}`: the last values per source."""
        return {type_name: [[source, w.attrs(last)] for source, last in sources.items()]
                for type_name, sources in self.memory.items() if sources}

    def restore(self, data: Json, r: StateReader) -> None:
        need(type(data) is dict, "the changed() memory is not an object")
        for type_name, rows in data.items():
            need(type_name in self.memory, f"no filter asks changed() of {type_name} events")
            sources = self.memory[type_name]
            need(type(rows) is list, f"the changed() memory of {type_name} is not a list")
            for row in rows:
                need(type(row) is list and len(row) == 2 and type(row[0]) is str
                     and row[0] not in sources, f"the changed() memory of {type_name} is "
                     "damaged")
                last = r.attrs(row[1])
                need(set(last) == set(self.watched[type_name]),
                     f"the changed() memory of {type_name} does not match its filters")
                sources[row[0]] = last

    def sources(self) -> int:
        return sum(len(sources) for sources in self.memory.values())
