"""The replay's clock: it starts at the first good line of a trace (matched or not, a bad
message or not) and every good line moves it on; clock marks (`{"clock": "start"}` as the
first line, `{"clock": "stop"}` ending the trace); and recordings (`cep run --record`,
`cep record`) written between a start and a stop mark, whose replay with no `--until`
gives the live run's output lines.

The MQTT tests start their own mosquitto (tests/broker.py); every wait is for a
condition, with a generous deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cep.adapters.live import LiveRunner, RecordStats, record
from cep.adapters.mqtt import BrokerSettings, MqttConnection
from cep.adapters.replay import replay
from cep.adapters.trace import TraceClock, TraceMessage, TraceReader, TraceWriter
from cep.checks.loader import load_texts
from cep.cli import main
from cep.language.diagnostics import plural
from tests.broker import WAIT, BusClient, CepProcess, wait_until

RULES = """\
SET TIMEZONE 'UTC';
CREATE EVENT Door (state STRING) FROM TOPIC 'home/door' PAYLOAD AS state;
CREATE EVENT Temp (value FLOAT) FROM TOPIC 'home/temp';
CREATE EVENT Stamped (v INT) FROM TOPIC 'home/stamped' TIMESTAMP FROM 'at';
CREATE CONTEXT Evening START 18:00 END 23:00;

