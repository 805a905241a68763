"""The rule language's abstract syntax tree: frozen dataclasses, no logic.

Every node carries a `span` (file, line, column of its first character, and
where it ends).  Spans take no part in equality, so a tree printed back to
text and re-parsed compares equal to the original (see cep/printer.py).

Names are kept as written (case-sensitive); keywords are normalised (units,
policies, operators in lower or upper case as noted on each field).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """Where a node is in its file: 1-based line and column, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int


NO_SPAN = Span("<none>", 0, 0, 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Text:
    """A quoted string whose exact place matters (topics, paths, zones)."""

    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Ident:
    """A name as written, with its place (used where checks must point at it)."""

    name: str
    span: Span = _span()


# ------------------------------------------------------------------ quantities


@dataclass(frozen=True)
class Duration:
    """`1 hour 30 min`: parts as written (unit canonical: ms, s, min, h, day)."""

    parts: tuple[tuple[float, str], ...]
    seconds: float
    span: Span = _span()


@dataclass(frozen=True)
class Distance:
    """`150 m`, `1.5 km` (unit canonical: m or km)."""

    amount: float
    unit: str
    meters: float
    span: Span = _span()


@dataclass(frozen=True)
class ClockTime:
    """`22:00` as written; range-checked by cep.checks, not by the parser."""

    hour: int
    minute: int
    span: Span = _span()


@dataclass(frozen=True)
class SunTime:
    """`SUNSET`, `SUNRISE + 1 hour`, `DUSK - 15 min` (event upper-cased: SUNRISE, SUNSET,
    DAWN or DUSK; sign '+' or '-' with an offset, both None without)."""

    event: str
    sign: str | None
    offset: Duration | None
    span: Span = _span()

    @property
    def offset_seconds(self) -> float:
        if self.offset is None:
            return 0.0
        return -self.offset.seconds if self.sign == "-" else self.offset.seconds


TimePoint = ClockTime | SunTime


@dataclass(frozen=True)
class DayRange:
    """`MON` or `WED-FRI` in an ON day list; names upper-cased, validated later."""

    first: str
    last: str | None
    span: Span = _span()


DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_DAY_NUMBERS = {**{day: n for n, day in enumerate(DAYS)},
                **{name: n for n, name in enumerate(
                    ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY",
                     "SUNDAY"))}}


def day_number(name: str) -> int | None:
    """Monday 0 … Sunday 6, for `MON` or `MONDAY` (upper case); None for anything else."""
    return _DAY_NUMBERS.get(name)


# ------------------------------------------------------------------ expressions


@dataclass(frozen=True)
class Literal:
    """A number, string, boolean or null (`value` is None for null)."""

    value: int | float | str | bool | None
    span: Span = _span()


@dataclass(frozen=True)
class Name:
    """A bare name: an attribute of the current event, or a tag in a pattern."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Attribute:
    """`tag.attr` or `tag[i].attr` (index None when not indexed)."""

    tag: str
    index: int | None
    attr: str
    span: Span = _span()


@dataclass(frozen=True)
class ContextField:
    """`context.key` or `context.name`."""

    field: str
    span: Span = _span()


@dataclass(frozen=True)
class Unary:
    """`-x` (op '-') or `NOT x` (op 'not')."""

    op: str
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Binary:
    """Arithmetic, comparison and logic; op is one of
    `or and = != < <= > >= + - * / %` (`<>` is read as `!=`)."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class InList:
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool
    span: Span = _span()


@dataclass(frozen=True)
class Between:
    operand: Expr
    low: Expr
    high: Expr
    negated: bool
    span: Span = _span()


@dataclass(frozen=True)
class Like:
    operand: Expr
    pattern: Expr
    negated: bool
    span: Span = _span()


@dataclass(frozen=True)
class IsNull:
    operand: Expr
    negated: bool
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    """A function call; `name` lower-cased (function names are keywords)."""

    name: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Aggregate:
    """`count(*)` (arg None), `count(x)`, `sum`, `avg`, `min`, `max` (one argument),
    `first`, `last`, `stddev`, `list`; `name` lower-cased."""

    name: str
    arg: Expr | None
    span: Span = _span()


@dataclass(frozen=True)
class Cast:
    """`cast(x, TYPE)`; type upper-cased as written, validated by cep.checks."""

    operand: Expr
    type: str
    span: Span = _span()


@dataclass(frozen=True)
class Prior:
    """`prior(n, attr)`: `attr` of the n-th earlier event of the rule's stream."""

    count: int
    attr: str
    span: Span = _span()


@dataclass(frozen=True)
class When:
    """`WHEN test THEN value` of a CASE."""

    test: Expr
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Case:
    """`CASE [operand] WHEN w THEN v ... [ELSE default] END` (operand None: WHEN conditions)."""

    operand: Expr | None
    whens: tuple[When, ...]
    default: Expr | None
    span: Span = _span()


@dataclass(frozen=True)
class KeyedRead:
    """`Window[k1, k2].attr`: the attribute of a `#unique` window's event with that key.
    (`Window[3].attr`, a single whole number, is read as an `Attribute` with an index,
    which is a tag index when the name is a tag and a key when it is a window.)"""

    window: str
    keys: tuple[Expr, ...]
    attr: str
    span: Span = _span()


