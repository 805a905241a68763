"""Live, no single message, file or setting can crash, stall, blind or flood the engine.

- an action whose topic a broker would refuse (a control character from a payload, a
  wildcard, too long) is refused before paho sees it: counted, reported, never re-sent;
- a password is never printed (masked in every message and the view), and what comes
  from outside (topics, payload excerpts, client ids, broker reasons) is printed escaped;
- every connection failure is said in words with the next retry: TLS, a missing client
  certificate, TLS and plain MQTT mixed up, a server that is not a broker, a refused
  CONNACK, another client taking our client id (cep then gives up: exit status 1);
- the inbox is bounded: a slow engine holds paho's network thread (the broker keeps the
  rest), peak and current sizes are shown, and stopping with a full inbox cannot deadlock.

Unit tests first, then tests/fake_broker.py (held steps), then a real mosquitto
(tests/broker.py) and `cep` as a child process.  Every wait is for a condition.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from cep.adapters.badmessages import MAX_REPORTS, MAX_TOPICS, BadMessageReporter, printable
from cep.adapters.live import Inbox, LiveRunner, LiveStats
from cep.adapters.mqtt import (
    MAX_TOPIC_BYTES,
    TAKEOVER_GIVE_UP,
    BrokerSettings,
    MqttConnection,
    ReceivedMessage,
    SettingsError,
    describe_error,
    mask_url,
    publish_problem,
    topic_problem,
)
from cep.checks.loader import load_texts
from tests.broker import (
    WAIT,
    Broker,
    BusClient,
    CepProcess,
    free_port,
    require,
    require_mosquitto,
    wait_until,
)
from tests.fake_broker import FakeBroker
from tests.test_live_mqtt import make_certificates

ECHO = """\
CREATE EVENT Cmd (room STRING) FROM TOPIC 'in/cmd';

