"""`cep test`: the shipped scenarios pass, every rule file is clean and has a scenario,
broken expectations fail with a readable diff, and bad scenario files are refused."""

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from cep.cli import main
from cep.tools.testing.scenario import find_scenarios, load_scenario

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((ROOT / "rules").glob("*.epl"))


def test_every_shipped_scenario_passes(capsys):
    assert main(["test", str(ROOT / "scenarios")]) == 0
    out, err = capsys.readouterr()
    scenarios = find_scenarios([str(ROOT / "scenarios")])
    assert len(scenarios) >= 6
    assert out.count("PASS ") == len(scenarios)
    assert err.strip().endswith(f"{len(scenarios)} scenarios: {len(scenarios)} passed, 0 failed")


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_rule_file_checks_without_errors_or_warnings(path, capsys):
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().endswith(": 0 errors, 0 warnings")


def test_all_rule_files_check_together(capsys):
    assert main(["check", str(ROOT / "rules")]) == 0
    assert capsys.readouterr().err.strip().endswith(": 0 errors, 0 warnings")


def test_every_rule_file_has_a_scenario():
    used = set()
    for path in find_scenarios([str(ROOT / "scenarios")]):
        used.update(p.resolve() for p in load_scenario(path).rules)
    assert [p.name for p in RULE_FILES if p.resolve() not in used] == []


# ---------------------------------------------------------------- broken expectations

def copy_scenario(tmp_path: Path, name: str = "leave-home") -> Path:
    """A copy of a shipped scenario whose rules path still points at rules/."""
    folder = tmp_path / name
    shutil.copytree(ROOT / "scenarios" / name, folder)
    toml = folder / "scenario.toml"
    toml.write_text(toml.read_text().replace("../../rules", str(ROOT / "rules")))
    return folder


def edit_expected(folder: Path, edit) -> None:
    path = folder / "expected.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    edit(lines)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def run_test(capsys, *paths) -> tuple[int, list[str], str]:
    status = main(["test", *map(str, paths)])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def _shift(lines):
    lines[0]["ts"] = "2026-03-14T08:00:40.000+08:00"


def _drop(lines):
    del lines[4]


def _payload(lines):
    lines[11]["payload"]["brightness"] = 200


def _extra(lines):
    lines.append(dict(lines[-1], ts="2026-03-14T23:59:00.000+08:00"))


def _float(lines):
    lines[0]["attrs"] = {"presence": 1.0}


