"""`cep cluster` and `cep worker` against a real three-node NATS cluster with JetStream
and NATS' own MQTT listener: setting up (idempotently), status, a home's own rule set
uploaded while the workers run, and a device on MQTT getting its actions back."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from cep.adapters.nats_names import STREAM, HomeTopic
from tests.broker import Broker, BusClient, CepProcess
from tests.cluster_helpers import Bus, expected_outputs, outputs_of, read_run
from tests.nats_cluster import NatsCluster

pytestmark = [pytest.mark.nats, pytest.mark.slow]

PARTITIONS = 4

SHARED = """
CREATE EVENT Door (contact BOOL) FROM TOPIC 'door';
CREATE EVENT Temp (value FLOAT) FROM TOPIC 'temp';

@name('door_open_long')
SELECT 'open' AS state
FROM PATTERN [ every Door(contact = false) -> (timer:interval(1 s) and not Door(contact = true)) ]
PUBLISH 'alarm/set' PAYLOAD {"alarm": "door"};

@name('warm')
SELECT avg(value) AS avg
FROM Temp#length(3)
HAVING avg(value) > 24
PUBLISH 'fan/set' PAYLOAD {"state": "ON"};
"""

OWN = """
@name('cold')
SELECT value
FROM Temp(value < 20)
PUBLISH 'notify' PAYLOAD {"cold": value};
"""

BAD = """
@name('cold')
SELECT valu FROM Temp(valu < 20);
"""

BUTTON = """
CREATE EVENT Button (action STRING) FROM TOPIC 'zigbee2mqtt/button';

@name('press')
ON Button(action = 'single')
PUBLISH 'zigbee2mqtt/light/set' PAYLOAD {"state": "ON"};
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = NatsCluster(tmp_path_factory.mktemp("nats"), nodes=3, mqtt=True).start()
    yield running
    CepProcess.kill_all()
    running.stop()


@pytest.fixture(scope="module")
def made(cluster, tmp_path_factory):
    """The cluster set up (the first test checks the messages before and after)."""
    folder = tmp_path_factory.mktemp("setup")
    before = cep(folder, "cluster", "status", "--nats", cluster.url)
    first = cep(folder, "cluster", "setup", "--nats", cluster.url, "--partitions",
                str(PARTITIONS))
    return SimpleNamespace(before=before, first=first, folder=folder)


def cep(folder: Path, *args: str) -> CepProcess:
    process = CepProcess(list(args), folder)
    process.wait()
    return process


def worker(cluster: NatsCluster, folder: Path, name: str, rules: Path) -> CepProcess:
    return CepProcess(["worker", str(rules), "--nats", cluster.url, "--name", name,
                       "--lease", "6s", "--checkpoint-every", "1s"], folder)


def stored_count(bus: Bus, subjects: str) -> int:
    async def go() -> int:
        info = await bus.js.stream_info(STREAM, subjects_filter=subjects)
        return sum((info.state.subjects or {}).values())
    return bus.call(go())


def all_held(bus: Bus, names: set[str]) -> bool:
    rows = bus.status()["partitions"]
    return all(row["worker"] in names for row in rows) and \
        {row["worker"] for row in rows} == names