@name('hourly') SELECT 'tick' AS what FROM PATTERN [ every timer:interval(1 hour) ];
@name('opened') CONTEXT Evening
SELECT d.state AS state FROM PATTERN [ every d=Door(state = 'OPEN') ];
@name('quiet') SELECT d.state AS state
FROM PATTERN [ every d=Door -> (timer:interval(10 min) and not Door) ];
@name('stamped') SELECT v FROM Stamped;
"""

TIMING = re.compile(r" in \d+\.\d+ s \([\d,]+ events/s\)$")


def at(hhmm: str) -> str:
    return f"2026-11-20T{hhmm}:00Z"


def rain(hhmm: str) -> str:  # a topic no rule reads
    return json.dumps({"ts": at(hhmm), "topic": "garden/rain", "payload": {"mm": 0}})


def door(hhmm: str, state: str = "OPEN") -> str:
    return json.dumps({"ts": at(hhmm), "topic": "home/door", "payload": state})


def mark(hhmm: str, which: str) -> str:
    return json.dumps({"ts": at(hhmm), "clock": which})


def short(line: dict) -> str:
    """An output line as `HH:MM:SS what`: the rule of an event, the kind and context of a
    context line."""
    when = line["ts"][11:19]
    if line["kind"] == "event":
        return f"{when} {line['rule']}"
    return f"{when} {line['kind']} {line['context']}"


def run_replay(tmp_path: Path, capsys, lines: list[str], *args: str
               ) -> tuple[list[str], list[str]]:
    """`cep replay rules.epl --trace t.jsonl --contexts ARGS` run in `tmp_path`: the output
    lines (short) and the stderr lines (the timing left out)."""
    rules = tmp_path / "rules.epl"
    rules.write_text(RULES)
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    status = main(["replay", str(rules), "--trace", str(tmp_path / "t.jsonl"), "--contexts",
                   *args])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    outputs = [short(json.loads(line)) for line in captured.out.splitlines()]
    return outputs, [TIMING.sub("", line.replace(str(tmp_path) + "/", ""))
                     for line in captured.err.splitlines()]


def summary(with_events: int, events: int, outputs: int, *, unmatched: int = 0,
            unreadable: int = 0, marks: int = 0, bad_lines: int = 0, blank: int = 0,
            after: int = 0, bad: int = 0, more: str = "") -> str:
    """The replay summary, timing left out: the trace's lines and their parts (messages
    with events, unmatched or that no type could read; clock marks, bad lines, blank
    lines, lines after the stop mark), then what the replay made."""
    messages = with_events + unmatched + unreadable
    total = messages + marks + bad_lines + blank + after
    kinds = [f"{with_events} with events"] + [
        f"{count} {what}" for count, what in ((unmatched, "unmatched"), (unreadable, "bad"))
        if count]
    parts = [f"{plural(messages, 'message')} ({', '.join(kinds)})"]
    if marks:
        parts.append(plural(marks, "clock mark"))
    parts.append(plural(bad_lines, "bad line"))
    if blank:
        parts.append(f"{blank} blank")
    if after:
        parts.append(f"{after} skipped after the stop mark")
    return (f"t.jsonl: {plural(total, 'line')}: {', '.join(parts)}; "
            f"{plural(events, 'event')}, {plural(bad, 'bad message')}, "
            f"{plural(outputs, 'output')}{more}")


# (name, trace lines, --until, outputs, stderr)
CLOCK_START = [
    ("only unmatched lines: the evening opens and the timers run from the first",
     [rain("18:30"), rain("20:45")], None,
     ["18:30:00 context-start Evening", "19:30:00 hourly", "20:30:00 hourly"],
     [summary(0, 0, 3, unmatched=2)]),
    ("only unmatched lines, with --until",
     [rain("18:30"), rain("20:45")], at("23:30"),
     ["18:30:00 context-start Evening", "19:30:00 hourly", "20:30:00 hourly",
      "21:30:00 hourly", "22:30:00 hourly", "23:00:00 context-end Evening", "23:30:00 hourly"],
     [summary(0, 0, 7, unmatched=2)]),
    ("an unmatched first line, then events",
     [rain("18:30"), door("19:00")], None,
     ["18:30:00 context-start Evening", "19:00:00 opened"],
     [summary(1, 1, 2, unmatched=1)]),
    ("an unmatched last line moves the clock: the timers due by then fire",
     [door("18:30"), rain("18:50")], None,
     ["18:30:00 context-start Evening", "18:30:00 opened", "18:40:00 quiet"],
     [summary(1, 1, 3, unmatched=1)]),
    ("a bad message first starts the clock",
     [json.dumps({"ts": at("18:30"), "topic": "home/temp", "payload": {"value": "hot"}}),
      rain("19:30")], None,
     ["18:30:00 context-start Evening", "19:30:00 hourly"],
     ['t.jsonl:1: bad message on home/temp: Temp.value: "hot" is not a FLOAT',
      summary(0, 0, 2, unreadable=1, bad=1, unmatched=1)]),
    ("a bad event line first starts the clock",
     [json.dumps({"ts": at("18:30"), "event": "Nope"}), rain("19:30")], None,
     ["18:30:00 context-start Evening", "19:30:00 hourly"],
     ["t.jsonl:1: bad message on Nope: unknown event type 'Nope'",
      summary(0, 0, 2, unreadable=1, bad=1, unmatched=1)]),
    ("a bad line does not start the clock",
     ["{oops", rain("19:00")], None,
     ["19:00:00 context-start Evening"],
     ["t.jsonl:1: not valid JSON", summary(0, 0, 1, bad_lines=1, unmatched=1)]),
    ("a first line that makes an event starts the clock as before",
     [door("18:30")], None,
     ["18:30:00 context-start Evening", "18:30:00 opened"],
     [summary(1, 1, 2)]),
    ("a TIMESTAMP FROM time before the clock is taken at the clock's time",
     [rain("19:00"),
      json.dumps({"ts": at("19:05"), "topic": "home/stamped",
                  "payload": {"v": 1, "at": at("18:59")}}),
      json.dumps({"ts": at("19:06"), "topic": "home/stamped",
                  "payload": {"v": 2, "at": at("19:04")}})], None,
     ["19:00:00 context-start Evening", "19:00:00 stamped", "19:04:00 stamped"],
     [summary(2, 2, 3, unmatched=1)]),
]


@pytest.mark.parametrize("lines, until, outputs, stderr", [c[1:] for c in CLOCK_START],
                         ids=[c[0] for c in CLOCK_START])
def test_the_clock_starts_at_the_first_good_line(tmp_path, capsys, lines, until, outputs,
                                                 stderr):
    args = ("--until", until) if until is not None else ()
    assert run_replay(tmp_path, capsys, lines, *args) == (outputs, stderr)


AFTER = ": a trace ends at its stop mark"
# (name, trace lines, --until, outputs, stderr)
MARKS = [
    ("a start mark opens the evening and starts the timers at its time",
     [mark("18:30", "start"), door("19:00")], None,
     ["18:30:00 context-start Evening", "19:00:00 opened"],
     [summary(1, 1, 2, marks=1)]),
    ("only a start and a stop mark: timers and recurring contexts between them",
     [mark("17:30", "start"), mark("23:30", "stop")], None,
     ["18:00:00 context-start Evening", "18:30:00 hourly", "19:30:00 hourly",
      "20:30:00 hourly", "21:30:00 hourly", "22:30:00 hourly",
      "23:00:00 context-end Evening", "23:30:00 hourly"],
     [summary(0, 0, 8, marks=2)]),
    ("a stop mark fires the timers due up to and including it",
     [door("19:00"), mark("19:10", "stop")], None,
     ["19:00:00 context-start Evening", "19:00:00 opened", "19:10:00 quiet"],
     [summary(1, 1, 3, marks=1)]),
    ("the lines after a stop mark are skipped and reported once",
     [door("19:00"), mark("19:05", "stop"), door("19:20"), "", "{not even json",
      rain("19:30")], None,
     ["19:00:00 context-start Evening", "19:00:00 opened"],
     ["t.jsonl:3: 3 lines after the stop mark on line 2 skipped" + AFTER,
      summary(1, 1, 2, marks=1, after=3, blank=1)]),
    ("one line after a stop mark",
     [mark("19:05", "stop"), door("19:20")], None,
     ["19:05:00 context-start Evening"],
     ["t.jsonl:2: 1 line after the stop mark on line 1 skipped" + AFTER,
      summary(0, 0, 1, marks=1, after=1)]),
    ("an --until after the stop mark moves the clock on",
     [door("19:00"), mark("19:05", "stop")], at("20:00"),
     ["19:00:00 context-start Evening", "19:00:00 opened", "19:10:00 quiet",
      "20:00:00 hourly"],
     [summary(1, 1, 4, marks=1)]),
    ("an --until before the stop mark changes nothing",
     [door("19:00"), mark("19:10", "stop")], at("19:05"),
     ["19:00:00 context-start Evening", "19:00:00 opened", "19:10:00 quiet"],
     [summary(1, 1, 3, marks=1)]),
    ("a start mark after the first line is a bad line",
     [rain("18:30"), mark("18:40", "start"), door("19:00")], None,
     ["18:30:00 context-start Evening", "19:00:00 opened"],
     ["t.jsonl:2: a start mark is good only as the first line of a trace; the clock "
      "started at line 1", summary(1, 1, 2, unmatched=1, bad_lines=1)]),
    ("a start mark after a bad and a blank line is the first good line",
     ["{oops", "", mark("18:30", "start"), door("19:00")], None,
     ["18:30:00 context-start Evening", "19:00:00 opened"],
     ["t.jsonl:1: not valid JSON", summary(1, 1, 2, bad_lines=1, blank=1, marks=1)]),
    ("a stop mark going back is a bad line, and the trace goes on",
     [door("19:00"), mark("18:55", "stop"), door("19:20", "CLOSED")], None,
     ["19:00:00 context-start Evening", "19:00:00 opened", "19:10:00 quiet"],
     ['t.jsonl:2: time goes back: "ts" "2026-11-20T18:55:00Z" is earlier than line 1 '
      '("2026-11-20T19:00:00Z")', summary(2, 2, 3, bad_lines=1)]),
    ("a clock mark that is neither start nor stop is a bad line",
     [json.dumps({"ts": at("18:30"), "clock": "pause"}), rain("19:00")], None,
     ["19:00:00 context-start Evening"],
     ['t.jsonl:1: "clock" must be "start" or "stop", not "pause"',
      summary(0, 0, 1, bad_lines=1, unmatched=1)]),
    ("a clock mark holding more is a bad line",
     [json.dumps({"ts": at("18:30"), "clock": "stop", "topic": "home/door",
                  "payload": "OPEN"}), rain("19:00")], None,
     ["19:00:00 context-start Evening"],
     ['t.jsonl:1: a clock mark holds only "ts" and "clock", not "topic"',
      summary(0, 0, 1, bad_lines=1, unmatched=1)]),
]


@pytest.mark.parametrize("lines, until, outputs, stderr", [c[1:] for c in MARKS],
                         ids=[c[0] for c in MARKS])
def test_clock_marks(tmp_path, capsys, lines, until, outputs, stderr):
    args = ("--until", until) if until is not None else ()
    assert run_replay(tmp_path, capsys, lines, *args) == (outputs, stderr)


def test_the_reader_gives_the_marks_and_stops_at_the_stop_mark(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([mark("18:00", "start"), door("18:10"), mark("18:20", "stop"),
                               door("18:30"), "   ", "[1]"]) + "\n")
    reports: list[str] = []
    reader = TraceReader(path, UTC, reports.append, name="t.jsonl")
    t0 = datetime(2026, 11, 20, 18, tzinfo=UTC).timestamp()
    assert list(reader) == [TraceClock(1, t0, "start"),
                            TraceMessage(2, t0 + 600, "home/door", b"OPEN"),
                            TraceClock(3, t0 + 1200, "stop")]
    assert (reader.records, reader.skipped, reader.after_stop, reader.stopped) == (3, 0, 2, 3)
    assert reports == ["t.jsonl:4: 2 lines after the stop mark on line 3 skipped" + AFTER]
    assert reader.position == path.stat().st_size  # read to the end


def test_a_trace_with_only_a_stop_mark_and_a_tick_hook(tmp_path):
    """The stop mark's time is the final clock the view is told."""
    loaded = load_texts([("rules.epl", RULES)])
    path = tmp_path / "t.jsonl"
    path.write_text(mark("18:30", "stop") + "\n")
    seen: list[tuple[float | None, bool]] = []
    outputs: list[dict] = []
    stats = replay(loaded.catalog, str(path), outputs.append, UTC, report=print,
                   tick=lambda engine, stats, final: seen.append((stats.clock, final)))
    stop = datetime(2026, 11, 20, 18, 30, tzinfo=UTC).timestamp()
    assert seen[-1] == (stop, True)
    assert (stats.lines, stats.events, stats.after_stop) == (1, 0, 0)
    assert [(o["kind"], o["ts"]) for o in outputs] == []  # --contexts not asked


