"""Rules compiled into event processing agents.

An agent reads the channels of the event types it subscribes to, runs its
pattern (or stream filter) per context instance, and for each result builds
the SELECT result, emits the fired complex event, inserts the derived event
and carries out its PUBLISH actions.  ON rules only act.

What fails on one event or result stays there: a filter, WHERE or SELECT that raises
is reported and that result is dropped; an action whose topic or payload cannot be
made or sent (cep.runtime.limits: what MQTT or a broker would refuse) is reported as an
action error and not carried out; nothing of it reaches the pattern's state machines.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from cep.language import ast
from cep.language.catalog import RuleInfo
from cep.language.topics import compile_template
from cep.language.walk import declared_tags, select_name
from cep.runtime.clock import Timer
from cep.runtime.events import Attrs, Event, Match
from cep.runtime.every_then import EveryThenRun, every_then_shape, every_then_wanted
from cep.runtime.expressions import AggregateSlot, ExprEnv, ExpressionCompiler, Fn, PriorSlot
from cep.runtime.faults import describe_exception as describe
from cep.runtime.instances import ContextInstance
from cep.runtime.limits import payload_problem, topic_problem
from cep.runtime.matcher import EngineServices, Interest, PatternRun
from cep.runtime.output import JsonValues, Output, OutputFailed
from cep.runtime.pattern_compiler import PatternCompiler
from cep.runtime.positions import PositionOf
from cep.runtime.rate import OUTPUT_TIMER, OutputLimiter, period_end
from cep.runtime.snapshot import Json, StateReader, StateWriter, need
from cep.runtime.windows import GroupedWindow, ViewSpec, hashable


class AgentHost(EngineServices, Protocol):
    """What agents need from the engine that runs them (the engine is one)."""

    json: JsonValues
    position_of: PositionOf
    env: ExprEnv

    def schedule(self, deadline: float, callback: Callable[[float], None],
                 priority: int = 1) -> Timer: ...

    def emit(self, record: Output) -> None: ...

    def insert(self, event: Event) -> None: ...

    def report_action_error(self, rule: str, message: str) -> None: ...

    def lifecycle_names(self, context: str) -> dict[str, str]: ...

    def lifecycle_tags(self, context: str) -> dict[str, str]: ...


# ====================================================================== actions


class CompiledAction:
    """A PUBLISH: its topic template and payload builder, compiled once."""

    def __init__(self, action: ast.Action, compiler: ExpressionCompiler) -> None:
        self.template = compile_template(action.topic.value, publish=True)
        self.topic_text = action.topic.value
        self.qos = action.qos or 0
        self.retain = action.retain
        self.payload = _json_builder(action.payload, compiler) if action.payload is not None \
            else None

    def topic(self, names: Attrs | None) -> str:
        if not self.template.names:
            return self.topic_text
        return self.template.fill(names or {})


def _json_builder(value: ast.JsonValue, compiler: ExpressionCompiler) -> Fn:
    if isinstance(value, ast.JsonObject):
        members = [(key, _json_builder(v, compiler)) for key, v in value.members]
        return lambda a, m, c: {key: build(a, m, c) for key, build in members}
    if isinstance(value, ast.JsonArray):
        items = [_json_builder(v, compiler) for v in value.items]
        return lambda a, m, c: [build(a, m, c) for build in items]
    return compiler.compile(value)


# ====================================================================== agents


class Agent:
    """Common parts: name, context, WHERE, actions and how results leave the agent."""

    def __init__(self, info: RuleInfo, engine: AgentHost) -> None:
        self.info = info
        self.name = info.name
        self.engine = engine
        self.context = info.context
        self.inputs = list(info.inputs)
        self.matches = 0
        self.last_fired: float | None = None
        self.position_of = engine.position_of
        self.where: Fn | None = None
        self.actions: list[CompiledAction] = []
        output = info.rule.output
        self.limiter = OutputLimiter(output, engine, self.release) \
            if output is not None and output.kind != "snapshot" else None
        self.group: Any = None  # the group of the result being made (windowed rules)

    def release(self, instance: Any, held: Any) -> None:
        """A result an OUTPUT LAST period held, at the period's end."""
        raise NotImplementedError

    def start(self, instance: ContextInstance) -> None:
        raise NotImplementedError

    def stop(self, instance: ContextInstance) -> None:
        raise NotImplementedError

    def park(self, instance: ContextInstance) -> None:
        """`instance` is released by its partition (its rules are at rest): as `stop`, but
        when its output periods started is kept for the key's next instance."""
        self.stop(instance)

    def on_event(self, event: Event, instances: list[ContextInstance]) -> None:
        """Deliver an event to the given (open) instances of the agent's context."""
        raise NotImplementedError

    def receiver(self) -> Callable[[Event, list[ContextInstance]], None]:
        """What the engine calls to deliver an event: `on_event`, or something it forwards
        to directly (one call less per event)."""
        return self.on_event

    def interest(self) -> Interest | None:
        """Which events of its inputs can matter to the agent: the engine tests an event
        with it before routing it to the agent's context instances (and merges it into
        the early drop, cep.runtime.screen).  None: any event of its inputs may."""
        return None

    def partial_matches(self, instance: ContextInstance | None = None) -> int:
        return 0

    def at_rest(self, instance: ContextInstance) -> bool:
        """Whether the rule holds nothing in `instance` that a restart would not give
        back (see `PatternRun.at_rest`); rules without a pattern hold nothing."""
        return True

    def failed(self, what: str, exc: BaseException) -> None:
        self.engine.report_fault(f"rule '{self.name}'", what, exc)

    # -------------------------------------------------------------- snapshots
    def snapshot(self, w: StateWriter) -> Json:
        """`{"matches": n, "last_fired": ts|null, "limiter": ...|null}` and, for rules fed
        by a source, `"source"`: the rule's state per context instance."""
        return {"matches": self.matches, "last_fired": self.last_fired,
                "limiter": self.limiter.snapshot(w) if self.limiter is not None else None}

    def restore(self, data: Json, r: StateReader) -> None:
        need(type(data) is dict, f"rule '{self.name}': its state is not an object")
        matches, last = data.get("matches"), data.get("last_fired")
        need(type(matches) is int, f"rule '{self.name}': no match count")
        self.matches = matches
        self.last_fired = None if last is None else r.number(last, "last_fired")
        if self.limiter is not None:
            self.limiter.restore(data.get("limiter"), r)

    def _compile_actions(self, compiler: ExpressionCompiler) -> list[CompiledAction]:
        return [CompiledAction(a, compiler) for a in self.info.rule.actions]

    def _act(self, attrs: Attrs | None, match: Match, ctx: ContextInstance) -> None:
        """What an ON rule does with a result: WHERE, then the actions."""
        if self.where is not None:
            try:
                passed = self.where(attrs, match, ctx)
            except Exception as exc:
                self.failed("its WHERE", exc)
                return
            if not passed:
                return
        limiter = self.limiter
        if limiter is not None:
            if limiter.kind == "last":  # made now (prior(), windows), out at the period's end
                limiter.offer(ctx, None, self._publications(attrs, match, ctx))
                return
            if not limiter.offer(ctx, None, None):
                return
        self._send(self._publications(attrs, match, ctx))

    def _publications(self, attrs: Attrs | None, match: Match,
                      ctx: ContextInstance) -> list[Output]:
        """The output records of the PUBLISH actions, made now; `attrs` also fill the
        topics' names.  An action whose topic or payload cannot be made, or would be
        refused by MQTT or a broker, is an action error: reported, not carried out (no
        output line), and the next action runs."""
        engine = self.engine
        records: list[Output] = []
        for action in self.actions:
            try:
                topic = action.topic(attrs)
            except ValueError as exc:  # TemplateError: a null or unfit value (it says so)
                engine.report_action_error(self.name, str(exc))
                continue
            except Exception as exc:
                engine.report_action_error(self.name, f"cannot fill topic "
                                           f"'{action.topic_text}': {describe(exc)}")
                continue
            problem = topic_problem(topic)
            if problem is not None:
                engine.report_action_error(self.name, f"not published to "
                                           f"{_shown(topic)}: {problem}")
                continue
            try:
                built = action.payload(attrs, match, ctx) if action.payload is not None else ""
                payload = engine.json.value(built)
            except Exception as exc:
                engine.report_action_error(self.name, f"cannot build the payload for "
                                           f"{_shown(topic)}: {describe(exc)}")
                continue
            problem = payload_problem(payload)
            if problem is not None:
                engine.report_action_error(self.name, f"not published to "
                                           f"{_shown(topic)}: {problem}")
                continue
            records.append({"ts": engine.now, "kind": "publish", "rule": self.name,
                            "topic": topic, "payload": payload, "qos": action.qos,
                            "retain": action.retain})
        return records

    def _send(self, records: list[Output]) -> None:
        """The rule fires: its output records go out now (made now, or earlier and held
        by an OUTPUT LAST period until its end, which is now)."""
        engine = self.engine
        self.matches += 1
        self.last_fired = engine.now
        for record in records:
            record["ts"] = engine.now
            engine.emit(record)