@name('echo')
SELECT c.room AS room FROM PATTERN [ every c=Cmd ]
PUBLISH 'out/{room}' PAYLOAD {"room": room} QOS 1;
"""


@pytest.fixture(autouse=True)
def no_cep_left_running():
    yield
    CepProcess.kill_all()


def echo_rules(tmp_path: Path) -> Path:
    path = tmp_path / "echo.epl"
    path.write_text(ECHO)
    return path


def cep_run(tmp_path: Path, url: str, *extra: str) -> CepProcess:
    return CepProcess(["run", str(echo_rules(tmp_path)), "--broker", url, "--reconnect-min",
                       "0.1", "--reconnect-max", "0.5", *extra], cwd=tmp_path)



# ====================================================================== escaping, masking

@pytest.mark.parametrize("text, shown", [
    ("home/kitchen", "home/kitchen"),
    ("é ü 中", "é ü 中"),
    ("\x1b[2J", "\\x1b[2J"),
    ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
    ("\x00\x7f\x85", "\\x00\\x7f\\x85"),
    ("\u202eevil", "\\u202eevil"),
    ("\ud800", "\\ud800"),
    ("back\\slash", "back\\slash"),
])
def test_printable_escapes_what_is_not_printable(text, shown):
    assert printable(text) == shown
    assert printable(printable(text)) == printable(text)  # applying it twice changes nothing


def test_bad_message_reports_escape_topic_and_reason():
    lines: list[str] = []
    reporter = BadMessageReporter(lines.append)
    reporter.bad("home/\x1b[2J/temp", 'value "\x1b]8;;http://x\x07" is not a FLOAT', 0.0)
    assert lines == ['bad message on home/\\x1b[2J/temp: value "\\x1b]8;;http://x\\x07" is '
                     'not a FLOAT']
    assert "\x1b" not in reporter.summary()


def test_bad_messages_on_ever_new_topics_neither_flood_nor_grow_memory():
    lines: list[str] = []
    reporter = BadMessageReporter(lines.append)
    for i in range(5000):  # one a millisecond, each on a new topic
        reporter.bad(f"home/room{i}/temp", "not JSON", i / 1000)
    assert len(lines) == MAX_REPORTS
    assert len(reporter.counts) == MAX_TOPICS
    assert reporter.total == 5000
    summary = reporter.summary()
    assert summary.startswith(f"5000 bad messages on more than {MAX_TOPICS:,} topics: ")
    assert summary.endswith(" more on other topics") and len(summary) < 1000
    reporter.bad("home/room0/temp", "not JSON", 100.0)  # a minute later: reported again
    assert len(lines) == MAX_REPORTS + 1
    assert "held back by the limit" in lines[-1]


@pytest.mark.parametrize("url, shown", [
    ("mqtt://cepuser:S3cr3t@127.0.0.1:99999", "mqtt://cepuser:***@127.0.0.1:99999"),
    ("mqtt://u:p@ss@host", "mqtt://u:***@host"),
    ("mqtt://u:pa/ss@host:1", "mqtt://u:***@host:1"),
    ("u:secret@host", "u:***@host"),
    ("mqtt://user@host", "mqtt://user@host"),
    ("mqtt://host:1883", "mqtt://host:1883"),
    ("mqtt://u:\x1b[2J@host", "mqtt://u:***@host"),
    ("mqtt://\x1b[2J@host", "mqtt://\\x1b[2J@host"),
])
def test_urls_are_shown_with_the_password_masked(url, shown):
    assert mask_url(url) == shown


@pytest.mark.parametrize("url", [
    "mqtt://cepuser:S3cr3t@127.0.0.1:99999", "ftp://cepuser:S3cr3t@host",
    "mqtt://cepuser:S3cr3t@host/path", "mqtt://cepuser:S3cr3t@", "mqtt://cepuser:S3cr3t@h:x"])
def test_a_refused_url_never_shows_its_password(url):
    with pytest.raises(SettingsError) as refused:
        BrokerSettings.from_url(url)
    assert "S3cr3t" not in str(refused.value)
    assert "cepuser:***@" in str(refused.value)


def test_the_display_masks_a_password_given_in_the_url():
    settings = BrokerSettings.from_url("mqtt://cepuser:S3cr3t@broker.lan")
    assert settings.password == "S3cr3t"
    assert settings.display == "mqtt://cepuser:***@broker.lan:1883"
    assert BrokerSettings.from_url("mqtt://[::1]:1884").display == "mqtt://[::1]:1884"


def test_a_password_over_plain_mqtt_is_warned_about_once():
    with FakeBroker(connack=False) as fake:
        reports: list[str] = []
        url = fake.url.replace("mqtt://", "mqtt://cepuser:S3cr3t@")
        connection = MqttConnection(BrokerSettings.from_url(url), [], lambda m: None,
                                    reports.append, time.time)
        connection.start()
        fake.wait_kind("CONNECT")
        connection.close(timeout=0)
    warnings = [line for line in reports if "unencrypted" in line]
    assert len(warnings) == 1 and "mqtt://cepuser:***@127.0.0.1" in warnings[0]
    assert not any("S3cr3t" in line for line in reports)


@pytest.mark.parametrize("option, value", [
    ("client_id", "cep\x1b[2J"), ("client_id", "cep\ud800"), ("status_topic", "cep/+"),
    ("status_topic", "cep/\x00")])
def test_settings_a_broker_would_refuse_are_usage_errors(option, value):
    with pytest.raises(SettingsError) as refused:
        BrokerSettings.from_url("mqtt://host", **{option: value})
    assert "\x1b" not in str(refused.value) and "\x00" not in str(refused.value)


# ====================================================================== publish checks

@pytest.mark.parametrize("topic, problem", [
    ("out/kitchen", None),
    ("out/é/中/\u200b", None),  # mosquitto takes these
    ("a" * MAX_TOPIC_BYTES, None),
    ("", "the topic is empty"),
    ("out/+", "wildcard"),
    ("out/#", "wildcard"),
    ("out/\x00", "\\x00, a control character"),
    ("out/a\x1bb", "\\x1b, a control character"),
    ("out/\x7f", "\\x7f, a control character"),
    ("out/\x85", "\\x85, a control character"),  # C1: mosquitto closes the connection too
    ("out/\ufffe", "\\ufffe, a non-character"),
    ("out/\ufdd0", "\\ufdd0, a non-character"),
    ("out/\U0010ffff", "a non-character"),
    ("out/\ud800", "not valid UTF-8"),
    ("a" * (MAX_TOPIC_BYTES + 1), "65,536 bytes of UTF-8"),
    (None, "not text"),
])
def test_topics_a_broker_would_refuse(topic, problem):
    found = topic_problem(topic)
    assert (found is None) if problem is None else (problem in found), found


def test_messages_over_mqtts_size_limit_are_refused():
    assert publish_problem("t", b"x" * 1000, 1) is None
    assert "more than MQTT's limit" in publish_problem("t", b"x" * 268_435_452, 1)
    assert "QoS 3" in publish_problem("t", b"", 3)


def test_publish_refuses_a_bad_topic_before_paho_and_reports_it_escaped():
    """Nothing of a refused action reaches the broker (paho would re-send it after every
    reconnect); the good ones around it go out; the report is escaped and rate-limited."""
    with FakeBroker() as fake:
        reports: list[str] = []
        connection = MqttConnection(BrokerSettings.from_url(fake.url, status_topic=None),
                                    [], lambda m: None, reports.append, time.time)
        connection.start()
        try:
            wait_until(connection.connected.is_set, "connected")
            assert connection.publish("out/a", b"1", 1, False)
            for _ in range(3):
                assert not connection.publish("out/b\x1b[2Jc", b"2", 1, False)
            assert not connection.publish("out/+", b"3", 0, False)
            assert connection.publish("out/c", b"4", 1, False)
            fake.wait_for(lambda p: p.topic == "out/c", "the last good action")
        finally:
            connection.close(timeout=WAIT)
    assert [p.topic for p in fake.received() if p.kind == "PUBLISH"] == ["out/a", "out/c"]
    assert connection.refused == 4 and connection.publish_failures == 0
    assert connection.unsent == 0
    refusals = [line for line in reports if line.startswith("action not published")]
    assert refusals == [
        "action not published to out/b\\x1b[2Jc: the topic holds \\x1b, a control "
        "character, which brokers refuse",
        "action not published to out/+: the topic holds a wildcard (+ or #), which only "
        "subscriptions may"]
    assert not any("\x1b" in line for line in reports)


def test_the_live_runner_counts_refused_actions_as_not_sent():
    stats = LiveStats(actions=3, actions_refused=1, inbox_peak=12, inbox_size=100)
    summary = stats.summary(2.0)
    assert "3 actions published (0 dropped, 1 not sent: refused topic or size)" in summary
    assert "inbox peak 12 of 100" in summary


def test_the_view_is_given_the_backlog_and_the_connection_problem():
    from cep.cli.live import LiveViewTicker

    stats = LiveStats(broker="mqtt://u:***@h:1883", state="reconnecting", inbox=3,
                      inbox_peak=9, inbox_size=50, problem="connection refused")
    status = LiveViewTicker(None).status(stats)  # type: ignore[arg-type]
    assert (status.source, status.backlog, status.backlog_peak, status.backlog_limit,
            status.problem) == ("mqtt://u:***@h:1883", 3, 9, 50, "connection refused")


# ====================================================================== failures in words

def _ssl_error(kind: type[ssl.SSLError], reason: str) -> ssl.SSLError:
    error = kind(1, f"[SSL: {reason}] {reason.lower()} (_ssl.c:1006)")
    error.reason = reason
    return error


def _verify_error(message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_message = message
    error.reason = "CERTIFICATE_VERIFY_FAILED"
    return error


@pytest.mark.parametrize("error, words", [
    (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
    (socket.gaierror(-2, "Name or service not known"),
     "unknown host: the name does not resolve (Name or service not known)"),
    (TimeoutError("_ssl.c:990: The handshake operation timed out"),
     "no answer within 10 s (the TLS handshake timed out)"),
    (TimeoutError("timed out"), "no answer within 10 s (the TCP connection timed out)"),
    (ConnectionResetError(104, "Connection reset by peer"), "the server reset the connection"),
    (_verify_error("self-signed certificate in certificate chain"),
     "TLS handshake failed: certificate verify failed (self-signed certificate in "
     "certificate chain: the broker's certificate is not signed by a CA cep trusts; give "
     "its CA with --ca-file)"),
    (_verify_error("Hostname mismatch, certificate is not valid for 'x'."),
     "the certificate is not for this host name"),
    (_ssl_error(ssl.SSLError, "TLSV13_ALERT_CERTIFICATE_REQUIRED"),
     "the broker requires a client certificate (give it with --cert and --key)"),
    (_ssl_error(ssl.SSLError, "TLSV1_ALERT_UNKNOWN_CA"),
     "the broker refused the client certificate"),
    (_ssl_error(ssl.SSLError, "WRONG_VERSION_NUMBER"),
     "TLS handshake failed: the server does not speak TLS on this port"),
    (_ssl_error(ssl.SSLEOFError, "UNEXPECTED_EOF_WHILE_READING"),
     "TLS handshake failed: the server closed the connection"),
    (OSError(101, "Network is unreachable"), "network is unreachable"),
    (OSError(99, "bad \x1b[2J"), "bad \\x1b[2J"),
])
def test_connection_errors_in_words(error, words):
    assert words in describe_error(error, 10.0)


def test_a_server_that_never_answers_connect_is_not_a_broker():
    """tests/fake_broker.py holds CONNECT unanswered: no word for a minute before; now the
    CONNACK timeout says so, with the next retry, and the attempt starts again."""
    with FakeBroker(connack=False) as fake:
        reports: list[str] = []
        settings = BrokerSettings.from_url(fake.url, connect_timeout=0.3, reconnect_min=0.1,
                                           reconnect_max=0.2)
        connection = MqttConnection(settings, ["a/#"], lambda m: None, reports.append,
                                    time.time)
        connection.start()
        try:
            wait_until(lambda: sum(p.kind == "CONNECT" for p in fake.received()) >= 2,
                       "a second attempt after the CONNACK timeout")
        finally:
            connection.close(timeout=0)
    failure = next(line for line in reports if line.startswith("cannot connect"))
    assert failure.startswith(f"cannot connect to {fake.url}: not an MQTT broker (no CONNACK "
                              f"within 0.3 s); retrying in 0.1 s at ")
    assert connection.problem is not None and "not an MQTT broker" in connection.problem


def test_a_server_that_closes_at_once_is_said_so():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    reports: list[str] = []
    settings = BrokerSettings.from_url(f"mqtt://127.0.0.1:{port}", reconnect_min=0.1,
                                       reconnect_max=0.2)
    connection = MqttConnection(settings, [], lambda m: None, reports.append, time.time)
    connection.start()
    try:
        wait_until(lambda: any(line.startswith("cannot connect") for line in reports),
                   "the failure reported")
    finally:
        connection.close(timeout=0)
        stop.set()
        server.close()
    failure = next(line for line in reports if line.startswith("cannot connect"))
    assert ("the server closed the connection without answering CONNECT" in failure
            or "the server reset the connection" in failure), failure
    assert "; retrying in " in failure


def test_a_message_whose_topic_is_not_utf8_is_a_bad_message():
    """paho decodes topics strictly: one that is not UTF-8 (mosquitto refuses them, other
    brokers may not) must become a bad message, not the end of paho's network thread."""
    loaded = load_texts([("echo.epl", ECHO)])
    settings = BrokerSettings.from_url("mqtt://127.0.0.1:1", status_topic=None)
    runner = LiveRunner(loaded.catalog, settings, lambda record: None, UTC,
                        report=lambda message: None, idle_wake=0.02)  # never started
    message = paho.MQTTMessage(mid=1, topic=b"in/\xff")
    runner.connection._received(runner.connection.client, None, message)
    item = runner.inbox.get_nowait()
    assert isinstance(item, ReceivedMessage) and item.bad_topic == "the topic is not UTF-8"
    runner._take(item)
    assert runner.stats.bad_messages == 1
    assert runner.reporter.summary() == "1 bad message on 1 topic: in/\\xff 1"


