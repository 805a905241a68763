"""Checks of contexts that need the event types: filters, partitions, locations, compositions."""

from __future__ import annotations

from cep.checks.expressions import ExpressionChecker
from cep.checks.instances import interval_types
from cep.checks.network import components
from cep.checks.patterns import PatternChecker
from cep.checks.rules import event_attrs
from cep.checks.scope import Scope, TagInfo, suggestion
from cep.checks.windows import IN_FILTER, alias_clash, misplaced_view, tag_names_taken
from cep.language import ast
from cep.language.catalog import ANY, EVENT, EVENTS, Catalog
from cep.language.context_info import flatten, partition_attrs
from cep.language.diagnostics import CONTEXT, EVENT_TYPE, LOCATION, Diagnostics
from cep.language.parser import MAX_NESTING


class ContextChecker:
    def __init__(self, catalog: Catalog, diagnostics: Diagnostics) -> None:
        self.catalog = catalog
        self.diagnostics = diagnostics
        self.attrs_of = event_attrs(catalog)
        self._attr_types: dict[str, set[str]] | None = None  # attribute -> its types
        self._has_entities: bool | None = None
        self._groups: dict[str, int] | None = None  # context -> its group of compositions
        self.taken = tag_names_taken(catalog)
        self.bad_keys: set[tuple[str, str]] = set()  # (context, key) reported as wrong

    def attr_types(self, attr: str) -> set[str]:
        """The types `attr` has in the event types that have it (indexed once)."""
        if self._attr_types is None:
            self._attr_types = {}
            for attrs in self.attrs_of.values():
                for name, attr_type in (attrs or {}).items():
                    self._attr_types.setdefault(name, set()).add(attr_type)
        return self._attr_types.get(attr, set())

    def has_entities(self) -> bool:
        if self._has_entities is None:
            self._has_entities = any(
                info.declaration is not None and info.declaration.entity is not None
                for info in self.catalog.events.values())
        return self._has_entities

    def check(self, stmt: ast.CreateContext) -> None:
        spec = stmt.spec
        if isinstance(spec, ast.EventInterval):
            self._source(spec.initiator, "a context's INITIATED BY, which opens an instance "
                         "with one event")
            if spec.terminator is not None:
                self._source(spec.terminator, "a context's TERMINATED BY, which closes an "
                             "instance with one event")
            if spec.keys:
                self._interval_keys(stmt.name, spec)
        elif isinstance(spec, ast.EventDistance):
            self._source(spec.source, "a context's WITHIN ... OF, which follows each event's "
                         "position")
            self._located(spec.source.type, spec.source.span, "WITHIN ... OF")
        elif isinstance(spec, ast.Partition):
            for attr in spec.attrs:
                types = self.attr_types(attr.name)
                if not types:
                    self.bad_keys.add((stmt.name, attr.name))
                    if not self.diagnostics.failed.get(EVENT_TYPE):
                        # (with a CREATE EVENT that did not parse, it may have been its)
                        self.diagnostics.error(f"PARTITION BY `{attr.name}`: no event type has "
                                               "this attribute", attr.span)
                elif types & {EVENT, EVENTS}:
                    self.diagnostics.error(f"PARTITION BY `{attr.name}`: it holds events, which "
                                           "cannot be a key", attr.span)
        elif isinstance(spec, ast.FixedLocation):
            if spec.location.name not in self.catalog.locations \
                    and not self.diagnostics.failed_to_declare(LOCATION, spec.location.name):
                self.diagnostics.error(
                    f"unknown location {spec.location.name}: declare it with CREATE LOCATION"
                    f"{suggestion(spec.location.name, self.catalog.locations)}",
                    spec.location.span)
        elif isinstance(spec, ast.EntityDistance):
            if not self.has_entities():
                self.diagnostics.warning(f"no event type has an ENTITY clause, so entity "
                                         f"'{spec.entity.value}' never has a position",
                                         spec.entity.span)
        elif isinstance(spec, ast.Composite):
            self._composite(stmt, spec)

    def make_scope(self) -> Scope:
        return Scope(event_attrs=self.attrs_of, windows=self.catalog.windows)

    def _source(self, source: ast.Source, where: str) -> None:
        if isinstance(source, ast.PatternSource):
            PatternChecker(self.attrs_of, self.make_scope, self.diagnostics,
                           self.catalog.windows, self.taken).check(source.pattern)
            return
        alias_clash(source, self.taken, self.diagnostics)
        if source.view is not None:
            misplaced_view(source.view, where, self.diagnostics)
        if source.type not in self.attrs_of:
            if not self.diagnostics.failed_to_declare(EVENT_TYPE, source.type):
                self.diagnostics.error(f"unknown event type {source.type}"
                                       f"{suggestion(source.type, self.attrs_of)}", source.span)
            return
        attrs = self.attrs_of[source.type]
        if source.filter is not None and attrs is not None:
            scope = Scope(attrs=dict(attrs), attrs_owner=f"event type {source.type}",
                          tags={source.alias or source.type: TagInfo(source.type)},
                          event_attrs=self.attrs_of, windows=self.catalog.windows,
                          in_filter=True, no_prior=IN_FILTER)
            ExpressionChecker(scope, self.diagnostics).condition(source.filter, "a filter")

    def _interval_keys(self, name: str, spec: ast.EventInterval) -> None:
        """`PARTITION BY k INITIATED BY ...`: each key is an attribute of every event type the
        initiator and the terminator read, of one type there, and a plain value. One error
        per key, at the key."""
        readers = ("INITIATED BY and TERMINATED BY read" if spec.terminator is not None
                   else "INITIATED BY reads")
        types = [(name, self.attrs_of[name]) for name in interval_types(spec)
                 if name in self.attrs_of]
        for key in spec.keys:
            first: tuple[str, str] | None = None  # (type name, the key's type in it)
            for type_name, attrs in types:
                if attrs is None:
                    continue  # a derived type whose schema is unknown
                key_type = attrs.get(key.name)
                if key_type is None or key_type in (EVENT, EVENTS) or (
                        first is not None and not _same_key_type(first[1], key_type)):
                    self.bad_keys.add((name, key.name))
                if key_type is None:
                    self.diagnostics.error(
                        f"PARTITION BY `{key.name}`: {type_name} has no attribute `{key.name}`"
                        f"{suggestion(key.name, attrs)}; every event type that {readers} "
                        "must carry the key", key.span)
                    break
                if key_type in (EVENT, EVENTS):
                    self.diagnostics.error(f"PARTITION BY `{key.name}`: it holds events, which "
                                           "cannot be a key", key.span)
                    break
                if first is None:
                    first = (type_name, key_type)
                elif not _same_key_type(first[1], key_type):
                    self.diagnostics.error(
                        f"PARTITION BY `{key.name}`: it is {first[1]} in {first[0]} but "
                        f"{key_type} in {type_name}; the key must have one type in every event "
                        "type the context reads", key.span)
                    break

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
                if self.diagnostics.failed_to_declare(CONTEXT, part.name):
                    continue
                self.diagnostics.error(f"unknown context {part.name}"
                                       f"{suggestion(part.name, self.catalog.contexts)}",
                                       part.span)
            elif part.name in seen:
                self.diagnostics.error(f"context {part.name} appears twice", part.span)
            elif self._contains(part.name, stmt.name):
                self.diagnostics.error(f"contexts {stmt.name} and {part.name} contain each "
                                       "other", part.span)
            seen.add(part.name)

    def _contains(self, outer: str, inner: str) -> bool:
        """Whether composite `outer` is made of `inner`, at any depth: as `inner` holds
        `outer` itself, whether the two are in one strongly connected group of the graph
        of compositions (found once for all contexts)."""
        if self._groups is None:
            parts = {name: [p.name for p in stmt.spec.parts]
                     for name, stmt in self.catalog.contexts.items()
                     if isinstance(stmt.spec, ast.Composite)}
            self._groups = components(list(self.catalog.contexts), parts)
        return self._groups.get(outer) == self._groups.get(inner) is not None


