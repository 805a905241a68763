"""The homes of one partition, each run as if it had an engine of its own.

A partition takes its messages in stream order (`take`, `tick`, `rules_changed`).  Each
home has its own engine, built from its own rule set (the shared rules, plus the home's
own), fed only the home's messages, with topics relative to the home (`home/h1/door` is
`door` to home h1's engine): a home's outputs are those of `cep replay` of its messages
alone.  A message is taken as replay takes a trace line: the events it makes are
processed at their time (the stream's, or the payload's with TIMESTAMP FROM), and a
message that makes none moves the home's clock to its time.

**Time.**  Every message of the partition (any home's, or a tick) says that the stream
has reached its time: the homes whose next timer is due by then are advanced to it
first (a heap of the homes' next deadlines finds them without looking at the others).
Stream times only grow within a partition, so a home advanced this way sees its next
message at or after the time it was advanced to, and its timers fire at their own
deadlines in the same order as in a replay of its messages alone (with `--until` the
partition's last time).  Ticks are how a quiet partition's clock moves.

**Memory.**  A home is *live* (its engine in memory) or *parked*: its engine's snapshot
(cep.runtime.snapshot), compressed, a few hundred bytes for a home at rest, and its next
deadline.  `LiveHomes` keeps at most `capacity` homes live over all partitions of a
worker, parking the least recently used; `park_idle` parks those unused for a while.
A parked home is restored (a new engine, then `restore`) when it next gets a message
or its timer is due.

**Checkpoints.**  A home's record (`HomeRecord`) says which stream sequence its state has
seen last (`seen`), so a record written after the partition's checkpoint header (a worker
killed between the two) is taken as it is, and the home skips the messages it already
holds.  Outputs are numbered per home from the start of its rule set's state (`epoch`,
the stream sequence of the rule set's change, 0 for the first): the same messages give
the same numbers on any worker, which is what lets the stream drop an output sent again
after a failover (its message id).
"""

from __future__ import annotations

import heapq
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from cep.adapters.badmessages import BadMessageReporter, printable
from cep.adapters.bus import BadMessage, BusMapping
from cep.adapters.jsonlib import dumps_compact, loads
from cep.language.catalog import Catalog
from cep.runtime.engine import Engine
from cep.runtime.limits import MAX_PARTITION_INSTANCES
from cep.runtime.output import Output
from cep.runtime.snapshot import StateFormatError

Report = Callable[[str], None]
# (home, its output's number, the output, the stream sequence that caused it)
Emit = Callable[["Home", int, Output, int], None]

RECORD_FORMAT = 1


@dataclass
class RuleSet:
    """A compiled rule set homes run: the shared rules, plus a home's own (`own`, its
    fingerprint; None for the shared rules alone)."""

    shared: str | None
    own: str | None
    catalog: Catalog
    tz: tzinfo
    bus: BusMapping = field(repr=False)

    @classmethod
    def build(cls, shared: str | None, own: str | None, catalog: Catalog,
              tz: tzinfo) -> RuleSet:
        return cls(shared, own, catalog, tz, BusMapping.from_catalog(catalog, tz))


class Home:
    """One home: its rule set and its state (a live engine, a parked snapshot, or none
    yet), what it has seen, and its outputs' numbering."""

    __slots__ = ("deadline", "dirty", "engine", "epoch", "id", "outputs", "parked", "rules",
                 "seen", "used")

    def __init__(self, home: str, rules: RuleSet | None) -> None:
        self.id = home
        self.rules = rules
        self.engine: Engine | None = None
        self.parked: bytes | None = None   # the engine's snapshot, compressed
        self.deadline: float | None = None  # its next timer, for the partition's heap
        self.seen = 0       # the stream sequence of the last message its state holds
        self.epoch = 0      # the stream sequence where its rule set's state started
        self.outputs = 0    # outputs made since then
        self.dirty = False  # changed since its last record was written
        self.used = 0.0     # when it was last live (the worker's clock), for parking

    def state_bytes(self) -> bytes:
        """The compressed snapshot of its state (empty: never started)."""
        if self.engine is not None:
            return zlib.compress(dumps_compact(self.engine.snapshot()), 6)
        return self.parked or b""

    def park(self) -> None:
        """Keep only the compressed snapshot (and the next deadline) in memory."""
        engine = self.engine
        if engine is None:
            return
        self.parked = zlib.compress(dumps_compact(engine.snapshot()), 6) \
            if engine.started else None
        self.deadline = engine.timers.next_deadline()
        self.engine = None


