"""The engine: an event processing network run in event time, deterministically.

Each rule is an agent subscribed to the channels (event types) it reads; an
index by event type finds the subscribers of an event without asking every
rule.  Before an event at time t is delivered, every timer due at or before t
fires, in deadline order.  Derived events (INSERT INTO) are queued at match
time and delivered, in order, before the next input event or timer.

Output order within one instant: by cause (timers by deadline, then the
event, then the derived events it caused), then by rule order in the files.

Whatever one event, value or action does, the engine goes on: a filter, a WHERE, a
SELECT, an action or the sink that raises is counted in `stats` and reported (rule,
what, when; repeated reports at most once per minute of event time), and the rule's
pattern state machines are left as the event found them.  An event time outside the
range of event times (cep.runtime.limits) never moves the clock.
"""

from __future__ import annotations

import math
import os
import sys
from collections import deque
from collections.abc import Callable
from datetime import tzinfo
from typing import Protocol

from cep.language.catalog import Catalog
from cep.language.context_info import initiator_tags, lifecycle_attrs
from cep.language.parser import without_cycle_collection
from cep.language.timezones import get_zone
from cep.runtime.agents import Agent, LifecycleAgent, build_agent
from cep.runtime.changes import ChangeTracker
from cep.runtime.clock import Timer, TimerQueue
from cep.runtime.contexts import CompositeRuntime, ContextRuntime, build_runtimes
from cep.runtime.events import Attrs, Event
from cep.runtime.expressions import ExprEnv
from cep.runtime.faults import FaultReporter, describe_exception
from cep.runtime.instances import ContextInstance
from cep.runtime.limits import (
    EARLIEST_TS,
    LATEST_TS,
    MAX_PARTITION_INSTANCES,
    REPORT_INTERVAL,
    time_problem,
)
from cep.runtime.named_windows import NamedWindows
from cep.runtime.output import JsonValues, Output, OutputFailed, Sink, format_ts
from cep.runtime.positions import position_resolver
from cep.runtime.screen import DELIVER, PASS, Screen, screen_of
from cep.runtime.snapshot import Json, StateReader, StateWriter, need

MAX_DERIVED_PER_CAUSE = 10_000

Route = tuple[Agent, ContextRuntime | None, Callable[[Event], bool] | None,
              Callable[[Event, list[ContextInstance]], None]]


class Observer(Protocol):
    """What sees events of the types it `observes` before any rule does (the context
    runtimes and the entity tracker); what `observe` returns is ignored."""

    observes: tuple[str, ...]

    def observe(self, event: Event) -> object: ...


class EngineError(Exception):
    """The rule set cannot run (as opposed to a bad event, which is only counted)."""


def early_drop_wanted() -> bool:
    """Whether engines leave out events nothing can use: yes, unless CEP_EARLY_DROP=0 (to
    compare; the output is the same)."""
    return os.environ.get("CEP_EARLY_DROP", "1") != "0"


class TypePlan:
    """What delivering an event of one type means, worked out once (the flattened
    dispatch): what sees it first (the `changed()` memory, named windows), the contexts
    and the entity tracker watching it, the rules reading it (`Route`: the agent, its
    context's runtime or None, its test of events or None, its receiver), and the
    type's screen (the early drop, cep.runtime.screen) or None."""

    __slots__ = ("first", "routes", "screen", "watchers")

    def __init__(self, first: list[Callable[[Event], None]], watchers: list[Observer],
                 routes: list[Route], screen: Screen | None) -> None:
        self.first = first
        self.watchers = watchers
        self.routes = routes
        self.screen = screen


