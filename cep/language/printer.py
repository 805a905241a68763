"""AST → rule text in one canonical style, and AST → readable tree dumps.

`format_file` prints a parsed file back so that parsing the text again gives
an equal AST (spans aside), and printing that AST again gives the same text.
The canonical style:

- statement and expression keywords in upper case (`SELECT`, `AND`, `IS NOT
  NULL`); pattern operators in lower case as in the examples of docs/language.md
  (`every`, `->`, `and`, `not`, `until`, `timer:within`); literals `true`,
  `false`, `null`;
- a rule has one clause per line (annotations, CONTEXT, INSERT INTO, SELECT,
  FROM or ON, WHERE, each PUBLISH); other statements fit on one line; every
  statement ends with `;`, and multi-line statements are set apart by blank
  lines;
- strings in single quotes, except inside JSON templates (`{"state": "ON"}`),
  with `\\`, the quote, newline, tab and carriage return escaped;
- only the parentheses the precedence needs (docs/language.md, operator precedence);
- durations part by part with the canonical units (`1 hour 30 min`).

`dump_ast` writes an indented, deterministic tree of any node, with the
`@line:col` of each node; the parser's golden files (tests/golden/parser) use it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from cep.language import ast
from cep.language.walk import PatternVisitor

# ------------------------------------------------------------------ literals

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def quote(value: str, mark: str = "'") -> str:
    """`value` as a string literal that the transformer's `unquote` reads back."""
    body = "".join(_ESCAPES.get(ch, "\\" + ch if ch == mark else ch) for ch in value)
    return f"{mark}{body}{mark}"


