"""End to end: `cep replay --view` in a pseudo-terminal (80x24) on the night scenario.

The pty test creates its own terminal (no tty needed in CI); the tmux test, run only when
tmux is installed, checks the final screen as a person would see it.  Both have timeouts.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NIGHT = os.path.join(ROOT, "scenarios", "night-context")
TIMEOUT = 60.0
# the two nights (34.5 h of trace time) in about 1.2 s
SPEED = "100000"
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])")

pytestmark = [pytest.mark.terminal, pytest.mark.slow,
              pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")]


def command(out: str) -> list[str]:
    """Run from ROOT. The paths are relative: the summary line starts with the trace's path,
    so with an absolute one its length (and how it wraps on 80 columns, and how much of the
    frame scrolls away under it) would depend on where the checkout is."""
    return [sys.executable, "-m", "cep", "replay", os.path.join("rules", "night.epl"),
            "--trace", os.path.join("scenarios", "night-context", "trace.jsonl"), "--until",
            "2026-11-22T08:00:00+08:00", "--contexts", "--speed", SPEED, "--view", "--out", out]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    return env


def expected_output() -> str:
    with open(os.path.join(NIGHT, "expected.jsonl"), encoding="utf-8") as handle:
        return handle.read()


def _default_sigint() -> None:
    """In the child, before exec: SIGINT back to its default. A suite started in the
    background (`cmd &` in a script) runs with SIGINT ignored, and a program started with
    SIGINT ignored keeps ignoring it, so Ctrl-C would never reach the replay."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_in_pty(args: list[str], interrupt_when: str = "") -> tuple[int, str]:
    """Run `args` in a new 80x24 pseudo-terminal; (exit status, everything it drew).

    With `interrupt_when`, send SIGINT once that text has been drawn.
    """
    import fcntl
    import pty
    import signal
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave,
                               env=environment(), cwd=ROOT, start_new_session=True,
                               preexec_fn=_default_sigint)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
                if interrupt_when and interrupt_when in b"".join(chunks).decode(
                        "utf-8", errors="replace"):
                    interrupt_when = ""
                    process.send_signal(signal.SIGINT)
            elif process.poll() is not None:
                break
        else:
            pytest.fail(f"{args[3]} did not finish in time")
        code = process.wait(timeout=TIMEOUT)  # the terminal is closed: it is ending
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def test_replay_view_in_a_pty(tmp_path):
    out = tmp_path / "out.jsonl"
    code, raw = run_in_pty(command(str(out)))
    screen = ANSI.sub("", raw)
    assert code == 0, screen[-2000:]
    # frames were drawn while the trace played, then a final one and the summary line
    assert raw.count("Contexts · ") >= 2
    for needed in ("cep replay", "NightContext", "night_lights", "bathroom_too_long", "LeftBed",
                   "BathroomAlert", "home/alerts", "×100000", "finished", "100%"):
        assert needed in screen, needed
    assert "25 lines: 25 messages (25 with events), 0 bad lines" in screen
    # output lines went to --out only, never to the terminal
    assert '"kind": "event"' not in screen
    assert out.read_text() == expected_output()


def test_replay_view_ctrl_c_leaves_the_frame_and_exits_130(tmp_path):
    args = command(str(tmp_path / "out.jsonl"))
    args[args.index(SPEED)] = "60"          # slow enough to be interrupted while watching
    code, raw = run_in_pty(args, interrupt_when="Rules · 2")
    screen = ANSI.sub("", raw)
    assert code == 130, screen[-2000:]
    assert "cep: error: interrupted" in screen
    assert "Traceback" not in screen


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_replay_view_final_screen_in_tmux(tmp_path):
    out = tmp_path / "out.jsonl"
    session = f"cep-view-{uuid.uuid4().hex[:8]}"
    socket = str(tmp_path / "tmux.sock")
    tmux = ["tmux", "-S", socket]
    shell_command = " ".join(f"'{part}'" for part in command(str(out)))
    env = environment()
    started = subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "80", "-y", "24", f"cd '{ROOT}' && {shell_command}; echo EXIT=$?; sleep 600"],
        env=env, capture_output=True, text=True, timeout=TIMEOUT)
    if started.returncode != 0:
        pytest.skip(f"tmux cannot start a session here: {started.stderr.strip()}")
    try:
        screen = ""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            # -J: a line the terminal wrapped comes back whole (the summary line is longer
            # than 80 columns: cut in two, "25 lines: 25 messages" may be on no one row);
            # -S -: with the rows scrolled away above the screen, the frame's top among them
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-", "-t",
                                     session],
                                    capture_output=True, text=True, timeout=TIMEOUT).stdout
            if "EXIT=" in screen:
                break
            time.sleep(0.1)  # a look at the screen every 100 ms, until the deadline
        else:
            pytest.fail(f"cep replay --view did not finish in time:\n{screen}")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=TIMEOUT)
    rows = screen.rstrip("\n").split("\n")
    assert "EXIT=0" in screen, screen
    # the last frame stays on screen, with the summary line under it (its first lines may
    # have scrolled away under the summary and the EXIT line: they are in the history)
    summaries = [i for i, row in enumerate(rows) if "25 lines: 25 messages (25 with events)" in row]
    assert len(summaries) == 1, f"not one summary line on the final screen:\n{screen}"
    summary = summaries[0]
    frame = "\n".join(rows[max(0, summary - 24):summary])  # a frame is the terminal's height
    assert rows[summary - 1].startswith("╰")
    # the frame fills the terminal: its first row is the input panel's top border
    assert rows[summary - 24].startswith("╭─ cep replay · "), screen
    for needed in ("Contexts · 0 open", "Rules · 2", "night_lights", "bathroom_too_long",
                   "Fired events and actions · 13 (+4 context lines not shown)",
                   "BathroomAlert",
                   "unmatched 0 · outputs 17"):
        assert needed in frame, f"{needed!r} not on the final screen:\n{screen}"
    assert '"kind"' not in screen
    assert out.read_text() == expected_output()
