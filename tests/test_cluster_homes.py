"""The cluster's pieces that need no server: subjects and topics, leases' shares, and a
partition of homes — each home's outputs equal to `cep replay` of its messages alone,
across a checkpoint and a restore, and an idle home's memory."""

from __future__ import annotations

import gc
import io
import random
import tracemalloc
from pathlib import Path

import pytest

from cep.adapters.jsonlib import dumps_compact
from cep.adapters.nats_homes import HomeRecord, LiveHomes, Partition
from cep.adapters.nats_leases import Lease, fair_share, plan
from cep.adapters.nats_names import (
    HomeTopic,
    LayoutError,
    check_home,
    parse_reply,
    subject_to_topic,
    topic_to_subject,
)
from cep.adapters.nats_rules import WorkerRuleSets, check_texts
from cep.adapters.replay import replay
from cep.adapters.trace import TraceWriter
from cep.runtime.output import OutputWriter

RULES = """
CREATE EVENT Door (contact BOOL) FROM TOPIC 'door';
CREATE EVENT Temp (room STRING, value FLOAT) FROM TOPIC 'rooms/{room}/temp';

@name('door_open_long')
SELECT 'open' AS state
FROM PATTERN [ every Door(contact = false) -> (timer:interval(20 s) and not Door(contact = true)) ]
PUBLISH 'alarm/set' PAYLOAD {"alarm": "door"};

@name('hot')
SELECT room, avg(value) AS avg
FROM Temp#length(3)
GROUP BY room
HAVING avg(value) > 25
PUBLISH 'rooms/{room}/fan/set' PAYLOAD {"state": "ON"};

@name('warming')
SELECT a.value AS before, b.value AS after
FROM PATTERN [ every a=Temp -> b=Temp(value > a.value + 3) ]
"""


@pytest.mark.parametrize("topic, subject", [
    ("sensors/cold-1/temp", "sensors.cold-1.temp"),
    ("/sensors/temp", "/.sensors.temp"),
    ("sensors/temp/", "sensors.temp./"),
    ("sensors//temp", "sensors./.temp"),
    ("cold-1.temp", "cold-1//temp"),
    ("a.b/c", "a//b.c"),
])
def test_topics_convert_as_the_nats_mqtt_listener_does(topic, subject):
    assert topic_to_subject(topic) == subject
    assert subject_to_topic(subject) == topic


@pytest.mark.parametrize("topic", ["zigbee2mqtt/Front Door", "a/+/b", "a/#", "a/*", "x\ty", ""])
def test_topics_without_a_subject_are_refused(topic):
    with pytest.raises(LayoutError):
        topic_to_subject(topic)


def test_the_home_topic_template():
    topic = HomeTopic.parse("home/{home}/#")
    assert topic.source == "home.*.>"
    assert topic.transform(16) == "cep.in.{{partition(16,1)}}.home.{{wildcard(1)}}.>"
    assert topic.home_subject("h1", "zigbee2mqtt/hall.light/set") == \
        "home.h1.zigbee2mqtt.hall//light.set"
    assert topic.split("home.h1.zigbee2mqtt.hall//light".split(".")) == \
        ("h1", "zigbee2mqtt/hall.light")
    assert topic.split("home.bad!id.x".split(".")) is None
    deep = HomeTopic.parse("tenants/acme/{home}/#")
    assert deep.source == "tenants.acme.*.>"
    for bad, why in [("home/#", "then {home}"), ("home/+/{home}/#", "no wildcard"),
                     ("{home}/#", "then {home}"), ("cep/{home}/#", "cluster's own")]:
        with pytest.raises(LayoutError, match=why.replace("{", "\\{").replace("}", "\\}")):
            HomeTopic.parse(bad)
    with pytest.raises(LayoutError, match="not a home id"):
        check_home("a.b")


def test_reply_subjects_give_the_sequence_and_the_time():
    assert parse_reply("$JS.ACK.CEP.p1.1.4.2.1796198101946687518.0") == \
        (4, 2, 1796198101946687518)
    assert parse_reply("$JS.ACK.dom.ACC.CEP.p1.1.4.2.1796198101946687518.0.x") == \
        (4, 2, 1796198101946687518)
    assert parse_reply("_INBOX.x") is None


