"""The command line: exit codes, where output goes, diagnostics as text and as data."""

import json

from cep.cli import main


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = "CREATE EVENT A (x INT) FROM TOPIC 'a';\n@name('r') SELECT x FROM A(x > 1);\n"
BAD = "CREATE EVENT A (x INT) FROM TOPIC 'a';\nSELECT y FROM A;\nSELECT z FROM B;\n"


def test_check_ok_exits_0(tmp_path, capsys):
    assert main(["check", write(tmp_path, "good.epl", GOOD)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "1 file, 1 rule: 0 errors, 0 warnings" in captured.err


def test_check_reports_every_error_with_caret_and_exits_1(tmp_path, capsys):
    path = write(tmp_path, "bad.epl", BAD)
    assert main(["check", path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{path}:2:8: error: unknown name `y`: event type A has no attribute `y`",
        "SELECT y FROM A;",
        "       ^",
        f"{path}:3:15: error: unknown event type B: declare it with CREATE EVENT or produce it "
        "with INSERT INTO",
        "SELECT z FROM B;",
        "              ^",
    ]


def test_check_json_format(tmp_path, capsys):
    path = write(tmp_path, "bad.epl", BAD)
    assert main(["check", "--format", "json", path]) == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["line"], r["col"], r["severity"]) for r in records] == [(2, 8, "error"),
                                                                        (3, 15, "error")]


def test_check_folder_reads_every_epl_in_name_order(tmp_path, capsys):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "b.epl").write_text("@name('second') SELECT x FROM A;\n")
    (folder / "a.epl").write_text("CREATE EVENT A (x INT) FROM TOPIC 'a';\n")
    (folder / "notes.txt").write_text("not rules")
    assert main(["check", str(folder)]) == 0
    assert "2 files, 1 rule" in capsys.readouterr().err


def test_check_unreadable_file_exits_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.epl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_print_stages(tmp_path, capsys):
    path = write(tmp_path, "good.epl", GOOD)
    assert main(["check", "--print", "rules", path]) == 0
    assert "SELECT x\nFROM A(x > 1)" in capsys.readouterr().out
    assert main(["check", "--print", "ast", path]) == 0
    assert "SelectRule" in capsys.readouterr().out
    assert main(["check", "--print", "tree", path]) == 0
    assert "select_rule" in capsys.readouterr().out


def test_replay_refuses_rules_with_errors(tmp_path, capsys):
    rules = write(tmp_path, "bad.epl", BAD)
    trace = write(tmp_path, "t.jsonl", "")
    assert main(["replay", rules, "--trace", trace]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "nothing was run" in captured.err


def test_replay_missing_trace_exits_2(tmp_path, capsys):
    rules = write(tmp_path, "good.epl", GOOD)
    assert main(["replay", rules, "--trace", str(tmp_path / "none.jsonl")]) == 2


def test_replay_out_file_and_until(tmp_path, capsys):
    rules = write(tmp_path, "r.epl", "CREATE EVENT A (x INT) FROM TOPIC 'a';\n"
                                     "@name('late') SELECT a.x AS x FROM PATTERN "
                                     "[every a=A -> timer:interval(1 hour)];\n")
    trace = write(tmp_path, "t.jsonl", '{"ts": "2026-01-01T00:00:00Z", "topic": "a", '
                                       '"payload": {"x": 5}}\n')
    out = tmp_path / "out.jsonl"
    assert main(["replay", rules, "--trace", trace, "--out", str(out)]) == 0
    assert out.read_text() == ""  # the clock stops at the last message
    assert main(["replay", rules, "--trace", trace, "--out", str(out),
                 "--until", "2026-01-01T01:00:00Z"]) == 0
    line = json.loads(out.read_text())
    assert (line["ts"], line["attrs"]) == ("2026-01-01T01:00:00.000+00:00", {"x": 5})
    assert capsys.readouterr().out == ""  # nothing on stdout with --out


def test_replay_tz_overrides_output_offset(tmp_path, capsys):
    rules = write(tmp_path, "r.epl", "CREATE EVENT A (x INT) FROM TOPIC 'a';\n"
                                     "@name('r') SELECT x FROM A;\n")
    trace = write(tmp_path, "t.jsonl", '{"ts": "2026-07-01T12:00:00Z", "topic": "a", '
                                       '"payload": {"x": 1}}\n')
    assert main(["replay", rules, "--trace", trace, "--tz", "Europe/Berlin"]) == 0
    assert json.loads(capsys.readouterr().out)["ts"] == "2026-07-01T14:00:00.000+02:00"


def test_replay_contexts_flag_writes_lifecycle_lines(tmp_path, capsys):
    rules = write(tmp_path, "r.epl", "CREATE EVENT A (x INT) FROM TOPIC 'a';\n"
                                     "CREATE CONTEXT N START 22:00 END 07:00;\n"
                                     "CONTEXT N SELECT x FROM A;\n")
    trace = write(tmp_path, "t.jsonl", '{"ts": "2026-01-01T06:00:00Z", "topic": "a", '
                                       '"payload": {"x": 1}}\n')
    assert main(["replay", rules, "--trace", trace, "--contexts",
                 "--until", "2026-01-01T08:00:00Z"]) == 0
    kinds = [json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines()]
    assert kinds == ["context-start", "event", "context-end"]
    assert main(["replay", rules, "--trace", trace, "--until", "2026-01-01T08:00:00Z"]) == 0
    kinds = [json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines()]
    assert kinds == ["event"]


# ---------------------------------------------------------------- output that cannot be written

TRACE = "".join(f'{{"ts": {t}, "topic": "a", "payload": {{"x": {t}}}}}\n' for t in range(2, 40))


class ClosedPipe:
    """Standard output whose reader has gone (`cep replay ... | head -1`)."""

    def __init__(self, spare) -> None:
        self.spare = spare  # a real descriptor, for cep to point at /dev/null

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self.spare.fileno()


def test_replay_into_a_closed_pipe_stops_quietly(tmp_path, capsys, monkeypatch):
    rules, trace = write(tmp_path, "r.epl", GOOD), write(tmp_path, "t.jsonl", TRACE)
    with open(tmp_path / "spare", "w") as spare:
        monkeypatch.setattr("sys.stdout", ClosedPipe(spare))
        assert main(["replay", rules, "--trace", trace]) == 0
    err = capsys.readouterr().err
    assert "failed" not in err and "Broken pipe" not in err


def test_replay_into_a_full_disk_says_so(tmp_path, capsys):
    import os

    import pytest

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    rules, trace = write(tmp_path, "r.epl", GOOD), write(tmp_path, "t.jsonl", TRACE)
    for speed in ([], ["--speed", "1e9"]):  # buffered (fails at close) or flushed per line
        assert main(["replay", rules, "--trace", trace, "--out", "/dev/full", *speed]) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1] == "cep: error: cannot write output: No space left on device"
        assert "rule 'r' failed" not in err


def test_replay_speed_must_be_a_usable_number(tmp_path, capsys):
    rules, trace = write(tmp_path, "r.epl", GOOD), write(tmp_path, "t.jsonl", TRACE)
    for speed in ("0", "-2", "1e-9", "nan", "inf"):
        assert main(["replay", rules, "--trace", trace, "--speed", speed]) == 2
        assert "--speed must be a number from 0.001 up" in capsys.readouterr().err
