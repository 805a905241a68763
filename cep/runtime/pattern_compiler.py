"""Pattern AST → matcher nodes, with filters compiled once."""

from __future__ import annotations

from cep.language import ast
from cep.language.walk import PatternVisitor, declared_tags
from cep.runtime.expressions import EMPTY_ENV, EqualityKey, ExprEnv, ExpressionCompiler, Fn
from cep.runtime.lasting import ForNode, hold_condition
from cep.runtime.matcher import (
    AndNode,
    AtomNode,
    EveryNode,
    FollowedByNode,
    IntervalNode,
    Node,
    NotNode,
    OrNode,
    RepeatNode,
    UntilNode,
    WithinNode,
)
from cep.runtime.positions import PositionOf, no_position
from cep.runtime.timer_at import AtNode


class PatternCompiler(PatternVisitor[Node]):
    """Compiles patterns whose atoms read the given event types.

    The walk threads `under_not`: whether the node is inside a `not` (its atoms are
    then dispatched first, see cep.runtime.matcher).
    """

    def __init__(self, event_attrs: dict[str, dict[str, str]],
                 position_of: PositionOf = no_position, env: ExprEnv | None = None) -> None:
        self.event_attrs = event_attrs
        self.position_of = position_of
        self.env = env
        self.tags: frozenset[str] = frozenset()

    def compile(self, pattern: ast.Pattern) -> Node:
        self.tags = frozenset(declared_tags(pattern))
        return self.visit(pattern, False)

    def event_atom(self, node: ast.EventAtom, under_not: bool) -> AtomNode:
        key, rest = self._split(node)
        return AtomNode(node.type, node.tag, rest, under_not, key)

    def timer_at(self, node: ast.TimerAt, under_not: bool) -> AtNode:
        env = self.env if self.env is not None else EMPTY_ENV
        return AtNode(node.at, node.days, env.tz, env.location)

    def for_atom(self, node: ast.ForAtom, under_not: bool) -> ForNode:
        """`X FOR d`: X as an atom for the start, and the hold test of the later events
        of its source: X's filter without its `changed()` conjuncts (cep.runtime.lasting)."""
        atom = node.atom
        hold: AtomNode | None = None
        condition = hold_condition(atom.filter)
        if condition is not None:
            attrs = frozenset(self.event_attrs.get(atom.type) or ())
            compiler = ExpressionCompiler(self.tags, attrs, self.position_of, self.env,
                                          atom.type)
            hold = AtomNode(atom.type, None, compiler.compile(condition), under_not)
        return ForNode(self.event_atom(atom, under_not), hold, node.duration.seconds)

    def timer_interval(self, node: ast.TimerInterval, under_not: bool) -> IntervalNode:
        return IntervalNode(node.duration.seconds)

    def followed_by(self, node: ast.FollowedBy, under_not: bool) -> FollowedByNode:
        return FollowedByNode([self.visit(step, under_not) for step in node.steps])

    def pattern_or(self, node: ast.PatternOr, under_not: bool) -> OrNode:
        return OrNode([self.visit(item, under_not) for item in node.items])

    def pattern_and(self, node: ast.PatternAnd, under_not: bool) -> AndNode:
        return AndNode([self.visit(item, under_not) for item in node.items])

    def every(self, node: ast.Every, under_not: bool) -> EveryNode:
        return EveryNode(self.visit(node.body, under_not))

    def pattern_not(self, node: ast.PatternNot, under_not: bool) -> NotNode:
        return NotNode(self.visit(node.body, True))

    def repeat(self, node: ast.Repeat, under_not: bool) -> RepeatNode:
        return RepeatNode(node.count, self.visit(node.body, under_not),
                          tuple(declared_tags(node.body)))

    def until(self, node: ast.Until, under_not: bool) -> UntilNode:
        return UntilNode(self.visit(node.body, under_not), self.visit(node.stop, under_not),
                         node.count, tuple(declared_tags(node.body)))

    def within(self, node: ast.Within, under_not: bool) -> WithinNode:
        return WithinNode(self.visit(node.body, under_not), node.duration.seconds)

    def _split(self, atom: ast.EventAtom) -> tuple[EqualityKey | None, Fn | None]:
        """An atom's filter as its index key (`attr = constant`, see `split_equality`) and
        the compiled rest: atoms are then found by the key's value, and only the rest is
        evaluated per event."""
        if atom.filter is None:
            return None, None
        attrs = frozenset(self.event_attrs.get(atom.type) or ())
        compiler = ExpressionCompiler(self.tags, attrs, self.position_of, self.env, atom.type)
        key, rest = compiler.split_equality(atom.filter)
        return key, compiler.compile(rest) if rest is not None else None
