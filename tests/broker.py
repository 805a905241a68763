"""A real mosquitto for the MQTT tests: own port, own config and folder, stoppable and restartable.

No mocks: the tests talk MQTT to this broker, and the engine runs as a real
`cep` process (or a LiveRunner in a thread) connected to it.  On a machine
without mosquitto the tests that need it skip with the reason; under CI
(`CI` set) a missing mosquitto is a failure, since `.ci/run` installs it.
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
WAIT = 10.0  # seconds: the longest any bus expectation may take before a test fails


def require_mosquitto() -> str:
    if MOSQUITTO is None:
        reason = ("mosquitto is not installed (apt-get install mosquitto); the MQTT tests "
                  "need a real broker")
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and under CI they must run")
        pytest.skip(reason)
    return MOSQUITTO


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
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.process.stderr.read().decode()}"
                                   f"{self.log.read_text() if self.log.exists() else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # mosquitto saves its persistence file on SIGTERM
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class BusClient:
    """A test's own MQTT client: publishes sensor messages and collects what arrives."""

    def __init__(self, broker: Broker, topics: tuple[str, ...] = ("#",),
                 client_id: str = "", ca_file: str | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if ca_file is not None:
            self.client.tls_set(ca_certs=ca_file)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 2) for t in topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(WAIT), "the test client could not subscribe"

    def publish(self, topic: str, payload: bytes | str, qos: int = 1,
                retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(WAIT)

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

    def __init__(self, args: list[str], cwd: Path) -> None:
        CepProcess.started.append(self)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen([sys.executable, "-m", "cep", *args], cwd=cwd,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=env)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._news = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(pipe, lines), daemon=True)
                         for pipe, lines in ((self.process.stdout, self.stdout),
                                             (self.process.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: object, lines: list[str]) -> None:
        for raw in pipe:  # type: ignore[attr-defined]
            with self._news:
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._news.notify_all()
        with self._news:
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
                if remaining <= 0 or not any(r.is_alive() for r in self._readers):
                    raise AssertionError(f"cep never wrote {text!r} on {what}; stderr was:\n"
                                         + "\n".join(self.stderr))
                self._news.wait(min(remaining, 0.2))

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
