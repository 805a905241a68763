"""Contexts at run time: which instances are open, and which instances an event belongs to.

Each declared context has a runtime object of its kind:
- `observe(event)` applies an event's effect on the context's life (an
  initiator opens an instance under the context's policy, a terminator closes
  instances, an entity moves) and runs *before* the event is delivered, so the
  initiating event belongs to the instance it opens;
- `route(event)` lists the open instances the event belongs to (a partition
  creates the instance for a new key here);
- instances open and close through the engine (`ContextHost`), which emits the
  lifecycle lines, runs ON START / ON END rules and starts or drops the rules'
  state per instance;
- an initiator meeting open instances acts by the context's policy (`InitiatedRuntime`);
- a keyed event interval (`PARTITION BY k INITIATED BY ...`) is an event interval per
  key, the key of an event computed as a partition computes it (`PartitionKey`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, tzinfo
from itertools import product
from typing import Any, Protocol

from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.walk import event_types
from cep.runtime.clock import Timer
from cep.runtime.events import Attrs, Event, Match
from cep.runtime.expressions import ExprEnv, ExpressionCompiler
from cep.runtime.geometry import Position, distance_m, point_in_polygon
from cep.runtime.instances import ContextInstance, serial_floor
from cep.runtime.limits import MAX_PARTITION_INSTANCES
from cep.runtime.matcher import (
    CONTEXT_END_TIMER,
    CONTEXT_START_TIMER,
    EngineServices,
    Node,
    PatternRun,
)
from cep.runtime.pattern_compiler import PatternCompiler
from cep.runtime.positions import PositionOf
from cep.runtime.recurrence import Occurrences, Recurrence
from cep.runtime.snapshot import Json, StateFormatError, StateReader, StateWriter, need


class ContextHost(EngineServices, Protocol):
    """What context runtimes need from the engine (an initiating pattern runs in it too)."""

    stats: dict[str, int]

    def schedule(self, deadline: float, callback: Callable[[float], None],
                 priority: int = 1) -> Timer: ...

    def context_opened(self, runtime: ContextRuntime, instance: ContextInstance) -> None: ...

    def context_closed(self, runtime: ContextRuntime, instance: ContextInstance) -> None: ...

    def context_reopened(self, runtime: ContextRuntime, instance: ContextInstance) -> None: ...

    def notices_opening(self, context: str) -> bool: ...

    def at_rest(self, context: str, instance: ContextInstance) -> bool: ...

    def release(self, context: str, instance: ContextInstance) -> None: ...

    def report_limit(self, kind: object, message: Callable[[], str]) -> None: ...


# At one instant an instance's end comes before another's start (an interval is [start,
# end): two that touch never overlap), and both before the rules' timers.
CONTEXT_END = CONTEXT_END_TIMER
CONTEXT_START = CONTEXT_START_TIMER


class ContextRuntime:
    """Common bookkeeping: the open instances, in the order they opened."""

    observes: tuple[str, ...] = ()   # event types whose arrival can change this context
    time_only = False                # every event belongs to every open instance

    def __init__(self, name: str, host: ContextHost) -> None:
        self.name = name
        self.host = host
        self.refused = 0  # events of new keys refused at the context's limit
        self.open: list[ContextInstance] = []
        self._routed_event: Event | None = None
        self._routed: list[ContextInstance] = []

    def instances_for(self, event: Event) -> list[ContextInstance]:
        """`route(event)`, computed once per event however many rules and composites ask."""
        if event is not self._routed_event:
            self._routed = self.route(event)
            self._routed_event = event
        return self._routed

    def begin(self, ts: float) -> None:
        """The engine's clock starts at `ts`."""

    def observe(self, event: Event) -> object:
        """An event's effect on the context's life (before it is delivered); what it
        returns is ignored (some runtimes observe by routing, see `PartitionRuntime`)."""
        return None

    def route(self, event: Event) -> list[ContextInstance]:
        return self.open

    def open_instance(self, instance: ContextInstance, duration: float | None = None) -> None:
        self.open.append(instance)
        if duration is not None:
            self.set_deadline(instance, instance.opened_at + duration)
        self.host.context_opened(self, instance)

    def close_instance(self, instance: ContextInstance) -> None:
        if not instance.is_open:
            return
        instance.is_open = False
        if instance.deadline is not None:
            instance.deadline.cancel()
            instance.deadline = None
        self.open.remove(instance)
        self.host.context_closed(self, instance)

    def set_deadline(self, instance: ContextInstance, at: float) -> None:
        if instance.deadline is not None:
            instance.deadline.cancel()
        instance.closes_at = at
        instance.deadline = self.host.schedule(at, lambda _: self.close_instance(instance),
                                               CONTEXT_END)

    # -------------------------------------------------------------- snapshots
    def snapshot(self, w: StateWriter) -> Json:
        """`{"open": [instance, ...], "refused": n}`: the open instances in the order they
        opened, each `{"n", "name", "key", "at", "attrs", "open", "serial"}` and, when
        they have one, `"ends"`, `"match"`, `"parts"` (instance numbers), `"center"`
        (`[x, y, geo]`), `"policy"`, `"deadline"` (a timer)."""
        return {"open": [self._write_instance(w, instance) for instance in self.open],
                "refused": self.refused}

    def restore(self, data: Json, r: StateReader) -> None:
        self._restore_open(data, r)

    def _write_instance(self, w: StateWriter, instance: ContextInstance) -> Json:
        data: dict[str, Json] = {
            "n": w.add_instance(instance), "name": instance.name,
            "key": w.value(instance.key), "at": w.value(instance.opened_at),
            "attrs": w.attrs(instance.attrs), "open": instance.is_open,
            "serial": instance.serial}
        if instance.closes_at is not None:
            data["ends"] = w.value(instance.closes_at)
        if instance.match:
            data["match"] = w.match(instance.match)
        if instance.parts:
            data["parts"] = [w.instance(part) for part in instance.parts]
        center = instance.center
        if center is not None:
            data["center"] = [w.value(center.x), w.value(center.y), center.geo]
        if instance.policy is not None:
            data["policy"] = instance.policy
        deadline = w.timer(instance.deadline)
        if deadline is not None:
            data["deadline"] = deadline
        return data

    def _restore_open(self, data: Json, r: StateReader) -> dict[int, ContextInstance]:
        """Read the open instances (`snapshot`) into `open`: them by their numbers."""
        what = f"context '{self.name}'"
        need(type(data) is dict, f"{what}: its state is not an object")
        rows, refused = data.get("open"), data.get("refused")
        need(type(rows) is list, f"{what}: no list of open instances")
        need(type(refused) is int and refused >= 0, f"{what}: no count of refused keys")
        self.refused = refused
        mine: dict[int, ContextInstance] = {}
        for row in rows:
            instance = self._read_instance(row, r)
            need(instance.is_open, f"{what}: a closed instance among the open ones")
            mine[row["n"]] = instance
            self.open.append(instance)
        return mine

    def _read_instance(self, data: Json, r: StateReader) -> ContextInstance:
        what = f"context '{self.name}'"
        need(type(data) is dict and "key" in data, f"{what}: an instance is damaged")
        name, serial, is_open = data.get("name"), data.get("serial"), data.get("open")
        need(name == self.name, f"{what}: an instance of another context ({name!r})")
        need(type(serial) is int and serial > 0, f"{what}: an instance has no serial")
        need(type(is_open) is bool, f"{what}: an instance is neither open nor closed")
        parts = data.get("parts", [])
        need(type(parts) is list, f"{what}: an instance's parts are not a list")
        center, position = data.get("center"), None
        if center is not None:
            need(type(center) is list and len(center) == 3 and type(center[2]) is bool,
                 f"{what}: an instance's center is not [x, y, geo]")
            position = Position(r.number(center[0], "a center's x"),
                                r.number(center[1], "a center's y"), center[2])
        policy = data.get("policy")
        need(policy is None or type(policy) is str, f"{what}: an instance's policy is damaged")
        instance = ContextInstance(
            name, r.value(data["key"]), _time(r, data.get("at"), f"{what}: an opening time"),
            r.attrs(data.get("attrs")), tuple(r.instance(n) for n in parts), position,
            policy, r.match(data.get("match")))
        ends = data.get("ends")
        instance.closes_at = None if ends is None else _time(r, ends, f"{what}: an end")
        instance.is_open = is_open
        instance.serial = serial
        serial_floor(serial)
        r.add_instance(data.get("n"), instance)
        instance.deadline = r.timer(data.get("deadline"),
                                    lambda _: self.close_instance(instance))
        return instance


