"""No single message can crash, stall, blind or flood the engine.

Each case is a hostile input that once broke a replay or a rule (a time in the year 10000,
a timestamp in milliseconds, an integer beyond 64 bits, a topic MQTT refuses, a LIKE that
backtracks for minutes, a payload of megabytes, an overflow written as `Infinity`), with
what it must produce now: the counters, the report, and the other rules' outputs.
"""

from __future__ import annotations

import io
import json
import math
import random
import re
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest

from cep.adapters.bus import MAX_AHEAD, MAX_PAYLOAD, BadMessage, BusMapping, create_events
from cep.adapters.replay import replay
from cep.adapters.trace import parse_trace_ts
from cep.checks.loader import load_texts
from cep.cli import main
from cep.runtime.convert import BadValue, converter
from cep.runtime.engine import Engine
from cep.runtime.events import Event
from cep.runtime.like import like_matcher
from cep.runtime.limits import (
    LATEST_TS,
    MAX_ACTION_PAYLOAD,
    payload_problem,
    topic_problem,
)
from cep.runtime.output import OutputWriter, format_ts

T0 = 1_700_000_000.0
RANGE = "a time outside 1970-01-01 .. 2200-01-01 UTC"


def load(rules: str):
    loaded = load_texts([("rules.epl", rules)])
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    return loaded.catalog


def write_trace(tmp_path, lines) -> str:
    path = tmp_path / "t.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for line in lines:
            out.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return str(path)


def run(tmp_path, rules: str, lines, **options):
    """Replay `lines`: (output records, reports with the trace named `t.jsonl`, stats)."""
    outputs: list[dict] = []
    reports: list[str] = []
    stats = replay(load(rules), write_trace(tmp_path, lines), outputs.append, UTC,
                   reports.append, **options)
    folder = f"{tmp_path}/"
    return outputs, [r.replace(folder, "") for r in reports], stats


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def reading(at: float, **payload) -> dict:
    return {"ts": at, "topic": "home/kitchen/reading", "payload": payload}


# ====================================================================== times

TIME_RULES = """
CREATE EVENT Reading (room STRING, v FLOAT, n INT, t TIMESTAMP) FROM TOPIC 'home/{room}/reading';
CREATE EVENT Stamped (v FLOAT, at TIMESTAMP) FROM TOPIC 'home/stamped' TIMESTAMP FROM 'at';
@name('answers') SELECT a.v AS v FROM PATTERN [ every a=Reading ];
@name('stamped') SELECT v FROM Stamped;
@name('ticks') SELECT 1 AS tick FROM PATTERN [ every timer:interval(10 sec) ];
"""

# (what, the hostile line (second of four), bad lines, bad messages, its report)
HOSTILE_TIMES = [
    ("trace ts in the year 9999", {"ts": "9999-12-31T00:00:00Z", "topic": "home/k/reading",
                                  "payload": {"v": 9}},
     1, 0, f't.jsonl:2: bad "ts" "9999-12-31T00:00:00Z": {RANGE}'),
    ("trace ts in the year 10000", {"ts": "10000-01-01T00:00:00Z", "topic": "home/k/reading",
                                   "payload": {"v": 9}},
     1, 0, 't.jsonl:2: bad "ts" "10000-01-01T00:00:00Z": expected ISO-8601 time or Unix seconds'),
    ("trace ts in seconds past 2200", {"ts": 1e10, "topic": "home/k/reading",
                                      "payload": {"v": 9}},
     1, 0, f't.jsonl:2: bad "ts" 10000000000.0: {RANGE}'),
    ("trace ts before 1970", {"ts": -1, "topic": "home/k/reading", "payload": {"v": 9}},
     1, 0, f't.jsonl:2: bad "ts" -1: {RANGE}'),
    ("trace ts in microseconds", {"ts": int(T0 * 1e6), "topic": "home/k/reading",
                                  "payload": {"v": 9}},
     1, 0, f't.jsonl:2: bad "ts" {int(T0 * 1e6)}: {RANGE}'),
    ("trace event line in the year 9999", {"ts": "9999-01-01T00:00:00Z", "event": "Reading",
                                          "v": 9},
     1, 0, f't.jsonl:2: bad "ts" "9999-01-01T00:00:00Z": {RANGE}'),
    ("TIMESTAMP FROM in the year 10000 (milliseconds)",
     {"ts": T0 + 1, "topic": "home/stamped", "payload": {"v": 9, "at": 253402300800000}},
     0, 1, "t.jsonl:2: bad message on home/stamped: Stamped.at: "
           f"253402300800000 is not a TIMESTAMP ({RANGE})"),
    ("TIMESTAMP FROM in the year 10000 (ISO)",
     {"ts": T0 + 1, "topic": "home/stamped", "payload": {"v": 9, "at": "10000-01-01T00:00Z"}},
     0, 1, "t.jsonl:2: bad message on home/stamped: Stamped.at: "
           '"10000-01-01T00:00Z" is not a TIMESTAMP (expected ISO-8601 or Unix '
           "seconds/milliseconds)"),
    ("TIMESTAMP FROM in 2100: more than a day ahead",
     {"ts": T0 + 1, "topic": "home/stamped", "payload": {"v": 9, "at": "2100-01-01T00:00Z"}},
     0, 1, "t.jsonl:2: bad message on home/stamped: Stamped: its time "
           "2100-01-01T00:00:00.000+00:00 is more than a day ahead of the message's "
           "(2023-11-14T22:13:21.000+00:00)"),
    ("a TIMESTAMP attribute past 2200", reading(T0 + 1, v=9, t=1e10),
     0, 1, "t.jsonl:2: bad message on home/kitchen/reading: Reading.t: 10000000000.0 is not "
           f"a TIMESTAMP ({RANGE})"),
    ("an INT beyond 64 bits", reading(T0 + 1, v=9, n=2**64),
     0, 1, None),  # the value's text depends on the JSON library (orjson reads a float)
]


