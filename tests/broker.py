"""A real mosquitto for the MQTT tests: own port, own config and folder, stoppable and restartable.

No mocks: the tests talk MQTT to this broker, and the engine runs as a real
`cep` process (or a LiveRunner in a thread) connected to it.  On a machine
without mosquitto the tests that need it skip with the reason; under CI
(`CI` set to anything but "", "0" or "false") a missing mosquitto is a failure,
since `.ci/run` installs it.

Every wait here is for a condition, with a deadline (`WAIT`) long enough for a
loaded machine; none sleeps a fixed time hoping something happened.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)
# seconds: the longest any expectation (a message, a line, a process ending) may take before
# a test fails. Generous, for a loaded 2-core machine: a passing test never waits this long.
WAIT = 60.0
POLL = 0.02  # seconds between two looks at a condition that cannot be waited on directly


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(available: bool, reason: str) -> None:
    """Skip the test for want of a tool, except under CI, where that is a failure."""
    if available:
        return
    if in_ci():
        pytest.fail(f"{reason}, and under CI the test must run", pytrace=False)
    pytest.skip(reason)


def require_mosquitto() -> str:
    require(MOSQUITTO is not None, "mosquitto is not installed (apt-get install mosquitto); "
                                   "the MQTT tests need a real broker")
    assert MOSQUITTO is not None
    return MOSQUITTO


def wait_until(condition: Callable[[], object], what: str = "the condition",
               timeout: float = WAIT) -> None:
    """Poll `condition` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(POLL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """One mosquitto on 127.0.0.1:`port`, its state kept in `folder` across restarts."""

    def __init__(self, folder: Path, extra_config: str = "", port: int | None = None,
                 tls: bool = False) -> None:
        self.binary = require_mosquitto()
        self.folder = folder
        self.port = port or free_port()
        self.tls = tls
        self.log = folder / "mosquitto.log"
        self.config = folder / "mosquitto.conf"
        (folder / "data").mkdir(exist_ok=True)
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"persistence true\npersistence_location {folder / 'data'}/\n"
            f"log_dest file {self.log}\nlog_type all\n"
            # started as root, mosquitto would become the `mosquitto` user, who cannot
            # read this test's files
            + ("user root\n" if os.geteuid() == 0 else "")
            + ("allow_anonymous true\n" if "password_file" not in extra_config else "")
            + extra_config)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        """Start mosquitto and wait until it listens (it says so in its log)."""
        self.log.unlink(missing_ok=True)
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        process = self.process
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                assert process.stderr is not None
                self.process = None
                raise RuntimeError(f"mosquitto exited: {process.stderr.read().decode()}"
                                   f"{self.log.read_text() if self.log.exists() else ''}")
            # "running" comes after the listener is open: a connection now reaches this
            # mosquitto (not whatever else might hold the port)
            if self.log.exists() and " running" in self.log.read_text(errors="replace"):
                return self
            time.sleep(POLL)
        self.stop()
        raise RuntimeError(f"mosquitto did not start listening on {self.port} within {WAIT} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # mosquitto saves its persistence file on SIGTERM
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


class BusClient:
    """A test's own MQTT client: publishes sensor messages and collects what arrives."""

    def __init__(self, broker: Broker, topics: tuple[str, ...] = ("#",),
                 client_id: str = "", ca_file: str | None = None,
                 username: str | None = None, password: str | None = None,
                 clean_session: bool = True) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean_session)
        if ca_file is not None:
            self.client.tls_set(ca_certs=ca_file)
        if username is not None:
            self.client.username_pw_set(username, password)
        # after a broker restart, back at once (paho's default waits up to two minutes)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 2) for t in topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self.subscribed.wait(WAIT):
            self.close()
            raise AssertionError("the test client could not subscribe")

    def publish(self, topic: str, payload: bytes | str, qos: int = 1,
                retain: bool = False) -> None:
        """Publish and wait until the broker has it (its acknowledgement, for QoS 1/2)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(WAIT)
        assert info.is_published(), f"the broker did not take {topic} within {WAIT} s"

    def wait_for(self, predicate: Callable[[paho.MQTTMessage], bool],
                 timeout: float = WAIT) -> paho.MQTTMessage:
        """The first message (from now on) satisfying `predicate`; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching message within {timeout} s; saw "
                                     f"{[(m.topic, m.payload) for m in seen]}")
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(message):
                return message
            seen.append(message)

    def wait_topic(self, topic: str, payload: bytes | None = None,
                   timeout: float = WAIT) -> paho.MQTTMessage:
        return self.wait_for(lambda m: m.topic == topic and
                             (payload is None or m.payload == payload), timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class CepProcess:
    """`cep run` (or `cep record`) as a child process; stdout and stderr collected by threads."""

    started: ClassVar[list[CepProcess]] = []  # every one, so a failed test leaves none running

    def __init__(self, args: list[str], cwd: Path, prefix: tuple[str, ...] = ()) -> None:
        """`prefix`: a command that runs cep, e.g. `("prlimit", "--fsize=30000")`."""
        CepProcess.started.append(self)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen([*prefix, sys.executable, "-m", "cep", *args], cwd=cwd,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=env)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._news = threading.Condition()
        self._ended: set[str] = set()  # the pipes read to their end
        self._readers = [threading.Thread(target=self._read, args=(pipe, lines, name),
                                          daemon=True)
                         for pipe, lines, name in ((self.process.stdout, self.stdout, "stdout"),
                                                   (self.process.stderr, self.stderr, "stderr"))]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: object, lines: list[str], name: str) -> None:
        for raw in pipe:  # type: ignore[attr-defined]
            with self._news:
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._news.notify_all()
        with self._news:
            self._ended.add(name)
            self._news.notify_all()

    def _wait_line(self, lines: list[str], text: str, what: str, timeout: float,
                   nth: int = 1) -> str:
        deadline = time.monotonic() + timeout
        with self._news:
            while True:
                found = [line for line in lines if text in line]
                if len(found) >= nth:
                    return found[nth - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or what in self._ended:
                    raise AssertionError(f"cep never wrote {text!r} on {what}; stderr was:\n"
                                         + "\n".join(self.stderr))
                self._news.wait(remaining)  # each new line (and the pipe's end) wakes it

    def wait_stderr(self, text: str, timeout: float = WAIT, nth: int = 1) -> str:
        """The `nth` stderr line containing `text`, waiting for it if need be."""
        return self._wait_line(self.stderr, text, "stderr", timeout, nth)

    def wait_stdout(self, text: str, timeout: float = WAIT) -> str:
        return self._wait_line(self.stdout, text, "stdout", timeout)

    def stop(self, sig: int = 15, timeout: float = WAIT) -> int:
        """Send `sig` (SIGTERM by default) and wait for the exit status."""
        self.process.send_signal(sig)
        return self.wait(timeout, "did not stop after the signal")

    def wait(self, timeout: float = WAIT, failure: str = "did not end") -> int:
        """Wait for the process to end (killing it and failing after `timeout`)."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"cep {failure}; stderr:\n" + "\n".join(self.stderr)) from None
        for reader in self._readers:
            reader.join(WAIT)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @classmethod
    def kill_all(cls) -> None:
        while cls.started:
            cls.started.pop().kill()