def _time(r: StateReader, data: Json, what: str) -> float:
    """A saved instant, of the type it had (an int stays an int)."""
    value = r.value(data)
    need(type(value) in (int, float), f"{what} is not a number")
    return value  # type: ignore[no-any-return]


def _mine(mine: dict[int, ContextInstance], number: Json, what: str) -> ContextInstance:
    """The open instance of the context numbered `number` (its state refers to it)."""
    instance = mine.get(number) if type(number) is int else None
    need(instance is not None, f"{what}: #{number} is not one of its open instances")
    assert instance is not None
    return instance


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _key(r: StateReader, data: Json, what: str) -> Any:
    """A saved key of a partition (or keyed interval): a value that can be a dict's key."""
    key = r.value(data)
    need(_hashable(key), f"{what}: a key that cannot be one")
    return key


# ====================================================================== temporal


class RecurringRuntime(ContextRuntime):
    """`START hh:mm END hh:mm [ON days]`: one instance per occurrence."""

    time_only = True

    def __init__(self, name: str, host: ContextHost, spec: ast.Recurring,
                 zone: tzinfo, location: tuple[float, float] | None = None) -> None:
        super().__init__(name, host)
        self.recurrence = Recurrence(spec, zone, location)
        self.upcoming: Occurrences | None = None
        self.next_open: Timer | None = None  # the next occurrence's opening
        self.next_end = 0.0                  # and its end

    def begin(self, ts: float) -> None:
        self.upcoming = self.recurrence.occurrences_from(ts)
        found = next(self.upcoming, None)
        if found is None:  # no occurrence for years (a sun event that never happens)
            return
        start, end = found
        if start <= ts:  # the clock starts inside an occurrence: open from the first moment
            self._open(ts, end)
        else:
            self._schedule(start, end)

    def _open(self, at: float, end: float) -> None:
        instance = ContextInstance(self.name, None, at)
        self.open_instance(instance)
        self.set_deadline(instance, end)
        assert self.upcoming is not None
        found = next(self.upcoming, None)
        if found is None:
            return
        self._schedule(*found)

    def _schedule(self, start: float, end: float) -> None:
        self.next_end = end
        self.next_open = self.host.schedule(start, lambda at: self._open(at, end),
                                            CONTEXT_START)

    def snapshot(self, w: StateWriter) -> Json:
        """The open instance (see `ContextRuntime.snapshot`) and `"next"`: the next
        occurrence's opening, `{"timer", "end", "from", "day", "last_end"}` (the timer, the
        occurrence's end, and where the walk through the days is), or null for none."""
        data = super().snapshot(w)
        timer, upcoming = w.timer(self.next_open), self.upcoming
        data["next"] = None if timer is None or upcoming is None else {
            "timer": timer, "end": w.value(self.next_end), "from": w.value(upcoming.ts),
            "day": upcoming.day.isoformat(), "last_end": w.value(upcoming.last_end)}
        return data

    def restore(self, data: Json, r: StateReader) -> None:
        self._restore_open(data, r)
        what = f"context '{self.name}'"
        upcoming = data.get("next")
        if upcoming is None:  # no occurrence to come (none for years)
            return
        need(type(upcoming) is dict and type(upcoming.get("day")) is str,
             f"{what}: the next occurrence is damaged")
        try:
            day = date.fromisoformat(upcoming["day"])
        except ValueError:
            raise StateFormatError(f"{what}: the next occurrence's day is not a date") from None
        end = _time(r, upcoming.get("end"), f"{what}: the next occurrence's end")
        self.upcoming = Occurrences(self.recurrence, _time(r, upcoming.get("from"), what), day,
                                    r.number(upcoming.get("last_end"), what))
        self.next_end = end
        self.next_open = r.timer(upcoming.get("timer"), lambda at: self._open(at, end))
        need(self.next_open is not None, f"{what}: the next occurrence has no timer")


