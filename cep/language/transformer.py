"""Parse tree → AST (cep.language.ast), one callback per grammar rule.

Spelling mistakes that the grammar leaves open (time units, distance units)
are reported here, with their place, because only here is the word known; so
are numbers no rule can hold (a whole number beyond 64 bits, a float beyond
about 1.8e308).

The tree is walked without recursion (`ToAst.transform`), so no depth of nesting
can exhaust Python's stack here; the parser refuses statements nested deeper than
MAX_NESTING before they get here, for the stages after this one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from lark import Token, Tree
from lark.tree import Meta

from cep.language import ast
from cep.language.diagnostics import Diagnostics

TIME_UNITS = {
    "msec": ("ms", 0.001), "ms": ("ms", 0.001), "millisecond": ("ms", 0.001),
    "milliseconds": ("ms", 0.001),
    "sec": ("s", 1.0), "second": ("s", 1.0), "seconds": ("s", 1.0), "s": ("s", 1.0),
    "min": ("min", 60.0), "minute": ("min", 60.0), "minutes": ("min", 60.0),
    "hour": ("h", 3600.0), "hours": ("h", 3600.0), "h": ("h", 3600.0),
    "day": ("day", 86400.0), "days": ("day", 86400.0),
}
DISTANCE_UNITS = {"m": 1.0, "km": 1000.0}

AGGREGATES = ("count", "sum", "avg", "min", "max", "first", "last", "stddev", "list")
# min and max with two or more arguments are the scalar functions
SCALAR_TOO = ("min", "max")

MAX_INT = 2**63 - 1  # the largest whole number a rule may write (JSON output holds 64 bits)

_KEEP_TOKENS = {"NAME", "STRING", "NUMBER", "TIME", "MINUS"}


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "/": "/"}


_ESCAPE = re.compile(r"\\(.)", re.S)


def _escaped(match: re.Match[str]) -> str:
    return _ESCAPES.get(match.group(1), match.group(0))


def unquote(raw: str) -> str:
    """The value of a quoted string token: each backslash and the character after it decoded
    (`\\n`, `\\'`, ...; an unknown escape stays as written, a lone last backslash too)."""
    body = raw[1:-1]
    if "\\" not in body:
        return body
    return _ESCAPE.sub(_escaped, body)


def _split_rule(children: Sequence[Any]) -> tuple[tuple[ast.Annotation, ...], list[Any],
                                                  tuple[ast.Action, ...]]:
    """`annotation* MIDDLE action*`: the annotations, the middle (whose optional parts are
    None placeholders, so it has a fixed shape), and the actions."""
    start = 0
    while start < len(children) and isinstance(children[start], ast.Annotation):
        start += 1
    end = len(children)
    while end > start and isinstance(children[end - 1], ast.Action):
        end -= 1
    return tuple(children[:start]), list(children[start:end]), tuple(children[end:])


def _shown(text: str, limit: int = 24) -> str:
    """A token as a message quotes it: a long one cut short."""
    return text if len(text) <= limit else text[:limit] + "..."


Callback = Callable[[Meta, list[Any]], Any]


class ToAst:
    """Builds AST nodes; `file` goes into every span.

    Each method named after a grammar rule (or `-> alias`) gets the node's meta (its
    place) and its children already transformed: AST values, the tokens of kept
    terminals, and None for an optional part that is absent."""

    def __init__(self, file: str, diagnostics: Diagnostics) -> None:
        self.file = file
        self.diagnostics = diagnostics
        self._line = 0  # added to every line: where the statement starts in the file
        self._col = 0   # added to columns on the statement's first line
        self._callbacks: dict[str, Callback] = {}

    def transform(self, tree: Tree[Token], line: int = 1, col: int = 1) -> Any:
        """The AST of `tree`, whose places count from (1, 1) at (`line`, `col`) of the file:
        a statement parsed on its own, put back where it stands.

        Post-order without recursion: the nodes in pre-order (children right to left),
        then backwards, each node taking its children's values off a stack."""
        self._line, self._col = line - 1, col - 1
        pending: list[Any] = [tree]
        order: list[Any] = []
        while pending:
            node = pending.pop()
            order.append(node)
            if isinstance(node, Tree):
                pending.extend(node.children)
        values: list[Any] = []
        for node in reversed(order):
            if not isinstance(node, Tree):
                values.append(node)
                continue
            count = len(node.children)
            args = values[-count:] if count else []
            if count:
                del values[-count:]
            values.append(self._callback(node.data)(node.meta, args))
        (result,) = values
        return result

    def _callback(self, rule: str) -> Callback:
        callback = self._callbacks.get(rule)
        if callback is None:
            callback = getattr(self, str(rule), None)
            if callback is None or str(rule).startswith("_"):
                raise TypeError(f"the transformer has no callback for grammar rule {rule!r}")
            self._callbacks[rule] = callback
        return callback

    # -------------------------------------------------------------- helpers
    def place(self, line: int, col: int) -> tuple[int, int]:
        """A (line, col) of the statement's own text as (line, col) of the file."""
        return line + self._line, col + self._col if line == 1 else col

    def _span(self, meta: Meta) -> ast.Span:
        if getattr(meta, "empty", True):
            return ast.Span(self.file, 0, 0, 0, 0)
        line, col = self.place(meta.line, meta.column)
        end_line, end_col = self.place(meta.end_line, meta.end_column)
        return ast.Span(self.file, line, col, end_line, end_col)

    def _tspan(self, token: Token) -> ast.Span:
        """A token's span (the lexer gives every token its place; 0 only for a token
        made up outside the source)."""
        if not token.line:
            return ast.Span(self.file, 0, 0, 0, 0)
        line, col = self.place(token.line, token.column or 0)
        end_line, end_col = self.place(token.end_line or 0, token.end_column or 0)
        return ast.Span(self.file, line, col, end_line, end_col)

    def _ident(self, token: Token) -> ast.Ident:
        return ast.Ident(str(token), self._tspan(token))

    def _number(self, token: Token) -> int | float:
        """A NUMBER token's value: an int if it is all digits, else a float. A number too
        large to hold is an error, and reads as 1 (which no later check complains about)."""
        text = str(token)
        if text.isdigit():
            digits = text.lstrip("0") or "0"
            if len(digits) <= len(str(MAX_INT)) and int(digits) <= MAX_INT:
                return int(digits)
            self.diagnostics.error(
                f"number too large: {_shown(text)} has {len(digits):,} digits, and a whole "
                f"number is at most {MAX_INT} (2^63 - 1); write a bigger one as a FLOAT, "
                "such as 1e20", self._tspan(token))
            return 1
        return self._float(token)

    def _float(self, token: Token) -> float:
        """A NUMBER token as a float; one beyond a float's range is an error (reads 1.0)."""
        value = float(str(token))
        if math.isfinite(value):
            return value
        self.diagnostics.error(f"number too large: {_shown(str(token))} is beyond the largest "
                               "FLOAT, about 1.8e308", self._tspan(token))
        return 1.0

    @staticmethod
    def _values(children: list[Any]) -> list[Any]:
        """Children without keyword tokens and absent optionals."""
        return [c for c in children
                if c is not None and not (isinstance(c, Token) and c.type not in _KEEP_TOKENS)]

    @classmethod
    def _only(cls, children: list[Any]) -> Any:
        """The one value among the children (keyword tokens dropped)."""
        (value,) = cls._values(children)
        return value

    def start(self, meta: Meta, children: list[Any]) -> ast.Statement:
        (statement,) = children
        result: ast.Statement = statement
        return result

    # -------------------------------------------------------------- strings, quantities
    def string(self, meta: Meta, children: list[Token]) -> ast.Text:
        (text,) = children
        return ast.Text(unquote(str(text)), self._span(meta))

    def duration(self, meta: Meta, children: list[Token]) -> ast.Duration:
        parts: list[tuple[float, str]] = []
        seconds = 0.0
        for amount_token, unit_token in zip(children[0::2], children[1::2]):
            amount = self._number(amount_token)
            word = str(unit_token).lower()
            unit = TIME_UNITS.get(word)
            if unit is None:
                self.diagnostics.error(
                    f"unknown time unit `{unit_token}`: use ms, sec, min, hour or day "
                    "(for example `20 min`)", self._tspan(unit_token))
                parts.append((amount, word))
                continue
            parts.append((amount, unit[0]))
            seconds += amount * unit[1]
        return ast.Duration(tuple(parts), seconds, self._span(meta))

    def distance(self, meta: Meta, children: list[Token]) -> ast.Distance:
        amount_token, unit_token = children
        amount = self._number(amount_token)
        word = str(unit_token).lower()
        factor = DISTANCE_UNITS.get(word)
        if factor is None:
            self.diagnostics.error(f"unknown distance unit `{unit_token}`: use m or km "
                                   "(for example `5 m`)", self._tspan(unit_token))
            factor = 1.0
        return ast.Distance(amount, word, amount * factor, self._span(meta))

    def signed_number(self, meta: Meta, children: list[Token | None]) -> float:
        sign, number = children
        assert number is not None
        value = self._float(number)
        return -value if sign is not None else value

    def point(self, meta: Meta, children: list[float]) -> ast.Point:
        x, y = children
        return ast.Point(x, y, self._span(meta))

    def point_list(self, meta: Meta, children: list[ast.Point]) -> tuple[ast.Point, ...]:
        return tuple(children)

    # -------------------------------------------------------------- SET
    def set_timezone(self, meta: Meta, children: list[Any]) -> ast.SetTimezone:
        _set, _timezone, zone = children
        return ast.SetTimezone(zone, self._span(meta))

    def set_location(self, meta: Meta, children: list[Any]) -> ast.SetLocation:
        lat, lon = self._values(children)
        return ast.SetLocation(lat, lon, self._span(meta))

    # -------------------------------------------------------------- CREATE EVENT
    def attr_def(self, meta: Meta, children: list[Token]) -> ast.AttrDef:
        name, type_name = children
        return ast.AttrDef(str(name), str(type_name).upper(), self._span(meta))

    def payload_path(self, meta: Meta, children: list[Any]) -> ast.PayloadPath:
        attr, path = children
        return ast.PayloadPath(str(attr), path, self._span(meta))

    def payload_as(self, meta: Meta, children: list[Any]) -> tuple[str, Any]:
        return ("as", self._ident(self._only(children)))

    def payload_paths(self, meta: Meta, children: list[Any]) -> tuple[str, Any]:
        return ("paths", tuple(self._values(children)))

    def topic_clause(self, meta: Meta, children: list[Any]) -> ast.TopicBinding:
        # FROM TOPIC string [payload_spec]
        _from, _topic, topic, payload = children
        payload_as, paths = None, ()
        if payload is not None:
            kind, value = payload
            if kind == "as":
                payload_as = value
            else:
                paths = value
        return ast.TopicBinding(topic, payload_as, paths, self._span(meta))

    def timestamp_clause(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("timestamp", self._only(children), self._span(meta))

    def located_at(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span]:
        first, second = self._values(children)
        return ("position", ast.LocatedAt(self._ident(first), self._ident(second), False,
                                          self._span(meta)), self._span(meta))

    def located_at_geo(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span]:
        first, second = self._values(children)
        return ("position", ast.LocatedAt(self._ident(first), self._ident(second), True,
                                          self._span(meta)), self._span(meta))

    def located_in(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span]:
        (attr,) = self._values(children)
        return ("position", ast.LocatedIn(self._ident(attr), self._span(meta)), self._span(meta))

    def entity_clause(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span]:
        (attr,) = self._values(children)
        return ("entity", self._ident(attr), self._span(meta))

    def create_event(self, meta: Meta, children: list[Any]) -> ast.CreateEvent:
        # CREATE EVENT NAME "(" attr_def ("," attr_def)* ")" event_clause*
        _create, _event, name_token, *parts = children
        name = str(name_token)
        attrs = tuple(v for v in parts if isinstance(v, ast.AttrDef))
        clauses: dict[str, Any] = {}
        for value in parts:
            if isinstance(value, ast.AttrDef):
                continue
            if isinstance(value, ast.TopicBinding):
                kind, item, span = "topic", value, value.span
            else:
                kind, item, span = value
            if kind in clauses:
                words = {"topic": "FROM TOPIC", "timestamp": "TIMESTAMP FROM",
                         "position": "LOCATED", "entity": "ENTITY"}[kind]
                self.diagnostics.error(f"event {name} has more than one {words} clause", span)
                continue
            clauses[kind] = item
        return ast.CreateEvent(name, attrs, clauses.get("topic"), clauses.get("timestamp"),
                               clauses.get("position"), clauses.get("entity"), self._span(meta),
                               self._tspan(name_token))

    # -------------------------------------------------------------- CREATE LOCATION
    def area(self, meta: Meta, children: list[Any]) -> ast.Polygon:
        return ast.Polygon(self._only(children), False, self._span(meta))

    def area_geo(self, meta: Meta, children: list[Any]) -> ast.Polygon:
        return ast.Polygon(self._only(children), True, self._span(meta))

    def circle(self, meta: Meta, children: list[Any]) -> ast.Circle:
        center, radius = self._values(children)
        return ast.Circle(center, radius, False, self._span(meta))

    def circle_geo(self, meta: Meta, children: list[Any]) -> ast.Circle:
        center, radius = self._values(children)
        return ast.Circle(center, radius, True, self._span(meta))

    def create_location(self, meta: Meta, children: list[Any]) -> ast.CreateLocation:
        name, shape = self._values(children)
        return ast.CreateLocation(str(name), shape, self._span(meta), self._tspan(name))

    # -------------------------------------------------------------- CREATE CONTEXT
    def day_range(self, meta: Meta, children: list[Any]) -> ast.DayRange:
        names = [c for c in children if isinstance(c, Token) and c.type == "NAME"]
        last = str(names[1]).upper() if len(names) > 1 else None
        return ast.DayRange(str(names[0]).upper(), last, self._span(meta))

    def day_list(self, meta: Meta, children: list[ast.DayRange]) -> tuple[ast.DayRange, ...]:
        return tuple(children)

    def _clock(self, token: Token) -> ast.ClockTime:
        hour, minute = str(token).split(":")
        return ast.ClockTime(int(hour), int(minute), self._tspan(token))

    def clock_point(self, meta: Meta, children: list[Token]) -> ast.ClockTime:
        (token,) = children
        return self._clock(token)

    def sun_point(self, meta: Meta, children: list[Any]) -> ast.SunTime:
        # SUN_EVENT [(PLUS | MINUS) duration]
        event, sign, offset = children
        return ast.SunTime(str(event).upper(), str(sign) if sign is not None else None,
                           offset, self._span(meta))

    def recurring(self, meta: Meta, children: list[Any]) -> ast.Recurring:
        # START time_point END time_point [ON day_list]
        _start, start, _end, end, _on, days = children
        return ast.Recurring(start, end, days or (), self._span(meta))

    def policy(self, meta: Meta, children: list[Any]) -> ast.Policy:
        return ast.Policy(str(self._only(children)).upper(), self._span(meta))

    def end_after(self, meta: Meta, children: list[Any]) -> tuple[None, ast.Duration]:
        return (None, self._only(children))

    def end_by(self, meta: Meta, children: list[Any]
               ) -> tuple[ast.StreamSource | ast.PatternSource, ast.Duration | None]:
        # TERMINATED BY (stream | pattern_source) [DURATION duration]
        _terminated, _by, terminator, _duration, duration = children
        return (terminator, duration)

    def event_interval(self, meta: Meta, children: list[Any]) -> ast.EventInterval:
        # INITIATED BY initiator interval_end [policy]
        _initiated, _by, initiator, (terminator, duration), policy = children
        return ast.EventInterval(initiator, terminator, duration, policy, self._span(meta))

    def keyed_interval(self, meta: Meta, children: list[Any]) -> ast.EventInterval:
        # PARTITION BY NAME ("," NAME)* INITIATED BY initiator interval_end [policy]
        *head, policy = children
        index = next(i for i, c in enumerate(head)
                     if isinstance(c, Token) and c.type == "INITIATED")
        keys = tuple(self._ident(t) for t in head[:index]
                     if isinstance(t, Token) and t.type == "NAME")
        _initiated, _by, initiator, (terminator, duration) = head[index:]
        return ast.EventInterval(initiator, terminator, duration, policy, self._span(meta),
                                 keys)

    def partition(self, meta: Meta, children: list[Any]) -> ast.Partition:
        return ast.Partition(tuple(self._ident(t) for t in self._values(children)),
                             self._span(meta))

    def fixed_location(self, meta: Meta, children: list[Any]) -> ast.FixedLocation:
        return ast.FixedLocation(self._ident(self._only(children)), self._span(meta))

    def entity_distance(self, meta: Meta, children: list[Any]) -> ast.EntityDistance:
        distance, entity = self._values(children)
        return ast.EntityDistance(distance, entity, self._span(meta))

    def event_distance(self, meta: Meta, children: list[Any]) -> ast.EventDistance:
        # WITHIN distance OF stream DURATION duration [policy]
        _within, distance, _of, stream, _duration, duration, policy = children
        return ast.EventDistance(distance, stream, duration, policy, self._span(meta))

    def composite(self, meta: Meta, children: list[Any]) -> ast.Composite:
        return ast.Composite(tuple(self._ident(t) for t in self._values(children)),
                             self._span(meta))

    def create_context(self, meta: Meta, children: list[Any]) -> ast.CreateContext:
        name, spec = self._values(children)
        return ast.CreateContext(str(name), spec, self._span(meta), self._tspan(name))

    # -------------------------------------------------------------- CREATE WINDOW
    def create_window(self, meta: Meta, children: list[Any]) -> ast.CreateWindow:
        # CREATE WINDOW NAME view FROM NAME [filter]
        _create, _window, name, view, _from, type_token, filter_expr = children
        source = ast.StreamSource(str(type_token), filter_expr, None,
                                  self._between(type_token, filter_expr))
        return ast.CreateWindow(str(name), view, source, self._span(meta), self._tspan(name))

    def _between(self, token: Token, last: Any) -> ast.Span:
        """The span from `token` to the end of `last` (a node with a span, or None)."""
        first = self._tspan(token)
        end = getattr(last, "span", None) if last is not None else None
        if end is None or not end.line:
            return first
        return ast.Span(first.file, first.line, first.col, end.end_line, end.end_col + 1)

    def view(self, meta: Meta, children: list[Any]) -> ast.View:
        # HASH NAME ["(" [view_arg ("," view_arg)*] ")"]
        _hash, name, *args = children
        return ast.View(str(name).lower(), tuple(a for a in args if a is not None),
                        self._span(meta))

    def view_number(self, meta: Meta, children: list[Token]) -> ast.Literal:
        (token,) = children
        return ast.Literal(self._number(token), self._span(meta))

    def view_name(self, meta: Meta, children: list[Token]) -> ast.Ident:
        (token,) = children
        return self._ident(token)

    # -------------------------------------------------------------- rules
    def annotation(self, meta: Meta, children: list[Any]) -> ast.Annotation:
        _at, name, value = children
        return ast.Annotation(str(name), value, self._span(meta))

    def context_clause(self, meta: Meta, children: list[Any]) -> ast.Ident:
        return self._ident(self._only(children))

    def insert_into(self, meta: Meta, children: list[Any]) -> ast.Ident:
        return self._ident(self._only(children))

    def select_all(self, meta: Meta, children: list[Any]) -> None:
        return None

    def select_items(self, meta: Meta,
                     children: list[ast.SelectItem]) -> tuple[ast.SelectItem, ...]:
        return tuple(children)

    def select_item(self, meta: Meta, children: list[Any]) -> ast.SelectItem:
        expr, _as, alias = children
        return ast.SelectItem(expr, str(alias) if alias is not None else None, self._span(meta))

    def filter(self, meta: Meta, children: list[Any]) -> ast.Expr | None:
        """`(expr)`, or `()`: no filter, like leaving the parentheses out; `(a, b)` is
        `(a) AND (b)`."""
        conditions = [c for c in children if c is not None]
        if not conditions:
            return None
        result: ast.Expr = conditions[0]
        for condition in conditions[1:]:
            result = ast.Binary("and", result, condition, self._span(meta))
        return result

    def stream(self, meta: Meta, children: list[Any]) -> ast.StreamSource:
        type_token, filter_expr, view, _as, alias = children
        return ast.StreamSource(str(type_token), filter_expr,
                                str(alias) if alias is not None else None, self._span(meta),
                                view)

    def pattern_source(self, meta: Meta, children: list[Any]) -> ast.PatternSource:
        return ast.PatternSource(self._only(children), self._span(meta))

    def where(self, meta: Meta, children: list[Any]) -> ast.Expr:
        _where, condition = children
        result: ast.Expr = condition
        return result

    def on_start(self, meta: Meta, children: list[Any]) -> ast.LifecycleTrigger:
        return ast.LifecycleTrigger("start", self._span(meta))

    def on_end(self, meta: Meta, children: list[Any]) -> ast.LifecycleTrigger:
        return ast.LifecycleTrigger("end", self._span(meta))

    def select_rule(self, meta: Meta, children: list[Any]) -> ast.SelectRule:
        # annotation* [context_clause] [insert_into] SELECT select_list FROM source [where]
        # action*
        annotations, middle, actions = _split_rule(children)
        context, insert, _select, select, _from, source, where, group_by, having, output = \
            middle
        return ast.SelectRule(annotations, context, insert, select, source, where, actions,
                              self._span(meta), group_by or (), having, output)

    def on_rule(self, meta: Meta, children: list[Any]) -> ast.OnRule:
        # annotation* [context_clause] ON on_trigger [where] action+
        annotations, middle, actions = _split_rule(children)
        context, _on, trigger, where, output = middle
        return ast.OnRule(annotations, context, trigger, where, actions, self._span(meta),
                          output)

    def group_by(self, meta: Meta, children: list[Any]) -> tuple[ast.Ident, ...]:
        return tuple(self._ident(t) for t in self._values(children))

    def having(self, meta: Meta, children: list[Any]) -> ast.Expr:
        _having, condition = children
        result: ast.Expr = condition
        return result

    def output_clause(self, meta: Meta, children: list[Any]) -> ast.OutputClause:
        _output, kind, _every, every = children
        return ast.OutputClause(str(kind).lower(), every, self._span(meta))

    def action(self, meta: Meta, children: list[Any]) -> ast.Action:
        # PUBLISH string [PAYLOAD payload] [QOS NUMBER] [RETAIN]
        _publish, topic, _payload, payload, _qos, qos_token, retain_token = children
        retain = retain_token is not None
        qos = None
        if qos_token is not None:
            text = str(qos_token)
            if text.isdigit() and len(text) <= 3:
                qos = int(text)  # the checks report one that is not 0, 1 or 2
            else:
                self.diagnostics.error(f"QoS must be 0, 1 or 2, not {_shown(text)}",
                                       self._tspan(qos_token))
        return ast.Action(topic, payload, qos, retain, self._span(meta))

    def json_object(self, meta: Meta, children: list[Any]) -> ast.JsonObject:
        members = tuple(c for c in children if c is not None)
        return ast.JsonObject(members, self._span(meta))

    def json_member(self, meta: Meta, children: list[Any]) -> tuple[str, Any]:
        key, value = children
        return (key.value, value)

    def json_array(self, meta: Meta, children: list[Any]) -> ast.JsonArray:
        return ast.JsonArray(tuple(c for c in children if c is not None), self._span(meta))

    # -------------------------------------------------------------- patterns
    def followed_by(self, meta: Meta, children: list[Any]) -> ast.Pattern:
        steps = self._values(children)
        return steps[0] if len(steps) == 1 else ast.FollowedBy(tuple(steps), self._span(meta))

    def pattern_or(self, meta: Meta, children: list[Any]) -> ast.Pattern:
        items = self._values(children)
        return items[0] if len(items) == 1 else ast.PatternOr(tuple(items), self._span(meta))

    def pattern_and(self, meta: Meta, children: list[Any]) -> ast.Pattern:
        items = self._values(children)
        return items[0] if len(items) == 1 else ast.PatternAnd(tuple(items), self._span(meta))

    def until(self, meta: Meta, children: list[Any]) -> ast.Until:
        body, stop = self._values(children)
        return ast.Until(body, stop, None, self._span(meta))

    def repeat_count(self, meta: Meta, children: list[Token]) -> int:
        (token,) = children
        text = str(token)
        if text.isdigit() and text.strip("0"):
            return int(self._number(token))  # one too large is reported there, and reads 1
        self.diagnostics.error(f"a repeat count must be a whole number of at least 1, not "
                               f"{_shown(text)}", self._tspan(token))
        return 1

    def repeat(self, meta: Meta, children: list[Any]) -> ast.Pattern:
        # repeat_count p_unary [UNTIL p_unary]
        count, body, _until, stop = children
        if stop is not None:
            return ast.Until(body, stop, count, self._span(meta))
        return ast.Repeat(count, body, self._span(meta))

    def every_repeat(self, meta: Meta, children: list[Any]) -> ast.Every:
        _every, count, body = children
        return ast.Every(ast.Repeat(count, body, self._span(meta)), self._span(meta))

    def not_repeat(self, meta: Meta, children: list[Any]) -> ast.PatternNot:
        _not, count, body = children
        return ast.PatternNot(ast.Repeat(count, body, self._span(meta)), self._span(meta))

    def every(self, meta: Meta, children: list[Any]) -> ast.Every:
        return ast.Every(self._only(children), self._span(meta))

    def pattern_not(self, meta: Meta, children: list[Any]) -> ast.PatternNot:
        return ast.PatternNot(self._only(children), self._span(meta))


    def pattern_group(self, meta: Meta, children: list[Any]) -> ast.Pattern:
        """`( pattern )`: the pattern itself (its span without the parentheses)."""
        (pattern,) = children
        result: ast.Pattern = pattern
        return result

    def within(self, meta: Meta, children: list[Any]) -> ast.Within:
        body, duration = self._values(children)
        return ast.Within(body, duration, self._span(meta))

    def timer_interval(self, meta: Meta, children: list[Any]) -> ast.TimerInterval:
        return ast.TimerInterval(self._only(children), self._span(meta))

    def timer_at(self, meta: Meta, children: list[Any]) -> ast.TimerAt:
        # TIMER ":" AT "(" time_point [ON day_list] ")"
        _timer, _at, at, _on, days = children
        return ast.TimerAt(at, days or (), self._span(meta))

    def for_atom(self, meta: Meta, children: list[Any]) -> ast.ForAtom:
        atom, _for, duration = children
        return ast.ForAtom(atom, duration, self._span(meta))

    def event_atom(self, meta: Meta, children: list[Any]) -> ast.EventAtom:
        tag, type_token, filter_expr = children
        return ast.EventAtom(str(tag) if tag is not None else None, str(type_token),
                             filter_expr, self._span(meta))

    # -------------------------------------------------------------- expressions
    def _fold(self, meta: Meta, children: list[Any], op: str) -> ast.Expr:
        first, *rest = self._values(children)
        result: ast.Expr = first
        for item in rest:
            result = ast.Binary(op, result, item, self._span(meta))
        return result

    def group(self, meta: Meta, children: list[Any]) -> ast.Expr:
        """`( expr )`: the expression itself (its span without the parentheses)."""
        (expr,) = children
        result: ast.Expr = expr
        return result

    def expr_or(self, meta: Meta, children: list[Any]) -> ast.Expr:
        return self._fold(meta, children, "or")

    def expr_and(self, meta: Meta, children: list[Any]) -> ast.Expr:
        return self._fold(meta, children, "and")

    def expr_not(self, meta: Meta, children: list[Any]) -> ast.Unary:
        _not, operand = children
        return ast.Unary("not", operand, self._span(meta))

    def compare(self, meta: Meta, children: list[Any]) -> ast.Binary:
        left, op, right = children
        op_text = "!=" if str(op) == "<>" else str(op)
        return ast.Binary(op_text, left, right, self._span(meta))

    def arith(self, meta: Meta, children: list[Any]) -> ast.Binary:
        left, op, right = children
        return ast.Binary(str(op), left, right, self._span(meta))

    def negate(self, meta: Meta, children: list[Any]) -> ast.Expr:
        _minus, operand = children
        return ast.Unary("-", operand, self._span(meta))

    def in_list(self, meta: Meta, children: list[Any]) -> ast.InList:
        # e_sum [NOT] IN "(" expr ("," expr)* ")"
        operand, not_token, _in, *items = children
        return ast.InList(operand, tuple(items), not_token is not None, self._span(meta))

    def between(self, meta: Meta, children: list[Any]) -> ast.Between:
        operand, not_token, _between, low, _and, high = children
        return ast.Between(operand, low, high, not_token is not None, self._span(meta))

    def like(self, meta: Meta, children: list[Any]) -> ast.Like:
        operand, not_token, _like, pattern = children
        return ast.Like(operand, pattern, not_token is not None, self._span(meta))

    def is_null(self, meta: Meta, children: list[Any]) -> ast.IsNull:
        operand, _is, not_token, _null = children
        return ast.IsNull(operand, not_token is not None, self._span(meta))

    def string_literal(self, meta: Meta, children: list[Token]) -> ast.Literal:
        (text,) = children
        return ast.Literal(unquote(str(text)), self._span(meta))

    def number(self, meta: Meta, children: list[Token]) -> ast.Literal:
        (text,) = children
        return ast.Literal(self._number(text), self._span(meta))

    def true(self, meta: Meta, children: list[Any]) -> ast.Literal:
        return ast.Literal(True, self._span(meta))

    def false(self, meta: Meta, children: list[Any]) -> ast.Literal:
        return ast.Literal(False, self._span(meta))

    def null(self, meta: Meta, children: list[Any]) -> ast.Literal:
        return ast.Literal(None, self._span(meta))

    def name_ref(self, meta: Meta, children: list[Token]) -> ast.Name:
        (name,) = children
        return ast.Name(str(name), self._span(meta))

    def attr_ref(self, meta: Meta, children: list[Token]) -> ast.Attribute:
        tag, attr = children
        return ast.Attribute(str(tag), None, str(attr), self._span(meta))

    def indexed_ref(self, meta: Meta, children: list[Any]) -> ast.Attribute | ast.KeyedRead:
        """`tag[0].attr` (one whole number: an Attribute with an index) or
        `Window[k1, k2].attr` (a KeyedRead)."""
        name, *keys, attr = children
        if len(keys) == 1 and isinstance(keys[0], ast.Literal) \
                and type(keys[0].value) is int:
            return ast.Attribute(str(name), keys[0].value, str(attr), self._span(meta))
        return ast.KeyedRead(str(name), tuple(keys), str(attr), self._span(meta))

    def context_ref(self, meta: Meta, children: list[Token]) -> ast.ContextField:
        _context, field = children
        return ast.ContextField(str(field), self._span(meta))

    def call(self, meta: Meta, children: list[Any]) -> ast.Expr:
        """A function call; aggregates, `cast` and `prior` get nodes of their own."""
        name_token, *given = children  # `f()` gives one None placeholder
        name = str(name_token).lower()
        args = tuple(a for a in given if a is not None)
        span = self._span(meta)
        if name in AGGREGATES and not (name in SCALAR_TOO and len(args) >= 2):
            if len(args) == 1:
                return ast.Aggregate(name, args[0], span)
            self.diagnostics.error(f"the aggregate {name}() takes one argument"
                                   f"{', or * for count(*)' if name == 'count' else ''}, not "
                                   f"{len(args)}", span)
            return ast.Aggregate(name, args[0] if args else None, span)
        if name == "cast":
            if len(args) == 2 and isinstance(args[1], ast.Name):
                return ast.Cast(args[0], args[1].name.upper(), span)
            self.diagnostics.error("cast takes a value and a type: `cast(x, INT)` (STRING, INT, "
                                   "FLOAT or BOOL)", span)
            return ast.Literal(None, span)
        if name == "prior":
            if len(args) == 2 and isinstance(args[0], ast.Literal) \
                    and type(args[0].value) is int and isinstance(args[1], ast.Name):
                return ast.Prior(args[0].value, args[1].name, span)
            self.diagnostics.error("prior takes a whole number and an attribute: `prior(1, "
                                   "value)` is `value` of the event before this one", span)
            return ast.Literal(None, span)
        return ast.Call(name, args, span)

    def call_star(self, meta: Meta, children: list[Any]) -> ast.Expr:
        name_token, _star = children
        name = str(name_token).lower()
        if name != "count":
            self.diagnostics.error(f"only count takes *: write `{name}(attribute)`",
                                   self._span(meta))
        return ast.Aggregate("count", None, self._span(meta))

    def case_when(self, meta: Meta, children: list[Any]) -> ast.When:
        _when, test, _then, value = children
        return ast.When(test, value, self._span(meta))

    def case(self, meta: Meta, children: list[Any]) -> ast.Case:
        # CASE [expr] case_when+ [ELSE expr] END
        _case, operand, *whens, _else, default, _end = children
        return ast.Case(operand, tuple(whens), default, self._span(meta))

    def subquery(self, meta: Meta, children: list[Any]) -> ast.Subquery:
        # "(" SELECT expr FROM NAME [where] ")"
        _select, select, _from, window, where = children
        return ast.Subquery(select, self._ident(window), where, self._span(meta))
