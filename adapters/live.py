"""Running rules live against an MQTT broker (`cep run`) and recording bus traffic (`cep record`).

Threads: paho's network thread only stamps each received message with the
clock and puts it in the inbox; one engine thread (the caller's) takes messages
out in arrival order, decodes them through the same bus mapping as replay, and
runs the engine.  So the engine stays single-threaded and, for a given arrival
order, deterministic.  While no message comes, the engine thread sleeps until
the next timer is due and then advances the engine to it: timers fire on the
real clock.

The inbox is bounded (`INBOX_SIZE` messages, `cep run --inbox N`): when it is
full, paho's network thread waits in its on_message callback until the engine
thread has taken one out, so it reads no more from the socket, and the backlog
stays in the kernel's TCP buffers and the broker (which queues QoS 1/2 messages
for a subscriber, up to its own limits, and drops QoS 0 ones as it sees fit)
instead of in cep's memory.  This cannot deadlock: the engine thread never waits
for the network thread while running.  Its publishes only append to paho's
outgoing queue (under paho's own short locks, none of which the network thread
holds while it waits in on_message) and wake the network thread through a
non-blocking socket pair, so they go out as soon as it runs again; and the
network thread waits only for a slot that the engine thread, which never
stops taking messages, frees.  At the end the inbox is closed *before* the
connection waits for its last acknowledgements: from then on the network thread
no longer waits (it drops what still arrives), so it is free to read those
acknowledgements and to end.  The inbox's current and peak size are in the
view's input panel and the summary.

The clock is passed in (real time by default; tests may give their own): the
engine itself never reads it.

A recording (`cep run --record`, `cep record`) starts with a start mark at the run's
start, before any message, and ends with a stop mark when the run stops in order
(a stop signal, `stop()`, the end of `--duration`, the connection giving up).  For
`cep run --record` the stop mark is at the engine's clock once it has been moved to
the stop's wall time (firing the timers due by then): replaying the recording then
gives the live run's output lines, timers after the last message included.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, Protocol

from cep.adapters.badmessages import BadMessageReporter
from cep.adapters.bus import BadMessage, BusMapping, PathCount
from cep.adapters.durable import DurableRun
from cep.adapters.ha_discovery import HaDiscovery
from cep.adapters.jsonlib import dumps_compact
from cep.adapters.mqtt import INBOX_SIZE, BrokerSettings, MqttConnection, ReceivedMessage
from cep.adapters.state import StateError, StateFolder
from cep.adapters.trace import TraceWriter
from cep.language.catalog import Catalog
from cep.language.diagnostics import plural
from cep.runtime.engine import Engine
from cep.runtime.limits import MAX_PARTITION_INSTANCES
from cep.runtime.output import Output, Sink

Report = Callable[[str], None]
Clock = Callable[[], float]

IDLE_WAKE = 0.5  # seconds: the engine thread looks at stop requests and the view this often
BATCH = 256      # messages taken from the inbox in one go (journaled, synced, acknowledged)


class _Stop:
    """Put in the inbox to end the run (from a signal handler: SimpleQueue.put is reentrant).

    `reason` is set when the connection gave up (the run then ends with exit status 1)."""

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason


STOP = _Stop()


class Inbox:
    """Messages from paho's network thread to the engine thread, at most `size` waiting.

    `put_message` (paho's thread) waits while `size` messages wait; `put` (stop requests,
    from any thread or a signal handler) never waits.  `get`/`get_nowait` hand out items in
    order and free a message's slot.  After `close()` nothing waits any more: messages that
    still come are dropped (counted in `dropped`).  See the module docstring."""

    def __init__(self, size: int = INBOX_SIZE) -> None:
        if size < 1:
            raise ValueError("the inbox holds at least one message")
        self.size = size
        self.peak = 0
        self.dropped = 0
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._slots = threading.Semaphore(size)
        self._closed = False
        # Each counter has one writer: messages put (the network thread), taken (the engine).
        self._put = 0
        self._taken = 0

    def put_message(self, message: ReceivedMessage) -> None:
        if not self._closed:
            self._slots.acquire()  # a slot, or close() waking us
        if self._closed:
            self.dropped += 1
            return
        self._queue.put(message)
        self._put += 1
        waiting = self._put - self._taken
        if waiting > self.peak:
            self.peak = waiting

    def put(self, item: object) -> None:
        self._queue.put(item)

    def get(self, timeout: float | None = None) -> object:
        """The next item (queue.Empty after `timeout` seconds without one)."""
        return self._took(self._queue.get(timeout=timeout))

    def get_nowait(self) -> object:
        return self._took(self._queue.get_nowait())

    def _took(self, item: object) -> object:
        if isinstance(item, ReceivedMessage):
            self._taken += 1
            self._slots.release()
        return item

    def close(self) -> None:
        """No more waiting: a network thread waiting for a slot goes on (and drops)."""
        self._closed = True
        self._slots.release(self.size + 1)

    def __len__(self) -> int:
        """Messages waiting (not counting a stop request)."""
        return max(0, self._put - self._taken)


class LiveTicker(Protocol):
    """What the engine thread calls after each batch of work (the terminal view)."""

    def tick(self, engine: Engine, status: LiveStats) -> None: ...


@dataclass
class LiveStats:
    broker: str = ""
    state: str = "connecting"
    messages: int = 0           # messages received (retained ones included)
    retained_ignored: int = 0
    events: int = 0
    bad_messages: int = 0
    unmatched: int = 0
    outputs: int = 0
    actions: int = 0            # PUBLISH actions handed to the broker
    action_failures: int = 0    # QoS 0 actions dropped while disconnected
    actions_unsent: int = 0     # QoS 1/2 actions still queued when the run ended (lost)
    actions_refused: int = 0    # not sent: a topic or size the broker would refuse
    reconnects: int = 0
    started: float = 0.0
    inbox: int = 0              # messages waiting for the engine thread (at the last tick)
    inbox_peak: int = 0
    inbox_size: int = INBOX_SIZE
    problem: str = ""           # the connection's last failure, while not connected
    gave_up: str | None = None  # why the connection stopped reconnecting (exit status 1)
    events_by_type: dict[str, int] = field(default_factory=dict)
    unmatched_topics: dict[str, int] = field(default_factory=dict)
    # declared PAYLOAD paths that did not resolve, with in how many of their type's messages
    # (brought up to date at each tick and at the end)
    missing_paths: list[PathCount] = field(default_factory=list)
    recorded: int = 0                 # messages written to --record
    stopped_at: float | None = None   # the stop mark written to --record (an orderly end)
    restored: str = ""                # what start-up restored from the state folder
    restored_brief: str = ""          # the same, short (for the view)
    redelivered: int = 0              # messages the broker sent again that were taken before

    def path_lines(self) -> list[str]:
        """One line per declared PAYLOAD path that did not resolve, printed after the
        summary: `WasherPower.power: path ENERGY.Power missing in 12 of 12 messages`."""
        return [str(count) for count in self.missing_paths]

    def summary(self, elapsed: float) -> str:
        rate = self.messages / elapsed if elapsed > 0 else 0.0
        published = self.actions - self.actions_unsent
        return (f"live: {plural(self.messages, 'message')} ({rate:,.1f}/s), "
                f"{plural(self.events, 'event')}, {self.retained_ignored} retained ignored, "
                f"{plural(self.bad_messages, 'bad message')}, {self.unmatched} unmatched, "
                f"{plural(self.outputs, 'output')}, "
                f"{plural(published, 'action published', 'actions published')} "
                f"({self.action_failures} dropped"
                + (f", {self.actions_unsent} never sent" if self.actions_unsent else "")
                + (f", {self.actions_refused} not sent: refused topic or size"
                   if self.actions_refused else "")
                + f"), {plural(self.reconnects, 'reconnect')}"
                + (f", {plural(self.redelivered, 'redelivery', 'redeliveries')} of messages "
                   f"already taken, skipped" if self.redelivered else "")
                + ", inbox peak "
                f"{self.inbox_peak:,} of {self.inbox_size:,}, in {elapsed:.1f} s")


def payload_bytes(payload: Any) -> bytes:
    """An action's payload as sent: a string as its UTF-8 text, anything else as JSON."""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return dumps_compact(payload)


