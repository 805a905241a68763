"""Facts about contexts that several checks need (flattening compositions)."""

from __future__ import annotations

from collections.abc import Callable

from cep.language import ast
from cep.language.catalog import Catalog


def flatten(name: str, catalog: Catalog) -> list[ast.CreateContext]:
    """The non-composite contexts a context is made of (itself if not composite), each
    once, in the order of first appearance. Without recursion, each context visited once:
    a composition of compositions costs its size, whatever its depth or sharing."""
    parts: list[ast.CreateContext] = []
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        stmt = catalog.contexts.get(current)
        if stmt is None or current in seen:
            continue
        seen.add(current)
        if isinstance(stmt.spec, ast.Composite):
            pending.extend(part.name for part in reversed(stmt.spec.parts))
        else:
            parts.append(stmt)
    return parts


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


class FirstTypes:
    """`attr_type_anywhere` for every attribute at once, kept up to date while derived
    types get their attributes (`update`): one lookup instead of a scan of every type."""

    def __init__(self, catalog: Catalog) -> None:
        self._order = {name: n for n, name in enumerate(catalog.events)}
        self._first: dict[str, tuple[int, str]] = {}
        for info in catalog.events.values():
            self.update(info.name, info.attrs)

    def update(self, type_name: str, attrs: dict[str, str]) -> None:
        """`type_name` now has `attrs` (a derived type whose producer was checked)."""
        order = self._order.get(type_name, len(self._order))
        for attr, attr_type in attrs.items():
            known = self._first.get(attr)
            if known is None or known[0] >= order:
                self._first[attr] = (order, attr_type)

    def __call__(self, attr: str) -> str | None:
        known = self._first.get(attr)
        return None if known is None else known[1]


def lifecycle_attrs(name: str, catalog: Catalog,
                    type_of: Callable[[str], str | None] | None = None) -> dict[str, str]:
    """Names an ON START/END action can use: the partition key and the initiator's attributes.

    `type_of` answers `attr_type_anywhere` (a `FirstTypes` does it without a scan)."""
    result: dict[str, str] = {}
    for part in flatten(name, catalog):
        spec = part.spec
        if isinstance(spec, ast.Partition):
            for attr in spec.attrs:
                found = (type_of(attr.name) if type_of is not None
                         else attr_type_anywhere(attr.name, catalog))
                result[attr.name] = found or "ANY"
        elif isinstance(spec, ast.EventInterval) and isinstance(spec.initiator, ast.StreamSource):
            result.update(_attrs_of(spec.initiator.type, catalog))
        elif isinstance(spec, ast.EventDistance):
            result.update(_attrs_of(spec.source.type, catalog))
    return result


def _attrs_of(type_name: str, catalog: Catalog) -> dict[str, str]:
    info = catalog.events.get(type_name)
    return dict(info.attrs) if info is not None else {}