class EventFilter:
    """`Type(filter) [AS alias]` compiled for matching single events."""

    def __init__(self, source: ast.StreamSource, catalog: Catalog, position_of: PositionOf,
                 env: ExprEnv | None = None) -> None:
        self.type = source.type
        alias = source.alias or source.type
        self.alias = alias
        attrs = frozenset(catalog.events[source.type].attrs) if source.type in catalog.events \
            else frozenset()
        compiler = ExpressionCompiler(frozenset({alias}), attrs, position_of, env, source.type)
        self.filter = compiler.compile(source.filter) if source.filter is not None else None

    def matches(self, event: Event) -> bool:
        if event.type != self.type:
            return False
        return self.filter is None or bool(self.filter(event.attrs, {self.alias: event}, None))


class InitiatedRuntime(ContextRuntime):
    """A context whose instances initiators open, for a `duration` (None: until closed).

    `policy` says what an initiator does when it meets open instances: ADD opens another
    one, IGNORE (the default) nothing, REFRESH closes them and opens a new one, EXTEND
    moves their deadline to a duration from now.
    """

    def __init__(self, name: str, host: ContextHost, policy: ast.Policy | None,
                 duration: float | None) -> None:
        super().__init__(name, host)
        self.policy = policy.name if policy is not None else "IGNORE"
        self.duration = duration

    def admit(self, met: list[ContextInstance]) -> bool:
        """An initiator happened now, meeting the open instances `met`: apply the policy
        to them; whether a new instance opens."""
        if met and self.policy != "ADD":
            if self.policy == "IGNORE":
                return False
            if self.policy == "EXTEND":
                if self.duration is not None:
                    for instance in met:
                        self.set_deadline(instance, self.host.now + self.duration)
                return False
            for instance in list(met):  # REFRESH: END, then a new START
                self.close_instance(instance)
        return True

    def initiate(self, met: list[ContextInstance], attrs: Attrs,
                 center: Position | None = None) -> None:
        """An initiator happened now, meeting the open instances `met`."""
        if self.admit(met):
            instance = ContextInstance(self.name, None, self.host.now, attrs, center=center,
                                       policy=self.policy)
            self.open_instance(instance, self.duration)


class _Key:
    """What an event interval holds for one key (an unkeyed one: for every event)."""

    __slots__ = ("initiating", "instances", "key")

    def __init__(self, key: Any) -> None:
        self.key = key                                # as `PartitionKey.of` gives it
        self.instances: list[ContextInstance] = []    # open, in the order they opened
        self.initiating: PatternRun | None = None     # the initiating pattern's run


