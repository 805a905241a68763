"""What the terminal view shows, as plain values taken from the engine when a frame is due.

Everything here is a frozen dataclass of plain values (numbers, strings,
tuples), so a frame can be built and rendered from a test without an engine.
`take_snapshot(engine, status, recorder)` reads only public engine attributes
(`now`, `tz`, `stats`, `agents`, `contexts`, `rules_in`, `catalog`, `windows`) and the
agents' public `name`, `context`, `matches`, `last_fired`, `partial_matches()` and, for a
windowed rule, its source's `windows`, `slot.labels` and `group_by`; it never keeps a
reference to an engine object: event attributes and aggregate values are copied as text.
"""

from __future__ import annotations

import heapq
import json
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, tzinfo
from typing import Any

from cep.language.printer import format_source, format_view
from cep.runtime.agents import WindowedSource
from cep.runtime.output import Output, Sink

MAX_INSTANCES = 60   # context instances copied into a snapshot (newest first)
KEEP_OUTPUTS = 60    # fired events and actions remembered by the tee sink
WINDOW_GROUPS = 5    # groups copied per windowed rule and context instance (largest first)
WINDOW_INSTANCES = 5  # context instances copied per windowed rule (most events first)
TEXT_LIMIT = 1000    # characters of an attribute or aggregate value copied at most
LIST_ITEMS = 50      # items of a list value copied at most

RowIdentity = tuple[str, str, float]  # a context instance: context, key (repr), opened at


@dataclass(frozen=True)
class InputStatus:
    """Where input comes from and how it goes; one shape for replay and live runs.

    replay: `source` is the trace name, `clock` the trace's time as played,
    `position`/`total` the bytes read of the file (total None for stdin), `speed`
    the --speed factor (None: as fast as possible), `lines` the trace records read.
    live: `source` is the broker URL (password masked), `connection` a short state
    ("connected", "reconnecting", ...), `reconnects` how many times it reconnected,
    `problem` the last connection failure while not connected, `backlog` the messages
    waiting in the inbox for the engine, `backlog_peak` the most so far, `backlog_limit`
    the inbox size (0: not shown), `state` what start-up took from the state folder;
    replay: `start_clock`/`end_clock` the trace's first
    time and where it ends (--until, else its last line's time), when known: progress
    then goes by trace time, not by bytes.
    Both: `messages` bus messages (replay: lines), `events` engine events made,
    `events_by_type`, `bad_lines`, `bad_messages`, `unmatched` and its topics,
    `missing_paths`: the declared PAYLOAD paths some messages did not have.
    Strings here may come from anywhere (topics, payloads): the panels show them as
    plain text, control characters escaped.
    """

    mode: str = "replay"                       # "replay" or "live"
    source: str = ""
    clock: float | None = None
    position: int | None = None
    total: int | None = None
    speed: float | None = None
    lines: int = 0
    messages: int = 0
    events: int = 0
    events_by_type: tuple[tuple[str, int], ...] = ()
    bad_lines: int = 0
    bad_messages: int = 0
    unmatched: int = 0
    unmatched_topics: tuple[tuple[str, int], ...] = ()
    missing_paths: tuple[str, ...] = ()        # "Type.attr: path P missing in n of m messages"
    connection: str = ""
    reconnects: int = 0
    finished: bool = False
    backlog: int = 0
    backlog_peak: int = 0
    backlog_limit: int = 0
    problem: str = ""
    state: str = ""                            # live: what start-up restored (short)
    start_clock: float | None = None           # replay: the trace's first time, when known
    end_clock: float | None = None             # replay: where it ends (--until, else its
                                               # last line's time), when known

    @property
    def progress(self) -> float | None:
        """0..1 through the trace: by trace time when its first and end times are known,
        else by bytes read of the file when its size is known."""
        if self.finished and self.mode == "replay":
            return 1.0
        start, end = self.start_clock, self.end_clock
        if self.clock is not None and start is not None and end is not None and end > start:
            return max(0.0, min(1.0, (self.clock - start) / (end - start)))
        if self.position is None or not self.total:
            return None
        return max(0.0, min(1.0, self.position / self.total))


@dataclass(frozen=True)
class ContextRow:
    """An open context instance (or one that closed moments ago: `closed_at` is set)."""

    context: str
    key: Any
    opened_at: float
    closes_at: float | None
    policy: str | None
    kind: str
    partial_matches: int = 0
    closed_at: float | None = None
    fade: float = 0.0                          # 0 just closed .. 1 about to disappear

    @property
    def identity(self) -> RowIdentity:
        return (self.context, repr(self.key), self.opened_at)


