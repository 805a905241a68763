"""A loopback TCP server that speaks just enough MQTT 3.1.1 to hold a client at a chosen step.

mosquitto answers at once, so a test cannot catch a client *between* connecting and
being subscribed; this server can: it may never answer CONNECT, answer it but never
SUBSCRIBE, or hold back its PUBACKs until the test releases them.  It records every
packet it receives, and a hook sees each one as it comes (a test can send a signal
at exactly that step).  Only for tests about those steps; the rest use mosquitto.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.broker import WAIT

CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT = 1, 3, 4, 8, 12, 14
NAMES = {CONNECT: "CONNECT", PUBLISH: "PUBLISH", PUBACK: "PUBACK", SUBSCRIBE: "SUBSCRIBE",
         PINGREQ: "PINGREQ", DISCONNECT: "DISCONNECT", 0: "closed"}


@dataclass
class Packet:
    kind: str                 # CONNECT, PUBLISH, SUBSCRIBE, DISCONNECT, ... or "closed" (EOF)
    topic: str = ""
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    mid: int = 0
    filters: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        if self.kind == "PUBLISH":
            return f"PUBLISH({self.topic!r}, {self.payload!r}, qos={self.qos}, retain={self.retain})"
        if self.kind == "SUBSCRIBE":
            return f"SUBSCRIBE({self.filters})"
        return self.kind


class FakeBroker:
    """Listens on 127.0.0.1; `connack`, `suback` and `puback` say which answers it gives."""

    def __init__(self, connack: bool = True, suback: bool = True, puback: bool = True,
                 on_packet: Callable[[Packet], None] | None = None) -> None:
        self.connack = connack
        self.suback = suback
        self.on_packet = on_packet
        self.packets: list[Packet] = []
        self._news = threading.Condition()
        self._pubacks_released = puback
        self._held: list[tuple[socket.socket, int]] = []
        self._unanswered: list[tuple[socket.socket, Packet]] = []  # SUBSCRIBEs held back
        self._send_lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ the test's side
    def wait_for(self, predicate: Callable[[Packet], bool], what: str,
                 timeout: float = WAIT) -> Packet:
        """The first packet received (so far or from now on) satisfying `predicate`."""
        deadline = time.monotonic() + timeout
        with self._news:
            while True:
                for packet in self.packets:
                    if predicate(packet):
                        return packet
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"the client never sent {what} within {timeout} s; "
                                         f"it sent {self.packets}")
                self._news.wait(remaining)

    def wait_kind(self, kind: str, timeout: float = WAIT) -> Packet:
        return self.wait_for(lambda p: p.kind == kind, kind, timeout)

    def received(self) -> list[Packet]:
        with self._news:
            return list(self.packets)

    def release_pubacks(self) -> None:
        """Acknowledge the PUBLISHes held back so far, and every later one at once."""
        with self._news:
            self._pubacks_released = True
            held, self._held = self._held, []
        for connection, mid in held:
            self._send(connection, struct.pack("!BBH", PUBACK << 4, 2, mid))

    def answer_subscriptions(self) -> None:
        """Send the SUBACKs held back so far (`suback=False`)."""
        with self._news:
            unanswered, self._unanswered = self._unanswered, []
        for connection, packet in unanswered:
            self._send(connection, self._suback(packet))

    @staticmethod
    def _suback(packet: Packet) -> bytes:
        return struct.pack("!BBH", 0x90, 2 + len(packet.filters), packet.mid) \
            + bytes([1] * len(packet.filters))

    def close(self) -> None:
        self._closed = True
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (Linux)
        except OSError:
            pass
        self.server.close()
        for connection in list(self._connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

    def __enter__(self) -> FakeBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the server's side
    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _send(self, connection: socket.socket, data: bytes) -> None:
        with self._send_lock:
            try:
                connection.sendall(data)
            except OSError:
                pass

    def _serve(self, connection: socket.socket) -> None:
        reader = connection.makefile("rb")
        try:
            while True:
                header = reader.read(1)
                if not header:
                    break
                length, multiplier = 0, 1
                while True:
                    byte = reader.read(1)
                    if not byte:
                        return
                    length += (byte[0] & 0x7F) * multiplier
                    multiplier *= 128
                    if not byte[0] & 0x80:
                        break
                body = reader.read(length)
                if len(body) < length:
                    break
                packet = self._answer(connection, header[0], body)
                if packet.kind == "DISCONNECT":
                    return
        except OSError:
            pass
        finally:
            self._record(Packet("closed"))
            reader.close()

    def _answer(self, connection: socket.socket, first: int, body: bytes) -> Packet:
        kind, flags = first >> 4, first & 0x0F
        packet = Packet(NAMES.get(kind, f"type {kind}"))
        reply = b""
        if kind == CONNECT and self.connack:
            reply = bytes([0x20, 2, 0, 0])
        elif kind == SUBSCRIBE:
            packet.mid = struct.unpack("!H", body[:2])[0]
            at = 2
            while at < len(body):
                size = struct.unpack("!H", body[at:at + 2])[0]
                packet.filters.append(body[at + 2:at + 2 + size].decode())
                at += 2 + size + 1
            if self.suback:
                reply = self._suback(packet)
            else:
                with self._news:
                    self._unanswered.append((connection, packet))
        elif kind == PUBLISH:
            packet.qos, packet.retain = (flags >> 1) & 3, bool(flags & 1)
            size = struct.unpack("!H", body[:2])[0]
            packet.topic = body[2:2 + size].decode()
            at = 2 + size
            if packet.qos:
                packet.mid = struct.unpack("!H", body[at:at + 2])[0]
                at += 2
            packet.payload = body[at:]
            if packet.qos == 1:
                with self._news:
                    released = self._pubacks_released
                    if not released:
                        self._held.append((connection, packet.mid))
                if released:
                    reply = struct.pack("!BBH", PUBACK << 4, 2, packet.mid)
        elif kind == PINGREQ:
            reply = bytes([0xD0, 0])
        if reply:
            self._send(connection, reply)
        self._record(packet)
        return packet

    def _record(self, packet: Packet) -> None:
        with self._news:
            self.packets.append(packet)
            self._news.notify_all()
        if self.on_packet is not None:
            self.on_packet(packet)
