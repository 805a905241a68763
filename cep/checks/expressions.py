"""Type checking of expressions: every reference resolved, every operator's operands checked.

`infer` returns the static type of an expression (see cep.language.catalog for
the type names) and reports what is wrong; after an error it returns ANY so
one mistake is reported once, not again by every enclosing operator.
"""

from __future__ import annotations

from collections.abc import Callable

from cep.checks.scope import Scope, suggestion
from cep.language import ast
from cep.language.catalog import (
    ANY,
    BOOL,
    EVENT,
    EVENTS,
    FLOAT,
    INT,
    LIST,
    NULL,
    NUMERIC,
    STRING,
    TIMESTAMP,
)
from cep.language.diagnostics import Diagnostics

FUNCTIONS = ("abs", "round", "min", "max", "lower", "upper", "coalesce", "distance")
_ORDERED = (INT, FLOAT, STRING, TIMESTAMP)


def describe(type_name: str) -> str:
    return {INT: "a number (INT)", FLOAT: "a number (FLOAT)", STRING: "a STRING",
            BOOL: "a BOOL", TIMESTAMP: "a TIMESTAMP", NULL: "null", EVENT: "an event",
            EVENTS: "a list of events", LIST: "a list (a key of several attributes)"}.get(
                type_name, type_name)


def _open(t: str) -> bool:
    """Types that are compatible with anything (unknown after an error, or null)."""
    return t in (ANY, NULL)


def comparable(a: str, b: str) -> bool:
    if _open(a) or _open(b):
        return True
    if a in NUMERIC and b in NUMERIC:
        return True
    return a == b and a not in (EVENT, EVENTS, LIST)


def common_type(a: str, b: str) -> str:
    if _open(a):
        return b
    if _open(b):
        return a
    if a in NUMERIC and b in NUMERIC:
        return INT if a == b == INT else FLOAT
    return a


