"""What makes a live run survive a kill: the journal, checkpoints and recovery.

The engine thread of adapters/live.py works in batches: it takes the messages waiting,
and for each one that is new writes it to the journal (with the time the engine takes
it at) and runs it; then it syncs the journal and only then acknowledges the batch's
QoS 1/2 messages to the broker (paho's manual acknowledgements).  A message is thus
in the journal or still the broker's, which sends it again after a reconnect; one it
sends again (DUP) that the journal already holds is acknowledged and not taken twice
(`admit`).

Outputs are numbered in the order the engine makes them, which the same inputs give
again.  The journal notes when output n was written out (`p`) and when the broker
acknowledged its action (`a`).  At start-up the checkpoint is restored, and the
journal's messages are run again: an output already written is not written again, an
action already acknowledged is not sent again.  Actions made before the checkpoint
and not acknowledged then are in the checkpoint (`pending`) and sent again.  Then the
clock moves to now, so the timers that fell due while cep was down fire, each at its
due time, before any new message.

An output written, or an action handed to paho, in the instant before a kill and not
yet noted, is made again after the restart: those are the duplicates a kill can cause.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cep.adapters.mqtt import MqttConnection, ReceivedMessage
from cep.adapters.state import JournalWriter, Saved, StateError, StateFolder
from cep.adapters.trace import TraceWriter
from cep.language.diagnostics import plural
from cep.runtime.engine import Engine
from cep.runtime.output import Output, format_ts
from cep.runtime.snapshot import StateFormatError

RECENT_KEYS = 4096           # messages remembered to know a redelivery
CHECKPOINT_EVERY = 60.0      # seconds between checkpoints (wall clock) ...
CHECKPOINT_ENTRIES = 20_000  # ... or journal entries, whichever comes first
SYNC_EVERY = 0.005           # seconds: acknowledgements wait at most this long for a sync
SYNC_MESSAGES = 16           # ... or until this many wait (mosquitto sends 20 unacknowledged)

Report = Callable[[str], None]
Clock = Callable[[], float]


def message_key(mid: int, topic: str, payload: bytes) -> int:
    """A redelivery has the same packet id, topic and payload as the first delivery."""
    return zlib.crc32(payload, zlib.crc32(topic.encode("utf-8", "replace"), mid))


@dataclass
class Restored:
    """What start-up found, for the report and the view."""

    instances: int = 0
    partial_matches: int = 0
    timers: int = 0
    overdue: int = 0
    saved_at: float | None = None
    journal: int = 0          # messages run again from the journal
    pending: int = 0          # actions sent again (not acknowledged before the stop)
    torn: bool = False

    fresh: bool = False       # --fresh: what the folder held was dropped

    def brief(self) -> str:
        """For the view: `restored 3 instances, 41 waiting, 7 timers`."""
        if self.saved_at is None:
            return "state: fresh" if self.fresh else "state: new"
        return (f"restored {plural(self.instances, 'instance')}, {self.partial_matches:,} "
                f"waiting, {plural(self.timers, 'timer')}")

    def describe(self, show_time: Callable[[float], str]) -> str:
        if self.saved_at is None:
            return ("state: started empty (--fresh)" if self.fresh else
                    "state: nothing saved yet, starting empty")
        text = (f"restored {plural(self.instances, 'context instance')}, "
                f"{plural(self.partial_matches, 'partial match', 'partial matches')}, "
                f"{plural(self.timers, 'timer')} ({self.overdue} overdue) from "
                f"{show_time(self.saved_at)}, journal {plural(self.journal, 'message')}")
        if self.pending:
            text += f", {plural(self.pending, 'unacknowledged action')} sent again"
        if self.torn:
            text += " (its last entry was cut off by the stop: the broker sends it again)"
        return text


class DurableRun:
    """The state folder's side of a live run (see the module docstring)."""

    def __init__(self, folder: StateFolder, engine: Engine, connection: MqttConnection,
                 clock: Clock, report: Report, record: TraceWriter | None = None,
                 fresh: bool = False, every: float = CHECKPOINT_EVERY,
                 entries: int = CHECKPOINT_ENTRIES) -> None:
        self.folder = folder
        self.engine = engine
        self.connection = connection
        self.clock = clock
        self.report = report
        self.record = record
        self.fresh = fresh
        self.every = every
        self.entries = entries
        self.next_output = 0
        self.printed_before = -1  # from the journal, while recovering: outputs up to it
        #                           were written out before the restart
        self.acknowledged_before: set[int] = set()
        self.pending: dict[int, Output] = {}        # actions sent, not yet acknowledged
        # paho's thread notes acknowledgements as they come (so a kill loses few): the
        # pending actions and the journal (swapped by a checkpoint) are shared with it
        self.lock = threading.Lock()
        self.recent: deque[int] = deque(maxlen=RECENT_KEYS)
        self.recent_set: dict[int, int] = {}        # key -> how many in `recent`
        self.to_ack: list[ReceivedMessage] = []
        self.synced = 0.0  # (monotonic) when the journal was last synced
        self.journal: JournalWriter | None = None
        self.last_checkpoint = 0.0
        self.redelivered = 0
        self.checkpoints = 0
        self.restored = Restored()

    # ---------------------------------------------------------------- start-up
    def begin(self, take: Callable[[ReceivedMessage, float], None]) -> Restored:
        """Lock and read the folder; restore the engine and run the journal again through
        `take(message, ts)`, or start the engine empty; then checkpoint.  StateError when
        the folder cannot be used."""
        folder = self.folder
        folder.lock()
        if self.fresh:
            folder.clear()
            self.restored.fresh = True
        saved = folder.load()
        now = self.clock()
        if saved is None:
            self.engine.start(now)
            if self.record is not None:  # nothing to go on from: the recording starts anew
                self.record.cut(0)
                self.record.start(now)
        else:
            self._restore(saved, take)
        self.checkpoint()
        return self.restored

    def _restore(self, saved: Saved, take: Callable[[ReceivedMessage, float], None]) -> None:
        body, engine, restored = saved.body, self.engine, self.restored
        try:
            engine.restore(body.get("engine"))
            outputs = body.get("outputs")
            if type(outputs) is not int:
                raise StateFormatError("no output count")
            self.next_output = outputs
            pending = body.get("pending") or []
            recent = body.get("recent") or []
            if type(pending) is not list or type(recent) is not list:
                raise StateFormatError("the pending actions or recent messages are damaged")
            for key in recent:
                self._remember(int(key))
            pending_rows = [(int(n), record) for n, record in pending]
        except (StateFormatError, TypeError, ValueError, KeyError, IndexError) as exc:
            raise StateError(f"{self.folder.path / 'checkpoint.json'}: damaged: {exc}; the "
                             f"saved state is lost; --fresh starts this folder empty") from exc
        restored.saved_at = saved.written
        restored.torn = saved.journal.torn
        record_at = body.get("record_at")
        if self.record is not None and type(record_at) is int:
            self.record.cut(record_at)
        elif self.record is not None:
            self.report("--record: the saved state is from a run that did not record "
                        "into this file: replaying it alone will not give this run's output")
        journal = saved.journal
        for number, record in pending_rows:  # made before the checkpoint: send again
            if number not in journal.acknowledged and isinstance(record, dict) \
                    and record.get("kind") == "publish":
                self._send(number, record)
                restored.pending += 1
        self.printed_before = journal.printed
        self.acknowledged_before = journal.acknowledged
        with self.lock:
            self.journal = self.folder.open_journal()
        for message in journal.messages:
            received = ReceivedMessage(message.topic, message.payload, message.qos,
                                       message.retain, message.ts, None, message.mid,
                                       message.dup)
            self._remember(message_key(message.mid, message.topic, message.payload))
            take(received, message.ts)
            restored.journal += 1
        # what the engine holds now, before the timers that fell due meanwhile fire
        now = self.clock()
        restored.instances = engine.open_instances()
        restored.partial_matches = sum(engine.partial_matches().values())
        restored.timers = engine.timers.pending()
        restored.overdue = sum(1 for entry in engine.timers.heap
                               if entry[0] <= now and not entry[3].cancelled)
        engine.advance(max(now, engine.now))  # what fell due while down, at its own time
        self.printed_before = -1
        self.acknowledged_before = set()

    # ---------------------------------------------------------------- messages
    def _remember(self, key: int) -> None:
        recent = self.recent
        if len(recent) == recent.maxlen:
            old = recent[0]
            left = self.recent_set[old] - 1
            if left:
                self.recent_set[old] = left
            else:
                del self.recent_set[old]
        recent.append(key)
        self.recent_set[key] = self.recent_set.get(key, 0) + 1

    def admit(self, message: ReceivedMessage) -> bool:
        """Whether a message is new (a redelivery of one the journal holds is not); either
        way it is acknowledged with the batch."""
        if message.qos > 0:
            self.to_ack.append(message)
        if message.dup and message_key(message.mid, message.topic,
                                       message.payload) in self.recent_set:
            self.redelivered += 1
            return False
        return True

    def acknowledge_only(self, message: ReceivedMessage) -> None:
        """A message that is not taken in (retained, discovery's own): acknowledged with
        the batch, journaled never."""
        if message.qos > 0:
            self.to_ack.append(message)

    def taking(self, message: ReceivedMessage, ts: float) -> None:
        """The message is taken in at `ts`: in the journal first."""
        assert self.journal is not None
        self._remember(message_key(message.mid, message.topic, message.payload))
        self.journal.message(ts, message.topic, message.payload, message.qos,
                             message.retain, message.mid, message.dup)

    def batch_done(self, final: bool = False) -> None:
        """The batch is journaled: to the disk, then the broker may forget it.

        A sync costs about 70 µs of CPU and 250 µs here: batches are synced together, at
        most every SYNC_EVERY seconds (or once SYNC_MESSAGES wait, under the broker's
        in-flight window, which stops its deliveries until it has acknowledgements);
        `sync_due` says when the engine thread must call again.  `final`: sync now."""
        if self.failed is not None:
            raise self.failed
        waiting = self.to_ack
        if waiting and (final or len(waiting) >= SYNC_MESSAGES
                        or time.monotonic() - self.synced >= SYNC_EVERY):
            self.sync()
        elif self.journal is not None:
            self.journal.flush()  # the notes of the outputs written meanwhile
        if self.journal is not None and (self.journal.entries >= self.entries
                                         or self.clock() - self.last_checkpoint >= self.every):
            self.checkpoint()

    def sync(self) -> None:
        """The journal to the disk, then the acknowledgements of what it now holds."""
        assert self.journal is not None
        self.journal.sync()
        self.synced = time.monotonic()
        ack = self.connection.ack
        for message in self.to_ack:
            ack(message)
        self.to_ack.clear()

    def sync_due(self) -> float | None:
        """Seconds until acknowledgements wait too long (None: none waits)."""
        if not self.to_ack:
            return None
        return max(0.0, self.synced + SYNC_EVERY - time.monotonic())

    # ---------------------------------------------------------------- outputs
    def output(self, record: Output) -> bool:
        """Number an output record and send its action, unless the journal says the
        broker had it before the restart; whether to write the record out (not when it
        was written before the restart)."""
        number = self.next_output
        self.next_output = number + 1
        if record["kind"] == "publish" and number not in self.acknowledged_before:
            self._send(number, record)
        return number > self.printed_before

    def written(self, record: Output) -> None:
        """The last numbered record has been written out."""
        if self.journal is not None:
            self.journal.printed(self.next_output - 1)

    def _send(self, number: int, record: Output) -> None:
        with self.lock:
            self.pending[number] = record
        if not self.sender(record, lambda: self._acknowledged(number)):
            with self.lock:  # refused, or QoS 0 while disconnected: gone
                self.pending.pop(number, None)

    def _acknowledged(self, number: int) -> None:
        """The broker has output `number`'s action (paho's thread, or ours for QoS 0)."""
        with self.lock:
            if self.pending.pop(number, None) is not None and self.journal is not None:
                try:
                    self.journal.acknowledged(number)
                except StateError as exc:  # (the engine thread stops at its next batch)
                    self.failed = exc

    failed: StateError | None = None  # a journal write on paho's thread failed

    # set by the runner: sender(record, on_done) publishes an action record, and says
    # whether it was sent (on_done: the broker has it)
    sender: Callable[[Output, Callable[[], None]], bool]

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self, record_at: int | None = None) -> int:
        """Write a checkpoint now (between two inputs); its size in bytes."""
        if self.to_ack:  # (what waits is in the journal being replaced: sync it first)
            self.sync()
        if self.record is not None and record_at is None:
            record_at = self.record.size()
        engine = self.engine.snapshot()
        with self.lock:  # (no acknowledgement is noted while the journal is swapped)
            body = {"engine": engine, "outputs": self.next_output,
                    "pending": [[n, record] for n, record in self.pending.items()],
                    "recent": list(self.recent), "record_at": record_at}
            size = self.folder.checkpoint(body, self.clock())
            self.journal = self.folder.journal
        self.last_checkpoint = self.clock()
        self.checkpoints += 1
        return size

    def close(self, record_at: int | None = None) -> None:
        """An orderly end: the last checkpoint (the journal is then empty), and the folder
        unlocked."""
        try:
            self.checkpoint(record_at)
        finally:
            self.folder.release()

    def abandon(self) -> None:
        """The run ends without a checkpoint (it failed): the journal keeps what it has."""
        self.folder.release()

    def show(self) -> str:
        """`state DIR: restored ...`, for stderr."""
        described = self.restored.describe(lambda ts: format_ts(ts, self.engine.tz))
        return f"state {self.folder.path}: {described.removeprefix('state: ')}"
