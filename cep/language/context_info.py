"""Facts about contexts that several checks need (flattening compositions)."""

from __future__ import annotations

from cep.language import ast
from cep.language.catalog import Catalog


def flatten(name: str, catalog: Catalog,
            seen: frozenset[str] = frozenset()) -> list[ast.CreateContext]:
    """The non-composite contexts a context is made of (itself if not composite)."""
    stmt = catalog.contexts.get(name)
    if stmt is None or name in seen:
        return []
    if isinstance(stmt.spec, ast.Composite):
        parts: list[ast.CreateContext] = []
        for part in stmt.spec.parts:
            parts.extend(flatten(part.name, catalog, seen | {name}))
        return parts
    return [stmt]


def partition_attrs(name: str, catalog: Catalog) -> list[str]:
    """Attributes of the partition key of a context (empty if not partitioned)."""
    attrs: list[str] = []
    for part in flatten(name, catalog):
        if isinstance(part.spec, ast.Partition):
            attrs.extend(a.name for a in part.spec.attrs if a.name not in attrs)
    return attrs


def attr_type_anywhere(attr: str, catalog: Catalog) -> str | None:
    """The type of `attr` in the first event type that has it."""
    for info in catalog.events.values():
        if attr in info.attrs:
            return info.attrs[attr]
    return None


def lifecycle_attrs(name: str, catalog: Catalog) -> dict[str, str]:
    """Names an ON START/END action can use: the partition key and the initiator's attributes."""
    result: dict[str, str] = {}
    for part in flatten(name, catalog):
        spec = part.spec
        if isinstance(spec, ast.Partition):
            for attr in spec.attrs:
                result[attr.name] = attr_type_anywhere(attr.name, catalog) or "ANY"
        elif isinstance(spec, ast.EventInterval) and isinstance(spec.initiator, ast.StreamSource):
            result.update(_attrs_of(spec.initiator.type, catalog))
        elif isinstance(spec, ast.EventDistance):
            result.update(_attrs_of(spec.source.type, catalog))
    return result


def _attrs_of(type_name: str, catalog: Catalog) -> dict[str, str]:
    info = catalog.events.get(type_name)
    return dict(info.attrs) if info is not None else {}
