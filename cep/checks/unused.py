"""Warnings for declarations nothing uses."""

from __future__ import annotations

from cep.checks.windows import windows_read
from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.diagnostics import Diagnostics
from cep.language.walk import context_expressions, event_types, reads, rule_expressions


def _context_reads(stmt: ast.CreateContext) -> list[str]:
    spec = stmt.spec
    sources: list[ast.Source] = []
    if isinstance(spec, ast.EventInterval):
        sources = [spec.initiator] + ([spec.terminator] if spec.terminator else [])
    elif isinstance(spec, ast.EventDistance):
        sources = [spec.source]
    names: list[str] = []
    for source in sources:
        if isinstance(source, ast.StreamSource):
            names.append(source.type)
        else:
            names.extend(event_types(source.pattern))
    return names


def warn_unused(catalog: Catalog, diagnostics: Diagnostics) -> None:
    used_types: set[str] = set()
    used_contexts: set[str] = set()
    for rule in catalog.rules:
        used_types.update(reads(rule))
        if rule.context:
            used_contexts.add(rule.context)
    has_entities = False
    for context in catalog.contexts.values():
        used_types.update(_context_reads(context))
        if isinstance(context.spec, ast.Composite):
            used_contexts.update(part.name for part in context.spec.parts)
        if isinstance(context.spec, ast.EntityDistance):
            has_entities = True
    used_types.update(window.type for window in catalog.windows.values())
    warn_unread_windows(catalog, diagnostics)
    partition_keys = {tuple(attr.name for attr in context.spec.attrs)
                      for context in catalog.contexts.values()
                      if isinstance(context.spec, ast.Partition)}
    for event in catalog.events.values():
        decl = event.declaration
        if decl is None or event.name in used_types or event.producers:
            continue
        if any(all(key in event.attrs for key in keys) for keys in partition_keys):
            continue  # its events open the instances of a partition (and run its ON START)
        if has_entities and decl.entity is not None:
            continue  # it moves an entity that a context follows
        diagnostics.warning(f"event type {event.name} is declared but no rule or context "
                            "reads it", decl.name_span)
    for name, context in catalog.contexts.items():
        if name not in used_contexts:
            diagnostics.warning(f"context {name} is declared but no rule uses it",
                                context.name_span)
    located_in = any(event.declaration is not None
                     and isinstance(event.declaration.position, ast.LocatedIn)
                     for event in catalog.events.values())
    used_locations = {context.spec.location.name for context in catalog.contexts.values()
                      if isinstance(context.spec, ast.FixedLocation)}
    for name, location in catalog.locations.items():
        if name not in used_locations and not located_in:
            diagnostics.warning(f"location {name} is declared but no context or LOCATED IN "
                                "uses it", location.name_span)


def warn_unread_windows(catalog: Catalog, diagnostics: Diagnostics) -> None:
    """A window that no rule, context or other window reads."""
    windows = catalog.windows
    if not windows:
        return
    read: set[str] = set()
    for rule in catalog.rules:
        read.update(windows_read(rule_expressions(rule.rule), windows))
    for context in catalog.contexts.values():
        read.update(windows_read(context_expressions(context), windows))
    for name, window in windows.items():
        source = window.declaration.source
        if source.filter is not None:
            read.update(other for other in windows_read([source.filter], windows)
                        if other != name)
    for name, window in windows.items():
        if name not in read:
            keyed = f", `{name}[key].attr`," if window.view.name == "unique" else ""
            diagnostics.warning(f"window {name} is never read; read it with `{name}.attr`{keyed} "
                                f"or a subquery `(SELECT ... FROM {name})`, or remove it",
                                window.declaration.name_span)
