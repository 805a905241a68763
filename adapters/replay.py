"""Replaying a recorded trace through a rule set, in event time.

Bus-message lines go through the same topic and payload mapping as live MQTT
(cep.adapters.bus); engine-event lines are converted to their declared types.

Every good line moves the engine's clock on, as the wall clock moves on live whatever
arrives: the first one starts the clock (a start mark, a message no type maps, a bad
message just as well as an event), and a line that makes no event moves the clock to
its `ts`, firing the timers due up to then (a line that makes events moves it to their
time, which TIMESTAMP FROM may take from the payload).  A stop mark moves the clock to
its time, as `--until` does, and ends the trace; a later `--until` moves it further.

A declared PAYLOAD path that does not resolve in a message is reported (like a bad
message: once per topic a minute) and counted for the summary; the event still
happens, with the attribute null.

Bad lines and bad messages are reported on stderr and counted, never fatal; so is
what the engine reports while a line is processed (a rule failing on a value, an
action refused), prefixed with the line's FILE:LINE.  A message that several types
map is a bad message for each type that cannot read it, and still gives the other
types' events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo

from cep.adapters.badmessages import BadMessageReporter
from cep.adapters.bus import BadMessage, BusMapping, PathCount
from cep.adapters.fused import fused_reading
from cep.adapters.trace import TraceClock, TraceEvent, TraceReader
from cep.language.catalog import Catalog
from cep.language.diagnostics import plural
from cep.runtime.engine import Engine
from cep.runtime.limits import MAX_PARTITION_INSTANCES
from cep.runtime.output import Sink

Report = Callable[[str], None]
# A replay's progress hook: tick(engine, stats, final), called every TICK_EVERY records
# (and while --speed waits) with `stats` brought up to date, and once at the end with
# final=True.  It runs in the replay loop: it must be cheap unless it decides to act.
Tick = Callable[[Engine, "ReplayStats", bool], None]
TICK_EVERY = 256
MAX_UNMATCHED_TOPICS = 1000  # topics counted one by one; the others together
OTHER_TOPICS = "(other topics)"
STDIN_NAME = "<stdin>"  # what reports and the summary call `--trace -`


@dataclass
class ReplayStats:
    lines: int = 0            # trace records read (good lines: messages and clock marks)
    events: int = 0           # engine events made from them
    bad_lines: int = 0
    bad_messages: int = 0     # one for each type that could not read a message
    unmatched: int = 0        # bus messages whose topic no CREATE EVENT declares
    outputs: int = 0
    seconds: float = 0.0      # wall time of the replay
    unmatched_topics: dict[str, int] = field(default_factory=dict)
    # the parts of the trace's lines, for the summary (they add up to total_lines):
    total_lines: int = 0      # every line of the file read, blank ones included
    blank_lines: int = 0
    clock_marks: int = 0
    event_lines: int = 0      # messages (and engine-event lines) that made events
    bad_message_lines: int = 0  # messages that made no event: no type could read them
    # from the engine's stats at the end (shown in the summary when not zero):
    rule_errors: int = 0      # a filter, WHERE, SELECT or timer that raised
    action_errors: int = 0    # actions not carried out (a topic or payload refused)
    nulled: int = 0           # output values JSON cannot carry, written as null
    refused_keys: int = 0     # events of new keys a partition at its limit refused
    after_stop: int = 0       # lines after a stop mark, skipped
    # declared PAYLOAD paths that did not resolve, with in how many of their type's messages
    missing_paths: list[PathCount] = field(default_factory=list)
    # kept up to date only for a tick hook (cep replay --view):
    events_by_type: dict[str, int] = field(default_factory=dict)
    position: int | None = None  # bytes of the trace read
    clock: float | None = None   # the trace's time as played (paced with --speed)

    @property
    def messages(self) -> int:
        """The trace's message (and engine-event) lines: those that made events, the
        unmatched ones and those no type could read."""
        return self.event_lines + self.unmatched + self.bad_message_lines

    def summary(self, trace_name: str) -> str:
        """One line: the trace's lines and what they were, then what the replay made.

        `trace.jsonl: 39 lines: 30 messages (27 with events, 2 unmatched, 1 bad), 1
        clock mark, 6 bad lines, 1 blank, 1 skipped after the stop mark; 28 events, 2
        bad messages, 4 outputs in 0.002 s (2,144 events/s)`: the parts after `39
        lines:` add up to it, and so do those in brackets to the messages.
        """
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        kinds = [f"{self.event_lines} with events"]
        if self.unmatched:
            kinds.append(f"{self.unmatched} unmatched")
        if self.bad_message_lines:
            kinds.append(f"{self.bad_message_lines} bad")
        parts = [f"{plural(self.messages, 'message')} ({', '.join(kinds)})"]
        if self.clock_marks:
            parts.append(plural(self.clock_marks, "clock mark"))
        parts.append(plural(self.bad_lines, "bad line"))
        if self.blank_lines:
            parts.append(f"{self.blank_lines} blank")
        if self.after_stop:
            parts.append(f"{self.after_stop} skipped after the stop mark")
        made = [plural(self.events, "event"), plural(self.bad_messages, "bad message"),
                plural(self.outputs, "output")]
        made.extend(plural(count, one, many) for count, one, many in (
            (self.rule_errors, "rule error", None),
            (self.action_errors, "action error", None),
            (self.nulled, "value written as null", "values written as null"),
            (self.refused_keys, "event of a new partition key refused",
             "events of new partition keys refused"))
            if count)
        return (f"{trace_name}: {plural(self.total_lines, 'line')}: {', '.join(parts)}; "
                f"{', '.join(made)} in {self.seconds:.3f} s ({rate:,.0f} events/s)")

    def path_lines(self, trace_name: str) -> list[str]:
        """One line per declared PAYLOAD path that did not resolve, printed before the
        summary: `trace.jsonl: WasherPower.power: path ENERGY.Power missing in 12 of 12
        messages`."""
        return [f"{trace_name}: {count}" for count in self.missing_paths]

    def count_unmatched(self, topic: str) -> None:
        topics = self.unmatched_topics
        self.unmatched += 1
        if topic not in topics and len(topics) >= MAX_UNMATCHED_TOPICS:
            topic = OTHER_TOPICS
        topics[topic] = topics.get(topic, 0) + 1


WAIT_SLICE = 0.05  # seconds: with a tick hook, a --speed wait is slept in slices this long


class Pacer:
    """Plays event time at `speed` times real time (wall clock, for watching a replay).

    `sleep` and `now` are the wall clock it waits on (a fake one in tests). With
    `on_wait`, a wait is slept in slices of at most WAIT_SLICE seconds with a call to
    `on_wait` after each, so whatever watches the replay moves on while it waits.
    """

    def __init__(self, speed: float, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], float] = time.monotonic,
                 on_wait: Callable[[], None] | None = None) -> None:
        self.speed = speed
        self.sleep = sleep
        self.now = now
        self.on_wait = on_wait
        self.origin: tuple[float, float] | None = None  # (event time, wall time)
        self.target: float | None = None  # the event time being waited for

    def virtual_now(self) -> float | None:
        """The event time the wall clock stands for now (never past the awaited time)."""
        if self.origin is None:
            return None
        at = self.origin[0] + (self.now() - self.origin[1]) * self.speed
        return min(at, self.target) if self.target is not None else at

    def wait_until(self, event_ts: float) -> None:
        self.target = event_ts
        if self.origin is None:
            self.origin = (event_ts, self.now())
            return
        due = self.origin[1] + (event_ts - self.origin[0]) / self.speed
        delay = due - self.now()
        if delay > 0:
            self._wait(delay)

    def _wait(self, delay: float) -> None:
        if self.on_wait is None:
            self.sleep(delay)
            return
        end = self.now() + delay
        while True:
            left = end - self.now()
            if left <= 0:
                return
            self.sleep(min(left, WAIT_SLICE))
            self.on_wait()


class _Ticker:
    """Calls a replay's tick hook (not final) with the stats brought up to date."""

    def __init__(self, tick: Tick, engine: Engine, stats: ReplayStats,
                 reader: TraceReader, bus: BusMapping) -> None:
        self.tick = tick
        self.engine = engine
        self.stats = stats
        self.reader = reader
        self.bus = bus
        self.pacer: Pacer | None = None  # with --speed: the played clock comes from it

    def __call__(self) -> None:
        stats, engine = self.stats, self.engine
        stats.position = self.reader.position
        stats.bad_lines = self.reader.skipped
        stats.outputs = engine.stats["outputs"]
        stats.missing_paths = self.bus.missing_paths()
        played = self.pacer.virtual_now() if self.pacer is not None else None
        stats.clock = engine.now if played is None or played < engine.now else played
        self.tick(engine, stats, False)