# ====================================================================== the bounded inbox

def test_the_inbox_holds_at_most_its_size_and_close_frees_a_waiting_sender():
    inbox = Inbox(3)
    messages = [ReceivedMessage(f"t/{i}", b"", 0, False, float(i)) for i in range(5)]
    for message in messages[:3]:
        inbox.put_message(message)
    sender = threading.Thread(target=inbox.put_message, args=(messages[3],), daemon=True)
    sender.start()
    inbox.put("stop")  # a stop request never waits (nor counts)
    assert len(inbox) == 3 and inbox.peak == 3
    assert inbox.get(timeout=WAIT) is messages[0]  # frees a slot: the sender goes on
    sender.join(WAIT)
    assert not sender.is_alive()
    assert [inbox.get_nowait() for _ in range(4)] == [messages[1], messages[2], "stop",
                                                     messages[3]]
    for message in messages[:3]:
        inbox.put_message(message)
    blocked = threading.Thread(target=inbox.put_message, args=(messages[4],), daemon=True)
    blocked.start()
    inbox.close()
    blocked.join(WAIT)
    assert not blocked.is_alive() and inbox.dropped == 1
    inbox.put_message(messages[4])  # after close(): dropped at once
    assert inbox.dropped == 2 and len(inbox) == 3 and inbox.peak == 3


