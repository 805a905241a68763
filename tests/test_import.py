"""`cep import casas|ordonez`: small samples in each format, bad lines reported as
FILE:LINE and skipped, time order, zones; the shared dataset files when present."""

import json
from datetime import datetime
from pathlib import Path

import pytest

from cep.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CASAS_FILE = SHARED / "casas" / "cil_tm000_multiday_absence.txt"
ORDONEZ_DIR = SHARED / "ordonez_uci_adl"


def run_import(capsys, *args) -> tuple[int, list[dict], list[str]]:
    status = main(["import", *map(str, args)])
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err.splitlines()


def compact(lines: list[dict]) -> list[str]:
    return [f"{line['ts']} {line['topic']} {line['payload']}" for line in lines]


# ---------------------------------------------------------------- CASAS

CASAS = (
    "2016-07-12 00:00:30.600670\tBedroomABed\tON\t\n"          # the shared file's layout
    "2016-07-12 00:00:31.7\tBedroomABed\tOFF\t\n"               # short fraction
    "2010-11-04 00:03:50.209589 M003 ON Sleeping begin\n"       # an earlier time, annotated
    "\n"                                                         # blank: skipped
    "2016-07-12 00:01:00 T101 21.5\n"                            # no fraction; a number
)


def test_casas_lines_become_messages_in_time_order(tmp_path, capsys):
    path = tmp_path / "home.txt"
    path.write_text(CASAS)
    status, lines, err = run_import(capsys, "casas", path, "--tz", "America/Los_Angeles")
    assert status == 0
    assert compact(lines) == [
        "2010-11-04T00:03:50.209-07:00 casas/M003 ON",
        "2016-07-12T00:00:30.600-07:00 casas/BedroomABed ON",
        "2016-07-12T00:00:31.700-07:00 casas/BedroomABed OFF",
        "2016-07-12T00:01:00.000-07:00 casas/T101 21.5"]
    assert err == [f"{path}: 4 lines, 4 messages, 0 bad lines, 1 line out of time order "
                   "(sorted)"]


def test_default_zone_is_utc_and_out_writes_a_file(tmp_path, capsys):
    path, out = tmp_path / "home.txt", tmp_path / "trace.jsonl"
    path.write_text("2016-07-12 00:00:30 D001 OPEN\n")
    assert run_import(capsys, "casas", path, "--out", out)[:2] == (0, [])
    assert out.read_text() == ('{"ts": "2016-07-12T00:00:30.000+00:00", '
                               '"topic": "casas/D001", "payload": "OPEN"}\n')


BAD_CASAS = [
    ("2016-07-12 00:00:30 M001", "expected `date time sensor value`, found 3 fields"),
    ("2016-07-12 25:00:30 M001 ON", "`2016-07-12 25:00:30` is not a date and time"),
    ("yesterday noon M001 ON", "`yesterday noon` is not a date and time"),
    ("2016-07-12 00:00:30 M+1 ON", "sensor name 'M+1' cannot be a topic level"),
    ("2016-07-12 00:00:30 a/b ON", "sensor name 'a/b' cannot be a topic level"),
    ("2011-11-28 02:27:59\t2011-11-28 10:18:11\tSleeping",
     "a second date and time where the sensor should be"),
]


@pytest.mark.parametrize("line,message", BAD_CASAS, ids=[m for _, m in BAD_CASAS])
def test_bad_casas_lines_are_reported_and_skipped(line, message, tmp_path, capsys):
    path = tmp_path / "home.txt"
    path.write_text(f"2016-07-12 00:00:01 M001 ON\n{line}\n2016-07-12 00:00:02 M001 OFF\n")
    status, lines, err = run_import(capsys, "casas", path)
    assert status == 0
    assert compact(lines) == ["2016-07-12T00:00:01.000+00:00 casas/M001 ON",
                              "2016-07-12T00:00:02.000+00:00 casas/M001 OFF"]
    assert err[0].startswith(f"{path}:2: {message}")
    assert err[1] == f"{path}: 3 lines, 2 messages, 1 bad line"