def test_setup_makes_the_cluster_once_and_says_so(cluster, made):
    assert made.before.process.returncode == 1
    assert f"no cep cluster on {cluster.url}: the stream CEP is missing; run `cep cluster " \
           f"setup --nats {cluster.url}` first" in made.before.stderr[-1]
    assert made.first.process.returncode == 0, made.first.stderr
    assert made.first.stdout[0].startswith(
        "stream CEP: created: the messages of every home under home/{home}/# (subjects "
        "home.*.>), in 4 partitions by home (cep.in.{{partition(4,1)}}.home."
        "{{wildcard(1)}}.>), 3 replicas, kept 7 days")
    assert [line.split(":")[0] for line in made.first.stdout] == [
        "stream CEP", "stream CEP_OUT", "key-value bucket cep-leases",
        "key-value bucket cep-checkpoints", "key-value bucket cep-rules"]
    again = cep(made.folder, "cluster", "setup", "--nats", cluster.url, "--partitions", "4")
    assert again.process.returncode == 0
    assert again.stdout == [
        "stream CEP: exists, unchanged (4 partitions of home/{home}/#, 3 replicas)",
        "stream CEP_OUT: exists, unchanged", "key-value bucket cep-leases: exists, unchanged",
        "key-value bucket cep-checkpoints: exists, unchanged",
        "key-value bucket cep-rules: exists, unchanged"]
    other = cep(made.folder, "cluster", "setup", "--nats", cluster.url, "--partitions", "8")
    assert other.process.returncode == 1
    assert "stream CEP already partitions home/{home}/# in 4 partitions; home/{home}/# in 8 " \
           "would move homes to other partitions" in other.stderr[-1]
    bad = cep(made.folder, "cluster", "setup", "--nats", cluster.url,
              "--home-topic", "home/+/{home}/#")
    assert bad.process.returncode == 2
    assert "the level '+' before {home} must be plain letters" in bad.stderr[-1]
    status = cep(made.folder, "cluster", "status", "--nats", cluster.url)
    assert status.process.returncode == 0
    assert status.stdout[0].startswith("stream CEP: ")
    assert status.stdout[1] == "workers alive: 0"
    assert len([line for line in status.stdout if line.endswith("(free)")
                or "(free)" in line]) == 4
    as_json = json.loads(cep(made.folder, "cluster", "status", "--nats", cluster.url,
                             "--format", "json").stdout[0])
    assert [row["worker"] for row in as_json["partitions"]] == [None] * 4
    nowhere = cep(made.folder, "cluster", "status", "--nats", "nats://127.0.0.1:1")
    assert nowhere.process.returncode == 1
    assert "cannot connect to nats://127.0.0.1:1" in nowhere.stderr[-1]


