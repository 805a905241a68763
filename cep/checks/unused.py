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
    for info in catalog.rules:
        used_types.update(reads(info))
        if info.context:
            used_contexts.add(info.context)
    has_entities = False
    for stmt in catalog.contexts.values():
        used_types.update(_context_reads(stmt))
        if isinstance(stmt.spec, ast.Composite):
            used_contexts.update(part.name for part in stmt.spec.parts)
        if isinstance(stmt.spec, (ast.EntityDistance,)):
            has_entities = True
    for info in catalog.events.values():
        decl = info.declaration
        if decl is None or info.name in used_types or info.producers:
            continue
        if has_entities and decl.entity is not None:
            continue  # it moves an entity that a context follows
        diagnostics.warning(f"event type {info.name} is declared but no rule or context reads it",
                            decl.name_span)
    for name, stmt in catalog.contexts.items():
        if name not in used_contexts:
            diagnostics.warning(f"context {name} is declared but no rule uses it",
                                stmt.name_span)
    located_in = any(info.declaration is not None
                     and isinstance(info.declaration.position, ast.LocatedIn)
                     for info in catalog.events.values())
    used_locations = {stmt.spec.location.name for stmt in catalog.contexts.values()
                      if isinstance(stmt.spec, ast.FixedLocation)}
    for name, stmt in catalog.locations.items():
        if name not in used_locations and not located_in:
            diagnostics.warning(f"location {name} is declared but no context or LOCATED IN "
                                "uses it", stmt.name_span)
