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

from collections.abc import Callable
from typing import Protocol

from cep.language import ast
from cep.language.catalog import RuleInfo
from cep.language.topics import compile_template
from cep.language.walk import declared_tags, select_name
from cep.runtime.contexts import ContextInstance
from cep.runtime.events import Attrs, Event, Match
from cep.runtime.expressions import ExpressionCompiler, Fn
from cep.runtime.faults import describe_exception as describe
from cep.runtime.limits import payload_problem, topic_problem
from cep.runtime.matcher import EngineServices, Interest, PatternRun
from cep.runtime.output import JsonValues, Output, OutputFailed
from cep.runtime.pattern_compiler import PatternCompiler
from cep.runtime.positions import PositionOf


class AgentHost(EngineServices, Protocol):
    """What agents need from the engine that runs them (the engine is one)."""

    json: JsonValues
    position_of: PositionOf

    def emit(self, record: Output) -> None: ...

    def insert(self, event: Event) -> None: ...

    def report_action_error(self, rule: str, message: str) -> None: ...

    def lifecycle_names(self, context: str) -> dict[str, str]: ...


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

    def start(self, instance: ContextInstance) -> None:
        raise NotImplementedError

    def stop(self, instance: ContextInstance) -> None:
        raise NotImplementedError

    def on_event(self, event: Event, instances: list[ContextInstance]) -> None:
        """Deliver an event to the given (open) instances of the agent's context."""
        raise NotImplementedError

    def receiver(self) -> Callable[[Event, list[ContextInstance]], None]:
        """What the engine calls to deliver an event: `on_event`, or something it forwards
        to directly (one call less per event)."""
        return self.on_event

    def wants(self) -> Callable[[Event], bool] | None:
        """A test the engine applies before routing an event to the agent's context
        instances: False means the event cannot matter to the agent.  None: no test."""
        return None

    def partial_matches(self, instance: ContextInstance | None = None) -> int:
        return 0

    def at_rest(self, instance: ContextInstance) -> bool:
        """Whether the rule holds nothing in `instance` that a restart would not give
        back (see `PatternRun.at_rest`); rules without a pattern hold nothing."""
        return True

    def failed(self, what: str, exc: BaseException) -> None:
        self.engine.report_fault(f"rule '{self.name}'", what, exc)

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
        self.matches += 1
        self.last_fired = self.engine.now
        self._publish(attrs, match, ctx)

    def _publish(self, attrs: Attrs | None, match: Match, ctx: ContextInstance) -> None:
        """The PUBLISH actions; `attrs` also fill the topics' names.  An action whose topic
        or payload cannot be made, or would be refused by MQTT or a broker, is an action
        error: reported, not carried out (no output line), and the next action runs."""
        engine = self.engine
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
            engine.emit({"ts": engine.now, "kind": "publish", "rule": self.name, "topic": topic,
                         "payload": payload, "qos": action.qos, "retain": action.retain})


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
        self.source.start(self, instance)

    def stop(self, instance: ContextInstance) -> None:
        self.source.stop(instance)

    def on_event(self, event: Event, instances: list[ContextInstance]) -> None:
        self.source.on_event(event, instances)

    def receiver(self) -> Callable[[Event, list[ContextInstance]], None]:
        return self.source.on_event

    def wants(self) -> Callable[[Event], bool] | None:
        return self.source.wants()

    def partial_matches(self, instance: ContextInstance | None = None) -> int:
        return self.source.partial_matches(instance)

    def at_rest(self, instance: ContextInstance) -> bool:
        return self.source.at_rest(instance)

    def result(self, attrs: Attrs | None, match: Match, ctx: ContextInstance) -> None:
        """A result of the source in instance `ctx`: `attrs` are the event's attributes
        for a stream (None for a pattern), `match` binds the tags.  Raises only
        OutputFailed (what else fails is reported)."""
        raise NotImplementedError


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
        result_names = frozenset(info.schema)
        self.actions = self._compile_actions(
            ExpressionCompiler(frozenset(), result_names, self.position_of))
        self.schema = info.schema

    def result(self, attrs: Attrs | None, match: Match, ctx: ContextInstance) -> None:
        """A match of the source: apply WHERE, build the result, emit it."""
        values: Attrs
        try:
            if self.where is not None and not self.where(attrs, match, ctx):
                return
            if self.select is None:  # `*`: the event's attributes, or the pattern's tags
                values = dict(attrs) if attrs is not None else {
                    tag: match.get(tag) for tag in self.source.tags}
            else:
                values = {name: fn(attrs, match, ctx) for name, fn in self.select}
        except Exception as exc:
            self.failed("its WHERE or SELECT", exc)
            return
        engine = self.engine
        self.matches += 1
        self.last_fired = engine.now
        key = ctx.key
        try:
            attributes = engine.json.attrs(values, self.schema)
            if key is not None and type(key) is not str:
                key = engine.json.value(key)
        except Exception as exc:
            self.failed("writing its result", exc)
            return
        engine.emit({"ts": engine.now, "kind": "event", "rule": self.name,
                     "type": self.output_type, "context": ctx.name, "key": key,
                     "attrs": attributes})
        if self.inserts:
            engine.insert(Event(self.output_type, engine.now, values))
        if self.actions:
            self._publish(values, {}, ctx)


