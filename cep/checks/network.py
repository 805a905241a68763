"""The event processing network seen statically: who produces and reads which type.

Orders rules so that a rule is checked after the rules producing the derived
types it reads (their schema is then known), and reports INSERT INTO cycles,
which could make derived events feed themselves forever.
"""

from __future__ import annotations

from collections.abc import Iterator

from cep.language import ast
from cep.language.catalog import Catalog, RuleInfo
from cep.language.diagnostics import Diagnostics
from cep.language.walk import inserts, named_reads, reads, rule_expressions


def check_order(catalog: Catalog) -> list[RuleInfo]:
    """Rules in an order where producers of a derived type come before its readers.

    A depth-first walk from each rule to the rules producing what it reads, without
    recursion (a chain of thousands of INSERT INTO rules is a deep walk)."""
    producers: dict[str, list[RuleInfo]] = {}
    for info in catalog.rules:
        target = inserts(info)
        if target is not None:
            producers.setdefault(target, []).append(info)

    def producers_of(info: RuleInfo) -> Iterator[RuleInfo]:
        for type_name in reads(info) + window_types(info, catalog):
            yield from producers.get(type_name, [])

    ordered: list[RuleInfo] = []
    seen: set[int] = set()  # rule numbers visited (done, or on the current path: a cycle)
    for root in catalog.rules:
        if root.number in seen:
            continue
        seen.add(root.number)
        path = [(root, producers_of(root))]
        while path:
            info, waiting = path[-1]
            for producer in waiting:
                if producer.number not in seen:
                    seen.add(producer.number)
                    path.append((producer, producers_of(producer)))
                    break
            else:
                path.pop()
                ordered.append(info)
    return ordered


def window_types(info: RuleInfo, catalog: Catalog) -> list[str]:
    """The types of the named windows a rule reads (`W.attr`, `W[k].attr`, subqueries): the
    rule is checked after their producers too, as if it read them."""
    windows = catalog.windows
    if not windows:
        return []
    found: dict[str, None] = {}
    for expr in rule_expressions(info.rule):
        for name in named_reads(expr):
            window = windows.get(name)
            if window is not None:
                found.setdefault(window.type)
    return list(found)


SHOWN_STEPS = 10  # of a long cycle, the message shows this many steps


def check_cycles(catalog: Catalog, diagnostics: Diagnostics) -> None:
    """Report each group of event types that INSERT INTO rules make feed each other (a
    strongly connected component of the type graph) once, with its shortest cycle through
    the group's first type, at the INSERT INTO that closes that cycle. Linear in the number
    of rules: Tarjan's algorithm, then one breadth-first search per group."""
    edges: dict[str, list[tuple[RuleInfo, str]]] = {}  # type read -> (rule, type inserted)
    for info in catalog.rules:
        target = inserts(info)
        if target is None:
            continue
        for type_name in reads(info):
            edges.setdefault(type_name, []).append((info, target))
    group = components(list(edges), {t: [target for _, target in out]
                                      for t, out in edges.items()})
    members: dict[int, list[str]] = {}
    for type_name in edges:  # in the order types are first read by an INSERT INTO rule
        members.setdefault(group[type_name], []).append(type_name)
    for names in members.values():
        start = names[0]
        inner = [(info, target) for name in names for info, target in edges[name]
                 if group.get(target) == group[start]]
        if not inner:
            continue  # a single type that does not feed itself
        cycle = _shortest_cycle(start, edges, group)
        others = len({info.number for info, _ in inner} - {info.number for info, _ in cycle})
        diagnostics.error(_cycle_message(start, cycle, others), _closing_span(cycle))


def _shortest_cycle(start: str, edges: dict[str, list[tuple[RuleInfo, str]]],
                    group: dict[str, int]) -> list[tuple[RuleInfo, str]]:
    """The fewest INSERT INTO steps from `start` back to it, within its group."""
    came_from: dict[str, tuple[str, RuleInfo]] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for current in frontier:
            for info, target in edges.get(current, []):
                if target == start:
                    steps = [(info, target)]
                    while current != start:
                        previous, rule = came_from[current]
                        steps.append((rule, current))
                        current = previous
                    return steps[::-1]
                if target not in came_from and group.get(target) == group[start]:
                    came_from[target] = (current, info)
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a cycle, but no path leads back to it")


def _cycle_message(start: str, cycle: list[tuple[RuleInfo, str]], others: int) -> str:
    shown = cycle if len(cycle) <= SHOWN_STEPS else [*cycle[:SHOWN_STEPS - 1], cycle[-1]]
    steps = [f" → rule '{info.name}' → {target}" for info, target in shown]
    if len(shown) < len(cycle):
        steps.insert(-1, f" → ... ({len(cycle) - len(shown):,} more steps)")
    message = (f"INSERT INTO cycle: {start}{''.join(steps)}; derived events would feed "
               "themselves forever")
    if others:
        message += (f" ({others:,} other INSERT INTO rule{'s' if others != 1 else ''} among "
                    "these types also take part in cycles)")
    return message


def _closing_span(cycle: list[tuple[RuleInfo, str]]) -> ast.Span:
    closing = cycle[-1][0].rule
    assert isinstance(closing, ast.SelectRule) and closing.insert_into is not None
    return closing.insert_into.span


def components(nodes: list[str], successors: dict[str, list[str]]) -> dict[str, int]:
    """Tarjan's strongly connected components, without recursion: node -> its group."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    group: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = 0
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        path = [(root, iter(successors.get(root, [])))]
        while path:
            node, waiting = path[-1]
            for following in waiting:
                if following not in index:
                    index[following] = low[following] = len(index)
                    stack.append(following)
                    on_stack.add(following)
                    path.append((following, iter(successors.get(following, []))))
                    break
                if following in on_stack:
                    low[node] = min(low[node], index[following])
            else:
                path.pop()
                if path:
                    parent = path[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group[member] = groups
                        if member == node:
                            break
                    groups += 1
    return group
