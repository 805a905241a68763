"""The terminal view of the second edition: named windows (view, events held, the newest
event) and windowed rules (per context instance, the largest groups and their aggregates),
taken from a real engine into plain snapshot rows and drawn by `WindowsPanel` and the
dashboard, outside text as plain text."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import UTC, datetime

import pytest
from helpers import load
from rich.console import Console

from cep.adapters.badmessages import printable
from cep.runtime.engine import Engine
from cep.runtime.events import Event
from cep.tools.view import (
    ContextRow,
    Dashboard,
    GroupRow,
    InputStatus,
    OutputRow,
    RuleRow,
    Snapshot,
    TeeSink,
    WindowedRuleRow,
    WindowInstanceRow,
    WindowRow,
    WindowsPanel,
    take_snapshot,
)
from cep.tools.view.snapshot import WINDOW_GROUPS, WINDOW_INSTANCES, value_text

T0 = datetime(2026, 11, 20, 21, 0, tzinfo=UTC).timestamp()

RULES = """
SET TIMEZONE 'UTC';
CREATE EVENT Temp (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temp' PAYLOAD AS value;
CREATE EVENT Presence (person STRING, state STRING) FROM TOPIC 'presence/{person}' PAYLOAD AS state;
CREATE WINDOW People#unique(person) FROM Presence;
@name('warm') SELECT room, avg(value) AS mean FROM Temp#time(10 min) GROUP BY room HAVING avg(value) > 20;
"""

CONTEXT_RULES = RULES + """
CREATE CONTEXT PerRoom PARTITION BY room;
@name('busy') CONTEXT PerRoom SELECT count(*) AS n, max(value) AS hi FROM Temp#length(3);
@name('levels') CONTEXT PerRoom
SELECT count(*) AS n FROM Temp#length(10) GROUP BY room, value;
@name('overall') SELECT avg(value) AS m, list(value) AS vs FROM Temp(value > 0)#length(100);
"""


def engine_for(rules: str = RULES) -> tuple[Engine, TeeSink]:
    loaded = load(rules)
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    tee = TeeSink()
    engine = Engine(loaded.catalog, tee, UTC)
    engine.start(T0)
    return engine, tee


def feed(engine: Engine, *events: tuple[float, str, dict]) -> None:
    for seconds, type_name, attrs in events:
        engine.process(Event(type_name, T0 + seconds, dict(attrs)))


def temp(seconds: float, room: str, value: float) -> tuple[float, str, dict]:
    return (seconds, "Temp", {"room": room, "value": value})


def presence(seconds: float, person: str, state: str) -> tuple[float, str, dict]:
    return (seconds, "Presence", {"person": person, "state": state})


def snap_of(engine: Engine, tee: TeeSink | None = None) -> Snapshot:
    return take_snapshot(engine, InputStatus(source="trace.jsonl"), tee)


def render(renderable, width: int = 80, height: int = 24) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def lines(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def plain_values(value) -> bool:
    """Whether `value` is made of numbers, strings, None and tuples (and dataclasses of them)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(plain_values(getattr(value, f.name)) for f in dataclasses.fields(value)
                   if f.name not in ("tz", "input"))
    if isinstance(value, tuple):
        return all(plain_values(item) for item in value)
    return value is None or isinstance(value, (str, int, float, bool))


# ---------------------------------------------------------------------- snapshots


def test_named_window_row_has_its_view_size_and_newest_event():
    engine, _ = engine_for()
    assert snap_of(engine).windows == (WindowRow("People", "#unique(person)", "Presence", 0),)
    feed(engine, presence(1, "ann", "home"), presence(2, "bob", "away"),
         presence(3, "ann", "away"))
    (row,) = snap_of(engine).windows
    assert row == WindowRow("People", "#unique(person)", "Presence", 2, "Presence", T0 + 3,
                            "person=ann state=away")


def test_windowed_rule_groups_largest_first_then_by_key():
    engine, _ = engine_for()
    rooms = {"kitchen": 4, "hall": 2, "attic": 2, "bath": 2, "bed": 1, "cellar": 1, "den": 1}
    events, second = [], 0
    for room, count in rooms.items():
        for i in range(count):
            second += 1
            events.append(temp(second, room, 20.0 + i))
    feed(engine, *events)
    (rule,) = snap_of(engine).windowed
    assert (rule.name, rule.context, rule.source, rule.labels, rule.group_by, rule.size) == \
        ("warm", None, "Temp#time(10 min)", ("avg(value)",), ("room",), 13)
    (instance,) = rule.instances
    assert (instance.context, instance.key, instance.size, instance.groups_total) == \
        (None, None, 13, 7)
    assert len(instance.groups) == WINDOW_GROUPS == 5
    assert [(g.key, g.size, g.values) for g in instance.groups] == [
        ("kitchen", 4, ("21.5",)), ("attic", 2, ("20.5",)), ("bath", 2, ("20.5",)),
        ("hall", 2, ("20.5",)), ("bed", 1, ("20",))]
    assert instance.groups[0].newest_ts == T0 + 4
    text = render(WindowsPanel(snap_of(engine)))
    assert "7 groups by room" in text and "2 more groups" in text
    assert "│                 kitchen              4 avg(value)=21.5" in text


def test_snapshot_copies_plain_values_and_does_not_follow_the_engine():
    engine, tee = engine_for(CONTEXT_RULES)
    feed(engine, presence(1, "ann", "home"), temp(2, "kitchen", 21.0), temp(3, "hall", 19.0))
    before = snap_of(engine, tee)
    assert plain_values(before)
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.windows[0].size = 0  # frozen
    windows, windowed = before.windows, before.windowed
    feed(engine, presence(4, "bob", "home"), temp(5, "kitchen", 30.0), temp(6, "kitchen", 31.0))
    assert before.windows == windows and before.windowed == windowed
    assert before.windows[0].size == 1 and snap_of(engine).windows[0].size == 2
    after = {rule.name: rule for rule in snap_of(engine).windowed}
    assert after["warm"].instances[0].groups[0] == GroupRow("kitchen", 3, ("27.3333",), T0 + 6)


def test_expired_events_leave_the_snapshot():
    engine, _ = engine_for()
    feed(engine, temp(0, "kitchen", 21.0), temp(300, "kitchen", 23.0))
    (rule,) = snap_of(engine).windowed
    assert rule.size == 2 and rule.instances[0].groups[0].values == ("22",)
    engine.advance(T0 + 600)                       # the first is exactly 10 min old: it left
    (rule,) = snap_of(engine).windowed
    assert rule.size == 1 and rule.instances[0].groups[0].values == ("23",)
    engine.advance(T0 + 900)
    (rule,) = snap_of(engine).windowed
    assert rule.size == 0 and rule.instances == () and rule.instances_total == 0
    assert "no events held" in render(WindowsPanel(snap_of(engine)))


def test_windowed_rules_per_context_instance():
    engine, _ = engine_for(CONTEXT_RULES)
    feed(engine, temp(1, "kitchen", 21.0), temp(2, "hall", 19.0), temp(3, "kitchen", 25.0),
         temp(4, "kitchen", 22.0), temp(5, "kitchen", 20.0), temp(6, "bath", -1.0))
    rules = {rule.name: rule for rule in snap_of(engine).windowed}
    assert list(rules) == ["warm", "busy", "levels", "overall"]          # file order
    busy = rules["busy"]
    assert (busy.context, busy.source, busy.labels, busy.group_by, busy.size) == \
        ("PerRoom", "Temp#length(3)", ("count(*)", "max(value)"), (), 5)
    # the most events first; equal ones the newest instance first
    assert [(i.context, i.key, i.size, [g.values for g in i.groups]) for i in busy.instances] == [
        ("PerRoom", "kitchen", 3, [("3", "25")]), ("PerRoom", "bath", 1, [("1", "-1")]),
        ("PerRoom", "hall", 1, [("1", "19")])]
    levels = rules["levels"]
    kitchen = levels.instances[0]
    assert kitchen.key == "kitchen" and kitchen.groups_total == 4
    assert kitchen.groups[0].key == ("kitchen", 20.0)        # GROUP BY two attributes
    overall = rules["overall"]
    assert overall.source == "Temp(value > 0)#length(100)" and overall.size == 5
    assert overall.instances[0].groups[0].values == ("21.4", "[21,19,25,22,20]")
    text = render(WindowsPanel(snap_of(engine)), width=80, height=60)
    assert lines(text) == lines("""
╭─ Windows · 1 named · 4 windowed rules ───────────────────────────────────────╮
│ window / rule view / group                events newest event / aggregates   │
│ People        #unique(person)                  0 empty                       │
│ warm          Temp#time(10 min)                6 3 groups by room            │
│                 kitchen                        4 avg(value)=22               │
│                 bath                           1 avg(value)=-1               │
│                 hall                           1 avg(value)=19               │
│ busy          Temp#length(3)                   5 in 3 instances of PerRoom   │
│                 PerRoom kitchen                3 count(*)=3, max(value)=25   │
│                 PerRoom bath                   1 count(*)=1, max(value)=-1   │
│                 PerRoom hall                   1 count(*)=1, max(value)=19   │
│ levels        Temp#length(10)                  6 in 3 instances of PerRoom   │
│                 PerRoom kitchen                4 4 groups by room, value     │
│                   kitchen, 20                  1 count(*)=1                  │
│                   kitchen, 21                  1 count(*)=1                  │
│                   kitchen, 22                  1 count(*)=1                  │
│                   kitchen, 25                  1 count(*)=1                  │
│                 PerRoom bath                   1 1 group by room, value      │
│                   bath, -1                     1 count(*)=1                  │
│                 PerRoom hall                   1 1 group by room, value      │
│                   hall, 19                     1 count(*)=1                  │
│ overall       Temp(value > 0)#length(100)      5 avg(value)=21.4, list(valu… │
╰──────────────────────────────────────────────────────────────────────────────╯
""")


def test_snapshot_copies_a_few_instances_and_groups_only():
    engine, _ = engine_for(CONTEXT_RULES)
    feed(engine, *[temp(i, f"room{i:02d}", 20.0 + i) for i in range(12)],
         temp(20, "room03", 1.0), temp(21, "room03", 2.0))
    busy = {rule.name: rule for rule in snap_of(engine).windowed}["busy"]
    assert busy.instances_total == 12 and len(busy.instances) == WINDOW_INSTANCES == 5
    assert busy.instances[0].key == "room03"
    assert [i.key for i in busy.instances[1:]] == ["room11", "room10", "room09", "room08"]
    assert "7 more instances" in render(WindowsPanel(snap_of(engine)), height=80)


def test_values_are_shown_short():
    assert [value_text(v) for v in (None, True, 3, 21.0, 22.333333333333332, -0.5,
                                    1_800_000_000.5, 1e20, float("nan"), "a b", [1.5, 2.0])] \
        == ["null", "true", "3", "21", "22.3333", "-0.5", "1800000000", "1e+20", "null",
            "a b", "[1.5,2]"]
    assert value_text(list(range(1000))).endswith(",49,…]")
    assert len(value_text("x" * 100_000)) == 1001          # the panel shows the cut with …


# ---------------------------------------------------------------------- the panel


NOW = T0 + 3600


def snapshot(**changes) -> Snapshot:
    values = {
        "now": NOW, "tz": UTC,
        "input": InputStatus(source="trace.jsonl", clock=NOW, position=500, total=1000,
                             speed=600.0, lines=40, messages=40, events=40,
                             events_by_type=(("Temp", 36), ("Presence", 4))),
        "contexts": (ContextRow("PerRoom", "kitchen", NOW - 600, None, None, "partition", 3),),
        "contexts_open": 1,
        "rules": (RuleRow("warm", None, "select", 9, 7, NOW - 20),
                  RuleRow("busy", "PerRoom", "select", 3, 3, NOW - 20)),
        "outputs": (OutputRow(NOW - 20, "event", "warm", "warm", None,
                              "room=kitchen mean=22.5"),),
        "outputs_total": 7, "rate": 12.0,
        "windows": (WindowRow("People", "#unique(person)", "Presence(state = 'home')", 2,
                              "Presence", NOW - 60, "person=ann state=home"),
                    WindowRow("LastDoor", "#lastevent", "Door", 0)),
        "windowed": (
            WindowedRuleRow("warm", None, "Temp#time(10 min)", ("avg(value)",), ("room",), 9,
                            (WindowInstanceRow(None, None, 9, (
                                GroupRow("kitchen", 6, ("22.5",)),
                                GroupRow("hall", 3, ("19.25",))), 2),), 1),
            WindowedRuleRow("busy", "PerRoom", "Temp#length(3)", ("count(*)", "max(value)"),
                            (), 3, (WindowInstanceRow("PerRoom", "kitchen", 3, (
                                GroupRow(None, 3, ("3", "25")),), 1),), 1))}
    values.update(changes)
    return Snapshot(**values)


def test_windows_panel_80_columns():
    assert lines(render(WindowsPanel(snapshot()))) == lines("""
╭─ Windows · 2 named · 2 windowed rules ───────────────────────────────────────╮
│ window / rule view / group      events newest event / aggregates             │
│ People        #unique(person)        2 11-20 21:59:00 person=ann state=home  │
│ LastDoor      #lastevent             0 empty                                 │
│ warm          Temp#time(10 min)      9 2 groups by room                      │
│                 kitchen              6 avg(value)=22.5                       │
│                 hall                 3 avg(value)=19.25                      │
│ busy          Temp#length(3)         3 in 1 instance of PerRoom              │
│                 PerRoom kitchen      3 count(*)=3, max(value)=25             │
╰──────────────────────────────────────────────────────────────────────────────╯
""")


def test_windows_panel_wide_says_what_fills_a_named_window():
    text = render(WindowsPanel(snapshot()), width=200)
    assert "#unique(person) FROM Presence(state = 'home')" in text
    assert "#lastevent FROM Door" in text


def test_windows_panel_without_group_by_or_context_puts_the_values_on_the_rule_line():
    rule = WindowedRuleRow("mean", None, "Temp#length(5)", ("avg(value)", "count(*)"), (), 5,
                           (WindowInstanceRow(None, None, 5, (GroupRow(None, 5, ("21", "5")),),
                                              1),), 1)
    text = lines(render(WindowsPanel(snapshot(windows=(), windowed=(rule,)))))
    assert text.splitlines()[0].startswith("╭─ Windows · 1 windowed rule ─")
    assert text.splitlines()[2] == \
        "│ mean          Temp#length(5)      5 avg(value)=21, count(*)=5                │"
    assert len(text.splitlines()) == 4


def test_windows_panel_limited_says_how_many_more_on_its_border():
    text = lines(render(WindowsPanel(snapshot(), rows=3)))
    rows = text.splitlines()
    assert len(rows) == 3 + 3
    assert rows[2].startswith("│ People") and rows[4].startswith("│ warm")
    assert rows[-1].startswith("╰─ … 4 more ─")


def test_windows_panel_empty():
    text = render(WindowsPanel(snapshot(windows=(), windowed=())))
    assert "no named windows or windowed rules" in text


# ---------------------------------------------------------------------- the dashboard


def test_dashboard_80x24_with_windows():
    assert lines(render(Dashboard(snapshot()))) == lines("""
╭─ cep replay · trace.jsonl ───────────────────────────────────────────────────╮
│ ████████████████░░░░░░░░░░░░░░░░░  50%  Fri 2026-11-20 22:00:00 +00:00  ×600 │
│ 12 msg/s · 40 lines · 40 events: Temp 36, Presence 4                         │
│ bad lines 0 · bad messages 0 · unmatched 0 · outputs 7                       │
╰──────────────────────────────────────────────────────────────────────────────╯
╭─ Contexts · 1 open ──────────────────────────────────────────────────────────╮
│ context key     opened         closes in policy partial                      │
│ PerRoom kitchen 11-20 21:50:00 —      —  —            3                      │
╰──────────────────────────────────────────────────────────────────────────────╯
╭─ Rules · 2 ──────────────────────────────────────────────────────────────────╮
│ rule context partial matches last fired                                      │
│ warm —             9       7 11-20 21:59:40 20s ago                          │
│ busy PerRoom       3       3 11-20 21:59:40 20s ago                          │
╰──────────────────────────────────────────────────────────────────────────────╯
╭─ Windows · 2 named · 2 windowed rules ───────────────────────────────────────╮
│ window / rule view / group      events newest event / aggregates             │
│ People        #unique(person)        2 11-20 21:59:00 person=ann state=home  │
│ LastDoor      #lastevent             0 empty                                 │
│ warm          Temp#time(10 min)      9 2 groups by room                      │
╰─ … 4 more ───────────────────────────────────────────────────────────────────╯
╭─ Fired events and actions · 7 ───────────────────────────────────────────────╮
│ time           rule event / action attributes / payload                      │
│ 11-20 21:59:40 warm warm           room=kitchen mean=22.5                    │
╰──────────────────────────────────────────────────────────────────────────────╯
""")


@pytest.mark.parametrize("width,height", [(80, 24), (80, 22), (80, 20), (100, 30), (100, 50),
                                          (170, 24), (170, 40), (220, 60)])
def test_dashboard_with_windows_fills_the_terminal(width, height):
    text = render(Dashboard(snapshot()), width, height)
    rows = text.splitlines()
    assert len(rows) == height
    assert all(len(row) <= width for row in rows)
    for needed in ("cep replay", "Contexts · 1 open", "Rules · 2", "Fired events"):
        assert needed in text
    if height >= 22:
        assert "Windows · 2 named · 2 windowed rules" in text and "People" in text
    if height >= 40:
        assert "PerRoom kitchen" in text and "count(*)=3, max(value)=25" in text


def test_dashboard_on_a_short_terminal_leaves_the_windows_out():
    text = render(Dashboard(snapshot()), 80, 20)
    assert "Windows" not in text and "warm" in text


def test_dashboard_wide_puts_the_windows_under_the_rules():
    rows = render(Dashboard(snapshot()), 170, 40).splitlines()
    rules = next(i for i, row in enumerate(rows) if "Rules · 2" in row)
    windows = next(i for i, row in enumerate(rows) if "Windows · 2 named" in row)
    assert windows > rules and rows[windows].startswith("╭─ Windows")
    assert "Fired events" in rows[5]


def test_dashboard_without_windows_shows_no_windows_panel():
    text = render(Dashboard(snapshot(windows=(), windowed=())), 100, 40)
    assert "Windows" not in text and "Rules · 2" in text


# ---------------------------------------------------------------------- outside text


HOSTILE = ["[/]", "[link=http://x]y[/link]", ":smile:", "\x1b[2J", "[bold red]loud[/bold red]",
           "a\nb\tc", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\", "\u202eevil", "\x00\x7f\x85"]


def hostile_snapshot(text: str) -> Snapshot:
    """Every string a windows row holds is `text` (a rule's @name can be anything)."""
    group = GroupRow((text, 1), 2, (text, text))
    instance = WindowInstanceRow(text, (text, text), 2, (group,), 9)
    return snapshot(
        windows=(WindowRow(text, text, text, 1, text, NOW, text),),
        windowed=(WindowedRuleRow(text, text, text, (text, text), (text,), 2, (instance,), 3),
                  WindowedRuleRow(text, None, text, (text,), (), 1, (
                      WindowInstanceRow(None, None, 1, (GroupRow(None, 1, (text,)),), 1),),
                      1)))


@pytest.mark.parametrize("text", HOSTILE, ids=repr)
def test_outside_text_in_windows_rows_is_drawn_as_plain_text(text):
    snap = hostile_snapshot(text)
    for width in (40, 80, 200):
        for panel in (WindowsPanel(snap), Dashboard(snap)):
            out = render(panel, width=width, height=40)
            assert all(len(line) <= width for line in out.splitlines())
            assert "\x1b" not in out and "\x00" not in out and "\x85" not in out
    out = render(WindowsPanel(snap), width=600)
    shown = printable(text)
    for needed in (f"{shown}={shown}, {shown}={shown}", f"{shown} {shown}, {shown}",
                   f"{shown}, 1", f"by {shown}", f"of {shown}", f"{shown} FROM {shown}"):
        assert needed in out, (needed, out)
    assert "😄" not in out


@pytest.mark.parametrize("text", HOSTILE, ids=repr)
def test_outside_text_in_windows_is_drawn_as_plain_text(text):
    engine, _ = engine_for(CONTEXT_RULES)
    feed(engine, presence(1, "ann", text), temp(2, text, 21.0), temp(3, text, 22.0))
    snap = snap_of(engine)
    for width in (40, 80, 200):
        for panel in (WindowsPanel(snap), Dashboard(snap)):
            out = render(panel, width=width, height=30)
            assert all(len(line) <= width for line in out.splitlines())
            assert "\x1b" not in out and "\x00" not in out and "\x85" not in out
    out = render(WindowsPanel(snap), width=400)
    assert f"person=ann state={printable(text)}" in out          # the named window's newest
    assert f"  {printable(text)} " in out                          # the group's key
    assert f"  PerRoom {printable(text)} " in out                  # the instance's key
    assert "😄" not in out


def test_a_very_long_attribute_is_cut_to_the_width():
    engine, _ = engine_for()
    feed(engine, presence(1, "ann", "x" * 100_000), temp(2, "y" * 100_000, 21.0))
    snap = snap_of(engine)
    assert len(snap.windows[0].newest) <= 1001
    for width in (60, 160):
        out = render(Dashboard(snap), width=width, height=30)
        assert all(len(line) <= width for line in out.splitlines())
        assert "…" in out


# ---------------------------------------------------------------------- the command


def write_trace(path, minutes: int = 30) -> None:
    """Temperatures of four rooms every 20 s and someone's presence now and then."""
    records = []
    for i in range(minutes * 3):
        ts = datetime.fromtimestamp(T0 + 20 * i, UTC).isoformat()
        room = ("kitchen", "hall", "kitchen", "bath", "attic")[i % 5]
        records.append({"ts": ts, "topic": f"home/{room}/temp", "payload": 18 + (i % 7) * 0.9})
        if i % 8 == 0:
            records.append({"ts": ts, "topic": f"presence/{('ann', 'bob', 'cy')[i // 8 % 3]}",
                            "payload": ("home", "away")[i // 24 % 2]})
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def test_taking_snapshots_does_not_change_what_the_rules_do(tmp_path, monkeypatch):
    """Reading a window lets its expired events leave first (as a rule reading it would):
    a snapshot after every record leaves every output as it was."""
    import cep.adapters.replay
    from cep.adapters.replay import replay

    rules = RULES + CONTEXT_RULES[len(RULES):] + """
@name('counts') SELECT room, count(*) AS n FROM Temp#time(2 min) GROUP BY room
OUTPUT SNAPSHOT EVERY 1 min;
"""
    loaded = load(rules)
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    trace = tmp_path / "trace.jsonl"
    write_trace(trace)
    monkeypatch.setattr(cep.adapters.replay, "TICK_EVERY", 1)
    snaps: list[Snapshot] = []

    def tick(engine, stats, final):
        snaps.append(take_snapshot(engine, InputStatus(clock=stats.clock)))

    watched: list[dict] = []
    plain: list[dict] = []
    replay(loaded.catalog, str(trace), watched.append, UTC, report=lambda m: None, tick=tick,
           until=T0 + 3600)
    replay(loaded.catalog, str(trace), plain.append, UTC, report=lambda m: None,
           until=T0 + 3600)
    assert len(snaps) > 100 and watched == plain
    assert {o["rule"] for o in plain if o["kind"] == "event"} >= {"warm", "busy", "counts"}
    assert snaps[-1].windowed[0].size == 0                  # an hour on, #time(10 min) is empty
    assert any(len(s.windowed[0].instances[0].groups) == 4 for s in snaps
               if s.windowed[0].instances)


def test_cli_replay_view_shows_windows(tmp_path, monkeypatch, capsys):
    import cep.tools.view.app
    from cep.cli import main

    rules = tmp_path / "rules.epl"
    rules.write_text(RULES)
    trace = tmp_path / "trace.jsonl"
    records = [{"ts": "2026-11-20T21:00:00+00:00", "topic": "presence/ann", "payload": "home"},
               {"ts": "2026-11-20T21:00:05+00:00", "topic": "home/kitchen/temp", "payload": 21},
               {"ts": "2026-11-20T21:00:10+00:00", "topic": "home/kitchen/temp", "payload": 22},
               {"ts": "2026-11-20T21:00:15+00:00", "topic": "home/hall/temp", "payload": 18}]
    trace.write_text("".join(json.dumps(record) + "\n" for record in records))
    screen = Console(file=io.StringIO(), width=80, height=30, color_system=None)
    monkeypatch.setattr(cep.tools.view.app, "terminal_console", lambda: screen)
    out = tmp_path / "out.jsonl"
    assert main(["replay", str(rules), "--trace", str(trace), "--view", "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert len(out.read_text().splitlines()) == 2          # kitchen at 21 and at 21.5
    frame = screen.file.getvalue()
    for needed in ("Windows · 1 named · 1 windowed rule", "People", "#unique(person)",
                   "person=ann state=home", "Temp#time(10 min)", "2 groups by room",
                   "avg(value)=21.5", "avg(value)=18"):
        assert needed in frame, needed


def test_the_input_line_shows_payload_paths_that_are_missing():
    from cep.tools.view.panels import InputPanel

    status = InputStatus(missing_paths=("WasherPower.power: path ENERGY.Power missing in "
                                        "12 of 12 messages",))
    text = render(InputPanel(Snapshot(now=0.0, tz=UTC, input=status)), 160)
    assert "missing paths: WasherPower.power: path ENERGY.Power missing in 12 of 12" in text
    assert "missing paths" not in render(InputPanel(Snapshot(now=0.0, tz=UTC,
                                                             input=InputStatus())), 160)
