"""Talking to NATS: connecting (with failures said in words), key-value snapshots, and
publishing to streams with every acknowledgement awaited and failures sent again.

nats-py is an optional dependency (`pip install 'cep[cluster]'`): it is imported here
only, when a cluster command runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cep.adapters.badmessages import printable

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

Report = Callable[[str], None]
API_TIMEOUT = 10.0    # seconds a JetStream request may take before it is tried again
RETRY_MIN, RETRY_MAX = 0.2, 5.0
CONNECT_TIMEOUT = 5.0   # seconds one attempt to reach one server may take
FIRST_ATTEMPTS = 2      # attempts per server for the first connection
CONNECT_DEADLINE = 20.0  # seconds the first connection may take in all


class ClusterError(Exception):
    """The cluster cannot be used as asked: the message says what is wrong and what to do."""


def require_nats() -> None:
    try:
        import nats  # noqa: F401
    except ImportError:
        raise ClusterError("the cluster commands need the nats-py package: "
                           "pip install 'cep[cluster]' (or pip install nats-py)") from None


def split_servers(url: str) -> list[str]:
    """`nats://a:4222,nats://b:4222` (or `a:4222,b:4222`) → the servers' URLs."""
    servers = []
    for part in url.split(","):
        part = part.strip()
        if not part:
            continue
        if "://" not in part:
            part = "nats://" + part
        if not part.startswith(("nats://", "tls://", "ws://", "wss://")):
            raise ClusterError(f"{printable(part)!s}: a NATS URL starts with nats:// or tls://")
        servers.append(part)
    if not servers:
        raise ClusterError("no NATS server given: --nats nats://HOST:4222 (several, "
                           "comma-separated)")
    return servers


def describe(exc: BaseException) -> str:
    """A NATS or network failure in words."""
    import nats.errors
    import nats.js.errors

    if isinstance(exc, nats.js.errors.APIError):
        text = exc.description or str(exc)
        if "insufficient resources" in text:
            return (f"{text}: the NATS cluster has fewer JetStream servers than the "
                    "replicas asked for (give --replicas N with at most as many as it has)")
        return f"{text} (JetStream error {exc.err_code})"
    if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
        return "no JetStream answered (is JetStream enabled, and is the cluster up?)"
    if isinstance(exc, nats.errors.NoServersError):
        return "no server answered"
    if isinstance(exc, asyncio.TimeoutError | nats.errors.TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return printable(str(exc) or type(exc).__name__)


async def connect(url: str, name: str, report: Report | None = None,
                  keep_trying: bool = False) -> Client:
    """A connection that reconnects by itself once made.  Without `keep_trying`, a first
    connection that fails raises ClusterError; with it, it is tried again (said once per
    failure kind) until it succeeds."""
    require_nats()
    import nats

    servers = split_servers(url)
    shown = ",".join(servers)
    delay = RETRY_MIN
    said = ""

    async def disconnected() -> None:
        if report is not None and not (client.is_closed or client.is_draining):
            report(f"lost the connection to NATS; reconnecting ({shown})")

    async def reconnected() -> None:
        if report is not None:
            where = client.connected_url.netloc if client.connected_url else shown
            report(f"reconnected to NATS ({where})")

    async def error(exc: Exception) -> None:
        if report is not None and not isinstance(exc, nats.errors.StaleConnectionError):
            report(f"NATS: {describe(exc)}")

    failures: list[BaseException] = []  # the current attempt's, said when it fails

    async def first_error(exc: Exception) -> None:
        failures.append(exc)

    while True:
        failures.clear()
        try:
            # The first connection tries each server a few times, within a deadline
            # (nats-py, told to reconnect for ever, would also try for ever to make
            # it); once made, the connection reconnects by itself for as long as it
            # takes, saying so.
            client = await asyncio.wait_for(nats.connect(
                servers=servers, name=name, connect_timeout=CONNECT_TIMEOUT,
                allow_reconnect=True, max_reconnect_attempts=FIRST_ATTEMPTS,
                reconnect_time_wait=0.5, ping_interval=5, max_outstanding_pings=3,
                disconnected_cb=disconnected, reconnected_cb=reconnected,
                error_cb=first_error), timeout=CONNECT_DEADLINE)
        except Exception as exc:
            if isinstance(exc, asyncio.TimeoutError):
                why = (f"{describe(failures[-1])} (gave up after {CONNECT_DEADLINE:g} s)"
                       if failures else f"no answer within {CONNECT_DEADLINE:g} s")
            elif isinstance(exc, nats.errors.NoServersError) and failures:
                why = describe(failures[-1])
            else:
                why = describe(exc)
            if not keep_trying:
                raise ClusterError(f"cannot connect to {shown}: {why}; check the --nats URL "
                                   "and that nats-server runs there") from None
            if report is not None and why != said:
                report(f"cannot connect to {shown}: {why}; trying again")
                said = why
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)
            continue
        client.options["max_reconnect_attempts"] = -1  # from now on: for ever
        client._error_cb = error
        return client


