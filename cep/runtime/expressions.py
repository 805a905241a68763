"""Expressions compiled once into Python closures (never eval, exec or format).

A compiled expression is `f(attrs, match, ctx)`:
- `attrs`: the attribute dict of the current event (in a filter or a stream
  rule) or of the rule's result (in an action); may be None;
- `match`: tag -> Event (or list of Events for a repeated tag);
- `ctx`: the context instance (`.name`, `.key`) or None.

Null semantics (docs/language.md, section 7): a comparison with null is false,
arithmetic with null is null, a tag that is not bound (and any attribute of it)
is null.  Division by zero is null, not a crash.  The checker refuses type
errors it can see; values it cannot see (derived attributes of unknown type)
that still do not fit make a comparison false and arithmetic or a function null.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol, TypeAlias

from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.printer import format_expr
from cep.language.walk import aggregates as aggregates_in
from cep.runtime import sun
from cep.runtime.aggregates import make_aggregator
from cep.runtime.changes import ChangeTracker
from cep.runtime.convert import caster, text_of
from cep.runtime.events import Attrs, Event, Match
from cep.runtime.geometry import distance_m
from cep.runtime.like import like_matcher
from cep.runtime.positions import PositionOf, no_position
from cep.runtime.windows import AggregateSpec, EventWindow, Group, hashable


class ContextView(Protocol):
    """What an expression reads of the context instance (`context.name`, `context.key`)."""

    @property
    def name(self) -> str | None: ...

    @property
    def key(self) -> Any: ...  # a partition key: an attribute value, or a list of them


# A compiled expression: f(attrs, match, ctx) -> value. Values are attribute values and
# what is computed from them: dynamic, hence Any.
Fn: TypeAlias = Callable[[Attrs | None, Match, ContextView | None], Any]

# A literal other than null, and `attr = constant` as (attr, constant) (see split_equality).
Constant: TypeAlias = int | float | str | bool
EqualityKey: TypeAlias = tuple[str, Constant]

_VALUE_ERRORS = (TypeError, ValueError, OverflowError, ZeroDivisionError)

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}


class ExprEnv:
    """What expressions read beyond their event: the named windows (their content, and
    their types' attributes for subqueries), the memory of `changed()`, the clock
    (`current_timestamp()`, `hour()`, ...) and the rules' zone."""

    def __init__(self, windows: Mapping[str, EventWindow] | None = None,
                 changes: ChangeTracker | None = None,
                 now: Callable[[], float] = lambda: 0.0, tz: tzinfo = UTC,
                 location: tuple[float, float] | None = None) -> None:
        self.windows: Mapping[str, EventWindow] = windows if windows is not None else {}
        self.window_attrs: Mapping[str, frozenset[str]] = {}  # set with `windows`
        self.changes = changes if changes is not None else ChangeTracker()
        self.now = now
        self.tz = tz
        self.location = location  # (lat, lon) of SET LOCATION GEO: for sun_elevation()


class AggregateSlot:
    """The aggregates of a windowed rule (or subquery): each aggregate node compiles to a
    read of `group.aggs[i]`, the group the rule's window sets before evaluating."""

    def __init__(self) -> None:
        self.specs: list[AggregateSpec] = []
        self.labels: list[str] = []  # each aggregate as written (`avg(value)`), for the view
        self._index: dict[ast.Aggregate, int] = {}
        self.group: Group | None = None

    def index_of(self, node: ast.Aggregate, compiler: ExpressionCompiler) -> int:
        index = self._index.get(node)
        if index is None:
            argument = compiler.compile(node.arg) if node.arg is not None else None
            index = self._index[node] = len(self.specs)
            self.specs.append(AggregateSpec(node.name, argument))
            self.labels.append(format_expr(node))
        return index


class PriorSlot:
    """`prior(n, attr)`: the stream's earlier events (after its filter) in the current
    context instance, newest last, set by the rule before evaluating; `depth` is the
    largest n its expressions ask for."""

    def __init__(self) -> None:
        self.depth = 0
        self.history: deque[Attrs] | None = None


EMPTY_ENV = ExprEnv()


def window_attrs(catalog: Catalog) -> dict[str, frozenset[str]]:
    """Each named window's attributes (its type's), for subqueries over it."""
    return {name: frozenset(catalog.events[info.type].attrs) if info.type in catalog.events
            else frozenset() for name, info in catalog.windows.items()}


class ExpressionCompiler:
    """Compiles expressions of one place in a rule.

    `tags`: names that are tags there (a bare tag name is the tagged event);
    `attrs`: bare names that are attributes there (they win over tags);
    `env`: named windows, `changed()` memory, clock; `event_type`: the type a filter
    tests (for `changed()`); `aggregates`, `prior`: where a windowed or stream rule
    keeps what its aggregates and `prior()` read.
    """

    def __init__(self, tags: frozenset[str] = frozenset(),
                 attrs: frozenset[str] | None = None,
                 position_of: PositionOf = no_position, env: ExprEnv | None = None,
                 event_type: str | None = None, aggregates: AggregateSlot | None = None,
                 prior: PriorSlot | None = None) -> None:
        self.tags = tags
        self.attrs = attrs
        self.position_of = position_of
        self.env = env if env is not None else EMPTY_ENV
        self.event_type = event_type
        self.aggregates = aggregates
        self.prior = prior

    def compile(self, expr: ast.Expr) -> Fn:
        """The closure of `expr`, built by the method named after its node class."""
        method: Callable[[ast.Expr], Fn] = getattr(self, "_" + type(expr).__name__)
        return method(expr)

    def split_equality(self, expr: ast.Expr) -> tuple[EqualityKey | None, ast.Expr | None]:
        """A filter as (`(attr, constant)` of its first `attr = constant` conjunct, the rest).

        An event passes the filter exactly when its `attr` equals `constant` (as a
        dictionary key: equal hashable values are the same key) and it passes the
        rest (None: nothing left).  Filters are pure, so dropping a conjunct that is
        known to hold changes nothing.  ((None, expr) when there is no such conjunct.)
        """
        conjuncts = _conjuncts(expr)
        for position, item in enumerate(conjuncts):
            key = self._equality(item)
            if key is not None:
                rest = conjuncts[:position] + conjuncts[position + 1:]
                combined: ast.Expr | None = None
                for other in rest:
                    combined = other if combined is None else \
                        ast.Binary(span=other.span, op="and", left=combined, right=other)
                return key, combined
        return None, expr

    def _equality(self, expr: ast.Expr) -> EqualityKey | None:
        if not isinstance(expr, ast.Binary) or expr.op != "=":
            return None
        for name, literal in ((expr.left, expr.right), (expr.right, expr.left)):
            if isinstance(name, ast.Name) and isinstance(literal, ast.Literal) \
                    and literal.value is not None and not self._is_tag(name.name):
                try:
                    hash(literal.value)
                except TypeError:
                    return None
                return name.name, literal.value
        return None

    def _is_tag(self, name: str) -> bool:
        """A bare name is a tag when it names one and no attribute (attributes win)."""
        return name in self.tags and (self.attrs is None or name not in self.attrs)

    # -------------------------------------------------------------- leaves
    def _Literal(self, expr: ast.Literal) -> Fn:
        value = expr.value
        return lambda a, m, c: value

    def _Name(self, expr: ast.Name) -> Fn:
        name = expr.name
        if self._is_tag(name):
            return lambda a, m, c: m.get(name)
        return lambda a, m, c: a.get(name) if a is not None else None

    def _Attribute(self, expr: ast.Attribute) -> Fn:
        tag, attr, index = expr.tag, expr.attr, expr.index
        window = self.env.windows.get(tag) if tag not in self.tags else None
        if window is not None:
            return _window_read(window, attr, index)
        if index is None:
            def attribute(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
                # cep.checks allows `tag.attr` only for a tag bound to one event
                event: Event | None = m.get(tag)  # type: ignore[assignment]
                return event.attrs.get(attr) if event is not None else None
            return attribute

        def indexed(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            # cep.checks allows `tag[i].attr` only for a tag repeated over events
            events: list[Event] | None = m.get(tag)  # type: ignore[assignment]
            if events is None or index >= len(events):
                return None
            return events[index].attrs.get(attr)
        return indexed

    def _KeyedRead(self, expr: ast.KeyedRead) -> Fn:
        window = self.env.windows[expr.window]
        keys = [self.compile(key) for key in expr.keys]
        attr = expr.attr

        def keyed(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            # as ViewSpec.unique_key makes them: one attribute's value, or a tuple
            values = [k(a, m, c) for k in keys]
            if None in values:  # a null key finds nothing (as `=` with null is never true)
                return None
            key = hashable(values[0]) if len(values) == 1 else \
                tuple(hashable(v) for v in values)
            event = window.get(key)
            return event.attrs.get(attr) if event is not None else None
        return keyed

    def _Subquery(self, expr: ast.Subquery) -> Fn:
        """Over the window's current events that pass WHERE: the aggregates of the
        SELECT expression, or (without aggregates) the expression on the newest one."""
        window = self.env.windows[expr.window.name]
        slot = AggregateSlot()
        inner = ExpressionCompiler(self.tags, self.env.window_attrs.get(expr.window.name,
                                                                        frozenset()),
                                   self.position_of, self.env, None, slot)
        select = inner.compile(expr.select)
        where = inner.compile(expr.where) if expr.where is not None else None
        if not aggregates_in(expr.select):
            def newest(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
                for event in window.newest_first():
                    if where is None or where(event.attrs, m, c):
                        return select(event.attrs, m, c)
                return None
            return newest
        specs = slot.specs

        def aggregated(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            group = Group(None, [make_aggregator(s.name, s.argument is None, True)
                                 for s in specs], True)
            seq = 0
            for event in window.events():
                values = event.attrs
                if where is not None and not where(values, m, c):
                    continue
                seq += 1
                for spec, aggregator in zip(specs, group.aggs):
                    argument = spec.argument
                    aggregator.add(seq, True if argument is None else argument(values, m, c))
            saved = slot.group
            slot.group = group
            try:
                return select(None, m, c)
            finally:
                slot.group = saved
        return aggregated

    def _Aggregate(self, expr: ast.Aggregate) -> Fn:
        slot = self.aggregates
        if slot is None:  # cep.checks allows aggregates only where a window sets them
            return lambda a, m, c: None
        index = slot.index_of(expr, self)

        def aggregate(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            group = slot.group
            return group.aggs[index].result() if group is not None else None
        return aggregate

    def _Prior(self, expr: ast.Prior) -> Fn:
        slot = self.prior
        if slot is None:  # cep.checks allows prior only in stream rules
            return lambda a, m, c: None
        count, attr = expr.count, expr.attr
        slot.depth = max(slot.depth, count)

        def prior(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            history = slot.history
            if history is None or len(history) < count:
                return None
            return history[-count].get(attr)
        return prior

    def _Cast(self, expr: ast.Cast) -> Fn:
        operand = self.compile(expr.operand)
        convert = caster(expr.type)
        return lambda a, m, c: convert(operand(a, m, c))

    def _Case(self, expr: ast.Case) -> Fn:
        whens = [(self.compile(w.test), self.compile(w.value)) for w in expr.whens]
        default = self.compile(expr.default) if expr.default is not None else None
        if expr.operand is None:
            def searched(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
                for test, value in whens:
                    if test(a, m, c):
                        return value(a, m, c)
                return default(a, m, c) if default is not None else None
            return searched
        operand = self.compile(expr.operand)

        def simple(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            x = operand(a, m, c)
            if x is not None:
                for test, value in whens:
                    y = test(a, m, c)
                    if y is not None and _equal(x, y):
                        return value(a, m, c)
            return default(a, m, c) if default is not None else None
        return simple

    def _ContextField(self, expr: ast.ContextField) -> Fn:
        if expr.field == "name":
            return lambda a, m, c: c.name if c is not None else None
        return lambda a, m, c: c.key if c is not None else None

    # -------------------------------------------------------------- operators
    def _Unary(self, expr: ast.Unary) -> Fn:
        operand = self.compile(expr.operand)
        if expr.op == "not":
            def negation(a: Attrs | None, m: Match, c: ContextView | None) -> bool:
                value = operand(a, m, c)
                return False if value is None else not value
            return negation

        def minus(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            value = operand(a, m, c)
            if value is None:
                return None
            try:
                return -value
            except _VALUE_ERRORS:  # a value of no number type
                return None
        return minus

    def _Binary(self, expr: ast.Binary) -> Fn:
        op = expr.op
        if op == "and":
            left, right = self.compile(expr.left), self.compile(expr.right)
            return lambda a, m, c: bool(left(a, m, c)) and bool(right(a, m, c))
        if op == "or":
            left, right = self.compile(expr.left), self.compile(expr.right)
            return lambda a, m, c: bool(left(a, m, c)) or bool(right(a, m, c))
        if op in _COMPARE:
            return self._comparison(expr)
        return self._arithmetic(expr)

    def _comparison(self, expr: ast.Binary) -> Fn:
        compare = _COMPARE[expr.op]
        # The common filter shape `attr OP constant`: one closure, no inner calls.
        if isinstance(expr.left, ast.Name) and isinstance(expr.right, ast.Literal) \
                and not self._is_tag(expr.left.name):
            name, constant = expr.left.name, expr.right.value
            if constant is None:
                return lambda a, m, c: False

            def attr_vs_constant(a: Attrs | None, m: Match, c: ContextView | None) -> bool:
                value = a.get(name) if a is not None else None
                try:
                    return value is not None and compare(value, constant)
                except TypeError:
                    return False
            return attr_vs_constant
        if isinstance(expr.right, ast.Literal):  # `f(x) OP constant`: one call less
            constant = expr.right.value
            if constant is None:
                return lambda a, m, c: False
            value_of = self.compile(expr.left)

            def value_vs_constant(a: Attrs | None, m: Match, c: ContextView | None) -> bool:
                value = value_of(a, m, c)
                try:
                    return value is not None and compare(value, constant)
                except TypeError:
                    return False
            return value_vs_constant
        left, right = self.compile(expr.left), self.compile(expr.right)

        def comparison(a: Attrs | None, m: Match, c: ContextView | None) -> bool:
            x = left(a, m, c)
            if x is None:
                return False
            y = right(a, m, c)
            try:
                return y is not None and compare(x, y)
            except TypeError:
                return False
        return comparison

    def _arithmetic(self, expr: ast.Binary) -> Fn:
        left, right = self.compile(expr.left), self.compile(expr.right)
        function = _ARITHMETIC[expr.op]

        def arithmetic(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            x = left(a, m, c)
            if x is None:
                return None
            y = right(a, m, c)
            if y is None:
                return None
            try:
                return function(x, y)
            except _VALUE_ERRORS:
                return None
        return arithmetic

    def _InList(self, expr: ast.InList) -> Fn:
        operand = self.compile(expr.operand)
        negated = expr.negated
        literals = [i for i in expr.items if isinstance(i, ast.Literal)]
        if len(literals) == len(expr.items):
            constants = frozenset(i.value for i in literals if i.value is not None)

            def in_constants(a: Attrs | None, m: Match, c: ContextView | None) -> bool:
                value = operand(a, m, c)
                if value is None:
                    return False
                try:
                    return (value in constants) != negated
                except TypeError:  # an unhashable value (a list) equals no constant
                    return negated
            return in_constants
        items = [self.compile(i) for i in expr.items]

        def in_values(a: Attrs | None, m: Match, c: ContextView | None) -> bool:
            value = operand(a, m, c)
            if value is None:
                return False
            found = any(value == item(a, m, c) for item in items)  # == never raises
            return found != negated
        return in_values

    def _Between(self, expr: ast.Between) -> Fn:
        operand, low, high = (self.compile(e) for e in (expr.operand, expr.low, expr.high))
        negated = expr.negated

        def between(a: Attrs | None, m: Match, c: ContextView | None) -> bool:
            value, lo, hi = operand(a, m, c), low(a, m, c), high(a, m, c)
            if value is None or lo is None or hi is None:
                return False
            try:
                inside: bool = lo <= value <= hi
            except TypeError:
                return False
            return inside != negated
        return between

    def _Like(self, expr: ast.Like) -> Fn:
        operand = self.compile(expr.operand)
        negated = expr.negated
        if isinstance(expr.pattern, ast.Literal) and isinstance(expr.pattern.value, str):
            matches = like_matcher(expr.pattern.value)  # compiled once

            def like_constant(a: Attrs | None, m: Match, c: ContextView | None) -> bool:
                value = operand(a, m, c)
                return isinstance(value, str) and matches(value) != negated
            return like_constant
        pattern = self.compile(expr.pattern)

        def like(a: Attrs | None, m: Match, c: ContextView | None) -> bool:
            value, text = operand(a, m, c), pattern(a, m, c)
            if not isinstance(value, str) or not isinstance(text, str):
                return False
            return like_matcher(text)(value) != negated
        return like

    def _IsNull(self, expr: ast.IsNull) -> Fn:
        operand = self.compile(expr.operand)
        if expr.negated:
            return lambda a, m, c: operand(a, m, c) is not None
        return lambda a, m, c: operand(a, m, c) is None

    # -------------------------------------------------------------- functions
    def _Call(self, expr: ast.Call) -> Fn:
        if expr.name == "distance":
            return self._distance(expr)
        if expr.name == "changed":
            return self._changed(expr)
        if expr.name in _CLOCK_FUNCTIONS:
            return self._clock(expr)
        if expr.name == "sun_elevation":
            return self._sun_elevation(expr)
        args = [self.compile(a) for a in expr.args]
        if expr.name == "coalesce":
            def coalesce(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
                for arg in args:
                    value = arg(a, m, c)
                    if value is not None:
                        return value
                return None
            return coalesce
        function = _FUNCTIONS[expr.name]

        def call(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            values = [arg(a, m, c) for arg in args]
            if any(v is None for v in values):
                return None
            try:
                return function(*values)
            except _VALUE_ERRORS:
                return None
        return call

    def _changed(self, expr: ast.Call) -> Fn:
        """`changed(attr)` in a filter of `event_type` (cep.checks allows it only there)."""
        (arg,) = expr.args
        type_name = self.event_type
        if type_name is None or not isinstance(arg, ast.Name):
            return lambda a, m, c: False
        changes = self.env.changes
        attr = arg.name
        changes.watch(type_name, attr)
        return lambda a, m, c: changes.changed(type_name, attr)

    def _clock(self, expr: ast.Call) -> Fn:
        """`current_timestamp()`, `hour()`, `minute()`, `weekday()`: of the moment of
        evaluation (the engine's clock), or of a TIMESTAMP argument, in the rules' zone."""
        env = self.env
        name = expr.name
        arg = self.compile(expr.args[0]) if expr.args else None
        if name == "current_timestamp":
            if arg is None:
                return lambda a, m, c: env.now()
            return arg
        part = _CLOCK_FUNCTIONS[name]
        tz = env.tz

        def clock(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            ts = env.now() if arg is None else arg(a, m, c)
            if ts is None:
                return None
            try:
                return part(datetime.fromtimestamp(ts, tz))
            except (*_VALUE_ERRORS, OSError):
                return None
        return clock

    def _sun_elevation(self, expr: ast.Call) -> Fn:
        """`sun_elevation()`: the sun's elevation in degrees (with refraction) at the moment
        of evaluation, or `sun_elevation(t)` at a TIMESTAMP, seen from the home's location
        (SET LOCATION GEO); null without a location."""
        env = self.env
        location = env.location
        arg = self.compile(expr.args[0]) if expr.args else None
        if location is None:
            return lambda a, m, c: None

        def sun_elevation(a: Attrs | None, m: Match, c: ContextView | None) -> float | None:
            ts = env.now() if arg is None else arg(a, m, c)
            if ts is None or isinstance(ts, bool):
                return None
            try:
                return sun.elevation(float(ts), location)
            except (*_VALUE_ERRORS, OSError):
                return None
        return sun_elevation

    def _distance(self, expr: ast.Call) -> Fn:
        # cep.checks allows only `distance(tag, tag)`, of tags bound to one event each
        first, second = [arg.name for arg in expr.args if isinstance(arg, ast.Name)]
        position_of = self.position_of

        def distance(a: Attrs | None, m: Match, c: ContextView | None) -> float | None:
            x: Event | None = m.get(first)  # type: ignore[assignment]
            y: Event | None = m.get(second)  # type: ignore[assignment]
            if x is None or y is None:
                return None
            px, py = position_of(x), position_of(y)
            if px is None or py is None:
                return None
            return distance_m(px, py)
        return distance


def _window_read(window: EventWindow, attr: str, index: int | None) -> Fn:
    """`W.attr` (its newest event's) or `W[k].attr` with a whole-number key."""
    if index is None:
        def newest(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
            event = window.latest()
            return event.attrs.get(attr) if event is not None else None
        return newest
    key = index

    def keyed(a: Attrs | None, m: Match, c: ContextView | None) -> Any:
        event = window.get(key)
        return event.attrs.get(attr) if event is not None else None
    return keyed


def _equal(x: Any, y: Any) -> bool:
    try:
        return bool(x == y)
    except Exception:
        return False


_CLOCK_FUNCTIONS: dict[str, Callable[[datetime], int]] = {
    "current_timestamp": lambda moment: 0,
    "hour": lambda moment: moment.hour,
    "minute": lambda moment: moment.minute,
    "weekday": lambda moment: moment.isoweekday(),
}


def _conjuncts(expr: ast.Expr) -> list[ast.Expr]:
    """`a and b and c` as [a, b, c] (any other expression as [expr])."""
    if isinstance(expr, ast.Binary) and expr.op == "and":
        return _conjuncts(expr.left) + _conjuncts(expr.right)
    return [expr]


def _divide(x: float, y: float) -> float | None:
    return None if y == 0 else x / y


def _modulo(x: float, y: float) -> float | None:
    """Remainder with the sign of the dividend (as in SQL and Esper), null for % 0."""
    if y == 0:
        return None
    if isinstance(x, int) and isinstance(y, int):
        r = abs(x) % abs(y)
        return -r if x < 0 else r
    return math.fmod(x, y)


def _concat_or_add(x: Any, y: Any) -> Any:
    """`+`: with a STRING on either side the other is written as text (`'at ' + 21.5` is
    `'at 21.5'`)."""
    if type(x) is str:
        return x + (y if type(y) is str else text_of(y))
    if type(y) is str:
        return text_of(x) + y
    return x + y


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": _concat_or_add, "-": operator.sub, "*": operator.mul, "/": _divide, "%": _modulo}


def round_half_away(value: float, digits: int = 0) -> float | None:
    """Rounding as people expect it (2.5 -> 3, -2.5 -> -3), not banker's rounding.

    Values too large to scale are returned as they are (they have no fraction left).
    """
    if not -300 <= digits <= 300 or not math.isfinite(value * 10.0 ** digits):
        return value if digits >= 0 else None
    factor = 10.0 ** digits
    if factor == 0:
        return None
    scaled = abs(value) * factor
    rounded = math.floor(scaled + 0.5) / factor
    rounded = math.copysign(rounded, value)
    return int(rounded) if digits == 0 else rounded


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round_half_away,
    "min": min,
    "max": max,
    "lower": str.lower,
    "upper": str.upper,
}

