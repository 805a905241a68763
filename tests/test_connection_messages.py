"""Every connection problem is said with WHY, in words, and WHEN the next try is.

Real failures only, nothing of paho mocked: a port nothing listens on, a host name under
`.invalid` (which never resolves), a server that never answers the TLS handshake, TLS to
a plain mosquitto, a mosquitto given a wrong password, a loopback server answering
CONNECT with a refusal (client id, unavailable, protocol version), and a mosquitto
stopped mid-run and started again.  Each waits for its report with a generous deadline
(tests/broker.py's WAIT), never a fixed sleep.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cep.adapters import mqtt
from cep.adapters.mqtt import BrokerSettings, MqttConnection
from tests.broker import WAIT, CepProcess, free_port, wait_until

# "; retrying in 0.1 s at 12:00:04": the delay, then the wall-clock time of the next try
RETRY = r"; retrying in 0\.1 s at \d\d:\d\d:\d\d"


class Reports:
    """An MqttConnection's reports, collected (they come on paho's thread)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def first(self, start: str, what: str | None = None) -> str:
        def found() -> str | None:
            with self._lock:
                return next((line for line in self.lines if line.startswith(start)), None)
        wait_until(lambda: found() is not None, what or f"a report starting {start!r}")
        line = found()
        assert line is not None
        return line

    def count(self, start: str) -> int:
        with self._lock:
            return sum(line.startswith(start) for line in self.lines)


@contextmanager
def connecting(url: str, **options: object) -> Iterator[tuple[MqttConnection, Reports]]:
    """A real MqttConnection to `url`, retrying after 0.1 s (then 0.2 s, ...)."""
    reports = Reports()
    settings = BrokerSettings.from_url(url, reconnect_min=0.1, reconnect_max=0.4,
                                       status_topic=None, **options)  # type: ignore[arg-type]
    connection = MqttConnection(settings, ["a/#"], lambda message: None, reports, time.time)
    connection.start()
    try:
        yield connection, reports
    finally:
        connection.close(timeout=0)


def test_refused_says_nothing_listens_on_host_and_port():
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    with connecting(url) as (connection, reports):
        line = reports.first("cannot connect")
    assert re.fullmatch(rf"cannot connect to {re.escape(url)}: connection refused \(nothing "
                        rf"listens on 127\.0\.0\.1:{port}\){RETRY}", line), line
    assert connection.problem == f"connection refused (nothing listens on 127.0.0.1:{port})"


def test_an_unknown_host_is_said_by_name():
    url = "mqtt://no-such-broker.invalid:1883"
    with connecting(url) as (_, reports):
        line = reports.first("cannot connect")
    # the resolver's own words follow in brackets ("Name or service not known", or
    # "Temporary failure in name resolution" without a DNS server)
    assert re.fullmatch(rf"cannot connect to {re.escape(url)}: unknown host "
                        rf"no-such-broker\.invalid: the name does not resolve \([^)]+\)"
                        rf"{RETRY}", line), line


def test_a_tls_handshake_that_gets_no_answer_times_out():
    """The kernel accepts the TCP connection; nobody ever answers the ClientHello."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"mqtts://127.0.0.1:{silent.getsockname()[1]}"
        with connecting(url, connect_timeout=0.5, insecure=True) as (_, reports):
            line = reports.first("cannot connect")
    assert re.fullmatch(rf"cannot connect to {re.escape(url)}: no answer within 0\.5 s "
                        rf"\(the TLS handshake timed out\){RETRY}", line), line


def test_tls_to_a_plain_mosquitto_is_a_handshake_failure_with_the_fix(broker):
    url = f"mqtts://127.0.0.1:{broker.port}"
    with connecting(url, insecure=True) as (_, reports):
        line = reports.first("cannot connect")
    assert line.startswith(f"cannot connect to {url}: TLS handshake failed: the server "), line
    # mosquitto closes the socket on the ClientHello: a reset, or the SSL error's EOF with
    # the SSL reason; both then probe the port and find plain MQTT
    assert ("the server reset the connection" in line
            or "the server closed the connection (SSL error " in line), line
    assert re.search(rf"; the port speaks plain MQTT: use mqtt:// without --tls{RETRY}$",
                     line), line


def test_a_wrong_password_is_not_authorised_with_the_connack_code(password_broker):
    url = f"mqtt://cepuser:wr0ng@127.0.0.1:{password_broker.port}"
    shown = f"mqtt://cepuser:***@127.0.0.1:{password_broker.port}"
    with connecting(url) as (connection, reports):
        line = reports.first("cannot connect")
    assert re.fullmatch(rf"cannot connect to {re.escape(shown)}: the broker refused the "
                        rf"connection: not authorised \(the broker does not accept this user, "
                        rf"password or client certificate\) \(CONNACK return code 5, Not "
                        rf"authorized\){RETRY}", line), line
    assert "wr0ng" not in "\n".join(reports.lines)
    assert connection.connects == 0


@contextmanager
def refusing_server(return_code: int) -> Iterator[str]:
    """A loopback server answering every MQTT 3.1.1 CONNECT with a CONNACK refusing it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)  # a look at `stop` between two accepts
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                peer, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with peer:
                peer.settimeout(1)
                try:
                    if peer.recv(4096):  # the CONNECT (small enough for one read)
                        peer.sendall(bytes([0x20, 2, 0, return_code]))
                        peer.recv(1)  # paho closes it
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"mqtt://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(WAIT)
        server.close()