class EventIntervalRuntime(InitiatedRuntime):
    """`[PARTITION BY k, ...] INITIATED BY ... (DURATION d | TERMINATED BY ... [DURATION d])
    [POLICY p]`.

    Unkeyed, it is one interval at a time (by the policy), every event belonging to every
    open instance; an initiating pattern runs for the whole run.  Keyed (`PARTITION BY`),
    it is that per key (`by_key`), the key of an event being its partition key: an
    initiator opens, refreshes or extends its own key's instances only, a terminator closes
    its own key's, an event belongs to its key's open instances, an initiating pattern runs
    per key as a rule of a partition does (from the key's first event on) and sees only
    that key's events.  `TERMINATED BY PATTERN [p]`: `p` runs per instance, from its
    opening on, over the events after the opening one; its first match closes it.

    Memory follows the keys that have something going on: a key without open instances
    whose initiating pattern is as it started holds nothing (it is forgotten when that
    happens: after its events, when an instance closes, and, for a pattern come back to
    rest by a timer, in a sweep after as many new keys as there are live ones, at least
    RELEASE_FLOOR); at most `limit` keys are live, an event of a new key beyond that
    changes nothing (counted in `refused_keys`, reported).
    """

    RELEASE_FLOOR = 1024  # new keys between sweeps, at least

    def __init__(self, name: str, host: ContextHost, spec: ast.EventInterval, catalog: Catalog,
                 position_of: PositionOf, env: ExprEnv | None = None,
                 limit: int = MAX_PARTITION_INSTANCES) -> None:
        super().__init__(name, host, spec.policy,
                         spec.duration.seconds if spec.duration is not None else None)
        self.keying = PartitionKey(tuple(k.name for k in spec.keys)) if spec.keys else None
        self.time_only = self.keying is None
        self.limit = limit
        self.whole = _Key(None)                 # unkeyed: the one state
        self.by_key: dict[Any, _Key] = {}       # keyed: the live keys
        self.owner: dict[ContextInstance, _Key] = {}           # open instance -> its key
        self.terminating: dict[ContextInstance, PatternRun] = {}  # its terminating run
        self.idle_start = False  # keyed: a new initiating run is as good as none
        self._busy = 0           # > 0 while an event or a pattern acts (keys stay)
        self._until_sweep = self.RELEASE_FLOOR
        patterns = PatternCompiler({n: i.attrs for n, i in catalog.events.items()},
                                   position_of, env)
        observed: list[str] = []
        self.initiator: EventFilter | None = None
        self.initiator_pattern: PatternRun | None = None  # unkeyed: the initiating run
        self.pattern_node: Node | None = None
        self.pattern_types: frozenset[str] = frozenset()
        if isinstance(spec.initiator, ast.StreamSource):
            self.initiator = EventFilter(spec.initiator, catalog, position_of, env)
            observed.append(spec.initiator.type)
        else:
            self.pattern_node = patterns.compile(spec.initiator.pattern)
            self.pattern_types = frozenset(event_types(spec.initiator.pattern))
            observed.extend(event_types(spec.initiator.pattern))
            if self.keying is not None:  # a key's run starts with its first event, any type
                keys = self.keying.names
                observed.extend(type_name for type_name, info in catalog.events.items()
                                if all(k in info.attrs for k in keys))
        self.terminator: EventFilter | None = None
        self.terminator_node: Node | None = None
        if isinstance(spec.terminator, ast.StreamSource):
            self.terminator = EventFilter(spec.terminator, catalog, position_of, env)
            observed.append(spec.terminator.type)
        elif isinstance(spec.terminator, ast.PatternSource):
            self.terminator_node = patterns.compile(spec.terminator.pattern)
            observed.extend(event_types(spec.terminator.pattern))
        self.observes = tuple(dict.fromkeys(observed))

    def begin(self, ts: float) -> None:
        node = self.pattern_node
        if node is None:
            return
        if self.keying is None:
            self.initiator_pattern = self._start_initiating(self.whole)
            return
        # Whether a run just started is at rest: then starting a key's run on an event it
        # cannot use changes nothing, and only the pattern's own types start one.
        probe = PatternRun(self.host, None, lambda match: None, f"context '{self.name}'")
        probe.start(node)
        self.idle_start = probe.at_rest()
        probe.stop()

    # -------------------------------------------------------------- events
    def observe(self, event: Event) -> None:
        keying = self.keying
        if keying is None:
            self._busy += 1
            try:
                self._observe(self.whole, None, event)
            finally:
                self._busy -= 1
            return
        key = keying.of(event.attrs)
        if key is None:
            return
        try:
            state = self.by_key.get(key)
        except TypeError:  # a value that cannot be a key (the checker refuses event values)
            return
        self._busy += 1
        try:
            state = self._observe(state, key, event)
        finally:
            self._busy -= 1
        if state is not None:
            self._settle(state)

    def _observe(self, state: _Key | None, key: Any, event: Event) -> _Key | None:
        """The event's effect on its key's state (None: the key has none yet); the state
        it leaves (created by an initiator of a new key)."""
        if state is not None and state.instances:  # first the terminator of its key
            if self.terminator is not None:
                if self.terminator.matches(event):
                    for instance in list(state.instances):
                        self.close_instance(instance)
            elif self.terminating:
                for instance in list(state.instances):
                    run = self.terminating.get(instance)
                    if run is not None:
                        run.dispatch(event)  # its first match closes the instance
        if self.initiator is not None:
            if self.initiator.matches(event):
                if state is None:
                    state = self._new_key(key)
                    if state is None:
                        return None
                self._initiate(state, dict(event.attrs), None)
        elif self.pattern_node is not None:
            if state is None:
                if self.idle_start and event.type not in self.pattern_types:
                    return None
                state = self._new_key(key)
                if state is None:
                    return None
            run = state.initiating
            if run is not None and not run.finished:
                run.dispatch(event)
        return state

    def route(self, event: Event) -> list[ContextInstance]:
        keying = self.keying
        if keying is None:
            return self.open
        key = keying.of(event.attrs)
        if key is None:
            return []
        try:
            state = self.by_key.get(key)
        except TypeError:
            return []
        return state.instances if state is not None else []

    # -------------------------------------------------------------- instances
    def _initiate(self, state: _Key, attrs: Attrs, match: Match | None) -> None:
        """An initiator of the key of `state` (its event's attributes, or the initiating
        pattern's match): by the policy, a new instance."""
        if not self.admit(state.instances):
            return
        keying = self.keying
        key = None
        if keying is not None:
            attrs.update(keying.attrs(state.key))
            key = keying.shown(state.key)
        instance = ContextInstance(self.name, key, self.host.now, attrs, policy=self.policy,
                                   match=match)
        state.instances.append(instance)
        self.owner[instance] = state
        self.open_instance(instance, self.duration)
        if self.terminator_node is not None and instance.is_open:
            self._start_terminating(instance, self.terminator_node)

    def close_instance(self, instance: ContextInstance) -> None:
        if not instance.is_open:
            return
        state = self.owner.pop(instance, None)
        if state is not None:
            state.instances.remove(instance)
        run = self.terminating.pop(instance, None)
        if run is not None:
            run.stop()
        super().close_instance(instance)
        if state is not None and not self._busy:
            self._settle(state)

    def _start_terminating(self, instance: ContextInstance, node: Node) -> None:
        """The terminating pattern starts as the instance opens; the event being delivered
        (the opening one) is not offered to it."""
        run = self._terminating_run(instance)
        run.start(node)
        if run.eager:
            self.close_instance(instance)

    def _terminating_run(self, instance: ContextInstance) -> PatternRun:
        """The instance's terminating run, built (not started)."""
        def terminated(match: Match) -> None:
            if not run.eager:  # (a match while starting closes it once started)
                self.close_instance(instance)

        run = PatternRun(self.host, instance, terminated, f"context '{self.name}'",
                         CONTEXT_END)
        self.terminating[instance] = run
        return run

    def _start_initiating(self, state: _Key) -> PatternRun:
        assert self.pattern_node is not None
        run = self._initiating_run(state)
        run.start(self.pattern_node)
        return run

    def _initiating_run(self, state: _Key) -> PatternRun:
        """The key's initiating run, built (not started)."""
        def initiated(match: Match) -> None:
            self._busy += 1  # (the run is in use: its key stays)
            try:
                self._initiate(state, {}, match)
            finally:
                self._busy -= 1

        run = PatternRun(self.host, None, initiated, f"context '{self.name}'",
                         CONTEXT_START)
        state.initiating = run
        return run

    # -------------------------------------------------------------- keys
    def _new_key(self, key: Any) -> _Key | None:
        """The state of a key that has none (None: the context is at its limit)."""
        self._until_sweep -= 1
        if self._until_sweep <= 0:
            self.sweep()
        if len(self.by_key) >= self.limit:
            refuse_key(self, self.limit, key, "live keys", "opens nothing in it")
            return None
        state = self.by_key[key] = _Key(key)
        if self.pattern_node is not None:
            self._start_initiating(state)
        return state

    def _settle(self, state: _Key) -> None:
        """Forget a key that holds nothing: no open instance, its pattern as it started."""
        if self.keying is None or state.instances:
            return
        run = state.initiating
        if run is not None and not run.at_rest():
            return
        if self.by_key.get(state.key) is state:
            del self.by_key[state.key]
        if run is not None:
            run.stop()

    def sweep(self) -> None:
        """Forget every key that holds nothing (an initiating pattern may have come back
        to rest by a timer)."""
        for state in list(self.by_key.values()):
            self._settle(state)
        self._until_sweep = max(self.RELEASE_FLOOR, len(self.by_key))

    # -------------------------------------------------------------- snapshots
    def snapshot(self, w: StateWriter) -> Json:
        """The open instances (`ContextRuntime.snapshot`) and `{"sweep": n, "idle_start":
        bool, "terminating": [[instance, run], ...]}`; unkeyed `"run"` (the initiating
        pattern's run, or null), keyed `"keys": [[key, [instance, ...], run|null], ...]`
        (the live keys in order, each with its open instances and initiating run)."""
        data = super().snapshot(w)
        data["sweep"] = self._until_sweep
        data["idle_start"] = self.idle_start
        if self.keying is None:
            data["run"] = _run(w, self.whole.initiating)
        else:
            data["keys"] = [[w.value(state.key), [w.instance(i) for i in state.instances],
                             _run(w, state.initiating)] for state in self.by_key.values()]
        data["terminating"] = [[w.instance(instance), run.snapshot(w)]
                               for instance, run in self.terminating.items()]
        return data

    def restore(self, data: Json, r: StateReader) -> None:
        mine = self._restore_open(data, r)
        what = f"context '{self.name}'"
        sweep, idle = data.get("sweep"), data.get("idle_start")
        need(type(sweep) is int and type(idle) is bool, f"{what}: its counters are damaged")
        self._until_sweep, self.idle_start = sweep, idle
        if self.keying is None:
            self.whole.instances = list(self.open)
            for instance in self.open:
                self.owner[instance] = self.whole
            run = data.get("run")
            if self.pattern_node is not None:
                self.initiator_pattern = self._restore_initiating(self.whole, run, r)
            else:
                need(run is None, f"{what}: an initiating pattern's state without one")
        else:
            keys = data.get("keys")
            need(type(keys) is list, f"{what}: no list of keys")
            for row in keys:
                need(type(row) is list and len(row) == 3 and type(row[1]) is list,
                     f"{what}: a key's state is damaged")
                key = _key(r, row[0], what)
                need(key not in self.by_key, f"{what}: a key is given twice")
                state = self.by_key[key] = _Key(key)
                for number in row[1]:
                    instance = _mine(mine, number, what)
                    need(instance not in self.owner, f"{what}: an instance of two keys")
                    state.instances.append(instance)
                    self.owner[instance] = state
                if self.pattern_node is not None:
                    self._restore_initiating(state, row[2], r)
                else:
                    need(row[2] is None, f"{what}: an initiating pattern's state without one")
            need(len(self.owner) == len(self.open), f"{what}: an open instance has no key")
        terminating = data.get("terminating")
        need(type(terminating) is list, f"{what}: no list of terminating patterns")
        for row in terminating:
            need(type(row) is list and len(row) == 2 and self.terminator_node is not None,
                 f"{what}: a terminating pattern's state is damaged")
            instance = _mine(mine, row[0], what)
            need(instance not in self.terminating, f"{what}: two terminating patterns")
            assert self.terminator_node is not None
            self._terminating_run(instance).restore(self.terminator_node, row[1], r)

    def _restore_initiating(self, state: _Key, data: Json, r: StateReader) -> PatternRun:
        assert self.pattern_node is not None
        need(data is not None, f"context '{self.name}': no initiating pattern's state")
        run = self._initiating_run(state)
        run.restore(self.pattern_node, data, r)
        return run