BROKEN = {
    "a time that differs": (_shift, [
        "  different   2026-03-14T08:00:40.000+08:00  event leave_home -> LeftHome "
        '{"presence": "left"}   [{dir}/expected.jsonl:1]',
        '                ts: expected "2026-03-14T08:00:40.000+08:00", '
        'got "2026-03-14T08:00:41.000+08:00"']),
    "an output line the expectations lack": (_drop, [
        "  unexpected  2026-03-14T18:31:04.000+08:00  publish cmnd/hall_heater/POWER \"ON\" "
        "(rule come_home)"]),
    "a payload field": (_payload, [
        "  different   2026-03-14T23:01:03.000+08:00  publish zigbee2mqtt/hall_light/set "
        '{"state": "ON", "brightness": 200} (rule come_home)   [{dir}/expected.jsonl:12]',
        "                payload.brightness: expected 200, got 180"]),
    "an expected line never produced": (_extra, [
        "  missing     2026-03-14T23:59:00.000+08:00  publish zigbee2mqtt/hall_light/set "
        '{"state": "ON", "brightness": 180} (rule come_home)   [{dir}/expected.jsonl:13]']),
    "a value of another type": (_float, [
        "  different   2026-03-14T08:00:41.000+08:00  event leave_home -> LeftHome "
        '{"presence": 1.0}   [{dir}/expected.jsonl:1]',
        '                attrs.presence: expected 1.0, got "left"']),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_expectation_fails_with_a_readable_diff(case, tmp_path, capsys):
    edit, diff = BROKEN[case]
    folder = copy_scenario(tmp_path)
    edit_expected(folder, edit)
    status, out, err = run_test(capsys, folder)
    assert status == 1
    count = len([line for line in diff if not line.startswith(" " * 16)])
    assert out[0].startswith(f"FAIL {folder}/scenario.toml: {count} difference")
    assert out[1:] == [line.replace("{dir}", str(folder)) for line in diff]
    assert "0 passed, 1 failed" in err


def test_a_failure_does_not_hide_the_other_scenarios(tmp_path, capsys):
    broken = copy_scenario(tmp_path, "leave-home")
    edit_expected(broken, _drop)
    good = copy_scenario(tmp_path, "idle-room")
    status, out, err = run_test(capsys, broken, good)
    assert status == 1
    assert out[-1] == f"PASS {good}/scenario.toml (7 lines)"
    assert err.strip() == "2 scenarios: 1 passed, 1 failed"


def test_quiet_prints_only_failures(tmp_path, capsys):
    good = copy_scenario(tmp_path, "idle-room")
    assert run_test(capsys, "-q", good)[:2] == (0, [])


def test_update_rewrites_the_expected_file(tmp_path, capsys):
    folder = copy_scenario(tmp_path)
    original = (folder / "expected.jsonl").read_text()
    edit_expected(folder, _drop)
    status, out, _ = run_test(capsys, "--update", folder)
    assert status == 0 and out == [f"UPDATED {folder}/scenario.toml (12 lines)"]
    assert (folder / "expected.jsonl").read_text() == original
    assert run_test(capsys, folder)[0] == 0


# ---------------------------------------------------------------- the format

RULES = """
SET TIMEZONE 'UTC';
CREATE EVENT Door (state STRING) FROM TOPIC 'door' PAYLOAD AS state;
@name('opened') SELECT state FROM Door(state = 'ON');
"""
TRACE = """\
{"ts": "2026-01-01T10:00:00Z", "topic": "door", "payload": "ON"}
not json
{"ts": "2026-01-01T10:00:05Z", "topic": "door", "payload": "OFF"}
"""
INLINE = """\
rules = "rules.epl"
trace = "trace.jsonl"
bad_lines = 1
expected_output = '''
{"ts": "2026-01-01T10:00:00.000+00:00", "kind": "event", "rule": "opened", "type": "opened", "context": null, "key": null, "attrs": {"state": "ON"}}
'''
"""


def write_case(tmp_path: Path, toml: str) -> Path:
    (tmp_path / "rules.epl").write_text(RULES)
    (tmp_path / "trace.jsonl").write_text(TRACE)
    path = tmp_path / "case.toml"
    path.write_text(textwrap.dedent(toml))
    return path


def test_inline_expected_output_and_an_expected_bad_line(tmp_path, capsys):
    path = write_case(tmp_path, INLINE)
    assert run_test(capsys, path)[:2] == (0, [f"PASS {path} (1 line)"])


def test_unexpected_bad_lines_fail_and_show_what_the_replay_said(tmp_path, capsys):
    path = write_case(tmp_path, INLINE.replace("bad_lines = 1\n", ""))
    status, out, _ = run_test(capsys, path)
    assert status == 1
    assert out[1:] == ["  the trace gave 1 bad line, the scenario expects 0",
                       "  the replay said:",
                       f"    {tmp_path}/trace.jsonl:2: not valid JSON"]


def test_inline_lines_are_located_in_the_scenario_file(tmp_path, capsys):
    path = write_case(tmp_path, INLINE.replace('"ON"}}', '"OFF"}}'))
    status, out, _ = run_test(capsys, path)
    assert status == 1
    assert out[1].endswith(f"[{path}:5]")
    assert out[2] == '                attrs.state: expected "OFF", got "ON"'


def test_rule_errors_fail_the_scenario(tmp_path, capsys):
    path = write_case(tmp_path, INLINE)
    (tmp_path / "rules.epl").write_text(RULES.replace("state = 'ON'", "stat = 'ON'"))
    status, out, _ = run_test(capsys, path)
    assert status == 1
    assert out[0] == f"FAIL {path}: the rules have 1 error; nothing was run"
    assert any("unknown name `stat`" in line for line in out[1:])
    assert not any("nothing was run" in line for line in out[1:])


EMITS_TWO = RULES + "@name('closed') SELECT state FROM Door(state = 'OFF');\n"
OPENED = ('{"ts": "2026-01-01T10:00:00.000+00:00", "kind": "event", "rule": "opened", '
          '"type": "opened", "context": null, "key": null, "attrs": {"state": "ON"}}')
CLOSED = ('{"ts": "2026-01-01T10:00:05.000+00:00", "kind": "event", "rule": "closed", '
          '"type": "closed", "context": null, "key": null, "attrs": {"state": "OFF"}}')


def test_a_line_in_the_wrong_place_is_one_moved_line(tmp_path, capsys):
    path = write_case(tmp_path, f"rules = 'rules.epl'\ntrace = 'trace.jsonl'\nbad_lines = 1\n"
                                f"expected_output = \'\'\'\n{CLOSED}\n{OPENED}\n\'\'\'\n")
    (tmp_path / "rules.epl").write_text(EMITS_TWO)
    status, out, _ = run_test(capsys, path)
    assert status == 1
    assert out[0] == f"FAIL {path}: 1 difference (2 lines expected, 2 produced)"
    assert out[1].startswith("  moved       2026-01-01T10:00:00.000+00:00  event opened")
    assert out[1].endswith(f"[{path}:6] produced as output line 1")
    assert len(out) == 2


def test_update_creates_the_expected_file_only_when_it_can_fill_it(tmp_path, capsys):
    path = write_case(tmp_path, "rules = 'rules.epl'\ntrace = 'trace.jsonl'\n"
                                "expected = 'out/expected.jsonl'\nbad_lines = 2\n")
    expected = tmp_path / "out" / "expected.jsonl"
    status, out, err = run_test(capsys, "--update", path)
    assert status == 1 and not expected.exists() and not expected.parent.exists()
    assert f"{path}: not updated: only differing output lines are written" in err
    assert out[0] == f"FAIL {path}: 1 difference (0 lines expected, 1 produced); 1 problem"
    assert out[2] == "  the trace gave 1 bad line, the scenario expects 2"
    path.write_text(path.read_text().replace("bad_lines = 2", "bad_lines = 1"))
    status, out, _ = run_test(capsys, "--update", path)
    assert (status, out) == (0, [f"UPDATED {path} (1 line)"])
    assert expected.read_text() == OPENED + "\n"


LATER = ('{"ts": "2026-01-01T10:01:05.000+00:00", "kind": "event", "rule": "later", '
         '"type": "later", "context": null, "key": null, "attrs": {"s": "a minute after"}}')


@pytest.mark.parametrize("until", ["2026-01-01T10:01:05Z", "2026-01-01T10:01:05+00:00",
                                   "'2026-01-01T10:01:05Z'", "1767261665", "'1767261665'",
                                   "2026-01-01T10:01:05"])
def test_until_as_toml_datetime_number_or_text(until, tmp_path, capsys):
    """The clock is moved on to `until` (after the trace's last line at 10:00:05), so the
    timer due at 10:01:05 fires, whichever way `until` is written."""
    path = write_case(tmp_path, f"rules = 'rules.epl'\ntrace = 'trace.jsonl'\nuntil = {until}\n"
                                f"tz = 'UTC'\nbad_lines = 1\n"
                                f"expected_output = \'\'\'\n{OPENED}\n{LATER}\n\'\'\'\n")
    (tmp_path / "rules.epl").write_text(
        RULES + "@name('later') SELECT 'a minute after' AS s\n"
                "FROM PATTERN [ Door(state = 'OFF') -> timer:interval(1 min) ];\n")
    status, out, _ = run_test(capsys, path)
    assert (status, out) == (0, [f"PASS {path} (2 lines)"])
    early = path.read_text().replace("10:01:05", "10:01:04").replace("1767261665", "1767261664")
    path.write_text(early)
    assert run_test(capsys, path)[0] == 1


BAD_FILES = {
    "unknown key": ("rules = 'rules.epl'\ntrace = 'trace.jsonl'\nexpect = 'x'\n",
                    "unknown key `expect` (known keys: "),
    "no rules": ("trace = 'trace.jsonl'\nexpected_output = ''\n", "missing `rules`"),
    "no trace": ("rules = 'rules.epl'\nexpected_output = ''\n", "missing `trace`"),
    "both expectations": ("rules = 'rules.epl'\ntrace = 'trace.jsonl'\nexpected = 'e'\n"
                          "expected_output = ''\n", "give exactly one of `expected`"),
    "wrong kind": ("rules = 'rules.epl'\ntrace = 'trace.jsonl'\nexpected_output = ''\n"
                   "contexts = 'yes'\n", "`contexts` has the wrong kind of value"),
    "not TOML": ("rules = \n", "not valid TOML"),
    "expected line not JSON": ("rules = 'rules.epl'\ntrace = 'trace.jsonl'\n"
                               "expected_output = '''\n{nope\n'''\n",
                               "case.toml:4: expected output line is not valid JSON"),
    "missing trace file": ("rules = 'rules.epl'\ntrace = 'gone.jsonl'\nexpected_output = ''\n",
                           "cannot read trace"),
    "missing expected file": ("rules = 'rules.epl'\ntrace = 'trace.jsonl'\n"
                              "expected = 'gone.jsonl'\n", "cannot read expected output"),
    "unknown zone": ("rules = 'rules.epl'\ntrace = 'trace.jsonl'\ntz = 'Mars/Olympus'\n"
                     "expected_output = ''\n", "unknown time zone 'Mars/Olympus'"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_unusable_scenario_files_exit_2(case, tmp_path, capsys):
    toml, message = BAD_FILES[case]
    path = write_case(tmp_path, toml)
    status, out, err = run_test(capsys, path)
    assert status == 2
    assert out == []
    assert err.startswith(f"ERROR {path}") and message in err


def test_no_scenarios_found_is_bad_usage(tmp_path, capsys):
    assert main(["test", str(tmp_path)]) == 2
    assert "no scenario files found" in capsys.readouterr().err