@dataclass
class HomeRecord:
    """What a checkpoint keeps of a home (see the module docstring)."""

    home: str
    seen: int
    epoch: int
    outputs: int
    shared: str | None
    own: str | None
    deadline: float | None
    state: bytes  # the compressed snapshot; empty when the home's engine never started

    def encode(self) -> bytes:
        head = {"format": RECORD_FORMAT, "home": self.home, "seen": self.seen,
                "epoch": self.epoch, "outputs": self.outputs, "shared": self.shared,
                "own": self.own, "deadline": self.deadline}
        return dumps_compact(head) + b"\n" + self.state

    @classmethod
    def decode(cls, data: bytes) -> HomeRecord:
        """Raises ValueError (with what is wrong) for a record this cep cannot read."""
        head_bytes, _, state = data.partition(b"\n")
        head = loads(head_bytes)
        if type(head) is not dict or head.get("format") != RECORD_FORMAT:
            raise ValueError("not a home record of this version of cep")
        try:
            record = cls(str(head["home"]), int(head["seen"]), int(head["epoch"]),
                         int(head["outputs"]), head["shared"], head["own"], head["deadline"],
                         bytes(state))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a damaged home record ({exc})") from None
        for name in ("shared", "own"):
            if getattr(record, name) is not None and type(getattr(record, name)) is not str:
                raise ValueError(f"a damaged home record ({name})")
        if record.deadline is not None and type(record.deadline) not in (int, float):
            raise ValueError("a damaged home record (deadline)")
        return record


