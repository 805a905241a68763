"""`cep run` and `cep record` against a real mosquitto (tests/broker.py), end to end.

Each test starts its own broker on a free loopback port and runs cep as a child
process, as a user would; nothing is mocked.  Waits are for messages on the bus
or lines from cep (with a generous deadline), never a fixed time; and no test
depends on a timer on the real clock firing before or after something else (those
are in tests/test_live_runner.py, with a clock the test moves).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.broker import WAIT, Broker, BusClient, CepProcess, require, require_mosquitto, wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

RULES = """\
CREATE EVENT Temp (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temp';
CREATE EVENT Door (state STRING) FROM TOPIC 'home/door' PAYLOAD AS state;

@name('hot')
INSERT INTO Hot
SELECT t.room AS room, t.value AS value
FROM PATTERN [ every t=Temp(value > 30) ]
PUBLISH 'home/{room}/fan/set' PAYLOAD {"state": "ON", "temperature": value} QOS 1;

@name('door_open')
SELECT d.state AS state FROM PATTERN [ every d=Door(state = 'OPEN') ]
PUBLISH 'home/alert' PAYLOAD 'door open' RETAIN;
"""


@pytest.fixture(autouse=True)
def no_cep_left_running():
    yield
    CepProcess.kill_all()



@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "home.epl"
    path.write_text(RULES)
    return path


@pytest.fixture
def bus(broker: Broker):
    client = BusClient(broker)
    yield client
    client.close()


def start_cep(tmp_path: Path, rules: Path, broker: Broker, *extra: str) -> CepProcess:
    cep = CepProcess(["run", str(rules), "--broker", broker.url, "--reconnect-min", "0.1",
                      "--reconnect-max", "0.5", *extra], cwd=tmp_path)
    cep.wait_stderr("listening on")
    return cep


def outputs(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines if line.strip()]


def test_actions_reach_the_bus_with_payload_qos_and_retain(tmp_path, rules, broker, bus):
    cep = start_cep(tmp_path, rules, broker)
    try:
        bus.wait_topic("cep/status", b"online")
        bus.publish("home/kitchen/temp", '{"value": 35.5}')
        fan = bus.wait_topic("home/kitchen/fan/set")
        assert json.loads(fan.payload) == {"state": "ON", "temperature": 35.5}
        assert fan.qos == 1
        bus.publish("home/door", "OPEN")
        alert = bus.wait_topic("home/alert")
        assert alert.payload == b"door open" and alert.qos == 0
        cep.wait_stdout('"rule": "door_open"')
    finally:
        status = cep.stop()
    assert status == 0
    lines = outputs(cep.stdout)
    assert [(o["kind"], o["rule"]) for o in lines] == [
        ("event", "hot"), ("publish", "hot"), ("event", "door_open"), ("publish", "door_open")]
    assert lines[0]["attrs"] == {"room": "kitchen", "value": 35.5}
    assert lines[1]["payload"] == {"state": "ON", "temperature": 35.5} and lines[1]["qos"] == 1
    assert lines[3] == {**lines[3], "topic": "home/alert", "payload": "door open",
                        "retain": True}
    # the alert was published retained: a newcomer gets it
    late = BusClient(broker, ("home/alert",))
    try:
        assert late.wait_topic("home/alert").retain
    finally:
        late.close()


def test_a_bad_payload_is_reported_and_survived(tmp_path, rules, broker, bus):
    cep = start_cep(tmp_path, rules, broker)
    try:
        bus.publish("home/kitchen/temp", "not json at all")
        bus.publish("home/kitchen/temp", '{"value": "hot"}')
        bus.publish("home/hall/temp", '{"value": 40}')
        bus.wait_topic("home/hall/fan/set")
        cep.wait_stderr("bad message on home/kitchen/temp")
    finally:
        status = cep.stop()
    assert status == 0
    assert [o["attrs"]["room"] for o in outputs(cep.stdout) if o["kind"] == "event"] == ["hall"]
    # reported once per topic per minute, but every bad message counted
    assert sum("bad message on home/kitchen/temp:" in line for line in cep.stderr) == 1
    assert any("2 bad messages" in line for line in cep.stderr), cep.stderr


def test_status_topic_online_then_offline_on_sigterm_and_sigint(tmp_path, rules, broker, bus):
    for sig in (signal.SIGTERM, signal.SIGINT):
        cep = start_cep(tmp_path, rules, broker)
        bus.wait_topic("cep/status", b"online")
        assert cep.stop(sig) == 0
        offline = bus.wait_topic("cep/status", b"offline")
        assert offline.retain is False  # delivered live; the broker keeps it retained:
        watcher = BusClient(broker, ("cep/status",))
        try:
            assert watcher.wait_topic("cep/status").payload == b"offline"
        finally:
            watcher.close()
        assert any(line.startswith("live: ") for line in cep.stderr)


def test_last_will_says_offline_when_the_engine_dies(tmp_path, rules, broker, bus):
    cep = start_cep(tmp_path, rules, broker, "--status-topic", "house/cep")
    bus.wait_topic("house/cep", b"online")
    cep.kill()
    bus.wait_topic("house/cep", b"offline")


def test_retained_messages_are_state_not_events_unless_asked(tmp_path, rules, broker, bus):
    bus.publish("home/attic/temp", '{"value": 50}', retain=True)
    cep = start_cep(tmp_path, rules, broker)
    try:
        bus.publish("home/cellar/temp", '{"value": 31}')
        bus.wait_topic("home/cellar/fan/set")
    finally:
        assert cep.stop() == 0
    assert [o["attrs"]["room"] for o in outputs(cep.stdout) if o["kind"] == "event"] == [
        "cellar"]
    assert any("1 retained ignored" in line for line in cep.stderr)

    taking = start_cep(tmp_path, rules, broker, "--retained")
    try:
        bus.wait_topic("home/attic/fan/set")
    finally:
        assert taking.stop() == 0


def test_broker_restart_mid_run_reconnects_and_goes_on(tmp_path, rules, broker):
    cep = start_cep(tmp_path, rules, broker)
    try:
        bus = BusClient(broker)
        bus.publish("home/kitchen/temp", '{"value": 35}')
        bus.wait_topic("home/kitchen/fan/set")
        bus.close()
        broker.stop()
        cep.wait_stderr("connection to")
        broker.start()
        cep.wait_stderr("reconnected to")
        cep.wait_stderr("listening on", nth=2)  # subscribed again
        bus = BusClient(broker)
        bus.publish("home/garage/temp", '{"value": 36}')
        bus.wait_topic("home/garage/fan/set")
        bus.close()
    finally:
        assert cep.stop() == 0
    assert [o["attrs"]["room"] for o in outputs(cep.stdout) if o["kind"] == "event"] == [
        "kitchen", "garage"]
    assert any("1 reconnect," in line for line in cep.stderr), cep.stderr


def test_persistent_session_gets_qos1_messages_sent_while_away(tmp_path, rules, broker, bus):
    args = ("--persistent", "--client-id", "cep-test-persistent")
    first = start_cep(tmp_path, rules, broker, *args)
    assert first.stop() == 0
    bus.publish("home/loft/temp", '{"value": 33}', qos=1)   # nobody is listening now
    bus.publish("home/porch/temp", '{"value": 34}', qos=1)
    second = start_cep(tmp_path, rules, broker, *args)
    try:
        second.wait_stderr("session resumed")
        bus.wait_topic("home/porch/fan/set")
    finally:
        assert second.stop() == 0
    assert [o["attrs"]["room"] for o in outputs(second.stdout) if o["kind"] == "event"] == [
        "loft", "porch"]


def test_persistent_is_the_default(tmp_path, rules, broker, bus):
    """A restarted `cep run` (same rules, so the same client id) gets what came meanwhile."""
    first = start_cep(tmp_path, rules, broker)
    assert first.stop() == 0
    bus.publish("home/loft/temp", '{"value": 33}', qos=1)
    second = start_cep(tmp_path, rules, broker)
    try:
        second.wait_stderr("session resumed")
        bus.wait_topic("home/loft/fan/set")
    finally:
        assert second.stop() == 0
    assert [o["attrs"]["room"] for o in outputs(second.stdout) if o["kind"] == "event"] == [
        "loft"]


def test_with_a_clean_session_messages_sent_while_away_are_lost(tmp_path, rules, broker, bus):
    args = ("--clean-session", "--client-id", "cep-test-clean")
    first = start_cep(tmp_path, rules, broker, *args)
    assert first.stop() == 0
    bus.publish("home/loft/temp", '{"value": 33}', qos=1)
    second = start_cep(tmp_path, rules, broker, *args)
    try:
        bus.publish("home/porch/temp", '{"value": 34}', qos=1)
        bus.wait_topic("home/porch/fan/set")
    finally:
        assert second.stop() == 0
    assert [o["attrs"]["room"] for o in outputs(second.stdout) if o["kind"] == "event"] == [
        "porch"]


STAMPED_RULES = """\
CREATE EVENT Reading (sensor STRING, value FLOAT) FROM TOPIC 'lab/{sensor}'
    TIMESTAMP FROM 'time';

@name('rise')
SELECT a.sensor AS sensor, a.value AS before, b.value AS after
FROM PATTERN [ every a=Reading -> b=Reading(sensor = a.sensor AND value > a.value) ]
PUBLISH 'lab/{sensor}/rising' PAYLOAD {"from": before, "to": after};
"""


def replay(tmp_path: Path, rules: Path, trace: Path) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "cep", "replay", str(rules), "--trace",
                           str(trace)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "0 bad lines;" in done.stderr and ", 0 bad messages," in done.stderr, done.stderr
    return outputs(done.stdout.splitlines())


def replay_args(tmp_path: Path, rules: Path, trace: Path, *extra: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "cep", "replay", str(rules), "--trace",
                           str(trace), *extra], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return outputs(done.stdout.splitlines())


QUIET_RULES = """CREATE EVENT Button (action STRING) FROM TOPIC 'zigbee2mqtt/button' PAYLOAD AS action;

@name('quiet')
SELECT b.action AS last
FROM PATTERN [ every b=Button -> (timer:interval(1 sec) and not Button) ]
PUBLISH 'home/quiet' PAYLOAD {"after": last} QOS 1;
"""


def test_run_record_replays_without_until(tmp_path, broker, bus):
    """A timer that fired after the last message: the recording's stop mark holds the run's
    last instant, so replaying it needs no --until."""
    rules = tmp_path / "quiet.epl"
    rules.write_text(QUIET_RULES)
    seen = tmp_path / "seen.jsonl"
    cep = start_cep(tmp_path, rules, broker, "--record", str(seen))
    try:
        bus.publish("zigbee2mqtt/button", "single")
        bus.wait_topic("home/quiet", b'{"after":"single"}')
    finally:
        assert cep.stop() == 0
    live = outputs(cep.stdout)
    assert [o["kind"] for o in live] == ["event", "publish"]
    hint = cep.wait_stderr("cep: recorded 1 message into")
    assert hint.endswith("replaying it with these rules gives the same output lines")
    lines = [json.loads(line) for line in seen.read_text().splitlines()]
    assert (lines[0]["clock"], lines[-1]["clock"]) == ("start", "stop")
    assert replay_args(tmp_path, rules, seen) == live
    assert replay_args(tmp_path, rules, seen, "--until", lines[-1]["ts"]) == live


def test_record_then_replay_gives_the_live_outputs(tmp_path, broker, bus):
    rules = tmp_path / "lab.epl"
    rules.write_text(STAMPED_RULES)
    recorded = tmp_path / "recorded.jsonl"
    seen = tmp_path / "seen.jsonl"
    recorder = CepProcess(["record", "--broker", broker.url, "--topic", "lab/#",
                           "--topic", "other/#", "--out", str(recorded)], cwd=tmp_path)
    recorder.wait_stderr("listening on")
    cep = start_cep(tmp_path, rules, broker, "--record", str(seen))
    base = time.time() + 60  # device clocks ahead of ours: never "late" for the live engine
    readings = [("a", 1.0), ("b", 5.0), ("a", 2.0), ("b", 4.0), ("b", 6.0), ("a", 0.5)]
    try:
        for i, (sensor, value) in enumerate(readings):
            bus.publish(f"lab/{sensor}", json.dumps({"value": value, "time": base + i}))
        bus.publish("other/x", "not a rule's topic")
        bus.wait_topic("lab/b/rising", b'{"from":4.0,"to":6.0}')
    finally:
        assert cep.stop() == 0
    wait_lines(recorded, 11)  # the start mark, 6 readings, other/x and the 3 actions
    assert recorder.stop() == 0
    live = outputs(cep.stdout)
    assert [(o["kind"], o["attrs"]) for o in live if o["kind"] == "event"] == [
        ("event", {"sensor": "a", "before": 1.0, "after": 2.0}),
        ("event", {"sensor": "b", "before": 5.0, "after": 6.0}),
        ("event", {"sensor": "b", "before": 4.0, "after": 6.0})]
    assert replay(tmp_path, rules, seen) == live
    assert replay(tmp_path, rules, recorded) == live
    lines = [json.loads(line) for line in recorded.read_text().splitlines()]
    assert (lines[0]["clock"], lines[-1]["clock"]) == ("start", "stop")
    lines = lines[1:-1]
    topics = [line["topic"] for line in lines]
    # the engine's actions interleave with the readings as they raced on the bus
    assert [t for t in topics if not t.endswith("/rising")] == [
        f"lab/{s}" for s, _ in readings] + ["other/x"]
    assert sorted(t for t in topics if t.endswith("/rising")) == [
        "lab/a/rising", "lab/b/rising", "lab/b/rising"]
    assert lines[0]["payload"] == {"value": 1.0, "time": base}
    assert lines[topics.index("other/x")]["payload"] == "not a rule's topic"


def wait_lines(path: Path, count: int) -> None:
    wait_until(lambda: path.exists() and len(path.read_text().splitlines()) >= count,
               f"{count} lines in {path}")


def test_record_stops_after_its_duration(tmp_path, broker):
    """The process ends by itself, with its summary.  (Which messages fall inside the
    duration: tests/test_live_runner.py, on a clock the test moves; on the real clock a
    message published after "listening on" may come after a short duration's end.)"""
    out = tmp_path / "short.jsonl"
    recorder = CepProcess(["record", "--broker", broker.url, "--topic", "#", "--out",
                           str(out), "--duration", "1s"], cwd=tmp_path)
    assert recorder.wait(timeout=WAIT) == 0, "\n".join(recorder.stderr)
    assert out.exists()
    assert any(" recorded " in line and " messages in " in line for line in recorder.stderr), \
        recorder.stderr


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost (openssl CLI)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=cep test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=localhost")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def test_tls_with_user_and_password(tmp_path, rules, monkeypatch):
    require_mosquitto()
    require(shutil.which("openssl") is not None and shutil.which("mosquitto_passwd") is not None,
            "needs the openssl and mosquitto_passwd commands to make certificates and a "
            "password file")
    folder = tmp_path / "tls-broker"
    folder.mkdir()
    ca, cert, key = make_certificates(folder)
    passwords = folder / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "home", "pa:ss word"],
                   check=True, capture_output=True)
    passwords.chmod(0o600)
    broker = Broker(folder, tls=True, extra_config=(
        f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
        f"allow_anonymous false\npassword_file {passwords}\n")).start()
    try:
        bus = BusClient(broker, ca_file=str(ca), username="home", password="pa:ss word")
        try:
            # the password comes from the environment, not the command line
            monkeypatch.setenv("CEP_MQTT_PASSWORD", "pa:ss word")
            cep = CepProcess(["run", str(rules), "--broker",
                              f"mqtts://home@localhost:{broker.port}", "--ca-file", str(ca)],
                             cwd=tmp_path)
            try:
                cep.wait_stderr("listening on")
                bus.publish("home/kitchen/temp", '{"value": 31}')
                assert json.loads(bus.wait_topic("home/kitchen/fan/set").payload)["state"] == "ON"
            finally:
                assert cep.stop() == 0
        finally:
            bus.close()
        # a wrong password is refused and said so, and cep keeps trying until stopped
        monkeypatch.setenv("CEP_MQTT_PASSWORD", "wrong")
        refused = CepProcess(["run", str(rules), "--broker",
                              f"mqtts://home@localhost:{broker.port}", "--ca-file", str(ca)],
                             cwd=tmp_path)
        refused.wait_stderr("refused the connection")
        assert refused.stop() == 0
    finally:
        broker.stop()
