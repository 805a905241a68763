"""What a new user meets in the first hour: `cep` alone lists the commands, summaries say
`1 line` (not `1 lines`) and their counts add up, stdin has one name, `cep test --update`
says what it did, `--view` without `--out` says where the output lines went, and the
README says what needs mosquitto. Exact outputs."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cep.adapters.live import LiveStats, RecordStats
from cep.adapters.replay import STDIN_NAME, ReplayStats
from cep.cli import main
from cep.cli.common import view_only_notice
from cep.language.diagnostics import plural
from cep.tools.testing.runner import Totals, run_scenarios

ROOT = Path(__file__).resolve().parent.parent
TIMING = re.compile(r" in \d+\.\d+ s \([\d,]+ events/s\)$")

COMMANDS = """\
commands:
  check       parse and check rule files; print every error and warning
  replay      replay a recorded trace through the rules, in event time
  run         run the rules live against an MQTT broker
  record      record bus traffic into a trace file
  test        run scenarios (rules + trace + expected output) and show what differs
  import      turn a public smart-home dataset file into a trace
  graph       draw the event processing network and each rule's state machine
  cluster     set up and watch a NATS JetStream cluster of cep workers
  worker      run homes from a NATS JetStream cluster
"""
HELP = f"""\
usage: cep [-h] [--version] [--debug] COMMAND ...

Complex event processing for smart homes, fed by MQTT.

options:
  -h, --help  show this help message and exit
  --version   show program's version number and exit
  --debug     on an internal error, also print the Python traceback

