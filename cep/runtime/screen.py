"""The early drop: which events of a type some part of the rules can use, worked out once.

Delivering an event (cep.runtime.engine) hands it to the `changed()` memory and the named
windows of its type, then to the contexts that watch the type, then to the rules that read
it.  Each of those is fixed when the engine is built, so for each type it is known then
whether an event can matter:

- a type nothing reads at all (no rule, context, named window or `changed()`) is never
  delivered: its events only move the clock and are counted;
- a type whose every reader is a rule with an `attr = constant` test (a pattern's atoms,
  cep.runtime.matcher.Interest, or a stream filter's conjunct), or that no rule reads, and
  whose only watchers are partitions, has a `Screen`.  An event whose values are none of
  the wanted constants would be turned away by every rule; it still matters when it opens
  a partition instance (the key's first event does, whatever its values: its context-start
  line, ON START actions, and the time the instance's rules start from), so then only the
  contexts see it.  An event of a key its partitions know (or of no key) would only be
  routed to instances whose rules turn it away: it changes nothing, and only moves the
  clock and is counted, as every delivered event is (`stats["events"]`, the event number).

Anything else (a `changed()` memory or a named window of the type, a rule without such a
test, a context of another kind watching the type: an event interval, a composition, the
entity tracker) means every event of the type is delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cep.runtime.contexts import PartitionRuntime
from cep.runtime.events import Attrs
from cep.runtime.expressions import Constant
from cep.runtime.matcher import Interest

# What `Screen.decide` says of an event.
DELIVER = 0  # some rule may use it: deliver it
OBSERVE = 1  # no rule can use it, but it opens a partition instance: only the contexts see it
PASS = 2     # nothing can use it: it only moves the clock


class Screen:
    """The test of one type's events before delivery (see the module's docstring)."""

    __slots__ = ("partitions", "wanted")

    def __init__(self, wanted: dict[str, frozenset[Constant]],
                 partitions: Sequence[PartitionRuntime]) -> None:
        self.wanted = tuple(wanted.items())  # (attr, the constants some rule wants)
        self.partitions = tuple(partitions)  # those watching the type (they open instances)

    def decide(self, attrs: Attrs) -> int:
        """DELIVER when some rule wants the event's values; else OBSERVE when some
        partition watching its type does not know its key yet (it opens an instance, or
        is refused at the partition's limit); else PASS."""
        for attr, constants in self.wanted:
            try:
                if attrs.get(attr) in constants:
                    return DELIVER
            except TypeError:  # an unhashable value equals no constant
                continue
        for partition in self.partitions:
            single = partition.single
            key: Any = attrs.get(single) if single is not None else partition.keying.of(attrs)
            if key is None:
                continue  # it belongs to no instance
            try:
                if key not in partition.by_key:
                    return OBSERVE
            except TypeError:  # a value that cannot be a key belongs to no instance
                continue
        return PASS


def screen_of(type_name: str, seen_first: bool, watchers: Sequence[object],
              interests: Sequence[Interest | None]) -> Screen | None:
    """The screen of `type_name`'s events, or None when every event must be delivered.

    `seen_first`: a `changed()` memory or a named window takes the type's events;
    `watchers`: what observes them (contexts, the entity tracker); `interests`: the
    interest of each rule reading the type (None: the rule may use any of its events).
    """
    if seen_first:
        return None
    partitions: list[PartitionRuntime] = []
    for watcher in watchers:
        if type(watcher) is not PartitionRuntime:
            return None
        partitions.append(watcher)
    wanted: dict[str, set[Constant]] = {}
    for interest in interests:
        by_attr = interest.of_type(type_name) if interest is not None else None
        if by_attr is None:
            return None
        for attr, constants in by_attr.items():
            wanted.setdefault(attr, set()).update(constants)
    return Screen({attr: frozenset(values) for attr, values in wanted.items()}, partitions)
