"""The MQTT connection shared by `cep run` and `cep record` (paho-mqtt 2.x).

`BrokerSettings` is everything about *where and how* to connect (URL, TLS,
client id, keepalive, session, reconnect backoff, status topic), checked once
before anything connects.  `MqttConnection` owns one paho client whose network
loop runs on paho's own thread: it (re)subscribes on every connect, keeps a
retained availability topic (`online` while connected, `offline` as the last
will and on a clean close), sets TCP_NODELAY on every socket it opens, and
hands each received message to a callback *on paho's thread* — the caller
queues it for its own single engine thread (and may block there: see
adapters/live.py for the bounded inbox and why that cannot deadlock).

Reconnection is paho's: after a lost connection it retries with exponential
backoff between `reconnect_min` and `reconnect_max` seconds (reset once a
broker accepts the connection); the first connection is retried the same way,
so a service started before its broker comes up once the broker does.

Every failure is said in words, with the next retry delay and time (mirroring paho's
documented backoff): paho's `on_connect_fail` carries no exception, so the client
subclass keeps the one `reconnect()` raised (refused: nothing listens on host:port;
unknown host; timeout; TLS, with the SSL error's reason); socket errors after the
handshake come from paho's log (a private logger at WARNING level, so nothing is
formatted for the debug lines), which tells "the network connection broke" from "the
broker closed the connection" where paho's disconnect reason says only "Unspecified
error" (its reason code and name are added in brackets); a refused CONNACK is said in
words with its return code and paho's name (not authorised, client id refused, server
unavailable, protocol error); a server that accepts TCP but sends no CONNACK within
`connect_timeout` is "not an MQTT broker" (a timer shuts its socket down, and paho goes
on as after any lost connection); a connection closed or reset before the CONNACK is
probed once for the usual mix-up (TLS on a plain `mqtt://` URL, or the other way round).
Connections the broker closes within seconds of accepting them, several times in a row,
are what MQTT 3.1.1 brokers do when another client connects with the same client id: cep
says so after TAKEOVER_WARN of them and gives up after TAKEOVER_GIVE_UP (`gave_up`,
`on_give_up`) instead of taking the connection back forever.

`publish()` checks each action's topic and size before paho sees it: a topic
a broker would answer by closing the connection (empty, a wildcard, a control
or non-character, not UTF-8, over 65,535 bytes) or a message over MQTT's size
limit is refused, counted (`refused`) and reported (rate-limited), never queued
in paho to be re-sent after every reconnect.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from cep.adapters.badmessages import BadMessageReporter, printable
from cep.adapters.mqtt_defaults import CONNECT_TIMEOUT, INBOX_SIZE, PASSWORD_ENV

__all__ = [
    "CONNECT_TIMEOUT",
    "INBOX_SIZE",
    "MAX_PACKET",
    "MAX_TOPIC_BYTES",
    "PASSWORD_ENV",
    "TAKEOVER_GIVE_UP",
    "TAKEOVER_WARN",
    "BrokerSettings",
    "MqttConnection",
    "ReceivedMessage",
    "SettingsError",
    "describe_error",
    "mask_url",
    "publish_problem",
    "topic_problem",
]

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
MAX_TOPIC_BYTES = 65_535   # a topic's UTF-8 length is a 16-bit number
MAX_PACKET = 268_435_455   # MQTT's largest "remaining length": topic, message id, payload
TAKEOVER_SOON = 10.0       # seconds: a connection closed sooner (or 3 times reconnect_min)
TAKEOVER_WARN = 2          # ... this many times in a row: another client likely has our id
TAKEOVER_GIVE_UP = 5       # ... this many times in a row: stop (exit status 1)
QUIET_REPEATS = 30.0       # seconds: the same connection failure is not reported again sooner
PROBE_TIMEOUT = 3.0        # seconds for the one-off TLS / plain MQTT probe of a failing port

# What brokers refuse in a topic (mosquitto closes the connection): C0 and C1 control
# characters, DEL, and the Unicode non-characters.
_NON_CHARACTERS = "".join(re.escape(chr(plane * 0x10000 + low))
                          for plane in range(17) for low in (0xFFFE, 0xFFFF))
_BAD_IN_STRING = re.compile("[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef" + _NON_CHARACTERS + "]")


class SettingsError(ValueError):
    """A broker URL or option that cannot work (bad usage: exit status 2)."""


@dataclass(frozen=True)
class ReceivedMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    arrival: float  # the clock's time when paho handed it over
    bad_topic: str | None = None  # why the topic as received is unusable (not UTF-8)
    mid: int = 0      # the broker's packet id (QoS 1/2), for the acknowledgement
    dup: bool = False  # the broker sent it before (a redelivery)


def mask_url(url: str) -> str:
    """`url` as it may be shown: a password in it as `***` (in a URL that does not parse,
    everything between the user's `:` and the last `@`), control characters escaped."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        userinfo, _, hostpart = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        if colon:
            rest = f"{user}:***@{hostpart}"
    return printable(f"{scheme}{sep}{rest}")


def _string_problem(text: str, what: str) -> str | None:
    """Why `text` cannot be an MQTT UTF-8 string a broker accepts (None when it can)."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{what} is not valid UTF-8 (it holds a lone surrogate)"
    bad = _BAD_IN_STRING.search(text)
    if bad is not None:
        kind = "a non-character" if ord(bad.group()) >= 0xFDD0 else "a control character"
        return f"{what} holds {printable(bad.group())}, {kind}, which brokers refuse"
    if size > MAX_TOPIC_BYTES:
        return f"{what} is {size:,} bytes of UTF-8 (at most {MAX_TOPIC_BYTES:,})"
    return None


def topic_problem(topic: object) -> str | None:
    """Why a message cannot be published to `topic` (None when it can)."""
    if not isinstance(topic, str):
        return f"the topic is {type(topic).__name__}, not text"
    if not topic:
        return "the topic is empty"
    if "+" in topic or "#" in topic:
        return "the topic holds a wildcard (+ or #), which only subscriptions may"
    return _string_problem(topic, "the topic")


def publish_problem(topic: object, payload: bytes, qos: int) -> str | None:
    """Why paho must not be handed this message (None when it may)."""
    if type(topic) is str and topic.isascii() and topic.isprintable() and topic \
            and "+" not in topic and "#" not in topic and len(topic) <= MAX_TOPIC_BYTES:
        size = len(topic)  # the usual topic: plain ASCII, one byte a character
    else:
        problem = topic_problem(topic)
        if problem is not None:
            return problem
        assert isinstance(topic, str)
        size = len(topic.encode("utf-8"))
    if qos not in (0, 1, 2):
        return f"QoS {qos!r} is not 0, 1 or 2"
    size += 2 + (2 if qos else 0) + len(payload)
    if size > MAX_PACKET:
        return f"the message is {size:,} bytes, more than MQTT's limit of {MAX_PACKET:,}"
    return None


@dataclass
class BrokerSettings:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False              # TLS without checking the server's host name
    client_id: str = ""
    keepalive: int = 60
    persistent: bool = False            # keep the session (subscriptions, queued QoS>0) across
    subscribe_qos: int = 1
    status_topic: str | None = "cep/status"
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    connect_timeout: float = CONNECT_TIMEOUT
    password_in_url: bool = False       # shown as `***` in `display`

    @classmethod
    def from_url(cls, url: str, *, tls: bool = False, ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None,
                 insecure: bool = False, client_id: str | None = None,
                 keepalive: int = 60, persistent: bool = False, subscribe_qos: int = 1,
                 status_topic: str | None = "cep/status",
                 reconnect_min: float = 1.0, reconnect_max: float = 60.0,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 default_client_id: str = "cep") -> BrokerSettings:
        """Read `mqtt://[user[:pass]@]host[:port]` or `mqtts://...` and check the options.

        A message about the URL shows it with the password masked (`mask_url`)."""
        shown = mask_url(url)
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise SettingsError(f"broker URL {shown!r}: the scheme must be mqtt:// or mqtts://")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise SettingsError(f"broker URL {shown!r}: a broker URL has no path or query")
        try:
            port = parts.port
        except ValueError:
            raise SettingsError(f"broker URL {shown!r}: the port is not a number from 1 to "
                                f"65535") from None
        host = parts.hostname
        if not host:
            raise SettingsError(f"broker URL {shown!r} names no host")
        use_tls = tls or scheme == "mqtts"
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        in_url = password is not None
        if username is not None and password is None:
            password = os.environ.get(PASSWORD_ENV)
        if username is not None:
            problem = _string_problem(username, "the user name")
            if problem:
                raise SettingsError(f"broker URL {shown!r}: {problem}")
        for option, path in (("--ca-file", ca_file), ("--cert", cert_file), ("--key", key_file)):
            if path is not None and not os.path.isfile(path):
                raise SettingsError(f"{option} {printable(path)}: no such file")
        if key_file and not cert_file:
            raise SettingsError("--key needs --cert (the client certificate it belongs to)")
        _check_tls_files(ca_file, cert_file, key_file)
        if (ca_file or cert_file or insecure) and not use_tls:
            raise SettingsError("TLS options need --tls or an mqtts:// URL")
        if keepalive < 1:
            raise SettingsError("--keepalive must be at least 1 second")
        if subscribe_qos not in (0, 1, 2):
            raise SettingsError("the subscription QoS must be 0, 1 or 2")
        if not 0 < reconnect_min <= reconnect_max:
            raise SettingsError("the reconnect delays must satisfy 0 < MIN <= MAX")
        if not connect_timeout > 0:
            raise SettingsError("--connect-timeout must be more than 0 seconds")
        if status_topic is not None and topic_problem(status_topic) is not None:
            raise SettingsError(f"status topic {printable(status_topic)!r} must be a plain topic "
                                f"name ({topic_problem(status_topic)})")
        if client_id:
            problem = _string_problem(client_id, "the client id")
            if problem:
                raise SettingsError(f"--client-id: {problem}")
        if persistent and not client_id:
            # A persistent session is found again by its client id, so it must not vary.
            client_id = f"{default_client_id}-{socket.gethostname()}"
        return cls(host=host, port=port or DEFAULT_PORTS["mqtts" if use_tls else "mqtt"],
                   tls=use_tls, username=username, password=password, ca_file=ca_file,
                   cert_file=cert_file, key_file=key_file, insecure=insecure,
                   client_id=client_id or f"{default_client_id}-{socket.gethostname()}-"
                                          f"{os.getpid()}",
                   keepalive=keepalive, persistent=persistent, subscribe_qos=subscribe_qos,
                   status_topic=status_topic, reconnect_min=reconnect_min,
                   reconnect_max=reconnect_max, connect_timeout=connect_timeout,
                   password_in_url=in_url)

    @property
    def display(self) -> str:
        """The URL for messages and the view: a password given in it as `***`."""
        user = ""
        if self.username:
            user = printable(self.username) + (":***" if self.password_in_url else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{printable(host)}:{self.port}"


def _check_tls_files(ca_file: str | None, cert_file: str | None,
                     key_file: str | None) -> None:
    """Load the certificates once up front, so a wrong file is a usage error that names the
    option, not an SSL traceback from inside the MQTT client."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise SettingsError(f"--ca-file {printable(ca_file)}: not a PEM certificate file "
                                f"({_ssl_reason(exc)})") from None
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            what = f"--cert {printable(cert_file)}" + (
                f" with --key {printable(key_file)}" if key_file else "")
            raise SettingsError(f"{what}: not a PEM certificate and its private key "
                                f"({_ssl_reason(exc)})") from None


