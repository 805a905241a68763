"""Facts about contexts that several checks need (flattening compositions)."""

from __future__ import annotations

from collections.abc import Callable

from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.walk import children, event_types


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


def key_attrs(spec: ast.ContextSpec) -> tuple[ast.Ident, ...]:
    """The key attributes of one (non-composite) context: a partition's, a keyed event
    interval's (`PARTITION BY k INITIATED BY ...`); () for the others."""
    if isinstance(spec, ast.Partition):
        return spec.attrs
    if isinstance(spec, ast.EventInterval):
        return spec.keys
    return ()


def partition_attrs(name: str, catalog: Catalog) -> list[str]:
    """Attributes of the partition key of a context (empty if not partitioned): those of
    its partitions and keyed event intervals, a composition's parts' together."""
    attrs: list[str] = []
    for part in flatten(name, catalog):
        attrs.extend(a.name for a in key_attrs(part.spec) if a.name not in attrs)
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
    """Names an ON START/END action can use: the partition key and the initiator's attributes
    (a keyed event interval's: both).

    `type_of` answers `attr_type_anywhere` (a `FirstTypes` does it without a scan)."""
    result: dict[str, str] = {}
    for part in flatten(name, catalog):
        spec = part.spec
        if isinstance(spec, ast.Partition):
            for attr in spec.attrs:
                found = (type_of(attr.name) if type_of is not None
                         else attr_type_anywhere(attr.name, catalog))
                result[attr.name] = found or "ANY"
        elif isinstance(spec, ast.EventInterval):
            if isinstance(spec.initiator, ast.StreamSource):
                result.update(_attrs_of(spec.initiator.type, catalog))
            for attr in spec.keys:  # typed as in the types the interval reads
                found = next((info.attrs[attr.name] for info in
                              (catalog.events.get(t) for t in _interval_types(spec))
                              if info is not None and attr.name in info.attrs), None)
                if found is None:
                    found = (type_of(attr.name) if type_of is not None
                             else attr_type_anywhere(attr.name, catalog))
                result[attr.name] = found or "ANY"
        elif isinstance(spec, ast.EventDistance):
            result.update(_attrs_of(spec.source.type, catalog))
    return result


def _interval_types(spec: ast.EventInterval) -> list[str]:
    """The event types an event interval's initiator and terminator read, in order."""
    found: list[str] = []
    for source in (spec.initiator, spec.terminator):
        if isinstance(source, ast.StreamSource):
            found.append(source.type)
        elif isinstance(source, ast.PatternSource):
            found.extend(event_types(source.pattern))
    return found


def initiator_tags(name: str, catalog: Catalog) -> dict[str, str]:
    """The tags an ON START/END action of context `name` can read: tag -> event type, those
    a match of the initiating pattern (`INITIATED BY PATTERN [...]`) can bind, for each
    event interval the context is made of (an earlier part's tag wins, as at run time).

    Tags inside `not` are never bound, so they are not here; a tag in one branch of `or`
    may be unbound in a match (null).  Which tags hold a list (inside `[n]` or the body of
    `until`): `repeated_initiator_tags`."""
    result: dict[str, str] = {}
    for part in flatten(name, catalog):
        spec = part.spec
        if isinstance(spec, ast.EventInterval) and isinstance(spec.initiator, ast.PatternSource):
            for tag, (type_name, _) in _bound_tags(spec.initiator.pattern).items():
                result.setdefault(tag, type_name)
    return result


def repeated_initiator_tags(name: str, catalog: Catalog) -> frozenset[str]:
    """The tags of `initiator_tags` bound to a list of events (`[n]`, the body of `until`):
    read as `tag[i].attr`; the others as `tag.attr`."""
    result: dict[str, bool] = {}
    for part in flatten(name, catalog):
        spec = part.spec
        if isinstance(spec, ast.EventInterval) and isinstance(spec.initiator, ast.PatternSource):
            for tag, (_, repeated) in _bound_tags(spec.initiator.pattern).items():
                result.setdefault(tag, repeated)
    return frozenset(tag for tag, repeated in result.items() if repeated)


def _bound_tags(pattern: ast.Pattern) -> dict[str, tuple[str, bool]]:
    """Tag -> (event type, whether it holds a list) for the tags a match can bind: outside
    `not`, in source order (without recursion)."""
    found: dict[str, tuple[str, bool]] = {}
    pending: list[tuple[ast.Pattern, bool]] = [(pattern, False)]
    while pending:
        node, repeated = pending.pop()
        if isinstance(node, ast.PatternNot):
            continue
        if isinstance(node, ast.EventAtom):
            if node.tag is not None:
                found.setdefault(node.tag, (node.type, repeated))
            continue
        if isinstance(node, ast.Repeat):
            inner = [(node.body, True)]
        elif isinstance(node, ast.Until):
            inner = [(node.body, True), (node.stop, repeated)]
        else:
            inner = [(child, repeated) for child in children(node)]
        pending.extend(reversed(inner))
    return found


def _attrs_of(type_name: str, catalog: Catalog) -> dict[str, str]:
    info = catalog.events.get(type_name)
    return dict(info.attrs) if info is not None else {}