@pytest.mark.mqtt
def test_a_slow_engine_holds_the_network_thread_and_nothing_is_lost(broker):
    """The engine thread is held in its sink while 60 QoS 1 messages come: the inbox fills
    to its size (5) and paho's thread waits, the broker keeping the rest.  The engine's
    actions meanwhile only queue in paho.  Released, everything is processed and answered;
    then a stop with the inbox full again ends cleanly (no deadlock)."""
    loaded = load_texts([("echo.epl", ECHO)])
    release = threading.Event()
    held = threading.Event()

    def slow_sink(record: dict) -> None:
        if record["kind"] == "publish":
            held.set()
            release.wait(WAIT)

    settings = BrokerSettings.from_url(broker.url, status_topic="test/cep")
    runner = LiveRunner(loaded.catalog, settings, slow_sink, UTC, report=lambda m: None,
                        idle_wake=0.02, inbox_size=5)
    bus = BusClient(broker, ("out/#", "test/cep"))
    thread = threading.Thread(target=runner.run, kwargs={"install_signals": False},
                              daemon=True)
    thread.start()
    try:
        bus.wait_topic("test/cep", b"online")
        for i in range(60):
            bus.publish("in/cmd", json.dumps({"room": f"r{i}"}))
        held.wait(WAIT)
        wait_until(lambda: runner.inbox.peak == 5, "the inbox full")
        assert len(runner.inbox) <= 5
        release.set()
        for i in range(60):
            bus.wait_topic(f"out/r{i}")
        assert runner.stats.events == 60 and runner.stats.actions == 60
        # full again, and stopped while full
        release.clear()
        held.clear()
        for i in range(20):
            bus.publish("in/cmd", json.dumps({"room": f"s{i}"}))
        held.wait(WAIT)
        wait_until(lambda: len(runner.inbox) == 5, "the inbox full again")
        runner.stop()
        release.set()
        thread.join(WAIT)
        assert not thread.is_alive(), "the run did not end with a full inbox"
    finally:
        release.set()
        runner.stop()
        thread.join(WAIT)
        bus.close()
    assert runner.stats.inbox_peak == 5
    assert runner.connection.state == "closed"