@pytest.mark.parametrize("line, bad_lines, bad_messages, report",
                         [case[1:] for case in HOSTILE_TIMES],
                         ids=[case[0] for case in HOSTILE_TIMES])
def test_a_hostile_time_is_refused_and_never_moves_the_clock(tmp_path, line, bad_lines,
                                                            bad_messages, report):
    lines = [reading(T0, v=1), line, reading(T0 + 2, v=3), reading(T0 + 3, v=4)]
    outputs, reports, stats = run(tmp_path, TIME_RULES, lines, until=T0 + 35)
    assert (stats.bad_lines, stats.bad_messages) == (bad_lines, bad_messages)
    if report is not None:
        assert reports == [report]
    else:
        assert len(reports) == 1 and "Reading.n:" in reports[0] and \
            "is not an INT (beyond 64 bits)" in reports[0]
    # the other readings are answered, and the timers fire at their own times
    assert [o["attrs"]["v"] for o in outputs if o["rule"] == "answers"] == [1.0, 3.0, 4.0]
    assert [o["ts"] for o in outputs if o["rule"] == "ticks"] == [T0 + 10, T0 + 20, T0 + 30]
    assert all(o["ts"] <= T0 + 35 for o in outputs)


def test_the_cli_replays_a_year_10000_trace_to_its_end(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.epl").write_text(TIME_RULES.replace("every timer:interval(10 sec)",
                                                       "every timer:interval(1 sec)"))
    write_trace(tmp_path, [reading(T0, v=1), reading(253402300800, v=2),
                           {"ts": "9999-12-31T23:59:59Z", "event": "Reading", "v": 3},
                           {"ts": T0 + 1, "topic": "home/stamped",
                            "payload": {"v": 1, "at": 253402300800 * 1000}},
                           reading(T0 + 2, v=4)])
    assert main(["replay", "r.epl", "--trace", "t.jsonl"]) == 0
    out, err = capsys.readouterr()
    lines = [strict_json(line) for line in out.splitlines()]
    assert [(line["rule"], line["ts"]) for line in lines] == [
        ("answers", "2023-11-14T22:13:20.000+00:00"), ("ticks", "2023-11-14T22:13:21.000+00:00"),
        ("ticks", "2023-11-14T22:13:22.000+00:00"), ("answers", "2023-11-14T22:13:22.000+00:00")]
    assert "Traceback" not in err and "internal error" not in err
    # 253402300800 is above 1e11: milliseconds, so 1978, earlier than the line before
    assert 't.jsonl:2: time goes back: "ts" 253402300800 is earlier than line 1' in err
    assert f't.jsonl:3: bad "ts" "9999-12-31T23:59:59Z": {RANGE}' in err
    assert "t.jsonl:4: bad message on home/stamped: Stamped.at: 253402300800000 is not" in err
    assert err.splitlines()[-1].startswith(
        "t.jsonl: 5 lines: 3 messages (2 with events, 1 bad), 2 bad lines; 2 events, "
        "1 bad message, 4 outputs in ")


def test_until_out_of_range_is_a_usage_error(tmp_path, capsys):
    rules = tmp_path / "r.epl"
    rules.write_text(TIME_RULES)
    trace = write_trace(tmp_path, [reading(T0, v=1)])
    assert main(["replay", str(rules), "--trace", trace, "--until",
                 "9999-12-31T00:00:00Z"]) == 2
    assert RANGE in capsys.readouterr().err


def test_trace_ts_and_timestamp_values_read_milliseconds_alike(tmp_path):
    """A number above 1e11 is milliseconds, for a trace's `ts` as for a TIMESTAMP."""
    lines = [reading(T0, v=1), reading(int(T0 * 1000) + 500, v=2), reading(T0 + 1, v=3),
             {"ts": int(T0 * 1000) + 1500, "topic": "home/stamped",
              "payload": {"v": 4, "at": str(int(T0 * 1000) + 1500)}}]
    outputs, reports, stats = run(tmp_path, TIME_RULES, lines)
    assert reports == [] and stats.bad_lines == 0 and stats.bad_messages == 0
    assert [(o["ts"], o["rule"]) for o in outputs] == [
        (T0, "answers"), (T0 + 0.5, "answers"), (T0 + 1, "answers"), (T0 + 1.5, "stamped")]
    assert parse_trace_ts(int(T0 * 1000), UTC) == T0
    assert converter("TIMESTAMP", UTC)(int(T0 * 1000)) == T0
    assert converter("TIMESTAMP", UTC)(str(int(T0 * 1000))) == T0


