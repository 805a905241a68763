"""The bus mapping: MQTT topic + payload -> engine events, shared by live runs and replay.

Built once from the CREATE EVENT statements.  Per message: one dict lookup for
topics that some template names exactly (with every wildcard template that
also matches it worked out at build time); other topics are matched against
the wildcard templates once and the result cached, so steady traffic never
re-matches.  The payload is parsed at most once per message, however many
types share the topic, and never when it is over MAX_PAYLOAD bytes (a bad message).

Each type that maps a message reads it on its own: a type that cannot (a value that
does not convert, a topic level that does not, a TIMESTAMP FROM missing or too far
ahead) is a problem of that type alone, and the other types still make their events.
Only a payload over MAX_PAYLOAD bytes makes the whole message bad.

A declared `PAYLOAD (attr = 'path')` path that does not resolve in a message is not a
bad message: the event is made with the attribute null, and the path is noted in
`BusMapping.missing` (for the message just decoded) and counted for the summary
(`BusMapping.missing_paths`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, tzinfo
from typing import Any

from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.topics import TopicTemplate, compile_template, merge_subscriptions
from cep.runtime.convert import TYPES, BadValue, converter
from cep.runtime.events import Event
from cep.runtime.limits import MAX_AHEAD

from .badmessages import BadMessageReporter
from .payload import (
    MAX_PAYLOAD,
    UNPARSED,
    BadMessage,
    MappingError,
    MissingPath,
    PayloadDecoder,
    body_of,
    convert_attrs,
    parse_payload,
)

__all__ = ["MAX_AHEAD", "MAX_PAYLOAD", "BadMessage", "BadMessageReporter", "BusMapping",
           "Decoded", "MappingError", "MissingPath", "PathCount"]

# (decoder, converted topic-bound attributes, reason when they do not convert)
Route = tuple[PayloadDecoder, dict[str, Any], str | None]

Decoded = tuple[list[Event], tuple[BadMessage, ...]]
"""What `BusMapping.decode` makes of a message: (events, problems).