# ------------------------------------------------------------------ recordings, live


class TestClock:
    __test__ = False

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z

QUIET_RULES = """\
CREATE EVENT Button (action STRING) FROM TOPIC 'zigbee2mqtt/button' PAYLOAD AS action;
CREATE CONTEXT Always START 00:00 END 23:59;

@name('later')
SELECT b.action AS action FROM PATTERN [ every b=Button -> timer:interval(2 sec) ]
PUBLISH 'home/later' PAYLOAD {"after": action} QOS 1;

@name('pressed') CONTEXT Always SELECT action FROM Button;
"""



@pytest.mark.mqtt
def test_run_record_holds_the_start_and_stop_and_replays_to_the_live_outputs(tmp_path,
                                                                             broker):
    """On a clock the test moves: the start mark at the run's start, the stop mark at the
    clock of the stop, and a timer due between the last message and the stop fires live
    (at the stop at the latest) and in the replay of the recording, which needs no --until."""
    loaded = load_texts([("quiet.epl", QUIET_RULES)])
    assert loaded.ok, loaded.diagnostics
    clock = TestClock(T0)
    trace = tmp_path / "seen.jsonl"
    live: list[dict] = []
    settings = BrokerSettings.from_url(broker.url, status_topic="test/cep")
    with TraceWriter.open(str(trace), UTC) as writer:
        runner = LiveRunner(loaded.catalog, settings, live.append, UTC,
                            report=lambda message: None, clock=clock, record=writer,
                            show_contexts=True, idle_wake=0.02)
        bus = BusClient(broker)
        thread = threading.Thread(target=runner.run, kwargs={"install_signals": False})
        thread.start()
        try:
            wait_until(runner.connection.connected.is_set, "cep listening")
            clock.now = T0 + 10
            bus.publish("zigbee2mqtt/button", "single")
            wait_until(lambda: runner.stats.events == 1, "the button's event")
            clock.now = T0 + 60  # the 2 s are over: the timer fires now or at the stop
        finally:
            runner.stop()
            thread.join(WAIT)
            bus.close()
        assert not thread.is_alive()
    assert [(o["kind"], o.get("rule"), o["ts"] - T0) for o in live] == [
        ("context-start", None, 0.0), ("event", "pressed", 10.0), ("event", "later", 12.0),
        ("publish", "later", 12.0)]
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert lines == [
        {"ts": "2027-01-15T08:00:00.000+00:00", "clock": "start"},
        {"ts": "2027-01-15T08:00:10.000+00:00", "topic": "zigbee2mqtt/button",
         "payload": "single"},
        {"ts": "2027-01-15T08:01:00.000+00:00", "clock": "stop"}]
    assert runner.stats.stopped_at == T0 + 60 and runner.stats.recorded == 1
    replayed: list[dict] = []
    stats = replay(loaded.catalog, str(trace), replayed.append, UTC, report=print,
                   show_contexts=True)
    assert replayed == live
    assert (stats.lines, stats.events, stats.bad_lines) == (3, 1, 0)