@pytest.mark.parametrize("value", [1e11, 7_258_118_400, -5, 10**400, "2200-01-01T00:00:00Z",
                                   "0001-01-01T00:00:00Z", 253402300800 * 1000])
def test_timestamp_values_outside_the_range_are_refused(value):
    with pytest.raises(BadValue, match=re.escape(RANGE)):
        converter("TIMESTAMP", UTC)(value)


def test_the_live_check_refuses_times_more_than_a_day_ahead():
    """What live runs (and replays) decode with: `bus.decode(..., ahead_of=ts)`."""
    catalog = load(TIME_RULES)
    bus = BusMapping.from_events(create_events(catalog), UTC)
    soon = json.dumps({"v": 1, "at": T0 + MAX_AHEAD}).encode()
    later = json.dumps({"v": 1, "at": T0 + MAX_AHEAD + 1}).encode()
    assert [e.ts for e in bus.decode("home/stamped", soon, T0, ahead_of=T0)[0]] == [
        T0 + MAX_AHEAD]
    events, [problem] = bus.decode("home/stamped", later, T0, ahead_of=T0)
    assert events == [] and "more than a day ahead of the message's" in problem.reason
    # behind is fine (the engine takes a late event as happening now), and so is any
    # time without the check
    assert [e.ts for e in bus.decode("home/stamped", later, T0, ahead_of=T0 + 2)[0]] == [
        T0 + MAX_AHEAD + 1]
    assert [e.ts for e in bus.decode("home/stamped", later, T0)[0]] == [T0 + MAX_AHEAD + 1]
    # an arrival time is never checked: only payload times can be ahead
    assert bus.decode("home/k/reading", b'{"v": 1}', T0 + 10 * MAX_AHEAD, ahead_of=T0) == ([
        Event("Reading", T0 + 10 * MAX_AHEAD, {"room": "k", "v": 1.0})], ())


def test_the_engine_drops_an_event_out_of_range_and_keeps_its_clock():
    warnings: list[str] = []
    outputs: list[dict] = []
    engine = Engine(load(TIME_RULES), outputs.append, UTC, warn=warnings.append)
    engine.process(Event("Reading", float("nan"), {"v": 0.0}))  # before the clock starts
    assert not engine.started
    engine.process(Event("Reading", T0, {"v": 1.0}))
    for ts in (1e12, LATEST_TS, float("inf"), float("nan")):
        engine.process(Event("Reading", ts, {"v": 2.0}))
    engine.advance(1e15)
    assert engine.now == T0 and engine.stats["bad_times"] == 5
    engine.process(Event("Reading", T0 + 11, {"v": 3.0}))
    assert [(o["ts"], o["rule"]) for o in outputs] == [
        (T0, "answers"), (T0 + 10, "ticks"), (T0 + 11, "answers")]
    assert warnings[0] == "a Reading event at nan (Unix seconds) is not a number: dropped"
    assert warnings[1] == "a Reading event at 1000000000000.0 (Unix seconds) is outside " \
                          "1970-01-01 .. 2200-01-01 UTC: dropped"
    assert any("the clock cannot move to 1000000000000000.0" in w for w in warnings)


@pytest.mark.parametrize("ts", [1e15, -1e15, float("nan"), float("inf"), 253402300800.0])
def test_formatting_any_time_never_raises(ts):
    assert isinstance(format_ts(ts, UTC), str)


# ====================================================================== isolation

ISOLATION_RULES = """
CREATE EVENT Reading (room STRING, v FLOAT, n INT, label STRING) FROM TOPIC 'home/{room}/reading';
@name('answers') SELECT a.v AS v FROM PATTERN [ every a=Reading ];
@name('pairs') SELECT a.v AS first, b.v AS second FROM PATTERN [ every a=Reading -> b=Reading ];
@name('huge') SELECT v * 1e308 * 10 AS over, -(v * 1e308 * 10) AS under FROM Reading(v > 100);
@name('to_label') ON Reading(label IS NOT NULL) PUBLISH 'out/{label}' PAYLOAD {"v": v};
@name('cube') SELECT n * n * n AS cube FROM Reading(n IS NOT NULL)
    PUBLISH 'out/cube' PAYLOAD {"cube": cube};
@name('echo') ON Reading(label IS NOT NULL) PUBLISH 'out/echo' PAYLOAD label;
"""

BIG = "x" * (MAX_ACTION_PAYLOAD + 1)

