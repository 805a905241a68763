"""The view draws strings from the outside as plain text: a payload, topic, rule name or
broker string holding rich markup (`[/]`, `[link=...]`), an emoji code, an escape sequence
or a very long line renders without error and shows literally, control characters
escaped; no markup, emoji, link or control sequence ever reaches the terminal."""

from __future__ import annotations

import io
import re
import sys
from datetime import timedelta, timezone

import pytest
from rich.console import Console

from cep.adapters.badmessages import printable
from cep.tools.view import (
    ContextRow,
    ContextsPanel,
    Dashboard,
    EventsPanel,
    InputPanel,
    InputStatus,
    OutputRow,
    RuleRow,
    RulesPanel,
    Snapshot,
    TeeSink,
    TerminalView,
)
from cep.tools.view.app import PlainStderr
from cep.tools.view.panels import plain

TZ = timezone(timedelta(hours=1))
NOW = 1_800_000_000.0
CLOSE = "[/]"
LINK = "[link=http://x]y[/link]"
EMOJI = ":smile:"
CLEAR = "\x1b[2J"
HOSTILE = [CLOSE, LINK, EMOJI, CLEAR, "[bold red]loud[/bold red]", "a\nb\tc\rd",
           "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\", "\u202eevil", "\x00\x7f\x85",
           "[", "]", "\\", "[/link]"]
LONG = "x" * 100_000 + "END"


def hostile_snapshot(text: str) -> Snapshot:
    status = InputStatus(mode="live", source=f"mqtt://{text}@host:1883", connection=text,
                         reconnects=1, messages=3, events=2, events_by_type=((text, 2),),
                         bad_messages=1, unmatched=1, unmatched_topics=((f"home/{text}", 1),),
                         backlog=2, backlog_peak=9, backlog_limit=10_000, problem=text)
    row = ContextRow(text, (text, 1), NOW - 60, NOW + 60, text, text, 1)
    closed = ContextRow(text, text, NOW - 120, NOW - 10, None, text, 0, closed_at=NOW - 10,
                        fade=0.3)
    return Snapshot(
        now=NOW, tz=TZ, input=status, contexts=(row,), contexts_open=1, closed=(closed,),
        rules=(RuleRow(text, text, "on start", 1, 2, NOW - 5),),
        outputs=(OutputRow(NOW, "publish", text, f"out/{text}", None, text),
                 OutputRow(NOW, "event", text, text, text, f"key={text} v={text}")),
        outputs_total=2, rate=1.5, title=text)


PANELS = [InputPanel, ContextsPanel, RulesPanel, EventsPanel, Dashboard]


def render(renderable: object, width: int = 80, height: int = 24,
           color_system: str | None = None) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, color_system=color_system,
                      force_terminal=color_system is not None)
    console.print(renderable)
    return console.file.getvalue()


@pytest.mark.parametrize("text", HOSTILE, ids=repr)
@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("width", [40, 80, 200])
def test_hostile_strings_render_without_error(text, panel, width):
    out = render(panel(hostile_snapshot(text)), width=width)
    assert all(len(line) <= width for line in out.splitlines())
    assert "\x1b" not in out and "\x00" not in out and "\x85" not in out


@pytest.mark.parametrize("text", HOSTILE, ids=repr)
def test_hostile_strings_show_literally_when_there_is_room(text):
    shown = printable(text)
    snap = hostile_snapshot(text)
    for panel in (ContextsPanel(snap), RulesPanel(snap), EventsPanel(snap)):
        out = render(panel, width=400)
        assert shown in out, (text, out)
    assert shown in render(InputPanel(snap), width=400)


