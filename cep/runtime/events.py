"""Engine events: what flows on the channels of the event processing network, and the
matches patterns make of them."""

from __future__ import annotations

from typing import Any, TypeAlias

# An event's attributes by name. The values are whatever the message carried (strings,
# numbers, booleans; derived events also lists and events): dynamic by nature.
Attrs: TypeAlias = dict[str, Any]


class Event:
    """One event: its type name, its time (Unix seconds, UTC) and its attributes.

    Attributes a message lacked are simply absent from `attrs` and read as null.
    `source` is where it came from, for `changed()`: the MQTT topic of its message, or
    None for an event given directly or derived (its type is then its source).
    `__slots__` keeps an event small: the engine creates one per input message.
    """

    __slots__ = ("attrs", "source", "ts", "type")

    def __init__(self, type: str, ts: float, attrs: Attrs, source: str | None = None) -> None:
        self.type = type
        self.ts = ts
        self.attrs = attrs
        self.source = source

    def __repr__(self) -> str:
        return f"Event({self.type!r}, {self.ts!r}, {self.attrs!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Event) and self.type == other.type and self.ts == other.ts
                and self.attrs == other.attrs)

    # Events are mutable and compare by value, so they are not hashable; object's
    # __hash__ is typed as a method, hence the ignore.
    __hash__ = None  # type: ignore[assignment]


# What a tag of a pattern is bound to: the event it matched, or, for a tag under a
# repetition (`[n] p`, `p until q`), the list of its events per round (lists of lists
# when repetitions nest).
Bound: TypeAlias = "Event | list[Bound]"

# A pattern's (partial) match: tag → what it is bound to.
Match: TypeAlias = dict[str, Bound]