def test_shares_and_the_plan():
    assert [fair_share(["a", "b", "c"], me, 16) for me in "abc"] == [6, 5, 5]
    alive = {"a": {}, "b": {}}
    free = [Lease(n, None, None, 0.0, 0) for n in range(4)]
    assert plan(free, set(), alive, "a", 100.0).claim == [0, 1]
    held = [Lease(n, "a", "i", 200.0, 5) for n in range(4)]
    assert plan(held, {0, 1, 2, 3}, alive, "a", 100.0).release == [2, 3]
    # nobody waits for them (b is not alive): a keeps them all
    assert plan(held, {0, 1, 2, 3}, {"a": {}}, "a", 100.0).release == []
    expired = [Lease(n, "b", "i", 50.0, 5) for n in range(4)]
    assert plan(expired, set(), {"a": {}}, "a", 100.0).claim == [0, 1, 2, 3]


class Homes:
    """A partition of homes fed a generated stream, its outputs collected per home."""

    def __init__(self, rule_sets: WorkerRuleSets, live: int = 1000) -> None:
        self.lines: dict[str, list[str]] = {}
        self.numbers: dict[str, list[int]] = {}
        self.rule_sets = rule_sets
        self.live = LiveHomes(live)
        self.warnings: list[str] = []
        self.partition = self.make()

    def make(self) -> Partition:
        return Partition(0, self.rule_sets.get, self.emit, self.warnings.append, self.live,
                         lambda: 0.0)

    def emit(self, home, number, record, cause):
        buffer = io.StringIO()
        OutputWriter(buffer, home.rules.tz, flush=False)(record)
        self.lines.setdefault(home.id, []).append(buffer.getvalue().rstrip("\n"))
        self.numbers.setdefault(home.id, []).append(number)


def rule_sets(tmp_path: Path) -> WorkerRuleSets:
    shared = [(str(tmp_path / "shared.epl"), RULES)]
    loaded, _ = check_texts(shared, [])
    assert loaded.ok, loaded.diagnostics.sorted()
    return WorkerRuleSets(shared, loaded, kv=None, report=print)  # type: ignore[arg-type]


def generated(homes: int, messages: int, seed: int = 7) -> list[tuple[int, float, str, str, bytes]]:
    """(seq, ts, home, topic, payload), the homes interleaved, the time growing (and
    sometimes standing still), ticks (home "") in between."""
    rng = random.Random(seed)
    ts = 1_800_000_000.0
    out = []
    for seq in range(1, messages + 1):
        ts += rng.choice([0.0, 0.5, 1.0, 3.0, 8.0])
        if rng.random() < 0.05:
            out.append((seq, ts, "", "", b""))
            continue
        home = f"h{rng.randrange(homes)}"
        if rng.random() < 0.4:
            topic, payload = "door", dumps_compact({"contact": rng.random() < 0.5})
        elif rng.random() < 0.9:
            topic = f"rooms/{rng.choice(['kitchen', 'hall'])}/temp"
            payload = dumps_compact({"value": round(rng.uniform(18, 32), 1)})
        else:
            topic, payload = "rooms/kitchen/temp", b"not json"
        out.append((seq, ts, home, topic, bytes(payload)))
    return out


def replayed(tmp_path: Path, rule_sets: WorkerRuleSets, home: str, stream, until: float) -> list[str]:
    trace = tmp_path / f"{home}.jsonl"
    with TraceWriter.open(trace) as writer:
        for _, ts, h, topic, payload in stream:
            if h == home:
                writer.message(ts, topic, payload)
    rules = rule_sets.get(None)
    out = io.StringIO()
    replay(rules.catalog, str(trace), OutputWriter(out, rules.tz, flush=False), rules.tz,
           lambda message: None, until=until)
    return out.getvalue().splitlines()


def feed(partition: Partition, stream) -> None:
    for seq, ts, home, topic, payload in stream:
        if home:
            partition.take(seq, ts, home, topic, payload)
        else:
            partition.tick(seq, ts)