def _shown(topic: str) -> str:
    """A topic for a report: quoted, control characters escaped, long ones shortened."""
    text = ascii(topic[:80]) if not topic.isprintable() else repr(topic[:80])
    return text if len(topic) <= 80 else text + f" (and {len(topic) - 80:,} more characters)"


class SourcedAgent(Agent):
    """An agent fed by a source (stream or pattern), with an optional WHERE."""

    def __init__(self, info: RuleInfo, engine: AgentHost, source: Source) -> None:
        super().__init__(info, engine)
        self.source = source
        where = info.rule.where
        self.where = source.compiler.compile(where) if where is not None else None

    def start(self, instance: ContextInstance) -> None:
        if self.limiter is not None:
            self.limiter.start(instance)
        self.source.start(self, instance)

    def stop(self, instance: ContextInstance) -> None:
        if self.limiter is not None:
            self.limiter.stop(instance)
        self.source.stop(instance)

    def park(self, instance: ContextInstance) -> None:
        if self.limiter is not None:
            self.limiter.park(instance)
        self.source.park(instance)

    def on_event(self, event: Event, instances: list[ContextInstance]) -> None:
        self.source.on_event(event, instances)

    def receiver(self) -> Callable[[Event, list[ContextInstance]], None]:
        return self.source.on_event

    def interest(self) -> Interest | None:
        return self.source.interest

    def partial_matches(self, instance: ContextInstance | None = None) -> int:
        return self.source.partial_matches(instance)

    def at_rest(self, instance: ContextInstance) -> bool:
        if self.limiter is not None and not self.limiter.at_rest(instance):
            return False
        return self.source.at_rest(instance)

    def result(self, attrs: Attrs | None, match: Match, ctx: ContextInstance) -> None:
        """A result of the source in instance `ctx`: `attrs` are the event's attributes
        for a stream (None for a pattern), `match` binds the tags.  Raises only
        OutputFailed (what else fails is reported)."""
        raise NotImplementedError

    def snapshot(self, w: StateWriter) -> Json:
        data = super().snapshot(w)
        data["source"] = self.source.snapshot(w)
        return data

    def restore(self, data: Json, r: StateReader) -> None:
        super().restore(data, r)
        self.source.restore(self, data.get("source"), r)