@dataclass(frozen=True)
class Subquery:
    """`(SELECT expr FROM Window [WHERE condition])`."""

    select: Expr
    window: Ident
    where: Expr | None
    span: Span = _span()


Expr = (Literal | Name | Attribute | ContextField | Unary | Binary | InList | Between | Like |
        IsNull | Call | Aggregate | Cast | Prior | Case | KeyedRead | Subquery)


# ------------------------------------------------------------------ patterns


@dataclass(frozen=True)
class EventAtom:
    """`[tag=]Type[(filter)]`."""

    tag: str | None
    type: str
    filter: Expr | None
    span: Span = _span()


@dataclass(frozen=True)
class TimerInterval:
    duration: Duration
    span: Span = _span()


@dataclass(frozen=True)
class TimerAt:
    """`timer:at(07:30 [ON days])`, `timer:at(SUNSET - 15 min [ON days])`."""

    at: TimePoint
    days: tuple[DayRange, ...]
    span: Span = _span()


@dataclass(frozen=True)
class ForAtom:
    """`X FOR d`: an event matching X, then no event of X's type from its source that
    fails X's filter (its `changed()` conditions aside) for d."""

    atom: EventAtom
    duration: Duration
    span: Span = _span()


@dataclass(frozen=True)
class FollowedBy:
    """`p1 -> p2 -> ...` (two or more steps)."""

    steps: tuple[Pattern, ...]
    span: Span = _span()


@dataclass(frozen=True)
class PatternOr:
    items: tuple[Pattern, ...]
    span: Span = _span()