# (what, the hostile reading's payload, action errors, its report, outputs of that reading)
HOSTILE_ACTIONS = [
    ("a topic with a control character", {"v": 2, "label": "a\u0001b"}, 1,
     "t.jsonl:2: rule 'to_label': at 2023-11-14T22:13:21.000+00:00: not published to "
     "'out/a\\x01b': the topic holds the control character U+0001",
     ["answers", "pairs", "echo"]),
    ("a topic with DEL", {"v": 2, "label": "a\u007fb"}, 1, "U+007F", ["answers", "pairs", "echo"]),
    ("a topic with a newline", {"v": 2, "label": "a\nb"}, 1, "U+000A",
     ["answers", "pairs", "echo"]),
    ("a topic with a wildcard", {"v": 2, "label": "a+b"}, 1,
     "rule 'to_label': at 2023-11-14T22:13:21.000+00:00: cannot fill topic 'out/{label}': "
     "{label} is 'a+b', which is not a single topic level", ["answers", "pairs", "echo"]),
    ("a topic over 65,535 bytes", {"v": 2, "label": "é" * 40000}, 1,
     "the topic is 80,004 bytes long (MQTT allows 65,535)", ["answers", "pairs", "echo"]),
    ("a payload over the action limit", {"v": 2, "label": BIG}, 2,
     "rule 'echo': at 2023-11-14T22:13:21.000+00:00: not published to 'out/echo': the payload "
     f"is {len(BIG):,} bytes (at most {MAX_ACTION_PAYLOAD:,} are sent)",
     ["answers", "pairs"]),
    ("an integer beyond 64 bits in a payload", {"v": 2, "n": 3_000_000}, 1,
     "rule 'cube': at 2023-11-14T22:13:21.000+00:00: not published to 'out/cube': the payload "
     "holds an integer beyond 64 bits", ["answers", "pairs", "cube"]),
]


@pytest.mark.parametrize("payload, action_errors, report, produced",
                         [case[1:] for case in HOSTILE_ACTIONS],
                         ids=[case[0] for case in HOSTILE_ACTIONS])
def test_an_action_refused_leaves_every_rule_working(tmp_path, payload, action_errors, report,
                                                    produced):
    lines = [reading(T0, v=1), reading(T0 + 1, **payload), reading(T0 + 2, v=3),
             reading(T0 + 3, v=4, label="ok", n=2), reading(T0 + 4, v=5)]
    outputs, reports, stats = run(tmp_path, ISOLATION_RULES, lines)
    assert stats.action_errors == action_errors and stats.rule_errors == 0
    assert any(report in line for line in reports), reports
    assert all(line.startswith("t.jsonl:2: rule '") for line in reports)
    assert [o["rule"] for o in outputs if o["ts"] == T0 + 1] == produced
    # every rule keeps working: 5 answers out of 5 readings, and the pairs go on
    assert [o["attrs"]["v"] for o in outputs if o["rule"] == "answers"] == [1, 2, 3, 4, 5]
    assert [(o["attrs"]["first"], o["attrs"]["second"]) for o in outputs
            if o["rule"] == "pairs"] == [(1, 2), (2, 3), (3, 4), (4, 5)]
    assert [(o["topic"], o["payload"]) for o in outputs
            if o["kind"] == "publish" and o["ts"] == T0 + 3] == [
        ("out/ok", {"v": 4.0}), ("out/cube", {"cube": 8}), ("out/echo", "ok")]
    assert f"{action_errors} action error" in stats.summary("t.jsonl")


def test_numbers_json_cannot_carry_are_written_as_null_and_counted(tmp_path, capsys):
    rules = tmp_path / "r.epl"
    rules.write_text(ISOLATION_RULES)
    trace = write_trace(tmp_path, [reading(T0, v=101), reading(T0 + 1, v=1)])
    assert main(["replay", str(rules), "--trace", trace]) == 0
    out, err = capsys.readouterr()
    lines = [strict_json(line) for line in out.splitlines()]  # all of it is JSON
    [huge] = [line for line in lines if line["rule"] == "huge"]
    assert huge["attrs"] == {"over": None, "under": None}
    assert "2 values written as null" in err.splitlines()[-1]
    assert [line["attrs"]["v"] for line in lines if line["rule"] == "answers"] == [101, 1]


def test_the_output_writer_never_writes_infinity():
    buffer = io.StringIO()
    OutputWriter(buffer, UTC)({"ts": T0, "kind": "event", "attrs": {"x": math.inf,
                                                                    "y": [math.nan, 1.5]}})
    assert strict_json(buffer.getvalue())["attrs"] == {"x": None, "y": [None, 1.5]}


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Africa/Monrovia",
                                  "Australia/Lord_Howe"])
def test_the_writer_writes_each_time_as_format_ts_does(zone):
    """The writer keeps the text of the last second it wrote, made from its minute's text;
    every time still comes out as format_ts makes it: around daylight saving changes
    (Berlin; Lord Howe moves by half an hour), at a change of offset at an odd second
    (Monrovia, 1972, from an offset of -0:44:30), at the rounding to the microsecond, in
    runs within one second, a second or two apart across minutes, and at random."""
    tz = ZoneInfo(zone) if zone != "UTC" else UTC
    writer = OutputWriter(io.StringIO(), tz)
    edges = [1711846800.0, 1729990800.0, 63593070.0, 1712419200.0, 0.0]
    times = [edge + step * 0.0004 for edge in edges for step in range(-1500, 1500)]
    times += [edge + step * 1.37 for edge in edges for step in range(-300, 300)]
    rnd = random.Random(7)
    times += [rnd.uniform(0, LATEST_TS - 1) for _ in range(5000)]
    ts = 1.7e9
    for _ in range(5000):
        ts += rnd.choice([0.0, 0.0001, 0.0004999, 0.0005, 0.05, 0.9999996, 1800.0])
        times.append(ts)
    assert [t for t in times if t >= 0 and writer.time_text(t) != format_ts(t, tz)] == []