class SelectAgent(SourcedAgent):
    """SELECT rules (with or without INSERT INTO): results are complex events."""

    def __init__(self, info: RuleInfo, engine: AgentHost, source: Source) -> None:
        super().__init__(info, engine, source)
        rule = info.rule
        assert isinstance(rule, ast.SelectRule)
        self.output_type = info.output_type
        self.inserts = info.inserts
        self.select: list[tuple[str, Fn]] | None = None
        if rule.select is not None:
            self.select = []
            for item in rule.select:
                name = select_name(item)
                assert name is not None, "cep.checks gives every SELECT result a name"
                self.select.append((name, source.compiler.compile(item.expr)))
        self.having = source.compiler.compile(rule.having) if rule.having is not None else None
        if source.applies_where:  # a window's WHERE comes before the event enters it
            self.where = None
        result_names = frozenset(info.schema)
        self.actions = self._compile_actions(
            ExpressionCompiler(frozenset(), result_names, self.position_of, engine.env,
                               prior=source.prior_slot()))
        self.schema = info.schema

    def result(self, attrs: Attrs | None, match: Match, ctx: ContextInstance) -> None:
        """A match of the source: apply WHERE, build the result, HAVING, then the output
        clause (which may drop it or hold it), and emit it."""
        values = self._values(attrs, match, ctx)
        if values is None:
            return
        limiter = self.limiter
        if limiter is not None:
            if limiter.kind == "last":  # made now (prior(), windows), out at the period's end
                records = self._records(values, ctx)
                if records is not None:
                    limiter.offer(ctx, self.group, (values, records))
                return
            if not limiter.offer(ctx, self.group, values):
                return
        records = self._records(values, ctx)  # (_emit and _fire, written out)
        if records is not None:
            self._send(records)
            if self.inserts:
                self.engine.insert(Event(self.output_type, self.engine.now, values))

    def snapshot_result(self, attrs: Attrs | None, match: Match, ctx: ContextInstance) -> None:
        """One group's result at an OUTPUT SNAPSHOT period's end."""
        values = self._values(attrs, match, ctx)
        if values is not None:
            self._emit(values, ctx)

    def release(self, instance: Any, held: Any) -> None:
        values, records = held
        self._fire(values, records)

    def _values(self, attrs: Attrs | None, match: Match, ctx: ContextInstance) -> Attrs | None:
        values: Attrs
        try:
            if self.where is not None and not self.where(attrs, match, ctx):
                return None
            # HAVING reads what SELECT reads (never SELECT's names), so it goes first: most
            # results of a windowed rule are filtered out, and need no SELECT
            if self.having is not None and not self.having(attrs, match, ctx):
                return None
            if self.select is None:  # `*`: the event's attributes, or the pattern's tags
                values = dict(attrs) if attrs is not None else {
                    tag: match.get(tag) for tag in self.source.tags}
            else:
                values = {name: fn(attrs, match, ctx) for name, fn in self.select}
        except Exception as exc:
            self.failed("its WHERE or SELECT" if self.having is None else
                        "its WHERE, SELECT or HAVING", exc)
            return None
        return values

    def _emit(self, values: Attrs, ctx: ContextInstance) -> None:
        records = self._records(values, ctx)
        if records is not None:
            self._fire(values, records)

    def _fire(self, values: Attrs, records: list[Output]) -> None:
        """The result's records out, and the derived event in (INSERT INTO)."""
        self._send(records)
        if self.inserts:
            self.engine.insert(Event(self.output_type, self.engine.now, values))

    def _records(self, values: Attrs, ctx: ContextInstance) -> list[Output] | None:
        """The result's `event` line and its publications (None: it cannot be written)."""
        engine = self.engine
        key = ctx.key
        try:
            attributes = engine.json.attrs(values, self.schema)
            if key is not None and type(key) is not str:
                key = engine.json.value(key)
        except Exception as exc:
            self.failed("writing its result", exc)
            return None
        record: Output = {"ts": engine.now, "kind": "event", "rule": self.name,
                          "type": self.output_type, "context": ctx.name, "key": key,
                          "attrs": attributes}
        if not self.actions:
            return [record]
        return [record, *self._publications(values, {}, ctx)]


