"""Windows: the events a view keeps (`#time`, `#length`, `#lastevent`, `#unique`), and
for windowed rules their groups with the aggregates kept up to date.

A window holds *entries*: (seq, ts, event, group key, aggregated values), seq
numbering them in the order they entered. `#time(d)` keeps an event from its time t
while the clock is before t + d (so an event exactly d old has left). Expired entries
leave before anything reads or enters the window (`settle`, on the engine's clock), so
what a rule sees is exact; a timer (`arm`) also lets them leave a window that nobody
reads, at most d/8 late, so that a busy window does not cost a timer per event.
`#length(n)` keeps the last n, `#lastevent` the last one, `#unique(a, b)` the last
event of each key (a key's new event leaves the old one and enters as a new entry).
Memory follows the content: an empty window holds nothing, an empty group is dropped.

`snapshot(w)` / `restore(data, r)` (cep.runtime.snapshot) save a window's entries, its
entry count, its groups with their aggregators' accumulators and its expiry timer; the
window they fill is built by its owner as the saved one was (view, aggregates, clock).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cep.language import ast
from cep.runtime.aggregates import Aggregator, make_aggregator
from cep.runtime.events import Event
from cep.runtime.snapshot import Json, StateFormatError, StateReader, StateWriter, need

# (seq, ts, event, group key, aggregated values)
Entry = tuple[int, float, Event, Any, tuple[Any, ...]]

# schedule(deadline, callback, priority) -> a timer with cancel(): the engine's
Schedule = Callable[[float, Callable[[float], None], int], Any]

WINDOW_TIMER = -2  # expiries fire before anything else due at the same instant (but an
#                   output period's end, which settles the windows it reads itself)

# Times within this of each other are the same instant (event times are float seconds:
# 0.4 + 0.2 is not 0.6 in binary): for window edges here and output periods (rate)
SAME_INSTANT = 1e-6


@dataclass(frozen=True)
class ViewSpec:
    """A view as the runtime needs it (cep.checks has validated its arguments)."""

    kind: str                      # time, length, lastevent or unique
    seconds: float = 0.0           # #time
    length: int = 0                # #length (1 for #lastevent)
    keys: tuple[str, ...] = ()     # #unique

    @classmethod
    def of(cls, view: ast.View) -> ViewSpec:
        if view.name == "time":
            (duration,) = view.args
            assert isinstance(duration, ast.Duration)
            return cls("time", seconds=duration.seconds)
        if view.name == "length":
            (count,) = view.args
            assert isinstance(count, ast.Literal) and type(count.value) is int
            return cls("length", length=count.value)
        if view.name == "unique":
            return cls("unique", keys=tuple(a.name for a in view.args
                                             if isinstance(a, ast.Ident)))
        return cls("lastevent", length=1)

    @property
    def fifo(self) -> bool:
        """Whether events leave oldest first (every view but #unique)."""
        return self.kind != "unique"

    def unique_key(self, attrs: dict[str, Any]) -> Any:
        keys = self.keys
        if len(keys) == 1:
            return hashable(attrs.get(keys[0]))
        return tuple(hashable(attrs.get(k)) for k in keys)


def read_key(data: Json, r: StateReader, what: str) -> Any:
    """A saved dictionary key (a group's, a `#unique` key): a value that can be one."""
    key = r.value(data)
    try:
        hash(key)
    except TypeError:
        raise StateFormatError(f"{what} cannot be a key") from None
    return key


def hashable(value: Any) -> Any:
    """A value as a dictionary key (lists, which derived events may carry, as tuples)."""
    if isinstance(value, list):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, hashable(v)) for k, v in value.items()))
    return value


