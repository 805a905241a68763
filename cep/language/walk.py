"""Walking the AST: the one place that knows which nodes a pattern node contains, and
the small questions every stage asks of a rule (which types it reads, what it inserts,
the names of its SELECT results)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Generic, TypeVar

from cep.language import ast
from cep.language.catalog import RuleInfo

R = TypeVar("R")


class PatternVisitor(ABC, Generic[R]):
    """One method per kind of pattern node; `visit` calls the one for the node's class.

    Every stage that turns a pattern into something (the printer, the checks, the
    compiler to state machines, the graph) subclasses this instead of testing node
    classes itself, so a new kind of node is one abstract method that each of them must
    then implement: a subclass that lacks it cannot be instantiated. Extra positional
    arguments of `visit` are passed on (the context a stage threads through the walk).
    """

    _METHODS: ClassVar[dict[type, str]] = {
        ast.EventAtom: "event_atom", ast.TimerInterval: "timer_interval",
        ast.TimerAt: "timer_at", ast.ForAtom: "for_atom",
        ast.FollowedBy: "followed_by", ast.PatternOr: "pattern_or",
        ast.PatternAnd: "pattern_and", ast.Every: "every", ast.PatternNot: "pattern_not",
        ast.Repeat: "repeat", ast.Until: "until", ast.Within: "within",
    }

    def visit(self, pattern: ast.Pattern, *args: Any) -> R:
        method = self._METHODS.get(type(pattern))
        if method is None:
            raise TypeError(f"not a pattern node: {pattern!r}")
        result: R = getattr(self, method)(pattern, *args)
        return result

    @abstractmethod
    def event_atom(self, node: ast.EventAtom, *args: Any) -> R: ...

    @abstractmethod
    def timer_interval(self, node: ast.TimerInterval, *args: Any) -> R: ...

    @abstractmethod
    def timer_at(self, node: ast.TimerAt, *args: Any) -> R: ...

    @abstractmethod
    def for_atom(self, node: ast.ForAtom, *args: Any) -> R: ...

    @abstractmethod
    def followed_by(self, node: ast.FollowedBy, *args: Any) -> R: ...

    @abstractmethod
    def pattern_or(self, node: ast.PatternOr, *args: Any) -> R: ...

    @abstractmethod
    def pattern_and(self, node: ast.PatternAnd, *args: Any) -> R: ...

    @abstractmethod
    def every(self, node: ast.Every, *args: Any) -> R: ...

    @abstractmethod
    def pattern_not(self, node: ast.PatternNot, *args: Any) -> R: ...

    @abstractmethod
    def repeat(self, node: ast.Repeat, *args: Any) -> R: ...

    @abstractmethod
    def until(self, node: ast.Until, *args: Any) -> R: ...

    @abstractmethod
    def within(self, node: ast.Within, *args: Any) -> R: ...


def expr_children(expr: ast.Expr, into_subqueries: bool = True) -> tuple[ast.Expr, ...]:
    """The expressions directly inside `expr`, in source order (a subquery's SELECT and
    WHERE only with `into_subqueries`: they are in the window's scope, not the rule's)."""
    if isinstance(expr, ast.Binary):
        return (expr.left, expr.right)
    if isinstance(expr, (ast.Unary, ast.IsNull, ast.Cast)):
        return (expr.operand,)
    if isinstance(expr, ast.InList):
        return (expr.operand, *expr.items)
    if isinstance(expr, ast.Between):
        return (expr.operand, expr.low, expr.high)
    if isinstance(expr, ast.Like):
        return (expr.operand, expr.pattern)
    if isinstance(expr, ast.Call):
        return expr.args
    if isinstance(expr, ast.Aggregate):
        return (expr.arg,) if expr.arg is not None else ()
    if isinstance(expr, ast.KeyedRead):
        return expr.keys
    if isinstance(expr, ast.Case):
        parts: list[ast.Expr] = [expr.operand] if expr.operand is not None else []
        for when in expr.whens:
            parts += (when.test, when.value)
        if expr.default is not None:
            parts.append(expr.default)
        return tuple(parts)
    if isinstance(expr, ast.Subquery) and into_subqueries:
        return (expr.select, expr.where) if expr.where is not None else (expr.select,)
    return ()


def walk_expr(expr: ast.Expr, into_subqueries: bool = True) -> Iterator[ast.Expr]:
    """Every expression node, parents before children (without recursion)."""
    pending = [expr]
    while pending:
        node = pending.pop()
        yield node
        pending.extend(reversed(expr_children(node, into_subqueries)))


def aggregates(expr: ast.Expr) -> list[ast.Aggregate]:
    """The aggregates of an expression outside its subqueries, in source order."""
    return [node for node in walk_expr(expr, into_subqueries=False)
            if isinstance(node, ast.Aggregate)]


def children(pattern: ast.Pattern) -> tuple[ast.Pattern, ...]:
    """The patterns directly inside `pattern`, in source order."""
    if isinstance(pattern, ast.FollowedBy):
        return pattern.steps
    if isinstance(pattern, (ast.PatternAnd, ast.PatternOr)):
        return pattern.items
    if isinstance(pattern, (ast.Every, ast.PatternNot, ast.Repeat, ast.Within)):
        return (pattern.body,)
    if isinstance(pattern, ast.Until):
        return (pattern.body, pattern.stop)
    if isinstance(pattern, ast.ForAtom):
        return (pattern.atom,)
    return ()


def walk(pattern: ast.Pattern) -> Iterator[ast.Pattern]:
    """Every pattern node, depth first, parents before children."""
    yield pattern
    for child in children(pattern):
        yield from walk(child)


def has_every(pattern: ast.Pattern) -> bool:
    return any(isinstance(node, ast.Every) for node in walk(pattern))


def event_types(pattern: ast.Pattern) -> list[str]:
    """The event types a pattern reads, in order of first appearance."""
    seen: dict[str, None] = {}
    for node in walk(pattern):
        if isinstance(node, ast.EventAtom):
            seen.setdefault(node.type)
    return list(seen)


def declared_tags(pattern: ast.Pattern) -> dict[str, ast.EventAtom]:
    """Tag → the event atom that binds it (`a=Door(...)`)."""
    return {node.tag: node for node in walk(pattern)
            if isinstance(node, ast.EventAtom) and node.tag}


def select_name(item: ast.SelectItem) -> str | None:
    """The result name of a SELECT item: its alias or the attribute it names."""
    if item.alias is not None:
        return item.alias
    if isinstance(item.expr, ast.Name):
        return item.expr.name
    if isinstance(item.expr, ast.Attribute):
        return item.expr.attr
    if isinstance(item.expr, ast.ContextField):
        return item.expr.field
    return None


def reads(info: RuleInfo) -> list[str]:
    """The event types a rule reads (its stream, or its pattern's types)."""
    rule = info.rule
    source = rule.source if isinstance(rule, ast.SelectRule) else rule.trigger
    if isinstance(source, ast.StreamSource):
        return [source.type]
    if isinstance(source, ast.PatternSource):
        return event_types(source.pattern)
    return []


def inserts(info: RuleInfo) -> str | None:
    """The derived event type a rule inserts into, if any."""
    rule = info.rule
    if isinstance(rule, ast.SelectRule) and rule.insert_into is not None:
        return rule.insert_into.name
    return None


def named_reads(expr: ast.Expr) -> Iterator[str]:
    """The names an expression reads from as `X.attr`, `X[k].attr` or `(SELECT ... FROM X)`,
    inside its subqueries too: a tag's or a named window's (the caller knows which)."""
    for node in walk_expr(expr):
        if isinstance(node, ast.Attribute):
            yield node.tag
        elif isinstance(node, ast.KeyedRead):
            yield node.window
        elif isinstance(node, ast.Subquery):
            yield node.window.name


def json_expressions(value: ast.JsonValue) -> Iterator[ast.Expr]:
    """The expressions of a PUBLISH payload, in source order."""
    pending: list[ast.JsonValue] = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, ast.JsonObject):
            pending.extend(reversed([member for _, member in current.members]))
        elif isinstance(current, ast.JsonArray):
            pending.extend(reversed(current.items))
        else:
            yield current


