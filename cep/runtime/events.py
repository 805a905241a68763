"""Engine events: what flows on the channels of the event processing network."""

from __future__ import annotations

from typing import Any


class Event:
    """One event: its type name, its time (Unix seconds, UTC) and its attributes.

    Attributes a message lacked are simply absent from `attrs` and read as null.
    `__slots__` keeps an event small: the engine creates one per input message.
    """

    __slots__ = ("attrs", "ts", "type")

    def __init__(self, type: str, ts: float, attrs: dict[str, Any]) -> None:
        self.type = type
        self.ts = ts
        self.attrs = attrs

    def get(self, name: str) -> Any:
        return self.attrs.get(name)

    def __repr__(self) -> str:
        return f"Event({self.type!r}, {self.ts!r}, {self.attrs!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Event) and self.type == other.type and self.ts == other.ts
                and self.attrs == other.attrs)

    __hash__ = None  # type: ignore[assignment]