class EventWindow:
    """The content of one view."""

    __slots__ = ("by_key", "clock", "entries", "schedule", "seq", "spec", "timer")

    def __init__(self, spec: ViewSpec, schedule: Schedule | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.spec = spec
        self.schedule = schedule  # for #time: where its expiry timer is set
        self.clock = clock        # for #time: the engine's time, to settle before a read
        self.timer: Any = None
        self.seq = 0
        self.entries: deque[Entry] = deque()     # every view but #unique
        self.by_key: dict[Any, Entry] = {}       # #unique: key -> its entry, in entry order

    def __len__(self) -> int:
        if self.spec.kind == "unique":
            return len(self.by_key)
        self.settle()
        return len(self.entries)

    def settle(self) -> None:
        """`#time`: the entries that are d old by the engine's clock leave."""
        if self.clock is not None and self.entries and self.spec.kind == "time":
            self.expire(self.clock())

    def insert(self, ts: float, event: Event, group: Any = None,
               values: tuple[Any, ...] = ()) -> Entry:
        """A new entry; what it pushes out leaves first (through `left`)."""
        self.seq += 1
        entry: Entry = (self.seq, ts, event, group, values)
        spec = self.spec
        if spec.kind == "unique":
            key = spec.unique_key(event.attrs)
            old = self.by_key.pop(key, None)
            if old is not None:
                self.left(old)
            self.by_key[key] = entry
            self.entered(entry)
            return entry
        entries = self.entries
        if spec.kind == "time":
            self.expire(ts)
        entries.append(entry)
        self.entered(entry)
        if spec.length and len(entries) > spec.length:
            self.left(entries.popleft())
        return entry

    def expire(self, now: float) -> None:
        """`#time(d)`: every entry at least d old leaves."""
        entries = self.entries
        limit = now + SAME_INSTANT - self.spec.seconds
        while entries and entries[0][1] <= limit:
            self.left(entries.popleft())

    def arm(self, now: float) -> None:
        """`#time`: keep one timer, at the oldest entry's expiry but at least d/8 from
        `now` (reads settle the window themselves: the timer only frees memory)."""
        if self.timer is not None or self.schedule is None or self.spec.kind != "time" \
                or not self.entries:
            return
        seconds = self.spec.seconds
        due = max(self.entries[0][1] + seconds, now + seconds / 8)
        self.timer = self.schedule(due, self._expired, WINDOW_TIMER)

    def _expired(self, now: float) -> None:
        self.timer = None
        self.expire(now)
        self.arm(now)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def entered(self, entry: Entry) -> None:
        """Hook: an entry is in (after an entry it replaces has left)."""

    def left(self, entry: Entry) -> None:
        """Hook: an entry has left."""

    # -------------------------------------------------------------- reading
    def latest(self) -> Event | None:
        self.settle()
        if self.spec.kind == "unique":
            if not self.by_key:
                return None
            return next(reversed(self.by_key.values()))[2]
        return self.entries[-1][2] if self.entries else None

    def get(self, key: Any) -> Event | None:
        entry = self.by_key.get(key)
        return entry[2] if entry is not None else None

    def events(self) -> Iterator[Event]:
        """Oldest entry first."""
        self.settle()
        source = self.by_key.values() if self.spec.kind == "unique" else self.entries
        for entry in source:
            yield entry[2]

    def newest_first(self) -> Iterator[Event]:
        self.settle()
        source = self.by_key.values() if self.spec.kind == "unique" else self.entries
        for entry in reversed(source):
            yield entry[2]

    # -------------------------------------------------------------- snapshots
    def snapshot(self, w: StateWriter) -> Json:
        """`{"seq": n, "entries": [[seq, ts, event, group, [value, ...]], ...], "timer": t}`,
        oldest entry first (as they are, not settled); `#unique` adds `"keys"`, each
        entry's key."""
        return self._snapshot(w, w.value)

    def _snapshot(self, w: StateWriter, group_out: Callable[[Any], Json]) -> Json:
        unique = self.spec.kind == "unique"
        entries = self.by_key.values() if unique else self.entries
        data: dict[str, Json] = {
            "seq": self.seq,
            "entries": [[seq, w.value(ts), w.event(event), group_out(group),
                         [w.value(v) for v in values]]
                        for seq, ts, event, group, values in entries],
            "timer": w.timer(self.timer)}
        if unique:
            data["keys"] = [w.value(key) for key in self.by_key]
        return data

    def restore(self, data: Json, r: StateReader) -> None:
        self._restore(data, r, lambda group: read_key(group, r, "an entry's group"))

    def _restore(self, data: Json, r: StateReader, group_in: Callable[[Json], Any]) -> None:
        """The entries in as they were saved, without the `entered`/`left` hooks (the
        caller rebuilds what they keep); `group_in` reads an entry's group."""
        need(type(data) is dict, "a window is not an object")
        seq, rows = data.get("seq"), data.get("entries")
        need(type(seq) is int and seq >= 0, "a window's entry count is damaged")
        need(type(rows) is list, "a window's entries are not a list")
        entries: list[Entry] = []
        for row in rows:
            need(type(row) is list and len(row) == 5 and type(row[0]) is int
                 and type(row[4]) is list, "a window's entry is damaged")
            need(0 < row[0] <= seq and (not entries or row[0] > entries[-1][0]),
                 "a window's entries are out of order")
            entries.append((row[0], r.number(row[1], "an entry's time"), r.event(row[2]),
                            group_in(row[3]), tuple(r.value(v) for v in row[4])))
        spec = self.spec
        if spec.kind == "unique":
            keys = data.get("keys")
            need(type(keys) is list and len(keys) == len(entries),
                 "a #unique window's keys do not match its entries")
            for key, entry in zip(keys, entries, strict=True):
                key = read_key(key, r, "a #unique key")
                need(key not in self.by_key, "a #unique key is given twice")
                self.by_key[key] = entry
        else:
            need(not spec.length or len(entries) <= spec.length,
                 "a window holds more entries than its view keeps")
            self.entries.extend(entries)
        self.seq = seq
        timer = data.get("timer")
        need(timer is None or (spec.kind == "time" and self.schedule is not None),
             "a window that sets no timer has one")
        self.timer = r.timer(timer, self._expired)


@dataclass(frozen=True)
class AggregateSpec:
    """One aggregate of a rule: its function and how to get its argument from an event
    (None: `count(*)`)."""

    name: str
    argument: Callable[..., Any] | None


class Group:
    """The events of one group in a window: how many, the newest, the aggregates."""

    __slots__ = ("aggs", "key", "newest", "order", "size")

    def __init__(self, key: Any, aggs: list[Aggregator], fifo: bool) -> None:
        self.key = key
        self.aggs = aggs
        self.size = 0
        self.newest: Event | None = None
        # with events leaving in any order (#unique), the newest is looked up among them
        self.order: dict[int, Event] | None = None if fifo else {}


class GroupedWindow(EventWindow):
    """A windowed rule's view in one context instance, its content grouped by the GROUP
    BY values (one group without GROUP BY), each group with its aggregates."""

    __slots__ = ("aggregates", "groups")

    def __init__(self, spec: ViewSpec, aggregates: Sequence[AggregateSpec],
                 schedule: Schedule | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(spec, schedule, clock)
        self.aggregates = aggregates
        self.groups: dict[Any, Group] = {}

    def snapshot(self, w: StateWriter) -> Json:
        """As EventWindow's, each entry's group given by its place in `"groups"`:
        `[[key, [aggregator, ...]], ...]` in the groups' order (see cep.runtime.aggregates
        for each aggregator's data); a group's size and newest event follow its entries."""
        place = {id(group): i for i, group in enumerate(self.groups.values())}
        groups = self.groups
        data = self._snapshot(w, lambda key: place[id(groups[key])])
        data["groups"] = [[w.value(key), [a.snapshot(w) for a in group.aggs]]
                          for key, group in groups.items()]
        return data

    def restore(self, data: Json, r: StateReader) -> None:
        need(type(data) is dict and type(data.get("groups")) is list,
             "a window's groups are not a list")
        made: list[Group] = []
        for row in data["groups"]:
            need(type(row) is list and len(row) == 2 and type(row[1]) is list,
                 "a window's group is damaged")
            key = read_key(row[0], r, "a group's key")
            need(key not in self.groups, "a group is given twice")
            group = self._new_group(key)
            need(len(row[1]) == len(group.aggs), "a group's aggregates do not match the rule's")
            for aggregator, state in zip(group.aggs, row[1], strict=True):
                aggregator.restore(state, r)
            made.append(group)

        def group_in(place: Json) -> Any:
            need(type(place) is int and 0 <= place < len(made), "an entry's group is damaged")
            return made[place].key

        self._restore(data, r, group_in)
        width = len(self.aggregates)
        for seq, _ts, event, key, values in (
                self.by_key.values() if self.spec.kind == "unique" else self.entries):
            need(len(values) == width, "an entry's values do not match the rule's aggregates")
            group = self.groups[key]
            group.size += 1
            group.newest = event
            if group.order is not None:
                group.order[seq] = event
        need(all(group.size for group in made), "a window has an empty group")

    def _new_group(self, key: Any) -> Group:
        fifo = self.spec.fifo
        group = self.groups[key] = Group(
            key, [make_aggregator(a.name, a.argument is None, fifo) for a in self.aggregates],
            fifo)
        return group

    def entered(self, entry: Entry) -> None:
        seq, _ts, event, key, values = entry
        group = self.groups.get(key)
        if group is None:
            group = self._new_group(key)
        group.size += 1
        group.newest = event
        if group.order is not None:
            group.order[seq] = event
        aggs = group.aggs
        if len(aggs) == 1:
            aggs[0].add(seq, values[0])
            return
        for aggregator, value in zip(aggs, values):
            aggregator.add(seq, value)

    def left(self, entry: Entry) -> None:
        seq, _ts, _event, key, values = entry
        group = self.groups[key]
        group.size -= 1
        if group.size == 0:
            del self.groups[key]
            return
        aggs = group.aggs
        if len(aggs) == 1:
            aggs[0].remove(seq, values[0])
        else:
            for aggregator, value in zip(aggs, values):
                aggregator.remove(seq, value)
        order = group.order
        if order is not None:
            del order[seq]
            if group.newest is _event:  # (entry numbers only grow: the last is the newest)
                group.newest = next(reversed(order.values()))

    def enter(self, ts: float, event: Event, group: Any, values: tuple[Any, ...]) -> Group:
        """`insert`, and the group the event is now in. For the first-in-first-out views
        the leaving and entering are written out: this runs once per event of a
        windowed rule."""
        spec = self.spec
        if spec.kind == "unique":
            self.insert(ts, event, group, values)
            return self.groups[group]
        entries = self.entries
        groups = self.groups
        single = len(values) == 1
        if spec.kind == "time":
            limit = ts + SAME_INSTANT - spec.seconds
            while entries and entries[0][1] <= limit:
                old_seq, _, _, old_key, old_values = entries.popleft()
                old_group = groups[old_key]
                old_group.size -= 1
                if old_group.size == 0:
                    del groups[old_key]
                elif single:
                    old_group.aggs[0].remove(old_seq, old_values[0])
                else:
                    for aggregator, value in zip(old_group.aggs, old_values):
                        aggregator.remove(old_seq, value)
        # entering as `entered` does, written out (a call per event costs 2-3 % here)
        self.seq += 1
        seq = self.seq
        entries.append((seq, ts, event, group, values))
        target = groups.get(group)
        if target is None:
            target = self._new_group(group)
        target.size += 1
        target.newest = event
        if single:
            target.aggs[0].add(seq, values[0])
        else:
            for aggregator, value in zip(target.aggs, values):
                aggregator.add(seq, value)
        if spec.length and len(entries) > spec.length:
            self.left(entries.popleft())
        return target
