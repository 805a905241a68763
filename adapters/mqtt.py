"""The MQTT connection shared by `cep run` and `cep record` (paho-mqtt 2.x).

`BrokerSettings` is everything about *where and how* to connect (URL, TLS,
client id, keepalive, session, reconnect backoff, status topic), checked once
before anything connects.  `MqttConnection` owns one paho client whose network
loop runs on paho's own thread: it (re)subscribes on every connect, keeps a
retained availability topic (`online` while connected, `offline` as the last
will and on a clean close), sets TCP_NODELAY on every socket it opens, and
hands each received message to a callback *on paho's thread* — the caller
queues it for its own single engine thread.

Reconnection is paho's: after a lost connection it retries with exponential
backoff between `reconnect_min` and `reconnect_max` seconds, forever; the
first connection is retried the same way, so a service started before its
broker comes up once the broker does.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

__all__ = [
    "PASSWORD_ENV",
    "BrokerSettings",
    "MqttConnection",
    "ReceivedMessage",
    "SettingsError",
]

PASSWORD_ENV = "CEP_MQTT_PASSWORD"  # read when the URL names a user but no password
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class SettingsError(ValueError):
    """A broker URL or option that cannot work (bad usage: exit status 2)."""


@dataclass(frozen=True)
class ReceivedMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    arrival: float  # the clock's time when paho handed it over


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

    @classmethod
    def from_url(cls, url: str, *, tls: bool = False, ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None,
                 insecure: bool = False, client_id: str | None = None,
                 keepalive: int = 60, persistent: bool = False, subscribe_qos: int = 1,
                 status_topic: str | None = "cep/status",
                 reconnect_min: float = 1.0, reconnect_max: float = 60.0,
                 default_client_id: str = "cep") -> BrokerSettings:
        """Read `mqtt://[user[:pass]@]host[:port]` or `mqtts://...` and check the options."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise SettingsError(f"broker URL {url!r}: the scheme must be mqtt:// or mqtts://")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise SettingsError(f"broker URL {url!r}: a broker URL has no path or query")
        try:
            port = parts.port
        except ValueError:
            raise SettingsError(f"broker URL {url!r}: the port is not a number from 1 to 65535"
                                ) from None
        host = parts.hostname
        if not host:
            raise SettingsError(f"broker URL {url!r} names no host")
        use_tls = tls or scheme == "mqtts"
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if username is not None and password is None:
            password = os.environ.get(PASSWORD_ENV)
        for option, path in (("--ca-file", ca_file), ("--cert", cert_file), ("--key", key_file)):
            if path is not None and not os.path.isfile(path):
                raise SettingsError(f"{option} {path}: no such file")
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
        if status_topic is not None and (not status_topic or "+" in status_topic
                                         or "#" in status_topic):
            raise SettingsError(f"status topic {status_topic!r} must be a plain topic name")
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
                   reconnect_max=reconnect_max)

    @property
    def display(self) -> str:
        """The URL without the password, for messages and the view."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def _check_tls_files(ca_file: str | None, cert_file: str | None,
                     key_file: str | None) -> None:
    """Load the certificates once up front, so a wrong file is a usage error that names the
    option, not an SSL traceback from inside the MQTT client."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise SettingsError(f"--ca-file {ca_file}: not a PEM certificate file "
                                f"({_ssl_reason(exc)})") from None
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            what = f"--cert {cert_file}" + (f" with --key {key_file}" if key_file else "")
            raise SettingsError(f"{what}: not a PEM certificate and its private key "
                                f"({_ssl_reason(exc)})") from None


def _ssl_reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)