@dataclass(frozen=True)
class RuleRow:
    name: str
    context: str | None
    kind: str                                  # "select", "on", "on start", "on end"
    partial_matches: int
    matches: int
    last_fired: float | None


@dataclass(frozen=True)
class OutputRow:
    """A fired complex event (`kind` "event") or an action (`kind` "publish")."""

    ts: float
    kind: str
    rule: str
    what: str                                  # the event type, or the topic published to
    key: Any = None
    detail: str = ""                           # key attributes, or the payload


@dataclass(frozen=True)
class WindowRow:
    """A named window (CREATE WINDOW): its view as written, the type (and filter) that
    fills it, how many events it holds and its newest event (None while it is empty)."""

    name: str
    view: str                                  # `#unique(person)`
    source: str                                # `Presence` or `Presence(state = 'home')`
    size: int
    newest_type: str | None = None
    newest_ts: float | None = None
    newest: str = ""                           # its attributes: `person=ann state=home`


@dataclass(frozen=True)
class GroupRow:
    """One group of a windowed rule's window: its GROUP BY value (a tuple for several
    attributes, None without GROUP BY), its events, each aggregate's current value as text
    (in the order of `WindowedRuleRow.labels`) and when its newest event came."""

    key: Any
    size: int
    values: tuple[str, ...]
    newest_ts: float | None = None


@dataclass(frozen=True)
class WindowInstanceRow:
    """A windowed rule's window in one context instance (context None: the rule has none)."""

    context: str | None
    key: Any
    size: int                                  # events held
    groups: tuple[GroupRow, ...] = ()          # the largest first (at most WINDOW_GROUPS)
    groups_total: int = 0


@dataclass(frozen=True)
class WindowedRuleRow:
    """A rule whose source is a window (`FROM Temp#time(10 min)`), with its aggregates."""

    name: str
    context: str | None
    source: str                                # `Temp#time(10 min)`
    labels: tuple[str, ...]                    # each aggregate as written: `avg(value)`
    group_by: tuple[str, ...]
    size: int                                  # events held in all its instances
    instances: tuple[WindowInstanceRow, ...] = ()  # holding events, most first (at most
    instances_total: int = 0                   # WINDOW_INSTANCES); all that hold events


@dataclass(frozen=True)
class Snapshot:
    now: float                                 # the time shown (trace time as played)
    tz: tzinfo
    input: InputStatus
    contexts: tuple[ContextRow, ...] = ()      # open instances, newest first (at most MAX)
    contexts_open: int = 0                     # all open instances
    closed: tuple[ContextRow, ...] = ()        # recently closed, fading (filled by the view)
    rules: tuple[RuleRow, ...] = ()
    outputs: tuple[OutputRow, ...] = ()        # newest first
    outputs_total: int = 0                     # all output lines (context lines included)
    fired_total: int | None = None             # fired events and actions (None: outputs_total)
    rate: float = 0.0                          # messages per second (filled by the view)
    elapsed: float = 0.0                       # wall seconds since the view started
    title: str = ""
    started: bool = True                       # False until the engine's clock has started
    windows: tuple[WindowRow, ...] = ()        # named windows, in file order
    windowed: tuple[WindowedRuleRow, ...] = ()  # windowed rules, in file order
    log: tuple[str, ...] = ()                  # the last stderr lines (filled by the view)

    @property
    def fired(self) -> int:
        """Fired events and actions so far: what the fired-events panel lists."""
        return self.outputs_total if self.fired_total is None else self.fired_total


class TeeSink:
    """Passes every output on to `sink` (if any) and remembers the recent events and actions."""

    def __init__(self, sink: Sink | None = None, keep: int = KEEP_OUTPUTS) -> None:
        self.sink = sink
        self.recent: deque[Output] = deque(maxlen=keep)
        self.count = 0                       # events and actions seen (all, not only kept)

    def __call__(self, record: Output) -> None:
        kind = record.get("kind")
        if kind == "event" or kind == "publish":
            self.recent.append(record)
            self.count += 1
        if self.sink is not None:
            self.sink(record)

    def rows(self) -> tuple[OutputRow, ...]:
        """The remembered outputs as rows, newest first."""
        return tuple(output_row(record) for record in reversed(self.recent))


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return repr(value)