def test_markup_emoji_and_links_are_not_interpreted():
    for text in (CLOSE, LINK, EMOJI):
        out = render(Dashboard(hostile_snapshot(text)), width=300, height=40)
        assert text in out
    out = render(Dashboard(hostile_snapshot(EMOJI)), width=300, height=40)
    assert "😄" not in out
    # with colours on, still no hyperlink (OSC 8) and no screen clearing
    for text in (LINK, CLEAR, HOSTILE[6]):
        coloured = render(Dashboard(hostile_snapshot(text)), width=300, height=40,
                          color_system="truecolor")
        assert "\x1b]8;" not in coloured
        assert "\x1b[2J" not in coloured
        assert printable(text) in re.sub(r"\x1b\[[0-9;]*m", "", coloured)


def test_control_characters_are_escaped():
    out = render(EventsPanel(hostile_snapshot(CLEAR)), width=200)
    assert "\\x1b[2J" in out
    out = render(RulesPanel(hostile_snapshot("a\nb\tc")), width=200)
    assert "a\\nb\\tc" in out
    assert plain("\u202eevil").plain == "\\u202eevil"


def test_very_long_strings_are_cut_to_the_width():
    snap = hostile_snapshot(LONG)
    for panel in PANELS:
        for width in (60, 160):
            out = render(panel(snap), width=width, height=30)
            assert all(len(line) <= width for line in out.splitlines())
    assert len(plain(LONG).plain) <= 1000


def test_tee_sink_rows_from_hostile_outputs_render_literally():
    tee = TeeSink()
    tee({"ts": NOW, "kind": "publish", "rule": LINK, "topic": f"out/{CLEAR}",
         "payload": CLOSE, "qos": 0, "retain": False})
    tee({"ts": NOW, "kind": "event", "rule": EMOJI, "type": "T", "context": None,
         "key": [CLOSE], "attrs": {"s": CLEAR, "t": LINK}})
    snap = Snapshot(now=NOW, tz=TZ, input=InputStatus(), outputs=tee.rows(), outputs_total=2)
    out = render(EventsPanel(snap), width=300)
    for text in (LINK, CLOSE, EMOJI, "out/\\x1b[2J"):
        assert text in out, out
    assert "\x1b" not in out


def test_input_panel_shows_the_backlog_and_the_problem():
    status = InputStatus(mode="live", source="mqtt://u:***@broker:1883",
                         connection="reconnecting", reconnects=2, messages=40, events=38,
                         backlog=3, backlog_peak=7, backlog_limit=10_000,
                         problem="connection refused")
    snap = Snapshot(now=NOW, tz=TZ, input=status, rate=3.5)
    out = render(InputPanel(snap), width=120)
    assert "backlog 3 (peak 7 of 10,000)" in out
    assert "connection refused" in out
    assert "mqtt://u:***@broker:1883" in out


def test_the_summary_is_printed_as_plain_text():
    console = Console(file=io.StringIO(), width=100, color_system=None)
    view = TerminalView(mode="live", console=console)
    view.stop(f"live: {LINK} {EMOJI} {CLEAR}")
    out = console.file.getvalue()
    assert LINK in out and EMOJI in out and "\\x1b[2J" in out and "\x1b" not in out


def test_stderr_lines_while_the_view_is_on_are_escaped(monkeypatch):
    """What goes to stderr meanwhile (reports, warnings) is printed above the frame as plain
    text: rich's own redirect would turn an escape sequence in it into colours or a link."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, color_system="truecolor", force_terminal=True)
    monkeypatch.setattr(sys, "stderr", console.file)
    view = TerminalView(mode="live", console=console)
    view.start()
    try:
        assert isinstance(sys.stderr, PlainStderr)
        print(f"cep: bad message on {CLEAR}: \x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\",
              file=sys.stderr)
        print(f"cep: {LINK} {EMOJI}", file=sys.stderr, end="")  # no newline yet
    finally:
        view.stop("done")
    assert sys.stderr is buffer
    out = buffer.getvalue()
    assert "\x1b[2J" not in out and "\x1b]8;" not in out
    plain_out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "bad message on \\x1b[2J" in plain_out and "\\x1b]8;;http://evil" in plain_out
    assert f"{LINK} {EMOJI}" in plain_out  # the partial line, when the view stopped
