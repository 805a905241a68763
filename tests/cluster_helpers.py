"""What the cluster tests share: a NATS client of the test's own (its asyncio loop in a
thread), publishing with every acknowledgement awaited, reading the streams back after a
run, and the expected outputs: `cep replay` of each home's messages as the stream holds
them."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cep.adapters.nats_client import StreamPublisher, kv_get
from cep.adapters.nats_names import (
    CHECKPOINTS,
    OUT_STREAM,
    STREAM,
    TICK_LEVEL,
    HomeTopic,
    consumer_name,
    header_key,
    parse_reply,
)
from cep.adapters.nats_rules import check_texts
from cep.adapters.nats_setup import status
from cep.adapters.nats_worker import payload_bytes
from cep.adapters.replay import replay
from cep.adapters.trace import TraceWriter
from cep.runtime.output import OutputWriter
from tests.broker import POLL, WAIT

T = TypeVar("T")


class Bus:
    """The test's NATS connection, on a loop of its own in a thread."""

    def __init__(self, url: str) -> None:
        import nats

        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc: Any = self.call(nats.connect(servers=url.split(","), max_reconnect_attempts=-1,
                                              reconnect_time_wait=0.2))
        self.js = self.nc.jetstream(timeout=10)
        self.problems: list[str] = []
        self.publisher = StreamPublisher(self.js, self.problems.append)
        self.seen: list[tuple[str, bytes, dict[str, str]]] = []  # what a subscription got

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = WAIT * 3) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def publish(self, messages: list[tuple[str, bytes, dict[str, str] | None]]) -> None:
        """Publish and wait until the stream has every one (sent again after a failure,
        with its message id: stored once)."""
        async def go() -> None:
            await self.publisher.send_all(messages)
            await self.publisher.settle()
        self.call(go())

    def subscribe(self, subject: str) -> None:
        async def take(msg: Any) -> None:
            self.seen.append((msg.subject, msg.data, dict(msg.headers or {})))

        async def go() -> None:
            await self.nc.subscribe(subject, cb=take)
            await self.nc.flush()
        self.call(go())

    def status(self) -> dict[str, Any]:
        return self.call(status(self.js, self.url))

    def wait(self, condition: Any, what: str, timeout: float = WAIT * 3) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = condition()
            except Exception as exc:  # NATS electing a leader: look again
                last = exc
            if last and not isinstance(last, Exception):
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")
            time.sleep(POLL * 10)

    def caught_up(self, partitions: int) -> bool:
        """Every partition's consumer has delivered and had acknowledged everything."""
        async def go() -> bool:
            for number in range(partitions):
                info = await self.js.consumer_info(STREAM, consumer_name(number))
                if info.num_pending or info.num_ack_pending:
                    return False
            return True
        return self.call(go())

    def close(self) -> None:
        try:
            self.call(self.nc.close(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@dataclass
class Stored:
    seq: int
    ts: float
    partition: int
    home: str
    topic: str
    payload: bytes
    headers: dict[str, str]


@dataclass
class Run:
    """What a run left in the streams and checkpoints."""

    messages: list[Stored] = field(default_factory=list)      # every home's, in order
    # per home: ((epoch, number), line)
    outputs: dict[str, list[tuple[tuple[int, int], str]]] = field(default_factory=dict)
    headers: dict[int, dict[str, Any]] = field(default_factory=dict)


async def _read_all(js: Any, stream: str, subjects: str) -> list[Any]:
    import nats.js.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    info = await js.stream_info(stream)
    if not info.state.messages:
        return []
    sub = await js.pull_subscribe(subjects, stream=stream, config=ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=60,
        num_replicas=1, mem_storage=True))
    out = []
    last = info.state.last_seq
    deadline = time.monotonic() + WAIT
    while True:
        try:
            batch = await sub.fetch(1000, timeout=5)
        except nats.js.errors.ServiceUnavailableError:  # its leader not elected yet
            assert time.monotonic() < deadline, f"cannot read the stream {stream}"
            await asyncio.sleep(0.2)
            continue
        out.extend(batch)
        position = parse_reply(batch[-1].reply)
        if position is None or position[0] >= last or not batch[-1].metadata.num_pending:
            break
    await sub.unsubscribe()
    return out


def read_run(bus: Bus, topic: HomeTopic, partitions: int) -> Run:
    async def go() -> Run:
        run = Run()
        for msg in await _read_all(bus.js, STREAM, "cep.in.>"):
            seq, _, ts_ns = parse_reply(msg.reply)  # type: ignore[misc]
            tokens = msg.subject.split(".")
            if tokens[3:] == [TICK_LEVEL]:
                continue  # a tick: it only moves the partition's clock
            split = topic.split(tokens[3:])
            assert split is not None, msg.subject
            run.messages.append(Stored(seq, (ts_ns // 1_000_000) / 1000, int(tokens[2]),
                                       split[0], split[1], msg.data, dict(msg.headers or {})))
        for msg in await _read_all(bus.js, OUT_STREAM, "cep.out.>"):
            home = msg.subject.split(".")[2]
            run.outputs.setdefault(home, []).append(
                (number_of(msg.headers), msg.data.decode()))
        kv = await bus.js.key_value(CHECKPOINTS)
        from cep.adapters.nats_client import json_value
        for number in range(partitions):
            found = await kv_get(kv, header_key(number))
            if found is not None:
                run.headers[number] = json_value(found[0])
        return run
    return bus.call(go())


def expected_outputs(tmp_path: Path, rules: list[tuple[str, str]], messages: list[Stored],
                     until: float, name: str) -> tuple[list[str], list[tuple[str, bytes]]]:
    """`cep replay` of these messages: its output lines, and its actions (topic, payload)."""
    loaded, _ = check_texts(rules, [])
    assert loaded.ok, [d.message for d in loaded.diagnostics.sorted()]
    from cep.language.timezones import get_zone
    tz = get_zone(loaded.catalog.timezone)
    assert tz is not None
    trace = tmp_path / f"{name}.jsonl"
    with TraceWriter.open(trace) as writer:
        for message in messages:
            writer.message(message.ts, message.topic, message.payload)
    out = io.StringIO()
    records: list[dict[str, Any]] = []
    writer_out = OutputWriter(out, tz, flush=False)

    def sink(record: dict[str, Any]) -> None:
        records.append(record)
        writer_out(record)

    replay(loaded.catalog, str(trace), sink, tz, lambda message: None, until=until)
    actions = [(r["topic"], payload_bytes(r["payload"])) for r in records
               if r["kind"] == "publish"]
    return out.getvalue().splitlines(), actions


def number_of(headers: dict[str, str]) -> tuple[int, int]:
    """(epoch, number) of an output or action, from its message id `home:epoch:n`."""
    _, epoch, number = headers["Nats-Msg-Id"].split(":")
    return int(epoch), int(number)


def outputs_of(run: Run, home: str, epoch: int | None = None) -> list[str]:
    """The home's output lines (of one epoch: its rule set's state) in their numbers'
    order; each number once, none missing."""
    numbered: dict[tuple[int, int], str] = {}
    for key, line in run.outputs.get(home, []):
        assert key not in numbered, f"{home}: output {key} stored twice"
        if epoch is None or key[0] == epoch:
            numbered[key] = line
    for e in {k[0] for k in numbered}:
        numbers = sorted(n for ep, n in numbered if ep == e)
        assert numbers == list(range(1, len(numbers) + 1)), f"{home}: output numbers {numbers}"
    return [numbered[k] for k in sorted(numbered)]


def actions_of(run: Run, home: str) -> list[tuple[str, bytes]]:
    """The actions the stream holds for a home (its messages sent by a worker), in their
    numbers' order."""
    numbered: dict[tuple[int, int], tuple[str, bytes]] = {}
    for message in run.messages:
        if message.home == home and "Cep-Output" in message.headers:
            number = number_of(message.headers)
            assert number not in numbered, f"{home}: action {number} stored twice"
            numbered[number] = (message.topic, message.payload)
    return [numbered[n] for n in sorted(numbered)]


def run_status(bus: Bus) -> dict[str, Any]:
    return bus.status()
