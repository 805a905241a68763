"""`cep run` survives kills, broker restarts and pauses: a real mosquitto (persistence on,
no queue limit) and cep as a child process, SIGKILLed and started again on its state
folder.  Every count is exact: what must arrive arrives, and a duplicate is allowed only
for an action in flight at a kill (paho's in-flight window, 20, per kill).
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.broker import WAIT, Broker, BusClient, CepProcess, wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

IN_FLIGHT = 20  # paho's default max_inflight_messages: actions sent and not acknowledged

RULES = """\
CREATE EVENT Num (n INT, kind STRING) FROM TOPIC 'test/num';
CREATE EVENT Arm (id STRING) FROM TOPIC 'test/arm/{id}';

@name('echo') ON Num PUBLISH 'out/echo' PAYLOAD {"n": n} QOS 1;

-- a stateful pattern: an `a` waits for the `b` after it, across a kill if one comes between
@name('pair')
SELECT a.n AS first, b.n AS second
FROM PATTERN [ every a=Num(kind = 'a') -> b=Num(kind = 'b' and n = a.n + 1) ]
PUBLISH 'out/pair' PAYLOAD {"first": first, "second": second} QOS 1;

@name('timer')
SELECT a.id AS id FROM PATTERN [ every a=Arm -> timer:interval(3 sec) ]
PUBLISH 'out/timer/{id}' PAYLOAD 'fired' QOS 1;
"""

# a window across the kills: a message taken in twice would count twice
COUNT_RULE = """
@name('count') SELECT count(*) AS taken FROM Num#time(1 day)
PUBLISH 'out/count' PAYLOAD {"taken": taken} QOS 1;
"""


@pytest.fixture(autouse=True)
def no_cep_left_running():
    yield
    CepProcess.kill_all()


@pytest.fixture
def roomy_broker(tmp_path):
    """Persistence on and no limit on the messages it queues for a client that is away
    (mosquitto's default, 1,000, would drop what comes during a restart)."""
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = Broker(folder, extra_config="max_queued_messages 0\n").start()
    yield broker
    broker.stop()


def start(tmp_path: Path, broker: Broker, rules: Path, *extra: str) -> CepProcess:
    cep = CepProcess(["run", str(rules), "--broker", broker.url, "--state",
                      str(tmp_path / "state"), "--reconnect-max", "1", *extra], tmp_path)
    cep.wait_stderr("listening on")
    return cep


class Collector:
    """A subscriber with a persistent session of its own: it misses nothing of `out/#`,
    broker restarts included."""

    def __init__(self, broker: Broker) -> None:
        self.client = BusClient(broker, ("out/#",), client_id="collector", clean_session=False)
        self.seen: list[tuple[str, bytes]] = []
        self.lock = threading.Condition()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._stopping = False
        self._thread.start()

    def _pump(self) -> None:
        import queue

        while not self._stopping:
            try:
                message = self.client.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            with self.lock:
                self.seen.append((message.topic, bytes(message.payload)))
                self.lock.notify_all()

    def count(self, topic: str) -> int:
        with self.lock:
            return sum(1 for t, _ in self.seen if t == topic)

    def payloads(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.seen if t == topic]

    def wait_count(self, topic: str, count: int, timeout: float = WAIT * 3) -> None:
        wait_until(lambda: self.count(topic) >= count, f"{count} messages on {topic}", timeout)

    def values(self, topic: str, field: str) -> set[object]:
        """The distinct values of `field` in the JSON payloads on `topic`."""
        return {json.loads(p)[field] for p in self.payloads(topic)}

    def wait_values(self, topic: str, field: str, expected: set[object],
                    timeout: float = WAIT * 3) -> None:
        """Until every value in `expected` has come in `field` on `topic` (actions sent
        twice count once: a count of messages could be reached while some still lag)."""
        wait_until(lambda: self.values(topic, field) >= expected,
                   f"all {len(expected)} values of {field} on {topic}", timeout)

    def close(self) -> None:
        self._stopping = True
        self._thread.join(WAIT)
        self.client.close()


def number(n: int) -> str:
    return json.dumps({"n": n, "kind": "a" if n % 2 == 0 else "b"})


def test_three_kills_lose_no_message_and_no_action(tmp_path, roomy_broker):
    rules = tmp_path / "kill.epl"
    rules.write_text(RULES + COUNT_RULE)
    out = Collector(roomy_broker)
    sender = BusClient(roomy_broker, ("nothing/#",))
    total = 5000
    kills = sorted(random.Random(20261202).sample(range(400, total - 400), 3))
    cep = start(tmp_path, roomy_broker, rules)
    try:
        sender.publish("test/arm/before", "{}")  # pending when the first kill comes
        for n in range(total):
            sender.publish("test/num", number(n))
            if n in kills:
                if n == kills[0]:  # the timer armed before is still waiting: took it
                    wait_until(lambda: out.count("out/echo") > 0, "the first echo")
                cep.stop(signal.SIGKILL)
                cep = start(tmp_path, roomy_broker, rules)
        out.wait_values("out/echo", "n", set(range(total)))
        out.wait_values("out/pair", "first", set(range(0, total, 2)))
        out.wait_values("out/count", "taken", set(range(1, total + 1)))
        out.wait_count("out/timer/before", 1)
        assert cep.stop() == 0
    finally:
        sender.close()
    echoes = [json.loads(p)["n"] for p in out.payloads("out/echo")]
    pairs = [json.loads(p)["first"] for p in out.payloads("out/pair")]
    counts = [json.loads(p)["taken"] for p in out.payloads("out/count")]
    # each message taken in once, the window kept across the kills: 1, 2, ..., total
    assert set(counts) == set(range(1, total + 1))
    out.close()
    assert set(echoes) == set(range(total))          # every action arrived
    assert len(echoes) - total <= IN_FLIGHT * len(kills)  # twice only when in flight
    assert set(pairs) == set(range(0, total, 2))     # matches across the kills: none lost
    assert len(pairs) - total // 2 <= IN_FLIGHT * len(kills)
    assert out.count("out/timer/before") == 1        # pending at a kill: fired once


def test_a_timer_that_fell_due_while_cep_was_down_fires_at_start_up(tmp_path, roomy_broker):
    rules = tmp_path / "kill.epl"
    rules.write_text(RULES)
    out_file = tmp_path / "out.jsonl"
    out = Collector(roomy_broker)
    sender = BusClient(roomy_broker, ("nothing/#",))
    cep = start(tmp_path, roomy_broker, rules, "--out", str(out_file))
    try:
        sender.publish("test/arm/late", "{}")
        sender.publish("test/num", number(0))
        out.wait_count("out/echo", 1)  # so the Arm before it is taken in too
        cep.stop(signal.SIGKILL)
        # cep stays down longer than the 3 s interval (time passing, not a wait for news)
        back = time.time() + 4.0
        wait_until(lambda: time.time() >= back, "4 s of downtime")
        sender.publish("test/num", number(1))  # queued by the broker meanwhile
        again = start(tmp_path, roomy_broker, rules, "--out", str(out_file))
        out.wait_count("out/timer/late", 1)
        out.wait_count("out/echo", 2)
        assert again.stop() == 0
    finally:
        sender.close()
    out.close()
    said = "\n".join(again.stderr)
    assert "1 timer (1 overdue)" in said, said
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    publishes = [line for line in lines if line["kind"] == "publish"]
    # (the pair 0 -> 1 waited across the kill too)
    assert [p["topic"] for p in publishes] == ["out/echo", "out/timer/late", "out/echo",
                                               "out/pair"]
    echo0, fired, echo1, _ = (datetime.fromisoformat(p["ts"]).timestamp() for p in publishes)
    # at its due time (3 s after the Arm, taken just before echo 0), before the message
    # that queued up while cep was down
    assert 2.0 < fired - echo0 <= 3.0
    assert fired < echo1


FAN_RULES = """\
CREATE EVENT Humidity (room STRING, humidity FLOAT) FROM TOPIC 'zigbee2mqtt/{room}_sensor';

CREATE CONTEXT Humid PARTITION BY room
    INITIATED BY Humidity(humidity > 70) TERMINATED BY Humidity(humidity < 60);
@name('fan_on')  CONTEXT Humid ON START PUBLISH 'zigbee2mqtt/{room}_fan/set' PAYLOAD 'ON';
@name('fan_off') CONTEXT Humid ON END   PUBLISH 'zigbee2mqtt/{room}_fan/set' PAYLOAD 'OFF';
"""


def test_the_fan_goes_off_after_a_kill(tmp_path, roomy_broker):
    """Humidity 75: fan ON; cep killed and started again; humidity 55: fan OFF."""
    rules = tmp_path / "fan.epl"
    rules.write_text(FAN_RULES)
    bus = BusClient(roomy_broker, ("zigbee2mqtt/+/set",))
    try:
        cep = start(tmp_path, roomy_broker, rules)
        bus.publish("zigbee2mqtt/bathroom_sensor", '{"humidity": 75}')
        bus.wait_topic("zigbee2mqtt/bathroom_fan/set", b"ON")
        cep.stop(signal.SIGKILL)
        cep = start(tmp_path, roomy_broker, rules)
        assert any("restored 1 context instance" in line for line in cep.stderr), cep.stderr
        bus.publish("zigbee2mqtt/bathroom_sensor", '{"humidity": 55}')
        bus.wait_topic("zigbee2mqtt/bathroom_fan/set", b"OFF")
        assert cep.stop() == 0
    finally:
        bus.close()


def test_a_broker_restart_and_a_paused_broker_lose_nothing(tmp_path, roomy_broker):
    rules = tmp_path / "kill.epl"
    rules.write_text(RULES)
    out = Collector(roomy_broker)
    sender = BusClient(roomy_broker, ("nothing/#",), client_id="sender", clean_session=False)
    cep = start(tmp_path, roomy_broker, rules)
    total = 1500
    try:
        for n in range(total):
            if n == 500:
                roomy_broker.stop()
                roomy_broker.start()
                wait_until(sender.client.is_connected, "the sender back on the broker")
            if n == 1000:
                process = roomy_broker.process
                assert process is not None
                process.send_signal(signal.SIGSTOP)
                threading.Timer(10.0, process.send_signal, (signal.SIGCONT,)).start()
            sender.publish("test/num", number(n))
        out.wait_values("out/echo", "n", set(range(total)))
        assert cep.stop() == 0
    finally:
        sender.close()
    echoes = [json.loads(p)["n"] for p in out.payloads("out/echo")]
    out.close()
    assert set(echoes) == set(range(total))
    assert len(echoes) - total <= 2 * IN_FLIGHT


def test_replaying_the_recording_gives_the_live_lines_across_a_kill(tmp_path, roomy_broker):
    rules = tmp_path / "kill.epl"
    rules.write_text(RULES)
    record, out_file = tmp_path / "run.trace.jsonl", tmp_path / "out.jsonl"
    extra = ("--record", str(record), "--out", str(out_file))
    sender = BusClient(roomy_broker, ("out/#",))
    try:
        cep = start(tmp_path, roomy_broker, rules, *extra)
        for n in range(40):
            sender.publish("test/num", number(n))
        sender.publish("test/arm/x", "{}")
        sender.wait_for(lambda m: m.topic == "out/echo" and json.loads(m.payload)["n"] == 39)
        cep.stop(signal.SIGKILL)
        cep = start(tmp_path, roomy_broker, rules, *extra)
        for n in range(40, 80):
            sender.publish("test/num", number(n))
        sender.wait_for(lambda m: m.topic == "out/echo" and json.loads(m.payload)["n"] == 79)
        sender.wait_topic("out/timer/x")
        assert cep.stop() == 0
    finally:
        sender.close()
    live = out_file.read_text().splitlines()
    replayed = CepProcess(["replay", str(rules), "--trace", str(record)], tmp_path)
    assert replayed.wait() == 0, replayed.stderr
    unique_live = list(dict.fromkeys(live))  # a line written just before the kill may repeat
    assert len(live) - len(unique_live) <= IN_FLIGHT
    assert replayed.stdout == unique_live
    assert sum(1 for line in live if '"out/timer/x"' in line) == 1


def test_a_full_disk_stops_cep_and_loses_nothing(tmp_path, roomy_broker):
    """The journal cannot grow (a file size limit stands for the full disk): cep stops with
    the reason; started again with room, it takes every message it had not journaled."""
    rules = tmp_path / "kill.epl"
    rules.write_text(RULES)
    out = Collector(roomy_broker)
    sender = BusClient(roomy_broker, ("nothing/#",))
    total = 600
    try:
        full = CepProcess(["run", str(rules), "--broker", roomy_broker.url, "--state",
                           str(tmp_path / "state")], tmp_path, prefix=("prlimit", "--fsize=20000"))
        full.wait_stderr("listening on")
        for n in range(total):
            sender.publish("test/num", number(n))
        assert full.wait() == 1
        assert "cannot write the journal" in full.stderr[-1]
        assert "File too large" in full.stderr[-1] and "make room" in full.stderr[-1]
        assert out.count("out/echo") < total  # it stopped part way
        again = start(tmp_path, roomy_broker, rules)
        out.wait_values("out/echo", "n", set(range(total)))
        assert again.stop() == 0
    finally:
        sender.close()
    echoes = [json.loads(p)["n"] for p in out.payloads("out/echo")]
    out.close()
    assert set(echoes) == set(range(total))
    # Sent twice: the messages in flight at the stop (the broker's window, taken again),
    # and actions whose acknowledgement notes could not be written: those in paho's window
    # at the failed write, and those the batch under way sent before the engine thread
    # stopped. Bounded by the windows, never by the length of the run.
    assert len(echoes) - total <= 3 * IN_FLIGHT


# ---------------------------------------------------------------- refusals


def run_once(tmp_path: Path, rules: Path, broker: Broker, *extra: str) -> CepProcess:
    cep = CepProcess(["run", str(rules), "--broker", broker.url, "--state",
                      str(tmp_path / "state"), *extra], tmp_path)
    return cep


def test_a_state_folder_of_another_rule_set_is_refused(tmp_path, broker):
    first, second = tmp_path / "fan.epl", tmp_path / "other.epl"
    first.write_text(FAN_RULES)
    second.write_text(FAN_RULES.replace("70", "80"))
    cep = start(tmp_path, broker, first)
    assert cep.stop() == 0
    other = run_once(tmp_path, second, broker)
    assert other.wait() == 1
    message = other.stderr[-1]
    assert "was written by another rule set" in message and str(first) in message
    assert str(second) in message and "--fresh" in message
    fresh = run_once(tmp_path, second, broker, "--fresh")
    fresh.wait_stderr("listening on")
    assert fresh.stop() == 0


def test_a_damaged_checkpoint_is_refused(tmp_path, broker):
    rules = tmp_path / "fan.epl"
    rules.write_text(FAN_RULES)
    cep = start(tmp_path, broker, rules)
    assert cep.stop() == 0
    checkpoint = tmp_path / "state" / "checkpoint.json"
    data = bytearray(checkpoint.read_bytes())
    data[-10] ^= 0x01  # one bit of the body
    checkpoint.write_bytes(bytes(data))
    again = run_once(tmp_path, rules, broker)
    assert again.wait() == 1
    assert "damaged: its content does not match its checksum" in again.stderr[-1]
    assert "--fresh" in again.stderr[-1]


def test_a_second_process_on_the_same_state_folder_is_refused(tmp_path, broker):
    rules = tmp_path / "fan.epl"
    rules.write_text(FAN_RULES)
    cep = start(tmp_path, broker, rules)
    try:
        second = run_once(tmp_path, rules, broker)
        assert second.wait() == 1
        assert "is in use by another cep (process" in second.stderr[-1]
    finally:
        assert cep.stop() == 0