def _short(value: Any, limit: int = TEXT_LIMIT) -> Any:
    """`value` with its strings cut to `limit` characters and its lists to LIST_ITEMS items
    (one more, so the text shows it was cut), before it is turned into text."""
    if isinstance(value, str):
        return value[: limit + 1]
    if isinstance(value, (list, tuple, deque)):
        items = [_short(item, limit) for item in list(value)[: LIST_ITEMS + 1]]
        if len(value) > LIST_ITEMS:
            items[-1] = "…"
        return items
    if isinstance(value, dict):
        return {str(k)[:limit]: _short(v, limit) for k, v in list(value.items())[:LIST_ITEMS]}
    return value


def attrs_text(attrs: dict[str, Any], limit: int = TEXT_LIMIT) -> str:
    """`name=value ...` as the fired-events panel shows attributes (at most `limit` + 1
    characters, so the panel shows where it is cut)."""
    text = " ".join(f"{name}={_compact(_short(value, limit))}" for name, value in attrs.items())
    return text[: limit + 1]


def value_text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """An aggregate's value as text: `null`, `true`, `3`, `22.3333` (six significant digits;
    a large float whole), `kitchen`, `[1,2.5]` (at most LIST_ITEMS items, then `…`); at
    most `limit` + 1 characters, so the panel shows where it is cut."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "null"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.0f}" if 1e6 <= abs(value) < 1e15 else f"{value:.6g}"
    if isinstance(value, (list, tuple, deque)):  # `list(x)`: its items the same way
        items = [value_text(item, limit) for item in list(value)[:LIST_ITEMS]]
        if len(value) > LIST_ITEMS:
            items.append("…")
        return ("[" + ",".join(items) + "]")[: limit + 1]
    return _compact(_short(value, limit))[: limit + 1]


def output_row(record: Output) -> OutputRow:
    if record.get("kind") == "publish":
        payload = record.get("payload")
        return OutputRow(record["ts"], "publish", record.get("rule", ""),
                         str(record.get("topic", "")), None, _compact(payload))
    attrs = record.get("attrs") or {}
    detail = " ".join(f"{name}={_compact(value)}" for name, value in attrs.items())
    key = record.get("key")
    if key is not None:
        detail = f"key={_compact(key)} {detail}".rstrip()
    return OutputRow(record["ts"], "event", record.get("rule", ""), str(record.get("type", "")),
                     key, detail)


_KINDS = {"RecurringRuntime": "recurring", "EventIntervalRuntime": "interval",
          "PartitionRuntime": "partition", "FixedLocationRuntime": "location",
          "EntityDistanceRuntime": "distance", "EventDistanceRuntime": "distance",
          "CompositeRuntime": "composite"}


def _rule_kind(agent: Any) -> str:
    kind = getattr(agent, "kind", None)
    if kind in ("start", "end"):
        return f"on {kind}"
    info = getattr(agent, "info", None)
    return "on" if info is not None and getattr(info, "is_on_rule", False) else "select"


def take_snapshot(engine: Any, status: InputStatus, recorder: TeeSink | None = None,
                  title: str = "", max_instances: int = MAX_INSTANCES) -> Snapshot:
    """Copy what the view shows out of a (paused) engine: plain values only."""
    now = status.clock if status.clock is not None else engine.now
    if status.clock is not None and engine.now > now:
        now = engine.now
    rows: list[ContextRow] = []
    total_open = 0
    rules_in = engine.rules_in
    for name, runtime in engine.contexts.items():
        instances = runtime.open
        total_open += len(instances)
        kind = _KINDS.get(type(runtime).__name__, "context")
        agents = rules_in.get(name, ())
        for instance in instances[-max_instances:]:
            partial = sum(agent.partial_matches(instance) for agent in agents)
            rows.append(ContextRow(name, _plain(instance.key), instance.opened_at,
                                   instance.closes_at, instance.policy, kind, partial))
    rows.sort(key=lambda row: row.opened_at, reverse=True)
    rules = tuple(RuleRow(agent.name, agent.context, _rule_kind(agent), agent.partial_matches(),
                          agent.matches, agent.last_fired) for agent in engine.agents)
    return Snapshot(now=now, tz=engine.tz or UTC, input=status,
                    contexts=tuple(rows[:max_instances]), contexts_open=total_open, rules=rules,
                    outputs=recorder.rows() if recorder is not None else (),
                    outputs_total=engine.stats.get("outputs", 0),
                    fired_total=recorder.count if recorder is not None else None, title=title,
                    started=bool(getattr(engine, "started", True)),
                    windows=window_rows(engine), windowed=windowed_rows(engine.agents))


def window_rows(engine: Any) -> tuple[WindowRow, ...]:
    """Each named window of the engine (`engine.windows.by_name`), copied."""
    named = getattr(engine, "windows", None)
    if named is None:
        return ()
    declared = engine.catalog.windows
    rows = []
    for name, window in named.by_name.items():
        info = declared.get(name)
        if info is not None:
            declaration = info.declaration
            view, source = format_view(declaration.view), format_source(declaration.source)
        else:
            view, source = "", str(window.type)
        content = window.window
        newest = content.latest()
        if newest is None:
            rows.append(WindowRow(name, view, source, len(content)))
        else:
            rows.append(WindowRow(name, view, source, len(content), newest.type, newest.ts,
                                  attrs_text(newest.attrs)))
    return tuple(rows)


def _order(value: Any) -> tuple[Any, ...]:
    """A sort key for group keys of any type: null, then numbers, strings, tuples, others."""
    if value is None:
        return (0, 0)
    if isinstance(value, (bool, int, float)):
        number = float(value)
        return (1, number if number == number else math.inf)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, tuple):
        return (3, tuple(_order(item) for item in value))
    return (4, repr(value))


def _largest(items: Iterable[Any], count: int, size: Any, order: Any) -> list[Any]:
    """The `count` items of largest size, ties in `order`."""
    return heapq.nsmallest(count, items, key=lambda item: (-size(item), order(item)))


def windowed_rows(agents: Iterable[Any], groups: int = WINDOW_GROUPS,
                  instances: int = WINDOW_INSTANCES) -> tuple[WindowedRuleRow, ...]:
    """Each rule whose source is a window: per context instance holding events (the most
    first), its largest groups with their aggregates' current values, copied as text."""
    rows = []
    for agent in agents:
        source = getattr(agent, "source", None)
        if not isinstance(source, WindowedSource):
            continue
        rule_source = agent.info.rule.source
        text = format_source(replace(rule_source, alias=None)) \
            if rule_source.view is not None else ""
        held = [(instance, window) for instance, window in source.windows.items()
                if len(window)]
        total = sum(len(window) for _instance, window in held)
        chosen = _largest(held, instances, lambda item: len(item[1]),
                          lambda item: (-item[0].opened_at, _order(_plain(item[0].key))))
        shown = []
        for instance, window in chosen:
            largest = _largest(window.groups.values(), groups, lambda group: group.size,
                               lambda group: _order(group.key))
            group_rows = tuple(
                GroupRow(_plain(group.key), group.size,
                         tuple(value_text(agg.result()) for agg in group.aggs),
                         group.newest.ts if group.newest is not None else None)
                for group in largest)
            shown.append(WindowInstanceRow(instance.name, _plain(instance.key), len(window),
                                           group_rows, len(window.groups)))
        rows.append(WindowedRuleRow(agent.name, agent.context, text,
                                    tuple(source.slot.labels), tuple(source.group_by), total,
                                    tuple(shown), len(held)))
    return tuple(rows)