@pytest.mark.parametrize("attrs", [
    {"n": 1, "f": 2.5, "big": 1e16, "neg": -0.0, "huge": 2.0 ** 70, "t": True, "no": None},
    {"text": 'é "quoted" \\ \u2028 \x00 \t', "emoji": "\U0001f600"},
    {"list": [1, [2.5, None], {"k": "v"}], "empty": [], "obj": {}},
    {"x": math.inf, "y": [math.nan, 1.5]},
], ids=["numbers", "texts", "nested", "not finite"])
def test_output_lines_are_what_json_dumps_writes(attrs):
    """The writer's encoder, made once, writes what json.dumps(ensure_ascii=False) writes
    (with null for what JSON cannot carry)."""
    buffer = io.StringIO()
    record = {"ts": T0, "kind": "event", "rule": "r", "key": ["k", 1], "attrs": attrs}
    OutputWriter(buffer, UTC)(record)
    finite = json.loads(json.dumps(attrs, allow_nan=True).replace("NaN", "null")
                        .replace("-Infinity", "null").replace("Infinity", "null"))
    expected = {**record, "ts": format_ts(T0, UTC), "attrs": finite}
    assert buffer.getvalue() == json.dumps(expected, ensure_ascii=False) + "\n"


FAULT_RULES = """
CREATE EVENT Reading (room STRING, v FLOAT) FROM TOPIC 'home/{room}/reading';
CREATE CONTEXT PerRoom PARTITION BY room;
@name('watched') SELECT a.v AS first, b.v AS second
    FROM PATTERN [ every a=Reading(v > 0) -> b=Reading(v > a.v) ];
@name('stream') SELECT v FROM Reading(v > 0) WHERE v < 100;
@name('acting') ON PATTERN [ every a=Reading ] PUBLISH 'out/v' PAYLOAD {"v": a.v};
@name('per_room') CONTEXT PerRoom SELECT a.v AS v FROM PATTERN [ every a=Reading ];
"""


def _failing(fn, raising: bool):
    """`fn` made to fail on the value 13 (as a filter, WHERE or SELECT might on a value),
    by raising; or, for the reference run, by answering False."""
    def wrapped(a, m, c):
        values = [a.get("v")] if a is not None else []
        values += [e.attrs.get("v") for e in m.values() if isinstance(e, Event)]
        if 13.0 in values:
            if raising:
                raise TypeError("unsupported operand for 13")
            return False
        return fn(a, m, c) if fn is not None else True
    return wrapped


def _inject(engine: Engine, where: str, raising: bool) -> str:
    """Make one place of one rule fail on the reading 13; the rule's name."""
    from cep.runtime.matcher import atom_nodes

    agents = {agent.name: agent for agent in engine.agents}
    if where == "pattern filter":
        atom = atom_nodes(agents["watched"].source.node)[1]
        atom.filter = _failing(atom.filter, raising)
        return "watched"
    if where == "stream filter":
        agents["stream"].source.filter = _failing(agents["stream"].source.filter, raising)
        return "stream"
    if where == "WHERE":
        agents["stream"].where = _failing(agents["stream"].where, raising)
        return "stream"
    if where == "SELECT":
        if raising:
            name, fn = agents["watched"].select[0]
            agents["watched"].select[0] = (name, _failing(fn, True))
        else:  # a result that cannot be made is dropped: as if WHERE said no
            agents["watched"].where = _failing(None, False)
        return "watched"
    raise AssertionError(where)


VALUES = [1, 13, 2, 14, 3, 15, 13, 16]


def _outputs(where: str | None, raising: bool):
    warnings: list[str] = []
    outputs: list[dict] = []
    engine = Engine(load(FAULT_RULES), outputs.append, UTC, warn=warnings.append)
    if where is not None:
        _inject(engine, where, raising)
    for i, v in enumerate(VALUES):
        engine.process(Event("Reading", T0 + i, {"room": "kitchen", "v": float(v)}))
    return outputs, warnings, engine


@pytest.mark.parametrize("where, rule, what", [
    ("pattern filter", "watched", "a pattern filter"),
    ("stream filter", "stream", "its filter"),
    ("WHERE", "stream", "its WHERE or SELECT"),
    ("SELECT", "watched", "its WHERE or SELECT"),
])
def test_a_failing_expression_costs_only_its_result(where, rule, what):
    """Every rule's output is as if the failing expression had said no: the pattern's state
    machines are not left broken, and the other rules never notice."""
    outputs, warnings, engine = _outputs(where, raising=True)
    reference, quiet, _ = _outputs(where, raising=False)
    assert quiet == [] and outputs == reference
    clean, _, _ = _outputs(None, raising=False)
    assert [o for o in outputs if o["rule"] != rule] == [o for o in clean if o["rule"] != rule]
    assert len([o for o in outputs if o["rule"] == "per_room"]) == len(VALUES)
    assert engine.stats["rule_errors"] >= 2
    assert warnings == [f"rule '{rule}': {what} failed on a Reading event at "
                        f"2023-11-14T22:13:21.000+00:00: TypeError: unsupported operand for 13"]