def _run(w: StateWriter, run: PatternRun | None) -> Json:
    return None if run is None else run.snapshot(w)


# ====================================================================== segmentation


class PartitionKey:
    """The key of an event under `PARTITION BY a [, b ...]` (a partition, a keyed event
    interval): the value of `a` with one attribute, the tuple of the values with several;
    None when one of them is missing or null (the event belongs to no key)."""

    __slots__ = ("names", "single")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.single = names[0] if len(names) == 1 else None

    def of(self, attrs: Attrs) -> Any:
        single = self.single
        if single is not None:
            return attrs.get(single)
        key = tuple(attrs.get(a) for a in self.names)
        return None if None in key else key

    def shown(self, key: Any) -> Any:
        """The key as `context.key` and output lines show it: the value, or a list."""
        return key if self.single is not None else list(key)

    def attrs(self, key: Any) -> Attrs:
        """The key attributes with their values (what ON START / ON END read)."""
        return {self.single: key} if self.single is not None else dict(zip(self.names, key))


def refuse_key(runtime: ContextRuntime, limit: int, key: Any,
               held: str = "instances", effect: str = "belongs to no instance of it") -> None:
    """An event of a new key that a context at its limit (`limit` live instances or keys)
    takes in no instance: counted (`refused_keys`) and reported at most once a minute."""
    runtime.host.stats["refused_keys"] += 1
    runtime.refused += 1
    name = runtime.name
    refused = runtime.refused
    runtime.host.report_limit(("partition", name), lambda: (
        f"context '{name}' has {limit:,} {held}, its limit: an event of a new key "
        f"({key!r:.80}) {effect} ({refused:,} so far)"))