def test_a_homes_own_rule_set_takes_effect_while_running_for_that_home_only(
        cluster, made, tmp_path):
    (tmp_path / "shared.epl").write_text(SHARED)
    (tmp_path / "own.epl").write_text(OWN)
    (tmp_path / "bad.epl").write_text(BAD)
    workers = [worker(cluster, tmp_path, name, tmp_path / "shared.epl") for name in ("a", "b")]
    bus = Bus(cluster.url)
    try:
        bus.wait(lambda: all_held(bus, {"a", "b"}), "both workers holding partitions")
        temps = [18.0, 26.0, 27.5, 19.0, 30.0, 17.5, 25.0, 24.0]

        def messages(first: int) -> list:
            out = []
            for i in range(first, first + 80):
                for home in ("r1", "r2"):
                    if i % 5 == 0:
                        out.append((f"home.{home}.door",
                                    json.dumps({"contact": i % 10 == 0}).encode(), None))
                    else:
                        out.append((f"home.{home}.temp",
                                    json.dumps({"value": temps[i % len(temps)]}).encode(), None))
            return out

        bus.publish(messages(0))
        refused = cep(tmp_path, "cluster", "rules", "put", "r1", str(tmp_path / "bad.epl"),
                      "--nats", cluster.url)
        assert refused.process.returncode == 1
        assert any("unknown name `valu`" in line for line in refused.stderr)
        assert refused.stderr[-1] == ("cep: error: r1's rule set has 2 errors (checked with the "
                                      "1 shared rule file); nothing was changed")
        put = cep(tmp_path, "cluster", "rules", "put", "r1", str(tmp_path / "own.epl"),
                  "--nats", cluster.url)
        assert put.process.returncode == 0, put.stderr
        found = re.fullmatch(r"home r1: rule set (\w+) \(1 file: .*own\.epl\) stored; it takes "
                             r"effect at stream sequence (\d+), where the home's state starts "
                             r"fresh", put.stdout[0])
        assert found, put.stdout
        marker = int(found.group(2))
        same = cep(tmp_path, "cluster", "rules", "put", "r1", str(tmp_path / "own.epl"),
                   "--nats", cluster.url)
        assert same.stdout == ["home r1: already has this rule set; nothing changed"]
        # devices of r2 try to give it r1's (stored) rule set: no switch
        forged = json.dumps({"rules": found.group(1)}).encode()
        bus.publish([("home.r2.$cep.rules", forged, None),  # a plain NATS publish
                     ("home.r2.$cep.rules", forged, {"Cep-Rules": "shared"}),
                     ("home.r2.$cep.rules", json.dumps({"rules": "0" * 16}).encode(),
                      {"Cep-Rules": "0" * 16})])  # a rule set never stored
        device = BusClient(SimpleNamespace(port=cluster.nodes[0].mqtt_port),  # type: ignore[arg-type]
                           topics=("home/r2/zigbee2mqtt/light/set",), client_id="device-r2")
        try:
            device.publish("home/r2/$cep/rules", forged, qos=1)
        finally:
            device.close()
        bus.wait(lambda: stored_count(bus, "cep.in.*.home.r2.$cep.rules") == 4,
                 "the four forged markers in the stream")
        bus.publish(messages(80))
        bus.wait(lambda: bus.caught_up(PARTITIONS), "every message taken")
        for process in workers:
            assert process.stop(signal.SIGTERM) == 0, process.stderr
        run = read_run(bus, HomeTopic.parse("home/{home}/#"), PARTITIONS)
    finally:
        bus.close()
    logs = [line for process in workers for line in process.stderr]
    assert any(f"home r1: runs its own rule set {found.group(1)} from stream sequence "
               f"{marker:,}, with a fresh state" in line for line in logs)
    shared = [("shared.epl", SHARED)]
    for home in ("r1", "r2"):
        mine = [m for m in run.messages if m.home == home and "Cep-Output" not in m.headers]
        last = run.headers[mine[0].partition]
        taken = [m for m in mine if m.seq <= last["seq"] and m.topic != "$cep/rules"]
        if home == "r2":  # untouched (forged markers and all): one replay of its messages
            assert len([m for m in mine if m.topic == "$cep/rules"]) == 4
            lines, _ = expected_outputs(tmp_path, shared, taken, last["watermark"], home)
            assert outputs_of(run, home) == lines
            assert not any('"rule": "cold"' in line for line in outputs_of(run, home))
            continue
        (at,) = [m for m in mine if m.topic == "$cep/rules"]
        assert at.seq == marker
        before, _ = expected_outputs(tmp_path, shared, [m for m in taken if m.seq < marker],
                                     at.ts, "r1-before")
        after, _ = expected_outputs(tmp_path, [*shared, ("own.epl", OWN)],
                                    [m for m in taken if m.seq > marker], last["watermark"],
                                    "r1-after")
        assert outputs_of(run, home, epoch=0) == before
        assert outputs_of(run, home, epoch=marker) == after
        assert any('"rule": "cold"' in line for line in after)
        assert not any('"rule": "cold"' in line for line in before)
    # ... and said so: once per home and reason, each counted
    assert not any("home r2: runs" in line for line in logs)
    refused = "home r2: refused a rule switch on its topic $cep/rules ({}); rule switches " \
              "come only from `cep cluster rules put`"
    assert sum(refused.format("it has no Cep-Rules header") in line for line in logs) == 1
    assert sum(refused.format("its Cep-Rules header and its body name different rule sets")
               in line for line in logs) == 1
    assert sum(refused.format(f"its rule set {'0' * 16} is not in the bucket cep-rules")
               in line for line in logs) == 1
    assert sum(int(m.group(1)) for line in logs
               if (m := re.search(r"; (\d+) rule switch(?:es)? refused;", line))) == 4


BRIDGE = """
connection nats
address 127.0.0.1:{port}
bridge_protocol_version mqttv311
try_private false
notifications false
cleansession false
clientid {client_id}
topic home/# out 1
topic home/+/zigbee2mqtt/+/set in 1
"""