# ====================================================================== end to end

@pytest.mark.mqtt
@pytest.mark.slow
def test_a_control_character_in_a_topic_attribute_stops_nothing(tmp_path, broker):
    """One message names a room with an escape character (and one a wildcard): its action's
    topic is refused, by the engine or the connection; every other message is answered, on
    the one connection (mosquitto dropped it at each re-send before, 39 times in 40 s)."""
    bus = BusClient(broker, ("out/#",))
    cep = cep_run(tmp_path, broker.url)
    try:
        cep.wait_stderr("listening on")
        rooms = ["a", "b\x1b[2Jc", "d", "e+f", "g"]
        for room in rooms:
            bus.publish("in/cmd", json.dumps({"room": room}))
        for room in ("a", "d", "g"):
            assert json.loads(bus.wait_topic(f"out/{room}").payload) == {"room": room}
    finally:
        status = cep.stop()
        bus.close()
    stderr = "\n".join(cep.stderr)
    assert status == 0, stderr
    assert "0 reconnects" in stderr and "lost" not in stderr, stderr
    assert "\x1b" not in stderr
    published = [json.loads(line) for line in cep.stdout if line.strip()]
    assert [o["topic"] for o in published if o["kind"] == "publish" and
            topic_problem(o["topic"]) is None] == ["out/a", "out/d", "out/g"]