def test_a_failing_payload_costs_only_its_action():
    warnings: list[str] = []
    outputs: list[dict] = []
    engine = Engine(load(FAULT_RULES), outputs.append, UTC, warn=warnings.append)
    action = next(a for a in engine.agents if a.name == "acting").actions[0]
    action.payload = _failing(action.payload, True)
    for i, v in enumerate(VALUES):
        engine.process(Event("Reading", T0 + i, {"room": "kitchen", "v": float(v)}))
    assert engine.stats["action_errors"] == 2 and engine.stats["rule_errors"] == 0
    assert warnings == ["rule 'acting': at 2023-11-14T22:13:21.000+00:00: cannot build the "
                        "payload for 'out/v': TypeError: unsupported operand for 13"]
    assert [o["payload"]["v"] for o in outputs if o["rule"] == "acting"] == [
        1, 2, 14, 3, 15, 16]
    clean, _, _ = _outputs(None, raising=False)
    assert [o for o in outputs if o["rule"] != "acting"] == \
        [o for o in clean if o["rule"] != "acting"]


def test_a_sink_that_fails_on_one_record_costs_only_that_record():
    warnings: list[str] = []
    written: list[dict] = []

    def sink(record):
        if record.get("attrs", {}).get("v") == 13.0:
            raise RuntimeError("the broker said no")
        written.append(record)

    engine = Engine(load(FAULT_RULES), sink, UTC, warn=warnings.append)
    for i, v in enumerate([1, 13, 2, 3]):
        engine.process(Event("Reading", T0 + i, {"room": "kitchen", "v": float(v)}))
    assert engine.stats["output_errors"] == 2  # per_room's and stream's line for 13
    assert [r["attrs"]["v"] for r in written if r["rule"] == "per_room"] == [1, 2, 3]
    assert warnings[0] == ("could not output the event record of 'stream' at "
                           "2023-11-14T22:13:21.000+00:00: RuntimeError: the broker said no")


def test_a_fault_on_every_event_is_reported_once_a_minute():
    warnings: list[str] = []
    engine = Engine(load(FAULT_RULES), lambda r: None, UTC, warn=warnings.append)
    agents = {agent.name: agent for agent in engine.agents}
    agents["stream"].where = lambda a, m, c: 1 / 0
    for i in range(150):  # one a second: 2.5 minutes
        engine.process(Event("Reading", T0 + i, {"room": "kitchen", "v": 1.0}))
    assert engine.stats["rule_errors"] == 150
    assert len(warnings) == 3
    assert warnings[1].endswith("(and 59 more like it since the last report)")


# ====================================================================== topics and payloads

@pytest.mark.parametrize("topic, problem", [
    ("home/light", None),
    ("home/é/ünïcode", None),
    ("a" * 65_535, None),
    ("", "the topic is empty"),
    ("a/+/b", "the topic holds the wildcard '+'"),
    ("a/#", "the topic holds the wildcard '#'"),
    ("a\u0000b", "the topic holds the control character U+0000"),
    ("a\u001fb", "the topic holds the control character U+001F"),
    ("a\u007fb", "the topic holds the control character U+007F"),
    ("a\ud800b", "the topic is not valid UTF-8 (a lone surrogate)"),
    ("a" * 65_536, "the topic is 65,536 bytes long (MQTT allows 65,535)"),
    ("é" * 32_768, "the topic is 65,536 bytes long (MQTT allows 65,535)"),
])
def test_topics_mqtt_would_refuse(topic, problem):
    assert topic_problem(topic) == problem


@pytest.mark.parametrize("payload, problem", [
    ({"a": [1, 2.5, None, True, "x"]}, None),
    ("OFF", None),
    (2**63 - 1, None),
    (-(2**63), None),
    ({"n": 2**63}, "the payload holds an integer beyond 64 bits"),
    ([-(2**63) - 1], "the payload holds an integer beyond 64 bits"),
    ({"x": math.inf}, "the payload holds a number that is not finite"),
    ({"x": "\udc80"}, "a string of the payload is not valid UTF-8 (a lone surrogate)"),
    ("\udc80", "the payload is not valid UTF-8 (a lone surrogate)"),
    ({1: "a"}, "the payload has an object key that is not a string (1)"),
    ({"x": {1, 2}}, "the payload holds a value JSON cannot carry (set)"),
    ("x" * MAX_ACTION_PAYLOAD, None),
    ("x" * (MAX_ACTION_PAYLOAD + 1),
     f"the payload is {MAX_ACTION_PAYLOAD + 1:,} bytes (at most {MAX_ACTION_PAYLOAD:,} are sent)"),
    (["x" * 1000] * 300, "the payload is "),
])
def test_payloads_that_cannot_be_sent(payload, problem):
    found = payload_problem(payload)
    assert found == problem if problem is None or not problem.endswith(" ") else \
        found.startswith(problem)