class MqttConnection:
    """One paho client on its own network thread; see the module docstring."""

    def __init__(self, settings: BrokerSettings, filters: list[str],
                 on_message: Callable[[ReceivedMessage], None],
                 report: Callable[[str], None], clock: Callable[[], float]) -> None:
        self.settings = settings
        self.filters = list(filters)
        self._on_message = on_message
        self._report = report
        self._clock = clock
        self.connected = threading.Event()  # subscribed (or nothing to subscribe): ready
        self.linked = threading.Event()     # the broker accepted the connection (CONNACK)
        self.state = "connecting"
        self.connects = 0           # successful CONNACKs
        self.disconnects = 0        # connections lost (not counting our own close)
        self.publish_failures = 0   # actions paho refused (QoS 0 while disconnected)
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
        self.unsent = 0             # QoS 1/2 actions still queued when the connection closed
        # Closing and the status topic go together: once close() has begun, no callback on
        # paho's thread may say `online` (or subscribe) after the `offline` it sends.
        self._status_lock = threading.Lock()
        self._closing = False
        self._last_failure: str | None = None
        self.client = self._make_client()

    # ------------------------------------------------------------------ setup
    def _make_client(self) -> paho.Client:
        s = self.settings
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             clean_session=not s.persistent, protocol=paho.MQTTv311)
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
        self.client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    # ------------------------------------------------------------------ paho callbacks
    @staticmethod
    def _socket_opened(client: paho.Client, userdata: object, sock: object) -> None:
        # Small packets go out at once instead of waiting for Nagle's algorithm.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
        except (OSError, AttributeError):
            pass

    def _connected(self, client: paho.Client, userdata: object, flags: object,
                   reason: paho.ReasonCode, properties: object) -> None:
        if reason.is_failure:
            self._failure(f"the broker refused the connection: {reason}")
            return
        with self._status_lock:
            self.connects += 1
            self.state = "connected"
            self._last_failure = None
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
            self._report(f"the broker refused the subscription to {', '.join(refused)}")
        self._ready(client)

    def _ready(self, client: paho.Client) -> None:
        """Subscribed: from here on no message is missed, so say `online`."""
        with self._status_lock:
            if self._closing:
                return
            if self.settings.status_topic:
                client.publish(self.settings.status_topic, b"online", qos=1, retain=True)
        self._report(f"listening on {', '.join(self.filters) or 'nothing'}")
        self.connected.set()

    def _connect_failed(self, client: paho.Client, userdata: object) -> None:
        self._failure(f"cannot connect to {self.settings.display}; retrying")

    def _disconnected(self, client: paho.Client, userdata: object, flags: object,
                      reason: paho.ReasonCode, properties: object) -> None:
        self.connected.clear()
        self.linked.clear()
        with self._acknowledged:  # close() may be waiting for acknowledgements: none will come
            self._acknowledged.notify_all()
        if self._closing:
            self.state = "closed"
            return
        was_connected = self.state == "connected"
        self.state = "reconnecting"
        if was_connected:
            self.disconnects += 1
            self._report(f"connection to {self.settings.display} lost ({reason}); "
                         f"reconnecting")

    def _failure(self, message: str) -> None:
        self.state = "reconnecting" if self.connects else "connecting"
        if message != self._last_failure:  # the backoff repeats it; say it once per cause
            self._report(message)
            self._last_failure = message

    def _published(self, client: paho.Client, userdata: object, mid: int,
                   reason_code: object = None, properties: object = None) -> None:
        # Runs on paho's thread, possibly before publish() has returned the id to us.
        with self._acknowledged:
            if mid in self._unacknowledged:
                self._unacknowledged.discard(mid)
            elif mid in self._status_unacknowledged:
                self._status_unacknowledged.discard(mid)
            elif self._publishing:
                self._acknowledged_early.add(mid)
            self._acknowledged.notify_all()

    def _received(self, client: paho.Client, userdata: object,
                  message: paho.MQTTMessage) -> None:
        self._on_message(ReceivedMessage(message.topic, bytes(message.payload), message.qos,
                                         bool(message.retain), self._clock()))

    # ------------------------------------------------------------------ use
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Send (or, for QoS 1/2 while disconnected, queue); False when paho refused it."""
        if self._send(topic, payload, qos, retain, self._unacknowledged):
            return True
        self.publish_failures += 1
        return False

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool,
              pending: set[int]) -> bool:
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