class Engine:
    def __init__(self, catalog: Catalog, sink: Sink, tz: tzinfo | None = None,
                 warn: Callable[[str], None] = lambda m: print(f"cep: {m}", file=sys.stderr),
                 max_derived: int = MAX_DERIVED_PER_CAUSE, show_contexts: bool = False,
                 max_instances: int = MAX_PARTITION_INSTANCES,
                 early_drop: bool | None = None) -> None:
        """`max_instances`: live instances one partition context may have (see
        cep.runtime.contexts.PartitionRuntime); events of further new keys belong to none.
        `early_drop`: events nothing can use are not delivered (cep.runtime.screen; the
        output is the same either way, tests compare the two); None: unless the
        environment says CEP_EARLY_DROP=0 (`early_drop_wanted`)."""
        self.catalog = catalog
        self.show_contexts = show_contexts
        zone = tz or get_zone(catalog.timezone)
        if zone is None:  # cep.checks refuses an unknown zone before anything runs
            raise EngineError(f"unknown time zone '{catalog.timezone}'")
        self.tz: tzinfo = zone
        self.sink = sink
        self.warn = warn
        self.max_derived = max_derived
        self.timers = TimerQueue()
        self._heap = self.timers.heap  # read directly by `process`, once per event
        self.now: float = 0.0
        self.event_seq = 0
        self.started = False
        self.position_of = position_resolver(catalog)
        self.derived: deque[Event] = deque()
        # late: events earlier than the clock (taken as happening now); bad_times: events
        # whose time is outside the range of event times (dropped); nulled: output values
        # JSON cannot carry, written as null; output_errors: records the sink failed on;
        # refused_keys: events of new keys a partition at its limit took in no instance;
        # released: partition instances released with nothing waiting in them.
        self.stats = {"events": 0, "derived": 0, "outputs": 0, "late": 0, "action_errors": 0,
                      "runaway": 0, "rule_errors": 0, "bad_times": 0, "nulled": 0,
                      "output_errors": 0, "refused_keys": 0, "released": 0}
        self.json = JsonValues(catalog, self.tz, self.stats)
        self.faults = FaultReporter(lambda message: self.warn(message), REPORT_INTERVAL)
        self.delivering: Event | None = None  # the event being delivered, for reports
        self.changes = ChangeTracker()
        self.env = ExprEnv(changes=self.changes, now=self._now, tz=self.tz,
                           location=catalog.location)
        self.windows = NamedWindows(catalog, self.schedule, self.env, self.position_of,
                                    self._window_failed)
        self.contexts, self.entities = build_runtimes(catalog, self, self.tz, self.position_of,
                                                      max_instances, self.env)
        event_attrs = {name: info.attrs for name, info in catalog.events.items()}
        self.agents: list[Agent] = [build_agent(info, self, event_attrs)
                                    for info in catalog.rules]
        self.subscribers: dict[str, list[Agent]] = {}
        for agent in self.agents:
            for type_name in agent.inputs:
                self.subscribers.setdefault(type_name, []).append(agent)
        self.global_instance = ContextInstance(None, None, 0.0)
        self.global_instances = [self.global_instance]
        self._index_contexts()
        self.early_drop = early_drop_wanted() if early_drop is None else early_drop
        self.plans = self._plans()

    def _index_contexts(self) -> None:
        """Who acts when an instance opens/closes, and which contexts watch which types."""
        self.rules_in: dict[str, list[Agent]] = {name: [] for name in self.contexts}
        self.on_start: dict[str, list[LifecycleAgent]] = {name: [] for name in self.contexts}
        self.on_end: dict[str, list[LifecycleAgent]] = {name: [] for name in self.contexts}
        for agent in self.agents:
            if agent.context is None:
                continue
            if isinstance(agent, LifecycleAgent):
                (self.on_start if agent.kind == "start" else self.on_end)[agent.context].append(
                    agent)
            else:
                self.rules_in[agent.context].append(agent)
        self.composites_of: dict[str, list[CompositeRuntime]] = {}
        for runtime in self.contexts.values():
            if isinstance(runtime, CompositeRuntime):
                for part in runtime.parts:
                    self.composites_of.setdefault(part.name, []).append(runtime)
        self.observers: dict[str, list[Observer]] = {}
        watchers: list[Observer] = [self.entities, *self.contexts.values()]
        for watcher in watchers:
            for type_name in watcher.observes:
                self.observers.setdefault(type_name, []).append(watcher)

    def _plans(self) -> dict[str, TypePlan]:
        """Per event type that something sees, its `TypePlan`; a type without one is seen by
        nothing (its events only move the clock)."""
        # What sees an event before contexts and rules: the memory of changed() (filled
        # in as filters were compiled), then the named windows.
        first_of: dict[str, list[Callable[[Event], None]]] = {}
        for type_name in self.changes.watched:
            first_of.setdefault(type_name, []).append(self.changes.observe)
        for type_name in self.windows.by_type:
            first_of.setdefault(type_name, []).append(self.windows.update)
        plans: dict[str, TypePlan] = {}
        for type_name in [*first_of, *self.observers, *self.subscribers]:
            if type_name in plans:
                continue
            first = first_of.get(type_name, [])
            watchers = self.observers.get(type_name, [])
            agents = self.subscribers.get(type_name, [])
            interests = [agent.interest() for agent in agents]
            screen = screen_of(type_name, bool(first), watchers, interests) \
                if self.early_drop else None
            routes: list[Route] = []
            for agent, interest in zip(agents, interests):
                # a screened type's events reach the rules only when one of them wants
                # them: with one rule, that is its own test
                wants = interest.wants if interest is not None and (
                    screen is None or len(agents) > 1) else None
                routes.append((agent, self.contexts[agent.context] if agent.context else None,
                               wants, agent.receiver()))
            plans[type_name] = TypePlan(first, watchers, routes, screen)
        return plans

    def _now(self) -> float:
        return self.now

    def _window_failed(self, window: str, exc: BaseException) -> None:
        self.report_fault(f"window '{window}'", "its filter", exc)

    # -------------------------------------------------------------- services for states
    def schedule(self, deadline: float, callback: Callable[[float], None],
                 priority: int = 1) -> Timer:
        return self.timers.schedule(deadline, callback, priority)

    def lifecycle_names(self, context: str) -> dict[str, str]:
        return lifecycle_attrs(context, self.catalog)

    def lifecycle_tags(self, context: str) -> dict[str, str]:
        """The tags of the patterns that initiate `context`'s instances (ON START/END)."""
        return initiator_tags(context, self.catalog)

    # -------------------------------------------------------------- context lifecycle
    def context_opened(self, runtime: ContextRuntime, instance: ContextInstance) -> None:
        """Lifecycle line, ON START actions, then the context's rules start in the instance."""
        if self.show_contexts:
            self._lifecycle_line("context-start", instance)
        for rule in self.on_start[runtime.name]:
            rule.lifecycle(instance)
        for agent in self.rules_in[runtime.name]:
            agent.start(instance)
        for composite in self.composites_of.get(runtime.name, ()):
            composite.part_opened()

    def context_closed(self, runtime: ContextRuntime, instance: ContextInstance) -> None:
        """Composites built on it close first; then state is dropped and ON END runs."""
        for composite in self.composites_of.get(runtime.name, ()):
            composite.part_closed(instance)
        for agent in self.rules_in[runtime.name]:
            agent.stop(instance)
        if self.show_contexts:
            self._lifecycle_line("context-end", instance)
        for rule in self.on_end[runtime.name]:
            rule.lifecycle(instance)

    def context_reopened(self, runtime: ContextRuntime, instance: ContextInstance) -> None:
        """A released partition instance is back (its key's next event): its rules start
        in it as in a new one, without a second context-start line or ON START."""
        for agent in self.rules_in[runtime.name]:
            agent.start(instance)

    def notices_opening(self, context: str) -> bool:
        """Whether an instance of `context` opening shows (a context-start line, ON START
        rules): a partition then remembers the keys of the instances it releases."""
        return self.show_contexts or bool(self.on_start[context])

    def at_rest(self, context: str, instance: ContextInstance) -> bool:
        """Whether every rule of the context is in `instance` as it started: nothing
        waiting beyond the first step, no timer, nothing it must remember."""
        for agent in self.rules_in[context]:
            if not agent.at_rest(instance):
                return False
        return True

    def release(self, context: str, instance: ContextInstance) -> None:
        """Drop the rules' state in an instance that is at rest (nothing is emitted)."""
        self.stats["released"] += 1
        for agent in self.rules_in[context]:
            agent.park(instance)

    def _lifecycle_line(self, kind: str, instance: ContextInstance) -> None:
        self.emit({"ts": self.now, "kind": kind, "context": instance.name,
                   "key": self.json.value(instance.key)})

    def emit(self, record: Output) -> None:
        """Hand a record to the sink; a sink that fails (other than OutputFailed) is
        counted and reported, and the rule that made the record goes on."""
        self.stats["outputs"] += 1
        try:
            self.sink(record)
        except OutputFailed:
            raise
        except Exception as exc:
            self._output_failed(record, exc)

    def _output_failed(self, record: Output, exc: Exception) -> None:
        # (not in `emit`: a closure there would make its locals cells, on every call)
        self.stats["output_errors"] += 1
        source = record.get("rule") or record.get("context") or "?"
        detail = describe_exception(exc)
        self.faults(("output", source),
                    lambda: f"could not output the {record.get('kind')} record of "
                            f"'{source}' at {self.show_time(self.now)}: {detail}", self.now)

    def insert(self, event: Event) -> None:
        self.derived.append(event)

    def report_action_error(self, rule: str, message: str) -> None:
        """A PUBLISH that was not carried out (counted; reported at most once a minute per
        rule)."""
        self.stats["action_errors"] += 1
        self.faults(("action", rule),
                    lambda: f"rule '{rule}': at {self.show_time(self.now)}: {message}", self.now)

    def report_fault(self, source: str, what: str, exc: BaseException) -> None:
        """Something of a rule or context (`source`: `rule 'name'`, `context 'C'`) raised:
        counted in `rule_errors`, reported with what failed and on which event."""
        self.stats["rule_errors"] += 1
        event = self.delivering

        def message() -> str:
            cause = f"a {event.type} event" if event is not None else "a timer"
            return (f"{source}: {what} failed on {cause} at {self.show_time(self.now)}: "
                    f"{describe_exception(exc)}")
        self.faults(("fault", source, what), message, self.now)

    def report_limit(self, kind: object, message: Callable[[], str]) -> None:
        """A limit refused something (a partition at its limit): reported at most once a
        minute per kind; the caller counts."""
        self.faults(("limit", kind), message, self.now)

    # -------------------------------------------------------------- time and input
    def start(self, ts: float) -> None:
        """Start the clock and every rule (with its pattern) at `ts`."""
        if self.started:
            return
        self.started = True
        self.now = ts
        self.global_instance.opened_at = ts
        for agent in self.agents:
            if agent.context is None:
                agent.start(self.global_instance)
        for runtime in self.contexts.values():
            runtime.begin(ts)
        self._drain()

    def process(self, event: Event) -> None:
        """Deliver one input event (timers due up to its time fire first).

        An event whose time is outside the range of event times is dropped, counted in
        `bad_times` and reported (the adapters refuse such messages before this).  An
        event nothing can use (the early drop, cep.runtime.screen) moves the clock and is
        counted as a delivered one is, and goes no further."""
        ts = event.ts
        if not self.started:
            if not EARLIEST_TS <= ts < LATEST_TS:
                self._bad_time(event)
                return
            self.start(ts)
        if ts < self.now:
            self.stats["late"] += 1  # the clock never goes back: take it as happening now
        elif not ts < LATEST_TS:  # also NaN
            self._bad_time(event)
            return
        elif self._heap and self._heap[0][0] <= ts:  # a timer is due (TimerQueue.due)
            self.advance(ts)
        else:
            self.now = ts
        self.stats["events"] += 1
        self._offer(event)
        if self.derived:
            self._drain()

    def process_values(self, type_name: str, ts: float, attrs: Attrs,
                       source: str | None) -> None:
        """`process(Event(type_name, ts, attrs, source))`, the event made only when
        something can use it: the fused trace reading hands its lines' values here, and
        most of them only move the clock (the early drop).  The first event, a late one, a
        time out of range and one with a timer due go the way of `process`."""
        heap = self._heap  # (a timer due: TimerQueue.due)
        if not self.started or not self.now <= ts < LATEST_TS or (heap and heap[0][0] <= ts):
            self.process(Event(type_name, ts, attrs, source))  # (NaN too)
            return
        self.now = ts
        self.stats["events"] += 1
        # `_offer`, written out for values: a call more would cost a twentieth of the line
        plan = self.plans.get(type_name)
        if plan is None:  # nothing sees the type
            self.event_seq += 1
            return
        screen = plan.screen
        verdict = DELIVER if screen is None else screen.decide(attrs)
        if verdict == PASS:
            self.event_seq += 1
            return
        event = Event(type_name, ts, attrs, source)
        if verdict == DELIVER:
            self._deliver(event, plan)
        else:
            self._observe(event, plan)
        if self.derived:
            self._drain()

    def screen_of_type(self, type_name: str) -> tuple[bool, Screen | None]:
        """Whether anything sees `type_name`'s events, and their screen (None: every one
        is delivered, or, when nothing sees them, none is)."""
        plan = self.plans.get(type_name)
        return (False, None) if plan is None else (True, plan.screen)

    def pass_window(self) -> tuple[float, float]:
        """The times [from, to) at which `process_values` would only move the clock for an
        event its type's screen turns away: from now to the next timer's deadline (or the
        end of the range of event times); empty before the first event.  It holds until
        the engine is next called (`pass_events` aside)."""
        if not self.started:
            return math.inf, -math.inf
        heap = self._heap
        return self.now, heap[0][0] if heap and heap[0][0] < LATEST_TS else LATEST_TS

    def pass_events(self, count: int, ts: float) -> None:
        """`count` events that nothing can use, the last at `ts`, in `pass_window`, given
        to the engine at once (the fused reading's early drop): what `process_values` does
        with each when the type's screen says PASS (none of them changes the window)."""
        self.now = ts
        self.stats["events"] += count
        self.event_seq += count

    def _bad_advance(self, to: float) -> None:
        self.faults(("advance",), lambda: f"the clock cannot move to {to!r} (Unix seconds): "
                                          f"{time_problem(to)}", self.now)

    def _bad_time(self, event: Event) -> None:
        self.stats["bad_times"] += 1
        self.faults(("time", event.type),
                    lambda: f"a {event.type} event at {event.ts!r} (Unix seconds) is "
                            f"{time_problem(event.ts)}: dropped", self.now)

    def advance(self, to: float) -> None:
        """Move the clock to `to`, firing every timer due at or before it.  A time outside
        the range of event times moves nothing (reported)."""
        if not EARLIEST_TS <= to < LATEST_TS:
            self._bad_advance(to)
            return
        if not self.started:
            self.start(to)
        timers = self.timers
        while True:
            timer = timers.pop_due(to)
            if timer is None:
                break
            if timer.deadline > self.now:
                self.now = timer.deadline
            self.delivering = None  # what fails now fails on a timer
            try:
                timer.callback(timer.deadline)
            except OutputFailed:
                raise
            except Exception as exc:
                self.report_fault("a timer", "its callback", exc)
            self._drain()
        if to > self.now:
            self.now = to

    def _offer(self, event: Event) -> None:
        """An input or derived event, delivered as its type's plan and screen say: to all
        its readers, to its partitions only (it opens an instance no rule wants it in), or
        to nothing (it only takes its event number).  (`process_values` does the same for
        values it has not made an event of yet.)"""
        plan = self.plans.get(event.type)
        if plan is None:  # nothing sees the type
            self.event_seq += 1
            return
        screen = plan.screen
        verdict = DELIVER if screen is None else screen.decide(event.attrs)
        if verdict == PASS:
            self.event_seq += 1
            return
        if verdict == DELIVER:
            self._deliver(event, plan)
        else:
            self._observe(event, plan)

    def _deliver(self, event: Event, plan: TypePlan) -> None:
        """`changed()` memory, then named windows, then contexts (and the entity tracker),
        then the rules."""
        self.event_seq += 1
        self.delivering = event
        if plan.first:
            for see in plan.first:
                see(event)
        if plan.watchers:
            self._watch(event, plan.watchers)
        for agent, runtime, wants, receive in plan.routes:
            if wants is not None and not wants(event):
                continue  # before routing: an event no state of the rule can use
            try:
                if runtime is None:
                    receive(event, self.global_instances)
                    continue
                instances = runtime.instances_for(event)
                if instances:
                    receive(event, instances)
            except OutputFailed:
                raise
            except Exception as exc:  # the rule's own guards let nothing through: a bug
                self.report_fault(f"rule '{agent.name}'", "taking the event", exc)

    def _observe(self, event: Event, plan: TypePlan) -> None:
        """An event no rule wants that opens a partition instance: the contexts see it
        (every rule would turn it away; cep.runtime.screen)."""
        self.event_seq += 1
        self.delivering = event
        self._watch(event, plan.watchers)

    def _watch(self, event: Event, watchers: list[Observer]) -> None:
        for watcher in watchers:
            try:
                watcher.observe(event)
            except OutputFailed:
                raise
            except Exception as exc:
                name = getattr(watcher, "name", None)
                self.report_fault(f"context '{name}'" if name else "the entity tracker",
                                  "following the event", exc)

    def _drain(self) -> None:
        derived = self.derived
        count = 0
        while derived:
            count += 1
            if count > self.max_derived:
                self.stats["runaway"] += 1
                message = (f"more than {self.max_derived} derived events from one cause at "
                           f"{self.show_time(self.now)}: dropping the rest ({len(derived)} "
                           "queued)")
                self.faults(("runaway",), message.__str__, self.now)
                derived.clear()
                return
            event = derived.popleft()
            self.stats["derived"] += 1
            self._offer(event)

    def show_time(self, ts: float) -> str:
        """A time for people: ISO-8601 in the rules' zone, as in output lines."""
        return format_ts(ts, self.tz)

    # -------------------------------------------------------------- introspection
    def partial_matches(self) -> dict[str, int]:
        return {agent.name: agent.partial_matches() for agent in self.agents}

    def open_instances(self) -> int:
        """Context instances open now (the always-open one not counted)."""
        return sum(len(runtime.open) for runtime in self.contexts.values())

    # -------------------------------------------------------------- snapshots
    def _context_order(self) -> list[ContextRuntime]:
        """Composites after the contexts they are made of (they refer to their instances)."""
        runtimes = list(self.contexts.values())
        return ([rt for rt in runtimes if not isinstance(rt, CompositeRuntime)]
                + [rt for rt in runtimes if isinstance(rt, CompositeRuntime)])

    def snapshot(self) -> Json:
        """The engine's whole state as JSON data (cep.runtime.snapshot): the clock, the
        counters, then each part's section; `events` is the table they refer to.  Taken
        between two inputs (never while one is being delivered)."""
        with without_cycle_collection():
            return self._snapshot()

    def _snapshot(self) -> Json:
        w = StateWriter()
        w.add_instance(self.global_instance)
        data: dict[str, Json] = {
            "started": self.started, "clock": self.now, "event_seq": self.event_seq,
            "timer_seq": self.timers.seq, "stats": dict(self.stats),
            "global_opened_at": self.global_instance.opened_at,
        }
        if self.started:
            data["entities"] = self.entities.snapshot(w)
            data["contexts"] = {rt.name: rt.snapshot(w) for rt in self._context_order()}
            data["changes"] = self.changes.snapshot(w)
            data["windows"] = self.windows.snapshot(w)
            data["rules"] = [[agent.name, agent.snapshot(w)] for agent in self.agents]
        data["events"] = w.events
        return data

    def restore(self, data: Json) -> StateReader:
        """Take the state of `snapshot()` into this engine, built from the same rules and
        not started.  Nothing is emitted and no rule runs; timers take their saved places.
        Raises StateFormatError when the data does not fit (the engine must then not be
        used).  Returns the reader (what it read, for reports)."""
        with without_cycle_collection():
            return self._restore(data)

    def _restore(self, data: Json) -> StateReader:
        need(not self.started, "an engine can only take a state before it starts")
        need(type(data) is dict, "the engine's state is not an object")
        r = StateReader(data.get("events"), self.timers)
        r.add_instance(0, self.global_instance)
        started = data.get("started")
        need(type(started) is bool, "no 'started'")
        stats = data.get("stats")
        need(type(stats) is dict and all(type(v) is int for v in stats.values()),
             "the counters are damaged")
        event_seq, timer_seq = data.get("event_seq"), data.get("timer_seq")
        need(type(event_seq) is int and type(timer_seq) is int, "the sequence counters are damaged")
        for name in self.stats:
            if name in stats:
                self.stats[name] = stats[name]
        self.event_seq = event_seq
        if not started:
            return r
        self.now = r.number(data.get("clock"), "the clock")
        self.started = True
        self.global_instance.opened_at = r.number(data.get("global_opened_at"),
                                                  "the start time")
        self.entities.restore(data.get("entities"), r)
        contexts = data.get("contexts")
        need(type(contexts) is dict, "no context section")
        for runtime in self._context_order():
            need(runtime.name in contexts, f"context '{runtime.name}' is missing")
            runtime.restore(contexts[runtime.name], r)
        self.changes.restore(data.get("changes"), r)
        self.windows.restore(data.get("windows"), r)
        rules = data.get("rules")
        need(type(rules) is list and len(rules) == len(self.agents), "the rules' states do "
             "not match the rules")
        for agent, row in zip(self.agents, rules, strict=True):
            need(type(row) is list and len(row) == 2 and row[0] == agent.name,
                 f"no state for rule '{agent.name}'")
            agent.restore(row[1], r)
        if timer_seq > self.timers.seq:
            self.timers.seq = timer_seq
        return r