class OnAgent(SourcedAgent):
    """ON event / ON PATTERN rules: each match carries out the actions."""

    def __init__(self, info: RuleInfo, engine: AgentHost, source: Source) -> None:
        super().__init__(info, engine, source)
        assert isinstance(info.rule, ast.OnRule)
        self.actions = self._compile_actions(source.compiler)

    def result(self, attrs: Attrs | None, match: Match, ctx: ContextInstance) -> None:
        self._act(attrs, match, ctx)

    def release(self, instance: Any, held: Any) -> None:
        self._send(held)


# ====================================================================== sources


class Source:
    """Where an agent's matches come from: a stream filter or a pattern."""

    compiler: ExpressionCompiler
    tags: tuple[str, ...]
    applies_where = False  # True: the source applies the rule's WHERE itself
    interest: Interest | None = None  # see `Agent.interest`

    def prior_slot(self) -> PriorSlot | None:
        """What `prior()` reads in the rule's actions (stream sources keep a history)."""
        return None

    def start(self, agent: SourcedAgent, instance: ContextInstance) -> None:
        raise NotImplementedError

    def stop(self, instance: ContextInstance) -> None:
        raise NotImplementedError

    def on_event(self, event: Event, instances: list[ContextInstance]) -> None:
        raise NotImplementedError

    def partial_matches(self, instance: ContextInstance | None = None) -> int:
        return 0

    def at_rest(self, instance: ContextInstance) -> bool:
        return True

    def park(self, instance: ContextInstance) -> None:
        self.stop(instance)

    def snapshot(self, w: StateWriter) -> Json:
        return {}

    def restore(self, agent: SourcedAgent, data: Json, r: StateReader) -> None:
        need(type(data) is dict, f"rule '{agent.name}': its source's state is not an object")


