"""The event processing network of a rule set, from the catalog.

Producers are the bus topics events come from, channels the event types (declared or
derived), agents the rules, consumers the topics rules publish to. Contexts are drawn
too: the event types that open and close them feed them, and they gate their rules.
Named windows are filled by their type and read (dashed: reading never triggers) by the
rules and contexts whose expressions name them.
"""

from __future__ import annotations

from collections.abc import Iterator

from cep.language import ast
from cep.language.catalog import Catalog, RuleInfo
from cep.language.printer import _context_spec, format_source, format_view
from cep.language.walk import (
    context_expressions,
    event_types,
    inserts,
    named_reads,
    reads,
    rule_expressions,
)
from cep.tools.graph.model import Graph


def build_network(catalog: Catalog) -> Graph:
    graph = Graph("event processing network")
    for name, event in catalog.events.items():
        _channel(graph, catalog, name)
        declaration = event.declaration
        if declaration is not None and declaration.topic is not None:
            topic = declaration.topic.topic.value
            producer = graph.shared("topic-in", topic, topic, "in")
            graph.edge(producer, _channel(graph, catalog, name))
    for name, window in catalog.windows.items():
        window_id = graph.shared("window", name, f"{name}{format_view(window.view)}", "w")
        source = window.declaration.source
        graph.edge(_channel(graph, catalog, window.type), window_id,
                   "fills" if source.filter is None else f"fills: {format_source(source)}")
    for info in catalog.rules:
        rule_id = graph.shared("rule", info.name, _rule_label(info), "r")
        _window_reads(graph, catalog, rule_expressions(info.rule), rule_id)
        if info.context is not None:
            context_id = _context(graph, catalog, info.context)
            trigger = _lifecycle(info)
            graph.edge(context_id, rule_id, f"ON {trigger.upper()}" if trigger else "CONTEXT",
                       "solid" if trigger else "dashed")
        for type_name in dict.fromkeys(reads(info)):
            graph.edge(_channel(graph, catalog, type_name), rule_id)
        target = inserts(info)
        if target is not None:
            graph.edge(rule_id, _channel(graph, catalog, target), "INSERT INTO")
        for action in info.rule.actions:
            topic = action.topic.value
            graph.edge(rule_id, graph.shared("topic-out", topic, topic, "out"), "PUBLISH")
    return graph


def _window_reads(graph: Graph, catalog: Catalog, expressions: Iterator[ast.Expr],
                  reader: str) -> None:
    """Dashed edges from each named window the expressions read to `reader`."""
    for expr in expressions:
        for name in named_reads(expr):
            if name in catalog.windows:
                graph.edge(graph.shared("window", name, name, "w"), reader, "reads", "dashed")


def _rule_label(info: RuleInfo) -> str:
    return info.name if info.context is None else f"{info.name}\n(context {info.context})"


def _lifecycle(info: RuleInfo) -> str:
    rule = info.rule
    if isinstance(rule, ast.OnRule) and isinstance(rule.trigger, ast.LifecycleTrigger):
        return rule.trigger.kind
    return ""


def _channel(graph: Graph, catalog: Catalog, name: str) -> str:
    info = catalog.events.get(name)
    if info is not None and info.derived:
        return graph.shared("derived", name, f"{name}\n(derived)", "e")
    return graph.shared("type", name, name, "e")


def _context(graph: Graph, catalog: Catalog, name: str) -> str:
    """The context's node, with edges from what opens, closes or composes it."""
    known = graph.has("context", name)
    declaration = catalog.contexts.get(name)
    label = name
    if declaration is not None:
        text = _context_spec(declaration.spec)
        for word in (" TERMINATED BY ", " DURATION ", " POLICY "):
            text = text.replace(word, "\n" + word.strip() + " ")
        label += "\n" + text
    context_id = graph.shared("context", name, label, "c")
    if known or declaration is None:
        return context_id
    _window_reads(graph, catalog, context_expressions(declaration), context_id)
    spec = declaration.spec
    if isinstance(spec, ast.EventInterval):
        for type_name in _source_types(spec.initiator):
            graph.edge(_channel(graph, catalog, type_name), context_id, "initiates")
        if spec.terminator is not None:
            for type_name in _source_types(spec.terminator):
                graph.edge(_channel(graph, catalog, type_name), context_id, "terminates")
    elif isinstance(spec, ast.EventDistance):
        graph.edge(_channel(graph, catalog, spec.source.type), context_id, "initiates")
    elif isinstance(spec, ast.EntityDistance):
        for type_name, event in catalog.events.items():
            if event.declaration is not None and event.declaration.entity is not None:
                graph.edge(_channel(graph, catalog, type_name), context_id, "positions")
    elif isinstance(spec, ast.Composite):
        for part in spec.parts:
            graph.edge(_context(graph, catalog, part.name), context_id, "part of")
    return context_id


def _source_types(source: ast.Source) -> list[str]:
    if isinstance(source, ast.StreamSource):
        return [source.type]
    return list(dict.fromkeys(event_types(source.pattern)))
