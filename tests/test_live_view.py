"""`cep run --view` in a pseudo-terminal against a real mosquitto: the screen shows the broker,
the connection, the rule firing and, after SIGTERM, the last frame and the summary line."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.broker import WAIT, Broker, BusClient, require_mosquitto
from tests.test_live_mqtt import RULES

ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")]


class PtyProcess:
    """A command in its own 100x30 pseudo-terminal; everything it draws is kept, ANSI removed."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        import fcntl
        import pty
        import struct
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env["TERM"] = "xterm-256color"
        self.process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        cwd=cwd, start_new_session=True)
        os.close(slave)
        self.master = master
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.chunks.append(data)
            elif self.process.poll() is not None:
                return

    @property
    def screen(self) -> str:
        return ANSI.sub("", b"".join(self.chunks).decode("utf-8", errors="replace"))

    def wait_screen(self, text: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            if time.monotonic() > deadline or not self.reader.is_alive():
                raise AssertionError(f"the screen never showed {text!r}:\n{self.screen[-3000:]}")
            time.sleep(0.05)  # a look at the screen every 50 ms, until the deadline

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(WAIT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self.reader.join(WAIT)
        os.close(self.master)
        return status


@pytest.mark.mqtt
@pytest.mark.terminal
def test_run_view_shows_the_live_engine(tmp_path):
    require_mosquitto()
    broker = Broker(tmp_path).start()
    rules = tmp_path / "home.epl"
    rules.write_text(RULES)
    out = tmp_path / "out.jsonl"
    view = PtyProcess([sys.executable, "-m", "cep", "run", str(rules), "--broker", broker.url,
                       "--view", "--out", str(out)], tmp_path)
    bus = None
    try:
        bus = BusClient(broker)
        bus.wait_topic("cep/status", b"online")  # retained: there even if it came first
        view.wait_screen(broker.url.split("//")[1])
        view.wait_screen("connected")
        bus.publish("home/kitchen/temp", '{"value": 35}')
        bus.wait_topic("home/kitchen/fan/set")
        view.wait_screen("home/kitchen/fan/set")  # the action, in the fired events panel
        assert view.stop() == 0
    finally:
        if view.process.poll() is None:
            view.process.kill()
        if bus is not None:
            bus.close()
        broker.stop()
    assert "live: 1 message " in view.screen  # the summary line under the last frame
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(o["kind"], o["rule"]) for o in lines] == [("event", "hot"), ("publish", "hot")]


def test_run_view_without_a_terminal_is_refused(tmp_path):
    rules = tmp_path / "home.epl"
    rules.write_text(RULES)
    done = subprocess.run([sys.executable, "-m", "cep", "run", str(rules), "--view"],
                          capture_output=True, text=True, timeout=WAIT,
                          start_new_session=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "--view needs a terminal" in done.stderr