def _per_instance(data: Json, key: str, r: StateReader) -> list[tuple[ContextInstance, Json]]:
    """A section `[[instance number, state], ...]` of a source's state, read."""
    rows = data.get(key, [])
    need(type(rows) is list, f"'{key}' is not a list")
    out = []
    for row in rows:
        need(type(row) is list and len(row) == 2, f"an entry of '{key}' is not a pair")
        out.append((r.instance(row[0]), row[1]))
    return out


class StreamSource(Source):
    """`FROM Type(filter) AS alias`: every matching event is a result.

    With `prior(n, attr)` in the rule, it keeps the last n events that passed the
    filter in each context instance (`history`)."""

    agent: SourcedAgent  # the agent it feeds, from the first `start` on
    prior: PriorSlot

    def __init__(self, source: ast.StreamSource, attrs: frozenset[str],
                 position_of: PositionOf, env: ExprEnv | None = None,
                 aggregates: AggregateSlot | None = None) -> None:
        self.alias = source.alias or source.type
        self.tags = (self.alias,)
        self.prior = PriorSlot()
        self.compiler = ExpressionCompiler(frozenset(self.tags), attrs, position_of, env,
                                           source.type, aggregates, self.prior)
        self.filter = self.compiler.compile(source.filter) if source.filter is not None else None
        if source.filter is not None:  # a filter requiring `attr = constant`: which events
            key, _ = self.compiler.split_equality(source.filter)  # can pass it
            if key is not None:
                self.interest = Interest([(source.type, key)])
        self.history: dict[ContextInstance, deque[Attrs]] = {}

    def start(self, agent: SourcedAgent, instance: ContextInstance) -> None:
        self.agent = agent

    def prior_slot(self) -> PriorSlot:
        return self.prior

    def stop(self, instance: ContextInstance) -> None:
        self.history.pop(instance, None)

    def snapshot(self, w: StateWriter) -> Json:
        """`{"history": [[instance, [attrs, ...]], ...]}`: prior()'s earlier events, oldest
        first."""
        return {"history": [[w.instance(instance), [w.attrs(a) for a in history]]
                            for instance, history in self.history.items()]}

    def restore(self, agent: SourcedAgent, data: Json, r: StateReader) -> None:
        super().restore(agent, data, r)
        self.agent = agent
        for instance, rows in _per_instance(data, "history", r):
            need(type(rows) is list, "a prior() history is not a list")
            history = self._history_of(instance)
            history.extend(r.attrs(row) for row in rows)

    def at_rest(self, instance: ContextInstance) -> bool:
        return not self.history.get(instance)

    def _passes(self, attrs: Attrs, match: Match, instance: ContextInstance) -> bool:
        if self.filter is None:
            return True
        try:
            return bool(self.filter(attrs, match, instance))
        except Exception as exc:
            self.agent.failed("its filter", exc)
            return False

    def on_event(self, event: Event, instances: list[ContextInstance]) -> None:
        attrs = event.attrs
        match: Match = {self.alias: event}
        if self.prior.depth:
            self._with_history(event, attrs, match, instances)
            return
        for instance in instances:
            if self.filter is not None:
                try:
                    passed = self.filter(attrs, match, instance)
                except Exception as exc:
                    self.agent.failed("its filter", exc)
                    continue
                if not passed:
                    continue
            self.agent.result(attrs, match, instance)

    def _history_of(self, instance: ContextInstance) -> deque[Attrs]:
        history = self.history.get(instance)
        if history is None:
            history = self.history[instance] = deque(maxlen=self.prior.depth)
        return history

    def _with_history(self, event: Event, attrs: Attrs, match: Match,
                      instances: list[ContextInstance]) -> None:
        prior = self.prior
        for instance in instances:
            if not self._passes(attrs, match, instance):
                continue
            history = self._history_of(instance)
            prior.history = history
            try:
                self.agent.result(attrs, match, instance)
            finally:
                prior.history = None
                history.append(attrs)