def test_payload_sizes_are_those_of_compact_json():
    rnd = random.Random(7)
    for _ in range(200):
        value = {f"k{i}": rnd.choice([1, -25, 2.5, None, True, False, "a\"b\\c\n", "é",
                                      [1, [2, {}]], {}]) for i in range(rnd.randrange(5))}
        value["pad"] = ""
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        # exactly at the limit, and one byte over it
        value["pad"] = "p" * (MAX_ACTION_PAYLOAD - size)
        assert payload_problem(value) is None
        value["pad"] += "p"
        assert payload_problem(value) == f"the payload is over {MAX_ACTION_PAYLOAD:,} bytes " \
                                         "as JSON"


# ====================================================================== LIKE

def reference_like(pattern: str, value: str) -> bool:
    """LIKE as it was compiled before: a regular expression (it backtracks)."""
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.S).fullmatch(value) is not None


LIKE_CASES = [
    ("kit%", "kitchen", True), ("kit%", "Kitchen", False), ("%chen", "kitchen", True),
    ("k_tchen", "kitchen", True), ("k_tchen", "ktchen", False), ("%", "", True),
    ("", "", True), ("", "a", False), ("_", "", False), ("_", "\n", True), ("%%", "x", True),
    ("a%b%c", "abc", True), ("a%b%c", "acb", False), ("a%a", "a", False), ("a%a", "aa", True),
    ("%a_b%", "xaxbx", True), ("%a_b%", "xabx", False), ("%_%", "", False), ("%_%", "z", True),
    ("__%__", "abc", False), ("__%__", "abcd", True), ("%door%open%", "door is open", True),
    ("%door%open%", "open door", False), ("a.c", "abc", False), ("a.c", "a.c", True),
    ("[a]*", "[a]*", True), ("(x|y)", "x", False), ("\\d", "\\d", True), ("\\d", "1", False),
    ("^$", "^$", True), ("%ab_ab%", "abxaabyab", True), ("%ab_ab%", "ababab", False), ("%ab_ab%", "abXab", True),
    ("%aab%", "aaab", True), ("%ana%na%", "banana", True), ("%ana%ana%", "banana", False), ("%ana%a%", "banana", True),
    ("é_", "éü", True), ("%\n%", "a\nb", True), ("a_%_c", "abc", False), ("a_%_c", "abbc", True),
]


@pytest.mark.parametrize("pattern, value, expected", LIKE_CASES)
def test_like_keeps_its_meaning(pattern, value, expected):
    assert reference_like(pattern, value) == expected  # the table is right
    assert like_matcher(pattern)(value) == expected


def test_like_agrees_with_the_regular_expression_on_many_cases():
    rnd = random.Random(2024)
    for _ in range(20_000):
        pattern = "".join(rnd.choice("ab%_") for _ in range(rnd.randrange(8)))
        value = "".join(rnd.choice("abc") for _ in range(rnd.randrange(10)))
        assert like_matcher(pattern)(value) == reference_like(pattern, value), (pattern, value)


LIKE_RULES = """
CREATE EVENT Message (text STRING, pat STRING) FROM TOPIC 'home/message';
@name('constant') SELECT 1 AS hit FROM Message(text LIKE '%door%open%front%');
@name('dynamic') SELECT 1 AS hit FROM Message(text LIKE pat);
@name('always') SELECT 1 AS seen FROM Message;
"""


def test_hostile_likes_finish_and_answer_right(tmp_path):
    """These took 68 s and over 120 s with a backtracking regex."""
    long_text = "door " * 8000  # 40 KB, no `open`
    lines = [
        {"ts": T0, "topic": "home/message", "payload": {"text": long_text, "pat": "x"}},
        {"ts": T0 + 1, "topic": "home/message",
         "payload": {"text": "a" * 60, "pat": "%a" * 30 + "%b"}},
        {"ts": T0 + 2, "topic": "home/message",
         "payload": {"text": long_text + "open front", "pat": "%a" * 30 + "%b"}},
        {"ts": T0 + 3, "topic": "home/message",
         "payload": {"text": "a" * 60 + "b", "pat": "%a" * 30 + "%b"}},
        {"ts": T0 + 4, "topic": "home/message",
         "payload": {"text": "ab" * 20000, "pat": "%" + "a_" * 30 + "%c"}},
    ]
    outputs, reports, stats = run(tmp_path, LIKE_RULES, lines)
    assert reports == [] and stats.events == 5
    assert [(o["ts"], o["rule"]) for o in outputs if o["rule"] != "always"] == [
        (T0 + 2, "constant"), (T0 + 3, "dynamic")]
    assert len([o for o in outputs if o["rule"] == "always"]) == 5


# ====================================================================== payload size

