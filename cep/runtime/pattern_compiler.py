"""Pattern AST → matcher nodes, with filters compiled once."""

from __future__ import annotations

from typing import Any

from cep.language import ast
from cep.language.walk import declared_tags
from cep.runtime.expressions import ExpressionCompiler, PositionOf, _no_position
from cep.runtime.matcher import (
    AndNode,
    AtomNode,
    EveryNode,
    Filter,
    FollowedByNode,
    IntervalNode,
    Node,
    NotNode,
    OrNode,
    RepeatNode,
    UntilNode,
    WithinNode,
)


class PatternCompiler:
    def __init__(self, event_attrs: dict[str, dict[str, str]],
                 position_of: PositionOf = _no_position) -> None:
        self.event_attrs = event_attrs
        self.position_of = position_of
        self.tags: frozenset[str] = frozenset()

    def compile(self, pattern: ast.Pattern) -> Node:
        self.tags = frozenset(declared_tags(pattern))
        return self._node(pattern, under_not=False)

    def _node(self, p: ast.Pattern, under_not: bool) -> Node:
        if isinstance(p, ast.EventAtom):
            key, rest = self._split(p)
            return AtomNode(p.type, p.tag, rest, under_not, key)
        if isinstance(p, ast.TimerInterval):
            return IntervalNode(p.duration.seconds)
        if isinstance(p, ast.FollowedBy):
            return FollowedByNode([self._node(s, under_not) for s in p.steps])
        if isinstance(p, ast.PatternOr):
            return OrNode([self._node(i, under_not) for i in p.items])
        if isinstance(p, ast.PatternAnd):
            return AndNode([self._node(i, under_not) for i in p.items])
        if isinstance(p, ast.Every):
            return EveryNode(self._node(p.body, under_not))
        if isinstance(p, ast.PatternNot):
            return NotNode(self._node(p.body, under_not=True))
        if isinstance(p, ast.Repeat):
            return RepeatNode(p.count, self._node(p.body, under_not),
                              tuple(declared_tags(p.body)))
        if isinstance(p, ast.Until):
            return UntilNode(self._node(p.body, under_not), self._node(p.stop, under_not),
                             p.count, tuple(declared_tags(p.body)))
        if isinstance(p, ast.Within):
            return WithinNode(self._node(p.body, under_not), p.duration.seconds)
        raise TypeError(f"unknown pattern node {type(p).__name__}")

    def _split(self, atom: ast.EventAtom) -> tuple[tuple[str, Any] | None, Filter | None]:
        """An atom's filter as its index key (`attr = constant`, see `split_equality`) and
        the compiled rest: atoms are then found by the key's value, and only the rest is
        evaluated per event."""
        if atom.filter is None:
            return None, None
        attrs = frozenset(self.event_attrs.get(atom.type) or ())
        compiler = ExpressionCompiler(self.tags, attrs, self.position_of)
        key, rest = compiler.split_equality(atom.filter)
        return key, compiler.compile(rest) if rest is not None else None