class WindowedSource(StreamSource):
    """`FROM Type(filter)#view AS alias [WHERE ...] [GROUP BY ...]`: the events that pass
    the filter and WHERE enter the instance's window, then the rule makes one result
    for the arriving event's group (expiry alone makes none). With OUTPUT SNAPSHOT, the
    results come instead at each period's end, one per group."""

    applies_where = True

    def __init__(self, source: ast.StreamSource, rule: ast.SelectRule, attrs: frozenset[str],
                 engine: AgentHost) -> None:
        self.slot = AggregateSlot()
        super().__init__(source, attrs, engine.position_of, engine.env, self.slot)
        assert source.view is not None
        self.engine = engine
        self.spec = ViewSpec.of(source.view)
        self.where = self.compiler.compile(rule.where) if rule.where is not None else None
        self.group_by = [g.name for g in rule.group_by]
        self.group_attr = self.group_by[0] if len(self.group_by) == 1 else None
        self.windows: dict[ContextInstance, GroupedWindow] = {}
        self.snapshots: dict[ContextInstance, Timer] = {}
        self.snapshot_every = rule.output.every.seconds \
            if rule.output is not None and rule.output.kind == "snapshot" else None
        self.started: dict[ContextInstance, float] = {}
        self.parked: dict[Any, float] = {}  # a released instance's key -> when it started
        self.arguments: list[Callable[..., Any] | None] = []

    def start(self, agent: SourcedAgent, instance: ContextInstance) -> None:
        self.agent = agent  # (by now the rule's aggregates are all compiled)
        self.arguments = [spec.argument for spec in self.slot.specs]
        parked = self.parked.pop(hashable(instance.key), None) if self.parked else None
        self.started[instance] = self.engine.now if parked is None else parked

    def park(self, instance: ContextInstance) -> None:
        """SNAPSHOT periods run from the instance's start: the key's next instance keeps it."""
        if self.snapshot_every is not None and instance in self.started:
            self.parked[hashable(instance.key)] = self.started[instance]
        self.stop(instance)

    def stop(self, instance: ContextInstance) -> None:
        super().stop(instance)
        self.started.pop(instance, None)
        window = self.windows.pop(instance, None)
        if window is not None:
            window.disarm()
        timer = self.snapshots.pop(instance, None)
        if timer is not None:
            timer.cancel()

    def at_rest(self, instance: ContextInstance) -> bool:
        """An empty window (SNAPSHOT periods then have nothing to answer; their start is
        kept by `park`)."""
        window = self.windows.get(instance)
        return super().at_rest(instance) and (window is None or not len(window))

    def partial_matches(self, instance: ContextInstance | None = None) -> int:
        """The events held in the windows (shown where patterns show partial matches)."""
        if instance is not None:
            window = self.windows.get(instance)
            return len(window) if window is not None else 0
        return sum(len(w) for w in self.windows.values())

    def _group_key(self, attrs: Attrs) -> Any:
        names = self.group_by
        if not names:
            return None
        if len(names) == 1:
            value = attrs.get(names[0])
            return value if type(value) is str else hashable(value)
        return tuple(hashable(attrs.get(name)) for name in names)

    def on_event(self, event: Event, instances: list[ContextInstance]) -> None:
        """(One function for the filter, `prior`'s history, WHERE, the window and the
        result: it runs for every event of the rule, and calls are what costs.)"""
        attrs = event.attrs
        match: Match = {self.alias: event}
        prior = self.prior
        agent = self.agent
        engine = self.engine
        for instance in instances:
            if self.filter is not None and not self._passes(attrs, match, instance):
                continue
            history = None
            if prior.depth:
                history = self._history_of(instance)
                prior.history = history
            try:  # (no `continue` inside: mypyc compiles none in a try/finally)
                passed = True
                try:
                    if self.where is not None and not self.where(attrs, match, instance):
                        passed = False
                    else:
                        arguments = self.arguments
                        if len(arguments) == 1 and arguments[0] is not None:
                            values: tuple[Any, ...] = (arguments[0](attrs, match, instance),)
                        else:
                            values = tuple([True if argument is None else
                                            argument(attrs, match, instance)
                                            for argument in arguments])
                        group_attr = self.group_attr
                        if group_attr is not None:
                            key = attrs.get(group_attr)
                            if type(key) is not str:
                                key = hashable(key)
                        else:
                            key = self._group_key(attrs)
                except Exception as exc:
                    agent.failed("its WHERE or an aggregate's value", exc)
                    passed = False
                if passed:
                    window = self.windows.get(instance)
                    if window is None:
                        window = self.windows[instance] = GroupedWindow(
                            self.spec, self.slot.specs, engine.schedule, engine.env.now)
                    now = engine.now
                    group = window.enter(now, event, key, values)
                    if window.timer is None:
                        window.arm(now)
                    if self.snapshot_every is not None:
                        self._arm_snapshot(instance)
                    else:
                        self.slot.group = group  # what the rule's aggregates read
                        agent.group = key        # and its output clause
                        agent.result(attrs, match, instance)
            finally:
                if history is not None:
                    prior.history = None
                    history.append(attrs)

    def _arm_snapshot(self, instance: ContextInstance) -> None:
        if instance in self.snapshots or self.snapshot_every is None:
            return
        every = self.snapshot_every
        start = self.started.get(instance, self.engine.now)
        deadline = period_end(start, every, self.engine.now)
        self.snapshots[instance] = self.engine.schedule(
            deadline, self._snapshot_due(instance), OUTPUT_TIMER)

    def _snapshot_due(self, instance: ContextInstance) -> Callable[[float], None]:
        return lambda at: self._snapshot(instance)

    def snapshot(self, w: StateWriter) -> Json:
        """prior()'s history (see StreamSource), and per instance `windows` (the window's
        content), `periods` (the next OUTPUT SNAPSHOT timer), `started` (when its periods
        started); `parked`: `[[key, start], ...]` for released partition instances."""
        data = super().snapshot(w)
        data["windows"] = [[w.instance(i), window.snapshot(w)]
                           for i, window in self.windows.items()]
        data["periods"] = [[w.instance(i), w.timer(t)] for i, t in self.snapshots.items()]
        data["started"] = [[w.instance(i), at] for i, at in self.started.items()]
        data["parked"] = [[w.value(key), at] for key, at in self.parked.items()]
        return data

    def restore(self, agent: SourcedAgent, data: Json, r: StateReader) -> None:
        super().restore(agent, data, r)
        self.arguments = [spec.argument for spec in self.slot.specs]
        engine = self.engine
        for instance, body in _per_instance(data, "windows", r):
            window = self.windows[instance] = GroupedWindow(
                self.spec, self.slot.specs, engine.schedule, engine.env.now)
            window.restore(body, r)
        for instance, timer in _per_instance(data, "periods", r):
            restored = r.timer(timer, self._snapshot_due(instance))
            if restored is not None:
                self.snapshots[instance] = restored
        for instance, at in _per_instance(data, "started", r):
            self.started[instance] = r.number(at, "a period's start")
        parked = data.get("parked", [])
        need(type(parked) is list, "'parked' is not a list")
        for row in parked:
            need(type(row) is list and len(row) == 2, "an entry of 'parked' is not a pair")
            self.parked[r.value(row[0])] = r.number(row[1], "a parked period's start")

    def _snapshot(self, instance: ContextInstance) -> None:
        """A period's end: one result per group of the window's content (none when it is
        empty); the next period's end is awaited only while the window holds events."""
        self.snapshots.pop(instance, None)
        window = self.windows.get(instance)
        if window is None or not len(window):  # (len settles the window first)
            return
        agent = self.agent
        assert isinstance(agent, SelectAgent)
        for key, group in list(window.groups.items()):  # (cep.checks: no prior() here)
            newest = group.newest
            if newest is None:
                continue
            self.slot.group = group
            agent.group = key
            agent.snapshot_result(newest.attrs, {self.alias: newest}, instance)
        self._arm_snapshot(instance)