class _Where:
    """The trace line being processed, for the reports made meanwhile."""

    __slots__ = ("line", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.line: int | None = None

    def __str__(self) -> str:
        return f"{self.name}:{self.line}" if self.line is not None else self.name


def replay(catalog: Catalog, trace_path: str, sink: Sink, tz: tzinfo, report: Report,
           until: float | None = None, speed: float | None = None,
           show_contexts: bool = False, tick: Tick | None = None,
           sleep: Callable[[float], None] = time.sleep,
           wall_clock: Callable[[], float] = time.monotonic,
           max_instances: int = MAX_PARTITION_INSTANCES,
           trace_name: str | None = None, fused: bool | None = None,
           early_drop: bool | None = None) -> ReplayStats:
    """Replay a trace; `sleep` and `wall_clock` are what --speed waits on (tests fake them).
    `trace_name` is what reports call the trace (default: its path; STDIN_NAME for stdin).

    With a tick hook, events are counted per type in `stats.events_by_type` (without
    one, they are not counted at all).  `max_instances`: the live instances one
    partition context may have (see cep.runtime.contexts.PartitionRuntime).

    `fused`: without a tick hook or `speed`, the usual lines are read the fused way
    (cep.adapters.fused; None: unless CEP_FUSED=0); `early_drop`: the engine leaves out
    events nothing can use (cep.runtime.screen; None: unless CEP_EARLY_DROP=0).  Neither
    changes anything the replay makes (tests compare).
    """
    stats = ReplayStats()
    bus = BusMapping.from_catalog(catalog, tz)
    reader = TraceReader(trace_path, tz, report=report, name=trace_name)
    where = _Where(reader.name)
    engine = Engine(catalog, sink, tz, warn=lambda message: report(f"{where}: {message}"),
                    show_contexts=show_contexts, max_instances=max_instances,
                    early_drop=early_drop)
    reporter = BadMessageReporter(lambda message: report(f"{where}: {message}"))
    # payload paths that did not resolve: `FILE:LINE: TOPIC: Type.attr: path P missing`
    paths = BadMessageReporter(lambda message: report(f"{where}: {message}"), label="")
    missing = bus.missing
    ticker = _Ticker(tick, engine, stats, reader, bus) if tick is not None else None
    by_type = stats.events_by_type if ticker is not None else None
    pacer = Pacer(speed, sleep, wall_clock, on_wait=ticker) if speed else None
    if ticker is not None:
        ticker.pacer = pacer
    if fused is None:
        fused = os.environ.get("CEP_FUSED", "1") != "0"
    take = fused_reading(bus, engine, where) \
        if fused and ticker is None and pacer is None else None
    started = time.perf_counter()
    for record in reader.records_of(take):
        stats.lines += 1
        where.line = record.line
        if ticker is not None and not stats.lines % TICK_EVERY:
            ticker()
        if pacer is not None:
            _paced_advance(engine, pacer, record.ts)
        if isinstance(record, TraceClock):  # a start mark starts the clock, a stop mark
            stats.clock_marks += 1            # moves it (the reader gives nothing after)
            engine.advance(record.ts)
            continue
        try:
            if isinstance(record, TraceEvent):
                events = [bus.make_event(record.type, record.ts, record.attrs)]
            else:
                # the record as payload: its bytes are made only if a decoder needs them;
                # a TIMESTAMP FROM more than a day after the line's time is bad, as live
                events, problems = bus.decode(record.topic, record, record.ts, record.value,
                                              record.ts)
                # each type that could not read the message is a bad message of its own;
                # the other types' events go on
                for problem in problems:
                    stats.bad_messages += 1
                    reporter.bad(record.topic, problem.reason, record.ts)
                if missing:  # declared paths that did not resolve: the events go on
                    paths.bad(record.topic, "; ".join(map(str, missing)), record.ts)
                if not events:
                    if problems:
                        stats.bad_message_lines += 1
                    else:
                        stats.count_unmatched(record.topic)
                    # a line that makes no event is still an instant the clock reaches
                    engine.advance(record.ts)
                    continue
        except BadMessage as exc:  # the whole message (or trace event) is bad
            stats.bad_messages += 1
            stats.bad_message_lines += 1
            topic = record.type if isinstance(record, TraceEvent) else record.topic
            reporter.bad(topic, exc.reason, record.ts)
            engine.advance(record.ts)
            continue
        stats.event_lines += 1
        for event in events:
            stats.events += 1
            if by_type is not None:
                by_type[event.type] = by_type.get(event.type, 0) + 1
            engine.process(event)
    took = reader.taken  # lines the fused reading took: each a line, a message and an event
    stats.lines += took
    stats.event_lines += took
    stats.events += took
    where.line = None  # after the last line (or the stop mark): timers up to --until
    if until is not None and (until > engine.now or not engine.started):
        if pacer is not None:
            _paced_advance(engine, pacer, until)
        engine.advance(until)
    stats.seconds = time.perf_counter() - started
    stats.bad_lines = reader.skipped
    counted = engine.stats
    stats.outputs = counted["outputs"]
    stats.rule_errors = counted["rule_errors"]
    stats.action_errors = counted["action_errors"]
    stats.nulled = counted["nulled"]
    stats.refused_keys = counted["refused_keys"]
    stats.after_stop = reader.after_stop
    stats.total_lines = reader.lines_read
    stats.blank_lines = reader.blank
    stats.missing_paths = bus.missing_paths()
    if tick is not None:
        stats.clock = engine.now
        tick(engine, stats, True)
    return stats


def _paced_advance(engine: Engine, pacer: Pacer, ts: float) -> None:
    """With --speed, let timers fire at their own (paced) time before the next event."""
    while engine.started:
        deadline = engine.timers.next_deadline()
        if deadline is None or deadline > ts:
            break
        pacer.wait_until(deadline)
        engine.advance(deadline)
    pacer.wait_until(ts)