@pytest.mark.parametrize("return_code, words", [
    (1, "protocol error: the broker does not accept MQTT 3.1.1, the version cep speaks "
        "(CONNACK return code 1, Unsupported protocol version)"),
    (2, "client id refused: the broker does not accept the client id odd-one (give another "
        "with --client-id) (CONNACK return code 2, Client identifier not valid)"),
    (3, "server unavailable: the broker runs but takes no connections now (CONNACK return "
        "code 3, Server unavailable)"),
    (4, "not authorised: bad user name or password (CONNACK return code 4, Bad user name or "
        "password)"),
])
def test_each_connack_refusal_in_words(return_code, words):
    with refusing_server(return_code) as url:
        with connecting(url, client_id="odd-one") as (_, reports):
            line = reports.first("cannot connect")
    assert re.fullmatch(rf"cannot connect to {re.escape(url)}: the broker refused the "
                        rf"connection: {re.escape(words)}{RETRY}", line), line


def test_the_same_failure_is_said_again_only_with_its_count(monkeypatch):
    """Rate limiting: within QUIET_REPEATS the same cause is only counted, and its next
    report says how many attempts failed the same way meanwhile."""
    monkeypatch.setattr(mqtt, "QUIET_REPEATS", 1.0)
    url = f"mqtt://127.0.0.1:{free_port()}"
    with connecting(url) as (_, reports):
        wait_until(lambda: reports.count("cannot connect") >= 2, "the second report")
        first, again = reports.lines[:2]
    assert "failed the same way" not in first, first
    assert re.search(r"; retrying in 0\.\d s at \d\d:\d\d:\d\d \(failed the same way \d+ more "
                     r"times? since the last report\)$", again), again


def test_a_broker_stopped_mid_run_is_lost_refused_then_reconnected(broker):
    with connecting(broker.url) as (connection, reports):
        wait_until(connection.connected.is_set, "connected and subscribed")
        broker.stop()
        lost = reports.first("connection to", "the lost connection reported")
        refused = reports.first("cannot connect", "the next attempt refused")
        broker.start()
        reports.first("reconnected to")
        wait_until(connection.connected.is_set, "subscribed again")
    assert re.fullmatch(rf"connection to {re.escape(broker.url)} lost: the broker closed the "
                        rf"connection \(it stopped, or it dropped this client\) \[paho reason "
                        rf"128: Unspecified error\]; reconnecting in 0\.1 s at "
                        rf"\d\d:\d\d:\d\d", lost) or lost.startswith(
        f"connection to {broker.url} lost: the network connection broke ("), lost
    assert re.fullmatch(rf"cannot connect to {re.escape(broker.url)}: connection refused "
                        rf"\(nothing listens on 127\.0\.0\.1:{broker.port}\); retrying in "
                        rf"0\.2 s at \d\d:\d\d:\d\d", refused), refused
    assert connection.connects == 2 and connection.disconnects == 1


@pytest.fixture
def no_cep_left_running() -> Iterator[None]:
    yield
    CepProcess.kill_all()


def test_cep_run_says_why_and_when_on_stderr(tmp_path, no_cep_left_running):
    """The same words reach a user of `cep run`, prefixed `cep: `, and cep keeps trying."""
    rules = tmp_path / "echo.epl"
    rules.write_text("CREATE EVENT Cmd (room STRING) FROM TOPIC 'in/cmd';\n@name('echo') "
                     "SELECT c.room AS room FROM PATTERN [ every c=Cmd ];\n")
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    cep = CepProcess(["run", str(rules), "--broker", url, "--reconnect-min", "0.1",
                      "--reconnect-max", "0.5"], cwd=tmp_path)
    try:
        line = cep.wait_stderr("cannot connect")
    finally:
        assert cep.stop() == 0
    assert re.fullmatch(rf"cep: cannot connect to {re.escape(url)}: connection refused "
                        rf"\(nothing listens on 127\.0\.0\.1:{port}\){RETRY}", line), line