class PatternSource(Source):
    """`PATTERN [...]`: one pattern run per context instance."""

    def __init__(self, source: ast.PatternSource, compiler: PatternCompiler,
                 position_of: PositionOf, env: ExprEnv | None = None) -> None:
        self.node = compiler.compile(source.pattern)
        self.tags = tuple(declared_tags(source.pattern))
        self.compiler = ExpressionCompiler(frozenset(self.tags), None, position_of, env)
        self.runs: dict[ContextInstance, PatternRun | EveryThenRun] = {}
        self.interest = Interest.of_pattern(self.node)  # which events any run could use
        # `every a -> b [within]` has a run of its own (cep.runtime.every_then)
        self.shape = every_then_shape(self.node) if every_then_wanted() else None

    def start(self, agent: SourcedAgent, instance: ContextInstance) -> None:
        run: PatternRun | EveryThenRun
        if self.shape is not None:
            run = EveryThenRun(agent.engine, instance, _on_match(agent, instance),
                               f"rule '{agent.name}'", self.shape)
        else:
            run = PatternRun(agent.engine, instance, _on_match(agent, instance),
                             f"rule '{agent.name}'")
        self.runs[instance] = run
        run.start(self.node)

    def stop(self, instance: ContextInstance) -> None:
        run = self.runs.pop(instance, None)
        if run is not None:
            run.stop()

    def on_event(self, event: Event, instances: list[ContextInstance]) -> None:
        """(The engine has already dropped events `interest` does not want.)"""
        runs = self.runs
        for instance in instances:
            run = runs.get(instance)
            if run is not None and not run.finished:
                run.dispatch(event)

    def partial_matches(self, instance: ContextInstance | None = None) -> int:
        if instance is not None:
            run = self.runs.get(instance)
            return run.live_states() if run is not None and not run.finished else 0
        return sum(run.live_states() for run in self.runs.values() if not run.finished)

    def at_rest(self, instance: ContextInstance) -> bool:
        run = self.runs.get(instance)
        return run is None or run.at_rest()

    def snapshot(self, w: StateWriter) -> Json:
        """`{"runs": [[instance, pattern run], ...]}` (see PatternRun.snapshot)."""
        return {"runs": [[w.instance(instance), run.snapshot(w)]
                         for instance, run in self.runs.items()]}

    def restore(self, agent: SourcedAgent, data: Json, r: StateReader) -> None:
        super().restore(agent, data, r)
        for instance, body in _per_instance(data, "runs", r):
            run = PatternRun(agent.engine, instance, _on_match(agent, instance),
                             f"rule '{agent.name}'")
            run.restore(self.node, body, r)
            fast = EveryThenRun.adopt(run, self.shape) if self.shape is not None else None
            self.runs[instance] = fast if fast is not None else run


