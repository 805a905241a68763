"""Type checking of expressions: every reference resolved, every operator's operands checked.

`infer` returns the static type of an expression (see cep.language.catalog for
the type names) and reports what is wrong; after an error it returns ANY so
one mistake is reported once, not again by every enclosing operator.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from cep.checks.scope import Scope, suggestion
from cep.language import ast
from cep.language.catalog import (
    ANY,
    ATTRIBUTE_TYPES,
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
    VALUES,
    WindowInfo,
)
from cep.language.diagnostics import WINDOW, Diagnostics
from cep.language.printer import format_expr
from cep.language.transformer import AGGREGATES
from cep.language.walk import aggregates, expr_children

FUNCTIONS = ("abs", "round", "min", "max", "lower", "upper", "coalesce", "distance", "changed",
             "cast", "prior", "current_timestamp", "hour", "minute", "weekday", "sun_elevation")
CAST_TYPES = (STRING, INT, FLOAT, BOOL)
TIME_FUNCTIONS = ("hour", "minute", "weekday", "sun_elevation")
_ORDERED = (INT, FLOAT, STRING, TIMESTAMP)
_JOINED = (STRING, INT, FLOAT, BOOL, NULL)  # what `+` joins to a STRING

NOT_COMPARED = ("list() can be selected and published, not compared: it makes a list of "
                "values, which no operator takes")
CHANGED_PLACE = "changed() belongs in an event filter, such as `Door(changed(contact))`"
IN_SUBQUERY = ("prior() cannot be in a subquery: it reads the rule's stream, not the "
               "window")
IN_SUBQUERY_WHERE = ("an aggregate cannot be in a subquery's WHERE, which picks the window's "
                     "events: aggregate in its SELECT, such as `(SELECT avg(x) FROM W WHERE ...)`")


def describe(type_name: str) -> str:
    return {INT: "a number (INT)", FLOAT: "a number (FLOAT)", STRING: "a STRING",
            BOOL: "a BOOL", TIMESTAMP: "a TIMESTAMP", NULL: "null", EVENT: "an event",
            EVENTS: "a list of events", LIST: "a list (a key of several attributes)",
            VALUES: "a list of values (from list())"}.get(type_name, type_name)


def _open(t: str) -> bool:
    """Types that are compatible with anything (unknown after an error, or null)."""
    return t in (ANY, NULL)


def comparable(a: str, b: str) -> bool:
    if _open(a) or _open(b):
        return True
    if a in NUMERIC and b in NUMERIC:
        return True
    return a == b and a not in (EVENT, EVENTS, LIST, VALUES)


def one_kind(a: str, b: str) -> bool:
    """Whether two values can be the results of one expression (CASE's branches): comparable,
    or of the same kind (two events, two lists of values)."""
    return a == b or comparable(a, b)


def common_type(a: str, b: str) -> str:
    if _open(a):
        return b
    if _open(b):
        return a
    if a in NUMERIC and b in NUMERIC:
        return INT if a == b == INT else FLOAT
    return a


def _outside_aggregates(expr: ast.Expr, attrs: dict[str, str]) -> ast.Name | None:
    """The first of the window's attributes that `expr` reads outside its aggregates."""
    pending = [expr]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Aggregate, ast.Subquery)):
            continue
        if isinstance(node, ast.Name) and node.name in attrs:
            return node
        pending.extend(reversed(expr_children(node)))
    return None


_NUMBER_TEXT = re.compile(r"-?\d{1,300}(?:\.\d{1,300})?")
_SHORTEST_HINT = 60  # characters of the fixed comparison a hint shows, at most


def _unquoted(text: str, wanted: str) -> ast.Literal | None:
    """The value a quoted string means when its quotes are a mistake: `'false'` for a BOOL,
    `'21'` for a number; None when it is text."""
    word = text.strip()
    if wanted == BOOL and word.lower() in ("true", "false"):
        return ast.Literal(word.lower() == "true")
    if wanted in NUMERIC and _NUMBER_TEXT.fullmatch(word):
        return ast.Literal(int(word) if word.lstrip("-").isdigit() and len(word) < 19
                           else float(word))
    return None


