"""Checks of contexts that need the event types: filters, partitions, locations, compositions."""

from __future__ import annotations

from cep.checks.expressions import ExpressionChecker
from cep.checks.patterns import PatternChecker
from cep.checks.rules import event_attrs
from cep.checks.scope import Scope, TagInfo, suggestion
from cep.language import ast
from cep.language.catalog import EVENT, EVENTS, Catalog
from cep.language.context_info import partition_attrs
from cep.language.diagnostics import Diagnostics


class ContextChecker:
    def __init__(self, catalog: Catalog, diagnostics: Diagnostics) -> None:
        self.catalog = catalog
        self.diagnostics = diagnostics
        self.attrs_of = event_attrs(catalog)

    def check(self, stmt: ast.CreateContext) -> None:
        spec = stmt.spec
        if isinstance(spec, ast.EventInterval):
            self._source(spec.initiator)
            if spec.terminator is not None:
                self._source(spec.terminator)
        elif isinstance(spec, ast.EventDistance):
            self._source(spec.source)
            self._located(spec.source.type, spec.source.span, "WITHIN ... OF")
        elif isinstance(spec, ast.Partition):
            for attr in spec.attrs:
                types = {attrs[attr.name] for attrs in self.attrs_of.values()
                         if attrs and attr.name in attrs}
                if not types:
                    self.diagnostics.error(f"PARTITION BY `{attr.name}`: no event type has this "
                                           "attribute", attr.span)
                elif types & {EVENT, EVENTS}:
                    self.diagnostics.error(f"PARTITION BY `{attr.name}`: it holds events, which "
                                           "cannot be a key", attr.span)
        elif isinstance(spec, ast.FixedLocation):
            if spec.location.name not in self.catalog.locations:
                self.diagnostics.error(
                    f"unknown location {spec.location.name}: declare it with CREATE LOCATION"
                    f"{suggestion(spec.location.name, self.catalog.locations)}",
                    spec.location.span)
        elif isinstance(spec, ast.EntityDistance):
            if not any(info.declaration is not None and info.declaration.entity is not None
                       for info in self.catalog.events.values()):
                self.diagnostics.warning(f"no event type has an ENTITY clause, so entity "
                                         f"'{spec.entity.value}' never has a position",
                                         spec.entity.span)
        elif isinstance(spec, ast.Composite):
            self._composite(stmt, spec)

    def _source(self, source: ast.Source) -> None:
        if isinstance(source, ast.PatternSource):
            PatternChecker(self.attrs_of, Scope, self.diagnostics).check(source.pattern)
            return
        if source.type not in self.attrs_of:
            self.diagnostics.error(f"unknown event type {source.type}"
                                   f"{suggestion(source.type, self.attrs_of)}", source.span)
            return
        attrs = self.attrs_of[source.type]
        if source.filter is not None and attrs is not None:
            scope = Scope(attrs=dict(attrs), attrs_owner=f"event type {source.type}",
                          tags={source.alias or source.type: TagInfo(source.type)},
                          event_attrs=self.attrs_of)
            ExpressionChecker(scope, self.diagnostics).condition(source.filter, "a filter")

    def _located(self, type_name: str, span: ast.Span, what: str) -> None:
        info = self.catalog.events.get(type_name)
        if info is not None and not info.located:
            self.diagnostics.error(f"{what}: {type_name} events have no position (add a LOCATED "
                                   f"clause to CREATE EVENT {type_name})", span)

    def _composite(self, stmt: ast.CreateContext, spec: ast.Composite) -> None:
        seen: set[str] = set()
        for part in spec.parts:
            if part.name == stmt.name:
                self.diagnostics.error(f"context {stmt.name} cannot be part of itself", part.span)
            elif part.name not in self.catalog.contexts:
                self.diagnostics.error(f"unknown context {part.name}"
                                       f"{suggestion(part.name, self.catalog.contexts)}",
                                       part.span)
            elif part.name in seen:
                self.diagnostics.error(f"context {part.name} appears twice", part.span)
            elif self._contains(part.name, stmt.name):
                self.diagnostics.error(f"contexts {stmt.name} and {part.name} contain each "
                                       "other", part.span)
            seen.add(part.name)

    def _contains(self, outer: str, inner: str, depth: int = 0) -> bool:
        stmt = self.catalog.contexts.get(outer)
        if stmt is None or not isinstance(stmt.spec, ast.Composite) or depth > 50:
            return False
        return any(p.name == inner or self._contains(p.name, inner, depth + 1)
                   for p in stmt.spec.parts)


def check_contexts(catalog: Catalog, diagnostics: Diagnostics) -> None:
    checker = ContextChecker(catalog, diagnostics)
    for stmt in catalog.contexts.values():
        checker.check(stmt)
    warn_unkeyed_inputs(catalog, diagnostics)


def warn_unkeyed_inputs(catalog: Catalog, diagnostics: Diagnostics) -> None:
    """A partitioned rule reading a type without the key: those events never reach it."""
    for info in catalog.rules:
        if info.context is None or info.context not in catalog.contexts:
            continue
        keys = partition_attrs(info.context, catalog)
        for type_name in info.inputs:
            event = catalog.events.get(type_name)
            if event is None or not keys:
                continue
            missing = [k for k in keys if k not in event.attrs]
            if missing:
                diagnostics.warning(
                    f"events of type {type_name} have no `{missing[0]}`, so they belong to no "
                    f"instance of {info.context} and rule '{info.name}' never sees them",
                    info.rule.span)
