"""A stop signal at any step of a live run or a recording ends it cleanly.

`cep run` and `cep record` install their SIGINT/SIGTERM handlers before they connect, so a
signal while connecting, while subscribing or while listening gives the same clean end: the
summary, the `offline` status when the broker had accepted the connection, exit status 0.
And closing waits (until its deadline) for the broker to acknowledge what is in flight,
subscribed yet or not.

The steps between connecting and listening last microseconds with a real broker, so these
tests hold the client at each step with tests/fake_broker.py and send the signal exactly
there: first in-process (the signal raised while the runner is at that step; a handler of
the test's own fails the test if the signal reaches it instead of the runner's), then
end to end with `cep` as a child process (slow).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest

from cep.adapters.live import LiveRunner, record
from cep.adapters.mqtt import BrokerSettings, MqttConnection
from cep.adapters.trace import TraceWriter
from cep.checks.loader import load_texts
from tests.broker import WAIT, CepProcess, free_port
from tests.fake_broker import FakeBroker, Packet

RULES = """\
CREATE EVENT Temp (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temp';

@name('hot')
SELECT t.room AS room FROM PATTERN [ every t=Temp(value > 30) ]
PUBLISH 'home/{room}/fan/set' PAYLOAD 'ON' QOS 1;
"""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalMissed(AssertionError):
    pass


@pytest.fixture
def test_handlers() -> Iterator[list[int]]:
    """While the runner has not installed its handlers, SIGINT and SIGTERM reach these: they
    fail the test (instead of killing pytest)."""
    missed: list[int] = []

    def handler(signum: int, frame: object) -> None:
        missed.append(signum)
        raise SignalMissed(f"signal {signum} reached the test's handler, not the runner's: "
                           "the runner was not ready for it")

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield missed
        # the run put back the handlers it found
        assert all(signal.getsignal(sig) is handler for sig in STOP_SIGNALS)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    assert not missed


def kill_self(sig: int = signal.SIGTERM) -> None:
    """The signal as `kill` would send it; its Python handler runs on the main thread."""
    os.kill(os.getpid(), sig)


def kinds(packets: list[Packet]) -> list[str]:
    return [repr(p) for p in packets]


def make_runner(url: str, reports: list[str]) -> LiveRunner:
    loaded = load_texts([("home.epl", RULES)])
    assert loaded.ok, loaded.diagnostics
    settings = BrokerSettings.from_url(url, reconnect_min=0.1, reconnect_max=0.5)
    return LiveRunner(loaded.catalog, settings, lambda record: None, UTC,
                      report=reports.append, idle_wake=0.02)


def run_to_the_end(runner: LiveRunner):
    """`runner.run()` on this (the main) thread; never leaves paho's thread running."""
    try:
        return runner.run()
    finally:
        if runner.connection.state != "closed":
            runner.connection.close(timeout=0)


# ---------------------------------------------------------------- in-process: LiveRunner


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("step", ["starting the engine", "starting to connect"])
def test_a_signal_before_the_connection_ends_the_run_cleanly(step, sig, test_handlers,
                                                             monkeypatch):
    with FakeBroker(connack=False) as broker:
        reports: list[str] = []
        runner = make_runner(broker.url, reports)
        target = runner.engine if step == "starting the engine" else runner.connection
        original = target.start

        def start_then_signal(*args: object) -> None:
            original(*args)
            signal.raise_signal(sig)  # handled before the next line of the runner runs

        monkeypatch.setattr(target, "start", start_then_signal)
        stats = run_to_the_end(runner)
    assert stats.state == "closed"
    assert stats.summary(1.0).startswith("live: 0 messages")
    assert not any(p.kind == "PUBLISH" for p in broker.received())  # never online: no status
    assert not any("listening" in line for line in reports)


def test_a_signal_while_connected_but_not_subscribed_says_offline(test_handlers):
    """The broker accepted the connection: the run ends with the `offline` status and a
    clean DISCONNECT, though `online` was never said."""
    broker = FakeBroker(suback=False,
                        on_packet=lambda p: kill_self() if p.kind == "SUBSCRIBE" else None)
    with broker:
        reports: list[str] = []
        runner = make_runner(broker.url, reports)
        stats = run_to_the_end(runner)
        broker.wait_kind("closed")
    assert stats.state == "closed"
    assert kinds(broker.received()) == [
        "CONNECT", "SUBSCRIBE(['home/+/temp'])",
        "PUBLISH('cep/status', b'offline', qos=1, retain=True)", "DISCONNECT", "closed"]
    assert any(line.startswith("connected to") for line in reports), reports
    assert not any("listening" in line for line in reports), reports


def test_a_signal_while_listening_says_online_then_offline(test_handlers):
    def on_packet(packet: Packet) -> None:
        if packet.kind == "PUBLISH" and packet.payload == b"online":
            kill_self(signal.SIGINT)

    with FakeBroker(on_packet=on_packet) as broker:
        stats = run_to_the_end(make_runner(broker.url, []))
        broker.wait_kind("closed")
    assert stats.state == "closed"
    assert kinds(broker.received()) == [
        "CONNECT", "SUBSCRIBE(['home/+/temp'])",
        "PUBLISH('cep/status', b'online', qos=1, retain=True)",
        "PUBLISH('cep/status', b'offline', qos=1, retain=True)", "DISCONNECT", "closed"]


# ---------------------------------------------------------------- in-process: record()


def test_a_signal_while_connecting_ends_a_recording_cleanly(tmp_path, test_handlers):
    with FakeBroker(connack=False) as broker:
        settings = BrokerSettings.from_url(broker.url, status_topic=None)
        with TraceWriter.open(str(tmp_path / "rec.jsonl"), UTC) as writer:
            stats = record(settings, ["#"], writer, report=lambda line: None,
                           on_ready=lambda connection: signal.raise_signal(signal.SIGTERM))
    assert (stats.messages, stats.retained_ignored) == (0, 0)
    marks = (tmp_path / "rec.jsonl").read_text().splitlines()
    assert [json.loads(line)["clock"] for line in marks] == ["start", "stop"]


def test_a_signal_while_subscribing_ends_a_recording_cleanly(tmp_path, test_handlers):
    broker = FakeBroker(suback=False,
                        on_packet=lambda p: kill_self() if p.kind == "SUBSCRIBE" else None)
    with broker:
        settings = BrokerSettings.from_url(broker.url, status_topic=None)
        with TraceWriter.open(str(tmp_path / "rec.jsonl"), UTC) as writer:
            stats = record(settings, ["home/#"], writer, report=lambda line: None)
        broker.wait_kind("closed")
    assert stats.messages == 0
    assert kinds(broker.received()) == ["CONNECT", "SUBSCRIBE(['home/#'])", "DISCONNECT",
                                        "closed"]


# ---------------------------------------------------------------- MqttConnection.close()


def connected_not_subscribed(broker: FakeBroker, reports: list[str]) -> MqttConnection:
    settings = BrokerSettings.from_url(broker.url, reconnect_min=0.1, reconnect_max=0.5)
    connection = MqttConnection(settings, ["home/#"], lambda message: None, reports.append,
                                time.time)
    connection.start()
    broker.wait_kind("SUBSCRIBE")  # sent from paho's on_connect: the CONNACK is handled
    assert connection.linked.is_set() and not connection.connected.is_set()
    return connection


def closing(connection: MqttConnection, timeout: float) -> threading.Thread:
    thread = threading.Thread(target=connection.close, kwargs={"timeout": timeout},
                              daemon=True)
    thread.start()
    return thread


def test_close_waits_for_acknowledgements_before_the_subscription_completes():
    with FakeBroker(suback=False, puback=False) as broker:
        connection = connected_not_subscribed(broker, [])
        assert connection.publish("home/hall/fan/set", b"ON", 1, False)
        closer = closing(connection, WAIT)
        broker.wait_for(lambda p: p.payload == b"offline", "the offline status")
        broker.wait_for(lambda p: p.topic == "home/hall/fan/set", "the action")
        # no acknowledgement yet: close() is still waiting for them, connected
        assert closer.is_alive()
        assert "DISCONNECT" not in kinds(broker.received())
        broker.release_pubacks()
        closer.join(WAIT)
        assert not closer.is_alive(), "close() did not return after the acknowledgements"
        broker.wait_kind("DISCONNECT")
    assert connection.unsent == 0
    assert connection.state == "closed"


def test_close_gives_up_at_its_deadline_and_counts_the_unsent():
    with FakeBroker(suback=False, puback=False) as broker:
        connection = connected_not_subscribed(broker, [])
        assert connection.publish("home/hall/fan/set", b"ON", 1, False)
        closer = closing(connection, 0.2)
        closer.join(WAIT)
        assert not closer.is_alive(), "close() did not give up at its deadline"
        broker.wait_kind("DISCONNECT")
    assert connection.unsent == 1


def test_close_stops_waiting_when_the_connection_is_lost():
    with FakeBroker(suback=False, puback=False) as broker:
        connection = connected_not_subscribed(broker, [])
        assert connection.publish("home/hall/fan/set", b"ON", 1, False)
        closer = closing(connection, 10 * WAIT)
        broker.wait_for(lambda p: p.payload == b"offline", "the offline status")
        broker.close()  # nothing can be acknowledged any more
        closer.join(WAIT)
        assert not closer.is_alive(), "close() went on waiting on a lost connection"
    assert connection.unsent == 1


def test_a_late_suback_says_no_online_after_the_offline():
    """The subscription completes while close() waits for the `offline` acknowledgement: the
    status stays `offline` (paho's thread says `online` only when not closing)."""
    held: list[FakeBroker] = []

    def on_packet(packet: Packet) -> None:
        if packet.payload == b"offline":  # SUBACK first, then the PUBACK, in this order
            held[0].answer_subscriptions()
            held[0].release_pubacks()

    with FakeBroker(suback=False, puback=False, on_packet=on_packet) as broker:
        held.append(broker)
        reports: list[str] = []
        connection = connected_not_subscribed(broker, reports)
        connection.close(timeout=WAIT)
        broker.wait_kind("closed")
    assert kinds(broker.received()) == [
        "CONNECT", "SUBSCRIBE(['home/#'])",
        "PUBLISH('cep/status', b'offline', qos=1, retain=True)", "DISCONNECT", "closed"]
    assert not connection.connected.is_set()


# ---------------------------------------------------------------- end to end (child process)


def cep_command(command: str, url: str, tmp_path: Path) -> list[str]:
    if command == "run":
        rules = tmp_path / "home.epl"
        rules.write_text(RULES)
        return ["run", str(rules), "--broker", url, "--reconnect-min", "0.1",
                "--reconnect-max", "0.5"]
    return ["record", "--broker", url, "--topic", "home/#", "--out",
            str(tmp_path / "rec.jsonl"), "--reconnect-min", "0.1", "--reconnect-max", "0.5"]


SUMMARY = {"run": "live: 0 messages", "record": "recorded 0 messages"}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "record"])
@pytest.mark.parametrize("step", ["refused", "no answer", "not subscribed"])
def test_sigterm_before_listening_exits_0_with_the_summary(step, command, tmp_path):
    """SIGTERM at the first sign of connecting (nothing is printed about a connection yet,
    or only `connected to`): exit status 0, the summary, and for `cep run` connected to the
    broker the `offline` status and a clean DISCONNECT."""
    broker = None
    if step == "refused":
        url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    else:
        broker = FakeBroker(connack=step != "no answer", suback=False)
        url = broker.url
    try:
        cep = CepProcess(cep_command(command, url, tmp_path), cwd=tmp_path)
        try:
            if broker is None:
                cep.wait_stderr("cannot connect")
            else:
                broker.wait_kind("CONNECT" if step == "no answer" else "SUBSCRIBE")
            status = cep.stop(signal.SIGTERM)
        finally:
            cep.kill()
        if broker is not None:
            broker.wait_kind("closed")
    finally:
        if broker is not None:
            broker.close()
    stderr = "\n".join(cep.stderr)
    assert status == 0, stderr
    assert SUMMARY[command] in stderr, stderr
    assert "Traceback" not in stderr and "listening on" not in stderr, stderr
    if broker is not None and step == "not subscribed":
        received = kinds(broker.received())
        assert received[-2:] == ["DISCONNECT", "closed"], received
        assert ("PUBLISH('cep/status', b'offline', qos=1, retain=True)" in received) == (
            command == "run"), received