def _ssl_reason(exc: BaseException) -> str:
    return printable(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc))


def _seconds(value: float) -> str:
    return f"{value:g} s"


# ---------------------------------------------------------------------- failures in words

_CERTIFICATE_REFUSED = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN",
                        "UNSUPPORTED_CERTIFICATE", "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED",
                        "ACCESS_DENIED")
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
            "HTTP_REQUEST", "UNKNOWN_PROTOCOL")


def _verify_hint(why: str) -> str:
    lower = why.lower()
    if "self-signed" in lower or "issuer" in lower:
        return ": the broker's certificate is not signed by a CA cep trusts; give its CA " \
               "with --ca-file"
    if "mismatch" in lower:
        return ": the certificate is not for this host name; use the name it was made for " \
               "(--insecure skips the check, for testing only)"
    if "expired" in lower:
        return ": the broker's certificate has expired"
    return ""


def _ssl_code(exc: BaseException, text: str) -> str:
    """The SSL error's own reason, `(SSL error WRONG_VERSION_NUMBER)`, when the words above
    it do not already hold it."""
    reason = getattr(exc, "reason", None)
    if not reason or str(reason).lower() in text.lower():
        return ""
    return printable(f" (SSL error {reason})")


def describe_error(exc: BaseException, timeout: float = CONNECT_TIMEOUT,
                   host: str | None = None, port: int | None = None) -> str:
    """A connection error in words: what went wrong, and for the usual causes what to do
    (`host` and `port`, when given, are named where they are the cause)."""
    where = (f"{printable(host)}:{port}" if ":" not in host else f"[{printable(host)}]:{port}") \
        if host is not None and port is not None else "that port"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = str(getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc)
        return printable(f"TLS handshake failed: certificate verify failed ({why}"
                         f"{_verify_hint(why)})")
    if isinstance(exc, ssl.SSLError):
        text = str(getattr(exc, "reason", None) or exc)
        upper = text.upper()
        if "CERTIFICATE_REQUIRED" in upper:
            words = "the broker requires a client certificate (give it with --cert and --key)"
        elif any(key in upper for key in _CERTIFICATE_REFUSED):
            return printable(f"the broker refused the client certificate (TLS alert "
                             f"{text.lower()})")
        elif any(key in upper for key in _NOT_TLS):
            words = "TLS handshake failed: the server does not speak TLS on this port"
        elif isinstance(exc, ssl.SSLEOFError) or "EOF" in upper:
            words = "TLS handshake failed: the server closed the connection"
        elif "HANDSHAKE_FAILURE" in upper:
            words = ("TLS handshake failed: the broker ended it (does it want a client "
                     "certificate? is no TLS version or cipher common to both?)")
        else:
            return printable(f"TLS error: {text}")
        return words + _ssl_code(exc, words)
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused (nothing listens on {where})"
    if isinstance(exc, socket.gaierror):
        name = f" {printable(host)}" if host is not None else ""
        return printable(f"unknown host{name}: the name does not resolve "
                         f"({exc.strerror or exc})")
    if isinstance(exc, TimeoutError):
        step = "the TLS handshake" if "handshake" in str(exc).lower() else "the TCP connection"
        return f"no answer within {_seconds(timeout)} ({step} timed out)"
    if isinstance(exc, ConnectionResetError):
        return "the server reset the connection"
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "the connection broke"
    if isinstance(exc, OSError) and exc.strerror:
        return printable(exc.strerror[:1].lower() + exc.strerror[1:])
    return printable(str(exc) or type(exc).__name__)