class OnAgent(SourcedAgent):
    """ON event / ON PATTERN rules: each match carries out the actions."""

    def __init__(self, info: RuleInfo, engine: AgentHost, source: Source) -> None:
        super().__init__(info, engine, source)
        assert isinstance(info.rule, ast.OnRule)
        self.actions = self._compile_actions(source.compiler)

    def result(self, attrs: Attrs | None, match: Match, ctx: ContextInstance) -> None:
        self._act(attrs, match, ctx)


# ====================================================================== sources


class Source:
    """Where an agent's matches come from: a stream filter or a pattern."""

    compiler: ExpressionCompiler
    tags: tuple[str, ...]

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

    def wants(self) -> Callable[[Event], bool] | None:
        """See `Agent.wants`."""
        return None


class StreamSource(Source):
    """`FROM Type(filter) AS alias`: every matching event is a result."""

    agent: SourcedAgent  # the agent it feeds, from the first `start` on

    def __init__(self, source: ast.StreamSource, attrs: frozenset[str],
                 position_of: PositionOf) -> None:
        self.alias = source.alias or source.type
        self.tags = (self.alias,)
        self.compiler = ExpressionCompiler(frozenset(self.tags), attrs, position_of)
        self.filter = self.compiler.compile(source.filter) if source.filter is not None else None

    def start(self, agent: SourcedAgent, instance: ContextInstance) -> None:
        self.agent = agent  # a stream rule keeps no state per instance

    def stop(self, instance: ContextInstance) -> None:
        pass

    def on_event(self, event: Event, instances: list[ContextInstance]) -> None:
        attrs = event.attrs
        match: Match = {self.alias: event}
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


class PatternSource(Source):
    """`PATTERN [...]`: one pattern run per context instance."""

    def __init__(self, source: ast.PatternSource, compiler: PatternCompiler,
                 position_of: PositionOf) -> None:
        self.node = compiler.compile(source.pattern)
        self.tags = tuple(declared_tags(source.pattern))
        self.compiler = ExpressionCompiler(frozenset(self.tags), None, position_of)
        self.runs: dict[ContextInstance, PatternRun] = {}
        self.interest = Interest(self.node)  # which events any of the runs could use

    def start(self, agent: SourcedAgent, instance: ContextInstance) -> None:
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

    def wants(self) -> Callable[[Event], bool]:
        return self.interest.wants


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

    Its names are the instance's partition key attributes and initiating event's attributes.
    """

    def __init__(self, info: RuleInfo, engine: AgentHost, kind: str) -> None:
        super().__init__(info, engine)
        self.kind = kind
        self.inputs = []
        names = frozenset(engine.lifecycle_names(info.context or ""))
        compiler = ExpressionCompiler(frozenset(), names, self.position_of)
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
        self._act(instance.attrs, {}, instance)


def build_agent(info: RuleInfo, engine: AgentHost,
                event_attrs: dict[str, dict[str, str]]) -> Agent:
    rule = info.rule
    source_ast = rule.source if isinstance(rule, ast.SelectRule) else rule.trigger
    if isinstance(source_ast, ast.LifecycleTrigger):
        return LifecycleAgent(info, engine, source_ast.kind)
    if isinstance(source_ast, ast.StreamSource):
        attrs = frozenset(event_attrs.get(source_ast.type) or ())
        source: Source = StreamSource(source_ast, attrs, engine.position_of)
    else:
        source = PatternSource(source_ast, PatternCompiler(event_attrs, engine.position_of),
                               engine.position_of)
    if isinstance(rule, ast.SelectRule):
        return SelectAgent(info, engine, source)
    return OnAgent(info, engine, source)