class LiveHomes:
    """The homes with an engine in memory, least recently used first, at most `capacity`
    (over every partition of a worker): beyond it, the oldest is parked."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._homes: OrderedDict[int, Home] = OrderedDict()
        self.parked_count = 0

    def touch(self, home: Home, now: float) -> None:
        home.used = now
        key = id(home)
        homes = self._homes
        if key in homes:
            homes.move_to_end(key)
            return
        homes[key] = home
        while len(homes) > self.capacity:
            _, oldest = homes.popitem(last=False)
            oldest.park()
            self.parked_count += 1

    def forget(self, home: Home) -> None:
        self._homes.pop(id(home), None)

    def park_idle(self, before: float) -> int:
        """Park the homes last used before `before`; how many."""
        homes = self._homes
        count = 0
        while homes:
            key, home = next(iter(homes.items()))
            if home.used >= before:
                break
            del homes[key]
            home.park()
            count += 1
        self.parked_count += count
        return count

    def __len__(self) -> int:
        return len(self._homes)


@dataclass
class PartitionStats:
    messages: int = 0
    ticks: int = 0
    events: int = 0
    unmatched: int = 0
    bad_messages: int = 0
    outputs: int = 0
    skipped: int = 0        # messages a home's state already held (taken before a kill)
    restored: int = 0       # parked homes brought back to life
    fresh_homes: int = 0    # homes whose saved state was made by other rules


class Partition:
    """The homes of one partition and its clock (see the module docstring)."""

    def __init__(self, number: int, rules_for: Callable[[str | None], RuleSet | None],
                 emit: Emit, report: Report, live: LiveHomes,
                 clock: Callable[[], float], max_instances: int = MAX_PARTITION_INSTANCES,
                 ) -> None:
        """`rules_for(own)`: the rule set for a home's own rules' fingerprint (None: the
        shared rules alone); None when there is nothing to run."""
        self.number = number
        self.rules_for = rules_for
        self.emit = emit
        self.report = report
        self.live = live
        self.clock = clock
        self.max_instances = max_instances
        self.homes: dict[str, Home] = {}
        self.seq = 0              # the last stream sequence taken
        self.watermark = 0.0      # the stream's time at it
        self.cause = 0            # the sequence being taken (outputs are stamped with it)
        self._heap: list[tuple[float, int, str]] = []
        self._pushes = 0
        self.stats = PartitionStats()
        self.reporter = BadMessageReporter(report)

    # ------------------------------------------------------------------ restoring
    def restore(self, seq: int, watermark: float, records: list[HomeRecord]) -> None:
        """The state of a checkpoint: its header's sequence and time, and the homes'
        records (each maybe from a later checkpoint than the header)."""
        self.seq = seq
        self.watermark = watermark
        for record in records:
            home = self.homes.get(record.home)
            if home is None:
                home = self._new_home(record.home)
            if home.seen > record.seen:
                continue
            rules = self.rules_for(record.own)
            if rules is None and record.own is not None:  # its own rules are gone
                rules = self.rules_for(None)
            home.rules = rules
            home.seen, home.epoch, home.outputs = record.seen, record.epoch, record.outputs
            same = rules is not None and (rules.shared, rules.own) == \
                (record.shared, record.own)
            if record.state and not same:
                # made by other rules: the home starts again (its numbering goes on)
                self.stats.fresh_homes += 1
                home.dirty = True
                continue
            home.parked = record.state or None
            home.deadline = record.deadline if home.parked is not None else None
            if home.deadline is not None:
                self._push(home)

    def _new_home(self, home_id: str) -> Home:
        home = Home(home_id, self.rules_for(None))
        self.homes[home_id] = home
        return home

    # ------------------------------------------------------------------ taking the stream
    def take(self, seq: int, ts: float, home_id: str, topic: str, payload: bytes) -> None:
        """A home's message, at stream sequence `seq` and stream time `ts`."""
        self._reach(seq, ts)
        stats = self.stats
        stats.messages += 1
        home = self.homes.get(home_id)
        if home is None:
            home = self._new_home(home_id)
        if seq <= home.seen:
            stats.skipped += 1
            return
        home.seen = seq
        home.dirty = True
        rules = home.rules
        if rules is None:  # no rules at all for this home
            stats.unmatched += 1
            return
        engine = self._engine(home, rules)
        try:
            events, problems = rules.bus.decode(topic, payload, ts, ahead_of=ts)
        except BadMessage as exc:
            stats.bad_messages += 1
            self.reporter.bad(f"{home_id}: {topic}", exc.reason, ts)
            engine.advance(ts)
            self._settle(home, engine)
            return
        for problem in problems:
            stats.bad_messages += 1
            self.reporter.bad(f"{home_id}: {topic}", problem.reason, ts)
        if not events:
            if not problems:
                stats.unmatched += 1
            engine.advance(ts)  # a message that makes no event still moves the clock
        else:
            for event in events:
                stats.events += 1
                engine.process(event)
        self._settle(home, engine)

    def tick(self, seq: int, ts: float) -> None:
        """A tick: the stream's time has reached `ts`."""
        self.stats.ticks += 1
        self._reach(seq, ts)

    def rules_changed(self, seq: int, ts: float, home_id: str, own: str | None) -> bool:
        """The home's own rule set is `own` (a fingerprint; None: the shared rules alone)
        from stream sequence `seq` (time `ts`) on: what was due by then fires with the old
        rules, then its state starts fresh.  False when the home had taken it already (a
        message before a restart)."""
        self._reach(seq, ts)
        home = self.homes.get(home_id)
        if home is None:
            home = self._new_home(home_id)
        if seq <= home.seen:
            return False
        if home.engine is not None:
            self.live.forget(home)
        home.engine = None
        home.parked = None
        home.deadline = None
        home.rules = self.rules_for(own)
        home.seen = home.epoch = seq
        home.outputs = 0
        home.dirty = True
        return True

    def _reach(self, seq: int, ts: float) -> None:
        """The stream is at `seq`, time `ts`: fire what is due in every home by then."""
        self.seq = seq
        self.cause = seq
        if ts > self.watermark:
            self.watermark = ts
        heap = self._heap
        if not heap or heap[0][0] > self.watermark:
            return
        watermark = self.watermark
        while heap and heap[0][0] <= watermark:
            deadline, _, home_id = heapq.heappop(heap)
            home = self.homes.get(home_id)
            if home is None or home.deadline != deadline or home.rules is None:
                continue  # an entry left behind: the home's deadline has moved
            engine = self._engine(home, home.rules)
            engine.advance(watermark)
            home.dirty = True
            self._settle(home, engine)

    def _engine(self, home: Home, rules: RuleSet) -> Engine:
        """The home's live engine: restored from its snapshot, or new."""
        engine = home.engine
        if engine is None:
            engine = Engine(rules.catalog, self._sink(home), rules.tz,
                            warn=self._warn(home.id), max_instances=self.max_instances)
            parked = home.parked
            if parked is not None:
                try:
                    engine.restore(loads(zlib.decompress(parked)))
                    self.stats.restored += 1
                except (StateFormatError, ValueError, zlib.error) as exc:
                    self.report(f"home {home.id}: its saved state cannot be read "
                                f"({printable(exc)}); it starts again empty")
                    engine = Engine(rules.catalog, self._sink(home), rules.tz,
                                    warn=self._warn(home.id),
                                    max_instances=self.max_instances)
                home.parked = None
            home.engine = engine
        self.live.touch(home, self.clock())
        return engine

    def _warn(self, home_id: str) -> Callable[[str], None]:
        def warn(message: str) -> None:
            self.report(f"home {home_id}: {message}")
        return warn

    def _sink(self, home: Home) -> Callable[[Output], None]:
        def sink(record: Output) -> None:
            home.outputs += 1
            self.stats.outputs += 1
            self.emit(home, home.outputs, record, self.cause)
        return sink

    def _settle(self, home: Home, engine: Engine) -> None:
        deadline = engine.timers.next_deadline()
        if deadline != home.deadline:
            home.deadline = deadline
            if deadline is not None:
                self._push(home)

    def _push(self, home: Home) -> None:
        assert home.deadline is not None
        self._pushes += 1
        heapq.heappush(self._heap, (home.deadline, self._pushes, home.id))
        if len(self._heap) > 4 * len(self.homes) + 1024:  # entries left behind: rebuild
            self._heap = [(h.deadline, i, h.id) for i, h in enumerate(self.homes.values())
                          if h.deadline is not None]
            heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        """The earliest timer of any home (a tick is worth publishing once it is due)."""
        heap = self._heap
        while heap:
            deadline, _, home_id = heap[0]
            home = self.homes.get(home_id)
            if home is not None and home.deadline == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    # ------------------------------------------------------------------ checkpoints
    def dirty_records(self) -> list[HomeRecord]:
        """The records of the homes changed since the last call (which clears them)."""
        records = []
        for home in self.homes.values():
            if not home.dirty:
                continue
            home.dirty = False
            rules = home.rules
            engine = home.engine
            deadline = engine.timers.next_deadline() if engine is not None else home.deadline
            records.append(HomeRecord(home.id, home.seen, home.epoch, home.outputs,
                                      rules.shared if rules is not None else None,
                                      rules.own if rules is not None else None,
                                      deadline, home.state_bytes()))
        return records

    def mark_dirty(self, homes: list[str]) -> None:
        """Records that could not be written: written again with the next checkpoint."""
        for home_id in homes:
            home = self.homes.get(home_id)
            if home is not None:
                home.dirty = True

    def close(self) -> None:
        """The partition is no longer this worker's: free its live engines."""
        for home in self.homes.values():
            if home.engine is not None:
                self.live.forget(home)
                home.engine = None
        self.homes.clear()
        self._heap.clear()

    def own_rules(self) -> set[str]:
        return {home.rules.own for home in self.homes.values()
                if home.rules is not None and home.rules.own is not None}


def record_fingerprints(records: list[HomeRecord]) -> set[str]:
    """The own rule sets the records name (to load before restoring)."""
    return {record.own for record in records if record.own is not None}


def header(partition: Partition, worker: str, written: float) -> dict[str, Any]:
    return {"format": RECORD_FORMAT, "seq": partition.seq, "watermark": partition.watermark,
            "homes": len(partition.homes), "worker": worker, "written": written}
