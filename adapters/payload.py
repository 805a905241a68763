"""Reading one declared event type's attributes out of a bus message.

A `PayloadDecoder` is built once per CREATE EVENT.  Where each attribute comes
from is decided then:
- bound by the topic template (`{room}`): from the topic, never the payload;
- `PAYLOAD AS attr`: the whole payload text (a JSON string payload is unquoted);
- `PAYLOAD (attr = 'a.b', ...)`: a dotted path into the JSON object (`a.0.b`
  indexes arrays); every other attribute is read from the key of its own name;
- by default: the key of its own name in the JSON object.
A missing key or a JSON null leaves the attribute absent (null).  A path given in
`PAYLOAD (attr = 'path')` that does not resolve in a message (a step missing, or not
an object or array; a JSON null at its end resolves, to null) is noted as a
`MissingPath` in the list the caller passes, and counted per attribute: the event
still happens, with the attribute null.  A default key (no PAYLOAD entry) that is
absent is not noted: devices often send only some of their keys.  A value that
does not convert raises `BadMessage` (naming the type: a bad message of this type
alone when other types map the same message); so does a payload that is not a JSON
object when the type needs one.  A payload over MAX_PAYLOAD bytes is refused by the
bus mapping before anything parses it.  Each event made from a message has the
message's topic as its `source`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, tzinfo
from typing import Any

from cep.language import ast
from cep.language.topics import TemplateError, compile_template
from cep.runtime.convert import TYPES, BadValue, converter, make_to_timestamp, show
from cep.runtime.events import Event
from cep.runtime.limits import MAX_AHEAD
from cep.runtime.output import format_ts

from .jsonlib import loads

__all__ = [
    "INVALID",
    "MAX_PAYLOAD",
    "UNPARSED",
    "BadMessage",
    "Body",
    "MappingError",
    "MissingPath",
    "Path",
    "PayloadDecoder",
    "body_of",
    "compile_path",
    "lookup",
    "parse_payload",
    "path_problems",
    "resolves",
]

# Bytes a message's payload may have: a bigger one is a bad message, refused before it is
# parsed (MQTT allows 256 MB; smart home devices send a few hundred bytes).
MAX_PAYLOAD = 1024 * 1024

Path = tuple[tuple[str, int | None], ...]
Converter = Callable[[Any], Any]
Body = bytes | bytearray | memoryview  # a payload's bytes, as a client library gives them


class BadMessage(ValueError):
    """A message that cannot become events; `reason` is for people (names attribute and value).

    `type_name` is the event type that could not read it (`reason` names it too), or
    None when the message as a whole is bad (a payload too large).
    """

    def __init__(self, reason: str, type_name: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.type_name = type_name


class MappingError(ValueError):
    """A CREATE EVENT the bus cannot map (the rule checker should have refused it)."""


class _Invalid:
    """Marks a payload that is not valid JSON (None is a valid JSON value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()

UNPARSED: Any = object()
"""A payload whose JSON value has not been parsed (yet): not the same as INVALID or null."""


def parse_payload(payload: Body) -> Any:
    """The payload's JSON value, or INVALID."""
    try:
        return loads(payload)
    except ValueError:  # also UnicodeDecodeError
        return INVALID


def path_problems(text: str) -> list[tuple[str, int]]:
    """Problems of a dotted JSON path as (message, offset in the string); empty if good."""
    if text == "":
        return [("the path is empty", 0)]
    problems: list[tuple[str, int]] = []
    offset = 0
    for part in text.split("."):
        if part == "":
            problems.append(("empty step in the path (two dots, or a dot at an end)", offset))
        offset += len(part) + 1
    return problems


def compile_path(text: str) -> Path:
    """`a.0.b` as ((key, index-or-None), ...): a digit step also indexes an array."""
    problems = path_problems(text)
    if problems:
        raise MappingError(f"bad payload path {text!r}: {problems[0][0]}")
    return tuple((part, int(part) if part.isdigit() else None) for part in text.split("."))


def lookup(value: Any, path: Path) -> Any:
    """The value at `path`, or None when any step is missing or not an object/array."""
    for key, index in path:
        kind = type(value)
        if kind is dict:
            value = value.get(key)
        elif kind is list and index is not None:
            value = value[index] if index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def resolves(value: Any, path: Path) -> bool:
    """Whether every step of `path` exists in `value` (the last one may hold null)."""
    last = len(path) - 1
    for step, (key, index) in enumerate(path):
        kind = type(value)
        if kind is dict:
            if key not in value:
                return False
            value = value[key]
        elif kind is list and index is not None and index < len(value):
            value = value[index]
        else:
            return False
        if value is None and step < last:
            return False
    return True


class MissingPath:
    """A declared PAYLOAD path of an event type that did not resolve in a message."""

    __slots__ = ("attr", "path", "type_name")

    def __init__(self, type_name: str, attr: str, path: str) -> None:
        self.type_name = type_name
        self.attr = attr
        self.path = path

    def __str__(self) -> str:
        return f"{self.type_name}.{self.attr}: path {self.path} missing"

    def __repr__(self) -> str:
        return f"MissingPath({self.type_name!r}, {self.attr!r}, {self.path!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not MissingPath:
            return NotImplemented
        return (self.type_name, self.attr, self.path) == \
            (other.type_name, other.attr, other.path)

    def __hash__(self) -> int:
        return hash((self.type_name, self.attr, self.path))


def body_of(payload: Any) -> Body:
    """A payload's bytes: `payload` itself, or a message whose `.payload` gives them.

    A trace message makes its bytes only when asked, so decoders ask only when
    they need them (`PAYLOAD AS`, error messages).
    """
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return payload
    body: Body = payload.payload
    return body


def _payload_text(payload: Any) -> str:
    return bytes(body_of(payload)).decode("utf-8", errors="replace")


def _not_object_reason(value: Any, payload: Any, type_name: str) -> str:
    if value is INVALID:
        return (f"payload {show(_payload_text(payload), 40)} is not valid JSON "
                f"({type_name} expects a JSON object)")
    kind = ("an array" if isinstance(value, list) else "a string" if isinstance(value, str)
            else "null" if value is None else "a boolean" if isinstance(value, bool)
            else "a number")
    return f"payload is {kind}, not a JSON object ({type_name} expects one)"


# Declared types whose converter returns a value of exactly this Python type unchanged
# (`type(True) is bool`, so a boolean never passes for an INT).
_NATIVE: dict[str, type] = {"STRING": str, "INT": int}


class PayloadDecoder:
    """One event type's schema and how to read it from a message.  Build: `from_event`."""

    __slots__ = (
        "_fields",
        "_to_ts",
        "converters",
        "decoded",
        "fields",
        "missing",
        "name",
        "needs_object",
        "paths",
        "plain_fields",
        "plain_raw",
        "raw_attr",
        "raw_native",
        "topic_names",
        "ts_path",
        "ts_text",
        "types",
    )

    def __init__(self, name: str, types: dict[str, str], converters: dict[str, Converter],
                 topic_names: tuple[str, ...],
                 fields: tuple[tuple[str, str, Path | None, Converter], ...],
                 raw_attr: tuple[str, Converter] | None, ts_text: str | None,
                 tz: tzinfo, paths: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.types = types
        self.converters = converters
        self.topic_names = topic_names
        self.fields = fields
        self.raw_attr = raw_attr
        # PAYLOAD AS a number: a trace's JSON number of the declared kind is the value
        self.raw_native: type | None = {"INT": int, "FLOAT": float}.get(
            types[raw_attr[0]]) if raw_attr is not None else None
        self.ts_text = ts_text
        self.ts_path = compile_path(ts_text) if ts_text is not None else None
        self.needs_object = bool(fields) or self.ts_path is not None
        self._to_ts = make_to_timestamp(tz)
        # The PAYLOAD paths declared (attribute -> path text): one that does not resolve in
        # a message is noted.  `decoded` counts the messages this type made an event of,
        # `missing` per attribute those in which its path did not resolve.
        self.paths: dict[str, str] = dict(paths or {})
        self.decoded = 0
        self.missing: dict[str, int] = {}
        misses = {attr: MissingPath(name, attr, text) for attr, text in self.paths.items()}
        # Per field, the Python type a value already has when it needs no conversion
        # (a JSON string for STRING, a JSON integer for INT): most values skip the call;
        # and its MissingPath when its path was declared.
        self._fields = tuple((attr, key, path, convert, _NATIVE.get(types[attr]),
                              misses.get(attr))
                             for attr, key, path, convert in fields)
        # For the fused reading of the usual trace line (cep.adapters.fused), which makes
        # the same attributes as `decode` or leaves the line to it: when every attribute
        # is read from the key of its own name in a JSON object (no PAYLOAD path, no
        # TIMESTAMP FROM), the fields as (attr, the type taken as it is or None,
        # converter); when PAYLOAD AS gives the one attribute (and no TIMESTAMP FROM),
        # `plain_raw`.  Neither counts `decoded` (only read for types with paths).
        plain = raw_attr is None and self.ts_path is None and not self.paths
        self.plain_fields = tuple((attr, native, convert)
                                  for attr, _, _, convert, native, _ in self._fields) \
            if plain else None
        self.plain_raw = raw_attr is not None and self.ts_path is None

    @classmethod
    def from_event(cls, event: ast.CreateEvent, tz: tzinfo) -> PayloadDecoder:
        """Precompute everything for `event`; raises MappingError when it is inconsistent."""
        name = event.name
        types: dict[str, str] = {}
        for declared in event.attrs:
            if declared.name in types:
                raise MappingError(f"{name}: attribute {declared.name!r} is declared twice")
            if declared.type not in TYPES:
                raise MappingError(f"{name}.{declared.name}: unknown type {declared.type!r}")
            types[declared.name] = declared.type
        converters = {attr: converter(kind, tz) for attr, kind in types.items()}
        binding = event.topic
        topic_names: tuple[str, ...] = ()
        raw_attr: tuple[str, Converter] | None = None
        paths: dict[str, Path] = {}
        if binding is not None:
            try:
                topic_names = compile_template(binding.topic.value).names
            except TemplateError as exc:
                raise MappingError(f"{name}: {exc}") from None
            for bound in topic_names:
                _declared(name, types, bound, "the topic binds")
            if binding.payload_as is not None:
                attr = binding.payload_as.name
                _declared(name, types, attr, "PAYLOAD AS names")
                if attr in topic_names:
                    raise MappingError(f"{name}: {attr!r} is bound by the topic and by PAYLOAD AS")
                raw_attr = (attr, converters[attr])
            for entry in binding.payload_paths:
                _declared(name, types, entry.attr, "PAYLOAD names")
                if entry.attr in topic_names or entry.attr in paths:
                    raise MappingError(f"{name}: {entry.attr!r} gets its value twice")
                paths[entry.attr] = compile_path(entry.path.value)
        fields: list[tuple[str, str, Path | None, Converter]] = []
        if raw_attr is None:
            for attr in types:
                if attr in topic_names:
                    continue
                path = paths.get(attr)
                if path is not None and len(path) == 1:
                    fields.append((attr, path[0][0], None, converters[attr]))
                elif path is not None:
                    fields.append((attr, "", path, converters[attr]))
                else:
                    fields.append((attr, attr, None, converters[attr]))
        ts_text = event.timestamp_path.value if event.timestamp_path is not None else None
        texts = {entry.attr: entry.path.value for entry in binding.payload_paths} \
            if binding is not None and raw_attr is None else {}
        return cls(name, types, converters, topic_names, tuple(fields), raw_attr, ts_text, tz,
                   texts)

    # ------------------------------------------------------------ per message

    def convert_bound(self, bound: Mapping[str, str]) -> dict[str, Any]:
        """Topic-bound values converted to their declared types (raises BadMessage)."""
        out: dict[str, Any] = {}
        for attr, text in bound.items():
            try:
                out[attr] = self.converters[attr](text)
            except BadValue as exc:
                raise BadMessage(f"{self.name}.{attr} (from the topic): {exc.reason}",
                                 self.name) from None
        return out

    def decode(self, topic: str, payload: Any, value: Any, bound: dict[str, Any],
               arrival_ts: float, ahead_of: float | None = None,
               missing: list[MissingPath] | None = None) -> Event:
        """The event for a message on `topic` (its `source`) whose template matched.

        `payload` is the body (see `body_of`); `value` is the parsed payload (INVALID
        if it is not JSON) when `needs_object`, anything otherwise; `bound` holds the
        converted topic values (copied here).  With `ahead_of`, a TIMESTAMP FROM time
        more than MAX_AHEAD seconds after it is refused.  Raises BadMessage (with this
        type's name) when this type cannot read the message.  When the event is made,
        the declared PAYLOAD paths that did not resolve are counted (`missing`,
        `decoded`) and appended to the `missing` list given.
        """
        name = self.name
        attrs = dict(bound) if bound else {}
        if self.needs_object and type(value) is not dict:
            raise BadMessage(_not_object_reason(value, payload, name), name)
        misses: list[MissingPath] | None = None
        for attr, key, path, convert, native, miss in self._fields:
            item = value.get(key) if path is None else lookup(value, path)
            if item is None:
                if miss is not None and (key not in value if path is None
                                         else not resolves(value, path)):
                    if misses is None:
                        misses = [miss]
                    else:
                        misses.append(miss)
                continue
            if type(item) is native:
                attrs[attr] = item
                continue
            try:
                attrs[attr] = convert(item)
            except BadValue as exc:
                raise BadMessage(f"{name}.{attr}: {exc.reason}", name) from None
        raw_attr = self.raw_attr
        kind = type(value)
        if raw_attr is not None and kind is self.raw_native and (kind is int or
                                                                 math.isfinite(value)):
            attrs[raw_attr[0]] = value  # (a whole number, or a float not NaN or infinite)
        elif raw_attr is not None:
            attr, convert = raw_attr
            body = body_of(payload)
            try:
                text = bytes(body).decode("utf-8")
            except UnicodeDecodeError:
                raise BadMessage(f"{name}.{attr}: the payload is not UTF-8 text",
                                 name) from None
            if text[:1] == '"':  # a JSON string payload: its content, not its quotes
                unquoted = parse_payload(body)
                if type(unquoted) is str:
                    text = unquoted
            try:
                attrs[attr] = convert(text)
            except BadValue as exc:
                raise BadMessage(f"{name}.{attr}: {exc.reason}", name) from None
        ts = arrival_ts
        if self.ts_path is not None:
            raw_ts = lookup(value, self.ts_path)
            if raw_ts is None:
                raise BadMessage(f"{name}: the payload has no timestamp at {self.ts_text!r}",
                                 name)
            try:
                ts = self._to_ts(raw_ts)
            except BadValue as exc:
                raise BadMessage(f"{name} timestamp at {self.ts_text!r}: {exc.reason}",
                                 name) from None
            if ahead_of is not None and ts > ahead_of + MAX_AHEAD:
                raise BadMessage(f"{name}: its time {format_ts(ts, UTC)} is more than a "
                                 f"day ahead of the message's ({format_ts(ahead_of, UTC)})",
                                 name)
        self.decoded += 1
        if misses is not None:
            counts = self.missing
            for miss in misses:
                counts[miss.attr] = counts.get(miss.attr, 0) + 1
            if missing is not None:
                missing.extend(misses)
        return Event(name, ts, attrs, topic)

    def convert_attrs(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Attributes given directly (a trace's engine event) converted; nulls left out."""
        return convert_attrs(self.name, self.converters, raw)


def convert_attrs(type_name: str, converters: Mapping[str, Callable[[Any], Any]],
                  raw: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes given by name converted to their types; nulls left out; BadMessage if not."""
    out: dict[str, Any] = {}
    for attr, item in raw.items():
        convert = converters.get(attr)
        if convert is None:
            raise BadMessage(f"{type_name} has no attribute {attr!r}", type_name)
        if item is None:
            continue
        try:
            out[attr] = convert(item)
        except BadValue as exc:
            raise BadMessage(f"{type_name}.{attr}: {exc.reason}", type_name) from None
    return out


def _declared(type_name: str, types: dict[str, str], attr: str, what: str) -> None:
    if attr not in types:
        raise MappingError(f"{type_name}: {what} {attr!r}, which is not a declared attribute")
