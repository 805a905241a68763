"""The terminal view: panels rendered from plain snapshots, snapshots taken from an engine,
the refresh driver with a fake clock, the replay tick hook, and `cep replay --view` wiring."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from rich.console import Console

from cep.tools.view import (
    ContextRow,
    ContextsPanel,
    Dashboard,
    EventsPanel,
    InputPanel,
    InputStatus,
    OutputRow,
    ReplayView,
    RuleRow,
    RulesPanel,
    Snapshot,
    TeeSink,
    TerminalView,
    take_snapshot,
)
from cep.tools.view.panels import fmt_duration, share_rows
from cep.tools.view.snapshot import FadeTracker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NIGHT = os.path.join(ROOT, "scenarios", "night-context")
RULES = os.path.join(ROOT, "rules", "night.epl")
TZ = timezone(timedelta(hours=8))


def t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp()


NOW = t("2026-11-20T23:45:00")


def snapshot(**changes) -> Snapshot:
    values = {
        "now": NOW, "tz": TZ,
        "input": InputStatus(source="night.jsonl", clock=NOW, position=1130, total=2260,
                          speed=600.0, lines=12, messages=12, events=11,
                          events_by_type=(("BathroomDoor", 3), ("PillowPressure", 8)),
                          bad_lines=1, unmatched=1, unmatched_topics=(("home/hall/motion", 1),)),
        "contexts": (ContextRow("NightContext", None, t("2026-11-20T22:00:00"),
                             t("2026-11-21T07:00:00"), None, "recurring", 2),
                  ContextRow("Hot", "kitchen", t("2026-11-20T23:30:00"),
                             t("2026-11-21T00:30:00"), "EXTEND", "interval", 0)),
        "contexts_open": 2,
        "closed": (ContextRow("Hot", "bedroom", t("2026-11-20T22:10:00"), t("2026-11-20T23:10:00"),
                           "EXTEND", "interval", 0, closed_at=t("2026-11-20T23:10:00"),
                           fade=0.2),),
        "rules": (RuleRow("night_lights", "NightContext", "select", 1, 2, t("2026-11-20T23:40:00")),
               RuleRow("bathroom_too_long", "NightContext", "select", 1, 0, None),
               RuleRow("ac_on", "Hot", "on start", 0, 3, t("2026-11-20T23:30:00"))),
        "outputs": (OutputRow(t("2026-11-20T23:40:00"), "publish", "night_lights",
                           "home/bedroom/light/set", None, '{"state":"ON"}'),
                 OutputRow(t("2026-11-20T23:40:00"), "event", "night_lights", "LeftBed", None,
                           "pressure=12.0")),
        "outputs_total": 2, "rate": 1234.4}
    values.update(changes)
    return Snapshot(**values)


def render(renderable, width: int = 80, height: int = 24) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def lines(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


# ---------------------------------------------------------------------- panels


def test_input_panel_replay():
    assert lines(render(InputPanel(snapshot()))) == lines("""
╭─ cep replay · night.jsonl ───────────────────────────────────────────────────╮
│ ████████████████░░░░░░░░░░░░░░░░░  50%  Fri 2026-11-20 23:45:00 +08:00  ×600 │
│ 1,234 msg/s · 12 lines · 11 events: PillowPressure 8, BathroomDoor 3         │
│ bad lines 1 · bad messages 0 · unmatched 1 (home/hall/motion 1) · outputs 2  │
╰──────────────────────────────────────────────────────────────────────────────╯
""")


def test_input_panel_replay_finished_without_speed_or_size():
    status = InputStatus(source="-", lines=3, messages=3, events=3, finished=True)
    text = render(InputPanel(snapshot(input=status, rate=10)))
    assert "cep replay · - · finished" in text
    assert "100%" in text and "max speed" in text


def test_input_panel_long_source_is_cut_from_the_left_so_the_state_shows():
    source = "/deep/" + "checkout/" * 8 + "scenarios/night-context/trace.jsonl"
    status = InputStatus(source=source, lines=3, messages=3, events=3, finished=True)
    top = render(InputPanel(snapshot(input=status))).splitlines()[0]
    assert len(top) == 80
    assert top.startswith("╭─ cep replay · …") and top.endswith("night-context/trace.jsonl · finished ─╮")


def test_input_panel_before_the_engine_started():
    text = render(InputPanel(snapshot(now=0.0, started=False)))
    assert "not started" in text and "1970" not in text


def test_input_panel_live():
    status = InputStatus(mode="live", source="mqtt://broker:1883", connection="reconnecting",
                         reconnects=2, messages=40, events=38, bad_messages=2, unmatched=0)
    assert lines(render(InputPanel(snapshot(input=status, rate=3.5)))) == lines("""
