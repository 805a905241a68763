"""Where an event happened: positions from LOCATED clauses, and declared locations."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from cep.language import ast
from cep.language.catalog import Catalog
from cep.runtime.events import Event
from cep.runtime.geometry import Position, polygon_centroid

# An event's position, None when it has none (see `position_resolver`).
PositionOf: TypeAlias = Callable[[Event], Position | None]


def no_position(_: Event) -> None:
    """The `PositionOf` of a rule set without positions."""
    return None


def location_center(stmt: ast.CreateLocation) -> Position:
    shape = stmt.shape
    if isinstance(shape, ast.Circle):
        return Position(shape.center.x, shape.center.y, shape.geo)
    x, y = polygon_centroid([(p.x, p.y) for p in shape.points])
    return Position(x, y, shape.geo)


def position_resolver(catalog: Catalog) -> PositionOf:
    """A function giving an event's position (None when it has none)."""
    centers = {name: location_center(stmt) for name, stmt in catalog.locations.items()}
    by_type: dict[str, PositionOf] = {}
    for name, info in catalog.events.items():
        decl = info.declaration
        if decl is None or decl.position is None:
            continue
        position = decl.position
        if isinstance(position, ast.LocatedAt):
            by_type[name] = _at(position.first.name, position.second.name, position.geo)
        else:
            by_type[name] = _in(position.attr.name, centers)

    def position_of(event: Event) -> Position | None:
        resolve = by_type.get(event.type)
        return resolve(event) if resolve is not None else None

    return position_of


def _at(first: str, second: str, geo: bool) -> PositionOf:
    def resolve(event: Event) -> Position | None:
        x, y = event.attrs.get(first), event.attrs.get(second)
        if x is None or y is None:
            return None
        return Position(float(x), float(y), geo)
    return resolve


def _in(attr: str, centers: dict[str, Position]) -> PositionOf:
    def resolve(event: Event) -> Position | None:
        name = event.attrs.get(attr)
        return centers.get(name) if name is not None else None
    return resolve
