"""The event processing network seen statically: who produces and reads which type.

Orders rules so that a rule is checked after the rules producing the derived
types it reads (their schema is then known), and reports INSERT INTO cycles,
which could make derived events feed themselves forever.
"""

from __future__ import annotations

from cep.language import ast
from cep.language.catalog import Catalog, RuleInfo
from cep.language.diagnostics import Diagnostics
from cep.language.walk import inserts, reads


def check_order(catalog: Catalog) -> list[RuleInfo]:
    """Rules in an order where producers of a derived type come before its readers."""
    producers: dict[str, list[RuleInfo]] = {}
    for info in catalog.rules:
        target = inserts(info)
        if target is not None:
            producers.setdefault(target, []).append(info)
    ordered: list[RuleInfo] = []
    state: dict[int, str] = {}  # rule number -> "visiting" | "done"

    def visit(info: RuleInfo) -> None:
        if state.get(info.number):
            return  # done, or on the current path (a cycle, reported elsewhere)
        state[info.number] = "visiting"
        for type_name in reads(info):
            for producer in producers.get(type_name, []):
                visit(producer)
        state[info.number] = "done"
        ordered.append(info)

    for info in catalog.rules:
        visit(info)
    return ordered


def check_cycles(catalog: Catalog, diagnostics: Diagnostics) -> None:
    """Report each INSERT INTO cycle once, at the INSERT INTO that closes it."""
    edges: dict[str, list[tuple[RuleInfo, str]]] = {}  # type read -> (rule, type inserted)
    for info in catalog.rules:
        target = inserts(info)
        if target is None:
            continue
        for type_name in reads(info):
            edges.setdefault(type_name, []).append((info, target))
    reported: set[frozenset[int]] = set()
    for start in list(edges):
        _search(start, start, [], edges, reported, diagnostics)


def _search(start: str, current: str, path: list[tuple[RuleInfo, str]],
            edges: dict[str, list[tuple[RuleInfo, str]]], reported: set[frozenset[int]],
            diagnostics: Diagnostics) -> None:
    for info, target in edges.get(current, []):
        if any(step[0] is info for step in path):
            continue
        step_path = [*path, (info, target)]
        if target == start:
            key = frozenset(step[0].number for step in step_path)
            if key in reported:
                continue
            reported.add(key)
            chain = start + "".join(f" → rule '{r.name}' → {t}" for r, t in step_path)
            closing = step_path[-1][0].rule
            assert isinstance(closing, ast.SelectRule) and closing.insert_into is not None
            diagnostics.error(f"INSERT INTO cycle: {chain}; derived events would feed "
                              "themselves forever", closing.insert_into.span)
        elif len(step_path) < 50:
            _search(start, target, step_path, edges, reported, diagnostics)