╭─ cep run · mqtt://broker:1883 ───────────────────────────────────────────────╮
│ reconnecting · reconnects 2 · Fri 2026-11-20 23:45:00 +08:00                 │
│ 3.5 msg/s · 40 messages · 38 events                                          │
│ bad messages 2 · unmatched 0 · outputs 2                                     │
╰──────────────────────────────────────────────────────────────────────────────╯
""")


def test_input_panel_live_says_what_the_state_folder_gave_back():
    status = InputStatus(mode="live", source="mqtt://broker:1883", connection="connected",
                         messages=40, events=38,
                         state="restored 3 instances, 41 waiting, 7 timers")
    wide = lines(render(InputPanel(snapshot(input=status, rate=3.5)), width=110))
    assert wide.splitlines()[1] == ("│ connected · reconnects 0 · Fri 2026-11-20 23:45:00 +08:00 · "
                                    "restored 3 instances, 41 waiting, 7 timers" + " " * 5 + "│")
    narrow = lines(render(InputPanel(snapshot(input=status, rate=3.5))))
    assert narrow.splitlines()[1].endswith("· restored 3 inst… │")  # cut, never wrapped


def test_contexts_panel_shows_open_then_fading_closed_instances():
    assert lines(render(ContextsPanel(snapshot()))) == lines("""
╭─ Contexts · 2 open ──────────────────────────────────────────────────────────╮
│ context      key     opened         closes         in     policy partial     │
│ NightContext —       11-20 22:00:00 11-21 07:00:00 7h15m  —            2     │
│ Hot          kitchen 11-20 23:30:00 11-21 00:30:00 45m00s EXTEND       0     │
│ Hot          bedroom 11-20 22:10:00 11-20 23:10:00 closed EXTEND       —     │
╰──────────────────────────────────────────────────────────────────────────────╯
""")


def test_contexts_panel_wide_adds_kind_and_limits_rows():
    many = tuple(ContextRow("PerRoom", f"room{i}", NOW - i, None, None, "partition", i)
                 for i in range(5))
    text = render(ContextsPanel(snapshot(contexts=many, contexts_open=9, closed=()), rows=3),
                  width=110)
    assert "kind" in text and "partition" in text
    assert "room0" in text and "room1" in text and "room2" not in text
    assert "… 7 more" in text
    assert len(text.splitlines()) == 3 + 3


def test_contexts_panel_empty():
    text = render(ContextsPanel(snapshot(contexts=(), contexts_open=0, closed=())))
    assert "no open context instances" in text and "0 open" in text


def test_rules_panel():
    assert lines(render(RulesPanel(snapshot()))) == lines("""
╭─ Rules · 3 ──────────────────────────────────────────────────────────────────╮
│ rule              context      partial matches last fired                    │
│ night_lights      NightContext       1       2 11-20 23:40:00 5m00s ago      │
│ bathroom_too_long NightContext       1       0 —                             │
│ ac_on (on start)  Hot                0       3 11-20 23:30:00 15m00s ago     │
╰──────────────────────────────────────────────────────────────────────────────╯
""")


def test_rules_panel_limited_says_how_many_more():
    text = lines(render(RulesPanel(snapshot(), rows=2)))
    assert text.splitlines()[3] == "│ … 2 more".ljust(79) + "│"
    assert len(text.splitlines()) == 5


def test_events_panel_newest_first():
    assert lines(render(EventsPanel(snapshot()))) == lines("""
╭─ Fired events and actions · 2 ───────────────────────────────────────────────╮
│ time           rule         event / action           attributes / payload    │
│ 11-20 23:40:00 night_lights → home/bedroom/light/set {"state":"ON"}          │
│ 11-20 23:40:00 night_lights LeftBed                  pressure=12.0           │
╰──────────────────────────────────────────────────────────────────────────────╯
""")


def test_events_panel_empty():
    assert "nothing fired yet" in render(EventsPanel(snapshot(outputs=(), outputs_total=0)))


@pytest.mark.parametrize("width,height", [(80, 24), (100, 30), (170, 40), (220, 60)])
def test_dashboard_fills_the_terminal(width, height):
    text = render(Dashboard(snapshot()), width, height)
    rows = text.splitlines()
    assert len(rows) == height
    assert all(len(row) <= width for row in rows)
    for needed in ("cep replay", "Contexts · 2 open", "Rules · 3", "Fired events", "LeftBed",
                   "bathroom_too_long", "NightContext"):
        assert needed in text


def test_dashboard_80x24_exact():
    assert lines(render(Dashboard(snapshot()))) == lines("""
