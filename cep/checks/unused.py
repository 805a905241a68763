"""Warnings for declarations nothing uses."""

from __future__ import annotations

from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.diagnostics import Diagnostics
from cep.language.walk import event_types, reads


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
    for event in catalog.events.values():
        decl = event.declaration
        if decl is None or event.name in used_types or event.producers:
            continue
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
