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
- an initiator meeting open instances acts by the context's policy (`InitiatedRuntime`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from datetime import tzinfo
from itertools import product
from typing import Any, Protocol

from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.walk import event_types
from cep.runtime.clock import Timer
from cep.runtime.events import Attrs, Event, Match
from cep.runtime.expressions import ExprEnv, ExpressionCompiler, window_attrs
from cep.runtime.geometry import Position, distance_m, point_in_polygon
from cep.runtime.limits import MAX_PARTITION_INSTANCES
from cep.runtime.matcher import EngineServices, Node, PatternRun
from cep.runtime.pattern_compiler import PatternCompiler
from cep.runtime.positions import PositionOf
from cep.runtime.recurrence import Recurrence

_serial = itertools.count(1)


class ContextInstance:
    """One open (or closed) instance of a context; the always-open one has name None."""

    __slots__ = (
        "attrs",
        "center",
        "closes_at",
        "deadline",
        "is_open",
        "key",
        "name",
        "opened_at",
        "parts",
        "policy",
        "serial",
    )

    def __init__(self, name: str | None, key: Any, opened_at: float,
                 attrs: Attrs | None = None, parts: tuple[ContextInstance, ...] = (),
                 center: Position | None = None, policy: str | None = None) -> None:
        self.name = name
        self.key = key
        self.opened_at = opened_at
        self.closes_at: float | None = None
        self.attrs = attrs or {}
        self.parts = parts
        self.center = center
        self.policy = policy
        self.is_open = True
        self.serial = next(_serial)
        self.deadline: Timer | None = None

    def __repr__(self) -> str:
        return f"ContextInstance({self.name!r}, key={self.key!r}, #{self.serial})"


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


CONTEXT_TIMER = 0  # context deadlines fire before pattern timers due at the same instant


class ContextRuntime:
    """Common bookkeeping: the open instances, in the order they opened."""

    observes: tuple[str, ...] = ()   # event types whose arrival can change this context
    time_only = False                # every event belongs to every open instance

    def __init__(self, name: str, host: ContextHost) -> None:
        self.name = name
        self.host = host
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
                                               CONTEXT_TIMER)


# ====================================================================== temporal


class RecurringRuntime(ContextRuntime):
    """`START hh:mm END hh:mm [ON days]`: one instance per occurrence."""

    time_only = True

    def __init__(self, name: str, host: ContextHost, spec: ast.Recurring,
                 zone: tzinfo, location: tuple[float, float] | None = None) -> None:
        super().__init__(name, host)
        self.recurrence = Recurrence(spec, zone, location)
        self.upcoming: Iterator[tuple[float, float]] | None = None

    def begin(self, ts: float) -> None:
        self.upcoming = self.recurrence.occurrences_from(ts)
        start, end = next(self.upcoming)
        if start <= ts:  # the clock starts inside an occurrence: open from the first moment
            self._open(ts, end)
        else:
            self.host.schedule(start, lambda at: self._open(at, end), CONTEXT_TIMER)

    def _open(self, at: float, end: float) -> None:
        instance = ContextInstance(self.name, None, at)
        self.open_instance(instance)
        self.set_deadline(instance, end)
        assert self.upcoming is not None
        start, next_end = next(self.upcoming)
        self.host.schedule(start, lambda when: self._open(when, next_end), CONTEXT_TIMER)


class EventFilter:
    """`Type(filter) [AS alias]` compiled for matching single events."""

    def __init__(self, source: ast.StreamSource, catalog: Catalog, position_of: PositionOf,
                 env: ExprEnv | None = None) -> None:
        self.type = source.type
        alias = source.alias or source.type
        self.alias = alias
        attrs = frozenset(catalog.events[source.type].attrs) if source.type in catalog.events \
            else frozenset()
        compiler = ExpressionCompiler(frozenset({alias}), attrs, position_of, env, source.type,
                                      window_attrs=window_attrs(catalog))
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

    def initiate(self, met: list[ContextInstance], attrs: Attrs,
                 center: Position | None = None) -> None:
        """An initiator happened now, meeting the open instances `met`."""
        if met and self.policy != "ADD":
            if self.policy == "IGNORE":
                return
            if self.policy == "EXTEND":
                if self.duration is not None:
                    for instance in met:
                        self.set_deadline(instance, self.host.now + self.duration)
                return
            for instance in list(met):  # REFRESH: END, then a new START
                self.close_instance(instance)
        instance = ContextInstance(self.name, None, self.host.now, attrs, center=center,
                                   policy=self.policy)
        self.open_instance(instance, self.duration)


