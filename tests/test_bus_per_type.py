"""One message, several event types: each type reads it on its own.

When several CREATE EVENT templates match a message, each type that converts it gives its
event, and a type that cannot (a value, a topic level, a missing or far-ahead TIMESTAMP
FROM) is a bad message of that type alone, counted once and reported with the type's name
under the usual per-topic limit.  A payload over the size limit is still bad as a whole
message.  Every event made from a message carries its topic as `source`; an event given
directly in a trace has none.

Checked at the bus mapping, end to end through `cep replay`, and on the live path (the
runner's per-message step, and a real mosquitto).
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC
from pathlib import Path

import pytest

from cep.adapters.bus import MAX_PAYLOAD, BadMessage, BusMapping
from cep.adapters.jsonlib import dumps_compact
from cep.adapters.live import LiveRunner
from cep.adapters.mqtt import BrokerSettings, ReceivedMessage
from cep.checks.loader import load_texts
from cep.cli import main
from cep.language.diagnostics import plural
from cep.runtime.engine import Engine
from tests.broker import WAIT, BusClient, wait_until

T0 = 1_800_000_000.0
TIMING = re.compile(r" in \d+\.\d+ s \([\d,]+ events/s\)$")

# ====================================================================== the bus mapping

MAPPING = """
CREATE EVENT Device (device STRING, battery INT) FROM TOPIC 'zigbee2mqtt/{device}';
CREATE EVENT Motion (device STRING, occupancy BOOL) FROM TOPIC 'zigbee2mqtt/{device}';
CREATE EVENT DoorText (status STRING) FROM TOPIC 'home/door' PAYLOAD AS status;
CREATE EVENT DoorOpen (open BOOL) FROM TOPIC 'home/door' PAYLOAD AS open;
CREATE EVENT Floor (n INT, lux FLOAT) FROM TOPIC 'floor/{n}/light';
CREATE EVENT AnyLight (lux FLOAT) FROM TOPIC 'floor/+/light';
CREATE EVENT Stamped (v INT) FROM TOPIC 'meter' TIMESTAMP FROM 'at';
CREATE EVENT Reading (v INT) FROM TOPIC 'meter';
CREATE EVENT Temp (value FLOAT) FROM TOPIC 'home/temp';
"""

NOT_BOOL = "is not a BOOL (expected ON/OFF, true/false or 1/0)"

# (id, topic, payload, events as (type, attrs), problems as (type, reason))
DECODED = [
    ("two types, both read it",
     "zigbee2mqtt/hall", b'{"battery": 80, "occupancy": true}',
     [("Device", {"device": "hall", "battery": 80}),
      ("Motion", {"device": "hall", "occupancy": True})],
     []),
    ("two types, one value bad: the other's event still comes",
     "zigbee2mqtt/hall", b'{"battery": "low", "occupancy": true}',
     [("Motion", {"device": "hall", "occupancy": True})],
     [("Device", 'Device.battery: "low" is not an INT')]),
    ("two types, the other one bad",
     "zigbee2mqtt/hall", b'{"battery": 80, "occupancy": "maybe"}',
     [("Device", {"device": "hall", "battery": 80})],
     [("Motion", f'Motion.occupancy: "maybe" {NOT_BOOL}')]),
    ("two types, both bad: a problem each, in declaration order",
     "zigbee2mqtt/hall", b'{"battery": "low", "occupancy": "maybe"}',
     [],
     [("Device", 'Device.battery: "low" is not an INT'),
      ("Motion", f'Motion.occupancy: "maybe" {NOT_BOOL}')]),
    ("not JSON: a problem for each type that reads the payload",
     "zigbee2mqtt/hall", b"oops",
     [],
     [("Device", 'payload "oops" is not valid JSON (Device expects a JSON object)'),
      ("Motion", 'payload "oops" is not valid JSON (Motion expects a JSON object)')]),
    ("PAYLOAD AS: one type takes the text, the other cannot convert it",
     "home/door", b"OPEN",
     [("DoorText", {"status": "OPEN"})],
     [("DoorOpen", f'DoorOpen.open: "OPEN" {NOT_BOOL}')]),
    ("a topic level one type cannot convert concerns that type only",
     "floor/first/light", b'{"lux": 3}',
     [("AnyLight", {"lux": 3.0})],
     [("Floor", 'Floor.n (from the topic): "first" is not an INT')]),
    ("a missing TIMESTAMP FROM concerns that type only",
     "meter", b'{"v": 1}',
     [("Reading", {"v": 1})],
     [("Stamped", "Stamped: the payload has no timestamp at 'at'")]),
    ("a TIMESTAMP FROM more than a day ahead concerns that type only",
     "meter", json.dumps({"v": 2, "at": T0 + 86_401}).encode(),
     [("Reading", {"v": 2})],
     [("Stamped", "Stamped: its time 2027-01-16T08:00:01.000+00:00 is more than a day "
                  "ahead of the message's (2027-01-15T08:00:00.000+00:00)")]),
    ("one type, bad: as before, no event and one problem",
     "home/temp", b'{"value": "hot"}',
     [],
     [("Temp", 'Temp.value: "hot" is not a FLOAT')]),
    ("one type, good",
     "home/temp", b'{"value": 21.5}',
     [("Temp", {"value": 21.5})],
     []),
    ("no template matches: nothing, and no problem (unmatched)",
     "zigbee2mqtt/hall/set", b'{"battery": "low"}',
     [],
     []),
]


def bus_of(rules: str) -> BusMapping:
    loaded = load_texts([("rules.epl", rules)])
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    return BusMapping.from_catalog(loaded.catalog, UTC)


BUS = bus_of(MAPPING)


@pytest.mark.parametrize("topic, payload, events, problems",
                         [case[1:] for case in DECODED], ids=[case[0] for case in DECODED])
def test_each_type_reads_the_message_on_its_own(topic, payload, events, problems):
    for _ in range(2):  # the second time from the topic cache: the same answer
        got, bad = BUS.decode(topic, payload, T0, ahead_of=T0)
        assert [(e.type, e.attrs) for e in got] == events
        assert [e.ts for e in got] == [T0] * len(events)
        assert [e.source for e in got] == [topic] * len(events)
        assert all(isinstance(p, BadMessage) for p in bad)
        assert [(p.type_name, p.reason) for p in bad] == problems
        assert [str(p) for p in bad] == [reason for _, reason in problems]


@pytest.mark.parametrize("topic", ["zigbee2mqtt/hall", "home/temp"])
def test_a_payload_over_the_limit_is_bad_as_a_whole_message(topic):
    over = json.dumps({"battery": 1, "value": "x" * MAX_PAYLOAD}).encode()
    with pytest.raises(BadMessage) as info:
        BUS.decode(topic, over, T0)
    assert info.value.type_name is None
    assert info.value.reason == (f"the payload is {len(over):,} bytes "
                                 f"(at most {MAX_PAYLOAD:,} are read)")


def test_an_event_given_directly_has_no_source():
    event = BUS.make_event("Motion", T0, {"device": "hall", "occupancy": True})
    assert event.source is None and event.attrs == {"device": "hall", "occupancy": True}
    with pytest.raises(BadMessage) as info:
        BUS.make_event("Motion", T0, {"occupancy": "maybe"})
    assert info.value.type_name == "Motion"


# ====================================================================== cep replay

RULES = """
CREATE EVENT Device (device STRING, battery INT) FROM TOPIC 'zigbee2mqtt/{device}';
CREATE EVENT Motion (device STRING, occupancy BOOL) FROM TOPIC 'zigbee2mqtt/{device}';
CREATE EVENT Temp (value FLOAT) FROM TOPIC 'home/temp';
@name('battery') SELECT device, battery FROM Device;
@name('motion') SELECT device, occupancy FROM Motion;
@name('temp') SELECT value FROM Temp;
"""

HALL = "zigbee2mqtt/hall"
BATTERY_LOW = 't.jsonl:{line}: bad message on zigbee2mqtt/hall: Device.battery: "low" is not an INT'
MAYBE = f'Motion.occupancy: "maybe" {NOT_BOOL}'
BIG = {"battery": 1, "pad": "x" * MAX_PAYLOAD}  # its compact JSON is the payload replayed


def at(minute: int) -> str:
    return f"2027-01-15T08:{minute:02d}:00+00:00"


def message(minute: int, topic: str, payload) -> dict:
    return {"ts": at(minute), "topic": topic, "payload": payload}


def output(minute: int, rule: str, attrs: dict) -> dict:
    return {"ts": f"2027-01-15T08:{minute:02d}:00.000+00:00", "kind": "event", "rule": rule,
            "type": rule, "context": None, "key": None, "attrs": attrs}


def summary(with_events: int, events: int, bad: int, outputs: int, unmatched: int = 0,
            unreadable: int = 0) -> str:
    """The replay summary without the timing: the messages that made events, were
    unmatched, or that no type could read (`bad`), then the events, bad messages (one per
    type that could not read a message) and outputs."""
    messages = with_events + unmatched + unreadable
    kinds = [f"{with_events} with events"] + [
        f"{count} {what}" for count, what in ((unmatched, "unmatched"), (unreadable, "bad"))
        if count]
    return (f"t.jsonl: {plural(messages, 'line')}: {plural(messages, 'message')} "
            f"({', '.join(kinds)}), 0 bad lines; {plural(events, 'event')}, "
            f"{plural(bad, 'bad message')}, {plural(outputs, 'output')}")


# (id, trace lines, output lines, stderr lines without the timing)
REPLAYS = [
    ("two types, both good",
     [message(0, HALL, {"battery": 80, "occupancy": True})],
     [output(0, "battery", {"device": "hall", "battery": 80}),
      output(0, "motion", {"device": "hall", "occupancy": True})],
     [summary(1, 2, 0, 2)]),
    ("one type bad: the other's event still arrives, one bad message naming the type",
     [message(0, HALL, {"battery": "low", "occupancy": True})],
     [output(0, "motion", {"device": "hall", "occupancy": True})],
     [BATTERY_LOW.format(line=1), summary(1, 1, 1, 1)]),
    ("both types bad: two bad messages (the second held back by the topic's limit)",
     [message(0, HALL, {"battery": "low", "occupancy": "maybe"})],
     [],
     [BATTERY_LOW.format(line=1), summary(0, 0, 2, 0, unreadable=1)]),
    ("the held-back type's failure is reported a minute later, with the count",
     [message(0, HALL, {"battery": "low", "occupancy": "maybe"}),
      message(1, HALL, {"battery": 80, "occupancy": "maybe"})],
     [output(1, "battery", {"device": "hall", "battery": 80})],
     [BATTERY_LOW.format(line=1),
      f"t.jsonl:2: bad message on zigbee2mqtt/hall: {MAYBE} "
      "(and 1 more on this topic since the last report)",
      summary(1, 1, 3, 1, unreadable=1)]),
    ("not JSON: a bad message for each type",
     [message(0, HALL, "oops")],
     [],
     ['t.jsonl:1: bad message on zigbee2mqtt/hall: payload "oops" is not valid JSON '
      "(Device expects a JSON object)", summary(0, 0, 2, 0, unreadable=1)]),
    ("a payload over the limit is one bad message, however many types",
     [message(0, HALL, BIG)],
     [],
     [f"t.jsonl:1: bad message on zigbee2mqtt/hall: the payload is "
      f"{len(dumps_compact(BIG)):,} "
      f"bytes (at most {MAX_PAYLOAD:,} are read)", summary(0, 0, 1, 0, unreadable=1)]),
    ("one type bad on its own topic: as before",
     [message(0, "home/temp", {"value": "hot"}), message(1, "home/temp", {"value": 20})],
     [output(1, "temp", {"value": 20.0})],
     ['t.jsonl:1: bad message on home/temp: Temp.value: "hot" is not a FLOAT',
      summary(1, 1, 1, 1, unreadable=1)]),
    ("unmatched, and events given directly, are unchanged",
     [message(0, "zigbee2mqtt/hall/set", {"battery": "low"}),
      {"ts": at(1), "event": "Motion", "device": "attic", "occupancy": "ON"},
      {"ts": at(2), "event": "Motion", "device": "attic", "occupancy": "maybe"}],
     [output(1, "motion", {"device": "attic", "occupancy": True})],
     [f"t.jsonl:3: bad message on Motion: {MAYBE}", summary(1, 1, 1, 1, unmatched=1, unreadable=1)]),
]


def cep_replay(tmp_path: Path, lines: list[dict], capsys, monkeypatch
               ) -> tuple[int, list[dict], list[str]]:
    (tmp_path / "rules.epl").write_text(RULES, encoding="utf-8")
    with open(tmp_path / "t.jsonl", "w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line) + "\n")
    monkeypatch.chdir(tmp_path)
    status = main(["replay", "rules.epl", "--trace", "t.jsonl", "--tz", "UTC"])
    captured = capsys.readouterr()
    outputs = [json.loads(line) for line in captured.out.splitlines()]
    return status, outputs, [TIMING.sub("", line) for line in captured.err.splitlines()]


@pytest.mark.parametrize("lines, outputs, stderr",
                         [case[1:] for case in REPLAYS], ids=[case[0] for case in REPLAYS])
def test_cep_replay_counts_and_reports_each_type(tmp_path, capsys, monkeypatch,
                                                 lines, outputs, stderr):
    status, out, err = cep_replay(tmp_path, lines, capsys, monkeypatch)
    assert status == 0
    assert out == outputs
    assert err == stderr


def test_cep_replay_gives_the_engine_each_event_with_its_topic(tmp_path, capsys,
                                                               monkeypatch):
    """(The fused reading hands a line's values to `process_values`, the general way an
    event to `process`: both are watched.)"""
    seen: list[tuple[str, str | None]] = []
    process, process_values = Engine.process, Engine.process_values

    def spy(engine, event):
        seen.append((event.type, event.source))
        return process(engine, event)

    def spy_values(engine, type_name, ts, attrs, source):
        seen.append((type_name, source))
        return process_values(engine, type_name, ts, attrs, source)

    monkeypatch.setattr(Engine, "process", spy)
    monkeypatch.setattr(Engine, "process_values", spy_values)
    lines = [message(0, "zigbee2mqtt/hall", {"battery": 80, "occupancy": True}),
             message(1, "zigbee2mqtt/attic", {"battery": "low", "occupancy": False}),
             message(2, "home/temp", {"value": 20}),
             {"ts": at(3), "event": "Motion", "device": "study", "occupancy": True}]
    status, out, _ = cep_replay(tmp_path, lines, capsys, monkeypatch)
    assert status == 0 and len(out) == 5
    assert seen == [("Device", "zigbee2mqtt/hall"), ("Motion", "zigbee2mqtt/hall"),
                    ("Motion", "zigbee2mqtt/attic"), ("Temp", "home/temp"),
                    ("Motion", None)]


# ====================================================================== live

LIVE = [
    # (id, topic, payload, events by type, bad messages, unmatched, reports)
    ("one type bad", HALL, b'{"battery": "low", "occupancy": true}',
     {"Motion": 1}, 1, 0,
     ['bad message on zigbee2mqtt/hall: Device.battery: "low" is not an INT']),
    ("both types bad", HALL, b'{"battery": "low", "occupancy": "maybe"}',
     {}, 2, 0,
     ['bad message on zigbee2mqtt/hall: Device.battery: "low" is not an INT']),
    ("both good", HALL, b'{"battery": 80, "occupancy": true}',
     {"Device": 1, "Motion": 1}, 0, 0, []),
    ("one type, bad", "home/temp", b'{"value": "hot"}',
     {}, 1, 0, ['bad message on home/temp: Temp.value: "hot" is not a FLOAT']),
    ("unmatched", "zigbee2mqtt/hall/set", b"{}", {}, 0, 1, []),
]


def live_runner(reports: list[str], outputs: list[dict], url: str = "mqtt://127.0.0.1:1",
                **options) -> LiveRunner:
    loaded = load_texts([("rules.epl", RULES)])
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    settings = BrokerSettings.from_url(url, status_topic="test/cep")
    return LiveRunner(loaded.catalog, settings, outputs.append, UTC, report=reports.append,
                      idle_wake=0.02, **options)


@pytest.mark.parametrize("topic, payload, by_type, bad, unmatched, reported",
                         [case[1:] for case in LIVE], ids=[case[0] for case in LIVE])
def test_the_live_runner_counts_each_type(topic, payload, by_type, bad, unmatched, reported):
    reports: list[str] = []
    outputs: list[dict] = []
    runner = live_runner(reports, outputs)  # never connected: messages handed in directly
    runner.engine.start(T0)
    runner._take(ReceivedMessage(topic, payload, 0, False, T0))
    stats = runner.stats
    assert (stats.messages, stats.events, stats.bad_messages, stats.unmatched) == (
        1, sum(by_type.values()), bad, unmatched)
    assert stats.events_by_type == by_type
    assert reports == reported
    assert runner.reporter.total == bad
    assert sorted(o["rule"] for o in outputs) == sorted(
        {"Device": "battery", "Motion": "motion", "Temp": "temp"}[t] for t in by_type)



@pytest.mark.mqtt
def test_live_one_bad_type_does_not_drop_the_other_types_event(broker):
    reports: list[str] = []
    outputs: list[dict] = []
    runner = live_runner(reports, outputs, broker.url)
    bus = BusClient(broker)
    thread = threading.Thread(target=runner.run, kwargs={"install_signals": False})
    thread.start()
    try:
        wait_until(runner.connection.connected.is_set, "cep subscribed")
        bus.publish(HALL, '{"battery": "low", "occupancy": true}')
        wait_until(lambda: runner.stats.messages == 1, "the message taken")
        bus.publish(HALL, '{"battery": 80, "occupancy": "maybe"}')
        wait_until(lambda: runner.stats.messages == 2, "the second message taken")
    finally:
        runner.stop()
        thread.join(WAIT)
        bus.close()
    assert not thread.is_alive()
    stats = runner.stats
    assert (stats.events, stats.bad_messages, stats.unmatched) == (2, 2, 0)
    assert stats.events_by_type == {"Motion": 1, "Device": 1}
    assert [(o["rule"], o["attrs"]) for o in outputs if o["kind"] == "event"] == [
        ("motion", {"device": "hall", "occupancy": True}),
        ("battery", {"device": "hall", "battery": 80})]
    # both on one topic within a minute: the first reported, the second counted
    assert [r for r in reports if r.startswith("bad message")] == [
        'bad message on zigbee2mqtt/hall: Device.battery: "low" is not an INT']
    assert runner.reporter.summary() == "2 bad messages on 1 topic: zigbee2mqtt/hall 2"