# CONNACK refusals: paho's reason (MQTT 5 numbering) → the MQTT 3.1.1 return code, in words
_REFUSED = {
    132: (1, "protocol error: the broker does not accept MQTT 3.1.1, the version cep speaks"),
    133: (2, "client id refused: the broker does not accept the client id {client_id} "
             "(give another with --client-id)"),
    136: (3, "server unavailable: the broker runs but takes no connections now"),
    134: (4, "not authorised: bad user name or password"),
    135: (5, "not authorised (the broker does not accept this user, password or client "
             "certificate)"),
}


def _refused_words(reason: Any, client_id: str = "") -> str:
    """A refused CONNACK in words, with its MQTT 3.1.1 return code and paho's name."""
    code = getattr(reason, "value", None)
    known = _REFUSED.get(code) if isinstance(code, int) else None
    if known is None:
        return printable(f"the broker refused the connection: {reason} (CONNACK reason "
                         f"code {code})")
    return_code, words = known
    return printable(f"the broker refused the connection: "
                     f"{words.format(client_id=client_id)} (CONNACK return code "
                     f"{return_code}, {reason})")


def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether a TLS handshake (any certificate) succeeds on host:port."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return True
    except (OSError, ValueError):
        return False


def _speaks_mqtt(host: str, port: int, timeout: float) -> bool:
    """Whether a plain MQTT 3.1.1 CONNECT gets a CONNACK (accepted or not) on host:port."""
    client_id = f"cep-probe-{os.getpid()}-{time.monotonic_ns() % 1_000_000}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + struct.pack("!H", len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(bytes([0x10, len(body)]) + body)
            answer = sock.recv(1)
            if answer == b"\x20":
                try:
                    sock.sendall(b"\xe0\x00")  # DISCONNECT
                except OSError:
                    pass
            return answer == b"\x20"
    except OSError:
        return False