def _unquote_hint(expr: ast.Binary, left: str, right: str) -> str:
    """`; drop the quotes: `contact = false`` for a comparison of a BOOL or a number with a
    string literal that holds one; '' otherwise."""
    for side, other_type in ((expr.right, left), (expr.left, right)):
        if not (isinstance(side, ast.Literal) and isinstance(side.value, str)):
            continue
        value = _unquoted(side.value, other_type)
        if value is None:
            continue
        fixed = (ast.Binary(expr.op, expr.left, value) if side is expr.right
                 else ast.Binary(expr.op, value, expr.right))
        try:
            text = format_expr(fixed)
        except ValueError:
            return "; drop the quotes"
        if len(text) > _SHORTEST_HINT:
            return "; drop the quotes"
        return f"; drop the quotes: `{text}`"
    return ""


class ExpressionChecker:
    """Infers types in one scope; reports into `diagnostics`."""

    def __init__(self, scope: Scope, diagnostics: Diagnostics) -> None:
        self.scope = scope
        self.diagnostics = diagnostics
        self.in_aggregate = False  # while the argument of an aggregate is checked

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
        if result == VALUES:
            self.error(NOT_COMPARED, expr)
        elif result not in (BOOL, ANY, NULL):
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
        if expr.name in scope.hidden:
            return self.error(f"unknown name `{expr.name}`: {scope.hidden[expr.name]}", expr)
        if self._failed_window(expr.name):
            return ANY
        window = scope.windows.get(expr.name)
        if window is not None:
            attrs = scope.event_attrs.get(window.type) or {"attr": ANY}
            return self.error(f"`{expr.name}` is a named window: read one of its attributes, "
                              f"such as `{expr.name}.{next(iter(attrs))}`", expr)
        candidates = list(scope.attrs) + list(scope.tags)
        return self.error(f"unknown name `{expr.name}`: {scope.attrs_owner} has no attribute "
                          f"`{expr.name}`{suggestion(expr.name, candidates)}", expr)

    def _Attribute(self, expr: ast.Attribute) -> str:
        scope = self.scope
        tag = scope.tags.get(expr.tag)
        if tag is None:
            window = scope.windows.get(expr.tag)
            if window is not None:
                keys = None if expr.index is None else (ast.Literal(expr.index, expr.span),)
                return self._window_read(window, keys, expr.attr, expr)
            if expr.tag in scope.unbound:
                return self.error(f"tag `{expr.tag}` is not bound here: "
                                  f"{scope.unbound[expr.tag]}", expr)
            if self._failed_window(expr.tag):
                return ANY
            return self.error(f"unknown tag `{expr.tag}`"
                              f"{suggestion(expr.tag, [*scope.tags, *scope.windows])}", expr)
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

    def _failed_window(self, name: str) -> bool:
        """Whether `name` is a window whose CREATE WINDOW did not parse (said there)."""
        return name not in self.scope.windows and self.diagnostics.failed_to_declare(WINDOW, name)

    def _ContextField(self, expr: ast.ContextField) -> str:
        if expr.field not in ("key", "name"):
            return self.error(f"unknown context field `context.{expr.field}`: use "
                              "`context.key` or `context.name`", expr)
        if self.scope.context_unknown:
            return ANY  # the rule's CONTEXT names no context: said at the CONTEXT
        if self.scope.context is None:
            return self.error(f"`context.{expr.field}` needs a rule with CONTEXT", expr)
        if expr.field == "key" and not self.scope.has_key:
            return self.error(f"`context.key` needs a partitioned context, and "
                              f"{self.scope.context} has no PARTITION BY", expr)
        return self.scope.key_type if expr.field == "key" else STRING

    # -------------------------------------------------------------- operators
    def _listed(self, *parts: tuple[ast.Expr, str]) -> bool:
        """Report the first of these operands that is a list of values (list()): no operator
        takes one."""
        for node, part_type in parts:
            if part_type == VALUES:
                self.error(NOT_COMPARED, node)
                return True
        return False

    def _Unary(self, expr: ast.Unary) -> str:
        operand = self.infer(expr.operand)
        if self._listed((expr.operand, operand)):
            return ANY
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
                if t == VALUES:
                    self.error(NOT_COMPARED, side)
                elif t not in (BOOL, NULL):
                    self.error(f"{op.upper()} needs conditions on both sides, but this is "
                               f"{describe(t)}", side)
            return BOOL
        if self._listed((expr.left, left), (expr.right, right)):
            return BOOL if op in ("=", "!=", "<", "<=", ">", ">=") else ANY
        if op in ("=", "!="):
            if not comparable(left, right):
                return self.error(f"cannot compare {describe(left)} with {describe(right)}"
                                  f"{_unquote_hint(expr, left, right)}", expr)
            if NULL in (left, right):
                self.diagnostics.warning(f"`{op}` with null is never true: use IS "
                                         f"{'NOT ' if op == '!=' else ''}NULL", expr.span)
            return BOOL
        if op in ("<", "<=", ">", ">="):
            if not comparable(left, right) or not (left in _ORDERED or _open(left)) \
                    or not (right in _ORDERED or _open(right)):
                return self.error(f"cannot order {describe(left)} against {describe(right)} "
                                  f"with `{op}`{_unquote_hint(expr, left, right)}", expr)
            return BOOL
        return self._arithmetic(expr, left, right)

    def _arithmetic(self, expr: ast.Binary, left: str, right: str) -> str:
        op = expr.op
        if op == "+" and STRING in (left, right):
            return self._join(expr, left, right)
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

    def _join(self, expr: ast.Binary, left: str, right: str) -> str:
        """`+` with a STRING on either side joins text; the other side must have a text form."""
        side, other = (expr.right, right) if left == STRING else (expr.left, left)
        if other in _JOINED:
            return STRING
        if other == TIMESTAMP:
            return self.error("`+` joins text, and a TIMESTAMP has no text form: put it in the "
                              "payload as its own value, such as `{\"at\": t}`", side)
        if other == EVENT:
            return self.error("`+` joins text, but this is an event: join one of its "
                              "attributes, such as `a.name`", side)
        if other == EVENTS:
            return self.error("`+` joins text, but this is a list of events: join an "
                              "attribute of one of them, such as `a[0].name`", side)
        return self.error(f"`+` joins text, but this is {describe(other)}: put it in the "
                          "payload as its own value", side)

    def _InList(self, expr: ast.InList) -> str:
        operand = self.infer(expr.operand)
        if self._listed((expr.operand, operand)):
            operand = ANY
        for item in expr.items:
            item_type = self.infer(item)
            if self._listed((item, item_type)):
                continue
            if not comparable(operand, item_type):
                self.error(f"IN list item is {describe(item_type)}, but the value tested is "
                           f"{describe(operand)}", item)
        return BOOL

    def _Between(self, expr: ast.Between) -> str:
        operand = self.infer(expr.operand)
        if self._listed((expr.operand, operand)):
            operand = ANY
        for bound in (expr.low, expr.high):
            bound_type = self.infer(bound)
            if self._listed((bound, bound_type)):
                continue
            if not comparable(operand, bound_type) or operand in (BOOL, EVENT, EVENTS):
                self.error(f"BETWEEN bound is {describe(bound_type)}, but the value tested is "
                           f"{describe(operand)}", bound)
        return BOOL

    def _Like(self, expr: ast.Like) -> str:
        for part in (expr.operand, expr.pattern):
            part_type = self.infer(part)
            if self._listed((part, part_type)):
                continue
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
                              f"{', '.join(FUNCTIONS)}, and the aggregates "
                              f"{', '.join(AGGREGATES)}"
                              f"{suggestion(name, (*FUNCTIONS, *AGGREGATES))}", expr)
        if name == "distance":
            return self._distance(expr)
        if name == "changed":
            return self._changed(expr)
        if name in ("cast", "prior"):  # the parser makes Cast and Prior nodes of these
            return self.error(f"{name}() takes a value and a type, such as `cast(x, INT)`"
                              if name == "cast" else "prior() takes a whole number and an "
                              "attribute, such as `prior(1, value)`", expr)
        args = [self.infer(a) for a in expr.args]
        for node, t in zip(expr.args, args):
            if self._listed((node, t)):
                return ANY
        if name == "current_timestamp" or name in TIME_FUNCTIONS:
            return self._time_function(expr, args)
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

    def _time_function(self, expr: ast.Call, args: list[str]) -> str:
        """`current_timestamp()`; `hour()`, `minute()`, `weekday()` of now or of a TIMESTAMP."""
        if expr.name == "current_timestamp":
            if args:
                return self.error(f"current_timestamp() takes no arguments, not {len(args)}",
                                  expr)
            return TIMESTAMP
        if len(args) > 1:
            return self.error(f"{expr.name}() takes no argument (now) or one TIMESTAMP, not "
                              f"{len(args)}", expr)
        if args:
            self._want(expr.args[0], args[0], (TIMESTAMP,), expr.name)
        return FLOAT if expr.name == "sun_elevation" else INT  # degrees above the horizon

    def _changed(self, expr: ast.Call) -> str:
        """`changed(attr)`: in an event filter, whether `attr` differs from the value it had in
        the previous event of the type."""
        if not self.scope.in_filter:
            return self.error(CHANGED_PLACE, expr)
        arg = expr.args[0] if len(expr.args) == 1 else None
        if not isinstance(arg, ast.Name) or arg.name in self.scope.tags:
            return self.error("changed() takes one attribute of the event, such as "
                              "`changed(contact)`", expr)
        if arg.name not in self.scope.attrs:
            self.infer(arg)  # reports the unknown name
            return ANY
        return BOOL

    # -------------------------------------------------------------- second edition
    def _Aggregate(self, expr: ast.Aggregate) -> str:
        if self.in_aggregate:
            return self.error(f"{expr.name}() is inside another aggregate: an aggregate takes "
                              "the values of the window's events, not of an aggregate", expr)
        if self.scope.no_aggregates is not None:
            return self.error(self.scope.no_aggregates, expr)
        if expr.arg is None:
            return INT  # count(*)
        self.in_aggregate = True
        try:
            arg = self.infer(expr.arg)
        finally:
            self.in_aggregate = False
        return self._aggregate_type(expr, expr.arg, arg)

    def _aggregate_type(self, expr: ast.Aggregate, node: ast.Expr, arg: str) -> str:
        name = expr.name
        if self._listed((node, arg)):
            return ANY
        if name == "count":
            return INT
        if _open(arg):
            return {"avg": FLOAT, "stddev": FLOAT, "list": VALUES}.get(name, ANY)
        if name in ("sum", "avg", "stddev"):
            if arg not in NUMERIC:
                return self.error(f"{name}() needs numbers, but this is {describe(arg)}", node)
            return arg if name == "sum" else FLOAT
        if name in ("min", "max") and arg not in _ORDERED:
            return self.error(f"{name}() needs numbers, strings or timestamps, but this is "
                              f"{describe(arg)}", node)
        if name == "list":
            if arg not in ATTRIBUTE_TYPES:
                return self.error(f"list() collects attribute values, but this is "
                                  f"{describe(arg)}", node)
            return VALUES
        return arg  # min, max, first, last

    def _Cast(self, expr: ast.Cast) -> str:
        operand = self.infer(expr.operand)
        if expr.type not in CAST_TYPES:
            return self.error(f"cannot cast to {expr.type}: use STRING, INT, FLOAT or BOOL"
                              f"{suggestion(expr.type, CAST_TYPES)}", expr)
        if self._listed((expr.operand, operand)):
            return ANY
        if operand not in ATTRIBUTE_TYPES and not _open(operand):
            return self.error(f"cast() converts a value, but this is {describe(operand)}",
                              expr.operand)
        if operand == TIMESTAMP and expr.type in ("STRING", "BOOL"):
            return self.error(f"a TIMESTAMP has no {expr.type} form: publish it as its own "
                              "value (it is written as ISO-8601 text), or cast it to FLOAT "
                              "for Unix seconds", expr)
        return expr.type

    def _Prior(self, expr: ast.Prior) -> str:
        scope = self.scope
        if scope.prior_type is None:
            return self.error(scope.no_prior, expr)
        if self.in_aggregate:
            return self.error("prior() cannot be inside an aggregate: an aggregate takes the "
                              "window's events, prior() the stream's before this one", expr)
        if expr.count < 1:
            return self.error(f"prior({expr.count}, {expr.attr}) is this event: count from 1 "
                              f"(`prior(1, {expr.attr})` is the event before), or write "
                              f"`{expr.attr}`", expr)
        attrs = scope.event_attrs.get(scope.prior_type)
        if attrs is None:
            return ANY
        if expr.attr not in attrs:
            return self.error(f"prior(): event type {scope.prior_type} has no attribute "
                              f"`{expr.attr}`{suggestion(expr.attr, attrs)}", expr)
        return attrs[expr.attr]

    def _Case(self, expr: ast.Case) -> str:
        if expr.operand is None:
            for when in expr.whens:
                test = self.infer(when.test)
                if not self._listed((when.test, test)) and test not in (BOOL, ANY, NULL):
                    self.error(f"WHEN must be a condition (true or false) in a CASE with no "
                               f"value after CASE, but this is {describe(test)}", when.test)
        else:
            operand = self.infer(expr.operand)
            if self._listed((expr.operand, operand)):
                operand = ANY
            elif operand in (EVENT, EVENTS, LIST):
                self.error(f"CASE matches values, but this is {describe(operand)}: match one "
                           "of its attributes", expr.operand)
                operand = ANY
            for when in expr.whens:
                test = self.infer(when.test)
                if not self._listed((when.test, test)) and not comparable(operand, test):
                    self.error(f"WHEN value is {describe(test)}, but CASE matches "
                               f"{describe(operand)}", when.test)
        values = [when.value for when in expr.whens]
        if expr.default is not None:
            values.append(expr.default)
        result, known = NULL, True
        for value in values:
            value_type = self.infer(value)
            if value_type == ANY:
                known = False
            elif known and not one_kind(result, value_type):
                self.error(f"THEN and ELSE values must be of one kind, but this is "
                           f"{describe(value_type)} and the one before is {describe(result)}",
                           value)
                known = False
            elif known:
                result = common_type(result, value_type)
        return result if known else ANY

    def _KeyedRead(self, expr: ast.KeyedRead) -> str:
        scope = self.scope
        window = scope.windows.get(expr.window)
        if window is not None:
            return self._window_read(window, expr.keys, expr.attr, expr)
        if expr.window in scope.tags or expr.window in scope.unbound:
            return self.error(f"the index of tag `{expr.window}` is a whole number from 0, "
                              f"such as `{expr.window}[0].{expr.attr}`", expr)
        if self._failed_window(expr.window):
            for key in expr.keys:
                self.infer(key)
            return ANY
        return self.error(f"unknown named window `{expr.window}`: declare it with CREATE WINDOW"
                          f"{suggestion(expr.window, [*scope.windows, *scope.tags])}", expr)

    def _window_read(self, window: WindowInfo, keys: tuple[ast.Expr, ...] | None, attr: str,
                     node: ast.Expr) -> str:
        """`W.attr` (keys None: the latest event) or `W[k, ...].attr` (a `#unique` window's
        event with that key)."""
        attrs = self.scope.event_attrs.get(window.type)
        if keys is not None and not self._keys(window, keys, attr, node, attrs or {}):
            return ANY
        if attrs is None:
            return ANY
        if attr not in attrs:
            return self.error(f"window {window.name} holds {window.type} events, which have no "
                              f"attribute `{attr}`{suggestion(attr, attrs)}", node)
        return attrs[attr]

    def _keys(self, window: WindowInfo, keys: tuple[ast.Expr, ...], attr: str, node: ast.Expr,
              attrs: dict[str, str]) -> bool:
        """Check the keys of a keyed read; False when one is wrong (reported)."""
        key_types = [self.infer(key) for key in keys]
        if window.view.name != "unique":
            self.error(f"{window.name} is not #unique: read its latest event with "
                       f"`{window.name}.{attr}`", node)
            return False
        if not window.keys:
            return False  # its #unique(...) is wrong, which is reported at the window
        if len(keys) != len(window.keys):
            count = len(window.keys)
            self.error(f"{window.name} is keyed by ({', '.join(window.keys)}): give {count} "
                       f"key{'s' if count != 1 else ''}", node)
            return False
        right = True
        for key, key_type, name in zip(keys, key_types, window.keys):
            wanted = attrs.get(name, ANY)
            if self._listed((key, key_type)):
                right = False
            elif not comparable(wanted, key_type):
                self.error(f"{window.name} is keyed by `{name}`, {describe(wanted)}, but this "
                           f"key is {describe(key_type)}", key)
                right = False
        return right

    def _outside(self, name: str, owner: str) -> str:
        """Why a name around a subquery is not visible inside it, and how to reach it."""
        message = f"inside a subquery, bare names are attributes of {owner}"
        for tag, info in self.scope.tags.items():
            if name in (self.scope.event_attrs.get(info.type) or {}):
                return message + f"; write `{tag}.{name}` for the rule's event"
        return message + ", and the names outside it are not visible"

    def _Subquery(self, expr: ast.Subquery) -> str:
        scope = self.scope
        window = scope.windows.get(expr.window.name)
        if window is None and self._failed_window(expr.window.name):
            return ANY
        if window is None:
            name = expr.window.name
            self.diagnostics.error(f"unknown named window `{name}`: a subquery reads a window "
                                   f"declared with CREATE WINDOW"
                                   f"{suggestion(name, scope.windows)}", expr.window.span)
            return ANY
        attrs = scope.event_attrs.get(window.type)
        if attrs is None:
            return ANY  # its type is unknown (reported at the window) or has no schema yet
        owner = f"window {window.name} (its {window.type} events)"
        around = [*scope.hidden, *scope.attrs]
        for info in scope.tags.values():
            around.extend(scope.event_attrs.get(info.type) or ())
        hidden = {name: self._outside(name, owner) for name in around if name not in attrs}
        inner = replace(scope, attrs=dict(attrs), hidden=hidden, no_aggregates=None,
                        attrs_owner=owner, prior_type=None, no_prior=IN_SUBQUERY,
                        in_filter=False)
        result = ExpressionChecker(inner, self.diagnostics).infer(expr.select)
        if aggregates(expr.select):
            bare = _outside_aggregates(expr.select, attrs)
            if bare is not None:
                return self.error(f"`{bare.name}` is not inside an aggregate, and this subquery "
                                  "aggregates over the window's events: there is no one event "
                                  f"to read it from (write `last({bare.name})` for the newest)",
                                  bare)
        if expr.where is not None:
            where_scope = replace(inner, no_aggregates=IN_SUBQUERY_WHERE)
            ExpressionChecker(where_scope, self.diagnostics).condition(expr.where,
                                                                       "a subquery's WHERE")
        return result

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