class ExpressionChecker:
    """Infers types in one scope; reports into `diagnostics`."""

    def __init__(self, scope: Scope, diagnostics: Diagnostics) -> None:
        self.scope = scope
        self.diagnostics = diagnostics

    def error(self, message: str, node: ast.Expr) -> str:
        self.diagnostics.error(message, node.span)
        return ANY

    # -------------------------------------------------------------- entry points
    def infer(self, expr: ast.Expr) -> str:
        method: Callable[[ast.Expr], str] = getattr(self, "_" + type(expr).__name__)
        return method(expr)

    def condition(self, expr: ast.Expr, what: str) -> None:
        """A filter or WHERE: must be a boolean."""
        result = self.infer(expr)
        if result not in (BOOL, ANY, NULL):
            self.error(f"{what} must be a condition (true or false), but this is "
                       f"{describe(result)}", expr)

    # -------------------------------------------------------------- leaves
    def _Literal(self, expr: ast.Literal) -> str:
        value = expr.value
        if value is None:
            return NULL
        if isinstance(value, bool):
            return BOOL
        if isinstance(value, int):
            return INT
        if isinstance(value, float):
            return FLOAT
        return STRING

    def _Name(self, expr: ast.Name) -> str:
        scope = self.scope
        if expr.name in scope.attrs:
            return scope.attrs[expr.name]
        if expr.name in scope.tags:
            return EVENTS if scope.tags[expr.name].repeated else EVENT
        if expr.name in scope.unbound:
            return self.error(f"tag `{expr.name}` is not bound here: {scope.unbound[expr.name]}",
                              expr)
        candidates = list(scope.attrs) + list(scope.tags)
        return self.error(f"unknown name `{expr.name}`: {scope.attrs_owner} has no attribute "
                          f"`{expr.name}`{suggestion(expr.name, candidates)}", expr)

    def _Attribute(self, expr: ast.Attribute) -> str:
        scope = self.scope
        tag = scope.tags.get(expr.tag)
        if tag is None:
            if expr.tag in scope.unbound:
                return self.error(f"tag `{expr.tag}` is not bound here: "
                                  f"{scope.unbound[expr.tag]}", expr)
            return self.error(f"unknown tag `{expr.tag}`"
                              f"{suggestion(expr.tag, scope.tags)}", expr)
        if tag.repeated and expr.index is None:
            return self.error(f"tag `{expr.tag}` holds several events ([n] or until): write "
                              f"`{expr.tag}[0].{expr.attr}` for the first", expr)
        if not tag.repeated and expr.index is not None:
            return self.error(f"tag `{expr.tag}` holds one event: write "
                              f"`{expr.tag}.{expr.attr}`", expr)
        if tag.count is not None and expr.index is not None and expr.index >= tag.count:
            return self.error(f"tag `{expr.tag}` holds {tag.count} events, so the index must be "
                              f"0 to {tag.count - 1}", expr)
        attrs = scope.event_attrs.get(tag.type)
        if attrs is None:
            return ANY
        if expr.attr not in attrs:
            return self.error(f"event type {tag.type} has no attribute `{expr.attr}`"
                              f"{suggestion(expr.attr, attrs)}", expr)
        return attrs[expr.attr]

    def _ContextField(self, expr: ast.ContextField) -> str:
        if expr.field not in ("key", "name"):
            return self.error(f"unknown context field `context.{expr.field}`: use "
                              "`context.key` or `context.name`", expr)
        if self.scope.context is None:
            return self.error(f"`context.{expr.field}` needs a rule with CONTEXT", expr)
        if expr.field == "key" and not self.scope.has_key:
            return self.error(f"`context.key` needs a partitioned context, and "
                              f"{self.scope.context} has no PARTITION BY", expr)
        return self.scope.key_type if expr.field == "key" else STRING

    # -------------------------------------------------------------- operators
    def _Unary(self, expr: ast.Unary) -> str:
        operand = self.infer(expr.operand)
        if expr.op == "not":
            if operand not in (BOOL, ANY, NULL):
                return self.error(f"NOT needs a condition, but this is {describe(operand)}",
                                  expr.operand)
            return BOOL
        if operand not in NUMERIC and not _open(operand):
            return self.error(f"`-` needs a number, but this is {describe(operand)}",
                              expr.operand)
        return operand if operand in NUMERIC else ANY

    def _Binary(self, expr: ast.Binary) -> str:
        left, right = self.infer(expr.left), self.infer(expr.right)
        if left == ANY or right == ANY:
            return BOOL if expr.op in ("and", "or", "=", "!=", "<", "<=", ">", ">=") else ANY
        op = expr.op
        if op in ("and", "or"):
            for side, t in ((expr.left, left), (expr.right, right)):
                if t not in (BOOL, NULL):
                    self.error(f"{op.upper()} needs conditions on both sides, but this is "
                               f"{describe(t)}", side)
            return BOOL
        if op in ("=", "!="):
            if not comparable(left, right):
                return self.error(f"cannot compare {describe(left)} with {describe(right)}",
                                  expr)
            if NULL in (left, right):
                self.diagnostics.warning(f"`{op}` with null is never true: use IS "
                                         f"{'NOT ' if op == '!=' else ''}NULL", expr.span)
            return BOOL
        if op in ("<", "<=", ">", ">="):
            if not comparable(left, right) or not (left in _ORDERED or _open(left)) \
                    or not (right in _ORDERED or _open(right)):
                return self.error(f"cannot order {describe(left)} against {describe(right)} "
                                  f"with `{op}`", expr)
            return BOOL
        return self._arithmetic(expr, left, right)

    def _arithmetic(self, expr: ast.Binary, left: str, right: str) -> str:
        op = expr.op
        if op == "+" and left == STRING and right in (STRING, NULL):
            return STRING  # extension: string concatenation
        if left == TIMESTAMP or right == TIMESTAMP:
            if op == "-" and left == right == TIMESTAMP:
                return FLOAT  # seconds between two timestamps
            if op in ("+", "-") and left == TIMESTAMP and (right in NUMERIC or _open(right)):
                return TIMESTAMP  # a timestamp moved by seconds
        for side, t in ((expr.left, left), (expr.right, right)):
            if t not in NUMERIC and not _open(t):
                return self.error(f"`{op}` needs numbers, but this is {describe(t)}", side)
        if op == "/":
            return FLOAT
        return INT if left == right == INT else (FLOAT if NULL not in (left, right) else ANY)

    def _InList(self, expr: ast.InList) -> str:
        operand = self.infer(expr.operand)
        for item in expr.items:
            item_type = self.infer(item)
            if not comparable(operand, item_type):
                self.error(f"IN list item is {describe(item_type)}, but the value tested is "
                           f"{describe(operand)}", item)
        return BOOL

    def _Between(self, expr: ast.Between) -> str:
        operand = self.infer(expr.operand)
        for bound in (expr.low, expr.high):
            bound_type = self.infer(bound)
            if not comparable(operand, bound_type) or operand in (BOOL, EVENT, EVENTS):
                self.error(f"BETWEEN bound is {describe(bound_type)}, but the value tested is "
                           f"{describe(operand)}", bound)
        return BOOL

    def _Like(self, expr: ast.Like) -> str:
        for part in (expr.operand, expr.pattern):
            part_type = self.infer(part)
            if part_type not in (STRING, ANY, NULL):
                self.error(f"LIKE works on strings, but this is {describe(part_type)}", part)
        return BOOL

    def _IsNull(self, expr: ast.IsNull) -> str:
        self.infer(expr.operand)
        return BOOL

    # -------------------------------------------------------------- functions
    def _Call(self, expr: ast.Call) -> str:
        name = expr.name
        if name not in FUNCTIONS:
            return self.error(f"unknown function `{name}`: the functions are "
                              f"{', '.join(FUNCTIONS)}{suggestion(name, FUNCTIONS)}", expr)
        if name == "distance":
            return self._distance(expr)
        args = [self.infer(a) for a in expr.args]
        arity = {"abs": (1, 1), "round": (1, 2), "lower": (1, 1), "upper": (1, 1)}.get(
            name, (1, 99))
        if not arity[0] <= len(args) <= arity[1]:
            wanted = (f"{arity[0]}" if arity[0] == arity[1] else
                      f"{arity[0]} or {arity[1]}" if arity[1] < 99 else f"at least {arity[0]}")
            return self.error(f"{name}() takes {wanted} argument"
                              f"{'s' if arity[1] > 1 else ''}, not {len(args)}", expr)
        if name in ("abs", "round"):
            self._want(expr.args[0], args[0], NUMERIC, name)
            if name == "round" and len(args) == 2:
                self._want(expr.args[1], args[1], (INT,), name)
                return FLOAT
            return args[0] if name == "abs" and args[0] in NUMERIC else (
                INT if name == "round" else ANY)
        if name in ("lower", "upper"):
            self._want(expr.args[0], args[0], (STRING,), name)
            return STRING
        result = NULL
        for node, t in zip(expr.args, args):
            if not comparable(result, t):
                return self.error(f"{name}() arguments must all be of one kind, but this is "
                                  f"{describe(t)}", node)
            result = common_type(result, t)
        if name in ("min", "max") and result not in _ORDERED and not _open(result):
            return self.error(f"{name}() needs numbers, strings or timestamps", expr)
        return ANY if result == NULL else result

    def _want(self, node: ast.Expr, actual: str, allowed: tuple[str, ...], fn: str) -> None:
        if actual not in allowed and not _open(actual):
            kinds = " or ".join(describe(a) for a in allowed)
            self.error(f"{fn}() needs {kinds}, but this is {describe(actual)}", node)

    def _distance(self, expr: ast.Call) -> str:
        if len(expr.args) != 2:
            return self.error(f"distance() takes 2 tags, not {len(expr.args)} arguments", expr)
        for arg in expr.args:
            if not isinstance(arg, ast.Name) or arg.name not in self.scope.tags:
                if isinstance(arg, ast.Name) and arg.name in self.scope.unbound:
                    self.error(f"tag `{arg.name}` is not bound here: "
                               f"{self.scope.unbound[arg.name]}", arg)
                else:
                    self.error("distance() takes two tags of located events, such as "
                               "`distance(a, b)`", arg)
                continue
            tag = self.scope.tags[arg.name]
            if tag.type not in self.scope.located:
                self.error(f"distance(): events of type {tag.type} have no position (their "
                           "CREATE EVENT has no LOCATED clause)", arg)
        return FLOAT