def _on_match(agent: SourcedAgent, instance: ContextInstance) -> Callable[[Match], None]:
    def on_match(match: Match) -> None:
        try:
            agent.result(None, match, instance)
        except OutputFailed:
            raise
        except Exception as exc:  # result reports its own failures: this is the backstop
            agent.failed("its result", exc)
    return on_match


# ====================================================================== building


class LifecycleAgent(Agent):
    """`CONTEXT C ON START | ON END ... PUBLISH`: acts when an instance of C opens or closes.

    Its names are the instance's partition key attributes and initiating event's attributes
    (`ContextInstance.attrs`), its tags those of the pattern that opened the instance
    (`ContextInstance.match`, for `INITIATED BY PATTERN [...]`).
    """

    def __init__(self, info: RuleInfo, engine: AgentHost, kind: str) -> None:
        super().__init__(info, engine)
        self.kind = kind
        self.inputs = []
        context = info.context or ""
        names = frozenset(engine.lifecycle_names(context))
        tags = frozenset(engine.lifecycle_tags(context))
        compiler = ExpressionCompiler(tags, names, self.position_of, engine.env)
        rule = info.rule
        self.where = compiler.compile(rule.where) if rule.where is not None else None
        self.actions = self._compile_actions(compiler)

    def start(self, instance: ContextInstance) -> None:
        pass

    def stop(self, instance: ContextInstance) -> None:
        pass

    def on_event(self, event: Event, instances: list[ContextInstance]) -> None:
        pass

    def lifecycle(self, instance: ContextInstance) -> None:
        self._act(instance.attrs, instance.match, instance)


def build_agent(info: RuleInfo, engine: AgentHost,
                event_attrs: dict[str, dict[str, str]]) -> Agent:
    rule = info.rule
    source_ast = rule.source if isinstance(rule, ast.SelectRule) else rule.trigger
    if isinstance(source_ast, ast.LifecycleTrigger):
        return LifecycleAgent(info, engine, source_ast.kind)
    if isinstance(source_ast, ast.StreamSource):
        attrs = frozenset(event_attrs.get(source_ast.type) or ())
        source: Source
        if source_ast.view is not None and isinstance(rule, ast.SelectRule):
            source = WindowedSource(source_ast, rule, attrs, engine)
        else:
            source = StreamSource(source_ast, attrs, engine.position_of, engine.env)
    else:
        patterns = PatternCompiler(event_attrs, engine.position_of, engine.env)
        source = PatternSource(source_ast, patterns, engine.position_of, engine.env)
    if isinstance(rule, ast.SelectRule):
        return SelectAgent(info, engine, source)
    return OnAgent(info, engine, source)