# ---------------------------------------------------------------------- the paho client

class _Client(paho.Client):
    """paho's client, keeping why a connection attempt failed and saying when its thread
    died (both would otherwise be lost: paho retries on any OSError without it)."""

    connect_error: BaseException | None = None
    on_crash: Callable[[BaseException], None] | None = None

    def reconnect(self) -> paho.MQTTErrorCode:
        self.connect_error = None
        try:
            return super().reconnect()
        except OSError as exc:
            self.connect_error = exc
            raise
        except Exception as exc:  # anything else would end paho's thread: retried the same
            self.connect_error = exc
            raise OSError(str(exc)) from exc

    def loop_forever(self, timeout: float = 1.0,
                     retry_first_connection: bool = False) -> paho.MQTTErrorCode:
        try:
            return super().loop_forever(timeout, retry_first_connection)
        except BaseException as exc:
            if self.on_crash is not None:
                self.on_crash(exc)
            raise


class _PahoLog(logging.Handler):
    """paho's warnings and errors (socket errors, exceptions caught in callbacks) to us."""

    def __init__(self, sink: Callable[[logging.LogRecord], None]) -> None:
        super().__init__(logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._sink(record)
        except Exception:  # never into paho's thread
            pass


class MqttConnection:
    """One paho client on its own network thread; see the module docstring."""

    def __init__(self, settings: BrokerSettings, filters: list[str],
                 on_message: Callable[[ReceivedMessage], None],
                 report: Callable[[str], None], clock: Callable[[], float],
                 on_give_up: Callable[[str], None] | None = None,
                 manual_ack: bool = False) -> None:
        """`manual_ack`: a QoS 1/2 message is acknowledged to the broker only by `ack()`
        (once it is safe, e.g. journaled), not when the callback returns."""
        self.settings = settings
        self.manual_ack = manual_ack
        self.filters = list(filters)
        self._on_message = on_message
        self._report = report
        self._clock = clock
        self._on_give_up = on_give_up
        self.connected = threading.Event()  # subscribed (or nothing to subscribe): ready
        self.linked = threading.Event()     # the broker accepted the connection (CONNACK)
        self.state = "connecting"
        self.problem: str | None = None     # the last failure, while not connected
        self.gave_up: str | None = None     # why it stopped reconnecting (takeover, crash)
        self.connects = 0           # successful CONNACKs
        self.disconnects = 0        # connections lost (not counting our own close)
        self.publish_failures = 0   # actions paho refused (QoS 0 while disconnected)
        self.refused = 0            # actions refused before paho (topic or size; see publish)
        self._refusals = BadMessageReporter(report, label="action not published to")
        # QoS 1/2 messages the broker has not acknowledged yet, by message id (paho sends the
        # ones queued while disconnected after reconnecting, and reports each in on_publish):
        # the actions, and apart from them the `offline` status sent by close().
        self._unacknowledged: set[int] = set()
        self._status_unacknowledged: set[int] = set()
        # Acknowledgements that came while a publish was still running (before paho returned
        # the message id); kept only for that call, so no stale id can match a later one.
        self._publishing = False
        self._acknowledged_early: set[int] = set()
        self._acknowledged = threading.Condition()
        # what to call when the broker acknowledges an action (publish's on_done), by id
        self._on_done: dict[int, Callable[[], None]] = {}
        self.unsent = 0             # QoS 1/2 actions still queued when the connection closed
        # Closing and the status topic go together: once close() has begun, no callback on
        # paho's thread may say `online` (or subscribe) after the `offline` it sends.
        self._status_lock = threading.Lock()
        self._closing = False
        # One connection attempt at a time (paho's thread); the CONNACK timer is the only
        # other thread that looks at it, under _watch_lock.
        self._watch_lock = threading.Lock()
        self._attempt = 0
        self._watchdog: threading.Timer | None = None
        self._attempt_cause: str | None = None      # why this attempt failed, when known
        self._socket_error: BaseException | None = None  # from paho's log, this attempt
        self._delay: float | None = None            # paho's backoff, mirrored
        self._linked_at = 0.0
        self._soon_closed = 0       # connections closed soon after the CONNACK, in a row
        self._quiet_cause: str | None = None
        self._quiet_since = 0.0
        self._quiet_repeats = 0
        self._probes: dict[str, bool] = {}
        self._bug_reported = False
        self.client = self._make_client()

    # ------------------------------------------------------------------ setup
    def _make_client(self) -> _Client:
        s = self.settings
        client = _Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                         clean_session=not s.persistent, protocol=paho.MQTTv311,
                         manual_ack=self.manual_ack)
        client.on_crash = self._crashed
        # An exception in a callback is logged (and reported below), never the end of the
        # network thread: a cep that no longer reads the bus would look alive.
        client.suppress_exceptions = True
        client.connect_timeout = s.connect_timeout
        logger = logging.Logger("cep.adapters.mqtt.paho", logging.WARNING)
        logger.propagate = False
        logger.addHandler(_PahoLog(self._logged))
        client.enable_logger(logger)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file,
                           cert_reqs=ssl.CERT_REQUIRED)
            if s.insecure:
                client.tls_insecure_set(True)
        if s.status_topic:
            client.will_set(s.status_topic, b"offline", qos=1, retain=True)
        client.reconnect_delay_set(s.reconnect_min, s.reconnect_max)  # type: ignore[arg-type]
        client.max_queued_messages_set(0)  # QoS>0 actions wait for the broker, unbounded
        client.on_pre_connect = self._attempting
        client.on_socket_open = self._socket_opened
        client.on_connect = self._connected
        client.on_connect_fail = self._connect_failed
        client.on_disconnect = self._disconnected
        client.on_subscribe = self._subscribed
        client.on_message = self._received
        client.on_publish = self._published
        return client

    def start(self) -> None:
        """Connect in the background (retried with backoff until it works)."""
        s = self.settings
        if s.password is not None and not s.tls:
            self._report(f"warning: the password for {printable(s.username)} goes unencrypted "
                         f"to {s.display} (plain mqtt://): anyone on the network path can "
                         f"read it; use mqtts:// (TLS) where the broker offers it")
        self.client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    # ------------------------------------------------------------------ paho callbacks
    def _attempting(self, client: paho.Client, userdata: object) -> None:
        """A connection attempt begins (paho's reconnect(), before the socket)."""
        self._attempt_cause = None
        self._socket_error = None

    def _socket_opened(self, client: paho.Client, userdata: object, sock: Any) -> None:
        # Small packets go out at once instead of waiting for Nagle's algorithm.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        # TCP (and TLS) are up and CONNECT goes next: a broker answers it at once.
        with self._watch_lock:
            self._stop_watchdog()
            attempt = self._attempt
            timer = threading.Timer(self.settings.connect_timeout, self._no_connack,
                                    args=(attempt, sock))
            timer.daemon = True
            self._watchdog = timer
            timer.start()

    def _stop_watchdog(self) -> None:
        """Under _watch_lock: the current attempt is over (its timer must do nothing)."""
        self._attempt += 1
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _no_connack(self, attempt: int, sock: Any) -> None:
        """On the timer's thread: no CONNACK in time; end the connection as if lost."""
        with self._watch_lock:
            if attempt != self._attempt or self._closing:
                return
            self._attempt_cause = (f"not an MQTT broker (no CONNACK within "
                                   f"{_seconds(self.settings.connect_timeout)})")
        try:  # the plain socket's shutdown, also under TLS: paho then reads the end
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except (OSError, TypeError, ValueError):
            pass

    def _logged(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, BaseException):
                self._socket_error = arg  # e.g. 'failed to receive on socket: %s'
                return
        message = record.getMessage()
        if message.startswith("Caught exception") and not self._bug_reported:
            self._bug_reported = True
            self._report(f"internal error in the MQTT callbacks (please report it): "
                         f"{printable(message)}")

    def _connected(self, client: paho.Client, userdata: object, flags: object,
                   reason: paho.ReasonCode, properties: object) -> None:
        with self._watch_lock:
            self._stop_watchdog()
        if reason.is_failure:
            # paho calls on_disconnect next: the failure is reported there, once
            self._attempt_cause = _refused_words(reason, printable(self.settings.client_id))
            return
        with self._status_lock:
            self.connects += 1
            self.state = "connected"
            self.problem = None
            self._delay = None  # paho's backoff starts again from its minimum
            self._linked_at = time.monotonic()
            self._quiet_cause = None
            self.linked.set()
            closing = self._closing
        again = "reconnected to" if self.connects > 1 else "connected to"
        resumed = " (session resumed)" if getattr(flags, "session_present", False) else ""
        self._report(f"{again} {self.settings.display}{resumed}")
        if closing:
            return  # close() has begun: it disconnects
        if self.filters:
            client.subscribe([(f, self.settings.subscribe_qos) for f in self.filters])
        else:
            self._ready(client)

    def _subscribed(self, client: paho.Client, userdata: object, mid: int,
                    reasons: list[paho.ReasonCode], properties: object) -> None:
        refused = [f for f, r in zip(self.filters, reasons) if r.is_failure]
        if refused:
            self._report(f"the broker refused the subscription to "
                         f"{printable(', '.join(refused))}")
        self._ready(client)

    def _ready(self, client: paho.Client) -> None:
        """Subscribed: from here on no message is missed, so say `online`."""
        with self._status_lock:
            if self._closing:
                return
            if self.settings.status_topic:
                client.publish(self.settings.status_topic, b"online", qos=1, retain=True)
        self._report(f"listening on {printable(', '.join(self.filters) or 'nothing')}")
        self.connected.set()

    def _connect_failed(self, client: paho.Client, userdata: object) -> None:
        """paho's reconnect() raised: no TCP connection, or no TLS over it."""
        error = self.client.connect_error
        cause = self._describe(error) if error is not None \
            else "the connection failed"
        if self.settings.tls and isinstance(error, ConnectionResetError):
            cause = f"TLS handshake failed: {cause}"
        if self.settings.tls and (isinstance(error, (ConnectionResetError, ssl.SSLEOFError))
                                  or "does not speak TLS" in cause):
            if self._probe("mqtt"):
                cause += "; the port speaks plain MQTT: use mqtt:// without --tls"
        self._soon_closed = 0
        self._failure(cause)

    def _disconnected(self, client: paho.Client, userdata: object, flags: object,
                      reason: paho.ReasonCode, properties: object) -> None:
        with self._watch_lock:
            self._stop_watchdog()
        self.connected.clear()
        self.linked.clear()
        with self._acknowledged:  # close() may be waiting for acknowledgements: none will come
            self._acknowledged.notify_all()
        if self._closing:
            self.state = "closed"
            return
        if self.gave_up is not None:
            return
        code = getattr(reason, "value", None)
        if self.state != "connected":
            # TCP (and TLS) worked, then no CONNACK: refused, closed, reset, or no answer
            self._soon_closed = 0
            self._failure(self._attempt_cause or self._before_connack(code))
            return
        self.state = "reconnecting"
        self.disconnects += 1
        lived = time.monotonic() - self._linked_at
        taken = code == 142  # MQTT 5 "session taken over"
        closed_by_broker = taken or (self._socket_error is None and code == 128)
        soon = max(TAKEOVER_SOON, 3 * self.settings.reconnect_min)
        self._soon_closed = self._soon_closed + 1 if closed_by_broker and lived < soon else 0
        cause = self._after_connack(code, reason)
        delay = self._next_delay()
        url, client_id = self.settings.display, printable(self.settings.client_id)
        if taken or self._soon_closed >= TAKEOVER_WARN:
            times = self._soon_closed
            likely = "took" if taken else "is likely taking"
            pending = len(self._unacknowledged)
            other = (f"; or the broker refuses one of the {pending} actions cep re-sends on "
                     f"each connection" if pending and not taken else "")
            what = (f"another client with the same client id ({client_id}) {likely} the "
                    f"connection: the broker closed it {lived:.1f} s after accepting it, "
                    f"{times} time{'s' if times != 1 else ''} in a row{other}")
            if times >= TAKEOVER_GIVE_UP:
                self._give_up(client, f"giving up on {url}: {what}; give each cep its own "
                                      f"--client-id")
                return
            self.problem = what
            self._report(f"connection to {url} lost: {what}; reconnecting in "
                         f"{_seconds(delay)} at {_clock_in(delay)} (cep gives up after "
                         f"{TAKEOVER_GIVE_UP} in a row)")
            return
        self.problem = cause
        self._report(f"connection to {url} lost: {cause}; reconnecting in {_seconds(delay)} "
                     f"at {_clock_in(delay)}")

    def _before_connack(self, code: object) -> str:
        """Why a connection ended before any CONNACK, from what paho saw."""
        error = self._socket_error
        if error is not None:
            cause = self._describe(error)
        elif code == 141:
            return (f"not an MQTT broker (no CONNACK within the keepalive of "
                    f"{self.settings.keepalive} s)")
        elif code == 130:
            return "not an MQTT broker (it answered CONNECT with something that is not MQTT)"
        else:
            cause = "the server closed the connection without answering CONNECT"
        if not self.settings.tls and (error is None or isinstance(error, ConnectionError)):
            if self._probe("tls"):
                cause += "; the port speaks TLS: use mqtts:// (or --tls)"
        return cause

    def _after_connack(self, code: object, reason: object = None) -> str:
        """Why an accepted connection ended, in words, then paho's disconnect reason: its
        "Unspecified error" (a closed or broken socket) is told apart by the socket error
        paho logged, if any."""
        error = self._socket_error
        if error is not None:
            words = f"the network connection broke ({self._describe(error)})"
        elif code == 141:
            words = (f"the network connection broke or the broker stopped answering (no "
                     f"answer to the keepalive ping within {self.settings.keepalive} s)")
        elif code == 130:
            words = "protocol error: the broker sent something that is not MQTT"
        elif code == 142:
            words = "another client connected with the same client id"
        else:
            words = "the broker closed the connection (it stopped, or it dropped this client)"
        name = str(reason) if reason is not None else ""
        if isinstance(code, int) and name:
            words += printable(f" [paho reason {code}: {name}]")
        return words

    def _describe(self, error: BaseException) -> str:
        s = self.settings
        return describe_error(error, s.connect_timeout, s.host, s.port)

    def _probe(self, kind: str) -> bool:
        """Once per run: does the port speak TLS ("tls") or plain MQTT ("mqtt")?"""
        if kind not in self._probes:
            s = self.settings
            timeout = min(PROBE_TIMEOUT, s.connect_timeout)
            speaks = _speaks_tls if kind == "tls" else _speaks_mqtt
            self._probes[kind] = not self._closing and speaks(s.host, s.port, timeout)
        return self._probes[kind]

    def _next_delay(self) -> float:
        """paho's next reconnect wait: its minimum, doubled per failure up to its maximum,
        back to the minimum once a broker accepted the connection (reconnect_delay_set)."""
        s = self.settings
        self._delay = s.reconnect_min if self._delay is None else min(
            self._delay * 2, s.reconnect_max)
        return self._delay

    def _failure(self, cause: str) -> None:
        """A failed attempt, said with the next retry; the same cause again within
        QUIET_REPEATS seconds only counted, and the count said with its next report."""
        self.state = "reconnecting" if self.connects else "connecting"
        self.problem = cause
        delay = self._next_delay()
        now = time.monotonic()
        if cause == self._quiet_cause and now - self._quiet_since < QUIET_REPEATS:
            self._quiet_repeats += 1
            return
        again = ""
        if cause == self._quiet_cause and self._quiet_repeats:
            again = (f" (failed the same way {self._quiet_repeats} more time"
                     f"{'s' if self._quiet_repeats != 1 else ''} since the last report)")
        self._report(f"cannot connect to {self.settings.display}: {cause}; retrying in "
                     f"{_seconds(delay)} at {_clock_in(delay)}{again}")
        self._quiet_cause, self._quiet_since, self._quiet_repeats = cause, now, 0

    def _give_up(self, client: paho.Client, message: str) -> None:
        """Stop reconnecting (on paho's thread: its loop ends after this callback)."""
        self.gave_up = message  # said by the caller (cep run: its error line, exit status 1)
        self.problem = message
        self.state = "gave up"
        client.loop_stop()  # from paho's own thread: ends its loop, joins nothing
        if self._on_give_up is not None:
            self._on_give_up(message)

    def _crashed(self, exc: BaseException) -> None:
        if self._closing:
            return
        message = (f"the MQTT network thread failed ({printable(repr(exc))}): cep no longer "
                   f"reads the bus; stopping")
        self.gave_up = message
        self.problem = message
        self.state = "gave up"
        if self._on_give_up is not None:
            self._on_give_up(message)

    def _published(self, client: paho.Client, userdata: object, mid: int,
                   reason_code: object = None, properties: object = None) -> None:
        # Runs on paho's thread, possibly before publish() has returned the id to us.
        with self._acknowledged:
            if mid in self._unacknowledged:
                self._unacknowledged.discard(mid)
                done = self._on_done.pop(mid, None)
                if done is not None:
                    done()
            elif mid in self._status_unacknowledged:
                self._status_unacknowledged.discard(mid)
            elif self._publishing:
                self._acknowledged_early.add(mid)
            self._acknowledged.notify_all()

    def _received(self, client: paho.Client, userdata: object,
                  message: paho.MQTTMessage) -> None:
        # paho decodes the topic strictly: a broker that passes on one that is not UTF-8
        # must not end the network thread.
        try:
            topic, bad = message.topic, None
        except UnicodeDecodeError:
            raw = bytes(getattr(message, "_topic", b""))
            topic, bad = raw.decode("utf-8", "backslashreplace"), "the topic is not UTF-8"
        self._on_message(ReceivedMessage(topic, bytes(message.payload), message.qos,
                                         bool(message.retain), self._clock(), bad,
                                         message.mid, bool(message.dup)))

    def ack(self, message: ReceivedMessage) -> None:
        """Acknowledge a QoS 1/2 message to the broker (with `manual_ack`; from any thread)."""
        if self.manual_ack and message.qos > 0:
            self.client.ack(message.mid, message.qos)

    # ------------------------------------------------------------------ use
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool,
                on_done: Callable[[], None] | None = None) -> bool:
        """Send (or, for QoS 1/2 while disconnected, queue); False when not sent.

        `on_done` is called once the message is safe: at once for QoS 0 (handed to paho),
        on the broker's acknowledgement for QoS 1/2 (on paho's thread, under a lock:
        it must be quick and must not publish).

        A topic or message a broker would refuse by closing the connection is never
        handed to paho (it would re-send it after every reconnect): it is counted in
        `refused` and reported, at most once per topic a minute."""
        problem = publish_problem(topic, payload, qos)
        if problem is None:
            try:
                if self._send(topic, payload, qos, retain, self._unacknowledged, on_done):
                    return True
            except ValueError as exc:  # paho's own checks: nothing was queued
                problem = printable(str(exc))
            else:
                self.publish_failures += 1
                return False
        self.refused += 1
        self._refusals.bad(topic if isinstance(topic, str) else repr(topic), problem,
                           self._clock())
        return False

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool,
              pending: set[int], on_done: Callable[[], None] | None = None) -> bool:
        """Hand one message to paho; a QoS 1/2 one is kept in `pending` until acknowledged."""
        accepted = False
        mid = 0
        with self._acknowledged:
            self._publishing = True
        try:
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
            mid = info.mid
            accepted = info.rc == paho.MQTT_ERR_SUCCESS or \
                (qos > 0 and info.rc == paho.MQTT_ERR_NO_CONN)
        finally:
            # One locked step, so that an acknowledgement is either seen here or finds the
            # id registered.
            with self._acknowledged:
                self._publishing = False
                early, self._acknowledged_early = self._acknowledged_early, set()
                if accepted and qos > 0 and mid not in early:
                    pending.add(mid)
                    if on_done is not None:
                        self._on_done[mid] = on_done
                elif accepted and on_done is not None:  # QoS 0, or acknowledged already
                    on_done()
        return accepted

    def close(self, timeout: float = 5.0) -> None:
        """Set the status offline (retained), let the messages in flight go, disconnect.

        While the broker has accepted the connection (subscribed yet or not), the `offline`
        status and every QoS 1/2 action still unacknowledged get until `timeout` for the
        broker's acknowledgement; what is still unacknowledged then is counted in `unsent`.
        Disconnected, nothing can be acknowledged: what is queued is unsent at once.
        """
        deadline = time.monotonic() + timeout
        with self._status_lock:
            self._closing = True
            linked = self.linked.is_set()
            if linked and self.settings.status_topic:
                self._send(self.settings.status_topic, b"offline", 1, True,
                           self._status_unacknowledged)
        with self._watch_lock:
            self._stop_watchdog()
        with self._acknowledged:
            if linked:
                self._acknowledged.wait_for(
                    lambda: not self.linked.is_set()
                    or not (self._unacknowledged or self._status_unacknowledged),
                    max(0.0, deadline - time.monotonic()))
            self.unsent = len(self._unacknowledged)
        # Also when not (or not yet) connected: it ends paho's connecting and backoff at once.
        self.client.disconnect()
        self.client.loop_stop()
        self.state = "closed"


def _clock_in(seconds: float) -> str:
    """The local wall-clock time `seconds` from now, `12:00:04` (for people, in messages)."""
    return time.strftime("%H:%M:%S", time.localtime(time.time() + seconds))
