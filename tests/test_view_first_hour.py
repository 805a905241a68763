"""What a new user hit in the terminal view, each fixed and kept fixed:

1. columns sized to their content, cut only when the width runs out (widest text first);
2. one time format throughout (`MM-DD HH:MM:SS`);
3. the fired-events counter counts what the panel lists (context lines said apart);
4. progress by trace time (first line's time to --until or the last line's), not bytes;
5. the frame fills the terminal exactly, its first row too;
6. the last stderr lines stay in a log panel.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import deque
from datetime import datetime, timedelta, timezone

import pytest
from rich.console import Console

from cep.tools.view import (
    Dashboard,
    EventsPanel,
    InputPanel,
    InputStatus,
    LogPanel,
    OutputRow,
    ReplayView,
    RuleRow,
    RulesPanel,
    Snapshot,
    TerminalView,
)
from cep.tools.view.app import LOG_LINES, PlainStderr, trace_bounds
from cep.tools.view.panels import fit_widths, fmt_clock, split_width

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NIGHT = os.path.join(ROOT, "scenarios", "night-context")
RULES = os.path.join(ROOT, "rules", "night.epl")
TRACE = os.path.join(NIGHT, "trace.jsonl")
TZ = timezone(timedelta(hours=8))


def t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp()


NOW = t("2026-11-21T03:30:00")
RULE = "living_room_evening_scene"                 # 25
TOPIC = "zigbee2mqtt/living_room/light/set"        # 33
PAYLOAD = '{"state":"ON","brightness":180,"color_temp":370,"transition":2}'   # 63


def snapshot(**changes) -> Snapshot:
    values = {
        "now": NOW, "tz": TZ,
        "input": InputStatus(source="night.jsonl", clock=NOW, lines=12, messages=12,
                             events=11),
        "rules": (RuleRow(RULE, "Evening", "select", 0, 1, t("2026-11-20T23:40:00")),),
        "outputs": (OutputRow(t("2026-11-20T23:40:00"), "publish", RULE, TOPIC, None, PAYLOAD),
                    OutputRow(t("2026-11-21T03:21:00"), "event", "night", "LeftBed", None,
                              "pressure=12.0")),
        "outputs_total": 2}
    values.update(changes)
    return Snapshot(**values)


def render(renderable, width: int = 80, height: int = 24) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def rows_of(text: str) -> list[str]:
    return [row.rstrip() for row in text.rstrip("\n").split("\n")]


# ---------------------------------------------------------------- 1. widths


def test_fit_widths_keeps_what_fits_and_cuts_the_widest_first():
    assert fit_widths([14, 25, 33, 63], [4, 8, 8, 8], [False, True, True, True], 200) == \
        [14, 25, 33, 63]
    # 113 columns: the payload alone is cut, the rule and the topic stay whole
    assert fit_widths([14, 25, 33, 63], [4, 8, 8, 8], [False, True, True, True], 113) == \
        [14, 25, 33, 41]
    # less room: the two widest come down to one level, never below their minimum
    assert fit_widths([14, 25, 33, 63], [4, 8, 8, 8], [False, True, True, True], 80) == \
        [14, 22, 22, 22]
    assert fit_widths([14, 25, 33, 63], [4, 8, 8, 8], [False, True, True, True], 20) == \
        [14, 8, 8, 8]


def test_events_panel_shows_long_names_whole_when_there_is_room():
    text = render(EventsPanel(snapshot()), width=160)
    assert RULE in text and TOPIC in text and PAYLOAD in text and "…" not in text


def test_events_panel_cuts_only_the_widest_column_first():
    text = render(EventsPanel(snapshot()), width=120)
    assert RULE in text and TOPIC in text and PAYLOAD not in text
    assert '│ 11-20 23:40:00 living_room_evening_scene → zigbee2mqtt/living_room/light/set ' \
        '{"state":"ON","brightness":180,"color_… │' in text
    assert "11-20 23:40:00" in text                   # times are never cut


def test_rules_panel_rule_name_whole_on_80_columns():
    assert f"│ {RULE} Evening       0       1 11-20 23:40:00 3h50m ago" in \
        render(RulesPanel(snapshot()))


def test_wide_dashboard_gives_the_fired_events_the_room_they_need():
    # the rules need 79 columns, the fired events 144: at 240 all of it shows
    text = render(Dashboard(snapshot()), width=240, height=20)
    assert PAYLOAD in text and TOPIC in text and RULE in text and "…" not in text
    assert all(len(row) <= 240 for row in rows_of(text))
    # at 220 the fired events get all the rules leave them: only the payload is cut
    text = render(Dashboard(snapshot()), width=220, height=20)
    assert PAYLOAD not in text and TOPIC in text and f"│ {RULE} Evening" in text


def test_split_width():
    assert split_width(159, 60, 70) == (74, 85)       # both fit: the rest shared
    assert split_width(159, 60, 140) == (60, 99)      # the left needs less than half
    assert split_width(159, 140, 50) == (109, 50)     # the right needs less than half
    assert split_width(159, 100, 140) == (79, 80)     # neither: halves
    assert split_width(159, 10, 200) == (40, 119)     # never narrower than 40


# ---------------------------------------------------------------- 2. one time format


CLOCK = re.compile(r"\d\d:\d\d:\d\d")


@pytest.mark.parametrize("width", [80, 170])
def test_every_time_in_the_view_has_the_same_format(width):
    text = render(Dashboard(snapshot()), width=width, height=30)
    assert "Nov " not in text                         # no `20 Nov 23:40` any more
    for match in CLOCK.finditer(text):
        # `11-20 23:40:00`; the input panel's clock: `Sat 2026-11-21 03:30:00 +08:00`
        assert re.fullmatch(r"\d\d-\d\d ", text[match.start() - 6:match.start()]), \
            text[match.start() - 10:match.end()]
    assert "11-20 23:40:00" in text and "11-21 03:21:00" in text


def test_fmt_clock_is_the_same_whatever_the_day():
    assert fmt_clock(t("2026-11-20T23:40:05"), TZ, NOW) == "11-20 23:40:05"
    assert fmt_clock(t("2026-11-21T03:21:00"), TZ, NOW) == "11-21 03:21:00"
    assert fmt_clock(None, TZ, NOW) == "—"


# ---------------------------------------------------------------- 3. counters


def _replay_frame(monkeypatch, *args: str) -> str:
    import cep.tools.view.app
    from cep.cli import main

    screen = Console(file=io.StringIO(), width=100, height=40, color_system=None)
    monkeypatch.setattr(cep.tools.view.app, "terminal_console", lambda: screen)
    assert main(["replay", RULES, "--trace", TRACE, "--until", "2026-11-22T08:00:00+08:00",
                 "--view", "--out", os.devnull, *args]) == 0
    return screen.file.getvalue()


def test_fired_counter_counts_what_the_panel_lists(monkeypatch):
    frame = _replay_frame(monkeypatch, "--contexts")
    # 17 output lines: 13 fired events and actions, 4 context lines the panel never lists
    assert "Fired events and actions · 13 (+4 context lines not shown)" in frame
    assert "outputs 17" in frame                      # the input panel: all output lines
    listed = [row for row in frame.split("Fired events and actions · 13")[-1].splitlines()
              if re.match(r"│ \d\d-\d\d \d\d:\d\d:\d\d ", row)]
    assert len(listed) == 13


def test_fired_counter_without_context_lines(monkeypatch):
    frame = _replay_frame(monkeypatch)
    assert "Fired events and actions · 13 ─" in frame and "context lines" not in frame


def test_snapshot_without_a_tee_counts_all_outputs():
    assert "Fired events and actions · 2 ─" in render(EventsPanel(snapshot()))
    text = render(EventsPanel(snapshot(outputs_total=3, fired_total=2)))
    assert "Fired events and actions · 2 (+1 context line not shown)" in text


# ---------------------------------------------------------------- 4. progress by trace time


def test_progress_by_trace_time_through_a_quiet_stretch():
    start, end = t("2026-11-20T21:30:00"), t("2026-11-22T08:00:00")
    # most of the file read, but only a quarter of the trace's time played
    status = InputStatus(source="night.jsonl", clock=start + (end - start) / 4, position=900,
                         total=1000, start_clock=start, end_clock=end)
    assert status.progress == pytest.approx(0.25)
    assert " 25%" in render(InputPanel(snapshot(input=status)))
    # without its times: bytes read, as before
    assert InputStatus(clock=start, position=900, total=1000).progress == pytest.approx(0.9)
    assert InputStatus(clock=end + 60, start_clock=start, end_clock=end).progress == 1.0


def test_replay_view_ends_at_until_else_at_the_last_line():
    first, last = t("2026-11-20T21:30:00"), t("2026-11-22T02:02:00")
    console = Console(file=io.StringIO())
    view = ReplayView("t", TRACE, None, console=console)
    assert (view.start_clock, view.end_clock) == (first, last)
    until = t("2026-11-22T08:00:00")
    view = ReplayView("t", TRACE, None, console=console, until=until, tz=TZ)
    assert (view.start_clock, view.end_clock) == (first, until)
    from cep.adapters.replay import ReplayStats

    stdin = ReplayView("-", None, None, console=console, until=until)   # no file to read
    assert stdin.start_clock is None
    assert stdin.status(ReplayStats(clock=first)).progress is None       # "reading"


def test_trace_bounds_reads_only_the_ends(tmp_path):
    trace = tmp_path / "big.jsonl"
    middle = '{"ts": "2026-11-21T12:00:00+08:00", "topic": "a/b", "payload": 1}\n' * 5000
    trace.write_text('{"ts": "2026-11-21T00:00:00+08:00", "topic": "a/b", "payload": 1}\n'
                     + middle + '{"ts": 1795370400, "topic": "a/b", "payload": 1}\n'
                     + "not json\n\n", encoding="utf-8")
    assert trace_bounds(str(trace), chunk=200) == (t("2026-11-21T00:00:00"), 1795370400.0)


def test_trace_bounds_of_offset_less_times_needs_the_zone(tmp_path):
    trace = tmp_path / "naive.jsonl"
    trace.write_text('{"ts": "2026-11-21T00:00:00", "topic": "a", "payload": 1}\n'
                     '{"ts": "2026-11-21T06:00:00", "topic": "a", "payload": 1}\n',
                     encoding="utf-8")
    assert trace_bounds(str(trace)) == (None, None)
    assert trace_bounds(str(trace), TZ) == (t("2026-11-21T00:00:00"), t("2026-11-21T06:00:00"))
    assert trace_bounds(str(tmp_path / "missing.jsonl")) == (None, None)


# ---------------------------------------------------------------- 5. the frame fills the terminal


@pytest.mark.parametrize("width,height", [(80, 24), (80, 18), (100, 30), (132, 43),
                                          (160, 24), (220, 60)])
def test_dashboard_is_exactly_the_terminal_height(width, height):
    for log in ((), tuple(f"warning {i}" for i in range(5))):
        rows = rows_of(render(Dashboard(snapshot(log=log)), width, height))
        assert len(rows) == height, (width, height, log)
        assert rows[0].startswith("╭─ cep replay") and rows[-1].endswith("╯")


# ---------------------------------------------------------------- 6. the log panel


def test_plain_stderr_keeps_the_last_lines():
    log: deque[str] = deque(maxlen=LOG_LINES)
    console = Console(file=io.StringIO(), width=80, color_system=None)
    stream = PlainStderr(console, sys.__stderr__, log)
    for i in range(7):
        stream.write(f"cep: trace.jsonl:{i}: bad line\x1b[2J\n")
    stream.write("\n")
    assert list(log) == [f"cep: trace.jsonl:{i}: bad line\\x1b[2J" for i in range(2, 7)]


def test_log_panel_in_the_dashboard_shows_the_last_five_lines():
    log = tuple(f"cep: warning {i}" for i in range(2, 7))
    text = render(Dashboard(snapshot(log=log)), 80, 30)
    assert "Log · last lines of stderr" in text
    assert all(f"cep: warning {i}" in text for i in range(2, 7))
    # on a shorter terminal fewer lines (the newest), or none, and the frame still fits
    short = render(Dashboard(snapshot(log=log)), 80, 24)
    assert "cep: warning 4" in short and "cep: warning 6" in short
    assert "cep: warning 3" not in short and len(rows_of(short)) == 24
    assert "Log ·" not in render(Dashboard(snapshot(log=log)), 80, 20)
    assert "Log ·" not in render(Dashboard(snapshot()), 80, 30)
    assert len(rows_of(render(LogPanel(snapshot(log=log), 2)))) == 4


def test_terminal_view_keeps_stderr_lines_for_the_log_panel(monkeypatch):
    from test_view import night_engine

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    view = TerminalView(console=Console(file=err, width=80, height=30, color_system=None))
    engine, _tee = night_engine(5)
    view.start()
    try:
        for i in range(8):
            print(f"cep: trace.jsonl:{i}: bad line", file=sys.stderr)
        view.tick(engine, InputStatus(source="trace"), force=True)
    finally:
        view.stop()
    assert sys.stderr is err
    assert view.last is not None
    assert view.last.log == tuple(f"cep: trace.jsonl:{i}: bad line" for i in range(3, 8))
    assert "cep: trace.jsonl:7: bad line" in render(Dashboard(view.last), 80, 30)


# ---------------------------------------------------------------- end to end in tmux


@pytest.mark.terminal
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("width,height", [(80, 24), (100, 30), (170, 40)])
def test_frame_covers_the_whole_terminal_in_tmux(tmp_path, width, height):
    """Leftover text on the screen before the view starts is drawn over, row 0 too."""
    session = f"cep-fill-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    replay = " ".join(f"'{part}'" for part in [
        sys.executable, "-m", "cep", "replay", os.path.join("rules", "night.epl"), "--trace",
        os.path.join("scenarios", "night-context", "trace.jsonl"), "--until",
        "2026-11-22T08:00:00+08:00", "--speed", "20000", "--view", "--out", os.devnull])
    script = f"cd '{ROOT}' && for i in $(seq 1 {height}); do echo LEFTOVER $i; done; " \
        f"{replay}; echo EXIT=$?; sleep 600"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    started = subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", str(width),
                              "-y", str(height), script], env=env, capture_output=True,
                             text=True, timeout=60)
    if started.returncode != 0:
        pytest.skip(f"tmux cannot start a session here: {started.stderr.strip()}")
    full = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", session],
                                    capture_output=True, text=True, timeout=60).stdout
            rows = screen.rstrip("\n").split("\n")
            if "EXIT=" in screen:
                break
            if len(rows) == height and rows[0].startswith("╭─ cep replay") \
                    and rows[-1].startswith("╰"):
                full.append(screen)
            time.sleep(0.05)
        else:
            pytest.fail(f"cep replay --view did not finish in time:\n{screen}")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=60)
    assert "EXIT=0" in screen, screen
    assert full, f"the frame never covered the whole screen:\n{screen}"
    assert all("LEFTOVER" not in frame for frame in full)