class PartitionRuntime(ContextRuntime):
    """`PARTITION BY a [, b]`: one instance per key, from the key's first event on.

    Every event type carrying the key attributes is observed, so an instance (and
    its ON START) appears on the key's first event even if no rule reads that type.
    Routing an event is one dictionary lookup: `by_key` maps the key (the value
    itself with one attribute, the tuple of values with several) to the list
    `[instance]` that `route` returns.

    Memory follows the keys that have something going on, not every key ever seen:
    from time to time (after as many new keys as there are instances, at least
    RELEASE_FLOOR) the instances whose rules are all at rest (each pattern as it
    started: nothing waiting beyond its first step, no timer, not finished) are
    released, and the key's next event re-creates its instance as new.  That is the
    same as keeping it, so nothing in the output shows it; when an opening would show
    (`--contexts`, ON START rules) the released keys are remembered (a set of keys,
    far smaller than instances) so a re-created instance opens silently.  No more than
    `limit` instances are live: an event of a new key beyond that belongs to no
    instance, counted in `refused_keys` and reported.  A partition that is part of a
    composition keeps its instances.
    """

    RELEASE_FLOOR = 1024  # new keys between releases, at least (and instances kept, at most)

    def __init__(self, name: str, host: ContextHost, spec: ast.Partition,
                 catalog: Catalog, limit: int = MAX_PARTITION_INSTANCES) -> None:
        super().__init__(name, host)
        self.keying = PartitionKey(tuple(a.name for a in spec.attrs))
        self.attrs = self.keying.names
        self.single = self.keying.single
        # the key's value, or the tuple of its values: attribute values, so Any
        self.by_key: dict[Any, list[ContextInstance]] = {}
        self.observes = tuple(type_name for type_name, info in catalog.events.items()
                              if all(a in info.attrs for a in self.attrs))
        self.limit = limit
        self.releasable = True  # False for a part of a composition
        # keys released, when openings show (a set, in the order released: snapshots)
        self.released: dict[Any, None] | None = None
        self._until_sweep = self.RELEASE_FLOOR

    # Observing is routing (a new key opens its instance before rules run); the route is
    # kept for the rules that ask next.
    def observe(self, event: Event) -> list[ContextInstance]:
        """`instances_for(event)`, with `route` written out (calls less for every event)."""
        if event is self._routed_event:
            return self._routed
        single = self.single
        key = event.attrs.get(single) if single is not None else self.keying.of(event.attrs)
        routed: list[ContextInstance] | None
        if key is None:
            routed = []
        else:
            try:
                routed = self.by_key.get(key)
            except TypeError:  # a value that cannot be a key
                routed = []
            if routed is None:
                routed = self._open_key(key)
        self._routed = routed
        self._routed_event = event
        return routed

    def route(self, event: Event) -> list[ContextInstance]:
        single = self.single  # PartitionKey.of, inlined for one attribute (every event)
        key = event.attrs.get(single) if single is not None else self.keying.of(event.attrs)
        if key is None:
            return []
        try:
            routed = self.by_key.get(key)
        except TypeError:  # a value that cannot be a key (the checker refuses event values)
            return []
        return routed if routed is not None else self._open_key(key)

    def _open_key(self, key: Any) -> list[ContextInstance]:
        self._until_sweep -= 1
        if self._until_sweep <= 0:
            self.sweep()
        if len(self.by_key) >= self.limit:
            refuse_key(self, self.limit, key)
            return []
        keying = self.keying
        instance = ContextInstance(self.name, keying.shown(key), self.host.now,
                                   keying.attrs(key))
        routed = self.by_key[key] = [instance]
        released = self.released
        if released is not None and key in released:
            del released[key]
            self.open.append(instance)
            self.host.context_reopened(self, instance)
        else:
            self.open_instance(instance)
        return routed

    def sweep(self) -> int:
        """Release the instances whose rules are all at rest; how many were released."""
        kept = len(self.by_key)
        self._until_sweep = max(self.RELEASE_FLOOR, kept)
        if not self.releasable:
            return 0
        host, name = self.host, self.name
        if self.released is None and host.notices_opening(name):
            self.released = {}
        idle = [key for key, (instance,) in self.by_key.items()
                if host.at_rest(name, instance)]
        if not idle:
            return 0
        for key in idle:
            instance = self.by_key.pop(key)[0]
            instance.is_open = False
            host.release(name, instance)
            if self.released is not None:
                self.released[key] = None
        self.open = [instance for instance in self.open if instance.is_open]
        self._routed_event = None  # the last route may name a released instance
        self._routed = []
        self._until_sweep = max(self.RELEASE_FLOOR, len(self.by_key))
        return len(idle)

    def snapshot(self, w: StateWriter) -> Json:
        """The instances (`ContextRuntime.snapshot`: each key's, in the order of `by_key`,
        the key being the instance's) and `{"released": [key, ...] | null, "sweep": n}`."""
        data = super().snapshot(w)
        released = self.released
        data["released"] = None if released is None else [w.value(k) for k in released]
        data["sweep"] = self._until_sweep
        return data

    def restore(self, data: Json, r: StateReader) -> None:
        self._restore_open(data, r)
        what = f"context '{self.name}'"
        single = self.single
        for instance in self.open:
            shown = instance.key
            key: Any  # (declared: the compiled build would take it for a tuple only)
            if single is None:
                need(type(shown) is list and len(shown) == len(self.attrs),
                     f"{what}: an instance's key is not a list of {len(self.attrs)}")
                key = tuple(shown)
            else:
                key = shown
            need(_hashable(key) and key is not None and key not in self.by_key,
                 f"{what}: an instance's key is damaged or given twice")
            self.by_key[key] = [instance]
        released, sweep = data.get("released"), data.get("sweep")
        need(type(sweep) is int, f"{what}: no sweep counter")
        self._until_sweep = sweep
        if released is not None:
            need(type(released) is list, f"{what}: the released keys are not a list")
            self.released = {_key(r, k, what): None for k in released}