def test_a_line_that_is_not_utf8_is_a_bad_line(tmp_path, capsys):
    path = tmp_path / "home.txt"
    path.write_bytes(b"2016-07-12 00:00:01 M001 ON\n2016-07-12 00:00:02 M\xff01 ON\n")
    status, lines, err = run_import(capsys, "casas", path)
    assert (status, len(lines)) == (0, 1)
    assert err[0] == f"{path}:2: not UTF-8 text"


def test_a_file_with_no_good_line_is_refused(tmp_path, capsys):
    path = tmp_path / "home.txt"
    path.write_text("this is not\na CASAS file\n")
    status, lines, err = run_import(capsys, "casas", path)
    assert (status, lines) == (2, [])
    assert err[-1] == f"cep: error: no line of {path} is in the casas format; nothing written"


def test_a_file_in_another_format_shows_a_few_lines_and_keeps_the_old_out(tmp_path, capsys):
    path, out = tmp_path / "home.txt", tmp_path / "trace.jsonl"
    path.write_text("".join(f"2016-07-12 00:00:{n:02d} M001 ON\n" for n in range(12)))
    out.write_text("the previous trace\n")
    status, _, err = run_import(capsys, "ordonez", path, "--out", out)
    assert status == 2
    assert [line.split(": ")[0] for line in err[:5]] == [f"{path}:{n}" for n in range(1, 6)]
    assert err[5:] == ["... and 7 more bad lines",
                       f"{path}: 12 lines, 0 messages, 12 bad lines",
                       f"cep: error: no line of {path} is in the ordonez format; nothing written"]
    assert out.read_text() == "the previous trace\n"


@pytest.mark.parametrize("text", ["", "\n  \n\n"])
def test_a_file_without_data_lines_is_refused(text, tmp_path, capsys):
    path, out = tmp_path / "home.txt", tmp_path / "trace.jsonl"
    path.write_text(text)
    status, _, err = run_import(capsys, "casas", path, "--out", out)
    assert status == 2
    assert err[-1] == f"cep: error: {path} has no data lines; nothing written"
    assert not out.exists()


def test_a_folder_is_not_a_file(tmp_path, capsys):
    status, _, err = run_import(capsys, "casas", tmp_path)
    assert (status, err) == (2, [f"cep: error: cannot read {tmp_path}: it is a folder, not a file"])


def test_out_is_replaced_whole_with_the_usual_permissions(tmp_path, capsys):
    import os
    import stat

    path, out = tmp_path / "home.txt", tmp_path / "trace.jsonl"
    path.write_text("2016-07-12 00:00:30 D001 OPEN\n")
    out.write_text("an older, longer trace\n" * 10)
    assert run_import(capsys, "casas", path, "--out", out)[0] == 0
    assert out.read_text().count("\n") == 1
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home.txt", "trace.jsonl"]


@pytest.mark.parametrize("name,zone", [("casas", "America/Los_Angeles"),
                                       ("ordonez", "Europe/Madrid")])
def test_a_dataset_scenario_trace_is_the_import_of_its_sample(name, zone, capsys):
    folder = ROOT / "scenarios" / name
    status, lines, err = run_import(capsys, name, folder / "home.txt", "--tz", zone)
    assert status == 0 and " 0 bad lines" in err[-1]
    expected = [json.loads(line) for line in (folder / "trace.jsonl").read_text().splitlines()]
    assert lines == expected


# ---------------------------------------------------------------- Ordóñez

ORDONEZ = (
    "Start time          \tEnd time            \tLocation\tType\t\tPlace\n"
    "--------------------\t--------------------\t--------\t--------\t-----\n"
    "2011-11-28 02:27:59\t\t2011-11-28 10:18:11\t\tBed\t\tPressure\tBedroom\n"
    "2011-11-28 10:21:24\t\t2011-11-28 10:21:31\t\tCabinet\t\tMagnetic\tBathroom  \n"
    "2011-11-28 10:21:31\t\t2011-11-28 10:21:40\t\tCabinet\t\tMagnetic\tBathroom\n"   # back to back
    "2011-11-28 10:25:44\t2011-11-28 10:25:44\tToilet\tFlush\tBathroom\t\n"          # zero length
    "2011-11-28 10:18:11\t\t2011-11-28 10:20:00\t\tMaindoor\tMagnetic\tEntrance"     # earlier row
)