def source_expressions(source: ast.Source | ast.LifecycleTrigger) -> Iterator[ast.Expr]:
    """The filters of a stream, or of a pattern's event atoms."""
    if isinstance(source, ast.StreamSource):
        if source.filter is not None:
            yield source.filter
    elif isinstance(source, ast.PatternSource):
        for node in walk(source.pattern):
            if isinstance(node, ast.EventAtom) and node.filter is not None:
                yield node.filter


def rule_expressions(rule: ast.Rule) -> Iterator[ast.Expr]:
    """Every top-level expression of a rule: filters, WHERE, SELECT, HAVING, payloads."""
    yield from source_expressions(rule.source if isinstance(rule, ast.SelectRule)
                                  else rule.trigger)
    if rule.where is not None:
        yield rule.where
    if isinstance(rule, ast.SelectRule):
        yield from (item.expr for item in rule.select or ())
        if rule.having is not None:
            yield rule.having
    for action in rule.actions:
        if action.payload is not None:
            yield from json_expressions(action.payload)


def context_expressions(stmt: ast.CreateContext) -> Iterator[ast.Expr]:
    """The filters of a context's initiator, terminator or WITHIN ... OF stream."""
    spec = stmt.spec
    if isinstance(spec, ast.EventInterval):
        yield from source_expressions(spec.initiator)
        if spec.terminator is not None:
            yield from source_expressions(spec.terminator)
    elif isinstance(spec, ast.EventDistance):
        yield from source_expressions(spec.source)