`events`: one per matching type that read the message, in declaration order.
`problems`: one `BadMessage` per matching type that could not (its `type_name` set, its
`reason` naming the type too), in declaration order; each is a bad message of its own.
Both empty: no template matches the topic (the message is unmatched).
A plain tuple, not a NamedTuple: one is made per message, and a tuple costs a tenth.
"""


class PathCount:
    """A declared PAYLOAD path that did not resolve in `missing` of the `messages` its event
    type read (made an event of)."""

    __slots__ = ("messages", "missing", "path")

    def __init__(self, path: MissingPath, missing: int, messages: int) -> None:
        self.path = path
        self.missing = missing
        self.messages = messages

    def __str__(self) -> str:
        return f"{self.path} in {self.missing:,} of {self.messages:,} " \
               f"message{'s' if self.messages != 1 else ''}"

    def __repr__(self) -> str:
        return f"PathCount({self.path!r}, {self.missing!r}, {self.messages!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not PathCount:
            return NotImplemented
        return (self.path, self.missing, self.messages) == \
            (other.path, other.missing, other.messages)

    __hash__ = None  # type: ignore[assignment]


_NO_ROUTES: tuple[Route, ...] = ()
_NO_PROBLEMS: tuple[BadMessage, ...] = ()


def create_events(catalog: Catalog) -> list[ast.CreateEvent]:
    """The CREATE EVENT statements of a checked rule set, in declaration order."""
    return [info.declaration for info in catalog.events.values()
            if info.declaration is not None]


class BusMapping:
    """Topic and payload mapping for every declared event type."""

    CACHE_LIMIT = 65536  # distinct wildcard-matched topics remembered (then start afresh)

    def __init__(self, decoders: list[PayloadDecoder],
                 templates: list[TopicTemplate | None]) -> None:
        self._by_name: dict[str, PayloadDecoder] = {}
        for decoder in decoders:
            if decoder.name in self._by_name:
                raise MappingError(f"event type {decoder.name!r} is declared twice")
            self._by_name[decoder.name] = decoder
        bus = [(d, t) for d, t in zip(decoders, templates) if t is not None]
        self._filters = merge_subscriptions(t.filter for _, t in bus)
        self._wild = tuple((d, t) for d, t in bus if not t.exact)
        exact: dict[str, tuple[Route, ...]] = {}
        for _, template in bus:
            if template.exact and template.template not in exact:
                exact[template.template] = self._match(template.template, bus)
        self._exact = exact
        # Every topic seen so far -> its routes: the exact ones, and wildcard matches as
        # they come (one lookup per message either way).  Always the same dict (emptied
        # in place at the limit): the fused reading of trace lines holds it.
        self._cache: dict[str, tuple[Route, ...]] = dict(exact)
        self._derived: dict[str, dict[str, Callable[[Any], Any]]] = {}
        # The declared PAYLOAD paths that did not resolve in the message `decode` read last,
        # in declaration order (empty for most messages).
        self.missing: list[MissingPath] = []

    @classmethod
    def from_catalog(cls, catalog: Catalog, tz: tzinfo) -> BusMapping:
        """The mapping a run of `catalog` reads with: its declared events from their topics,
        and trace lines of its derived (INSERT INTO) types by their schemas."""
        derived = {name: info.attrs for name, info in catalog.events.items()
                   if info.declaration is None}
        return cls.from_events(create_events(catalog), tz, derived)

    @classmethod
    def from_events(cls, create_events: Iterable[ast.CreateEvent],
                    tz: tzinfo = UTC,
                    derived: Mapping[str, Mapping[str, str]] | None = None) -> BusMapping:
        """`tz` is where offset-less ISO timestamps in payloads are read (the rules' zone).

        `derived` gives the schemas of INSERT INTO types, so trace lines naming them
        are converted like declared ones.
        """
        decoders: list[PayloadDecoder] = []
        templates: list[TopicTemplate | None] = []
        for event in create_events:
            decoders.append(PayloadDecoder.from_event(event, tz))
            templates.append(compile_template(event.topic.topic.value)
                             if event.topic is not None else None)
        mapping = cls(decoders, templates)
        for name, schema in (derived or {}).items():
            mapping._derived[name] = {attr: _derived_converter(t, tz) for attr, t in schema.items()}
        return mapping

    @staticmethod
    def _match(topic: str, bus: Iterable[tuple[PayloadDecoder, TopicTemplate]]
               ) -> tuple[Route, ...]:
        routes: list[Route] = []
        for decoder, template in bus:
            bound = template.match(topic)
            if bound is None:
                continue
            try:
                routes.append((decoder, decoder.convert_bound(bound), None))
            except BadMessage as exc:
                routes.append((decoder, {}, exc.reason))
        return tuple(routes) if routes else _NO_ROUTES

    def known_topics(self) -> dict[str, tuple[Route, ...]]:
        """Every topic decoded so far (and every exact one) -> its routes, (decoder,
        converted topic values, reason they do not convert or None) per type mapping it:
        the same dict for the mapping's whole life, to be read only (`decode` fills it).
        The fused reading of trace lines (cep.adapters.fused) holds it."""
        return self._cache

    def subscriptions(self) -> list[str]:
        """MQTT filters to subscribe to: one per template, duplicates and covered ones merged."""
        return list(self._filters)

    def decode(self, topic: str, payload: Any, arrival_ts: float,
               value: Any = UNPARSED, ahead_of: float | None = None) -> Decoded:
        """(events, problems): see `Decoded`.  ([], ()) when no template matches.

        Every matching type reads the message on its own: one that cannot is a problem
        of that type alone, and the others still make their events.  Raises BadMessage
        only when the message as a whole is bad: a payload over MAX_PAYLOAD bytes (no
        type reads it then).  Every event's `source` is `topic`.

        `payload` is the body as bytes; a caller that already holds the payload's JSON
        value (a trace line) passes it as `value`, and may then pass as `payload` an
        object whose `.payload` makes the bytes on demand (see `payload.body_of`).  With
        `ahead_of` (the message's time: its arrival live, its line's `ts` in a replay), an
        event time (TIMESTAMP FROM) more than MAX_AHEAD seconds after it is a problem of
        that type: a device clock that far ahead would hold the engine's clock, and every
        timer, until then.

        Afterwards `missing` lists the declared PAYLOAD paths that did not resolve in the
        message, for the events made (the list is emptied at the next call).
        """
        missing = self.missing
        if missing:
            missing.clear()
        cache = self._cache
        routes = cache.get(topic)
        if routes is None:  # not an exact topic: match the wildcard templates, once
            routes = self._match(topic, self._wild)
            if len(cache) >= self.CACHE_LIMIT + len(self._exact):
                cache.clear()
                cache.update(self._exact)
            cache[topic] = routes
        if not routes:
            return [], _NO_PROBLEMS
        if value is UNPARSED:  # bytes (a trace line's JSON value was within bounds)
            size = len(payload) if type(payload) is bytes else len(body_of(payload))
            if size > MAX_PAYLOAD:
                raise BadMessage(f"the payload is {size:,} bytes (at most {MAX_PAYLOAD:,} "
                                 "are read)")
        events: list[Event] = []
        problems: list[BadMessage] | None = None
        for decoder, bound, error in routes:
            if error is None:
                if value is UNPARSED and decoder.needs_object:
                    value = parse_payload(body_of(payload))
                try:
                    events.append(decoder.decode(topic, payload, value, bound, arrival_ts,
                                                 ahead_of, missing))
                    continue
                except BadMessage as exc:
                    problem = exc
            else:  # the topic's levels do not convert for this type
                problem = BadMessage(error, decoder.name)
            if problems is None:
                problems = []
            problems.append(problem)
        return events, (tuple(problems) if problems is not None else _NO_PROBLEMS)

    def missing_paths(self) -> list[PathCount]:
        """Every declared PAYLOAD path that did not resolve in some message so far, with in
        how many of the messages its type read; types and attributes in declaration order."""
        counts: list[PathCount] = []
        for decoder in self._by_name.values():
            if decoder.missing:
                for attr in decoder.types:
                    missed = decoder.missing.get(attr)
                    text = decoder.paths.get(attr)
                    if missed and text is not None:
                        counts.append(PathCount(MissingPath(decoder.name, attr, text), missed,
                                                decoder.decoded))
        return counts

    def make_event(self, type_name: str, ts: float, raw_attrs: Mapping[str, Any]) -> Event:
        """An engine event given directly (a trace line), converted to its type's schema.

        Its `source` is None: it came from no topic.  Raises BadMessage when it does not
        convert."""
        decoder = self._by_name.get(type_name)
        if decoder is not None:
            return Event(type_name, ts, decoder.convert_attrs(raw_attrs))
        converters = self._derived.get(type_name)
        if converters is None:
            raise BadMessage(f"unknown event type {type_name!r}")
        return Event(type_name, ts, convert_attrs(type_name, converters, raw_attrs))

    def declares(self, type_name: str) -> bool:
        """True when `type_name` has a CREATE EVENT."""
        return type_name in self._by_name

    def attribute_types(self, type_name: str) -> dict[str, str]:
        """Declared attribute types of a CREATE EVENT type (a copy); KeyError if undeclared."""
        return dict(self._by_name[type_name].types)


def _derived_converter(type_name: str, tz: tzinfo) -> Callable[[Any], Any]:
    if type_name in TYPES:
        return converter(type_name, tz)
    if type_name in ("EVENT", "EVENTS"):
        return _refuse_events
    return _as_given  # a type only known at run time (null, a key list)


def _refuse_events(value: Any) -> Any:
    raise BadValue("holds tagged events, which a trace line cannot give")


def _as_given(value: Any) -> Any:
    return value