# ====================================================================== spatial


class Region:
    """A declared location as a membership test for positions and for named locations."""

    def __init__(self, stmt: ast.CreateLocation) -> None:
        self.name = stmt.name
        self.shape = stmt.shape
        if isinstance(self.shape, ast.Polygon):
            self.corners = [(p.x, p.y) for p in self.shape.points]

    def contains(self, position: Position) -> bool:
        shape = self.shape
        if position.geo != shape.geo:
            return False
        if isinstance(shape, ast.Circle):
            center = Position(shape.center.x, shape.center.y, shape.geo)
            found = distance_m(position, center)
            return found is not None and found <= shape.radius.meters
        return point_in_polygon(position.x, position.y, self.corners)

    def contains_region(self, other: Region) -> bool:
        """Whether every point of `other` lies in this region (corners; circle by its box)."""
        if other.shape.geo != self.shape.geo:
            return False
        if isinstance(other.shape, ast.Polygon):
            return all(self.contains(Position(x, y, other.shape.geo)) for x, y in other.corners)
        c, r = other.shape.center, other.shape.radius.meters
        if other.shape.geo:
            dlat = r / 111_320.0
            dlon = dlat / max(0.01, abs(math.cos(math.radians(c.x))))
        else:
            dlat = dlon = r
        return all(self.contains(Position(c.x + dx, c.y + dy, other.shape.geo))
                   for dx, dy in ((dlat, 0), (-dlat, 0), (0, dlon), (0, -dlon)))


class Places:
    """Declared locations and which contain which (for `LOCATED IN` events)."""

    def __init__(self, catalog: Catalog, position_of: PositionOf) -> None:
        self.regions = {name: Region(stmt) for name, stmt in catalog.locations.items()}
        self.position_of = position_of
        self.located_in: dict[str, str] = {}  # event type -> attribute naming its location
        for name, info in catalog.events.items():
            decl = info.declaration
            if decl is not None and isinstance(decl.position, ast.LocatedIn):
                self.located_in[name] = decl.position.attr.name
        self.inside: dict[str, set[str]] = {
            name: {name} | {outer for outer, region in self.regions.items()
                            if outer != name and region.contains_region(self.regions[name])}
            for name in self.regions}

    def in_region(self, event: Event, region: Region) -> bool:
        attr = self.located_in.get(event.type)
        if attr is not None:
            named = event.attrs.get(attr)
            return named is not None and region.name in self.inside.get(named, ())
        position = self.position_of(event)
        return position is not None and region.contains(position)


class FixedLocationRuntime(ContextRuntime):
    """`LOCATION name`: one instance for the whole run; events inside the location belong."""

    def __init__(self, name: str, host: ContextHost, region: Region, places: Places) -> None:
        super().__init__(name, host)
        self.region = region
        self.places = places

    def begin(self, ts: float) -> None:
        self.open_instance(ContextInstance(self.name, None, ts))

    def route(self, event: Event) -> list[ContextInstance]:
        return self.open if self.places.in_region(event, self.region) else []


class EntityTracker:
    """The last known position of each entity (events with an ENTITY clause)."""

    def __init__(self, catalog: Catalog, position_of: PositionOf) -> None:
        self.position_of = position_of
        self.entity_attr = {name: info.declaration.entity.name
                            for name, info in catalog.events.items()
                            if info.declaration is not None and info.declaration.entity is not None}
        self.observes = tuple(self.entity_attr)
        self.positions: dict[str, Position] = {}  # entity id -> where it was last

    def observe(self, event: Event) -> None:
        entity = event.attrs.get(self.entity_attr.get(event.type, ""))
        position = self.position_of(event)
        if entity is not None and position is not None:
            self.positions[str(entity)] = position

    def snapshot(self, w: StateWriter) -> Json:
        """`{entity: [x, y, geo]}`: each entity's last known position."""
        return {entity: [w.value(p.x), w.value(p.y), p.geo]
                for entity, p in self.positions.items()}

    def restore(self, data: Json, r: StateReader) -> None:
        need(type(data) is dict, "the entities' positions are not an object")
        for entity, where in data.items():
            need(type(where) is list and len(where) == 3 and type(where[2]) is bool,
                 f"entity {entity!r}: its position is not [x, y, geo]")
            self.positions[entity] = Position(r.number(where[0], "a position's x"),
                                              r.number(where[1], "a position's y"), where[2])


class EntityDistanceRuntime(ContextRuntime):
    """`WITHIN d OF ENTITY 'id'`: events within d of the entity's current position."""

    def __init__(self, name: str, host: ContextHost, spec: ast.EntityDistance,
                 tracker: EntityTracker, position_of: PositionOf) -> None:
        super().__init__(name, host)
        self.entity = spec.entity.value
        self.meters = spec.distance.meters
        self.tracker = tracker
        self.position_of = position_of

    def begin(self, ts: float) -> None:
        self.open_instance(ContextInstance(self.name, None, ts, {"entity": self.entity}))

    def route(self, event: Event) -> list[ContextInstance]:
        where = self.tracker.positions.get(self.entity)
        position = self.position_of(event)
        if where is None or position is None:
            return []
        found = distance_m(position, where)
        return self.open if found is not None and found <= self.meters else []