def check_contexts(catalog: Catalog, diagnostics: Diagnostics) -> None:
    checker = ContextChecker(catalog, diagnostics)
    for stmt in catalog.contexts.values():
        checker.check(stmt)
    check_composition_depth(catalog, diagnostics)
    warn_unkeyed_inputs(catalog, diagnostics, checker.bad_keys)


def composition_depths(catalog: Catalog) -> dict[str, int]:
    """How deep each context's composition goes: 0 for a context that is no composite, one
    more than its deepest part for one that is. Without recursion, each context once; a
    part on a cycle (reported elsewhere) counts as no composite."""
    depth: dict[str, int] = {}
    for root in catalog.contexts:
        if root in depth:
            continue
        path = [root]
        entered = {root}
        while path:
            name = path[-1]
            stmt = catalog.contexts.get(name)
            parts = ([part.name for part in stmt.spec.parts]
                     if stmt is not None and isinstance(stmt.spec, ast.Composite) else [])
            waiting = [part for part in parts if part not in depth and part not in entered]
            if waiting:
                entered.add(waiting[0])
                path.append(waiting[0])
                continue
            depth[name] = 1 + max((depth.get(part, 0) for part in parts), default=-1)
            entered.discard(name)
            path.pop()
    return depth


def check_composition_depth(catalog: Catalog, diagnostics: Diagnostics) -> None:
    """A composite made of composites more than MAX_NESTING deep is an error (reported at
    the first context past the limit): the engine and the graph follow compositions
    recursively."""
    depth = composition_depths(catalog)
    for name, stmt in catalog.contexts.items():
        if depth.get(name, 0) == MAX_NESTING + 1:
            diagnostics.error(f"context {name} is made of contexts nested more than "
                              f"{MAX_NESTING} levels deep (a composite of composites of ...); "
                              "compose fewer levels", stmt.name_span)


def _same_key_type(a: str, b: str) -> bool:
    return a == b or ANY in (a, b)


def warn_unkeyed_inputs(catalog: Catalog, diagnostics: Diagnostics,
                        bad_keys: set[tuple[str, str]] | None = None) -> None:
    """A rule of a keyed context (a partition or a keyed event interval) reading a type
    without the key: those events never reach it. Keys reported as wrong at their context
    (`bad_keys`: (context, key)) are not reported again here."""
    known: dict[str, list[str]] = {}  # context -> its key attributes (the right ones)
    for info in catalog.rules:
        if info.context is None or info.context not in catalog.contexts:
            continue
        keys = known.get(info.context)
        if keys is None:
            parts = {part.name for part in flatten(info.context, catalog)}
            wrong = {key for context, key in bad_keys or () if context in parts}
            keys = known[info.context] = [key for key in partition_attrs(info.context, catalog)
                                          if key not in wrong]
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
