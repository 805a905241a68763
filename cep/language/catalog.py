"""The symbol table the checks build and the engine compiles from.

A `Catalog` holds every declaration of a rule set (all files together):
event types (declared and derived), locations, contexts, rules with their
final names, and the time zone.  Checks fill it in; nothing here validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cep.language import ast

INT, FLOAT, STRING, BOOL, TIMESTAMP = "INT", "FLOAT", "STRING", "BOOL", "TIMESTAMP"
NULL = "NULL"      # the type of the literal null: compatible with everything
ANY = "ANY"        # unknown (after an error): compatible with everything, reports nothing
EVENT = "EVENT"    # a tagged event as a value (`SELECT a`, `SELECT *` in a pattern)
EVENTS = "EVENTS"  # a repeated tag as a value: a list of events
LIST = "LIST"      # the key of a context partitioned by several attributes
VALUES = "VALUES"  # what list(x) makes: a JSON array of values (selected, published, not compared)
ATTRIBUTE_TYPES = (INT, FLOAT, STRING, BOOL, TIMESTAMP)
NUMERIC = (INT, FLOAT)


@dataclass
class EventTypeInfo:
    """An event type: declared by CREATE EVENT and/or derived by INSERT INTO."""

    name: str
    attrs: dict[str, str]
    declaration: ast.CreateEvent | None = None
    producers: list[str] = field(default_factory=list)  # names of rules inserting into it
    span: ast.Span = ast.NO_SPAN
    producers_checked: bool = False  # a derived type's schema is known once a producer is checked
    first_producer: str = ""

    @property
    def derived(self) -> bool:
        return self.declaration is None

    @property
    def located(self) -> bool:
        return self.declaration is not None and self.declaration.position is not None


@dataclass
class RuleInfo:
    """A rule with its resolved name, output type and result schema."""

    name: str
    description: str | None
    rule: ast.Rule
    number: int                 # 1-based, across all files in load order
    output_type: str            # the INSERT INTO type, or the rule's name
    inserts: bool               # True when the rule has INSERT INTO
    schema: dict[str, str] = field(default_factory=dict)  # result names and types
    inputs: list[str] = field(default_factory=list)       # event types it reads, in order

    @property
    def context(self) -> str | None:
        return self.rule.context.name if self.rule.context else None

    @property
    def is_on_rule(self) -> bool:
        return isinstance(self.rule, ast.OnRule)


@dataclass
class WindowInfo:
    """A named window (CREATE WINDOW): the type it holds and, for `#unique`, its key."""

    name: str
    declaration: ast.CreateWindow
    type: str
    keys: tuple[str, ...] = ()  # the `#unique(...)` attributes; () for other views

    @property
    def view(self) -> ast.View:
        return self.declaration.view


@dataclass
class Catalog:
    timezone: str = "UTC"
    timezone_span: ast.Span = ast.NO_SPAN
    location: tuple[float, float] | None = None  # SET LOCATION GEO (lat, lon), for the sun
    location_span: ast.Span = ast.NO_SPAN
    events: dict[str, EventTypeInfo] = field(default_factory=dict)
    locations: dict[str, ast.CreateLocation] = field(default_factory=dict)
    contexts: dict[str, ast.CreateContext] = field(default_factory=dict)
    windows: dict[str, WindowInfo] = field(default_factory=dict)
    rules: list[RuleInfo] = field(default_factory=list)

    def rule(self, name: str) -> RuleInfo | None:
        return next((r for r in self.rules if r.name == name), None)