class EventIntervalRuntime(InitiatedRuntime):
    """`INITIATED BY ... (DURATION d | TERMINATED BY ... [DURATION d]) [POLICY p]`."""

    time_only = True

    def __init__(self, name: str, host: ContextHost, spec: ast.EventInterval, catalog: Catalog,
                 position_of: PositionOf, env: ExprEnv | None = None) -> None:
        super().__init__(name, host, spec.policy,
                         spec.duration.seconds if spec.duration is not None else None)
        self.terminator = EventFilter(spec.terminator, catalog, position_of, env) \
            if spec.terminator is not None else None
        self.initiator: EventFilter | None = None
        self.initiator_pattern: PatternRun | None = None
        self.pattern_node: Node | None = None
        observed: list[str] = []
        if isinstance(spec.initiator, ast.StreamSource):
            self.initiator = EventFilter(spec.initiator, catalog, position_of, env)
            observed.append(spec.initiator.type)
        else:
            attrs = {n: i.attrs for n, i in catalog.events.items()}
            self.pattern_node = PatternCompiler(attrs, position_of, env,
                                                window_attrs(catalog)).compile(
                spec.initiator.pattern)
            observed.extend(event_types(spec.initiator.pattern))
        if self.terminator is not None:
            observed.append(self.terminator.type)
        self.observes = tuple(dict.fromkeys(observed))

    def begin(self, ts: float) -> None:
        if self.pattern_node is not None:
            self.initiator_pattern = PatternRun(self.host, None, self._pattern_matched,
                                                f"context '{self.name}'")
            self.initiator_pattern.start(self.pattern_node)

    def observe(self, event: Event) -> None:
        if self.terminator is not None and self.open and self.terminator.matches(event):
            for instance in list(self.open):
                self.close_instance(instance)
        if self.initiator is not None:
            if self.initiator.matches(event):
                self.initiate(self.open, dict(event.attrs))
        elif self.initiator_pattern is not None and not self.initiator_pattern.finished:
            self.initiator_pattern.dispatch(event)

    def _pattern_matched(self, match: Match) -> None:
        self.initiate(self.open, {})


# ====================================================================== segmentation


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
        self.attrs = tuple(a.name for a in spec.attrs)
        self.single = self.attrs[0] if len(self.attrs) == 1 else None
        # the key's value, or the tuple of its values: attribute values, so Any
        self.by_key: dict[Any, list[ContextInstance]] = {}
        self.observes = tuple(type_name for type_name, info in catalog.events.items()
                              if all(a in info.attrs for a in self.attrs))
        self.limit = limit
        self.releasable = True  # False for a part of a composition
        self.released: set[Any] | None = None  # keys released, when openings show
        self._until_sweep = self.RELEASE_FLOOR

    # Observing is routing (a new key opens its instance before rules run); the route is
    # kept for the rules that ask next.
    observe = ContextRuntime.instances_for

    def route(self, event: Event) -> list[ContextInstance]:
        attrs = event.attrs
        if self.single is not None:
            key = attrs.get(self.single)
            if key is None:
                return []
        else:
            key = tuple(attrs.get(a) for a in self.attrs)
            if None in key:
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
            self._refuse(key)
            return []
        values = (key,) if self.single is not None else key
        instance = ContextInstance(self.name, key if self.single is not None else list(values),
                                   self.host.now, dict(zip(self.attrs, values)))
        routed = self.by_key[key] = [instance]
        released = self.released
        if released is not None and key in released:
            released.discard(key)
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
            self.released = set()
        idle = [key for key, (instance,) in self.by_key.items()
                if host.at_rest(name, instance)]
        if not idle:
            return 0
        for key in idle:
            instance = self.by_key.pop(key)[0]
            instance.is_open = False
            host.release(name, instance)
            if self.released is not None:
                self.released.add(key)
        self.open = [instance for instance in self.open if instance.is_open]
        self._routed_event = None  # the last route may name a released instance
        self._routed = []
        self._until_sweep = max(self.RELEASE_FLOOR, len(self.by_key))
        return len(idle)

    def _refuse(self, key: Any) -> None:
        stats = self.host.stats
        stats["refused_keys"] += 1
        limit, name = self.limit, self.name
        self.host.report_limit(("partition", name), lambda: (
            f"context '{name}' has {limit:,} instances, its limit: an event of a new key "
            f"({key!r:.80}) belongs to no instance of it ({stats['refused_keys']:,} so far)"))


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

    observe = ContextRuntime.instances_for  # observing is routing, as for partitions

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
            instance = ContextInstance(self.name, key, self.host.now, attrs, parts=combo)
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


# ====================================================================== building


def build_runtimes(catalog: Catalog, host: ContextHost, zone: tzinfo,
                   position_of: PositionOf, max_instances: int = MAX_PARTITION_INSTANCES,
                   env: ExprEnv | None = None,
                   ) -> tuple[dict[str, ContextRuntime], EntityTracker]:
    """A runtime for every declared context (parts before the composites using them);
    `max_instances` is the limit of each partition's live instances; `env` what their
    filters read beyond the event (named windows, `changed()`)."""
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
            runtime = EventIntervalRuntime(name, host, spec, catalog, position_of, env)
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