def test_a_device_on_the_nats_mqtt_listener_gets_its_actions_back(cluster, made, tmp_path):
    """Directly on NATS' MQTT listener, and on a mosquitto bridged to it (the
    configuration docs/cluster.md gives)."""
    (tmp_path / "button.epl").write_text(BUTTON)
    process = worker(cluster, tmp_path, "m", tmp_path / "button.epl")
    bus = Bus(cluster.url)
    devices: list[BusClient] = []
    broker = None
    try:
        bus.wait(lambda: all_held(bus, {"m"}), "the worker holding every partition")
        node = cluster.nodes[2]
        device = BusClient(SimpleNamespace(port=node.mqtt_port),  # type: ignore[arg-type]
                           topics=("home/m7/zigbee2mqtt/light/set",), client_id="device-m7")
        devices.append(device)
        device.publish("home/m7/zigbee2mqtt/button", json.dumps({"action": "single"}), qos=1)
        answer = device.wait_topic("home/m7/zigbee2mqtt/light/set")
        assert json.loads(answer.payload) == {"state": "ON"}

        # a mosquitto bridged to another node's MQTT listener
        (tmp_path / "mosquitto").mkdir()
        broker = Broker(tmp_path / "mosquitto", BRIDGE.format(
            port=cluster.nodes[1].mqtt_port, client_id="bridge-test")).start()
        bus.wait(lambda: "Received SUBACK" in broker.log.read_text(errors="replace"),
                 "the bridge subscribed on NATS")
        bridged = BusClient(broker, topics=("home/b8/#",), client_id="device-b8")
        devices.append(bridged)
        bridged.publish("home/b8/zigbee2mqtt/button", json.dumps({"action": "single"}), qos=1)
        got: list = []
        answer = bridged.wait_for(lambda m: got.append(m) or
                                  m.topic == "home/b8/zigbee2mqtt/light/set")
        assert json.loads(answer.payload) == {"state": "ON"}
        assert process.stop(signal.SIGTERM) == 0, process.stderr
        while not bridged.messages.empty():
            got.append(bridged.messages.get())
        # each once: the action, and the device's own message (not echoed back by NATS)
        assert [m.topic for m in got] == [
            "home/b8/zigbee2mqtt/button", "home/b8/zigbee2mqtt/light/set"]
    finally:
        for client in devices:
            client.close()
        if broker is not None:
            broker.stop()
        bus.close()
    # At least the two presses: the stream also holds the worker's own actions (their
    # subjects are the homes' too), taken or not when it was stopped, and the worker, which
    # holds every partition, takes what the earlier tests' homes left after their last
    # checkpoints (seen once: a count other than 2 or 4).
    counts = [int(found.group(1)) for line in process.stderr
              if (found := re.search(r"worker m: (\d+) messages", line))]
    assert len(counts) == 1 and counts[0] >= 2, "\n".join(process.stderr)


def test_a_joining_worker_gets_its_share_and_a_clean_stop_hands_over_at_once(
        cluster, made, tmp_path):
    (tmp_path / "shared.epl").write_text(SHARED)
    first = worker(cluster, tmp_path, "j1", tmp_path / "shared.epl")
    bus = Bus(cluster.url)
    try:
        bus.wait(lambda: all_held(bus, {"j1"}), "j1 holding every partition")
        second = worker(cluster, tmp_path, "j2", tmp_path / "shared.epl")
        bus.wait(lambda: sorted(row["worker"] for row in bus.status()["partitions"])
                 == ["j1", "j1", "j2", "j2"], "the partitions shared 2 and 2")
        assert sum("gave back partition" in line for line in first.stderr) == 2
        assert first.stop(signal.SIGTERM) == 0, first.stderr
        bus.wait(lambda: all_held(bus, {"j2"}), "j2 holding every partition")
        assert second.stop(signal.SIGTERM) == 0, second.stderr
    finally:
        bus.close()
    took = [line for line in second.stderr if "took partition" in line]
    assert len(took) == 4, took
    # handed over, not taken once a lease expired: j1 deleted its leases as it stopped
    assert all("(it was free)" in line for line in took), took