@contextmanager
def stop_on_signals(inbox: Inbox) -> Iterator[None]:
    """SIGINT and SIGTERM end the run cleanly (from the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum: int, frame: object) -> None:
        inbox.put(STOP)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class LiveRunner:
    """The rules against a broker: see the module docstring."""

    def __init__(self, catalog: Catalog, settings: BrokerSettings, sink: Sink, tz: tzinfo,
                 report: Report, clock: Clock = time.time, take_retained: bool = False,
                 show_contexts: bool = False, record: TraceWriter | None = None,
                 ticker: LiveTicker | None = None, idle_wake: float = IDLE_WAKE,
                 inbox_size: int = INBOX_SIZE,
                 max_instances: int = MAX_PARTITION_INSTANCES,
                 ha_discovery: str | None = None, state: StateFolder | None = None,
                 fresh: bool = False) -> None:
        """`ha_discovery`: the Home Assistant discovery prefix, to announce the rules and
        contexts as entities (adapters/ha_discovery.py); None for none.  `state`: the
        state folder that makes the run survive restarts (adapters/durable.py); `fresh`:
        start it empty."""
        self.report = report
        self.idle_wake = idle_wake
        self.clock = clock
        self.take_retained = take_retained
        self.record = record
        self.ticker = ticker
        self.inbox = Inbox(inbox_size)
        self.bus = BusMapping.from_catalog(catalog, tz)
        self.stats = LiveStats(broker=settings.display, inbox_size=inbox_size)
        # Home Assistant discovery sees every record, context-start/end lines included
        # (the engine makes them for it; they reach the output only with show_contexts).
        self.show_contexts = show_contexts
        self.discovery: HaDiscovery | None = None
        filters = self.bus.subscriptions()
        if ha_discovery is not None:
            self.discovery = HaDiscovery(catalog, settings.client_id, settings.status_topic,
                                         self._discovery_send, tz, ha_discovery)
            filters = [*filters, self.discovery.topic]
        self.connection = MqttConnection(settings, filters,
                                         self.inbox.put_message, report, clock,
                                         on_give_up=self._gave_up,
                                         manual_ack=state is not None)
        self._sink = sink
        self.engine = Engine(catalog, self._emit, tz, warn=report,
                             show_contexts=show_contexts or self.discovery is not None,
                             max_instances=max_instances)
        self.durable: DurableRun | None = None
        if state is not None:
            self.durable = DurableRun(state, self.engine, self.connection, clock, report,
                                      record, fresh)
            self.durable.sender = self._publish
        self.reporter = BadMessageReporter(report)
        # payload paths that did not resolve: `TOPIC: Type.attr: path P missing`
        self.paths = BadMessageReporter(report, label="")

    def _discovery_send(self, topic: str, payload: bytes, retain: bool) -> None:
        """Discovery's messages: QoS 1 into paho's queue, not counted as actions."""
        self.connection.client.publish(topic, payload, qos=1, retain=retain)

    def _emit(self, record: Output) -> None:
        if self.discovery is not None:
            self.discovery.output(record)
            if not self.show_contexts and record["kind"] in ("context-start", "context-end"):
                self.engine.stats["outputs"] -= 1  # made for discovery only: not an output
                return
        durable = self.durable
        if durable is not None:
            if not durable.output(record):  # (it sends the action)
                return  # written out before the restart
            self.stats.outputs += 1
            self._sink(record)
            durable.written(record)
            return
        if record["kind"] == "publish":
            self._publish(record)
        self.stats.outputs += 1
        self._sink(record)

    def _publish(self, record: Output, on_done: Callable[[], None] | None = None) -> bool:
        """An action to the broker; whether it was sent (`on_done`: the broker has it)."""
        connection = self.connection
        refused = connection.refused
        sent = connection.publish(record["topic"], payload_bytes(record["payload"]),
                                  record["qos"], record["retain"], on_done)
        if sent:
            self.stats.actions += 1
        elif connection.refused != refused:
            self.stats.actions_refused += 1
        else:
            self.stats.action_failures += 1
        return sent

    def stop(self) -> None:
        """Ask the run to end (from any thread)."""
        self.inbox.put(STOP)

    def _gave_up(self, reason: str) -> None:
        """The connection stopped reconnecting (paho's thread): end the run, exit status 1."""
        self.inbox.put(_Stop(reason))

    def run(self, install_signals: bool = True) -> LiveStats:
        """Connect, run until stopped (SIGINT/SIGTERM or `stop()`), then close cleanly.

        The signal handlers are in place before anything connects: a stop signal at any
        moment of the run (connecting, subscribing, listening) ends it the same clean way.
        """
        stats = self.stats
        guard = stop_on_signals(self.inbox) if install_signals else _no_guard()
        with guard:
            stats.started = self.clock()
            durable = self.durable
            if durable is not None:  # the saved state, or an empty one (StateError)
                restored = durable.begin(self._process)
                stats.restored = durable.show()
                stats.restored_brief = restored.brief()
                self.report(stats.restored)
            else:
                if self.record is not None:  # before any message
                    self.record.start(stats.started)
                self.engine.start(stats.started)
            if self.discovery is not None:  # queued in paho until connected
                self.discovery.start()
            in_order = state_failed = False
            try:
                self.connection.start()
                try:
                    stats.gave_up = self._loop()
                    in_order = True
                except StateError as exc:  # the journal cannot be written (a full disk)
                    stats.gave_up = str(exc)
                    state_failed = True
            finally:
                # No more waiting on paho's thread from here: it must be free to read the
                # acknowledgements close() waits for, and to end.
                self.inbox.close()
                try:
                    if not state_failed:
                        self._drain_waiting()
                    if in_order:
                        self._stop_clock()
                finally:  # even when output cannot be written: offline, disconnected
                    self.connection.close()
                    if durable is not None:
                        self._close_state(in_order)
                    self.stats.actions_unsent = self.connection.unsent
                    if stats.gave_up is None:
                        stats.gave_up = self.connection.gave_up
                    self._tick()
        return stats

    def _loop(self) -> str | None:
        """Until a stop request; the reason when the connection gave up.

        Messages are taken in batches of what is waiting (at most BATCH): with a state
        folder, each batch is journaled and synced before the broker gets its
        acknowledgements (adapters/durable.py)."""
        inbox, engine, clock, idle = self.inbox, self.engine, self.clock, self.idle_wake
        durable = self.durable
        while True:
            deadline = engine.timers.next_deadline()
            wait = idle if deadline is None else min(idle, max(0.0, deadline - clock()))
            if durable is not None:
                due = durable.sync_due()  # acknowledgements waiting for the journal's sync
                if due is not None:
                    wait = min(wait, due)
            try:
                item = inbox.get(timeout=wait)
            except queue.Empty:
                # Quiet bus: event time is wall time, so the engine's clock moves on with it,
                # firing what is due (and the view's times keep moving).
                engine.advance(clock())
                if durable is not None:
                    durable.batch_done()
                self._tick()
                continue
            stop: _Stop | None = None
            for _ in range(BATCH):
                if isinstance(item, _Stop):
                    stop = item
                    break
                if isinstance(item, ReceivedMessage):
                    self._take(item)
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    break
            else:
                if isinstance(item, ReceivedMessage):
                    self._take(item)
                elif isinstance(item, _Stop):
                    stop = item
            if durable is not None:
                durable.batch_done()
            if stop is not None:
                return stop.reason
            if self.ticker is not None:
                self._tick()  # cheap: the view draws only when a frame is due

    def _stop_clock(self) -> None:
        """An orderly end: the engine's clock to the wall clock's (the timers due by then
        fire, their actions still go out), and the stop mark at it in the recording."""
        engine = self.engine
        engine.advance(self.clock())
        if self.record is not None:
            self._record_at = self.record.size()  # (a restart goes on from before the mark)
            self.record.stop(engine.now)
            self.stats.stopped_at = engine.now

    _record_at: int | None = None

    def _close_state(self, in_order: bool) -> None:
        """The last checkpoint after an orderly end; after a failure, the journal as it is."""
        durable = self.durable
        assert durable is not None
        self.stats.redelivered = durable.redelivered
        if in_order:
            durable.close(self._record_at)
        else:
            durable.abandon()

    def _drain_waiting(self) -> None:
        """Messages that arrived before the stop are still processed (the inbox is closed:
        what comes after is not)."""
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, ReceivedMessage):
                self._take(item)
        if self.durable is not None:
            self.durable.batch_done(final=True)

    def _tick(self) -> None:
        stats, connection = self.stats, self.connection
        stats.state = connection.state
        stats.problem = connection.problem or ""
        stats.reconnects = max(0, connection.connects - 1)
        stats.inbox = len(self.inbox)
        stats.inbox_peak = self.inbox.peak
        if self.paths.total:  # some declared payload path did not resolve
            stats.missing_paths = self.bus.missing_paths()
        if self.ticker is not None:
            self.ticker.tick(self.engine, stats)

    def _take(self, message: ReceivedMessage) -> None:
        durable = self.durable
        if self.discovery is not None and self.discovery.receive(message):
            if durable is not None:
                durable.acknowledge_only(message)
            return  # discovery's own topic
        stats = self.stats
        stats.messages += 1
        if message.retain and not self.take_retained:
            stats.retained_ignored += 1  # device state from before we subscribed, not an event
            if durable is not None:
                durable.acknowledge_only(message)
            return
        # Stamped on paho's thread: never earlier than what the engine has already seen.
        ts = max(message.arrival, self.engine.now)
        if durable is not None:
            if not durable.admit(message):
                return  # sent again by the broker, and taken before
            if message.bad_topic is None:
                durable.taking(message, ts)
        self._process(message, ts)

    def _process(self, message: ReceivedMessage, ts: float) -> None:
        """A message taken in at `ts` (also one run again from the journal)."""
        stats = self.stats
        if self.record is not None:
            self.record.message(ts, message.topic, message.payload)
            stats.recorded += 1
        if message.bad_topic is not None:
            stats.bad_messages += 1
            self.reporter.bad(message.topic, message.bad_topic, ts)
            return
        try:
            events, problems = self.bus.decode(message.topic, message.payload, ts, ahead_of=ts)
        except BadMessage as exc:  # the whole message is bad
            stats.bad_messages += 1
            self.reporter.bad(message.topic, exc.reason, ts)
            return
        # each type that could not read the message is a bad message of its own; the other
        # types' events go on
        for problem in problems:
            stats.bad_messages += 1
            self.reporter.bad(message.topic, problem.reason, ts)
        missing = self.bus.missing
        if missing:  # declared paths that did not resolve: the events go on, with nulls
            self.paths.bad(message.topic, "; ".join(map(str, missing)), ts)
        if not events:
            if problems:
                return
            stats.unmatched += 1
            stats.unmatched_topics[message.topic] = \
                stats.unmatched_topics.get(message.topic, 0) + 1
            return
        by_type = stats.events_by_type
        for event in events:
            stats.events += 1
            by_type[event.type] = by_type.get(event.type, 0) + 1
            self.engine.process(event)