async def kv_snapshot(kv: KeyValue, keys: str = ">") -> dict[str, tuple[bytes, int]]:
    """Every key matching `keys` with its value and revision (deleted keys left out).

    Read with a consumer of the bucket's stream that is told to deliver each key's last
    value: its count of messages to deliver, taken when it is made, says when all have
    come (a watcher's "nothing more" marker can come before the values do)."""
    import nats.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    js = kv._js
    bucket = kv._name
    prefix = f"$KV.{bucket}."
    sub = await js.pull_subscribe(
        prefix + keys, stream=f"KV_{bucket}",
        config=ConsumerConfig(ack_policy=AckPolicy.NONE,
                              deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                              inactive_threshold=60.0, num_replicas=1, mem_storage=True))
    found: dict[str, tuple[bytes, int]] = {}
    try:
        info = await sub.consumer_info()
        left = info.num_pending or 0
        while left > 0:
            try:
                batch = await sub.fetch(min(left, 1000), timeout=API_TIMEOUT)
            except (TimeoutError, nats.errors.TimeoutError):
                raise nats.errors.TimeoutError from None
            for msg in batch:
                left -= 1
                meta = msg.metadata
                operation = (msg.headers or {}).get("KV-Operation")
                key = msg.subject[len(prefix):]
                if operation in ("DEL", "PURGE"):
                    found.pop(key, None)
                    continue
                found[key] = (msg.data or b"", meta.sequence.stream)
                if not meta.num_pending:
                    left = 0
    finally:
        try:
            await sub.unsubscribe()
        except Exception:
            pass
    return found


async def kv_get(kv: KeyValue, key: str) -> tuple[bytes, int] | None:
    """A key's value and revision; None when it is not there (or deleted)."""
    import nats.js.errors

    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None
    return entry.value or b"", entry.revision or 0


@dataclass
class _Pending:
    subject: str
    payload: bytes
    headers: dict[str, str] | None
    future: asyncio.Future[Any] | None = None


class StreamPublisher:
    """Messages for streams, sent at once (pipelined) and acknowledged later: `settle`
    waits until every stream has acknowledged every one, sending again (with the same
    headers: a message id lets the stream drop a second copy) what failed or got no
    answer within API_TIMEOUT."""

    IN_FLIGHT = 1000  # sent and not yet acknowledged, at most: then `send` settles first

    def __init__(self, js: JetStreamContext, report: Report,
                 alive: Callable[[], bool] = lambda: True) -> None:
        self.js = js
        self.report = report
        self.alive = alive
        self._pending: list[_Pending] = []
        self.sent = 0
        self.resent = 0
        self.refused = 0

    async def send(self, subject: str, payload: bytes,
                   headers: dict[str, str] | None = None) -> None:
        if len(self._pending) >= self.IN_FLIGHT:
            # (a connection that broke holds its messages' answers for ever: settle()
            # sends them again, instead of waiting for a free place among them)
            await self.settle(self.alive)
        item = _Pending(subject, payload, headers)
        await self._start(item)
        self._pending.append(item)
        self.sent += 1

    async def send_all(self, items: Iterable[tuple[str, bytes, dict[str, str] | None]]) -> None:
        for subject, payload, headers in items:
            await self.send(subject, payload, headers)

    async def _start(self, item: _Pending) -> None:
        try:
            item.future = await self.js.publish_async(item.subject, item.payload,
                                                      wait_stall=API_TIMEOUT,
                                                      headers=item.headers)
        except Exception as exc:  # not connected just now: sent again by settle()
            item.future = None
            self._problem(exc)

    def __len__(self) -> int:
        return len(self._pending)

    async def settle(self, alive: Callable[[], bool] = lambda: True) -> bool:
        """Wait until every message sent so far is acknowledged (True), or `alive()`
        turned false meanwhile (False: what is left stays pending)."""
        import nats.errors
        import nats.js.errors

        delay = RETRY_MIN
        while self._pending:
            waiting = [item.future for item in self._pending if item.future is not None]
            if waiting:
                await asyncio.wait(waiting, timeout=API_TIMEOUT)
            again: list[_Pending] = []
            for item in self._pending:
                future = item.future
                if future is not None and future.done() and not future.cancelled() \
                        and future.exception() is None:
                    continue
                if future is not None and future.done() and not future.cancelled():
                    exc = future.exception()
                    if isinstance(exc, nats.js.errors.APIError) and \
                            not isinstance(exc, nats.js.errors.ServiceUnavailableError) and \
                            exc.err_code not in (10008, 10074):  # 503s, cluster not ready
                        self.refused += 1  # refused by the stream for good: say so, go on
                        self.report(f"{printable(item.subject, 200)}: not stored: "
                                    f"{describe(exc)}")
                        continue
                    assert exc is not None
                    self._problem(exc)
                elif future is not None and not future.done():
                    future.cancel()
                again.append(item)
            self._pending = again
            if not again:
                break
            if not alive():
                return False
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)
            for item in again:
                self.resent += 1
                # (a copy sent again says so: a subscriber that gets two can tell why)
                item.headers = {**(item.headers or {}), "Cep-Sent-Again": str(self.resent)}
                try:
                    await self._start(item)
                except nats.errors.Error as exc:
                    self._problem(exc)
        return True

    _said = ""
    _said_at = 0.0

    def _problem(self, exc: BaseException) -> None:
        why = describe(exc)
        now = time.monotonic()
        if why != self._said or now - self._said_at > 30:
            self.report(f"publishing to JetStream: {why}; sending again")
            self._said, self._said_at = why, now


def json_bytes(value: Any) -> bytes:
    from cep.adapters.jsonlib import dumps_compact

    return bytes(dumps_compact(value))


def json_value(data: bytes) -> Any:
    """JSON from a key's value; None when it is not JSON (a damaged or foreign key)."""
    from cep.adapters.jsonlib import loads

    try:
        return loads(data)
    except ValueError:
        return None