@pytest.mark.slow
def test_a_refused_broker_url_does_not_print_its_password(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cep", "run", str(echo_rules(tmp_path)),
                           "--broker", "mqtt://cepuser:S3cr3t@127.0.0.1:99999"],
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 2
    assert "S3cr3t" not in done.stderr
    assert "broker URL 'mqtt://cepuser:***@127.0.0.1:99999'" in done.stderr


@pytest.mark.mqtt
@pytest.mark.slow
def test_passwords_are_masked_and_a_refused_connack_is_said_in_words(tmp_path,
                                                                      password_broker):
    broker = password_broker  # user cepuser, password S3cr3t
    url = f"mqtt://cepuser:S3cr3t@127.0.0.1:{broker.port}"
    good = cep_run(tmp_path, url)
    try:
        good.wait_stderr("listening on")
    finally:
        assert good.stop() == 0
    wrong = cep_run(tmp_path, url.replace("S3cr3t", "wr0ng"))
    try:
        refused = wrong.wait_stderr("cannot connect")
    finally:
        assert wrong.stop() == 0
    shown = f"mqtt://cepuser:***@127.0.0.1:{broker.port}"
    for run in (good, wrong):
        stderr = "\n".join(run.stderr)
        assert "S3cr3t" not in stderr and "wr0ng" not in stderr, stderr
        assert sum("unencrypted" in line for line in run.stderr) == 1, stderr
        assert f"running 1 rules on {shown}" in stderr
    assert f"connected to {shown}" in "\n".join(good.stderr)
    assert refused.startswith(f"cep: cannot connect to {shown}: the broker refused the "
                              f"connection: not authorised")
    assert "(CONNACK return code 5, Not authorized); retrying in " in refused


@pytest.mark.mqtt
@pytest.mark.slow
def test_reports_print_outside_strings_escaped(tmp_path, broker):
    """A topic mosquitto lets through (a bidirectional override) and a payload holding an
    escape sequence: both are printed escaped in the report and the summary."""
    rules = tmp_path / "temp.epl"
    rules.write_text("CREATE EVENT Temp (room STRING, value FLOAT) FROM TOPIC "
                     "'home/{room}/temp';\n@name('t') SELECT t.room AS room FROM PATTERN "
                     "[every t=Temp];\n")
    bus = BusClient(broker, ("cep/#",))
    cep = CepProcess(["run", str(rules), "--broker", broker.url], cwd=tmp_path)
    try:
        cep.wait_stderr("listening on")
        bus.publish("home/\u202eevil/temp", json.dumps({"value": "\x1b[2J\x1b]8;;http://x"}))
        report = cep.wait_stderr("bad message on")
    finally:
        assert cep.stop() == 0
        bus.close()
    stderr = "\n".join(cep.stderr)
    assert "\x1b" not in stderr and "\u202e" not in stderr, stderr
    assert report.startswith("cep: bad message on home/\\u202eevil/temp: ")
    assert "1 bad message on 1 topic: home/\\u202eevil/temp 1" in stderr


@pytest.mark.slow
def test_not_a_broker_is_said_within_the_connect_timeout(tmp_path):
    with FakeBroker(connack=False) as fake:
        cep = cep_run(tmp_path, fake.url, "--connect-timeout", "0.5")
        try:
            failure = cep.wait_stderr("cannot connect")
        finally:
            assert cep.stop() == 0
    assert f"cannot connect to {fake.url}: not an MQTT broker (no CONNACK within 0.5 s); " \
           f"retrying in 0.1 s at " in failure