@contextmanager
def _no_guard() -> Iterator[None]:
    yield


# ---------------------------------------------------------------------- recording


@dataclass
class RecordStats:
    messages: int = 0
    retained_ignored: int = 0
    inbox_peak: int = 0
    gave_up: str | None = None  # why the connection stopped reconnecting (exit status 1)

    def summary(self, path: str, elapsed: float) -> str:
        return (f"{path}: recorded {plural(self.messages, 'message')} in {elapsed:.1f} s "
                f"({self.retained_ignored} retained ignored, inbox peak {self.inbox_peak:,})")


def record(settings: BrokerSettings, filters: list[str], writer: TraceWriter, report: Report,
           duration: float | None = None, clock: Clock = time.time,
           take_retained: bool = False, install_signals: bool = True,
           on_ready: Callable[[MqttConnection], None] | None = None,
           inbox_size: int = INBOX_SIZE) -> RecordStats:
    """Write every message on `filters` to `writer` until the duration ends or a stop signal
    (or the connection gives up: `gave_up`).

    The trace starts with a start mark at the recording's start and, when the recording
    ends in order, ends with a stop mark: at the end of the duration, else at the stop
    (never before the last message).  Messages received before the stop are still
    written.  Lines are flushed one by one, so a killed recorder loses at most the line it
    was writing (and has no stop mark).
    """
    inbox = Inbox(inbox_size)
    connection = MqttConnection(settings, filters, inbox.put_message, report, clock,
                                on_give_up=lambda reason: inbox.put(_Stop(reason)))
    stats = RecordStats()
    guard = stop_on_signals(inbox) if install_signals else _no_guard()
    with guard:  # before connecting: a stop signal at any moment ends the recording cleanly
        started = clock()
        writer.start(started)
        end = started + duration if duration is not None else None
        last_ts = started

        def keep(item: ReceivedMessage) -> None:
            nonlocal last_ts
            if item.retain and not take_retained:
                stats.retained_ignored += 1
                return
            last_ts = max(last_ts, item.arrival)  # a trace never goes back in time
            writer.message(last_ts, item.topic, item.payload)
            stats.messages += 1

        in_order = False
        try:
            connection.start()
            if on_ready is not None:
                on_ready(connection)
            while True:
                wait = IDLE_WAKE if end is None else min(IDLE_WAKE, max(0.0, end - clock()))
                try:
                    item = inbox.get(timeout=wait)
                except queue.Empty:
                    if end is not None and clock() >= end:
                        break
                    continue
                if isinstance(item, _Stop):
                    stats.gave_up = item.reason
                    break
                if not isinstance(item, ReceivedMessage):
                    continue
                if end is not None and item.arrival > end:
                    break
                keep(item)
            in_order = True
        finally:
            inbox.close()  # paho's thread waits no more: free to end (see the module doc)
            try:
                if in_order:
                    # what was received before the stop is still written (within --duration)
                    while True:
                        try:
                            item = inbox.get_nowait()
                        except queue.Empty:
                            break
                        if isinstance(item, ReceivedMessage) and \
                                (end is None or item.arrival <= end):
                            keep(item)
                    stop = max(last_ts, clock())
                    writer.stop(stop if end is None else min(stop, end))
            finally:
                connection.close()
                stats.inbox_peak = inbox.peak
                if stats.gave_up is None:
                    stats.gave_up = connection.gave_up
    return stats