@pytest.mark.mqtt
def test_record_writes_the_start_and_the_end_of_its_duration(tmp_path, broker):
    """The duration is on the recorder's clock: it ends when the test moves the clock past
    it, not when a loaded machine happens to be slow; the marks and the message it took
    are in the trace."""
    clock = TestClock(T0)
    trace = tmp_path / "rec.jsonl"
    settings = BrokerSettings.from_url(broker.url, status_topic=None)
    ready: list[MqttConnection] = []
    result: list[RecordStats] = []

    def recording() -> None:
        with TraceWriter.open(str(trace), UTC) as writer:
            result.append(record(settings, ["#"], writer, report=lambda line: None,
                                 duration=60.0, clock=clock, install_signals=False,
                                 on_ready=ready.append))

    bus = BusClient(broker)
    thread = threading.Thread(target=recording, daemon=True)
    thread.start()
    try:
        wait_until(lambda: ready and ready[0].connected.is_set(), "the recorder listening")
        clock.now = T0 + 5
        bus.publish("a/b", "1")
        wait_until(lambda: trace.read_text().count("\n") == 2, "the message in the trace")
        clock.now = T0 + 90  # past the minute: the recorder ends by itself
        thread.join(WAIT)
        assert not thread.is_alive(), "the recording did not end with its duration"
    finally:
        clock.now += 10_000
        thread.join(WAIT)
        bus.close()
    assert result[0].messages == 1
    assert trace.read_text().splitlines() == [
        '{"ts": "2027-01-15T08:00:00.000+00:00", "clock": "start"}',
        '{"ts": "2027-01-15T08:00:05.000+00:00", "topic": "a/b", "payload": "1"}',
        '{"ts": "2027-01-15T08:01:00.000+00:00", "clock": "stop"}']