def test_ordonez_intervals_become_on_off_pairs_in_time_order(tmp_path, capsys):
    path = tmp_path / "OrdonezA_Sensors.txt"
    path.write_text(ORDONEZ)
    status, lines, err = run_import(capsys, "ordonez", path, "--tz", "Europe/Madrid")
    assert status == 0
    assert compact(lines) == [
        "2011-11-28T02:27:59.000+01:00 ordonez/Bed ON",
        "2011-11-28T10:18:11.000+01:00 ordonez/Bed OFF",        # an end before a start
        "2011-11-28T10:18:11.000+01:00 ordonez/Maindoor ON",
        "2011-11-28T10:20:00.000+01:00 ordonez/Maindoor OFF",
        "2011-11-28T10:21:24.000+01:00 ordonez/Cabinet ON",
        "2011-11-28T10:21:31.000+01:00 ordonez/Cabinet OFF",    # back to back: OFF, then ON
        "2011-11-28T10:21:31.000+01:00 ordonez/Cabinet ON",
        "2011-11-28T10:21:40.000+01:00 ordonez/Cabinet OFF",
        "2011-11-28T10:25:44.000+01:00 ordonez/Toilet ON",      # zero length: ON, then OFF
        "2011-11-28T10:25:44.000+01:00 ordonez/Toilet OFF"]
    assert err == [f"{path}: 7 lines, 10 messages, 0 bad lines, 1 line out of time order "
                   "(sorted)"]


BAD_ORDONEZ = [
    ("2011-11-28 02:27:59\t2011-11-28 10:18:11\tBed",
     "expected `start  end  Location  Type  Place` separated by tabs, found 3 fields"),
    ("2011-11-28 02:27:59\tlater\tBed\tPressure\tBedroom", "`later` is not a date and time"),
    ("2011-11-28 10:00:00\t2011-11-28 09:00:00\tBed\tPressure\tBedroom",
     "the interval ends (2011-11-28 09:00:00) before it starts (2011-11-28 10:00:00)"),
    ("2011-11-28 10:00:00\t2011-11-28 11:00:00\tSpare/TV\tPIR\tLiving",
     "location 'Spare/TV' cannot be a topic level"),
]


@pytest.mark.parametrize("line,message", BAD_ORDONEZ, ids=[m[:40] for _, m in BAD_ORDONEZ])
def test_bad_ordonez_rows_are_reported_and_skipped(line, message, tmp_path, capsys):
    path = tmp_path / "sensors.txt"
    path.write_text(ORDONEZ.splitlines()[2] + "\n" + line + "\n")
    status, lines, err = run_import(capsys, "ordonez", path)
    assert (status, len(lines)) == (0, 2)
    assert err[0].startswith(f"{path}:2: {message}")
    assert err[1] == f"{path}: 2 lines, 2 messages, 1 bad line"


def test_an_activity_label_file_is_refused(tmp_path, capsys):
    path = tmp_path / "OrdonezA_ADLs.txt"
    path.write_text("Start time\t\tEnd time\t\tActivity\n---\t---\t---\n"
                    "2011-11-28 02:27:59\t\t2011-11-28 10:18:11\t\tSleeping\n")
    status, lines, err = run_import(capsys, "ordonez", path)
    assert (status, lines) == (2, [])
    assert err == [f"cep: error: {path}:1: this is an activity-label file (start, end, "
                   "Activity), not sensor events: import the *_Sensors.txt file"]


# ---------------------------------------------------------------- usage

