"""What the terminal view shows, as plain values taken from the engine when a frame is due.

Everything here is a frozen dataclass of plain values (numbers, strings,
tuples), so a frame can be built and rendered from a test without an engine.
`take_snapshot(engine, status, recorder)` reads only public engine attributes
(`now`, `tz`, `stats`, `agents`, `contexts`, `rules_in`) and the agents' public
`name`, `context`, `matches`, `last_fired` and `partial_matches()`; it never
keeps a reference to an engine object.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, tzinfo
from typing import Any

from cep.runtime.output import Output, Sink

MAX_INSTANCES = 60   # context instances copied into a snapshot (newest first)
KEEP_OUTPUTS = 60    # fired events and actions remembered by the tee sink

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
    the inbox size (0: not shown).
    Both: `messages` bus messages (replay: lines), `events` engine events made,
    `events_by_type`, `bad_lines`, `bad_messages`, `unmatched` and its topics.
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
    connection: str = ""
    reconnects: int = 0
    finished: bool = False
    backlog: int = 0
    backlog_peak: int = 0
    backlog_limit: int = 0
    problem: str = ""

    @property
    def progress(self) -> float | None:
        """0..1 through the trace file, when its size is known."""
        if self.finished and self.mode == "replay":
            return 1.0
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
class Snapshot:
    now: float                                 # the time shown (trace time as played)
    tz: tzinfo
    input: InputStatus
    contexts: tuple[ContextRow, ...] = ()      # open instances, newest first (at most MAX)
    contexts_open: int = 0                     # all open instances
    closed: tuple[ContextRow, ...] = ()        # recently closed, fading (filled by the view)
    rules: tuple[RuleRow, ...] = ()
    outputs: tuple[OutputRow, ...] = ()        # newest first
    outputs_total: int = 0
    rate: float = 0.0                          # messages per second (filled by the view)
    elapsed: float = 0.0                       # wall seconds since the view started
    title: str = ""
    started: bool = True                       # False until the engine's clock has started


class TeeSink:
    """Passes every output on to `sink` (if any) and remembers the recent events and actions."""

    def __init__(self, sink: Sink | None = None, keep: int = KEEP_OUTPUTS) -> None:
        self.sink = sink
        self.recent: deque[Output] = deque(maxlen=keep)

    def __call__(self, record: Output) -> None:
        kind = record.get("kind")
        if kind == "event" or kind == "publish":
            self.recent.append(record)
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
                    outputs_total=engine.stats.get("outputs", 0), title=title,
                    started=bool(getattr(engine, "started", True)))


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