def _plain(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


@dataclass
class FadeTracker:
    """Keeps instances that disappeared between two snapshots for `seconds` of wall time."""

    seconds: float = 3.0
    previous: dict[RowIdentity, ContextRow] = field(default_factory=dict)
    fading: dict[RowIdentity, tuple[ContextRow, float]] = field(default_factory=dict)

    def update(self, snapshot: Snapshot, wall: float) -> tuple[ContextRow, ...]:
        current = {row.identity: row for row in snapshot.contexts}
        if snapshot.contexts_open <= len(snapshot.contexts):  # only when we saw them all
            for identity, row in self.previous.items():
                if identity not in current and identity not in self.fading:
                    closed_at = row.closes_at if row.closes_at is not None and \
                        row.closes_at <= snapshot.now else snapshot.now
                    self.fading[identity] = (replace(row, closed_at=closed_at,
                                                     partial_matches=0), wall)
        self.previous = current
        shown = []
        for identity, (row, since) in list(self.fading.items()):
            age = (wall - since) / self.seconds if self.seconds > 0 else 1.0
            if age >= 1.0 or identity in current:
                del self.fading[identity]
                continue
            shown.append(replace(row, fade=round(age, 3)))
        shown.sort(key=lambda row: row.closed_at or 0.0, reverse=True)
        return tuple(shown)

