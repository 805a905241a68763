"""A small graph model both pictures are built as: nodes with a kind, labelled edges."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str   # network: topic-in, type, derived, window, rule, context, topic-out;
                # machine: start, state, match, fail, fork, join


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""
    style: str = "solid"   # solid, dashed (context gating, restarts), kill (to a failure)


@dataclass
class Graph:
    title: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    _shared: dict[tuple[str, str], str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, label: str, prefix: str) -> str:
        """A new node; its id is `prefix` and a number (in order of creation)."""
        self._counts[prefix] = self._counts.get(prefix, 0) + 1
        node_id = f"{prefix}{self._counts[prefix]}"
        self.nodes.append(Node(node_id, label, kind))
        return node_id

    def shared(self, kind: str, key: str, label: str, prefix: str) -> str:
        """The node for `key` of this kind, added the first time it is asked for."""
        found = self._shared.get((kind, key))
        if found is None:
            found = self._shared[(kind, key)] = self.add(kind, label, prefix)
        return found

    def has(self, kind: str, key: str) -> bool:
        return (kind, key) in self._shared

    def edge(self, source: str, target: str, label: str = "", style: str = "solid") -> None:
        edge = Edge(source, target, label, style)
        if edge not in self.edges:
            self.edges.append(edge)
