"""PAYLOAD paths that do not resolve: the event happens with the attribute null, and the
path is noted (not a bad message), reported once per topic a minute and summed up per
event type and attribute, in replays and live runs alike.  Only paths declared in
`PAYLOAD (attr = 'path')` count, not the default keys (attributes read from the key of
their own name), and a JSON null at a path's end is a value, not a missing path."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cep.adapters.bus import BusMapping, MissingPath, PathCount
from cep.adapters.live import LiveRunner
from cep.adapters.mqtt import BrokerSettings, ReceivedMessage
from cep.adapters.payload import compile_path, resolves
from cep.checks.loader import load_texts
from cep.cli import main

RULES = """\
SET TIMEZONE 'UTC';
CREATE EVENT WasherPower (device STRING, voltage FLOAT, power FLOAT, phase FLOAT, total FLOAT,
                          state STRING)
    FROM TOPIC 'tele/{device}/SENSOR'
    PAYLOAD (power = 'ENERGY.Power', voltage = 'ENERGY.Voltage', phase = 'ENERGY.Phases.0',
             total = 'Total');
CREATE EVENT Sensor (device STRING, Time STRING) FROM TOPIC 'tele/{device}/SENSOR';

@name('power') SELECT w.power AS power, w.state AS state FROM PATTERN [ every w=WasherPower ];
"""

T0 = datetime(2026, 11, 20, 19, tzinfo=UTC).timestamp()
FULL = {"Power": 5, "Voltage": 230, "Phases": [1.5]}


def bus() -> BusMapping:
    loaded = load_texts([("rules.epl", RULES)])
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    return BusMapping.from_catalog(loaded.catalog, UTC)


# (name, payload, WasherPower's attributes (or None: a bad message), paths noted missing)
DECODES = [
    ("every path there",
     {"ENERGY": FULL, "Total": 3, "state": "ON"},
     {"voltage": 230.0, "power": 5.0, "phase": 1.5, "total": 3.0, "state": "ON"}, []),
    ("no ENERGY: its three paths; the absent default key `state` is not noted",
     {"Total": 3},
     {"total": 3.0},
     ["WasherPower.voltage: path ENERGY.Voltage missing",
      "WasherPower.power: path ENERGY.Power missing",
      "WasherPower.phase: path ENERGY.Phases.0 missing"]),
    ("ENERGY not an object",
     {"ENERGY": 5, "Total": 3},
     {"total": 3.0},
     ["WasherPower.voltage: path ENERGY.Voltage missing",
      "WasherPower.power: path ENERGY.Power missing",
      "WasherPower.phase: path ENERGY.Phases.0 missing"]),
    ("ENERGY null: the steps after it are missing",
     {"ENERGY": None, "Total": 3},
     {"total": 3.0},
     ["WasherPower.voltage: path ENERGY.Voltage missing",
      "WasherPower.power: path ENERGY.Power missing",
      "WasherPower.phase: path ENERGY.Phases.0 missing"]),
    ("null at the end of each path is a value (null), not missing",
     {"ENERGY": {"Power": None, "Voltage": None, "Phases": [None]}, "Total": None},
     {}, []),
    ("an index past the end of the array",
     {"ENERGY": {**FULL, "Phases": []}, "Total": 3},
     {"voltage": 230.0, "power": 5.0, "total": 3.0},
     ["WasherPower.phase: path ENERGY.Phases.0 missing"]),
    ("a digit step reads an object's key too",
     {"ENERGY": {**FULL, "Phases": {"0": 2}}, "Total": 3},
     {"voltage": 230.0, "power": 5.0, "phase": 2.0, "total": 3.0}, []),
    ("a one-step path declared is noted too",
     {"ENERGY": FULL},
     {"voltage": 230.0, "power": 5.0, "phase": 1.5},
     ["WasherPower.total: path Total missing"]),
    ("a bad message notes nothing, though a path was missing before the bad value",
     {"ENERGY": {"Power": "lots"}, "Total": 3},
     None, []),
]


@pytest.mark.parametrize("payload, attrs, missing", [c[1:] for c in DECODES],
                         ids=[c[0] for c in DECODES])
def test_missing_paths_are_noted_per_message(payload, attrs, missing):
    mapping = bus()
    events, problems = mapping.decode("tele/washer/SENSOR", json.dumps(payload).encode(), T0)
    washer = [e.attrs for e in events if e.type == "WasherPower"]
    if attrs is None:
        assert washer == []
        assert [p.reason for p in problems] == ['WasherPower.power: "lots" is not a FLOAT']
    else:
        assert washer == [{"device": "washer", **attrs}] and problems == ()
    assert [e.type for e in events if e.type != "WasherPower"] == ["Sensor"]
    assert [str(m) for m in mapping.missing] == missing
    # the next message starts afresh
    mapping.decode("tele/washer/SENSOR", json.dumps({"ENERGY": FULL, "Total": 1}).encode(), T0)
    assert mapping.missing == []


@pytest.mark.parametrize("value, path, expected", [
    ({"a": {"b": 1}}, "a.b", True),
    ({"a": {"b": None}}, "a.b", True),
    ({"a": None}, "a.b", False),
    ({"a": {}}, "a.b", False),
    ({"a": [1]}, "a.0", True),
    ({"a": [1]}, "a.1", False),
    ({"a": [[None]]}, "a.0.0", True),
    ({"a": "text"}, "a.0", False),
    ({}, "a", False),
    ({"a": None}, "a", True),
])
def test_resolves(value, path, expected):
    assert resolves(value, compile_path(path)) is expected


def test_missing_paths_are_counted_per_type_and_attribute():
    mapping = bus()
    for payload in ({"Total": 1}, {"ENERGY": FULL, "Total": 2}, {"ENERGY": {"Power": 1}},
                    {"ENERGY": {"Power": "x"}}):  # the last is a bad message: not counted
        mapping.decode("tele/washer/SENSOR", json.dumps(payload).encode(), T0)
    counts = mapping.missing_paths()
    assert counts == [
        PathCount(MissingPath("WasherPower", "voltage", "ENERGY.Voltage"), 2, 3),
        PathCount(MissingPath("WasherPower", "power", "ENERGY.Power"), 1, 3),
        PathCount(MissingPath("WasherPower", "phase", "ENERGY.Phases.0"), 2, 3),
        PathCount(MissingPath("WasherPower", "total", "Total"), 1, 3)]
    assert [str(c) for c in counts] == [
        "WasherPower.voltage: path ENERGY.Voltage missing in 2 of 3 messages",
        "WasherPower.power: path ENERGY.Power missing in 1 of 3 messages",
        "WasherPower.phase: path ENERGY.Phases.0 missing in 2 of 3 messages",
        "WasherPower.total: path Total missing in 1 of 3 messages"]


TIMING = re.compile(r" in \d+\.\d+ s \([\d,]+ events/s\)$")


def test_replay_reports_missing_paths_once_per_topic_a_minute_and_sums_them_up(
        tmp_path: Path, capsys):
    rules = tmp_path / "rules.epl"
    rules.write_text(RULES)
    plug = {"ENERGY": {"Voltage": 230, "Phases": [1.0]}, "Total": 1}  # no Power
    lines = [
        (0, "tele/washer/SENSOR", plug),
        (10, "tele/washer/SENSOR", plug),     # within the minute: held back
        (20, "tele/dryer/SENSOR", plug),      # another topic: reported
        (30, "tele/washer/SENSOR", {"ENERGY": FULL, "Total": 1}),
        (70, "tele/washer/SENSOR", {"Total": 1}),  # a minute on: reported, with 1 more
        (80, "home/other", {"x": 1}),
    ]
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps({"ts": T0 + dt, "topic": topic, "payload": payload})
                             + "\n" for dt, topic, payload in lines))
    assert main(["replay", str(rules), "--trace", str(trace)]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["attrs"] for line in captured.out.splitlines()] == [
        {"power": None, "state": None}, {"power": None, "state": None},
        {"power": None, "state": None}, {"power": 5.0, "state": None},
        {"power": None, "state": None}]
    name = str(trace)
    assert [TIMING.sub("", line) for line in captured.err.splitlines()] == [
        f"{name}:1: tele/washer/SENSOR: WasherPower.power: path ENERGY.Power missing",
        f"{name}:3: tele/dryer/SENSOR: WasherPower.power: path ENERGY.Power missing",
        f"{name}:5: tele/washer/SENSOR: WasherPower.voltage: path ENERGY.Voltage missing; "
        "WasherPower.power: path ENERGY.Power missing; WasherPower.phase: path "
        "ENERGY.Phases.0 missing (and 1 more on this topic since the last report)",
        f"{name}: WasherPower.voltage: path ENERGY.Voltage missing in 1 of 5 messages",
        f"{name}: WasherPower.power: path ENERGY.Power missing in 4 of 5 messages",
        f"{name}: WasherPower.phase: path ENERGY.Phases.0 missing in 1 of 5 messages",
        f"{name}: 6 lines: 6 messages (5 with events, 1 unmatched), 0 bad lines; 10 events, "
        "0 bad messages, 5 outputs",
    ]


def test_a_replay_without_missing_paths_says_nothing_more(tmp_path: Path, capsys):
    rules = tmp_path / "rules.epl"
    rules.write_text(RULES)
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps({"ts": T0, "topic": "tele/washer/SENSOR",
                                 "payload": {"ENERGY": FULL, "Total": 1}}) + "\n")
    assert main(["replay", str(rules), "--trace", str(trace)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [TIMING.sub("", line) for line in err] == [
        f"{trace}: 1 line: 1 message (1 with events), 0 bad lines; 2 events, 0 bad messages, "
        "1 output"]


def test_the_live_runner_reports_missing_paths_and_sums_them_up():
    loaded = load_texts([("rules.epl", RULES)])
    reports: list[str] = []
    outputs: list[dict] = []
    settings = BrokerSettings.from_url("mqtt://127.0.0.1:1", status_topic="test/cep")
    runner = LiveRunner(loaded.catalog, settings, outputs.append, UTC, report=reports.append)
    runner.engine.start(T0)  # never connected: messages handed in directly
    for dt, payload in ((0, {"Total": 1}), (1, {"Total": 2}), (2, {"ENERGY": FULL, "Total": 3})):
        runner._take(ReceivedMessage("tele/washer/SENSOR", json.dumps(payload).encode(), 0,
                                     False, T0 + dt))
    runner._tick()
    stats = runner.stats
    assert (stats.events, stats.bad_messages) == (6, 0)
    assert reports == [
        "tele/washer/SENSOR: WasherPower.voltage: path ENERGY.Voltage missing; "
        "WasherPower.power: path ENERGY.Power missing; WasherPower.phase: path "
        "ENERGY.Phases.0 missing"]
    assert stats.path_lines() == [
        "WasherPower.voltage: path ENERGY.Voltage missing in 2 of 3 messages",
        "WasherPower.power: path ENERGY.Power missing in 2 of 3 messages",
        "WasherPower.phase: path ENERGY.Phases.0 missing in 2 of 3 messages"]
    assert [o["attrs"]["power"] for o in outputs] == [None, None, 5.0]
