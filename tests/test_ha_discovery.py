"""Home Assistant MQTT discovery (`cep run --ha-discovery`), against a real mosquitto.

The configurations are read back as a newcomer (Home Assistant) gets them: retained,
from a client that subscribes after cep announced them, and checked field by field.
Every wait is for a message or a line, with the deadline of tests/broker.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cep.adapters.ha_discovery import HaDiscovery, key_text, prefix_problem, safe_id
from tests.broker import WAIT, Broker, BusClient, CepProcess, wait_until

RULES = """\
CREATE EVENT Door (door STRING, contact BOOL) FROM TOPIC 'home/door/{door}';
CREATE EVENT Temp (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temp';

CREATE CONTEXT DoorOpen PARTITION BY door
    INITIATED BY Door(contact = false) TERMINATED BY Door(contact = true);
CREATE CONTEXT Hot INITIATED BY Temp(value > 30) TERMINATED BY Temp(value <= 30);

@name('hot')
SELECT t.room AS room, t.value AS value FROM PATTERN [ every t=Temp(value > 30) ];

@name('door opened')
SELECT d.door AS door FROM PATTERN [ every d=Door(contact = false) ];
"""

# the same home without the `hot` rule and the `Hot` context
FEWER_RULES = RULES.split("CREATE CONTEXT Hot")[0] + RULES.split("every t=Temp(value > 30) ];\n")[1]

CID = "test-cep"
HA = "homeassistant"
BASE = f"cep/{CID}"
DEVICE = {"identifiers": [f"cep_{CID}"], "name": f"cep {CID}", "manufacturer": "cep",
          "model": "complex event processing engine", "sw_version": "0.1.0"}
ORIGIN = {"name": "cep", "sw_version": "0.1.0"}
AVAILABILITY = {"availability_topic": "cep/status", "payload_available": "online",
                "payload_not_available": "offline"}
DOOR_ID = safe_id("door opened")  # a space: made safe, with a hash of the name

HOT_CONTEXT = f"{HA}/binary_sensor/{CID}/context_Hot/config"
DOOR_CONTEXT = f"{HA}/binary_sensor/{CID}/context_DoorOpen__hall/config"
HOT_TRIGGER = f"{HA}/device_automation/{CID}/rule_hot_fired/config"
HOT_SENSOR = f"{HA}/sensor/{CID}/rule_hot_last_fired/config"
DOOR_TRIGGER = f"{HA}/device_automation/{CID}/rule_{DOOR_ID}_fired/config"
DOOR_SENSOR = f"{HA}/sensor/{CID}/rule_{DOOR_ID}_last_fired/config"
AT_START = (HOT_CONTEXT, HOT_TRIGGER, HOT_SENSOR, DOOR_TRIGGER, DOOR_SENSOR)


def expected_configs() -> dict[str, dict]:
    def binary(name: str, unique: str, state: str) -> dict:
        return {"name": name, "unique_id": f"cep_{CID}_{unique}", "state_topic": state,
                "payload_on": "ON", "payload_off": "OFF", "qos": 1, **AVAILABILITY,
                "device": DEVICE, "origin": ORIGIN}

    def trigger(rule: str, rid: str) -> dict:
        return {"automation_type": "trigger", "topic": f"{BASE}/rule/{rid}/fired",
                "type": "fired", "subtype": rule, "qos": 1, "device": DEVICE, "origin": ORIGIN}

    def sensor(rule: str, rid: str) -> dict:
        return {"name": f"{rule} last fired", "unique_id": f"cep_{CID}_rule_{rid}_last_fired",
                "device_class": "timestamp", "state_topic": f"{BASE}/rule/{rid}/last_fired",
                "json_attributes_topic": f"{BASE}/rule/{rid}/attributes", "qos": 1,
                **AVAILABILITY, "device": DEVICE, "origin": ORIGIN}

    return {
        HOT_CONTEXT: binary("Hot", "context_Hot", f"{BASE}/context/Hot/state"),
        DOOR_CONTEXT: binary("DoorOpen hall", "context_DoorOpen__hall",
                             f"{BASE}/context/DoorOpen/hall/state"),
        HOT_TRIGGER: trigger("hot", "hot"), HOT_SENSOR: sensor("hot", "hot"),
        DOOR_TRIGGER: trigger("door opened", DOOR_ID), DOOR_SENSOR: sensor("door opened", DOOR_ID),
    }


@pytest.fixture(autouse=True)
def no_cep_left_running():
    yield
    CepProcess.kill_all()


def start_cep(tmp_path: Path, rules: str, broker: Broker, *extra: str) -> CepProcess:
    path = tmp_path / "home.epl"
    path.write_text(rules)
    cep = CepProcess(["run", str(path), "--broker", broker.url, "--client-id", CID,
                      "--reconnect-min", "0.1", "--reconnect-max", "0.5", *extra,
                      "--ha-discovery"], cwd=tmp_path)
    cep.wait_stderr("listening on")
    return cep


def retained(broker: Broker, topics: tuple[str, ...], filters: tuple[str, ...] = ("#",)
             ) -> dict[str, bytes]:
    """What a newcomer gets retained on `topics` (waiting until it has them all)."""
    client = BusClient(broker, filters)
    got: dict[str, bytes] = {}
    try:
        def complete() -> bool:
            while not client.messages.empty():
                message = client.messages.get()
                if message.retain:
                    got[message.topic] = message.payload
            return all(topic in got for topic in topics)
        wait_until(complete, f"the retained {sorted(set(topics) - set(got))}")
    finally:
        client.close()
    return got


class Seen:
    """Every message a BusClient got, kept: waits look at all of them, in any order."""

    def __init__(self, bus: BusClient) -> None:
        self.bus = bus
        self.messages: list = []

    def wait(self, topic: str, payload: bytes | None = None) -> object:
        found: list = []

        def there() -> bool:
            while not self.bus.messages.empty():
                self.messages.append(self.bus.messages.get())
            found[:] = [m for m in self.messages if m.topic == topic
                        and (payload is None or m.payload == payload)]
            return bool(found)
        wait_until(there, f"{topic} {payload!r}")
        return found[-1]


def test_safe_ids_keys_and_prefixes():
    assert safe_id("night_lights-2") == "night_lights-2"
    made = safe_id("door opened")
    assert made.startswith("door_opened_") and made != safe_id("door_opened")
    assert safe_id("a/b") != safe_id("a+b")  # both a_b, told apart by the hash
    assert key_text(["kitchen", 2]) == "kitchen 2" and key_text(3) == "3"
    assert prefix_problem("homeassistant") is None and prefix_problem("ha/home") is None
    assert prefix_problem("ha/#") and prefix_problem("ha/") and prefix_problem("")


def test_outputs_and_ids_in_process(tmp_path):
    """The messages HaDiscovery sends, without a broker: the engine's records in, the
    configs and states out, in order."""
    from datetime import UTC

    from cep.cli.common import load_runnable_rules

    sent: list[tuple[str, bytes, bool]] = []
    rules = tmp_path / "home.epl"
    rules.write_text(RULES)
    catalog = load_runnable_rules([str(rules)]).catalog
    discovery = HaDiscovery(catalog, "my cep/1", None, lambda t, p, r: sent.append((t, p, r)),
                            UTC, prefix="ha", run="R1")
    node = discovery.node
    assert node.startswith("my_cep_1_")
    discovery.start()
    configs = {t: json.loads(p) for t, p, r in sent if t.endswith("/config")}
    assert all(r for t, p, r in sent)  # configs, states and the list: all retained
    assert "availability_topic" not in configs[f"ha/binary_sensor/{node}/context_Hot/config"]
    assert (f"cep/{node}/context/Hot/state", b"OFF", True) in sent
    assert sent[-1][0] == f"cep/{node}/discovery"
    sent.clear()
    discovery.output({"ts": 0.0, "kind": "context-start", "context": "DoorOpen", "key": "x/y"})
    discovery.output({"ts": 0.5, "kind": "event", "rule": "hot", "attrs": {"room": "r"}})
    topics = [t for t, p, r in sent]
    kid = safe_id("x/y")
    assert topics == [f"ha/binary_sensor/{node}/context_DoorOpen__{kid}/config",
                      f"cep/{node}/discovery", f"cep/{node}/context/DoorOpen/{kid}/state",
                      f"cep/{node}/rule/hot/fired", f"cep/{node}/rule/hot/attributes",
                      f"cep/{node}/rule/hot/last_fired"]
    assert sent[-1][1] == b"1970-01-01T00:00:00.500+00:00"
    assert sent[3] == (f"cep/{node}/rule/hot/fired", b'{"room":"r"}', False)  # not retained


@pytest.mark.mqtt
@pytest.mark.slow
def test_one_device_its_entities_and_their_states_follow_the_run(tmp_path, broker):
    bus = BusClient(broker)
    cep = start_cep(tmp_path, RULES, broker)
    try:
        bus.wait_topic("cep/status", b"online")
        expected = expected_configs()
        got = retained(broker, (*AT_START, f"{BASE}/context/Hot/state", f"{BASE}/discovery"))
        for topic in AT_START:
            config = json.loads(got[topic])
            for field, value in expected[topic].items():
                assert config[field] == value, (topic, field)
            assert set(config) == set(expected[topic]), topic
        # announced at start, no door yet: only the contexts without keys and the rules
        assert not any("DoorOpen" in topic for topic in got), sorted(got)
        assert got[f"{BASE}/context/Hot/state"] == b"OFF"

        bus.publish("home/kitchen/temp", '{"value": 35}')
        fired = bus.wait_topic(f"{BASE}/rule/hot/fired")
        assert json.loads(fired.payload) == {"room": "kitchen", "value": 35.0}
        assert not fired.retain
        bus.publish("home/door/hall", '{"contact": false}')  # a key appears: announced
        bus.wait_topic(f"{BASE}/context/DoorOpen/hall/state", b"ON")
        now = retained(broker, (DOOR_CONTEXT, f"{BASE}/rule/hot/last_fired"))
        assert json.loads(now[DOOR_CONTEXT]) == expected[DOOR_CONTEXT]
        assert now[f"{BASE}/context/Hot/state"] == b"ON"
        assert json.loads(now[f"{BASE}/rule/hot/attributes"]) == {"room": "kitchen",
                                                                  "value": 35.0}
        events = [json.loads(line) for line in cep.wait_stdout('"rule": "hot"').splitlines()]
        assert now[f"{BASE}/rule/hot/last_fired"].decode() == events[0]["ts"]

        bus.publish("home/door/hall", '{"contact": true}')
        bus.wait_topic(f"{BASE}/context/DoorOpen/hall/state", b"OFF")
        bus.publish("home/kitchen/temp", '{"value": 20}')
        bus.wait_topic(f"{BASE}/context/Hot/state", b"OFF")
        listed = json.loads(retained(broker, (f"{BASE}/discovery",))[f"{BASE}/discovery"])
        assert sorted(e["config"] for e in listed["entities"]) == sorted(expected)
    finally:
        status = cep.stop()
    assert status == 0
    # Home Assistant shows the device unavailable: its availability topic says offline
    bus.wait_topic("cep/status", b"offline")
    assert retained(broker, ("cep/status",), ("cep/status",))["cep/status"] == b"offline"
    bus.close()
    # what stdout gets is what it got without discovery: no context lines
    kinds = [json.loads(line)["kind"] for line in cep.stdout if line.strip()]
    assert kinds == ["event", "event"], cep.stdout
    assert any("0 actions published" in line for line in cep.stderr), cep.stderr


@pytest.mark.mqtt
@pytest.mark.slow
def test_a_restart_without_a_rule_removes_its_entities(tmp_path, broker):
    cep = start_cep(tmp_path, RULES, broker)
    bus = BusClient(broker)
    try:
        bus.publish("home/kitchen/temp", '{"value": 35}')
        bus.wait_topic(f"{BASE}/rule/hot/last_fired")
        bus.publish("home/door/hall", '{"contact": false}')
        bus.wait_topic(f"{BASE}/context/DoorOpen/hall/state", b"ON")
        retained(broker, (*AT_START, DOOR_CONTEXT))
    finally:
        assert cep.stop() == 0
    bus.wait_topic("cep/status", b"offline")

    seen = Seen(bus)
    # other rules: the state of the first run cannot go on in them (refused without --fresh)
    again = start_cep(tmp_path, FEWER_RULES, broker, "--contexts", "--fresh")
    try:
        # the rule `hot` and the context `Hot` are gone: their configs emptied, retained
        for topic in (HOT_CONTEXT, HOT_TRIGGER, HOT_SENSOR):
            seen.wait(topic, b"")
        for state in ("context/Hot/state", "rule/hot/last_fired", "rule/hot/attributes"):
            seen.wait(f"{BASE}/{state}", b"")
        # the door's key, seen last time, is still an entity: announced again, closed now
        seen.wait(f"{BASE}/context/DoorOpen/hall/state", b"OFF")
        kept = (DOOR_TRIGGER, DOOR_SENSOR, DOOR_CONTEXT)
        listing = json.dumps(sorted(kept))

        def settled() -> bool:
            seen.wait(f"{BASE}/discovery")
            last = [m for m in seen.messages if m.topic == f"{BASE}/discovery"][-1]
            return json.dumps(sorted(e["config"] for e in
                                     json.loads(last.payload)["entities"])) == listing
        wait_until(settled, "the list of entities without the removed ones")
        now = retained(broker, kept, (f"{HA}/#",))
        assert set(now) == set(kept)  # a newcomer no longer gets the removed ones
        assert json.loads(now[DOOR_CONTEXT]) == expected_configs()[DOOR_CONTEXT]
        bus.publish("home/door/hall", '{"contact": false}')
        seen.wait(f"{BASE}/context/DoorOpen/hall/state", b"ON")
        again.wait_stdout('"kind": "context-start"')  # --contexts still writes them
    finally:
        assert again.stop() == 0
        bus.close()
    # the previous list was discovery's, not a message for the rules
    assert any(" 0 unmatched" in line and "0 retained ignored" in line
               for line in again.stderr), again.stderr


def test_a_rule_file_taken_for_the_prefix_is_a_usage_error(tmp_path):
    rules = tmp_path / "home.epl"
    rules.write_text(RULES)
    result = subprocess.run([sys.executable, "-m", "cep", "run", "--ha-discovery", str(rules),
                             str(rules)], capture_output=True, text=True, timeout=WAIT,
                            cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "put --ha-discovery after the rule files" in result.stderr
