"""Context instances: one open (or closed) instance of a context, numbered in the order
instances are made (`serial`)."""

from __future__ import annotations

import itertools
from typing import Any

from cep.runtime.clock import Timer
from cep.runtime.events import Attrs, Match
from cep.runtime.geometry import Position

_serial = itertools.count(1)


def serial_floor(serial: int) -> None:
    """Instances made from now on have serials above `serial` (a restored instance's)."""
    global _serial
    _serial = itertools.count(max(next(_serial), serial + 1))


class ContextInstance:
    """One open (or closed) instance of a context; the always-open one has name None.

    `attrs` are the names its ON START / ON END rules read (the key attributes, the
    initiating event's attributes), `match` the tags of the pattern that opened it."""

    __slots__ = (
        "attrs",
        "center",
        "closes_at",
        "deadline",
        "is_open",
        "key",
        "match",
        "name",
        "opened_at",
        "parts",
        "policy",
        "serial",
    )

    def __init__(self, name: str | None, key: Any, opened_at: float,
                 attrs: Attrs | None = None, parts: tuple[ContextInstance, ...] = (),
                 center: Position | None = None, policy: str | None = None,
                 match: Match | None = None) -> None:
        self.name = name
        self.key = key
        self.opened_at = opened_at
        self.closes_at: float | None = None
        self.attrs = attrs or {}
        self.match: Match = match or {}  # the initiating pattern's tags (ON START / END read them)
        self.parts = parts
        self.center = center
        self.policy = policy
        self.is_open = True
        self.serial = next(_serial)
        self.deadline: Timer | None = None

    def __repr__(self) -> str:
        return f"ContextInstance({self.name!r}, key={self.key!r}, #{self.serial})"