def format_number(value: int | float) -> str:
    """A number as the grammar's NUMBER reads it back to the same int or float."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"a rule cannot hold the number {value!r}")
    return repr(value)  # '1.5', '20.0', '1e-07': all NUMBER tokens that give back the float


def _coordinate(value: float) -> str:
    """A point coordinate (always read as float): `4` rather than `4.0`."""
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format_number(value)


_UNIT_WORDS = {"ms": "ms", "s": "sec", "min": "min", "h": "hour", "day": "day"}


def format_duration(duration: ast.Duration) -> str:
    """`1 hour 30 min`: each part with its canonical unit."""
    return " ".join(f"{format_number(amount)} {_UNIT_WORDS.get(unit, unit)}"
                    for amount, unit in duration.parts)


def format_distance(distance: ast.Distance) -> str:
    return f"{format_number(distance.amount)} {distance.unit}"


def format_time_point(point: ast.TimePoint) -> str:
    """`22:00`, `SUNSET`, `SUNSET - 15 min`."""
    if isinstance(point, ast.ClockTime):
        return f"{point.hour:02d}:{point.minute:02d}"
    if point.offset is None or point.sign is None:
        return point.event
    return f"{point.event} {point.sign} {format_duration(point.offset)}"


def _point(point: ast.Point) -> str:
    return f"({_coordinate(point.x)}, {_coordinate(point.y)})"


# ------------------------------------------------------------------ expressions

# Binding strength: a higher number binds tighter (docs/language.md, expressions).
_E_OR, _E_AND, _E_NOT, _E_CMP, _E_SUM, _E_PRODUCT, _E_UNARY, _E_ATOM = range(1, 9)
_BINARY_LEVEL = {"or": _E_OR, "and": _E_AND,
                 "=": _E_CMP, "!=": _E_CMP, "<": _E_CMP, "<=": _E_CMP, ">": _E_CMP,
                 ">=": _E_CMP,
                 "+": _E_SUM, "-": _E_SUM, "*": _E_PRODUCT, "/": _E_PRODUCT, "%": _E_PRODUCT}


def _expr_level(expr: ast.Expr) -> int:
    if isinstance(expr, ast.Binary):
        return _BINARY_LEVEL[expr.op]
    if isinstance(expr, ast.Unary):
        return _E_NOT if expr.op == "not" else _E_UNARY
    if isinstance(expr, (ast.InList, ast.Between, ast.Like, ast.IsNull)):
        return _E_CMP
    if isinstance(expr, ast.Literal) and isinstance(expr.value, (int, float)) \
            and not isinstance(expr.value, bool) and expr.value < 0:
        return _E_UNARY  # not made by the parser, but printed as `-n`
    return _E_ATOM


def format_expr(expr: ast.Expr, mark: str = "'") -> str:
    """An expression with the fewest parentheses; strings quoted with `mark`."""
    return _Expr(mark).text(expr)


class _Expr:
    def __init__(self, mark: str) -> None:
        self.mark = mark

    def at_least(self, expr: ast.Expr, level: int) -> str:
        """`expr` in a place that the grammar fills with something of `level` or tighter."""
        text = self.text(expr)
        return text if _expr_level(expr) >= level else f"({text})"

    def text(self, expr: ast.Expr) -> str:
        method = getattr(self, "_" + type(expr).__name__.lower(), None)
        if method is None:
            raise TypeError(f"not an expression: {expr!r}")
        text: str = method(expr)
        return text

    def _literal(self, expr: ast.Literal) -> str:
        value = expr.value
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return quote(value, self.mark)
        return format_number(value)

    def _text(self, expr: ast.Text) -> str:
        # The transformer currently gives string literals in expressions as Text.
        return quote(expr.value, self.mark)

    def _name(self, expr: ast.Name) -> str:
        return expr.name

    def _attribute(self, expr: ast.Attribute) -> str:
        index = f"[{expr.index}]" if expr.index is not None else ""
        return f"{expr.tag}{index}.{expr.attr}"

    def _contextfield(self, expr: ast.ContextField) -> str:
        return f"context.{expr.field}"

    def _call(self, expr: ast.Call) -> str:
        return f"{expr.name}({', '.join(self.text(arg) for arg in expr.args)})"

    def _aggregate(self, expr: ast.Aggregate) -> str:
        return f"{expr.name}({'*' if expr.arg is None else self.text(expr.arg)})"

    def _cast(self, expr: ast.Cast) -> str:
        return f"cast({self.text(expr.operand)}, {expr.type})"

    def _prior(self, expr: ast.Prior) -> str:
        return f"prior({expr.count}, {expr.attr})"

    def _case(self, expr: ast.Case) -> str:
        words = ["CASE"]
        if expr.operand is not None:
            words.append(self.text(expr.operand))
        for when in expr.whens:
            words += ["WHEN", self.text(when.test), "THEN", self.text(when.value)]
        if expr.default is not None:
            words += ["ELSE", self.text(expr.default)]
        return " ".join([*words, "END"])

    def _keyedread(self, expr: ast.KeyedRead) -> str:
        return f"{expr.window}[{', '.join(self.text(k) for k in expr.keys)}].{expr.attr}"

    def _subquery(self, expr: ast.Subquery) -> str:
        where = f" WHERE {self.text(expr.where)}" if expr.where is not None else ""
        return f"(SELECT {self.text(expr.select)} FROM {expr.window.name}{where})"

    def _unary(self, expr: ast.Unary) -> str:
        if expr.op == "not":
            return "NOT " + self.at_least(expr.operand, _E_NOT)
        operand = self.at_least(expr.operand, _E_UNARY)
        return "- " + operand if operand.startswith("-") else "-" + operand  # never `--`

    def _binary(self, expr: ast.Binary) -> str:
        level = _BINARY_LEVEL[expr.op]
        op = expr.op.upper()
        if level == _E_CMP:  # comparisons do not chain: both sides are sums
            return f"{self.at_least(expr.left, _E_SUM)} {op} {self.at_least(expr.right, _E_SUM)}"
        # Left-associative: the left side may be of the same level, the right must bind tighter.
        return f"{self.at_least(expr.left, level)} {op} {self.at_least(expr.right, level + 1)}"

    def _negation(self, negated: bool) -> str:
        return "NOT " if negated else ""

    def _inlist(self, expr: ast.InList) -> str:
        items = ", ".join(self.text(item) for item in expr.items)
        return f"{self.at_least(expr.operand, _E_SUM)} {self._negation(expr.negated)}IN ({items})"

    def _between(self, expr: ast.Between) -> str:
        return (f"{self.at_least(expr.operand, _E_SUM)} {self._negation(expr.negated)}BETWEEN "
                f"{self.at_least(expr.low, _E_SUM)} AND {self.at_least(expr.high, _E_SUM)}")

    def _like(self, expr: ast.Like) -> str:
        return (f"{self.at_least(expr.operand, _E_SUM)} {self._negation(expr.negated)}LIKE "
                f"{self.at_least(expr.pattern, _E_SUM)}")

    def _isnull(self, expr: ast.IsNull) -> str:
        return f"{self.at_least(expr.operand, _E_SUM)} IS {self._negation(expr.negated)}NULL"


# ------------------------------------------------------------------ patterns

# Binding strength, loosest first (docs/language.md, patterns).
_P_FOLLOWED, _P_OR, _P_AND, _P_UNTIL, _P_UNARY, _P_GUARDED, _P_ATOM = range(1, 8)
_PATTERN_LEVEL = {ast.FollowedBy: _P_FOLLOWED, ast.PatternOr: _P_OR, ast.PatternAnd: _P_AND,
                  ast.Until: _P_UNTIL, ast.Every: _P_UNARY, ast.PatternNot: _P_UNARY,
                  ast.Repeat: _P_UNTIL, ast.Within: _P_GUARDED}


def _pattern_at_least(pattern: ast.Pattern, level: int) -> str:
    text = format_pattern(pattern)
    return text if _PATTERN_LEVEL.get(type(pattern), _P_ATOM) >= level else f"({text})"


def format_pattern(pattern: ast.Pattern) -> str:
    """A pattern with the fewest parentheses."""
    return _PATTERN_PRINTER.visit(pattern)


class _PatternPrinter(PatternVisitor[str]):
    def event_atom(self, node: ast.EventAtom, *args: Any) -> str:
        tag = f"{node.tag}=" if node.tag is not None else ""
        return f"{tag}{node.type}{_filter(node.filter)}"

    def timer_interval(self, node: ast.TimerInterval, *args: Any) -> str:
        return f"timer:interval({format_duration(node.duration)})"

    def timer_at(self, node: ast.TimerAt, *args: Any) -> str:
        days = f" ON {_days(node.days)}" if node.days else ""
        return f"timer:at({format_time_point(node.at)}{days})"

    def for_atom(self, node: ast.ForAtom, *args: Any) -> str:
        return f"{self.event_atom(node.atom)} FOR {format_duration(node.duration)}"

    def followed_by(self, node: ast.FollowedBy, *args: Any) -> str:
        return " -> ".join(_pattern_at_least(step, _P_OR) for step in node.steps)

    def pattern_or(self, node: ast.PatternOr, *args: Any) -> str:
        return " or ".join(_pattern_at_least(item, _P_AND) for item in node.items)

    def pattern_and(self, node: ast.PatternAnd, *args: Any) -> str:
        return " and ".join(_pattern_at_least(item, _P_UNTIL) for item in node.items)

    def until(self, node: ast.Until, *args: Any) -> str:
        count = f"[{node.count}] " if node.count is not None else ""
        body = _pattern_at_least(node.body, _P_UNARY)  # `([n] p) until q` keeps its ()
        return f"{count}{body} until {_pattern_at_least(node.stop, _P_UNARY)}"

    def every(self, node: ast.Every, *args: Any) -> str:
        return "every " + self._unary_body(node.body)

    def pattern_not(self, node: ast.PatternNot, *args: Any) -> str:
        return "not " + self._unary_body(node.body)

    def _unary_body(self, body: ast.Pattern) -> str:
        if isinstance(body, ast.Repeat):  # `every [2] b=B` needs no parentheses
            return self.visit(body)
        return _pattern_at_least(body, _P_UNARY)

    def repeat(self, node: ast.Repeat, *args: Any) -> str:
        return f"[{node.count}] " + _pattern_at_least(node.body, _P_UNARY)

    def within(self, node: ast.Within, *args: Any) -> str:
        return (f"{_pattern_at_least(node.body, _P_GUARDED)} "
                f"where timer:within({format_duration(node.duration)})")


_PATTERN_PRINTER = _PatternPrinter()


def _filter(expr: ast.Expr | None) -> str:
    return f"({format_expr(expr)})" if expr is not None else ""


# ------------------------------------------------------------------ sources, templates


def format_view(view: ast.View) -> str:
    """`#time(10 min)`, `#lastevent`."""
    args = ", ".join(format_duration(a) if isinstance(a, ast.Duration) else
                     a.name if isinstance(a, ast.Ident) else format_expr(a) for a in view.args)
    return f"#{view.name}({args})" if view.args else f"#{view.name}"


def format_source(source: ast.Source) -> str:
    """`PATTERN [p]` or `Type(filter)#view AS alias`."""
    if isinstance(source, ast.PatternSource):
        return f"PATTERN [{format_pattern(source.pattern)}]"
    view = format_view(source.view) if source.view is not None else ""
    alias = f" AS {source.alias}" if source.alias is not None else ""
    return f"{source.type}{_filter(source.filter)}{view}{alias}"


def format_json(value: ast.JsonValue) -> str:
    """A JSON template; its strings (keys and literals) in double quotes."""
    if isinstance(value, ast.JsonObject):
        members = ", ".join(f"{quote(key, chr(34))}: {format_json(item)}"
                            for key, item in value.members)
        return "{" + members + "}"
    if isinstance(value, ast.JsonArray):
        return "[" + ", ".join(format_json(item) for item in value.items) + "]"
    return format_expr(value, '"')


def format_action(action: ast.Action) -> str:
    words = ["PUBLISH", quote(action.topic.value)]
    if action.payload is not None:
        payload = action.payload
        words += ["PAYLOAD", format_json(payload) if isinstance(payload, (ast.JsonObject,
                                                                          ast.JsonArray))
                  else format_expr(payload)]
    if action.qos is not None:
        words += ["QOS", str(action.qos)]
    if action.retain:
        words.append("RETAIN")
    return " ".join(words)


# ------------------------------------------------------------------ statements


def _create_event(stmt: ast.CreateEvent) -> str:
    attrs = ", ".join(f"{attr.name} {attr.type}" for attr in stmt.attrs)
    words = [f"CREATE EVENT {stmt.name} ({attrs})"]
    if stmt.topic is not None:
        words.append(f"FROM TOPIC {quote(stmt.topic.topic.value)}")
        if stmt.topic.payload_as is not None:
            words.append(f"PAYLOAD AS {stmt.topic.payload_as.name}")
        elif stmt.topic.payload_paths:
            paths = ", ".join(f"{p.attr} = {quote(p.path.value)}"
                              for p in stmt.topic.payload_paths)
            words.append(f"PAYLOAD ({paths})")
    if stmt.timestamp_path is not None:
        words.append(f"TIMESTAMP FROM {quote(stmt.timestamp_path.value)}")
    position = stmt.position
    if isinstance(position, ast.LocatedAt):
        geo = "GEO " if position.geo else ""
        words.append(f"LOCATED AT {geo}({position.first.name}, {position.second.name})")
    elif isinstance(position, ast.LocatedIn):
        words.append(f"LOCATED IN {position.attr.name}")
    if stmt.entity is not None:
        words.append(f"ENTITY {stmt.entity.name}")
    return " ".join(words)


def _create_location(stmt: ast.CreateLocation) -> str:
    shape = stmt.shape
    geo = " GEO" if shape.geo else ""
    if isinstance(shape, ast.Polygon):
        text = f"AREA{geo} ({', '.join(_point(p) for p in shape.points)})"
    else:
        text = f"CIRCLE{geo} {_point(shape.center)} RADIUS {format_distance(shape.radius)}"
    return f"CREATE LOCATION {stmt.name} {text}"


def _policy(policy: ast.Policy | None) -> str:
    return f" POLICY {policy.name}" if policy is not None else ""


def _days(days: tuple[ast.DayRange, ...]) -> str:
    return ", ".join(d.first if d.last is None else f"{d.first}-{d.last}" for d in days)


def _context_spec(spec: ast.ContextSpec) -> str:
    if isinstance(spec, ast.Recurring):
        text = f"START {format_time_point(spec.start)} END {format_time_point(spec.end)}"
        return text + (f" ON {_days(spec.days)}" if spec.days else "")
    if isinstance(spec, ast.EventInterval):
        keys = ("PARTITION BY " + ", ".join(k.name for k in spec.keys) + " ") if spec.keys \
            else ""
        text = f"{keys}INITIATED BY {format_source(spec.initiator)}"
        if spec.terminator is not None:
            text += f" TERMINATED BY {format_source(spec.terminator)}"
        elif spec.duration is None:
            raise ValueError("an event interval needs DURATION or TERMINATED BY")
        if spec.duration is not None:
            text += f" DURATION {format_duration(spec.duration)}"
        return text + _policy(spec.policy)
    if isinstance(spec, ast.Partition):
        return "PARTITION BY " + ", ".join(attr.name for attr in spec.attrs)
    if isinstance(spec, ast.FixedLocation):
        return f"LOCATION {spec.location.name}"
    if isinstance(spec, ast.EntityDistance):
        return f"WITHIN {format_distance(spec.distance)} OF ENTITY {quote(spec.entity.value)}"
    if isinstance(spec, ast.EventDistance):
        return (f"WITHIN {format_distance(spec.distance)} OF {format_source(spec.source)} "
                f"DURATION {format_duration(spec.duration)}{_policy(spec.policy)}")
    if isinstance(spec, ast.Composite):
        return "AS " + " AND ".join(part.name for part in spec.parts)
    raise TypeError(f"not a context: {spec!r}")


def _rule_head(rule: ast.SelectRule | ast.OnRule) -> list[str]:
    lines = [f"@{a.name}({quote(a.value.value)})" if a.value is not None else f"@{a.name}"
             for a in rule.annotations]
    if rule.context is not None:
        lines.append(f"CONTEXT {rule.context.name}")
    return lines


def _rule_tail(rule: ast.SelectRule | ast.OnRule) -> list[str]:
    lines = [f"WHERE {format_expr(rule.where)}"] if rule.where is not None else []
    if isinstance(rule, ast.SelectRule):
        if rule.group_by:
            lines.append("GROUP BY " + ", ".join(attr.name for attr in rule.group_by))
        if rule.having is not None:
            lines.append(f"HAVING {format_expr(rule.having)}")
    if rule.output is not None:
        lines.append(f"OUTPUT {rule.output.kind.upper()} EVERY "
                     f"{format_duration(rule.output.every)}")
    return lines + [format_action(action) for action in rule.actions]


def _select_item(item: ast.SelectItem) -> str:
    alias = f" AS {item.alias}" if item.alias is not None else ""
    return format_expr(item.expr) + alias


def _select_rule(rule: ast.SelectRule) -> str:
    lines = _rule_head(rule)
    if rule.insert_into is not None:
        lines.append(f"INSERT INTO {rule.insert_into.name}")
    items = "*" if rule.select is None else ", ".join(_select_item(i) for i in rule.select)
    lines += [f"SELECT {items}", f"FROM {format_source(rule.source)}"]
    return "\n".join(lines + _rule_tail(rule))


def _on_rule(rule: ast.OnRule) -> str:
    trigger = rule.trigger
    if isinstance(trigger, ast.LifecycleTrigger):
        on = "ON " + trigger.kind.upper()
    else:
        on = "ON " + format_source(trigger)
    return "\n".join([*_rule_head(rule), on, *_rule_tail(rule)])


def format_statement(stmt: ast.Statement) -> str:
    """One statement, ending with `;` (rules span several lines)."""
    if isinstance(stmt, ast.SetTimezone):
        text = f"SET TIMEZONE {quote(stmt.zone.value)}"
    elif isinstance(stmt, ast.SetLocation):
        text = f"SET LOCATION GEO ({format_number(stmt.lat)}, {format_number(stmt.lon)})"
    elif isinstance(stmt, ast.CreateEvent):
        text = _create_event(stmt)
    elif isinstance(stmt, ast.CreateLocation):
        text = _create_location(stmt)
    elif isinstance(stmt, ast.CreateContext):
        text = f"CREATE CONTEXT {stmt.name} {_context_spec(stmt.spec)}"
    elif isinstance(stmt, ast.CreateWindow):
        text = (f"CREATE WINDOW {stmt.name}{format_view(stmt.view)} FROM "
                f"{format_source(stmt.source)}")
    elif isinstance(stmt, ast.SelectRule):
        text = _select_rule(stmt)
    elif isinstance(stmt, ast.OnRule):
        text = _on_rule(stmt)
    else:
        raise TypeError(f"not a statement: {stmt!r}")
    return text + ";"


def format_file(rule_file: ast.RuleFile) -> str:
    """A whole file: one-line statements together, multi-line ones set apart by blank lines."""
    out: list[str] = []
    previous_multiline = False
    for stmt in rule_file.statements:
        text = format_statement(stmt)
        multiline = "\n" in text
        if out and (multiline or previous_multiline):
            out.append("")
        out.append(text)
        previous_multiline = multiline
    return "\n".join(out) + "\n" if out else ""


# ------------------------------------------------------------------ tree dumps


def dump_ast(node: Any, spans: bool = True) -> str:
    """An indented, deterministic dump of an AST: one node per line with its
    `@line:col` (unless `spans` is false), scalar fields inline as `name=value`
    (values as Python reprs, so 1, 1.0 and True differ), node fields below as
    `name: Node ...`, tuples of nodes as `[i] Node ...` and JSON members as
    `['key'] Node ...`.  None and empty fields are left out, except a Literal's
    value (`value=None` is null) and a SELECT `*` (`select=*`)."""
    return "\n".join(_dump(node, "", 0, spans)) + "\n"


def _is_node(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _is_scalar(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_is_scalar(v) for v in value)
    return not _is_node(value)


def _scalar(value: Any) -> str:
    if isinstance(value, tuple):  # Duration.parts: [(1, 'h'), (30, 'min')]
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return repr(value)


def _where(span: ast.Span) -> str:
    return f" @{span.line}:{span.col}" if span.line else ""


def _dump(node: Any, label: str, indent: int, spans: bool) -> list[str]:
    pad = " " * indent
    if not _is_node(node):
        return [f"{pad}{label}{_scalar(node)}"]
    inline: list[str] = []
    below: list[tuple[str, Any]] = []
    for f in dataclasses.fields(node):
        if f.name in ("span", "name_span"):
            continue
        value = getattr(node, f.name)
        if isinstance(node, ast.SelectRule) and f.name == "select" and value is None:
            inline.append("select=*")
            continue
        if (value is None and not isinstance(node, ast.Literal)) or value == ():
            continue
        if _is_scalar(value):
            inline.append(f"{f.name}={_scalar(value)}")
        else:
            below.append((f.name, value))
    span = getattr(node, "span", None)
    header = type(node).__name__ + (_where(span) if spans and isinstance(span, ast.Span) else "")
    lines = [f"{pad}{label}{' '.join([header, *inline])}"]
    for name, value in below:
        if _is_node(value):
            lines += _dump(value, f"{name}: ", indent + 2, spans)
            continue
        lines.append(f"{pad}  {name}:")
        for i, item in enumerate(value):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                lines += _dump(item[1], f"[{item[0]!r}] ", indent + 4, spans)  # a JSON member
            else:
                lines += _dump(item, f"[{i}] ", indent + 4, spans)
    return lines