@pytest.mark.parametrize("args,message", [
    (["casas", "/nonexistent/file.txt"], "cannot read /nonexistent/file.txt: no such file"),
    (["casas", __file__, "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
])
def test_usage_problems_exit_2(args, message, capsys):
    assert main(["import", *args]) == 2
    assert message in capsys.readouterr().err


def test_unknown_format_is_bad_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "csv", __file__])
    assert exit_info.value.code == 2


# ---------------------------------------------------------------- the shared files

def replay_summary(capsys, trace: Path, *rules: Path, tz: str) -> str:
    assert main(["replay", *map(str, rules), "--trace", str(trace), "--tz", tz]) == 0
    return capsys.readouterr().err.splitlines()[-1]


@pytest.mark.slow  # the shared dataset
@pytest.mark.skipif(not CASAS_FILE.exists(), reason="shared CASAS file not present")
def test_shared_casas_file_imports_and_replays_without_a_bad_line(tmp_path, capsys):
    trace = tmp_path / "casas.jsonl"
    status, _, err = run_import(capsys, "casas", CASAS_FILE, "--tz", "America/Los_Angeles",
                                "--out", trace)
    assert status == 0
    assert err == [f"{CASAS_FILE}: 21968 lines, 21968 messages, 0 bad lines"]
    summary = replay_summary(capsys, trace, ROOT / "rules" / "casas.epl",
                             tz="America/Los_Angeles")
    assert ("21968 lines: 21968 messages (21968 with events), 0 bad lines; 21968 events, "
            "0 bad messages") in summary


