"""`cep worker`: runs the homes of the partitions it holds, from the NATS JetStream cluster.

One asyncio loop.  The heartbeat (every lease/5 seconds, and at once when another worker
says on `cep.cluster.news` that something changed) renews this worker's presence and
leases and claims or gives back partitions (adapters/nats_leases.py).  Each partition
held has a task (`PartitionRunner`):

1. restore: the partition's checkpoint header (its last stream sequence S and time) and
   its homes' records, from `cep-checkpoints` (adapters/nats_homes.py);
2. consume: the durable consumer `cep-p<n>` is made afresh, starting at S+1 with explicit
   acknowledgements; messages are fetched in batches and taken in stream order, each
   home's outputs numbered and published (output lines on `cep.out.<home>`, actions on
   the home's own subjects), every publish with a message id (`<home>:<epoch>:<n>`) so
   that the streams keep one copy of what a failover sends again;
3. checkpoint, every `checkpoint_every` seconds (or when many messages wait): wait until
   the streams have acknowledged every output so far, write the changed homes' records,
   then the header with the last sequence (compare-and-set: a header someone else wrote
   means the partition is no longer ours), and only then acknowledge the messages;
4. at a clean stop or when giving the partition back: a last checkpoint, then the lease
   is deleted and the other workers are told at once.

A worker killed loses only what came after its last checkpoint of each partition: the
next holder restores that checkpoint and takes the same messages again, making the same
outputs with the same numbers (the streams drop the copies; a subscriber of the actions
may see those again).

When a quiet partition has a timer due, its holder publishes a tick (`cep.in.<n>.$tick`)
into the stream: the tick's stream time moves the partition's clock (nothing else does),
so timers fire within about a tick of their time, in stream time, the same way on
whichever worker runs the partition.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from cep.adapters.badmessages import BadMessageReporter, printable
from cep.adapters.jsonlib import dumps_compact
from cep.adapters.nats_client import (
    API_TIMEOUT,
    RETRY_MAX,
    RETRY_MIN,
    ClusterError,
    StreamPublisher,
    connect,
    describe,
    json_bytes,
    json_value,
    kv_get,
    kv_snapshot,
)
from cep.adapters.nats_homes import (
    Home,
    HomeRecord,
    LiveHomes,
    Partition,
    header,
    record_fingerprints,
)
from cep.adapters.nats_leases import (
    Lease,
    alive_workers,
    lease_value,
    plan,
    read_leases,
)
from cep.adapters.nats_names import (
    CHECKPOINTS,
    IN_PREFIX,
    LEASES,
    NEWS,
    RULES,
    RULES_LEVEL,
    STREAM,
    TICK_LEVEL,
    LayoutError,
    check_worker_name,
    consumer_name,
    header_key,
    lease_key,
    out_subject,
    parse_reply,
    partition_subject,
    tick_subject,
    worker_key,
)
from cep.adapters.nats_rules import Texts, WorkerRuleSets, read_marker, register_shared
from cep.adapters.nats_setup import ClusterConfig, read_config
from cep.checks.loader import LoadedRules
from cep.language.diagnostics import plural
from cep.runtime.limits import MAX_PARTITION_INSTANCES
from cep.runtime.output import Output, OutputWriter

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

Report = Callable[[str], None]
MAX_REFUSALS_SAID = 100   # (home, reason) of refused rule switches reported one by one
MAX_ACK_PENDING = 50_000   # messages delivered and not yet acknowledged, per partition
CHECKPOINT_HELD = 20_000   # a checkpoint is made when this many wait for it
FETCH_WAIT = 0.5           # seconds a fetch waits for messages
YIELD_EVERY = 32           # messages of a batch taken before the others get a turn


@dataclass
class WorkerSettings:
    url: str
    name: str
    lease: float = 10.0             # seconds a lease lasts unrenewed
    checkpoint_every: float = 5.0   # seconds between a partition's checkpoints
    live_homes: int = 10_000        # homes with an engine in memory, at most
    park_after: float = 300.0       # seconds unused before a home is parked
    batch: int = 256                # messages fetched at once
    tick_every: float = 0.5         # seconds between two ticks of a quiet partition
    max_instances: int = MAX_PARTITION_INSTANCES

    @property
    def heartbeat(self) -> float:
        return self.lease / 5

    @property
    def margin(self) -> float:
        """A holder stops this long before its lease would expire unrenewed."""
        return max(0.5, self.lease * 0.2)


@dataclass
class WorkerStats:
    messages: int = 0
    events: int = 0
    outputs: int = 0
    actions: int = 0
    actions_refused: int = 0
    checkpoints: int = 0
    taken: int = 0
    given: int = 0
    lost: int = 0
    rules_refused: int = 0   # messages on a home's $cep/rules not from `cluster rules put`
    homes: dict[str, int] = field(default_factory=dict)

    def summary(self, name: str, elapsed: float) -> str:
        return (f"worker {name}: {plural(self.messages, 'message')}, "
                f"{plural(self.events, 'event')}, {plural(self.outputs, 'output')} "
                f"({plural(self.actions, 'action')}"
                + (f", {self.actions_refused} refused" if self.actions_refused else "")
                + f"), {plural(self.checkpoints, 'checkpoint')}; partitions taken "
                  f"{self.taken}, given back {self.given}, lost {self.lost}"
                + (f"; {plural(self.rules_refused, 'rule switch', 'rule switches')} refused"
                   if self.rules_refused else "")
                + f"; in {elapsed:.1f} s")


class _Lost(Exception):
    """The partition is no longer this worker's (its lease was taken, or expired)."""