@pytest.mark.parametrize("live", [1000, 3])
def test_each_home_outputs_what_a_replay_of_its_messages_alone_does(tmp_path, live):
    """With every home live, and with only 3 live at a time (the others parked and
    restored again and again)."""
    sets = rule_sets(tmp_path)
    homes = Homes(sets, live=live)
    stream = generated(homes=12, messages=3000 if live > 3 else 1200)
    feed(homes.partition, stream)
    until = homes.partition.watermark
    assert homes.partition.stats.messages == sum(1 for s in stream if s[2])
    total = 0
    for number in range(12):
        home = f"h{number}"
        expected = replayed(tmp_path, sets, home, stream, until)
        assert homes.lines.get(home, []) == expected, home
        assert homes.numbers.get(home, []) == list(range(1, len(expected) + 1))
        total += len(expected)
    assert total > 150  # the rules did fire, timers included
    assert any('"rule": "door_open_long"' in line for lines in homes.lines.values()
               for line in lines)
    if live == 3:
        assert homes.live.parked_count > 100 and homes.partition.stats.restored > 100


def test_a_checkpoint_restored_mid_stream_goes_on_the_same(tmp_path):
    """Kill after a checkpoint at S, with more taken (and some homes' records written
    later than the header): the next holder restores and takes the stream from S+1;
    every home's outputs are still those of its replay, each number once."""
    sets = rule_sets(tmp_path)
    first = Homes(sets)
    stream = generated(homes=8, messages=2000, seed=11)
    feed(first.partition, stream[:900])
    header_seq, header_time = first.partition.seq, first.partition.watermark
    records = {r.home: r.encode() for r in first.partition.dirty_records()}
    feed(first.partition, stream[900:1200])  # taken, never checkpointed ...
    for record in first.partition.dirty_records()[:3]:  # ... but 3 homes' records written
        records[record.home] = record.encode()
    second = Homes(sets)
    second.partition.restore(header_seq, header_time,
                             [HomeRecord.decode(data) for data in records.values()])
    feed(second.partition, stream[900:])  # the consumer starts again at S+1
    until = second.partition.watermark
    for number in range(8):
        home = f"h{number}"
        expected = replayed(tmp_path, sets, home, stream, until)
        made = dict(zip(first.numbers.get(home, []), first.lines.get(home, [])))
        made.update(zip(second.numbers.get(home, []), second.lines.get(home, [])))
        assert [made[n] for n in sorted(made)] == expected, home
        assert sorted(made) == list(range(1, len(expected) + 1))
    assert second.partition.stats.skipped > 0  # the 3 homes skipped what they held


def test_a_rule_change_starts_that_home_fresh_and_no_other(tmp_path):
    sets = rule_sets(tmp_path)
    homes = Homes(sets)
    stream = generated(homes=4, messages=800, seed=3)
    feed(homes.partition, stream[:400])
    before = {h: list(lines) for h, lines in homes.lines.items()}
    seq, ts = stream[399][0], stream[399][1]
    assert homes.partition.rules_changed(seq + 1, ts, "h1", None)
    assert not homes.partition.rules_changed(seq + 1, ts, "h1", None)  # taken already
    later = [(s + 1, ts, h, t, p) for s, ts, h, t, p in stream[400:]]
    feed(homes.partition, later)
    until = homes.partition.watermark
    for number in range(4):
        home = f"h{number}"
        if home == "h1":  # fresh from the change: a replay of what came after it
            expected = before["h1"] + replayed(tmp_path, sets, home, later, until)
            assert homes.numbers["h1"][len(before["h1"])] == 1
        else:
            expected = replayed(tmp_path, sets, home, stream[:400] + later, until)
        assert homes.lines.get(home, []) == expected, home


def test_an_idle_home_takes_under_2_kb(tmp_path):
    """Homes that saw a message each, then parked: what each costs in memory."""
    sets = rule_sets(tmp_path)
    homes = Homes(sets, live=1)
    partition = homes.partition
    payload = dumps_compact({"value": 21.5})
    partition.take(1, 1_800_000_000.0, "warmup", "rooms/kitchen/temp", payload)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    count = 500
    for i in range(count):
        partition.take(i + 2, 1_800_000_001.0 + i, f"home-{i:05d}", "rooms/kitchen/temp",
                       payload)
    homes.live.park_idle(float("inf"))
    gc.collect()  # the parked engines' cycles: garbage, not memory in use
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_home = (after - before) / count
    assert all(h.engine is None and h.parked for h in partition.homes.values())
    assert per_home < 2048, f"{per_home:.0f} bytes per idle home"
