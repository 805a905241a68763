"""Parse tree → AST (cep.language.ast), one Lark callback per grammar rule.

Spelling mistakes that the grammar leaves open (time units, distance units)
are reported here, with their place, because only here is the word known.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer, v_args
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

_KEEP_TOKENS = {"NAME", "STRING", "NUMBER", "TIME", "MINUS"}


def _number(text: str) -> int | float:
    if text.isdigit():
        return int(text)
    return float(text)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "/": "/"}


def unquote(raw: str) -> str:
    """The value of a quoted string token (backslash escapes decoded)."""
    body = raw[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class ToAst(Transformer):
    """Builds AST nodes; `file` goes into every span."""

    def __init__(self, file: str, diagnostics: Diagnostics) -> None:
        super().__init__(visit_tokens=False)
        self.file = file
        self.diagnostics = diagnostics

    # -------------------------------------------------------------- helpers
    def _span(self, meta: Meta) -> ast.Span:
        if getattr(meta, "empty", True):
            return ast.Span(self.file, 0, 0, 0, 0)
        return ast.Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, token: Token) -> ast.Span:
        return ast.Span(self.file, token.line, token.column, token.end_line, token.end_column)

    def _ident(self, token: Token) -> ast.Ident:
        return ast.Ident(str(token), self._tspan(token))

    @staticmethod
    def _values(children: list[Any]) -> list[Any]:
        """Children without keyword tokens and absent optionals."""
        return [c for c in children
                if c is not None and not (isinstance(c, Token) and c.type not in _KEEP_TOKENS)]

    @staticmethod
    def _has(children: list[Any], token_type: str) -> bool:
        return any(isinstance(c, Token) and c.type == token_type for c in children)

    def start(self, children: list[Any]) -> ast.Statement:
        return children[0]

    # -------------------------------------------------------------- strings, quantities
    @v_args(meta=True)
    def string(self, meta: Meta, children: list[Token]) -> ast.Text:
        return ast.Text(unquote(str(children[0])), self._span(meta))

    @v_args(meta=True)
    def duration(self, meta: Meta, children: list[Token]) -> ast.Duration:
        parts: list[tuple[float, str]] = []
        seconds = 0.0
        for amount_token, unit_token in zip(children[0::2], children[1::2]):
            amount = _number(str(amount_token))
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

    @v_args(meta=True)
    def distance(self, meta: Meta, children: list[Token]) -> ast.Distance:
        amount = _number(str(children[0]))
        word = str(children[1]).lower()
        factor = DISTANCE_UNITS.get(word)
        if factor is None:
            self.diagnostics.error(f"unknown distance unit `{children[1]}`: use m or km "
                                   "(for example `5 m`)", self._tspan(children[1]))
            factor = 1.0
        return ast.Distance(amount, word, amount * factor, self._span(meta))

    def signed_number(self, children: list[Token | None]) -> float:
        sign, number = children
        value = float(str(number))
        return -value if sign is not None else value

    @v_args(meta=True)
    def point(self, meta: Meta, children: list[float]) -> ast.Point:
        return ast.Point(children[0], children[1], self._span(meta))

    def point_list(self, children: list[ast.Point]) -> tuple[ast.Point, ...]:
        return tuple(children)

    # -------------------------------------------------------------- SET
    @v_args(meta=True)
    def set_timezone(self, meta: Meta, children: list[Any]) -> ast.SetTimezone:
        return ast.SetTimezone(children[-1], self._span(meta))

    # -------------------------------------------------------------- CREATE EVENT
    @v_args(meta=True)
    def attr_def(self, meta: Meta, children: list[Token]) -> ast.AttrDef:
        return ast.AttrDef(str(children[0]), str(children[1]).upper(), self._span(meta))

    @v_args(meta=True)
    def payload_path(self, meta: Meta, children: list[Any]) -> ast.PayloadPath:
        return ast.PayloadPath(str(children[0]), children[1], self._span(meta))

    def payload_as(self, children: list[Any]) -> tuple[str, Any]:
        return ("as", self._ident(self._values(children)[0]))

    def payload_paths(self, children: list[Any]) -> tuple[str, Any]:
        return ("paths", tuple(self._values(children)))

    @v_args(meta=True)
    def topic_clause(self, meta: Meta, children: list[Any]) -> ast.TopicBinding:
        values = self._values(children)
        topic = values[0]
        payload_as, paths = None, ()
        if len(values) > 1:
            kind, value = values[1]
            if kind == "as":
                payload_as = value
            else:
                paths = value
        return ast.TopicBinding(topic, payload_as, paths, self._span(meta))

    @v_args(meta=True)
    def timestamp_clause(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("timestamp", self._values(children)[0], self._span(meta))

    @v_args(meta=True)
    def located_at(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span]:
        first, second = self._values(children)
        return ("position", ast.LocatedAt(self._ident(first), self._ident(second), False,
                                          self._span(meta)), self._span(meta))

    @v_args(meta=True)
    def located_at_geo(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span]:
        first, second = self._values(children)
        return ("position", ast.LocatedAt(self._ident(first), self._ident(second), True,
                                          self._span(meta)), self._span(meta))

    @v_args(meta=True)
    def located_in(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span]:
        (attr,) = self._values(children)
        return ("position", ast.LocatedIn(self._ident(attr), self._span(meta)), self._span(meta))

    @v_args(meta=True)
    def entity_clause(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span]:
        (attr,) = self._values(children)
        return ("entity", self._ident(attr), self._span(meta))

    @v_args(meta=True)
    def create_event(self, meta: Meta, children: list[Any]) -> ast.CreateEvent:
        values = self._values(children)
        name = str(values[0])
        attrs = tuple(v for v in values[1:] if isinstance(v, ast.AttrDef))
        clauses: dict[str, Any] = {}
        for value in values[1:]:
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
                               self._tspan(values[0]))

    # -------------------------------------------------------------- CREATE LOCATION
    @v_args(meta=True)
    def area(self, meta: Meta, children: list[Any]) -> ast.Polygon:
        return ast.Polygon(self._values(children)[0], False, self._span(meta))

    @v_args(meta=True)
    def area_geo(self, meta: Meta, children: list[Any]) -> ast.Polygon:
        return ast.Polygon(self._values(children)[0], True, self._span(meta))

    @v_args(meta=True)
    def circle(self, meta: Meta, children: list[Any]) -> ast.Circle:
        center, radius = self._values(children)
        return ast.Circle(center, radius, False, self._span(meta))

    @v_args(meta=True)
    def circle_geo(self, meta: Meta, children: list[Any]) -> ast.Circle:
        center, radius = self._values(children)
        return ast.Circle(center, radius, True, self._span(meta))

    @v_args(meta=True)
    def create_location(self, meta: Meta, children: list[Any]) -> ast.CreateLocation:
        name, shape = self._values(children)
        return ast.CreateLocation(str(name), shape, self._span(meta), self._tspan(name))

    # -------------------------------------------------------------- CREATE CONTEXT
    @v_args(meta=True)
    def day_range(self, meta: Meta, children: list[Any]) -> ast.DayRange:
        names = [c for c in children if isinstance(c, Token) and c.type == "NAME"]
        last = str(names[1]).upper() if len(names) > 1 else None
        return ast.DayRange(str(names[0]).upper(), last, self._span(meta))

    def day_list(self, children: list[ast.DayRange]) -> tuple[ast.DayRange, ...]:
        return tuple(children)

    def _clock(self, token: Token) -> ast.ClockTime:
        hour, minute = str(token).split(":")
        return ast.ClockTime(int(hour), int(minute), self._tspan(token))

    @v_args(meta=True)
    def recurring(self, meta: Meta, children: list[Any]) -> ast.Recurring:
        values = self._values(children)
        days = values[2] if len(values) > 2 else ()
        return ast.Recurring(self._clock(values[0]), self._clock(values[1]), days,
                             self._span(meta))

    @v_args(meta=True)
    def policy(self, meta: Meta, children: list[Any]) -> ast.Policy:
        return ast.Policy(str(self._values(children)[0]).upper(), self._span(meta))

    def end_after(self, children: list[Any]) -> tuple[None, ast.Duration]:
        return (None, self._values(children)[0])

    def end_by(self, children: list[Any]) -> tuple[ast.StreamSource, ast.Duration | None]:
        values = self._values(children)
        return (values[0], values[1] if len(values) > 1 else None)

    @v_args(meta=True)
    def event_interval(self, meta: Meta, children: list[Any]) -> ast.EventInterval:
        values = self._values(children)
        initiator, (terminator, duration) = values[0], values[1]
        policy = values[2] if len(values) > 2 else None
        return ast.EventInterval(initiator, terminator, duration, policy, self._span(meta))

    @v_args(meta=True)
    def partition(self, meta: Meta, children: list[Any]) -> ast.Partition:
        return ast.Partition(tuple(self._ident(t) for t in self._values(children)),
                             self._span(meta))

    @v_args(meta=True)
    def fixed_location(self, meta: Meta, children: list[Any]) -> ast.FixedLocation:
        return ast.FixedLocation(self._ident(self._values(children)[0]), self._span(meta))

    @v_args(meta=True)
    def entity_distance(self, meta: Meta, children: list[Any]) -> ast.EntityDistance:
        distance, entity = self._values(children)
        return ast.EntityDistance(distance, entity, self._span(meta))

    @v_args(meta=True)
    def event_distance(self, meta: Meta, children: list[Any]) -> ast.EventDistance:
        values = self._values(children)
        policy = values[3] if len(values) > 3 else None
        return ast.EventDistance(values[0], values[1], values[2], policy, self._span(meta))

    @v_args(meta=True)
    def composite(self, meta: Meta, children: list[Any]) -> ast.Composite:
        return ast.Composite(tuple(self._ident(t) for t in self._values(children)),
                             self._span(meta))

    @v_args(meta=True)
    def create_context(self, meta: Meta, children: list[Any]) -> ast.CreateContext:
        name, spec = self._values(children)
        return ast.CreateContext(str(name), spec, self._span(meta), self._tspan(name))

    # -------------------------------------------------------------- rules
    @v_args(meta=True)
    def annotation(self, meta: Meta, children: list[Any]) -> ast.Annotation:
        name, value = self._values(children)
        return ast.Annotation(str(name), value, self._span(meta))

    def context_clause(self, children: list[Any]) -> ast.Ident:
        return self._ident(self._values(children)[0])

    def insert_into(self, children: list[Any]) -> ast.Ident:
        return self._ident(self._values(children)[0])

    def select_all(self, children: list[Any]) -> None:
        return None

    def select_items(self, children: list[ast.SelectItem]) -> tuple[ast.SelectItem, ...]:
        return tuple(children)

    @v_args(meta=True)
    def select_item(self, meta: Meta, children: list[Any]) -> ast.SelectItem:
        expr, alias = children[0], children[-1]
        return ast.SelectItem(expr, str(alias) if alias is not None and len(children) > 1
                              else None, self._span(meta))

    def filter(self, children: list[Any]) -> Any:
        return ("filter", children[0])

    @v_args(meta=True)
    def stream(self, meta: Meta, children: list[Any]) -> ast.StreamSource:
        type_token, filter_part, alias = children[0], children[1], children[-1]
        filter_expr = filter_part[1] if filter_part is not None else None
        return ast.StreamSource(str(type_token), filter_expr,
                                str(alias) if alias is not None else None, self._span(meta))

    @v_args(meta=True)
    def pattern_source(self, meta: Meta, children: list[Any]) -> ast.PatternSource:
        return ast.PatternSource(self._values(children)[0], self._span(meta))

    def where(self, children: list[Any]) -> tuple[str, Any]:
        return ("where", self._values(children)[0])

    @v_args(meta=True)
    def on_start(self, meta: Meta, children: list[Any]) -> ast.LifecycleTrigger:
        return ast.LifecycleTrigger("start", self._span(meta))

    @v_args(meta=True)
    def on_end(self, meta: Meta, children: list[Any]) -> ast.LifecycleTrigger:
        return ast.LifecycleTrigger("end", self._span(meta))

    def _rule_parts(self, children: list[Any]) -> dict[str, Any]:
        parts: dict[str, Any] = {"annotations": [], "actions": [], "where": None}
        for child in children:
            if isinstance(child, ast.Annotation):
                parts["annotations"].append(child)
            elif isinstance(child, ast.Action):
                parts["actions"].append(child)
            elif isinstance(child, tuple) and child and child[0] == "where":
                parts["where"] = child[1]
        return parts

    @v_args(meta=True)
    def select_rule(self, meta: Meta, children: list[Any]) -> ast.SelectRule:
        parts = self._rule_parts(children)
        annotation_count = len(parts["annotations"])
        context, insert = children[annotation_count], children[annotation_count + 1]
        rest = [c for c in children[annotation_count + 2:]
                if not (isinstance(c, Token) and c.type in ("SELECT", "FROM"))]
        select, source = rest[0], rest[1]
        return ast.SelectRule(tuple(parts["annotations"]), context, insert, select, source,
                              parts["where"], tuple(parts["actions"]), self._span(meta))

    @v_args(meta=True)
    def on_rule(self, meta: Meta, children: list[Any]) -> ast.OnRule:
        parts = self._rule_parts(children)
        annotation_count = len(parts["annotations"])
        context = children[annotation_count]
        trigger = next(c for c in children[annotation_count + 1:]
                       if isinstance(c, (ast.LifecycleTrigger, ast.StreamSource,
                                         ast.PatternSource)))
        return ast.OnRule(tuple(parts["annotations"]), context, trigger, parts["where"],
                          tuple(parts["actions"]), self._span(meta))

    @v_args(meta=True)
    def action(self, meta: Meta, children: list[Any]) -> ast.Action:
        # PUBLISH string [PAYLOAD payload] [QOS NUMBER] [RETAIN]
        topic = children[1]
        payload = children[3]
        qos_token = children[5]
        retain = children[6] is not None
        qos = int(float(str(qos_token))) if qos_token is not None else None
        if qos_token is not None and not str(qos_token).isdigit():
            self.diagnostics.error(f"QoS must be 0, 1 or 2, not {qos_token}",
                                   self._tspan(qos_token))
        return ast.Action(topic, payload, qos, retain, self._span(meta))

    @v_args(meta=True)
    def json_object(self, meta: Meta, children: list[Any]) -> ast.JsonObject:
        members = tuple(c for c in children if c is not None)
        return ast.JsonObject(members, self._span(meta))

    def json_member(self, children: list[Any]) -> tuple[str, Any]:
        return (children[0].value, children[1])

    @v_args(meta=True)
    def json_array(self, meta: Meta, children: list[Any]) -> ast.JsonArray:
        return ast.JsonArray(tuple(c for c in children if c is not None), self._span(meta))

    # -------------------------------------------------------------- patterns
    @v_args(meta=True)
    def followed_by(self, meta: Meta, children: list[Any]) -> ast.Pattern:
        steps = self._values(children)
        return steps[0] if len(steps) == 1 else ast.FollowedBy(tuple(steps), self._span(meta))

    @v_args(meta=True)
    def pattern_or(self, meta: Meta, children: list[Any]) -> ast.Pattern:
        items = self._values(children)
        return items[0] if len(items) == 1 else ast.PatternOr(tuple(items), self._span(meta))

    @v_args(meta=True)
    def pattern_and(self, meta: Meta, children: list[Any]) -> ast.Pattern:
        items = self._values(children)
        return items[0] if len(items) == 1 else ast.PatternAnd(tuple(items), self._span(meta))

    @v_args(meta=True)
    def until(self, meta: Meta, children: list[Any]) -> ast.Until:
        body, stop = self._values(children)
        return ast.Until(body, stop, None, self._span(meta))

    def repeat_count(self, children: list[Token]) -> int:
        text = str(children[0])
        if not text.isdigit() or int(text) < 1:
            self.diagnostics.error(f"a repeat count must be a whole number of at least 1, not "
                                   f"{text}", self._tspan(children[0]))
            return 1
        return int(text)

    @v_args(meta=True)
    def repeat(self, meta: Meta, children: list[Any]) -> ast.Pattern:
        count, body, stop = children[0], children[1], children[-1]
        if stop is not None and len(children) > 2:
            return ast.Until(body, stop, count, self._span(meta))
        return ast.Repeat(count, body, self._span(meta))

    @v_args(meta=True)
    def every_repeat(self, meta: Meta, children: list[Any]) -> ast.Every:
        count, body = children[1], children[2]
        return ast.Every(ast.Repeat(count, body, self._span(meta)), self._span(meta))

    @v_args(meta=True)
    def not_repeat(self, meta: Meta, children: list[Any]) -> ast.PatternNot:
        count, body = children[1], children[2]
        return ast.PatternNot(ast.Repeat(count, body, self._span(meta)), self._span(meta))

    @v_args(meta=True)
    def every(self, meta: Meta, children: list[Any]) -> ast.Every:
        return ast.Every(self._values(children)[0], self._span(meta))

    @v_args(meta=True)
    def pattern_not(self, meta: Meta, children: list[Any]) -> ast.PatternNot:
        return ast.PatternNot(self._values(children)[0], self._span(meta))


    @v_args(meta=True)
    def within(self, meta: Meta, children: list[Any]) -> ast.Within:
        body, duration = self._values(children)
        return ast.Within(body, duration, self._span(meta))

    @v_args(meta=True)
    def timer_interval(self, meta: Meta, children: list[Any]) -> ast.TimerInterval:
        return ast.TimerInterval(self._values(children)[0], self._span(meta))

    @v_args(meta=True)
    def event_atom(self, meta: Meta, children: list[Any]) -> ast.EventAtom:
        tag, type_token, filter_part = children
        return ast.EventAtom(str(tag) if tag is not None else None, str(type_token),
                             filter_part[1] if filter_part is not None else None,
                             self._span(meta))

    # -------------------------------------------------------------- expressions
    def _fold(self, meta: Meta, children: list[Any], op: str) -> ast.Expr:
        items = self._values(children)
        result = items[0]
        for item in items[1:]:
            result = ast.Binary(op, result, item, self._span(meta))
        return result

    @v_args(meta=True)
    def expr_or(self, meta: Meta, children: list[Any]) -> ast.Expr:
        return self._fold(meta, children, "or")

    @v_args(meta=True)
    def expr_and(self, meta: Meta, children: list[Any]) -> ast.Expr:
        return self._fold(meta, children, "and")

    @v_args(meta=True)
    def expr_not(self, meta: Meta, children: list[Any]) -> ast.Unary:
        return ast.Unary("not", children[-1], self._span(meta))

    @v_args(meta=True)
    def compare(self, meta: Meta, children: list[Any]) -> ast.Binary:
        left, op, right = children
        op_text = "!=" if str(op) == "<>" else str(op)
        return ast.Binary(op_text, left, right, self._span(meta))

    @v_args(meta=True)
    def arith(self, meta: Meta, children: list[Any]) -> ast.Binary:
        left, op, right = children
        return ast.Binary(str(op), left, right, self._span(meta))

    @v_args(meta=True)
    def negate(self, meta: Meta, children: list[Any]) -> ast.Expr:
        operand = children[-1]
        return ast.Unary("-", operand, self._span(meta))

    @v_args(meta=True)
    def in_list(self, meta: Meta, children: list[Any]) -> ast.InList:
        operand, negated = children[0], children[1] is not None
        items = tuple(c for c in children[2:] if not isinstance(c, Token))
        return ast.InList(operand, items, negated, self._span(meta))

    @v_args(meta=True)
    def between(self, meta: Meta, children: list[Any]) -> ast.Between:
        operand, negated = children[0], children[1] is not None
        low, high = [c for c in children[2:] if not isinstance(c, Token)]
        return ast.Between(operand, low, high, negated, self._span(meta))

    @v_args(meta=True)
    def like(self, meta: Meta, children: list[Any]) -> ast.Like:
        operand, negated, pattern = children[0], children[1] is not None, children[-1]
        return ast.Like(operand, pattern, negated, self._span(meta))

    @v_args(meta=True)
    def is_null(self, meta: Meta, children: list[Any]) -> ast.IsNull:
        return ast.IsNull(children[0], children[2] is not None, self._span(meta))

    @v_args(meta=True)
    def string_literal(self, meta: Meta, children: list[Token]) -> ast.Literal:
        return ast.Literal(unquote(str(children[0])), self._span(meta))

    @v_args(meta=True)
    def number(self, meta: Meta, children: list[Token]) -> ast.Literal:
        return ast.Literal(_number(str(children[0])), self._span(meta))

    @v_args(meta=True)
    def true(self, meta: Meta, children: list[Any]) -> ast.Literal:
        return ast.Literal(True, self._span(meta))

    @v_args(meta=True)
    def false(self, meta: Meta, children: list[Any]) -> ast.Literal:
        return ast.Literal(False, self._span(meta))

    @v_args(meta=True)
    def null(self, meta: Meta, children: list[Any]) -> ast.Literal:
        return ast.Literal(None, self._span(meta))

    @v_args(meta=True)
    def name_ref(self, meta: Meta, children: list[Token]) -> ast.Name:
        return ast.Name(str(children[0]), self._span(meta))

    @v_args(meta=True)
    def attr_ref(self, meta: Meta, children: list[Token]) -> ast.Attribute:
        return ast.Attribute(str(children[0]), None, str(children[1]), self._span(meta))

    @v_args(meta=True)
    def indexed_ref(self, meta: Meta, children: list[Token]) -> ast.Attribute:
        tag, index, attr = children
        if not str(index).isdigit():
            self.diagnostics.error(f"a tag index must be a whole number, not {index}",
                                   self._tspan(index))
        return ast.Attribute(str(tag), int(float(str(index))), str(attr), self._span(meta))

    @v_args(meta=True)
    def context_ref(self, meta: Meta, children: list[Token]) -> ast.ContextField:
        return ast.ContextField(str(children[-1]), self._span(meta))

    @v_args(meta=True)
    def call(self, meta: Meta, children: list[Any]) -> ast.Call:
        args = tuple(c for c in children[1:] if c is not None)
        return ast.Call(str(children[0]).lower(), args, self._span(meta))