class _Lines:
    """Output records as the JSON lines `cep replay` writes, per time zone."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writers: dict[tzinfo, OutputWriter] = {}

    def line(self, record: Output, tz: tzinfo) -> bytes:
        writer = self._writers.get(tz)
        if writer is None:
            writer = self._writers[tz] = OutputWriter(self._buffer, tz, flush=False)
        writer(record)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.rstrip("\n").encode("utf-8")


def payload_bytes(payload: Any) -> bytes:
    """An action's payload as sent: a string as its UTF-8 text, anything else as JSON."""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return bytes(dumps_compact(payload))


class Worker:
    """See the module docstring."""

    def __init__(self, settings: WorkerSettings, shared: Texts,
                 shared_loaded: LoadedRules | None, report: Report,
                 clock: Callable[[], float] = time.time) -> None:
        check_worker_name(settings.name)
        self.settings = settings
        self.name = settings.name
        self.instance = uuid.uuid4().hex[:12]
        self.shared = shared
        self._refusals: set[tuple[str, str]] = set()   # refused rule switches reported
        self.shared_loaded = shared_loaded
        self._report = report
        self.clock = clock
        self.stats = WorkerStats()
        self.live = LiveHomes(settings.live_homes)
        self.runners: dict[int, PartitionRunner] = {}
        self.lines = _Lines()
        self.refusals = BadMessageReporter(self.report, label="action not published to")
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = 0.0
        # set by run()
        self.nc: Client
        self.js: JetStreamContext
        self.config: ClusterConfig
        self.leases_kv: KeyValue
        self.checkpoints_kv: KeyValue
        self.rules: WorkerRuleSets
        self.ready = asyncio.Event()  # connected, registered, heartbeating
        self._giving: set[asyncio.Task[None]] = set()  # partitions being given back
        self._beats = 0
        self._expiries: list[float] = []  # when others' leases and presence expire

    def report(self, message: str) -> None:
        self._report(f"worker {self.name}: {message}")

    def refuse_rules(self, home: str, why: str) -> None:
        """A message on `home`'s $cep/rules topic that is no rule switch: counted, and
        reported the first time for this home and reason."""
        self.stats.rules_refused += 1
        key = (home, why)
        if key in self._refusals:
            return
        if len(self._refusals) >= MAX_REFUSALS_SAID:
            if len(self._refusals) == MAX_REFUSALS_SAID:
                self._refusals.add(key)
                self.report(f"more refused rule switches than {MAX_REFUSALS_SAID} kinds: "
                            "from now on they are only counted (see the summary)")
            return
        self._refusals.add(key)
        self.report(f"home {home}: refused a rule switch on its topic {RULES_LEVEL} ({why}); "
                    "rule switches come only from `cep cluster rules put`, so the home keeps "
                    "its rules and its state; the message is not one of its events either "
                    "(counted; said once per home and reason)")

    def stop(self) -> None:
        """Ask the worker to stop cleanly (from a signal handler or another thread)."""
        loop = self._loop
        if loop is None:
            return
        loop.call_soon_threadsafe(self._stop.set)

    # ------------------------------------------------------------------ the run
    async def run(self) -> WorkerStats:
        self._loop = asyncio.get_running_loop()
        self.started = time.monotonic()
        settings = self.settings
        self.nc = await connect(settings.url, f"cep-worker-{self.name}", self.report,
                                keep_trying=True)
        try:
            self.js = self.nc.jetstream(timeout=API_TIMEOUT, publish_async_max_pending=20_000)
            self.config = await read_config(self.js, settings.url)
            self.leases_kv = await self.js.key_value(LEASES)
            self.checkpoints_kv = await self.js.key_value(CHECKPOINTS)
            rules_kv = await self.js.key_value(RULES)
            self.rules = WorkerRuleSets(self.shared, self.shared_loaded, rules_kv, self.report)
            previous = await register_shared(rules_kv, self.shared, self.rules.shared_fp,
                                             self.name)
            if previous is not None:
                self.report(f"the cluster's shared rules were {previous[0]} (registered by "
                            f"worker {previous[1]}); this worker runs {self.rules.shared_fp}: "
                            "a home whose state was made by other rules starts fresh here")
            await self._wait_for_name()
            await self.nc.subscribe(NEWS, cb=self._news)
            self.report(f"started (pid {os.getpid()}), {self.config.partitions} partitions "
                        f"of {self.config.home_topic.template}, shared rules "
                        f"{self.rules.shared_fp or '(none)'}")
            beats = asyncio.create_task(self._heartbeats())
            self.ready.set()
            await self._stop.wait()
            beats.cancel()
            try:
                await beats
            except asyncio.CancelledError:
                pass
            await self._stop_all()
        finally:
            try:
                await self.nc.drain()
            except Exception:
                await self.nc.close()
        return self.stats

    async def _news(self, msg: Msg) -> None:
        self._wake.set()

    async def _wait_for_name(self) -> None:
        """Another worker of this name still alive: wait for its presence to expire; if it
        renews it meanwhile, it is running, and this one refuses to."""
        seen_beat = None
        while True:
            found = await kv_get(self.leases_kv, worker_key(self.name))
            data = json_value(found[0]) if found else None
            if not isinstance(data, dict) or float(data.get("expires", 0)) <= self.clock():
                return
            if seen_beat is not None and data.get("beat") != seen_beat:
                raise ClusterError(
                    f"a worker named {self.name} is running (pid {data.get('pid')} on "
                    f"{data.get('host')}): give this one another --name")
            if seen_beat is None:
                self.report(f"waiting for the presence of the previous worker named "
                            f"{self.name} to expire (up to {self.settings.lease:g} s)")
            seen_beat = data.get("beat")
            await asyncio.sleep(self.settings.heartbeat)

    async def _heartbeats(self) -> None:
        while True:
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS unreachable: leases fence themselves
                self.report(f"heartbeat: {describe(exc)}")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_beat())
            except TimeoutError:
                pass
            self._wake.clear()

    async def _beat(self) -> None:
        now = self.clock()
        settings = self.settings
        self.live.park_idle(now - settings.park_after)
        await self.leases_kv.put(worker_key(self.name), json_bytes(self._presence(now)))
        for runner in list(self.runners.values()):
            await runner.renew()
        entries = await kv_snapshot(self.leases_kv)
        now = self.clock()
        leases = read_leases(entries, self.config.partitions)
        alive = alive_workers(entries, now)
        alive[self.name] = {}
        self._expiries = [lease.expires for lease in leases
                          if lease.held(now) and lease.worker != self.name]
        self._expiries += [float(data.get("expires", 0)) for name, data in alive.items()
                           if name != self.name]
        mine = {n for n, r in self.runners.items() if not r.stopping}
        self._beats += 1
        if self._beats < 2:  # the others' presence first: no claim made on a partial view
            return
        todo = plan(leases, mine, alive, self.name, now)
        for number in todo.claim:
            await self._claim(leases[number], now)
        for number in todo.release:  # (in the background: the heartbeat goes on)
            runner = self.runners[number]
            task = asyncio.create_task(runner.stop(handover=True))
            self._giving.add(task)
            task.add_done_callback(self._giving.discard)
            self.stats.given += 1

    def _next_beat(self) -> float:
        """Seconds to the next heartbeat: one heartbeat, or less when another worker's
        lease or presence expires sooner unless renewed (a dead worker's partitions are
        then taken the moment its leases expire, not up to a heartbeat later)."""
        wait = self.settings.heartbeat
        if self._expiries:
            wait = min(wait, min(self._expiries) - self.clock() + 0.02)
        return max(0.02, wait)

    def _presence(self, now: float) -> dict[str, Any]:
        parked = sum(len(r.partition.homes) for r in self.runners.values()
                     if r.partition is not None)
        return {"worker": self.name, "instance": self.instance,
                "host": socket.gethostname(), "pid": os.getpid(),
                "expires": now + self.settings.lease, "beat": now,
                "partitions": sorted(self.runners),
                "homes": {"live": len(self.live), "all": parked},
                "shared": self.rules.shared_fp, "messages": self.stats.messages,
                "rules_refused": self.stats.rules_refused}

    async def _claim(self, lease: Lease, now: float) -> None:
        import nats.js.errors

        value = json_bytes(lease_value(self.name, self.instance, now + self.settings.lease,
                                       now))
        key = lease_key(lease.partition)
        try:
            if lease.revision == 0:
                revision = await self.leases_kv.create(key, value)
            else:
                revision = await self.leases_kv.update(key, value, last=lease.revision)
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
            return  # another worker was quicker
        if lease.worker is not None and lease.worker != self.name:
            how = f"the lease of {lease.worker} expired {now - lease.expires:.1f} s ago"
        elif lease.worker == self.name:
            how = "a lease of an earlier run under this name expired"
        else:
            how = "it was free"
        runner = PartitionRunner(self, lease.partition, revision, now)
        self.runners[lease.partition] = runner
        self.stats.taken += 1
        self.report(f"took partition {lease.partition} ({how})")
        runner.start()

    async def _stop_all(self) -> None:
        await asyncio.gather(*self._giving, return_exceptions=True)
        runners = list(self.runners.values())
        await asyncio.gather(*(r.stop(handover=True) for r in runners),
                             return_exceptions=True)
        self.stats.given += len(runners)
        try:
            await self.leases_kv.delete(worker_key(self.name))
            await self.nc.publish(NEWS, b"stopped")
            await self.nc.flush(timeout=5)
        except Exception as exc:
            self.report(f"could not say goodbye: {describe(exc)}")

    def forget(self, runner: PartitionRunner) -> None:
        if self.runners.get(runner.number) is runner:
            del self.runners[runner.number]