@pytest.mark.slow  # the shared dataset
@pytest.mark.skipif(not CASAS_FILE.exists(), reason="shared CASAS file not present")
def test_worked_example_on_the_shared_casas_file(tmp_path, capsys):
    """What docs/datasets.md says the CASAS rules find in the shared file."""
    trace = tmp_path / "casas.jsonl"
    run_import(capsys, "casas", CASAS_FILE, "--tz", "America/Los_Angeles", "--out", trace)
    assert main(["replay", str(ROOT / "rules" / "casas.epl"), "--trace", str(trace),
                 "--tz", "America/Los_Angeles"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    found = [(e["ts"][:19], e["rule"]) for e in events if e["kind"] == "event"]
    by_rule = {}
    for ts, rule in found:
        by_rule.setdefault(rule, []).append(ts)
    assert by_rule["casas_away"] == ["2016-07-13T09:21:10", "2016-07-17T11:19:39"]
    assert by_rule["casas_back_home"] == ["2016-07-16T18:54:36", "2016-07-17T17:31:46"]
    assert "casas_bathroom_too_long" not in by_rule
    assert len(by_rule["casas_left_bed"]) == 25
    nights = sorted({ts[:10] for ts in by_rule["casas_left_bed"]})
    assert nights == ["2016-07-12", "2016-07-13", "2016-07-16", "2016-07-17", "2016-07-18"]


@pytest.mark.slow  # the shared dataset
@pytest.mark.skipif(not CASAS_FILE.exists(), reason="shared CASAS file not present")
def test_watching_every_bathroom_gives_the_false_alert_the_docs_describe(tmp_path, capsys):
    trace = tmp_path / "casas.jsonl"
    run_import(capsys, "casas", CASAS_FILE, "--tz", "America/Los_Angeles", "--out", trace)
    variant = tmp_path / "variant.epl"
    variant.write_text((ROOT / "rules" / "casas.epl").read_text()
                       .replace("'BathroomA%'", "'Bathroom%'"))
    assert main(["replay", str(variant), "--trace", str(trace),
                 "--tz", "America/Los_Angeles"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    alerts = [(e["ts"], e["attrs"]) for e in events
              if e["kind"] == "event" and e["rule"] == "casas_bathroom_too_long"]
    assert alerts == [("2016-07-15T01:33:49.023-07:00", {"last_seen": "BathroomBArea"})]


@pytest.mark.slow  # the shared dataset
@pytest.mark.skipif(not ORDONEZ_DIR.exists(), reason="shared Ordóñez files not present")
@pytest.mark.parametrize("home,rows", [("A", 409), ("B", 2334)])
def test_shared_ordonez_files_import_and_replay_without_a_bad_line(home, rows, tmp_path,
                                                                    capsys):
    source = ORDONEZ_DIR / f"Ordonez{home}_Sensors.txt"
    trace = tmp_path / "ordonez.jsonl"
    status, _, err = run_import(capsys, "ordonez", source, "--tz", "Europe/Madrid",
                                "--out", trace)
    assert status == 0
    assert err[-1].startswith(f"{source}: {rows + 2} lines, {2 * rows} messages, 0 bad lines")
    rules = tmp_path / "ordonez.epl"
    rules.write_text("CREATE EVENT Sensor (location STRING, state STRING) "
                     "FROM TOPIC 'ordonez/{location}' PAYLOAD AS state;\n"
                     "@name('bed') SELECT state FROM Sensor(location = 'Bed');\n")
    summary = replay_summary(capsys, trace, rules, tz="Europe/Madrid")
    assert (f"{2 * rows} lines: {2 * rows} messages ({2 * rows} with events), 0 bad lines; "
            f"{2 * rows} events, 0 bad messages") in summary


def ordonez_labels(home: str, activity: str) -> list[tuple[datetime, datetime]]:
    """The labelled intervals of one activity (the last non-empty field is the label)."""
    rows = (ORDONEZ_DIR / f"Ordonez{home}_ADLs.txt").read_text().splitlines()[2:]
    spans = []
    for row in rows:
        fields = [field.strip() for field in row.split("\t") if field.strip()]
        if fields[-1] == activity:
            spans.append((datetime.fromisoformat(fields[0]), datetime.fromisoformat(fields[1])))
    return spans


@pytest.mark.slow  # the shared dataset
@pytest.mark.skipif(not ORDONEZ_DIR.exists(), reason="shared Ordóñez files not present")
@pytest.mark.parametrize("home,found,inside,night", [
    # home A: every one of the 14 labelled absences, nothing else; one wake-up before 08:00
    ("A", 14, 14, ["2011-12-12T07:22:21 ordonez_up_at_night"]),
    # home B: 36 of 38 (the two missed last 3 and 8 minutes), one door opening before a
    # nap with no sensor on; seven times out of bed at night, twice for 20 minutes or more
    ("B", 37, 36, ["2012-11-14T05:11:15 ordonez_up_at_night",
                   "2012-11-15T00:39:00 ordonez_up_at_night",
                   "2012-11-15T00:42:52 ordonez_up_at_night",
                   "2012-11-15T01:02:52 ordonez_not_back_in_bed",
                   "2012-11-15T07:44:47 ordonez_up_at_night",
                   "2012-11-22T06:23:16 ordonez_up_at_night",
                   "2012-11-22T06:43:16 ordonez_not_back_in_bed",
                   "2012-11-29T00:58:22 ordonez_up_at_night",
                   "2012-11-30T07:39:54 ordonez_up_at_night"]),
])
def test_ordonez_rules_on_the_shared_homes(home, found, inside, night, tmp_path, capsys):
    """The worked example of docs/datasets.md: rules/ordonez.epl against the labels."""
    trace = tmp_path / "ordonez.jsonl"
    run_import(capsys, "ordonez", ORDONEZ_DIR / f"Ordonez{home}_Sensors.txt",
               "--tz", "Europe/Madrid", "--out", trace)
    assert main(["replay", str(ROOT / "rules" / "ordonez.epl"), "--trace", str(trace),
                 "--tz", "Europe/Madrid"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    events = [event for event in events if event["kind"] == "event"]
    away = [datetime.fromisoformat(e["ts"]).replace(tzinfo=None) for e in events
            if e["rule"] == "ordonez_away"]
    back = [e for e in events if e["rule"] == "ordonez_back_home"]
    leaving = ordonez_labels(home, "Leaving")
    assert len(away) == len(back) == found
    assert sum(any(start <= at <= end for at in away) for start, end in leaving) == inside
    assert [f"{e['ts'][:19]} {e['rule']}" for e in events
            if e["rule"] not in ("ordonez_away", "ordonez_back_home")] == night