{COMMANDS}
`cep COMMAND --help` shows a command's options; docs/cli.md describes them all.
"""


# ---------------------------------------------------------------- 1. `cep` alone


@pytest.mark.parametrize("argv", [[], ["--debug"]], ids=["cep", "cep --debug"])
def test_cep_without_a_command_lists_the_commands_and_exits_2(argv, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == HELP + "cep: error: no command given\n"


def test_cep_help_lists_each_command_on_one_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal: still one line a command
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == HELP


# ---------------------------------------------------------------- 2. plurals

DOOR_RULES = """\
SET TIMEZONE 'UTC';
CREATE EVENT Door (state STRING) FROM TOPIC 'door' PAYLOAD AS state;
CREATE EVENT Temp (value FLOAT) FROM TOPIC 'temp';
@name('opened') SELECT state FROM Door(state = 'ON');
"""


def at(second: int) -> str:
    return f"2026-01-01T10:{second // 60:02d}:{second % 60:02d}Z"


def door(second: int) -> str:
    return json.dumps({"ts": at(second), "topic": "door", "payload": "ON"})


def replay_lines(tmp_path: Path, capsys, lines: list[str]) -> list[str]:
    (tmp_path / "rules.epl").write_text(DOOR_RULES)
    (tmp_path / "t.jsonl").write_text("".join(line + "\n" for line in lines))
    assert main(["replay", "rules.epl", "--trace", "t.jsonl"]) == 0
    return [TIMING.sub("", line) for line in capsys.readouterr().err.splitlines()]


def test_plural():
    assert [plural(n, "line") for n in (0, 1, 2)] == ["0 lines", "1 line", "2 lines"]
    assert plural(1, "value written as null", "values written as null") == \
        "1 value written as null"
    assert plural(3, "value written as null", "values written as null") == \
        "3 values written as null"


def test_a_one_line_replay_says_one_of_each(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = replay_lines(tmp_path, capsys, [door(0)])
    assert err == ["t.jsonl: 1 line: 1 message (1 with events), 0 bad lines; 1 event, "
                   "0 bad messages, 1 output"]


def test_one_bad_message_and_one_bad_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = replay_lines(tmp_path, capsys, [
        door(0), "not json", json.dumps({"ts": at(1), "topic": "temp",
                                         "payload": {"value": "hot"}})])
    assert err == ["t.jsonl:2: not valid JSON",
                   't.jsonl:3: bad message on temp: Temp.value: "hot" is not a FLOAT',
                   "t.jsonl: 3 lines: 2 messages (1 with events, 1 bad), 1 bad line; "
                   "1 event, 1 bad message, 1 output"]


def test_the_live_summary_says_one_of_each():
    stats = LiveStats(messages=1, events=1, bad_messages=1, unmatched=1, outputs=1,
                      actions=1, reconnects=1, inbox_peak=1)
    assert stats.summary(1.0) == (
        "live: 1 message (1.0/s), 1 event, 0 retained ignored, 1 bad message, 1 unmatched, "
        "1 output, 1 action published (0 dropped), 1 reconnect, inbox peak 1 of 10,000, "
        "in 1.0 s")
    assert LiveStats(messages=2, events=2, outputs=2, actions=2, reconnects=2).summary(
        2.0) == ("live: 2 messages (1.0/s), 2 events, 0 retained ignored, 0 bad messages, "
                 "0 unmatched, 2 outputs, 2 actions published (0 dropped), 2 reconnects, "
                 "inbox peak 0 of 10,000, in 2.0 s")
    assert RecordStats(messages=1).summary("r.jsonl", 1.0) == (
        "r.jsonl: recorded 1 message in 1.0 s (0 retained ignored, inbox peak 0)")


def test_rules_with_one_error_say_1_error(tmp_path, capsys):
    rules = tmp_path / "bad.epl"
    rules.write_text("CREATE EVENT A (v FLOAT) FROM TOPIC 'a';\n@name('x') SELECT w FROM A;\n")
    (tmp_path / "t.jsonl").write_text("")
    assert main(["replay", str(rules), "--trace", str(tmp_path / "t.jsonl")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "cep: error: the rules have 1 error; nothing was run"


# ---------------------------------------------------------------- 3. the counts add up


def test_the_replay_summary_adds_up_to_the_lines_of_the_trace(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = [json.dumps({"ts": at(0), "clock": "start"})]          # 1 clock mark
    lines += [door(second) for second in range(1, 26)]              # 25 with events
    lines += [json.dumps({"ts": at(30), "topic": "garden/rain", "payload": 0})] * 2
    lines.append(json.dumps({"ts": at(31), "topic": "temp", "payload": {"value": "hot"}}))
    lines += ["oops", "[1]", '{"topic": "door"}', '{"ts": "later", "topic": "door"}',
              json.dumps({"ts": at(0), "topic": "door", "payload": "ON"}),
              json.dumps({"ts": at(32), "clock": "pause"})]       # 6 bad lines
    lines.append("")                                                # 1 blank
    lines.append(json.dumps({"ts": at(40), "clock": "stop"}))      # 2 clock marks
    lines += [door(41), door(42)]                                   # 2 after the stop mark
    assert len(lines) == 39
    err = replay_lines(tmp_path, capsys, lines)
    assert err[-1] == (
        "t.jsonl: 39 lines: 28 messages (25 with events, 2 unmatched, 1 bad), 2 clock marks, "
        "6 bad lines, 1 blank, 2 skipped after the stop mark; 25 events, 1 bad message, "
        "25 outputs")
    assert 28 + 2 + 6 + 1 + 2 == 39 and 25 + 2 + 1 == 28


def test_replay_stats_parts_add_up():
    stats = ReplayStats(total_lines=10, event_lines=4, unmatched=1, bad_message_lines=1,
                        clock_marks=1, bad_lines=2, blank_lines=1, events=5, outputs=1)
    assert stats.messages == 6
    assert stats.messages + stats.clock_marks + stats.bad_lines + stats.blank_lines \
        + stats.after_stop == stats.total_lines
    assert TIMING.sub("", stats.summary("t.jsonl")) == (
        "t.jsonl: 10 lines: 6 messages (4 with events, 1 unmatched, 1 bad), 1 clock mark, "
        "2 bad lines, 1 blank; 5 events, 0 bad messages, 1 output")


# ---------------------------------------------------------------- 4. one name for stdin


def test_stdin_has_one_name_in_reports_and_the_summary(tmp_path):
    (tmp_path / "rules.epl").write_text(DOOR_RULES)
    done = subprocess.run([sys.executable, "-m", "cep", "replay", "rules.epl", "--trace", "-"],
                          cwd=tmp_path, input=f"{door(0)}\nnot json\n{door(1)}\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert STDIN_NAME == "<stdin>"
    assert [TIMING.sub("", line) for line in done.stderr.splitlines()] == [
        "<stdin>:2: not valid JSON",
        "<stdin>: 3 lines: 2 messages (2 with events), 1 bad line; 2 events, 0 bad messages, "
        "2 outputs"]


# ---------------------------------------------------------------- 5. cep test --update


def broken_scenario(tmp_path: Path) -> Path:
    """A copy of the idle-room scenario with the last expected line dropped."""
    folder = tmp_path / "idle-room"
    shutil.copytree(ROOT / "scenarios" / "idle-room", folder)
    toml = folder / "scenario.toml"
    toml.write_text(toml.read_text().replace("../../rules", str(ROOT / "rules")))
    expected = folder / "expected.jsonl"
    expected.write_text("".join(expected.read_text().splitlines(keepends=True)[:-1]))
    return toml


def test_the_test_summary_says_what_update_did():
    assert Totals(updated=1, update=True).summary() == "1 scenario: 1 updated, 0 passed, 0 failed"
    assert Totals(passed=2, update=True).summary() == "2 scenarios: 0 updated, 2 passed, 0 failed"
    assert Totals(passed=1).summary() == "1 scenario: 1 passed, 0 failed"
    assert Totals(passed=1, failed=1, unusable=1).summary() == \
        "3 scenarios: 1 passed, 1 failed, 1 could not be run"


def test_run_scenarios_counts_an_update_as_updated(tmp_path):
    toml = broken_scenario(tmp_path)
    out: list[str] = []
    totals = run_scenarios([toml], out.append, out.append, update=True)
    assert out == [f"UPDATED {toml} (7 lines)"]
    assert totals.summary() == "1 scenario: 1 updated, 0 passed, 0 failed"
    again = run_scenarios([toml], out.append, out.append, update=True)
    assert again.summary() == "1 scenario: 0 updated, 1 passed, 0 failed"


def test_cep_test_update_says_updated(tmp_path, capsys):
    toml = broken_scenario(tmp_path)
    assert main(["test", "--update", str(toml)]) == 0
    out, err = capsys.readouterr()
    assert out == f"UPDATED {toml} (7 lines)\n"
    assert err == "1 scenario: 1 updated, 0 passed, 0 failed\n"


# ---------------------------------------------------------------- 6. --view without --out


def test_view_only_notice():
    assert view_only_notice(0) is None
    assert view_only_notice(1) == \
        "cep: 1 output line was shown in the view only; write it with --out FILE"
    assert view_only_notice(17) == \
        "cep: 17 output lines were shown in the view only; write them with --out FILE"


def test_replay_view_without_out_says_the_outputs_were_only_shown(monkeypatch, capsys):
    from rich.console import Console

    import cep.tools.view.app

    screen = Console(file=io.StringIO(), width=80, height=24, color_system=None)
    monkeypatch.setattr(cep.tools.view.app, "terminal_console", lambda: screen)
    night = ROOT / "scenarios" / "night-context"
    assert main(["replay", str(ROOT / "rules" / "night.epl"), "--trace",
                 str(night / "trace.jsonl"), "--contexts", "--until",
                 "2026-11-22T08:00:00+08:00", "--view"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[-1] == \
        "cep: 17 output lines were shown in the view only; write them with --out FILE"


# ---------------------------------------------------------------- 7. what needs mosquitto


def test_the_readme_says_what_needs_mosquitto():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`cep run`, `cep record` and the live tests need an MQTT broker" in readme
    assert "mosquitto" in readme and "apt-get" in readme