SIZE_RULES = """
CREATE EVENT Blob (text STRING) FROM TOPIC 'home/blob';
CREATE EVENT Raw (all STRING) FROM TOPIC 'home/raw' PAYLOAD AS all;
@name('blob') SELECT text FROM Blob;
@name('raw') SELECT all FROM Raw;
"""


def test_a_payload_over_the_limit_is_a_bad_message_live_and_in_a_replay(tmp_path):
    catalog = load(SIZE_RULES)
    bus = BusMapping.from_events(create_events(catalog), UTC)
    just = json.dumps({"text": "x" * (MAX_PAYLOAD - 12)}).encode()
    assert len(just) == MAX_PAYLOAD
    assert bus.decode("home/blob", just, T0)[0][0].attrs["text"] == "x" * (MAX_PAYLOAD - 12)
    over = just[:-2] + b'x"}'
    for topic in ("home/blob", "home/raw"):
        with pytest.raises(BadMessage, match=f"the payload is {MAX_PAYLOAD + 1:,} bytes"):
            bus.decode(topic, over, T0)
        with pytest.raises(BadMessage, match="bytes"):
            bus.decode(topic, memoryview(over), T0)
    lines = [
        # as compact JSON (how a trace's JSON value stands for its payload): one byte over
        {"ts": T0, "topic": "home/blob", "payload": {"text": "x" * (MAX_PAYLOAD - 10)}},
        {"ts": T0 + 1, "topic": "home/raw", "payload": "y" * (MAX_PAYLOAD + 1)},
        {"ts": T0 + 2, "topic": "home/blob", "payload": {"text": "small"}},
        {"ts": T0 + 3, "topic": "home/blob", "payload": {"text": "x" * (MAX_PAYLOAD - 12)}},
    ]
    outputs, reports, stats = run(tmp_path, SIZE_RULES, lines)
    assert stats.bad_messages == 2 and stats.bad_lines == 0
    assert reports == [
        f"t.jsonl:1: bad message on home/blob: the payload is {MAX_PAYLOAD + 1:,} bytes "
        f"(at most {MAX_PAYLOAD:,} are read)",
        f"t.jsonl:2: bad message on home/raw: the payload is {MAX_PAYLOAD + 1:,} bytes "
        f"(at most {MAX_PAYLOAD:,} are read)"]
    assert [len(o["attrs"]["text"]) for o in outputs] == [5, MAX_PAYLOAD - 12]


def test_a_line_far_over_the_limit_is_not_even_parsed(tmp_path):
    from cep.adapters.trace import MAX_LINE

    lines = ['{"ts": 1700000000, "topic": "home/blob", "payload": "' + "z" * MAX_LINE + '"}',
             {"ts": T0 + 1, "topic": "home/blob", "payload": {"text": "small"}}]
    outputs, reports, stats = run(tmp_path, SIZE_RULES, lines)
    assert stats.bad_lines == 1 and [o["attrs"]["text"] for o in outputs] == ["small"]
    assert reports == [f"t.jsonl:1: the line is {len(lines[0]) + 1:,} bytes long (at most "
                       f"{MAX_LINE:,} are read)"]


def test_a_timestamp_result_out_of_range_is_null_and_the_rule_goes_on(tmp_path):
    """The probe's `every` rule answered 1 reading out of 5 once a TIMESTAMP result could
    not be formatted; now that result is null (counted) and all 5 are answered."""
    rules = TIME_RULES + """
@name('later') SELECT a.t + a.n AS shifted FROM PATTERN [ every a=Reading(t IS NOT NULL) ];
"""
    shifts = [60, 10**10, 60, 60, 60]  # the second lands past 2200
    lines = [reading(T0 + i, v=i, t=T0, n=shift) for i, shift in enumerate(shifts)]
    outputs, reports, stats = run(tmp_path, rules, lines)
    assert reports == [] and stats.nulled == 1
    assert [o["attrs"]["shifted"] for o in outputs if o["rule"] == "later"] == [
        "2023-11-14T22:14:20.000+00:00", None, "2023-11-14T22:14:20.000+00:00",
        "2023-11-14T22:14:20.000+00:00", "2023-11-14T22:14:20.000+00:00"]
    assert len([o for o in outputs if o["rule"] == "answers"]) == 5
    assert "1 value written as null" in stats.summary("t.jsonl")


def test_replay_takes_the_partition_limit(tmp_path):
    rules = """
CREATE EVENT Reading (room STRING, v FLOAT) FROM TOPIC 'home/{room}/reading';
CREATE CONTEXT PerRoom PARTITION BY room;
@name('waiting') CONTEXT PerRoom SELECT a.v AS v FROM PATTERN [ a=Reading -> b=Reading(v > 99) ];
"""
    lines = [{"ts": T0 + i, "topic": f"home/r{i}/reading", "payload": {"v": 1}}
             for i in range(5)]
    _, reports, stats = run(tmp_path, rules, lines, max_instances=2)
    assert stats.refused_keys == 3
    assert reports == ["t.jsonl:3: context 'PerRoom' has 2 instances, its limit: an event of "
                       "a new key ('r2') belongs to no instance of it (1 so far)"]
    assert "3 events of new partition keys refused" in stats.summary("t.jsonl")