@pytest.fixture
def tls_brokers(tmp_path: Path):
    """One mosquitto with a plain and a TLS listener (certificate from a throwaway CA), and
    one whose TLS listener requires a client certificate."""
    require_mosquitto()
    require(shutil.which("openssl") is not None, "needs openssl to make certificates")
    folder = tmp_path / "tls"
    folder.mkdir()
    ca, cert, key = make_certificates(folder)
    tls_port = free_port()
    tls = Broker(folder, extra_config=f"listener {tls_port} 127.0.0.1\ncafile {ca}\n"
                                      f"certfile {cert}\nkeyfile {key}\n").start()
    strict_folder = tmp_path / "strict"
    strict_folder.mkdir()
    strict = Broker(strict_folder, tls=True, extra_config=(
        f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\n")).start()
    yield {"ca": ca, "plain": tls.port, "tls": tls_port, "strict": strict.port}
    tls.stop()
    strict.stop()


@pytest.mark.mqtt
@pytest.mark.slow
@pytest.mark.parametrize("case", ["untrusted CA", "missing client certificate",
                                  "plain MQTT to the TLS port", "TLS to the plain port"])
def test_tls_failures_are_said_in_words(case, tmp_path, tls_brokers):
    ca = str(tls_brokers["ca"])
    url, extra, expected = {
        "untrusted CA": (f"mqtts://localhost:{tls_brokers['tls']}", (),
                         "TLS handshake failed: certificate verify failed (self-signed "
                         "certificate in certificate chain: the broker's certificate is not "
                         "signed by a CA cep trusts; give its CA with --ca-file)"),
        "missing client certificate": (
            f"mqtts://localhost:{tls_brokers['strict']}", ("--ca-file", ca),
            "the broker requires a client certificate (give it with --cert and --key)"),
        "plain MQTT to the TLS port": (f"mqtt://localhost:{tls_brokers['tls']}", (),
                                       "the port speaks TLS: use mqtts:// (or --tls)"),
        "TLS to the plain port": (f"mqtts://localhost:{tls_brokers['plain']}",
                                  ("--ca-file", ca),
                                  "the port speaks plain MQTT: use mqtt:// without --tls"),
    }[case]
    cep = cep_run(tmp_path, url, *extra)
    try:
        failure = cep.wait_stderr("cannot connect")
    finally:
        assert cep.stop() == 0
    assert failure.startswith(f"cep: cannot connect to {url}: ")
    assert expected in failure, failure
    assert "; retrying in 0.1 s at " in failure


@pytest.mark.mqtt
@pytest.mark.slow
def test_two_cep_with_one_client_id_stop_fighting(tmp_path, broker):
    """With MQTT 3.1.1 mosquitto just closes the older connection when a client connects
    with the same id: the two took the connection from each other 52 times in 22 s, each
    seeing half the stream.  Now each says it is likely; after TAKEOVER_GIVE_UP in a row one
    gives up (exit status 1) and the other keeps the connection and answers everything."""
    bus = BusClient(broker, ("out/#",))
    first = cep_run(tmp_path, broker.url, "--client-id", "twin", "--state",
                    str(tmp_path / "first"))
    first.wait_stderr("listening on")
    # (each its own state folder: two on one folder are refused before they connect)
    second = cep_run(tmp_path, broker.url, "--client-id", "twin", "--state",
                     str(tmp_path / "second"))
    try:
        wait_until(lambda: first.process.poll() is not None or second.process.poll() is not None,
                   "one of the two giving up")
        quitter, keeper = (first, second) if first.process.poll() is not None else \
            (second, first)
        assert quitter.wait() == 1
        for i in range(3):  # the other one has the whole stream
            bus.publish("in/cmd", json.dumps({"room": f"r{i}"}))
        for i in range(3):
            bus.wait_topic(f"out/r{i}")
    finally:
        bus.close()
    assert keeper.stop() == 0
    said = "\n".join(quitter.stderr)
    assert "another client with the same client id (twin) is likely taking the connection" \
        in said
    assert f"{TAKEOVER_GIVE_UP} times in a row" in said
    assert quitter.stderr[-1].startswith("cep: error: giving up on ")
    assert quitter.stderr[-1].endswith("give each cep its own --client-id")
    assert any(line.startswith("live: ") for line in quitter.stderr)
    assert "another client with the same client id" in "\n".join(keeper.stderr)