def replay_cli(tmp_path: Path, rules: Path, trace: Path, *extra: str
               ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "cep", "replay", str(rules), "--trace",
                           str(trace), *extra], cwd=tmp_path, capture_output=True, text=True,
                          timeout=WAIT)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.mqtt
@pytest.mark.slow  # cep run, cep record and cep replay as child processes
def test_replaying_a_run_recording_without_until_gives_the_live_output(tmp_path, broker):
    """The real clock: `cep run --record` with a timer that fires after the last message,
    stopped once it fired; `cep replay` of the recording, with no --until, writes exactly
    the live run's output lines.  `cep record` beside it writes both marks too."""
    rules = tmp_path / "quiet.epl"
    rules.write_text(QUIET_RULES)
    seen = tmp_path / "seen.jsonl"
    recorded = tmp_path / "recorded.jsonl"
    bus = BusClient(broker)
    recorder = CepProcess(["record", "--broker", broker.url, "--topic", "zigbee2mqtt/#",
                           "--out", str(recorded)], cwd=tmp_path)
    cep = CepProcess(["run", str(rules), "--broker", broker.url, "--contexts", "--record",
                      str(seen)], cwd=tmp_path)
    try:
        recorder.wait_stderr("listening on")
        cep.wait_stderr("listening on")
        bus.publish("zigbee2mqtt/button", "single")
        bus.wait_topic("home/later", b'{"after":"single"}')
        cep.wait_stdout('"kind": "publish"')
        wait_until(lambda: recorded.read_text().count("\n") >= 2, "the recorded message")
    finally:
        assert cep.stop() == 0
        assert recorder.stop() == 0
        bus.close()
    live = [line for line in cep.stdout if line.strip()]
    assert [json.loads(line)["kind"] for line in live] == [
        "context-start", "event", "event", "publish"]
    hint = cep.wait_stderr("cep: recorded 1 message into")
    assert hint.endswith("replaying it with these rules gives the same output lines")
    lines = [json.loads(line) for line in seen.read_text().splitlines()]
    assert [line.get("clock", line.get("topic")) for line in lines] == [
        "start", "zigbee2mqtt/button", "stop"]
    done = replay_cli(tmp_path, rules, seen, "--contexts")
    assert done.stdout.splitlines() == live
    assert ("3 lines: 1 message (1 with events), 2 clock marks, 0 bad lines; 1 event, "
            "0 bad messages, 4 outputs") in done.stderr
    # the recorder's own trace: both marks around the message, and the same lines (its
    # times are its own arrival times, a few milliseconds off cep's)
    lines = [json.loads(line) for line in recorded.read_text().splitlines()]
    assert [line.get("clock", line.get("topic")) for line in lines] == [
        "start", "zigbee2mqtt/button", "stop"]
    again = replay_cli(tmp_path, rules, recorded, "--contexts")
    assert [(o["kind"], o.get("rule"), o.get("attrs"))
            for o in map(json.loads, again.stdout.splitlines())] == \
        [(o["kind"], o.get("rule"), o.get("attrs")) for o in map(json.loads, live)]