╭─ cep replay · night.jsonl ───────────────────────────────────────────────────╮
│ ████████████████░░░░░░░░░░░░░░░░░  50%  Fri 2026-11-20 23:45:00 +08:00  ×600 │
│ 1,234 msg/s · 12 lines · 11 events: PillowPressure 8, BathroomDoor 3         │
│ bad lines 1 · bad messages 0 · unmatched 1 (home/hall/motion 1) · outputs 2  │
╰──────────────────────────────────────────────────────────────────────────────╯
╭─ Contexts · 2 open ──────────────────────────────────────────────────────────╮
│ context      key     opened         closes         in     policy partial     │
│ NightContext —       11-20 22:00:00 11-21 07:00:00 7h15m  —            2     │
│ Hot          kitchen 11-20 23:30:00 11-21 00:30:00 45m00s EXTEND       0     │
│ Hot          bedroom 11-20 22:10:00 11-20 23:10:00 closed EXTEND       —     │
╰──────────────────────────────────────────────────────────────────────────────╯
╭─ Rules · 3 ──────────────────────────────────────────────────────────────────╮
│ rule              context      partial matches last fired                    │
│ night_lights      NightContext       1       2 11-20 23:40:00 5m00s ago      │
│ bathroom_too_long NightContext       1       0 —                             │
│ ac_on (on start)  Hot                0       3 11-20 23:30:00 15m00s ago     │
╰──────────────────────────────────────────────────────────────────────────────╯
╭─ Fired events and actions · 2 ───────────────────────────────────────────────╮
│ time           rule         event / action           attributes / payload    │
│ 11-20 23:40:00 night_lights → home/bedroom/light/set {"state":"ON"}          │
│ 11-20 23:40:00 night_lights LeftBed                  pressure=12.0           │
│                                                                              │
│                                                                              │
╰──────────────────────────────────────────────────────────────────────────────╯
""")


def test_dashboard_wide_puts_events_beside_contexts_and_rules():
    rows = render(Dashboard(snapshot()), 170, 30).splitlines()
    assert "Contexts" in rows[5] and "Fired events" in rows[5]
    assert any("Rules" in row for row in rows[6:])


def test_share_rows():
    assert share_rows(10, [2, 3, 20], [1, 1, 3]) == [2, 3, 5]
    assert share_rows(10, [1, 1, 2], [1, 1, 2]) == [1, 1, 8]      # the rest to the last
    assert share_rows(6, [30, 30, 30], [1, 1, 3]) == [2, 1, 3]
    assert share_rows(4, [5, 5], [1, 1], rest=0) == [2, 2]


def test_fmt_duration():
    assert [fmt_duration(s) for s in (0.5, 59, 61, 3599, 3600 * 5 + 60 * 7, 86400 * 2 + 7200)] \
        == ["0s", "59s", "1m01s", "59m59s", "5h07m", "2d02h"]


# ---------------------------------------------------------------------- snapshots


def night_engine(records: int):
    from cep.adapters.bus import BusMapping, create_events
    from cep.adapters.trace import TraceMessage, TraceReader
    from cep.checks.loader import load_paths
    from cep.language.timezones import get_zone
    from cep.runtime.engine import Engine

    loaded = load_paths([RULES])
    tz = get_zone(loaded.catalog.timezone)
    tee = TeeSink(keep=4)
    engine = Engine(loaded.catalog, tee, tz)
    bus = BusMapping.from_events(create_events(loaded.catalog), tz, {})
    for i, record in enumerate(TraceReader(os.path.join(NIGHT, "trace.jsonl"), tz)):
        if i >= records:
            break
        if not isinstance(record, TraceMessage):  # (the night's trace has no clock marks)
            continue
        events, _ = bus.decode(record.topic, record.payload, record.ts)
        for event in events:
            engine.process(event)
    return engine, tee


def test_take_snapshot_copies_plain_values():
    engine, tee = night_engine(12)
    snap = take_snapshot(engine, InputStatus(source="trace"), tee)
    assert snap.now == engine.now
    assert [(c.context, c.key, c.kind, c.policy) for c in snap.contexts] == \
        [("NightContext", None, "recurring", None)]
    night = snap.contexts[0]
    assert night.closes_at is not None and night.closes_at > snap.now
    assert night.partial_matches == sum(r.partial_matches for r in snap.rules)
    assert [(r.name, r.context, r.kind) for r in snap.rules] == \
        [("night_lights", "NightContext", "select"),
         ("bathroom_too_long", "NightContext", "select")]
    assert [r.matches for r in snap.rules] == [a.matches for a in engine.agents]
    assert snap.outputs_total == engine.stats["outputs"]
    assert len(snap.outputs) == 4                      # the tee keeps the last 4
    assert snap.outputs[0].kind == "publish" and snap.outputs[0].what == "home/alerts"
    assert snap.outputs[1] == OutputRow(snap.outputs[1].ts, "event", "bathroom_too_long",
                                        "BathroomAlert", None,
                                        "reason=not back in bed after 20 minutes")
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.now = 0  # frozen
    text = render(Dashboard(snap))
    assert "BathroomAlert" in text and "NightContext" in text


def test_snapshot_of_an_engine_that_has_not_started():
    engine, tee = night_engine(0)
    snap = take_snapshot(engine, InputStatus(), tee)
    assert not snap.started and snap.contexts == () and snap.outputs == ()
    assert "not started" in render(Dashboard(snap))


def test_snapshot_clock_from_status_but_never_behind_the_engine():
    engine, tee = night_engine(3)
    ahead = take_snapshot(engine, InputStatus(clock=engine.now + 60), tee)
    assert ahead.now == engine.now + 60
    behind = take_snapshot(engine, InputStatus(clock=engine.now - 60), tee)
    assert behind.now == engine.now


def test_tee_sink_passes_everything_on_and_keeps_events_and_actions():
    seen = []
    tee = TeeSink(seen.append, keep=2)
    records = [{"ts": 1.0, "kind": "context-start", "context": "C", "key": None},
               {"ts": 2.0, "kind": "event", "rule": "r", "type": "T", "context": None,
                "key": ["a", 1], "attrs": {"x": 1.5, "s": "hi"}},
               {"ts": 3.0, "kind": "publish", "rule": "r", "topic": "t/1", "payload": {"a": 1},
                "qos": 0, "retain": False},
               {"ts": 4.0, "kind": "publish", "rule": "r", "topic": "t/2", "payload": "ON",
                "qos": 0, "retain": False}]
    for record in records:
        tee(record)
    assert seen == records
    assert tee.rows() == (OutputRow(4.0, "publish", "r", "t/2", None, "ON"),
                          OutputRow(3.0, "publish", "r", "t/1", None, '{"a":1}'))
    tee.recent.appendleft(records[1])
    assert tee.rows()[-1].detail == 'key=["a",1] x=1.5 s=hi'


def test_fade_tracker_keeps_closed_instances_for_a_while():
    fades = FadeTracker(seconds=2.0)
    row = ContextRow("Hot", "k", 100.0, 200.0, "ADD", "interval", 1)
    open_snap = snapshot(now=150.0, contexts=(row,), contexts_open=1, closed=())
    assert fades.update(open_snap, wall=10.0) == ()
    gone = snapshot(now=250.0, contexts=(), contexts_open=0, closed=())
    closed = fades.update(gone, wall=11.0)
    assert len(closed) == 1 and closed[0].closed_at == 200.0 and closed[0].fade == 0.0
    assert closed[0].partial_matches == 0
    assert fades.update(gone, wall=12.0)[0].fade == 0.5
    assert fades.update(gone, wall=13.1) == ()


# ---------------------------------------------------------------------- the driver


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_view_draws_only_when_a_frame_is_due():
    engine, _ = night_engine(5)
    clock = FakeClock()
    console = Console(file=io.StringIO(), width=80, height=24, color_system=None)
    view = TerminalView("replay", "trace", console=console, interval=0.5, clock=clock)
    view.start()
    asked = []

    def status() -> InputStatus:
        asked.append(clock.t)
        return InputStatus(source="trace", lines=len(asked))

    assert view.tick(engine, status) is True          # the first frame is due at once
    assert view.tick(engine, status) is False         # cheap: status not even built
    clock.t += 0.4
    assert view.tick(engine, status) is False
    clock.t += 0.2
    assert view.tick(engine, status) is True
    assert view.tick(engine, status, force=True) is True
    assert asked == [1000.0, 1000.6, 1000.6]
    assert view.frames == 3
    view.stop("summary: 5 lines")
    out = console.file.getvalue()
    assert "Contexts" in out and out.rstrip().endswith("summary: 5 lines")


def test_view_backs_off_when_drawing_is_slow():
    engine, _ = night_engine(2)
    clock = FakeClock()

    class SlowClock:
        calls = 0

        def __call__(self) -> float:  # every call after the first frame starts costs 0.1 s
            SlowClock.calls += 1
            return clock.t + (0.1 if SlowClock.calls % 2 == 0 else 0.0)

    console = Console(file=io.StringIO(), width=80, height=24, color_system=None)
    view = TerminalView(console=console, interval=0.25, max_share=0.05, clock=clock)
    view.start()
    view.clock = SlowClock()
    assert view.tick(engine, InputStatus())
    assert view.due - clock.t == pytest.approx(0.1 / 0.05)
    view.stop()


def test_view_rate_from_consecutive_frames():
    engine, _ = night_engine(2)
    clock = FakeClock()
    view = TerminalView(console=Console(file=io.StringIO()), interval=0.25, clock=clock)
    view.start()
    view.tick(engine, InputStatus(lines=0))
    clock.t += 2.0
    view.tick(engine, InputStatus(lines=1000))
    assert view.last.rate == pytest.approx(500.0)
    clock.t += 2.0
    view.tick(engine, InputStatus(lines=1000, finished=True), force=True)
    assert view.last.rate == pytest.approx(250.0)          # the whole run's average at the end
    view.stop()


# ---------------------------------------------------------------------- the replay hook


def replay_night(tick=None, speed=None, sink=None, **wall):
    """The night scenario replayed; `wall` may give the replay a fake `sleep` and `wall_clock`."""
    from cep.adapters.replay import replay
    from cep.checks.loader import load_paths
    from cep.language.timezones import get_zone

    loaded = load_paths([RULES])
    tz = get_zone(loaded.catalog.timezone)
    outputs = []
    stats = replay(loaded.catalog, os.path.join(NIGHT, "trace.jsonl"),
                   sink or outputs.append, tz, report=lambda m: None, until=t("2026-11-22T08:00"),
                   speed=speed, show_contexts=True, tick=tick, **wall)
    return stats, outputs


def test_replay_tick_hook_counts_and_ends_with_a_final_call(monkeypatch):
    import cep.adapters.replay

    monkeypatch.setattr(cep.adapters.replay, "TICK_EVERY", 10)
    calls = []

    def tick(engine, stats, final):
        calls.append((stats.lines, stats.position, final, dict(stats.events_by_type),
                      stats.clock == engine.now))

    stats, outputs = replay_night(tick)
    plain_stats, plain_outputs = replay_night()
    assert outputs == plain_outputs and stats.outputs == plain_stats.outputs
    assert [c[0] for c in calls] == [10, 20, 25]
    assert [c[2] for c in calls] == [False, False, True]
    positions = [c[1] for c in calls[:2]]
    assert 0 < positions[0] < positions[1] <= os.path.getsize(os.path.join(NIGHT, "trace.jsonl"))
    assert calls[-1][3] == {"PillowPressure": 15, "BathroomDoor": 10}
    assert all(c[4] for c in calls)
    assert plain_stats.events_by_type == {}          # counted only for a hook


def test_paced_replay_ticks_while_waiting():
    """With --speed, waits are sliced and ticked; the played clock moves between events."""
    wall = [0.0]
    slept = []

    def fake_sleep(seconds):
        slept.append(seconds)
        wall[0] += seconds

    clocks = []
    _stats, outputs = replay_night(lambda engine, stats, final: clocks.append(stats.clock),
                                  speed=3600.0, sleep=fake_sleep, wall_clock=lambda: wall[0])
    assert len(clocks) > 100
    assert clocks == sorted(clocks)
    assert clocks[-1] == t("2026-11-22T08:00")
    assert slept and max(slept) <= 0.05                # slices, with a tick after each
    _plain_stats, plain_outputs = replay_night()
    assert outputs == plain_outputs


def test_pacer_sleeps_in_slices_only_for_a_watcher():
    from cep.adapters.replay import Pacer

    wall = [0.0]
    slept, waits = [], []

    def fake_sleep(seconds):
        slept.append(seconds)
        wall[0] += seconds

    plain = Pacer(10.0, fake_sleep, lambda: wall[0])
    plain.wait_until(100.0)          # the first event sets the origin: no wait
    plain.wait_until(101.0)          # 1 s of event time is 0.1 s of wall time at 10 times
    assert slept == [pytest.approx(0.1)] and not waits

    slept.clear()
    watched = Pacer(10.0, fake_sleep, lambda: wall[0], on_wait=lambda: waits.append(wall[0]))
    watched.wait_until(200.0)
    watched.wait_until(201.0)
    assert slept == [pytest.approx(0.05), pytest.approx(0.05)]
    assert len(waits) == 2 and watched.virtual_now() == pytest.approx(201.0)


# ---------------------------------------------------------------------- the command


def test_cli_replay_view_writes_only_to_out(tmp_path, monkeypatch, capsys):
    import cep.tools.view.app
    from cep.cli import main

    screen = Console(file=io.StringIO(), width=80, height=24, color_system=None)
    monkeypatch.setattr(cep.tools.view.app, "terminal_console", lambda: screen)
    out = tmp_path / "out.jsonl"
    code = main(["replay", RULES, "--trace", os.path.join(NIGHT, "trace.jsonl"), "--contexts",
                 "--until", "2026-11-22T08:00:00+08:00", "--view", "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "25 lines: 25 messages (25 with events)" in captured.err
    with open(os.path.join(NIGHT, "expected.jsonl"), encoding="utf-8") as expected:
        assert out.read_text() == expected.read()
    frame = screen.file.getvalue()
    assert "finished" in frame and "100%" in frame and "BathroomAlert" in frame


def test_cli_replay_view_without_out_writes_nothing_to_stdout(monkeypatch, capsys):
    import cep.tools.view.app
    from cep.cli import main

    screen = Console(file=io.StringIO(), width=100, height=30, color_system=None)
    monkeypatch.setattr(cep.tools.view.app, "terminal_console", lambda: screen)
    assert main(["replay", RULES, "--trace", os.path.join(NIGHT, "trace.jsonl"), "--view"]) == 0
    assert capsys.readouterr().out == ""
    assert "LeftBed" in screen.file.getvalue()


def test_cli_replay_view_needs_a_terminal(monkeypatch, capsys):
    import cep.tools.view.app
    from cep.cli import main

    monkeypatch.setattr(cep.tools.view.app, "terminal_console", lambda: None)
    assert main(["replay", RULES, "--trace", os.path.join(NIGHT, "trace.jsonl"), "--view"]) == 2
    assert "--view needs a terminal" in capsys.readouterr().err


def test_replay_help_says_where_output_goes(capsys):
    from cep.cli import main

    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--view" in help_text and "output lines go only to --out" in help_text


def test_replay_view_status_from_stats():
    from cep.adapters.replay import ReplayStats

    trace = os.path.join(NIGHT, "trace.jsonl")
    view = ReplayView("t.jsonl", trace, 60.0, console=Console(file=io.StringIO()))
    first, last = t("2026-11-20T21:30:00"), t("2026-11-22T02:02:00")  # its first, last lines
    assert (view.start_clock, view.end_clock) == (first, last)
    stats = ReplayStats(lines=5, events=4, bad_messages=1, unmatched=1,
                        unmatched_topics={"x": 1}, events_by_type={"A": 4}, position=100,
                        clock=first + (last - first) / 4)
    status = view.status(stats)
    assert status == InputStatus(mode="replay", source="t.jsonl", clock=stats.clock,
                                 position=100, total=os.path.getsize(trace),
                                 speed=60.0, lines=5, messages=5, events=4,
                                 events_by_type=(("A", 4),), bad_messages=1, unmatched=1,
                                 unmatched_topics=(("x", 1),), start_clock=first,
                                 end_clock=last)
    assert status.progress == pytest.approx(0.25)          # by trace time, not by bytes
    bytes_only = dataclasses.replace(status, start_clock=None, end_clock=None)
    assert json.dumps(bytes_only.progress) == json.dumps(100 / status.total)