@dataclass(frozen=True)
class PatternAnd:
    items: tuple[Pattern, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Every:
    body: Pattern
    span: Span = _span()


@dataclass(frozen=True)
class PatternNot:
    body: Pattern
    span: Span = _span()


@dataclass(frozen=True)
class Repeat:
    """`[n] p`."""

    count: int
    body: Pattern
    span: Span = _span()


@dataclass(frozen=True)
class Until:
    """`p until q`, or `[n] p until q` (count: at most n matches of p)."""

    body: Pattern
    stop: Pattern
    count: int | None
    span: Span = _span()


@dataclass(frozen=True)
class Within:
    """`p where timer:within(d)`."""

    body: Pattern
    duration: Duration
    span: Span = _span()


Pattern = (EventAtom | TimerInterval | TimerAt | ForAtom | FollowedBy | PatternOr | PatternAnd |
           Every | PatternNot | Repeat | Until | Within)


# ------------------------------------------------------------------ sources


@dataclass(frozen=True)
class View:
    """`#time(10 min)`, `#length(5)`, `#lastevent`, `#unique(a, b)`: the view's name
    (lower-cased) and its arguments as written (durations, whole numbers as Literals,
    attribute names as Idents); cep.checks says which view takes which."""

    name: str
    args: tuple[Duration | Literal | Ident, ...]
    span: Span = _span()


@dataclass(frozen=True)
class StreamSource:
    """`Type[(filter)][#view] [AS alias]`: a single event type as a rule's input."""

    type: str
    filter: Expr | None
    alias: str | None
    span: Span = _span()
    view: View | None = None


@dataclass(frozen=True)
class PatternSource:
    """`PATTERN [ pattern ]`."""

    pattern: Pattern
    span: Span = _span()


Source = StreamSource | PatternSource


# ------------------------------------------------------------------ statements


@dataclass(frozen=True)
class SetTimezone:
    zone: Text
    span: Span = _span()


@dataclass(frozen=True)
class SetLocation:
    """`SET LOCATION GEO (lat, lon)`: where the home is, for the sun."""

    lat: float
    lon: float
    span: Span = _span()


@dataclass(frozen=True)
class AttrDef:
    """`name TYPE`; type upper-cased as written, validated by cep.checks."""

    name: str
    type: str
    span: Span = _span()


@dataclass(frozen=True)
class PayloadPath:
    """`attr = 'a.b'` inside PAYLOAD ( ... )."""

    attr: str
    path: Text
    span: Span = _span()


@dataclass(frozen=True)
class TopicBinding:
    """`FROM TOPIC '...' [PAYLOAD AS attr | PAYLOAD (...)]`."""

    topic: Text
    payload_as: Ident | None
    payload_paths: tuple[PayloadPath, ...]
    span: Span = _span()


@dataclass(frozen=True)
class LocatedAt:
    """`LOCATED AT (x, y)` (geo False) or `LOCATED AT GEO (lat, lon)` (geo True)."""

    first: Ident
    second: Ident
    geo: bool
    span: Span = _span()


@dataclass(frozen=True)
class LocatedIn:
    """`LOCATED IN attr`: the attribute names a declared location."""

    attr: Ident
    span: Span = _span()


EventPosition = LocatedAt | LocatedIn


@dataclass(frozen=True)
class CreateEvent:
    name: str
    attrs: tuple[AttrDef, ...]
    topic: TopicBinding | None
    timestamp_path: Text | None
    position: EventPosition | None
    entity: Ident | None
    span: Span = _span()
    name_span: Span = _span()  # where the declared name is


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    span: Span = _span()


@dataclass(frozen=True)
class Polygon:
    """`AREA (...)` in plane metres, or `AREA GEO (...)` as (lat, lon)."""

    points: tuple[Point, ...]
    geo: bool
    span: Span = _span()


@dataclass(frozen=True)
class Circle:
    center: Point
    radius: Distance
    geo: bool
    span: Span = _span()


Shape = Polygon | Circle


@dataclass(frozen=True)
class CreateLocation:
    name: str
    shape: Shape
    span: Span = _span()
    name_span: Span = _span()  # where the declared name is


@dataclass(frozen=True)
class Recurring:
    """`START hh:mm END hh:mm [ON days]`; either end may be a sun event (`START SUNSET`)."""

    start: TimePoint
    end: TimePoint
    days: tuple[DayRange, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Policy:
    """An initiator policy as written (upper-cased), validated by cep.checks."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class EventInterval:
    """`[PARTITION BY k, ...] INITIATED BY ... (DURATION d | TERMINATED BY ... [DURATION d])
    [POLICY p]`: keys () for one interval at a time, else one per key."""

    initiator: Source
    terminator: StreamSource | PatternSource | None
    duration: Duration | None
    policy: Policy | None
    span: Span = _span()
    keys: tuple[Ident, ...] = ()


@dataclass(frozen=True)
class Partition:
    attrs: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True)
class FixedLocation:
    location: Ident
    span: Span = _span()


@dataclass(frozen=True)
class EntityDistance:
    distance: Distance
    entity: Text
    span: Span = _span()


@dataclass(frozen=True)
class EventDistance:
    distance: Distance
    source: StreamSource
    duration: Duration
    policy: Policy | None
    span: Span = _span()


@dataclass(frozen=True)
class Composite:
    parts: tuple[Ident, ...]
    span: Span = _span()


ContextSpec = (Recurring | EventInterval | Partition | FixedLocation | EntityDistance |
               EventDistance | Composite)


@dataclass(frozen=True)
class CreateContext:
    name: str
    spec: ContextSpec
    span: Span = _span()
    name_span: Span = _span()  # where the declared name is


@dataclass(frozen=True)
class CreateWindow:
    """`CREATE WINDOW Name#view FROM Type[(filter)]` (source: the type and its filter)."""

    name: str
    view: View
    source: StreamSource
    span: Span = _span()
    name_span: Span = _span()  # where the declared name is


@dataclass(frozen=True)
class OutputClause:
    """`OUTPUT FIRST | LAST | SNAPSHOT EVERY d` (kind lower-cased)."""

    kind: str
    every: Duration
    span: Span = _span()


@dataclass(frozen=True)
class Annotation:
    """`@name('text')` or `@once` (value None); name as written."""

    name: str
    value: Text | None
    span: Span = _span()


@dataclass(frozen=True)
class SelectItem:
    expr: Expr
    alias: str | None
    span: Span = _span()


@dataclass(frozen=True)
class JsonObject:
    members: tuple[tuple[str, JsonValue], ...]
    span: Span = _span()


@dataclass(frozen=True)
class JsonArray:
    items: tuple[JsonValue, ...]
    span: Span = _span()


JsonValue = JsonObject | JsonArray | Expr


@dataclass(frozen=True)
class Action:
    """`PUBLISH 'topic' [PAYLOAD ...] [QOS n] [RETAIN]`."""

    topic: Text
    payload: JsonValue | None
    qos: int | None
    retain: bool
    span: Span = _span()


@dataclass(frozen=True)
class SelectRule:
    """`[...] SELECT ... FROM ... [WHERE ...] [PUBLISH ...]*`; select None means `*`."""

    annotations: tuple[Annotation, ...]
    context: Ident | None
    insert_into: Ident | None
    select: tuple[SelectItem, ...] | None
    source: Source
    where: Expr | None
    actions: tuple[Action, ...]
    span: Span = _span()
    group_by: tuple[Ident, ...] = ()
    having: Expr | None = None
    output: OutputClause | None = None


@dataclass(frozen=True)
class LifecycleTrigger:
    """`ON START` / `ON END` (kind 'start' or 'end')."""

    kind: str
    span: Span = _span()


OnTrigger = LifecycleTrigger | StreamSource | PatternSource


@dataclass(frozen=True)
class OnRule:
    """`[...] ON (START | END | PATTERN [...] | Type...) [WHERE ...] PUBLISH ...`."""

    annotations: tuple[Annotation, ...]
    context: Ident | None
    trigger: OnTrigger
    where: Expr | None
    actions: tuple[Action, ...]
    span: Span = _span()
    output: OutputClause | None = None


Rule = SelectRule | OnRule
Statement = (SetTimezone | SetLocation | CreateEvent | CreateLocation | CreateContext |
             CreateWindow | SelectRule | OnRule)


@dataclass(frozen=True)
class RuleFile:
    """One parsed `.epl` file; statements that failed to parse are left out."""

    path: str
    statements: tuple[Statement, ...]
    span: Span = _span()