class EventDistanceRuntime(InitiatedRuntime):
    """`WITHIN d OF Type(filter) DURATION t [POLICY p]`: instances centred on initiators."""

    def __init__(self, name: str, host: ContextHost, spec: ast.EventDistance, catalog: Catalog,
                 position_of: PositionOf, env: ExprEnv | None = None) -> None:
        super().__init__(name, host, spec.policy, spec.duration.seconds)
        self.initiator = EventFilter(spec.source, catalog, position_of, env)
        self.meters = spec.distance.meters
        self.position_of = position_of
        self.observes = (spec.source.type,)

    def _near(self, position: Position) -> list[ContextInstance]:
        near = []
        for instance in self.open:
            assert instance.center is not None
            found = distance_m(position, instance.center)
            if found is not None and found <= self.meters:
                near.append(instance)
        return near

    def observe(self, event: Event) -> None:
        if not self.initiator.matches(event):
            return
        position = self.position_of(event)
        if position is None:
            return
        self.initiate(self._near(position), dict(event.attrs), position)

    def route(self, event: Event) -> list[ContextInstance]:
        position = self.position_of(event)
        return self._near(position) if position is not None and self.open else []


# ====================================================================== composition


class CompositeRuntime(ContextRuntime):
    """`AS A AND B [AND ...]`: instances are the combinations of the parts' instances."""

    def __init__(self, name: str, host: ContextHost, parts: list[ContextRuntime],
                 catalog: Catalog) -> None:
        super().__init__(name, host)
        self.parts = parts
        self.time_only = all(p.time_only for p in parts)
        self.combinations: dict[tuple[ContextInstance, ...], ContextInstance] = {}
        # Observing every type opens a combination on its first event, before rules run.
        self.observes = tuple(catalog.events)

    # observing is routing, as for partitions
    def observe(self, event: Event) -> list[ContextInstance]:
        """`instances_for(event)`, written out (a call less for every event)."""
        if event is not self._routed_event:
            self._routed = self.route(event)
            self._routed_event = event
        return self._routed

    def route(self, event: Event) -> list[ContextInstance]:
        routes = [part.instances_for(event) for part in self.parts]
        if not all(routes):
            return []
        return [self._instance(combo) for combo in product(*routes)]

    def _instance(self, combo: tuple[ContextInstance, ...]) -> ContextInstance:
        instance = self.combinations.get(combo)
        if instance is None:
            keys = [part.key for part in combo if part.key is not None]
            key = None if not keys else keys[0] if len(keys) == 1 else keys
            attrs: Attrs = {}
            for part in sorted(combo, key=lambda p: p.key is not None):
                attrs.update(part.attrs)  # partition keys last: the key's values win
            match: Match = {}
            for part in combo:  # initiating patterns' tags (an earlier part's win)
                for tag, bound in part.match.items():
                    match.setdefault(tag, bound)
            instance = ContextInstance(self.name, key, self.host.now, attrs, parts=combo,
                                       match=match)
            ends = [p.closes_at for p in combo if p.closes_at is not None]
            instance.closes_at = min(ends) if ends else None
            self.combinations[combo] = instance
            self.open_instance(instance)
        return instance

    def part_opened(self) -> None:
        """With time-only parts, a combination opens as soon as all parts are open."""
        if self.time_only and all(part.open for part in self.parts):
            for combo in product(*(part.open for part in self.parts)):
                self._instance(combo)

    def part_closed(self, closed: ContextInstance) -> None:
        for combo, instance in list(self.combinations.items()):
            if closed in combo:
                del self.combinations[combo]
                self.close_instance(instance)

    def restore(self, data: Json, r: StateReader) -> None:
        """(`ContextRuntime.snapshot`: each combination is an open instance, its `parts`
        the parts' instances; read after the parts' contexts.)"""
        self._restore_open(data, r)
        for instance in self.open:
            combo = instance.parts
            need(len(combo) == len(self.parts) and combo not in self.combinations
                 and all(p.is_open and p.name == part.name
                         for p, part in zip(combo, self.parts, strict=True)),
                 f"context '{self.name}': a combination is not of its parts' open instances")
            self.combinations[combo] = instance


# ====================================================================== building


def build_runtimes(catalog: Catalog, host: ContextHost, zone: tzinfo,
                   position_of: PositionOf, max_instances: int = MAX_PARTITION_INSTANCES,
                   env: ExprEnv | None = None,
                   ) -> tuple[dict[str, ContextRuntime], EntityTracker]:
    """A runtime for every declared context (parts before the composites using them);
    `max_instances` is the limit of each partition's live instances (and of each keyed
    event interval's live keys); `env` what their filters read beyond the event (named
    windows, `changed()`)."""
    places = Places(catalog, position_of)
    tracker = EntityTracker(catalog, position_of)
    runtimes: dict[str, ContextRuntime] = {}

    def build(name: str) -> ContextRuntime:
        if name in runtimes:
            return runtimes[name]
        spec = catalog.contexts[name].spec
        runtime: ContextRuntime
        if isinstance(spec, ast.Recurring):
            runtime = RecurringRuntime(name, host, spec, zone, catalog.location)
        elif isinstance(spec, ast.EventInterval):
            runtime = EventIntervalRuntime(name, host, spec, catalog, position_of, env,
                                           max_instances)
        elif isinstance(spec, ast.Partition):
            runtime = PartitionRuntime(name, host, spec, catalog, max_instances)
        elif isinstance(spec, ast.FixedLocation):
            runtime = FixedLocationRuntime(name, host, places.regions[spec.location.name], places)
        elif isinstance(spec, ast.EntityDistance):
            runtime = EntityDistanceRuntime(name, host, spec, tracker, position_of)
        elif isinstance(spec, ast.EventDistance):
            runtime = EventDistanceRuntime(name, host, spec, catalog, position_of, env)
        else:
            parts = [build(p.name) for p in spec.parts]
            for part in parts:
                if isinstance(part, PartitionRuntime):
                    part.releasable = False  # combinations hold its instances
            runtime = CompositeRuntime(name, host, parts, catalog)
        runtimes[name] = runtime
        return runtime

    for name in catalog.contexts:
        build(name)
    return runtimes, tracker