class PartitionRunner:
    """One partition held by the worker (see the module docstring)."""

    def __init__(self, worker: Worker, number: int, lease_revision: int,
                 since: float) -> None:
        self.worker = worker
        self.since = since             # when this worker took the lease (wall clock)
        self.number = number
        self.lease_revision = lease_revision
        self.valid_until = time.monotonic() + worker.settings.lease - worker.settings.margin
        self.stopping = False
        self.handover = False
        self.partition: Partition | None = None
        self.header_revision: int | None = None
        self.held: list[str] = []      # reply subjects to acknowledge after a checkpoint
        self.deliveries = 0            # the consumer's sequence of the last delivery taken
        self.subscription: Any = None
        self.outbox: list[tuple[str, bytes, dict[str, str] | None]] = []
        self.publisher = StreamPublisher(worker.js, worker.report, self.alive)
        self.records = StreamPublisher(worker.js, worker.report, self.alive)
        self.last_checkpoint = time.monotonic()
        self.last_tick = 0.0
        self.task: asyncio.Task[None] | None = None
        self._lease_lock = asyncio.Lock()
        self.reporter = BadMessageReporter(worker.report, label="not a home's message:")

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    def alive(self) -> bool:
        return time.monotonic() < self.valid_until

    async def renew(self) -> None:
        import nats.js.errors

        worker = self.worker
        async with self._lease_lock:
            if self.lease_revision == 0:
                return
            now = worker.clock()
            value = json_bytes(lease_value(worker.name, worker.instance,
                                           now + worker.settings.lease, self.since))
            try:
                self.lease_revision = await worker.leases_kv.update(
                    lease_key(self.number), value, last=self.lease_revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                self.valid_until = 0.0  # someone else has it: stop at once
                return
            self.valid_until = time.monotonic() + worker.settings.lease - \
                worker.settings.margin

    async def stop(self, handover: bool) -> None:
        self.stopping = True
        self.handover = handover
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)

    # ------------------------------------------------------------------ the task
    async def _run(self) -> None:
        worker = self.worker
        subscription = None
        try:
            await self._restore()
            subscription = self.subscription = await self._subscribe()
            await self._consume(subscription)
            if self.handover and self.alive():
                await self._checkpoint()
                await self._release()
                worker.report(f"gave back partition {self.number} (checkpoint at stream "
                              f"sequence {self.partition.seq if self.partition else 0})")
        except _Lost as exc:
            worker.stats.lost += 1
            worker.report(f"partition {self.number} is no longer ours ({exc}): dropped "
                          "without a checkpoint; its next holder goes on from the last one")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            worker.report(f"partition {self.number} failed: {describe(exc)}; giving it up")
            try:
                await self._release()
            except Exception:
                pass
        finally:
            subscription = self.subscription or subscription
            if subscription is not None:
                try:
                    await subscription.unsubscribe()
                except Exception:
                    pass
            if self.partition is not None:
                self.partition.close()
            worker.forget(self)

    async def _retry(self, what: str, call: Callable[[], Any]) -> Any:
        """`await call()` until it succeeds (NATS unreachable for a while, a leader
        elected), while the lease lasts."""
        import nats.js.errors

        delay = RETRY_MIN
        said = ""
        while True:
            if not self.alive():
                raise _Lost("its lease ran out while NATS did not answer")
            try:
                return await call()
            except (nats.js.errors.KeyWrongLastSequenceError, _Lost):
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                why = describe(exc)
                if why != said:
                    self.worker.report(f"partition {self.number}: {what}: {why}; trying again")
                    said = why
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    async def _restore(self) -> None:
        worker = self.worker
        kv = worker.checkpoints_kv
        found = await self._retry("reading its checkpoint",
                                  lambda: kv_get(kv, header_key(self.number)))
        seq, watermark = 0, 0.0
        if found is not None:
            head = json_value(found[0])
            self.header_revision = found[1]
            if isinstance(head, dict):
                seq = int(head.get("seq", 0))
                watermark = float(head.get("watermark", 0.0))
        entries = await self._retry("reading its homes",
                                    lambda: kv_snapshot(kv, f"h.{self.number}.>"))
        records = []
        for key, (value, _) in entries.items():
            try:
                records.append(HomeRecord.decode(value))
            except ValueError as exc:
                worker.report(f"partition {self.number}: {key}: {exc}; that home starts "
                              "again empty")
        await self._retry("loading the homes' rule sets",
                          lambda: worker.rules.ensure(record_fingerprints(records)))
        partition = Partition(self.number, worker.rules.get, self._emit, worker.report,
                              worker.live, worker.clock, worker.settings.max_instances)
        partition.restore(seq, watermark, records)
        self.partition = partition
        note = ""
        if partition.stats.fresh_homes:
            note = (f"; {plural(partition.stats.fresh_homes, 'home')} start fresh: their "
                    "states were made by other rules")
        worker.report(f"partition {self.number}: restored {plural(len(records), 'home')} from "
                      + (f"the checkpoint at stream sequence {seq:,}" if found else
                         "no checkpoint (a new partition)") + note)
        info = await self._retry("reading the stream", lambda: worker.js.stream_info(STREAM))
        first = info.state.first_seq or 0
        if seq and first > seq + 1:
            worker.report(f"partition {self.number}: the stream no longer holds its messages "
                          f"from sequence {seq + 1:,} to {first - 1:,} (older than the stream "
                          "keeps): they are lost to its homes")

    async def _subscribe(self) -> Any:
        import nats.js.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        worker = self.worker
        assert self.partition is not None
        name = consumer_name(self.number)
        start = self.partition.seq + 1
        config = ConsumerConfig(
            durable_name=name, description=f"cep: partition {self.number}",
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=max(120.0, 4 * worker.settings.checkpoint_every),
            max_ack_pending=MAX_ACK_PENDING, max_deliver=-1,
            # (one filter: ticks are in the partition's subjects too, see nats_names)
            filter_subject=partition_subject(self.number))

        async def fresh_consumer() -> Any:
            self.deliveries = 0
            try:
                await worker.js.delete_consumer(STREAM, name)
            except nats.js.errors.NotFoundError:
                pass
            await worker.js.add_consumer(STREAM, config)
            return await worker.js.pull_subscribe_bind(name, STREAM)

        return await self._retry("making its consumer", fresh_consumer)

    async def _consume(self, subscription: Any) -> None:
        import nats.errors

        worker = self.worker
        settings = worker.settings
        partition = self.partition
        assert partition is not None
        delay = RETRY_MIN
        waiting = settings.batch  # what the consumer said it still had for us, at most
        while not self.stopping:
            if not self.alive():
                raise _Lost("its lease ran out")
            try:
                # As many as are known to wait (the server hands them over at once), or,
                # caught up, the next one as soon as it comes: a fetch of more than wait
                # would be held until its timeout, each message waiting that long.
                messages = await subscription.fetch(max(1, min(settings.batch, waiting)),
                                                    timeout=FETCH_WAIT)
                delay = RETRY_MIN
                waiting = _num_pending(messages[-1]) if messages else 0
            except (TimeoutError, nats.errors.TimeoutError):
                messages = []
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                worker.report(f"partition {self.number}: fetching: {describe(exc)}; "
                              "trying again")
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                if "consumer" in str(exc).lower() and "not found" in str(exc).lower():
                    raise _Lost("its consumer was made anew by another worker") from None
                continue
            if messages:
                if await self._take(messages):
                    worker.report(f"partition {self.number}: a message did not arrive (a "
                                  "connection broke): taking the stream again from "
                                  f"sequence {partition.seq + 1:,}")
                    try:
                        await subscription.unsubscribe()
                    except Exception:
                        pass
                    subscription = await self._subscribe()
                    self.subscription = subscription
            else:
                await self._maybe_tick()
            if self.outbox:
                outbox, self.outbox = self.outbox, []
                await self.publisher.send_all(outbox)
            if self.held and (time.monotonic() - self.last_checkpoint >=
                              settings.checkpoint_every or len(self.held) >= CHECKPOINT_HELD):
                await self._checkpoint()

    async def _take(self, messages: list[Msg]) -> bool:
        """Take a batch in stream order; True when a delivery was missing from it (what
        came after it is left for a new consumer)."""
        worker = self.worker
        partition = self.partition
        assert partition is not None
        topic_layout = worker.config.home_topic
        items: list[tuple[Any, ...]] = []
        fingerprints: set[str] = set()
        gap = False
        for msg in messages:
            reply = msg.reply
            position = parse_reply(reply)
            if position is None:
                continue
            seq, delivery, ts_ns = position
            if delivery != self.deliveries + 1:
                # a delivery never reached us (lost on a connection that broke): the
                # consumer starts again after the last message taken
                gap = True
                break
            self.deliveries = delivery
            self.held.append(reply)
            if seq <= partition.seq:
                continue  # delivered again (its acknowledgement was late): taken already
            ts = (ts_ns // 1_000_000) / 1000  # the stream's time, to the millisecond
            tokens = msg.subject.split(".")
            if len(tokens) == 4 and tokens[3] == TICK_LEVEL:
                items.append(("tick", seq, ts))
                continue
            split = topic_layout.split(tokens[3:]) \
                if tokens[0] + "." + tokens[1] == IN_PREFIX else None
            if split is None:
                self.reporter.bad(msg.subject, "its home level is not a home id", ts)
                items.append(("tick", seq, ts))
                continue
            home, topic = split
            if topic == RULES_LEVEL:
                own, why = read_marker(msg.headers, msg.data)
                if why is not None:  # not from `cluster rules put`: a position, no more
                    worker.refuse_rules(home, why)
                    items.append(("tick", seq, ts))
                    continue
                if own is not None:
                    fingerprints.add(own)
                items.append(("rules", seq, ts, home, own))
                continue
            items.append(("message", seq, ts, home, topic, msg.data))
        if fingerprints:
            await self._retry("loading a home's new rule set",
                              lambda: worker.rules.ensure(fingerprints))
        stats = partition.stats
        before = stats.messages, stats.events
        for index, item in enumerate(items):
            if index and not index % YIELD_EVERY:
                await asyncio.sleep(0)  # the heartbeat and the other partitions' turn
            kind = item[0]
            if kind == "message":
                partition.take(item[1], item[2], item[3], item[4], item[5])
            elif kind == "tick":
                partition.tick(item[1], item[2])
            elif item[4] is not None and not worker.rules.stored(item[4]):
                worker.refuse_rules(item[3], f"its rule set {printable(item[4], 40)} is not "
                                             f"in the bucket {RULES}")
                partition.tick(item[1], item[2])
            else:
                if partition.rules_changed(item[1], item[2], item[3], item[4]):
                    worker.report(f"home {item[3]}: runs "
                                  + (f"its own rule set {item[4]}" if item[4] else
                                     "the shared rules alone")
                                  + f" from stream sequence {item[1]:,}, with a fresh state")
        worker.stats.messages += stats.messages - before[0]
        worker.stats.events += stats.events - before[1]
        return gap

    def _emit(self, home: Home, number: int, record: Output, cause: int) -> None:
        worker = self.worker
        rules = home.rules
        assert rules is not None
        worker.stats.outputs += 1
        headers = {"Nats-Msg-Id": f"{home.id}:{home.epoch}:{number}",
                   "Cep-Output": str(number), "Cep-Cause": str(cause)}
        self.outbox.append((out_subject(home.id), worker.lines.line(record, rules.tz),
                            headers))
        if record["kind"] != "publish":
            return
        topic = record["topic"]
        try:
            subject = worker.config.home_topic.home_subject(home.id, topic)
        except LayoutError as exc:
            worker.stats.actions_refused += 1
            worker.refusals.bad(f"{home.id}: {topic}", str(exc), record["ts"])
            return
        worker.stats.actions += 1
        self.outbox.append((subject, payload_bytes(record["payload"]), dict(headers)))

    async def _maybe_tick(self) -> None:
        partition = self.partition
        assert partition is not None
        deadline = partition.next_deadline()
        if deadline is None or deadline <= partition.watermark:
            return
        now = time.monotonic()
        if deadline > self.worker.clock() or now - self.last_tick < \
                self.worker.settings.tick_every:
            return
        self.last_tick = now
        await self.publisher.send(tick_subject(self.number), b"", None)

    async def _checkpoint(self) -> None:
        import nats.js.errors

        worker = self.worker
        partition = self.partition
        assert partition is not None
        if self.outbox:
            outbox, self.outbox = self.outbox, []
            await self.publisher.send_all(outbox)
        if not await self.publisher.settle(self.alive):
            raise _Lost("its lease ran out while the outputs waited for NATS")
        records = partition.dirty_records()
        for record in records:
            await self.records.send(f"$KV.{CHECKPOINTS}.h.{self.number}.{record.home}",
                                    record.encode())
        if not await self.records.settle(self.alive):
            partition.mark_dirty([r.home for r in records])
            raise _Lost("its lease ran out while the checkpoint waited for NATS")
        value = json_bytes(header(partition, worker.name, worker.clock()))
        key = header_key(self.number)
        kv = worker.checkpoints_kv

        async def write() -> int:
            if self.header_revision is None:
                return int(await kv.create(key, value))
            return int(await kv.update(key, value, last=self.header_revision))

        try:
            self.header_revision = await self._retry("writing its checkpoint", write)
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
            raise _Lost("another worker wrote its checkpoint") from None
        held, self.held = self.held, []
        for reply in held:
            await worker.nc.publish(reply, b"+ACK")
        self.last_checkpoint = time.monotonic()
        worker.stats.checkpoints += 1

    async def _release(self) -> None:
        worker = self.worker
        async with self._lease_lock:
            if self.lease_revision:
                try:
                    await worker.leases_kv.delete(lease_key(self.number),
                                                  last=self.lease_revision)
                except Exception as exc:
                    worker.report(f"partition {self.number}: could not hand its lease back "
                                  f"({describe(exc)}): it expires by itself")
                self.lease_revision = 0
        try:
            await worker.nc.publish(NEWS, f"released {self.number}".encode())
        except Exception:
            pass


def _num_pending(msg: Msg) -> int:
    """How many more messages the consumer had for us when it sent this one."""
    try:
        return int(msg.metadata.num_pending or 0)
    except Exception:  # not a JetStream message (cannot happen on this subscription)
        return 0


def printable_subject(subject: str) -> str:
    return printable(subject, 200)
